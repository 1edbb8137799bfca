/*
 * resolve_bench.c - times dc_resolve_run over every source IP in the
 * database, once per concurrency level given on the command line, emptying
 * dmarc.ip_names before each run.  Built and run by bench/resolve.sh.
 *
 *   resolve_bench [--asn-db FILE] [--country-db FILE] [--keep]
 *                 CONNINFO SERVERS TIMEOUT_MS INFLIGHT...
 *
 * --asn-db and --country-db are [enrich] asn_db and country_db; --keep keeps
 * dmarc.ip_names, so a run with files of another build epoch times the
 * re-enrichment pass alone (no IP is due for DNS).
 *
 * Prints one line per level: in flight, IPs, named, confirmed, timeouts,
 * retries (tries that timed out), UDP receive-buffer drops on the machine,
 * IPs enriched (looked up in the files), DNS seconds (the lookups) and total
 * seconds (with reading, storing and enriching).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dc_resolve.h"
#include "dc_store.h"
#include "dc_store_int.h" /* dc_store_conn: resolve's own tables */

/* UDP datagrams the kernel dropped for a full receive buffer, all sockets. */
static long long
rcvbuf_errors(void)
{
	char line[1024], vals[1024];
	long long v = -1;
	FILE *f = fopen("/proc/net/snmp", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "Udp: InDatagrams", 16) != 0 || !fgets(vals, sizeof vals, f))
			continue;
		/* RcvbufErrors is the fifth counter. */
		long long c[5];
		if (sscanf(vals, "Udp: %lld %lld %lld %lld %lld", &c[0], &c[1], &c[2], &c[3], &c[4]) == 5)
			v = c[4];
		break;
	}
	fclose(f);
	return v;
}

static double
now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	dc_err err;
	dc_store *st = NULL;
	int status = 1;

	const char *asn_db = NULL, *country_db = NULL;
	int keep = 0, o = 1;

	for (; o < argc && strncmp(argv[o], "--", 2) == 0; o++) {
		if (strcmp(argv[o], "--keep") == 0)
			keep = 1;
		else if (strcmp(argv[o], "--asn-db") == 0 && o + 1 < argc)
			asn_db = argv[++o];
		else if (strcmp(argv[o], "--country-db") == 0 && o + 1 < argc)
			country_db = argv[++o];
		else
			break;
	}
	argc -= o - 1;
	argv += o - 1;
	if (argc < 5) {
		fprintf(stderr,
			"usage: resolve_bench [--asn-db FILE] [--country-db FILE] [--keep] "
			"CONNINFO SERVERS TIMEOUT_MS INFLIGHT...\n");
		return 2;
	}
	dc_err_clear(&err);
	if (dc_store_open(argv[1], NULL, &st, &err) != DC_OK) {
		fprintf(stderr, "resolve_bench: %s\n", dc_err_text(&err));
		return 1;
	}
	PGconn *conn = dc_store_conn(st);
	printf("%-9s %7s %7s %9s %7s %7s %7s %8s %9s %9s %10s\n", "inflight", "ips", "named", "confirmed",
		"timeout", "retries", "drops", "enriched", "dns_s", "total_s", "ips_per_s");
	for (int a = 4; a < argc; a++) {
		if (!keep) {
			PGresult *r = PQexec(conn, "TRUNCATE dmarc.ip_names");
			if (PQresultStatus(r) != PGRES_COMMAND_OK) {
				fprintf(stderr, "resolve_bench: %s", PQresultErrorMessage(r));
				PQclear(r);
				goto out;
			}
			PQclear(r);
		}
		dc_resolve_opts opts;
		dc_resolve_stats stats;
		dc_resolve_opts_default(&opts);
		memset(&stats, 0, sizeof stats);
		opts.dns.servers = argv[2];
		opts.dns.timeout_ms = atoi(argv[3]);
		opts.dns.max_inflight = atoi(argv[a]);
		opts.asn_db = asn_db;
		opts.country_db = country_db;
		long long d0 = rcvbuf_errors();
		double t0 = now_seconds();
		if (dc_resolve_run(st, &opts, &stats, &err) != DC_OK) {
			fprintf(stderr, "resolve_bench: %s\n", dc_err_text(&err));
			goto out;
		}
		double t = now_seconds() - t0;
		long long d1 = rcvbuf_errors();
		printf("%-9d %7llu %7llu %9llu %7llu %7llu %7lld %8llu %9.3f %9.3f %10.0f\n",
			opts.dns.max_inflight, (unsigned long long)stats.ips, (unsigned long long)stats.ok,
			(unsigned long long)stats.confirmed, (unsigned long long)stats.timeout,
			(unsigned long long)stats.retries, d0 >= 0 && d1 >= 0 ? d1 - d0 : -1,
			(unsigned long long)stats.enriched, stats.seconds, t, (double)stats.ips / t);
		fflush(stdout);
	}
	status = 0;
out:
	dc_store_free(st);
	return status;
}
