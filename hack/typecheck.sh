#!/usr/bin/env bash
# mypy --strict over the one `teeplane` namespace. The folders map to subpackages
# (attestation/ -> teeplane.attestation, ...), so mypy reads them through a symlinked view.
source "$(dirname "$0")/env.sh"
view="$(mktemp -d)"
trap 'rm -rf "$view"' EXIT
mkdir -p "$view/teeplane"
for f in teeplane/*; do ln -s "$REPO/$f" "$view/teeplane/"; done
for part in attestation baseline tks operator; do ln -s "$REPO/$part" "$view/teeplane/$part"; done
cd "$view" && mypy --config-file "$REPO/pyproject.toml" -p teeplane
