"""Collateral fetched from Intel PCS (API v4): a real HTTP server on loopback plays PCS in its wire
format, serving the corpus's genuine collateral; RAS verifies genuine quotes with nothing loaded
from files, and refuses what a broken, lying or absent PCS serves, with typed errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pcs_server import FakePcs, PcsData, automata_data, dcap_qvl_data, fake_pcs
from processes import free_port, service
from ras_testing import Clock, evidence_request, reference_for
from typer.testing import CliRunner

from teeplane.attestation.binding import b64url_encode
from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.ras.collateral import CollateralCache
from teeplane.attestation.ras.models import AttestRequest, WorkloadIdentity
from teeplane.attestation.ras.pcs import CollateralFetchError, PcsFetcher
from teeplane.attestation.ras.service import AttestationRefusedError, Issued, RasConfig, RemoteAttestationService
from teeplane.attestation.ras.store import RasStore
from teeplane.attestation.reference import AppraisalPolicy, ReferenceValues
from teeplane.attestation.sim.example import boot_example_td
from teeplane.attestation.sim.pki import SimulationAuthority, pem
from teeplane.attestation.tdx.collateral import load_bundle
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.token import verify_token
from teeplane.attestation.trust import TrustAnchor
from teeplane.cli import app
from teeplane.remote import RemoteError
from teeplane.tls import CertificateAuthority

pytestmark = pytest.mark.corpus

DCAP_QVL_AT = datetime(2025, 6, 25, tzinfo=UTC)  # EXPECTED.md: dcap-qvl/tdx_quote, UpToDate
AUTOMATA_AT = datetime(2025, 7, 10, tzinfo=UTC)  # EXPECTED.md: go-tdx-guest/ccel/cos-113, UpToDate
QUOTE = "dcap-qvl/tdx_quote"
SAME_FMSPC = "dcap-qvl/tdx-quote.from_hex.bin"  # FMSPC b0c06f000000 too; TCB_NOT_SUPPORTED
COS_QUOTE = "go-tdx-guest/ccel/cos-113-tdx-quote.dat"
FMSPC = bytes.fromhex("b0c06f000000")
TCB_PATH = "/tdx/certification/v4/tcb"
WORKLOAD = WorkloadIdentity(namespace="replay", name="genuine")
ADMIN = "pcs-admin-token"
Fetchers = Callable[[FakePcs], PcsFetcher]


@pytest.fixture
def tdx(corpus: Path) -> Path:
    return corpus / "tdx"


@pytest.fixture
def dcap_qvl_pcs(tdx: Path) -> Iterator[FakePcs]:
    with fake_pcs(dcap_qvl_data(tdx)) as pcs:
        yield pcs


@pytest.fixture
def fetcher_for() -> Iterator[Fetchers]:
    """Fetchers from a simulated PCS, closed after the test."""
    fetchers: list[PcsFetcher] = []

    def make(pcs: FakePcs) -> PcsFetcher:
        fetchers.append(PcsFetcher(pcs.url, root_ca_crl_url=pcs.root_ca_crl_url))
        return fetchers[-1]

    yield make
    for fetcher in fetchers:
        fetcher.close()


class Services:
    """RAS instances replaying recorded evidence at a clock's time, with no collateral files."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.stores: list[RasStore] = []

    def __call__(self, cache: CollateralCache, clock: Clock, **config: Any) -> RemoteAttestationService:
        store = RasStore(self.tmp_path / f"ras-{len(self.stores)}.db")
        self.stores.append(store)
        return RemoteAttestationService(store, cache, RasConfig(clock=clock, replay_recorded_evidence=True, **config))


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Services]:
    services = Services(tmp_path)
    yield services
    for store in services.stores:
        store.close()


