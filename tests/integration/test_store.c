/*
 * test_store.c - dc_store against a real PostgreSQL (run by store.sh, which
 * starts a throwaway cluster, creates an empty database and exports PG*).
 *
 * Reports are fed through the sink with synthetic dc_report/dc_record
 * values (no XML), except the reparse case which parses corpus files.  The
 * cases run in order and share the database; each uses its own
 * policy_domain so their rows do not mix.  The last case stops the server.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dc_store.h"
#include "dc_store_int.h" /* dc_store_conn: row counts and the backend PID */
#include "dc_migrations.h"

static PGconn *chk; /* a separate connection for assertions */
static char qbuf[8192];

/* The first value of the first row of sql with up to two text parameters, or
 * "<null>" / "<none>"; fails the test on a query error. */
static const char *
q(const char *sql, const char *p1, const char *p2)
{
	const char *vals[2] = { p1, p2 };
	PGresult *res = PQexecParams(chk, sql, p2 ? 2 : p1 ? 1 : 0, NULL, vals, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("query failed: %s: %s", sql, PQerrorMessage(chk));
	if (PQntuples(res) == 0)
		snprintf(qbuf, sizeof(qbuf), "<none>");
	else if (PQgetisnull(res, 0, 0))
		snprintf(qbuf, sizeof(qbuf), "<null>");
	else
		snprintf(qbuf, sizeof(qbuf), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return qbuf;
}

static void
x(const char *sql)
{
	PGresult *res = PQexec(chk, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("statement failed: %s: %s", sql, PQerrorMessage(chk));
	PQclear(res);
}

static dc_store *
open_store(void)
{
	dc_store *st = NULL;
	dc_err err = { 0 };

	if (dc_store_open(NULL, NULL, &st, &err) != DC_OK)
		fail_msg("dc_store_open: %s", err.msg);
	return st;
}

static dc_report
mk_report(const char *domain, const char *rid)
{
	return (dc_report){
		.xmlns = "urn:ietf:params:xml:ns:dmarc-2.0",
		.version = "1.0",
		.org_name = "Test Org",
		.org_email = "dmarc@test.example",
		.report_id = rid,
		.date_begin = 1700000000,
		.date_end = 1700086399,
		.generator = "test_store",
		.policy_domain = domain,
		.policy_adkim = "r",
		.policy_aspf = "s",
		.policy_p = "reject",
		.policy_sp = "quarantine",
		.policy_np = "none",
		.policy_testing = "n",
		.policy_discovery_method = "treewalk",
		.policy_fo = "1",
		.policy_pct = -1,
	};
}

static const dc_dkim_result two_dkim[] = {
	{ "example.com", "s1", "pass", NULL },
	{ "esp.example", "sel\\2", "fail", "bad sig" },
};
static const dc_spf_result one_spf[] = { { "bounce.example.com", "mfrom", "pass", NULL } };
static const dc_spf_result helo_spf[] = { { "mx.example.net", "helo", "pass", NULL } };

static dc_record
mk_record(uint64_t ordinal, const char *ip)
{
	return (dc_record){
		.ordinal = ordinal,
		.source_ip = ip,
		.message_count = 1,
		.disposition = "none",
		.dkim_aligned = "pass",
		.spf_aligned = "fail",
		.header_from = "example.com",
		.dkim = two_dkim,
		.n_dkim = 2,
		.spf = one_spf,
		.n_spf = 1,
	};
}

/* Stores one whole report through the sink; returns the first non-OK code. */
static dc_code
store_report(
	dc_store *st, const dc_report *r, const dc_blob *blob, const dc_record *recs, size_t n, dc_err *err)
{
	dc_extract_cb cb = dc_store_callbacks(st);
	dc_code rc = cb.sink.report_begin(cb.sink.ctx, r, blob, err);

	if (rc != DC_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if ((rc = cb.sink.record(cb.sink.ctx, r, &recs[i], err)) != DC_OK) {
			cb.sink.report_abort(cb.sink.ctx);
			return rc;
		}
	}
	rc = cb.sink.report_end(cb.sink.ctx, r, err);
	if (rc != DC_OK)
		cb.sink.report_abort(cb.sink.ctx);
	return rc;
}

static int
n_migrations(void)
{
	int n = 0;

	for (const dc_migration *m = dc_migrations; m->name; m++)
		n++;
	return n;
}

static int
n_objects(void)
{
	int n = 0;

	for (const dc_sql_file *m = dc_sql_objects; m->name; m++)
		n++;
	return n;
}

/* ---- migrate ---------------------------------------------------------- */

typedef struct migrate_job {
	dc_store *st;
	int applied;
	dc_code rc;
	dc_err err;
} migrate_job;

static void *
migrate_thread(void *arg)
{
	migrate_job *j = arg;

	j->rc = dc_store_migrate(j->st, &j->applied, &j->err);
	return NULL;
}

/* Two collectors migrate an empty database at once; a third run applies 0. */
static void
test_migrate(void **state)
{
	migrate_job a = { .st = open_store() }, b = { .st = open_store() };
	pthread_t ta, tb;
	int applied = -1;
	dc_err err = { 0 };

	assert_int_equal(pthread_create(&ta, NULL, migrate_thread, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, migrate_thread, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	if (a.rc != DC_OK || b.rc != DC_OK)
		fail_msg("migrate: %s / %s", a.err.msg, b.err.msg);
	assert_true(n_migrations() >= 1);
	assert_int_equal(a.applied + b.applied, n_migrations() + n_objects());
	assert_int_equal(atoi(q("SELECT count(*) FROM dmarc.schema_migrations", NULL, NULL)), n_migrations());
	assert_string_equal(q("SELECT min(name) FROM dmarc.schema_migrations", NULL, NULL), "001_tables.sql");

	assert_int_equal(dc_store_migrate(a.st, &applied, &err), DC_OK);
	assert_int_equal(applied, 0);
	assert_int_equal(atoi(q("SELECT count(*) FROM dmarc.schema_migrations", NULL, NULL)), n_migrations());
	dc_store_free(a.st);
	dc_store_free(b.st);

	/* an up-to-date database needs no CREATE privilege to "migrate" */
	x("CREATE ROLE dc_store_plain LOGIN");
	x("GRANT USAGE ON SCHEMA dmarc TO dc_store_plain");
	x("GRANT SELECT ON dmarc.schema_migrations, dmarc.schema_objects TO dc_store_plain");
	x("REVOKE CREATE ON DATABASE dc_store_test FROM PUBLIC");
	{
		dc_store *plain = NULL;
		if (dc_store_open("user=dc_store_plain", NULL, &plain, &err) != DC_OK)
			fail_msg("open as dc_store_plain: %s", err.msg);
		applied = -1;
		if (dc_store_migrate(plain, &applied, &err) != DC_OK)
			fail_msg("migrate as dc_store_plain: %s", err.msg);
		assert_int_equal(applied, 0);
		dc_store_free(plain);
	}
}

/* ---- a whole report ---------------------------------------------------- */

static void
test_store_whole(void **state)
{
	dc_store *st = open_store();
	dc_report r = mk_report("whole.example", "r-whole");
	static const uint8_t zipbytes[] = { 'P', 'K', 3, 4, 0, 0xff, 0x80, '\n', 0 };
	dc_blob blob = {
		.data = zipbytes, .len = sizeof(zipbytes), .name = "whole.zip", .path = "zip:a.xml"
	};
	dc_reason reasons[] = { { "forwarded", "via\tlist \"x\"\\y\nz" }, { "local_policy", NULL } };
	dc_record recs[4];
	dc_origin o = {
		.mailbox = "rua", .uidvalidity = 7, .uid = 42, .message_id = "<m1@x>", .file_name = NULL
	};
	dc_err err = { 0 };
	char rid[32];

	r.policy_pct = 50;
	r.errors = "repaired: trailing bytes";
	for (int i = 0; i < 4; i++)
		recs[i] = mk_record((uint64_t)i + 1, "192.0.2.1");
	recs[0].envelope_from = NULL;
	recs[1].envelope_from = "";
	recs[1].source_ip = " 2001:DB8:0::1 ";
	recs[1].message_count = 7;
	recs[1].reasons = reasons;
	recs[1].n_reasons = 2;
	recs[2].envelope_from = "<>";
	recs[2].envelope_to = "\\N"; /* the two characters, not NULL */
	recs[2].disposition = "a\rb\\.";
	recs[2].source_ip = NULL;
	recs[2].message_count = -1;
	recs[2].n_dkim = 0;
	recs[3].envelope_from = "bounce.example.com";
	recs[3].envelope_to = "Example.ORG";
	recs[3].header_from = "tab\there";

	assert_int_equal(dc_store_set_origin(st, &o, &err), DC_OK);
	if (store_report(st, &r, &blob, recs, 4, &err) != DC_OK)
		fail_msg("store: %s", err.msg);

	snprintf(rid, sizeof(rid), "%s",
		q("SELECT id FROM dmarc.reports WHERE policy_domain = 'whole.example'", NULL, NULL));
	assert_string_equal(
		q("SELECT concat_ws('|', org_name, org_email, report_id, date_begin = to_timestamp(1700000000),"
		  " date_end = to_timestamp(1700086399), policy_p, policy_sp, policy_np, policy_adkim, policy_aspf, policy_pct,"
		  " policy_fo, policy_testing, policy_discovery_method, generator, version, xmlns, errors, record_count,"
		  " message_total, mailbox, uidvalidity, uid, message_id, file_name, original_path)"
		  " FROM dmarc.reports WHERE id = $1",
			rid, NULL),
		"Test Org|dmarc@test.example|r-whole|t|t|reject|quarantine|none|r|s|50|1|n|treewalk|test_store|1.0|"
		"urn:ietf:params:xml:ns:dmarc-2.0|repaired: trailing bytes|4|9|rua|7|42|<m1@x>|whole.zip|zip:a.xml");
	/* the original: exact bytes, hash, name */
	assert_string_equal(
		q("SELECT concat_ws('|', encode(o.content, 'hex'), o.sha256 = sha256(o.content), o.name)"
		  " FROM dmarc.reports r JOIN dmarc.originals o ON o.id = r.original_id WHERE r.id = $1",
			rid, NULL),
		"504b030400ff800a00|t|whole.zip");
	/* records: envelope_from NULL, '' and '<>' stay distinct */
	assert_string_equal(
		q("SELECT string_agg(concat_ws(',', ordinal, coalesce(host(source_ip), 'NULL'),"
		  " coalesce(message_count::text, 'NULL'), coalesce(envelope_from, 'NULL'), coalesce(envelope_to, 'NULL'),"
		  " disposition, dkim_aligned, spf_aligned, date_begin = to_timestamp(1700000000), policy_domain), ';' ORDER BY ordinal)"
		  " FROM dmarc.records WHERE report_id = $1",
			rid, NULL),
		"1,192.0.2.1,1,NULL,NULL,none,pass,fail,t,whole.example;"
		"2,2001:db8::1,7,,NULL,none,pass,fail,t,whole.example;"
		"3,NULL,NULL,<>,\\N,a\rb\\.,pass,fail,t,whole.example;"
		"4,192.0.2.1,1,bounce.example.com,Example.ORG,none,pass,fail,t,whole.example");
	assert_string_equal(
		q("SELECT count(*) FILTER (WHERE envelope_from IS NULL) || '/' ||"
		  " count(*) FILTER (WHERE envelope_from = '') || '/' || count(*) FILTER (WHERE envelope_from = '<>')"
		  " FROM dmarc.records WHERE report_id = $1",
			rid, NULL),
		"1/1/1");
	assert_string_equal(
		q("SELECT header_from = E'tab\\there' FROM dmarc.records WHERE report_id = $1 AND ordinal = 4",
			rid, NULL),
		"t");
	assert_string_equal(
		q("SELECT reasons = $2::jsonb FROM dmarc.records WHERE report_id = $1 AND ordinal = 2", rid,
			"[{\"type\":\"forwarded\",\"comment\":\"via\\tlist \\\"x\\\"\\\\y\\nz\"},{\"type\":\"local_policy\",\"comment\":null}]"),
		"t");
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.records WHERE report_id = $1 AND reasons IS NULL", rid, NULL),
		"3");
	/* auth results: 3 records with 2 DKIM results, 4 with 1 SPF result */
	assert_string_equal(
		q("SELECT string_agg(concat_ws(',', rec.ordinal, d.ordinal, d.domain, d.selector, d.result,"
		  " coalesce(d.human_result, 'NULL'), d.date_begin = rec.date_begin, d.policy_domain), ';'"
		  " ORDER BY rec.ordinal, d.ordinal) FROM dmarc.records rec JOIN dmarc.dkim_results d ON d.record_id = rec.id"
		  " WHERE rec.report_id = $1",
			rid, NULL),
		"1,1,example.com,s1,pass,NULL,t,whole.example;1,2,esp.example,sel\\2,fail,bad sig,t,whole.example;"
		"2,1,example.com,s1,pass,NULL,t,whole.example;2,2,esp.example,sel\\2,fail,bad sig,t,whole.example;"
		"4,1,example.com,s1,pass,NULL,t,whole.example;4,2,esp.example,sel\\2,fail,bad sig,t,whole.example");
	assert_string_equal(
		q("SELECT string_agg(concat_ws(',', rec.ordinal, s.ordinal, s.domain, s.scope, s.result), ';'"
		  " ORDER BY rec.ordinal) FROM dmarc.records rec JOIN dmarc.spf_results s ON s.record_id = rec.id"
		  " WHERE rec.report_id = $1",
			rid, NULL),
		"1,1,bounce.example.com,mfrom,pass;2,1,bounce.example.com,mfrom,pass;"
		"3,1,bounce.example.com,mfrom,pass;4,1,bounce.example.com,mfrom,pass");
	/* the view sees them */
	assert_string_equal(
		q("SELECT count(*) || '/' || count(*) FILTER (WHERE dmarc_pass) || '/' ||"
		  " string_agg(DISTINCT report_ext_id, ',') FROM dmarc.record_details WHERE report_id = $1",
			rid, NULL),
		"4/4/r-whole");
	dc_store_free(st);
}

/* ---- duplicates ------------------------------------------------------- */

static void
test_duplicate(void **state)
{
	dc_store *st = open_store();
	dc_report r = mk_report("dup.example", "r-dup");
	dc_record recs[2] = { mk_record(1, "192.0.2.7"), mk_record(2, "192.0.2.8") };
	dc_err err = { 0 };

	assert_int_equal(store_report(st, &r, NULL, recs, 2, &err), DC_OK);
	assert_int_equal(store_report(st, &r, NULL, recs, 2, &err), DC_SKIP);
	/* a NULL in the key does not make a second copy distinct (NULLS NOT DISTINCT) */
	r.report_id = NULL;
	assert_int_equal(store_report(st, &r, NULL, recs, 2, &err), DC_OK);
	assert_int_equal(store_report(st, &r, NULL, recs, 2, &err), DC_SKIP);
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.reports WHERE policy_domain = 'dup.example'", NULL, NULL), "2");
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.records WHERE policy_domain = 'dup.example'", NULL, NULL), "4");
	/* a duplicate carrying a new original leaves no original behind */
	r.report_id = "r-dup";
	{
		static const uint8_t other[] = "another copy";
		dc_blob blob = { .data = other, .len = sizeof(other) };
		assert_int_equal(store_report(st, &r, &blob, recs, 2, &err), DC_SKIP);
		assert_string_equal(
			q("SELECT count(*) FROM dmarc.originals WHERE content = 'another copy\\000'::bytea",
				NULL, NULL),
			"0");
	}
	dc_store_free(st);
}

/* ---- small reports (one statement) and large ones (COPY) agree -------- */

/* Every stored value of a report's records with ordinal <= 4 and of their
 * auth results, as text (NULL and '' kept apart by quote_nullable), without
 * the ids. */
static const char rows_sql[] =
	"SELECT concat_ws(' # ',"
	" (SELECT string_agg(concat_ws('|', ordinal, quote_nullable(source_ip), quote_nullable(message_count),"
	"  quote_nullable(disposition), quote_nullable(dkim_aligned), quote_nullable(spf_aligned),"
	"  quote_nullable(header_from), quote_nullable(envelope_from), quote_nullable(envelope_to),"
	"  quote_nullable(reasons::text), quote_nullable(date_begin), quote_nullable(policy_domain)), ';' ORDER BY ordinal)"
	"  FROM dmarc.records WHERE report_id = $1::bigint AND ordinal <= 4),"
	" (SELECT string_agg(concat_ws('|', rec.ordinal, d.ordinal, quote_nullable(d.domain), quote_nullable(d.selector),"
	"  quote_nullable(d.result), quote_nullable(d.human_result), quote_nullable(d.date_begin),"
	"  quote_nullable(d.policy_domain)), ';' ORDER BY rec.ordinal, d.ordinal)"
	"  FROM dmarc.records rec JOIN dmarc.dkim_results d ON d.record_id = rec.id"
	"  WHERE rec.report_id = $1::bigint AND rec.ordinal <= 4),"
	" (SELECT string_agg(concat_ws('|', rec.ordinal, s.ordinal, quote_nullable(s.domain), quote_nullable(s.scope),"
	"  quote_nullable(s.result), quote_nullable(s.human_result), quote_nullable(s.date_begin),"
	"  quote_nullable(s.policy_domain)), ';' ORDER BY rec.ordinal, s.ordinal)"
	"  FROM dmarc.records rec JOIN dmarc.spf_results s ON s.record_id = rec.id"
	"  WHERE rec.report_id = $1::bigint AND rec.ordinal <= 4))";

static void
test_paths_agree(void **state)
{
	enum { LARGE = 4100 }; /* past the first 4096-record COPY chunk */
	dc_store *st = open_store();
	dc_report small = mk_report("paths.example", "r-small");
	dc_report large = mk_report("paths.example", "r-large");
	dc_reason reasons[] = { { "forwarded", "via\tlist \"x\"\\y\nz\x01" }, { "local_policy", NULL } };
	static const dc_spf_result odd_spf[] = { { "", NULL, "pass", "\\N" } };
	dc_record *recs = calloc(LARGE, sizeof(*recs));
	dc_err err = { 0 };
	char id_small[32], id_large[32], rows_small[8192];

	(void)state;
	assert_non_null(recs);
	for (size_t i = 0; i < LARGE; i++)
		recs[i] = mk_record((uint64_t)i + 1, "192.0.2.1");
	recs[0].envelope_from = NULL;
	recs[0].spf = odd_spf;
	recs[1].envelope_from = "";
	recs[1].source_ip = " 2001:DB8:0::1 ";
	recs[1].message_count = 7;
	recs[1].reasons = reasons;
	recs[1].n_reasons = 2;
	recs[2].envelope_to = "\\N";
	recs[2].disposition = "a\rb\\.\"{}[],";
	recs[2].source_ip = "";
	recs[2].message_count = -1;
	recs[2].n_dkim = 0;
	recs[3].header_from = "t\xc3\xa4"
			      "b\there \xf0\x9f\x93\xa7";
	small.errors = large.errors = "e1\ne2 \"q\"";

	if (store_report(st, &small, NULL, recs, 4, &err) != DC_OK)
		fail_msg("store small: %s", err.msg);
	if (store_report(st, &large, NULL, recs, LARGE, &err) != DC_OK)
		fail_msg("store large: %s", err.msg);
	snprintf(id_small, sizeof(id_small), "%s",
		q("SELECT id FROM dmarc.reports WHERE report_id = 'r-small'", NULL, NULL));
	snprintf(id_large, sizeof(id_large), "%s",
		q("SELECT id FROM dmarc.reports WHERE report_id = 'r-large'", NULL, NULL));
	snprintf(rows_small, sizeof(rows_small), "%s", q(rows_sql, id_small, NULL));
	assert_string_equal(q(rows_sql, id_large, NULL), rows_small);
	/* and the values are the ones sent (not merely equally wrong) */
	assert_string_equal(q("SELECT concat_ws('|', record_count, message_total, errors = E'e1\\ne2 \"q\"')"
			      " FROM dmarc.reports WHERE id = $1::bigint",
				    id_small, NULL),
		"4|9|t");
	assert_string_equal(q("SELECT concat_ws('|', record_count, message_total, errors = E'e1\\ne2 \"q\"')"
			      " FROM dmarc.reports WHERE id = $1::bigint",
				    id_large, NULL),
		"4100|4105|t");
	assert_string_equal(
		q("SELECT concat_ws('|', envelope_to = '\\N', disposition = E'a\\rb\\\\.\"{}[],',"
		  " source_ip IS NULL, message_count IS NULL) FROM dmarc.records WHERE report_id = $1::bigint AND ordinal = 3",
			id_small, NULL),
		"t|t|t|t");
	assert_string_equal(
		q("SELECT concat_ws('|', quote_nullable(domain), quote_nullable(scope), human_result)"
		  " FROM dmarc.spf_results s JOIN dmarc.records r ON r.id = s.record_id"
		  " WHERE r.report_id = $1::bigint AND r.ordinal = 1",
			id_small, NULL),
		"''|NULL|\\N");
	assert_string_equal(
		q("SELECT (reasons->0->>'comment') = E'via\\tlist \"x\"\\\\y\\nz\\u0001' FROM dmarc.records"
		  " WHERE report_id = $1::bigint AND ordinal = 2",
			id_small, NULL),
		"t");
	assert_string_equal(q("SELECT header_from = E't\\u00e4b\\there \\U0001F4E7' FROM dmarc.records"
			      " WHERE report_id = $1::bigint AND ordinal = 4",
				    id_small, NULL),
		"t");
	/* a duplicate of the small one is still skipped, the connection still good */
	assert_int_equal(store_report(st, &small, NULL, recs, 4, &err), DC_SKIP);
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.records WHERE report_id = $1::bigint", id_small, NULL), "4");
	free(recs);
	dc_store_free(st);
}

/* ---- auth results inline: 0, 1 and 3 of each round-trip ---------------- */

/* A record's DKIM and SPF results as the views give them back, one line
 * per result in order, NULL and '' kept apart. */
static const char auth_sql[] =
	"SELECT concat_ws(' # ',"
	" (SELECT string_agg(concat_ws('|', d.ordinal, quote_nullable(d.domain), quote_nullable(d.selector),"
	"  quote_nullable(d.result), quote_nullable(d.human_result), d.date_begin = r.date_begin,"
	"  d.policy_domain = r.policy_domain, d.report_id = r.report_id), ';' ORDER BY d.ordinal)"
	"  FROM dmarc.dkim_results d WHERE d.record_id = r.id),"
	" (SELECT string_agg(concat_ws('|', s.ordinal, quote_nullable(s.domain), quote_nullable(s.scope),"
	"  quote_nullable(s.result), quote_nullable(s.human_result), s.date_begin = r.date_begin,"
	"  s.policy_domain = r.policy_domain, s.report_id = r.report_id), ';' ORDER BY s.ordinal)"
	"  FROM dmarc.spf_results s WHERE s.record_id = r.id),"
	" r.dkim_count || '/' || r.spf_count || '/' || (r.dkim_more IS NULL) || '/' || (r.spf_more IS NULL))"
	" FROM dmarc.records r JOIN dmarc.reports p ON p.id = r.report_id"
	" WHERE p.report_id = $1 AND r.ordinal = $2::int";

static const dc_dkim_result three_dkim[] = {
	{ "a.example", "s1", "pass", NULL },
	{ "", NULL, "fail", "" },
	{ "c.example", "sel\\\"{x}", "temperror", "tab\there\nnl \xc3\xa4 \\N" },
};
static const dc_spf_result three_spf[] = {
	{ NULL, NULL, NULL, NULL },
	{ "b.example", "helo", "softfail", "\\" },
	{ "", "", "", "\"" },
};
static const char *const auth_want[3] = {
	/* 0 DKIM, 0 SPF */
	"0/0/true/true",
	/* 1 each */
	"1|'example.com'|'s1'|'pass'|NULL|t|t|t # 1|'bounce.example.com'|'mfrom'|'pass'|NULL|t|t|t # 1/1/true/true",
	/* 3 each */
	"1|'a.example'|'s1'|'pass'|NULL|t|t|t;2|''|NULL|'fail'|''|t|t|t;"
	"3|'c.example'|E'sel\\\\\"{x}'|'temperror'|E'tab\there\nnl \xc3\xa4 \\\\N'|t|t|t # "
	"1|NULL|NULL|NULL|NULL|t|t|t;2|'b.example'|'helo'|'softfail'|E'\\\\'|t|t|t;"
	"3|''|''|''|'\"'|t|t|t # 3/3/false/false",
};

/* Records 1..n cycle through 0, 1 and 3 DKIM and SPF results. */
static void
mk_auth_records(dc_record *recs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		recs[i] = mk_record(i + 1, "192.0.2.3");
		switch (i % 3) {
		case 0: recs[i].n_dkim = recs[i].n_spf = 0; break;
		case 1: recs[i].n_dkim = 1; break;
		default:
			recs[i].dkim = three_dkim;
			recs[i].n_dkim = 3;
			recs[i].spf = three_spf;
			recs[i].n_spf = 3;
			break;
		}
	}
}

/* The first three records of report rid are stored as sent. */
static void
check_auth(const char *rid)
{
	for (int k = 0; k < 3; k++) {
		char ord[8];

		snprintf(ord, sizeof(ord), "%d", k + 1);
		if (strcmp(q(auth_sql, rid, ord), auth_want[k]) != 0)
			fail_msg("report %s record %d:\n got  %s\n want %s", rid, k + 1, qbuf, auth_want[k]);
	}
}

/* Through the one-statement path, by COPY (past a chunk) and in a batch. */
static void
test_auth_roundtrip(void **state)
{
	enum { LARGE = 4100 };
	dc_store *st = open_store();
	dc_report small = mk_report("auth.example", "r-auth-small");
	dc_report large = mk_report("auth.example", "r-auth-large");
	dc_report batched = mk_report("auth.example", "r-auth-batch");
	dc_record *recs = calloc(LARGE, sizeof(*recs));
	dc_err err = { 0 };

	(void)state;
	assert_non_null(recs);
	mk_auth_records(recs, LARGE);
	if (store_report(st, &small, NULL, recs, 3, &err) != DC_OK)
		fail_msg("store small: %s", err.msg);
	if (store_report(st, &large, NULL, recs, LARGE, &err) != DC_OK)
		fail_msg("store large: %s", err.msg);
	assert_int_equal(dc_store_batch_begin(st, &err), DC_OK);
	if (store_report(st, &batched, NULL, recs, 3, &err) != DC_OK)
		fail_msg("store batched: %s", err.msg);
	if (dc_store_batch_commit(st, NULL, NULL, &err) != DC_OK)
		fail_msg("commit batch: %s", err.msg);
	check_auth("r-auth-small");
	check_auth("r-auth-large");
	check_auth("r-auth-batch");
	/* one row per record, the view one row per result */
	assert_string_equal(
		q("SELECT count(*) || '/' || sum(dkim_count) || '/' ||"
		  " (SELECT count(*) FROM dmarc.dkim_results d JOIN dmarc.reports p ON p.id = d.report_id"
		  "  WHERE p.report_id = 'r-auth-large')"
		  " FROM dmarc.records r JOIN dmarc.reports p ON p.id = r.report_id"
		  " WHERE p.report_id = 'r-auth-large'",
			NULL, NULL),
		"4100/5465/5465");
	/* the further results are JSON arrays with the documented keys */
	assert_string_equal(q("SELECT r.dkim_more::text || ' ' || r.spf_more::text"
			      " FROM dmarc.records r JOIN dmarc.reports p ON p.id = r.report_id"
			      " WHERE p.report_id = 'r-auth-small' AND r.ordinal = 3",
				    NULL, NULL),
		"[{\"domain\": \"\", \"result\": \"fail\", \"selector\": null, \"human_result\": \"\"},"
		" {\"domain\": \"c.example\", \"result\": \"temperror\", \"selector\": \"sel\\\\\\\"{x}\","
		" \"human_result\": \"tab\\there\\nnl \xc3\xa4 \\\\N\"}]"
		" [{\"scope\": \"helo\", \"domain\": \"b.example\", \"result\": \"softfail\", \"human_result\": \"\\\\\"},"
		" {\"scope\": \"\", \"domain\": \"\", \"result\": \"\", \"human_result\": \"\\\"\"}]");
	free(recs);
	dc_store_free(st);
}

/* ---- partitions: a report of an old month lands in that month ---------- */

/* "table|table" of report rid's row and of its records' rows (distinct). */
static const char where_sql[] =
	"SELECT p.tableoid::regclass || '|' || (SELECT string_agg(DISTINCT r.tableoid::regclass::text, ',')"
	" FROM dmarc.records r WHERE r.report_id = p.id) FROM dmarc.reports p WHERE p.report_id = $1";

static void
test_partition_month(void **state)
{
	dc_store *st = open_store();
	dc_report own = mk_report("part.example", "r-part-own");
	dc_report batched = mk_report("part.example", "r-part-batch");
	dc_report late = mk_report("part.example", "r-part-late");
	dc_record recs[300];
	dc_err err = { 0 };
	PGresult *res;
	char lid[32], before[4096];

	(void)state;
	for (size_t i = 0; i < 300; i++)
		recs[i] = mk_record(i + 1, "192.0.2.30");
	/* the current months are made by dc_store_partitions; called inside a
	 * transaction it refuses */
	if (dc_store_partitions(st, &err) != DC_OK)
		fail_msg("partitions: %s", err.msg);
	assert_string_equal(
		q("SELECT to_regclass('dmarc.records_' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM'))"
		  " IS NOT NULL",
			NULL, NULL),
		"t");
	assert_int_equal(dc_store_batch_begin(st, &err), DC_OK);
	assert_int_equal(dc_store_partitions(st, &err), DC_EDB);
	dc_store_batch_abort(st);

	/* own transaction: 2019-03-10, a month nobody created (COPY path) */
	own.date_begin = 1552176000;
	own.date_end = own.date_begin + 86399;
	if (store_report(st, &own, NULL, recs, 300, &err) != DC_OK)
		fail_msg("store: %s", err.msg);
	assert_string_equal(q(where_sql, "r-part-own", NULL), "dmarc.reports_2019_03|dmarc.records_2019_03");

	/* batch mode, nothing written yet: 2018-05-20 */
	batched.date_begin = 1526774400;
	batched.date_end = batched.date_begin + 86399;
	late.date_begin = 1499990400; /* 2017-07-14 */
	late.date_end = late.date_begin + 86399;
	assert_int_equal(dc_store_batch_begin(st, &err), DC_OK);
	if (store_report(st, &batched, NULL, recs, 3, &err) != DC_OK)
		fail_msg("store batched: %s", err.msg);
	/* ... and once the batch has written (a failure row), a new month
	 * waits in the DEFAULT partition */
	assert_int_equal(dc_store_failure(st, "mime", "part test", NULL, 0, &err), DC_OK);
	if (store_report(st, &late, NULL, recs, 300, &err) != DC_OK)
		fail_msg("store late: %s", err.msg);
	if (dc_store_batch_commit(st, NULL, NULL, &err) != DC_OK)
		fail_msg("commit batch: %s", err.msg);
	assert_string_equal(
		q(where_sql, "r-part-batch", NULL), "dmarc.reports_2018_05|dmarc.records_2018_05");
	assert_string_equal(q(where_sql, "r-part-late", NULL), "dmarc.reports_default|dmarc.records_default");
	snprintf(lid, sizeof(lid), "%s",
		q("SELECT id FROM dmarc.reports WHERE report_id = 'r-part-late'", NULL, NULL));
	snprintf(before, sizeof(before), "%s", q(rows_sql, lid, NULL));
	/* the next maintenance moves it into its month, values intact */
	if (dc_store_partitions(st, &err) != DC_OK)
		fail_msg("partitions: %s", err.msg);
	assert_string_equal(q(where_sql, "r-part-late", NULL), "dmarc.reports_2017_07|dmarc.records_2017_07");
	assert_string_equal(q(rows_sql, lid, NULL), before);
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.records r JOIN dmarc.reports p ON p.id = r.report_id"
		  " WHERE p.report_id = 'r-part-late'",
			NULL, NULL),
		"300");
	/* a writer in the middle of a report holds the tables: creating a
	 * month waits at most a moment, then its rows go to DEFAULT */
	x("BEGIN");
	x("LOCK TABLE dmarc.records IN ROW EXCLUSIVE MODE");
	late.report_id = "r-part-busy";
	late.date_begin = 1455000000; /* 2016-02-09 */
	late.date_end = late.date_begin + 86399;
	if (store_report(st, &late, NULL, recs, 3, &err) != DC_OK)
		fail_msg("store busy: %s", err.msg);
	x("COMMIT");
	assert_string_equal(q(where_sql, "r-part-busy", NULL), "dmarc.reports_default|dmarc.records_default");
	if (dc_store_partitions(st, &err) != DC_OK)
		fail_msg("partitions: %s", err.msg);
	assert_string_equal(q(where_sql, "r-part-busy", NULL), "dmarc.reports_2016_02|dmarc.records_2016_02");
	res = PQexec(chk, "SELECT 1 FROM dmarc.records_default");
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(res), 0);
	PQclear(res);
	dc_store_free(st);
}

