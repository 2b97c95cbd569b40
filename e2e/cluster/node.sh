# One worker node of the e2e cluster (sourced after lib.sh): its network namespace wired to the
# control plane's bridge, and its processes: a holder that owns the node's mount namespace, then
# berthd, kubelet and kube-proxy inside that namespace and the node's network namespace.
#
# The node's mount namespace (a slave copy of the host's) drops every mount the node has no use
# for, so it pins no one else's overlay or network namespace; it has its own /run and its own
# /var/log/containers. berthd and kube-proxy run in it, kubelet in a child of it (start_kubelet)
# that shares kubelet's directory with it.

# node_network N: the node's namespace, a veth to the bridge in $CP_NS, a default route through
# the control plane and a direct route to every other node's pod CIDR (host-gw).
node_network() {
  local n=$1 ns m
  ns=$(node_ns "$n")
  ip netns add "$ns"
  ip link add "veth-n$n" netns "$CP_NS" type veth peer name eth0 netns "$ns"
  ip -n "$CP_NS" link set "veth-n$n" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$(node_ip "$n")/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$CP_IP"
  for m in "${NODES[@]}"; do
    ((m == n)) && continue
    ip -n "$ns" route add "$(node_pod_cidr "$m")" via "$(node_ip "$m")"
  done
  ip -n "$CP_NS" route add "$(node_pod_cidr "$n")" via "$(node_ip "$n")"
  nsenter --net="/run/netns/$ns" sysctl -qw net.ipv4.ip_forward=1
}

# node_files N: the node's berthd config, CNI network, kubelet and kube-proxy configs.
node_files() {
  local n=$1 d
  d=$(node_dir "$n")
  mkdir -p "$d/cni" "$d/run" "$d/log-containers" "$d/pod-logs" "$d/sysctl"
  cat > "$d/berthd.yaml" <<YAML
root_dir: $d/root
state_dir: $d/run
grpc:
  socket: $(node_sock "$n")
network:
  conf_dir: $d/cni
registries:
  "$REGISTRY":
    insecure: true
# This shared disk often sits near the default reserve (15%).
image:
  disk_reserve: 1%
YAML
  cat > "$d/cni/10-$CL.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$CL-n$n",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$(node_pod_cidr "$n")"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$d/cni-ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  cat > "$d/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$(node_sock "$n")
cgroupDriver: cgroupfs
cgroupRoot: /$(node_cgroup "$n")
podLogsDir: $d/pod-logs
volumePluginDir: $d/volume-plugins
syncFrequency: 10s
address: $(node_ip "$n")
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet-serving-n$n.crt
tlsPrivateKeyFile: $PKI/kubelet-serving-n$n.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
clusterDomain: cluster.local
makeIPTablesUtilChains: false
imageGCHighThresholdPercent: 100
# This shared disk is often past kubelet's default 10% free: evict only when it is really full.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
featureGates:
  PodAndContainerStatsFromCRI: true
YAML
  cat > "$d/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $CL_DIR/kube-proxy.kubeconfig
hostnameOverride: $(node_name "$n")
bindAddress: $(node_ip "$n")
mode: iptables
clusterCIDR: $CLUSTER_CIDR
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
healthzBindAddress: 127.0.0.1:10256
# conntrack's table size and timeouts are the host's, not the node namespace's: leave them.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
}

# start_holder N [RUN_DIR]: the process owning node N's mount namespace; prepares it, then sleeps.
# Its /run is a tmpfs of its own, or RUN_DIR bound there.
# kubelet's directory is a shared mount there, so the volumes kubelet mounts from its own child
# namespace (start_kubelet) appear where berthd binds them into containers.
start_holder() {
  local n=$1 run=${2:-} d setup
  d=$(node_dir "$n")
  awk -v keep="$CL_DIR" '
    $5 ~ "^/$|^/(dev|proc|sys|etc|usr|lib[^/]*|bin|sbin|mnt)(/|$)" { next }
    { n = split(keep, k, " "); for (i = 1; i <= n; i++) if (index(k[i] "/", $5 "/") == 1) next; print $5 }
  ' /proc/self/mountinfo | sort -r > "$d/drop-mounts"
  mkdir -p /var/log/containers "$d/kubelet"
  setup="while read -r m; do umount -l \"\$m\" 2>/dev/null; done < $d/drop-mounts; "
  if [[ -n $run ]]; then
    # RUN_DIR's parent, the containerd node's host root, is a shared mount: the installer's pod
    # mounts it with HostToContainer propagation, which needs a shared or slave source.
    setup+="mount --bind ${run%/*} ${run%/*} && mount --make-shared ${run%/*} && "
    setup+="mount --bind $run /run && "
  else
    setup+="mount -t tmpfs -o mode=755 $CL-run /run && "
  fi
  setup+="mount --bind $d/log-containers /var/log/containers && "
  setup+="mount --bind $d/kubelet $d/kubelet && mount --make-shared $d/kubelet && "
  # Renamed after this cluster so down.sh knows it for one of its own (lib.sh's pid_of).
  setup+="touch $d/holder-ready && exec -a $CL_DIR/holder-n$n sleep infinity"
  rm -f "$d/holder-ready"
  nsenter --net="/run/netns/$(node_ns "$n")" unshare --mount --propagation slave \
    bash -c "$setup" "$CL_DIR/holder-n$n" > "$LOGS/holder-n$n.log" 2>&1 &
  echo $! > "$PIDS/holder-n$n.pid"
  wait_for 10 test -e "$d/holder-ready" || cl_die "node $n's mount namespace: $(cat "$LOGS/holder-n$n.log")"
}

