#!/bin/bash
# vm-image.sh - build a small bootable Debian 12 VM image for the capture and
# boot experiments (yolo-capture, yolofs, demo).
#
# What it makes, in DIR (default $YOLO_VM_CACHE or /var/cache/yolo/vm, outside
# the clone, so every clone and CI run on a machine shares one cache):
#   NAME.qcow2    qcow2 base image, one ext4 filesystem (no partition table,
#                 no bootloader), virtual size --size (default 1G)
#   NAME.vmlinuz  kernel and initramfs of the linux-image-amd64 installed in
#   NAME.initrd   the image, so qemu boots with -kernel/-initrd/-append
#   NAME.stamp    written last; its text is the recipe key: a hash of this
#                 script's recipe (the part below "recipe starts here",
#                 comments and blank lines left out) and of the options that
#                 change the image.  A matching stamp means "cached", so
#                 editing the recipe rebuilds and nothing else does.
#
# How: debootstrap (minbase + systemd + openssh-server + kernel) into a temp
# dir, trim the boot to something fast and deterministic (fixed machine-id,
# no apt/man-db/e2scrub/fstrim timers, no network, no fsck), add a unit that
# prints exactly "YOLO: boot done" on /dev/ttyS0 once ssh.service is up and
# then powers off, turn the tree into an ext4 filesystem with `mkfs.ext4 -d`
# (no loop mount), and `qemu-img convert` it to qcow2.  Everything is built
# in DIR/.NAME.build.XXXXXX and renamed into place at the end, holding an
# exclusive flock on DIR/.build.lock (concurrent callers wait, then find the
# image cached; readers copying a set of files take it shared); the temp dir
# is removed on failure.
#
# Why: a later step records which blocks of the base image a boot reads;
# that needs a VM that boots on its own, reaches a well-defined "booted"
# point, and stops by itself, identically every time.  scripts/vm-boot.sh
# boots the result.
#
# Usage: vm-image.sh [--out DIR] [--size 1G] [--name NAME]
#                    [--extra-packages "pkg1 pkg2"] [--mirror URL] [--force]
# Needs root (debootstrap, chroot).  Installs its own Debian packages.
set -euo pipefail

prog=vm-image
die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

usage() {
	cat <<EOF
usage: $0 [options]
  --out DIR               output directory (default \$YOLO_VM_CACHE or
                          /var/cache/yolo/vm)
  --name NAME             image name (default debian12): DIR/NAME.qcow2 etc.
  --size SIZE             virtual size of the root filesystem (default 1G)
  --extra-packages "P.."  extra Debian packages for this variant
  --mirror URL            Debian mirror (default \$YOLO_DEBIAN_MIRROR or the
                          URI of this machine's bookworm apt source)
  --force                 rebuild even if the cached image is current
  -h, --help              this help
EOF
}

OUT=${YOLO_VM_CACHE:-/var/cache/yolo/vm}
NAME=debian12
SIZE=1G
EXTRA=""
MIRROR=${YOLO_DEBIAN_MIRROR:-}
FORCE=0
SUITE=bookworm

while (($#)); do
	case $1 in
	--out) OUT=${2:?--out needs a directory}; shift 2 ;;
	--name) NAME=${2:?--name needs a name}; shift 2 ;;
	--size) SIZE=${2:?--size needs a size}; shift 2 ;;
	--extra-packages) EXTRA=${2?--extra-packages needs a list}; shift 2 ;;
	--mirror) MIRROR=${2:?--mirror needs a URL}; shift 2 ;;
	--force) FORCE=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument '$1'" ;;
	esac
done

