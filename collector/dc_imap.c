/*
 * dc_imap.c - the collector's IMAP client (see dc_imap.h for the design).
 *
 * libcurl owns the connection: TCP, TLS (imaps, or STARTTLS with
 * CURLUSESSL_ALL), certificate verification and the SASL login, all done by
 * curl_easy_perform with CURLOPT_CONNECT_ONLY.  After that this file writes
 * tagged commands and reads their responses through dc_imap_io.c (the
 * bounded reader: one response line at a time up to DC_MAX_IMAP_LINE,
 * BODY[] literals capped at max_message_bytes, every wait bounded by a
 * silence timeout and a least rate); folder names are encoded and compared
 * in dc_imap_folder.c.  Here: the URL, the session's open and close, the
 * commands and the parsing of their untagged responses.
 *
 * RFCs: 3501 (IMAP4rev1: commands, responses, literals, quoted strings,
 * modified UTF-7 mailbox names, both ways), 4315 (UIDPLUS: UID EXPUNGE),
 * 5258 (\NonExistent in LIST), 5530 (EXPUNGEISSUED), 6851 (MOVE), 7628
 * (XOAUTH2 as libcurl implements it).  Not here: IDLE, CONDSTORE, any
 * command the collector does not need, MIME.
 */
#include "dc_imap.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>

#include "dc_buf.h"
#include "dc_imap_io.h"
#include "dc_limits.h"

#define DEFAULT_TIMEOUT_MS 60000L
#define SET_MAX_CHARS      4000 /* characters of a UID set in one command */

/* ---- URL ------------------------------------------------------------- */

/* True for localhost, 127.0.0.0/8 and ::1 (names as libcurl returns them). */
static bool
host_is_loopback(const char *h)
{
	static const char *const names[] = { "localhost", "localhost.", "::1", "[::1]", NULL };

	for (size_t i = 0; names[i]; i++)
		if (strcasecmp(h, names[i]) == 0)
			return true;
	return strncmp(h, "127.", 4) == 0 && strspn(h, "0123456789.") == strlen(h);
}