def attest(service: RemoteAttestationService, quote: bytes) -> Issued:
    """Attest a recorded quote as the workload whose reference values are the quote's own."""
    m = parse_quote(quote).body.measurements()
    reference = ReferenceValues(tee="tdx", **{k: [m[k]] for k in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")})
    service.put_reference_values(WORKLOAD.key, reference)
    return service.attest(tdx_request(b64url_encode(service.challenge().nonce), quote))


def tdx_request(nonce: str, quote: bytes) -> AttestRequest:
    """A request for recorded evidence (its report data cannot bind the nonce: RAS replays it)."""
    return AttestRequest(
        nonce=nonce,
        tee="tdx",
        evidence=b64url_encode(quote),
        runtime_data={"tee_pubkey": {"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "B" * 43}},
        workload=WORKLOAD,
    )


def refusal(service: RemoteAttestationService, quote: bytes) -> AttestationRefusedError:
    with pytest.raises(AttestationRefusedError) as refused:
        attest(service, quote)
    return refused.value


def codes(error: AttestationRefusedError) -> set[str]:
    return {e.code for e in error.errors}


# --- RAS with a PCS and no collateral files ------------------------------------------------------


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A private CA (PEM file) and the serving certificate and key it issued for 127.0.0.1."""
    ca = CertificateAuthority.generate("simulated PCS CA")
    (tmp_path / "pcs-ca.pem").write_bytes(ca.cert_pem)
    ca.issue_server(["127.0.0.1"]).write(tmp_path / "pcs.crt", tmp_path / "pcs.key")
    return tmp_path / "pcs-ca.pem", tmp_path / "pcs.crt", tmp_path / "pcs.key"


def test_ras_serve_with_pcs_url_verifies_a_genuine_quote(
    tmp_path: Path, tdx: Path, tls: tuple[Path, Path, Path]
) -> None:
    """`teeplane ras serve --pcs-url` (HTTPS, as PCS): a genuine quote verifies at the corpus's time
    with collateral fetched from PCS only; the next quote of that FMSPC costs no request."""
    ca_file, cert, key = tls
    tokens = tmp_path / "admin-tokens"
    tokens.write_text(ADMIN + "\n")
    quote = (tdx / QUOTE).read_bytes()
    with fake_pcs(dcap_qvl_data(tdx), tls=(cert, key)) as pcs:
        args = ["ras", "serve", "--state", str(tmp_path / "ras"), "--admin-token-file", str(tokens),
                "--pcs-url", pcs.url, "--pcs-root-ca-crl-url", pcs.root_ca_crl_url, "--pcs-ca-file", str(ca_file),
                "--at", DCAP_QVL_AT.strftime("%Y-%m-%dT%H:%M:%SZ"), "--replay-recorded-evidence"]  # fmt: skip
        with (
            service("ras", args, tmp_path) as ras_url,
            closing(RasClient(ras_url, admin_token=ADMIN)) as admin,
            closing(RasClient(ras_url)) as client,
        ):
            mrtd = parse_quote(quote).body.measurements()["mrtd"]
            admin.put_reference_values(WORKLOAD.namespace, WORKLOAD.name, ReferenceValues(tee="tdx", mrtd=[mrtd]))
            token = client.attest(tdx_request(client.challenge().nonce, quote)).token
            claims = verify_token(token, client.jwks(), audience="teeplane-tks", issuer="https://ras.teeplane.local",
                                  now=DCAP_QVL_AT)  # fmt: skip
            assert claims["submods"]["tdx"]["teeplane.tcb-status"] == "UpToDate"
            assert pcs.url.startswith("https://") and pcs.requests == [
                f"{TCB_PATH}?fmspc=b0c06f000000",
                "/tdx/certification/v4/qe/identity",
                "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
                "/IntelSGXRootCA.der",
            ]
            with pytest.raises(RemoteError) as refused:  # EXPECTED.md: TCB_NOT_SUPPORTED, on the cached collateral
                client.attest(tdx_request(client.challenge().nonce, (tdx / SAME_FMSPC).read_bytes()))
            assert "tcb.not_supported" in {e["code"] for e in refused.value.errors}
            assert len(pcs.requests) == 4


def test_a_slow_pcs_does_not_stall_ras(tmp_path: Path, tdx: Path) -> None:
    """While one attestation waits for PCS, RAS goes on answering everyone else (the fetch runs
    beside the event loop, not in it)."""
    tokens = tmp_path / "admin-tokens"
    tokens.write_text(ADMIN + "\n")
    quote = (tdx / QUOTE).read_bytes()
    with fake_pcs(dcap_qvl_data(tdx)) as pcs:
        pcs.delay = 1.0  # four requests: the first attestation takes about 4 s
        args = ["ras", "serve", "--state", str(tmp_path / "ras"), "--admin-token-file", str(tokens),
                "--pcs-url", pcs.url, "--pcs-root-ca-crl-url", pcs.root_ca_crl_url,
                "--at", DCAP_QVL_AT.strftime("%Y-%m-%dT%H:%M:%SZ"), "--replay-recorded-evidence"]  # fmt: skip
        with service("ras", args, tmp_path) as ras_url, closing(RasClient(ras_url, admin_token=ADMIN)) as admin:
            mrtd = parse_quote(quote).body.measurements()["mrtd"]
            admin.put_reference_values(WORKLOAD.namespace, WORKLOAD.name, ReferenceValues(tee="tdx", mrtd=[mrtd]))
            with ThreadPoolExecutor(1) as pool, closing(RasClient(ras_url)) as client:
                slow = pool.submit(lambda: client.attest(tdx_request(client.challenge().nonce, quote)))
                while not pcs.requests:
                    time.sleep(0.01)
                started = time.monotonic()
                assert httpx.post(ras_url + "/v1/challenge", timeout=10).status_code == 200
                assert time.monotonic() - started < 0.5
                assert not slow.done()
                assert slow.result(timeout=30).token


def test_genuine_quote_verifies_with_fetched_collateral_only(
    make_service: Services, tdx: Path, fetcher_for: Fetchers
) -> None:
    with fake_pcs(automata_data(tdx)) as pcs:
        cache = CollateralCache(fetcher_for(pcs))
        issued = attest(make_service(cache, Clock(AUTOMATA_AT)), (tdx / COS_QUOTE).read_bytes())
    assert issued.appraisal.verified
    assert issued.appraisal.tcb_status == "UpToDate"
    assert {c.name for c in issued.appraisal.checks if c.ok} >= {"crl.root_ca", "crl.pck", "collateral.tcb_info"}
    assert cache.for_fmspc(bytes.fromhex("00806f050000"), AUTOMATA_AT) is None  # nothing from files


# --- caching ------------------------------------------------------------------------------------


def test_collateral_is_fetched_again_only_after_its_next_update(
    make_service: Services, tdx: Path, dcap_qvl_pcs: FakePcs, fetcher_for: Fetchers
) -> None:
    clock, seconds = Clock(DCAP_QVL_AT), [0.0]
    ras = make_service(CollateralCache(fetcher_for(dcap_qvl_pcs), monotonic=lambda: seconds[0]), clock)
    assert attest(ras, (tdx / QUOTE).read_bytes()).appraisal.verified
    assert len(dcap_qvl_pcs.requests) == 4
    clock.now = datetime(2025, 7, 19, 10, 0, tzinfo=UTC)  # the last minute before the PCK CRL's nextUpdate
    assert codes(refusal(ras, (tdx / SAME_FMSPC).read_bytes())) == {"tcb.not_supported", "policy.tcb_status_rejected"}
    assert attest(ras, (tdx / QUOTE).read_bytes()).appraisal.verified
    assert len(dcap_qvl_pcs.requests) == 4

    # Past the earliest nextUpdate (the PCK CRL's, 10:00:35; TCB Info's is 10:16:03) PCS is asked
    # again; it still serves the same collateral, which the appraisal refuses as out of date.
    clock.now, seconds[0] = datetime(2025, 7, 19, 10, 5, tzinfo=UTC), 3600.0
    assert codes(refusal(ras, (tdx / QUOTE).read_bytes())) == {"crl.expired"}
    assert len(dcap_qvl_pcs.requests) == 8
    seconds[0] += 59  # within the retry interval (a minute) PCS is not asked again
    refusal(ras, (tdx / QUOTE).read_bytes())
    assert len(dcap_qvl_pcs.requests) == 8
    seconds[0] += 1
    refusal(ras, (tdx / QUOTE).read_bytes())
    assert len(dcap_qvl_pcs.requests) == 12


def test_concurrent_first_requests_make_one_fetch(dcap_qvl_pcs: FakePcs, fetcher_for: Fetchers) -> None:
    dcap_qvl_pcs.delay = 0.2  # each answer takes a while, so every caller arrives during the fetch
    cache = CollateralCache(fetcher_for(dcap_qvl_pcs))
    start = threading.Barrier(8)
    found: list[object] = []

    def lookup() -> None:
        start.wait()
        found.append(cache.for_platform(FMSPC, "platform", DCAP_QVL_AT))

    threads = [threading.Thread(target=lookup) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and all(f is found[0] and f is not None for f in found)
    assert dcap_qvl_pcs.count(TCB_PATH) == 1
    assert len(dcap_qvl_pcs.requests) == 4


def test_current_file_collateral_is_used_before_fetching(
    tdx: Path, dcap_qvl_pcs: FakePcs, fetcher_for: Fetchers
) -> None:
    cache = CollateralCache(fetcher_for(dcap_qvl_pcs))
    bundle = load_bundle((tdx / "dcap-qvl/tdx_quote_collateral.json").read_bytes())
    cache.add(bundle)
    assert cache.for_platform(FMSPC, "platform", DCAP_QVL_AT) is bundle
    assert dcap_qvl_pcs.requests == []
    fetched = cache.for_platform(FMSPC, "platform", datetime(2025, 8, 1, tzinfo=UTC))  # the file is out of date
    assert fetched is not None and fetched is not bundle
    assert dcap_qvl_pcs.count(TCB_PATH) == 1


def test_simulated_evidence_never_reaches_pcs(
    make_service: Services, dcap_qvl_pcs: FakePcs, fetcher_for: Fetchers
) -> None:
    authority = SimulationAuthority.generate(datetime.now(UTC) - timedelta(days=1))
    td = boot_example_td(authority)
    ras = make_service(
        CollateralCache(fetcher_for(dcap_qvl_pcs)),
        Clock(datetime.now(UTC)),
        simulation_anchor=TrustAnchor(authority.root_cert, simulated=True),
    )
    ras.put_reference_values(WORKLOAD.key, reference_for(td))
    ras.put_policy(WORKLOAD.key, AppraisalPolicy(allow_simulated=True))
    with pytest.raises(AttestationRefusedError) as refused:
        ras.attest(evidence_request(td, b64url_encode(ras.challenge().nonce), workload=WORKLOAD))
    assert "collateral.missing" in codes(refused.value)
    assert dcap_qvl_pcs.requests == []


# --- a PCS that is down, does not know the FMSPC, or serves what does not verify ----------------


def test_pcs_down_is_a_typed_error_and_no_verification(make_service: Services, tdx: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    ras = make_service(CollateralCache(PcsFetcher(base, root_ca_crl_url=base + "/crl")), Clock(DCAP_QVL_AT))
    refused = refusal(ras, (tdx / QUOTE).read_bytes())
    assert refused.code == "collateral.fetch_failed"
    assert f"GET {base}/tdx/certification/v4/tcb?fmspc=b0c06f000000: ConnectError" in refused.message
    assert refused.where == f"{base}/tdx/certification/v4/tcb?fmspc=b0c06f000000"
    assert codes(refused) == {"collateral.fetch_failed", "collateral.missing"}
    assert refused.to_problem()["status"] == 403


def test_pcs_certificate_is_checked(tdx: Path, tls: tuple[Path, Path, Path]) -> None:
    _, cert, key = tls
    with fake_pcs(dcap_qvl_data(tdx), tls=(cert, key)) as pcs, pytest.raises(CollateralFetchError) as failed:
        PcsFetcher(pcs.url, root_ca_crl_url=pcs.root_ca_crl_url).fetch(FMSPC, "platform")  # system trust store
    assert failed.value.code == "collateral.fetch_failed"
    assert "CERTIFICATE_VERIFY_FAILED" in failed.value.message


def test_unknown_fmspc_is_not_found(make_service: Services, tdx: Path, fetcher_for: Fetchers) -> None:
    with fake_pcs(automata_data(tdx)) as pcs:  # knows 00806f050000 only
        ras = make_service(CollateralCache(fetcher_for(pcs)), Clock(DCAP_QVL_AT))
        refused = refusal(ras, (tdx / QUOTE).read_bytes())
        with pytest.raises(CollateralFetchError) as direct:
            fetcher_for(pcs).fetch(bytes.fromhex("00906ed50000"), "processor")
    assert refused.code == "collateral.not_found"
    assert refused.message.startswith(f"GET {pcs.url}{TCB_PATH}?fmspc=b0c06f000000: HTTP 404 Not Found (Request-ID ")
    assert codes(refused) == {"collateral.not_found", "collateral.missing"}
    assert direct.value.code == "collateral.not_found"
    assert "fmspc=00906ed50000" in direct.value.message


def foreign_chain() -> bytes:
    """A TCB signing chain under a root that is not Intel's."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Intel SGX TCB Signing")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=9999))
        .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    return pem(cert)


def tamper_tcb_info(data: PcsData) -> None:
    signed = data.tcb_infos["b0c06f000000"]
    signed.body = signed.body.replace(b'"tcbEvaluationDataNumber":17', b'"tcbEvaluationDataNumber":18', 1)


def wrong_signer(data: PcsData) -> None:
    data.tcb_infos["b0c06f000000"].chain = data.pck_crls["platform"].chain  # Intel's, but the PCK CA's


def foreign_root(data: PcsData) -> None:
    data.tcb_infos["b0c06f000000"].chain = foreign_chain()


@pytest.mark.parametrize(
    ("lie", "expected"),
    [
        (tamper_tcb_info, "collateral.signature_invalid"),
        (wrong_signer, "collateral.signature_invalid"),
        (foreign_root, "cert.untrusted_root"),
    ],
    ids=["tampered TCB Info", "TCB Info chain of another Intel CA", "TCB Info chain under a foreign root"],
)
def test_collateral_that_does_not_verify_is_refused_at_appraisal_and_not_kept(
    make_service: Services, tdx: Path, lie: Callable[[PcsData], None], expected: str, fetcher_for: Fetchers
) -> None:
    data = dcap_qvl_data(tdx)
    lie(data)
    with fake_pcs(data) as pcs:
        ras = make_service(CollateralCache(fetcher_for(pcs), retry_interval=timedelta(0)), Clock(DCAP_QVL_AT))
        refused = refusal(ras, (tdx / QUOTE).read_bytes())
        assert expected in codes(refused)
        assert not {"collateral.fetch_failed", "collateral.malformed", "collateral.missing"} & codes(refused)
        pcs.data = dcap_qvl_data(tdx)  # PCS serves the genuine collateral again
        assert attest(ras, (tdx / QUOTE).read_bytes()).appraisal.verified
        assert pcs.count(TCB_PATH) == 2


def html_tcb_info(data: PcsData) -> None:
    data.tcb_infos["b0c06f000000"].body = b"<html>busy</html>"


def no_chain_header(data: PcsData) -> None:
    data.tcb_infos["b0c06f000000"].chain = b""


def tcb_info_as_qe_identity(data: PcsData) -> None:
    data.qe_identity.body = data.tcb_infos["b0c06f000000"].body


def garbage_root_ca_crl(data: PcsData) -> None:
    data.root_ca_crl = b"not a CRL"


@pytest.mark.parametrize(
    ("damage", "url_part", "reason"),
    [
        (html_tcb_info, TCB_PATH, "not JSON"),
        (no_chain_header, TCB_PATH, "no TCB-Info-Issuer-Chain header"),
        (tcb_info_as_qe_identity, "/qe/identity", "needs 'enclaveIdentity'"),
        (garbage_root_ca_crl, "/IntelSGXRootCA.der", "root CA CRL: not a CRL"),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_unreadable_answers_are_typed_errors_naming_the_url(
    tdx: Path, damage: Callable[[PcsData], None], url_part: str, reason: str, fetcher_for: Fetchers
) -> None:
    data = dcap_qvl_data(tdx)
    damage(data)
    with fake_pcs(data) as pcs, pytest.raises(CollateralFetchError) as failed:
        fetcher_for(pcs).fetch(FMSPC, "platform")
    assert failed.value.code == "collateral.malformed"
    assert url_part in (failed.value.where or "")
    assert reason in failed.value.message


def test_fetch_error_is_remembered_for_the_retry_interval(
    tdx: Path, dcap_qvl_pcs: FakePcs, fetcher_for: Fetchers
) -> None:
    dcap_qvl_pcs.data.tcb_infos.clear()
    cache = CollateralCache(fetcher_for(dcap_qvl_pcs))
    for _ in range(3):
        with pytest.raises(CollateralFetchError):
            cache.for_platform(FMSPC, "platform", DCAP_QVL_AT)
    assert dcap_qvl_pcs.count(TCB_PATH) == 1


def test_pcs_url_must_be_http(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("t\n")
    result = CliRunner().invoke(
        app, ["ras", "serve", "--state", str(tmp_path), "--admin-token-file", str(tokens), "--pcs-url", "pcs.local"]
    )
    assert result.exit_code == 2
    assert "--pcs-url" in result.output


def test_fetcher_reads_pcs_answers_as_the_loaders_do(tdx: Path, dcap_qvl_pcs: FakePcs, fetcher_for: Fetchers) -> None:
    """The fetched collateral is the bundle's, byte for byte: the exact signed bytes survive HTTP."""
    fetched = fetcher_for(dcap_qvl_pcs).fetch(FMSPC, "platform")
    bundle = load_bundle((tdx / "dcap-qvl/tdx_quote_collateral.json").read_bytes())
    assert fetched.tcb_info.raw == bundle.tcb_info.raw and fetched.tcb_info.signature == bundle.tcb_info.signature
    assert fetched.qe_identity.raw == bundle.qe_identity.raw
    assert fetched.tcb_info_chain == bundle.tcb_info_chain and fetched.pck_crl_chain == bundle.pck_crl_chain
    assert bundle.pck_crl is not None and fetched.pck_crl == bytes.fromhex(bundle.pck_crl.decode())
