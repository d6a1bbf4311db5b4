# shellcheck shell=bash
# think.sh - sourced by bench/bench: the think figure.
#
# The replay figure's runs with the recorded think time (the gaps between a
# boot's reads, closed-loop) scaled by each of --think-scales: the trace is
# a TCG boot, 5-10x slower in CPU than the same guest under KVM, so scale 1
# is a slow guest, 0.2 a KVM-like one, 0 no think at all (the replay
# figure's own runs, reused when they exist).

think_check() {
	local s
	for s in $THINK_SCALES; do
		awk -v s="$s" 'BEGIN { exit !(s ~ /^[0-9]*\.?[0-9]+$/) }' || die "bad think scale '$s' (a number >= 0)"
	done
}

think_context() {
	context think_scales "$THINK_SCALES"
	context think_ns "$THINK_NS"
	context think_modes "$THINK_MODES"
}

# shellcheck disable=SC2086 # the list is meant to split
think_needs() { disk_need_copies $THINK_NS; }

# fig_think PROFILE: the same with the think time scaled; scale 0 cells the
# replay figure measured already are not run twice.
fig_think() {
	local profile=$1 scale mode n policy
	say "== think: profile $profile, think scales $THINK_SCALES, N in $THINK_NS, $THINK_MODES images"
	set_profile "$profile"
	[[ $profile == contended ]] && neighbour_start
	for scale in $THINK_SCALES; do
		scale=$(awk -v s="$scale" 'BEGIN { printf "%g", s }')
		for mode in $THINK_MODES; do
			for n in $THINK_NS; do
				for policy in $POLICIES; do replay_cell "$profile" "$mode" "$n" "$policy" "$scale"; done
			done
		done
	done
	neighbour_stop
}
