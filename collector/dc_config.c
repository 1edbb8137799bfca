/*
 * dc_config.c - the configuration file of SPEC section 7, read with inih,
 * plus the DMARC_COLLECTOR_<SECTION>_<KEY> environment and *_file secrets.
 *
 * Every key is one row of a declarative table {section, key, setter,
 * is_secret}; the file handler, the environment pass and the list of known
 * environment variables all walk that table.  Precedence: environment over
 * file over defaults.  Anything unknown (section, key, environment variable)
 * is an error naming the file and line (or the variable) and the key.
 *
 * Secrets (the database and IMAP passwords) are accepted from the
 * environment (DMARC_COLLECTOR_DATABASE_PASSWORD,
 * DMARC_COLLECTOR_MAILBOX_PASSWORD) or from a password_file, never from the
 * file itself and never from the command line.  A password_file must be a
 * regular file that is not world-readable (the rule libpq applies to
 * ~/.pgpass and ssh to its keys); one trailing newline (LF or CRLF) is
 * stripped.  Relative paths in the file are relative to the file's directory.
 *
 * dc_config_check_poll adds what polling needs beyond a well-formed file:
 * a mailbox at all, a URL that parses, tls = none only on loopback, folder
 * names that can be sent (with dc_imap's parser and quoting).
 *
 * Deliberately not here: whether a mailbox or the database can be reached
 * (check-config does that), or what a URL's folder means (dc_imap).
 * inih's line buffer is 200 bytes: lines of more than 199 bytes are an error,
 * not silently truncated.
 */
#include "dc_config.h"

#include "dc_imap.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#define ENV_PREFIX    "DMARC_COLLECTOR_"
#define DEFAULT_LABEL "default" /* [mailbox] without a label, or from the environment only */

/* Which struct a table row writes into. */
typedef enum { W_CONFIG, W_DBAUX, W_MAILBOX, W_MBAUX } where;

/* What the file says that dc_config does not keep. */
typedef struct db_aux {
	char *password_file;
} db_aux;

typedef struct mb_aux {
	char *password_file;
	uint64_t seen; /* table rows already set from the file */
	int line;      /* line of its first [mailbox NAME] header */
} mb_aux;

struct opt;
/* A setter writes value into the field of base named by o; on a bad value it
 * returns DC_ECONFIG with a reason (without location, the caller adds it).
 * basedir is the directory relative paths resolve against (NULL: as is). */
typedef dc_code (*setter_fn)(
	const struct opt *o, void *base, const char *value, const char *basedir, dc_err *err);

typedef struct opt {
	const char *section;
	const char *key;
	where in;
	size_t off;
	setter_fn set;
	bool is_secret;           /* only from the environment (or a *_file) */
	uint64_t min, max;        /* numbers */
	const char *const *names; /* enums: NULL-terminated, index = value */
} opt;

static dc_code set_str(const opt *, void *, const char *, const char *, dc_err *);
static dc_code set_path(const opt *, void *, const char *, const char *, dc_err *);
static dc_code set_int(const opt *, void *, const char *, const char *, dc_err *);
static dc_code set_u64(const opt *, void *, const char *, const char *, dc_err *);
static dc_code set_enum(const opt *, void *, const char *, const char *, dc_err *);
static dc_code set_listen(const opt *, void *, const char *, const char *, dc_err *);

static const char *const tls_names[] = { "required", "none", NULL };         /* dc_tls */
static const char *const after_names[] = { "move", "seen", "delete", NULL }; /* dc_after */
static const char *const yes_no_names[] = { "no", "yes", NULL };

#define CFG(f) W_CONFIG, offsetof(dc_config, f)
#define MB(f)  W_MAILBOX, offsetof(dc_mailbox_config, f)