/* ---- abort after more than one chunk ----------------------------------- */

static void
test_abort_large(void **state)
{
	dc_store *st = open_store();
	dc_extract_cb cb = dc_store_callbacks(st);
	dc_report r = mk_report("abort.example", "r-abort");
	dc_record rec = mk_record(0, "198.51.100.9");
	dc_err err = { 0 };
	const char *before = NULL;
	char n_before[32], pid[16];
	PGresult *res;
	int processed = -1;

	snprintf(n_before, sizeof(n_before), "%s", q("SELECT count(*) FROM dmarc.dkim_results", NULL, NULL));
	assert_int_equal(cb.sink.report_begin(cb.sink.ctx, &r, NULL, &err), DC_OK);
	for (uint64_t i = 1; i <= 10000; i++) {
		rec.ordinal = i;
		if (cb.sink.record(cb.sink.ctx, &r, &rec, &err) != DC_OK)
			fail_msg("record %llu: %s", (unsigned long long)i, err.msg);
	}
	/* two full chunks have been sent: the first by a COPY that ended when
	 * the record ids ran out, the second into a COPY that stays open (the
	 * server stores it while the next records are parsed): its progress */
	snprintf(pid, sizeof(pid), "%d", PQbackendPID(dc_store_conn(st)));
	for (int tries = 0;; tries++) {
		res = PQexecParams(chk,
			"SELECT tuples_processed FROM pg_stat_progress_copy WHERE pid = $1::int", 1, NULL,
			(const char *const[]){ pid }, NULL, NULL, 0);
		assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
		processed = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : -1;
		PQclear(res);
		if (processed >= 4096 || tries == 1000)
			break;
		usleep(10000);
	}
	if (processed < 4096)
		fail_msg("the open COPY has processed %d rows, want 4096", processed);
	cb.sink.report_abort(cb.sink.ctx);

	assert_string_equal(
		q("SELECT count(*) FROM dmarc.reports WHERE policy_domain = 'abort.example'", NULL, NULL),
		"0");
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.records WHERE policy_domain = 'abort.example'", NULL, NULL),
		"0");
	before = q("SELECT count(*) FROM dmarc.dkim_results", NULL, NULL);
	assert_string_equal(before, n_before);
	/* the connection is usable afterwards */
	rec.ordinal = 1;
	assert_int_equal(store_report(st, &r, NULL, &rec, 1, &err), DC_OK);
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.records WHERE policy_domain = 'abort.example'", NULL, NULL),
		"1");
	dc_store_free(st);
}

