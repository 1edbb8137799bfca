#!/bin/bash
# import_hostile.sh - hostile and broken inputs, generated at test time:
# XML with an external entity and a billion-laughs document, a gzip bomb and
# a zip bomb (1023 MiB of decompressed data each), a truncated zip and gzip, XML
# broken after three good records, a message without a report, a message over
# limits.max_message_bytes, a bare report over max_report_bytes, a
# duplicate import, and (issue 9) a zip of 400 members each padded past the
# decompression ratio, imported with the default caps (rejected as a whole
# by limits.max_members: one failure row) and with max_members raised (400
# failure rows that all refer to one stored copy of the zip).
#
# Each rejected input: exit status 1, exactly one dmarc.failures row whose
# original bytes (dmarc.failure_content: sha256 and length compared in SQL)
# are the input's, one
# error line on stderr, nothing in dmarc.reports.  The bombs must be stopped:
# the import completes with bounded memory (address space limited to 2 GiB
# with RLIMIT_AS, except under AddressSanitizer, which reserves terabytes of
# shadow memory; the peak RSS of the import is checked in both cases).
set -euo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"   # the cluster runs as postgres
trap 'dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg"
dc_pg_newdb hostile
"$DC_BIN" -q migrate

export WORK=$tmp/in
mkdir -p "$WORK"
python3 - <<'EOF'
import hashlib, io, os, resource, struct, subprocess, sys, zlib

BIN, W = os.environ['DC_BIN'], os.environ['WORK']
ASAN = b'__asan_init' in open(BIN, 'rb').read()
RSS_LIMIT_KB = 1536 * 1024 if ASAN else 512 * 1024
problems = []

def report(report_id, n, broken_after=None):
    recs = []
    for i in range(n):
        recs.append('<record><row><source_ip>192.0.2.%d</source_ip><count>%d</count>'
                    '<policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf>'
                    '</policy_evaluated></row><identifiers><header_from>example.com</header_from>'
                    '<envelope_from>h%d.example.net</envelope_from></identifiers><auth_results>'
                    '<dkim><domain>example.com</domain><selector>s%d</selector><result>pass</result></dkim>'
                    '<spf><domain>h%d.example.net</domain><scope>mfrom</scope><result>fail</result></spf>'
                    '</auth_results></record>\n' % (i % 250 + 1, i + 1, i, i, i))
    tail = '</feedback>\n'
    if broken_after is not None:
        recs = recs[:broken_after] + ['<record><row><source_ip>192.0.2.99</source_ip><count>1</cnt></row>\n']
        tail = ''
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<feedback><report_metadata><org_name>hostile.test</org_name>'
            '<email>noreply@hostile.test</email><report_id>%s</report_id><date_range><begin>1700000000</begin>'
            '<end>1700086399</end></date_range></report_metadata><policy_published><domain>example.com</domain>'
            '<adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>\n%s%s'
            % (report_id, ''.join(recs), tail)).encode()

def bomb_deflate():
    """1023 MiB of tiny XML comments inside a <feedback> element (just under
    the default max_report_bytes, so the zip's declared size passes; a
    streaming XML reader would read it all in constant memory, so only the
    decompression ratio check stops it) as one raw deflate stream, built from
    one full-flushed 1 MiB block repeated (fast, ~1 MB)."""
    head = b'<?xml version="1.0"?>\n<feedback>\n'
    chunk = b'<!---->\n' * (1 << 17)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    blk = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(head)
    for _ in range(1023):
        crc = zlib.crc32(chunk, crc)
    return first + blk * 1023 + b'\x03\x00', crc, len(head) + 1023 * len(chunk)

def gzip_wrap(raw, crc, size):
    return b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03' + raw + struct.pack('<II', crc, size & 0xffffffff)

def zip_wrap(name, raw, crc, size):
    n = name.encode()
    local = struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 8, 0, 0, crc, len(raw), size, len(n), 0) + n
    central = struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, 8, 0, 0, crc, len(raw), size,
                          len(n), 0, 0, 0, 0, 0, 0) + n
    end = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 1, 1, len(central), len(local) + len(raw), 0)
    return local + raw + central + end

def gz(data):
    return gzip_wrap(zlib.compress(data, 9)[2:-4], zlib.crc32(data), len(data))

def zipped(name, data):
    return zip_wrap(name, zlib.compress(data, 9)[2:-4], zlib.crc32(data), len(data))

