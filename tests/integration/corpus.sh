#!/bin/bash
# corpus.sh - import the real report corpus (tests/data/corpus) and compare,
# file by file, what was stored with manifest.tsv, which an independent parser
# (corpus/make_manifest.py) wrote: reports stored, records, message totals
# (sum of row/count), records whose envelope_from is absent or empty (the
# manifest's definition; '<>' is not counted), SPF results with scope helo,
# and dmarc.failures rows for the manifest's "error" rows.
#
# The same report occurs in several files (x.xml, x.xml.gz, x.zip ...), and a
# second copy is a duplicate, stored once under the first file's name.  So the
# files are split into rounds in which no two files share a report_id; the
# tables are emptied between rounds.  Known, explained differences are
# listed in tests/data/corpus-differences.tsv (file, expected values, reason).
# Then: the whole corpus once more into one database, twice; the second time
# stores nothing new, and its report-only files import with exit status 0.
set -euo pipefail
: "${DC_BIN:?DC_BIN must name the dmarc-collector program}"
: "${DC_SRC:?DC_SRC must name the source directory}"
. "$DC_SRC/tests/lib/pg.sh"

tmp=$(mktemp -d)
chmod 755 "$tmp"   # the cluster runs as postgres
trap 'dc_pg_stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
dc_pg_start "$tmp/pg"

export TMPDIR_TEST=$tmp CORPUS=$DC_SRC/tests/data/corpus DIFFS=$DC_SRC/tests/data/corpus-differences.tsv
python3 - <<'EOF'
import collections, os, subprocess, sys

BIN, CORPUS, DIFFS, TMP = os.environ['DC_BIN'], os.environ['CORPUS'], os.environ['DIFFS'], os.environ['TMPDIR_TEST']
FIELDS = ['reports', 'records', 'messages', 'empty_envelope_from', 'spf_helo', 'failures']
problems = []

def run(args, db, check_rc=None):
    env = dict(os.environ, PGDATABASE=db)
    p = subprocess.run(args, cwd=CORPUS, env=env, capture_output=True, text=True)
    if check_rc is not None and p.returncode not in check_rc:
        sys.exit('FAIL: %s exited %d (expected %s)\n%s' % (' '.join(args[:2]), p.returncode, check_rc, p.stderr[-3000:]))
    return p

def psql(db, sql, *more):
    args = ['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-F', '\t', '-d', db, '-c', sql]
    for m in more:
        args += ['-c', m]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit('FAIL: psql: %s' % p.stderr)
    return [l.split('\t') for l in p.stdout.splitlines() if l]

def newdb(name):
    psql('postgres', 'CREATE DATABASE %s' % name)
    run([BIN, 'migrate'], name, {0})

# ---- expected values from the manifest
expected = collections.OrderedDict()
ids = collections.defaultdict(set)
with open(os.path.join(CORPUS, 'manifest.tsv'), encoding='utf-8') as f:
    head = f.readline().rstrip('\n').split('\t')
    for line in f:
        row = dict(zip(head, line.rstrip('\n').split('\t')))
        e = expected.setdefault(row['file'], dict.fromkeys(FIELDS, 0))
        # "error: ...; recovered by <method>": the manifest's lenient re-parse
        # filled the fields, and dmarc-collector repairs the same damage
        if row['parse_status'] == 'ok' or 'recovered by' in row['parse_status']:
            e['reports'] += 1
            e['records'] += int(row['n_records'])
            e['messages'] += int(row['total_count'])
            e['empty_envelope_from'] += int(row['n_records_empty_envelope_from'])
            e['spf_helo'] += int(row['n_spf_scope_helo'])
            ids[row['file']].add(row['report_id'].strip().lower())
        else:
            e['failures'] += 1
reasons = {}
with open(DIFFS, encoding='utf-8') as f:
    for n, line in enumerate(f, 1):
        if not line.strip() or line.startswith('#'):
            continue
        parts = line.rstrip('\n').split('\t')
        if len(parts) != 3 or parts[0] not in expected:
            sys.exit('FAIL: %s:%d: expected "file<TAB>field=value ...<TAB>reason" for a manifest file' % (DIFFS, n))
        for kv in parts[1].split():
            k, v = kv.split('=')
            if k not in FIELDS:
                sys.exit('FAIL: %s:%d: unknown field %s' % (DIFFS, n, k))
            expected[parts[0]][k] = int(v)
        reasons[parts[0]] = parts[2]

# ---- rounds: no two files of a round share a report_id; a file whose
# reports the manifest could not read but which are expected to be stored
# (corpus-differences.tsv) gets a round of its own
rounds = []
for path in [p for p in expected if expected[p]['reports'] > 0 and not ids[p]]:
    rounds.append({'files': [path], 'ids': set()})
