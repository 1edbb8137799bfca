#!/bin/bash
# install.sh - what `cmake --install` puts where (cmake/install.cmake, the
# layout agreed for issue 12), checked from the outside:
#   - the test's build directory installed with --prefix /usr into a
#     throwaway DESTDIR: every file of the layout there, nothing else, with
#     sane modes (program 0755, configuration 0640 in a 0750 directory, the
#     rest 0644), the Grafana dashboards provider pointing at the installed
#     dashboards, the unit's ExecStart naming the installed program;
#   - the unit accepted by `systemd-analyze verify` (no running systemd is
#     needed: it loads the unit file, checks its settings, that the commands
#     are executable and that its Documentation= man pages exist) and its
#     sandbox rated by `systemd-analyze security --offline`;
#   - systemd-sysusers and systemd-tmpfiles with --root=DESTDIR creating the
#     user, the group, the state directory and the configuration's modes;
#   - the man pages rendering without a warning (man-db and groff), and
#     covering the sources: every key of collector/dc_config.c's table under
#     its section in dmarc-collector.conf(5), every command of main.c's table
#     with its options, every global option and every exit status of
#     common/dc_exit.h in dmarc-collector(1), so a key, command or status
#     added without documentation fails here;
#   - a second install without DESTDIR keeping an edited configuration;
#   - the program reading the default configuration file when neither
#     --config nor DMARC_COLLECTOR_CONFIG names one (in a private mount
#     namespace, so the machine's own directory is never touched).
# Needs root for the owners (sysusers/tmpfiles) and the mount namespace;
# those parts say "skip" without it.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
: "${DC_BUILD:?DC_BUILD must name the build directory}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
D=$tmp/destdir
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $* [${SECONDS}s]"; }
skip() { echo "skip: $*"; }
cache() { sed -n "s/^$1:[A-Z]*=//p" "$DC_BUILD/CMakeCache.txt"; }
root=0; [ "$(id -u)" = 0 ] && root=1
man_on=$(cache DC_MAN)
case "$man_on" in ON | on | 1 | TRUE | true | YES | yes) man_on=1 ;; *) man_on=0 ;; esac

# ---- install into a DESTDIR
if ! DESTDIR=$D cmake --install "$DC_BUILD" --prefix /usr >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log"
	echo "FAIL: cmake --install"
	exit 1
fi
ok "cmake --install --prefix /usr into a DESTDIR"

# The systemd directories: the cache variables, relative to the prefix (/usr)
# unless absolute (a package passes /lib/systemd/system).
dir_of() {
	local v
	v=$(cache "$1")
	case "$v" in /*) echo "${v#/}" ;; *) echo "usr/$v" ;; esac
}
unitdir=$(dir_of DC_SYSTEMD_UNITDIR)
sysusersdir=$(dir_of DC_SYSUSERSDIR)
tmpfilesdir=$(dir_of DC_TMPFILESDIR)

# Every file of the layout with its mode; nothing else.
ndash=0
expected=()
add() { expected+=("$1 $2"); }
add 755 usr/bin/dmarc-collector
if [ $man_on = 1 ]; then
	add 644 usr/share/man/man1/dmarc-collector.1
	add 644 usr/share/man/man5/dmarc-collector.conf.5
fi
add 644 $unitdir/dmarc-collector.service
add 644 $sysusersdir/dmarc-collector.conf
add 644 $tmpfilesdir/dmarc-collector.conf
add 640 etc/dmarc-collector/dmarc-collector.conf
add 644 usr/share/doc/dmarc-collector/examples/dmarc-collector.conf
add 644 usr/share/dmarc-collector/queries.sql
add 755 usr/share/dmarc-collector/alerts-mail.sh
add 644 usr/share/dmarc-collector/grafana/provisioning/datasources/dmarc.yaml
add 644 usr/share/dmarc-collector/grafana/provisioning/dashboards/dmarc.yaml
add 644 usr/share/dmarc-collector/grafana/provisioning/alerting/dmarc-alerts.yaml
for j in "$DC_SRC"/examples/grafana/dashboards/*.json; do
	add 644 "usr/share/dmarc-collector/grafana/dashboards/${j##*/}"
	ndash=$((ndash + 1))
