#!/usr/bin/env bash
# Build a pinned kubeconform from its Go module, and generate the strict JSON schemas it validates
# against offline (kubeconform cannot download them here): every kind of the Kubernetes OpenAPI
# (api/openapi-spec/swagger.json in the k8s.io/kubernetes module) and the prometheus-operator
# ServiceMonitor CRD, converted by hack/jsonschemas.py. Both go into a cache outside the
# repository, keyed by version (the schemas also by the converter's hash). Prints two lines: the
# directory holding kubeconform, then the schema directory. Later runs reuse the cache.
# The chart's own CRDs change with the repository: convert them per run with
#   python3 hack/jsonschemas.py crd OUT_DIR charts/teeplane/crds/*.yaml
#   KUBECONFORM_VERSION          (default below)
#   KUBE_VERSION                 (default below; as in hack/kube.sh)
#   PROMETHEUS_OPERATOR_VERSION  (default below)
#   TEEPLANE_CACHE               (default: ${XDG_CACHE_HOME:-~/.cache}/teeplane)
# Needs Go, the Go module proxy, and python3 with PyYAML (the repository's virtualenv has it).
set -euo pipefail
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"
KUBE_VERSION="${KUBE_VERSION:-v1.33.13}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
CACHE="${TEEPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/teeplane}"
converter="$(cd "$(dirname "$0")" && pwd)/jsonschemas.py"
converter_hash="$(sha256sum "$converter" | cut -c1-12)"
bin_out="$CACHE/kubeconform-$KUBECONFORM_VERSION"
schema_out="$CACHE/kubeconform-schemas-kubernetes-$KUBE_VERSION-prometheus-operator-$PROMETHEUS_OPERATOR_VERSION-$converter_hash"

bin_cached() {
  [ -x "$bin_out/kubeconform" ] && [ "$("$bin_out/kubeconform" -v 2>/dev/null)" = "$KUBECONFORM_VERSION" ]
}
schemas_cached() {
  [ -f "$schema_out/deployment-apps-v1.json" ] && [ -f "$schema_out/servicemonitor-monitoring-v1.json" ]
}
if bin_cached && schemas_cached; then
  echo "$bin_out"
  echo "$schema_out"
  exit 0
fi
command -v go >/dev/null || { echo "hack/kubeconform.sh needs Go for kubeconform $KUBECONFORM_VERSION" >&2; exit 2; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
mkdir -p "$CACHE"
work="$(mktemp -d)"
# Per-run temporary output dirs, so that two concurrent runs cannot mix their files.
bin_tmp="$bin_out.tmp.$$" schema_tmp="$schema_out.tmp.$$"
trap 'rm -rf "$work" "$bin_tmp" "$schema_tmp"' EXIT

if ! bin_cached; then
  echo "building kubeconform $KUBECONFORM_VERSION into $bin_out" >&2
  start=$SECONDS
  mkdir -p "$bin_tmp"
  # No replace directives: `go install module@version` builds it as released (its version is a
  # main-package variable that the release build stamps).
  GOBIN="$bin_tmp" nice -n 10 go install -trimpath -ldflags "-s -w -X main.version=$KUBECONFORM_VERSION" \
    "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" >&2
  rm -rf "$bin_out" && mv "$bin_tmp" "$bin_out"
  bin_cached || { echo "built kubeconform does not report $KUBECONFORM_VERSION" >&2; exit 1; }
  echo "built kubeconform $KUBECONFORM_VERSION in $((SECONDS - start))s" >&2
fi

if ! schemas_cached; then
  echo "generating JSON schemas into $schema_out" >&2
  module_dir() {  # the extracted module zip of $1@$2, from the Go module cache
    (cd "$work" && go mod download -json "$1@$2") | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p'
  }
  (cd "$work" && go mod init teeplane.io/hack/kubeconform >/dev/null 2>&1)
  kube_dir="$(module_dir k8s.io/kubernetes "$KUBE_VERSION")"
  operator_dir="$(module_dir github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION")"
  python3 "$converter" openapi "$kube_dir/api/openapi-spec/swagger.json" "$schema_tmp"
  python3 "$converter" crd "$schema_tmp" \
    "$operator_dir/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
  rm -rf "$schema_out" && mv "$schema_tmp" "$schema_out"
  schemas_cached || { echo "no Deployment or ServiceMonitor schema in $schema_out" >&2; exit 1; }
fi
echo "$bin_out"
echo "$schema_out"
