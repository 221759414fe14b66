#!/usr/bin/env bash
# Build a pinned helm (v3) from its Go module into a cache outside the repository, keyed by
# version, and print the directory holding the binary. Later runs reuse the cache.
#   HELM_VERSION     (default below)
#   TEEPLANE_CACHE   (default: ${XDG_CACHE_HOME:-~/.cache}/teeplane)
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE="${TEEPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/teeplane}"
out="$CACHE/helm-$HELM_VERSION"

cached() {
  [ -x "$out/helm" ] && "$out/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"
}
if cached; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { echo "hack/helm.sh needs Go to build helm $HELM_VERSION" >&2; exit 2; }
mkdir -p "$CACHE"
tmp="$out.tmp.$$"  # per run, so that two concurrent builds cannot mix their files
trap 'rm -rf "$tmp"' EXIT
echo "building helm $HELM_VERSION into $out" >&2
start=$SECONDS
mkdir -p "$tmp"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# The stamps helm's Makefile sets: its version, and the Kubernetes version `helm template` and
# `helm lint` assume (1.<minor> of the k8s.io/client-go it requires), without which they assume v1.20.
helm_mod="$(cd "$tmp" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')"
kube_minor="$(sed -n 's/^\s*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$helm_mod")"
[ -n "$kube_minor" ] || { echo "no k8s.io/client-go requirement in $helm_mod" >&2; exit 1; }
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done
# helm's module has no replace directives, so `go install module@version` builds it as released.
GOBIN="$tmp" nice -n 10 go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
rm -rf "$out" && mv "$tmp" "$out"
cached || { echo "built helm does not report $HELM_VERSION" >&2; exit 1; }
echo "built helm $HELM_VERSION in $((SECONDS - start))s" >&2
echo "$out"