/* ---- bad input rejected before the server sees it --------------------- */

static void
test_bad_input(void **state)
{
	dc_store *st = open_store();
	dc_report r = mk_report("bad.example", "r-bad");
	dc_record recs[12];
	dc_err err = { 0 };

	for (int i = 0; i < 12; i++)
		recs[i] = mk_record((uint64_t)i + 1, "203.0.113.5");
	recs[11].source_ip = "300.1.2.3";
	assert_int_equal(store_report(st, &r, NULL, recs, 12, &err), DC_ESCHEMA);
	assert_string_equal(err.msg, "record 12: source_ip '300.1.2.3' is not an IP address");
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.reports WHERE policy_domain = 'bad.example'", NULL, NULL), "0");
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.records WHERE policy_domain = 'bad.example'", NULL, NULL), "0");

	recs[11].source_ip = "192.0.2.0/24";
	assert_int_equal(store_report(st, &r, NULL, recs, 12, &err), DC_ESCHEMA);
	recs[11].source_ip = "203.0.113.5";
	recs[11].header_from = "bad\xc3\x28utf8";
	assert_int_equal(store_report(st, &r, NULL, recs, 12, &err), DC_ESCHEMA);
	assert_string_equal(err.msg, "record 12: header_from is not valid UTF-8");
	recs[11].header_from = "ok.example";
	r.date_end = (int64_t)1 << 60;
	assert_int_equal(store_report(st, &r, NULL, recs, 12, &err), DC_ESCHEMA);
	r.date_end = 1700086399;
	r.org_name = "\xed\xa0\x80"; /* a UTF-16 surrogate encoded in UTF-8 */
	assert_int_equal(store_report(st, &r, NULL, recs, 12, &err), DC_ESCHEMA);
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.reports WHERE policy_domain = 'bad.example'", NULL, NULL), "0");
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.records WHERE policy_domain = 'bad.example'", NULL, NULL), "0");
	/* and the same report, corrected, is stored */
	r.org_name = "Test Org";
	assert_int_equal(store_report(st, &r, NULL, recs, 12, &err), DC_OK);
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.records WHERE policy_domain = 'bad.example'", NULL, NULL),
		"12");

	/* an empty <source_ip/> (blanks only) gives no address: stored as NULL, like an absent one */
	r = mk_report("empty-ip.example", "r-empty-ip");
	recs[0].source_ip = " ";
	assert_int_equal(store_report(st, &r, NULL, recs, 1, &err), DC_OK);
	assert_string_equal(q("SELECT count(*) FROM dmarc.records WHERE policy_domain = 'empty-ip.example'"
			      " AND source_ip IS NULL",
				    NULL, NULL),
		"1");
	dc_store_free(st);
}

