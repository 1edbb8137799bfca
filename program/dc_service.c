/*
 * dc_service.c - the `poll` command and the collector service (SPEC sections
 * 4 and 7), and check-config's IMAP probe: the program's side of polling.
 *
 * Each mailbox has a worker (collector/dc_ingest: one poll of one mailbox,
 * fetch, store, commit, move).  `poll --once` runs each once; the service
 * (`poll` without --once) polls every mailbox each `interval` seconds; a
 * mailbox whose poll failed (IMAP, TLS, login, database) is tried again
 * after a backoff of 5 s doubling to 5 min (at once 5 min when an admin must
 * act: a refused login, an unmigrated schema).  SIGTERM and SIGINT finish
 * the message in hand (and its batch's moves) and exit 0; SIGHUP reloads the
 * configuration between polls.  After a poll that stored reports, PTR names
 * are resolved (dc_resolve); after each round the [alerts] command gets the
 * new alerts (dc_alerts_hook).  With [service] metrics_listen each poll's
 * outcome also goes to the /metrics and /healthz server (dc_metrics).  The
 * service tells systemd how it is doing (dc_notify: READY, STATUS, and the
 * watchdog kicked as the polls advance and while it sleeps between them).
 *
 * This file and main.c are the program: the signal flags and the self-pipe
 * are process-wide variables here, it logs (dc_log) and picks exit statuses
 * (dc_exit.h).  Nothing it calls does any of that.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dc_alerts_hook.h"
#include "dc_commands.h"
#include "dc_config.h"
#include "dc_exit.h"
#include "dc_ingest.h"
#include "dc_log.h"
#include "dc_metrics.h"
#include "dc_notify.h"
#include "dc_resolve.h"
#include "dc_store.h"

#define BACKOFF_MIN 5 /* seconds after the first failure */
#define BACKOFF_MAX 300

/* ---- signals: the service loop's process-wide state ---------------------- */

static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_reload;
static int g_wake[2] = { -1, -1 }; /* self-pipe: wakes the sleep between polls */

/* Signal handler: sets the flag and wakes the sleep (async-signal-safe only). */
static void
on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGHUP)
		g_reload = 1;
	else
		g_stop = 1;
	if (g_wake[1] >= 0)
		(void)!write(g_wake[1], "", 1);
	errno = saved;
}

typedef struct saved_signals {
	struct sigaction term, intr, hup, pipe;
} saved_signals;

/* Installs the handlers for TERM, INT and HUP, ignores PIPE; old gets the previous ones. */
static void
signals_install(saved_signals *old)
{
	struct sigaction sa;

	g_stop = g_reload = 0;
	if (g_wake[0] < 0 && pipe2(g_wake, O_CLOEXEC | O_NONBLOCK) != 0)
		g_wake[0] = g_wake[1] = -1; /* sleeps then just run their time */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, &old->term);
	sigaction(SIGINT, &sa, &old->intr);
	sigaction(SIGHUP, &sa, &old->hup);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &old->pipe);
}

/* Puts back the handlers of signals_install and closes the self-pipe. */
static void
signals_restore(const saved_signals *old)
{
	sigaction(SIGTERM, &old->term, NULL);
	sigaction(SIGINT, &old->intr, NULL);
	sigaction(SIGHUP, &old->hup, NULL);
	sigaction(SIGPIPE, &old->pipe, NULL);
	for (int i = 0; i < 2; i++) {
		if (g_wake[i] >= 0)
			close(g_wake[i]);
		g_wake[i] = -1;
	}
}

/* Sleeps until the monotonic time deadline, or until a signal arrives;
 * kicks the watchdog at least every half period meanwhile. */
static void
sleep_until(time_t deadline)
{
	while (!g_stop && !g_reload) {
		struct timespec now;
		char drain[64];

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec >= deadline)
			return;
		long ms = (long)(deadline - now.tv_sec) * 1000;
		int slice = dc_notify_sleep_ms(60000); /* the watchdog is kicked at each wake */
		dc_notify_progress(NULL);
		if (g_wake[0] >= 0) {
			struct pollfd p = { .fd = g_wake[0], .events = POLLIN };
			if (poll(&p, 1, ms > slice ? slice : (int)ms) > 0)
				while (read(g_wake[0], drain, sizeof(drain)) > 0)
					;
		} else {
			sleep(1);
		}
	}
}

/* Returns the monotonic clock in seconds. */
static time_t
now_mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

/* ---- the service ------------------------------------------------------------ */

