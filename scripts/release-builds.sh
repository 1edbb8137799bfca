#!/usr/bin/env bash
# release-builds.sh - build every target (program, unit and integration test
# programs, benchmarks) in the configurations a distribution or a user may
# choose, each with warnings as errors, so that a new warning fails here and
# never in a packager's build (issue 12).
#
# Why these configurations: the warnings that depend on the optimiser
# (-Wformat-truncation, -Wstringop-*, -Wmaybe-uninitialized, -Warray-bounds)
# differ between -O2, -O3 and -Os, and between gcc and clang; NDEBUG (every
# build type but Debug and None) removes the asserts and with them some uses of
# variables.  Debian's flags come from dpkg-buildflags with every hardening
# feature on (_FORTIFY_SOURCE adds the checked string functions and their
# warnings), as debhelper's cmake build passes them: CPPFLAGS appended to
# CFLAGS, LDFLAGS to the linker.  The build type's own flags come after
# CFLAGS on the command line, so their -O level is the one that applies.
#
#   name            compiler  build type      CFLAGS (dpkg-buildflags)
#   gcc-O2          gcc       None            -O2 (exactly the Debian package build)
#   gcc-O3          gcc       Release         -O3
#   clang-O2        clang     RelWithDebInfo  -O2
#   clang-O3        clang     Release         -O3
#   gcc-Debug       gcc       Debug           none (a developer's -O0 build, asserts on)
#   gcc-MinSizeRel  gcc       MinSizeRel      -Os
#
# Debug with Debian's flags would compile exactly as gcc-O2 does (Debug adds
# only -g, so dpkg's -O2 stays, asserts on), hence gcc-Debug is the
# developer's -O0 build instead (with -O0, _FORTIFY_SOURCE only makes glibc
# warn that it needs optimisation: a flags mistake, not the code's).
# RelWithDebInfo without Debian's flags is the test command's main build.
#
#   scripts/release-builds.sh [NAME...]   (default: all; each in build-release/NAME)
#
# Each build starts from an empty directory (a warning shows only when its
# file compiles).  Any line with "warning" in the output fails the
# configuration too: -Werror does not cover the linker or CMake.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
out=$src/build-release

command -v dpkg-buildflags >/dev/null || { echo "release-builds: needs dpkg-buildflags (dpkg-dev)" >&2; exit 2; }
flags() { DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1"; }
deb_cflags="$(flags CFLAGS) $(flags CPPFLAGS)"
deb_ldflags=$(flags LDFLAGS)
with_o() { sed -E "s/(^| )-O[0-9s]( |$)/\1$1\2/" <<<"$deb_cflags"; }

# name compiler build-type cflags
configs=(
  "gcc-O2|gcc|None|$(with_o -O2)"
  "gcc-O3|gcc|Release|$(with_o -O3)"
  "clang-O2|clang|RelWithDebInfo|$(with_o -O2)"
  "clang-O3|clang|Release|$(with_o -O3)"
  "gcc-Debug|gcc|Debug|"
  "gcc-MinSizeRel|gcc|MinSizeRel|$(with_o -Os)"
)

want=("$@")
selected() {
  [ ${#want[@]} -eq 0 ] && return 0
  local w; for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

mkdir -p "$out"
failed=(); built=0
for c in "${configs[@]}"; do
  IFS='|' read -r name cc type cflags <<<"$c"
  selected "$name" || continue
  dir=$out/$name log=$out/$name.log
  rm -rf "$dir"
  ldflags=$deb_ldflags; [ -n "$cflags" ] || ldflags=
  t0=$(date +%s.%N)
  ok=1
  {
    echo "CC=$cc CMAKE_BUILD_TYPE=$type CFLAGS=$cflags LDFLAGS=$ldflags"
    cmake -S "$src" -B "$dir" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE="$type" \
      -DCMAKE_C_FLAGS="$cflags" -DCMAKE_EXE_LINKER_FLAGS="$ldflags" \
      -DCMAKE_SHARED_LINKER_FLAGS="$ldflags" -DDC_WERROR=ON &&
      cmake --build "$dir" -j"$jobs"
  } >"$log" 2>&1 || ok=0
  t1=$(date +%s.%N)
  secs=$(printf '%.1f' "$(bc <<<"$t1 - $t0")")
  if [ $ok = 1 ] && grep -qi 'warning' "$log"; then ok=0; fi
  if [ $ok = 1 ] && ! [ -x "$dir/dmarc-collector" ]; then ok=0; fi
  if [ $ok = 1 ]; then
    printf 'release build %-15s ok      %6ss  (%s, %s)\n' "$name" "$secs" "$cc" "$type"
    built=$((built + 1))
  else
    printf 'release build %-15s FAILED  %6ss  (%s, %s): warnings or errors, %s\n' "$name" "$secs" "$cc" "$type" "$log"
    grep -iE 'warning|error:|error [0-9]' "$log" | head -20 | sed 's/^/    /'
    failed+=("$name")
  fi
done
[ $built -gt 0 ] || [ ${#failed[@]} -gt 0 ] || { echo "release-builds: no configuration named ${want[*]}" >&2; exit 2; }
if [ ${#failed[@]} -gt 0 ]; then
  echo "release-builds: FAILED in ${failed[*]} (logs in $out/)"
  exit 1
fi
echo "release-builds: $built configurations built without a warning"