/* Returns DC_OK and fills out; see dc_imap.h. */
dc_code
dc_imap_url_parse(const char *url, dc_imap_url *out, dc_err *err)
{
	CURLU *h = NULL;
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	dc_code rc = DC_OK;

	memset(out, 0, sizeof(*out));
	if (url == NULL || *url == '\0')
		return dc_err_set(err, DC_ECONFIG, "mailbox url is missing");
	h = curl_url();
	if (h == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK ||
		curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		rc = dc_err_set(err, DC_ECONFIG, "mailbox url '%s' is not a valid URL", url);
		goto out;
	}
	if (strcasecmp(scheme, "imap") != 0 && strcasecmp(scheme, "imaps") != 0) {
		rc = dc_err_set(err, DC_ECONFIG, "mailbox url '%s': scheme must be imaps:// or imap://", url);
		goto out;
	}
	if (curl_url_get(h, CURLUPART_PORT, &port, 0) == CURLUE_OK && port)
		out->port = strtol(port, NULL, 10);
	if (curl_url_get(h, CURLUPART_PATH, &path, CURLU_URLDECODE) != CURLUE_OK) {
		rc = dc_err_set(err, DC_ECONFIG, "mailbox url '%s': bad folder path", url);
		goto out;
	}
	{
		const char *f = path;
		size_t len;

		while (*f == '/')
			f++;
		len = strcspn(f, ";"); /* ;UIDVALIDITY=... and the like are not folders */
		while (len > 0 && f[len - 1] == '/')
			len--;
		out->folder = len ? strndup(f, len) : strdup("INBOX");
	}
	out->scheme = strdup(scheme);
	out->host = strdup(host);
	if (!out->folder || !out->scheme || !out->host) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	for (char *p = out->scheme; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	out->loopback = host_is_loopback(out->host);
out:
	if (rc != DC_OK)
		dc_imap_url_clear(out);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(h);
	return rc;
}

/* Frees what u owns and zeroes it; u may be NULL. */
void
dc_imap_url_clear(dc_imap_url *u)
{
	if (u == NULL)
		return;
	free(u->scheme);
	free(u->host);
	free(u->folder);
	memset(u, 0, sizeof(*u));
}

/* The URL libcurl connects to: url without folder, user info, query. Caller frees (curl_free). */
static char *
connect_url(const char *url)
{
	CURLU *h = curl_url();
	char *s = NULL;

	if (h == NULL)
		return NULL;
	if (curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_set(h, CURLUPART_PATH, "/", 0) == CURLUE_OK &&
		curl_url_set(h, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
		curl_url_set(h, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
		curl_url_set(h, CURLUPART_QUERY, NULL, 0) == CURLUE_OK &&
		curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0) == CURLUE_OK)
		(void)curl_url_get(h, CURLUPART_URL, &s, 0);
	curl_url_cleanup(h);
	return s;
}

/* ---- commands ------------------------------------------------------------ */

/* Called for each untagged response of a command; im->line holds it. */
typedef dc_code (*untagged_fn)(dc_imap *im, void *ctx, dc_err *err);

/*
 * Sends one command (printf-formatted, without tag and CRLF) and reads its
 * responses, handing untagged ones to fn.  Returns DC_OK for a tagged OK,
 * DC_EIMAP for NO or BAD (the server's text in err and im->status), an I/O
 * error, or fn's first error (after the tagged response was read).
 */
static dc_code __attribute__((format(printf, 5, 6)))
command(dc_imap *im, untagged_fn fn, void *ctx, dc_err *err, const char *fmt, ...)
{
	char tag[16], *cmd = NULL, *text = NULL;
	size_t taglen;
	dc_code rc, fn_rc = DC_OK;
	dc_err fn_err;
	va_list ap;
	int len;

	dc_err_clear(&fn_err);
	im->status[0] = '\0';
	if (im->broken)
		return dc_err_set(err, DC_EIMAP, "the IMAP connection was lost earlier");
	va_start(ap, fmt);
	len = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (len < 0)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	taglen = (size_t)snprintf(tag, sizeof(tag), "D%u", ++im->tag);
	if (asprintf(&cmd, "%s %s\r\n", tag, text) < 0) {
		cmd = NULL;
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	dc_imap_window_start(im);
	rc = dc_imap_send_all(im, cmd, strlen(cmd), err);
	if (rc != DC_OK)
		goto out;
	for (;;) {
		rc = dc_imap_read_response(im, err);
		if (rc != DC_OK)
			goto out;
		if (strncmp(im->line, tag, taglen) == 0 && im->line[taglen] == ' ') {
			const char *st = im->line + taglen + 1;

			snprintf(im->status, sizeof(im->status), "%s", st);
			if (strncasecmp(st, "OK", 2) == 0 && (st[2] == ' ' || st[2] == '\0')) {
				rc = DC_OK;
			} else {
				/* the command's name only: UID sets and names can be long */
				int cmdlen = (int)strcspn(text, " ");
				if (strncasecmp(text, "UID ", 4) == 0)
					cmdlen = 4 + (int)strcspn(text + 4, " ");
				rc = dc_err_set(
					err, DC_EIMAP, "IMAP server refused %.*s: %s", cmdlen, text, st);
			}
			break;
		}
		if (im->line[0] == '+') {
			rc = dc_imap_break(
				im, err, DC_EIMAP, "unexpected IMAP continuation request: %.200s", im->line);
			goto out;
		}
		if (strncmp(im->line, "* ", 2) != 0) {
			rc = dc_imap_break(im, err, DC_EIMAP, "malformed IMAP response: %.200s", im->line);
			goto out;
		}
		if (strncasecmp(im->line, "* BYE", 5) == 0 && strncasecmp(text, "LOGOUT", 6) != 0) {
			rc = dc_imap_break(im, err, DC_EIMAP, "the IMAP server closed the connection: %.200s",
				im->line + 2);
			goto out;
		}
		if (fn != NULL && fn_rc == DC_OK)
			fn_rc = fn(im, ctx, &fn_err);
	}
	if (rc == DC_OK && fn_rc != DC_OK) {
		rc = fn_rc;
		if (err != NULL)
			*err = fn_err;
	}
out:
	free(text);
	free(cmd);
	return rc;
}

/* ---- response parsing ------------------------------------------------------ */

static bool
parse_u64(const char *p, uint64_t *v)
{
	char *end;

	if (!isdigit((unsigned char)*p))
		return false;
	errno = 0;
	unsigned long long x = strtoull(p, &end, 10);
	if (errno != 0)
		return false;
	*v = x;
	return true;
}

/* Skips one IMAP value (atom, number, quoted string, NIL, parenthesized list). */
static const char *
skip_value(const char *p)
{
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++)
			if (*p == '\\' && p[1])
				p++;
		return *p ? p + 1 : p;
	}
	if (*p == '(') {
		int depth = 0;
		for (; *p; p++) {
			if (*p == '"') {
				p = skip_value(p) - 1;
				if (*p == '\0')
					return p;
			} else if (*p == '(') {
				depth++;
			} else if (*p == ')' && --depth == 0) {
				return p + 1;
			}
		}
		return p;
	}
	while (*p && *p != ' ' && *p != ')')
		p++;
	return p;
}

/*
 * If im->line is "* n FETCH (...)", finds attribute name (e.g. "UID") and
 * returns a pointer to its value, else NULL.
 */
static const char *
fetch_attr(const char *line, const char *name)
{
	const char *p = line + 2;
	size_t nlen = strlen(name);

	while (isdigit((unsigned char)*p))
		p++;
	if (p == line + 2 || strncasecmp(p, " FETCH (", 8) != 0)
		return NULL;
	p += 8;
	for (;;) {
		const char *a;
		int bracket = 0;

		while (*p == ' ')
			p++;
		if (*p == '\0' || *p == ')')
			return NULL;
		a = p;
		while (*p && (bracket > 0 || (*p != ' ' && *p != ')'))) {
			if (*p == '[')
				bracket++;
			else if (*p == ']' && bracket > 0)
				bracket--;
			p++;
		}
		bool match = (size_t)(p - a) == nlen && strncasecmp(a, name, nlen) == 0;
		while (*p == ' ')
			p++;
		if (match)
			return p;
		if (*p == '\0' || *p == ')')
			return NULL;
		p = skip_value(p);
	}
}

/* Finds "[CODE" in a response text; returns the text after "CODE" or NULL. */
static const char *
resp_code(const char *text, const char *code)
{
	const char *p = strchr(text, '[');
	size_t n = strlen(code);

	if (p == NULL || strncasecmp(p + 1, code, n) != 0)
		return NULL;
	p += 1 + n;
	return (*p == ' ' || *p == ']') ? p : NULL;
}

/* ---- open / close ---------------------------------------------------------- */

/* Keeps the "* CAPABILITY" list, upper-cased and blank-delimited, in im->caps. */
static dc_code
on_capability(dc_imap *im, void *ctx, dc_err *err)
{
	(void)ctx;
	if (strncasecmp(im->line, "* CAPABILITY ", 13) != 0)
		return DC_OK;
	free(im->caps);
	if (asprintf(&im->caps, " %s ", im->line + 13) < 0) {
		im->caps = NULL;
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	}
	for (char *p = im->caps; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return DC_OK;
}

/* Takes the hierarchy separator from `* LIST (...) "/" ""` (NIL: keep "/"). */
static dc_code
on_list_separator(dc_imap *im, void *ctx, dc_err *err)
{
	const char *p;

	(void)ctx;
	(void)err;
	if (strncasecmp(im->line, "* LIST ", 7) != 0)
		return DC_OK;
	p = skip_value(im->line + 7); /* the flags */
	while (*p == ' ')
		p++;
	if (p[0] == '"' && p[1] == '\\' && p[2] && p[3] == '"')
		im->sep = p[2];
	else if (p[0] == '"' && p[1] && p[1] != '"' && p[2] == '"')
		im->sep = p[1];
	return DC_OK;
}

/* Maps libcurl's connect/login failure to a dc_code with a message naming the server. */
static dc_code
map_curl_error(CURLcode c, const char *errbuf, const dc_imap_opts *o, dc_err *err)
{
	const char *why = errbuf[0] ? errbuf : curl_easy_strerror(c);

	switch (c) {
	case CURLE_LOGIN_DENIED:
		return dc_err_set(err, DC_EAUTH, "IMAP login as %s refused by %s (%s)",
			o->user ? o->user : "", o->url, o->bearer ? "XOAUTH2 token" : "password");
	case CURLE_SSL_CONNECT_ERROR:
		/* the handshake broke off: a reset or a server restarting as
		 * often as a mismatch; certificate failures have their own codes */
		return dc_err_set(err, DC_EIMAP, "TLS with %s failed: %s", o->url, why);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_USE_SSL_FAILED: return dc_err_set(err, DC_ETLS, "TLS with %s failed: %s", o->url, why);
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT: return dc_err_set(err, DC_ECONFIG, "mailbox url %s: %s", o->url, why);
	case CURLE_OUT_OF_MEMORY: return dc_err_set(err, DC_ENOMEM, "out of memory");
	default: return dc_err_set(err, DC_EIMAP, "cannot reach IMAP server %s: %s", o->url, why);
	}
}

/* A new session without a connection; NULL when out of memory. */
static dc_imap *
session_new(const dc_imap_opts *o)
{
	dc_imap *im = calloc(1, sizeof(*im));

	if (im == NULL || (im->rbuf = malloc(DC_IMAP_RBUF_SIZE)) == NULL ||
		(im->line = malloc(DC_MAX_IMAP_LINE + 1)) == NULL) {
		dc_imap_free(im);
		return NULL;
	}
	im->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	im->max_body = o->max_message_bytes ? o->max_message_bytes : DC_DEFAULT_MAX_MESSAGE_BYTES;
	im->sep = '/';
	im->sock = CURL_SOCKET_BAD;
	im->progress = o->progress;
	im->progress_ctx = o->progress_ctx;
	return im;
}

/* After the login: the capabilities and the hierarchy separator. */
static dc_code
session_start(dc_imap *im, const char *what, dc_err *err)
{
	dc_code rc = command(im, on_capability, NULL, err, "CAPABILITY");

	if (rc != DC_OK)
		return rc;
	if (im->caps == NULL || strstr(im->caps, " IMAP4REV1 ") == NULL)
		return dc_err_set(err, DC_EIMAP, "%s is not an IMAP4rev1 server", what);
	return command(im, on_list_separator, NULL, err, "LIST \"\" \"\"");
}

/* Returns DC_OK with *out owned by the caller; see dc_imap.h. */
dc_code
dc_imap_open_fd(int fd, const dc_imap_opts *o, dc_imap **out, dc_err *err)
{
	dc_imap *im = session_new(o);
	dc_code rc;

	*out = NULL;
	if (im == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	im->sock = fd;
	im->own_sock = false;
	rc = session_start(im, "the peer", err);
	if (rc == DC_OK)
		*out = im;
	else
		dc_imap_free(im);
	return rc;
}

/* Returns DC_OK with *out owned by the caller; see dc_imap.h. */
dc_code
dc_imap_open(const dc_imap_opts *o, dc_imap **out, dc_err *err)
{
	dc_imap *im = NULL;
	dc_imap_url u = { 0 };
	char *base = NULL, errbuf[CURL_ERROR_SIZE] = "";
	CURLcode c;
	dc_code rc;

	*out = NULL;
	rc = dc_imap_url_parse(o->url, &u, err);
	if (rc != DC_OK)
		goto out;
	im = session_new(o);
	if (im == NULL || (base = connect_url(o->url)) == NULL || (im->curl = curl_easy_init()) == NULL) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	im->own_sock = true;

	CURL *h = im->curl;
	c = CURLE_OK;
#define SET(opt, val) \
	do { \
		if (c == CURLE_OK) \
			c = curl_easy_setopt(h, opt, val); \
	} while (0)
	SET(CURLOPT_URL, base);
	SET(CURLOPT_PROTOCOLS_STR, "imap,imaps");
	SET(CURLOPT_CONNECT_ONLY, 1L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_CONNECTTIMEOUT_MS, im->timeout_ms);
	SET(CURLOPT_TIMEOUT_MS, 2 * im->timeout_ms);
	SET(CURLOPT_SERVER_RESPONSE_TIMEOUT, (long)(im->timeout_ms + 999) / 1000);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_USE_SSL, o->tls_none ? (long)CURLUSESSL_NONE : (long)CURLUSESSL_ALL);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->ca_file && *o->ca_file)
		SET(CURLOPT_CAINFO, o->ca_file);
	if (o->user)
		SET(CURLOPT_USERNAME, o->user);
	if (o->bearer) {
		SET(CURLOPT_XOAUTH2_BEARER, o->bearer);
		SET(CURLOPT_LOGIN_OPTIONS, "AUTH=XOAUTH2");
	} else if (o->password) {
		SET(CURLOPT_PASSWORD, o->password);
	}
#undef SET
	if (c != CURLE_OK) {
		rc = dc_err_set(err, DC_ECONFIG, "libcurl rejected an option: %s", curl_easy_strerror(c));
		goto out;
	}
	c = curl_easy_perform(h);
	/* errbuf lives on this stack frame; curl_easy_recv/send on the kept
	 * handle would write their errors into it after we return */
	(void)curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	if (c != CURLE_OK) {
		rc = map_curl_error(c, errbuf, o, err);
		goto out;
	}
	c = curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &im->sock);
	if (c != CURLE_OK || im->sock == CURL_SOCKET_BAD) {
		rc = dc_err_set(err, DC_EIMAP, "no socket after connecting to %s", o->url);
		goto out;
	}
	rc = session_start(im, o->url, err);
	if (rc != DC_OK)
		goto out;
	*out = im;
	im = NULL;
out:
	dc_imap_free(im);
	dc_imap_url_clear(&u);
	curl_free(base);
	return rc;
}

