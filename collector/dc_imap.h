/*
 * dc_imap.h - a small IMAP4rev1 client for the collector: libcurl connects,
 * negotiates TLS (imaps, or STARTTLS required), verifies the certificate and
 * logs in (SASL PLAIN/LOGIN or XOAUTH2); this module then speaks the few
 * commands the collector needs over that connection.
 *
 * Why not libcurl's IMAP transfers: a URL fetch (;UID=n) is sent as
 * `UID FETCH n BODY[]`, which sets \Seen before anything is stored; a custom
 * `UID FETCH n BODY.PEEK[]` request loses the literal; custom requests do not
 * hand over the tagged status.  So libcurl runs with CURLOPT_CONNECT_ONLY
 * (which with 7.88 completes greeting, STARTTLS and login for imap:// and
 * imaps://) and the commands go through curl_easy_send / curl_easy_recv.
 *
 * Commands: CAPABILITY, LIST (separator, folder exists), CREATE, SUBSCRIBE,
 * SELECT, UID FETCH (UID RFC822.SIZE), UID FETCH BODY.PEEK[] (never sets
 * \Seen), UID MOVE (RFC 6851) or UID COPY + UID STORE \Deleted + UID EXPUNGE
 * (RFC 4315; plain EXPUNGE without UIDPLUS), UID STORE +FLAGS (\Seen),
 * LOGOUT.  Folder names are written with "/" as the hierarchy separator and
 * translated to the server's; non-ASCII names are sent in modified UTF-7
 * (RFC 3501 section 5.1.3).
 *
 * Every buffer fed by the server is capped: a response line at
 * DC_MAX_IMAP_LINE bytes, a message body at max_message_bytes (a larger body
 * is read and dropped, and reported as too big; one announced at more than
 * DC_MAX_IMAP_DRAIN times that ends the session), any other literal at
 * DC_MAX_IMAP_LINE, a listing at DC_MAX_IMAP_LIST messages per call.  So is
 * the time: a server silent for timeout_ms, or slower than
 * DC_IMAP_MIN_BYTES_PER_S over a window of twice that, ends the session.
 * Each chunk received is reported to the progress callback, if any.
 * Deliberately not here: MIME, the database, retries, logging.
 */
#ifndef DC_IMAP_H
#define DC_IMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dc_error.h"
#include "dc_imap_folder.h"
#include "dc_libversion.h"

typedef struct dc_imap dc_imap;

typedef struct dc_imap_opts {
	const char *url; /* imaps://host[:port][/FOLDER] or imap://... */
	const char *user;
	const char *password;       /* SASL PLAIN/LOGIN; NULL when bearer is set */
	const char *bearer;         /* XOAUTH2 bearer token, or NULL */
	const char *ca_file;        /* trusted CAs (PEM); NULL = the system's */
	bool tls_none;              /* imap:// without STARTTLS (tls = none) */
	long timeout_ms;            /* connect; the longest silence of the server; 0 = 60 s */
	uint64_t max_message_bytes; /* cap on one message body; 0 = DC_DEFAULT_MAX_MESSAGE_BYTES */
	/* Called each time bytes arrive from the server (a chunk of a response
	 * or of a literal), from the session's thread; may be NULL.  The
	 * service's watchdog: a session that receives nothing does not call it. */
	void (*progress)(void *ctx);
	void *progress_ctx;
} dc_imap_opts;

/* The parts of an IMAP URL the collector uses. */
typedef struct dc_imap_url {
	char *scheme; /* "imap" or "imaps" */
	char *host;
	long port;     /* 0 when the URL has none */
	char *folder;  /* percent-decoded path, "INBOX" when empty */
	bool loopback; /* host is localhost, 127.0.0.0/8 or ::1 */
} dc_imap_url;

/* Parses url; on success *out is owned by the caller (dc_imap_url_clear).
 * Returns DC_ECONFIG for anything but an imap:// or imaps:// URL with a host. */
dc_code dc_imap_url_parse(const char *url, dc_imap_url *out, dc_err *err) DC_WUR;
void dc_imap_url_clear(dc_imap_url *u);

/* Connects and logs in.  On success *out is owned by the caller
 * (dc_imap_free).  Returns DC_EAUTH when the login is refused, DC_ETLS when
 * TLS or the certificate check fails, DC_EIMAP when the server cannot be
 * reached or misbehaves, DC_ECONFIG for a bad URL. */
dc_code dc_imap_open(const dc_imap_opts *o, dc_imap **out, dc_err *err) DC_WUR;

