/*
 * main.c - the dmarc-collector program: global options, the configuration,
 * and the commands of SPEC section 4.
 *
 *   dmarc-collector [--config FILE] [--db CONNINFO] [-v|-q] COMMAND [ARGS]
 *
 * Exit statuses (SPEC section 4, defined in dc_exit.h): 0 every input
 * stored (a duplicate counts as stored), 1 some inputs rejected (each in
 * dmarc.failures), 2 usage or configuration error, or a service that
 * answered and refused (login, privilege), 75 (EX_TEMPFAIL) a service could
 * not be reached and nothing was lost.  The table: docs/README-cli.md.
 *
 * The configuration file is the one named by --config, else by
 * DMARC_COLLECTOR_CONFIG, else DC_DEFAULT_CONFIG (SYSCONFDIR/dmarc-collector/
 * dmarc-collector.conf) if it exists and the variable is unset, else none
 * (defaults and DMARC_COLLECTOR_* variables only).  The database is --db, else [database] conninfo, else
 * libpq's environment (PGHOST, PGDATABASE, PGSERVICE, ...).  A database
 * password from the configuration is a connection parameter (dc_store_open);
 * one in --db/conninfo or in PGPASSWORD wins.
 *
 * Only this file and the service loop exit or print; the commands poll,
 * resolve and prune live in their modules (dc_commands.h).
 */
#include <curl/curl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dc_alerts_hook.h"
#include "dc_commands.h"
#include "dc_config.h"
#include "dc_exit.h"
#include "dc_import.h"
#include "dc_ingest.h"
#include "dc_log.h"
#include "dc_store.h"
#include "dc_version.h"
#include "dc_xml.h"

#ifdef DC_DEFAULT_CONFIG /* cmake/install.cmake */
#define DC_DEFAULT_CONFIG_HELP DC_DEFAULT_CONFIG " if it exists"
#else
#define DC_DEFAULT_CONFIG_HELP "none"
#endif

#define PROGRESS_MIN_FILES 20         /* fewer inputs: no progress line */
#define PROGRESS_EVERY_NS  200000000L /* redraw at most every 0.2 s */

/* What every command gets. */
typedef struct run_ctx {
	const char *config_path; /* NULL: none */
	const char *db_override; /* --db, NULL when not given */
	dc_config *cfg;
} run_ctx;

typedef struct command {
	const char *name;
	const char *args; /* for the usage text */
	const char *help;
	int (*run)(run_ctx *c, int argc, char **argv); /* argv[0] is the command */
} command;

static int cmd_migrate(run_ctx *, int, char **);
static int cmd_import(run_ctx *, int, char **);
static int cmd_poll(run_ctx *, int, char **);
static int cmd_resolve(run_ctx *, int, char **);
static int cmd_reparse(run_ctx *, int, char **);
static int cmd_prune(run_ctx *, int, char **);
static int cmd_senders(run_ctx *, int, char **);
static int cmd_check_config(run_ctx *, int, char **);

