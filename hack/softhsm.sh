#!/usr/bin/env bash
# Create a SoftHSM2 token for development and tests in DIR, with its own SOFTHSM2_CONF and token
# directory there, and print the environment that points TEEPlane's PKCS#11 KEK at it:
#   eval "$(hack/softhsm.sh /tmp/teeplane-hsm)"
# Installs Debian's softhsm2 when it is missing and this runs as root; otherwise says what to do.
# The PINs are generated once, kept in DIR/user.pin and DIR/so.pin (mode 0600) and never printed.
# Rerunning with the same DIR and label reuses the token.
#   TOKEN_LABEL      (second argument; default teeplane)
#   SOFTHSM2_MODULE  (default /usr/lib/softhsm/libsofthsm2.so, Debian's path)
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: hack/softhsm.sh DIR [TOKEN_LABEL]" >&2
  exit 2
fi
mkdir -p "$1"
dir="$(cd "$1" && pwd)"
label="${2:-teeplane}"
module="${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"

if ! command -v softhsm2-util >/dev/null || [ ! -f "$module" ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "hack/softhsm.sh: SoftHSM2 is not installed (softhsm2-util or $module missing);" \
      "install Debian's softhsm2 package (sudo apt-get install -y softhsm2) and rerun" >&2
    exit 2
  fi
  echo "hack/softhsm.sh: installing softhsm2" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq softhsm2 >&2 || { apt-get update -qq >&2 && apt-get install -y -qq softhsm2 >&2; }
  if [ ! -f "$module" ]; then
    echo "hack/softhsm.sh: softhsm2 is installed but $module is missing; set SOFTHSM2_MODULE" >&2
    exit 2
  fi
fi

export SOFTHSM2_CONF="$dir/softhsm2.conf"
mkdir -p "$dir/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir/tokens" > "$SOFTHSM2_CONF"

umask 077
for pin in user so; do
  [ -s "$dir/$pin.pin" ] || od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$dir/$pin.pin"
done
if softhsm2-util --show-slots | sed -n 's/^[[:space:]]*Label:[[:space:]]*//p' | sed 's/[[:space:]]*$//' \
  | grep -Fxq -- "$label"; then
  echo "hack/softhsm.sh: token '$label' already exists in $dir/tokens" >&2
else
  softhsm2-util --init-token --free --label "$label" \
    --so-pin "$(cat "$dir/so.pin")" --pin "$(cat "$dir/user.pin")" >&2
fi

printf 'export SOFTHSM2_CONF=%q\n' "$SOFTHSM2_CONF"
printf 'export TEEPLANE_TKS_PKCS11_MODULE=%q\n' "$module"
printf 'export TEEPLANE_TKS_PKCS11_TOKEN=%q\n' "$label"
printf 'export TEEPLANE_TKS_PKCS11_PIN_FILE=%q\n' "$dir/user.pin"
