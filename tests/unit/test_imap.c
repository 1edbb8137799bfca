/*
 * test_imap.c - dc_imap without a real server: folder names (modified UTF-7,
 * quoting), UID sets, URLs, and the protocol against scripted servers over a
 * socketpair, each script the exact commands the client must send and the
 * server's replies (literals, unsolicited responses, [TRYCREATE], a server
 * without MOVE/UIDPLUS, oversized bodies and lines, BYE, a server that
 * trickles or falls silent, literals that lie about their length,
 * RFC822.SIZE that differs from the body, BYE or EXPUNGE in the middle of a
 * FETCH, folder names in modified UTF-7 both ways), in the manner of curl's
 * tests/data/test800.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dc_imap.h"

/* ---- sets, URLs ---------------------------------------------------- */

static void
test_uid_set(void **state)
{
	static const uint64_t a[] = { 1, 2, 3, 5, 7, 8, 10 };
	static const struct {
		size_t n, max;
		const char *out;
		size_t used;
	} cases[] = {
		{ 7, 100, "1:3,5,7:8,10", 7 }, { 1, 100, "1", 1 }, { 7, 5, "1:3,5", 4 },
		{ 7, 1, "1:3", 3 }, /* the first piece always fits */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t used = 0;
		char *s = dc_imap_uid_set(a, cases[i].n, cases[i].max, &used);

		assert_non_null(s);
		assert_string_equal(s, cases[i].out);
		assert_int_equal(used, cases[i].used);
		free(s);
	}
}

static void
test_url_parse(void **state)
{
	static const struct {
		const char *url, *scheme, *host, *folder;
		long port;
		bool loopback;
		dc_code rc;
	} cases[] = {
		{ "imaps://imap.example.com/INBOX", "imaps", "imap.example.com", "INBOX", 0, false, DC_OK },
		{ "imaps://imap.example.com", "imaps", "imap.example.com", "INBOX", 0, false, DC_OK },
		{ "IMAP://localhost:1143/Archive%2FDMARC", "imap", "localhost", "Archive/DMARC", 1143, true,
			DC_OK },
		{ "imap://127.0.0.1/a/b/", "imap", "127.0.0.1", "a/b", 0, true, DC_OK },
		{ "imaps://[::1]:993/INBOX;UIDVALIDITY=5", "imaps", "[::1]", "INBOX", 993, true, DC_OK },
		{ "imaps://127.1.2.3/INBOX", "imaps", "127.1.2.3", "INBOX", 0, true, DC_OK },
		{ "imaps://127.example.com/INBOX", "imaps", "127.example.com", "INBOX", 0, false, DC_OK },
		{ "https://imap.example.com/INBOX", NULL, NULL, NULL, 0, false, DC_ECONFIG },
		{ "not a url", NULL, NULL, NULL, 0, false, DC_ECONFIG },
		{ "", NULL, NULL, NULL, 0, false, DC_ECONFIG },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dc_imap_url u;
		dc_err err;
		dc_code rc = dc_imap_url_parse(cases[i].url, &u, &err);

		assert_int_equal(rc, cases[i].rc);
		if (rc != DC_OK)
			continue;
		assert_string_equal(u.scheme, cases[i].scheme);
		assert_string_equal(u.host, cases[i].host);
		assert_string_equal(u.folder, cases[i].folder);
		assert_int_equal(u.port, cases[i].port);
		assert_int_equal(u.loopback, cases[i].loopback);
		dc_imap_url_clear(&u);
	}
}

/* ---- scripted servers ------------------------------------------------------ */

/* One exchange: the line the client must send (NULL: none), then the reply. */
typedef struct step {
	const char *client;
	const char *server;
} step;

typedef struct server {
	int fd;
	const step *script;
	int slow_step;      /* index of the step whose reply is sent a byte at a time, or -1 */
	unsigned slow_ms;   /* pause before each byte of that reply */
	bool hold;          /* after the script, keep the connection open until the client closes */
	char mismatch[512]; /* first difference from the script, "" if none */
	size_t done;        /* steps completed */
} server;

/* How a session's server behaves beyond its script, and the client's options. */
typedef struct script_opts {
	uint64_t max_body;
	long timeout_ms; /* 0: 5 s */
	int slow_step;   /* as in server; 0 means none (step 0 is CAPABILITY) */
	unsigned slow_ms;
	bool hold;
} script_opts;

#define PRELUDE(caps, sep) \
	{ "D1 CAPABILITY", "* CAPABILITY " caps "\r\nD1 OK done\r\n" }, \
	{ \
		"D2 LIST \"\" \"\"", "* LIST (\\Noselect) \"" sep "\" \"\"\r\nD2 OK done\r\n" \
	}
#define SELECT(tag) \
	{ \
		tag " SELECT \"INBOX\"", \
			"* 3 EXISTS\r\n* OK [UIDVALIDITY 42] ok\r\n* OK [UIDNEXT 9] ok\r\n" tag \
			" OK [READ-WRITE] done\r\n" \
	}

/* Sends reply, a byte every ms milliseconds; false when the client is gone. */
static bool
send_slowly(int fd, const char *reply, unsigned ms)
{
	for (const char *p = reply; *p; p++) {
		struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
		if (send(fd, p, 1, MSG_NOSIGNAL) != 1)
			return false;
	}
	return true;
}

