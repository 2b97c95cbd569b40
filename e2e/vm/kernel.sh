#!/usr/bin/env bash
# Prepares (once, cached) what e2e/vm/run.sh boots: Debian's stock kernel as an uncompressed vmlinux,
# its module tree with a modules.dep, and a tiny busybox initramfs holding the modules that mount
# the host's / over 9p. Prints the cache directory. Nothing is installed on the host: the kernel
# package is fetched with `apt-get download` and unpacked with `dpkg-deb -x`.
#
#   BERTH_VM_CACHE   cache root (default /var/cache/berth-vm)
#   BERTH_VM_KERNEL  kernel package (default: the one Debian 12's linux-image-6.12-amd64 depends on;
#                    berth mounts overlays with `lowerdir+` (Linux 6.8+), so 6.1 cannot run pods)
set -euo pipefail

CACHE=${BERTH_VM_CACHE:-/var/cache/berth-vm}
HERE=$(cd "$(dirname "$0")" && pwd)
die() { echo "vm/kernel.sh: $*" >&2; exit 1; }

pkg=${BERTH_VM_KERNEL:-}
if [[ -z $pkg ]]; then
  pkg=$(apt-cache depends linux-image-6.12-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [[ -n $pkg ]] || die "cannot resolve linux-image-6.12-amd64 (run apt-get update)"
fi
kver=${pkg#linux-image-}
dir=$CACHE/$kver
# The stamp names the inputs, so a change to this script or to init rebuilds the initramfs.
stamp=$(cat "$0" "$HERE/initramfs-init" | sha256sum | cut -c1-16)
if [[ -s $dir/vmlinux && -s $dir/initramfs.cpio.gz && "$(cat "$dir/stamp" 2>/dev/null)" == "$stamp" ]]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$dir/debs"
if ! ls "$dir"/debs/"$pkg"_*.deb >/dev/null 2>&1; then
  (cd "$dir/debs" && apt-get download "$pkg" >&2) || die "apt-get download $pkg failed"
fi
rm -rf "$dir/pkg" "$dir/initramfs"
dpkg-deb -x "$dir"/debs/"$pkg"_*.deb "$dir/pkg"
moddir=$dir/pkg/lib/modules/$kver
[[ -d $moddir ]] || die "$pkg has no lib/modules/$kver"
# Modules may come xz-compressed (newer packages): busybox's modprobe wants them plain.
find "$moddir" -name '*.ko.xz' -exec xz -d {} + 2>/dev/null || true
busybox depmod -b "$dir/pkg" "$kver"

# The uncompressed kernel: QEMU boots an ELF vmlinux through its PVH entry point, skipping the
# decompressor (slow under TCG). Find the payload's compression magic and decompress from there.
python3 - "$dir/pkg/boot/vmlinuz-$kver" "$dir/vmlinux.tmp" <<'PY'
import lzma, subprocess, sys, zlib
data = open(sys.argv[1], "rb").read()
for magic, kind in ((b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b\x08", "gz"), (b"\x28\xb5\x2f\xfd", "zstd")):
    at = data.find(magic)
    while at >= 0:
        try:
            if kind == "xz":
                out = lzma.LZMADecompressor().decompress(data[at:])
            elif kind == "gz":
                out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[at:])
            else:  # zstd(1) writes the frame, then complains about the bytes after it
                out = subprocess.run(["zstd", "-dc"], input=data[at:], capture_output=True).stdout
            if out[:4] == b"\x7fELF":
                open(sys.argv[2], "wb").write(out)
                sys.exit(0)
        except (lzma.LZMAError, zlib.error):
            pass
        at = data.find(magic, at + 1)
sys.exit("no compressed ELF payload found in " + sys.argv[1])
PY
mv "$dir/vmlinux.tmp" "$dir/vmlinux"

# The initramfs: static busybox, the 9p/virtio modules with their dependencies, and init.
ird=$dir/initramfs
mkdir -p "$ird"/{bin,dev,proc,sys,lower,upper,newroot,lib/modules/"$kver"}
cp /bin/busybox "$ird/bin/busybox"
for m in virtio_pci 9pnet_virtio 9p overlay; do
  for f in $(awk -v m="$m" -F: '{n=$1; sub(/.*\//,"",n); sub(/\.ko$/,"",n); gsub(/-/,"_",n); if (n==m) print $0}' "$moddir/modules.dep" | tr -d ':'); do
    mkdir -p "$ird/lib/modules/$kver/$(dirname "$f")"
    cp "$moddir/$f" "$ird/lib/modules/$kver/$f"
  done
done
cp "$moddir"/modules.dep "$moddir"/modules.builtin "$ird/lib/modules/$kver/" 2>/dev/null || true
cp "$HERE/initramfs-init" "$ird/init"
chmod +x "$ird/init"
(cd "$ird" && find . | busybox cpio -o -H newc --quiet | gzip -1) > "$dir/initramfs.cpio.gz"
echo "$stamp" > "$dir/stamp"
echo "$dir"
