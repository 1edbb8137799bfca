/*
 * test_config.c - dc_config_load, table-driven: good files, each kind of
 * error (with file:line and key in the message), environment overrides and
 * password files; the checks `poll` adds (dc_config_check_poll).  Each case writes its file (and a password file "pw" next
 * to it) into a fresh temporary directory.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "dc_config.h"

extern char **environ;

typedef struct config_case {
	const char *name;
	const char *ini;     /* NULL: no file at all */
	const char *env[10]; /* "NAME=VALUE" */
	const char *pw;      /* content of DIR/pw, NULL: no such file */
	mode_t pw_mode;
	dc_code rc;
	const char *msg[3]; /* substrings the error message must hold */
	void (*check)(const dc_config *cfg, const char *dir);
} config_case;

/* ---------------------------------------------------------------- checks */

static void
check_defaults(const dc_config *cfg, const char *dir)
{
	(void)dir;
	assert_int_equal(cfg->interval, 300);
	assert_int_equal(cfg->dns_timeout_ms, 2000);
	assert_int_equal(cfg->dns_retry_after, 86400);
	assert_int_equal(cfg->dns_in_flight, 64);
	assert_null(cfg->dns_servers);
	assert_null(cfg->metrics_listen);
	assert_null(cfg->alerts_command);
	assert_int_equal(cfg->alerts_timeout, 60);
	assert_null(cfg->db_conninfo);
	assert_null(cfg->db_password);
	assert_int_equal(cfg->n_mailboxes, 0);
	assert_true(cfg->limits.max_message_bytes == DC_DEFAULT_MAX_MESSAGE_BYTES);
	assert_true(cfg->limits.max_report_bytes == DC_DEFAULT_MAX_REPORT_BYTES);
	assert_true(cfg->limits.max_ratio == DC_DEFAULT_MAX_RATIO);
	assert_true(cfg->limits.max_records == DC_DEFAULT_MAX_RECORDS);
	assert_true(cfg->limits.max_members == DC_DEFAULT_MAX_MEMBERS);
	assert_true(cfg->limits.max_nesting == DC_DEFAULT_MAX_NESTING);
	assert_true(cfg->limits.max_reports == DC_DEFAULT_MAX_REPORTS);
	assert_true(cfg->limits.max_unpacked_bytes == DC_DEFAULT_MAX_UNPACKED_BYTES);
}

static void
check_full(const dc_config *cfg, const char *dir)
{
	const dc_mailbox_config *a, *b;
	char path[512];

	assert_string_equal(cfg->db_conninfo, "postgresql://dmarc@db.example.com/dmarc");
	assert_string_equal(cfg->db_password, "db secret");
	assert_int_equal(cfg->interval, 60);
	assert_string_equal(cfg->dns_servers, "127.0.0.1:5353,[::1]:53");
	assert_int_equal(cfg->dns_timeout_ms, 500);
	assert_int_equal(cfg->dns_retry_after, 0);
	assert_int_equal(cfg->dns_in_flight, 8);
	snprintf(path, sizeof(path), "%s/alerts-mail.sh admin@example.com", dir);
	assert_string_equal(cfg->alerts_command, path);
	assert_int_equal(cfg->alerts_timeout, 5);
	assert_true(cfg->limits.max_message_bytes == 1000);
	assert_true(cfg->limits.max_report_bytes == 2000);
	assert_true(cfg->limits.max_ratio == 30);
	assert_true(cfg->limits.max_records == 40);
	assert_true(cfg->limits.max_members == 5);
	assert_true(cfg->limits.max_nesting == 2);
	assert_true(cfg->limits.max_reports == 6);
	assert_true(cfg->limits.max_unpacked_bytes == 3000);
	assert_int_equal(cfg->n_mailboxes, 2);
	a = &cfg->mailboxes[0];
	b = &cfg->mailboxes[1];
	assert_string_equal(a->label, "rua");
	assert_string_equal(a->url, "imaps://imap.example.com/INBOX");
	assert_string_equal(a->user, "rua@example.com");
	assert_string_equal(a->password, "db secret");
	assert_null(a->oauth2_token_command);
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	assert_string_equal(a->ca_file, path);
	assert_int_equal(a->tls, DC_TLS_REQUIRED);
	assert_string_equal(a->archive_folder, "Archive/DMARC");
	assert_string_equal(a->invalid_folder, "Archive/Invalid");
	assert_int_equal(a->after, DC_AFTER_MOVE);
	assert_int_equal(a->connections, 4);
	assert_string_equal(b->label, "second one");
	assert_string_equal(b->url, "imap://127.0.0.1:1143/Reports");
	assert_null(b->password);
	assert_string_equal(b->oauth2_token_command, "/usr/local/bin/fetch-token --user x");
	assert_int_equal(b->tls, DC_TLS_NONE);
	assert_string_equal(b->archive_folder, "Done");
	assert_string_equal(b->invalid_folder, "Bad");
	assert_int_equal(b->after, DC_AFTER_DELETE);
	assert_int_equal(b->connections, 2);
	assert_null(b->ca_file);
}