static void *
server_main(void *arg)
{
	server *sv = arg;
	FILE *in = fdopen(dup(sv->fd), "r");
	char line[100000];

	for (const step *s = sv->script; s->client || s->server; s++) {
		if (s->client != NULL) {
			if (fgets(line, sizeof(line), in) == NULL) {
				snprintf(sv->mismatch, sizeof(sv->mismatch), "EOF, expected '%.200s'",
					s->client);
				break;
			}
			line[strcspn(line, "\r\n")] = '\0';
			if (strcmp(line, s->client) != 0) {
				snprintf(sv->mismatch, sizeof(sv->mismatch),
					"got '%.200s', expected '%.200s'", line, s->client);
				break;
			}
		}
		if (s->server != NULL && (s - sv->script) == sv->slow_step) {
			if (!send_slowly(sv->fd, s->server, sv->slow_ms))
				break;
		} else if (s->server != NULL &&
			send(sv->fd, s->server, strlen(s->server), MSG_NOSIGNAL) < 0) {
			break;
		}
		sv->done++;
	}
	if (sv->hold) /* silent until the client gives up */
		while (fgets(line, sizeof(line), in) != NULL)
			;
	fclose(in);
	shutdown(sv->fd, SHUT_WR); /* later commands (LOGOUT) see the end */
	return NULL;
}

typedef struct session {
	server sv;
	pthread_t thread;
	int client_fd;
	dc_imap *im;
} session;

/* Starts the script and opens a session; asserts the prelude went through. */
static void
session_start_opts(session *s, const step *script, const script_opts *so)
{
	int fds[2];
	dc_imap_opts o = { .timeout_ms = so->timeout_ms ? so->timeout_ms : 5000,
		.max_message_bytes = so->max_body };
	dc_err err;

	memset(s, 0, sizeof(*s));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	s->client_fd = fds[0];
	s->sv.fd = fds[1];
	s->sv.script = script;
	s->sv.slow_step = so->slow_step > 0 ? so->slow_step : -1;
	s->sv.slow_ms = so->slow_ms;
	s->sv.hold = so->hold;
	assert_int_equal(pthread_create(&s->thread, NULL, server_main, &s->sv), 0);
	assert_int_equal(dc_imap_open_fd(s->client_fd, &o, &s->im, &err), DC_OK);
}

static void
session_start(session *s, const step *script, uint64_t max_body)
{
	script_opts so = { .max_body = max_body };

	session_start_opts(s, script, &so);
}

/* Closes the session; asserts the client sent exactly the script. */
static void
session_end(session *s)
{
	dc_imap_free(s->im);
	shutdown(s->client_fd, SHUT_RDWR);
	pthread_join(s->thread, NULL);
	close(s->client_fd);
	close(s->sv.fd);
	if (s->sv.mismatch[0])
		fail_msg("script step %zu: %s", s->sv.done + 1, s->sv.mismatch);
}

typedef struct got {
	int n;
	uint64_t uid[8];
	size_t len[8];
	char data[8][64];
	bool dropped[8];
	int stop_after; /* return an error after this many bodies (0: never) */
} got;

static dc_code
on_body(void *ctx, uint64_t uid, const uint8_t *data, size_t len, dc_err *err)
{
	got *g = ctx;

	if (g->n < 8) {
		g->uid[g->n] = uid;
		g->len[g->n] = len;
		g->dropped[g->n] = data == NULL;
		if (data)
			snprintf(g->data[g->n], sizeof(g->data[0]), "%.*s", (int)len, (const char *)data);
	}
	g->n++;
	if (g->stop_after && g->n == g->stop_after)
		return dc_err_set(err, DC_EDB, "database gone");
	return DC_OK;
}

static void
test_select_list_fetch(void **state)
{
	static const step script[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		SELECT("D3"),
		{ "D4 UID FETCH 5:8 (UID RFC822.SIZE)",
			"* 1 FETCH (UID 5 RFC822.SIZE 120)\r\n"
			"* 2 FETCH (FLAGS (\\Seen) UID 6 RFC822.SIZE 7)\r\n"
			"* 3 FETCH (UID 8 RFC822.SIZE 30000)\r\n"
			"D4 OK done\r\n" },
		{ "D5 UID FETCH 5:6,8 BODY.PEEK[]",
			"* 1 FETCH (UID 5 BODY[] {13}\r\nline1\r\n}{3}\r\n)\r\n"
			"* 2 FETCH (FLAGS (\\Seen))\r\n" /* another session's change */
			"* 7 EXPUNGE\r\n"
			"* 2 FETCH (BODY[] {0}\r\n UID 6)\r\n" /* UID after the body, an empty body */
			"* 3 FETCH (UID 8 BODY[] {40}\r\n0123456789012345678901234567890123456789)\r\n"
			"D5 OK done\r\n" },
		{ "D6 LOGOUT", "* BYE bye\r\nD6 OK done\r\n" },
		{ NULL, NULL },
	};
	session s;
	dc_imap_folder_info fi;
	dc_imap_msg *msgs = NULL;
	size_t n = 0;
	got g = { 0 };
	uint64_t uids[] = { 5, 6, 8 };
	dc_err err;

	(void)state;
	session_start(&s, script, 20);
	assert_true(dc_imap_has_capability(s.im, "move"));
	assert_false(dc_imap_has_capability(s.im, "MOV"));
	assert_int_equal(dc_imap_select(s.im, "INBOX", &fi, &err), DC_OK);
	assert_int_equal(fi.uidvalidity, 42);
	assert_int_equal(fi.uidnext, 9);
	assert_int_equal(fi.exists, 3);
	assert_int_equal(dc_imap_list(s.im, 5, 9, 0, &msgs, &n, &err), DC_OK);
	assert_int_equal(n, 3);
	assert_int_equal(msgs[0].uid, 5);
	assert_int_equal(msgs[0].size, 120);
	assert_int_equal(msgs[1].uid, 6);
	assert_int_equal(msgs[2].size, 30000);
	free(msgs);
	assert_int_equal(dc_imap_fetch(s.im, uids, 3, on_body, &g, &err), DC_OK);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.uid[0], 5);
	assert_string_equal(g.data[0], "line1\r\n}{3}\r\n");
	assert_int_equal(g.uid[1], 6);
	assert_int_equal(g.len[1], 0);
	assert_false(g.dropped[1]);
	assert_int_equal(g.uid[2], 8);
	assert_true(g.dropped[2]); /* 40 bytes > max 20: read and dropped */
	assert_int_equal(g.len[2], 40);
	assert_false(dc_imap_broken(s.im));
	session_end(&s);
}