[[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "bad --name '$NAME' (letters, digits, . _ -)"
[[ $SIZE =~ ^[0-9]+[KMG]?$ ]] || die "bad --size '$SIZE' (e.g. 1G, 1536M)"
[[ $EXTRA =~ ^[A-Za-z0-9.+\ -]*$ ]] || die "bad --extra-packages '$EXTRA'"
read -r -a extra_list <<<"$EXTRA"
EXTRA=${extra_list[*]:-} # normalised whitespace

# The mirror: whatever this machine's apt uses for Debian main.
# shellcheck source=scripts/debian-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh"
[[ -n $MIRROR ]] || MIRROR=$(debian_mirror)

QCOW=$OUT/$NAME.qcow2
KERNEL=$OUT/$NAME.vmlinuz
INITRD=$OUT/$NAME.initrd
STAMP=$OUT/$NAME.stamp
# The recipe key: the recipe's code and every option that changes the
# image.  Not the mirror (same suite, same packages), and not this script's
# comments or option parsing, so only a real change rebuilds.
recipe_code() {
	sed -n '/^# =\{5,\} recipe starts here/,$p' "${BASH_SOURCE[0]}" | grep -Ev '^[[:space:]]*(#|$)'
}
[[ $(recipe_code | wc -l) -gt 50 ]] || die "cannot find the recipe in ${BASH_SOURCE[0]}"
RECIPE="vm-image $( { recipe_code; echo "suite=$SUITE name=$NAME size=$SIZE extra=$EXTRA"; } |
	sha256sum | cut -c1-16) suite=$SUITE size=$SIZE extra=$EXTRA"

cached() {
	[[ -s $QCOW && -s $KERNEL && -s $INITRD && -f $STAMP ]] &&
		[[ $(cat "$STAMP") == "$RECIPE" ]]
}

if ((!FORCE)) && cached; then
	say "$QCOW is current ($RECIPE)"
	exit 0
fi

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, chroot): run it as root"

mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
QCOW=$OUT/$NAME.qcow2 KERNEL=$OUT/$NAME.vmlinuz INITRD=$OUT/$NAME.initrd STAMP=$OUT/$NAME.stamp

# One build per output dir at a time (builds share the .deb cache, and each
# one keeps both CPUs busy); a second caller waits, then finds its image
# cached if it asked for the same one.
exec 9>"$OUT/.build.lock"
flock 9
if ((!FORCE)) && cached; then
	say "$QCOW is current (built by a concurrent run)"
	exit 0
fi

# --- host packages -----------------------------------------------------------
PACKAGES=(debootstrap qemu-utils qemu-system-x86 e2fsprogs util-linux zstd)
missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	say "installing host packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Lock timeout: wait for another apt (setup.sh, a build for another
	# --out) instead of failing.
	apt-get -o DPkg::Lock::Timeout=600 update -qq || die "apt-get update failed"
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
fi

# --- temp dir and cleanup ----------------------------------------------------
START=$SECONDS
CHILD=""

# run_killable LOG CMD...: run a long step in its own process group, output
# to LOG, and wait for it.  Waiting with `wait` (not as a foreground child)
# lets a TERM/INT reach our trap at once; cleanup then kills the whole group
# (debootstrap runs dpkg and maintainer scripts below it) before removing
# the temp dir.  LOG is an argument, not a redirection of the call, so the
# trap's messages still reach our stderr.
run_killable() {
	local log=$1
	shift
	setsid --wait "$@" >"$log" 2>&1 &
	CHILD=$!
	local rc=0
	wait "$CHILD" || rc=$?
	CHILD=""
	return "$rc"
}

