# shellcheck shell=bash
# time.sh - sourced by bench/bench: timing without forks (a run polled every
# 2 ms must not spend its time starting processes).

# now_us: NOW_US, the time in microseconds from EPOCHREALTIME (no fork
# between start and stop).
now_us() { NOW_US=${EPOCHREALTIME/./}; }

# us_to_s US: microseconds as seconds with six decimals.
us_to_s() { printf '%d.%06d' $(($1 / 1000000)) $(($1 % 1000000)); }

# nap_open FIFO: the fifo nap reads from (made once, at set-up).
nap_open() {
	mkfifo "$1"
	exec {NAPFD}<>"$1"
}

# nap: sleep 2 ms without forking (a read that times out on our own fifo).
nap() { read -r -t 0.002 -u "$NAPFD" _ || true; }
