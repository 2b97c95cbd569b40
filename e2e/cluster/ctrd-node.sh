# The containerd node of the e2e cluster (sourced after node.sh): node $CTRD_NODE starts with
# Debian's containerd (and runc) as kubelet's runtime, tainted so only pods that ask for it land
# there, until berth's DaemonSet installer (installer.sh, part of test.sh) switches it to berth.
#
# The node has a "host root" of its own, $(node_host N): the installer's hostPath mounts it as
# /host, so it writes the binaries, unit and config there and never on this machine's /. Its run/
# is the node's /run. Its "systemd" is node-systemd.sh: the installer's `systemctl` calls (made
# through the image's nsenter into the node's mount namespace) land in a file it follows, and it
# starts berthd from the host root's /usr/local/bin and restarts kubelet.

# ctrd_node_files N: containerd's config, the CNI network (node_files), kubelet's config at the
# host root's /var/lib/kubelet/config.yaml (where the installer finds it) and berth's node config.
ctrd_node_files() {
  local n=$1 d h
  d=$(node_dir "$n")
  h=$(node_host "$n")
  node_files "$n"
  rm -f "$d/berthd.yaml"
  mkdir -p "$h/run/containerd" "$h/var/lib/kubelet" "$h/etc/berth" "$d/containerd" "$d/containerd-opt"
  # Everything of containerd's own in this cluster's directories: root on disk, state in the
  # node's /run (= $h/run), its socket named by its full path (so its shims' command lines name
  # $CL_DIR, and down.sh finds them).
  cat > "$d/containerd.toml" <<TOML
version = 2
root = "$d/containerd"
state = "/run/containerd"
[grpc]
  address = "$(ctrd_sock)"
[ttrpc]
  address = "$(ctrd_sock).ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REGISTRY/pause:3.9"
  stream_server_address = "127.0.0.1"
  # Lowering a process's oom_score_adj (kubelet asks -998 for sandboxes) is refused on this
  # machine even to root; runc then fails every container. containerd caps it at its own instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REGISTRY"]
    endpoint = ["http://$REGISTRY"]
TOML
  sed -e "s#^containerRuntimeEndpoint:.*#containerRuntimeEndpoint: unix://$(ctrd_sock)#" \
    "$d/kubelet.yaml" > "$h/var/lib/kubelet/config.yaml"
  cat >> "$h/var/lib/kubelet/config.yaml" <<YAML
# Only pods that tolerate this run here (the installer's DaemonSet tolerates everything).
registerWithTaints:
- {key: berth.dev/containerd-node, value: "true", effect: NoSchedule}
YAML
  rm -f "$d/kubelet.yaml"
  # The node's own berth config, kept by the installer: berth's root on this cluster's disk, its
  # state and socket in the node's /run (the image's default config would name /var/lib/berth,
  # which is this machine's).
  cat > "$h/etc/berth/config.yaml" <<YAML
root_dir: $d/berth-root
state_dir: /run/berth
grpc:
  socket: /run/berth/berth.sock
network:
  conf_dir: $d/cni
registries:
  "$REGISTRY":
    insecure: true
# This shared disk often sits near the default reserve (15%).
image:
  disk_reserve: 1%
YAML
  # The installer's `systemctl`: one line per call, for node-systemd.sh.
  cat > "$d/systemctl" <<SH
#!/bin/sh
echo "\$*" >> $d/systemctl.calls
SH
  chmod +x "$d/systemctl"
  : > "$d/systemctl.calls"
}

# start_ctrd_node N: containerd, the node's stand-in systemd, kubelet against containerd.
start_ctrd_node() {
  local n=$1 d pid
  d=$(node_dir "$n")
  spawn_in_node "$n" "containerd-n$n" "$LOGS/containerd-n$n.log" containerd --config "$d/containerd.toml"
  pid=$(<"$PIDS/containerd-n$n.pid")
  ctrd_up() { CRI_CONFIG_FILE=/dev/null crictl --runtime-endpoint "unix://$(ctrd_sock)" info; }
  wait_for 30 eval "ctrd_up || ! kill -0 $pid" && ctrd_up >/dev/null 2>&1 ||
    { tail -20 "$LOGS/containerd-n$n.log" >&2; cl_die "node $n's containerd did not answer"; }
  bash "$CL_ROOT/e2e/cluster/node-systemd.sh" "$d" "$n" > "$LOGS/systemd-n$n.log" 2>&1 &
  echo $! > "$PIDS/systemd-n$n.pid"
  start_kubelet "$n" "$(node_host "$n")/var/lib/kubelet/config.yaml"
}

# crictl against the containerd node's containerd.
crictl_ctrd() { CRI_CONFIG_FILE=/dev/null crictl --runtime-endpoint "unix://$(ctrd_sock)" "$@"; }
