#!/usr/bin/env bash
# Starts a two-node Kubernetes cluster on this machine with berth as the nodes' runtime:
#
#   netns berth-cl-cp   etcd, kube-apiserver, kube-controller-manager, kube-scheduler (real TLS:
#                       one CA made here, client certificates, service-account keys), and the
#                       bridge br0 ($FABRIC.0/24) joining the nodes
#   netns berth-cl-nN   node N ($FABRIC.1N): berthd + kubelet + kube-proxy (iptables mode), pods on
#                       its own bridge cni0 in 10.216.N.0/24; routes to the other node's pod CIDR
#                       go straight to that node (host-gw)
#
# Nothing is added to the host's own network namespace: the nodes reach the local registry
# ($BERTH_TEST_REGISTRY, 127.0.0.1:5000) and the host reaches the API server (127.0.0.1:<port in
# $CL_DIR/api-port>) through netns-forward.py. Each node's cgroups live under a root of its own
# (/berth-cl-nN in every v1 hierarchy). Then:
#
#   KUBECONFIG=/var/lib/berth-cl/admin.kubeconfig /var/lib/berth-cl/bin/kubectl get nodes
#   e2e/cluster/test.sh; e2e/cluster/down.sh
#
# Binaries: hack/k8s/build.sh (Kubernetes v1.37.2 and etcd, built once and cached), berthd and
# berth-shim from $BERTHD's directory (default $CARGO_TARGET_DIR/debug or target/debug; cargo build first). A failed start
# removes everything it made (down.sh). Needs root; refuses to start over a running cluster.
source "$(dirname "$0")/lib.sh"
source "$CL_ROOT/e2e/cluster/pki.sh"
source "$CL_ROOT/e2e/cluster/node.sh"
source "$CL_ROOT/e2e/cluster/ctrd-node.sh"
[[ $EUID -eq 0 ]] || cl_die "up.sh needs root (namespaces, mounts, cgroups)"
for tool in openssl ip nsenter unshare python3 crictl curl jq flock containerd runc; do
  command -v "$tool" >/dev/null || cl_die "$tool not found (hack/install-deps.sh)"
done
[[ ! -e $CL_DIR ]] || cl_die "$CL_DIR exists: a cluster is up (or a run was interrupted): e2e/cluster/down.sh first"
ip netns list | grep -q "^$CL-" && cl_die "network namespaces $CL-* exist: e2e/cluster/down.sh first"

BERTHD=${BERTHD:-${CARGO_TARGET_DIR:-$CL_ROOT/target}/debug/berthd}
[[ -x $BERTHD && -x $(dirname "$BERTHD")/berth-shim ]] || cl_die "berthd/berth-shim not built beside $BERTHD (cargo build)"
eval "$("$CL_ROOT/hack/registry.sh" env)"
REGISTRY=$BERTH_TEST_REGISTRY
curl -sf --max-time 5 "http://$REGISTRY/v2/" >/dev/null || cl_die "no registry at $REGISTRY (hack/registry.sh start)"
K8S=$("$CL_ROOT/hack/k8s/build.sh" kubelet kube-apiserver kube-controller-manager kube-scheduler \
  kube-proxy kubectl etcd etcdctl) || cl_die "hack/k8s/build.sh failed"

