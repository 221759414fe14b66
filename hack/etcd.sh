#!/usr/bin/env bash
# Build pinned etcd and etcdctl from their Go modules into a cache outside the repository,
# keyed by version, and print the directory holding the binaries. Later runs reuse the cache.
#   ETCD_VERSION     (default below)
#   TEEPLANE_CACHE   (default: ${XDG_CACHE_HOME:-~/.cache}/teeplane)
set -euo pipefail
ETCD_VERSION="${ETCD_VERSION:-v3.5.35}"
CACHE="${TEEPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/teeplane}"
out="$CACHE/etcd-$ETCD_VERSION"

if [ -x "$out/etcd" ] && [ -x "$out/etcdctl" ] && "$out/etcd" --version 2>/dev/null | grep -q "${ETCD_VERSION#v}"; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { echo "hack/etcd.sh needs Go to build etcd $ETCD_VERSION" >&2; exit 2; }

# etcd's modules carry replace directives, so `go install module@version` refuses them; a small
# wrapper module that requires them at one version builds the same binaries.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/go.mod" <<MOD
module teeplane.io/hack/etcd

go 1.22

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION
	go.etcd.io/etcd/etcdctl/v3 $ETCD_VERSION
	go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v2 ${ETCD_VERSION/v3/v2}
	go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/raft/v3 $ETCD_VERSION
)
MOD
cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
GO
mkdir -p "$out.tmp"
(
  cd "$work"
  export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
  go mod tidy >/dev/null 2>&1 || true
  go build -trimpath -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3
  go build -trimpath -o "$out.tmp/etcdctl" go.etcd.io/etcd/etcdctl/v3
) >&2
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
