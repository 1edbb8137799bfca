/*
 * test_store_bench.c - COPY throughput of the storing sink, for
 * bench/store_copy.sh (not a test case: ctest does not run it).
 *
 *   test_store_bench sink REPORTS RECORDS_PER_REPORT
 *       migrates the database named by PG* and writes the synthetic records
 *       through dc_store_callbacks(); prints "records seconds cpu_seconds"
 *       (cpu: this process's user+system time, i.e. the client side).
 *   test_store_bench files REPORTS RECORDS_PER_REPORT DIR
 *       writes the same rows as COPY text files DIR/reports.sql (INSERTs) and
 *       DIR/records.copy (dmarc.records' columns in the writer's order,
 *       STORE_RECORD_COLUMNS) for psql's \copy.
 *
 * Every record has one DKIM and one SPF result (in the record's row).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "dc_store.h"

/* Field values of record i (0-based, over all reports). */
static void
values(uint64_t i, char ip[32], char hf[64], char ef[64], char dd[64], char sel[16], const char **dres,
	const char **sres, const char **scope)
{
	snprintf(ip, 32, "10.%u.%u.%u", (unsigned)(i >> 16) & 255, (unsigned)(i >> 8) & 255,
		(unsigned)i & 255);
	snprintf(hf, 64, "d%" PRIu64 ".example.com", i % 1000);
	snprintf(ef, 64, "bounce.d%" PRIu64 ".example.com", i % 1000);
	snprintf(dd, 64, "d%" PRIu64 ".example.com", i % 1000);
	snprintf(sel, 16, "s%" PRIu64, i % 7);
	*dres = i % 5 ? "pass" : "fail";
	*sres = i % 3 ? "pass" : "softfail";
	*scope = i % 11 ? "mfrom" : "helo";
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static dc_report
report(unsigned r, char rid[32])
{
	snprintf(rid, 32, "bench-%u", r);
	return (dc_report){
		.org_name = "Bench Org",
		.report_id = rid,
		.policy_domain = "bench.example",
		.date_begin = 1700000000 + (int64_t)r * 86400,
		.date_end = 1700086399 + (int64_t)r * 86400,
		.policy_p = "none",
		.policy_pct = -1,
	};
}

static int
run_sink(unsigned reports, unsigned per)
{
	dc_store *st = NULL;
	dc_err err = { 0 };
	int applied;
	double t0, t1;
	uint64_t i = 0;

	if (dc_store_open(NULL, NULL, &st, &err) != DC_OK || dc_store_migrate(st, &applied, &err) != DC_OK) {
		fprintf(stderr, "bench: %s\n", err.msg);
		dc_store_free(st);
		return 1;
	}
	dc_extract_cb cb = dc_store_callbacks(st);
	t0 = now();
	for (unsigned r = 0; r < reports; r++) {
		char rid[32];
		dc_report rep = report(r, rid);
		if (cb.sink.report_begin(cb.sink.ctx, &rep, NULL, &err) != DC_OK)
			goto fail;
		for (unsigned k = 0; k < per; k++, i++) {
			char ip[32], hf[64], ef[64], dd[64], sel[16];
			const char *dres, *sres, *scope;
			values(i, ip, hf, ef, dd, sel, &dres, &sres, &scope);
			dc_dkim_result dk = { dd, sel, dres, NULL };
			dc_spf_result sp = { ef, scope, sres, NULL };
			dc_record rec = {
				.ordinal = k + 1,
				.source_ip = ip,
				.message_count = 1 + (int64_t)(i % 13),
				.disposition = "none",
				.dkim_aligned = dres,
				.spf_aligned = "fail",
				.header_from = hf,
				.envelope_from = ef,
				.dkim = &dk,
				.n_dkim = 1,
				.spf = &sp,
				.n_spf = 1,
			};
			if (cb.sink.record(cb.sink.ctx, &rep, &rec, &err) != DC_OK)
				goto fail;
		}
		if (cb.sink.report_end(cb.sink.ctx, &rep, &err) != DC_OK)
			goto fail;
	}
	t1 = now();
	{
		/* the client's own CPU time: what the sink costs apart from the server */
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		printf("%" PRIu64 " %.3f %.3f\n", i, t1 - t0,
			(double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
				ru.ru_stime.tv_usec / 1e6);
	}
	dc_store_free(st);
	return 0;
fail:
	fprintf(stderr, "bench: %s\n", err.msg);
	cb.sink.report_abort(cb.sink.ctx);
	dc_store_free(st);
	return 1;
}

static int
run_files(unsigned reports, unsigned per, const char *dir)
{
	char path[4096];
	FILE *fr, *fp;
	uint64_t i = 0;

	snprintf(path, sizeof(path), "%s/reports.sql", dir);
	fp = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/records.copy", dir);
	fr = fopen(path, "w");
	if (!fp || !fr) {
		perror("bench: open");
		return 1;
	}
	for (unsigned r = 0; r < reports; r++) {
		char rid[32];
		dc_report rep = report(r, rid);
		fprintf(fp,
			"INSERT INTO dmarc.reports (id, org_name, report_id, policy_domain, date_begin, date_end,"
			" policy_p, record_count) OVERRIDING SYSTEM VALUE VALUES (%u, '%s', '%s', '%s', to_timestamp(%" PRId64
			"), to_timestamp(%" PRId64 "), 'none', %u);\n",
			r + 1, rep.org_name, rep.report_id, rep.policy_domain, rep.date_begin, rep.date_end,
			per);
		struct tm tm;
		time_t tt = (time_t)rep.date_begin;
		char begin[64];
		gmtime_r(&tt, &tm);
		strftime(begin, sizeof(begin), "%Y-%m-%d %H:%M:%S+00", &tm);
		for (unsigned k = 0; k < per; k++, i++) {
			char ip[32], hf[64], ef[64], dd[64], sel[16];
			const char *dres, *sres, *scope;
			values(i, ip, hf, ef, dd, sel, &dres, &sres, &scope);
			fprintf(fr,
				"%" PRIu64 "\t%u\t%s\tbench.example\t%u\t%s\t%" PRId64
				"\tnone\t%s\tfail\t%s\t%s\t\\N\t\\N\t1\t1\t%s\t%s\t%s\t\\N\t%s\t%s\t%s"
				"\t\\N\t\\N\t\\N\n",
				i + 1, r + 1, begin, k + 1, ip, 1 + (int64_t)(i % 13), dres, hf, ef, dd, sel,
				dres, ef, scope, sres);
		}
	}
	fclose(fp);
	fclose(fr);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "sink") == 0)
		return run_sink((unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]));
	if (argc == 5 && strcmp(argv[1], "files") == 0)
		return run_files((unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]), argv[4]);
	fprintf(stderr, "usage: test_store_bench sink REPORTS PER | files REPORTS PER DIR\n");
	return 2;
}
