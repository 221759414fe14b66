#!/usr/bin/env bash
# The main job: attest a simulated TD end to end (installs TEEPlane into .venv on first run).
source "$(dirname "$0")/env.sh"
exec teeplane demo "$@"
