#!/usr/bin/env bash
# Builds berth's test images from Debian packages and pushes them to the local plain registry
# (127.0.0.1:5000, started here through hack/registry.sh). docs/test-fixtures.md describes each image.
#
#   hack/testimages/build.sh [--force] [UNIT...]
#
# Without UNITs it builds every image any test, e2e script or critest pulls: this is the one place
# test images come from, and hack/test-all.sh runs it before the first test. An image whose tags all
# resolve in the registry already is skipped unless --force is given. UNITs (busybox, debian,
# debian-zstd, layered-gzip, layered-zstd, multiarch, multiarch-arm-only, hostile-<tag>, critest-<name>) limit the
# run to those images; `critest` names all the critest-* units (the images critest pulls). Needs root
# (debootstrap, chroot) and a Debian bookworm source in apt's configuration (its mirror is read from
# `apt-get indextargets`); downloads, builds and the debootstrap result are cached in
# $BERTH_TEST_DIR/cache.
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
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) die "unknown flag $arg" ;;
    *) ONLY+=("$arg") ;;
  esac
done

# ---------------------------------------------------------------------------------------------------
# Sources: busybox-static .debs for amd64 and arm64, a debootstrap'd Debian. Each is prepared once per
# run and only when an image that needs it is built.

# Prints the cached .deb of $1 for architecture $2 (or of an Architecture: all package), downloading it
# with apt on first use.
fetch_deb() {
  local pkg=$1 arch=$2 deb
  mkdir -p "$CACHE/debs"
  deb=$(find "$CACHE/debs" \( -name "${pkg}_*_${arch}.deb" -o -name "${pkg}_*_all.deb" \) | sort | tail -n 1)
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
    deb=$(find "$CACHE/debs" \( -name "${pkg}_*_${arch}.deb" -o -name "${pkg}_*_all.deb" \) | sort | tail -n 1)
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

# The Debian mirror apt uses here for bookworm (whatever the form of its sources), for debootstrap;
# BERTH_TEST_DEBIAN_MIRROR overrides it. No mirror is assumed: without one the build stops.
debian_mirror() {
  local uri=${BERTH_TEST_DEBIAN_MIRROR:-}
  if [[ -z $uri ]]; then
    uri=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Identifier: Packages' 2>/dev/null |
      awk '$1 == "bookworm" {print $2; exit}')
  fi
  [[ -n $uri ]] || die "no Debian bookworm source in apt's configuration (/etc/apt/sources.list*): \
add one, or set BERTH_TEST_DEBIAN_MIRROR"
  echo "${uri%/}"
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
# Sources of the critest images (docs/test-fixtures.md, "The critest images").

# Sets APT_SRC_OPTS: apt-get options for a private deb-src list of the Debian mirror kept in $1 (the
# host's apt sources stay untouched).
apt_src_opts() {
  local dir=$1
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
  printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: %s\n' \
    "$(debian_mirror)" /usr/share/keyrings/debian-archive-keyring.gpg >"$dir/debian-src.sources"
  APT_SRC_OPTS=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$dir" -o "Dir::State::Lists=$dir/lists"
    -o "Dir::Cache=$dir/cache" -o Debug::NoLocking=1)
}

