/*
 * dc_metrics.c - the state behind GET /metrics and GET /healthz, its two
 * renderers, and the libmicrohttpd server that answers them (dc_metrics.h).
 *
 * The service loop writes the state between polls; the server's one thread
 * (MHD_USE_INTERNAL_POLLING_THREAD) renders it under the same mutex into a
 * fresh buffer and hands that to libmicrohttpd, so a slow client never holds
 * the lock.  The server is bounded: DC_METRICS_CONNECTIONS connections at
 * once (DC_METRICS_PER_IP from one address), DC_METRICS_TIMEOUT seconds idle
 * before a connection is closed, GET and HEAD only (405 with Allow
 * otherwise), 404 for any path but /metrics and /healthz.  We bind the
 * listening socket ourselves so that a bind failure names its reason.
 *
 * The text follows the Prometheus exposition format 0.0.4: HELP and TYPE
 * for every family, label values escaped (backslash, quote, newline),
 * counters ending in _total, times in seconds (wall clock for timestamps,
 * the monotonic clock for durations).  Every series of a configured mailbox
 * exists from the start at 0, so rate() and absence alerts work at once.
 */
#include "dc_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dc_buf.h"
#include "dc_exit.h"
#include "dc_log.h"
#include "dc_version.h"

#define DC_METRICS_CONNECTIONS 16
#define DC_METRICS_PER_IP      8
#define DC_METRICS_TIMEOUT     10                /* seconds */
#define DC_METRICS_TEXT_MAX    (8 * 1024 * 1024) /* a rendering, whatever the mailboxes */
#define DC_METRICS_WHY_MAX     240               /* of a failure's message kept */
#define HEALTH_INTERVALS       3

/* The outcomes of a message, the order of mb_metrics.messages. */
static const char *const outcomes[] = { "stored", "duplicate", "rejected" };
#define N_OUTCOMES 3

/* dc_code_kind's labels (common/dc_error.h), less "none"; anything else is "other". */
static const char *const kinds[] = { "database", "imap", "auth", "tls", "config", "interrupted", "resource",
	"other" };
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

/* dc_resolve_stats' statuses, as stored in dmarc.ip_names.status. */
static const char *const lookups[] = { "ok", "nxdomain", "timeout", "servfail", "error" };
#define N_LOOKUPS 5

/* Upper bounds of the poll duration histogram, seconds (+Inf is implied). */
static const double buckets[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800 };
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

typedef struct mb_metrics {
	char *label;
	bool configured;
	double last_poll, last_success, last_failure; /* wall clock; 0 = never */
	char why[DC_METRICS_WHY_MAX];                 /* of the last failure */
	const char *why_kind;
	uint64_t messages[N_OUTCOMES];
	uint64_t errors[N_KINDS];
	uint64_t le[N_BUCKETS]; /* polls of at most buckets[i] s (not cumulative) */
	uint64_t polls;
	double seconds;
} mb_metrics;

struct dc_metrics {
	pthread_mutex_t mu;
	double started;
	int interval;
	mb_metrics *mbs;
	size_t n, cap;
	uint64_t records;
	uint64_t lookups[N_LOOKUPS];
};

/* ---- the state ------------------------------------------------------------- */

dc_metrics *
dc_metrics_new(double started)
{
	dc_metrics *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	if (pthread_mutex_init(&m->mu, NULL) != 0) {
		free(m);
		return NULL;
	}
	m->started = started;
	m->interval = 300;
	return m;
}

void
dc_metrics_free(dc_metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->mbs[i].label);
	free(m->mbs);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* Returns label's entry of m, or NULL (called with the lock held). */
static mb_metrics *
find(dc_metrics *m, const char *label)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->mbs[i].label, label) == 0)
			return &m->mbs[i];
	return NULL;
}

