#!/usr/bin/env bash
# The test command: lint, type check, then every test. Installs what it needs on first run.
source "$(dirname "$0")/env.sh"

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
hack/typecheck.sh
echo "== pytest"
pytest "$@"