static void
test_callback_error_drains(void **state)
{
	static const step script[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		SELECT("D3"),
		{ "D4 UID FETCH 1:3 BODY.PEEK[]",
			"* 1 FETCH (UID 1 BODY[] {3}\r\none)\r\n"
			"* 2 FETCH (UID 2 BODY[] {3}\r\ntwo)\r\n"
			"* 3 FETCH (UID 3 BODY[] {5}\r\nthree)\r\n"
			"D4 OK done\r\n" },
		/* the connection is still usable: move the one stored */
		{ "D5 UID MOVE 1 \"Archive/DMARC\"", "D5 OK moved\r\n" },
		{ "D6 LOGOUT", "D6 OK done\r\n" },
		{ NULL, NULL },
	};
	session s;
	dc_imap_folder_info fi;
	got g = { .stop_after = 2 };
	uint64_t uids[] = { 1, 2, 3 }, ok[] = { 1 };
	dc_err err;

	(void)state;
	session_start(&s, script, 1000);
	assert_int_equal(dc_imap_select(s.im, "INBOX", &fi, &err), DC_OK);
	assert_int_equal(dc_imap_fetch(s.im, uids, 3, on_body, &g, &err), DC_EDB);
	assert_string_equal(err.msg, "database gone");
	assert_int_equal(g.n, 2); /* the third was not delivered */
	assert_false(dc_imap_broken(s.im));
	assert_int_equal(dc_imap_move(s.im, ok, 1, "Archive/DMARC", &err), DC_OK);
	session_end(&s);
}

static void
test_trycreate(void **state)
{
	static const step script[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "."),
		{ "D3 UID MOVE 4:5,9 \"Archive.DMARC\"", "D3 NO [TRYCREATE] Mailbox doesn't exist\r\n" },
		{ "D4 LIST \"\" \"Archive.DMARC\"", "D4 OK done\r\n" },
		{ "D5 CREATE \"Archive.DMARC\"", "D5 OK created\r\n" },
		{ "D6 SUBSCRIBE \"Archive.DMARC\"", "D6 OK done\r\n" },
		{ "D7 UID MOVE 4:5,9 \"Archive.DMARC\"",
			"* OK [COPYUID 1 4:5,9 1:3] ok\r\n* 1 EXPUNGE\r\nD7 OK moved\r\n" },
		/* the folder exists: no CREATE */
		{ "D8 LIST \"\" \"Archive.DMARC\"", "* LIST () \".\" Archive.DMARC\r\nD8 OK done\r\n" },
		{ "D9 LOGOUT", "D9 OK done\r\n" },
		{ NULL, NULL },
	};
	session s;
	uint64_t uids[] = { 4, 5, 9 };
	dc_err err;

	(void)state;
	session_start(&s, script, 1000);
	assert_int_equal(dc_imap_move(s.im, uids, 3, "Archive/DMARC", &err), DC_OK);
	assert_int_equal(dc_imap_ensure_folder(s.im, "Archive/DMARC", &err), DC_OK);
	session_end(&s);
}

static void
test_no_move_no_uidplus(void **state)
{
	static const step script[] = {
		PRELUDE("IMAP4rev1 IDLE", "/"),
		{ "D3 UID COPY 7 \"Archive/Invalid\"", "D3 OK copied\r\n" },
		{ "D4 UID STORE 7 +FLAGS.SILENT (\\Deleted)", "D4 OK stored\r\n" },
		{ "D5 EXPUNGE", "* 1 EXPUNGE\r\nD5 OK expunged\r\n" },
		{ "D6 UID STORE 8 +FLAGS.SILENT (\\Seen)", "D6 OK stored\r\n" },
		{ "D7 UID STORE 9 +FLAGS.SILENT (\\Deleted)", "D7 OK stored\r\n" },
		{ "D8 EXPUNGE", "D8 OK expunged\r\n" },
		{ "D9 LOGOUT", "D9 OK done\r\n" },
		{ NULL, NULL },
	};
	session s;
	uint64_t u7[] = { 7 }, u8[] = { 8 }, u9[] = { 9 };
	dc_err err;

	(void)state;
	session_start(&s, script, 1000);
	assert_int_equal(dc_imap_move(s.im, u7, 1, "Archive/Invalid", &err), DC_OK);
	assert_int_equal(dc_imap_mark_seen(s.im, u8, 1, &err), DC_OK);
	assert_int_equal(dc_imap_delete(s.im, u9, 1, &err), DC_OK);
	session_end(&s);
}