dc_code
dc_metrics_configure(dc_metrics *m, const dc_config *cfg)
{
	dc_code rc = DC_OK;

	pthread_mutex_lock(&m->mu);
	m->interval = cfg->interval;
	for (size_t i = 0; i < m->n; i++)
		m->mbs[i].configured = false;
	for (size_t i = 0; i < cfg->n_mailboxes; i++) {
		const char *label = cfg->mailboxes[i].label;
		mb_metrics *e = find(m, label);

		if (e == NULL) {
			if (m->n == m->cap) {
				size_t cap = m->cap ? m->cap * 2 : 4;
				mb_metrics *p = realloc(m->mbs, cap * sizeof(*p));

				if (p == NULL) {
					rc = DC_ENOMEM;
					break;
				}
				m->mbs = p;
				m->cap = cap;
			}
			e = &m->mbs[m->n];
			memset(e, 0, sizeof(*e));
			if ((e->label = strdup(label)) == NULL) {
				rc = DC_ENOMEM;
				break;
			}
			m->n++;
		}
		e->configured = true;
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

/* Returns the index of kind in kinds, "other"'s when it is not there. */
static size_t
kind_index(const char *kind)
{
	for (size_t i = 0; i < N_KINDS; i++)
		if (strcmp(kinds[i], kind) == 0)
			return i;
	return N_KINDS - 1;
}

void
dc_metrics_poll_done(dc_metrics *m, const char *label, dc_code rc, const char *why, const dc_ingest_totals *d,
	double seconds, double now)
{
	mb_metrics *e;

	pthread_mutex_lock(&m->mu);
	e = find(m, label);
	if (e == NULL)
		goto out;
	e->last_poll = now;
	if (d != NULL) {
		uint64_t dup = d->dup_messages <= d->stored ? d->dup_messages : d->stored;

		e->messages[0] += d->stored - dup;
		e->messages[1] += dup;
		e->messages[2] += d->rejected;
		m->records += d->records;
	}
	if (rc == DC_OK) {
		e->last_success = now;
	} else {
		e->errors[kind_index(dc_code_kind(rc))]++;
		if (rc != DC_EINTERRUPTED) {
			e->last_failure = now;
			e->why_kind = dc_code_kind(rc);
			snprintf(e->why, sizeof(e->why), "%s", why != NULL && why[0] ? why : dc_strerror(rc));
		}
	}
	if (rc != DC_EINTERRUPTED) {
		size_t b = 0;

		while (b < N_BUCKETS && seconds > buckets[b])
			b++;
		if (b < N_BUCKETS)
			e->le[b]++;
		e->polls++;
		e->seconds += seconds;
	}
out:
	pthread_mutex_unlock(&m->mu);
}

void
dc_metrics_resolve_done(dc_metrics *m, const dc_resolve_stats *rs)
{
	pthread_mutex_lock(&m->mu);
	m->lookups[0] += rs->ok;
	m->lookups[1] += rs->nxdomain;
	m->lookups[2] += rs->timeout;
	m->lookups[3] += rs->servfail;
	m->lookups[4] += rs->error;
	pthread_mutex_unlock(&m->mu);
}

/* ---- /metrics ------------------------------------------------------------------ */

/* Appends s as a label value: backslash, double quote and newline escaped. */
static void
add_label_value(dc_buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			dc_buf_adds(b, "\\\\");
		else if (*s == '"')
			dc_buf_adds(b, "\\\"");
		else if (*s == '\n')
			dc_buf_adds(b, "\\n");
		else
			dc_buf_addc(b, *s);
	}
}

/* Appends the HELP and TYPE lines of a family. */
static void
family(dc_buf *b, const char *name, const char *type, const char *help)
{
	dc_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Appends name{mailbox="label"[,extra]} (extra: preformatted labels or NULL). */
static void
series(dc_buf *b, const char *name, const char *label, const char *extra)
{
	dc_buf_addf(b, "%s{mailbox=\"", name);
	add_label_value(b, label);
	dc_buf_addf(b, "\"%s%s}", extra ? "," : "", extra ? extra : "");
}

/* Appends a time or duration in seconds, to the millisecond, and the newline. */
static void
value(dc_buf *b, double v)
{
	dc_buf_addf(b, " %.3f\n", v);
}

/* Appends the per-mailbox families (called with the lock held). */
static void
render_mailboxes(dc_metrics *m, dc_buf *b)
{
	char extra[64];

	family(b, "dmarc_collector_last_poll_timestamp_seconds", "gauge",
		"When the mailbox's last poll ended, successful or not (Unix time; 0 = not yet).");
	for (size_t i = 0; i < m->n; i++)
		if (m->mbs[i].configured) {
			series(b, "dmarc_collector_last_poll_timestamp_seconds", m->mbs[i].label, NULL);
			value(b, m->mbs[i].last_poll);
		}
	family(b, "dmarc_collector_last_success_timestamp_seconds", "gauge",
		"When the mailbox's last successful poll ended (Unix time; 0 = none since the start).");
	for (size_t i = 0; i < m->n; i++)
		if (m->mbs[i].configured) {
			series(b, "dmarc_collector_last_success_timestamp_seconds", m->mbs[i].label, NULL);
			value(b, m->mbs[i].last_success);
		}
	family(b, "dmarc_collector_messages_total", "counter",
		"Messages handled: stored, duplicate (every report already stored) or rejected.");
	for (size_t i = 0; i < m->n; i++)
		for (size_t o = 0; m->mbs[i].configured && o < N_OUTCOMES; o++) {
			snprintf(extra, sizeof(extra), "outcome=\"%s\"", outcomes[o]);
			series(b, "dmarc_collector_messages_total", m->mbs[i].label, extra);
			dc_buf_addf(b, " %" PRIu64 "\n", m->mbs[i].messages[o]);
		}
	family(b, "dmarc_collector_poll_errors_total", "counter", "Polls that failed, by kind of failure.");
	for (size_t i = 0; i < m->n; i++)
		for (size_t k = 0; m->mbs[i].configured && k < N_KINDS; k++) {
			snprintf(extra, sizeof(extra), "kind=\"%s\"", kinds[k]);
			series(b, "dmarc_collector_poll_errors_total", m->mbs[i].label, extra);
			dc_buf_addf(b, " %" PRIu64 "\n", m->mbs[i].errors[k]);
		}
	family(b, "dmarc_collector_poll_duration_seconds", "histogram",
		"How long a poll of the mailbox took (interrupted polls not counted).");
	for (size_t i = 0; i < m->n; i++) {
		const mb_metrics *e = &m->mbs[i];
		uint64_t cum = 0;

		if (!e->configured)
			continue;
		for (size_t k = 0; k < N_BUCKETS; k++) {
			cum += e->le[k];
			snprintf(extra, sizeof(extra), "le=\"%g\"", buckets[k]);
			series(b, "dmarc_collector_poll_duration_seconds_bucket", e->label, extra);
			dc_buf_addf(b, " %" PRIu64 "\n", cum);
		}
		series(b, "dmarc_collector_poll_duration_seconds_bucket", e->label, "le=\"+Inf\"");
		dc_buf_addf(b, " %" PRIu64 "\n", e->polls);
		series(b, "dmarc_collector_poll_duration_seconds_sum", e->label, NULL);
		value(b, e->seconds);
		series(b, "dmarc_collector_poll_duration_seconds_count", e->label, NULL);
		dc_buf_addf(b, " %" PRIu64 "\n", e->polls);
	}
}

char *
dc_metrics_render(dc_metrics *m, size_t *len)
{
	dc_buf b;

	dc_buf_init(&b, DC_METRICS_TEXT_MAX);
	family(&b, "dmarc_collector_build_info", "gauge", "The program's version; always 1.");
	dc_buf_addf(&b, "dmarc_collector_build_info{version=\"");
	add_label_value(&b, dc_version_string());
	dc_buf_adds(&b, "\",git=\"");
	add_label_value(&b, dc_version_git());
	dc_buf_adds(&b, "\"} 1\n");
	pthread_mutex_lock(&m->mu);
	family(&b, "dmarc_collector_start_time_seconds", "gauge", "When the service started (Unix time).");
	dc_buf_adds(&b, "dmarc_collector_start_time_seconds");
	value(&b, m->started);
	family(&b, "dmarc_collector_interval_seconds", "gauge", "[service] interval: seconds between polls.");
	dc_buf_addf(&b, "dmarc_collector_interval_seconds %d\n", m->interval);
	render_mailboxes(m, &b);
	family(&b, "dmarc_collector_records_total", "counter", "Records of the reports stored.");
	dc_buf_addf(&b, "dmarc_collector_records_total %" PRIu64 "\n", m->records);
	family(&b, "dmarc_collector_resolve_lookups_total", "counter",
		"PTR lookups of source IPs after a poll, by result.");
	for (size_t i = 0; i < N_LOOKUPS; i++)
		dc_buf_addf(&b, "dmarc_collector_resolve_lookups_total{status=\"%s\"} %" PRIu64 "\n",
			lookups[i], m->lookups[i]);
	pthread_mutex_unlock(&m->mu);
	return dc_buf_take(&b, len);
}

/* ---- /healthz ------------------------------------------------------------------ */

/* Writes t (wall clock seconds) as UTC ISO 8601 into out. */
static void
iso_time(char *out, size_t cap, double t)
{
	time_t s = (time_t)t;
	struct tm tm;

	if (gmtime_r(&s, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, cap, "%.0f", t);
}

int
dc_metrics_health(dc_metrics *m, double now, char **text)
{
	dc_buf b;
	int status = 200;

	dc_buf_init(&b, DC_METRICS_TEXT_MAX);
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n; i++) {
		const mb_metrics *e = &m->mbs[i];
		double since = e->last_success > 0 ? e->last_success : m->started;
		char when[32], last[32];

		if (!e->configured || now - since < (double)HEALTH_INTERVALS * m->interval)
			continue;
		status = 503;
		iso_time(when, sizeof(when), since);
		dc_buf_adds(&b, "mailbox ");
		dc_buf_adds(&b, e->label);
		dc_buf_addf(&b, ": no successful poll since %s (%s)", when,
			e->last_success > 0 ? "its last success" : "the service started");
		if (e->last_failure >= since && e->last_failure > 0) {
			iso_time(last, sizeof(last), e->last_failure);
			dc_buf_addf(&b, "; last poll failed at %s (%s): %s", last, e->why_kind, e->why);
		}
		dc_buf_addc(&b, '\n');
	}
	pthread_mutex_unlock(&m->mu);
	if (status == 200)
		dc_buf_adds(&b, "ok\n");
	*text = dc_buf_take(&b, NULL);
	return status;
}

/* ---- the HTTP server ------------------------------------------------------------ */

/* Returns the wall clock in seconds. */
static double
wall_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Queues status with body (taken over, freed by libmicrohttpd; NULL: out of memory). */
static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, char *body, const char *type)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (body == NULL) {
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		r = MHD_create_response_from_buffer(
			strlen("out of memory\n"), (void *)"out of memory\n", MHD_RESPMEM_PERSISTENT);
	} else {
		r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	}
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* libmicrohttpd's request handler: answers at the first call, body or not. */
static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
	const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	dc_metrics *m = cls;
	const char *text = "text/plain; charset=utf-8";

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("only GET and HEAD\n"), text);
	if (strcmp(url, "/metrics") == 0)
		return reply(c, MHD_HTTP_OK, dc_metrics_render(m, NULL),
			"text/plain; version=0.0.4; charset=utf-8");
	if (strcmp(url, "/healthz") == 0) {
		char *body = NULL;
		int status = dc_metrics_health(m, wall_now(), &body);

		return reply(c, (unsigned)status, body, text);
	}
	return reply(c, MHD_HTTP_NOT_FOUND, strdup("not found: try /metrics or /healthz\n"), text);
}