/* See dc_imap.h; im may be NULL. */
void
dc_imap_free(dc_imap *im)
{
	if (im == NULL)
		return;
	if (im->sock != CURL_SOCKET_BAD && (im->curl != NULL || !im->own_sock)) {
		if (!im->broken) {
			dc_err e;
			long t = im->timeout_ms;

			im->timeout_ms = t < 5000 ? t : 5000;
			(void)command(im, NULL, NULL, &e, "LOGOUT");
		}
		/* libcurl would send its own LOGOUT on cleanup: it fails at once now */
		if (im->curl != NULL)
			shutdown(im->sock, SHUT_RDWR);
	}
	if (im->curl != NULL)
		curl_easy_cleanup(im->curl);
	free(im->caps);
	free(im->rbuf);
	free(im->line);
	free(im->body);
	free(im);
}

/* See dc_imap.h. */
bool
dc_imap_has_capability(const dc_imap *im, const char *cap)
{
	char want[64];

	if (im->caps == NULL || strlen(cap) + 3 > sizeof(want))
		return false;
	snprintf(want, sizeof(want), " %s ", cap);
	for (char *p = want; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return strstr(im->caps, want) != NULL;
}

/* See dc_imap.h. */
bool
dc_imap_broken(const dc_imap *im)
{
	return im->broken;
}

/* ---- sets -------------------------------------------------------------------- */

/* Returns a new "a:b,c" set covering uids[0..*used); see dc_imap.h. */
char *
dc_imap_uid_set(const uint64_t *uids, size_t n, size_t max_len, size_t *used)
{
	size_t cap = max_len + 48, len = 0, i = 0;
	char *s = malloc(cap);

	*used = 0;
	if (s == NULL || n == 0) {
		free(s);
		return n == 0 ? strdup("") : NULL;
	}
	while (i < n) {
		size_t j = i;
		char piece[48];
		int k;

		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (j > i)
			k = snprintf(piece, sizeof(piece), "%s%" PRIu64 ":%" PRIu64, len ? "," : "", uids[i],
				uids[j]);
		else
			k = snprintf(piece, sizeof(piece), "%s%" PRIu64, len ? "," : "", uids[i]);
		if (len > 0 && len + (size_t)k > max_len)
			break;
		memcpy(s + len, piece, (size_t)k + 1);
		len += (size_t)k;
		i = j + 1;
	}
	*used = i;
	return s;
}

/* ---- folder commands ------------------------------------------------------------ */

typedef struct select_ctx {
	dc_imap_folder_info *info;
	bool have_uidvalidity;
} select_ctx;

/* Collects UIDVALIDITY, UIDNEXT and EXISTS from SELECT's untagged responses. */
static dc_code
on_select(dc_imap *im, void *vctx, dc_err *err)
{
	select_ctx *sc = vctx;
	const char *p;
	uint64_t v;

	(void)err;
	if ((p = resp_code(im->line, "UIDVALIDITY")) != NULL && parse_u64(p + 1, &v)) {
		sc->info->uidvalidity = v;
		sc->have_uidvalidity = true;
	} else if ((p = resp_code(im->line, "UIDNEXT")) != NULL && parse_u64(p + 1, &v)) {
		sc->info->uidnext = v;
	} else if (parse_u64(im->line + 2, &v)) {
		p = im->line + 2 + strspn(im->line + 2, "0123456789");
		if (strcasecmp(p, " EXISTS") == 0)
			sc->info->exists = v;
	}
	return DC_OK;
}

static bool folder_missing(dc_imap *im, const char *folder, const char *q);

/* Returns DC_OK with info filled; see dc_imap.h. */
dc_code
dc_imap_select(dc_imap *im, const char *folder, dc_imap_folder_info *info, dc_err *err)
{
	select_ctx sc = { .info = info };
	char *q = dc_imap_quote_folder(folder, im->sep, err);
	dc_code rc;

	memset(info, 0, sizeof(*info));
	if (q == NULL)
		return err ? err->code : DC_ECONFIG;
	rc = command(im, on_select, &sc, err, "SELECT %s", q);
	/* a folder that is not there, or not ours, stays so until the
	 * configuration changes: the RFC 5530 response codes say so, or (for
	 * servers without them, Dovecot 2.3) a LIST of the name finds nothing */
	if (rc == DC_EIMAP && !dc_imap_broken(im)) {
		if (resp_code(im->status, "NONEXISTENT") != NULL || resp_code(im->status, "NOPERM") != NULL ||
			folder_missing(im, folder, q)) {
			rc = DC_ECONFIG;
			if (err != NULL)
				err->code = rc;
		}
	}
	if (rc == DC_OK) {
		info->read_only = resp_code(im->status, "READ-ONLY") != NULL;
		if (!sc.have_uidvalidity)
			rc = dc_err_set(err, DC_EIMAP, "the IMAP server sent no UIDVALIDITY for %s", folder);
		else if (info->read_only)
			rc = dc_err_set(err, DC_EIMAP, "folder %s is read-only for this user", folder);
	}
	free(q);
	return rc;
}

/*
 * The mailbox name of a "* LIST (flags) sep name" response, unquoted, in a
 * new string; NULL when the line is no LIST, the name is a literal (NIL
 * here) or memory ran out (*nomem).  *selectable is false for \Noselect
 * and \NonExistent (RFC 5258) names: a parent that only exists as a level.
 */
static char *
list_name(const char *line, bool *selectable, bool *nomem)
{
	const char *p, *flags, *name;
	char *out;
	size_t k = 0;

	*nomem = false;
	if (strncasecmp(line, "* LIST (", 8) != 0)
		return NULL;
	flags = line + 7;
	p = skip_value(flags);
	*selectable = true;
	for (const char *f = flags; f < p; f++)
		if (*f == '\\' &&
			(strncasecmp(f, "\\Noselect", 9) == 0 || strncasecmp(f, "\\NonExistent", 12) == 0))
			*selectable = false;
	while (*p == ' ')
		p++;
	p = skip_value(p); /* the separator: "/" or NIL */
	while (*p == ' ')
		p++;
	name = p;
	if (*name == '\0' || *name == '{' || (strncasecmp(name, "NIL", 3) == 0 && name[3] == '\0'))
		return NULL;
	out = malloc(strlen(name) + 1);
	if (out == NULL) {
		*nomem = true;
		return NULL;
	}
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			out[k++] = *p;
		}
		if (*p != '"') {
			free(out);
			return NULL;
		}
	} else {
		while (*p && *p != ' ')
			out[k++] = *p++;
	}
	out[k] = '\0';
	return out;
}

