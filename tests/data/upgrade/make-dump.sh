#!/bin/bash
# make-dump.sh - regenerates tests/data/upgrade/v0.1-corpus.dump: the data of
# a database written by dmarc-collector 0.1 (commit c40678e), for the upgrade
# test (tests/integration/upgrade.sh).
#
# The recipe: build the 0.1 program from git history, run its `migrate` (its
# 8 migrations) on a throwaway cluster, `import` the whole visible corpus
# (tests/data/corpus, every file of manifest.tsv, into one database, as the
# last step of tests/integration/corpus.sh does), then add by SQL what an
# import cannot produce: PTR names (dmarc.ip_names) that make the
# classification's rules 3 and 4 hold for some records, and some that must
# not (unconfirmed names); failure rows in the form 0.1 wrote before its
# migration 008 (bytes in content, original_id NULL); a mailbox with its
# handled messages, and reports that came from it.  Then a data-only custom
# dump of schema dmarc, without dmarc.schema_migrations (the test writes
# those rows itself when it builds the 0.1 schema from sql-0.1/).
#
# Usage: tests/data/upgrade/make-dump.sh [OUT]   (default: next to this script)
#   DC_BIN01=path  use this 0.1 program instead of building one
# Needs git, cmake and the build dependencies (scripts/install-deps.sh), and
# PostgreSQL 15 (tests/lib/pg.sh).  Takes about a minute.
set -euo pipefail
src=$(cd "$(dirname "$0")/../../.." && pwd)
out=${1:-$src/tests/data/upgrade/v0.1-corpus.dump}
V01=c40678e
. "$src/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"
cleanup() {
  dc_pg_stop "$tmp/pg" >/dev/null 2>&1 || true
  [ -d "$tmp/v01" ] && git -C "$src" worktree remove --force "$tmp/v01" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

if [ -z "${DC_BIN01:-}" ]; then
  git -C "$src" worktree add --detach "$tmp/v01" "$V01" >/dev/null
  cmake -S "$tmp/v01" -B "$tmp/v01/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$tmp/v01/build" -j2 --target dmarc-collector >/dev/null
  DC_BIN01=$tmp/v01/build/dmarc-collector
fi

dc_pg_start "$tmp/pg"
dc_pg_newdb v01
export PGTZ=UTC
"$DC_BIN01" -q migrate

# the corpus, every file once, in manifest order, in one run (exit 1: some
# files are rejected, as they should be; 2 or more is a real failure)
tail -n +2 "$src/tests/data/corpus/manifest.tsv" | cut -f1 | awk '!seen[$0]++' > "$tmp/files"
mapfile -t files < "$tmp/files"
rc=0
(cd "$src/tests/data/corpus" && "$DC_BIN01" -q import "${files[@]}") 2> "$tmp/import.log" || rc=$?
if [ "$rc" -gt 1 ] || grep -qv '^dmarc-collector: error: ' "$tmp/import.log"; then
  cat "$tmp/import.log" >&2
  echo "make-dump.sh: the 0.1 import exited $rc" >&2
  exit 1
fi

psql -X -q -v ON_ERROR_STOP=1 <<'EOF'
BEGIN;
-- PTR names, as `resolve` would have written them (through the 0.1
-- triggers, which reclassify the rolled-up records of each IP).  The
-- record each name is aimed at is in the comment; the rules are those of
-- dmarc.record_details (0.1 sql/002):
--   3 spf_domain_is_ptr     an SPF domain equals the confirmed PTR name
--   4 envelope_from_is_ptr  envelope_from equals the confirmed PTR name
INSERT INTO dmarc.ip_names (ip, ptr, ptr_base_domain, forward_confirmed, resolved_at, status) VALUES
	-- rule 3 on the first SPF result (case and trailing dot ignored)
	('1.2.3.4',         'Random.NET.',              'random.net',        true,  '2024-06-01 10:00:00+00', 'ok'),
	('46.19.35.124',    'ueber.net',                'ueber.net',         true,  '2024-06-01 10:00:00+00', 'ok'),
	('54.240.8.13',     'amazonses.com',            'amazonses.com',     true,  '2024-06-01 10:00:00+00', 'ok'),
	-- rule 3 on a later SPF result (0.1: spf_results ordinal 3 / 3; 1.0: spf_more)
	('65.54.51.91',     'hotmail.com',              'hotmail.com',       true,  '2024-06-01 10:00:00+00', 'ok'),
	('61.145.121.82',   'deltaplus.com.cn',         'deltaplus.com.cn',  true,  '2024-06-01 10:00:00+00', 'ok'),
	-- rule 4: envelope_from is the name, no SPF domain is
	('192.0.2.1',       'bounce.example.com',       'example.com',       true,  '2024-06-01 10:00:00+00', 'ok'),
	('209.85.220.41',   'BOUNCE.example.com.',      'example.com',       true,  '2024-06-01 10:00:00+00', 'ok'),
	('109.203.100.17',  'example.com',              'example.com',       true,  '2024-06-01 10:00:00+00', 'ok'),
	-- rule 2 (SPF scope helo) comes before rule 4
	('234.234.234.234', 'example.de',               'example.de',        true,  '2024-06-01 10:00:00+00', 'ok'),
	-- not forward-confirmed: would be rules 4, 3, 3, but must not count
	('198.51.100.23',   'mail.aggregate.example',   'aggregate.example', false, '2024-06-01 10:00:00+00', 'ok'),
	('50.223.129.194',  'ietf.org',                 'ietf.org',          false, '2024-06-01 10:00:00+00', 'ok'),
	('65.54.51.90',     'hotmail.com',              'hotmail.com',       false, '2024-06-01 10:00:00+00', 'ok'),
	-- confirmed names no rule uses, an IPv6 one, a failed and a pending lookup
	('8.8.8.8',         'dns.google',               'dns.google',        true,  '2024-06-01 10:00:00+00', 'ok'),
	('2001:db8::1',     'host.example.net',         'example.net',       true,  '2024-06-01 10:00:00+00', 'ok'),
	('10.0.0.1',        NULL,                       NULL,                false, '2024-06-01 10:00:00+00', 'nxdomain'),
	('11.222.33.44',    NULL,                       NULL,                false, '2024-06-01 10:00:00+00', 'timeout'),
	-- an IP none of whose records is stored any more
	('192.0.2.200',     'unused.example',           'unused.example',    true,  '2024-06-01 10:00:00+00', 'ok');

-- a mailbox and the messages 0.1's poll handled from it; the first six
-- reports (by id) came from its stored messages
INSERT INTO dmarc.mailboxes (url, username, label, uidvalidity, last_uid, messages_stored, messages_rejected,
	last_poll_at, last_success_at, last_error, created_at)
VALUES ('imaps://imap.example.net:993/DMARC', 'dmarc@example.net', 'work', 1700000000, 9, 7, 2,
	'2024-06-02 08:00:00+00', '2024-06-02 08:00:00+00', NULL, '2024-05-01 00:00:00+00');
INSERT INTO dmarc.mailbox_messages (mailbox_id, uidvalidity, uid, message_id, size, outcome, reports, duplicates,
	failures, action, handled_at)
SELECT m.id, 1700000000, u, format('<report-%s@reporter.example>', u), 2000 + 100 * u,
	CASE WHEN u IN (7, 9) THEN 'rejected' ELSE 'stored' END,
	CASE WHEN u IN (7, 9) THEN 0 WHEN u = 8 THEN 0 ELSE 1 END,
	CASE WHEN u = 8 THEN 1 ELSE 0 END,
	CASE WHEN u IN (7, 9) THEN 1 ELSE 0 END,
	CASE WHEN u = 9 THEN 'seen' ELSE 'move:Processed' END,
	'2024-06-02 08:00:00+00'::timestamptz + u * interval '1 second'
FROM dmarc.mailboxes m, generate_series(1, 9) u;
UPDATE dmarc.reports r SET mailbox = 'work', uidvalidity = 1700000000, uid = x.u,
	message_id = format('<report-%s@reporter.example>', x.u)
FROM (SELECT id, row_number() OVER (ORDER BY id) AS u FROM dmarc.reports ORDER BY id LIMIT 6) x
WHERE r.id = x.id;

-- failures as 0.1 wrote them before its migration 008: the bytes in
-- content, their SHA-256 beside them, no original
INSERT INTO dmarc.failures (failed_at, mailbox, uidvalidity, uid, message_id, file_name, stage, reason, content, sha256)
SELECT '2024-06-02 08:00:07+00'::timestamptz, 'work', 1700000000, 7, '<report-7@reporter.example>', 'report.xml.gz',
	'unpack', 'gzip: corrupt deflate stream', c, sha256(c)
FROM (SELECT '\x1f8b0800000000000003ffff0000'::bytea AS c) b
UNION ALL
SELECT '2024-06-02 08:00:09+00', 'work', 1700000000, 9, '<report-9@reporter.example>', 'report.xml',
	'xml', 'XML not well-formed at line 3: document ends inside <feedback> (truncated)', c, sha256(c)
FROM (SELECT convert_to(E'<?xml version="1.0"?>\n<feedback>\n  <report_metadata>', 'UTF8') AS c) b;
COMMIT;
EOF

pg_dump --data-only -Fc -n dmarc --exclude-table=dmarc.schema_migrations -f "$out"
psql -X -At -F ' ' -c "SELECT 'reports', count(*) FROM dmarc.reports UNION ALL SELECT 'records', count(*) FROM dmarc.records
	UNION ALL SELECT 'dkim_results', count(*) FROM dmarc.dkim_results UNION ALL SELECT 'spf_results', count(*) FROM dmarc.spf_results
	UNION ALL SELECT 'failures', count(*) FROM dmarc.failures UNION ALL SELECT 'originals', count(*) FROM dmarc.originals
	UNION ALL SELECT 'ip_names', count(*) FROM dmarc.ip_names UNION ALL SELECT 'mailbox_messages', count(*) FROM dmarc.mailbox_messages"
echo "wrote $out ($(stat -c %s "$out") bytes)"