/* Per-mailbox state the service keeps between polls. */
typedef struct mb_service {
	dc_ingest *ig;   /* its worker (keeps the XOAUTH2 token) */
	time_t next_due; /* monotonic seconds */
	int backoff;     /* seconds; 0 after a good poll */
} mb_service;

typedef struct service {
	const char *config_path;
	const char *db_override;
	dc_config *cfg;     /* in use */
	dc_config *own_cfg; /* a reloaded one, freed by us */
	mb_service *mbs;
	dc_store *st;
	bool once;
} service;

/* dc_ingest's log callback: the program's log. */
static void
log_line(void *ctx, int level, const char *msg)
{
	(void)ctx;
	dc_log((dc_log_level)level, "%s", msg);
}

/* Returns a new worker for mailbox mb of cfg, or NULL when out of memory. */
static dc_ingest *
ingest_new(const dc_config *cfg, const dc_mailbox_config *mb)
{
	dc_ingest_opts o = { .cfg = cfg,
		.mb = mb,
		.stop = &g_stop,
		.log = log_line,
		.log_level = (int)dc_log_get_level(),
		.progress = dc_notify_progress,
		.progress_ctx = (void *)&g_stop };
	dc_ingest *ig = NULL;
	dc_err err;

	dc_err_clear(&err);
	if (dc_ingest_new(&o, &ig, &err) != DC_OK)
		return NULL;
	return ig;
}