typedef struct find_ctx {
	const char *folder; /* UTF-8, "/" levels */
	bool found;
} find_ctx;

/* Sets found when a LIST response names the folder (decoded from modified UTF-7). */
static dc_code
on_list_find(dc_imap *im, void *vctx, dc_err *err)
{
	find_ctx *fc = vctx;
	bool selectable, nomem;
	char *raw = list_name(im->line, &selectable, &nomem), *name;
	dc_err ignored;

	if (nomem)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	if (raw == NULL)
		return DC_OK;
	name = dc_imap_decode_folder(raw, im->sep, &ignored);
	free(raw);
	if (name == NULL)
		return ignored.code == DC_ENOMEM ? dc_err_set(err, DC_ENOMEM, "out of memory") : DC_OK;
	if (selectable && dc_imap_same_folder(name, fc->folder))
		fc->found = true;
	free(name);
	return DC_OK;
}

/* True when a LIST of q (folder quoted) answers, and names no selectable
 * folder of that name; false when it does, or the LIST failed. */
static bool
folder_missing(dc_imap *im, const char *folder, const char *q)
{
	find_ctx fc = { .folder = folder };
	dc_err ignored;

	return command(im, on_list_find, &fc, &ignored, "LIST \"\" %s", q) == DC_OK && !fc.found;
}

