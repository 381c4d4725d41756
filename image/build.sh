#!/usr/bin/env bash
# Build the relaygate appliance image (run by `make image`, as root).
#
# Outputs in dist/:
#   relaygate-VERSION-amd64.img                  raw GPT disk (dd to a disk or USB stick)
#   relaygate-VERSION-amd64.qcow2                the same for VMs
#   relaygate-VERSION-amd64.update.tar.gz        update bundle (root fs + UKIs + manifest;
#                                                format in update/bundle.go)
#   relaygate-VERSION-amd64.update.tar.gz.sha256
#   relaygate-VERSION-amd64.update.pub          the public key(s) the image trusts for
#                                                updates (signify format), to check
#                                                bundles by hand
#
# Disk layout (GPT): esp (FAT32, systemd-boot + UKIs), root-a and root-b
# (erofs, read-only, A/B slots), data (ext4, label "data", mounted at
# /var/lib/relaygate, grown to fill the disk on first boot; last partition).
#
# Stage 1 (Debian rootfs, image/rootfs.sh) is cached in .cache/image/ keyed by
# the hash of rootfs.sh and the mirror; stage 2 (this file) adds relaygate and
# assembles the disk without mounting anything (the build host may lack vfat).
#
# Environment: VERSION (default: git describe), MIRROR (default: the Debian
# mirror apt uses), BIN (the appliance binary, default bin/appliance), DIST
# (output directory, default dist/), BUNDLE_ONLY=1 (only the update bundle
# and its checksum: no disk images; the image test builds its second
# version this way), SIGNING_KEY (signify secret key without a passphrase
# that signs the update bundle; its public key is built into the image as
# /usr/share/relaygate/update.pub; default: a throwaway test key generated
# once in .cache/image/, with a warning: never ship that), EXTRA_UPDATE_KEYS
# (a file of further public keys the image trusts, for key rotation),
# BUILD_EPOCH (the anti-rollback counter in the manifest and os-release;
# default SOURCE_DATE_EPOCH, else the current time).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
BIN=${BIN:-bin/appliance}
BUILD_EPOCH=${BUILD_EPOCH:-${SOURCE_DATE_EPOCH:-$(date +%s)}}
cache=$top/.cache/image
dist=${DIST:-$top/dist}
start_time=$(date +%s)
log() { echo "image: [$(($(date +%s) - start_time))s] $*"; }

[ "$(id -u)" = 0 ] || { echo "image/build.sh: must run as root (debootstrap, chroot)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "image/build.sh: $BIN missing (make build)" >&2; exit 1; }
case $BUILD_EPOCH in '' | *[!0-9]*) echo "image/build.sh: BUILD_EPOCH=$BUILD_EPOCH: want seconds since 1970" >&2; exit 1 ;; esac

mkdir -p "$cache"
# The key that signs the update bundle. Without one (CI, a developer's
# build), a throwaway key made once in the build cache: bundles signed with
# it install only on images built here.
if [ -z "${SIGNING_KEY:-}" ]; then
	SIGNING_KEY=$cache/test-signing.sec
	if [ ! -e "$SIGNING_KEY" ]; then
		"$BIN" update keygen --secret "$SIGNING_KEY" --public "$cache/test-signing.pub" >/dev/null
	fi
	cat >&2 <<WARN
image: ************************************************************************
image: WARNING: no SIGNING_KEY given: signing with the TEST key
image:   $SIGNING_KEY
image: This image accepts only updates signed with that throwaway key. For an
image: image you ship, make your own key (docs/image.md) and build with
image:   make image SIGNING_KEY=/path/to/relaygate-update.sec
image: ************************************************************************
WARN
fi
[ -r "$SIGNING_KEY" ] || { echo "image/build.sh: SIGNING_KEY=$SIGNING_KEY: not readable" >&2; exit 1; }
pubkeys=$cache/update.pub.$$
"$BIN" update pubkey --key "$SIGNING_KEY" >"$pubkeys" || { echo "image/build.sh: SIGNING_KEY=$SIGNING_KEY: not a signify secret key without a passphrase" >&2; exit 1; }
if [ -n "${EXTRA_UPDATE_KEYS:-}" ]; then
	cat "$EXTRA_UPDATE_KEYS" >>"$pubkeys"
