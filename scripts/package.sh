#!/usr/bin/env bash
# scripts/package.sh - builds the Debian package from the tracked files of the
# working tree, runs lintian on it and, as root, the install test
# (tests/package/install-test.sh).
#
#   bash scripts/package.sh                 build + lintian + install test
#   bash scripts/package.sh --no-install    build + lintian
#   bash scripts/package.sh --clean-chroot  build in a fresh Debian 12 chroot
#                                           holding only the Build-Depends
#
# Why a copy: dpkg-buildpackage works in the source tree and leaves debian/
# build products there; a copy of exactly the tracked files (as they are in
# the working tree, so uncommitted edits are tested; untracked files are not,
# as they would not be in a clone) also proves that nothing untracked is
# needed.  It goes to build-deb/dmarc-collector-VERSION/, ignored by git.
#
# The build must be free of compiler and linker warnings with Debian's flags
# (dpkg-buildflags, hardening=+all): debian/rules leaves -Werror off, as a
# package build must, so this script fails on any "warning:" from gcc or ld
# in the build log instead.
#
# --clean-chroot is the proof that the declared Build-Depends suffice on a
# clean Debian 12 (dpkg-checkbuilddeps only proves they are installed here).
# It is not part of the test command: its first run debootstraps (about
# 3.5 min and 600 MB, downloaded from this machine's Debian mirror); later
# runs start from a fresh copy of build-deb/chroot-base (about 2 min).
#
# Output: one "ok NAME" / "FAIL NAME: why" line per check, then
# "package: N passed, M failed" (scripts/test.sh counts these); exit 0 only
# when none failed.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
mode=all
case "${1:-}" in
  "") ;;
  --no-install) mode=build ;;
  --clean-chroot) mode=chroot ;;
  *) echo "usage: $0 [--no-install | --clean-chroot]" >&2; exit 2 ;;
esac

name=$(dpkg-parsechangelog -l debian/changelog -S Source)
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
arch=$(dpkg --print-architecture)
out=$src/build-deb
tree=$out/$name-$version
deb=$out/${name}_${version}_${arch}.deb
changes=$out/${name}_${version}_${arch}.changes
log=$out/build.log
jobs=$(nproc 2>/dev/null || echo 2)

passed=0 failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
finish() {
  echo "package: $passed passed, $failed failed"
  [ "$failed" = 0 ]
  exit
}

