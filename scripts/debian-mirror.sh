# debian-mirror.sh - sourced by scripts/vm-image.sh, scripts/fetch-libfuse.sh
# and bench/ctr-image.sh.
# debian_mirror: print the Debian main archive this machine's apt uses
# (deb822 sources first, then sources.list's bookworm line), so a machine
# whose only network route is its configured mirror can debootstrap; the
# public archive when none is configured.
debian_mirror() {
	local m
	m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources |
		awk '{print $2}' | grep -m1 '/debian/\?$' || true)
	[[ -n $m ]] || m=$(grep -hs '^deb .*[[:space:]]bookworm[[:space:]]' /etc/apt/sources.list |
		awk '{print $2}' | grep -m1 '/debian/\?$' || true)
	echo "${m:-http://deb.debian.org/debian}"
}
