/*
 * dc_imap_io.h - internal to the IMAP client: the session (struct dc_imap)
 * and its bounded reader and writer, shared by dc_imap.c (commands) and
 * dc_imap_io.c (bytes on the connection).  Nothing outside collector/dc_imap*.c
 * includes it; callers see dc_imap.h.
 */
#ifndef DC_IMAP_IO_H
#define DC_IMAP_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "dc_imap.h"
#include "dc_limits.h"

#define DC_IMAP_RBUF_SIZE (64 * 1024) /* bytes received at once */

struct dc_imap {
	CURL *curl;
	curl_socket_t sock;
	long timeout_ms;
	uint64_t max_body;
	unsigned tag;
	char *caps; /* " CAP1 CAP2 " upper-case */
	char sep;   /* server's hierarchy separator */
	bool broken;
	bool own_sock;               /* libcurl's socket, not a caller's (dc_imap_open_fd) */
	void (*progress)(void *ctx); /* bytes arrived (dc_imap_opts); may be NULL */
	void *progress_ctx;
	int64_t win_start;               /* ms (monotonic): the current window of the command */
	uint64_t win_bytes;              /* bytes sent or received in it */
	char status[DC_MAX_IMAP_STATUS]; /* text of the last tagged response */

	uint8_t *rbuf; /* bytes received, not yet consumed */
	size_t rpos, rend;

	char *line; /* current response, literals apart */
	size_t line_len;
	uint8_t *body; /* the BODY[] literal of the current response */
	size_t body_cap, body_len;
	bool has_body, body_dropped;
};

/* Marks the session unusable (im->broken) and returns code with the
 * printf-formatted message in err. */
dc_code dc_imap_break(dc_imap *im, dc_err *err, dc_code code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Starts a command's first window of 2 * timeout_ms: the least-rate rule
 * of the waits (see dc_imap_io.c) counts from here. */
void dc_imap_window_start(dc_imap *im);

/* Sends all of buf[0..len).  DC_OK, or DC_EIMAP / DC_EIO with the session
 * broken. */
dc_code dc_imap_send_all(dc_imap *im, const char *buf, size_t len, dc_err *err) DC_WUR;

/* Reads one whole response into im->line (NUL-terminated, literals
 * replaced by NIL) and the BODY[] literal, if any, into im->body (up to
 * max_body; larger ones are dropped, body_dropped set).  DC_OK, or an error
 * with the session broken. */
dc_code dc_imap_read_response(dc_imap *im, dc_err *err) DC_WUR;

#endif