# ----------------------------------------------------------- the source copy
rm -rf "$tree" "$out/${name}"_* "$out/${name}"-dbgsym_*
mkdir -p "$tree"
# tracked files that exist in the working tree (a deletion not yet committed
# is a deletion); tar keeps modes (debian/rules must stay executable)
git ls-files -z | while IFS= read -r -d '' f; do
  [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"
done | tar --null --no-recursion -T - -cf - | tar -xf - -C "$tree"
ok "copied $(git ls-files | wc -l) tracked files to ${tree#"$src"/}"
# The source package too (native: one .tar.xz of the copy), for lintian's
# source checks; it is built before the binary build dirties the tree.
dsc=$out/${name}_${version}.dsc
if srcout=$(cd "$out" && dpkg-source -b "$name-$version" 2>&1); then
  ok "dpkg-source -b: ${dsc#"$src"/}"
else
  bad "dpkg-source -b" "$(tail -10 <<<"$srcout")"
fi

# --------------------------------------------------------------------- build
build_host() {
  local t0 t1
  if ! out_deps=$(cd "$tree" && dpkg-checkbuilddeps 2>&1); then
    bad "dpkg-checkbuilddeps" "$out_deps (run scripts/install-deps.sh)"
    finish
  fi
  ok "dpkg-checkbuilddeps: the declared Build-Depends are installed"
  t0=$(date +%s)
  if (cd "$tree" && DEB_BUILD_OPTIONS="parallel=$jobs ${DEB_BUILD_OPTIONS:-}" \
      dpkg-buildpackage -us -uc -b) >"$log" 2>&1; then
    t1=$(date +%s)
    ok "dpkg-buildpackage -us -uc -b ($((t1 - t0)) s; log ${log#"$src"/})"
  else
    bad "dpkg-buildpackage -us -uc -b" "$(tail -30 "$log")"
    finish
  fi
}

build_chroot() {
  # debootstrap --variant=buildd: the essential packages and build-essential,
  # nothing else; then `apt-get satisfy` installs exactly the Build-Depends
  # of debian/control (and what they depend on), and dpkg-buildpackage runs
  # inside.  The mirror and apt sources are this machine's own (its
  # /etc/apt/sources.list.d/*.sources or sources.list); DC_DEBIAN_MIRROR
  # overrides the mirror.  The bootstrapped system is kept in
  # build-deb/chroot-base and copied afresh to build-deb/chroot for each
  # build, so no package of an earlier build is there; delete chroot-base to
  # bootstrap again.
  local base=$out/chroot-base root=$out/chroot mirror t0 t1 deps
  chroot_root=$root
  command -v debootstrap >/dev/null || { bad "debootstrap" "not installed (scripts/install-deps.sh)"; finish; }
  [ "$(id -u)" = 0 ] || { bad "chroot build" "must run as root"; finish; }
  mirror=${DC_DEBIAN_MIRROR:-$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '/^URIs:/ {u = $2} /^Suites:/ && / bookworm( |$)/ {print u; exit}')}
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$mirror" ] || { bad "chroot build" "no bookworm mirror in this machine's apt sources (set DC_DEBIAN_MIRROR)"; finish; }
  t0=$(date +%s)
  if [ ! -x "$base/usr/bin/dpkg-buildpackage" ]; then
    rm -rf --one-file-system "$base"
    debootstrap --variant=buildd bookworm "$base" "$mirror" >"$out/debootstrap.log" 2>&1 \
      || { bad "debootstrap bookworm" "$(tail -10 "$out/debootstrap.log")"; finish; }
    # the host's apt sources (bookworm-updates and -security too)
    if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
      rm -f "$base/etc/apt/sources.list"
      cp /etc/apt/sources.list.d/*.sources "$base/etc/apt/sources.list.d/"
    fi
  fi
  # a /proc left mounted by an interrupted run must not be walked by rm
  mountpoint -q "$root/proc" 2>/dev/null && umount "$root/proc"
  rm -rf --one-file-system "$root"
  cp -a "$base" "$root"
  t1=$(date +%s)
  ok "debootstrap --variant=buildd bookworm, fresh copy ($((t1 - t0)) s)"
  mkdir -p "$root/build"
  cp -a "$tree" "$root/build/"
  # Build-Depends as one apt-get satisfy argument (build profiles dropped:
  # the test dependencies are wanted, nocheck is not set)
  deps=$(sed -n '/^Build-Depends:/,/^[A-Z][A-Za-z-]*:/p' "$tree/debian/control" | sed '$d' \
    | sed 's/^Build-Depends://; s/<[^>]*>//g' | tr -d '\n' | tr -s ' ' | sed 's/,[[:space:]]*$//')
  mount --bind /proc "$root/proc"
  trap 'umount "$chroot_root/proc" 2>/dev/null' EXIT
  t0=$(date +%s)
  if chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
      DEBIAN_FRONTEND=noninteractive DEB_BUILD_OPTIONS="parallel=$jobs" sh -ec "
      apt-get update -qq
      apt-get satisfy -y -q --no-install-recommends '$deps'
      cd /build/$name-$version
      dpkg-buildpackage -us -uc -b
    " >"$log" 2>&1; then
    t1=$(date +%s)
    ok "clean chroot: only the Build-Depends installed, dpkg-buildpackage -us -uc -b ($((t1 - t0)) s)"
    cp "$root/build/"*.deb "$root/build/"*.changes "$root/build/"*.buildinfo "$out/"
  else
    bad "clean chroot build" "$(tail -30 "$log")"
  fi
  umount "$root/proc" 2>/dev/null || true
  [ "$failed" = 0 ] || finish
}

if [ "$mode" = chroot ]; then build_chroot; else build_host; fi

[ -f "$deb" ] && ok "built ${deb#"$src"/} ($(du -k "$deb" | cut -f1) KiB)" \
  || { bad "package file" "${deb#"$src"/} missing"; finish; }

# Compiler and linker warnings (file:line: warning: ..., ld: warning: ...).
warnings=$(grep -E '^[^ ]+:[0-9]+(:[0-9]+)?: warning: |(^|/)ld(\.[a-z]+)?: warning: |^cc1: warning: ' "$log" | sort -u)
if [ -z "$warnings" ]; then
  ok "no compiler or linker warning with Debian's flags (hardening=+all)"
else
  bad "compiler warnings in the package build" "$warnings"
fi
# The unit tests ran at build time (dh_auto_test: ctest -L unit).
utests=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
if [ -n "$utests" ]; then ok "unit tests at build time: $utests"; else bad "unit tests at build time" "no ctest summary in the log"; fi
# dpkg's own remarks (dpkg-shlibdeps, dpkg-gencontrol): shown, not fatal.
grep -E '^dpkg-[a-z]+: warning: ' "$log" | sort -u | sed 's/^/note: /'

# ------------------------------------------------------------------- lintian
if command -v lintian >/dev/null; then
  lint=$(lintian --fail-on error --display-info --tag-display-limit 0 "$changes" \
    $([ -f "$dsc" ] && echo "$dsc") 2>&1)
  lrc=$?
  lint=$(grep -v '^running with root privileges' <<<"$lint")
  [ -n "$lint" ] && sed 's/^/lintian: /' <<<"$lint"
  if [ $lrc = 0 ]; then
    ok "lintian: no error ($(grep -c '^W: ' <<<"$lint") warnings, $(grep -c '^I: ' <<<"$lint") infos)"
  else
    bad "lintian" "$(grep -E '^E: ' <<<"$lint" || echo "exit $lrc")"
  fi
else
  bad "lintian" "not installed (scripts/install-deps.sh)"
fi

# ------------------------------------------------------------- install test
if [ "$mode" = all ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "note: install test skipped (not root)"
  else
    bash "$src/tests/package/install-test.sh" "$deb" | tee "$out/install-test.log"
    line=$(grep -E '^install-test: [0-9]+ passed, [0-9]+ failed' "$out/install-test.log" | tail -1)
    if [ -n "$line" ]; then
      p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.*, ([0-9]+) failed.*/\1/' <<<"$line")
      passed=$((passed + p)); failed=$((failed + f))
    else
      bad "install test" "no summary line (see ${out#"$src"/}/install-test.log)"
    fi
  fi
fi
finish
