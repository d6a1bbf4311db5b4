# containerd_lib.sh - a private containerd for the integration tests (sourced
# after ../mount/lib.sh, whose skip/fail/TMP it uses).
#
# Debian's containerd with its own root, state, socket and config under
# $TMP (the CRI plugin off), and its own namespace; `ct` is ctr pointed at
# it, CT_RUN the `ctr run` options that keep runc's state and the I/O fifos
# under $TMP too.  Images are OCI image-layout tarballs built here from
# layer tars (oci_archive) and imported with `ctr images import`.  Skips the
# test when containerd, ctr, runc or a static busybox is missing, or when
# containerd does not start here.

CONTAINERD=$(command -v containerd) || skip "containerd missing (apt-get install containerd)"
CTR=$(command -v ctr) || skip "ctr missing (apt-get install containerd)"
command -v runc >/dev/null || skip "runc missing (apt-get install runc)"
source "$(dirname "${BASH_SOURCE[0]}")/busybox_lib.sh"

CT_NS=yolo-test-$$
# containerd_node DIR: from now on ct, containerd_start and containerd_stop
# are about a containerd of its own under DIR (another "node" on this
# machine).
containerd_node() {
	CT_DIR=$1
	CT_SOCK=$CT_DIR/containerd.sock
	CT_SNAPSHOTS=$CT_DIR/root/io.containerd.snapshotter.v1.overlayfs/snapshots
	CT_RUN=(--runc-root "$CT_DIR/runc" --fifo-dir "$CT_DIR/fifo")
}
containerd_node "$TMP/containerd"
# CT_LAUNCH: the command prefix containerd_start runs containerd under
# (empty: a child of this shell; sd_engines_in_namespace sets one).
CT_LAUNCH=()
ct() { "$CTR" -a "$CT_SOCK" -n "$CT_NS" "$@"; }

containerd_start() {
	local i
	note "starting containerd"
	mkdir -p "$CT_DIR"
	cat >"$CT_DIR/config.toml" <<EOF
version = 2
root = "$CT_DIR/root"
state = "$CT_DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CT_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CT_DIR/opt"
EOF
	"${CT_LAUNCH[@]}" "$CONTAINERD" --config "$CT_DIR/config.toml" --log-level debug >>"$CT_DIR/containerd.log" 2>&1 &
	echo $! >"$CT_DIR/containerd.pid"
	for i in $(seq 150); do ct version >/dev/null 2>&1 && break; sleep 0.2; done
	ct version >/dev/null 2>&1 || { tail "$CT_DIR/containerd.log"; skip "containerd did not start here"; }
	ct plugins ls | grep -q "overlayfs.*ok" || skip "containerd's overlayfs snapshotter does not work here"
}

containerd_stop() {
	local i pid c shims
	pid=$(cat "$CT_DIR/containerd.pid" 2>/dev/null) || return 0
	# Tasks first: their shims outlive containerd.
	for c in $(ct containers ls -q 2>/dev/null); do
		ct tasks rm -f "$c" >/dev/null 2>&1
		ct containers rm "$c" >/dev/null 2>&1
	done
	# The shims this containerd started (its socket is in their command line).
	shims=$(pgrep -f -- "-address $CT_SOCK" || true)
	kill "$pid" 2>/dev/null
	for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	for pid in $shims; do kill "$pid" 2>/dev/null; done
	# Anything left mounted under its root or state goes before rm -rf.
	findmnt -rn -o TARGET | grep "^$CT_DIR/" | sort -r | xargs -r -n1 umount -l
	rm -f "$CT_DIR/containerd.pid"
}

# oci_blob LAYOUT FILE: store FILE in the layout by digest; print
# "sha256:DIGEST SIZE".
oci_blob() {
	local h
	h=$(sha256sum <"$2" | cut -d' ' -f1)
	cp "$2" "$1/blobs/sha256/$h"
	echo "sha256:$h $(stat -c %s "$2")"
}

# oci_archive OUT NAME LAYER.tar...: an OCI image layout (uncompressed
# layers, bottom first; config and manifest for this machine's platform) as a tarball
# for `ctr images import`, which names the image NAME.
oci_archive() {
	local out=$1 name=$2 d l dig sz diffs="" layers="" cfg cfgsz man mansz arch
	shift 2
	case $(uname -m) in
	x86_64) arch=amd64 ;;
	aarch64) arch=arm64 ;;
	*) skip "oci_archive: no OCI architecture name for $(uname -m) here" ;;
	esac
	d=$(mktemp -d "$TMP/oci.XXXXXX")
	mkdir -p "$d/blobs/sha256"
	for l in "$@"; do
		read -r dig sz < <(oci_blob "$d" "$l")
		diffs+="${diffs:+,}\"$dig\""
		layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"$dig\",\"size\":$sz}"
	done
	printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
		"$arch" "$diffs" >"$d/config"
	read -r cfg cfgsz < <(oci_blob "$d" "$d/config")
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
		"$cfg" "$cfgsz" "$layers" >"$d/manifest"
	read -r man mansz < <(oci_blob "$d" "$d/manifest")
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
		"$man" "$mansz" "$arch" "$name" "${name##*:}" >"$d/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$d/oci-layout"
	tar -C "$d" -cf "$out" oci-layout index.json blobs
	rm -rf "$d"
}