/* ---- the service's side ---------------------------------------------------------- */

static dc_metrics *g_metrics;
static struct MHD_Daemon *g_daemon;
static char *g_listen; /* the address it listens on, as configured */

/* Returns a listening socket bound to addr (logged and -1 on failure). */
static int
listen_on(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	dc_err err;
	int fd = -1, one = 1;

	dc_err_clear(&err);
	if (dc_config_parse_listen(addr, &ss, &len, &err) != DC_OK) {
		dc_log_error("metrics_listen: %s", dc_err_text(&err));
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 32) != 0) {
		dc_log_error("metrics_listen = %s: cannot listen there: %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int
dc_metrics_start(const dc_config *cfg)
{
	sigset_t block, old;
	int fd = -1;

	if (cfg->metrics_listen == NULL)
		return 0;
	g_metrics = dc_metrics_new(wall_now());
	g_listen = strdup(cfg->metrics_listen);
	if (g_metrics == NULL || g_listen == NULL || dc_metrics_configure(g_metrics, cfg) != DC_OK) {
		dc_log_error("metrics: out of memory");
		dc_metrics_stop();
		return DC_EXIT_TEMPFAIL;
	}
	if ((fd = listen_on(cfg->metrics_listen)) < 0) {
		dc_metrics_stop();
		return DC_EXIT_CONFIG;
	}
	/* the server's thread inherits this mask: TERM, INT and HUP go to the
	 * service loop's thread, whose blocking calls they are meant to end */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	/* libmicrohttpd owns fd from here (MHD_stop_daemon closes it) */
	g_daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, on_request,
		g_metrics, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)DC_METRICS_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		(unsigned)DC_METRICS_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)DC_METRICS_TIMEOUT,
		MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (g_daemon == NULL) {
		close(fd);
		dc_log_error("metrics_listen = %s: cannot start the HTTP server", cfg->metrics_listen);
		dc_metrics_stop();
		return DC_EXIT_CONFIG;
	}
	dc_log_info("metrics: serving /metrics and /healthz on %s", cfg->metrics_listen);
	return 0;
}