static void
test_refusals(void **state)
{
	static const step script[] = {
		PRELUDE("IMAP4rev1", "/"),
		{ "D3 SELECT \"INBOX\"", "* OK [UIDVALIDITY 1] ok\r\nD3 OK [READ-ONLY] done\r\n" },
		{ "D4 SELECT \"INBOX\"", "* 1 EXISTS\r\nD4 OK [READ-WRITE] done\r\n" },
		{ "D5 SELECT \"Nope\"", "D5 NO [NONEXISTENT] Mailbox doesn't exist: Nope\r\n" },
		/* no response code: a LIST of the name decides (Dovecot 2.3) */
		{ "D6 SELECT \"Busy\"", "D6 NO [UNAVAILABLE] try later\r\n" },
		{ "D7 LIST \"\" \"Busy\"", "* LIST () \"/\" Busy\r\nD7 OK done\r\n" },
		{ "D8 SELECT \"Gone\"", "D8 NO Mailbox doesn't exist: Gone\r\n" },
		{ "D9 LIST \"\" \"Gone\"", "D9 OK done\r\n" },
		{ "D10 LOGOUT", "D10 OK done\r\n" },
		{ NULL, NULL },
	};
	session s;
	dc_imap_folder_info fi;
	dc_err err;

	(void)state;
	session_start(&s, script, 1000);
	assert_int_equal(dc_imap_select(s.im, "INBOX", &fi, &err), DC_EIMAP);
	assert_non_null(strstr(err.msg, "read-only"));
	assert_int_equal(dc_imap_select(s.im, "INBOX", &fi, &err), DC_EIMAP);
	assert_non_null(strstr(err.msg, "no UIDVALIDITY"));
	/* a folder that is not there stays so: configuration (exit 2), not 75 */
	assert_int_equal(dc_imap_select(s.im, "Nope", &fi, &err), DC_ECONFIG);
	assert_string_equal(
		err.msg, "IMAP server refused SELECT: NO [NONEXISTENT] Mailbox doesn't exist: Nope");
	assert_int_equal(dc_imap_select(s.im, "Busy", &fi, &err), DC_EIMAP);
	assert_int_equal(dc_imap_select(s.im, "Gone", &fi, &err), DC_ECONFIG);
	assert_string_equal(err.msg, "IMAP server refused SELECT: NO Mailbox doesn't exist: Gone");
	assert_false(dc_imap_broken(s.im)); /* refusals leave the session usable */
	session_end(&s);
}

static void
test_hostile_server(void **state)
{
	static char long_line[70000];
	static const step bye[] = {
		PRELUDE("IMAP4rev1 MOVE", "/"),
		{ "D3 SELECT \"INBOX\"", "* BYE going down\r\n" },
		{ NULL, NULL },
	};
	static const step garbage[] = {
		PRELUDE("IMAP4rev1 MOVE", "/"),
		{ "D3 SELECT \"INBOX\"", "hello there\r\n" },
		{ NULL, NULL },
	};
	step too_long[] = {
		PRELUDE("IMAP4rev1 MOVE", "/"),
		{ "D3 SELECT \"INBOX\"", long_line },
		{ NULL, NULL },
	};
	static const step cut[] = {
		PRELUDE("IMAP4rev1 MOVE", "/"),
		{ "D3 UID FETCH 1 BODY.PEEK[]", "* 1 FETCH (UID 1 BODY[] {100}\r\nonly this" },
		{ NULL, NULL },
	};
	struct {
		const step *script;
		const char *msg;
	} cases[] = {
		{ bye, "closed the connection: BYE going down" },
		{ garbage, "malformed IMAP response" },
		{ too_long, "longer than 65536 bytes" },
		{ cut, "closed the connection" },
	};
	(void)state;
	memset(long_line, 'x', sizeof(long_line) - 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		session s;
		dc_imap_folder_info fi;
		got g = { 0 };
		uint64_t u1[] = { 1 };
		dc_err err;
		dc_code rc;

		session_start(&s, cases[i].script, 1000);
		if (cases[i].script == cut)
			rc = dc_imap_fetch(s.im, u1, 1, on_body, &g, &err);
		else
			rc = dc_imap_select(s.im, "INBOX", &fi, &err);
		assert_int_equal(rc, DC_EIMAP);
		if (strstr(err.msg, cases[i].msg) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].msg);
		assert_true(dc_imap_broken(s.im));
		assert_int_equal(g.n, 0);
		/* a broken session refuses further commands without I/O */
		assert_int_equal(dc_imap_select(s.im, "INBOX", &fi, &err), DC_EIMAP);
		session_end(&s);
	}
}

/* Random server answers built from IMAP fragments: whatever comes, the client
 * returns a code (no crash, no hang, no leak: run under ASan in CI). */
