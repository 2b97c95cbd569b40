# e2e/cluster/test.sh, part 3: pod features: liveness restarts, ConfigMap/Secret/projected
# volumes and env, RuntimeClass runc, hostUsers: false, in-place resize.

liveness() {
  busybox_pod liveness "$N2" 'touch /tmp/healthy; sleep 4; rm /tmp/healthy; sleep 3600' \
"    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 2
      failureThreshold: 1"
  wait_for 120 eval '[[ $(ctr_status liveness | jq -r .restartCount) -ge 1 ]]' ||
    bad "no restart: $(ctr_status liveness)" || return
  ctr_status liveness | jq -e '.lastState.terminated.exitCode == 137' >/dev/null ||
    bad "the restarted container was not killed (137): $(ctr_status liveness | jq -c .lastState)" || return
  kn get events --field-selector involvedObject.name=liveness -o json |
    jq -e 'any(.items[]; .reason == "Unhealthy" and (.message | test("Liveness probe failed")))' >/dev/null ||
    bad "no 'Liveness probe failed' event" || return
}
check "a failing liveness probe restarts the container (exit 137, Unhealthy event)" liveness

volumes() {
  # Secret bytes that are not UTF-8 (but no NUL: an environment value cannot hold one).
  printf 'bin\xff\xfe\x01end' > "$TMP/secret.bin"
  kn create secret generic creds --from-file=blob="$TMP/secret.bin" --from-literal=user=alice >/dev/null ||
    bad "create secret" || return
  kn create configmap settings --from-literal=color=blue --from-literal=size=10 >/dev/null || bad "create configmap" || return
  busybox_pod volumes "$N1" 'sleep 3600' \
"    env:
    - {name: BLOB, valueFrom: {secretKeyRef: {name: creds, key: blob}}}
    - {name: COLOR, valueFrom: {configMapKeyRef: {name: settings, key: color}}}
    volumeMounts:
    - {name: cm, mountPath: /etc/cm}
    - {name: sec, mountPath: /etc/sec}
    - {name: all, mountPath: /etc/all}
  volumes:
  - {name: cm, configMap: {name: settings}}
  - {name: sec, secret: {secretName: creds, defaultMode: 0400}}
  - name: all
    projected:
      sources:
      - configMap: {name: settings, items: [{key: size, path: size}]}
      - secret: {name: creds, items: [{key: user, path: user}]}
      - downwardAPI: {items: [{path: podname, fieldRef: {fieldPath: metadata.name}}]}
      - serviceAccountToken: {path: token, expirationSeconds: 3600}"
  wait_ready 120 volumes || bad "volumes pod not ready: $(kn describe pod volumes | tail -5)" || return
  local got want
  # The container's own process (pid 1) has the exact bytes in its environment.
  got=$(kn exec volumes -- cat /proc/1/environ | tr '\0' '\n' | grep -a '^BLOB=' | cut -c6- | tr -d '\n' | od -An -tx1 | tr -d ' \n')
  want=$(od -An -tx1 < "$TMP/secret.bin" | tr -d ' \n')
  [[ $got == "$want" ]] || bad "env BLOB bytes $got, want $want" || return
  # ... and so does a process kubectl exec starts there.
  got=$(kn exec volumes -- sh -c 'printf %s "$BLOB"' | od -An -tx1 | tr -d ' \n')
  [[ $got == "$want" ]] || bad "env BLOB bytes in kubectl exec $got, want $want" || return
  [[ $(kn exec volumes -- sh -c 'echo $COLOR') == blue ]] || bad "env COLOR" || return
  [[ $(kn exec volumes -- cat /etc/cm/color) == blue ]] || bad "configMap volume color" || return
  got=$(kn exec volumes -- od -An -tx1 /etc/sec/blob | tr -d ' \n')
  [[ $got == "$want" ]] || bad "secret volume blob bytes $got" || return
  [[ $(kn exec volumes -- stat -L -c %a /etc/sec/user) == 400 ]] || bad "secret file mode $(kn exec volumes -- stat -L -c %a /etc/sec/user)" || return
  got=$(kn exec volumes -- sh -c 'for f in size user podname; do echo "$(cat /etc/all/$f)"; done')
  [[ $got == $'10\nalice\nvolumes' ]] || bad "projected: $got" || return
  # The token is a JWT of this pod's service account, signed by the cluster's key.
  got=$(kn exec volumes -- cat /etc/all/token | cut -d. -f2 | tr '_-' '/+' | base64 -d 2>/dev/null || true)
  [[ $got == *'"system:serviceaccount:'"$NS"':default"'* ]] || bad "projected token payload: $got" || return
  # A ConfigMap update reaches the mounted volume (kubelet's sync; berth's bind mount is live).
  kn patch configmap settings -p '{"data":{"color":"green"}}' >/dev/null
  wait_for 90 eval '[[ $(kn exec volumes -- cat /etc/cm/color) == green ]]' || bad "configMap update not seen in the volume" || return
}
check "Secret with non-UTF-8 bytes as env and file, ConfigMap env/volume (and its update), projected volume" volumes

