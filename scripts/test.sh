#!/usr/bin/env bash
# The test command: installs what is missing, then builds and runs every test
#   1. normal build (-Wall -Wextra, -DDC_WERROR=ON): unit + integration tests (ctest),
#      then every target in the release configurations (scripts/release-builds.sh:
#      gcc and clang, -O2/-O3/-Os, every build type, Debian's hardening flags)
#   2. the same suite under AddressSanitizer + UndefinedBehaviorSanitizer (leaks too)
#   3. the Debian package: built from the tracked files with Debian's flags (no
#      warning), lintian (no error), installed, run as the service user, purged
#   4. the libFuzzer targets, briefly, seeded from tests/data and each from its own
#      minimized corpus tests/data/fuzz/<target>/ (kept by fuzz/run-long.sh)
# Integration tests start their own PostgreSQL, Dovecot and dnsmasq on loopback.
# Environment: DC_FUZZ_SECONDS (default 20 per target), DC_SKIP_ASAN=1, DC_SKIP_PACKAGE=1, DC_SKIP_FUZZ=1
# (for quick local runs only; CI runs everything).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
jobs=$(nproc 2>/dev/null || echo 2)

step() { printf '\n== %s ==\n' "$*"; }

step "dependencies"
bash scripts/install-deps.sh

export G_SLICE=always-malloc G_DEBUG=gc-friendly
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
if [ -f "$src/tests/lsan.supp" ]; then
  export LSAN_OPTIONS=suppressions=$src/tests/lsan.supp:print_suppressions=0
fi

run_suite() {  # build dir, extra cmake args...
  local dir=$1; shift
  cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$jobs" 2>&1 | grep -Ev '^\[|^-- ' || true
  test -x "$dir/dmarc-collector"
  (cd "$dir" && ctest -j"$jobs" --output-on-failure --timeout 900) | tee "$dir/ctest.out"
  local line total failed
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$dir/ctest.out" | tail -1)
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
  failed=$(sed -E 's/.*, ([0-9]+) tests failed.*/\1/' <<<"$line")
  passed_all=$((passed_all + total - failed)); failed_all=$((failed_all + failed))
}
passed_all=0; failed_all=0

step "source checks (clang-format, cppcheck)"
bash scripts/lint.sh || { echo "source checks failed (scripts/lint.sh --fix formats)"; exit 1; }
passed_all=$((passed_all + 1))

step "build and test (gcc, -Werror)"
run_suite "$src/build" -DDC_WERROR=ON

step "release builds (gcc and clang, -O2/-O3, every build type, dpkg-buildflags; scripts/release-builds.sh)"
bash scripts/release-builds.sh | tee "$src/build-release.out" || { echo "release builds failed (a warning or an error)"; exit 1; }
passed_all=$((passed_all + $(grep -c '^release build .* ok ' "$src/build-release.out")))

if [ "${DC_SKIP_ASAN:-0}" != 1 ]; then
  step "build and test under ASan + UBSan"
  run_suite "$src/build-asan" -DDC_SANITIZE=ON -DDC_WERROR=ON
fi

if [ "${DC_SKIP_PACKAGE:-0}" != 1 ]; then
  # the .deb from the tracked files (Debian's flags: no warning allowed), lintian
  # (no error), and the install test: install, run the installed program as the
  # service user against PostgreSQL, reinstall, purge (scripts/package.sh)
  step "Debian package (build, lintian, install test)"
  t0=$(date +%s)
  mkdir -p "$src/build-deb"
  bash scripts/package.sh | tee "$src/build-deb/package.out" || true
  line=$(grep -E '^package: [0-9]+ passed, [0-9]+ failed' "$src/build-deb/package.out" | tail -1)
  if [ -z "$line" ]; then
    echo "scripts/package.sh stopped without its summary line"; exit 1
  fi
  passed_all=$((passed_all + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")))
  failed_all=$((failed_all + $(sed -E 's/.*, ([0-9]+) failed.*/\1/' <<<"$line")))
  echo "Debian package step: $(($(date +%s) - t0)) s"
fi

if [ "${DC_SKIP_FUZZ:-0}" != 1 ]; then
  step "fuzz targets (libFuzzer, ${DC_FUZZ_SECONDS:-20}s each)"
  fdir=$src/build-fuzz
  cmake -S "$src" -B "$fdir" -DCMAKE_C_COMPILER=clang -DDC_FUZZ=ON -DDC_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$fdir" -j"$jobs" 2>&1 | grep -Ev '^\[|^-- ' || true
  seeds=$fdir/seeds
  rm -rf "$seeds"; mkdir -p "$seeds"
  # seed corpus: every test input file, small ones only (the per-target fuzz
  # corpora are given to their own target below, not to all of them)
  find "$src/tests/data" -path "$src/tests/data/fuzz" -prune -o -type f -size -300k \
    ! -name '*.tsv' ! -name '*.md' ! -name '*.py' -exec cp -t "$seeds" {} + 2>/dev/null || true
  # give each seed a unique name (cp -t flattens paths and may overwrite; that is fine)
  nf=0
  for f in "$fdir"/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    work=$fdir/corpus-$name; rm -rf "$work"; mkdir -p "$work"
    kept=(); nk=0
    if [ -d "$src/tests/data/fuzz/$name" ]; then
      kept=("$src/tests/data/fuzz/$name"); nk=$(ls "$src/tests/data/fuzz/$name" | wc -l)
    fi
    echo "$name: $(ls "$seeds" | wc -l) seeds + $nk from tests/data/fuzz/$name, ${DC_FUZZ_SECONDS:-20}s"
    "$f" -max_total_time="${DC_FUZZ_SECONDS:-20}" -max_len=262144 -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=0 "$work" "$seeds" "${kept[@]}" >"$fdir/$name.log" 2>&1 \
      || { tail -40 "$fdir/$name.log"; echo "fuzz target $name failed"; exit 1; }
    grep -E 'Done [0-9]+ runs' "$fdir/$name.log" | tail -1
    nf=$((nf + 1)); passed_all=$((passed_all + 1))
  done
  [ "$nf" -gt 0 ] || { echo "no fuzz targets were built"; exit 1; }
fi

if [ "$failed_all" -gt 0 ]; then
  step "FAILED"
  echo "tests: $passed_all passed, $failed_all failed"
  exit 1
fi
step "all tests passed"
echo "tests: $passed_all passed, $failed_all failed"
