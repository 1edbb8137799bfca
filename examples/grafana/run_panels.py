#!/usr/bin/env python3
"""Runs every panel of a Grafana dashboard against PostgreSQL, outside Grafana.

It expands the dashboard's template variables and Grafana's PostgreSQL
macros the way Grafana does, then runs each panel's SQL through psql (so the
connection, user and role are psql's: PGHOST, PGUSER, ... or --psql).

What is expanded, as Grafana's PostgreSQL data source does it:
  * template variables $name, ${name}, [[name]] (frontend): a multi-value or
    include-All variable becomes its values single-quoted ('' doubled) and
    joined with ","; "All" is the variable's custom allValue inserted as it
    is, or without one every value the variable's query returns (run here,
    in dashboard order, so $reporter sees $domain);
  * macros (backend, pkg/tsdb/grafana-postgresql-datasource/macros.go):
    $__time(c), $__timeEpoch(c), $__timeFilter(c) -> c BETWEEN 'from' AND 'to'
    (RFC 3339, UTC), $__timeFrom(), $__timeTo(), $__timeGroup(c, '1d'[, fill]),
    $__timeGroupAlias(...), $__unixEpochFilter(c), $__unixEpochNanoFilter(c),
    $__unixEpochNanoFrom(), $__unixEpochNanoTo(), $__unixEpochGroup(c, i),
    $__unixEpochGroupAlias(...).

With --rules FILE.yaml (Grafana alerting file provisioning), the queries of
every alert rule run too: each data source query (not the __expr__
expressions) with the macros expanded over the rule's relativeTimeRange,
printed as "rule UID [REFID]  N rows"; no template variables apply there.

Usage:
  run_panels.py DASHBOARD.json [--from 2024-01-01T00:00:00Z|now-30d] [--to now]
                [--var domain=a.com,b.com] [--psql "psql -X -d dmarc"]
                [--print] [--explain] [--require-rows] [--rules RULES.yaml]
                [--show TITLE]...
  run_panels.py --rules RULES.yaml [--psql ...] [--print]
--show prints the rows of the panels whose title contains TITLE, each as
"  | " and its columns separated by tabs, after the panel's line.
Exit status: 0 when every panel and rule query ran (and, with --require-rows,
every panel marked "dmarcCollectorMain" returned rows), 1 otherwise.
"""
import argparse
import datetime as dt
import json
import re
import shlex
import subprocess
import sys

MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
VAR = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^\}]+))?\}")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_time(s, now):
    if s == "now":
        return now
    m = re.fullmatch(r"now-(\d+)([smhdwy])", s)
    if m:
        return now - dt.timedelta(seconds=int(m.group(1)) * UNITS[m.group(2)])
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def rfc3339nano(t):
    """Go's time.RFC3339Nano for a UTC time: fraction without trailing zeros, 'Z'."""
    t = t.astimezone(dt.timezone.utc)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        s += ("." + "%06d" % t.microsecond).rstrip("0")
    return s + "Z"


def interval_seconds(arg):
    a = arg.strip().strip("'")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", a)
    if not m:
        raise ValueError("error parsing interval %s" % arg)
    v = float(m.group(1)) * UNITS[m.group(2)]
    return ("%d" % v) if v == int(v) else repr(v)


def expand_macros(sql, t_from, t_to):
    def one(m):
        name = m.group(1)
        args = [a.strip() for a in m.group(2).split(",")]
        f, t = rfc3339nano(t_from), rfc3339nano(t_to)
        if name == "__timeGroup":
            # Grafana: a ',' right after the call means the pre-5.3 alias form
            end = m.end()
            if end < len(sql) and sql[end] == ",":
                name = "__timeGroupAlias"
        if name == "__time":
            return '%s AS "time"' % args[0]
        if name == "__timeEpoch":
            return 'extract(epoch from %s) as "time"' % args[0]
        if name == "__timeFilter":
            return "%s BETWEEN '%s' AND '%s'" % (args[0], f, t)
        if name == "__timeFrom":
            return "'%s'" % f
        if name == "__timeTo":
            return "'%s'" % t
        if name in ("__timeGroup", "__timeGroupAlias"):
            if len(args) < 2:
                raise ValueError("macro %s needs time column and interval" % name)
            s = interval_seconds(args[1])
            e = "floor(extract(epoch from %s)/%s)*%s" % (args[0], s, s)
            return e + (' AS "time"' if name == "__timeGroupAlias" else "")
        if name == "__unixEpochFilter":
            return "%s >= %d AND %s <= %d" % (args[0], int(t_from.timestamp()), args[0], int(t_to.timestamp()))
        if name == "__unixEpochNanoFilter":
            return "%s >= %d AND %s <= %d" % (args[0], int(t_from.timestamp()) * 10**9, args[0],
                                              int(t_to.timestamp()) * 10**9)
        if name == "__unixEpochNanoFrom":
            return "%d" % (int(t_from.timestamp()) * 10**9)
        if name == "__unixEpochNanoTo":
            return "%d" % (int(t_to.timestamp()) * 10**9)
        if name in ("__unixEpochGroup", "__unixEpochGroupAlias"):
            s = interval_seconds(args[1])
            e = "floor((%s)/%s)*%s" % (args[0], s, s)
            return e + (' AS "time"' if name == "__unixEpochGroupAlias" else "")
        raise ValueError("unknown macro %r" % name)
    return MACRO.sub(one, sql)