# The busybox of the critest images, built in Debian's unpacked source tree (the current directory):
# upstream's default configuration, static (Debian's busybox packages lack applets the busybox image has
# and critest runs: ipcs, pgrep, adduser ...), and one switch Debian's source adds,
# FEATURE_DI_ENV_HACK (debian/patches/temp-deb-installer-hack.patch, off in upstream's defconfig): ash
# then takes every environment entry that has a `=` as an exported variable, where 1.35 otherwise
# drops those whose names are not shell names (`data-1`, `1-x`, `#@!x`), so `sh -c env` did not pass
# them on. Kubernetes makes such names from envFrom, and its conformance specs run `sh -c env` in
# upstream's busybox image (1.36 and later keep them: ash imports them the same way). The build checks
# the result. prepare_busybox_src rebuilds when this function's text changes.
make_busybox_src() {
  local out
  export SOURCE_DATE_EPOCH=1704067200 # the build time busybox prints: fixed, like the layers'
  # (Each step checked by hand: the caller runs this in a `||` list, where set -e does not act.)
  make defconfig >/dev/null || return 1
  sed -i -e 's/^# CONFIG_STATIC is not set$/CONFIG_STATIC=y/' \
    -e 's/^# CONFIG_FEATURE_DI_ENV_HACK is not set$/CONFIG_FEATURE_DI_ENV_HACK=y/' .config || return 1
  grep -qx CONFIG_STATIC=y .config && grep -qx CONFIG_FEATURE_DI_ENV_HACK=y .config ||
    { echo "build.sh: .config lacks CONFIG_STATIC=y or CONFIG_FEATURE_DI_ENV_HACK=y"; return 1; }
  make -j"$(nproc)" || return 1
  out=$(env -i 'data-1=value-1' '#@!x=y' ./busybox sh -c './busybox env')
  grep -qxF data-1=value-1 <<<"$out" && grep -qxF '#@!x=y' <<<"$out" ||
    { echo "build.sh: this busybox's sh -c env drops data-1 or #@!x: $out"; return 1; }
}

# The hash that names make_busybox_src's recipe (its text, as bash prints it).
busybox_src_recipe() { declare -f make_busybox_src | sha256sum | cut -c1-16; }

# Builds busybox from Debian's source package with make_busybox_src, once (cached in
# $CACHE/busybox-src; rebuilt when make_busybox_src changes: `recipe` holds a hash of it); stages the
# busybox image's layout (every applet hard-linked in /bin, the usual users) and exports
# BUSYBOX_SRC_ROOTFS.
prepare_busybox_src() {
  [[ -n ${BUSYBOX_SRC_ROOTFS:-} ]] && return 0
  local src=$CACHE/busybox-src root applet tool recipe
  recipe=$(busybox_src_recipe)
  if [[ ! -x $src/busybox || $(cat "$src/recipe" 2>/dev/null) != "$recipe" ]]; then
    for tool in dpkg-source make gcc; do
      command -v "$tool" >/dev/null || die "$tool is missing; run hack/install-deps.sh"
    done
    log "building busybox from Debian's source package (about a minute; cached afterwards)"
    rm -rf "$src"
    mkdir -p "$src/dl"
    apt_src_opts "$src/apt"
    apt-get "${APT_SRC_OPTS[@]}" update -qq || die "apt-get update of the deb-src list failed"
    (cd "$src/dl" && apt-get "${APT_SRC_OPTS[@]}" source --download-only -qq busybox 2>/dev/null) ||
      die "apt-get source busybox failed"
    dpkg-source -x "$src"/dl/busybox_*.dsc "$src/tree" >/dev/null || die "dpkg-source -x busybox failed"
    (cd "$src/tree" && make_busybox_src) >"$src/build.log" 2>&1 || die "busybox build failed; see $src/build.log"
    [[ $(elf_machine "$src/tree/busybox") == 62 ]] || die "$src/tree/busybox is not an amd64 binary"
    install -m 0755 "$src/tree/busybox" "$src/busybox.tmp"
    mv "$src/busybox.tmp" "$src/busybox"
    rm -rf "$src/tree" "$src/apt"
    echo "$recipe" >"$src/recipe"
  fi
  root=$BUILD/busybox-src/rootfs
  rm -rf "$BUILD/busybox-src"
  mkdir -p "$root"
  (
    cd "$root"
    umask 022
    mkdir -p bin dev etc home root tmp usr/sbin var/spool/mail var/www
    chmod 0700 root
    chmod 1777 tmp
    install -m 0755 "$src/busybox" bin/busybox
    for applet in $(bin/busybox --list); do
      [[ $applet == busybox || $applet == linuxrc ]] || ln bin/busybox "bin/$applet"
    done
    install -m 0644 "$CRITEST_FILES/busybox/etc/passwd" "$CRITEST_FILES/busybox/etc/group" etc/
    install -m 0640 "$CRITEST_FILES/busybox/etc/shadow" etc/
  )
  export BUSYBOX_SRC_ROOTFS=$root
}