/* Returns DC_OK once folder exists; see dc_imap.h. */
dc_code
dc_imap_ensure_folder(dc_imap *im, const char *folder, dc_err *err)
{
	find_ctx fc = { .folder = folder };
	char *q = dc_imap_quote_folder(folder, im->sep, err);
	dc_code rc;

	if (q == NULL)
		return err ? err->code : DC_ECONFIG;
	/* a name with "%" or "*" is a pattern to LIST: only an exact answer counts */
	rc = command(im, on_list_find, &fc, err, "LIST \"\" %s", q);
	if (rc == DC_OK && !fc.found) {
		rc = command(im, NULL, NULL, err, "CREATE %s", q);
		if (rc == DC_EIMAP && !im->broken && resp_code(im->status, "ALREADYEXISTS") != NULL)
			rc = DC_OK;
		if (rc == DC_OK) {
			dc_err ignored;
			(void)command(im, NULL, NULL, &ignored, "SUBSCRIBE %s", q);
		}
	}
	free(q);
	return rc;
}

/* ---- listing and fetching ------------------------------------------------------------ */

typedef struct list_ctx {
	uint64_t min_uid, max_uid;
	size_t cap, n;
	dc_buf msgs; /* n dc_imap_msg, at most cap of them */
} list_ctx;

