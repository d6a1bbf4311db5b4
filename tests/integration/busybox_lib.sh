# busybox_lib.sh - a minimal root file system for container tests (sourced
# by docker_lib.sh and containerd_lib.sh, after ../mount/lib.sh).  Skips
# the test when no static busybox is installed.

BUSYBOX=$(command -v busybox) || skip "busybox missing (apt-get install busybox-static)"
ldd "$BUSYBOX" 2>&1 | grep -q "not a dynamic" || skip "busybox is not static (apt-get install busybox-static)"

# busybox_rootfs DIR: static busybox, a few applet links, /etc/passwd and
# empty mountpoints (for `docker import`, or one layer of an OCI image).
busybox_rootfs() {
	local r=$1 c
	mkdir -p "$r/bin" "$r/etc" "$r/data" "$r/tmp" "$r/proc" "$r/sys" "$r/dev"
	cp "$BUSYBOX" "$r/bin/busybox"
	for c in sh cat ls md5sum head rm sleep; do ln -s busybox "$r/bin/$c"; done
	echo "root:x:0:0:root:/:/bin/sh" >"$r/etc/passwd"
}