static void
check_env_overrides(const dc_config *cfg, const char *dir)
{
	(void)dir;
	assert_int_equal(cfg->interval, 45);
	assert_string_equal(cfg->db_conninfo, "host=envhost");
	assert_string_equal(cfg->db_password, "from env");
	assert_true(cfg->limits.max_ratio == 99);
	assert_true(cfg->limits.max_members == 7);
	assert_true(cfg->limits.max_nesting == 3);
	assert_true(cfg->limits.max_reports == 1000);
	assert_true(cfg->limits.max_unpacked_bytes == 4096);
	assert_int_equal(cfg->n_mailboxes, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(cfg->mailboxes[i].password, "imap env secret");
		assert_string_equal(cfg->mailboxes[i].user, "env@example.com");
	}
	/* keys the environment does not set keep their file values */
	assert_int_equal(cfg->mailboxes[0].after, DC_AFTER_MOVE);
	assert_int_equal(cfg->mailboxes[1].after, DC_AFTER_DELETE);
}

static void
check_env_only_mailbox(const dc_config *cfg, const char *dir)
{
	(void)dir;
	assert_int_equal(cfg->n_mailboxes, 1);
	assert_string_equal(cfg->mailboxes[0].label, "default");
	assert_string_equal(cfg->mailboxes[0].url, "imaps://mail.example.org/INBOX");
	assert_string_equal(cfg->mailboxes[0].password, "pw");
}

static void
check_pw_stripped(const dc_config *cfg, const char *dir)
{
	(void)dir;
	assert_string_equal(cfg->db_password, "s3cret ; not a comment");
	assert_string_equal(cfg->mailboxes[0].label, "default");
	assert_string_equal(cfg->mailboxes[0].password, "s3cret ; not a comment");
}

static void
check_env_password_wins(const dc_config *cfg, const char *dir)
{
	(void)dir;
	assert_string_equal(cfg->db_password, "env wins");
}

static void
check_comments(const dc_config *cfg, const char *dir)
{
	(void)dir;
	assert_int_equal(cfg->interval, 30);
	assert_string_equal(cfg->db_conninfo, "host=a;b port=5");
}

/* 188 bytes: "conninfo = " (11) + this = 199, the longest line inih reads */
#define LINE188 \
	"host=" \
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

static void
check_long_line(const dc_config *cfg, const char *dir)
{
	(void)dir;
	assert_int_equal(strlen(cfg->db_conninfo), 188);
}

/* metrics_listen parses back to an address with port 9187. */
static void
check_listen(const dc_config *cfg, const char *dir)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	dc_err err;

	(void)dir;
	assert_non_null(cfg->metrics_listen);
	assert_int_equal(dc_config_parse_listen(cfg->metrics_listen, &ss, &len, &err), DC_OK);
	if (strcmp(cfg->metrics_listen, "localhost:9187") == 0) {
		assert_int_equal(ss.ss_family, AF_INET);
		assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), 0x7f000001);
	}
	assert_int_equal(ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
							 ((struct sockaddr_in6 *)&ss)->sin6_port),
		9187);
}

