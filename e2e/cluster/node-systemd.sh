#!/usr/bin/env bash
# The containerd node's stand-in for systemd (started by ctrd-node.sh): follows the `systemctl`
# calls berth's installer makes (one per line in NODE_DIR/systemctl.calls) and does what systemd
# would with berthd.service (berthd from the node's host root, /usr/local/bin, with its
# /etc/berth/config.yaml) and kubelet.service (kubelet restarted with its config file, which the
# installer may just have rewritten). Usage: node-systemd.sh NODE_DIR N
source "$(dirname "$0")/lib.sh"
source "$CL_ROOT/e2e/cluster/node.sh"
d=$1 n=$2
h=$(node_host "$n")
REGISTRY=unused # node.sh's helpers used here do not read it

berthd_running() { pid_of "berthd-n$n" >/dev/null; }
start_berthd() {
  spawn_in_node "$n" "berthd-n$n" "$LOGS/berthd-n$n.log" "$h/usr/local/bin/berthd" --config "$h/etc/berth/config.yaml"
  echo "node-systemd: started berthd ($(<"$PIDS/berthd-n$n.pid"))"
}

seen=0
while sleep 0.2; do
  mapfile -t calls < "$d/systemctl.calls"
  while ((seen < ${#calls[@]})); do
    call=${calls[$seen]}
    seen=$((seen + 1))
    echo "node-systemd: $call"
    case $call in
      "systemctl restart berthd.service")
        stop "berthd-n$n" 15
        start_berthd
        ;;
      "systemctl start berthd.service") berthd_running || start_berthd ;;
      "systemctl restart kubelet.service")
        stop "kubelet-n$n" 20
        start_kubelet "$n" "$h/var/lib/kubelet/config.yaml"
        echo "node-systemd: restarted kubelet ($(<"$PIDS/kubelet-n$n.pid"))"
        ;;
      "systemctl daemon-reload" | "systemctl enable berthd.service") ;;
      *) echo "node-systemd: unknown call, ignored" ;;
    esac
  done
done