/* Appends one "* n FETCH (UID u RFC822.SIZE s)" within the range to the listing. */
static dc_code
on_list_fetch(dc_imap *im, void *vctx, dc_err *err)
{
	list_ctx *lc = vctx;
	const char *p;
	uint64_t uid, size = 0;

	p = fetch_attr(im->line, "UID");
	if (p == NULL || !parse_u64(p, &uid))
		return DC_OK; /* an unsolicited FETCH (flags of another session) */
	if ((p = fetch_attr(im->line, "RFC822.SIZE")) != NULL)
		(void)parse_u64(p, &size);
	if (uid < lc->min_uid || (lc->max_uid && uid >= lc->max_uid) || lc->n >= lc->cap)
		return DC_OK;
	if (lc->n > 0 && uid <= ((const dc_imap_msg *)lc->msgs.p)[lc->n - 1].uid)
		return DC_OK; /* servers answer in UID order; ignore repeats */
	if (dc_buf_add(&lc->msgs, &(dc_imap_msg){ .uid = uid, .size = size }, sizeof(dc_imap_msg)) != DC_OK)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	lc->n++;
	return DC_OK;
}

/* Returns DC_OK with *msgs owned by the caller; see dc_imap.h. */
dc_code
dc_imap_list(dc_imap *im, uint64_t min_uid, uint64_t max_uid, size_t cap, dc_imap_msg **msgs, size_t *n,
	dc_err *err)
{
	list_ctx lc = { .min_uid = min_uid ? min_uid : 1, .max_uid = max_uid };
	dc_code rc;

	*msgs = NULL;
	*n = 0;
	lc.cap = (cap == 0 || cap > DC_MAX_IMAP_LIST) ? DC_MAX_IMAP_LIST : cap;
	dc_buf_init(&lc.msgs, lc.cap * sizeof(dc_imap_msg));
	if (max_uid != 0 && max_uid <= lc.min_uid)
		return DC_OK;
	if (max_uid != 0)
		rc = command(im, on_list_fetch, &lc, err,
			"UID FETCH %" PRIu64 ":%" PRIu64 " (UID RFC822.SIZE)", lc.min_uid, max_uid - 1);
	else
		rc = command(
			im, on_list_fetch, &lc, err, "UID FETCH %" PRIu64 ":* (UID RFC822.SIZE)", lc.min_uid);
	/* RFC 5530: a message went away meanwhile; the others are listed */
	if (rc == DC_EIMAP && !im->broken && resp_code(im->status, "EXPUNGEISSUED") != NULL)
		rc = DC_OK;
	if (rc != DC_OK) {
		dc_buf_free(&lc.msgs);
		return rc;
	}
	*msgs = (dc_imap_msg *)dc_buf_take(&lc.msgs, NULL);
	*n = lc.n;
	return DC_OK;
}

