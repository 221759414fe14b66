#!/usr/bin/env bash
# A local Kubernetes control plane for tests and development, with no containers and no root:
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler from the pinned builds
# (hack/etcd.sh, hack/kube.sh), on free loopback ports, plus kwok, which plays the kubelet for a
# few fake Nodes so that Pods are scheduled and reported Running (nothing actually runs).
#
#   hack/cluster.sh up            start (or reuse, when it already runs) and print the kubeconfig path
#   hack/cluster.sh down [--purge] stop every process it started; --purge also deletes the state dir
#   hack/cluster.sh env           print `export KUBECONFIG=...`
#   hack/cluster.sh status        show each component, its pid and whether it runs
#
#   TEEPLANE_CLUSTER_DIR  state: PKI, kubeconfigs, etcd data, pid files, one log per component
#                         (default: $TEEPLANE_CACHE/cluster)
#   TEEPLANE_CACHE        where hack/etcd.sh and hack/kube.sh cache their builds
#                         (default: ${XDG_CACHE_HOME:-~/.cache}/teeplane)
#   KUBE_VERSION, KWOK_VERSION, ETCD_VERSION  passed on to the build scripts
#   CLUSTER_TIMEOUT       seconds to wait for each component to become ready (default 120)
#
# The fake Nodes (all labelled type=kwok, katacontainers.io/kata-runtime=true):
#   kwok-tdx-0    teeplane.io/tee=tdx
#   kwok-snp-0    teeplane.io/tee=snp
#   kwok-plain-0  no TEE
# and RuntimeClasses kata-qemu-tdx, kata-qemu-snp, kata-qemu-coco-dev scheduling onto them,
# as kata-deploy would install on a real cluster.
#
# A second `up` while everything runs only checks it; an `up` after `down` (or after a crash)
# restarts the same cluster (same PKI and etcd data) on new ports. The stdout of `up` is the
# kubeconfig path alone; progress goes to stderr.
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${TEEPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/teeplane}"
STATE="$(realpath -m "${TEEPLANE_CLUSTER_DIR:-$CACHE/cluster}")"
TIMEOUT="${CLUSTER_TIMEOUT:-120}"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1  # the first address of SERVICE_CIDR
PKI_LAYOUT=1  # bump when make_pki makes different files

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: $*" >&2; exit 1; }

# pid of a component that runs and is ours (its command line names the state dir), else nothing.
running_pid() {
  local pid
  pid="$(cat "$STATE/run/$1.pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$STATE/" || return 1
  # A zombie (exited, not yet reaped) is not running.
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  echo "$pid"
}

any_running() {
  local c
  for c in "$@"; do running_pid "$c" >/dev/null && return 0; done
  return 1
}

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do running_pid "$c" >/dev/null || return 1; done
}

api() {  # api METHOD PATH [curl args...]: a request as the admin, printing the body
  local method="$1" path="$2"; shift 2
  # shellcheck disable=SC1091
  source "$STATE/run/ports"
  curl -sS --fail-with-body --max-time 10 --cacert "$STATE/pki/ca.crt" --cert "$STATE/pki/admin.crt" \
    --key "$STATE/pki/admin.key" -X "$method" "https://127.0.0.1:$APISERVER_PORT$path" "$@"
}

wait_for() {  # wait_for WHAT COMPONENT COMMAND...: retry COMMAND until it succeeds
  local what="$1" component="$2" deadline=$((SECONDS + TIMEOUT)); shift 2
  until "$@" >/dev/null 2>&1; do
    if [ -n "$component" ] && ! running_pid "$component" >/dev/null; then
      tail -n 30 "$STATE/logs/$component.log" >&2 || true
      die "$component exited while waiting for $what (log: $STATE/logs/$component.log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      [ -z "$component" ] || tail -n 30 "$STATE/logs/$component.log" >&2 || true
      die "timed out after ${TIMEOUT}s waiting for $what"
    fi
    sleep 0.2
  done
}

healthz() {  # healthz PORT: a component's own HTTPS /healthz (always allowed without credentials)
  curl -sSfk --max-time 5 "https://127.0.0.1:$1/healthz"
}

