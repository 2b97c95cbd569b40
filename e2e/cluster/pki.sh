# The e2e cluster's certificates and kubeconfigs, made with openssl (sourced by up.sh after
# lib.sh): one CA signs every serving and client certificate; the service-account key pair signs
# tokens. Keys are ECDSA P-256; certificates last 7 days.

# cert NAME CN [O] [SANS] [USAGE]: $PKI/NAME.{key,crt} signed by the CA. SANS is an openssl
# subjectAltName value (IP:..,DNS:..); USAGE is serverAuth, clientAuth or both (default).
cert() {
  local name=$1 cn=$2 org=${3:-} sans=${4:-} usage=${5:-serverAuth,clientAuth} subj ext
  subj="/CN=$cn"
  [[ -z $org ]] || subj="/O=$org$subj"
  ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$usage"
  [[ -z $sans ]] || ext+="
subjectAltName=$sans"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 7 -sha256 -extfile <(echo "$ext") -out "$PKI/$name.crt" 2>/dev/null ||
    cl_die "openssl could not sign $name"
  rm -f "$PKI/$name.csr"
}

# kubeconfig NAME SERVER: $CL_DIR/NAME.kubeconfig with the client certificate $PKI/NAME.
kubeconfig() {
  local name=$1 server=$2 file=$CL_DIR/$1.kubeconfig
  (umask 077 && cat > "$file") <<YAML
apiVersion: v1
kind: Config
clusters:
- name: $CL
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$name.crt")
    client-key-data: $(base64 -w0 < "$PKI/$name.key")
contexts:
- name: $CL
  context: {cluster: $CL, user: $name}
current-context: $CL
YAML
}

make_pki() {
  local n api_port
  api_port=$(<"$CL_DIR/api-port")
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=$CL-ca" -days 7 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$PKI/ca.crt" 2>/dev/null || cl_die "openssl could not make the CA"

  cert etcd-server etcd "" "IP:127.0.0.1,DNS:localhost" serverAuth
  cert apiserver-etcd-client kube-apiserver-etcd-client "" "" clientAuth
  cert apiserver kube-apiserver "" \
    "IP:$CP_IP,IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost" \
    serverAuth
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" clientAuth
  cert admin admin system:masters "" clientAuth
  cert controller-manager system:kube-controller-manager "" "" clientAuth
  cert scheduler system:kube-scheduler "" "" clientAuth
  cert kube-proxy system:kube-proxy "" "" clientAuth
  for n in "${NODES[@]}"; do
    # kubelet's client certificate (the Node authorizer knows it by this name) and its serving
    # certificate (the API server checks it against the CA: --kubelet-certificate-authority).
    cert "kubelet-n$n" "system:node:$(node_name "$n")" system:nodes "" clientAuth
    cert "kubelet-serving-n$n" "$(node_name "$n")" "" "IP:$(node_ip "$n"),DNS:$(node_name "$n")" serverAuth
  done
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key" 2>/dev/null
  openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null

  kubeconfig admin "https://127.0.0.1:$api_port"
  kubeconfig controller-manager "https://$CP_IP:$API_PORT"
  kubeconfig scheduler "https://$CP_IP:$API_PORT"
  kubeconfig kube-proxy "https://$CP_IP:$API_PORT"
  for n in "${NODES[@]}"; do kubeconfig "kubelet-n$n" "https://$CP_IP:$API_PORT"; done
}