done
[ $ndash -ge 1 ] || fail "no dashboards in examples/grafana/dashboards"
printf '%s\n' "${expected[@]}" | sort -k2 >"$tmp/want"
(cd "$D" && find . -type f -printf '%m %P\n' | sort -k2) >"$tmp/got"
if diff "$tmp/want" "$tmp/got" >"$tmp/diff"; then
	ok "the layout: ${#expected[@]} files, modes as expected"
else
	fail "installed files or modes differ from the layout (< expected, > installed):"
	cat "$tmp/diff"
fi
m=$(stat -c %a "$D/etc/dmarc-collector")
[ "$m" = 750 ] && ok "configuration directory 0750" || fail "configuration directory mode $m, want 750"
bad=$(cd "$D" && find . -type d ! -path ./etc/dmarc-collector ! -perm 755 -printf '%m %P\n')
[ -z "$bad" ] && ok "other directories 0755" || fail "directories not 0755: $bad"

# Installed copies equal their sources (the provider is generated: below).
for pair in examples/queries.sql:usr/share/dmarc-collector/queries.sql \
	examples/alerts-mail.sh:usr/share/dmarc-collector/alerts-mail.sh \
	examples/dmarc-collector.conf:etc/dmarc-collector/dmarc-collector.conf \
	examples/dmarc-collector.conf:usr/share/doc/dmarc-collector/examples/dmarc-collector.conf \
	examples/grafana/provisioning/datasources/dmarc.yaml:usr/share/dmarc-collector/grafana/provisioning/datasources/dmarc.yaml \
	examples/grafana/provisioning/alerting/dmarc-alerts.yaml:usr/share/dmarc-collector/grafana/provisioning/alerting/dmarc-alerts.yaml \
	packaging/sysusers.d/dmarc-collector.conf:$sysusersdir/dmarc-collector.conf; do
	cmp -s "$DC_SRC/${pair%%:*}" "$D/${pair#*:}" || fail "/${pair#*:} differs from ${pair%%:*}"
done
ok "copied files equal their sources"

# The generated files: every @VARIABLE@ replaced, paths of this prefix.
gen="$unitdir/dmarc-collector.service $tmpfilesdir/dmarc-collector.conf"
gen="$gen usr/share/dmarc-collector/grafana/provisioning/dashboards/dmarc.yaml"
for f in $gen; do
	grep -n '@[A-Za-z_]*@' "$D/$f" && fail "/$f: a @VARIABLE@ left"
	grep -n '/usr/local' "$D/$f" && fail "/$f: names /usr/local although installed with --prefix /usr"
done
prov_path=$(sed -n 's/^ *path: *//p' "$D/usr/share/dmarc-collector/grafana/provisioning/dashboards/dmarc.yaml")
if [ "$prov_path" = /usr/share/dmarc-collector/grafana/dashboards ] && [ -d "$D$prov_path" ]; then
	ok "Grafana dashboards provider points at the installed dashboards ($prov_path)"
else
	fail "Grafana dashboards provider path '$prov_path'"
fi
python3 - "$D/usr/share/dmarc-collector/grafana/provisioning/dashboards/dmarc.yaml" <<'EOF' ||
import sys, yaml
p = yaml.safe_load(open(sys.argv[1]))
assert p["apiVersion"] == 1 and p["providers"][0]["type"] == "file"
EOF
	fail "the installed dashboards provider is not valid YAML of the right shape"
grep -qx 'z /etc/dmarc-collector 0750 root dmarc-collector -' "$D/$tmpfilesdir/dmarc-collector.conf" &&
	grep -qx 'z /etc/dmarc-collector/dmarc-collector.conf 0640 root dmarc-collector -' \
		"$D/$tmpfilesdir/dmarc-collector.conf" &&
	ok "tmpfiles.d names /etc/dmarc-collector" || fail "tmpfiles.d entries for /etc/dmarc-collector"

