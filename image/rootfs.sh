#!/usr/bin/env bash
# Stage 1 of the image build: the Debian 12 root filesystem, before anything
# of relaygate is added. Debootstrap (minbase + the packages below), the
# initramfs with an explicit module list, and the trimming. The result only
# depends on this file, so build.sh caches it keyed by this file's hash.
#
# Usage: image/rootfs.sh DIR MIRROR   (as root; DIR must not exist)
set -euo pipefail

dir=$1
mirror=$2

# Packages on top of minbase. nftables is only for admins reading
# `nft list ruleset`: the product talks netlink itself. e2fsprogs and fdisk
# (sfdisk) grow the data partition on first boot. systemd-boot brings bootctl
# and systemd-bless-boot (A/B updates with boot counting); its EFI binaries
# are not used from the image (build.sh takes them from the build host).
include=linux-image-amd64,systemd,systemd-sysv,udev,iproute2,kmod,dbus,nftables,initramfs-tools,e2fsprogs,fdisk,systemd-boot

# Mounts made for chroot commands; undone whatever happens.
cleanup() {
	for m in "$dir/proc" "$dir/sys" "$dir/dev"; do
		mountpoint -q "$m" 2>/dev/null && umount -l "$m"
	done
	return 0
}
trap cleanup EXIT

# The kernel's postinst builds a default initrd here; it is rebuilt below
# with the module list.
debootstrap --variant=minbase --include="$include" bookworm "$dir" "$mirror"

mount -t proc proc "$dir/proc"
mount -t sysfs sys "$dir/sys"
mount --bind /dev "$dir/dev"
inroot() { chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C "$@"; }

# initramfs: only what finding and mounting the root needs. MODULES=most does
# not include erofs or squashfs (IMAGE-NOTES), so list them.
sed -i 's/^MODULES=.*/MODULES=list/' "$dir/etc/initramfs-tools/initramfs.conf"
cat >"$dir/etc/initramfs-tools/modules" <<'MODS'
erofs
squashfs
ext4
vfat
virtio_pci
virtio_blk
virtio_scsi
sd_mod
ahci
ata_piix
nvme
xhci_pci
ehci_pci
uhci_hcd
usb_storage
uas
sdhci_pci
mmc_block
dm_verity
MODS

kver=$(basename "$(ls -d "$dir"/lib/modules/*)")

# Kernel modules an appliance never needs (graphics, sound, radio, ...).
kmod=$dir/lib/modules/$kver/kernel
rm -rf "$kmod"/drivers/gpu "$kmod"/sound "$kmod"/drivers/media "$kmod"/drivers/net/wireless \
	"$kmod"/net/wireless "$kmod"/net/mac80211 "$kmod"/net/bluetooth "$kmod"/drivers/bluetooth \
	"$kmod"/drivers/staging "$kmod"/drivers/infiniband "$kmod"/drivers/isdn "$kmod"/drivers/iio \
	"$kmod"/drivers/input/touchscreen "$kmod"/drivers/net/can "$kmod"/net/can \
	"$kmod"/drivers/net/ethernet/mellanox "$kmod"/drivers/scsi/lpfc "$kmod"/drivers/scsi/qla2xxx \
	"$kmod"/fs/ocfs2 "$kmod"/fs/gfs2 "$kmod"/fs/xfs "$kmod"/fs/btrfs "$kmod"/fs/nfs "$kmod"/fs/nfsd \
	"$kmod"/fs/ceph "$kmod"/fs/smb "$kmod"/fs/cifs "$kmod"/fs/f2fs "$kmod"/fs/jfs "$kmod"/fs/reiserfs
inroot depmod "$kver"
inroot update-initramfs -u -k "$kver"

# Root has no password at all (locked); there is no SSH server in the image.
inroot usermod -p '!*' root

# Trim: docs, man pages, locales, package caches and lists. /var is a tmpfs
# at run time (systemd.volatile=state), so its content here is never seen
# except for what tmpfiles.d recreates.
rm -rf "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
	"$dir"/usr/share/locale/* "$dir"/usr/share/i18n/* "$dir"/usr/share/lintian \
	"$dir"/var/cache/apt/* "$dir"/var/lib/apt/lists/* "$dir"/var/log/* \
	"$dir"/var/cache/debconf/*-old "$dir"/usr/share/bug
# The initrd lives in the UKI; keep the copies in /boot for the build only.
echo "rootfs ready: $dir (kernel $kver)"