void
dc_metrics_stop(void)
{
	if (g_daemon != NULL)
		MHD_stop_daemon(g_daemon);
	g_daemon = NULL;
	dc_metrics_free(g_metrics);
	g_metrics = NULL;
	free(g_listen);
	g_listen = NULL;
}

void
dc_metrics_reload(const dc_config *cfg)
{
	if (g_metrics == NULL) {
		if (cfg->metrics_listen != NULL)
			dc_log_warn(
				"reload: metrics_listen is read at start only; restart the service to serve it");
		return;
	}
	if (cfg->metrics_listen == NULL || strcmp(cfg->metrics_listen, g_listen) != 0)
		dc_log_warn("reload: metrics_listen is read at start only; still serving on %s", g_listen);
	if (dc_metrics_configure(g_metrics, cfg) != DC_OK)
		dc_log_warn("metrics: out of memory; new mailboxes are not counted");
}

struct timespec
dc_metrics_clock(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

void
dc_metrics_polled(const char *label, dc_code rc, const dc_err *err, struct timespec t0,
	const dc_ingest_totals *before, const dc_ingest_totals *after)
{
	struct timespec t1;
	dc_ingest_totals d = { 0 };

	if (g_metrics == NULL)
		return;
	t1 = dc_metrics_clock();
	if (before != NULL && after != NULL) {
		d.stored = after->stored - before->stored;
		d.rejected = after->rejected - before->rejected;
		d.dup_messages = after->dup_messages - before->dup_messages;
		d.records = after->records - before->records;
	}
	dc_metrics_poll_done(g_metrics, label, rc, rc != DC_OK && err != NULL ? dc_err_text(err) : NULL, &d,
		(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, wall_now());
}

void
dc_metrics_resolved(const dc_resolve_stats *rs)
{
	if (g_metrics != NULL)
		dc_metrics_resolve_done(g_metrics, rs);
}
