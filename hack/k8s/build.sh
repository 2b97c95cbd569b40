#!/usr/bin/env bash
# Builds Kubernetes binaries (default: kubelet) and etcd from the Go module proxy and caches them,
# one directory per Kubernetes release. Usage: hack/k8s/build.sh [BINARY...]; prints the cache
# directory.
#
# `go install k8s.io/kubernetes/cmd/X@vY` cannot work: kubernetes's go.mod replaces its staging
# modules (k8s.io/api, k8s.io/client-go, ...) with local paths. So this builds from a scratch
# module that requires k8s.io/kubernetes and replaces each staging module with its published
# version, the list read from that release's own go.mod (it changes between releases).
# etcd and etcdctl (`go install` fails for them too: their go.mod files replace etcd's other
# modules with local paths) come from a second scratch module requiring go.etcd.io/etcd/server/v3
# and etcdctl/v3 at the etcd version the Kubernetes release's own go.mod names.
#
# Environment: K8S_VERSION (default below), ETCD_VERSION (default: the release's), BERTH_K8S_CACHE
# (default /var/cache/berth-k8s), BERTH_GO_BUILD_P (go build -p: packages built at once; default
# Go's, one per CPU). A binary is rebuilt only when its stamp is missing or names another version.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
CACHE="${BERTH_K8S_CACHE:-/var/cache/berth-k8s}/$K8S_VERSION"
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

# The binaries this script knows, by name: the main package each one is built from.
declare -A MAIN_PKG=(
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
)
# The Kubernetes e2e test binary (`go test -c`), agnhost, the image most e2e specs run (built
# like the rest, with cgo: its image is Debian's), and the ginkgo CLI that runs e2e.test in parallel
# (at the version the release's go.mod names).
declare -A TEST_PKG=(
  [e2e.test]=k8s.io/kubernetes/test/e2e
  [agnhost]=k8s.io/kubernetes/test/images/agnhost
  [ginkgo]=github.com/onsi/ginkgo/v2/ginkgo
)
declare -A ETCD_PKG=(
  [etcd]=go.etcd.io/etcd/server/v3
  [etcdctl]=go.etcd.io/etcd/etcdctl/v3
)

die() { echo "k8s/build: $*" >&2; exit 1; }
log() { echo "k8s/build: $*" >&2; }