runtimeclass() {
  apply <<YAML
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: runc}
handler: runc
YAML
  busybox_pod on-runc "$N2" 'echo hello from runc; sleep 3600' "" "  runtimeClassName: runc"
  wait_ready 120 on-runc || bad "on-runc not ready: $(kn describe pod on-runc | tail -5)" || return
  local sandbox
  sandbox=$(crictl_n 2 pods -q --no-trunc --name '^on-runc$' --namespace "^$NS\$" --state ready)
  [[ -n $sandbox ]] || bad "berth on node 2 has no ready sandbox for on-runc" || return
  [[ $(crictl_n 2 inspectp "$sandbox" | jq -r .status.runtimeHandler) == runc ]] ||
    bad "runtime handler $(crictl_n 2 inspectp "$sandbox" | jq -r .status.runtimeHandler)" || return
  # runc keeps its state for the container in berth's runc state dir.
  local id
  id=$(ctr_status on-runc | jq -r '.containerID | sub("^[^:]*://"; "")')
  [[ -d $(node_dir 2)/run/runc/$id ]] || bad "no runc state for $id in $(node_dir 2)/run/runc: $(ls "$(node_dir 2)/run/runc" 2>&1 | head -3)" || return
  [[ $(kn logs on-runc) == "hello from runc" ]] || bad "log: $(kn logs on-runc)" || return
}
check "RuntimeClass runc: the pod runs under berth's runc handler" runtimeclass

userns() {
  # kubelet asks for every mount of such a pod to be id-mapped (/etc/hosts, the token, volumes).
  kn create configmap userns-cm --from-literal=key=value >/dev/null || bad "create configmap" || return
  busybox_pod userns "$N1" 'sleep 3600' \
"    volumeMounts: [{name: cm, mountPath: /etc/cm}, {name: scratch, mountPath: /scratch}]" \
"  hostUsers: false
  volumes: [{name: cm, configMap: {name: userns-cm}}, {name: scratch, emptyDir: {}}]"
  wait_ready 120 userns || bad "userns not ready: $(kn describe pod userns | grep -E 'Warning|Error' | tail -3)" || return
  local map pid
  map=$(kn exec userns -- cat /proc/self/uid_map)
  read -r inside outside count <<<"$map"
  [[ $inside == 0 && $outside != 0 && $count -ge 65536 ]] || bad "uid_map '$map'" || return
  [[ $(kn exec userns -- id -u) == 0 ]] || bad "not root inside" || return
  pid=$(container_pid userns) || bad "no pid" || return
  [[ $(stat -c %u "/proc/$pid") == "$outside" ]] || bad "on the host the process runs as $(stat -c %u "/proc/$pid"), want $outside" || return
  # Through the id-mapped mounts, kubelet's root-owned files are root's inside.
  local owners
  owners=$(kn exec userns -- stat -c %u:%g /etc/hosts /etc/cm/key /var/run/secrets/kubernetes.io/serviceaccount/token /scratch)
  [[ $owners == $'0:0\n0:0\n0:0\n0:0' ]] || bad "owners inside: $owners" || return
  [[ $(kn exec userns -- cat /etc/cm/key) == value ]] || bad "configMap through the id-mapped mount" || return
  kn exec userns -- sh -c 'echo x > /scratch/f' || bad "root inside cannot write its emptyDir" || return
}
check "hostUsers: false: root in the pod is an unprivileged uid on the host; its volumes are id-mapped" userns

