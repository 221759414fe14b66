#!/usr/bin/env bash
# Regenerate the reference docs: docs/cli.md, docs/api/*.openapi.json and the generated sections of
# docs/operator.md (see hack/docs.py). tests/test_docs.py fails when they are not current.
source "$(dirname "$0")/env.sh"
python hack/docs.py "$@"