for path in [p for p in expected if not (expected[p]['reports'] > 0 and not ids[p])]:
    for r in rounds:
        if not (r['ids'] & ids[path]):
            r['files'].append(path); r['ids'] |= ids[path]; break
    else:
        rounds.append({'files': [path], 'ids': set(ids[path])})

SQL = r"""
SELECT f, sum(rep), sum(rec), sum(msg), sum(env), sum(helo), sum(fail) FROM (
  SELECT regexp_replace(r.file_name, '#[0-9]+$', '') AS f, 1 AS rep,
    (SELECT count(*) FROM dmarc.records x WHERE x.report_id = r.id) AS rec,
    (SELECT coalesce(sum(message_count), 0) FROM dmarc.records x WHERE x.report_id = r.id) AS msg,
    (SELECT count(*) FROM dmarc.records x WHERE x.report_id = r.id
       AND (x.envelope_from IS NULL OR x.envelope_from = '')) AS env,
    (SELECT count(*) FROM dmarc.spf_results s
       WHERE s.report_id = r.id AND lower(s.scope) = 'helo') AS helo,
    0 AS fail
  FROM dmarc.reports r
  UNION ALL
  SELECT regexp_replace(file_name, '#[0-9]+$', ''), 0, 0, 0, 0, 0, 1 FROM dmarc.failures
) t GROUP BY f
"""
actual = {}
db = 'rounds'
newdb(db)
for i, r in enumerate(rounds):
    p = run([BIN, 'import'] + r['files'], db, {0, 1})
    # the counts, then empty the tables for the next round (records and
    # their auth results go with their reports: the reports' delete trigger)
    got = {row[0]: dict(zip(FIELDS, map(int, row[1:])))
           for row in psql(db, SQL, 'DELETE FROM dmarc.reports', 'DELETE FROM dmarc.failures')}
    nfail = sum(g['failures'] for g in got.values())
    if (p.returncode == 1) != (nfail > 0):
        problems.append('round %d: exit status %d but %d failure rows' % (i, p.returncode, nfail))
    if len([l for l in p.stderr.splitlines() if 'error:' in l]) != nfail:
        problems.append('round %d: %d failure rows but stderr has another number of error lines' % (i, nfail))
    for path in r['files']:
        actual[path] = got.pop(path, dict.fromkeys(FIELDS, 0))
    for path in got:
        problems.append('rows for a file not imported in round %d: %s' % (i, path))

bad = [p for p in expected if expected[p] != actual[p]]
if bad:
    w = max(len(p) for p in bad)
    print('%-*s  %s' % (w, 'file', '  '.join('%-22s' % f for f in FIELDS)))
    for p in bad:
        print('%-*s  %s' % (w, p, '  '.join('%-22s' % ('%d' % actual[p][f] if expected[p][f] == actual[p][f]
              else 'got %d want %d' % (actual[p][f], expected[p][f])) for f in FIELDS)))
    problems.append('%d of %d files differ from manifest.tsv (+ corpus-differences.tsv)' % (len(bad), len(expected)))
print('corpus: %d files in %d rounds, %d reports, %d records, %d failure rows, %d explained differences' % (
    len(expected), len(rounds), sum(a['reports'] for a in actual.values()),
    sum(a['records'] for a in actual.values()), sum(a['failures'] for a in actual.values()), len(reasons)))

# ---- everything into one database, twice
newdb('everything')
files = list(expected)
first = run([BIN, 'import'] + files, 'everything', {0, 1})
count = lambda: int(psql('everything', 'SELECT count(*) FROM dmarc.reports')[0][0])
n1 = count()
second = run([BIN, 'import'] + files, 'everything', {0, 1})
if count() != n1:
    problems.append('second import of everything stored %d new reports' % (count() - n1))
if ' 0 reports stored' not in second.stderr:
    problems.append('second import summary does not say 0 reports stored: %s' % second.stderr.splitlines()[-1:])
clean = [p for p in files if actual[p]['failures'] == 0 and actual[p]['reports'] > 0]
third = run([BIN, 'import'] + clean, 'everything', {0, 1})
if third.returncode != 0:
    problems.append('re-import of the %d files without failures exited %d, not 0' % (len(clean), third.returncode))
if count() != n1 or ' 0 reports stored' not in third.stderr or ' 0 rejected' not in third.stderr:
    problems.append('re-import of report-only files was not all duplicates: %s' % third.stderr.splitlines()[-1:])
print('corpus: %d distinct reports; second import stored none; %d report files re-imported as duplicates, exit %d'
      % (n1, len(clean), third.returncode))

if problems:
    print('FAIL:\n  ' + '\n  '.join(problems))
    sys.exit(1)
print('PASS')
EOF