# Compiles the programs of files/critest/bin (pause, nnp) statically; exports CRITEST_BIN.
prepare_critest_bin() {
  [[ -n ${CRITEST_BIN:-} ]] && return 0
  local out=$BUILD/critest-bin prog
  mkdir -p "$out"
  for prog in pause nnp; do
    gcc -static -Os -Wall -Wextra -Werror -o "$out/$prog" "$CRITEST_FILES/bin/$prog.c" || die "gcc $prog.c failed"
    strip "$out/$prog"
  done
  export CRITEST_BIN=$out
}

# prepare_debian_extract NAME BINARY PKG...: the files of the Debian packages PKG, unpacked with dpkg-deb -x
# (no maintainer scripts) into $BUILD/extract-NAME, for an image whose userland is the busybox layer, as in
# the alpine-based images critest uses; checks that BINARY finds all its shared libraries among them;
# exports EXTRACT_<NAME>_ROOT.
prepare_debian_extract() {
  local name=$1 binary=$2 var root pkg libs
  shift 2
  var="EXTRACT_${name^^}_ROOT"
  [[ -n ${!var:-} ]] && return 0
  root=$BUILD/extract-$name
  rm -rf "$root"
  mkdir -p "$root"
  for pkg in "$@"; do
    dpkg-deb -x "$(fetch_deb "$pkg" amd64)" "$root" || die "dpkg-deb -x $pkg failed"
  done
  libs=$(chroot "$root" /lib64/ld-linux-x86-64.so.2 --list "$binary" 2>&1) && ! grep -q 'not found' <<<"$libs" ||
    die "$name: $binary lacks libraries among $*: $libs"
  export "$var=$root"
}