typedef struct fetch_ctx {
	dc_imap_body_fn fn;
	void *ctx;
	dc_code rc; /* the callback's first error: later bodies are dropped */
	dc_err err;
} fetch_ctx;

/* Hands one FETCH response with a body to the caller's callback (until it fails). */
static dc_code
on_fetch_body(dc_imap *im, void *vctx, dc_err *err)
{
	fetch_ctx *fc = vctx;
	const char *p;
	uint64_t uid;

	(void)err;
	p = fetch_attr(im->line, "UID");
	if (p == NULL || !parse_u64(p, &uid))
		return DC_OK;
	if (!im->has_body) {
		/* BODY[] sent as a quoted string or NIL: only an empty body is plausible */
		if (fetch_attr(im->line, "BODY[]") == NULL)
			return DC_OK;
		im->body_len = 0;
	}
	if (fc->rc != DC_OK)
		return DC_OK;
	if (im->body_dropped)
		fc->rc = fc->fn(fc->ctx, uid, NULL, im->body_len, &fc->err);
	else
		fc->rc = fc->fn(
			fc->ctx, uid, im->body_len ? im->body : (const uint8_t *)"", im->body_len, &fc->err);
	return DC_OK;
}

/* Returns DC_OK after every body was delivered; see dc_imap.h. */
dc_code
dc_imap_fetch(dc_imap *im, const uint64_t *uids, size_t n, dc_imap_body_fn fn, void *ctx, dc_err *err)
{
	fetch_ctx fc = { .fn = fn, .ctx = ctx, .rc = DC_OK };
	size_t i = 0;

	dc_err_clear(&fc.err);
	while (i < n) {
		size_t used;
		char *set = dc_imap_uid_set(uids + i, n - i, SET_MAX_CHARS, &used);
		dc_code rc;

		if (set == NULL)
			return dc_err_set(err, DC_ENOMEM, "out of memory");
		rc = command(im, on_fetch_body, &fc, err, "UID FETCH %s BODY.PEEK[]", set);
		free(set);
		/* RFC 5530: some of the messages were expunged meanwhile (by another
		 * session); the others were delivered.  The missing ones are gone. */
		if (rc == DC_EIMAP && !im->broken && resp_code(im->status, "EXPUNGEISSUED") != NULL)
			rc = DC_OK;
		if (rc != DC_OK)
			return rc;
		if (fc.rc != DC_OK) {
			if (err != NULL)
				*err = fc.err;
			return fc.rc;
		}
		i += used;
	}
	return DC_OK;
}

