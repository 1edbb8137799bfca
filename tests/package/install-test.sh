#!/usr/bin/env bash
# tests/package/install-test.sh DEB - installs the built Debian package on
# this machine, checks what an administrator gets, runs the INSTALLED program
# as the service user against a throwaway PostgreSQL, reinstalls, then purges.
#
# Why on this machine and not in a throwaway root: the maintainer scripts
# (systemd-sysusers, systemd-tmpfiles, deb-systemd-helper) are what is under
# test, and they act on the real /etc; a chroot would need its own base system
# (scripts/package.sh --clean-chroot builds in one, it does not install).  The
# machine is left as it was: a trap purges the package and stops PostgreSQL
# even after a failure; only the system user stays (Debian never removes
# system users on purge, since files they own may remain elsewhere).
#
# Nothing is started: a policy-rc.d (as scripts/install-deps.sh does) forbids
# invoke-rc.d, and the unit must not be enabled by the package anyway.
#
# An already installed dmarc-collector is left alone (the test fails) unless
# DC_INSTALL_TEST_PURGE=1.
#
# Output: one "ok NAME" or "FAIL NAME: why" line per check, then
# "install-test: N passed, M failed"; exit 0 only when none failed.
# Exit 77 (skipped) when not root.
set -uo pipefail
deb=$(readlink -f "${1:?usage: install-test.sh PACKAGE.deb}")
src=$(cd "$(dirname "$0")/../.." && pwd)
pkg=dmarc-collector
user=dmarc-collector
conf=/etc/dmarc-collector/dmarc-collector.conf
unit=/lib/systemd/system/dmarc-collector.service
bin=/usr/bin/dmarc-collector

if [ "$(id -u)" != 0 ]; then
  echo "install-test: skipped (must run as root: it installs the package)" >&2
  exit 77
fi
[ -f "$deb" ] || { echo "install-test: $deb not found" >&2; exit 1; }

passed=0 failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
check() {  # NAME COMMAND...: ok when the command succeeds
  local name=$1 out; shift
  if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$(tail -5 <<<"$out")"; fi
}

# apt-get waits for the dpkg lock (another apt run on the machine); dpkg
# itself cannot, so it is retried while the lock is the reason it failed.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }
dpkg_locked() {
  local i out
  for i in $(seq 1 120); do
    if out=$(dpkg "$@" 2>&1); then printf '%s\n' "$out"; return 0; fi
    grep -q 'lock' <<<"$out" || { printf '%s\n' "$out"; return 1; }
    sleep 5
  done
  printf '%s\n' "$out"; return 1
}

