"""The Key Broker's release decision over real attestation-result tokens, and the RAS JWKS cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc.jwk import ECKey

from teeplane.attestation.appraisal import Appraisal
from teeplane.attestation.errors import Code
from teeplane.attestation.keyring import KeyRing
from teeplane.attestation.reference import CHECK_REFERENCE
from teeplane.attestation.token import TokenError, Workload, build_claims, sign, verify_token
from teeplane.errors import RefusedError
from teeplane.tks.jwe import open_for_tee, wrap_for_tee
from teeplane.tks.jwks import JwksCache, JwksUnavailableError
from teeplane.tks.models import ReleasePolicy
from teeplane.tks.release import ReleaseCode, ReleaseGrant, ReleaseRefused, check_release

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ISSUER = "https://ras.teeplane.svc"
AUDIENCE = "https://tks.teeplane.svc"
BASELINE = "sha256:" + "1f" * 32
LEDGER = Workload("payments", "ledger", "ledger-7d9f-abcde")
TEE_PRIVATE = ECKey.generate_key("P-256")
TEE_KEY = TEE_PRIVATE.as_dict(private=False)
RING = KeyRing.generate()

Edit = Callable[[dict[str, Any]], object]


def _appraisal(*, reference_matched: bool = True, **fields: Any) -> Appraisal:
    defaults: dict[str, Any] = {"tee": "tdx", "tcb_status": "UpToDate", "measurements": {"mrtd": "ab" * 48}}
    appraisal = Appraisal(**(defaults | fields))
    if reference_matched:
        appraisal.passed(CHECK_REFERENCE, "MRTD")
    return appraisal


def _token(
    appraisal: Appraisal | None = None,
    *,
    ring: KeyRing = RING,
    edit: Edit | None = None,
    now: datetime = NOW,
    **overrides: Any,
) -> str:
    """A token RAS would sign; `edit` changes its claims before signing (claims RAS would not write)."""
    args: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "workload": LEDGER,
        "baseline_id": BASELINE,
        "tee_public_jwk": TEE_KEY,
        "now": now,
        "verifier_build": "teeplane 0.1.0",
    }
    claims = build_claims(appraisal or _appraisal(), **(args | overrides))
    if edit is not None:
        edit(claims)
    return sign(claims, ring)


def _claims(appraisal: Appraisal | None = None, **overrides: Any) -> dict[str, Any]:
    """Verified claims of a freshly signed token."""
    return verify_token(_token(appraisal, **overrides), RING.jwks(), audience=AUDIENCE, issuer=ISSUER, now=NOW)


def _policy(**fields: Any) -> ReleasePolicy:
    return ReleasePolicy(**({"workloads": ["payments/ledger"], "baselines": [BASELINE]} | fields))


def _release(
    claims: Mapping[str, Any], policy: ReleasePolicy | None = None, *, requested: int | None = None, latest: int = 3
) -> ReleaseGrant:
    return check_release(
        claims, policy or _policy(), key_id="ledger-db", requested_version=requested, latest_version=latest
    )


def _refused(code: ReleaseCode, where: str, call: Callable[[], object]) -> ReleaseRefused:
    with pytest.raises(ReleaseRefused) as caught:
        call()
    assert (caught.value.code, caught.value.where) == (code.value, where), str(caught.value)
    return caught.value


def _submod(claims: dict[str, Any]) -> dict[str, Any]:
    (submod,) = claims["submods"].values()
    result: dict[str, Any] = submod
    return result


# grants


def test_grant_names_the_latest_version_and_the_tee_key() -> None:
    grant = _release(_claims())
    assert grant == ReleaseGrant(key_id="ledger-db", version=3, tee_jwk=TEE_KEY, tee="tdx", workload="payments/ledger")


def test_grant_of_a_requested_version() -> None:
    assert _release(_claims(), requested=1).version == 1
    assert _release(_claims(), _policy(require_latest_version=True), requested=3).version == 3
    assert _release(_claims(), _policy(require_latest_version=True)).version == 3


def test_granted_key_opens_only_inside_the_tee() -> None:
    """The whole release: token, decision, JWE to `cnf.jwk`, opened with the TEE's private key."""
    grant = _release(_claims())
    wrapped = wrap_for_tee(b"data key", grant.tee_jwk, key_id=grant.key_id, version=grant.version)
    assert open_for_tee(wrapped, TEE_PRIVATE) == b"data key"


