# shellcheck shell=bash
# raw.sh - sourced by bench/bench: the raw data a run writes, and nothing
# else (medians, ratios, targets and plots are bench/report.py's: the
# committed raw data regenerates the committed report exactly).
#
# OUT/raw/STAMP/context holds the run's context (date, commit, machine,
# options; key=value lines) and OUT/raw/STAMP/runs.tsv one row per run:
#   figure profile mode n policy think cache run status seconds bytes disk_bytes misses extra
# (cache: the page-cache state of a container start, "-" elsewhere; raw
# directories written before it was added lack the column).  status is ok
# or failed; a failed run has "-" for seconds and says why in extra
# (error=...), so it can never become a number.  OUT/raw/STAMP/logs/ keeps
# daemon logs, metrics and the output of failed runs.

# raw_open: RAW (this run's raw directory, named after its start) and LOGS.
raw_open() {
	STAMP=$(date -u +%Y%m%dT%H%M%SZ)
	RAW=$OUT/raw/$STAMP
	LOGS=$RAW/logs
	mkdir -p "$LOGS"
}

# context KEY VALUE: one line of the run's context.
context() { printf '%s=%s\n' "$1" "$2" >>"$RAW/context"; }

# write_context: the run's context (each figure adds its own options'
# lines: FIGURE_context), then runs.tsv's header.
write_context() {
	local commit dirty=no
	commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
	# What a run itself rewrites (the report, README's summary) does not count.
	[[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no -- . ':!bench-results' ':!README.md' \
		2>/dev/null) ]] && dirty=yes
	context date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	context commit "$commit"
	context uncommitted_changes "$dirty"
	context command "bench/bench$ARGS"
	context cpus "$(nproc)"
	context cpu_model "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
	context memory_gib "$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)"
	context kernel "$(uname -r)"
	context virtualization "$(systemd-detect-virt 2>/dev/null || echo unknown)"
	context figures "$FIGURES"
	context runs "$RUNS"
	context slow_runs "$SLOW_RUNS"
	context slow_seconds "$SLOW_SECONDS"
	context trace "$(basename "$TRACE")"
	context loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
	if [[ -n $BEFORE ]]; then
		context before_build "$BEFORE"
		context before_commit "$(git -C "$BEFORE" rev-parse HEAD 2>/dev/null || echo unknown)"
	fi
	context trace_sha256 "$(sha256sum <"$TRACE" | cut -d' ' -f1)"
	# The options the replay and think figures share.
	if has_figure replay || has_figure think; then
		context profiles "$PROFILES"
		context policies "$POLICIES"
	fi
	figure_hooks context
	printf 'figure\tprofile\tmode\tn\tpolicy\tthink\tcache\trun\tstatus\tseconds\tbytes\tdisk_bytes\tmisses\textra\n' \
		>"$RAW/runs.tsv"
}

# row FIGURE PROFILE MODE N POLICY THINK CACHE RUN STATUS SECONDS BYTES DISK_BYTES MISSES EXTRA:
# one run.  "-" for what does not apply; tabs and newlines in EXTRA become spaces.
# ROW_OUT: write it there instead (a run that may be repeated).
# The 1-min load average at the row's writing (the end of the run) goes into
# EXTRA as load1= unless it is there already: the machine is shared.
row() {
	local extra=${14//$'\t'/ } load1
	extra=${extra//$'\n'/ }
	if [[ $extra != *load1=* ]]; then
		read -r load1 _ </proc/loadavg
		[[ -z $extra || $extra == - ]] && extra="load1=$load1" || extra="load1=$load1 $extra"
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${@:1:13}" "${extra:--}" \
		>>"${ROW_OUT:-$RAW/runs.tsv}"
}

# keep_failed DIR NAME: a failed run's output (DIR) kept as logs/failed/NAME.
keep_failed() {
	mkdir -p "$LOGS/failed"
	cp -r "$1" "$LOGS/failed/$2"
}