# ---- the unit
unit=$D/$unitdir/dmarc-collector.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
prog=${exec_start%% *}
if [ "$exec_start" = "/usr/bin/dmarc-collector --config /etc/dmarc-collector/dmarc-collector.conf poll" ] &&
	[ -x "$D$prog" ] && [ -f "$D/etc/dmarc-collector/dmarc-collector.conf" ]; then
	ok "ExecStart names the installed program and configuration"
else
	fail "ExecStart=$exec_start"
fi
for want in User=dmarc-collector Group=dmarc-collector StateDirectory=dmarc-collector \
	Type=notify NotifyAccess=main WatchdogSec=5min ProtectSystem=strict NoNewPrivileges=yes; do
	grep -qx "$want" "$unit" || fail "unit: no $want"
done
for unwanted in DynamicUser LoadCredential; do
	grep -q "^$unwanted=" "$unit" && fail "unit: $unwanted= is set"
done
grep -q '^WantedBy=multi-user.target' "$unit" || fail "unit: not WantedBy=multi-user.target"
if command -v systemd-analyze >/dev/null; then
	# verify wants the commands executable where the unit says: a copy whose
	# ExecStart names the program inside the DESTDIR (nothing else changed),
	# and man pages found through MANPATH for Documentation=.
	mkdir -p "$tmp/verify"
	sed "s|^ExecStart=/usr/bin/|ExecStart=$D/usr/bin/|" "$unit" >"$tmp/verify/dmarc-collector.service"
	manpath=$D/usr/share/man
	[ $man_on = 1 ] || manpath=
	if MANPATH=$manpath systemd-analyze verify --man=$([ $man_on = 1 ] && echo yes || echo no) \
		"$tmp/verify/dmarc-collector.service" >"$tmp/verify.log" 2>&1; then
		ok "systemd-analyze verify"
	else
		fail "systemd-analyze verify:"
		cat "$tmp/verify.log"
	fi
	if systemd-analyze security --offline=yes --threshold=20 "$tmp/verify/dmarc-collector.service" \
		>"$tmp/security.log" 2>&1; then
		ok "systemd-analyze security: $(grep -o 'Overall exposure level.*' "$tmp/security.log")"
	else
		fail "systemd-analyze security above 2.0:"
		tail -3 "$tmp/security.log"
	fi
else
	skip "systemd-analyze not installed"
fi

# ---- sysusers.d and tmpfiles.d inside the DESTDIR
if [ $root = 1 ] && command -v systemd-sysusers >/dev/null && command -v systemd-tmpfiles >/dev/null; then
	if systemd-sysusers --root="$D" "$D/$sysusersdir/dmarc-collector.conf" >"$tmp/sysusers.log" 2>&1 &&
		pw=$(grep '^dmarc-collector:' "$D/etc/passwd") && grep -q '^dmarc-collector:' "$D/etc/group"; then
		IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
		if [ "$home" = /var/lib/dmarc-collector ] && [ "$uid" -lt 1000 ] && [ "$shell" != /bin/sh ] &&
			[ "$shell" != /bin/bash ]; then
			ok "systemd-sysusers: system user dmarc-collector ($uid:$gid, home $home, shell $shell)"
		else
			fail "systemd-sysusers: $pw"
		fi
		if systemd-tmpfiles --root="$D" --create "$D/$tmpfilesdir/dmarc-collector.conf" \
			>"$tmp/tmpfiles.log" 2>&1; then
			got=$(stat -c '%a %u:%g %n' "$D/var/lib/dmarc-collector" "$D/etc/dmarc-collector" \
				"$D/etc/dmarc-collector/dmarc-collector.conf" | sed "s|$D||")
			want=$(printf '%s\n' "750 $uid:$gid /var/lib/dmarc-collector" "750 0:$gid /etc/dmarc-collector" \
				"640 0:$gid /etc/dmarc-collector/dmarc-collector.conf")
			[ "$got" = "$want" ] && ok "systemd-tmpfiles: state directory and configuration modes and owners" ||
				fail "systemd-tmpfiles: got
$got
want
$want"
		else
			fail "systemd-tmpfiles --create:"
			cat "$tmp/tmpfiles.log"
		fi
	else
		fail "systemd-sysusers:"
		cat "$tmp/sysusers.log"
	fi
