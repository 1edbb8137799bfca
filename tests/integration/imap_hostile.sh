#!/bin/bash
# imap_hostile.sh - issue 9 over IMAP: a message carrying a zip of 400
# members, each a report padded past the ratio limit, polled from Dovecot in
# one IMAP batch with a good report.  With the default caps the message is
# rejected as a whole (one failure row, stage limits, limits.max_members) and
# moved to the invalid folder; with max_members raised, each member fails on
# its own: 400 rows that all refer to one stored copy of the zip.  Either
# way dmarc.failures and dmarc.originals (with TOAST and indexes) grow by at most the zip's size * 1.04 (TOAST chunks) +
# 1 KiB per failure row + 160 KiB (docs/README-limits.md), and the good
# report of the same batch is stored.
set -uo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"
. "$DC_SRC/tests/lib/dovecot.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'dc_dovecot_stop "$tmp/dv"; dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg" || exit 1
dc_pg_newdb imap || exit 1
dc_dovecot_start "$tmp/dv" || exit 1
unset DMARC_COLLECTOR_CONFIG

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { # check WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1 = $2"; else fail "$1: got '$2', expected '$3'"; fi
}
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }
# what failures and originals take on disk (tables, TOAST, indexes): the good
# report polled in the same batch writes its own rows elsewhere
dbsize() { q "CHECKPOINT" >/dev/null; q "SELECT pg_total_relation_size('dmarc.failures') + pg_total_relation_size('dmarc.originals')"; }
B=$DC_BIN
M=$DC_SRC/tests/data/corpus/mjl-+mox/testdata/dmarc-reports
{ echo "[database]"; echo "conninfo = dbname=imap"
  dc_dovecot_mailbox_conf "$tmp/dv" imaps
  echo "[dns]"; echo "servers = 127.0.0.1:9"; echo "timeout_ms = 100"; } > "$tmp/dc.conf"
"$B" --config "$tmp/dc.conf" migrate >/dev/null 2>&1 || { echo "FAIL: migrate"; exit 1; }

# hostile-TAG.eml: the padded zip (its own bytes per TAG) as a base64 attachment
python3 - "$tmp" <<'PY'
import base64, random, struct, sys, zlib
random.seed(9)
pad = ''.join(random.choice('abcdefghijklmnopqrstuvwxyz0123456789') for _ in range(5500)).encode()
member = (b'<?xml version="1.0"?><feedback><report_metadata><org_name>h.test</org_name><report_id>p</report_id>'
          b'<date_range><begin>1700000000</begin><end>1700086399</end></date_range></report_metadata>'
          b'<policy_published><domain>example.com</domain></policy_published><!-- ' + pad + b' ' * (2 << 20)
          + b' --></feedback>')
raw, crc = zlib.compress(member, 9)[2:-4], zlib.crc32(member)
for tag in (b'default', b'raised'):
    local, central = b'', b''
    for i in range(400):
        name = b'r%03d.xml' % i
        central += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, 8, 0, 0, crc, len(raw), len(member),
                               len(name), 0, 0, 0, 0, 0, len(local)) + name
        local += struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 8, 0, 0, crc, len(raw), len(member), len(name), 0) + name + raw
    z = local + central + struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 400, 400, len(central), len(local), len(tag)) + tag
    open('%s/hostile-%s.zip' % (sys.argv[1], tag.decode()), 'wb').write(z)
    msg = (b'From: noreply@h.test\r\nTo: rua@example.com\r\nSubject: Report Domain: example.com\r\n'
           b'Message-ID: <hostile-' + tag + b'@h.test>\r\nMIME-Version: 1.0\r\n'
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nreport\r\n'
           b'--b\r\nContent-Type: application/zip; name="r.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
           + base64.encodebytes(z).replace(b'\n', b'\r\n') + b'--b--\r\n')
    open('%s/hostile-%s.eml' % (sys.argv[1], tag.decode()), 'wb').write(msg)
PY

poll() { # poll TAG GOOD_MESSAGE [ENV...]: seeds both, polls once; checks the bound
  local tag=$1 good=$2 before after zlen rows
  shift 2
  dc_dovecot_seed "$tmp/dv" "$tmp/hostile-$tag.eml" "$good" || exit 1
  before=$(dbsize)
  env "$@" "$B" --config "$tmp/dc.conf" poll --once > "$tmp/poll-$tag.log" 2>&1
  check "$tag: poll exit status" "$?" 1
  after=$(dbsize)
  zlen=$(stat -c %s "$tmp/hostile-$tag.zip")
  rows=$(q "SELECT count(*) FROM dmarc.failures WHERE message_id = '<hostile-$tag@h.test>'")
  echo "$tag: zip $zlen bytes, $rows failure rows, failures + originals grew $((after - before)) bytes"
  [ $((after - before)) -le $((zlen * 104 / 100 + 1024 * rows + 163840)) ] \
    && echo "ok: $tag: growth within zip * 1.04 + 1 KiB/row + 160 KiB" \
    || fail "$tag: failures + originals grew $((after - before)) bytes for a zip of $zlen"
  check "$tag: one original, the zip" \
    "$(q "SELECT count(*) || ' ' || min(length(content)) FROM dmarc.originals
          WHERE sha256 = decode('$(sha256sum < "$tmp/hostile-$tag.zip" | cut -c1-64)', 'hex')")" "1 $zlen"
  check "$tag: every row refers to it, content column unused" \
    "$(q "SELECT count(DISTINCT original_id) || ' ' || count(*) FILTER (WHERE content IS NOT NULL OR original_id IS NULL) FROM dmarc.failures WHERE message_id = '<hostile-$tag@h.test>'")" "1 0"
}

poll default "$M/google.eml"
check "default: one row, stage limits, max_members" \
  "$(q "SELECT count(*) || ' ' || min(stage) || ' ' || bool_and(reason LIKE '%limits.max_members (50)%') FROM dmarc.failures WHERE message_id = '<hostile-default@h.test>'")" "1 limits true"
check "default: the good report of the batch stored" "$(q "SELECT count(*) FROM dmarc.reports WHERE org_name = 'google.com'")" 1
check "default: moved to Archive/Invalid" "$(dc_dovecot_count "$tmp/dv" Archive/Invalid)" 1

poll raised "$M/yahoo.eml" DMARC_COLLECTOR_LIMITS_MAX_MEMBERS=1000 DMARC_COLLECTOR_LIMITS_MAX_REPORTS=1000
check "raised: a row per member" "$(q "SELECT count(*) FROM dmarc.failures WHERE message_id = '<hostile-raised@h.test>'")" 400
check "raised: the good report of the batch stored" "$(q "SELECT count(*) FROM dmarc.reports")" 2
check "raised: moved to Archive/Invalid" "$(dc_dovecot_count "$tmp/dv" Archive/Invalid)" 2
check "INBOX empty" "$(dc_dovecot_count "$tmp/dv" INBOX)" 0

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; tail -5 "$tmp"/poll*.log; exit 1; }
echo "all checks passed"
