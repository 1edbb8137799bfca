#!/usr/bin/env bash
# fuzz/run-long.sh - the long fuzzing run (issue 9, item 6); not part of CI.
#
# Builds the libFuzzer targets with clang (-DDC_FUZZ=ON, as scripts/test.sh does),
# seeds each target from the small files under tests/data (test.sh's filter) and from
# its own kept corpus tests/data/fuzz/<target>/, runs each for a while at nice 19,
# keeps the growing corpus per target in the work directory (so a second run goes on
# from where the first stopped), and at the end merges (-merge=1) what was found into
# a minimized tests/data/fuzz/<target>/ and prints a summary.
#
#   fuzz/run-long.sh [target...]          default: every fuzz/fuzz_*.c
#
# Environment:
#   DC_FUZZ_LONG_SECONDS   wall-clock seconds per target (default 3600)
#   DC_FUZZ_PARALLEL       targets run at once (default 1)
#   DC_FUZZ_WORK           work directory (default build-fuzz-long)
#   DC_FUZZ_KEEP_MAX       largest input (bytes) merged into tests/data/fuzz (default 8192:
#                          after 44 minutes, 8 KiB kept ~2.3 MB for fuzz_mime and fuzz_xml
#                          together and 32 KiB 6.2 MB, for a few % more edges)
#   DC_FUZZ_LONG_SECONDS=0 only merges (the summaries of the last run are kept)
#   DC_FUZZ_NO_MERGE=1     leave tests/data/fuzz alone
# A crash, leak, timeout or OOM stops libFuzzer; the script keeps the artifact in
# WORK/artifacts/<target>/ and restarts the target for the rest of its time (at most
# 5 times).  The per-target results go to WORK/<target>.summary; the whole summary is
# printed at the end and kept in WORK/summary.txt.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
secs=${DC_FUZZ_LONG_SECONDS:-3600}
par=${DC_FUZZ_PARALLEL:-1}
work=${DC_FUZZ_WORK:-$src/build-fuzz-long}
maxlen=262144          # test.sh's seeds are under 300 KiB; so is every kept input
keepmax=${DC_FUZZ_KEEP_MAX:-8192}   # largest input kept in tests/data/fuzz
timeout=30             # wall-clock: at nice 19 on a busy machine 10 s gives false alarms
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export G_SLICE=always-malloc G_DEBUG=gc-friendly
[ -f "$src/tests/lsan.supp" ] && export LSAN_OPTIONS=suppressions=$src/tests/lsan.supp:print_suppressions=0

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }

mkdir -p "$work"
log "build (clang, DC_FUZZ=ON) in $work/build"
cmake -S "$src" -B "$work/build" -DCMAKE_C_COMPILER=clang -DDC_FUZZ=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
nice -n 19 cmake --build "$work/build" -j2 2>&1 | grep -Ev '^\[|^-- ' || true