static const command commands[] = {
	{ "migrate", "", "create or upgrade the schema; safe to run again", cmd_migrate },
	{ "import", "PATH...", "ingest local files, directories, mbox files, Maildirs", cmd_import },
	{ "poll", "[--once]", "poll the configured mailboxes; without --once run as a service", cmd_poll },
	{ "resolve", "", "look up PTR names for source IPs that have none yet", cmd_resolve },
	{ "reparse", "", "parse the stored original reports again (after an upgrade)", cmd_reparse },
	{ "prune", "--older-than DAYS", "delete reports (and failures) older than DAYS days", cmd_prune },
	{ "senders", "load|set|unset ...",
		"load a sender map file (load FILE [--source NAME]); set/unset a local override",
		cmd_senders },
	{ "check-config", "", "validate the configuration and reach every service", cmd_check_config },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Writes the help text to f. */
static void
usage(FILE *f)
{
	fprintf(f, "usage: dmarc-collector [--config FILE] [--db CONNINFO] [-v|-q] COMMAND [ARGS]\n\n");
	fprintf(f, "commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++) {
		char left[64];

		snprintf(left, sizeof(left), "%s %s", commands[i].name, commands[i].args);
		fprintf(f, "  %-26s %s\n", left, commands[i].help);
	}
	fprintf(f,
		"\noptions:\n"
		"  -c, --config FILE          configuration file (default: $DMARC_COLLECTOR_CONFIG, else\n"
		"                             " DC_DEFAULT_CONFIG_HELP ")\n"
		"  -d, --db CONNINFO          PostgreSQL connection string (default: [database] conninfo,\n"
		"                             else libpq's environment: PGHOST, PGDATABASE, PGSERVICE ...)\n"
		"  -v, --verbose              log debug messages too\n"
		"  -q, --quiet                log errors only\n"
		"  -h, --help                 show this help\n"
		"  -V, --version              show the version\n"
		"\nexit status: 0 all stored (duplicates count as stored), 1 some inputs rejected\n"
		"(each in dmarc.failures), 2 usage or configuration error, or a service refused\n"
		"(login, privilege, missing folder: fix, then run again), 75 a service could not\n"
		"be reached (nothing lost; run again later).\n");
}

/* Logs a usage error and returns 2. */
static int __attribute__((format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dc_log_error("%s (see dmarc-collector --help)", msg);
	return DC_EXIT_CONFIG;
}

/* The advice after a command stopped with status: a refusal (2) must be
 * fixed first, anything else can simply be run again. */
static const char *
again(int status, const char *what)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "%s %s again", status == DC_EXIT_CONFIG ? "fix that, then run" : "run",
		what);
	return buf;
}

/* Refuses any argument after the command name. */
static bool
no_args(int argc, char **argv)
{
	if (argc > 1) {
		usage_error("unexpected argument '%s'", argv[1]);
		return false;
	}
	return true;
}

/* Opens the store or logs why not; returns the exit status (0 = opened). */
static int
open_store(run_ctx *c, const char *what, dc_store **st)
{
	dc_err err;
	dc_code rc;

	dc_err_clear(&err);
	rc = dc_store_open(c->cfg->db_conninfo, c->cfg->db_password, st, &err);
	if (rc != DC_OK) {
		dc_log_error("%s: %s", what, dc_err_text(&err));
		return dc_exit_for(rc);
	}
	return 0;
}

/* ---------------------------------------------------------------- migrate */

/* `migrate`: applies the compiled-in SQL (dc_store_migrate_report: nothing
 * half-applied); 0, also when the group roles are missing and this login may
 * not create them (one warning with the SQL an administrator runs); 2 when
 * the server refuses (no privilege to create the schema ...) or the database
 * disagrees with the program (an applied migration edited, or one this
 * program does not have), 75 when the database cannot be reached or goes
 * away. */
static int
cmd_migrate(run_ctx *c, int argc, char **argv)
{
	dc_store *st = NULL;
	dc_migrate_report rep;
	dc_err err;
	int status;
	dc_code rc;

	if (!no_args(argc, argv))
		return DC_EXIT_CONFIG;
	if ((status = open_store(c, "migrate", &st)) != 0)
		return status;
	dc_err_clear(&err);
	rc = dc_store_migrate_report(st, &rep, &err);
	if (rep.upgraded)
		dc_log_info("migrate: the database was upgraded from schema 0.1 to 1.0");
	if (rc != DC_OK) {
		dc_log_error("migrate: %s", dc_err_text(&err));
		status = dc_exit_for(rc);
	} else {
		dc_log_info("migrate: %d migration%s applied, %d object%s applied, schema up to date",
			rep.migrations, rep.migrations == 1 ? "" : "s", rep.objects,
			rep.objects == 1 ? "" : "s");
	}
	/* the roles come after the schema: logged also when a later step failed */
	if (rep.roles_created[0] != '\0')
		dc_log_info("migrate: created the group role%s %s (NOLOGIN)",
			strchr(rep.roles_created, ',') != NULL ? "s" : "", rep.roles_created);
	if (rep.roles_granted)
		dc_log_info("migrate: granted the group roles their rights on schema dmarc");
	/* not a failure: the collector works without the groups (exit 0) */
	if (rep.roles_warning[0] != '\0')
		dc_log_warn("migrate: %s", rep.roles_warning);
	dc_store_free(st);
	return status;
}

/* ---------------------------------------------------------------- import */

/* Set by SIGINT/SIGTERM during an import: stop before the next input. */
static volatile sig_atomic_t g_stop;

