#!/bin/bash
# version.sh - `dmarc-collector --version` (issue 12): exit 0; the first line
# carries CMake's project version, read here from CMakeLists.txt (the one
# place it is written), and the git description when the program was built
# from a git checkout (a commit of this repository); then one line per
# library with the version of the copy loaded at run time, compared with the
# version Debian has installed (dpkg-query, upstream part: no epoch, no
# Debian revision, no +dfsg), and libcurl's TLS library.  Needs no service.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

out=$("$DC_BIN" --version 2>&1); rc=$?
printf '%s\n' "$out"
[ "$rc" = 0 ] || fail "--version exited $rc, expected 0"

want=$(sed -nE 's/^project\(dmarc-collector VERSION ([0-9.]+).*/\1/p' "$DC_SRC/CMakeLists.txt")
[ -n "$want" ] || fail "no project(dmarc-collector VERSION ...) in CMakeLists.txt"
first=$(head -1 <<<"$out")
if ! grep -Eq "^dmarc-collector ${want//./\\.}( \(git [^ )]+\))?$" <<<"$first"; then
  fail "first line '$first' is not 'dmarc-collector $want [(git ...)]'"
fi

# The git description: present exactly when the source is the top of a git
# checkout, and naming a commit of it (HEAD may have moved since the build).
if command -v git >/dev/null && top=$(git -C "$DC_SRC" rev-parse --show-toplevel 2>/dev/null) \
  && [ "$(realpath "$top")" = "$(realpath "$DC_SRC")" ]; then
  desc=$(sed -nE 's/.* \(git ([^ )]+)\)$/\1/p' <<<"$first")
  if [ -z "$desc" ]; then
    fail "built from a git checkout but the first line has no (git ...)"
  else
    hash=$(sed -E 's/-dirty$//; s/.*-g([0-9a-f]+)$/\1/' <<<"$desc")
    git -C "$DC_SRC" rev-parse -q --verify "$hash^{commit}" >/dev/null \
      || fail "git description '$desc' names no commit ($hash) of $DC_SRC"
    echo "ok: git description $desc"
  fi
fi

# library name in --version, then the Debian packages that may provide it
libs=(
  "libcurl libcurl4 libcurl3-gnutls"
  "libxml2 libxml2"
  "libpq libpq5"
  "GMime libgmime-3.0-0"
  "c-ares libc-ares2"
  "libpsl libpsl5"
  "libzip libzip4 libzip5"
  "zlib zlib1g"
  "libmaxminddb libmaxminddb0"
  "json-c libjson-c5"
)
upstream() { sed -E 's/^[0-9]+://; s/-[^-]*$//' <<<"$1" | grep -oE '^[0-9]+(\.[0-9]+)*'; }
for entry in "${libs[@]}"; do
  read -r name pkgs <<<"$entry"
  line=$(grep -E "^  $name " <<<"$out")
  if [ -z "$line" ]; then fail "no '  $name VERSION' line"; continue; fi
  shown=$(awk '{print $2}' <<<"$line")
  if [ "$name" = libcurl ] && ! grep -Eq '^  libcurl [^ ]+ \([^)]+/[^)]+\)$' <<<"$line"; then
    fail "libcurl line '$line' lacks its TLS library and version"
  fi
  command -v dpkg-query >/dev/null || { echo "skip: $name (no dpkg-query)"; continue; }
  deb=
  for p in $pkgs; do
    deb=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null) && [ -n "$deb" ] && break
    deb=
  done
  if [ -z "$deb" ]; then fail "$name: none of the packages $pkgs is installed"; continue; fi
  if [ "$shown" = "$(upstream "$deb")" ]; then
    echo "ok: $name $shown = Debian $deb"
  else
    fail "$name shows $shown, Debian has $deb (upstream $(upstream "$deb"))"
  fi
done

[ "$fails" = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "version: all checks passed"