static const opt options[] = {
	{ "database", "conninfo", CFG(db_conninfo), set_str, false, 0, 0, NULL },
	{ "database", "password_file", W_DBAUX, offsetof(db_aux, password_file), set_path, false, 0, 0,
		NULL },
	{ "database", "password", CFG(db_password), set_str, true, 0, 0, NULL },
	{ "mailbox", "url", MB(url), set_str, false, 0, 0, NULL },
	{ "mailbox", "user", MB(user), set_str, false, 0, 0, NULL },
	{ "mailbox", "password_file", W_MBAUX, offsetof(mb_aux, password_file), set_path, false, 0, 0, NULL },
	{ "mailbox", "password", MB(password), set_str, true, 0, 0, NULL },
	{ "mailbox", "oauth2_token_command", MB(oauth2_token_command), set_str, false, 0, 0, NULL },
	{ "mailbox", "ca_file", MB(ca_file), set_path, false, 0, 0, NULL },
	{ "mailbox", "tls", MB(tls), set_enum, false, 0, 0, tls_names },
	{ "mailbox", "archive_folder", MB(archive_folder), set_str, false, 0, 0, NULL },
	{ "mailbox", "invalid_folder", MB(invalid_folder), set_str, false, 0, 0, NULL },
	{ "mailbox", "after", MB(after), set_enum, false, 0, 0, after_names },
	{ "mailbox", "connections", MB(connections), set_int, false, 1, 16, NULL },
	{ "service", "interval", CFG(interval), set_int, false, 1, UINT64_C(7) * 86400, NULL },
	{ "service", "metrics_listen", CFG(metrics_listen), set_listen, false, 0, 0, NULL },
	{ "dns", "servers", CFG(dns_servers), set_str, false, 0, 0, NULL },
	{ "dns", "timeout_ms", CFG(dns_timeout_ms), set_int, false, 1, 600000, NULL },
	{ "dns", "retry_after", CFG(dns_retry_after), set_int, false, 0, UINT64_C(365) * 86400, NULL },
	{ "dns", "in_flight", CFG(dns_in_flight), set_int, false, 1, 1024, NULL },
	{ "enrich", "asn_db", CFG(asn_db), set_path, false, 0, 0, NULL },
	{ "enrich", "country_db", CFG(country_db), set_path, false, 0, 0, NULL },
	{ "alerts", "command", CFG(alerts_command), set_path, false, 0, 0, NULL },
	{ "alerts", "timeout", CFG(alerts_timeout), set_int, false, 1, 86400, NULL },
	{ "limits", "max_message_bytes", CFG(limits.max_message_bytes), set_u64, false, 1, UINT64_C(1) << 40,
		NULL },
	{ "limits", "max_report_bytes", CFG(limits.max_report_bytes), set_u64, false, 1, UINT64_C(1) << 44,
		NULL },
	{ "limits", "max_ratio", CFG(limits.max_ratio), set_u64, false, 1, 1000000, NULL },
	{ "limits", "max_records", CFG(limits.max_records), set_u64, false, 1, UINT64_C(1) << 40, NULL },
	{ "limits", "max_members", CFG(limits.max_members), set_u64, false, 1, DC_MAX_MEMBERS_CEILING, NULL },
	{ "limits", "max_nesting", CFG(limits.max_nesting), set_u64, false, 1, DC_MAX_NESTING_CEILING, NULL },
	{ "limits", "max_reports", CFG(limits.max_reports), set_u64, false, 1, DC_MAX_REPORTS_CEILING, NULL },
	{ "limits", "max_unpacked_bytes", CFG(limits.max_unpacked_bytes), set_u64, false, 1,
		UINT64_C(1) << 44, NULL },
	{ "failure_reports", "keep_body", CFG(limits.keep_failure_body), set_enum, false, 0, 0,
		yes_no_names },
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* The sections that exist, so an empty unknown section is still caught. */
static const char *const sections[] = { "database", "mailbox", "service", "dns", "enrich", "limits", "alerts",
	"failure_reports", NULL };

typedef struct loader {
	dc_config *cfg;
	db_aux db;
	mb_aux *mbs; /* parallel to cfg->mailboxes */
	size_t mb_cap;
	uint64_t seen; /* non-mailbox table rows set from the file */
	const char *path;
	char *dir; /* directory of path, for relative paths */
	FILE *fp;
	int lineno;   /* line the reader last returned */
	int err_line; /* line of err, 0 = no error yet */
	dc_err err;
} loader;

/* ---------------------------------------------------------------- setters */

static void *
field(void *base, const opt *o)
{
	return (char *)base + o->off;
}

/* Replaces the string at o with a copy of value. */
static dc_code
set_str(const opt *o, void *base, const char *value, const char *basedir, dc_err *err)
{
	char **dst = field(base, o);
	char *v = strdup(value);

	(void)basedir;
	if (v == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	free(*dst);
	*dst = v;
	return DC_OK;
}

/* Like set_str, but a relative path is joined to basedir. */
static dc_code
set_path(const opt *o, void *base, const char *value, const char *basedir, dc_err *err)
{
	char **dst = field(base, o);
	char *v = NULL;

	if (value[0] == '\0')
		return dc_err_set(err, DC_ECONFIG, "empty path");
	if (value[0] != '/' && basedir != NULL) {
		if (asprintf(&v, "%s/%s", basedir, value) < 0)
			v = NULL;
	} else {
		v = strdup(value);
	}
	if (v == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	free(*dst);
	*dst = v;
	return DC_OK;
}

/* Parses a decimal number without sign, blanks inside or junk, within
 * [o->min, o->max]. */
static dc_code
parse_number(const opt *o, const char *value, uint64_t *out, dc_err *err)
{
	char *end = NULL;
	unsigned long long v;

	if (!isdigit((unsigned char)value[0]))
		return dc_err_set(err, DC_ECONFIG, "not a number: '%s'", value);
	errno = 0;
	v = strtoull(value, &end, 10);
	if (errno != 0 || *end != '\0')
		return dc_err_set(err, DC_ECONFIG, "not a number: '%s'", value);
	if (v < o->min || v > o->max)
		return dc_err_set(
			err, DC_ECONFIG, "%llu is out of range %" PRIu64 "..%" PRIu64, v, o->min, o->max);
	*out = v;
	return DC_OK;
}

/* Parses value into o's field, a uint64_t when wide, else an int (the
 * range check keeps it in bounds). */
static dc_code
set_number(const opt *o, void *base, const char *value, bool wide, dc_err *err)
{
	uint64_t v = 0;
	dc_code rc = parse_number(o, value, &v, err);

	if (rc == DC_OK && wide)
		*(uint64_t *)field(base, o) = v;
	else if (rc == DC_OK)
		*(int *)field(base, o) = (int)v;
	return rc;
}

static dc_code
set_int(const opt *o, void *base, const char *value, const char *basedir, dc_err *err)
{
	(void)basedir;
	return set_number(o, base, value, false, err);
}

static dc_code
set_u64(const opt *o, void *base, const char *value, const char *basedir, dc_err *err)
{
	(void)basedir;
	return set_number(o, base, value, true, err);
}

/* Enums are stored as int (dc_tls, dc_after); names compare case-insensitively. */
static dc_code
set_enum(const opt *o, void *base, const char *value, const char *basedir, dc_err *err)
{
	char allowed[128] = "";

	(void)basedir;
	for (int i = 0; o->names[i] != NULL; i++) {
		if (strcasecmp(value, o->names[i]) == 0) {
			*(int *)field(base, o) = i;
			return DC_OK;
		}
		snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed), "%s%s", i ? ", " : "",
			o->names[i]);
	}
	return dc_err_set(err, DC_ECONFIG, "'%s' is not one of %s", value, allowed);
}

/* A HOST:PORT to listen on (dc_config_parse_listen), kept as written. */
static dc_code
set_listen(const opt *o, void *base, const char *value, const char *basedir, dc_err *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	dc_code rc = dc_config_parse_listen(value, &ss, &len, err);

	return rc == DC_OK ? set_str(o, base, value, basedir, err) : rc;
}

/* ---------------------------------------------------------------- mailboxes */

/* Returns the index of the mailbox labelled label, adding it (with the
 * defaults) when new; -1 when out of memory. */
static long
mailbox_index(loader *L, const char *label, int line)
{
	dc_config *cfg = L->cfg;
	dc_mailbox_config *mb;

	for (size_t i = 0; i < cfg->n_mailboxes; i++)
		if (cfg->mailboxes[i].label != NULL && strcmp(cfg->mailboxes[i].label, label) == 0)
			return (long)i;
	if (cfg->n_mailboxes == L->mb_cap) {
		size_t cap = L->mb_cap ? L->mb_cap * 2 : 4;
		dc_mailbox_config *m = realloc(cfg->mailboxes, cap * sizeof(*m));
		mb_aux *a;

		if (m == NULL)
			return -1;
		cfg->mailboxes = m;
		a = realloc(L->mbs, cap * sizeof(*a));
		if (a == NULL)
			return -1;
		L->mbs = a;
		L->mb_cap = cap;
	}
	mb = &cfg->mailboxes[cfg->n_mailboxes];
	memset(mb, 0, sizeof(*mb));
	memset(&L->mbs[cfg->n_mailboxes], 0, sizeof(L->mbs[0]));
	mb->tls = DC_TLS_REQUIRED;
	mb->after = DC_AFTER_MOVE;
	mb->connections = 4;
	mb->label = strdup(label);
	mb->archive_folder = strdup("Archive/DMARC");
	mb->invalid_folder = strdup("Archive/Invalid");
	L->mbs[cfg->n_mailboxes].line = line;
	cfg->n_mailboxes++;
	if (mb->label == NULL || mb->archive_folder == NULL || mb->invalid_folder == NULL)
		return -1;
	return (long)cfg->n_mailboxes - 1;
}

static void
mailbox_free_fields(dc_mailbox_config *mb)
{
	free(mb->label);
	free(mb->url);
	free(mb->user);
	if (mb->password != NULL)
		explicit_bzero(mb->password, strlen(mb->password));
	free(mb->password);
	free(mb->oauth2_token_command);
	free(mb->ca_file);
	free(mb->archive_folder);
	free(mb->invalid_folder);
}

/* ---------------------------------------------------------------- the file */

/* Splits "mailbox rua" into type "mailbox" and label "rua" (trimmed; the
 * default label when absent).  type and label are written into the buffers.
 * Returns whether a label was given. */
static bool
split_section(const char *section, char *type, size_t tcap, char *label, size_t lcap)
{
	size_t n = 0;
	const char *p = section;

	while (*p == ' ' || *p == '\t')
		p++;
	while (p[n] != '\0' && p[n] != ' ' && p[n] != '\t')
		n++;
	snprintf(type, tcap, "%.*s", (int)n, p);
	p += n;
	while (*p == ' ' || *p == '\t')
		p++;
	n = strlen(p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n == 0)
		snprintf(label, lcap, "%s", DEFAULT_LABEL);
	else
		snprintf(label, lcap, "%.*s", (int)n, p);
	return n > 0;
}

static bool
known_section(const char *type)
{
	for (int i = 0; sections[i] != NULL; i++)
		if (strcasecmp(type, sections[i]) == 0)
			return true;
	return false;
}

/* Records the first error of the file at line (later ones are dropped). */
static void __attribute__((format(printf, 3, 4))) file_error(loader *L, int line, const char *fmt, ...)
{
	char msg[DC_ERR_MSG_MAX];
	va_list ap;

	if (L->err_line != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	L->err_line = line;
	dc_err_set(&L->err, DC_ECONFIG, "%s:%d: %s", L->path, line, msg);
}

/*
 * inih's line reader: returns the next line (truncated to num - 1 bytes, the
 * rest of a longer line is consumed and flagged as an error), or NULL at the
 * end.  It also counts lines and checks section headers, so that an empty
 * unknown section is still an error and an empty [mailbox NAME] still exists.
 */
static char *
read_line(char *str, int num, void *stream)
{
	loader *L = stream;
	int c, n = 0;
	bool any = false, too_long = false;

	while ((c = getc(L->fp)) != EOF) {
		any = true;
		if (c == '\n')
			break;
		if (n < num - 1)
			str[n++] = (char)c;
		else if (c != '\r')
			too_long = true;
	}
	if (!any)
		return NULL;
	str[n] = '\0';
	L->lineno++;
	if (too_long)
		file_error(L, L->lineno, "line longer than %d bytes", num - 1);

	const char *p = str;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '[') {
		const char *end = strchr(p, ']');
		char sec[256], type[64], label[192];

		if (end != NULL) {
			snprintf(sec, sizeof(sec), "%.*s", (int)(end - p - 1), p + 1);
			bool labelled = split_section(sec, type, sizeof(type), label, sizeof(label));

			if (!known_section(type))
				file_error(L, L->lineno, "unknown section [%s]", sec);
			else if (labelled && strcasecmp(type, "mailbox") != 0)
				file_error(
					L, L->lineno, "[%s]: only [mailbox NAME] sections take a name", sec);
			else if (strcasecmp(type, "mailbox") == 0 && mailbox_index(L, label, L->lineno) < 0)
				file_error(L, L->lineno, "out of memory");
		}
	}
	return str;
}

static const opt *
find_option(const char *section, const char *key)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (strcasecmp(options[i].section, section) == 0 && strcasecmp(options[i].key, key) == 0)
			return &options[i];
	return NULL;
}