fi

# The Debian mirror apt uses here (deb822 or one-line sources), else deb.debian.org.
default_mirror() {
	local m
	m=$(sed -n 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)\/\{0,1\}[[:space:]]*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
	[ -n "$m" ] || m=$(sed -n 's/^deb[[:space:]]\+\(http[^[:space:]]*\/debian\)\/\{0,1\}[[:space:]]\+bookworm[[:space:]].*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n1)
	echo "${m:-http://deb.debian.org/debian}"
}
MIRROR=${MIRROR:-$(default_mirror)}

# Tools, installed when missing.
need=()
for t in debootstrap:debootstrap mkfs.erofs:erofs-utils mkfs.vfat:dosfstools mcopy:mtools \
	objcopy:binutils sfdisk:fdisk qemu-img:qemu-utils mkfs.ext4:e2fsprogs gzip:gzip; do
	command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
sdboot=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
[ -e "$stub" ] || need+=(systemd-boot-efi)
if [ "${#need[@]}" -gt 0 ]; then
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

# ---- stage 1: the cached Debian root file system ----
key=$( (cat image/rootfs.sh; echo "$MIRROR") | sha256sum | cut -c1-16)
base=$cache/rootfs-$key
if [ ! -d "$base" ]; then
	log "stage 1: debootstrap from $MIRROR (cache miss, key $key)"
	rm -rf "$cache"/rootfs-* "$cache"/tmp-rootfs
	mkdir -p "$cache"
	bash image/rootfs.sh "$cache/tmp-rootfs" "$MIRROR"
	mv "$cache/tmp-rootfs" "$base"
else
	log "stage 1: cached $base"
fi

# ---- stage 2: relaygate on top, in a scratch copy ----
work=$cache/work
rm -rf "$work"
mkdir -p "$work" "$dist"
trap 'rm -rf "$work" "$pubkeys"' EXIT
root=$work/root
cp -a "$base" "$root"
cp -a image/rootfs/. "$root/"
install -m 0755 "$BIN" "$root/usr/bin/appliance"
mkdir -p "$root/efi" "$root/var/lib/relaygate" "$root/usr/share/relaygate"
chmod 0700 "$root/var/lib/relaygate"
# The keys whose signatures the updater accepts (update/signify.go).
install -m 0644 "$pubkeys" "$root/usr/share/relaygate/update.pub"

kver=$(basename "$(ls -d "$root"/lib/modules/*)")

# Identity: os-release (also the UKI's .osrel, which systemd-boot shows and
# sorts by) and the hostname.
cat >"$root/usr/lib/os-release" <<OSREL
PRETTY_NAME="relaygate $VERSION"
NAME="relaygate"
ID=relaygate
ID_LIKE=debian
VERSION_ID="12"
IMAGE_ID=relaygate
IMAGE_VERSION="$VERSION"
RELAYGATE_BUILD_EPOCH="$BUILD_EPOCH"
HOME_URL="https://github.com/relaygate/relaygate"
OSREL
ln -sf ../usr/lib/os-release "$root/etc/os-release"

# Kernel modules relaygate needs, loaded at boot; names this kernel lacks
# (built in, or renamed) are dropped with a note so systemd-modules-load
# does not fail.
mods=(bridge 8021q nf_tables nft_tproxy nf_tproxy_ipv4 nf_tproxy_ipv6 nft_socket
	nf_socket_ipv4 nf_socket_ipv6 nf_reject_ipv4 nf_reject_ipv6 nft_reject nft_reject_inet
	nft_reject_bridge nft_meta_bridge nft_ct nf_conntrack)
{
	echo "# Loaded at boot for relaygate: the bridge, VLANs, nftables with TPROXY,"
	echo "# socket matching and reject. br_netfilter is deliberately absent."
	for m in "${mods[@]}"; do
		if grep -q "/$m\.ko" "$root/lib/modules/$kver/modules.dep"; then
			echo "$m"
		elif grep -q "/$m\.ko" "$root/lib/modules/$kver/modules.builtin"; then
			:
		else
			echo "image: note: module $m not in kernel $kver" >&2
		fi
	done
} >"$root/etc/modules-load.d/relaygate.conf"

# Units: our services on, getty off (no password exists; the console banner
# replaces it), networkd for the management port only.
inroot() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C "$@"; }
inroot systemctl enable relaygate.service relaygate-firstboot.service relaygate-growdata.service \
	relaygate-netconf.service relaygate-health.service relaygate-console@tty1.service relaygate-console@ttyS0.service \
	systemd-networkd.service >/dev/null 2>&1