static void
test_random_server(void **state)
{
	static const char *const frag[] = {
		"* ",
		"D3 ",
		"D4 ",
		"OK ",
		"NO ",
		"BAD ",
		"[TRYCREATE] ",
		"[UIDVALIDITY 7] ",
		"[READ-ONLY] ",
		"1 FETCH (",
		"UID ",
		"RFC822.SIZE ",
		"BODY[] ",
		"FLAGS (\\Seen) ",
		"9",
		"12",
		"4294967296",
		"18446744073709551616",
		"{",
		"}",
		"{5}\r\nabcde",
		"{0}\r\n",
		"{99999999}\r\n",
		"\"q\\\"\" ",
		"(",
		")",
		" ",
		"\r\n",
		"\n",
		"EXISTS",
		"EXPUNGE",
		"BYE",
		"+ go\r\n",
		"\x00",
		"\xff",
	};
	uint32_t seed = 12345;

	(void)state;
	for (int iter = 0; iter < 300; iter++) {
		char reply[2048];
		size_t len = 0;
		int parts = 1 + (int)((seed >> 8) % 40);

		for (int k = 0; k < parts; k++) {
			seed = seed * 1103515245u + 12345u;
			const char *f = frag[(seed >> 16) % (sizeof(frag) / sizeof(frag[0]))];
			size_t fl = strlen(f);
			if (*f == '\0')
				fl = 1; /* the NUL fragment */
			if (len + fl + 1 >= sizeof(reply))
				break;
			memcpy(reply + len, f, fl);
			len += fl;
		}
		reply[len] = '\0';
		step script[] = {
			PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
			{ NULL, reply },
			{ NULL, NULL },
		};
		session s;
		dc_imap_folder_info fi;
		got g = { 0 };
		uint64_t u[] = { 1, 2 };
		dc_err err;

		session_start(&s, script, 64);
		dc_code rc = dc_imap_select(s.im, "INBOX", &fi, &err);
		assert_true(rc == DC_OK || rc == DC_EIMAP);
		if (rc == DC_OK)
			assert_int_not_equal(fi.uidvalidity, 0);
		rc = dc_imap_fetch(s.im, u, 2, on_body, &g, &err);
		assert_true(rc == DC_OK || rc == DC_EIMAP);
		for (int k = 0; k < g.n && k < 8; k++)
			assert_true(g.dropped[k] ? g.len[k] > 64 : g.len[k] <= 64);
		rc = dc_imap_move(s.im, u, 2, "Archive", &err);
		assert_true(rc == DC_OK || rc == DC_EIMAP);
		dc_imap_free(s.im);
		s.im = NULL;
		shutdown(s.client_fd, SHUT_RDWR);
		pthread_join(s.thread, NULL);
		close(s.client_fd);
		close(s.sv.fd);
	}
}

/* Milliseconds of the monotonic clock. */
static long
elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000L + (t1.tv_nsec - t0->tv_nsec) / 1000000L;
}

/* Literals that lie: announced far past max_message_bytes (the session ends
 * at once instead of reading gigabytes), past the cap but within the drain
 * (read, dropped, the message reported too big, the session usable), cut
 * short by a closed connection (nothing delivered), and a huge literal where
 * no message body is expected. */
static void
test_literal_limits(void **state)
{
	static const step huge[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		{ "D3 UID FETCH 1:2 BODY.PEEK[]",
			"* 1 FETCH (UID 1 BODY[] {3}\r\none)\r\n"
			"* 2 FETCH (UID 2 BODY[] {18446744073709551615}\r\nxxxxxxxxxxxxxxxxxxxxxxxxxx" },
		{ NULL, NULL },
	};
	static const step drained[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		{ "D3 UID FETCH 1:2 BODY.PEEK[]", "* 1 FETCH (UID 1 BODY[] {4000}\r\n" },
		{ NULL, NULL }, /* the 4000 bytes, then the rest: filled in below */
		{ NULL, ")\r\n* 2 FETCH (UID 2 BODY[] {3}\r\ntwo)\r\nD3 OK done\r\n" },
		{ "D4 UID MOVE 1:2 \"Archive/Invalid\"", "D4 OK moved\r\n" },
		{ "D5 LOGOUT", "D5 OK done\r\n" },
		{ NULL, NULL },
	};
	static const step cut_dropped[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		{ "D3 UID FETCH 1 BODY.PEEK[]", "* 1 FETCH (UID 1 BODY[] {3000}\r\nonly this much" },
		{ NULL, NULL },
	};
	static const step cut_kept[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		{ "D3 UID FETCH 1 BODY.PEEK[]", "* 1 FETCH (UID 1 BODY[] {300}\r\nonly this much" },
		{ NULL, NULL },
	};
	static const step not_body[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		{ "D3 UID FETCH 1 BODY.PEEK[]", "* 1 FETCH (UID 1 BODY[HEADER] {99999999}\r\nxx" },
		{ NULL, NULL },
	};
	static char filler[4001];
	step drained_run[sizeof(drained) / sizeof(drained[0])];
	struct {
		const step *script;
		const char *msg;
		int delivered;
	} cases[] = {
		{ huge, "message body of 18446744073709551615 bytes, more than 4 times max_message_bytes (1000)",
			1 },
		{ cut_dropped, "closed the connection", 0 },
		{ cut_kept, "closed the connection", 0 },
		{ not_body, "literal of 99999999 bytes outside a message body", 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		session s;
		got g = { 0 };
		uint64_t u[] = { 1, 2 };
		dc_err err;
		struct timespec t0;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		session_start(&s, cases[i].script, 1000);
		assert_int_equal(
			dc_imap_fetch(s.im, u, cases[i].script == huge ? 2 : 1, on_body, &g, &err), DC_EIMAP);
		if (strstr(err.msg, cases[i].msg) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].msg);
		assert_true(dc_imap_broken(s.im));
		assert_int_equal(g.n, cases[i].delivered);
		session_end(&s);
		assert_true(elapsed_ms(&t0) < 2000); /* no wait for bytes that never come */
	}

	/* 4000 bytes > max 1000 but within 4 x max: read and dropped, session usable */
	memset(filler, 'x', sizeof(filler) - 1);
	memcpy(drained_run, drained, sizeof(drained));
	drained_run[3].server = filler;
	{
		session s;
		got g = { 0 };
		uint64_t u[] = { 1, 2 };
		dc_err err;

		session_start(&s, drained_run, 1000);
		assert_int_equal(dc_imap_fetch(s.im, u, 2, on_body, &g, &err), DC_OK);
		assert_int_equal(g.n, 2);
		assert_true(g.dropped[0]);
		assert_int_equal(g.len[0], 4000);
		assert_false(g.dropped[1]);
		assert_string_equal(g.data[1], "two");
		assert_int_equal(dc_imap_move(s.im, u, 2, "Archive/Invalid", &err), DC_OK);
		session_end(&s);
	}
}