(($#)) || set -- kubelet
k8s_bins=() etcd_bins=() test_bins=()
for bin in "$@"; do
  if [[ -n "${MAIN_PKG[$bin]:-}" ]]; then
    k8s_bins+=("$bin")
  elif [[ -n "${TEST_PKG[$bin]:-}" ]]; then
    test_bins+=("$bin")
  elif [[ -n "${ETCD_PKG[$bin]:-}" ]]; then
    etcd_bins+=("$bin")
  else
    die "unknown binary '$bin' (known: $(printf '%s\n' "${!MAIN_PKG[@]}" "${!TEST_PKG[@]}" "${!ETCD_PKG[@]}" | sort | xargs))"
  fi
done
# Staging modules are published as v0.<minor>.<patch> for kubernetes v1.<minor>.<patch>.
[[ "$K8S_VERSION" =~ ^v1\.([0-9]+\.[0-9]+)$ ]] || die "K8S_VERSION must look like v1.37.2, got $K8S_VERSION"
STAGING_VERSION="v0.${BASH_REMATCH[1]}"
command -v go >/dev/null || die "go not found (install Go 1.26+ in /usr/local/go)"
command -v jq >/dev/null || die "jq not found (hack/install-deps.sh installs it)"

go_p=()
[[ -n "${BERTH_GO_BUILD_P:-}" ]] && go_p=(-p "$BERTH_GO_BUILD_P")

# The go.mod of the Kubernetes release (from the module cache after the first download).
k8s_gomod() {
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | jq -r .GoMod)
  [[ -f "$gomod" ]] || die "go mod download k8s.io/kubernetes@$K8S_VERSION gave no go.mod"
  echo "$gomod"
}

# stamp_ok BINARY VERSION: the cached binary was built for VERSION.
stamp_ok() { [[ -x "$CACHE/$1" && "$(cat "$CACHE/.stamp-$1" 2>/dev/null)" == "$2" ]]; }

# pending VERSION BINARY...: prints the binaries whose stamp does not name VERSION.
pending() {
  local version=$1 bin
  shift
  for bin in "$@"; do stamp_ok "$bin" "$version" || echo "$bin"; done
}

# install_built BINARY VERSION [VERSION-ARGS...]: moves the fresh build in place once it reports
# VERSION, then stamps it.
install_built() {
  local bin=$1 version=$2
  shift 2
  local out
  mv -f "$CACHE/$bin.new" "$CACHE/$bin"
  # Captured first: `grep -q` ending the pipe early would fail it (SIGPIPE) under pipefail.
  out=$("$CACHE/$bin" "$@" 2>/dev/null) || true
  [[ $out == *"${version#v}"* ]] || die "$CACHE/$bin $* does not report $version: $out"
  echo "$version" > "$CACHE/.stamp-$bin"
}

# k8s_staging: reads the staging modules of the release into $staging, its go directive into
# $go_directive (the caller's local).
k8s_staging() {
  local gomod
  log "reading the staging modules of k8s.io/kubernetes@$K8S_VERSION"
  gomod=$(k8s_gomod)
  mapfile -t staging < <(go mod edit -json "$gomod" |
    jq -r '.Replace[]? | select(.New.Path | startswith("./staging/")) | .Old.Path' | sort -u)
  ((${#staging[@]} > 0)) || die "no staging replace directives in $gomod"
  go_directive=$(go mod edit -json "$gomod" | jq -r .Go)
  log "${#staging[@]} staging modules at $STAGING_VERSION; go $go_directive"
}

# scratch_gomod DIR GO-DIRECTIVE: a fresh DIR with the scratch module's go.mod ($staging replaced).
scratch_gomod() {
  local src=$1 m
  rm -rf "$src"
  mkdir -p "$src"
  {
    echo "module scratch"
    echo
    echo "go $2"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    for m in "${staging[@]}"; do echo "replace $m => $m $STAGING_VERSION"; done
  } > "$src/go.mod"
}

# k8s_ldflags: the proxy records no commit: set the version variables kubernetes's own build
# sets, or the binaries report v0.0.0 (and kubelet's version checks misbehave).
k8s_ldflags() {
  local minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local build_date ldflags="-s -w" pkg
  build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
  done
  echo "$ldflags"
}

build_k8s() {
  local todo bin start go_directive
  mapfile -t todo < <(pending "$K8S_VERSION" "$@")
  ((${#todo[@]})) || return 0
  # One build at a time per module (two CI runs on one machine would otherwise race on it).
  exec 9> "$CACHE/.lock"
  flock 9
  mapfile -t todo < <(pending "$K8S_VERSION" "$@")
  ((${#todo[@]})) || { exec 9>&-; return 0; }

  k8s_staging

  # The scratch module is rebuilt from nothing each time: it is cheap next to the compile.
  local src="$CACHE/src"
  scratch_gomod "$src" "$go_directive"
  {
    echo "//go:build tools"
    echo
    echo "// Package tools pins the Kubernetes commands this module builds."
    echo "package tools"
    echo
    echo "import ("
    for bin in "${!MAIN_PKG[@]}"; do echo "	_ \"${MAIN_PKG[$bin]}\""; done | sort
    echo ")"
  } > "$src/tools.go"
  (cd "$src" && go mod tidy) || die "go mod tidy failed in $src"

  local ldflags
  ldflags=$(k8s_ldflags)

  for bin in "${todo[@]}"; do
    log "building $bin $K8S_VERSION (kubelet: about 15 minutes on 2 cores; each other one less once kubelet's packages are cached)"
    start=$SECONDS
    (cd "$src" && nice -n 19 go build "${go_p[@]}" -trimpath -tags=selinux,notest,grpcnotrace \
      -ldflags "$ldflags" -o "$CACHE/$bin.new" "${MAIN_PKG[$bin]}") || die "go build $bin failed"
    if [[ $bin == kubectl ]]; then
      install_built "$bin" "$K8S_VERSION" version --client
    else
      install_built "$bin" "$K8S_VERSION" --version
    fi
    log "built $CACHE/$bin in $((SECONDS - start))s"
  done
  exec 9>&-
}

# build_tests BINARY...: e2e.test and agnhost, from a scratch module of their own (src-e2e) whose
# tools.go imports what e2e's test files and agnhost's main package import (go mod tidy does not
# follow a dependency's tests).
build_tests() {
  local todo bin start go_directive ldflags src="$CACHE/src-e2e"
  mapfile -t todo < <(pending "$K8S_VERSION" "$@")
  ((${#todo[@]})) || return 0
  exec 7> "$CACHE/.lock-e2e"
  flock 7
  mapfile -t todo < <(pending "$K8S_VERSION" "$@")
  ((${#todo[@]})) || { exec 7>&-; return 0; }
  k8s_staging
  scratch_gomod "$src" "$go_directive"
  {
    echo "//go:build tools"
    echo
    echo "// Package tools pins what the e2e test binary and agnhost import."
    echo "package tools"
    echo
    echo "import ("
    (cd "$src" && go list -mod=mod -f '{{join .TestImports "\n"}}' "${TEST_PKG[e2e.test]}" &&
      go list -mod=mod -f '{{join .Imports "\n"}}' "${TEST_PKG[agnhost]}") |
      grep '\.' | sort -u | sed 's/.*/\t_ "&"/'
    echo ")"
  } > "$src/tools.go"
  (cd "$src" && go mod tidy) || die "go mod tidy failed in $src"
  ldflags=$(k8s_ldflags)
  for bin in "${todo[@]}"; do
    log "building $bin $K8S_VERSION (e2e.test: about 15 minutes on 2 cores once kubelet's packages are cached)"
    start=$SECONDS
    if [[ $bin == e2e.test ]]; then
      (cd "$src" && nice -n 19 go test -c "${go_p[@]}" -trimpath -tags=selinux,notest,grpcnotrace \
        -ldflags "$ldflags" -o "$CACHE/$bin.new" "${TEST_PKG[$bin]}") || die "go test -c $bin failed"
      install_built "$bin" "$K8S_VERSION" --version
    else
      (cd "$src" && nice -n 19 go build "${go_p[@]}" -trimpath -tags=selinux,notest,grpcnotrace \
        -ldflags "$ldflags" -o "$CACHE/$bin.new" "${TEST_PKG[$bin]}") || die "go build $bin failed"
      # agnhost and ginkgo report their own versions, not Kubernetes's: they must run.
      mv -f "$CACHE/$bin.new" "$CACHE/$bin"
      if [[ $bin == agnhost ]]; then
        "$CACHE/$bin" --help 2>&1 | grep -q netexec || die "$CACHE/$bin does not run"
      else
        "$CACHE/$bin" version | grep -q 'Ginkgo Version' || die "$CACHE/$bin does not run"
      fi
      echo "$K8S_VERSION" > "$CACHE/.stamp-$bin"
    fi
    log "built $CACHE/$bin in $((SECONDS - start))s"
  done
  exec 7>&-
}

build_etcd() {
  local version=${ETCD_VERSION:-} todo bin start go_directive
  if [[ -z $version ]]; then
    # The etcd the release was tested with: its go.mod requires go.etcd.io/etcd/server/v3.
    version=$(go mod edit -json "$(k8s_gomod)" |
      jq -r '.Require[] | select(.Path == "go.etcd.io/etcd/server/v3") | .Version')
    [[ $version == v3.* ]] || die "k8s.io/kubernetes@$K8S_VERSION names no go.etcd.io/etcd/server/v3; set ETCD_VERSION"
  fi
  mapfile -t todo < <(pending "$version" "$@")
  ((${#todo[@]})) || return 0
  exec 8> "$CACHE/.lock-etcd"
  flock 8
  mapfile -t todo < <(pending "$version" "$@")
  ((${#todo[@]})) || { exec 8>&-; return 0; }

  local src="$CACHE/src-etcd" gomod
  gomod=$(go mod download -json "go.etcd.io/etcd/server/v3@$version" | jq -r .GoMod)
  [[ -f "$gomod" ]] || die "go mod download go.etcd.io/etcd/server/v3@$version gave no go.mod"
  go_directive=$(go mod edit -json "$gomod" | jq -r .Go)
  log "etcd $version; go $go_directive"
  rm -rf "$src"
  mkdir -p "$src"
  {
    echo "module scratch-etcd"
    echo
    echo "go $go_directive"
    echo
    echo "require ("
    for bin in "${!ETCD_PKG[@]}"; do echo "	${ETCD_PKG[$bin]} $version"; done | sort
    echo ")"
  } > "$src/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "// Package tools pins the etcd commands this module builds."
    echo "package tools"
    echo
    echo "import ("
    for bin in "${!ETCD_PKG[@]}"; do echo "	_ \"${ETCD_PKG[$bin]}\""; done | sort
    echo ")"
  } > "$src/tools.go"
  (cd "$src" && go mod tidy) || die "go mod tidy failed in $src"

  for bin in "${todo[@]}"; do
    log "building $bin $version"
    start=$SECONDS
    (cd "$src" && nice -n 19 go build "${go_p[@]}" -trimpath -ldflags "-s -w" \
      -o "$CACHE/$bin.new" "${ETCD_PKG[$bin]}") || die "go build $bin failed"
    if [[ $bin == etcdctl ]]; then
      install_built "$bin" "$version" version
    else
      install_built "$bin" "$version" --version
    fi
    log "built $CACHE/$bin in $((SECONDS - start))s"
  done
  exec 8>&-
}

mkdir -p "$CACHE"
((${#k8s_bins[@]} == 0)) || build_k8s "${k8s_bins[@]}"
((${#etcd_bins[@]} == 0)) || build_etcd "${etcd_bins[@]}"
((${#test_bins[@]} == 0)) || build_tests "${test_bins[@]}"
echo "$CACHE"
