#!/usr/bin/env bash
# Builds Kubernetes binaries (default: kubelet) from the Go module proxy and caches them, one
# directory per release. Usage: hack/k8s/build.sh [BINARY...]; prints the cache directory.
#
# `go install k8s.io/kubernetes/cmd/X@vY` cannot work: kubernetes's go.mod replaces its staging
# modules (k8s.io/api, k8s.io/client-go, ...) with local paths. So this builds from a scratch
# module that requires k8s.io/kubernetes and replaces each staging module with its published
# version, the list read from that release's own go.mod (it changes between releases).
#
# Environment: K8S_VERSION (default below), BERTH_K8S_CACHE (default /var/cache/berth-k8s).
# A binary is rebuilt only when its stamp is missing or names another version.
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

die() { echo "k8s/build: $*" >&2; exit 1; }
log() { echo "k8s/build: $*" >&2; }

(($#)) || set -- kubelet
for bin in "$@"; do
  [[ -n "${MAIN_PKG[$bin]:-}" ]] || die "unknown binary '$bin' (known: $(printf '%s\n' "${!MAIN_PKG[@]}" | sort | xargs))"
done
# Staging modules are published as v0.<minor>.<patch> for kubernetes v1.<minor>.<patch>.
[[ "$K8S_VERSION" =~ ^v1\.([0-9]+\.[0-9]+)$ ]] || die "K8S_VERSION must look like v1.37.2, got $K8S_VERSION"
STAGING_VERSION="v0.${BASH_REMATCH[1]}"
command -v go >/dev/null || die "go not found (install Go 1.26+ in /usr/local/go)"
command -v jq >/dev/null || die "jq not found (hack/install-deps.sh installs it)"

stamp_ok() { [[ -x "$CACHE/$1" && "$(cat "$CACHE/.stamp-$1" 2>/dev/null)" == "$K8S_VERSION" ]]; }
todo=()
for bin in "$@"; do stamp_ok "$bin" || todo+=("$bin"); done
if ((${#todo[@]} == 0)); then
  echo "$CACHE"
  exit 0
fi

# One build at a time per cache (two CI runs on one machine would otherwise race on the module).
mkdir -p "$CACHE"
exec 9> "$CACHE/.lock"
flock 9
todo=()
for bin in "$@"; do stamp_ok "$bin" || todo+=("$bin"); done
((${#todo[@]})) || { echo "$CACHE"; exit 0; }

log "reading the staging modules of k8s.io/kubernetes@$K8S_VERSION"
gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | jq -r .GoMod)
[[ -f "$gomod" ]] || die "go mod download k8s.io/kubernetes@$K8S_VERSION gave no go.mod"
mapfile -t staging < <(go mod edit -json "$gomod" |
  jq -r '.Replace[]? | select(.New.Path | startswith("./staging/")) | .Old.Path' | sort -u)
((${#staging[@]} > 0)) || die "no staging replace directives in $gomod"
go_directive=$(go mod edit -json "$gomod" | jq -r .Go)
log "${#staging[@]} staging modules at $STAGING_VERSION; go $go_directive"

# The scratch module is rebuilt from nothing each time: it is cheap next to the compile.
src="$CACHE/src"
rm -rf "$src"
mkdir -p "$src"
{
  echo "module scratch"
  echo
  echo "go $go_directive"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  for m in "${staging[@]}"; do echo "replace $m => $m $STAGING_VERSION"; done
} > "$src/go.mod"
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

# The proxy records no commit: set the version variables kubernetes's own build sets, or the
# binaries report v0.0.0 (and kubelet's version checks misbehave).
minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

for bin in "${todo[@]}"; do
  log "building $bin $K8S_VERSION (about 15 minutes for kubelet on 2 cores)"
  start=$SECONDS
  (cd "$src" && nice go build -trimpath -tags=selinux,notest,grpcnotrace \
    -ldflags "$ldflags" -o "$CACHE/$bin.new" "${MAIN_PKG[$bin]}") || die "go build $bin failed"
  mv -f "$CACHE/$bin.new" "$CACHE/$bin"
  version_args=(--version)
  [[ $bin == kubectl ]] && version_args=(version --client)
  "$CACHE/$bin" "${version_args[@]}" 2>/dev/null | grep -q "$K8S_VERSION" ||
    die "$CACHE/$bin --version does not report $K8S_VERSION"
  echo "$K8S_VERSION" > "$CACHE/.stamp-$bin"
  log "built $CACHE/$bin in $((SECONDS - start))s"
done
echo "$CACHE"