/* Frees per-mailbox state mbs of n mailboxes (their workers wipe cached tokens). */
static void
mbs_free_n(mb_service *mbs, size_t n)
{
	if (mbs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		dc_ingest_free(mbs[i].ig);
	free(mbs);
}

/* Returns the per-mailbox state of cfg, a worker each, or NULL when out of memory. */
static mb_service *
mbs_new(const dc_config *cfg)
{
	mb_service *mbs = calloc(cfg->n_mailboxes, sizeof(*mbs));

	for (size_t i = 0; mbs != NULL && i < cfg->n_mailboxes; i++) {
		if ((mbs[i].ig = ingest_new(cfg, &cfg->mailboxes[i])) == NULL) {
			mbs_free_n(mbs, cfg->n_mailboxes);
			mbs = NULL;
		}
	}
	return mbs;
}

/* Frees the service's per-mailbox state. */
static void
mbs_free(service *s)
{
	mbs_free_n(s->mbs, s->cfg->n_mailboxes);
	s->mbs = NULL;
}

/* Checks every mailbox of cfg; returns DC_EXIT_CONFIG (logged) or 0. */
static int
check_config(const dc_config *cfg)
{
	dc_err err;

	dc_err_clear(&err);
	if (dc_config_check_poll(cfg, &err) != DC_OK) {
		dc_log_error("%s", dc_err_text(&err));
		return DC_EXIT_CONFIG;
	}
	return 0;
}

/* SIGHUP: loads the configuration again; on any error keeps the one in use (logged). */
static void
reload(service *s)
{
	dc_config *cfg = NULL;
	dc_err err;

	dc_err_clear(&err);
	if (dc_config_load(s->config_path, &cfg, &err) != DC_OK) {
		dc_log_error("reload: %s; keeping the configuration in use", dc_err_text(&err));
		return;
	}
	if (s->db_override != NULL) {
		char *db = strdup(s->db_override);
		if (db == NULL) {
			dc_config_free(cfg);
			dc_log_error("reload: out of memory; keeping the configuration in use");
			return;
		}
		free(cfg->db_conninfo);
		cfg->db_conninfo = db;
	}
	if (check_config(cfg) != 0) {
		dc_config_free(cfg);
		dc_log_error("reload: keeping the configuration in use");
		return;
	}
	mb_service *mbs = mbs_new(cfg);
	if (mbs == NULL) {
		dc_config_free(cfg);
		dc_log_error("reload: out of memory; keeping the configuration in use");
		return;
	}
	mbs_free(s);
	dc_store_free(s->st); /* the database may have changed */
	s->st = NULL;
	dc_config_free(s->own_cfg);
	s->own_cfg = s->cfg = cfg;
	s->mbs = mbs;
	dc_metrics_reload(cfg);
	dc_log_info("reload: %s: %zu mailbox%s, interval %d s", s->config_path ? s->config_path : "(no file)",
		cfg->n_mailboxes, cfg->n_mailboxes == 1 ? "" : "es", cfg->interval);
}

/* Resolves PTR names after a poll that stored reports; failures are logged only. */
static void
resolve_names(service *s)
{
	dc_resolve_opts o;
	dc_resolve_stats rs = { 0 };
	dc_err err, enrich_err;
	dc_code rc;

	dc_resolve_opts_from_config(&o, s->cfg);
	o.dns.progress = dc_notify_progress;
	o.dns.progress_ctx = (void *)&g_stop;
	dc_err_clear(&err);
	dc_err_clear(&enrich_err);
	o.enrich_err = &enrich_err;
	rc = dc_resolve_run(s->st, &o, &rs, &err);
	if (enrich_err.code != DC_OK)
		dc_log_error("resolve: %s; PTR names are stored without AS and country until it is fixed",
			dc_err_text(&enrich_err));
	dc_metrics_resolved(&rs);
	if (rc != DC_OK) {
		dc_log_warn("resolve: %s", dc_err_text(&err));
		if (rc == DC_EDB || rc == DC_EDBREFUSED) {
			dc_store_free(s->st);
			s->st = NULL;
		}
		return;
	}
	if (rs.ips > 0)
		dc_log_info("resolve: %" PRIu64 " IPs looked up, %" PRIu64 " names (%" PRIu64
			    " forward-confirmed), %" PRIu64 " without, %" PRIu64 " timeouts, %" PRIu64
			    " failures",
			rs.ips, rs.ok, rs.confirmed, rs.nxdomain, rs.timeout, rs.servfail + rs.error);
	if (rs.enriched > 0)
		dc_log_info("resolve: %" PRIu64 " IPs looked up in the IP databases ([enrich])", rs.enriched);
}

/* Sets a failed mailbox's next try after its backoff. */
static void
back_off(service *s, size_t i, const char *why)
{
	mb_service *m = &s->mbs[i];

	m->backoff = m->backoff ? m->backoff * 2 : BACKOFF_MIN;
	if (m->backoff > BACKOFF_MAX)
		m->backoff = BACKOFF_MAX;
	m->next_due = now_mono() + m->backoff;
	dc_notify_failed(s->cfg->mailboxes[i].label, why);
	if (s->once)
		dc_log_error("mailbox %s: %s", s->cfg->mailboxes[i].label, why);
	else
		dc_log_error(
			"mailbox %s: %s; trying again in %d s", s->cfg->mailboxes[i].label, why, m->backoff);
}

/* Polls every due mailbox once; returns the exit status of this round. */
static int
poll_round(service *s)
{
	dc_ingest_totals sum = { 0 };
	int status = DC_EXIT_STORED;
	time_t now = now_mono();

	for (size_t i = 0; i < s->cfg->n_mailboxes && !g_stop; i++) {
		dc_err err;
		dc_code rc;
		struct timespec t0 = dc_metrics_clock();
		dc_ingest_totals before = sum;

		if (!s->once && s->mbs[i].next_due > now)
			continue;
		dc_notify_polling(s->cfg->mailboxes[i].label);
		dc_err_clear(&err);
		if (s->st == NULL) {
			rc = dc_ingest_open_store(s->cfg, &s->st, &err);
			if (rc != DC_OK) {
				char why[DC_ERR_MSG_MAX + 32];
				snprintf(why, sizeof(why), "database: %s", dc_err_text(&err));
				for (size_t j = i; j < s->cfg->n_mailboxes; j++) {
					if (!s->once && s->mbs[j].next_due > now)
						continue;
					/* refused (login, privilege): an admin must act; retry slowly */
					if (dc_exit_for(rc) == DC_EXIT_CONFIG)
						s->mbs[j].backoff = BACKOFF_MAX;
					back_off(s, j, why);
					dc_metrics_polled(
						s->cfg->mailboxes[j].label, rc, &err, t0, NULL, NULL);
				}
				status = dc_exit_worse(status, dc_exit_for(rc));
				break;
			}
		}
		rc = dc_ingest_run(s->mbs[i].ig, s->st, &sum, &err);
		dc_metrics_polled(s->cfg->mailboxes[i].label, rc, &err, t0, &before, &sum);
		switch (rc) {
		case DC_OK:
			s->mbs[i].backoff = 0;
			s->mbs[i].next_due = now_mono() + s->cfg->interval;
			break;
		case DC_EINTERRUPTED: break;
		case DC_ECONFIG:
			/* e.g. the schema was not migrated: an admin must act; retry slowly */
			s->mbs[i].backoff = BACKOFF_MAX;
			back_off(s, i, dc_err_text(&err));
			status = dc_exit_worse(status, DC_EXIT_CONFIG);
			break;
		case DC_EDB:
		case DC_EDBREFUSED: {
			char why[DC_ERR_MSG_MAX + 32];

			dc_store_free(s->st);
			s->st = NULL;
			snprintf(why, sizeof(why), "database: %s", dc_err_text(&err));
			if (rc == DC_EDBREFUSED)
				s->mbs[i].backoff = BACKOFF_MAX;
			back_off(s, i, why);
			status = dc_exit_worse(status, dc_exit_for(rc));
			break;
		}
		default:
			/* IMAP login or certificate refused (2), server away (75) ... */
			if (dc_exit_for(rc) == DC_EXIT_CONFIG)
				s->mbs[i].backoff = BACKOFF_MAX;
			back_off(s, i, dc_err_text(&err));
			status = dc_exit_worse(status, dc_exit_for(rc));
			break;
		}
	}
	if (sum.rejected > 0)
		status = dc_exit_worse(status, DC_EXIT_REJECTED);
	if (sum.reports > 0 && s->st != NULL && !g_stop)
		resolve_names(s);
	dc_notify_round(&sum);
	if (!g_stop)
		dc_alerts_hook_run(s->cfg, &s->st); /* [alerts] command: the new alerts */
	return status;
}

/* Returns the exit status; see dc_commands.h. */
int
dc_cmd_poll(const char *config_path, const char *db_override, dc_config *cfg, bool once)
{
	service s = { .config_path = config_path, .db_override = db_override, .cfg = cfg, .once = once };
	saved_signals old;
	int status;

	status = check_config(cfg);
	if (status == 0 && !once)
		status = dc_metrics_start(cfg);
	if (status != 0)
		return status;
	s.mbs = mbs_new(cfg);
	if (s.mbs == NULL) {
		dc_log_error("poll: out of memory");
		dc_metrics_stop();
		return DC_EXIT_TEMPFAIL;
	}
	signals_install(&old);
	if (!once) {
		dc_log_info("service started: %zu mailbox%s, interval %d s", cfg->n_mailboxes,
			cfg->n_mailboxes == 1 ? "" : "es", cfg->interval);
		dc_notify_ready(cfg->n_mailboxes, cfg->interval);
	}
	for (;;) {
		if (g_reload) {
			g_reload = 0;
			if (!once) {
				dc_notify_reloading();
				reload(&s);
				dc_notify_ready(s.cfg->n_mailboxes, s.cfg->interval);
			}
		}
		status = poll_round(&s);
		if (once || g_stop)
			break;
		time_t next = now_mono() + s.cfg->interval, due = s.mbs[0].next_due;
		for (size_t i = 0; i < s.cfg->n_mailboxes; i++) {
			if (s.mbs[i].next_due < next)
				next = s.mbs[i].next_due;
			if (s.mbs[i].next_due < due)
				due = s.mbs[i].next_due;
		}
		dc_notify_waiting(due - now_mono()); /* the next poll, not the next wake */
		sleep_until(next);
		if (g_stop)
			break;
	}
	if (g_stop) {
		dc_notify_stopping();
		dc_log_info("stopping on a signal");
	}
	if (!once)
		status = DC_EXIT_STORED;
	signals_restore(&old);
	dc_metrics_stop();
	mbs_free(&s);
	dc_store_free(s.st);
	dc_config_free(s.own_cfg);
	return status;
}

/* ---- check-config ------------------------------------------------------------ */

/* Returns 0 when every mailbox can be logged in to and its folder selected,
 * else the worst of dc_exit_for's statuses (2: configuration, login,
 * certificate or folder refused; 75: a server away); see dc_commands.h. */
int
dc_check_imap(const dc_config *cfg)
{
	int status = 0;

	for (size_t i = 0; i < cfg->n_mailboxes; i++) {
		const dc_mailbox_config *mb = &cfg->mailboxes[i];
		dc_ingest *ig = NULL;
		dc_ingest_probe_info pi = { 0 };
		dc_err err;
		dc_code rc;

		dc_err_clear(&err);
		rc = dc_config_check_mailbox(mb, &err);
		if (rc == DC_OK && (ig = ingest_new(cfg, mb)) == NULL)
			rc = dc_err_set(&err, DC_ENOMEM, "out of memory");
		if (rc == DC_OK)
			rc = dc_ingest_probe(ig, &pi, &err);
		if (rc == DC_OK) {
			dc_log_info("check-config: mailbox %s: logged in to %s as %s, %s holds %" PRIu64
				    " messages (MOVE %s)",
				mb->label, mb->url, mb->user, pi.folder, pi.exists,
				pi.move ? "supported" : "missing: COPY + EXPUNGE");
		} else {
			dc_log_error("check-config: mailbox %s: %s", mb->label, dc_err_text(&err));
			status = dc_exit_worse(status, dc_exit_for(rc));
		}
		free(pi.folder);
		dc_ingest_free(ig);
	}
	return status;
}
