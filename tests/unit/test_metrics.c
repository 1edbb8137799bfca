/*
 * test_metrics.c - program/dc_metrics.c's state and renderers without the
 * HTTP server: label values escaped (quote, backslash, newline), every
 * series at 0 from the start, the outcomes and records of a poll, error
 * kinds, the histogram's cumulative buckets, counters kept across a reload
 * that drops and brings back a mailbox, and /healthz's three intervals.
 * The server itself and promtool are tested by tests/integration/metrics.sh.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dc_metrics.h"

#define ODD         "q\"b\\s\nn" /* a label with a quote, a backslash and a newline */
#define ODD_ESCAPED "mailbox=\"q\\\"b\\\\s\\nn\""

/* Returns the /metrics text of m (freed by the caller). */
static char *
render(dc_metrics *m)
{
	size_t len = 0;
	char *t = dc_metrics_render(m, &len);

	assert_non_null(t);
	assert_int_equal(strlen(t), len);
	return t;
}

/* Asserts that text has line (a whole line) or, when want is false, has not. */
static void
has_line(const char *text, const char *line, bool want)
{
	size_t n = strlen(line);
	const char *p = text;
	bool found = false;

	while (!found && (p = strstr(p, line)) != NULL) {
		found = (p == text || p[-1] == '\n') && p[n] == '\n';
		p++;
	}
	if (found != want)
		fail_msg("%s line: %s\n--- in ---\n%s", want ? "missing" : "unexpected", line, text);
}

/* Two mailboxes, x and ODD, interval 10 s. */
static dc_config *
config(bool with_odd)
{
	static dc_mailbox_config mbs[2];
	static dc_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	memset(mbs, 0, sizeof(mbs));
	mbs[0].label = (char *)"x";
	mbs[1].label = (char *)ODD;
	cfg.mailboxes = mbs;
	cfg.n_mailboxes = with_odd ? 2 : 1;
	cfg.interval = 10;
	return &cfg;
}

static void
test_zero_series_escaped(void **state)
{
	dc_metrics *m = dc_metrics_new(1000);
	char *t;

	(void)state;
	assert_non_null(m);
	assert_int_equal(dc_metrics_configure(m, config(true)), DC_OK);
	t = render(m);
	has_line(t, "# TYPE dmarc_collector_messages_total counter", true);
	has_line(t, "dmarc_collector_messages_total{" ODD_ESCAPED ",outcome=\"stored\"} 0", true);
	has_line(t, "dmarc_collector_messages_total{" ODD_ESCAPED ",outcome=\"duplicate\"} 0", true);
	has_line(t, "dmarc_collector_messages_total{mailbox=\"x\",outcome=\"rejected\"} 0", true);
	has_line(t, "dmarc_collector_poll_errors_total{" ODD_ESCAPED ",kind=\"database\"} 0", true);
	has_line(t, "dmarc_collector_last_success_timestamp_seconds{mailbox=\"x\"} 0.000", true);
	has_line(t, "dmarc_collector_poll_duration_seconds_bucket{mailbox=\"x\",le=\"+Inf\"} 0", true);
	has_line(t, "dmarc_collector_records_total 0", true);
	has_line(t, "dmarc_collector_resolve_lookups_total{status=\"nxdomain\"} 0", true);
	has_line(t, "dmarc_collector_start_time_seconds 1000.000", true);
	assert_non_null(strstr(t, "dmarc_collector_build_info{version=\""));
	assert_null(strstr(t, "s\nn")); /* the raw newline never reaches the text */
	free(t);
	dc_metrics_free(m);
}