work=$(mktemp -d /tmp/dc-install-test.XXXXXX)
chmod 755 "$work"
had_policy=0
[ -e /usr/sbin/policy-rc.d ] && had_policy=1
pg_started=0
cleanup() {
  set +e
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -qv 'not-installed'; then
    DEBIAN_FRONTEND=noninteractive apt_get purge -y -qq "$pkg" >/dev/null 2>&1 \
      || dpkg_locked --purge "$pkg" >/dev/null 2>&1
  fi
  if [ "$pg_started" = 1 ]; then dc_pg_stop "$work/pg"; fi
  [ "$had_policy" = 0 ] && rm -f /usr/sbin/policy-rc.d
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ "$had_policy" = 0 ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
fi
export DEBIAN_FRONTEND=noninteractive

# An installed copy would hide what a fresh install does, and may be an
# administrator's: purge it only when told to (a run killed before its trap).
if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q ' installed'; then
  if [ "${DC_INSTALL_TEST_PURGE:-0}" = 1 ]; then
    echo "install-test: purging the installed $pkg (DC_INSTALL_TEST_PURGE=1)" >&2
    apt_get purge -y -qq "$pkg" >/dev/null 2>&1 || dpkg_locked --purge "$pkg" >/dev/null
  else
    trap - EXIT
    [ "$had_policy" = 0 ] && rm -f /usr/sbin/policy-rc.d
    rm -rf "$work"
    bad "$pkg is not installed yet" "it is: this test would replace and purge it (DC_INSTALL_TEST_PURGE=1 allows that)"
    echo "install-test: $passed passed, $failed failed"
    exit 1
  fi
fi

# ------------------------------------------------------------------ install
# apt-get resolves the Depends from the archive, as `apt install ./x.deb` does.
if out=$(apt_get install -y -q --no-install-recommends "$deb" 2>&1); then
  ok "apt-get install ./$(basename "$deb")"
else
  bad "apt-get install" "$(tail -15 <<<"$out")"
  echo "install-test: $passed passed, $failed failed"
  exit 1
fi

# The system user: a system uid, no login shell, the state directory as home.
pw=$(getent passwd "$user" || true)
if [ -z "$pw" ]; then
  bad "system user $user" "getent passwd finds nothing"
else
  IFS=: read -r _ _ uid _ _ home shell <<<"$pw"
  sys_max=$(awk '$1 == "SYS_UID_MAX" {print $2}' /etc/login.defs 2>/dev/null)
  if [ "$uid" -ge 1000 ] && [ "$uid" -gt "${sys_max:-999}" ]; then
    bad "system user $user" "uid $uid is not a system uid"
  elif [ "$shell" != /usr/sbin/nologin ] && [ "$shell" != /sbin/nologin ] && [ "$shell" != /bin/false ]; then
    bad "system user $user" "login shell $shell"
  else
    ok "system user $user (uid $uid, home $home, shell $shell)"
  fi
fi
check "group $user" getent group "$user"
check "state directory /var/lib/dmarc-collector 0750 $user:$user" \
  test "$(stat -c '%a %U:%G' /var/lib/dmarc-collector 2>&1)" = "750 $user:$user"

# The configuration: a conffile, 0640 root:dmarc-collector, directory 0750.
conffiles=$(dpkg-query -W -f='${Conffiles}' "$pkg")
check "$conf is a conffile" grep -q "^ $conf " <<<"$conffiles"
conf_perm() { stat -c '%a %U:%G' "$1" 2>&1; }
check "$conf 0640 root:$user ($(conf_perm $conf))" test "$(conf_perm $conf)" = "640 root:$user"
check "/etc/dmarc-collector 0750 root:$user ($(conf_perm /etc/dmarc-collector))" \
  test "$(conf_perm /etc/dmarc-collector)" = "750 root:$user"
check "$conf not readable by others" runuser -u nobody -- sh -c "! cat $conf >/dev/null 2>&1"

# The unit: installed, neither enabled nor started.
check "unit $unit installed" test -f "$unit"
check "unit runs as $user" grep -q "^User=$user" "$unit"
check "unit not enabled (no symlink in /etc/systemd/system)" \
  sh -c '! find /etc/systemd/system -name dmarc-collector.service | grep -q .'
check "unit not enabled (deb-systemd-helper was-enabled)" \
  sh -c '! deb-systemd-helper was-enabled dmarc-collector.service'

# The other installed files.
for f in "$bin" /usr/share/man/man1/dmarc-collector.1.gz /usr/share/man/man5/dmarc-collector.conf.5.gz \
  /usr/lib/sysusers.d/dmarc-collector.conf /usr/lib/tmpfiles.d/dmarc-collector.conf \
  /usr/share/dmarc-collector/queries.sql \
  /usr/share/dmarc-collector/grafana/provisioning/datasources/dmarc.yaml \
  /usr/share/dmarc-collector/grafana/provisioning/dashboards/dmarc.yaml \
  /usr/share/dmarc-collector/grafana/provisioning/alerting/dmarc-alerts.yaml \
  /usr/share/doc/dmarc-collector/copyright; do
  check "installed $f" test -s "$f"
done
check "alerts-mail.sh installed executable" test -x /usr/share/dmarc-collector/alerts-mail.sh
check "Grafana dashboards in /usr/share/dmarc-collector/grafana/dashboards" \
  sh -c 'ls /usr/share/dmarc-collector/grafana/dashboards/*.json >/dev/null'
check "man dmarc-collector renders" sh -c 'man -l /usr/share/man/man1/dmarc-collector.1.gz 2>/dev/null | grep -q .'
check "$bin --version" "$bin" --version

# ------------------------------------------------- the installed program runs
# A throwaway PostgreSQL; the database owner has CREATEROLE (the first set-up
# of the README's install section).  The service user reaches it on 127.0.0.1.
# shellcheck source=../lib/pg.sh
source "$src/tests/lib/pg.sh"
if dc_pg_start "$work/pg" >"$work/pg.log" 2>&1; then
  pg_started=1
  ok "throwaway PostgreSQL on port $PGPORT"
else
  bad "throwaway PostgreSQL" "$(tail -5 "$work/pg.log")"
fi
psql_q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
if [ "$pg_started" = 1 ]; then
  psql_q -d postgres -c "CREATE ROLE dc_pkg LOGIN CREATEROLE" -c "CREATE DATABASE dc_pkg OWNER dc_pkg" >/dev/null
  # The administrator's edit of the conffile: a database-only configuration
  # (no mailbox), so check-config reaches the one service there is.
  cat > "$conf" <<EOF
; written by tests/package/install-test.sh
[database]
conninfo = host=127.0.0.1 port=$PGPORT dbname=dc_pkg user=dc_pkg
EOF
  check "$conf still 0640 root:$user after editing" test "$(conf_perm $conf)" = "640 root:$user"
  as_service() { runuser -u "$user" -- "$bin" --config "$conf" "$@"; }
  check "migrate as $user" as_service migrate
  # A few corpus files, copied where the service user can read them.
  mkdir -p "$work/reports"
  manifest=$src/tests/data/corpus/manifest.tsv
  dirs=(cry-inc+dmarc-report-viewer/testdata/dmarc-reports mjl-+mox/testdata/dmarc-reports)
  for d in "${dirs[@]}"; do cp -r "$src/tests/data/corpus/$d" "$work/reports/${d%%/*}"; done
  chmod -R a+rX "$work/reports"
  # expected: the manifest's reports parsed ok, a report found in two files
  # (same org, id, domain and begin: the database's unique key) counted once
  read -r want_reports want_records < <(awk -F'\t' -v dirs="${dirs[*]}" '
    BEGIN { nd = split(dirs, d, " ") }
    $12 == "ok" { for (i = 1; i <= nd; i++) if (index($1, d[i] "/") == 1 && !seen[$3 "|" $4 "|" $5 "|" $6]++) { r++; n += $8 } }
    END { print r + 0, n + 0 }' "$manifest")
  check "import of $(find "$work/reports" -type f | wc -l) corpus files as $user" as_service import "$work/reports"
  got=$(psql_q -d dc_pkg -c "SELECT (SELECT count(*) FROM dmarc.reports) || ' ' || (SELECT count(*) FROM dmarc.records)" 2>&1)
  check "stored $got reports/records (manifest: $want_reports $want_records)" \
    test "$got" = "$want_reports $want_records"
  check "check-config as $user" as_service check-config
fi

# ---------------------------------------------------------------- reinstall
# dpkg -i over the installed copy: the administrator's conffile survives,
# with its mode and group, and the unit is still not enabled.
sum_before=$(md5sum "$conf" | cut -d' ' -f1)
if out=$(dpkg_locked -i "$deb"); then ok "dpkg -i over the installed package"; else bad "dpkg -i (reinstall)" "$(tail -10 <<<"$out")"; fi
check "conffile edits kept on reinstall" test "$(md5sum "$conf" | cut -d' ' -f1)" = "$sum_before"
check "$conf 0640 root:$user after reinstall" test "$(conf_perm $conf)" = "640 root:$user"
check "unit still not enabled after reinstall" \
  sh -c '! find /etc/systemd/system -name dmarc-collector.service | grep -q .'
if [ "$pg_started" = 1 ]; then
  check "check-config as $user after reinstall" as_service check-config
fi

# ------------------------------------------------------------------ upgrade
# An upgrade from the installed copy: the same package repacked as version
# VERSION+upgradetest (maintainer scripts see "upgrade"/"configure OLD").
# The conffile is unchanged in the package, so the edited one stays silently.
if [ "$pg_started" = 1 ]; then
  newer=$work/upgrade
  dpkg-deb -R "$deb" "$newer" \
    && sed -i -E 's/^(Version: .*)$/\1+upgradetest/' "$newer/DEBIAN/control" \
    && dpkg-deb -b --root-owner-group "$newer" "$work/newer.deb" >/dev/null
  if out=$(dpkg_locked -i "$work/newer.deb"); then
    ok "upgrade with dpkg -i to $(dpkg-query -W -f='${Version}' "$pkg")"
  else
    bad "upgrade (dpkg -i)" "$(tail -10 <<<"$out")"
  fi
  check "conffile edits kept on upgrade" test "$(md5sum "$conf" | cut -d' ' -f1)" = "$sum_before"
  check "$conf 0640 root:$user after upgrade" test "$(conf_perm $conf)" = "640 root:$user"
  check "unit still not enabled after upgrade" \
    sh -c '! find /etc/systemd/system -name dmarc-collector.service | grep -q .'
  check "migrate as $user after upgrade (nothing to do)" as_service migrate
fi

# -------------------------------------------------------------------- purge
if out=$(apt_get purge -y -q "$pkg" 2>&1); then ok "apt-get purge $pkg"; else bad "apt-get purge" "$(tail -10 <<<"$out")"; fi
check "program removed" test ! -e "$bin"
check "conffile removed" test ! -e "$conf"
check "unit removed" test ! -e "$unit"
check "empty state directory removed" test ! -e /var/lib/dmarc-collector
check "dpkg forgot the package" sh -c "! dpkg-query -W -f='\${Status}' $pkg 2>/dev/null | grep -q installed"
# Debian policy: system users are not removed on purge (files they own may
# remain, and a reused uid would inherit them); say so rather than check.
if getent passwd "$user" >/dev/null; then
  echo "note: the system user $user remains after purge (Debian leaves system users)"
fi

echo "install-test: $passed passed, $failed failed"
[ "$failed" = 0 ]
