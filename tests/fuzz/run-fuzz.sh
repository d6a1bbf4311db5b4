#!/bin/sh
# run-fuzz.sh [SECONDS] - configure build-fuzz (clang, -Dfuzz=true), build
# the libFuzzer target and fuzz yolo_image_open_mem for SECONDS (default 600)
# with inputs up to 64 KiB, starting from tests/fuzz/corpus and the saved
# reproducers in tests/fuzz/regressions (so a regression fails at once).
# New inputs go to build-fuzz/fuzz-corpus, crashes to build-fuzz/fuzz-artifacts/.
# Exit status: libFuzzer's, non-zero when it found a crash, leak or timeout.
# KEEP_GOING=1 runs libFuzzer in fork mode with -ignore_crashes=1, so a
# known crash does not end the run before SECONDS have passed.
set -eu
secs=${1:-600}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-fuzz
seeds=$root/tests/fuzz/corpus
regressions=$root/tests/fuzz/regressions
work=$build/fuzz-corpus
artifacts=$build/fuzz-artifacts
log=$build/fuzz.log

if [ ! -f "$build/build.ninja" ]; then
	CC=${CC:-clang} meson setup "$build" "$root" -Dfuzz=true -Dfuse=disabled -Dtests=false
fi
ninja -C "$build" tests/fuzz/fuzz_image_open tests/fuzz/fuzz_gen_corpus
mkdir -p "$seeds" "$work" "$artifacts"
if [ -z "$(ls -A "$seeds")" ]; then
	"$build/tests/fuzz/fuzz_gen_corpus" "$seeds"
fi

echo "fuzzing for ${secs}s; log: $log"
mode=
if [ "${KEEP_GOING:-0}" = 1 ]; then
	mode="-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1"
fi
set +e
# shellcheck disable=SC2086
"$build/tests/fuzz/fuzz_image_open" -max_len=65536 -max_total_time="$secs" \
	-print_final_stats=1 -artifact_prefix="$artifacts/" -timeout=25 -rss_limit_mb=2048 \
	$mode "$work" "$seeds" "$regressions" >"$log" 2>&1
rc=$?
set -e

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
if [ -z "$execs" ]; then     # fork mode: "#N: cov: ..." progress lines
	execs=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "$log" | tail -n 1)
fi
echo "exit status:  $rc"
echo "executions:   ${execs:-unknown}"
echo "corpus:       $(ls "$work" | wc -l) inputs in $work"
grep -E '^#[0-9]+(:|[[:space:]]+DONE)' "$log" | tail -n 1 || true
found=$(ls "$artifacts" 2>/dev/null | wc -l)
echo "findings:     $found"
if [ "$found" -gt 0 ]; then
	# Group the findings by the kind of error and the first frame in the
	# project's sources (re-running each reproducer once).
	echo "findings by first project frame (count, error, frame, one reproducer):"
	for f in "$artifacts"/*; do
		out=$(timeout 60 "$build/tests/fuzz/fuzz_image_open" "$f" 2>&1)
		kind=$(printf '%s\n' "$out" | sed -nE 's/.*ERROR: (AddressSanitizer|libFuzzer): ([a-z -]*[a-z]).*/\2/p; s/.*runtime error: (.*)/ubsan: \1/p' | head -n 1)
		frame=$(printf '%s\n' "$out" |
			grep -E ' in [A-Za-z_]+ [^ ]*(boot-images|tests/fuzz)/[a-z_]+\.c:[0-9]+' | head -n 1 |
			sed -E 's/.* in ([A-Za-z_]+) .*\/([a-z_]+\.c:[0-9]+).*/\1 \2/')
		printf '%s | %s | %s\n' "${kind:-?}" "${frame:-?}" "$f"
	done | sort | awk -F' [|] ' '{ n[$1" | "$2]++; ex[$1" | "$2]=$3 } END { for (k in n) printf "  %4d  %s  e.g. %s\n", n[k], k, ex[k] }'
	echo "reproduce: $build/tests/fuzz/fuzz_image_open <file>"
fi
exit "$rc"