static void
on_stop_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* Lets the first SIGINT or SIGTERM stop the import between inputs (a second
 * one kills at once: SA_RESETHAND). */
static void
catch_stop_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

typedef struct progress {
	bool on; /* stderr is a terminal and there are many inputs */
	bool drawn;
	struct timespec last;
} progress;

/* Import hook: one error line per rejected unit, clearing the progress line. */
static void
on_rejected(void *ctx, const char *where, const char *reason)
{
	progress *p = ctx;

	if (p->drawn) {
		fputs("\r\033[K", stderr);
		p->drawn = false;
	}
	dc_log_error("%s: %s", where, reason);
}

/* Import hook: redraws the progress line (terminal only, at most every 0.2 s). */
static void
on_progress(void *ctx, const dc_import_stats *s)
{
	progress *p = ctx;
	struct timespec now;

	if (!p->on)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (p->drawn && s->files < s->files_total &&
		(now.tv_sec - p->last.tv_sec) * 1000000000L + (now.tv_nsec - p->last.tv_nsec) <
			PROGRESS_EVERY_NS)
		return;
	p->last = now;
	fprintf(stderr,
		"\r\033[Kimport: %" PRIu64 "/%" PRIu64 " files, %" PRIu64 " reports, %" PRIu64 " rejected",
		s->files, s->files_total, s->reports, s->rejected);
	fflush(stderr);
	p->drawn = true;
}

/* `import PATH...`: 0 all stored, 1 some rejected, 2 bad arguments or paths
 * or the database refused (no privilege ...), 75 the database failed (the
 * import stops there). */
static int
cmd_import(run_ctx *c, int argc, char **argv)
{
	dc_import_list *list = NULL;
	dc_import_stats stats = { 0 };
	char kinds[80];
	dc_import_hooks hooks;
	dc_store *st = NULL;
	progress prog = { 0 };
	dc_err err;
	dc_code rc;
	int first = 1, status;

	if (argc > 1 && strcmp(argv[1], "--") == 0)
		first = 2;
	else
		for (int i = 1; i < argc; i++)
			if (argv[i][0] == '-' && argv[i][1] != '\0')
				return usage_error("import: unknown option '%s' (use -- before a path "
						   "that starts with -)",
					argv[i]);
	if (first >= argc)
		return usage_error("%s: needs at least one PATH", "import");
	dc_err_clear(&err);
	rc = dc_import_collect(argv + first, (size_t)(argc - first), &list, &err);
	if (rc != DC_OK) {
		dc_log_error("import: %s", dc_err_text(&err));
		return dc_exit_for(rc);
	}
	if ((status = open_store(c, "import", &st)) != 0)
		goto out;
	prog.on = isatty(STDERR_FILENO) && list->n >= PROGRESS_MIN_FILES && dc_log_get_level() >= DC_LOG_INFO;
	hooks = (dc_import_hooks){
		.ctx = &prog, .rejected = on_rejected, .progress = on_progress, .stop = &g_stop
	};
	catch_stop_signals();
	rc = dc_import_run(st, &c->cfg->limits, list, &hooks, &stats, &err);
	if (prog.drawn)
		fputs("\r\033[K", stderr);
	if (rc != DC_OK) {
		status = dc_exit_for(rc);
		dc_log_error("import stopped after %" PRIu64 " of %" PRIu64 " files: %s "
			     "(no report is half-stored; what was stored stays stored; %s)",
			stats.files, stats.files_total, dc_err_text(&err), again(status, "the import"));
	} else {
		status = stats.rejected > 0 ? DC_EXIT_REJECTED : DC_EXIT_STORED;
	}
	dc_ingest_kinds(kinds, sizeof(kinds), stats.tls_reports, stats.failure_reports);
	dc_log_info("import: %" PRIu64 " inputs, %" PRIu64 " reports stored, %" PRIu64
		    " duplicates%s, %" PRIu64 " records, %" PRIu64 " rejected",
		stats.inputs, stats.reports, stats.duplicates, kinds, stats.records, stats.rejected);
out:
	dc_store_free(st);
	dc_import_list_free(list);
	return status;
}

/* ---------------------------------------------------------------- reparse */