/* ---- changing the mailbox ------------------------------------------------------------ */

/* Runs "UID <verb> set <arg>" over uids in chunks. */
static dc_code
uid_command(dc_imap *im, const char *verb, const char *arg, const uint64_t *uids, size_t n, dc_err *err)
{
	size_t i = 0;

	while (i < n) {
		size_t used;
		char *set = dc_imap_uid_set(uids + i, n - i, SET_MAX_CHARS, &used);
		dc_code rc;

		if (set == NULL)
			return dc_err_set(err, DC_ENOMEM, "out of memory");
		rc = command(im, NULL, NULL, err, "UID %s %s %s", verb, set, arg);
		free(set);
		if (rc != DC_OK)
			return rc;
		i += used;
	}
	return DC_OK;
}

/* Expunges uids (UID EXPUNGE), or every \Deleted message without UIDPLUS. */
static dc_code
expunge(dc_imap *im, const uint64_t *uids, size_t n, dc_err *err)
{
	size_t i = 0;

	if (!dc_imap_has_capability(im, "UIDPLUS"))
		return command(im, NULL, NULL, err, "EXPUNGE");
	while (i < n) {
		size_t used;
		char *set = dc_imap_uid_set(uids + i, n - i, SET_MAX_CHARS, &used);
		dc_code rc;

		if (set == NULL)
			return dc_err_set(err, DC_ENOMEM, "out of memory");
		rc = command(im, NULL, NULL, err, "UID EXPUNGE %s", set);
		free(set);
		if (rc != DC_OK)
			return rc;
		i += used;
	}
	return DC_OK;
}

/* Moves or copies (verb) to the quoted folder q, creating it on [TRYCREATE]. */
static dc_code
transfer(dc_imap *im, const char *verb, const uint64_t *uids, size_t n, const char *folder, const char *q,
	dc_err *err)
{
	dc_code rc = uid_command(im, verb, q, uids, n, err);

	if (rc == DC_EIMAP && !im->broken && resp_code(im->status, "TRYCREATE") != NULL) {
		rc = dc_imap_ensure_folder(im, folder, err);
		if (rc == DC_OK)
			rc = uid_command(im, verb, q, uids, n, err);
	}
	return rc;
}

/* Returns DC_OK once uids are in folder and gone from the selected one. */
dc_code
dc_imap_move(dc_imap *im, const uint64_t *uids, size_t n, const char *folder, dc_err *err)
{
	char *q;
	dc_code rc;

	if (n == 0)
		return DC_OK;
	q = dc_imap_quote_folder(folder, im->sep, err);
	if (q == NULL)
		return err ? err->code : DC_ECONFIG;
	if (dc_imap_has_capability(im, "MOVE")) {
		rc = transfer(im, "MOVE", uids, n, folder, q, err);
	} else {
		rc = transfer(im, "COPY", uids, n, folder, q, err);
		if (rc == DC_OK)
			rc = uid_command(im, "STORE", "+FLAGS.SILENT (\\Deleted)", uids, n, err);
		if (rc == DC_OK)
			rc = expunge(im, uids, n, err);
	}
	free(q);
	return rc;
}

/* See dc_imap.h. */
dc_code
dc_imap_mark_seen(dc_imap *im, const uint64_t *uids, size_t n, dc_err *err)
{
	return uid_command(im, "STORE", "+FLAGS.SILENT (\\Seen)", uids, n, err);
}

/* See dc_imap.h. */
dc_code
dc_imap_delete(dc_imap *im, const uint64_t *uids, size_t n, dc_err *err)
{
	dc_code rc;

	if (n == 0)
		return DC_OK;
	rc = uid_command(im, "STORE", "+FLAGS.SILENT (\\Deleted)", uids, n, err);
	if (rc == DC_OK)
		rc = expunge(im, uids, n, err);
	return rc;
}

size_t
dc_imap_libversions(dc_libversion *v, size_t max)
{
	const curl_version_info_data *d = curl_version_info(CURLVERSION_NOW);

	if (max < 1)
		return 0;
	v[0].name = "libcurl";
	if (d->ssl_version != NULL)
		snprintf(v[0].version, sizeof(v[0].version), "%s (%s)", d->version, d->ssl_version);
	else
		snprintf(v[0].version, sizeof(v[0].version), "%s (no TLS)", d->version);
	return 1;
}