/* For tests: a session over an already connected socket fd (no TLS, no
 * login), which stays the caller's to close.  Runs CAPABILITY and LIST like
 * dc_imap_open; only o's timeout_ms and max_message_bytes are used. */
dc_code dc_imap_open_fd(int fd, const dc_imap_opts *o, dc_imap **out, dc_err *err) DC_WUR;

/* Sends LOGOUT when the connection is still usable, then closes it. */
void dc_imap_free(dc_imap *im);

/* True when the server advertised capability cap (e.g. "MOVE"), case-insensitively. */
bool dc_imap_has_capability(const dc_imap *im, const char *cap);

/* True after an I/O or protocol error: the connection must not be used again. */
bool dc_imap_broken(const dc_imap *im);

typedef struct dc_imap_folder_info {
	uint64_t uidvalidity;
	uint64_t uidnext; /* 0 when the server did not say */
	uint64_t exists;
	bool read_only;
} dc_imap_folder_info;

/* SELECTs folder (read-write).  Returns DC_ECONFIG when the server says the
 * folder does not exist or is not ours ([NONEXISTENT], [NOPERM], or a LIST
 * after the refusal does not find it), DC_EIMAP
 * when it refuses otherwise (with its text in err) or sent no UIDVALIDITY. */
dc_code dc_imap_select(dc_imap *im, const char *folder, dc_imap_folder_info *info, dc_err *err) DC_WUR;

typedef struct dc_imap_msg {
	uint64_t uid;
	uint64_t size; /* RFC822.SIZE */
} dc_imap_msg;

/* Lists the messages of the selected folder with min_uid <= UID < max_uid
 * (max_uid 0 = no upper bound) in UID order, at most cap of them (0 or more
 * than DC_MAX_IMAP_LIST = DC_MAX_IMAP_LIST).  *msgs is owned by the caller
 * (free), *n its length. */
dc_code dc_imap_list(dc_imap *im, uint64_t min_uid, uint64_t max_uid, size_t cap, dc_imap_msg **msgs,
	size_t *n, dc_err *err) DC_WUR;

/*
 * Called once per message body as it arrives.  data is NULL when the body
 * was larger than max_message_bytes (len is then its size; the bytes were
 * dropped).  data is owned by the client and valid only during the call.
 * Returning anything but DC_OK stops the deliveries: the rest of the
 * server's answer is read and dropped, and dc_imap_fetch returns that code
 * with err as the callback set it (the connection stays usable).
 */
typedef dc_code (*dc_imap_body_fn)(void *ctx, uint64_t uid, const uint8_t *data, size_t len, dc_err *err);

/* Fetches the bodies of uids (ascending) with UID FETCH ... BODY.PEEK[], which
 * leaves \Seen alone.  Bodies come in the server's order; len is the
 * literal's own length, whatever RFC822.SIZE said.  A UID the server no
 * longer has is not delivered (a tagged NO [EXPUNGEISSUED] is no error). */
dc_code
dc_imap_fetch(dc_imap *im, const uint64_t *uids, size_t n, dc_imap_body_fn fn, void *ctx, dc_err *err) DC_WUR;

/* Creates folder (and subscribes to it) unless LIST shows it exists. */
dc_code dc_imap_ensure_folder(dc_imap *im, const char *folder, dc_err *err) DC_WUR;

/* Moves uids to folder: UID MOVE, or UID COPY + UID STORE +FLAGS.SILENT
 * (\Deleted) + UID EXPUNGE (EXPUNGE without UIDPLUS) where MOVE is missing.
 * The folder is created first when the server answers [TRYCREATE]. */
dc_code dc_imap_move(dc_imap *im, const uint64_t *uids, size_t n, const char *folder, dc_err *err) DC_WUR;

/* Marks uids \Seen (UID STORE +FLAGS.SILENT). */
dc_code dc_imap_mark_seen(dc_imap *im, const uint64_t *uids, size_t n, dc_err *err) DC_WUR;

/* Deletes uids: \Deleted, then UID EXPUNGE (EXPUNGE without UIDPLUS). */
dc_code dc_imap_delete(dc_imap *im, const uint64_t *uids, size_t n, dc_err *err) DC_WUR;

/* Formats uids[0..n) (ascending) as an IMAP sequence set "1:4,7" into a new
 * string owned by the caller, using at most max_len characters: *used says
 * how many uids it covers (at least one).  NULL on allocation failure. */
char *dc_imap_uid_set(const uint64_t *uids, size_t n, size_t max_len, size_t *used);

/* libcurl as loaded, with its TLS library ("7.88.1 (OpenSSL/3.0.17)");
 * dc_libversion.h. */
size_t dc_imap_libversions(dc_libversion *v, size_t max);

#endif