else
	skip "systemd-sysusers/systemd-tmpfiles (need root and systemd's tools)"
fi

# ---- man pages: rendering
man1=$D/usr/share/man/man1/dmarc-collector.1
man5=$D/usr/share/man/man5/dmarc-collector.conf.5
if [ $man_on = 1 ]; then
	for page in "$man1" "$man5"; do
		w=$(groff -man -ww -z "$page" 2>&1)
		[ -z "$w" ] || fail "groff warnings for ${page##*/}: $w"
		if command -v man >/dev/null; then
			w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
			[ -z "$w" ] || fail "man warnings for ${page##*/}: $w"
		fi
	done
	ok "man pages render without warnings"
else
	skip "man pages (DC_MAN is off in this build)"
fi

# ---- man pages: coverage of the sources (the scdoc sources: structure;
# the rendered pages: the words)
scd1=$DC_SRC/docs/man/dmarc-collector.1.scd
scd5=$DC_SRC/docs/man/dmarc-collector.conf.5.scd
# Text of the rendered page (or of the source when pages are not built).
text() {
	if [ $man_on = 1 ]; then
		groff -man -Tutf8 -rLL=1000n -P-cbou "$1" 2>/dev/null
	else
		cat "$2"
	fi
}
text "$man1" "$scd1" >"$tmp/man1.txt"
text "$man5" "$scd5" >"$tmp/man5.txt"

# Keys: the rows { "section", "key", ... } of options[] in dc_config.c.
sed -n '/^static const opt options\[\] = {/,/^};/p' "$DC_SRC/collector/dc_config.c" >"$tmp/opts.c"
rows=$(grep -c 'set_[a-z0-9]*,' "$tmp/opts.c")
grep -o '{ "[a-z_]*", "[a-z0-9_]*"' "$tmp/opts.c" | sed 's/{ "\([a-z_]*\)", "\([a-z0-9_]*\)"/\1 \2/' >"$tmp/keys"
nkeys=$(wc -l <"$tmp/keys")
[ "$nkeys" -ge 20 ] && [ "$nkeys" = "$rows" ] || fail "extracted $nkeys keys from $rows table rows of dc_config.c"
# Documented: a line "*key*..." under a heading "## [section ...]".
awk '/^## \[/ { s = $2; sub(/^\[/, "", s); sub(/\].*$/, "", s); next }
     /^#/ { s = ""; next }
     s != "" && match($0, /^\*[a-z0-9_]+\*/) { print s, substr($0, 2, RLENGTH - 2) }' "$scd5" |
	sort -u >"$tmp/keys_doc"
missing=$(sort -u "$tmp/keys" | comm -23 - "$tmp/keys_doc")
extra=$(sort -u "$tmp/keys" | comm -13 - "$tmp/keys_doc")
[ -z "$missing" ] || fail "keys of dc_config.c not documented under their section in dmarc-collector.conf(5): $missing"
[ -z "$extra" ] || fail "keys in dmarc-collector.conf(5) that dc_config.c does not know: $extra"
while read -r s k; do
	grep -qw -- "$k" "$tmp/man5.txt" || fail "rendered dmarc-collector.conf(5) lacks $k"
	grep -qF -- "[$s" "$tmp/man5.txt" || fail "rendered dmarc-collector.conf(5) lacks [$s"
done <"$tmp/keys"
[ -z "$missing$extra" ] && ok "dmarc-collector.conf(5) documents the $nkeys keys of dc_config.c, each under its section"

