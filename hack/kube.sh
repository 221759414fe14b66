#!/usr/bin/env bash
# Build pinned Kubernetes control-plane binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler) and kwok from their Go modules into a cache outside the repository, keyed by
# version. Prints two lines: the directory holding the Kubernetes binaries, then the one holding
# kwok. Later runs reuse the cache when each binary's --version matches.
#   KUBE_VERSION     (default below; within one minor of the kubectl the tests use)
#   KWOK_VERSION     (default below; a kwok release built against the same Kubernetes minor)
#   TEEPLANE_CACHE   (default: ${XDG_CACHE_HOME:-~/.cache}/teeplane)
# Needs Go (GOTOOLCHAIN=local) and the Go module proxy. On 2 CPUs the first Kubernetes build
# takes tens of minutes; it runs under `nice` so it yields to other work on the machine.
set -euo pipefail
KUBE_VERSION="${KUBE_VERSION:-v1.33.13}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
CACHE="${TEEPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/teeplane}"
kube_out="$CACHE/kubernetes-$KUBE_VERSION"
kwok_out="$CACHE/kwok-$KWOK_VERSION"
KUBE_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

kube_cached() {
  local bin
  for bin in "${KUBE_BINARIES[@]}"; do
    [ -x "$kube_out/$bin" ] || return 1
    "$kube_out/$bin" --version 2>/dev/null | grep -qx "Kubernetes $KUBE_VERSION" || return 1
  done
}
kwok_cached() {
  [ -x "$kwok_out/kwok" ] && "$kwok_out/kwok" --version 2>/dev/null | grep -q "kwok version $KWOK_VERSION "
}

if kube_cached && kwok_cached; then
  echo "$kube_out"
  echo "$kwok_out"
  exit 0
fi
command -v go >/dev/null || { echo "hack/kube.sh needs Go to build Kubernetes $KUBE_VERSION and kwok $KWOK_VERSION" >&2; exit 2; }
export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0
mkdir -p "$CACHE"
work="$(mktemp -d)"
# Per-run temporary output dirs, so that two concurrent builds cannot mix their files.
kube_tmp="$kube_out.tmp.$$" kwok_tmp="$kwok_out.tmp.$$"
trap 'rm -rf "$work" "$kube_tmp" "$kwok_tmp"' EXIT

if ! kube_cached; then
  # k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, ...) at v0.0.0
  # and replaces them with ./staging directories, which a dependent module cannot see. A wrapper
  # module replaces each one listed in that replace block with its published v0.<minor>.<patch>.
  minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  staging_version="v0.${KUBE_VERSION#v1.}"
  (cd "$work" && go mod init teeplane.io/hack/kube >/dev/null 2>&1)
  info="$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION")"
  upstream_mod="$(sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p' <<<"$info")"
  build_date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${upstream_mod%.mod}.info")"
  staging="$(sed -n 's#^\s*\(k8s\.io/[^ ]*\) => \./staging/src/.*#\1#p' "$upstream_mod")"
  [ -n "$staging" ] || { echo "no staging replace block in $upstream_mod" >&2; exit 1; }
  {
    printf 'module teeplane.io/hack/kube\n\ngo 1.24.0\n\n'
    # As when Kubernetes is the main module (its go.mod sets the same).
    printf 'godebug default=go1.24\n\n'
    printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$KUBE_VERSION"
    for module in $staging; do printf '\t%s => %s %s\n' "$module" "$module" "$staging_version"; done
    printf ')\n'
  } > "$work/go.mod"
  cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  # The version stamps Kubernetes' own build (hack/lib/version.sh) sets, so --version and the
  # API server's /version report the release instead of v0.0.0-master.
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
  done
  echo "building Kubernetes $KUBE_VERSION (${KUBE_BINARIES[*]}) into $kube_out" >&2
  start=$SECONDS
  mkdir -p "$kube_tmp"
  (
    cd "$work"
    go mod tidy
    nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$kube_tmp/" \
      "${KUBE_BINARIES[@]/#/k8s.io/kubernetes/cmd/}"
  ) >&2
  rm -rf "$kube_out" && mv "$kube_tmp" "$kube_out"
  kube_cached || { echo "built Kubernetes binaries do not report $KUBE_VERSION" >&2; exit 1; }
  echo "built Kubernetes $KUBE_VERSION in $((SECONDS - start))s" >&2
fi

if ! kwok_cached; then
  # kwok's module has no replace directives, so `go install module@version` builds it as released.
  echo "building kwok $KWOK_VERSION into $kwok_out" >&2
  start=$SECONDS
  mkdir -p "$kwok_tmp"
  (
    cd "$work"
    GOBIN="$kwok_tmp" GOFLAGS=-buildvcs=false nice -n 10 go install -trimpath \
      -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  ) >&2
  rm -rf "$kwok_out" && mv "$kwok_tmp" "$kwok_out"
  kwok_cached || { echo "built kwok does not report $KWOK_VERSION" >&2; exit 1; }
  echo "built kwok $KWOK_VERSION in $((SECONDS - start))s" >&2
fi
echo "$kube_out"
echo "$kwok_out"
