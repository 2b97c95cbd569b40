#!/usr/bin/env bash
# Builds berth's test images from Debian packages and pushes them to the local plain registry
# (127.0.0.1:5000, started here through hack/registry.sh). docs/test-fixtures.md describes each image.
#
#   hack/testimages/build.sh [--force] [UNIT...]
#
# An image whose tags all resolve in the registry already is skipped unless --force is given. UNITs
# (busybox, debian, layered-gzip, layered-zstd, multiarch, multiarch-arm-only, hostile-<tag>) limit the
# run to those images. Needs root (debootstrap) and the Debian mirror of /etc/apt; the downloaded .debs
# and the debootstrap result are cached in $BERTH_TEST_DIR/cache, so later runs need neither.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
HACK=$(dirname "$HERE")
DIR=${BERTH_TEST_DIR:-/var/lib/berth-test}
CACHE=$DIR/cache
BUILD=$DIR/build
IMAGES=$DIR/images
PYTHON=${PYTHON:-python3}
ACCEPT="application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"

die() { echo "build.sh: $*" >&2; exit 1; }
log() { echo "--- $*" >&2; }

FORCE=0
ONLY=()
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) die "unknown flag $arg" ;;
    *) ONLY+=("$arg") ;;
  esac
done

# ---------------------------------------------------------------------------------------------------
# Sources: busybox-static .debs for amd64 and arm64, a debootstrap'd Debian. Each is prepared once per
# run and only when an image that needs it is built.

# Prints the cached .deb of $1 for architecture $2, downloading it with apt on first use.
fetch_deb() {
  local pkg=$1 arch=$2 deb
  mkdir -p "$CACHE/debs"
  deb=$(find "$CACHE/debs" -name "${pkg}_*_${arch}.deb" | sort | tail -n 1)
  if [[ -z $deb ]]; then
    if [[ $arch != "$(dpkg --print-architecture)" ]] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
      log "adding dpkg architecture $arch"
      dpkg --add-architecture "$arch"
      apt-get update -qq
    fi
    log "downloading $pkg:$arch"
    if ! (cd "$CACHE/debs" && apt-get download -qq "$pkg:$arch" 2>/dev/null); then
      apt-get update -qq
      (cd "$CACHE/debs" && apt-get download -qq "$pkg:$arch") || die "apt-get download $pkg:$arch failed"
    fi
    deb=$(find "$CACHE/debs" -name "${pkg}_*_${arch}.deb" | sort | tail -n 1)
    [[ -n $deb ]] || die "apt-get download $pkg:$arch left no .deb in $CACHE/debs"
  fi
  echo "$deb"
}

# The ELF machine of $1: 62 = x86-64, 183 = aarch64. Guards against shipping the wrong binary.
elf_machine() { od -An -t u2 -j 18 -N 2 "$1" | tr -d ' '; }

# Stages the busybox rootfs for $1 (amd64|arm64) and exports BUSYBOX_<ARCH>_ROOTFS.
prepare_busybox() {
  local arch=$1 var deb root want
  var="BUSYBOX_${arch^^}_ROOTFS"
  [[ -n ${!var:-} ]] && return 0
  deb=$(fetch_deb busybox-static "$arch")
  rm -rf "$BUILD/busybox-$arch"
  mkdir -p "$BUILD/busybox-$arch/deb"
  dpkg-deb -x "$deb" "$BUILD/busybox-$arch/deb"
  case $arch in amd64) want=62 ;; arm64) want=183 ;; *) die "no ELF machine known for $arch" ;; esac
  [[ $(elf_machine "$BUILD/busybox-$arch/deb/bin/busybox") == "$want" ]] ||
    die "$deb: bin/busybox is not an $arch binary"
  # The applet list comes from the amd64 binary (the one this host can run); both .debs are the
  # same busybox version and configuration.
  if [[ $arch == amd64 ]]; then
    "$BUILD/busybox-amd64/deb/bin/busybox" --list-full | grep -vx -e bin/busybox -e linuxrc | sort \
      >"$BUILD/busybox-applets.txt"
  else
    prepare_busybox amd64
  fi
  root=$BUILD/busybox-$arch/rootfs
  mkdir -p "$root"
  (
    cd "$root"
    umask 022
    mkdir -p bin dev etc home/app proc root sys tmp usr/bin usr/sbin sbin var
    chmod 0700 root
    chmod 1777 tmp
    install -m 0755 "$BUILD/busybox-$arch/deb/bin/busybox" bin/busybox
    install -m 0644 "$HERE/files/busybox/etc/passwd" "$HERE/files/busybox/etc/group" etc/
    while read -r applet; do ln -s /bin/busybox "$applet"; done <"$BUILD/busybox-applets.txt"
  )
  export "$var=$root"
}

# The Debian mirror apt uses here (deb822 sources first, then sources.list), for debootstrap.
debian_mirror() {
  local uri=""
  if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    uri=$(awk '/^URIs:/ {u = $2} /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == "bookworm") {print u; exit}}' \
      /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $uri && -r /etc/apt/sources.list ]]; then
    uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)
  fi
  echo "${BERTH_TEST_DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

