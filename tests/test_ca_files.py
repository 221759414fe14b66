"""A CA bundle that is missing or holds no certificate is bad input (exit 2, naming the file) for every
command that takes one: clients, servers and the operator, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from processes import run_teeplane

from teeplane.errors import InputError
from teeplane.tls import CertificateAuthority, trusting


def test_trusting_loads_a_bundle_and_names_a_bad_one(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.crt"
    bundle.write_bytes(CertificateAuthority.generate("services").cert_pem)
    assert trusting(None) is True
    assert trusting(bundle) is not True
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(InputError, match=re.escape(f"CA file {tmp_path / 'junk.pem'} holds no PEM certificate")):
        trusting(tmp_path / "junk.pem")
    with pytest.raises(InputError, match=r"cannot read CA file .*gone\.pem: No such file"):
        trusting(tmp_path / "gone.pem")


@pytest.mark.parametrize(
    "command",
    [
        ["keys", "--ca-file", "{ca}", "list"],
        ["agent", "attest", "--ras", "https://ras.invalid", "--eps", "http://eps.invalid", "--namespace", "n",
         "--name", "w", "--ca-file", "{ca}"],
        ["verify", "https://eps.invalid", "--ca-file", "{ca}"],
        ["baseline", "fetch", "sha256:" + "0" * 64, "--bgs", "https://bgs.invalid", "-o", "out.json",
         "--ca-file", "{ca}"],
        ["tks", "serve", "--etcd", "127.0.0.1:9", "--admin-token-file", "token", "--kek-file", "kek",
         "--ras-url", "https://ras.invalid", "--ca-file", "{ca}"],
        ["ras", "serve", "--state", "ras", "--admin-token-file", "token", "--pcs-url", "https://pcs.invalid",
         "--pcs-ca-file", "{ca}"],
    ],
    ids=lambda command: " ".join(command[:2]),
)  # fmt: skip
def test_every_command_refuses_a_ca_file_without_certificates(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "token").write_text("t\n")
    (tmp_path / "kek").write_bytes(bytes(32))
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    done = run_teeplane(*(arg.format(ca=junk) for arg in command), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{junk} holds no PEM certificate" in done.stdout + done.stderr.replace("\n", "")
    assert "Traceback" not in done.stderr