def test_warning_status_is_not_refused_by_itself() -> None:
    """A TCB status the policy lists makes the result a warning, which the tcb_statuses clause governs."""
    claims = _claims(_appraisal(tcb_status="SWHardeningNeeded"))
    assert _submod(claims)["ear.status"] == "warning"
    assert _release(claims, _policy(tcb_statuses=["UpToDate", "SWHardeningNeeded"])).version == 3


def test_any_baseline() -> None:
    assert _release(_claims(baseline_id="sha256:other"), _policy(baselines=[], any_baseline=True)).version == 3


def test_sev_snp_reports_no_tcb_status() -> None:
    snp = _appraisal(tee="snp", tcb_status=None, measurements={"measurement": "cd" * 48})
    assert _release(_claims(snp)).tee == "snp"


def test_simulated_evidence_when_the_policy_allows_it() -> None:
    """Simulation alone makes the status contraindicated; allow_simulated discounts exactly that."""
    claims = _claims(_appraisal(simulated=True))
    assert _submod(claims)["ear.status"] == "contraindicated"
    assert _release(claims, _policy(allow_simulated=True)).version == 3


# refusals, each naming the clause and the claim path


@pytest.mark.parametrize("workload", [Workload("payments", "other"), Workload("attacker", "ledger")])
def test_workload_not_allowed(workload: Workload) -> None:
    _refused(
        ReleaseCode.WORKLOAD_NOT_ALLOWED,
        "submods.tdx.teeplane.workload",
        lambda: _release(_claims(workload=workload)),
    )


def test_baseline_not_allowed() -> None:
    where = "submods.tdx.teeplane.baseline-id"
    _refused(ReleaseCode.BASELINE_NOT_ALLOWED, where, lambda: _release(_claims(baseline_id="sha256:other")))
    _refused(ReleaseCode.BASELINE_NOT_ALLOWED, where, lambda: _release(_claims(baseline_id=None)))
    anything = _policy(baselines=[], any_baseline=True)
    _refused(ReleaseCode.BASELINE_NOT_ALLOWED, where, lambda: _release(_claims(baseline_id=None), anything))


@pytest.mark.parametrize("any_baseline", [False, True])
def test_unappraised_code_matches_no_baseline(any_baseline: bool) -> None:
    claims = _claims(_appraisal(reference_matched=False))
    assert _submod(claims)["ear.status"] == "warning"
    _refused(
        ReleaseCode.BASELINE_NOT_ALLOWED,
        "submods.tdx.ear.trustworthiness-vector.executables",
        lambda: _release(claims, _policy(any_baseline=any_baseline)),
    )


def test_tee_not_allowed() -> None:
    _refused(ReleaseCode.TEE_NOT_ALLOWED, "submods.tdx", lambda: _release(_claims(), _policy(tee_types=["snp"])))

    def rename(claims: dict[str, Any]) -> None:
        claims["submods"] = {"sim": claims["submods"]["tdx"]}

    _refused(ReleaseCode.TEE_NOT_ALLOWED, "submods.sim", lambda: _release(_claims(edit=rename)))


@pytest.mark.parametrize("tcb_status", ["SWHardeningNeeded", "OutOfDate", "Revoked", "SomethingNew", None])
def test_tcb_status_not_allowed(tcb_status: str | None) -> None:
    """Statuses the policy does not list, and a TDX token without any, are refused."""
    _refused(
        ReleaseCode.TCB_STATUS_NOT_ALLOWED,
        "submods.tdx.teeplane.tcb-status",
        lambda: _release(_claims(_appraisal(tcb_status=tcb_status))),
    )


def test_simulated_not_allowed() -> None:
    _refused(
        ReleaseCode.SIMULATED_NOT_ALLOWED,
        "submods.tdx.teeplane.simulated",
        lambda: _release(_claims(_appraisal(simulated=True))),
    )


