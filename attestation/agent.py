"""The in-pod agent: prove this TEE to RAS with an ephemeral key and obtain a token bound to it.

The private key never leaves the process; the token's `cnf.jwk` names its public half, so a key
broker can wrap secrets to it and a stolen token is useless elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from teeplane.attestation.binding import b64url_decode
from teeplane.attestation.eps.client import EpsClient
from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.ras.models import AttestRequest, WorkloadIdentity


@dataclass(frozen=True)
class AgentResult:
    """A token and the ephemeral TEE key it is bound to."""

    token: str
    tee_key: ec.EllipticCurvePrivateKey
    tee_public_jwk: dict[str, Any]


def ephemeral_tee_key() -> tuple[ec.EllipticCurvePrivateKey, dict[str, Any]]:
    """A fresh P-256 key pair and its public JWK."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = ECKey.import_key(key.public_key()).as_dict(private=False)
    return key, dict(jwk)


def attest(ras: RasClient, eps: EpsClient, workload: WorkloadIdentity) -> AgentResult:
    """Challenge from RAS, evidence bound to the nonce and a new key, token from RAS."""
    key, jwk = ephemeral_tee_key()
    challenge = ras.challenge()
    runtime_data = {"tee_pubkey": jwk}
    evidence = eps.evidence(b64url_decode(challenge.nonce, "nonce"), runtime_data=runtime_data)
    issued = ras.attest(
        AttestRequest(
            nonce=challenge.nonce,
            tee=evidence.tee,
            evidence=evidence.evidence,
            event_log=evidence.event_log,
            runtime_data=runtime_data,
            workload=workload,
        )
    )
    return AgentResult(issued.token, key, jwk)
