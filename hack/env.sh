# Sourced by hack/*.sh: a virtualenv with TEEPlane and its dev tools, created on first use.
# TEEPLANE_VENV overrides where it lives (default: .venv in the repository).
set -euo pipefail
# The repository root holds operator/, which would shadow the standard library's `operator`
# for any `python -m ...` run from here; Python >= 3.11 leaves the working directory off
# sys.path with this set.
export PYTHONSAFEPATH=1
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TEEPLANE_VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "TEEPlane needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 2
fi
stamp="$VENV/.teeplane-installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# Reinstall when pyproject.toml changes.
want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e "$REPO[dev]"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
cd "$REPO"