inroot systemctl disable systemd-networkd-wait-online.service >/dev/null 2>&1 || true
inroot systemctl mask getty@tty1.service serial-getty@ttyS0.service systemd-firstboot.service \
	apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true
# Transient machine id on the read-only root (systemd mounts one from /run).
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

# Kernel and initrd go into the UKI, not onto the root.
cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/initrd"
rm -f "$root"/boot/vmlinuz-* "$root"/boot/initrd.img-* "$root"/vmlinuz* "$root"/initrd.img*

log "stage 2: erofs root"
mkfs.erofs -zlz4hc -T0 --quiet "$work/root.erofs" "$root"

# UKI per slot: the systemd stub with os-release, command line, kernel and
# initrd (section addresses as in IMAGE-NOTES). The slot is the root's
# partition label; relaygate.slot= is for the console and the updater.
uki() {
	local slot=$1 out=$2
	echo -n "root=PARTLABEL=root-$slot rootfstype=erofs ro console=tty0 console=ttyS0,115200 systemd.volatile=state panic=10 quiet relaygate.slot=$slot" >"$work/cmdline-$slot"
	objcopy \
		--add-section .osrel="$root/usr/lib/os-release" --change-section-vma .osrel=0x20000 \
		--add-section .cmdline="$work/cmdline-$slot" --change-section-vma .cmdline=0x30000 \
		--add-section .linux="$work/vmlinuz" --change-section-vma .linux=0x2000000 \
		--add-section .initrd="$work/initrd" --change-section-vma .initrd=0x3000000 \
		"$stub" "$out"
}
uki a "$work/uki-a.efi"
uki b "$work/uki-b.efi"

img=$dist/relaygate-$VERSION-amd64.img
qcow=$dist/relaygate-$VERSION-amd64.qcow2
rootfs_bytes=$(stat -c %s "$work/root.erofs")
root_mib=512
[ "$rootfs_bytes" -le $((root_mib * 1048576)) ] || { echo "image: root.erofs ($rootfs_bytes bytes) exceeds the ${root_mib} MiB slot" >&2; exit 1; }
if [ "${BUNDLE_ONLY:-0}" != 1 ]; then
	# ESP: systemd-boot finds UKIs in EFI/Linux by itself. editor no: nobody can
	# change the kernel command line (init=/bin/sh) at the boot menu.
	log "stage 2: ESP"
	esp_mib=128
	mkfs.vfat -F 32 -n ESP -C "$work/esp.fs" $((esp_mib * 1024)) >/dev/null
	printf 'timeout 2\neditor no\nconsole-mode keep\n' >"$work/loader.conf"
	export MTOOLS_SKIP_CHECK=1
	mmd -i "$work/esp.fs" ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/EFI/Linux ::/loader
	mcopy -i "$work/esp.fs" "$sdboot" ::/EFI/BOOT/BOOTX64.EFI
	mcopy -i "$work/esp.fs" "$sdboot" ::/EFI/systemd/systemd-bootx64.efi
	mcopy -i "$work/esp.fs" "$work/loader.conf" ::/loader/loader.conf
	mcopy -i "$work/esp.fs" "$work/uki-a.efi" "::/EFI/Linux/relaygate-$VERSION-a.efi"

	# Data partition: empty ext4 (first boot writes the configuration).
	data_mib=256
	mkdir -p "$work/data-empty"
	mkfs.ext4 -q -L data -E root_owner=0:0 -d "$work/data-empty" "$work/data.fs" ${data_mib}M

	# GPT, assembled without mounts: sfdisk on the file, dd each partition at its
	# start. Root slots have room for growth of the erofs image.
	log "stage 2: disk"
	rm -f "$img"
	truncate -s $((1 + esp_mib + 2 * root_mib + data_mib + 1))M "$img"
	sfdisk --quiet "$img" <<GPT