mkdir -p "$CL_DIR"
chmod 711 "$CL_DIR" # searchable: containers in a user namespace reach their rootfs below it
mkdir -p "$PIDS" "$LOGS" "$BIN"
ok=0
on_exit() {
  ((ok)) && return
  cl_log "start failed; logs: $LOGS (copied to ${LOGS_COPY:=/tmp/berth-cl-logs.$$}); removing the cluster"
  cp -r "$LOGS" "$LOGS_COPY" 2>/dev/null || true
  "$CL_ROOT/e2e/cluster/down.sh" || true
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Copies, so a rebuild cannot swap a binary under a running node, and every berth-shim of this
# cluster is known by its executable's path.
cp "$BERTHD" "$(dirname "$BERTHD")/berth-shim" "$BIN/"
for b in kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl etcd etcdctl; do
  ln -s "$K8S/$b" "$BIN/$b"
done

# start_forwarder NAME LISTEN_NS LISTEN_ADDR CONNECT_NS CONNECT_ADDR (netns-forward.py).
start_forwarder() {
  python3 "$CL_ROOT/e2e/cluster/netns-forward.py" "$2" "$3" "$4" "$5" > "$LOGS/forward-$1.log" 2>&1 &
  echo $! > "$PIDS/forward-$1.pid"
}

# --- the control plane's namespace and bridge; the host's way in.
ip netns add "$CP_NS"
ip -n "$CP_NS" link set lo up
ip -n "$CP_NS" link add br0 type bridge
ip -n "$CP_NS" addr add "$CP_IP/24" dev br0
ip -n "$CP_NS" link set br0 up
nsenter --net="/run/netns/$CP_NS" sysctl -qw net.ipv4.ip_forward=1
python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' > "$CL_DIR/api-port"
start_forwarder apiserver - "127.0.0.1:$(<"$CL_DIR/api-port")" "/run/netns/$CP_NS" "$CP_IP:$API_PORT"

cl_log "certificates"
make_pki

# (a command, not a function: `in_cp X &` would make $! the subshell's pid)
in_cp=(nsenter --net="/run/netns/$CP_NS")
cl_log "etcd"
"${in_cp[@]}" "$BIN/etcd" --name cp --data-dir "$CL_DIR/etcd" \
  --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster cp=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
  --cert-file "$PKI/etcd-server.crt" --key-file "$PKI/etcd-server.key" \
  --client-cert-auth --trusted-ca-file "$PKI/ca.crt" > "$LOGS/etcd.log" 2>&1 &
echo $! > "$PIDS/etcd.pid"
etcd_healthy() {
  "${in_cp[@]}" "$BIN/etcdctl" --endpoints https://127.0.0.1:2379 --cacert "$PKI/ca.crt" \
    --cert "$PKI/apiserver-etcd-client.crt" --key "$PKI/apiserver-etcd-client.key" endpoint health
}
wait_for 60 etcd_healthy || { tail -20 "$LOGS/etcd.log" >&2; cl_die "etcd is not healthy"; }

cl_log "kube-apiserver"
"${in_cp[@]}" "$BIN/kube-apiserver" --etcd-servers https://127.0.0.1:2379 --etcd-cafile "$PKI/ca.crt" \
  --etcd-certfile "$PKI/apiserver-etcd-client.crt" --etcd-keyfile "$PKI/apiserver-etcd-client.key" \
  --bind-address 0.0.0.0 --advertise-address "$CP_IP" --secure-port "$API_PORT" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --allow-privileged=true --profiling=false > "$LOGS/kube-apiserver.log" 2>&1 &
echo $! > "$PIDS/kube-apiserver.pid"
wait_for 120 k get --raw /readyz || { tail -20 "$LOGS/kube-apiserver.log" >&2; cl_die "kube-apiserver is not ready"; }

cl_log "kube-controller-manager, kube-scheduler"
"${in_cp[@]}" "$BIN/kube-controller-manager" --kubeconfig "$CL_DIR/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$CL_DIR/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$CL_DIR/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --service-cluster-ip-range "$SERVICE_CIDR" --cluster-cidr "$CLUSTER_CIDR" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  > "$LOGS/kube-controller-manager.log" 2>&1 &
echo $! > "$PIDS/kube-controller-manager.pid"
"${in_cp[@]}" "$BIN/kube-scheduler" --kubeconfig "$CL_DIR/scheduler.kubeconfig" \
  --authentication-kubeconfig "$CL_DIR/scheduler.kubeconfig" \
  --authorization-kubeconfig "$CL_DIR/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false > "$LOGS/kube-scheduler.log" 2>&1 &
echo $! > "$PIDS/kube-scheduler.pid"

for n in "${NODES[@]}"; do
  cl_log "node $n: $(node_name "$n") at $(node_ip "$n"), pods in $(node_pod_cidr "$n")"
  start_node "$n"
done

nodes_ready() {
  [[ $(k get nodes -o json | jq '[.items[] | select(any(.status.conditions[]; .type == "Ready" and .status == "True"))] | length') == "${#NODES[@]}" ]]
}
wait_for 180 nodes_ready || { k get nodes -o wide >&2 || true; for n in "${NODES[@]}"; do tail -15 "$LOGS/kubelet-n$n.log" >&2; done; cl_die "the nodes are not Ready"; }
# The default service account appears once the controller manager runs: pods need it.
wait_for 60 k get serviceaccount default -n default || cl_die "no default service account (kube-controller-manager: $LOGS)"
ok=1
k get nodes -o wide
cl_log "up; KUBECONFIG=$CL_DIR/admin.kubeconfig $BIN/kubectl ...; e2e/cluster/down.sh removes it"
