#!/bin/bash
# setup.sh - prepare a fresh Debian 12 machine (as root): install the Debian
# packages YOLO builds and tests with, build the private libfuse yolofs
# links (scripts/fetch-libfuse.sh: Debian 12's 3.14 has no kernel
# passthrough), then configure and build into ./build against it, and
# install the yolo Debian package built from this tree's HEAD
# (scripts/build-deb.sh: integration-agent runs the installed files, as an
# operator gets them).  Safe to run again; apt is skipped when everything
# is present, the libfuse build when its prefix is current, and the
# package when the one installed was built from HEAD.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
	build-essential pkg-config meson ninja-build git
	libfuse3-dev fuse3 libxxhash-dev libzstd-dev libcmocka-dev
	clang libclang-rt-dev            # libFuzzer target, sanitizers
	qemu-utils                       # qemu-img / qemu-io in the mount suite
	qemu-system-x86 debootstrap      # the VM image (scripts/vm-image.sh) and the integration suite's VM boots
	docker.io busybox-static         # the integration suite's container capture
	containerd runc                  # ctr, containerd, runc: integration-yolo_containerd (docker.io depends on them too)
	e2fsprogs util-linux kmod procps # mkfs.ext4, chattr, losetup, setpriv, unshare, modprobe, pgrep: tests, demo, bench
	attr                             # setfattr, getfattr: mount-namespace
	acl                              # setfacl: mount-as_caller
	docker-registry openssl          # a real OCI registry on 127.0.0.1, over HTTP and HTTPS (integration-share)
	python3                          # bench/bench report, unit bench_report, the mount suite's helpers (standard library only)
	systemd strace                   # yolofs@.service under a real systemd, READY=1 ordering (integration suite)
	fio                              # verified random reads and writes across takeovers (integration-takeover)
	man-db                           # man, lexgrog: unit man_pages renders each page as lintian does
	dpkg-dev gpgv                    # scripts/fetch-libfuse.sh: dpkg-source; apt's signature check of trixie's index
	debian-archive-keyring           # the keys that sign it
	debhelper lintian                # scripts/build-deb.sh: the Debian package (dh, meson) and its lintian check
	prometheus-node-exporter         # scrapes the agent's metrics file (integration-agent)
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "setup.sh: missing packages (${missing[*]}); run as root to install them" >&2
		exit 1
	fi
	echo "setup.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# FUSE needs its device node and module; a container may lack both, in which
# case the mount suites skip (exit 77) rather than fail - except under CI
# (CI=true), where a skip fails the run (tests/mount/lib.sh).
[[ -e /dev/fuse ]] || modprobe fuse 2>/dev/null || true

fuse_prefix=$(./scripts/fetch-libfuse.sh)
# meson_option NAME: NAME's value in ./build's configuration (empty when
# unset), from the file `meson introspect` reads, without meson's start-up.
meson_option() {
	python3 -c '
import json, sys
with open("build/meson-info/intro-buildoptions.json") as f:
    print(next((o["value"] for o in json.load(f) if o["name"] == sys.argv[1]), ""))' "$1"
}
if [[ ! -f build/build.ninja ]]; then
	meson setup build -Dfuse_prefix="$fuse_prefix" >/dev/null
elif [[ $(meson_option fuse_prefix) != "$fuse_prefix" ]]; then
	# A build dir from before the private libfuse, or from another prefix.
	meson setup --reconfigure build -Dfuse_prefix="$fuse_prefix" >/dev/null
fi
ninja -C build

# The package of HEAD, unless it is the one installed (its build id is
# HEAD's commit).  Uncommitted changes are not in it: commit, then run
# this again.  A tree that is no git clone gets no package (nothing says
# what it holds); integration-agent then says so.
if head=$(git rev-parse --verify -q HEAD 2>/dev/null); then
	if [[ $(cat /usr/share/doc/yolo/git-commit 2>/dev/null) != "$head" ]]; then
		[[ -z $(git status --porcelain --untracked-files=no) ]] ||
			echo "setup.sh: note: the yolo package is built from HEAD ($head); uncommitted changes are not in it" >&2
		deb=$(./scripts/build-deb.sh --out build/deb 2>build/deb.log) || { tail -n 30 build/deb.log >&2; echo "setup.sh: building the package failed (build/deb.log)" >&2; exit 1; }
		apt-get install -y -qq --no-install-recommends --reinstall "$deb" >/dev/null
		echo "setup.sh: installed $deb"
	fi
else
	echo "setup.sh: not a git clone: the yolo package is not built (scripts/build-deb.sh needs one)" >&2
fi