@pytest.mark.parametrize("simulated", [False, True])
def test_replayed_evidence_is_always_refused(simulated: bool) -> None:
    claims = _claims(_appraisal(simulated=simulated), replayed=True)
    for policy in (_policy(), _policy(allow_simulated=True)):
        _refused(ReleaseCode.REPLAYED_EVIDENCE, "submods.tdx.teeplane.replayed", lambda p=policy: _release(claims, p))


def test_simulated_still_needs_an_allowed_tcb_status() -> None:
    _refused(
        ReleaseCode.TCB_STATUS_NOT_ALLOWED,
        "submods.tdx.teeplane.tcb-status",
        lambda: _release(_claims(_appraisal(simulated=True, tcb_status="OutOfDate")), _policy(allow_simulated=True)),
    )


@pytest.mark.parametrize("simulated", [False, True])
def test_debug_is_contraindicated_even_when_simulation_is_allowed(simulated: bool) -> None:
    claims = _claims(_appraisal(simulated=simulated, debug=True))
    _refused(
        ReleaseCode.STATUS_CONTRAINDICATED,
        "submods.tdx.ear.status",
        lambda: _release(claims, _policy(allow_simulated=True)),
    )


def test_contraindicated_status_with_an_affirming_vector() -> None:
    """A status RAS lowered for a reason the vector does not show (a policy refusal) is refused."""

    def contraindicate(claims: dict[str, Any]) -> None:
        _submod(claims)["ear.status"] = "contraindicated"

    _refused(
        ReleaseCode.STATUS_CONTRAINDICATED,
        "submods.tdx.ear.status",
        lambda: _release(_claims(edit=contraindicate), _policy(allow_simulated=True)),
    )


def test_version_unknown() -> None:
    for requested in (0, -1, 4):
        _refused(ReleaseCode.VERSION_UNKNOWN, "version", lambda r=requested: _release(_claims(), requested=r))


def test_version_not_latest() -> None:
    _refused(
        ReleaseCode.VERSION_NOT_LATEST,
        "version",
        lambda: _release(_claims(), _policy(require_latest_version=True), requested=2),
    )


def test_versions_are_checked_only_for_authorised_callers() -> None:
    _refused(
        ReleaseCode.WORKLOAD_NOT_ALLOWED,
        "submods.tdx.teeplane.workload",
        lambda: _release(_claims(workload=Workload("attacker", "x")), requested=99),
    )


def test_latest_version_must_exist() -> None:
    with pytest.raises(ValueError, match="latest_version"):
        _release(_claims(), latest=0)


_DELETE = object()


def _set(path: str, value: object) -> Edit:
    """An edit setting (or, for the value _DELETE, removing) a member of the submodule."""

    def edit(claims: dict[str, Any]) -> None:
        *parents, name = path.split("/")
        target = _submod(claims)
        for parent in parents:
            target = target[parent]
        if value is _DELETE:
            del target[name]
        else:
            target[name] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda c: c.pop("submods"), "submods"),
        (lambda c: c.update(submods={}), "submods"),
        (lambda c: c.update(submods=[]), "submods"),
        (lambda c: c["submods"].update(snp=_submod(c)), "submods"),
        (lambda c: c["submods"].update(tdx="affirming"), "submods.tdx"),
        (_set("teeplane.workload", _DELETE), "submods.tdx.teeplane.workload"),
        (_set("teeplane.workload", "payments/ledger"), "submods.tdx.teeplane.workload"),
        (_set("teeplane.workload/name", _DELETE), "submods.tdx.teeplane.workload.name"),
        (_set("teeplane.workload/namespace", 7), "submods.tdx.teeplane.workload.namespace"),
        (_set("teeplane.replayed", _DELETE), "submods.tdx.teeplane.replayed"),
        (_set("teeplane.replayed", 0), "submods.tdx.teeplane.replayed"),
        (_set("teeplane.simulated", "false"), "submods.tdx.teeplane.simulated"),
        (_set("teeplane.baseline-id", _DELETE), "submods.tdx.teeplane.baseline-id"),
        (_set("teeplane.tcb-status", ["UpToDate"]), "submods.tdx.teeplane.tcb-status"),
        (_set("ear.status", "fine"), "submods.tdx.ear.status"),
        (_set("ear.status", ["affirming"]), "submods.tdx.ear.status"),
        (_set("ear.status", _DELETE), "submods.tdx.ear.status"),
        (_set("ear.trustworthiness-vector", [2]), "submods.tdx.ear.trustworthiness-vector"),
        (_set("ear.trustworthiness-vector/hardware", True), "submods.tdx.ear.trustworthiness-vector"),
        (_set("ear.trustworthiness-vector/hardware", 2.0), "submods.tdx.ear.trustworthiness-vector"),
    ],
)
def test_claims_invalid(edit: Edit, where: str) -> None:
    error = _refused(ReleaseCode.CLAIMS_INVALID, where, lambda: _release(_claims(edit=edit)))
    assert isinstance(error, RefusedError) and error.http_status == 403 and error.exit_code == 1
    assert error.to_problem()["code"] == "release.claims_invalid"