# prepare_debian_pkgs NAME PKG...: installs PKGs (and what they need, no recommends) with dpkg on top of
# the debootstrap rootfs in an overlay mount, keeps the overlay's upper dir (what the install added or
# changed: one image layer) in $CACHE/debian-NAME, and exports DEBIAN_<NAME>_UPPER. Redone when the
# package versions apt would install (or the debootstrap rootfs) change.
prepare_debian_pkgs() {
  local name=$1 var dir plan apt_opts m
  shift
  var="DEBIAN_${name^^}_UPPER"
  [[ -n ${!var:-} ]] && return 0
  prepare_debian
  dir=$CACHE/debian-$name
  apt_opts=(-o "Dir::State::status=$DEBIAN_ROOTFS/var/lib/dpkg/status" -o Debug::NoLocking=1 --no-install-recommends)
  plan=$(stat -c 'debootstrap %Y' "$CACHE/debian-bookworm/complete" &&
    apt-get install -s -qq "${apt_opts[@]}" "$@" | grep '^Inst ') || die "apt-get cannot plan installing $*"
  if [[ ! -e $dir/complete || $(cat "$dir/complete") != "$plan" ]]; then
    [[ $EUID -eq 0 ]] || die "installing $* into the Debian rootfs needs root"
    log "$name: installing $* into the Debian rootfs (cached afterwards)"
    rm -rf "$dir"
    mkdir -p "$dir/debs/partial" "$dir/upper" "$dir/work" "$dir/merged"
    apt-get install -d -y -qq "${apt_opts[@]}" -o "Dir::Cache::archives=$dir/debs" "$@" >/dev/null ||
      die "apt-get could not download $* and its dependencies"
    m=$dir/merged
    (
      set -e
      trap 'umount "$m/proc" "$m/dev" "$m" 2>/dev/null || true' EXIT
      mount -t overlay overlay -o "lowerdir=$DEBIAN_ROOTFS,upperdir=$dir/upper,workdir=$dir/work" "$m"
      mount --bind /dev "$m/dev"
      mount -t proc proc "$m/proc"
      mkdir "$m/tmp/berth-debs"
      cp "$dir"/debs/*.deb "$m/tmp/berth-debs/"
      printf '#!/bin/sh\nexit 101\n' >"$m/usr/sbin/policy-rc.d" # no service starts in the chroot
      chmod 0755 "$m/usr/sbin/policy-rc.d"
      chroot "$m" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        sh -c 'dpkg -i /tmp/berth-debs/*.deb' >"$dir/dpkg.log" 2>&1
      # What the image does not carry, as for library/debian: the packages, logs, backups.
      rm -rf "$m/tmp/berth-debs" "$m/usr/sbin/policy-rc.d" "$m/var/log/dpkg.log" "$m/var/log/alternatives.log"
      find "$m/var/log/apt" -type f -delete
      rm -f "$m"/var/cache/debconf/*-old "$m"/var/lib/dpkg/*-old
    ) || die "installing $* failed; see $dir/dpkg.log"
    # A file the install deleted from the rootfs would be an overlay whiteout here (a 0:0 device),
    # which a layer cannot carry as is.
    if [[ -n $(find "$dir/upper" \( -type c -o -type b \) -print -quit) ]]; then
      die "installing $* deleted files of the Debian rootfs: $(find "$dir/upper" \( -type c -o -type b \) | head -n 5)"
    fi
    rm -rf "$dir/work" "$dir/merged" "$dir/debs"
    echo "$plan" >"$dir/complete"
  fi
  export "$var=$dir/upper"
}

# ---------------------------------------------------------------------------------------------------
# Images

BUILT=()   # repo:tag of every image of this run, built or skipped, for the table at the end

tag_exists() {
  curl -sf -o /dev/null -I -H "Accept: $ACCEPT" "http://$REGISTRY/v2/$1/manifests/$2"
}

# Without UNIT arguments every unit; `critest` names all the critest-* ones.
wanted() {
  local u
  ((${#ONLY[@]} == 0)) && return 0
  for u in "${ONLY[@]}"; do
    [[ $u == "$1" || ($u == critest && $1 == critest-*) ]] && return 0
  done
  return 1
}

# image_recipe SPEC TAGS [mkimage args...]: a hash of what the image is made from: the spec, its tags
# and arguments, mkimage.py, and for the critest images the busybox build (busybox_src_recipe).
image_recipe() {
  local spec=$1
  shift
  {
    cat "$spec" "$HERE/mkimage.py"
    printf 'arguments: %s\n' "$*"
    if grep -q '\$BUSYBOX_SRC_ROOTFS' "$spec"; then busybox_src_recipe; fi
  } | sha256sum | cut -c1-16
}

# image UNIT SPEC REPO "TAG..." [mkimage args...]: builds SPEC into $IMAGES/UNIT and pushes it. Skipped
# when every tag is in the registry and $IMAGES/UNIT.recipe, written after the push, holds the same
# image_recipe: a changed recipe rebuilds the image on a machine that has the older one.
image() {
  local unit=$1 spec=$HERE/images/$2 repo=$3 tags=$4 tag missing=0 recipe
  shift 4
  wanted "$unit" || return 0
  for tag in $tags; do
    BUILT+=("$repo:$tag")
    tag_exists "$repo" "$tag" || missing=1
  done
  recipe=$(image_recipe "$spec" "$tags" "$@")
  if ((missing == 0 && FORCE == 0)) && [[ $(cat "$IMAGES/$unit.recipe" 2>/dev/null) == "$recipe" ]]; then
    log "$unit: $repo:{${tags// /,}} already in the registry (--force rebuilds)"
    return 0
  fi
  ((missing == 0 && FORCE == 0)) && log "$unit: the registry's image has no recipe stamp or an older recipe: rebuilding"
  grep -q '\$BUSYBOX_AMD64_ROOTFS' "$spec" && prepare_busybox amd64
  grep -q '\$BUSYBOX_ARM64_ROOTFS' "$spec" && prepare_busybox arm64
  grep -q '\$DEBIAN_ROOTFS' "$spec" && prepare_debian
  grep -q '\$BUSYBOX_SRC_ROOTFS' "$spec" && prepare_busybox_src
  grep -q '\$CRITEST_BIN' "$spec" && prepare_critest_bin
  grep -q '\$EXTRACT_NGINX_ROOT' "$spec" &&
    prepare_debian_extract nginx /usr/sbin/nginx nginx nginx-common libc6 libgcc-s1 libcrypt1 libpcre2-8-0 libssl3 zlib1g
  grep -q '\$DEBIAN_APACHE2_UPPER' "$spec" && prepare_debian_pkgs apache2 apache2
  log "$unit: building $(basename "$spec")"
  local tag_args=()
  for tag in $tags; do tag_args+=(--tag "$tag"); done
  "$PYTHON" "$HERE/mkimage.py" "$spec" "$IMAGES/$unit" "${tag_args[@]}" "$@" >/dev/null
  "$PYTHON" "$HERE/push.py" --registry "http://$REGISTRY" "$IMAGES/$unit" "$repo"
  echo "$recipe" >"$IMAGES/$unit.recipe"
}

# added_file_image UNIT FILE REPO "TAG...": critest-test-image.json, whose second layer is the one empty
# file /FILE (cri-tools' images/image-test: ADD FILE FILE).
added_file_image() {
  wanted "$1" || return 0
  export CRITEST_ADD_DIR=$BUILD/critest-add/$2
  rm -rf "$CRITEST_ADD_DIR"
  mkdir -p "$CRITEST_ADD_DIR"
  install -m 0644 /dev/null "$CRITEST_ADD_DIR/$2"
  image "$1" critest-test-image.json "$3" "$4"
}

main() {
  for tool in curl dpkg-deb apt-get od "$PYTHON"; do
    command -v "$tool" >/dev/null || die "$tool is missing; run hack/install-deps.sh"
  done
  "$HACK/registry.sh" start >/dev/null
  eval "$("$HACK/registry.sh" env)"
  REGISTRY=$BERTH_TEST_REGISTRY
  mkdir -p "$CACHE" "$BUILD" "$IMAGES"
  export CRITEST_FILES=$HERE/files/critest

  image busybox busybox.json library/busybox "latest 1.36"
  image debian debian.json library/debian bookworm
  image debian-zstd debian.json library/debian bookworm-zstd --compression zstd
  image layered-gzip layered.json test/layered gzip --compression gzip
  image layered-zstd layered.json test/layered zstd --compression zstd
  image multiarch multiarch.json test/multiarch latest
  image multiarch-arm-only multiarch-arm-only.json test/multiarch arm-only
  local hostile
  for hostile in dotdot absolute symlink-escape hardlink-escape symlink-parent bomb bad-diffid bad-size; do
    image "hostile-$hostile" "hostile-$hostile.json" test/hostile "$hostile"
  done

  # The images critest v1.37.0 pulls, under their repository paths (e2e/critest/run.sh maps
  # registry.k8s.io, gcr.io and k8s.gcr.io here). Only amd64 ones, like the rest.
  local e2e=e2e-test-images cri=k8s-staging-cri-tools n
  image critest-busybox critest-busybox.json $e2e/busybox 1.29-2
  image critest-nginx critest-nginx.json $e2e/nginx 1.14-2
  image critest-httpd critest-httpd.json $e2e/httpd 2.4.39-4
  image critest-nonewprivs critest-nonewprivs.json $e2e/nonewprivs 1.3
  image critest-hostnet-nginx critest-hostnet-nginx.json $cri/hostnet-nginx-amd64 latest
  image critest-pause critest-pause.json pause 3.9
  for n in 1 2 3 latest digest; do
    added_file_image "critest-test-image-$n" "test-image-$n" "$cri/test-image-$n" latest
  done
  added_file_image critest-test-image-tags same-image $cri/test-image-tags "1 2 3"
  added_file_image critest-test-image-tag-test test $cri/test-image-tag test
  added_file_image critest-test-image-tag-all all $cri/test-image-tag all
  for n in uid username uid-group username-group; do
    image "critest-user-$n" "critest-user-$n.json" "$cri/test-image-user-$n" latest
  done
  image critest-predefined-group critest-predefined-group.json $cri/test-image-predefined-group latest
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
