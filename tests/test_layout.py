"""The repository layout maps onto one `teeplane` namespace without shadowing anything."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PARTS = {"teeplane": "teeplane", "attestation": "teeplane.attestation", "baseline": "teeplane.baseline",
         "tks": "teeplane.tks", "operator": "teeplane.operator"}  # fmt: skip


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for folder, name in PARTS.items():
        assert config["package-dir"][name] == folder
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((name, *relative)))
    assert found == listed


def test_installed_teeplane_shadows_no_standard_library_module() -> None:
    """From outside the repository, `operator` is the standard library's and the parts live under teeplane."""
    code = (
        "import operator, importlib.util, teeplane.operator, teeplane.attestation;"
        "assert hasattr(operator, 'itemgetter');"
        "assert importlib.util.find_spec('attestation') is None;"
        "print(teeplane.operator.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "teeplane.operator"


def test_console_script_runs() -> None:
    """The installed `teeplane` entry point starts and answers --version."""
    script = Path(sys.executable).parent / "teeplane"
    out = subprocess.run([str(script), "--version"], cwd="/", capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.startswith("teeplane "), out.stderr