/* ---- failures --------------------------------------------------------- */

static void
test_failure(void **state)
{
	dc_store *st = open_store();
	dc_extract_cb cb = dc_store_callbacks(st);
	static const uint8_t bytes[] = { 0, 1, 2, 0xff, 0xfe, '\\', '\n', 'x', 0 };
	dc_origin o = {
		.mailbox = "rua", .uidvalidity = 99, .uid = 1234, .message_id = "<f@x>", .file_name = NULL
	};
	dc_err why, err = { 0 };
	dc_blob unit = { .data = bytes, .len = 5, .name = "att.zip" };

	assert_int_equal(dc_store_set_origin(st, &o, &err), DC_OK);
	assert_int_equal(
		dc_store_failure(st, "mime", "no aggregate report found", bytes, sizeof(bytes), &err), DC_OK);
	assert_string_equal(
		q("SELECT concat_ws('|', mailbox, uidvalidity, uid, message_id, coalesce(file_name, 'NULL'),"
		  " stage, reason, encode(dmarc.failure_content(f), 'hex'), sha256 = sha256(dmarc.failure_content(f)),"
		  " failed_at <= now(), content IS NULL)"
		  " FROM dmarc.failures f WHERE uid = 1234 AND stage = 'mime'",
			NULL, NULL),
		"rua|99|1234|<f@x>|NULL|mime|no aggregate report found|000102fffe5c0a7800|t|t|t");

	/* through dc_extract's failure callback: the unit's bytes and name; a
	 * reason quoting invalid UTF-8 is still recorded */
	dc_err_set(&why, DC_EXML, "line 3: bad byte \xff here");
	assert_int_equal(cb.failure(cb.failure_ctx, "xml", &why, &unit, &err), DC_OK);
	assert_string_equal(
		q("SELECT concat_ws('|', file_name, stage, reason, encode(dmarc.failure_content(f), 'hex'))"
		  " FROM dmarc.failures f WHERE uid = 1234 AND stage = 'xml'",
			NULL, NULL),
		"att.zip|xml|line 3: bad byte ? here|000102fffe");
	/* the same unit failing again (another member of it): a second row,
	 * the bytes still stored once (issue 9) */
	assert_int_equal(cb.failure(cb.failure_ctx, "unpack", &why, &unit, &err), DC_OK);
	assert_string_equal(
		q("SELECT concat_ws('|', count(*), count(DISTINCT f.original_id),"
		  " (SELECT count(*) FROM dmarc.originals o WHERE o.content = '\\x000102fffe'::bytea))"
		  " FROM dmarc.failures f WHERE uid = 1234 AND stage IN ('xml', 'unpack')",
			NULL, NULL),
		"2|1|1");
	assert_string_equal(
		q("SELECT concat_ws('|', content_bytes, sha256 = encode(sha256('\\x000102fffe'::bytea), 'hex'))"
		  " FROM dmarc.failure_list WHERE uid = 1234 AND stage = 'unpack'",
			NULL, NULL),
		"5|t");
	dc_store_free(st);
}