label: gpt
start=2048, size=${esp_mib}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="esp"
size=${root_mib}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root-a"
size=${root_mib}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root-b"
type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="data"
GPT
	put() { # put PARTNUM FILE
		local s
		s=$(sfdisk -d "$img" | awk -v p="$img$1" '$1 == p { sub(/,/, "", $4); print $4 }')
		[ $((s % 2048)) = 0 ] || { echo "image: partition $1 not MiB-aligned" >&2; exit 1; }
		dd if="$2" of="$img" bs=1M seek=$((s / 2048)) conv=notrunc,sparse status=none
	}
	put 1 "$work/esp.fs"
	put 2 "$work/root.erofs"
	put 4 "$work/data.fs"

	log "stage 2: qcow2"
	rm -f "$qcow"
	qemu-img convert -c -O qcow2 -o compression_type=zstd "$img" "$qcow" 2>/dev/null ||
		qemu-img convert -c -O qcow2 "$img" "$qcow"
fi

# Update bundle: a gzip tar of manifest (first), its signature, root.erofs
# and one UKI per slot, with the sha256 of each file in the manifest and of
# the whole bundle beside it (format: update/bundle.go; gzip because the
# appliance reads it with Go's standard library; the contents are
# compressed already).
log "stage 2: update bundle"
b=$work/bundle
mkdir -p "$b"
mv "$work/root.erofs" "$b/root.erofs"
cp "$work/uki-a.efi" "$b/uki-a.efi"
cp "$work/uki-b.efi" "$b/uki-b.efi"
{
	echo "format=relaygate-update-1"
	echo "version=$VERSION"
	echo "build_epoch=$BUILD_EPOCH"
	echo "arch=amd64"
	(cd "$b" && sha256sum root.erofs uki-a.efi uki-b.efi | awk '{print "sha256:" $2 "=" $1}')
} >"$b/manifest"
bundle=$dist/relaygate-$VERSION-amd64.update.tar.gz
rm -f "$dist"/relaygate-"$VERSION"-amd64.update.*
"$BIN" update sign --key "$SIGNING_KEY" --out "$b/manifest.sig" "$b/manifest"
tar -C "$b" --owner=0 --group=0 --numeric-owner -cf - manifest manifest.sig root.erofs uki-a.efi uki-b.efi | gzip -6 >"$bundle"
(cd "$dist" && sha256sum "${bundle##*/}" >"${bundle##*/}.sha256")
install -m 0644 "$pubkeys" "${bundle%.tar.gz}.pub"

log "done, version $VERSION (build_epoch $BUILD_EPOCH, bundle signed with $SIGNING_KEY):"
if [ "${BUNDLE_ONLY:-0}" != 1 ]; then
	ls -l "$img" "$qcow" "$bundle" "$bundle.sha256" "${bundle%.tar.gz}.pub" | awk '{printf "  %6d MiB  %s\n", $5/1048576, $9}'
	echo "  raw image allocated: $(du -m "$img" | cut -f1) MiB; root fs: $((rootfs_bytes / 1048576)) MiB"
else
	ls -l "$bundle" "$bundle.sha256" | awk '{printf "  %6d MiB  %s\n", $5/1048576, $9}'
fi
