# The static pods of e2e/kubelet.sh (sourced): write_pods writes their manifests to $KW/manifests.
# Uses IMG (the busybox test image), TOKEN and HOSTPORT.

# pod NAME SPEC: writes a static pod manifest; SPEC is the lines under "spec:", indented by two.
pod() {
  printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\nspec:\n  terminationGracePeriodSeconds: 1\n%s\n' \
    "$1" "$2" > "$KW/manifests/$1.yaml"
}

write_pods() {
  # Two init containers, each depending on the one before, then the app container.
  pod init "  volumes: [{name: work, emptyDir: {}}]
  initContainers:
  - {name: first, image: $IMG, command: [sh, -c, 'echo first > /work/order'], volumeMounts: [{name: work, mountPath: /work}]}
  - {name: second, image: $IMG, command: [sh, -c, 'grep -qx first /work/order && echo second >> /work/order'],
     volumeMounts: [{name: work, mountPath: /work}]}
  containers:
  - {name: main, image: $IMG, command: [sh, -c, 'cat /work/order; exec sleep 3600'], volumeMounts: [{name: work, mountPath: /work}]}"

  # Probes that pass (web: http readiness, tcp liveness) and fail (unready: http readiness on a
  # closed port; flaky: exec liveness once its file is gone; tcpdead: tcp liveness, closed port).
  pod probes "  containers:
  - name: web
    image: $IMG
    command: [sh, -c, 'mkdir -p /www && echo probe-me > /www/index.html && exec httpd -f -p 8080 -h /www']
    readinessProbe: {httpGet: {path: /index.html, port: 8080}, periodSeconds: 1}
    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1, failureThreshold: 3}
  - name: unready
    image: $IMG
    command: [sleep, '3600']
    readinessProbe: {httpGet: {path: /, port: 8081}, periodSeconds: 1}
  - name: flaky
    image: $IMG
    command: [sh, -c, 'touch /tmp/healthy; sleep 3; rm /tmp/healthy; exec sleep 3600']
    livenessProbe: {exec: {command: [cat, /tmp/healthy]}, periodSeconds: 1, failureThreshold: 1}
  - name: tcpdead
    image: $IMG
    command: [sleep, '3600']
    livenessProbe: {tcpSocket: {port: 8082}, initialDelaySeconds: 2, periodSeconds: 1, failureThreshold: 1}"

  pod crash "  containers:
  - {name: crash, image: $IMG, command: [sh, -c, 'echo crashing; exit 3']}"

  # dd's 256 MiB buffer, filled by read(2) from /dev/zero, against a 32 MiB limit.
  pod oom "  restartPolicy: Never
  containers:
  - name: hog
    image: $IMG
    command: [dd, if=/dev/zero, of=/dev/null, bs=256M, count=1]
    resources: {limits: {memory: 32Mi}}"

  pod hostnet "  hostNetwork: true
  containers:
  - name: web
    image: $IMG
    command: [sh, -c, 'mkdir -p /www && echo host-$TOKEN > /www/index.html && exec httpd -f -p 127.0.0.1:$HOSTPORT -h /www']
    ports: [{containerPort: $HOSTPORT, hostPort: $HOSTPORT}]"

  pod sharedpid "  shareProcessNamespace: true
  containers:
  - {name: a, image: $IMG, command: [sleep, '3601']}
  - {name: b, image: $IMG, command: [sleep, '3602']}"

  pod emptydir "  volumes: [{name: data, emptyDir: {}}]
  containers:
  - {name: writer, image: $IMG, command: [sh, -c, 'echo $TOKEN > /data/msg; exec sleep 3600'], volumeMounts: [{name: data, mountPath: /data}]}
  - {name: reader, image: $IMG, command: [sleep, '3600'], volumeMounts: [{name: data, mountPath: /data}]}"

  # Burstable: cpu.shares from the request (100m -> 102), the CFS quota and memory limit from the limits.
  pod limits "  containers:
  - name: capped
    image: $IMG
    command: [sleep, '3600']
    resources: {requests: {cpu: 100m, memory: 16Mi}, limits: {cpu: 250m, memory: 48Mi}}"
}