static void
env_name(const opt *o, char *buf, size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, ENV_PREFIX "%s_%s", o->section, o->key);

	for (size_t i = 0; i < n && i < cap; i++)
		buf[i] = (char)toupper((unsigned char)buf[i]);
}

/* Returns the struct a row writes into, for mailbox index mb (or -1). */
static void *
target(loader *L, const opt *o, long mb)
{
	switch (o->in) {
	case W_CONFIG: return L->cfg;
	case W_DBAUX: return &L->db;
	case W_MAILBOX: return &L->cfg->mailboxes[mb];
	case W_MBAUX: return &L->mbs[mb];
	}
	return NULL;
}

/* inih's handler: one key = value of the file.  Returns 1 (errors are kept in
 * L, the first one wins), 0 only on a syntax error inih itself reports. */
static int
on_key(void *user, const char *section, const char *name, const char *value)
{
	loader *L = user;
	char type[64], label[192], ename[128];
	const opt *o;
	long mb = -1;
	uint64_t *seen;
	size_t idx;
	dc_err e;

	dc_err_clear(&e);
	(void)split_section(section, type, sizeof(type), label, sizeof(label));
	if (section[0] == '\0') {
		file_error(L, L->lineno, "%s: key outside of any [section]", name);
		return 1;
	}
	if (!known_section(type))
		return 1; /* already reported by read_line */
	o = find_option(type, name);
	if (o == NULL) {
		file_error(L, L->lineno, "[%s] %s: unknown key", section, name);
		return 1;
	}
	if (o->is_secret) {
		env_name(o, ename, sizeof(ename));
		file_error(L, L->lineno,
			"[%s] %s: secrets are not read from the configuration file; "
			"use %s_file or the environment variable %s",
			section, name, name, ename);
		return 1;
	}
	idx = (size_t)(o - options);
	if (strcmp(o->section, "mailbox") == 0) {
		mb = mailbox_index(L, label, L->lineno);
		if (mb < 0) {
			file_error(L, L->lineno, "out of memory");
			return 1;
		}
		seen = &L->mbs[mb].seen;
	} else {
		seen = &L->seen;
	}
	if (*seen & (UINT64_C(1) << idx)) {
		file_error(L, L->lineno, "[%s] %s: set twice (continuation lines are not supported)", section,
			name);
		return 1;
	}
	*seen |= UINT64_C(1) << idx;
	if (o->set(o, target(L, o, mb), value, L->dir, &e) != DC_OK)
		file_error(L, L->lineno, "[%s] %s: %s", section, name, e.msg);
	return 1;
}