start() {  # start COMPONENT BINARY ARGS...: run detached in its own session, logging to its file
  local name="$1"; shift
  : > "$STATE/logs/$name.log"
  # setsid: its own session, so it outlives this script and ^C in the shell that ran `up`.
  # 9>&-: not holding the state dir's lock.
  setsid "$@" < /dev/null >> "$STATE/logs/$name.log" 2>&1 9>&- &
  echo $! > "$STATE/run/$name.pid"
}

stop() {  # stop COMPONENT...: TERM them together, KILL any left after 15s
  local c pid pids=() i
  for c in "$@"; do
    if pid="$(running_pid "$c")"; then
      log "stopping $c"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for i in $(seq 150); do
    any_running "$@" || break
    for c in "$@"; do
      if [ "$i" -eq 150 ] && pid="$(running_pid "$c")"; then
        log "$c ($pid) ignored SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
    sleep 0.1
  done
  for c in "$@"; do rm -f "$STATE/run/$c.pid"; done
  STOPPED+=("${pids[@]}")
}

free_ports() {  # free_ports N: N distinct free loopback ports, holding every socket until all are picked
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# --- PKI --------------------------------------------------------------------------------------

make_pki() {
  local pki="$STATE/pki"
  # .complete names the layout; an older one (or a half-written one) is made anew.
  [ "$(cat "$pki/.complete" 2>/dev/null)" = "$PKI_LAYOUT" ] && return 0
  log "generating PKI in $pki"
  rm -rf "$pki" && mkdir -p "$pki" && chmod 700 "$pki"
  (
    cd "$pki"
    ca() {  # ca NAME COMMON-NAME
      openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null
      openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1.crt" 2>/dev/null
    }
    leaf() {  # leaf CA NAME SUBJECT EXTENSIONS
      openssl ecparam -name prime256v1 -genkey -noout -out "$2.key" 2>/dev/null
      openssl req -new -key "$2.key" -subj "$3" 2>/dev/null |
        openssl x509 -req -CA "$1.crt" -CAkey "$1.key" -set_serial "0x$(openssl rand -hex 16)" -sha256 \
          -days 3650 -extfile <(printf '%s\n' "$4") -out "$2.crt" 2>/dev/null
    }
    server="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$KUBERNETES_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    client="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
    ca ca teeplane-test-cluster-ca
    leaf ca apiserver "/CN=kube-apiserver" "$server"
    leaf ca admin "/O=system:masters/CN=admin" "$client"
    leaf ca kube-controller-manager "/CN=system:kube-controller-manager" "$client"
    leaf ca kube-scheduler "/CN=system:kube-scheduler" "$client"
    leaf ca kwok "/O=system:masters/CN=kwok" "$client"
    # The front proxy (aggregation layer) has a CA of its own, as kubeadm sets it up; without it
    # the controller manager and scheduler log an error every few seconds.
    ca front-proxy-ca teeplane-test-front-proxy-ca
    leaf front-proxy-ca front-proxy-client "/CN=front-proxy-client" "$client"
    # Service-account tokens: RS256, which every client library verifies.
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub
    chmod 600 ./*.key
    echo "$PKI_LAYOUT" > .complete
  )
}

kubeconfig() {  # kubeconfig USER FILE: a kubeconfig for the client certificate pki/USER.crt
  local user="$1" file="$2"
  # shellcheck disable=SC1091
  source "$STATE/run/ports"
  cat > "$file.tmp" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: teeplane-test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$STATE/pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$STATE/pki/$user.crt")
    client-key-data: $(base64 -w0 "$STATE/pki/$user.key")
contexts:
- name: teeplane-test
  context:
    cluster: teeplane-test
    user: $user
current-context: teeplane-test
YAML
  chmod 600 "$file.tmp" && mv "$file.tmp" "$file"
}

# --- the fake nodes ----------------------------------------------------------------------------

node_json() {  # node_json NAME [TEE]
  local tee=""
  [ -z "${2:-}" ] || tee=",\"teeplane.io/tee\":\"$2\""
  cat <<JSON
{"apiVersion":"v1","kind":"Node","metadata":{"name":"$1",
 "annotations":{"node.alpha.kubernetes.io/ttl":"0","kwok.x-k8s.io/node":"fake"},
 "labels":{"type":"kwok","kubernetes.io/hostname":"$1","kubernetes.io/os":"linux","kubernetes.io/arch":"amd64",
  "node-role.kubernetes.io/worker":"","katacontainers.io/kata-runtime":"true"$tee}},
 "status":{"allocatable":{"cpu":"32","memory":"256Gi","pods":"110"},"capacity":{"cpu":"32","memory":"256Gi","pods":"110"}}}
JSON
}

runtime_class_json() {  # runtime_class_json NAME SELECTOR-LABEL SELECTOR-VALUE
  cat <<JSON
{"apiVersion":"node.k8s.io/v1","kind":"RuntimeClass","metadata":{"name":"$1"},"handler":"$1",
 "scheduling":{"nodeSelector":{"$2":"$3"}}}
JSON
}

create() {  # create PATH JSON: POST, accepting "already exists"
  local out
  if ! out="$(api POST "$1" -H 'Content-Type: application/json' -d "$2" 2>&1)"; then
    grep -Eq '"reason": ?"AlreadyExists"' <<<"$out" || die "creating ${1##*/} failed: $out"
  fi
}

nodes_ready() {
  local name
  for name in kwok-tdx-0 kwok-snp-0 kwok-plain-0; do
    api GET "/api/v1/nodes/$name" | tr -d ' \n' | grep -q '"type":"Ready","status":"True"' || return 1
  done
}

# --- commands ----------------------------------------------------------------------------------

up_failed() {
  local rc=$?
  [ $rc -eq 0 ] || cmd_down >/dev/null 2>&1
  exit $rc
}

cmd_up() {
  mkdir -p "$STATE/run" "$STATE/logs"
  if all_running && api GET /readyz >/dev/null 2>&1; then
    log "already running (state: $STATE)"
    echo "$STATE/kubeconfig"
    return 0
  fi
  # Partly running (a crash, a killed test): stop what is left and start again on new ports.
  cmd_down >/dev/null
  # A failed `up` leaves nothing running (the logs stay).
  trap up_failed EXIT

  local etcd_dir kube_dir kwok_dir began=$SECONDS
  etcd_dir="$("$HACK/etcd.sh" | tail -n1)"
  { read -r kube_dir; read -r kwok_dir; } < <("$HACK/kube.sh")
  if ! [ -x "$etcd_dir/etcd" ] || ! [ -x "${kube_dir:-}/kube-apiserver" ] || ! [ -x "${kwok_dir:-}/kwok" ]; then
    die "missing binaries (etcd: $etcd_dir, kubernetes: $kube_dir, kwok: ${kwok_dir:-})"
  fi
  make_pki
  local pki="$STATE/pki" ports
  read -r -a ports <<<"$(free_ports 6)"
  cat > "$STATE/run/ports" <<PORTS
ETCD_CLIENT_PORT=${ports[0]}
ETCD_PEER_PORT=${ports[1]}
APISERVER_PORT=${ports[2]}
CONTROLLER_MANAGER_PORT=${ports[3]}
SCHEDULER_PORT=${ports[4]}
KWOK_PORT=${ports[5]}
PORTS
  # shellcheck disable=SC1091
  source "$STATE/run/ports"
  kubeconfig admin "$STATE/kubeconfig"
  for user in kube-controller-manager kube-scheduler kwok; do kubeconfig "$user" "$STATE/run/$user.kubeconfig"; done

  log "starting etcd on 127.0.0.1:$ETCD_CLIENT_PORT"
  mkdir -p "$STATE/etcd"
  start etcd "$etcd_dir/etcd" --name default --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn --unsafe-no-fsync
  wait_for "etcd" etcd curl -sSf --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health"

  log "starting kube-apiserver on https://127.0.0.1:$APISERVER_PORT"
  mkdir -p "$STATE/run/kube-apiserver"
  start kube-apiserver "$kube_dir/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --cert-dir "$STATE/run/kube-apiserver" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --authorization-mode Node,RBAC --allow-privileged=true --profiling=false \
    --endpoint-reconciler-type none
  wait_for "kube-apiserver /readyz" kube-apiserver api GET /readyz

  log "starting kube-controller-manager, kube-scheduler and kwok"
  mkdir -p "$STATE/run/kube-controller-manager" "$STATE/run/kube-scheduler" "$STATE/run/kwok-home"
  local kcm_kc="$STATE/run/kube-controller-manager.kubeconfig" sched_kc="$STATE/run/kube-scheduler.kubeconfig"
  start kube-controller-manager "$kube_dir/kube-controller-manager" \
    --kubeconfig "$kcm_kc" --authentication-kubeconfig "$kcm_kc" --authorization-kubeconfig "$kcm_kc" \
    --bind-address 127.0.0.1 --secure-port "$CONTROLLER_MANAGER_PORT" --cert-dir "$STATE/run/kube-controller-manager" \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false
  start kube-scheduler "$kube_dir/kube-scheduler" \
    --kubeconfig "$sched_kc" --authentication-kubeconfig "$sched_kc" --authorization-kubeconfig "$sched_kc" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false --profiling=false
  # kwok always reads ~/.kwok/kwok.yaml when it exists; its own HOME keeps a developer's out.
  HOME="$STATE/run/kwok-home" start kwok "$kwok_dir/kwok" \
    --kubeconfig "$STATE/run/kwok.kubeconfig" \
    --manage-all-nodes=false --manage-nodes-with-label-selector type=kwok \
    --node-ip 127.0.0.1 --server-address "127.0.0.1:$KWOK_PORT" --node-lease-duration-seconds 40 \
    --cidr 10.244.0.1/16

  for name in tdx snp; do create /api/v1/nodes "$(node_json "kwok-$name-0" "$name")"; done
  create /api/v1/nodes "$(node_json kwok-plain-0)"
  create /apis/node.k8s.io/v1/runtimeclasses "$(runtime_class_json kata-qemu-tdx teeplane.io/tee tdx)"
  create /apis/node.k8s.io/v1/runtimeclasses "$(runtime_class_json kata-qemu-snp teeplane.io/tee snp)"
  create /apis/node.k8s.io/v1/runtimeclasses \
    "$(runtime_class_json kata-qemu-coco-dev katacontainers.io/kata-runtime true)"

  wait_for "kube-controller-manager" kube-controller-manager healthz "$CONTROLLER_MANAGER_PORT"
  wait_for "kube-scheduler" kube-scheduler healthz "$SCHEDULER_PORT"
  wait_for "kwok" kwok curl -sSf --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz"
  wait_for "the kwok nodes to be Ready" kwok nodes_ready
  # Pods are refused until the namespace's default ServiceAccount exists.
  wait_for "the default ServiceAccount" kube-controller-manager api GET /api/v1/namespaces/default/serviceaccounts/default
  log "up in $((SECONDS - began))s; export KUBECONFIG=$STATE/kubeconfig"
  echo "$STATE/kubeconfig"
}

cmd_down() {
  [ -d "$STATE/run" ] || return 0
  STOPPED=()
  # Clients first, etcd last.
  stop kwok kube-scheduler kube-controller-manager
  stop kube-apiserver
  stop etcd
  # They are not our children: each stays a zombie until init reaps it. Give init a moment, so
  # that `down && pgrep ...` finds nothing.
  local pid i
  for pid in "${STOPPED[@]}"; do
    for i in $(seq 50); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
  done
  if [ "${1:-}" = --purge ]; then
    rm -rf "$STATE"
  fi
}

cmd_status() {
  local c pid rc=0
  for c in "${COMPONENTS[@]}"; do
    if pid="$(running_pid "$c")"; then
      printf '%-24s running  pid %s\n' "$c" "$pid"
    else
      printf '%-24s stopped\n' "$c"; rc=3
    fi
  done
  if [ -f "$STATE/run/ports" ] && api GET /readyz >/dev/null 2>&1; then
    # shellcheck disable=SC1091
    source "$STATE/run/ports"
    echo "api server ready at https://127.0.0.1:$APISERVER_PORT (KUBECONFIG=$STATE/kubeconfig)"
  else
    echo "api server not ready"; rc=3
  fi
  return $rc
}

lock() {  # one `up` or `down` at a time per state dir
  mkdir -p "$STATE"
  exec 9> "$STATE/.lock"
  flock 9
}

case "${1:-}" in
  up) lock; cmd_up ;;
  down) shift; lock; cmd_down "$@" ;;
  env) echo "export KUBECONFIG=$STATE/kubeconfig" ;;
  status) cmd_status ;;
  *) echo "usage: hack/cluster.sh up|down [--purge]|env|status" >&2; exit 2 ;;
esac
