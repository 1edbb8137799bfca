/*
 * test_ingest.c - drives collector/dc_ingest directly, without the program:
 * what a test (or another front end) needs to poll one mailbox.  Run by
 * imap_ingest.sh against a real Dovecot and PostgreSQL:
 *
 *   test_ingest CONFIG run    one poll of the first mailbox; prints
 *                             "rc messages stored rejected reports rows"
 *                             (rows: dmarc.reports in the database)
 *   test_ingest CONFIG stop   the same with the stop flag already set
 *
 * The log callback prints to stderr; the test, not the library, prints.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dc_config.h"
#include "dc_ingest.h"
#include "dc_store.h"
#include "dc_store_int.h" /* dc_store_conn: counts rows */

static volatile sig_atomic_t stop;

static void
log_line(void *ctx, int level, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "[%d] %s\n", level, msg);
}

int
main(int argc, char **argv)
{
	dc_config *cfg = NULL;
	dc_store *st = NULL;
	dc_ingest *ig = NULL;
	dc_ingest_totals t = { 0 };
	dc_ingest_opts o = { .stop = &stop, .log = log_line, .log_level = DC_INGEST_DEBUG };
	PGresult *res;
	dc_err err;
	dc_code rc;

	if (argc != 3 || (strcmp(argv[2], "run") != 0 && strcmp(argv[2], "stop") != 0)) {
		fprintf(stderr, "usage: test_ingest CONFIG run|stop\n");
		return 2;
	}
	dc_err_clear(&err);
	if (dc_config_load(argv[1], &cfg, &err) != DC_OK || cfg->n_mailboxes < 1 ||
		dc_ingest_open_store(cfg, &st, &err) != DC_OK) {
		fprintf(stderr, "test_ingest: setup: %s\n", dc_err_text(&err));
		dc_config_free(cfg);
		return 2;
	}
	o.cfg = cfg;
	o.mb = &cfg->mailboxes[0];
	if (dc_ingest_new(&o, &ig, &err) != DC_OK) {
		fprintf(stderr, "test_ingest: %s\n", dc_err_text(&err));
		return 2;
	}
	stop = strcmp(argv[2], "stop") == 0;
	rc = dc_ingest_run(ig, st, &t, &err);
	if (rc != DC_OK)
		fprintf(stderr, "test_ingest: %s\n", dc_err_text(&err));
	res = PQexec(dc_store_conn(st), "SELECT count(*) FROM dmarc.reports");
	printf("%s %llu %llu %llu %llu %s\n", dc_strerror(rc), (unsigned long long)t.messages,
		(unsigned long long)t.stored, (unsigned long long)t.rejected, (unsigned long long)t.reports,
		PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "?");
	PQclear(res);
	dc_ingest_free(ig);
	dc_store_free(st);
	dc_config_free(cfg);
	return 0;
}
