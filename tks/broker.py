"""The Key Broker: release a key, wrapped to the TEE's own key, only to an attested workload.

Order: the bearer token (signature under RAS's JWKS, expiry, audience, issuer), the key (from
this replica's view), the key's release policy, then the material is opened from its envelope and
wrapped as a JWE to the token's `cnf.jwk`. Every release and refusal is audited with its reason;
no key material, token or TEE key is ever logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from teeplane.attestation.errors import Code
from teeplane.attestation.token import TokenError
from teeplane.errors import TeeplaneError
from teeplane.tks.envelope import Envelope, open_envelope
from teeplane.tks.jwe import wrap_for_tee
from teeplane.tks.jwks import JwksCache
from teeplane.tks.kek import KekProvider
from teeplane.tks.keyserver import KeyNotFoundError
from teeplane.tks.release import check_release
from teeplane.tks.view import KeyView

audit = logging.getLogger("teeplane.tks.audit")


class KeyBroker:
    """Releases keys from a replica's view."""

    def __init__(
        self,
        view: KeyView,
        kek: KekProvider,
        jwks: JwksCache,
        *,
        audience: str,
        issuer: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.view = view
        self.kek = kek
        self.jwks = jwks
        self.audience = audience
        self.issuer = issuer
        self.clock = clock

    def release(self, key_id: str, authorization: str | None, version: int | None = None) -> str:
        """The key (latest or `version`) as a compact JWE for the token's TEE key."""
        workload = None
        try:
            token = _bearer(authorization)
            claims = self.jwks.verify(token, audience=self.audience, issuer=self.issuer, now=self.clock())
            meta = self.view.metadata.get(key_id)
            if meta is None:
                raise KeyNotFoundError("tks.key_not_found", f"no key {key_id!r}", where="id")
            grant = check_release(
                claims, meta.policy, key_id=key_id, requested_version=version, latest_version=meta.latest
            )
            workload = grant.workload
            sealed = self.view.envelopes.get((key_id, grant.version))
            if sealed is None:
                raise KeyNotFoundError(
                    "tks.key_not_found", f"no version {grant.version} of {key_id!r}", where="version"
                )
            material = open_envelope(Envelope.from_bytes(sealed), key_id=key_id, version=grant.version, kek=self.kek)
            jwe = wrap_for_tee(material, grant.tee_jwk, key_id=key_id, version=grant.version)
        except TeeplaneError as error:
            _audit("refused", key_id, version, workload, error.code)
            raise
        _audit("released", key_id, grant.version, workload, None)
        return jwe


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError(
            Code.TOKEN_MISSING, "an attestation token is required (Authorization: Bearer)", where="authorization"
        )
    return token.strip()


def _audit(result: str, key_id: str, version: int | None, workload: str | None, code: str | None) -> None:
    record = {
        "event": "release",
        "result": result,
        "key": key_id,
        "version": version,
        "workload": workload,
        "code": code,
    }
    audit.info(json.dumps(record, sort_keys=True))
