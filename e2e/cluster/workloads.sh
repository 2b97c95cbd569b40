# e2e/cluster/test.sh, part 1: a Deployment over both nodes, a ClusterIP Service and pod-to-pod
# traffic across the nodes, Jobs.

# web: 4 busybox httpd pods answering their own name, spread one-for-one over the nodes
# (untainted nodes only, so a drained node's pods can all move to the other).
deployment() {
  apply <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        nodeTaintsPolicy: Honor
        labelSelector: {matchLabels: {app: web}}
      containers:
      - name: httpd
        image: $IMG
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /index.html, port: 8080}
          periodSeconds: 2
YAML
  # (Available alone allows one of the four to be unavailable: maxUnavailable 25%.)
  kn rollout status deployment/web --timeout=180s >/dev/null &&
    kn wait --for=condition=Available --timeout=30s deployment/web >/dev/null ||
    bad "deployment web not Available: $(kn get pods -l app=web -o wide 2>&1)" || return
  wait_for 60 eval '[[ $(kn get deployment web -o jsonpath={.status.readyReplicas}) == 4 ]]' ||
    bad "deployment web: $(kn get deployment web -o json | jq -c .status)" || return
  local pods
  pods=$(kn get pods -l app=web -o json)
  [[ $(jq '[.items[] | select(.status.phase == "Running" and all(.status.containerStatuses[]; .ready))] | length' <<<"$pods") == 4 ]] ||
    bad "not 4 ready web pods: $(kn get pods -l app=web -o wide)" || return
  [[ $(jq -r '[.items[].spec.nodeName] | unique | join(" ")' <<<"$pods") == "$N1 $N2" ]] ||
    bad "web pods are not on both nodes: $(kn get pods -l app=web -o wide)" || return
  # Each pod's IP is in its node's pod CIDR (berth's CNI network on that node).
  jq -e '[.items[] | (.spec.nodeName | ltrimstr("berth-node")) as $n | .status.podIP | startswith("10.216." + $n + ".")] | all' <<<"$pods" >/dev/null ||
    bad "pod IPs not in their node's CIDR: $(jq -c '[.items[] | [.spec.nodeName, .status.podIP]]' <<<"$pods")" || return
}
check "Deployment of 4 spreads over both nodes and becomes Available; pod IPs from each node's CIDR" deployment

# A client pod on node 1 for the network checks (and the streaming checks later).
busybox_pod client "$N1" "sleep 3600"
wait_ready 120 client || echo "      client pod not ready: $(kn get pod client -o wide)"

# web_pod_on NODE: the name and IP of a web pod on NODE.
web_pod_on() {
  kn get pods -l app=web -o json |
    jq -r --arg n "$1" '[.items[] | select(.spec.nodeName == $n and .status.phase == "Running")][0] | "\(.metadata.name) \(.status.podIP)"'
}

pod_to_pod() {
  local name ip out
  read -r name ip < <(web_pod_on "$N2")
  [[ -n $ip && $ip != null ]] || bad "no web pod on $N2" || return
  out=$(kn exec client -- wget -qO- -T 5 "http://$ip:8080/") || bad "client on $N1 cannot reach $name ($ip) on $N2" || return
  [[ $out == "$name" ]] || bad "$ip answered '$out', want $name" || return
}
check "a pod on node 1 reaches a pod on node 2 by its IP (host-gw routes between the nodes)" pod_to_pod

service() {
  kn expose deployment web --name web --port 80 --target-port 8080 >/dev/null || bad "kubectl expose failed" || return
  local ip on_n2 seen="" out i
  ip=$(kn get service web -o jsonpath='{.spec.clusterIP}')
  [[ $ip == 10.217.0.* ]] || bad "ClusterIP '$ip' not in $SERVICE_CIDR" || return
  on_n2=$(kn get pods -l app=web -o json | jq -r --arg n "$N2" '.items[] | select(.spec.nodeName == $n) | .metadata.name')
  # kube-proxy programs the rules once it sees the EndpointSlice; then connections spread.
  for i in $(seq 60); do
    out=$(kn exec client -- wget -qO- -T 2 "http://$ip/" 2>/dev/null) || { sleep 0.5; continue; }
    seen+="$out "
    grep -qxF "$out" <<<"$on_n2" && return 0
  done
  bad "the Service never answered from a pod on $N2 ($on_n2); answers: ${seen:-none}" || return
}
check "ClusterIP Service (kube-proxy, iptables) answers the client on node 1 from a pod on node 2" service

jobs() {
  apply <<YAML
apiVersion: batch/v1
kind: Job
metadata: {name: good}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: $IMG, command: ["sh", "-c", "echo done"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: $IMG, command: ["sh", "-c", "echo failing; exit 42"]}]
YAML
  kn wait --for=condition=Complete --timeout=120s job/good >/dev/null || bad "job good: $(kn get job good -o json | jq -c .status)" || return
  [[ $(kn logs job/good) == done ]] || bad "job good's log: $(kn logs job/good)" || return
  kn wait --for=condition=Failed --timeout=120s job/bad >/dev/null || bad "job bad: $(kn get job bad -o json | jq -c .status)" || return
  local code
  code=$(kn get pods -l job-name=bad -o json | jq -r '.items[0].status.containerStatuses[0].state.terminated.exitCode')
  [[ $code == 42 ]] || bad "the failed job's container exit code is '$code', want 42" || return
}
check "a Job completes; a failing Job is Failed and its pod records exit code 42" jobs