def test_claims_without_a_tee_key() -> None:
    """check_release is pure and does not rely on verify_token having checked `cnf.jwk`."""
    claims = _claims()
    for cnf in (None, {}, {"jwk": "key"}):
        damaged = {k: v for k, v in claims.items() if k != "cnf"} | ({"cnf": cnf} if cnf is not None else {})
        _refused(ReleaseCode.CLAIMS_INVALID, "cnf.jwk", lambda d=damaged: _release(d))


# the JWKS cache


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Fetch:
    """RAS's JWKS endpoint as the cache sees it: the injected callable, counting calls."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self.calls = 0
        self.error: Exception | None = None
        self.document: dict[str, Any] | None = None
        self.delay = 0.0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.document if self.document is not None else self.ring.jwks()


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def fetch(ring: KeyRing) -> _Fetch:
    return _Fetch(ring)


@pytest.fixture
def cache(fetch: _Fetch, clock: _Clock) -> JwksCache:
    return JwksCache(fetch, clock=clock)


def _verify(cache: JwksCache, token: str) -> dict[str, Any]:
    return cache.verify(token, audience=AUDIENCE, issuer=ISSUER, now=NOW)


def _unknown_kid(cache: JwksCache, token: str) -> None:
    with pytest.raises(TokenError) as caught:
        _verify(cache, token)
    assert caught.value.code == Code.TOKEN_UNKNOWN_KID.value


def test_cache_fetches_once(cache: JwksCache, fetch: _Fetch, ring: KeyRing, clock: _Clock) -> None:
    token = _token(ring=ring)
    assert _verify(cache, token)["iss"] == ISSUER
    clock.now += 299
    assert _verify(cache, token)["iss"] == ISSUER
    assert fetch.calls == 1


def test_a_background_refresh_keeps_releases_off_the_fetch(
    cache: JwksCache, fetch: _Fetch, ring: KeyRing, clock: _Clock
) -> None:
    cache.refresh()  # what the service's refresher does at start
    token = _token(ring=ring)
    assert _verify(cache, token)["iss"] == ISSUER and fetch.calls == 1
    clock.now += cache.max_age / 2
    cache.refresh()  # and every max_age / 2: the copy never gets old enough for a release to fetch
    clock.now += cache.max_age / 2 + 1
    assert _verify(cache, token)["iss"] == ISSUER and fetch.calls == 2
    fetch.error = ConnectionError("RAS is down")
    clock.now += cache.max_age
    with pytest.raises(JwksUnavailableError):
        cache.refresh()


def test_refetch_when_ras_rotated(cache: JwksCache, fetch: _Fetch, ring: KeyRing, clock: _Clock) -> None:
    _verify(cache, _token(ring=ring))
    ring.rotate(NOW)
    clock.now += 10
    assert _verify(cache, _token(ring=ring))["iss"] == ISSUER
    assert fetch.calls == 2


def test_refetch_is_rate_limited(cache: JwksCache, fetch: _Fetch, ring: KeyRing, clock: _Clock) -> None:
    _verify(cache, _token(ring=ring))
    ring.rotate(NOW)
    rotated = _token(ring=ring)
    clock.now += 9.9
    _unknown_kid(cache, rotated)
    assert fetch.calls == 1
    clock.now += 0.1
    assert _verify(cache, rotated)["iss"] == ISSUER
    assert fetch.calls == 2


def test_made_up_key_ids_cost_one_fetch(cache: JwksCache, fetch: _Fetch, ring: KeyRing, clock: _Clock) -> None:
    """A key that is not in the refreshed JWKS is still refused, and more of them fetch nothing."""
    _verify(cache, _token(ring=ring))
    clock.now += 60
    for _ in range(5):
        _unknown_kid(cache, _token(ring=KeyRing.generate()))
        clock.now += 1
    assert fetch.calls == 2


def test_refresh_after_max_age(cache: JwksCache, fetch: _Fetch, ring: KeyRing, clock: _Clock) -> None:
    """A key RAS stopped publishing is honoured until the cached copy is max_age old, then refused."""
    old = _token(ring=ring)
    _verify(cache, old)
    ring.rotate(NOW)
    ring.prune(NOW + ring.max_token_lifetime)
    clock.now += 299.9
    assert _verify(cache, old)["iss"] == ISSUER
    assert fetch.calls == 1
    clock.now += 0.1
    _unknown_kid(cache, old)
    assert fetch.calls == 2


def test_other_refusals_do_not_refetch(cache: JwksCache, fetch: _Fetch, ring: KeyRing, clock: _Clock) -> None:
    expired = _token(ring=ring, now=NOW - timedelta(hours=1))
    clock.now += 60
    with pytest.raises(TokenError) as caught:
        _verify(cache, expired)
    assert caught.value.code == Code.TOKEN_EXPIRED.value
    assert fetch.calls == 1


def test_unreachable_ras_fails_closed(cache: JwksCache, fetch: _Fetch, ring: KeyRing, clock: _Clock) -> None:
    token = _token(ring=ring)
    fetch.error = ConnectionError("connection refused")
    with pytest.raises(JwksUnavailableError) as caught:
        _verify(cache, token)
    assert caught.value.code == "jwks.unavailable" and caught.value.http_status == 503
    assert isinstance(caught.value.__cause__, ConnectionError)
    clock.now += 5
    with pytest.raises(JwksUnavailableError):
        _verify(cache, token)
    assert fetch.calls == 1

    fetch.error = None
    clock.now += 5
    assert _verify(cache, token)["iss"] == ISSUER
    fetch.error = ConnectionError("connection refused")
    clock.now += 300
    with pytest.raises(JwksUnavailableError):
        _verify(cache, token)
    assert fetch.calls == 3


def test_failed_refetch_keeps_the_cached_keys(cache: JwksCache, fetch: _Fetch, ring: KeyRing, clock: _Clock) -> None:
    old = _token(ring=ring)
    _verify(cache, old)
    ring.rotate(NOW)
    fetch.error = TimeoutError("timed out")
    clock.now += 10
    with pytest.raises(JwksUnavailableError):
        _verify(cache, _token(ring=ring))
    assert _verify(cache, old)["iss"] == ISSUER
    assert fetch.calls == 2


@pytest.mark.parametrize("document", [{}, {"keys": "none"}, []])
def test_malformed_jwks_document(cache: JwksCache, fetch: _Fetch, ring: KeyRing, document: Any) -> None:
    fetch.document = document
    with pytest.raises(JwksUnavailableError, match="no keys list"):
        _verify(cache, _token(ring=ring))


def test_concurrent_misses_share_one_fetch(cache: JwksCache, fetch: _Fetch, ring: KeyRing, clock: _Clock) -> None:
    _verify(cache, _token(ring=ring))
    ring.rotate(NOW)
    rotated = _token(ring=ring)
    clock.now += 60
    fetch.delay = 0.05
    start = threading.Barrier(8)
    results: list[str] = []

    def worker() -> None:
        start.wait()
        results.append(_verify(cache, rotated)["iss"])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [ISSUER] * 8
    assert fetch.calls == 2


def test_cache_settings_are_checked(fetch: _Fetch) -> None:
    with pytest.raises(ValueError, match="min_refetch"):
        JwksCache(fetch, max_age=5, min_refetch=10)
    with pytest.raises(ValueError, match="min_refetch"):
        JwksCache(fetch, min_refetch=-1)
