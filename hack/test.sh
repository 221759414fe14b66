#!/usr/bin/env bash
# The test command: lint, type check, then every test. Installs what it needs on first run.
source "$(dirname "$0")/env.sh"

# Real parts the tests start: SoftHSM2 (a PKCS#11 token), etcd, and Kubernetes (kube-apiserver,
# controller manager, scheduler) with kwok; the binaries are built once into a cache, keyed by version,
# as are helm and kubeconform (with its offline JSON schemas) for the chart tests.
if ! command -v softhsm2-util >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq softhsm2) >/dev/null
  else
    echo "the tests need SoftHSM2: sudo apt-get install softhsm2" >&2
    exit 2
  fi
fi
hack/etcd.sh >/dev/null
hack/helm.sh >/dev/null
hack/kubeconform.sh >/dev/null
if [ -z "${TEEPLANE_KUBECONFIG:-}" ]; then  # else the tests use that existing cluster
  echo "== Kubernetes test binaries (the first build takes about 15 minutes)"
  hack/kube.sh >/dev/null
fi

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
hack/typecheck.sh
echo "== pytest"
pytest "$@"