def quote(v):
    return "'" + v.replace("'", "''") + "'"


def interpolate(sql, variables):
    """variables: name -> (values, multi_or_all); multi_or_all None: raw custom all value."""
    def one(m):
        name = m.group(1) or m.group(2) or m.group(4)
        if name not in variables:
            return m.group(0)
        values, multi = variables[name]
        if multi is None:
            return values[0]
        if multi:
            return ",".join(quote(v) for v in values)
        return values[0].replace("'", "''")
    return VAR.sub(one, sql)


class Psql:
    def __init__(self, cmd):
        self.cmd = shlex.split(cmd)

    def run(self, sql):
        p = subprocess.run(self.cmd + ["-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1"],
                           input=sql + "\n", capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.strip() or "psql exit %d" % p.returncode)
        return [line for line in p.stdout.split("\n") if line != ""]


def resolve_variables(dash, given, psql, t_from, t_to):
    variables = {}
    for v in dash.get("templating", {}).get("list", []):
        name = v["name"]
        multi = bool(v.get("multi") or v.get("includeAll"))
        want = given.get(name, "All")
        if want in ("All", "$__all"):
            if v.get("allValue"):
                # a custom all value is inserted as it is: no quoting, no escaping
                variables[name] = ([v["allValue"]], None)
                continue
            q = expand_macros(interpolate(v["query"], variables), t_from, t_to)
            values = psql.run(q)
            if not values:
                raise RuntimeError("variable $%s: its query returned no values" % name)
        else:
            values = want.split(",")
        variables[name] = (values, multi)
    return variables


def run_rules(path, psql, now, print_sql):
    """Runs the data source queries of every rule in a provisioning file; returns the failures."""
    import yaml  # python3-yaml, only for --rules
    bad = 0
    for g in yaml.safe_load(open(path)).get("groups", []):
        for r in g.get("rules", []):
            for q in r.get("data", []):
                if q.get("datasourceUid") == "__expr__":
                    continue
                title = "rule %s [%s]" % (r["uid"], q["refId"])
                rng = q.get("relativeTimeRange", {})
                t_from = now - dt.timedelta(seconds=int(rng.get("from", 600)))
                t_to = now - dt.timedelta(seconds=int(rng.get("to", 0)))
                try:
                    sql = expand_macros(q["model"]["rawSql"], t_from, t_to)
                    if print_sql:
                        print("-- %s\n%s;\n" % (title, sql))
                    print("%-45s %8d rows" % (title, len(psql.run(sql))))
                except (RuntimeError, ValueError, KeyError) as e:
                    print("%-45s FAILED: %s" % (title, e))
                    bad += 1
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dashboard", nargs="?")
    ap.add_argument("--rules", help="also run the queries of the alert rules in this provisioning file")
    ap.add_argument("--from", dest="t_from", default=None)
    ap.add_argument("--to", dest="t_to", default=None)
    ap.add_argument("--var", action="append", default=[], help="name=value[,value...] or name=All")
    ap.add_argument("--psql", default="psql")
    ap.add_argument("--print", action="store_true", help="print each expanded query")
    ap.add_argument("--explain", action="store_true", help="time each query with EXPLAIN ANALYZE")
    ap.add_argument("--require-rows", action="store_true")
    ap.add_argument("--show", action="append", default=[], help="print the rows of panels whose title contains this")
    a = ap.parse_args()

    now = dt.datetime.now(dt.timezone.utc)
    psql = Psql(a.psql)
    bad = run_rules(a.rules, psql, now, a.print) if a.rules else 0
    if not a.dashboard:
        return 1 if bad else 0
    dash = json.load(open(a.dashboard))
    t_from = parse_time(a.t_from or dash.get("time", {}).get("from", "now-30d"), now)
    t_to = parse_time(a.t_to or dash.get("time", {}).get("to", "now"), now)
    given = dict(x.split("=", 1) for x in a.var)
    try:
        variables = resolve_variables(dash, given, psql, t_from, t_to)
    except (RuntimeError, ValueError) as e:
        print("variables: %s" % e)
        return 1
    for name, (values, _) in variables.items():
        print("variable $%s: %d value(s)" % (name, len(values)))
    for p in dash["panels"]:
        for t in p.get("targets", []):
            title = "%s [%s]" % (p["title"], t["refId"])
            try:
                sql = expand_macros(interpolate(t["rawSql"], variables), t_from, t_to)
                if a.print:
                    print("-- %s\n%s;\n" % (title, sql))
                if a.explain:
                    plan = json.loads("".join(psql.run("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)))[0]
                    ms = plan["Planning Time"] + plan["Execution Time"]
                    rows = plan["Plan"].get("Actual Rows", 0)
                    print("%-45s %8d rows %10.1f ms" % (title, rows, ms))
                else:
                    out = psql.run(sql)
                    rows = len(out)
                    print("%-45s %8d rows" % (title, rows))
                    if any(x in p["title"] for x in a.show):
                        for line in out:
                            print("  | " + line)
            except (RuntimeError, ValueError) as e:
                print("%-45s FAILED: %s" % (title, e))
                bad += 1
                continue
            if a.require_rows and p.get("dmarcCollectorMain") and rows == 0:
                print("%-45s FAILED: a main panel returned no rows" % title)
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
