#!/usr/bin/env bash
# The two source checks of the test command (scripts/test.sh), both of which
# fail on any new finding:
#   1. clang-format: every tracked .c/.h file is formatted as .clang-format says
#      (fix with: scripts/lint.sh --fix);
#   2. cppcheck: the product code (common/ parser/ storage/ resolve/ collector/
#      program/) has no warning, portability or performance finding, apart
#      from the justified entries of cppcheck.supp.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"

mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
if [ "${1:-}" = --fix ]; then
  clang-format -i "${files[@]}"
  exit 0
fi

rc=0
if ! clang-format --dry-run --Werror "${files[@]}" 2>"${TMPDIR:-/tmp}/dc-format.$$"; then
  grep -E '^[^ ].*: (error|warning):' "${TMPDIR:-/tmp}/dc-format.$$" | cut -d: -f1 | sort | uniq -c |
    sed 's/^/clang-format: lines to reformat in /' >&2
  echo "lint: formatting differs from .clang-format (run scripts/lint.sh --fix)" >&2
  rc=1
fi
rm -f "${TMPDIR:-/tmp}/dc-format.$$"
echo "clang-format: ${#files[@]} files checked"

dirs=(common parser storage resolve collector program)
incs=()
for d in "${dirs[@]}"; do incs+=(-I"$d"); done
if ! cppcheck --std=c11 -D_GNU_SOURCE "${incs[@]}" --enable=warning,portability,performance \
    --inline-suppr --suppressions-list=cppcheck.supp --suppress=missingIncludeSystem \
    --error-exitcode=1 --quiet -j"$(nproc 2>/dev/null || echo 2)" "${dirs[@]}"; then
  echo "lint: cppcheck found the problems above" >&2
  rc=1
fi
echo "cppcheck: $(find "${dirs[@]}" -name '*.c' | wc -l) files checked"
exit $rc