/* RFC822.SIZE is a hint (Exchange's can be off either way): the listing
 * gives what the server says, the fetch delivers the literal's own length,
 * and the cap is judged on that. */
static void
test_size_mismatch(void **state)
{
	static const step script[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		{ "D3 UID FETCH 1:9 (UID RFC822.SIZE)",
			"* 1 FETCH (UID 1 RFC822.SIZE 10)\r\n"  /* says 10, sends 1500 */
			"* 2 FETCH (UID 2 RFC822.SIZE 900)\r\n" /* says 900, sends 5 */
			"D3 OK done\r\n" },
		{ "D4 UID FETCH 1:2 BODY.PEEK[]", "* 1 FETCH (UID 1 BODY[] {1500}\r\n" },
		{ NULL, NULL }, /* 1500 bytes: filled in below */
		{ NULL, ")\r\n* 2 FETCH (UID 2 BODY[] {5}\r\nsmall)\r\nD4 OK done\r\n" },
		{ "D5 LOGOUT", "D5 OK done\r\n" },
		{ NULL, NULL },
	};
	static char filler[1501];
	step run[sizeof(script) / sizeof(script[0])];
	session s;
	dc_imap_msg *msgs = NULL;
	size_t n = 0;
	got g = { 0 };
	uint64_t u[] = { 1, 2 };
	dc_err err;

	(void)state;
	memset(filler, 'y', sizeof(filler) - 1);
	memcpy(run, script, sizeof(script));
	run[4].server = filler;
	session_start(&s, run, 1000);
	assert_int_equal(dc_imap_list(s.im, 1, 10, 0, &msgs, &n, &err), DC_OK);
	assert_int_equal(n, 2);
	assert_int_equal(msgs[0].size, 10);
	assert_int_equal(msgs[1].size, 900);
	free(msgs);
	assert_int_equal(dc_imap_fetch(s.im, u, 2, on_body, &g, &err), DC_OK);
	assert_int_equal(g.n, 2);
	assert_true(g.dropped[0]); /* 1500 > 1000, whatever the listing said */
	assert_int_equal(g.len[0], 1500);
	assert_false(g.dropped[1]);
	assert_int_equal(g.len[1], 5);
	assert_string_equal(g.data[1], "small");
	session_end(&s);
}

/* A server that trickles (a byte every 100 ms: never silent for a whole
 * timeout) or goes silent: with a 0.5 s timeout the command ends after the
 * first 1 s window, or after the 0.5 s of silence. */
static void
test_slow_server(void **state)
{
	static const step trickle_select[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		SELECT("D3"),
		{ NULL, NULL },
	};
	static const step trickle_body[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		{ "D3 UID FETCH 1 BODY.PEEK[]", "* 1 FETCH (UID 1 BODY[] {200}\r\n" },
		{ NULL, "0123456789012345678901234567890123456789012345678901234567890123456789" },
		{ NULL, NULL },
	};
	static const step silent[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		{ "D3 SELECT \"INBOX\"", "* 3 EXISTS\r\n" },
		{ NULL, NULL },
	};
	struct {
		const step *script;
		int slow_step;
		const char *msg;
	} cases[] = {
		{ trickle_select, 2, "IMAP server too slow" },
		{ trickle_body, 3, "IMAP server too slow" },
		{ silent, 0, "did not answer within 0.5 s" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		script_opts so = { .max_body = 1000,
			.timeout_ms = 500,
			.slow_step = cases[i].slow_step,
			.slow_ms = 100,
			.hold = true };
		session s;
		dc_imap_folder_info fi;
		got g = { 0 };
		uint64_t u[] = { 1 };
		dc_err err;
		dc_code rc;
		struct timespec t0;
		long ms;

		session_start_opts(&s, cases[i].script, &so);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (cases[i].script == trickle_body)
			rc = dc_imap_fetch(s.im, u, 1, on_body, &g, &err);
		else
			rc = dc_imap_select(s.im, "INBOX", &fi, &err);
		ms = elapsed_ms(&t0);
		assert_int_equal(rc, DC_EIMAP);
		if (strstr(err.msg, cases[i].msg) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].msg);
		/* silent: the 0.5 s timeout; trickling: the first 1 s window */
		if (ms < (cases[i].slow_step ? 900 : 450) || ms > (cases[i].slow_step ? 2500 : 1500))
			fail_msg("case %zu: gave up after %ld ms", i, ms);
		assert_true(dc_imap_broken(s.im));
		assert_int_equal(g.n, 0);
		session_end(&s);
	}
}