static void
test_polls_counted(void **state)
{
	dc_metrics *m = dc_metrics_new(1000);
	dc_ingest_totals d = { .stored = 3, .dup_messages = 1, .rejected = 2, .records = 7 };
	dc_resolve_stats rs = { .ok = 4, .timeout = 1 };
	char *t;

	(void)state;
	assert_int_equal(dc_metrics_configure(m, config(true)), DC_OK);
	dc_metrics_poll_done(m, "x", DC_OK, NULL, &d, 0.3, 1005);
	dc_metrics_poll_done(m, "x", DC_EIMAP, "cannot reach IMAP server", NULL, 12, 1020.5);
	dc_metrics_poll_done(m, "x", DC_EINTERRUPTED, NULL, NULL, 0.01, 1021);
	dc_metrics_poll_done(m, "not configured", DC_OK, NULL, &d, 1, 1021);
	dc_metrics_resolve_done(m, &rs);
	t = render(m);
	has_line(t, "dmarc_collector_messages_total{mailbox=\"x\",outcome=\"stored\"} 2", true);
	has_line(t, "dmarc_collector_messages_total{mailbox=\"x\",outcome=\"duplicate\"} 1", true);
	has_line(t, "dmarc_collector_messages_total{mailbox=\"x\",outcome=\"rejected\"} 2", true);
	has_line(t, "dmarc_collector_records_total 7", true);
	has_line(t, "dmarc_collector_poll_errors_total{mailbox=\"x\",kind=\"imap\"} 1", true);
	has_line(t, "dmarc_collector_poll_errors_total{mailbox=\"x\",kind=\"interrupted\"} 1", true);
	has_line(t, "dmarc_collector_last_success_timestamp_seconds{mailbox=\"x\"} 1005.000", true);
	has_line(t, "dmarc_collector_last_poll_timestamp_seconds{mailbox=\"x\"} 1021.000", true);
	/* 0.3 s and 12 s; the interrupted poll is not timed */
	has_line(t, "dmarc_collector_poll_duration_seconds_bucket{mailbox=\"x\",le=\"0.25\"} 0", true);
	has_line(t, "dmarc_collector_poll_duration_seconds_bucket{mailbox=\"x\",le=\"0.5\"} 1", true);
	has_line(t, "dmarc_collector_poll_duration_seconds_bucket{mailbox=\"x\",le=\"10\"} 1", true);
	has_line(t, "dmarc_collector_poll_duration_seconds_bucket{mailbox=\"x\",le=\"30\"} 2", true);
	has_line(t, "dmarc_collector_poll_duration_seconds_bucket{mailbox=\"x\",le=\"+Inf\"} 2", true);
	has_line(t, "dmarc_collector_poll_duration_seconds_count{mailbox=\"x\"} 2", true);
	has_line(t, "dmarc_collector_poll_duration_seconds_sum{mailbox=\"x\"} 12.300", true);
	has_line(t, "dmarc_collector_resolve_lookups_total{status=\"ok\"} 4", true);
	has_line(t, "dmarc_collector_resolve_lookups_total{status=\"timeout\"} 1", true);
	assert_null(strstr(t, "not configured"));
	free(t);
	dc_metrics_free(m);
}

static void
test_reload_keeps_counters(void **state)
{
	dc_metrics *m = dc_metrics_new(1000);
	dc_ingest_totals d = { .stored = 5 };
	char *t;

	(void)state;
	assert_int_equal(dc_metrics_configure(m, config(true)), DC_OK);
	dc_metrics_poll_done(m, ODD, DC_OK, NULL, &d, 1, 1001);
	assert_int_equal(dc_metrics_configure(m, config(false)), DC_OK);
	t = render(m);
	assert_null(strstr(t, ODD_ESCAPED));
	free(t);
	assert_int_equal(dc_metrics_configure(m, config(true)), DC_OK);
	t = render(m);
	has_line(t, "dmarc_collector_messages_total{" ODD_ESCAPED ",outcome=\"stored\"} 5", true);
	free(t);
	dc_metrics_free(m);
}

static void
test_health(void **state)
{
	dc_metrics *m = dc_metrics_new(1000);
	char *t = NULL;

	(void)state;
	assert_int_equal(dc_metrics_configure(m, config(true)), DC_OK);
	/* not yet polled: judged from the start, three intervals of 10 s */
	assert_int_equal(dc_metrics_health(m, 1029, &t), 200);
	assert_string_equal(t, "ok\n");
	free(t);
	dc_metrics_poll_done(m, "x", DC_OK, NULL, NULL, 1, 1005);
	dc_metrics_poll_done(m, ODD, DC_EAUTH, "login refused", NULL, 1, 1010);
	assert_int_equal(dc_metrics_health(m, 1031, &t), 503);
	assert_non_null(strstr(t, "no successful poll since 1970-01-01T00:16:40Z (the service started)"));
	assert_non_null(strstr(t, "last poll failed at 1970-01-01T00:16:50Z (auth): login refused\n"));
	assert_null(strstr(t, "mailbox x:"));
	free(t);
	assert_int_equal(dc_metrics_health(m, 1036, &t), 503);
	assert_non_null(
		strstr(t, "mailbox x: no successful poll since 1970-01-01T00:16:45Z (its last success)\n"));
	free(t);
	/* a mailbox dropped by a reload is no longer judged */
	dc_metrics_poll_done(m, "x", DC_OK, NULL, NULL, 1, 1040);
	assert_int_equal(dc_metrics_configure(m, config(false)), DC_OK);
	assert_int_equal(dc_metrics_health(m, 1045, &t), 200);
	free(t);
	dc_metrics_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zero_series_escaped),
		cmocka_unit_test(test_polls_counted),
		cmocka_unit_test(test_reload_keeps_counters),
		cmocka_unit_test(test_health),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
