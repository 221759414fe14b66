"""Collateral fetched from Intel's Provisioning Certification Service (API v4), or a PCCS.

For one FMSPC and PCK CA, four GETs (a PCCS serves the same paths under its own base URL):

* `{base}/tdx/certification/v4/tcb?fmspc=<hex>`: `{"tcbInfo": {...}, "signature": "<hex>"}`,
  signing chain in the `TCB-Info-Issuer-Chain` header;
* `{base}/tdx/certification/v4/qe/identity`: `{"enclaveIdentity": {...}, "signature": "<hex>"}`,
  chain in `SGX-Enclave-Identity-Issuer-Chain`;
* `{base}/sgx/certification/v4/pckcrl?ca=platform|processor&encoding=der`: the DER CRL of the PCK
  CA, chain in `SGX-PCK-CRL-Issuer-Chain`;
* the Intel SGX Root CA's CRL at its distribution point (DER), or a configured URL.

Issuer chains are URL-encoded PEM (signer first, then the root). No subscription key is sent:
PCS asks for one only when it hands out PCK certificates. The responses are read with the
collateral loaders, which keep the exact signed bytes; nothing is trusted here, since the
appraisal judges signatures, chains and validity as it does for collateral read from files.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote

import httpx
from cryptography import x509

from teeplane.attestation.certs import load_crl
from teeplane.attestation.errors import Code
from teeplane.attestation.tdx.collateral import Collateral, parse_pcs_response
from teeplane.errors import TeeplaneError
from teeplane.tls import Verify

INTEL_PCS_URL = "https://api.trustedservices.intel.com"
#: The CRL distribution point named in the Intel SGX Root CA certificate.
INTEL_ROOT_CA_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
TCB_INFO_CHAIN = "TCB-Info-Issuer-Chain"
QE_IDENTITY_CHAIN = "SGX-Enclave-Identity-Issuer-Chain"
PCK_CRL_CHAIN = "SGX-PCK-CRL-Issuer-Chain"
#: The `ca` query value for each PCK CA, by its subject common name.
PCK_CA_TYPES = {"Intel SGX PCK Platform CA": "platform", "Intel SGX PCK Processor CA": "processor"}
#: Largest response read (the largest PCK CRLs are a few hundred KiB).
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
DEFAULT_TIMEOUT = 10.0


class CollateralFetchError(TeeplaneError):
    """Collateral could not be fetched: the URL and what was wrong. Codes:
    `collateral.fetch_failed` (no answer, or an error status), `collateral.not_found` (404: PCS
    has nothing for this FMSPC or CA), `collateral.malformed` (an answer that cannot be read)."""

    http_status = 502

    def __init__(self, code: Code, url: str, reason: str) -> None:
        super().__init__(code.value, f"GET {url}: {reason}", where=url)


def pck_ca_type(pck: x509.Certificate) -> str | None:
    """`platform` or `processor`: the PCK CA that issued `pck`, or None when it is not an Intel PCK CA."""
    names = pck.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return PCK_CA_TYPES.get(str(names[0].value)) if names else None


class PcsFetcher:
    """Fetches the DCAP collateral of one FMSPC and PCK CA from a PCS or PCCS base URL.

    `verify` checks the server's TLS certificate (a PCCS often has a private CA).
    """

    def __init__(
        self,
        base_url: str = INTEL_PCS_URL,
        *,
        root_ca_crl_url: str = INTEL_ROOT_CA_CRL_URL,
        verify: Verify = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.root_ca_crl_url = root_ca_crl_url
        self._http = httpx.Client(timeout=timeout, verify=verify, follow_redirects=True)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def fetch(self, fmspc: bytes, ca: str) -> Collateral:
        """TCB Info, QE Identity, PCK CRL and root CA CRL for `fmspc` and the PCK CA `ca`, read but not judged."""
        if ca not in PCK_CA_TYPES.values():
            raise ValueError(f"unknown PCK CA type {ca!r}")
        tcb_url = f"{self.base_url}/tdx/certification/v4/tcb?fmspc={fmspc.hex()}"
        qe_url = f"{self.base_url}/tdx/certification/v4/qe/identity"
        pck_crl_url = f"{self.base_url}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der"
        tcb, qe, pck_crl, root_ca_crl = (self._get(url) for url in (tcb_url, qe_url, pck_crl_url, self.root_ca_crl_url))
        with _reading(tcb_url):
            tcb_info = parse_pcs_response(tcb.content, "tcbInfo")
        with _reading(qe_url):
            qe_identity = parse_pcs_response(qe.content, "enclaveIdentity")
        collateral = Collateral(
            tcb_info=tcb_info,
            qe_identity=qe_identity,
            tcb_info_chain=_issuer_chain(tcb_url, tcb, TCB_INFO_CHAIN),
            qe_identity_chain=_issuer_chain(qe_url, qe, QE_IDENTITY_CHAIN),
            pck_crl=pck_crl.content,
            root_ca_crl=root_ca_crl.content,
            pck_crl_chain=_issuer_chain(pck_crl_url, pck_crl, PCK_CRL_CHAIN),
        )
        with _reading(tcb_url):
            collateral.tcb_info_model  # noqa: B018 - validate before it is used
        with _reading(qe_url):
            collateral.qe_identity_model  # noqa: B018
        with _reading(pck_crl_url):
            load_crl(pck_crl.content, "PCK CRL")
        with _reading(self.root_ca_crl_url):
            load_crl(root_ca_crl.content, "root CA CRL")
        return collateral

    def _get(self, url: str) -> httpx.Response:
        """A 200 answer, read in full (bounded), or CollateralFetchError."""
        try:
            with self._http.stream("GET", url) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise CollateralFetchError(
                            Code.COLLATERAL_MALFORMED, url, f"the answer is over {MAX_RESPONSE_BYTES} bytes"
                        )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise CollateralFetchError(Code.COLLATERAL_FETCH_FAILED, url, f"{type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            code = Code.COLLATERAL_NOT_FOUND if response.status_code == 404 else Code.COLLATERAL_FETCH_FAILED
            raise CollateralFetchError(code, url, _describe_status(response))
        return httpx.Response(200, headers=response.headers, content=bytes(body))


@contextmanager
def _reading(url: str) -> Iterator[None]:
    """A parse error of the answer from `url` becomes a CollateralFetchError naming the URL."""
    try:
        yield
    except TeeplaneError as exc:
        raise CollateralFetchError(Code.COLLATERAL_MALFORMED, url, exc.message) from None


def _describe_status(response: httpx.Response) -> str:
    """An error status with what PCS says about it."""
    names = ("Error-Code", "Error-Message", "Retry-After", "Request-ID")
    details = [f"{name} {response.headers[name]}" for name in names if name in response.headers]
    text = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    return f"{text} ({', '.join(details)})" if details else text


def _issuer_chain(url: str, response: httpx.Response, header: str) -> bytes:
    """The URL-encoded PEM chain in `header`."""
    value = response.headers.get(header)
    if not value:
        raise CollateralFetchError(Code.COLLATERAL_MALFORMED, url, f"the answer has no {header} header")
    try:
        chain = unquote(value, errors="strict")
    except UnicodeDecodeError:
        chain = ""
    if "-----BEGIN CERTIFICATE-----" not in chain:
        raise CollateralFetchError(Code.COLLATERAL_MALFORMED, url, f"{header} is not a URL-encoded PEM chain")
    return chain.encode()