/* `reparse`: parses every stored original again; statuses as for import. */
static int
cmd_reparse(run_ctx *c, int argc, char **argv)
{
	char kinds[80];
	dc_extract_stats xs = { 0 };
	dc_store *st = NULL;
	dc_err err;
	dc_code rc;
	int status;

	if (!no_args(argc, argv))
		return DC_EXIT_CONFIG;
	if ((status = open_store(c, "reparse", &st)) != 0)
		return status;
	dc_err_clear(&err);
	rc = dc_store_reparse(st, &c->cfg->limits, &xs, &err);
	if (rc != DC_OK) {
		status = dc_exit_for(rc);
		dc_log_error("reparse stopped: %s (originals not yet parsed again keep their old "
			     "reports; %s)",
			dc_err_text(&err), again(status, "it"));
	} else {
		status = xs.failures > 0 ? DC_EXIT_REJECTED : DC_EXIT_STORED;
	}
	dc_ingest_kinds(kinds, sizeof(kinds), xs.tls_reports, xs.failure_reports);
	dc_log_info("reparse: %" PRIu64 " reports stored, %" PRIu64 " duplicates%s, %" PRIu64
		    " records, %" PRIu64 " rejected",
		xs.reports, xs.duplicates, kinds, xs.records, xs.failures);
	dc_store_free(st);
	return status;
}

/* ---------------------------------------------------------------- others */

/* `poll [--once]`: hands over to dc_service (dc_commands.h). */
static int
cmd_poll(run_ctx *c, int argc, char **argv)
{
	bool once = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--once") == 0)
			once = true;
		else
			return usage_error("poll: unexpected argument '%s'", argv[i]);
	}
	return dc_cmd_poll(c->config_path, c->db_override, c->cfg, once);
}

/* `resolve`: hands over to dc_resolve (dc_commands.h). */
static int
cmd_resolve(run_ctx *c, int argc, char **argv)
{
	if (!no_args(argc, argv))
		return DC_EXIT_CONFIG;
	return dc_cmd_resolve(c->cfg);
}

/* `prune --older-than DAYS` (or --older-than=DAYS): hands over to dc_prune. */
static int
cmd_prune(run_ctx *c, int argc, char **argv)
{
	const char *v = NULL;
	char *end = NULL;
	long days;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--older-than") == 0 && i + 1 < argc)
			v = argv[++i];
		else if (strncmp(argv[i], "--older-than=", 13) == 0)
			v = argv[i] + 13;
		else
			return usage_error("prune: unexpected argument '%s'", argv[i]);
	}
	if (v == NULL)
		return usage_error("%s: needs --older-than DAYS", "prune");
	days = strtol(v, &end, 10);
	if (v[0] < '0' || v[0] > '9' || *end != '\0' || days > 1000000)
		return usage_error("prune: --older-than: '%s' is not a number of days", v);
	return dc_cmd_prune(c->cfg, (int)days);
}

/* ---------------------------------------------------------------- senders */

/* `senders load|set|unset ...`: program/dc_senders_cmd.c parses the rest. */
static int
cmd_senders(run_ctx *c, int argc, char **argv)
{
	return dc_cmd_senders(c->cfg, argc, argv);
}

/* Logs how far the schema is behind the SQL compiled in (a warning:
 * `migrate` fixes it; an error when migrate would refuse), and group roles
 * missing or without their grants (a warning naming them, with the SQL). */
static void
check_schema(dc_store *st)
{
	dc_schema_status s;

	dc_store_migration_status(st, &s);
	if (s.v01)
		dc_log_warn(
			"check-config: database: schema 0.1; run `dmarc-collector migrate` to upgrade it to 1.0");
	else if (s.migrations_applied < 0)
		dc_log_warn("check-config: database: no dmarc schema yet; run `dmarc-collector migrate`");
	else if (s.conflict[0] != '\0')
		dc_log_error("check-config: database: %s", s.conflict);
	else if (s.migrations_applied < s.migrations_known || s.objects_stale != 0)
		dc_log_warn(
			"check-config: database: %d of %d migrations applied, %d of %d objects out of date; "
			"run `dmarc-collector migrate`",
			s.migrations_applied, s.migrations_known,
			s.objects_stale < 0 ? s.objects_known : s.objects_stale, s.objects_known);
	else
		dc_log_info(
			"check-config: database: reachable, schema up to date (%d migrations, %d objects)",
			s.migrations_applied, s.objects_known);
	/* a warning, not a failure: the collector itself works without the
	 * groups; only the logins that should be members of them cannot work */
	if (s.roles_warning[0] != '\0')
		dc_log_warn("check-config: database: %s", s.roles_warning);
}