# Commands and their options: the rows { "name", "args", ... } of commands[].
sed -n '/^static const command commands\[\] = {/,/^};/p' "$DC_SRC/program/main.c" >"$tmp/cmds.c"
grep -o '{ "[a-z-]*", "[^"]*"' "$tmp/cmds.c" | sed 's/{ "\([a-z-]*\)", "\([^"]*\)"/\1 \2/' >"$tmp/cmds"
ncmds=$(wc -l <"$tmp/cmds")
[ "$ncmds" -ge 7 ] || fail "extracted $ncmds commands from main.c"
# The COMMANDS section of the source: "*name*" at the start of an entry.
awk '/^# / { on = ($0 == "# COMMANDS"); next } on' "$scd1" >"$tmp/cmds_doc"
nc=0
while read -r name args; do
	if grep -q "^\*$name\*" "$tmp/cmds_doc"; then
		nc=$((nc + 1))
	else
		fail "command $name of main.c not documented in COMMANDS of dmarc-collector(1)"
	fi
	for a in $args; do
		a=${a#[}
		a=${a%]}
		a=${a%...}
		case "$a" in --*) grep -qF -- "*$a*" "$tmp/cmds_doc" || fail "option $a of $name not in dmarc-collector(1)" ;; esac
	done
	grep -qw -- "$name" "$tmp/man1.txt" || fail "rendered dmarc-collector(1) lacks $name"
done <"$tmp/cmds"
[ $nc = "$ncmds" ] && ok "dmarc-collector(1) documents the $ncmds commands of main.c with their options"

# Global options: longopts[] of main() ("config" -> --config, with -c).
sed -n '/static const struct option longopts\[\] = {/,/};/p' "$DC_SRC/program/main.c" |
	grep -o '{ "[a-z-]*", [a-z_]*, NULL, '"'"'.'"'" |
	sed "s/{ \"\([a-z-]*\)\", [a-z_]*, NULL, '\(.\)'/\1 \2/" >"$tmp/longopts"
nopts=$(wc -l <"$tmp/longopts")
[ "$nopts" -ge 6 ] || fail "extracted $nopts global options from main.c"
awk '/^# / { on = ($0 == "# GLOBAL OPTIONS"); next } on' "$scd1" >"$tmp/opts_doc"
while read -r long short; do
	grep -qF -- "*-$short*, *--$long*" "$tmp/opts_doc" || fail "global option -$short, --$long not in dmarc-collector(1)"
done <"$tmp/longopts"
ok "dmarc-collector(1) documents the $nopts global options"

# Exit statuses: DC_EXIT_* = N in dc_exit.h; "*N*" entries in EXIT STATUS.
grep -o 'DC_EXIT_[A-Z]* = [0-9]*' "$DC_SRC/common/dc_exit.h" | sed 's/.* = //' >"$tmp/exits"
nexit=$(wc -l <"$tmp/exits")
[ "$nexit" -ge 4 ] || fail "extracted $nexit exit statuses from dc_exit.h"
awk '/^# / { on = ($0 == "# EXIT STATUS"); next } on && /^\*[0-9]+\*$/ { gsub(/\*/, ""); print }' "$scd1" |
	sort -n >"$tmp/exits_doc"
if sort -n "$tmp/exits" | cmp -s - "$tmp/exits_doc"; then
	ok "dmarc-collector(1) documents the exit statuses of dc_exit.h: $(tr '\n' ' ' <"$tmp/exits")"
else
	fail "exit statuses: dc_exit.h has $(tr '\n' ' ' <"$tmp/exits"), dmarc-collector(1) $(tr '\n' ' ' <"$tmp/exits_doc")"
fi
for v in DMARC_COLLECTOR_CONFIG DMARC_COLLECTOR_DATABASE_PASSWORD DMARC_COLLECTOR_MAILBOX_PASSWORD; do
	grep -qF "$v" "$tmp/man1.txt" || fail "dmarc-collector(1) does not mention $v"
done