/* ---------------------------------------------------------------- cases */

#define MB_OK "[mailbox rua]\nurl = imaps://imap.example.com/INBOX\nuser = u\npassword_file = pw\n"

static const config_case cases[] = {
	{ "no file: defaults", NULL, { NULL }, NULL, 0, DC_OK, { NULL }, check_defaults },
	{ "empty file: defaults", "", { NULL }, NULL, 0, DC_OK, { NULL }, check_defaults },
	{ "comments only", "; a comment\n# another\n\n", { NULL }, NULL, 0, DC_OK, { NULL }, check_defaults },
	{ "full file",
		"[database]\nconninfo = postgresql://dmarc@db.example.com/dmarc ; libpq\npassword_file = pw\n"
		"[mailbox rua]\nurl = imaps://imap.example.com/INBOX\nuser = rua@example.com\n"
		"password_file = pw\nca_file = ca.pem\ntls = REQUIRED\narchive_folder = Archive/DMARC\n"
		"after = move\n"
		"[mailbox second one]\nurl = imap://127.0.0.1:1143/Reports\nuser = x\n"
		"oauth2_token_command = /usr/local/bin/fetch-token --user x\ntls = none\n"
		"archive_folder = Done\ninvalid_folder = Bad\nafter = delete\nconnections = 2\n"
		"[service]\ninterval = 60\n[dns]\nservers = 127.0.0.1:5353,[::1]:53\ntimeout_ms = 500\n"
		"retry_after = 0\nin_flight = 8\n[limits]\nmax_message_bytes = 1000\nmax_report_bytes = 2000\n"
		"max_ratio = 30\nmax_records = 40\nmax_members = 5\nmax_nesting = 2\nmax_reports = 6\n"
		"max_unpacked_bytes = 3000\n[alerts]\ncommand = alerts-mail.sh admin@example.com\ntimeout = 5\n",
		{ NULL }, "db secret\n", 0600, DC_OK, { NULL }, check_full },
	{ "inline comments need a blank before ;",
		"[service]\ninterval = 30 ; seconds\n[database]\nconninfo = host=a;b port=5\n", { NULL },
		NULL, 0, DC_OK, { NULL }, check_comments },

	/* errors in the file: file:line, section and key named */
	{ "unknown key", "[service]\ninterval = 5\nintervall = 6\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:3:", "intervall", "unknown key" }, NULL },
	{ "unknown section", "[service]\ninterval = 5\n[databse]\nconninfo = x\n", { NULL }, NULL, 0,
		DC_ECONFIG, { "cfg.ini:3:", "unknown section [databse]" }, NULL },
	{ "empty unknown section", "[nothing here]\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:1:", "unknown section" }, NULL },
	{ "label on a section without labels", "[service fast]\ninterval = 5\n", { NULL }, NULL, 0,
		DC_ECONFIG, { "cfg.ini:1:", "[service fast]", "only [mailbox NAME]" }, NULL },
	{ "key outside any section", "interval = 5\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:1:", "interval" }, NULL },
	{ "not a number", "[service]\ninterval = 5m\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "interval", "not a number" }, NULL },
	{ "negative number", "[dns]\ntimeout_ms = -1\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "timeout_ms", "not a number" }, NULL },
	{ "number out of range", "[limits]\nmax_ratio = 0\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "max_ratio", "out of range" }, NULL },
	{ "max_members 0", "[limits]\nmax_members = 0\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "max_members", "out of range" }, NULL },
	{ "max_members too large", "[limits]\nmax_members = 100001\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "max_members", "out of range" }, NULL },
	{ "max_nesting too deep", "[limits]\nmax_nesting = 17\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "max_nesting", "out of range" }, NULL },
	{ "max_reports 0", "[limits]\nmax_reports = 0\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "max_reports", "out of range" }, NULL },
	{ "max_unpacked_bytes not a number", "[limits]\nmax_unpacked_bytes = 1G\n", { NULL }, NULL, 0,
		DC_ECONFIG, { "cfg.ini:2:", "max_unpacked_bytes", "not a number" }, NULL },
	{ "number overflows", "[limits]\nmax_records = 99999999999999999999999\n", { NULL }, NULL, 0,
		DC_ECONFIG, { "cfg.ini:2:", "max_records" }, NULL },
	{ "bad enum", MB_OK "after = archive\n", { NULL }, "x", 0600, DC_ECONFIG,
		{ "cfg.ini:5:", "after", "'archive' is not one of move, seen, delete" }, NULL },
	{ "in_flight out of range", "[dns]\nin_flight = 1025\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "in_flight", "out of range" }, NULL },
	{ "alerts timeout 0", "[alerts]\ntimeout = 0\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "timeout", "out of range" }, NULL },
	{ "no connections", MB_OK "connections = 0\n", { NULL }, "x", 0600, DC_ECONFIG,
		{ "cfg.ini:5:", "connections", "out of range" }, NULL },
	{ "too many connections", MB_OK "connections = 17\n", { NULL }, "x", 0600, DC_ECONFIG,
		{ "cfg.ini:5:", "connections", "out of range" }, NULL },
	{ "bad tls", MB_OK "tls = optional\n", { NULL }, "x", 0600, DC_ECONFIG,
		{ "cfg.ini:5:", "tls", "required, none" }, NULL },
	{ "secret in the file", "[database]\npassword = hunter2\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "password", "DMARC_COLLECTOR_DATABASE_PASSWORD" }, NULL },
	{ "key set twice", "[service]\ninterval = 5\ninterval = 6\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:3:", "interval", "twice" }, NULL },
	{ "continuation line", "[service]\ninterval = 5\n  6\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:3:", "interval" }, NULL },
	{ "syntax error", "[service]\ninterval 5\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "syntax error" }, NULL },
	{ "first error wins", "[service]\nbogus = 1\n[x]\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "bogus" }, NULL },
	{ "line too long",
		"[database]\nconninfo = host=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n[service]\ninterval = 5\n",
		{ NULL }, NULL, 0, DC_ECONFIG, { "cfg.ini:2:", "line longer than" }, NULL },

	{ "line of 199 bytes is fine", "[database]\nconninfo = " LINE188 "\n", { NULL }, NULL, 0, DC_OK,
		{ NULL }, check_long_line },
	{ "line of 200 bytes is not", "[database]\nconninfo = " LINE188 "x\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "longer than 199 bytes" }, NULL },

	/* [service] metrics_listen: HOST:PORT, numeric or localhost */
	{ "metrics_listen IPv4", "[service]\nmetrics_listen = 127.0.0.1:9187\n", { NULL }, NULL, 0, DC_OK,
		{ NULL }, check_listen },
	{ "metrics_listen IPv6 and localhost", "[service]\nmetrics_listen = [::1]:9187\n",
		{ "DMARC_COLLECTOR_SERVICE_METRICS_LISTEN=localhost:9187" }, NULL, 0, DC_OK, { NULL },
		check_listen },
	{ "metrics_listen without port", "[service]\nmetrics_listen = 127.0.0.1\n", { NULL }, NULL, 0,
		DC_ECONFIG, { "cfg.ini:2:", "metrics_listen", "not HOST:PORT" }, NULL },
	{ "metrics_listen port 0", "[service]\nmetrics_listen = 127.0.0.1:0\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "cfg.ini:2:", "not HOST:PORT" }, NULL },
	{ "metrics_listen port too big", "[service]\nmetrics_listen = 0.0.0.0:65536\n", { NULL }, NULL, 0,
		DC_ECONFIG, { "cfg.ini:2:", "not HOST:PORT" }, NULL },
	{ "metrics_listen IPv6 without brackets", "[service]\nmetrics_listen = ::1:9187\n", { NULL }, NULL, 0,
		DC_ECONFIG, { "cfg.ini:2:", "not HOST:PORT" }, NULL },
	{ "metrics_listen host name", "[service]\nmetrics_listen = metrics.example.com:9187\n", { NULL },
		NULL, 0, DC_ECONFIG, { "cfg.ini:2:", "not HOST:PORT" }, NULL },

	/* mailbox rules */
	{ "mailbox without url", "[mailbox rua]\nuser = u\npassword_file = pw\n", { NULL }, "x", 0600,
		DC_ECONFIG, { "cfg.ini:1:", "[mailbox rua]", "url is required" }, NULL },
	{ "mailbox without user", "[mailbox rua]\nurl = imaps://h/INBOX\npassword_file = pw\n", { NULL }, "x",
		0600, DC_ECONFIG, { "[mailbox rua]", "user is required" }, NULL },
	{ "empty mailbox section", "[service]\ninterval = 5\n[mailbox empty]\n", { NULL }, NULL, 0,
		DC_ECONFIG, { "cfg.ini:3:", "[mailbox empty]", "url is required" }, NULL },
	{ "mailbox without credentials", "[mailbox rua]\nurl = imaps://h/INBOX\nuser = u\n", { NULL }, NULL,
		0, DC_ECONFIG, { "[mailbox rua]", "exactly one" }, NULL },
	{ "mailbox with password and oauth2", MB_OK "oauth2_token_command = /bin/tok\n", { NULL }, "x", 0600,
		DC_ECONFIG, { "[mailbox rua]", "exactly one" }, NULL },
	{ "url scheme", "[mailbox rua]\nurl = https://h/INBOX\nuser = u\npassword_file = pw\n", { NULL }, "x",
		0600, DC_ECONFIG, { "[mailbox rua]", "imaps:// or imap://" }, NULL },
	{ "url without host", "[mailbox rua]\nurl = imaps:///INBOX\nuser = u\npassword_file = pw\n", { NULL },
		"x", 0600, DC_ECONFIG, { "[mailbox rua]", "no host" }, NULL },
	{ "imaps with tls none", MB_OK "tls = none\n", { NULL }, "x", 0600, DC_ECONFIG,
		{ "[mailbox rua]", "tls = none" }, NULL },

	/* password files */
	{ "password file newline stripped",
		"[database]\npassword_file = pw\n[mailbox]\nurl = imap://h/INBOX\nuser = u\npassword_file = pw\n",
		{ NULL }, "s3cret ; not a comment\r\n", 0640, DC_OK, { NULL }, check_pw_stripped },
	{ "password file world-readable", "[database]\npassword_file = pw\n", { NULL }, "x\n", 0644,
		DC_ECONFIG, { "password_file", "/pw", "chmod o-r" }, NULL },
	{ "password file missing", "[database]\npassword_file = nope\n", { NULL }, NULL, 0, DC_ECONFIG,
		{ "password_file", "/nope", "cannot open" }, NULL },
	{ "password file empty", "[database]\npassword_file = pw\n", { NULL }, "\n", 0600, DC_ECONFIG,
		{ "password_file", "empty" }, NULL },
	{ "password file with two lines", "[database]\npassword_file = pw\n", { NULL }, "a\nb\n", 0600,
		DC_ECONFIG, { "password_file", "one line" }, NULL },
	{ "env password wins over password_file", "[database]\npassword_file = nope\n",
		{ "DMARC_COLLECTOR_DATABASE_PASSWORD=env wins" }, NULL, 0, DC_OK, { NULL },
		check_env_password_wins },

	/* environment */
	{ "environment overrides the file",
		"[service]\ninterval = 120\n[database]\nconninfo = host=filehost\n[limits]\nmax_ratio = 5\n"
		"[mailbox a]\nurl = imaps://a/INBOX\nuser = a\npassword_file = nope\n"
		"[mailbox b]\nurl = imaps://b/INBOX\nuser = b\nafter = delete\n",
		{ "DMARC_COLLECTOR_SERVICE_INTERVAL=45", "DMARC_COLLECTOR_DATABASE_CONNINFO=host=envhost",
			"DMARC_COLLECTOR_DATABASE_PASSWORD=from env", "DMARC_COLLECTOR_LIMITS_MAX_RATIO=99",
			"DMARC_COLLECTOR_LIMITS_MAX_MEMBERS=7", "DMARC_COLLECTOR_LIMITS_MAX_NESTING=3",
			"DMARC_COLLECTOR_LIMITS_MAX_REPORTS=1000",
			"DMARC_COLLECTOR_LIMITS_MAX_UNPACKED_BYTES=4096",
			"DMARC_COLLECTOR_MAILBOX_PASSWORD=imap env secret",
			"DMARC_COLLECTOR_MAILBOX_USER=env@example.com" },
		NULL, 0, DC_OK, { NULL }, check_env_overrides },
	{ "environment only mailbox", NULL,
		{ "DMARC_COLLECTOR_MAILBOX_URL=imaps://mail.example.org/INBOX",
			"DMARC_COLLECTOR_MAILBOX_USER=u", "DMARC_COLLECTOR_MAILBOX_PASSWORD=pw",
			"DMARC_COLLECTOR_CONFIG=/ignored/here" },
		NULL, 0, DC_OK, { NULL }, check_env_only_mailbox },
	{ "environment bad number", "[service]\ninterval = 5\n", { "DMARC_COLLECTOR_SERVICE_INTERVAL=soon" },
		NULL, 0, DC_ECONFIG, { "DMARC_COLLECTOR_SERVICE_INTERVAL", "not a number" }, NULL },
	{ "environment unknown variable", NULL, { "DMARC_COLLECTOR_DATABSE_CONNINFO=x" }, NULL, 0, DC_ECONFIG,
		{ "unknown environment variable DMARC_COLLECTOR_DATABSE_CONNINFO" }, NULL },
	{ "environment bad enum", MB_OK, { "DMARC_COLLECTOR_MAILBOX_AFTER=never" }, "x", 0600, DC_ECONFIG,
		{ "DMARC_COLLECTOR_MAILBOX_AFTER", "'never'" }, NULL },
	{ "environment mailbox still checked", NULL, { "DMARC_COLLECTOR_MAILBOX_USER=u" }, NULL, 0,
		DC_ECONFIG, { "[mailbox default]", "url is required" }, NULL },
};

/* ---------------------------------------------------------------- runner */

static void
clear_env(void)
{
	char name[256];
	bool again = true;

	while (again) {
		again = false;
		for (char **ep = environ; *ep != NULL; ep++) {
			const char *eq = strchr(*ep, '=');
			if (strncmp(*ep, "DMARC_COLLECTOR_", 16) == 0 && eq != NULL) {
				snprintf(name, sizeof(name), "%.*s", (int)(eq - *ep), *ep);
				unsetenv(name);
				again = true;
				break;
			}
		}
	}
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0 || text[0] == '\0', 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void
run_case(const config_case *c)
{
	char dir[] = "/tmp/test_config.XXXXXX";
	char ini[600], pw[600], cmd[700];
	dc_config *cfg = NULL;
	dc_err err;
	dc_code rc;

	assert_non_null(mkdtemp(dir));
	snprintf(ini, sizeof(ini), "%s/cfg.ini", dir);
	snprintf(pw, sizeof(pw), "%s/pw", dir);
	if (c->ini != NULL)
		write_file(ini, c->ini, 0644);
	if (c->pw != NULL)
		write_file(pw, c->pw, c->pw_mode);
	clear_env();
	for (size_t i = 0; i < sizeof(c->env) / sizeof(c->env[0]) && c->env[i] != NULL; i++)
		assert_int_equal(putenv((char *)c->env[i]), 0);
	print_message("case: %s\n", c->name);
	dc_err_clear(&err);
	rc = dc_config_load(c->ini != NULL ? ini : NULL, &cfg, &err);
	clear_env();
	if (rc != c->rc)
		fail_msg("case '%s': rc %d (%s), expected %d", c->name, rc, err.msg, c->rc);
	if (rc == DC_OK) {
		assert_non_null(cfg);
		if (c->check != NULL)
			c->check(cfg, dir);
	} else {
		assert_null(cfg);
		assert_int_equal(err.code, rc);
		for (size_t i = 0; i < 3 && c->msg[i] != NULL; i++)
			if (strstr(err.msg, c->msg[i]) == NULL)
				fail_msg("case '%s': message '%s' lacks '%s'", c->name, err.msg, c->msg[i]);
	}
	dc_config_free(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void
test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

/* The shipped example parses (its password files are not read: the
 * environment's passwords win over them). */
static void
test_example(void **state)
{
	dc_config *cfg = NULL;
	dc_err err;

	(void)state;
	clear_env();
	setenv("DMARC_COLLECTOR_DATABASE_PASSWORD", "x", 1);
	setenv("DMARC_COLLECTOR_MAILBOX_PASSWORD", "y", 1);
	dc_err_clear(&err);
	if (dc_config_load(DC_TEST_DATA "/../../examples/dmarc-collector.conf", &cfg, &err) != DC_OK)
		fail_msg("example: %s", err.msg);
	clear_env();
	assert_string_equal(cfg->db_conninfo, "postgresql://dmarc@db.example.com/dmarc");
	assert_int_equal(cfg->n_mailboxes, 1);
	assert_string_equal(cfg->mailboxes[0].label, "rua");
	assert_string_equal(cfg->mailboxes[0].url, "imaps://imap.example.com/INBOX");
	assert_string_equal(cfg->mailboxes[0].ca_file, "/etc/ssl/certs/ca-certificates.crt");
	assert_string_equal(cfg->mailboxes[0].invalid_folder, "Archive/Invalid");
	assert_int_equal(cfg->interval, 300);
	assert_true(cfg->limits.max_message_bytes == 67108864);
	dc_config_free(cfg);
}

/* What polling checks beyond loading (dc_config_check_poll/_mailbox). */
static void
test_poll_checks(void **state)
{
	static const struct {
		const char *url;
		dc_tls tls;
		const char *archive;
		dc_code rc;
		const char *msg; /* a substring of the error */
	} t[] = {
		{ "imaps://imap.example.com/INBOX", DC_TLS_REQUIRED, "Archive/DMARC", DC_OK, NULL },
		{ "imap://imap.example.com/INBOX", DC_TLS_REQUIRED, "Archive/DMARC", DC_OK, NULL },
		{ "imap://127.0.0.1:1143/INBOX", DC_TLS_NONE, "Archive/DMARC", DC_OK, NULL },
		{ "imap://localhost/INBOX", DC_TLS_NONE, "Archive/DMARC", DC_OK, NULL },
		{ "imap://imap.example.com/INBOX", DC_TLS_NONE, "Archive/DMARC", DC_ECONFIG,
			"tls = none is allowed only for a loopback server" },
		{ "http://imap.example.com/INBOX", DC_TLS_REQUIRED, "Archive/DMARC", DC_ECONFIG, "scheme" },
		{ "imaps://imap.example.com/INBOX", DC_TLS_REQUIRED, "Bad\r\nFolder", DC_ECONFIG, NULL },
	};
	char label[] = "rua";
	dc_config cfg;
	dc_err err;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	dc_err_clear(&err);
	assert_int_equal(dc_config_check_poll(&cfg, &err), DC_ECONFIG);
	assert_non_null(strstr(err.msg, "no [mailbox NAME] section"));
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		dc_mailbox_config mb = { .label = label,
			.url = (char *)t[i].url,
			.tls = t[i].tls,
			.archive_folder = (char *)t[i].archive,
			.invalid_folder = (char *)"Archive/Invalid" };
		dc_code rc;

		cfg.mailboxes = &mb;
		cfg.n_mailboxes = 1;
		dc_err_clear(&err);
		rc = dc_config_check_poll(&cfg, &err);
		print_message("check: %s %s -> %d %s\n", t[i].url, t[i].archive, rc, err.msg);
		assert_int_equal(rc, t[i].rc);
		assert_int_equal(dc_config_check_mailbox(&mb, &err), rc);
		if (t[i].msg != NULL)
			assert_non_null(strstr(err.msg, t[i].msg));
	}
}

static void
test_free_null(void **state)
{
	(void)state;
	dc_config_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_example),
		cmocka_unit_test(test_free_null),
		cmocka_unit_test(test_poll_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