if [ $# -gt 0 ]; then
	targets=("$@")
else
	targets=()
	for f in "$src"/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
for t in "${targets[@]}"; do
	[ -x "$work/build/fuzz/$t" ] || { echo "no fuzz target $t"; exit 1; }
done

# shared seeds: test.sh's filter, flattened
seeds=$work/seeds
rm -rf "$seeds"; mkdir -p "$seeds"
find "$src/tests/data" -path "$src/tests/data/fuzz" -prune -o -type f -size -300k \
	! -name '*.tsv' ! -name '*.md' ! -name '*.py' -exec cp -t "$seeds" {} + 2>/dev/null || true

# run_one TARGET: fuzz for $secs of wall time, restarting after a finding
run_one() {
	local t=$1 bin=$work/build/fuzz/$1 corpus=$work/corpus/$1 art=$work/artifacts/$1/
	local kept=$src/tests/data/fuzz/$1 start end left runs=0 execs=0 n crashes=0 l
	mkdir -p "$corpus" "$art"
	: >"$work/$t.log"
	start=$(date +%s); end=$((start + secs))
	for n in 1 2 3 4 5 6; do
		left=$((end - $(date +%s)))
		[ "$left" -gt 5 ] || break
		log "$t: run $n, ${left}s left"
		l=$work/$t.$n.log
		nice -n 19 "$bin" -max_total_time="$left" -max_len=$maxlen -rss_limit_mb=2048 \
			-timeout=$timeout -print_final_stats=1 -artifact_prefix="$art" \
			"$corpus" "$seeds" $([ -d "$kept" ] && echo "$kept") >"$l" 2>&1
		local rc=$?
		cat "$l" >>"$work/$t.log"
		runs=$((runs + 1))
		n=$(grep -E '^stat::number_of_executed_units' "$l" | awk '{print $2}' | tail -1)
		[ -n "$n" ] || n=$(grep -Eo '^#[0-9]+' "$l" | tail -1 | tr -d '#')
		execs=$((execs + ${n:-0}))
		if [ $rc -ne 0 ]; then
			crashes=$((crashes + 1))
			log "$t: libFuzzer exit $rc: $(grep -E '^==[0-9]+==ERROR|^SUMMARY|Test unit written' "$l" | head -3 | tr '\n' ' ')"
		else
			break
		fi
	done
	local took=$(($(date +%s) - start))
	local last=$(grep -E '^#[0-9]+' "$work/$t.log" | tail -1)
	local cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
	local ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
	printf '%s seconds=%d execs=%d cov=%s ft=%s corpus_files=%d findings=%d artifacts=%d runs=%d\n' \
		"$t" "$took" "$execs" "${cov:-?}" "${ft:-?}" "$(ls "$corpus" | wc -l)" "$crashes" \
		"$(ls "$art" | wc -l)" "$runs" >"$work/$t.summary"
	log "$(cat "$work/$t.summary")"
}

log "${#targets[@]} targets, ${secs}s each, $par at a time; $(ls "$seeds" | wc -l) shared seeds"
running=0
for t in "${targets[@]}"; do
	[ "$secs" -gt 0 ] || break
	if [ "$running" -ge "$par" ]; then wait -n; running=$((running - 1)); fi
	run_one "$t" &
	running=$((running + 1))
done
wait

if [ "${DC_FUZZ_NO_MERGE:-0}" != 1 ]; then
	for t in "${targets[@]}"; do
		kept=$src/tests/data/fuzz/$t
		new=$work/merged/$t
		rm -rf "$new"; mkdir -p "$new"
		log "$t: merge into tests/data/fuzz/$t"
		# the seeds go into the output first, so that only what adds to them is kept;
		# they are taken out again afterwards (tests/data has them already)
		for f in "$seeds"/*; do cp "$f" "$new/seed-$(basename "$f")"; done
		# only inputs up to $keepmax bytes are kept, so the corpus stays small
		in=$work/merge-in/$t
		rm -rf "$in"; mkdir -p "$in"
		find $([ -d "$kept" ] && echo "$kept") "$work/corpus/$t" -type f -size -$((keepmax + 1))c \
			-exec cp -t "$in" {} + 2>/dev/null # a name in both is the same input (SHA-1)
		nice -n 19 "$work/build/fuzz/$t" -merge=1 -max_len=$maxlen -rss_limit_mb=2048 \
			-timeout=$timeout "$new" "$in" \
			>"$work/$t.merge.log" 2>&1 || { tail -20 "$work/$t.merge.log"; continue; }
		rm -f "$new"/seed-*
		rm -rf "$kept"; mkdir -p "$kept"; cp -t "$kept" "$new"/* 2>/dev/null || true
		echo "$(sed 's/ kept_files=.*//' "$work/$t.summary") kept_files=$(ls "$kept" | wc -l) kept_bytes=$(du -sb "$kept" | cut -f1)" \
			>"$work/$t.summary"
	done
fi

log "summary"
for t in "${targets[@]}"; do cat "$work/$t.summary"; done | tee "$work/summary.txt"
