"""The Evidence Provision Service (FastAPI): fresh evidence for a verifier's nonce, and discovery."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from joserfc.jwk import ECKey

from teeplane import __version__
from teeplane.attestation.binding import b64url_decode, b64url_encode, report_data_for
from teeplane.attestation.eps.models import (
    DISCOVERY_PATH,
    EVIDENCE_PATH,
    Discovery,
    EvidenceRequest,
    EvidenceResponse,
)
from teeplane.attestation.eps.provider import EvidenceProvider
from teeplane.http import add_health_routes, install_problem_handlers


def create_eps_app(
    provider: EvidenceProvider,
    *,
    baseline_id: str | None = None,
    log_proof: dict[str, Any] | None = None,
    workload: dict[str, Any] | None = None,
) -> FastAPI:
    """The EPS over `provider`, announcing the workload's baseline ID, log proof and identity.

    Asks the provider for its TEE type once, here, so a missing TEE fails at startup. Requests
    without runtime data bind a public key of the EPS's own, made once per application.
    """
    tee = provider.tee
    own_runtime_data = {"tee_pubkey": _public_jwk(ec.generate_private_key(ec.SECP256R1()))}
    app = FastAPI(title="TEEPlane Evidence Provision Service", version=__version__)
    install_problem_handlers(app)
    add_health_routes(app)

    @app.post(EVIDENCE_PATH, response_model=EvidenceResponse)
    def evidence(request: EvidenceRequest) -> EvidenceResponse:
        """Evidence whose report data binds the nonce and the runtime data."""
        runtime_data = request.runtime_data if request.runtime_data is not None else own_runtime_data
        produced = provider.evidence(report_data_for(b64url_decode(request.nonce, "nonce"), runtime_data))
        return EvidenceResponse(
            tee=produced.tee,
            evidence=b64url_encode(produced.evidence),
            event_log=_optional_b64url(produced.event_log),
            collateral=_optional_b64url(produced.collateral),
            certificates=[b64url_encode(cert) for cert in produced.certificates],
            runtime_data=runtime_data,
            simulated=produced.simulated,
            baseline_id=baseline_id,
            log_proof=log_proof,
            workload=workload,
        )

    @app.get(DISCOVERY_PATH, response_model=Discovery)
    def discovery() -> Discovery:
        """The TEE, whether it is simulated, the baseline, and the endpoints."""
        return Discovery(
            tee=tee, simulated=provider.simulated, baseline_id=baseline_id, endpoints={"evidence": EVIDENCE_PATH}
        )

    return app


def _public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    return dict(ECKey.import_key(key.public_key()).as_dict(private=False))


def _optional_b64url(data: bytes | None) -> str | None:
    return None if data is None else b64url_encode(data)