# unmount_under DIR: every mount below DIR, deepest first.
unmount_under() {
	local m
	for m in $(findmnt -rn -o TARGET | awk -v p="$1/" 'index($0, p) == 1' | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
}
cleanup() {
	local rc=$?
	if [[ -n $CHILD ]]; then
		kill -TERM -- "-$CHILD" 2>/dev/null || kill -TERM "$CHILD" 2>/dev/null || true
		wait "$CHILD" 2>/dev/null || true
	fi
	unmount_under "$TMP"
	if findmnt -rn -o TARGET | awk -v p="$TMP/" 'index($0, p) == 1 { f = 1 } END { exit !f }'; then
		echo "$prog: something is still mounted under $TMP; not removing it" >&2
	else
		rm -rf --one-file-system "$TMP"
	fi
	((rc == 0)) || echo "$prog: build of $NAME failed (exit $rc) after $((SECONDS - START)) s" >&2
}
# Under the lock no other build runs in OUT: a temp dir here is what a
# killed build (SIGKILL, power loss) left, maybe with its tmpfs mounted.
for stale in "$OUT"/.*.build.*; do
	[[ -d $stale ]] || continue
	say "removing $stale (left by an interrupted build)"
	unmount_under "$stale"
	rm -rf --one-file-system "$stale" || die "cannot remove $stale"
done
# The temp dir lives in OUT so the final renames are atomic.  The guest tree
# and its raw filesystem go to WORK, a tmpfs when there is memory to spare
# (about 1.3 GiB at the peak): dpkg fsyncs every file it unpacks, which on
# a disk made debootstrap half again as slow.
TMP=$(mktemp -d "$OUT/.$NAME.build.XXXXXX")
WORK=$TMP/work
CHROOT=$WORK/root
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir "$WORK"
if (($(awk '/^MemAvailable:/ {print int($2 / 1048576)}' /proc/meminfo) >= 4)); then
	mount -t tmpfs -o size=3g,mode=0755 yolo-vm-image "$WORK"
fi
mkdir -m 0755 "$CHROOT"

# ============================== recipe starts here ==========================
# Everything from here on decides what the image holds (see recipe_code).

# --- debootstrap -------------------------------------------------------------
# minbase + just what a bootable, ssh-reachable systemd machine needs.
# systemd-sysv: /sbin/init; udev: /dev/vda etc.; kmod: modules;
# linux-image-amd64 pulls initramfs-tools.
INCLUDE="systemd,systemd-sysv,udev,kmod,openssh-server,linux-image-amd64"
[[ -z $EXTRA ]] || INCLUDE="$INCLUDE,${EXTRA// /,}"
DEBCACHE=$OUT/.debs # downloaded .debs, shared by variants and rebuilds
mkdir -p "$DEBCACHE"
say "debootstrap $SUITE from $MIRROR (include $INCLUDE); this takes a few minutes"
# INITRD=No: the kernel's postinst hook skips building a Debian-default
# initramfs (MODULES=most) that the one below would replace anyway.
run_killable "$TMP/debootstrap.log" \
	env INITRD=No debootstrap --variant=minbase --include="$INCLUDE" --cache-dir="$DEBCACHE" \
	"$SUITE" "$CHROOT" "$MIRROR" || {
	tail -n 30 "$TMP/debootstrap.log" >&2
	die "debootstrap failed (log above)"
}
say "debootstrap done ($((SECONDS - START)) s)"

# --- configure the guest -----------------------------------------------------
say "configuring the guest"
in_chroot() { chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"; }

echo "$NAME" >"$CHROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
	"$NAME" >"$CHROOT/etc/hosts"
rm -f "$CHROOT/etc/resolv.conf" # the build host's; the guest has no network
# Root fs is the whole disk; no fsck (passno 0, and fsck.mode=skip on the
# kernel command line) so the boot does not depend on fs state.
echo "/dev/vda / ext4 rw,relatime,errors=remount-ro 0 0" >"$CHROOT/etc/fstab"
# Passwordless root on the console (test VM, no network).
in_chroot passwd -d root >/dev/null
# A fixed machine-id: not a "first boot" (no systemd-firstboot prompts, no
# machine-id generation), and the same journal path on every boot.
printf '%s' "yolo-$NAME" | md5sum | cut -c1-32 >"$CHROOT/etc/machine-id"

# Trim the boot: timers and services that only add noise or I/O to a
# short-lived VM.  mask works on units that do not exist, so the list can
# cover optional packages.
in_chroot systemctl mask --quiet \
	apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
	man-db.timer man-db.service dpkg-db-backup.timer dpkg-db-backup.service \
	e2scrub_all.timer e2scrub_all.service e2scrub_reap.service \
	fstrim.timer fstrim.service logrotate.timer logrotate.service \
	systemd-tmpfiles-clean.timer \
	systemd-networkd-wait-online.service NetworkManager-wait-online.service \
	ifupdown-wait-online.service networking.service \
	systemd-firstboot.service systemd-timesyncd.service \
	getty@tty1.service getty-static.service console-setup.service keyboard-setup.service \
	2>/dev/null
in_chroot systemctl set-default --quiet multi-user.target

# qemu's pc machine has a floppy controller, an IDE controller, a PC
# speaker and an SMBus, and -cpu max advertises SVM; udev would load (and
# read from disk) drivers for all of them.  None is used: the disk is
# virtio and the console serial.
cat >"$CHROOT/etc/modprobe.d/yolo-vm.conf" <<'EOF'
# Installed by YOLO scripts/vm-image.sh: drivers for emulated hardware the
# test VM does not use.
blacklist floppy
blacklist pcspkr
blacklist ata_piix
blacklist ata_generic
blacklist pata_acpi
blacklist i2c_piix4
blacklist kvm
blacklist kvm_amd
blacklist kvm_intel
blacklist powernow_k8
EOF

# Journal in memory only: fewer writes, identical boots.
mkdir -p "$CHROOT/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$CHROOT/etc/systemd/journald.conf.d/yolo.conf"

# The "boot done" marker.  After=ssh.service: sshd is Type=notify, so this
# runs once sshd is accepting connections.  The leading newline keeps the
# marker on a line of its own if the console was mid-line.
cat >"$CHROOT/etc/systemd/system/yolo-boot-done.service" <<'EOF'
# Installed by YOLO scripts/vm-image.sh: report "booted" on the serial
# console once ssh is up, then power the VM off.
[Unit]
Description=YOLO boot-done marker
Wants=ssh.service
After=ssh.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'printf "\\nYOLO: boot done\\n" >/dev/ttyS0'
ExecStart=/bin/systemctl --no-block poweroff

[Install]
WantedBy=multi-user.target
EOF
in_chroot systemctl enable --quiet ssh.service yolo-boot-done.service

# Small initramfs with just the drivers for qemu's virtio disk: less to
# load and unpack under TCG than Debian's MODULES=most default.
cat >"$CHROOT/etc/initramfs-tools/conf.d/yolo.conf" <<'EOF'
MODULES=list
COMPRESS=zstd
EOF
cat >>"$CHROOT/etc/initramfs-tools/modules" <<'EOF'
virtio_pci
virtio_blk
ext4
EOF
kver=$(find "$CHROOT/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
[[ -n $kver && -f $CHROOT/boot/vmlinuz-$kver ]] || die "no kernel found in $CHROOT/boot"
mount -t proc proc "$CHROOT/proc"
mount -t sysfs sysfs "$CHROOT/sys"
run_killable "$TMP/initramfs.log" \
	chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C \
	update-initramfs -c -k "$kver" || {
	tail -n 30 "$TMP/initramfs.log" >&2
	die "update-initramfs failed (log above)"
}
unmount_under "$CHROOT"

# --- kernel and initrd out, tidy ---------------------------------------------
[[ -f $CHROOT/boot/initrd.img-$kver ]] || die "no initrd found in $CHROOT/boot"
cp "$CHROOT/boot/vmlinuz-$kver" "$TMP/kernel"
cp "$CHROOT/boot/initrd.img-$kver" "$TMP/initrd"
say "kernel $kver, initrd $(du -h "$TMP/initrd" | cut -f1)"

rm -rf "$CHROOT"/var/cache/apt/archives/*.deb "$CHROOT"/var/cache/apt/*.bin \
	"$CHROOT"/var/lib/apt/lists/*_* "$CHROOT"/var/log/*.log "$CHROOT"/tmp/* \
	"$CHROOT"/var/tmp/*

# --- ext4 root filesystem and qcow2 ------------------------------------------
used=$(du -sxm "$CHROOT" | cut -f1)
say "root tree is $used MiB; making a $SIZE ext4 filesystem"
truncate -s "$SIZE" "$WORK/root.raw"
# lazy_itable_init=0: inode tables are zeroed now, not by ext4lazyinit
# writing in the background of every boot.
mkfs.ext4 -q -F -L yolo-root -d "$CHROOT" \
	-E lazy_itable_init=0,lazy_journal_init=0 "$WORK/root.raw" >"$TMP/mkfs.log" 2>&1 || {
	cat "$TMP/mkfs.log" >&2
	die "mkfs.ext4 -d failed (root tree $used MiB, --size $SIZE: too small?)"
}
# qemu-img skips zero clusters, so the qcow2 holds only what ext4 uses.
qemu-img convert -f raw -O qcow2 "$WORK/root.raw" "$TMP/image.qcow2" ||
	die "qemu-img convert failed"

# --- move into place ---------------------------------------------------------
# The stamp goes last: until it matches, the image is not "cached".
rm -f "$STAMP"
mv -f "$TMP/kernel" "$KERNEL"
mv -f "$TMP/initrd" "$INITRD"
mv -f "$TMP/image.qcow2" "$QCOW"
echo "$RECIPE" >"$TMP/stamp"
mv -f "$TMP/stamp" "$STAMP"

say "built $QCOW in $((SECONDS - START)) s: $(qemu-img info --output=json "$QCOW" |
	awk -F'[:,]' '/"virtual-size"/{v=$2} /"actual-size"/{a=$2} END{printf "virtual %d MiB, actual %d MiB", v/1048576, a/1048576}')"