/* ---- classification (SPEC section 6) ----------------------------------- */

static void
test_classification(void **state)
{
	dc_store *st = open_store();
	dc_report r = mk_report("class.example", "r-class");
	static const dc_spf_result spf_ptr3[] = { { "MAIL3.Class.Example.", "mfrom", "pass", NULL } };
	static const dc_spf_result spf_ptr5[] = { { "mx5.class.example", "mfrom", "pass", NULL } };
	static const struct {
		const char *ip, *envelope_from, *dkim_aligned;
		const dc_spf_result *spf;
		int64_t count;
		const char *expect; /* server_generated_reason, or NULL */
	} rows[] = {
		/* 1 */ { "10.1.0.1", "<>", "fail", one_spf, 3, "null_sender" },
		/* 2 */ { "10.1.0.1", "", "pass", one_spf, 4, "null_sender" },
		/* 3 */ { "10.1.0.2", NULL, "pass", helo_spf, 5, "spf_helo_scope" },
		/* 4 */ { "10.1.0.3", NULL, "fail", spf_ptr3, 6, "spf_domain_is_ptr" },
		/* 5 */ { "10.1.0.4", "Mx4.Class.Example", "fail", one_spf, 7, "envelope_from_is_ptr" },
		/* 6: PTR matches the SPF domain but is not forward-confirmed */
		{ "10.1.0.5", NULL, "fail", spf_ptr5, 8, NULL },
		/* 7: PTR matches envelope_from but is not forward-confirmed */
		{ "10.1.0.5", "mx5.class.example", "fail", one_spf, 9, NULL },
		/* 8: absent envelope_from is no evidence */
		{ "10.1.0.6", NULL, "fail", one_spf, 10, NULL },
		/* 9: the first rule wins: null sender that also has helo scope */
		{ "10.1.0.2", "<>", "pass", helo_spf, 11, "null_sender" },
		/* 10: regular mail from a server-generated source, no DKIM */
		{ "10.1.0.2", "bounce.example.com", "fail", one_spf, 12, NULL },
	};
	dc_record recs[sizeof(rows) / sizeof(rows[0])];
	dc_err err = { 0 };
	char rid[32];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		recs[i] = mk_record(i + 1, rows[i].ip);
		recs[i].envelope_from = rows[i].envelope_from;
		recs[i].dkim_aligned = rows[i].dkim_aligned;
		recs[i].spf = rows[i].spf;
		recs[i].message_count = rows[i].count;
		recs[i].header_from = "Class.Example";
	}
	if (store_report(st, &r, NULL, recs, sizeof(rows) / sizeof(rows[0]), &err) != DC_OK)
		fail_msg("store: %s", err.msg);
	x("INSERT INTO dmarc.ip_names (ip, ptr, ptr_base_domain, forward_confirmed, status) VALUES"
	  " ('10.1.0.3', 'mail3.class.example', 'class.example', true, 'ok'),"
	  " ('10.1.0.4', 'mx4.class.example.', 'class.example', true, 'ok'),"
	  " ('10.1.0.5', 'mx5.class.example', 'class.example', false, 'ok')");
	snprintf(rid, sizeof(rid), "%s",
		q("SELECT id FROM dmarc.reports WHERE policy_domain = 'class.example'", NULL, NULL));

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char ord[8];
		snprintf(ord, sizeof(ord), "%zu", i + 1);
		q("SELECT concat_ws('|', server_generated, coalesce(server_generated_reason, 'NULL'))"
		  " FROM dmarc.record_details WHERE report_id = $1 AND ordinal = $2",
			rid, ord);
		char want[64];
		snprintf(want, sizeof(want), "%s|%s", rows[i].expect ? "t" : "f",
			rows[i].expect ? rows[i].expect : "NULL");
		if (strcmp(qbuf, want) != 0)
			fail_msg("record %zu: got %s, want %s", i + 1, qbuf, want);
	}
	/* ptr only when forward-confirmed; the raw name stays visible */
	assert_string_equal(q("SELECT concat_ws('|', coalesce(ptr, 'NULL'), ptr_raw, forward_confirmed)"
			      " FROM dmarc.record_details WHERE report_id = $1 AND ordinal = 6",
				    rid, NULL),
		"NULL|mx5.class.example|f");
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.server_generated_mail WHERE report_id = $1", rid, NULL), "6");
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.regular_mail WHERE report_id = $1", rid, NULL), "4");

	/* sources: 10.1.0.1 has one unaligned message batch -> needs DKIM; 10.1.0.2's
	 * server-generated mail is all DKIM-aligned (its regular mail is not counted) */
	assert_string_equal(
		q("SELECT string_agg(concat_ws(',', host(source_ip), coalesce(ptr, 'NULL'), header_from,"
		  " messages, dkim_aligned_messages, dmarc_pass_messages, array_to_string(reasons, '+'), needs_dkim,"
		  " first_seen = to_timestamp(1700000000), last_seen = to_timestamp(1700086399)), ';' ORDER BY source_ip)"
		  " FROM dmarc.server_generated_sources WHERE header_from = 'class.example'",
			NULL, NULL),
		"10.1.0.1,NULL,class.example,7,4,4,null_sender,t,t,t;"
		"10.1.0.2,NULL,class.example,16,16,16,null_sender+spf_helo_scope,f,t,t;"
		"10.1.0.3,mail3.class.example,class.example,6,0,0,spf_domain_is_ptr,t,t,t;"
		"10.1.0.4,mx4.class.example.,class.example,7,0,0,envelope_from_is_ptr,t,t,t");
	/* the classification follows the data: unconfirm a PTR and rule 3 stops */
	x("UPDATE dmarc.ip_names SET forward_confirmed = false WHERE ip = '10.1.0.3'");
	assert_string_equal(q("SELECT coalesce(server_generated_reason, 'NULL') FROM dmarc.record_details"
			      " WHERE report_id = $1 AND ordinal = 4",
				    rid, NULL),
		"NULL");
	dc_store_free(st);
}