# start_kubelet N [CONFIG]: kubelet (its config: CONFIG, default the node's kubelet.yaml) in a mount namespace of its own below the node's, where the six
# kernel tunables it insists on writing are files holding the values it wants (the host's
# sysctls stay untouched). Not in the node's namespace itself: a /proc with files mounted over
# parts of it is not "fully visible", and the kernel then refuses the /proc mount of every
# container in a user namespace (hostUsers: false).
start_kubelet() {
  local n=$1 d t file setup="" config=${2:-$(node_dir "$1")/kubelet.yaml}
  d=$(node_dir "$n")
  declare -A tunables=([vm/overcommit_memory]=1 [vm/panic_on_oom]=0 [kernel/panic]=10
    [kernel/panic_on_oops]=1 [kernel/keys/root_maxkeys]=1000000 [kernel/keys/root_maxbytes]=25000000)
  for t in "${!tunables[@]}"; do
    file=$d/sysctl/${t//\//.}
    echo "${tunables[$t]}" > "$file"
    setup+="mount --bind $file /proc/sys/$t && "
  done
  # This host's hugetlb controller is on the unified hierarchy only, but kubelet sends hugepage
  # limits for every size in /sys/kernel/mm/hugepages, and runc fails every container that has
  # them (berth drops them then; containerd 1.6 passes them on): the containerd node's kubelet sees
  # no hugepage sizes.
  ((n == CTRD_NODE)) && setup+="mount -t tmpfs -o ro,mode=755 $CL-nohugepages /sys/kernel/mm/hugepages && "
  spawn_in_node "$n" "kubelet-n$n" "$LOGS/kubelet-n$n.log" unshare --mount --propagation unchanged \
    sh -c "${setup}exec \"\$0\" \"\$@\"" "$BIN/kubelet" --config "$config" \
    --root-dir "$d/kubelet" --kubeconfig "$CL_DIR/kubelet-n$n.kubeconfig" \
    --hostname-override "$(node_name "$n")" --node-ip "$(node_ip "$n")" --v=2
}

# start_node_berthd N: node N's berthd; waits for its socket.
start_node_berthd() {
  local n=$1 d
  d=$(node_dir "$n")
  spawn_in_node "$n" "berthd-n$n" "$LOGS/berthd-n$n.log" "$BIN/berthd" --config "$d/berthd.yaml"
  local pid
  pid=$(<"$PIDS/berthd-n$n.pid")
  # Ready when it answers; given up on at once when it exits.
  wait_for 30 eval "crictl_n $n info || ! kill -0 $pid" && crictl_n "$n" info >/dev/null 2>&1 ||
    { tail -20 "$LOGS/berthd-n$n.log" >&2; cl_die "node $n's berthd did not answer"; }
}

# start_node N: node N's network, cgroup root, holder, berthd, kubelet and kube-proxy.
start_node() {
  local n=$1 d h
  d=$(node_dir "$n")
  node_network "$n"
  node_files "$n"
  for h in $(cgroup_hierarchies); do
    mkdir "$h/$(node_cgroup "$n")"
    if [[ -f $h/cpuset.cpus ]]; then
      cat "$h/cpuset.cpus" > "$h/$(node_cgroup "$n")/cpuset.cpus"
      cat "$h/cpuset.mems" > "$h/$(node_cgroup "$n")/cpuset.mems"
    fi
  done
  if ((n == CTRD_NODE)); then
    ctrd_node_files "$n"
    start_holder "$n" "$(node_host "$n")/run"
    start_forwarder "registry-n$n" "/run/netns/$(node_ns "$n")" "$REGISTRY" - "$REGISTRY"
    start_ctrd_node "$n"
  else
    start_holder "$n"
    start_forwarder "registry-n$n" "/run/netns/$(node_ns "$n")" "$REGISTRY" - "$REGISTRY"
    start_node_berthd "$n"
    start_kubelet "$n"
  fi
  spawn_in_node "$n" "kube-proxy-n$n" "$LOGS/kube-proxy-n$n.log" "$BIN/kube-proxy" \
    --config "$d/kube-proxy.yaml" --v=2
}