resize() {
  busybox_pod resize "$N2" 'sleep 3600' \
"    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: 200m, memory: 128Mi}
    resizePolicy:
    - {resourceName: cpu, restartPolicy: NotRequired}
    - {resourceName: memory, restartPolicy: NotRequired}"
  wait_ready 120 resize || bad "resize not ready" || return
  [[ $(cgroup_value resize cpu cpu.cfs_quota_us) == 20000 ]] || bad "quota before: $(cgroup_value resize cpu cpu.cfs_quota_us)" || return
  local pid_before
  pid_before=$(container_pid resize)
  kn patch pod resize --subresource resize -p \
    '{"spec":{"containers":[{"name":"main","resources":{"requests":{"cpu":"150m","memory":"96Mi"},"limits":{"cpu":"300m","memory":"192Mi"}}}]}}' \
    >/dev/null || bad "patch --subresource resize refused" || return
  wait_for 60 eval '[[ $(ctr_status resize | jq -r .resources.limits.cpu) == 300m && $(ctr_status resize | jq -r .resources.limits.memory) == 192Mi ]]' ||
    bad "status never showed the new limits: $(ctr_status resize | jq -c .resources) $(pod_json resize | jq -c '.status.conditions')" || return
  [[ $(cgroup_value resize cpu cpu.cfs_quota_us) == 30000 ]] || bad "cpu.cfs_quota_us $(cgroup_value resize cpu cpu.cfs_quota_us), want 30000" || return
  [[ $(cgroup_value resize memory memory.limit_in_bytes) == $((192 << 20)) ]] ||
    bad "memory.limit_in_bytes $(cgroup_value resize memory memory.limit_in_bytes)" || return
  [[ $(ctr_status resize | jq -r .restartCount) == 0 && $(container_pid resize) == "$pid_before" ]] ||
    bad "the container restarted for the resize" || return
}
check "in-place resize of a running container's CPU and memory (cgroup updated, no restart)" resize

# Pod-level resources (spec.resources), resized in place: kubelet writes the pod cgroup and tells
# berth through UpdatePodSandboxResources, which must succeed (berth keeps the totals and writes
# them into the pod cgroup too).
pod_resize() {
  apply <<YAML
apiVersion: v1
kind: Pod
metadata: {name: podresize}
spec:
  nodeSelector: {kubernetes.io/hostname: $N2}
  terminationGracePeriodSeconds: 5
  resources:
    requests: {cpu: 100m, memory: 64Mi}
    limits: {cpu: 200m, memory: 128Mi}
  containers:
  - {name: main, image: $IMG, command: [sleep, "3600"]}
YAML
  wait_ready 120 podresize || bad "podresize not ready" || return
  local uid dir sandbox
  uid=$(pod_json podresize | jq -r .metadata.uid)
  dir=$(find "/sys/fs/cgroup/cpu/$(node_cgroup 2)" -maxdepth 3 -type d -name "pod$uid")
  [[ -n $dir && $(cat "$dir/cpu.cfs_quota_us") == 20000 ]] || bad "pod cgroup quota before: ${dir:-no pod cgroup}" || return
  sandbox=$(crictl_n 2 pods -q --no-trunc --name '^podresize$' --namespace "^$NS\$" --state ready)
  kn patch pod podresize --subresource resize -p \
    '{"spec":{"resources":{"requests":{"cpu":"150m"},"limits":{"cpu":"300m"}}}}' >/dev/null ||
    bad "patch --subresource resize refused" || return
  wait_for 60 eval '[[ $(pod_json podresize | jq -r .status.resources.limits.cpu) == 300m ]]' ||
    bad "status: $(pod_json podresize | jq -c .status.resources)" || return
  [[ $(cat "$dir/cpu.cfs_quota_us") == 30000 ]] || bad "pod cgroup quota after: $(cat "$dir/cpu.cfs_quota_us")" || return
  wait_for 20 grep -q "pod resources updated pod_id=$sandbox.*cpu_quota: Some(30000)" "$LOGS/berthd-n2.log" ||
    bad "berth did not record the new pod resources (UpdatePodSandboxResources): $(grep -i 'UpdatePodSandboxResources' "$LOGS/kubelet-n2.log" | tail -1)" || return
  ! grep -q "UpdatePodSandboxResources from runtime service failed.*$sandbox" "$LOGS/kubelet-n2.log" ||
    bad "kubelet: $(grep "UpdatePodSandboxResources from runtime service failed.*$sandbox" "$LOGS/kubelet-n2.log" | tail -1)" || return
}
check "pod-level in-place resize: pod cgroup and berth's UpdatePodSandboxResources" pod_resize