/* ---- concurrent duplicates -------------------------------------------- */

typedef struct begin_job {
	dc_store *st;
	const dc_report *r;
	dc_code rc;
	dc_err err;
	int done; /* set (atomically) when report_begin returned */
} begin_job;

static void *
begin_thread(void *arg)
{
	begin_job *j = arg;
	dc_extract_cb cb = dc_store_callbacks(j->st);

	j->rc = cb.sink.report_begin(cb.sink.ctx, j->r, NULL, &j->err);
	__atomic_store_n(&j->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Waits (no time limit: the test runner has one) until the job's backend
 * waits on a lock; fails when the job finished without waiting. */
static void
wait_for_lock_wait(begin_job *job)
{
	char p[16];

	snprintf(p, sizeof(p), "%d", PQbackendPID(dc_store_conn(job->st)));
	while (strcmp(q("SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
			      p, NULL),
		       "1") != 0) {
		if (__atomic_load_n(&job->done, __ATOMIC_SEQ_CST))
			fail_msg("the second writer did not wait for the first (rc %d: %s)", job->rc,
				job->err.msg);
		usleep(10000);
	}
}

/* Writer 1 holds the new report uncommitted; writer 2 blocks on the unique
 * key.  When 1 commits, 2 sees a duplicate; when 1 aborts, 2 stores it. */
static void
test_concurrent_duplicate(void **state)
{
	dc_store *s1 = open_store(), *s2 = open_store();
	dc_extract_cb c1 = dc_store_callbacks(s1), c2 = dc_store_callbacks(s2);
	dc_report r = mk_report("conc.example", "r-conc");
	dc_record rec = mk_record(1, "192.0.2.44");
	begin_job job = { .st = s2, .r = &r };
	pthread_t t;
	dc_err err = { 0 };

	/* commit first: the second writer sees the duplicate */
	assert_int_equal(c1.sink.report_begin(c1.sink.ctx, &r, NULL, &err), DC_OK);
	assert_int_equal(c1.sink.record(c1.sink.ctx, &r, &rec, &err), DC_OK);
	job.done = 0;
	assert_int_equal(pthread_create(&t, NULL, begin_thread, &job), 0);
	wait_for_lock_wait(&job);
	assert_int_equal(c1.sink.report_end(c1.sink.ctx, &r, &err), DC_OK);
	pthread_join(t, NULL);
	assert_int_equal(job.rc, DC_SKIP);
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.reports WHERE policy_domain = 'conc.example'", NULL, NULL),
		"1");

	/* abort first: the second writer stores it */
	r.report_id = "r-conc-2";
	assert_int_equal(c1.sink.report_begin(c1.sink.ctx, &r, NULL, &err), DC_OK);
	job.done = 0;
	assert_int_equal(pthread_create(&t, NULL, begin_thread, &job), 0);
	wait_for_lock_wait(&job);
	c1.sink.report_abort(c1.sink.ctx);
	pthread_join(t, NULL);
	assert_int_equal(job.rc, DC_OK);
	assert_int_equal(c2.sink.record(c2.sink.ctx, &r, &rec, &err), DC_OK);
	assert_int_equal(c2.sink.report_end(c2.sink.ctx, &r, &err), DC_OK);
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.reports WHERE policy_domain = 'conc.example'", NULL, NULL),
		"2");
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.records WHERE policy_domain = 'conc.example'", NULL, NULL),
		"2");
	dc_store_free(s1);
	dc_store_free(s2);
}