raw, crc, size = bomb_deflate()
big = report('trunc-1', 400)
files = {
    'xxe.xml': b'<?xml version="1.0"?>\n<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
               + report('xxe-1', 1).split(b'\n', 1)[1].replace(b'hostile.test</org_name>', b'&xxe;</org_name>'),
    'laughs.xml': b'<?xml version="1.0"?>\n<!DOCTYPE feedback [<!ENTITY lol "lol">'
                  + b''.join(b'<!ENTITY lol%d "%s">' % (i, (b'&lol%d;' % (i - 1) if i > 1 else b'&lol;') * 10)
                             for i in range(1, 10))
                  + b']>\n' + report('laughs-1', 1).split(b'\n', 1)[1].replace(b'hostile.test</org_name>', b'&lol9;</org_name>'),
    'bomb.xml.gz': gzip_wrap(raw, crc, size),
    'bomb.zip': zip_wrap('bomb.xml', raw, crc, size),
    'truncated.zip': zipped('t.xml', big)[:-(len(zipped('t.xml', big)) // 2)],
    'truncated.xml.gz': gz(big)[:len(gz(big)) // 2],
    'broken3.xml': report('broken-3', 5, broken_after=3),
    'nonreport.eml': b'From: a@example.com\r\nTo: b@example.com\r\nSubject: hello\r\nMessage-ID: <nr@example.com>\r\n'
                     b'\r\nJust a note, no report here.\r\n',
    'toobig.xml': report('toobig-1', 20),
    'toobig.eml': b'From: a@example.com\r\nSubject: report\r\nMessage-ID: <big@example.com>\r\n'
                  b'Content-Type: application/gzip; name="r.xml.gz"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
                  + __import__('base64').encodebytes(gz(report('toobig-2', 20))),
    'good.xml.gz': gz(report('good-1', 7)),
}
for name, data in files.items():
    with open(os.path.join(W, name), 'wb') as f:
        f.write(data)

def psql(sql, *params):
    args = ['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-F', '\t']
    for i, p in enumerate(params):
        args += ['-v', 'p%d=%s' % (i, p)]
    p = subprocess.run(args, input=sql, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit('FAIL: psql: %s' % p.stderr)
    return [l.split('\t') for l in p.stdout.splitlines()]

def run(path, env=None):
    """Imports one file; returns (status, stderr, peak RSS in KiB)."""
    def limit():
        if not ASAN:
            resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    p = subprocess.Popen([BIN, 'import', path], stderr=subprocess.PIPE, preexec_fn=limit,
                         env=dict(os.environ, **(env or {})))
    err = p.stderr.read().decode(errors='replace')
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, err, ru.ru_maxrss

def check_rejected(name, env=None, content_kept=True, stage=None):
    path = os.path.join(W, name)
    data = open(path, 'rb').read()
    rc, err, rss = run(path, env)
    lines = [l for l in err.splitlines() if ': error: ' in l]
    rows = psql("SELECT stage, reason, coalesce(encode(sha256(dmarc.failure_content(f)), 'hex'), 'NULL'), "
                "coalesce(length(dmarc.failure_content(f)), -1) FROM dmarc.failures f WHERE file_name = :'p0'", path)
    reps = psql("SELECT count(*) FROM dmarc.reports WHERE file_name = :'p0'", path)[0][0]
    what = '%s: exit %d, %d failure rows, %d error lines, %s reports, peak RSS %d MiB' % (
        name, rc, len(rows), len(lines), reps, rss // 1024)
    print(what + (' [%s: %s]' % (rows[0][0], rows[0][1][:100]) if rows else ''))
    if rc != 1:
        problems.append('%s: exit status %d, expected 1; stderr: %s' % (name, rc, err[-500:]))
    if len(rows) != 1:
        problems.append('%s: %d failure rows, expected exactly 1' % (name, len(rows)))
    elif content_kept and (rows[0][2], int(rows[0][3])) != (hashlib.sha256(data).hexdigest(), len(data)):
        problems.append('%s: failure content (sha256 %s, %s bytes) is not the original (%s, %d bytes)'
                        % (name, rows[0][2][:16], rows[0][3], hashlib.sha256(data).hexdigest()[:16], len(data)))
    elif stage is not None and rows[0][0] != stage:
        problems.append('%s: failure stage %s, expected %s' % (name, rows[0][0], stage))
    if len(lines) != 1 or path not in lines[0]:
        problems.append('%s: expected one error line naming the file, got: %r' % (name, lines))
    if reps != '0':
        problems.append('%s: %s reports stored from a rejected input' % (name, reps))
    if rss > RSS_LIMIT_KB:
        problems.append('%s: peak RSS %d MiB exceeds %d MiB' % (name, rss // 1024, RSS_LIMIT_KB // 1024))
    return rows

for name in ['bomb.xml.gz', 'bomb.zip']:
    check_rejected(name, stage='limits')
for name in ['xxe.xml', 'laughs.xml', 'truncated.zip', 'truncated.xml.gz',
             'broken3.xml', 'nonreport.eml']:
    check_rejected(name)

# nothing of the XXE or the broken report remains anywhere
n = psql("SELECT count(*) FROM dmarc.reports WHERE report_id IN ('xxe-1', 'laughs-1', 'broken-3', 'trunc-1')")[0][0]
m = psql("SELECT count(*) FROM dmarc.records WHERE host(source_ip) = '192.0.2.99' OR envelope_from LIKE 'root:%'")[0][0]
if (n, m) != ('0', '0'):
    problems.append('partial or hostile reports remain: %s reports, %s records' % (n, m))

# a message over limits.max_message_bytes, and a bare XML report over
# limits.max_report_bytes (a bare report is capped by the report limit: real
# ones reach 180 MB): rejected from their size, content not kept
for name, env in (('toobig.eml', {'DMARC_COLLECTOR_LIMITS_MAX_MESSAGE_BYTES': '1000'}),
                  ('toobig.xml', {'DMARC_COLLECTOR_LIMITS_MAX_REPORT_BYTES': '1000'})):
    rows = check_rejected(name, env=env, content_kept=False, stage='limits')
    if rows and rows[0][3] != '-1':
        problems.append('%s: content of an over-size input was stored (%s bytes)' % (name, rows[0][3]))
# the same bare XML is not a "message": max_message_bytes does not apply to it
rc, err, _ = run(os.path.join(W, 'toobig.xml'), {'DMARC_COLLECTOR_LIMITS_MAX_MESSAGE_BYTES': '1000'})
if rc != 0 or '1 reports stored' not in err:
    problems.append('toobig.xml under max_message_bytes=1000: exit %d: %s' % (rc, err[-300:]))

# a duplicate import: the second copy counts as stored (exit 0), nothing new
path = os.path.join(W, 'good.xml.gz')
rc1, err1, _ = run(path)
rc2, err2, _ = run(path)
reps = psql("SELECT count(*), sum(record_count) FROM dmarc.reports WHERE report_id = 'good-1'")[0]
fails = psql("SELECT count(*) FROM dmarc.failures WHERE file_name = :'p0'", path)[0][0]
print('good.xml.gz twice: exit %d then %d, %s report(s) with %s records, %s failures' % (rc1, rc2, reps[0], reps[1], fails))
if (rc1, rc2) != (0, 0) or reps != ['1', '7'] or fails != '0':
    problems.append('duplicate import: exits %d/%d, reports %s, failures %s' % (rc1, rc2, reps, fails))
if '0 reports stored, 1 duplicates' not in err2:
    problems.append('second import did not report one duplicate: %r' % err2[-300:])

# Issue 9: a zip of 400 members, each a report padded past the ratio limit
# (3.5 MB; before sql/008 its import wrote 400 failure rows of 3.5 MB each,
# 243 MB).  The database may grow by the input's size, stored once, times
# TOAST_FACTOR (PostgreSQL keeps a large value as 1996-byte chunks, four to an
# 8 KiB page, each with an index entry: 3.7% more measured), plus ROW_SLACK per failure row (the row, its index
# entries, the report row begun and rolled back for it: about 700 bytes),
# plus FILE_SLACK (8 KiB page granularity of each file touched; the first
# write to the empty tables creates a dozen files, about 110 KiB).  With the
# default caps that is at most N * 1.04 + 262 KiB (docs/README-limits.md).
TOAST_FACTOR, ROW_SLACK, FILE_SLACK = 1.04, 1024, 160 * 1024
import random
random.seed(9)
pad_text = ''.join(random.choice('abcdefghijklmnopqrstuvwxyz0123456789') for _ in range(5500))
member = report('padded-1', 1).replace(b'</feedback>', b'<!-- %s %s --></feedback>' % (pad_text.encode(), b' ' * (2 << 20)))
mraw = zlib.compress(member, 9)[2:-4]
mcrc = zlib.crc32(member)
def many_zip(n, comment):
    local, central = b'', b''
    for i in range(n):
        name = ('r%03d.xml' % i).encode()
        off = len(local)
        local += struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 8, 0, 0, mcrc, len(mraw), len(member), len(name), 0) + name + mraw
        central += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, 8, 0, 0, mcrc, len(mraw), len(member),
                               len(name), 0, 0, 0, 0, 0, off) + name
    end = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, n, n, len(central), len(local), len(comment)) + comment
    return local + central + end
def dbsize():
    psql('CHECKPOINT')
    return int(psql('SELECT pg_database_size(current_database())')[0][0])
def relsizes():
    return dict((r[0], int(r[1])) for r in psql("SELECT c.oid::regclass, pg_relation_size(c.oid) FROM pg_class c "
                                                "WHERE pg_relation_size(c.oid) > 0"))
def padded(tag, env, want_rows, want_reason):
    path = os.path.join(W, 'padded-%s.zip' % tag)
    zdata = many_zip(400, tag.encode())   # each run its own bytes: nothing stored yet
    zsha = hashlib.sha256(zdata).hexdigest()
    with open(path, 'wb') as f:
        f.write(zdata)
    before = dbsize()
    rel0 = relsizes()
    t0 = os.times()
    rc, err, rss = run(path, env)
    t1 = os.times()
    grown = dbsize() - before
    cpu = (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
    rows = psql("SELECT stage, reason, coalesce(original_id, -1), content IS NULL FROM dmarc.failures WHERE file_name = :'p0'", path)
    origs = psql("SELECT count(*), min(length(content)) FROM dmarc.originals WHERE sha256 = decode(:'p0', 'hex')", zsha)[0]
    ids = set(r[2] for r in rows)
    print('padded zip (%s): %d bytes, 400 members: exit %d, %d failure rows, %s original(s) of %s bytes, '
          'database grew %d bytes (input + %d), import %.2f s CPU, peak RSS %d MiB [%s]'
          % (tag, len(zdata), rc, len(rows), origs[0], origs[1], grown, grown - len(zdata), cpu, rss // 1024,
             rows[0][1][:90] if rows else ''))
    if rc != 1:
        problems.append('padded %s: exit %d, expected 1' % (tag, rc))
    if len(rows) != want_rows:
        problems.append('padded %s: %d failure rows, expected %d' % (tag, len(rows), want_rows))
    if origs[0] != '1' or origs[1] != str(len(zdata)):
        problems.append('padded %s: %s originals of %s bytes, expected one of %d' % (tag, origs[0], origs[1], len(zdata)))
    if len(ids) != 1 or '-1' in ids or any(r[3] != 't' for r in rows):
        problems.append('padded %s: failure rows do not all refer to the one original: %r' % (tag, ids))
    if want_reason and not all(want_reason in r[1] for r in rows):
        problems.append('padded %s: reason is not %r: %r' % (tag, want_reason, rows[:1]))
    if want_rows == 1 and rows and rows[0][0] != 'limits':
        problems.append('padded %s: stage %s, expected limits' % (tag, rows[0][0]))
    allowed = int(len(zdata) * TOAST_FACTOR) + ROW_SLACK * len(rows) + FILE_SLACK
    if grown > allowed:
        rel1 = relsizes()
        top = sorted(((rel1[k] - rel0.get(k, 0), k) for k in rel1), reverse=True)[:5]
        problems.append('padded %s: database grew %d bytes for an input of %d (allowed: %d); most in %s'
                        % (tag, grown, len(zdata), allowed, ', '.join('%s +%d' % (k, d) for d, k in top)))
    reps = psql("SELECT count(*) FROM dmarc.reports WHERE file_name = :'p0'", path)[0][0]
    if reps != '0':
        problems.append('padded %s: %s reports stored' % (tag, reps))
# default caps: over limits.max_members, rejected as a whole
padded('default', None, 1, 'limits.max_members')
# caps raised: every member is read and fails on its own, the bytes once
padded('members-raised', {'DMARC_COLLECTOR_LIMITS_MAX_MEMBERS': '1000', 'DMARC_COLLECTOR_LIMITS_MAX_REPORTS': '1000'},
       400, 'expands more than')

if problems:
    print('FAIL:\n  ' + '\n  '.join(problems))
    sys.exit(1)
print('PASS (%s)' % ('ASan: RLIMIT_AS not set' if ASAN else 'RLIMIT_AS 2 GiB'))
EOF