/* Reads the file into L->cfg; DC_OK or DC_ECONFIG/DC_ENOMEM with L->err set. */
static dc_code
load_file(loader *L, const char *path, dc_err *err)
{
	dc_code rc = DC_OK;
	char *slash;
	int r;

	L->path = path;
	L->dir = strdup(path);
	if (L->dir == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	slash = strrchr(L->dir, '/');
	if (slash == NULL) {
		free(L->dir);
		L->dir = NULL; /* relative to the working directory, like path */
	} else if (slash == L->dir) {
		slash[1] = '\0';
	} else {
		*slash = '\0';
	}
	L->fp = fopen(path, "r");
	if (L->fp == NULL)
		return dc_err_set(err, DC_ECONFIG, "%s: cannot open: %s", path, strerror(errno));
	r = ini_parse_stream(read_line, L, on_key, L);
	if (ferror(L->fp)) {
		rc = dc_err_set(err, DC_ECONFIG, "%s: read error", path);
		goto out;
	}
	if (r > 0 && (L->err_line == 0 || r < L->err_line)) {
		L->err_line = 0;
		file_error(L, r, "syntax error (expected [section] or key = value)");
	} else if (r < 0) {
		rc = dc_err_set(err, DC_ENOMEM, "%s: out of memory while parsing", path);
		goto out;
	}
	if (L->err_line != 0) {
		*err = L->err;
		rc = err->code;
	}
out:
	fclose(L->fp);
	L->fp = NULL;
	return rc;
}

/* ---------------------------------------------------------------- environment */

/* Applies every DMARC_COLLECTOR_* variable of the table (empty ones count as
 * unset) and refuses unknown ones. */
static dc_code
load_env(loader *L, dc_err *err)
{
	char name[128];
	dc_err e;

	for (char **ep = environ; ep != NULL && *ep != NULL; ep++) {
		const char *eq = strchr(*ep, '=');
		bool known = false;

		if (strncmp(*ep, ENV_PREFIX, strlen(ENV_PREFIX)) != 0 || eq == NULL)
			continue;
		if ((size_t)(eq - *ep) == strlen(ENV_PREFIX "CONFIG") &&
			strncmp(*ep, ENV_PREFIX "CONFIG", strlen(ENV_PREFIX "CONFIG")) == 0)
			continue;
		for (size_t i = 0; i < N_OPTIONS && !known; i++) {
			env_name(&options[i], name, sizeof(name));
			known = strlen(name) == (size_t)(eq - *ep) && strncmp(*ep, name, strlen(name)) == 0;
		}
		if (!known)
			return dc_err_set(
				err, DC_ECONFIG, "unknown environment variable %.*s", (int)(eq - *ep), *ep);
	}

	for (size_t i = 0; i < N_OPTIONS; i++) {
		const opt *o = &options[i];
		const char *v;

		env_name(o, name, sizeof(name));
		v = getenv(name);
		if (v == NULL || v[0] == '\0')
			continue;
		dc_err_clear(&e);
		if (strcmp(o->section, "mailbox") == 0) {
			if (L->cfg->n_mailboxes == 0 && mailbox_index(L, DEFAULT_LABEL, 0) < 0)
				return dc_err_set(err, DC_ENOMEM, "out of memory");
			for (size_t m = 0; m < L->cfg->n_mailboxes; m++)
				if (o->set(o, target(L, o, (long)m), v, NULL, &e) != DC_OK)
					return dc_err_set(err, e.code, "%s: %s", name, e.msg);
		} else if (o->set(o, target(L, o, -1), v, NULL, &e) != DC_OK) {
			return dc_err_set(err, e.code, "%s: %s", name, e.msg);
		}
	}
	return DC_OK;
}

/* ---------------------------------------------------------------- secrets */

/* Reads a password file into *out (caller frees): regular, not
 * world-readable, at most DC_MAX_SECRET_FILE bytes, not empty, trailing newlines
 * stripped.  what names the setting for messages. */
static dc_code
read_secret(const char *path, const char *what, char **out, dc_err *err)
{
	char buf[DC_MAX_SECRET_FILE + 1];
	struct stat sb;
	ssize_t n;
	size_t len = 0;
	int fd = -1;
	dc_code rc = DC_OK;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = dc_err_set(err, DC_ECONFIG, "%s %s: cannot open: %s", what, path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		rc = dc_err_set(err, DC_ECONFIG, "%s %s: not a regular file", what, path);
		goto out;
	}
	if (sb.st_mode & S_IROTH) {
		rc = dc_err_set(
			err, DC_ECONFIG, "%s %s: readable by everyone; run chmod o-r on it", what, path);
		goto out;
	}
	while ((n = read(fd, buf + len, sizeof(buf) - len)) > 0 && len < sizeof(buf))
		len += (size_t)n;
	if (n < 0) {
		rc = dc_err_set(err, DC_ECONFIG, "%s %s: read error: %s", what, path, strerror(errno));
		goto out;
	}
	if (len > DC_MAX_SECRET_FILE) {
		rc = dc_err_set(
			err, DC_ECONFIG, "%s %s: longer than %d bytes", what, path, DC_MAX_SECRET_FILE);
		goto out;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len == 0 || memchr(buf, '\0', len) != NULL || memchr(buf, '\n', len) != NULL) {
		rc = dc_err_set(
			err, DC_ECONFIG, "%s %s: %s", what, path, len == 0 ? "empty" : "must hold one line");
		goto out;
	}
	*out = strndup(buf, len);
	if (*out == NULL)
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
out:
	explicit_bzero(buf, sizeof(buf));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---------------------------------------------------------------- checks */

/* Checks one mailbox; loc is "FILE:LINE: [mailbox NAME]" or the like. */
static dc_code
check_mailbox(const dc_mailbox_config *mb, const mb_aux *aux, const char *loc, dc_err *err)
{
	const char *rest;
	int auths;

	if (mb->url == NULL || mb->url[0] == '\0')
		return dc_err_set(err, DC_ECONFIG, "%s: url is required", loc);
	if (mb->user == NULL || mb->user[0] == '\0')
		return dc_err_set(err, DC_ECONFIG, "%s: user is required", loc);
	if (strncasecmp(mb->url, "imaps://", 8) == 0) {
		rest = mb->url + 8;
		if (mb->tls == DC_TLS_NONE)
			return dc_err_set(err, DC_ECONFIG,
				"%s: tls = none contradicts an imaps:// url (use imap://)", loc);
	} else if (strncasecmp(mb->url, "imap://", 7) == 0) {
		rest = mb->url + 7;
	} else {
		return dc_err_set(
			err, DC_ECONFIG, "%s: url: '%s' must start with imaps:// or imap://", loc, mb->url);
	}
	if (rest[0] == '\0' || rest[0] == '/')
		return dc_err_set(err, DC_ECONFIG, "%s: url: '%s' names no host", loc, mb->url);
	auths = (mb->password != NULL || aux->password_file != NULL) + (mb->oauth2_token_command != NULL);
	if (auths != 1)
		return dc_err_set(err, DC_ECONFIG,
			"%s: needs exactly one of password_file "
			"(or DMARC_COLLECTOR_MAILBOX_PASSWORD) and oauth2_token_command",
			loc);
	return DC_OK;
}

/* Checks the mailboxes and reads the password files. */
static dc_code
finish(loader *L, dc_err *err)
{
	dc_config *cfg = L->cfg;
	char loc[512];
	dc_code rc;

	for (size_t i = 0; i < cfg->n_mailboxes; i++) {
		dc_mailbox_config *mb = &cfg->mailboxes[i];
		mb_aux *aux = &L->mbs[i];

		if (aux->line > 0)
			snprintf(loc, sizeof(loc), "%s:%d: [mailbox %s]", L->path, aux->line, mb->label);
		else
			snprintf(loc, sizeof(loc), "[mailbox %s] (from the environment)", mb->label);
		rc = check_mailbox(mb, aux, loc, err);
		if (rc != DC_OK)
			return rc;
		if (mb->password == NULL && aux->password_file != NULL) {
			snprintf(loc, sizeof(loc), "[mailbox %s] password_file", mb->label);
			rc = read_secret(aux->password_file, loc, &mb->password, err);
			if (rc != DC_OK)
				return rc;
		}
	}
	if (cfg->db_password == NULL && L->db.password_file != NULL) {
		rc = read_secret(L->db.password_file, "[database] password_file", &cfg->db_password, err);
		if (rc != DC_OK)
			return rc;
	}
	return DC_OK;
}

/* ---------------------------------------------------------------- API */

dc_code
dc_config_load(const char *path, dc_config **out, dc_err *err)
{
	loader L;
	dc_config *cfg = NULL;
	dc_code rc = DC_OK;

	memset(&L, 0, sizeof(L));
	*out = NULL;
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	cfg->interval = 300;
	cfg->dns_timeout_ms = 2000;
	cfg->dns_retry_after = 86400;
	cfg->dns_in_flight = 64;
	cfg->alerts_timeout = 60;
	dc_limits_default(&cfg->limits);
	L.cfg = cfg;
	L.path = "(environment)";
	if (path != NULL) {
		cfg->path = strdup(path);
		if (cfg->path == NULL) {
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
		rc = load_file(&L, path, err);
		if (rc != DC_OK)
			goto out;
	}
	rc = load_env(&L, err);
	if (rc != DC_OK)
		goto out;
	rc = finish(&L, err);
	if (rc != DC_OK)
		goto out;
	*out = cfg;
	cfg = NULL;
out:
	for (size_t i = 0; L.mbs != NULL && i < L.cfg->n_mailboxes; i++)
		free(L.mbs[i].password_file);
	free(L.mbs);
	free(L.db.password_file);
	free(L.dir);
	dc_config_free(cfg);
	return rc;
}

void
dc_config_free(dc_config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->n_mailboxes; i++)
		mailbox_free_fields(&cfg->mailboxes[i]);
	free(cfg->mailboxes);
	free(cfg->path);
	free(cfg->db_conninfo);
	free(cfg->asn_db);
	free(cfg->country_db);
	if (cfg->db_password != NULL)
		explicit_bzero(cfg->db_password, strlen(cfg->db_password));
	free(cfg->db_password);
	free(cfg->dns_servers);
	free(cfg->metrics_listen);
	free(cfg->alerts_command);
	free(cfg);
}

/* ---- addresses ---------------------------------------------------------- */

dc_code
dc_config_parse_listen(const char *value, struct sockaddr_storage *ss, socklen_t *len, dc_err *err)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(value, ':');
	const char *port_s = colon ? colon + 1 : NULL;
	size_t hlen = colon ? (size_t)(colon - value) : 0;
	unsigned long port = 0;
	char *end = NULL;

	memset(ss, 0, sizeof(*ss));
	*len = 0;
	if (colon == NULL || hlen == 0 || hlen >= sizeof(host) || !isdigit((unsigned char)port_s[0]))
		goto bad;
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (errno != 0 || *end != '\0' || port < 1 || port > 65535)
		goto bad;
	memcpy(host, value, hlen);
	host[hlen] = '\0';
	if (host[0] == '[' && host[hlen - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		host[hlen - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			goto bad;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		if (strcasecmp(host, "localhost") == 0)
			snprintf(host, sizeof(host), "127.0.0.1");
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			goto bad;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*len = sizeof(*a);
	}
	return DC_OK;
bad:
	return dc_err_set(err, DC_ECONFIG,
		"'%s' is not HOST:PORT (an IPv4 address, [an IPv6 address] or localhost, and a port 1..65535)",
		value);
}

/* ---- what polling needs ------------------------------------------------ */

dc_code
dc_config_check_mailbox(const dc_mailbox_config *mb, dc_err *err)
{
	dc_imap_url u;
	dc_code rc = dc_imap_url_parse(mb->url, &u, err);
	const char *folders[3] = { mb->archive_folder, mb->invalid_folder, NULL };

	if (rc != DC_OK)
		return rc;
	if (mb->tls == DC_TLS_NONE && strcmp(u.scheme, "imap") == 0 && !u.loopback)
		rc = dc_err_set(err, DC_ECONFIG,
			"[mailbox %s]: tls = none is allowed only for a loopback "
			"server (localhost, 127.0.0.1, ::1), not %s",
			mb->label, u.host);
	folders[2] = u.folder;
	for (int i = 0; i < 3 && rc == DC_OK; i++) {
		char *q;

		if (folders[i] == NULL)
			continue;
		q = dc_imap_quote_folder(folders[i], '/', err);
		if (q == NULL)
			rc = err ? err->code : DC_ECONFIG;
		free(q);
	}
	dc_imap_url_clear(&u);
	return rc;
}

dc_code
dc_config_check_poll(const dc_config *cfg, dc_err *err)
{
	dc_code rc = DC_OK;

	if (cfg->n_mailboxes == 0)
		return dc_err_set(err, DC_ECONFIG, "poll: no [mailbox NAME] section in the configuration");
	for (size_t i = 0; i < cfg->n_mailboxes && rc == DC_OK; i++)
		rc = dc_config_check_mailbox(&cfg->mailboxes[i], err);
	return rc;
}