# ---- a second install without DESTDIR keeps an edited configuration
# (only when every directory is under the prefix: an absolute one, as a
# package build passes, would be the machine's own)
P=$tmp/prefix
absolute=
for v in DC_SYSTEMD_UNITDIR DC_SYSUSERSDIR DC_TMPFILESDIR CMAKE_INSTALL_SYSCONFDIR CMAKE_INSTALL_BINDIR \
	CMAKE_INSTALL_DATAROOTDIR CMAKE_INSTALL_DATADIR CMAKE_INSTALL_MANDIR CMAKE_INSTALL_DOCDIR; do
	case "$(cache $v)" in /*) absolute="$absolute $v" ;; esac
done
if [ -n "$absolute" ]; then
	skip "reinstall without DESTDIR: absolute directories in this build:$absolute"
elif env -u DESTDIR cmake --install "$DC_BUILD" --prefix "$P" >"$tmp/p1.log" 2>&1 &&
	echo "; edited by the administrator" >>"$P/etc/dmarc-collector/dmarc-collector.conf" &&
	env -u DESTDIR cmake --install "$DC_BUILD" --prefix "$P" >"$tmp/p2.log" 2>&1; then
	if tail -1 "$P/etc/dmarc-collector/dmarc-collector.conf" | grep -q 'edited by the administrator' &&
		grep -q "Kept: $P/etc/dmarc-collector/dmarc-collector.conf" "$tmp/p2.log"; then
		ok "a reinstall without DESTDIR keeps the edited configuration"
	else
		fail "a reinstall without DESTDIR replaced the configuration"
	fi
	grep -qx "ExecStart=$P/bin/dmarc-collector --config $P/etc/dmarc-collector/dmarc-collector.conf poll" \
		"$P/lib/systemd/system/dmarc-collector.service" &&
		ok "the unit follows another prefix ($P)" || fail "the unit under prefix $P: $(grep ExecStart= \
			"$P/lib/systemd/system/dmarc-collector.service")"
else
	fail "cmake --install --prefix $P"
	cat "$tmp/p1.log" "$tmp/p2.log" 2>/dev/null
fi

# ---- the default configuration file
# The path compiled in: SYSCONFDIR of the build's prefix, shown by --help.
prefix=$(cache CMAKE_INSTALL_PREFIX)
sysconf=$(cache CMAKE_INSTALL_SYSCONFDIR)
case "$sysconf" in
/*) ;;
*) if [ "$prefix" = /usr ]; then sysconf=/$sysconf; else sysconf=$prefix/$sysconf; fi ;;
esac
def=$sysconf/dmarc-collector/dmarc-collector.conf
"$DC_BIN" --help | grep -F "$def if it exists" >/dev/null && ok "--help names the default configuration $def" ||
	fail "--help does not name $def"
if [ $root = 1 ] && [ "$sysconf" != /etc ] && [ -d "$sysconf" ] && unshare --mount true 2>/dev/null; then
	# A private mount namespace with an empty directory over $sysconf: a
	# default file with an unknown key, which proves it was read.
	mkdir -p "$tmp/etc/dmarc-collector"
	printf '[service]\nno_such_key = 1\n' >"$tmp/etc/dmarc-collector/dmarc-collector.conf"
	inns() { unshare --mount --propagation private sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' \
		sh "$tmp/etc" "$sysconf" "$@"; }
	out=$(inns env -u DMARC_COLLECTOR_CONFIG "$DC_BIN" import /nonexistent 2>&1)
	rc=$?
	[ $rc = 2 ] && grep -qF "$def" <<<"$out" && grep -q no_such_key <<<"$out" &&
		ok "without --config or DMARC_COLLECTOR_CONFIG the default file is read" ||
		fail "default configuration not read (exit $rc): $out"
	out=$(inns env DMARC_COLLECTOR_CONFIG= "$DC_BIN" import /nonexistent 2>&1)
	grep -q no_such_key <<<"$out" && fail "DMARC_COLLECTOR_CONFIG set but empty still read the default: $out" ||
		ok "DMARC_COLLECTOR_CONFIG set but empty reads no file"
	out=$(inns env -u DMARC_COLLECTOR_CONFIG "$DC_BIN" --config /dev/null import /nonexistent 2>&1)
	grep -q no_such_key <<<"$out" && fail "--config did not win over the default: $out" ||
		ok "--config wins over the default file"
	rm "$tmp/etc/dmarc-collector/dmarc-collector.conf"
	out=$(inns env -u DMARC_COLLECTOR_CONFIG "$DC_BIN" -v import /nonexistent 2>&1)
	grep -qF "$def" <<<"$out" && fail "a missing default file was named: $out" ||
		ok "no default file: environment only, as before"
else
	skip "default configuration file (needs root, unshare, and a SYSCONFDIR other than /etc: $sysconf)"
fi

echo "install.sh: $fails failure(s) [${SECONDS}s]"
[ $fails = 0 ]