# Runs debootstrap once (cached in $CACHE/debian-bookworm) and exports DEBIAN_ROOTFS.
prepare_debian() {
  [[ -n ${DEBIAN_ROOTFS:-} ]] && return 0
  local cached=$CACHE/debian-bookworm mirror
  if [[ ! -e $cached/complete ]]; then
    [[ $EUID -eq 0 ]] || die "debootstrap needs root"
    command -v debootstrap >/dev/null || die "debootstrap is missing; run hack/install-deps.sh"
    mirror=$(debian_mirror)
    log "debootstrap --variant=minbase bookworm from $mirror (about a minute; cached afterwards)"
    rm -rf "$cached"
    mkdir -p "$cached"
    debootstrap --variant=minbase bookworm "$cached/rootfs" "$mirror" >"$cached/debootstrap.log" 2>&1 ||
      die "debootstrap failed; see $cached/debootstrap.log"
    (
      # What a container image does not carry: host-specific files, device nodes, apt's lists and
      # downloaded packages, logs of the bootstrap itself.
      cd "$cached/rootfs"
      find dev tmp var/tmp -mindepth 1 -delete
      rm -f etc/hostname etc/resolv.conf var/log/bootstrap.log var/log/dpkg.log var/log/alternatives.log
      find var/log/apt -type f -delete
      find var/cache/apt -name '*.deb' -delete
      rm -f var/cache/apt/*.bin var/cache/debconf/*-old var/lib/dpkg/*-old
      find var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name partial ! -name lock -exec rm -rf {} +
    )
    touch "$cached/complete"
  fi
  export DEBIAN_ROOTFS=$cached/rootfs
}

# ---------------------------------------------------------------------------------------------------
# Images

BUILT=()   # repo:tag of every image of this run, built or skipped, for the table at the end

tag_exists() {
  curl -sf -o /dev/null -I -H "Accept: $ACCEPT" "http://$REGISTRY/v2/$1/manifests/$2"
}

wanted() {
  ((${#ONLY[@]} == 0)) && return 0
  local u
  for u in "${ONLY[@]}"; do [[ $u == "$1" ]] && return 0; done
  return 1
}

# image UNIT SPEC REPO "TAG..." [mkimage args...]: builds SPEC into $IMAGES/UNIT and pushes it.
image() {
  local unit=$1 spec=$HERE/images/$2 repo=$3 tags=$4 tag missing=0
  shift 4
  wanted "$unit" || return 0
  for tag in $tags; do
    BUILT+=("$repo:$tag")
    tag_exists "$repo" "$tag" || missing=1
  done
  if ((missing == 0 && FORCE == 0)); then
    log "$unit: $repo:{${tags// /,}} already in the registry (--force rebuilds)"
    return 0
  fi
  grep -q '\$BUSYBOX_AMD64_ROOTFS' "$spec" && prepare_busybox amd64
  grep -q '\$BUSYBOX_ARM64_ROOTFS' "$spec" && prepare_busybox arm64
  grep -q '\$DEBIAN_ROOTFS' "$spec" && prepare_debian
  log "$unit: building $(basename "$spec")"
  local tag_args=()
  for tag in $tags; do tag_args+=(--tag "$tag"); done
  "$PYTHON" "$HERE/mkimage.py" "$spec" "$IMAGES/$unit" "${tag_args[@]}" "$@" >/dev/null
  "$PYTHON" "$HERE/push.py" --registry "http://$REGISTRY" "$IMAGES/$unit" "$repo"
}

main() {
  for tool in curl dpkg-deb apt-get od "$PYTHON"; do
    command -v "$tool" >/dev/null || die "$tool is missing; run hack/install-deps.sh"
  done
  "$HACK/registry.sh" start >/dev/null
  eval "$("$HACK/registry.sh" env)"
  REGISTRY=$BERTH_TEST_REGISTRY
  mkdir -p "$CACHE" "$BUILD" "$IMAGES"

  image busybox busybox.json library/busybox "latest 1.36"
  image debian debian.json library/debian bookworm
  image layered-gzip layered.json test/layered gzip --compression gzip
  image layered-zstd layered.json test/layered zstd --compression zstd
  image multiarch multiarch.json test/multiarch latest
  image multiarch-arm-only multiarch-arm-only.json test/multiarch arm-only
  local hostile
  for hostile in dotdot absolute symlink-escape hardlink-escape symlink-parent bomb bad-diffid bad-size; do
    image "hostile-$hostile" "hostile-$hostile.json" test/hostile "$hostile"
  done
  ((${#BUILT[@]})) || die "no unit named ${ONLY[*]}"

  # The table, also kept as $DIR/images.tsv (image, manifest digest, media type) for tests.
  local ref repo tag headers digest type
  : >"$DIR/images.tsv.tmp"
  printf '\n%-32s %-52s %s\n' IMAGE "MEDIA TYPE" DIGEST
  for ref in "${BUILT[@]}"; do
    repo=${ref%:*} tag=${ref##*:}
    headers=$(curl -sf -I -H "Accept: $ACCEPT" "http://$REGISTRY/v2/$repo/manifests/$tag") ||
      die "$REGISTRY/$ref does not resolve after the push"
    digest=$(awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}' <<<"$headers" | tr -d '\r')
    type=$(awk -F': ' 'tolower($1) == "content-type" {print $2}' <<<"$headers" | tr -d '\r')
    printf '%-32s %-52s %s\n' "$ref" "$type" "$digest"
    printf '%s/%s\t%s\t%s\n' "$REGISTRY" "$ref" "$digest" "$type" >>"$DIR/images.tsv.tmp"
  done
  if ((${#ONLY[@]} == 0)); then mv "$DIR/images.tsv.tmp" "$DIR/images.tsv"; else rm -f "$DIR/images.tsv.tmp"; fi
}

main
