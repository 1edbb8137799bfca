#!/usr/bin/env bash
# bench/parse.sh - the parser alone (dc_extract: GMime MIME walk, gzip/zip
# unpack, libxml2 xmlReader) on N small report e-mails, against libxml2's own
# streaming reader over the same reports (a benchmark, not a test).
#
# N e-mails (default 10,000) as bench/imap.sh makes them
# (tests/integration/imap_mail.py: one base64 gzip or zip attachment of a
# 5-record report each), then in one run:
#   P. bench/parse_bench over the messages, read into memory first, best of
#      PASSES passes (default 3): CPU microseconds per message (one core)
#   X. the baseline: `xmllint --stream --noout` over the same reports' XML,
#      decompressed beforehand, 1,000 files per process, best of PASSES
#      (CPU time of the xmllint processes, getrusage)
# and prints P / X.  CPU time rather than wall time, so that other load on
# the machine disturbs the figures less (both are printed for P).  X reads
# the files from the page cache and starts N / 1000 processes; P has its
# input in memory.
#
#   bench/parse.sh [BUILD_DIR] [N] [PASSES]   (defaults: build, 10000, 3)
#
# parse_bench is built with the other targets (bench/CMakeLists.txt), against
# the same static libraries as the program.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
n=${2:-10000}
passes=${3:-3}
bench=$build/bench/parse_bench
[ -x "$bench" ] || { echo "build first: cmake -S . -B build && cmake --build build ($bench missing)" >&2; exit 2; }
command -v xmllint >/dev/null || { echo "needs xmllint (libxml2-utils)" >&2; exit 2; }
tmp=$(mktemp -d /tmp/dc-bench-parse.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

now() { date +%s.%N; }

echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "generating $n report e-mails..."
python3 "$src/tests/integration/imap_mail.py" reports "$tmp/mail" "$n" 5 bench
# the reports' XML, decompressed, for the baseline
python3 - "$tmp/mail" "$tmp/xml" <<'EOF'
import email, gzip, io, os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
for f in sorted(os.listdir(src)):
    msg = email.message_from_binary_file(open(os.path.join(src, f), 'rb'))
    found = 0
    for part in msg.walk():
        if part.get_filename() is None:
            continue
        data = part.get_payload(decode=True)
        if data[:2] == b'\x1f\x8b':
            xml = gzip.decompress(data)
        else:
            z = zipfile.ZipFile(io.BytesIO(data))
            xml = z.read(z.namelist()[0])
        open(os.path.join(dst, f + '.xml'), 'wb').write(xml)
        found += 1
    if found != 1:
        sys.exit(f'{f}: {found} report attachments')
EOF
echo "messages: $(du -sk --apparent-size "$tmp/mail" | cut -f1) KB, their XML: $(du -sk --apparent-size "$tmp/xml" | cut -f1) KB"

# P: the parser, 5 records per message, every message must yield them
p_line=$("$bench" "$tmp/mail" "$passes" 5)
echo "P parser:  $p_line"
p_us=$(sed -n 's/.*passes: \([0-9.]*\) us\/file cpu.*/\1/p' <<<"$p_line")

# X: xmllint --stream over the decompressed XML
(cd "$tmp/xml" && ls) > "$tmp/xml.list"
best=
for _ in $(seq "$passes"); do
  # CPU seconds of the xmllint processes (getrusage of waited-for children)
  t=$(cd "$tmp/xml" && python3 -c '
import resource, subprocess, sys
r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
subprocess.run(["xargs", "-n", "1000", "xmllint", "--stream", "--noout"], stdin=open(sys.argv[1]), check=True)
r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)' "$tmp/xml.list")
  best=$(python3 -c "print(min($t, ${best:-$t}))")
done
x_us=$(python3 -c "print(f'{$best * 1e6 / $n:.1f}')")
echo "X xmllint --stream: $n files, best of $passes passes: $x_us us/file cpu ($(python3 -c "print(f'{$best:.3f}')") s)"
echo "P / X = $(python3 -c "print(f'{$p_us / $x_us:.2f}')")  (parser per message / xmllint --stream per report)"
