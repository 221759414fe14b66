"""A stand-in for Intel's PCS (API v4) on loopback, in its wire format, serving genuine collateral.

Intel's service cannot be reached from a build machine, so tests run this real HTTP server
(uvicorn, in a thread). It answers the four collateral requests as PCS does: TCB Info and QE
Identity bodies byte for byte, issuer chains URL-encoded in their headers, DER CRLs, 404 for an
FMSPC it does not know, 400 for a malformed one. It records every request.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from processes import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from teeplane.attestation.tdx.collateral import load_bundle

ROOT_CA_CRL_PATH = "/IntelSGXRootCA.der"


@dataclass
class Signed:
    """A PCS answer for a signed document: the exact body and the PEM issuer chain."""

    body: bytes
    chain: bytes


@dataclass
class PcsData:
    """What the simulated PCS serves (mutable: a test may tamper with it)."""

    tcb_infos: dict[str, Signed]  # by FMSPC, lower-case hex
    qe_identity: Signed
    pck_crls: dict[str, Signed]  # by CA: platform, processor (body: DER)
    root_ca_crl: bytes


def dcap_qvl_data(tdx: Path) -> PcsData:
    """PCS as of 2025-06-19 (FMSPC b0c06f000000): dcap-qvl's bundle, the PCS answers it was made of."""
    bundle = load_bundle((tdx / "dcap-qvl/tdx_quote_collateral.json").read_bytes())
    assert bundle.pck_crl is not None and bundle.root_ca_crl is not None and bundle.pck_crl_chain is not None

    def body(key: str, raw: bytes, signature: bytes) -> bytes:
        return b'{"' + key.encode() + b'":' + raw + b',"signature":"' + signature.hex().encode() + b'"}'

    return PcsData(
        tcb_infos={
            "b0c06f000000": Signed(
                body("tcbInfo", bundle.tcb_info.raw, bundle.tcb_info.signature), bundle.tcb_info_chain
            )
        },
        qe_identity=Signed(
            body("enclaveIdentity", bundle.qe_identity.raw, bundle.qe_identity.signature), bundle.qe_identity_chain
        ),
        pck_crls={"platform": Signed(bytes.fromhex(bundle.pck_crl.decode()), bundle.pck_crl_chain)},
        root_ca_crl=bytes.fromhex(bundle.root_ca_crl.decode()),
    )


def automata_data(tdx: Path) -> PcsData:
    """PCS as of 2025-07-07 (FMSPC 00806f050000): automata's PCS answers, served verbatim."""
    signing_chain = (tdx / "automata/solana_signing.pem").read_bytes() + (tdx / "Intel_SGX_Root_CA.pem").read_bytes()
    tcb_info = (tdx / "automata/solana_tcb_info_v3_with_tdx_module.json").read_bytes()
    return PcsData(
        tcb_infos={"00806f050000": Signed(tcb_info, signing_chain)},
        qe_identity=Signed((tdx / "automata/solana_qe_identity.json").read_bytes(), signing_chain),
        pck_crls={
            "platform": Signed(
                (tdx / "automata/solana_pck_platform_crl.der").read_bytes(),
                (tdx / "dcap-qvl/pck_crl_issuer_chain.pem").read_bytes(),
            )
        },
        root_ca_crl=(tdx / "automata/solana_intel_root_ca_crl.der").read_bytes(),
    )


@dataclass
class FakePcs:
    """The running server: its base URL, what it serves, what it was asked."""

    data: PcsData
    port: int = field(default_factory=free_port)
    https: bool = False
    #: Seconds each answer waits (to hold concurrent requests in flight).
    delay: float = 0.0
    requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://127.0.0.1:{self.port}"

    @property
    def root_ca_crl_url(self) -> str:
        return self.url + ROOT_CA_CRL_PATH

    def count(self, path: str) -> int:
        """How many requests were made for `path` (query excluded)."""
        with self._lock:
            return sum(1 for r in self.requests if r.split("?")[0] == path)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/tdx/certification/v4/tcb", self._tcb),
                Route("/tdx/certification/v4/qe/identity", self._qe_identity),
                Route("/sgx/certification/v4/pckcrl", self._pck_crl),
                Route(ROOT_CA_CRL_PATH, self._root_ca_crl),
            ]
        )

    # Sync handlers: Starlette runs each in its thread pool, so a delay holds only that request.

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(f"{request.url.path}?{request.url.query}" if request.url.query else request.url.path)
        time.sleep(self.delay)

    def _tcb(self, request: Request) -> Response:
        self._record(request)
        fmspc = request.query_params.get("fmspc", "")
        if not re.fullmatch(r"[0-9a-fA-F]{12}", fmspc):
            return _error(400, "InvalidRequestSyntax", "fmspc must be 12 hex digits")
        found = self.data.tcb_infos.get(fmspc.lower())
        return _error(404) if found is None else _signed(found, "TCB-Info-Issuer-Chain")

    def _qe_identity(self, request: Request) -> Response:
        self._record(request)
        return _signed(self.data.qe_identity, "SGX-Enclave-Identity-Issuer-Chain")

    def _pck_crl(self, request: Request) -> Response:
        self._record(request)
        ca, encoding = request.query_params.get("ca", ""), request.query_params.get("encoding", "pem")
        found = self.data.pck_crls.get(ca.lower())
        if found is None or encoding not in ("der", "pem"):
            return _error(400, "InvalidRequestSyntax", "ca must be processor or platform, encoding der or pem")
        headers = _headers({"SGX-PCK-CRL-Issuer-Chain": _url_encoded(found.chain)})
        if encoding == "pem":
            pem = x509.load_der_x509_crl(found.body).public_bytes(Encoding.PEM)
            return Response(pem, headers=headers, media_type="application/x-pem-file")
        return Response(found.body, headers=headers, media_type="application/pkix-crl")

    def _root_ca_crl(self, request: Request) -> Response:
        self._record(request)
        return Response(self.data.root_ca_crl, media_type="application/pkix-crl")


def _url_encoded(chain: bytes) -> str:
    """A PEM chain as PCS puts it in a header: every reserved character percent-encoded."""
    return quote(chain.decode(), safe="")


def _headers(extra: dict[str, str]) -> dict[str, str]:
    return {"Request-ID": uuid.uuid4().hex, **extra}


def _signed(found: Signed, chain_header: str) -> Response:
    headers = _headers({chain_header: _url_encoded(found.chain)})
    return Response(found.body, headers=headers, media_type="application/json")


def _error(status: int, code: str | None = None, message: str | None = None) -> Response:
    extra = {"Error-Code": code, "Error-Message": message} if code and message else {}
    return Response(b"", status_code=status, headers=_headers(extra))


@contextmanager
def fake_pcs(data: PcsData, tls: tuple[Path, Path] | None = None) -> Iterator[FakePcs]:
    """Serve `data` as PCS on a loopback port until the block ends (HTTPS with `tls`: certificate, key)."""
    pcs = FakePcs(data, https=tls is not None)
    certfile, keyfile = (str(tls[0]), str(tls[1])) if tls else (None, None)
    config = uvicorn.Config(
        pcs.app(), host="127.0.0.1", port=pcs.port, log_level="warning", ssl_certfile=certfile, ssl_keyfile=keyfile
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the simulated PCS did not start")
        time.sleep(0.01)
    try:
        yield pcs
    finally:
        server.should_exit = True
        thread.join(timeout=10)
