"""Fixtures of the Trusted Key Service tests: a real SoftHSM2 token for the PKCS#11 KEK.

SoftHSM2 reads `SOFTHSM2_CONF` once, when python-pkcs11 first loads and initialises the module in
this process, so there is one token directory per test session: `softhsm` creates it (with two
tokens) and points `SOFTHSM2_CONF` at it before any test touches the module. Tests use their own
key labels (`kek_label`) so they do not depend on each other.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from teeplane.tks.kek import DEFAULT_PKCS11_MODULE


@dataclass(frozen=True)
class SoftHsm:
    """A SoftHSM2 token directory: `token` is the one tests log in to; nobody logs in to `idle_token`."""

    conf: Path
    module: str
    token: str
    idle_token: str
    user_pin: str
    so_pin: str


def _init_token(util: str, conf: Path, label: str, so_pin: str, user_pin: str) -> None:
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", user_pin],
        env={"SOFTHSM2_CONF": str(conf), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A fresh SoftHSM2 token directory, with `SOFTHSM2_CONF` set for this process."""
    util = shutil.which("softhsm2-util")
    if util is None or not Path(DEFAULT_PKCS11_MODULE).is_file():
        pytest.fail(
            f"SoftHSM2 is not installed (softhsm2-util or {DEFAULT_PKCS11_MODULE} missing): "
            "`apt-get install -y softhsm2`, or run hack/test.sh, which installs it"
        )
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    hsm = SoftHsm(conf, DEFAULT_PKCS11_MODULE, "teeplane-test", "teeplane-idle", "4711-user", "0815-so")
    _init_token(util, conf, hsm.token, hsm.so_pin, hsm.user_pin)
    _init_token(util, conf, hsm.idle_token, hsm.so_pin, hsm.user_pin)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))
        yield hsm


@pytest.fixture
def kek_label() -> str:
    """A key label no other test uses."""
    return f"kek-{uuid.uuid4().hex[:12]}"