/* BYE in the middle of a FETCH: what came before it was delivered, then a
 * clean error and a broken session (the poll commits what it stored and
 * moves nothing; the next poll sees those messages again as duplicates). */
static void
test_bye_mid_fetch(void **state)
{
	static const step script[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		{ "D3 UID FETCH 1:3 BODY.PEEK[]",
			"* 1 FETCH (UID 1 BODY[] {3}\r\none)\r\n"
			"* BYE System shutting down\r\n" },
		{ NULL, NULL },
	};
	session s;
	got g = { 0 };
	uint64_t u[] = { 1, 2, 3 };
	dc_err err;

	(void)state;
	session_start(&s, script, 1000);
	assert_int_equal(dc_imap_fetch(s.im, u, 3, on_body, &g, &err), DC_EIMAP);
	assert_string_equal(err.msg, "the IMAP server closed the connection: BYE System shutting down");
	assert_int_equal(g.n, 1);
	assert_int_equal(g.uid[0], 1);
	assert_true(dc_imap_broken(s.im));
	session_end(&s); /* no LOGOUT on a broken session */
}

/* A message expunged by another session during the FETCH: the others are
 * delivered (in whatever order the server sends them), the gone one is not,
 * and only what was delivered is moved.  Dovecot's way, a tagged
 * NO [EXPUNGEISSUED] (RFC 5530) after the other messages, is no error, in a
 * FETCH of bodies or of a listing. */
static void
test_expunge_mid_fetch(void **state)
{
	static const step script[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		{ "D3 UID FETCH 1:3 BODY.PEEK[]",
			"* 3 FETCH (UID 3 BODY[] {5}\r\nthree)\r\n"
			"* 2 EXPUNGE\r\n"
			"* 1 FETCH (UID 1 BODY[] {3}\r\none)\r\n"
			"D3 OK done\r\n" },
		{ "D4 UID MOVE 1,3 \"Archive/DMARC\"", "* 1 EXPUNGE\r\n* 1 EXPUNGE\r\nD4 OK moved\r\n" },
		{ "D5 UID FETCH 4:6 BODY.PEEK[]",
			"* 1 FETCH (UID 4 BODY[] {4}\r\nfour)\r\n"
			"* 3 FETCH (UID 6 BODY[] {3}\r\nsix)\r\n"
			"D5 NO [EXPUNGEISSUED] Some of the requested messages no longer exist\r\n" },
		{ "D6 UID MOVE 4,6 \"Archive/DMARC\"", "D6 OK moved\r\n" },
		/* the same in a listing: the others are listed */
		{ "D7 UID FETCH 4:9 (UID RFC822.SIZE)",
			"* 1 FETCH (UID 7 RFC822.SIZE 10)\r\n"
			"D7 NO [EXPUNGEISSUED] Some of the requested messages no longer exist\r\n" },
		{ "D8 LOGOUT", "D8 OK done\r\n" },
		{ NULL, NULL },
	};
	session s;
	got g = { 0 };
	uint64_t u[] = { 1, 2, 3 }, v[] = { 4, 5, 6 }, done[3];
	size_t n_done = 0, n = 0;
	dc_imap_msg *msgs = NULL;
	dc_err err;

	(void)state;
	session_start(&s, script, 1000);
	assert_int_equal(dc_imap_fetch(s.im, u, 3, on_body, &g, &err), DC_OK);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.uid[0], 3);
	assert_int_equal(g.uid[1], 1);
	/* what the poll does: move only the messages it stored, in UID order */
	for (size_t i = 0; i < 3; i++)
		for (int k = 0; k < g.n; k++)
			if (g.uid[k] == u[i])
				done[n_done++] = u[i];
	assert_int_equal(dc_imap_move(s.im, done, n_done, "Archive/DMARC", &err), DC_OK);
	g.n = 0;
	n_done = 0;
	assert_int_equal(dc_imap_fetch(s.im, v, 3, on_body, &g, &err), DC_OK);
	assert_int_equal(g.n, 2);
	assert_false(dc_imap_broken(s.im));
	for (size_t i = 0; i < 3; i++)
		for (int k = 0; k < g.n; k++)
			if (g.uid[k] == v[i])
				done[n_done++] = v[i];
	assert_int_equal(dc_imap_move(s.im, done, n_done, "Archive/DMARC", &err), DC_OK);
	assert_int_equal(dc_imap_list(s.im, 4, 10, 0, &msgs, &n, &err), DC_OK);
	assert_int_equal(n, 1);
	assert_int_equal(msgs[0].uid, 7);
	free(msgs);
	session_end(&s);
}

/* Non-ASCII archive and invalid folders go out in modified UTF-7; LIST
 * answers are decoded and must name the folder itself: another folder that a
 * "%" pattern matched, or a \Noselect level, is not it. */