/* ---- reparse ---------------------------------------------------------- */

static uint8_t *
slurp(const char *rel, size_t *len)
{
	char path[1024];
	FILE *f;
	uint8_t *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", DC_TEST_DATA, rel);
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Everything stored from originals, ids left out, as one digest. */
static const char snapshot_sql[] =
	"SELECT count(*) || ':' || md5(string_agg(row_text, E'\\n' ORDER BY row_text)) FROM ("
	" SELECT concat_ws('|', r.org_name, r.report_id, r.policy_domain, r.date_begin, r.date_end, r.policy_p,"
	"  r.errors, r.record_count, r.message_total, r.mailbox, r.uid, r.message_id, r.file_name, r.original_id,"
	"  r.original_path, r.ingested_at, rec.ordinal, rec.source_ip, rec.message_count, rec.disposition,"
	"  rec.dkim_aligned, rec.spf_aligned, rec.header_from, coalesce(rec.envelope_from, '<absent>'),"
	"  rec.envelope_to, rec.reasons,"
	"  (SELECT string_agg(concat_ws(',', d.ordinal, d.domain, d.selector, d.result, d.human_result), ';'"
	"    ORDER BY d.ordinal) FROM dmarc.dkim_results d WHERE d.record_id = rec.id),"
	"  (SELECT string_agg(concat_ws(',', s.ordinal, s.domain, s.scope, s.result, s.human_result), ';'"
	"    ORDER BY s.ordinal) FROM dmarc.spf_results s WHERE s.record_id = rec.id)) AS row_text"
	" FROM dmarc.reports r JOIN dmarc.records rec ON rec.report_id = r.id"
	" WHERE r.original_id IS NOT NULL AND r.policy_domain <> 'whole.example') t";

static void
test_reparse(void **state)
{
	static const char *files[] = {
		"corpus/domainaware+parsedmarc/samples/extract_report/nice-input.xml.zip",
		"corpus/domainaware+parsedmarc/samples/aggregate/zoho.com!example.com!1581753600!1581840000.xml",
	};
	dc_store *st = open_store();
	dc_extract_cb cb = dc_store_callbacks(st);
	dc_extract_stats stats = { 0 }, again = { 0 };
	dc_limits lim;
	dc_err err = { 0 };
	dc_origin o = { .mailbox = "rua", .uidvalidity = 5, .uid = 77, .message_id = "<reparse@x>" };
	char before[128], ids_before[256];

	dc_limits_default(&lim);
	assert_int_equal(dc_store_set_origin(st, &o, &err), DC_OK);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		size_t len;
		uint8_t *data = slurp(files[i], &len);
		if (dc_extract(data, len, files[i], &lim, &cb, &stats, &err) != DC_OK)
			fail_msg("extract %s: %s", files[i], err.msg);
		free(data);
	}
	assert_int_equal(stats.reports, 2);
	assert_int_equal(stats.records, 28);
	snprintf(before, sizeof(before), "%s", q(snapshot_sql, NULL, NULL));
	assert_string_equal(q("SELECT split_part($1, ':', 1)", before, NULL), "28");
	snprintf(ids_before, sizeof(ids_before), "%s",
		q("SELECT string_agg(id::text, ',' ORDER BY id) FROM dmarc.reports WHERE original_id IS NOT NULL",
			NULL, NULL));

	/* another origin now must not leak into the reparsed rows */
	o.mailbox = "other";
	o.uid = 1;
	assert_int_equal(dc_store_set_origin(st, &o, &err), DC_OK);
	if (dc_store_reparse(st, &lim, &again, &err) != DC_OK)
		fail_msg("reparse: %s", err.msg);
	assert_int_equal(again.reports, 2);
	assert_int_equal(again.records, 28);
	assert_string_equal(q(snapshot_sql, NULL, NULL), before);
	/* the rows were replaced, not left alone */
	assert_string_not_equal(q("SELECT string_agg(id::text, ',' ORDER BY id) FROM dmarc.reports"
				  " WHERE original_id IS NOT NULL",
					NULL, NULL),
		ids_before);
	/* test_store_whole's "original" is not a report at all: now that it is
	 * parsed, its report goes and a failure with its bytes and old origin
	 * is recorded */
	assert_int_equal(again.failures, 1);
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.reports WHERE policy_domain = 'whole.example'", NULL, NULL),
		"0");
	assert_string_equal(q("SELECT concat_ws('|', mailbox, uid, message_id) FROM dmarc.failures f"
			      " WHERE dmarc.failure_content(f) = '\\x504b030400ff800a00'::bytea",
				    NULL, NULL),
		"rua|42|<m1@x>");
	/* reports without an original (synthetic ones above) are untouched */
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.reports WHERE policy_domain = 'dup.example'", NULL, NULL), "2");
	/* a second reparse changes nothing */
	again = (dc_extract_stats){ 0 };
	if (dc_store_reparse(st, &lim, &again, &err) != DC_OK)
		fail_msg("reparse: %s", err.msg);
	assert_int_equal(again.reports, 2);
	/* the failed original is referred to by its failure row only now: not
	 * parsed again (no second failure row for it) */
	assert_int_equal(again.failures, 0);
	assert_string_equal(q(snapshot_sql, NULL, NULL), before);
	dc_store_free(st);
}

