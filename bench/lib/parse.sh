# shellcheck shell=bash
# parse.sh - sourced by bench/bench: numbers read out of what the measured
# programs write: yolofs's metrics files, yolo-replay's and yolo-readbench's
# key=value lines.

# metrics_sum NAME FILE...: yolofs_NAME summed over its labels and the
# files (a missing file counts 0).
metrics_sum() {
	local name=$1 f files=()
	shift
	for f in "$@"; do [[ -f $f ]] && files+=("$f"); done
	((${#files[@]})) || { echo 0; return; }
	awk -v n="yolofs_$name" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f\n", s }' "${files[@]}"
}

# metrics_now NAME FILE...: NAME summed over the metrics files of running
# daemons (started with metrics_interval=1), once each has rewritten its
# file since the call, so it includes everything done before it.
metrics_now() {
	local name=$1 f t k
	shift
	t=$(date +%s.%N)
	for f in "$@"; do
		for ((k = 0; k < 50; k++)); do
			[[ -f $f && $(stat -c %.9Y "$f") > "$t" ]] && break
			sleep 0.1
		done
	done
	metrics_sum "$name" "$@"
}

# replay_stats N OUTPUT...: "MAX MEAN BYTES" over the outputs of N replays
# (their seconds, and bytes summed), or "bad" when one printed no time,
# reported read errors, or fewer than N ran.
replay_stats() {
	local n=$1
	shift
	cat "$@" | awk -v n="$n" '
		{ s = ""; e = ""; b = ""
		  for (i = 1; i <= NF; i++) { split($i, kv, "=")
		    if (kv[1] == "seconds") s = kv[2]; if (kv[1] == "errors") e = kv[2]; if (kv[1] == "bytes") b = kv[2] }
		  if (s == "" || e != "0") bad++; else { k++; if (s + 0 > m) m = s + 0; t += s; by += b } }
		END { if (bad || k != n) print "bad"; else printf "%.6f %.6f %d\n", m, t / k, by }'
}

# seconds_of, bytes_of: the seconds= and bytes= of yolo-readbench's output
# (on stdin).
seconds_of() { sed -n 's/.*seconds=\([0-9.]*\).*/\1/p'; }
bytes_of() { sed -n 's/.*bytes=\([0-9]*\).*/\1/p'; }