static void
test_utf7_folders(void **state)
{
	static const step slash[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "/"),
		{ "D3 LIST \"\" \"Archiv/Entw&APw-rfe\"",
			"* LIST (\\HasNoChildren) \"/\" \"Archiv/Entw&APw-rfe\"\r\nD3 OK done\r\n" },
		{ "D4 UID MOVE 7 \"Archiv/Entw&APw-rfe\"", "D4 OK moved\r\n" },
		{ "D5 LIST \"\" \"&BB4EQgRHBFEEQgRL-\"", "D5 OK done\r\n" },
		{ "D6 CREATE \"&BB4EQgRHBFEEQgRL-\"", "D6 OK created\r\n" },
		{ "D7 SUBSCRIBE \"&BB4EQgRHBFEEQgRL-\"", "D7 OK done\r\n" },
		{ "D8 UID MOVE 8 \"&BB4EQgRHBFEEQgRL-\"", "D8 OK moved\r\n" },
		/* "%" is a LIST pattern: Archive/DMARC is not Archive/% */
		{ "D9 LIST \"\" \"Archive/%\"", "* LIST () \"/\" Archive/DMARC\r\nD9 OK done\r\n" },
		{ "D10 CREATE \"Archive/%\"", "D10 OK created\r\n" },
		{ "D11 SUBSCRIBE \"Archive/%\"", "D11 OK done\r\n" },
		/* a level that only exists as a parent */
		{ "D12 LIST \"\" \"Archiv\"",
			"* LIST (\\Noselect \\HasChildren) \"/\" Archiv\r\nD12 OK done\r\n" },
		{ "D13 CREATE \"Archiv\"", "D13 NO [ALREADYEXISTS] Mailbox already exists\r\n" },
		{ "D14 SUBSCRIBE \"Archiv\"", "D14 OK done\r\n" },
		/* INBOX in any case; a name sent as a literal is not matched: CREATE says it exists */
		{ "D15 LIST \"\" \"inbox\"", "* LIST () \"/\" INBOX\r\nD15 OK done\r\n" },
		{ "D16 LIST \"\" \"Archiv/Entw&APw-rfe\"",
			"* LIST () \"/\" {19}\r\nArchiv/Entw&APw-rfe\r\nD16 OK done\r\n" },
		{ "D17 CREATE \"Archiv/Entw&APw-rfe\"", "D17 NO [ALREADYEXISTS] Mailbox already exists\r\n" },
		{ "D18 SUBSCRIBE \"Archiv/Entw&APw-rfe\"", "D18 OK done\r\n" },
		{ "D19 LOGOUT", "D19 OK done\r\n" },
		{ NULL, NULL },
	};
	static const step dot[] = {
		PRELUDE("IMAP4rev1 MOVE UIDPLUS", "."),
		{ "D3 LIST \"\" \"Archiv.Entw&APw-rfe\"",
			"* LIST (\\HasNoChildren) \".\" Archiv.Entw&APw-rfe\r\nD3 OK done\r\n" },
		/* a name the server spells badly is not ours */
		{ "D4 LIST \"\" \"&BB4EQgRHBFEEQgRL-\"",
			"* LIST () \".\" \"&BB4EQgRHBFEEQgRL\"\r\nD4 OK done\r\n" },
		{ "D5 CREATE \"&BB4EQgRHBFEEQgRL-\"", "D5 OK created\r\n" },
		{ "D6 SUBSCRIBE \"&BB4EQgRHBFEEQgRL-\"", "D6 NO not now\r\n" },
		{ "D7 LOGOUT", "D7 OK done\r\n" },
		{ NULL, NULL },
	};
	const char *entw = "Archiv/Entw\xc3\xbcrfe",
		   *otch = "\xd0\x9e\xd1\x82\xd1\x87\xd1\x91\xd1\x82\xd1\x8b";
	session s;
	uint64_t u7[] = { 7 }, u8[] = { 8 };
	dc_err err;

	(void)state;
	session_start(&s, slash, 1000);
	assert_int_equal(dc_imap_ensure_folder(s.im, entw, &err), DC_OK);
	assert_int_equal(dc_imap_move(s.im, u7, 1, entw, &err), DC_OK);
	assert_int_equal(dc_imap_ensure_folder(s.im, otch, &err), DC_OK);
	assert_int_equal(dc_imap_move(s.im, u8, 1, otch, &err), DC_OK);
	assert_int_equal(dc_imap_ensure_folder(s.im, "Archive/%", &err), DC_OK);
	assert_int_equal(dc_imap_ensure_folder(s.im, "Archiv", &err), DC_OK);
	assert_int_equal(dc_imap_ensure_folder(s.im, "inbox", &err), DC_OK);
	assert_int_equal(dc_imap_ensure_folder(s.im, entw, &err), DC_OK);
	session_end(&s);

	session_start(&s, dot, 1000);
	assert_int_equal(dc_imap_ensure_folder(s.im, entw, &err), DC_OK);
	assert_int_equal(dc_imap_ensure_folder(s.im, otch, &err), DC_OK);
	session_end(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uid_set),
		cmocka_unit_test(test_url_parse),
		cmocka_unit_test(test_select_list_fetch),
		cmocka_unit_test(test_callback_error_drains),
		cmocka_unit_test(test_trycreate),
		cmocka_unit_test(test_no_move_no_uidplus),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_hostile_server),
		cmocka_unit_test(test_random_server),
		cmocka_unit_test(test_literal_limits),
		cmocka_unit_test(test_size_mismatch),
		cmocka_unit_test(test_slow_server),
		cmocka_unit_test(test_bye_mid_fetch),
		cmocka_unit_test(test_expunge_mid_fetch),
		cmocka_unit_test(test_utf7_folders),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