/* `check-config`: the file was valid (else main returned 2); reaches the
 * database, every mailbox and the DNS servers, opens the [enrich] files; returns the worst status. */
static int
cmd_check_config(run_ctx *c, int argc, char **argv)
{
	dc_store *st = NULL;
	int status, s;

	if (!no_args(argc, argv))
		return DC_EXIT_CONFIG;
	dc_log_info("check-config: %s: valid, %zu mailbox%s",
		c->config_path ? c->config_path : "(no file, environment only)", c->cfg->n_mailboxes,
		c->cfg->n_mailboxes == 1 ? "" : "es");
	status = open_store(c, "check-config: database", &st);
	if (status == 0)
		check_schema(st);
	dc_store_free(st);
	s = dc_check_imap(c->cfg);
	status = dc_exit_worse(status, s);
	s = dc_check_dns(c->cfg);
	status = dc_exit_worse(status, s);
	status = dc_exit_worse(status, dc_check_ipdb(c->cfg));
	status = dc_exit_worse(status, dc_alerts_hook_check(c->cfg));
	if (status == 0)
		dc_log_info("check-config: every service reached");
	return status;
}

/* ---------------------------------------------------------------- main */

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "db", required_argument, NULL, 'd' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	run_ctx c = { 0 };
	const command *cmd = NULL;
	dc_err err;
	dc_code rc;
	int opt, status;
	bool verbose = false, quiet = false;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:c:d:vqhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': c.config_path = optarg; break;
		case 'd': c.db_override = optarg; break;
		case 'v': verbose = true; break;
		case 'q': quiet = true; break;
		case 'h': usage(stdout); return DC_EXIT_STORED;
		case 'V': dc_version_print(stdout); return DC_EXIT_STORED;
		case ':': return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default: return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (verbose && quiet)
		return usage_error("%s", "-v and -q exclude each other");
	dc_log_set_level(verbose ? DC_LOG_DEBUG : quiet ? DC_LOG_ERROR : DC_LOG_INFO);
	if (optind >= argc)
		return usage_error("%s", "no command given");
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (cmd == NULL)
		return usage_error("unknown command '%s'", argv[optind]);

	if (c.config_path == NULL) {
		const char *e = getenv("DMARC_COLLECTOR_CONFIG");

		c.config_path = (e != NULL && e[0] != '\0') ? e : NULL;
#ifdef DC_DEFAULT_CONFIG
		if (e == NULL && access(DC_DEFAULT_CONFIG, F_OK) == 0) /* set but empty: no file */
			c.config_path = DC_DEFAULT_CONFIG;
#endif
	}
	dc_err_clear(&err);
	rc = dc_config_load(c.config_path, &c.cfg, &err);
	if (rc != DC_OK) {
		dc_log_error("%s", dc_err_text(&err));
		return rc == DC_ENOMEM ? DC_EXIT_TEMPFAIL : DC_EXIT_CONFIG;
	}
	if (c.db_override != NULL) {
		char *db = strdup(c.db_override);

		if (db == NULL) {
			dc_config_free(c.cfg);
			return DC_EXIT_TEMPFAIL;
		}
		free(c.cfg->db_conninfo);
		c.cfg->db_conninfo = db;
	}
	setenv("PGAPPNAME", "dmarc-collector", 0);

	dc_xml_init();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		dc_log_error("libcurl could not be initialised");
		dc_config_free(c.cfg);
		return DC_EXIT_TEMPFAIL;
	}
	dc_log_debug("%s: configuration %s, database %s", cmd->name, c.config_path ? c.config_path : "(none)",
		c.cfg->db_conninfo ? "from --db or [database] conninfo" : "from libpq's environment");
	status = cmd->run(&c, argc - optind, argv + optind);
	curl_global_cleanup();
	dc_config_free(c.cfg);
	return status;
}