/* ---- the server goes away --------------------------------------------- */

/* The backend is killed mid-report: DC_EDB, and nothing of it remains. */
static void
test_connection_lost(void **state)
{
	dc_store *st = open_store();
	dc_extract_cb cb = dc_store_callbacks(st);
	dc_report r = mk_report("lost.example", "r-lost");
	dc_record rec = mk_record(1, "192.0.2.99");
	dc_err err = { 0 };
	char pid[16];
	dc_code rc = DC_OK;

	assert_int_equal(cb.sink.report_begin(cb.sink.ctx, &r, NULL, &err), DC_OK);
	snprintf(pid, sizeof(pid), "%d", PQbackendPID(dc_store_conn(st)));
	assert_string_equal(q("SELECT pg_terminate_backend($1::int)", pid, NULL), "t");
	for (uint64_t i = 1; i <= 5000 && rc == DC_OK; i++) {
		rec.ordinal = i;
		rc = cb.sink.record(cb.sink.ctx, &r, &rec, &err);
	}
	if (rc == DC_OK)
		rc = cb.sink.report_end(cb.sink.ctx, &r, &err);
	assert_int_equal(rc, DC_EDB);
	cb.sink.report_abort(cb.sink.ctx);
	assert_string_equal(
		q("SELECT count(*) FROM dmarc.reports WHERE policy_domain = 'lost.example'", NULL, NULL),
		"0");
	/* and later calls keep failing cleanly */
	assert_int_equal(dc_store_failure(st, "store", "x", NULL, 0, &err), DC_EDB);
	dc_store_free(st);
}

/* The server is stopped mid-report (DC_TEST_PG_STOP runs the stop). */
static void
test_server_stopped(void **state)
{
	const char *stop = getenv("DC_TEST_PG_STOP");
	dc_store *st = open_store();
	dc_extract_cb cb = dc_store_callbacks(st);
	dc_report r = mk_report("stopped.example", "r-stopped");
	dc_record rec = mk_record(1, "192.0.2.98");
	dc_err err = { 0 };
	dc_store *again = NULL;

	if (stop == NULL)
		fail_msg("DC_TEST_PG_STOP is not set (run through store.sh)");
	assert_int_equal(cb.sink.report_begin(cb.sink.ctx, &r, NULL, &err), DC_OK);
	assert_int_equal(cb.sink.record(cb.sink.ctx, &r, &rec, &err), DC_OK);
	PQfinish(chk);
	chk = NULL;
	assert_int_equal(system(stop), 0);
	assert_int_equal(cb.sink.report_end(cb.sink.ctx, &r, &err), DC_EDB);
	cb.sink.report_abort(cb.sink.ctx);
	assert_int_equal(dc_store_open(NULL, NULL, &again, &err), DC_EDB);
	assert_null(again);
	dc_store_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate),
		cmocka_unit_test(test_store_whole),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_paths_agree),
		cmocka_unit_test(test_auth_roundtrip),
		cmocka_unit_test(test_partition_month),
		cmocka_unit_test(test_abort_large),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_failure),
		cmocka_unit_test(test_classification),
		cmocka_unit_test(test_concurrent_duplicate),
		cmocka_unit_test(test_reparse),
		cmocka_unit_test(test_connection_lost),
		cmocka_unit_test(test_server_stopped),
	};
	int rc;

	chk = PQconnectdb("");
	if (PQstatus(chk) != CONNECTION_OK) {
		fprintf(stderr, "test_store: cannot connect: %s", PQerrorMessage(chk));
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	if (chk)
		PQfinish(chk);
	return rc;
}
