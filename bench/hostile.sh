#!/bin/bash
# bench/hostile.sh - what one hostile input costs (issue 9): for each shape
# below, generated here, `import` of the one file into a fresh database;
# prints the database growth (pg_database_size after a CHECKPOINT, before
# and after) against the input's size, failure rows, and the collector's CPU
# time (user + system).  Not a test: no assertion (import_hostile.sh checks
# the bound).  Usage: bench/hostile.sh [BINARY...] (default build/dmarc-collector);
# several binaries are run on the same inputs, for a before/after.
#
# Shapes (each at most max_message_bytes, 64 MiB):
#   padded400   zip of 400 members, each a report padded past the ratio limit (2.8 MB)
#   tiny-zip    zip of 400,000 tiny members (64 MiB of central directory and headers)
#   mime-parts  message of 20,000 base64 parts, each a small broken gzip (64 MiB)
#   mime-big    message of 45 base64 parts of 1 MiB of random bytes in a gzip header (64 MiB)
#   gzip-many   .gz of 3,000,000 empty gzip members, then a report (64 MiB)
#   nest-deep   gzip nested 40 deep around a report
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=("$SRC/build/dmarc-collector")
. "$SRC/tests/lib/pg.sh"
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg"
export W=$tmp/in
mkdir -p "$W"

python3 - <<'EOF'
import base64, os, random, struct, zlib
W = os.environ['W']
random.seed(9)
def report(rid, pad=b''):
    return (b'<?xml version="1.0"?><feedback><report_metadata><org_name>h.test</org_name><email>a@h.test</email>'
            b'<report_id>' + rid + b'</report_id><date_range><begin>1700000000</begin><end>1700086399</end>'
            b'</date_range></report_metadata><policy_published><domain>example.com</domain><p>none</p>'
            b'</policy_published><record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated>'
            b'<disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>'
            b'<identifiers><header_from>example.com</header_from></identifiers><auth_results><spf>'
            b'<domain>example.com</domain><result>fail</result></spf></auth_results></record>' + pad + b'</feedback>')
def zip_of(members, method=8):
    local, central = [], []
    off = 0
    for name, data in members:
        raw = zlib.compress(data, 9)[2:-4] if method == 8 else data
        crc = zlib.crc32(data)
        h = struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, method, 0, 0, crc, len(raw), len(data), len(name), 0) + name
        central.append(struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, method, 0, 0, crc, len(raw), len(data),
                                   len(name), 0, 0, 0, 0, 0, off) + name)
        local.append(h + raw)
        off += len(h) + len(raw)
    c = b''.join(central)
    return b''.join(local) + c + struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, len(members) & 0xffff,
                                              len(members) & 0xffff, len(c), off, 0)
def gz(data):
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()
def msg(parts):
    b = b'b0undary'
    out = [b'From: r@h.test\r\nTo: rua@example.com\r\nSubject: Report\r\nMessage-ID: <h@h.test>\r\n'
           b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n']
    for i, (ctype, data) in enumerate(parts):
        out.append(b'--' + b + b'\r\nContent-Type: ' + ctype + b'\r\nContent-Transfer-Encoding: base64\r\n'
                   b'Content-Disposition: attachment; filename="p%d.gz"\r\n\r\n' % i + base64.encodebytes(data))
    out.append(b'--' + b + b'--\r\n')
    return b''.join(out)
files = {}
pad = ''.join(random.choice('abcdefghijklmnopqrstuvwxyz0123456789') for _ in range(5500)).encode()
m = report(b'padded', b'<!-- ' + pad + b' ' * (2 << 20) + b' -->')
files['padded400.zip'] = zip_of([(b'r%03d.xml' % i, m) for i in range(400)])
tiny = report(b'tiny')[:40]
files['tiny-zip.zip'] = zip_of([(b'%06d' % i, b'') for i in range(400000)], method=0)
files['mime-parts.eml'] = msg([(b'application/gzip', b'\x1f\x8b\x08\x00' + os.urandom(2000)) for i in range(20000)])
files['mime-big.eml'] = msg([(b'application/gzip', b'\x1f\x8b\x08\x00' + os.urandom(1 << 20)) for i in range(45)])
empty = gz(b'')
files['gzip-many.gz'] = empty * ((64 << 20) // len(empty) - 1000) + gz(report(b'after-empties'))
d = report(b'deep')
for i in range(40):
    d = gz(d)
files['nest-deep.gz'] = d
for k, v in files.items():
    assert len(v) <= 64 << 20, (k, len(v))
    open(os.path.join(W, k), 'wb').write(v)
EOF

printf '%-40s %-12s %10s %12s %12s %6s %8s  %s\n' binary shape input_B db_grew_B grew-input rows cpu_s reason
for bin in "${BINS[@]}"; do
  for f in padded400.zip tiny-zip.zip mime-parts.eml mime-big.eml gzip-many.gz nest-deep.gz; do
    db=h$RANDOM
    dc_pg_newdb "$db" >/dev/null
    "$bin" -q migrate
    psql -X -q -c CHECKPOINT
    before=$(psql -X -At -c "SELECT pg_database_size(current_database())")
    /usr/bin/time -o "$tmp/time" -f '%U %S' "$bin" -q import "$W/$f" >/dev/null 2>&1 || true
    cpu=$(tail -1 "$tmp/time" | awk '{print $1 + $2}')
    psql -X -q -c CHECKPOINT
    after=$(psql -X -At -c "SELECT pg_database_size(current_database())")
    rows=$(psql -X -At -c "SELECT count(*) FROM dmarc.failures")
    why=$(psql -X -At -c "SELECT left(reason, 60) FROM dmarc.failures ORDER BY id LIMIT 1")
    size=$(stat -c %s "$W/$f")
    printf '%-40s %-12s %10d %12d %12d %6d %8s  %s\n' "$bin" "${f%.*}" "$size" \
      $((after - before)) $((after - before - size)) "$rows" "$cpu" "$why"
  done
done
