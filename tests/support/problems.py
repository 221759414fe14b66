"""What every TEEPlane HTTP answer must be under fuzzing: never a 5xx, and every error an RFC 9457
problem+json body with a stable string `code` and the status it was sent with."""

from __future__ import annotations

from schemathesis.core.transport import Response

from teeplane.http import PROBLEM_JSON


def check_no_5xx_and_problem_json(response: Response) -> None:
    """No 5xx; an error is problem+json with a string `code`."""
    assert response.status_code < 500, f"{response.status_code}: {response.text[:2000]}"
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.split(";")[0].strip() == PROBLEM_JSON, f"{response.status_code} as {content_type!r}"
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("code"), str), body
    assert body.get("status") == response.status_code, body
