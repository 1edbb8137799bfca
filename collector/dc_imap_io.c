/*
 * dc_imap_io.c - the IMAP client's bytes on the connection: sends, and a
 * bounded reader of responses (one line at a time up to DC_MAX_IMAP_LINE;
 * literals {n} read into the body buffer when they are the value of
 * BODY[], capped at max_message_bytes with larger ones read and dropped up
 * to DC_MAX_IMAP_DRAIN times that, and replaced by NIL otherwise).  Every
 * wait for the server is bounded by a silence timeout and a least rate per
 * window (wait_socket).  Each chunk received is reported to the session's
 * progress callback (the service's watchdog).  Through libcurl
 * (curl_easy_send/recv) after its CONNECT_ONLY login, or straight on a
 * socket for dc_imap_open_fd.
 *
 * Deliberately not here: commands, tags, parsing what a response says
 * (dc_imap.c).
 */
#include "dc_imap_io.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

/* Marks the session unusable and returns code with the message in err. */
dc_code __attribute__((format(printf, 4, 5)))
dc_imap_break(dc_imap *im, dc_err *err, dc_code code, const char *fmt, ...)
{
	char msg[DC_ERR_MSG_MAX];
	va_list ap;

	im->broken = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return dc_err_set(err, code, "%s", msg);
}

/* Milliseconds of the monotonic clock. */
static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts a command's first window of 2 * timeout_ms (see wait_socket). */
void
dc_imap_window_start(dc_imap *im)
{
	im->win_start = now_ms();
	im->win_bytes = 0;
}

/*
 * Waits until the socket is ready for events.  Two rules bound the wait:
 * the server must not be silent for timeout_ms, and each window of
 * 2 * timeout_ms since the command began must carry at least
 * DC_IMAP_MIN_BYTES_PER_S bytes a second on average (a server trickling a
 * byte a second would otherwise hold the connection as long as it likes; the
 * window is longer than the silence allowed, so a server that is only
 * silent is told as such).  DC_EIMAP (session broken) when either is broken.
 */
static dc_code
wait_socket(dc_imap *im, short events, dc_err *err)
{
	struct pollfd p = { .fd = im->sock, .events = events };
	int64_t idle_end = now_ms() + im->timeout_ms;

	for (;;) {
		int64_t now = now_ms(), win_end = im->win_start + 2 * im->timeout_ms;

		if (now >= win_end) {
			uint64_t need = (uint64_t)DC_IMAP_MIN_BYTES_PER_S * (uint64_t)(now - im->win_start) /
				1000;

			if (im->win_bytes < need)
				return dc_imap_break(im, err, DC_EIMAP,
					"IMAP server too slow: %" PRIu64 " bytes in %.1f s "
					"(at least %d bytes/s required)",
					im->win_bytes, (double)(now - im->win_start) / 1000.0,
					DC_IMAP_MIN_BYTES_PER_S);
			im->win_start = now;
			im->win_bytes = 0;
			win_end = now + 2 * im->timeout_ms;
		}
		if (now >= idle_end) {
			im->broken = true;
			return dc_err_set(err, DC_EIMAP, "IMAP server did not answer within %.1f s",
				(double)im->timeout_ms / 1000.0);
		}
		int64_t until = win_end < idle_end ? win_end : idle_end;
		int r = poll(&p, 1, (int)(until - now));

		if (r > 0)
			return DC_OK;
		if (r < 0 &&
			errno != EINTR) /* a signal: go on, callers look at their flags between messages */
			return dc_imap_break(
				im, err, DC_EIO, "poll on the IMAP connection: %s", strerror(errno));
	}
}

/* One send or receive through libcurl, or straight on the socket when the
 * session was opened with dc_imap_open_fd (tests); CURLE_AGAIN when it would block. */
static CURLcode
xfer(dc_imap *im, bool out, void *buf, size_t len, size_t *n)
{
	ssize_t r;

	if (im->curl != NULL) {
		CURLcode c = out ? curl_easy_send(im->curl, buf, len, n) :
				   curl_easy_recv(im->curl, buf, len, n);

		if (c == CURLE_OK)
			im->win_bytes += *n;
		return c;
	}
	r = out ? send(im->sock, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT) :
		  recv(im->sock, buf, len, MSG_DONTWAIT);
	if (r >= 0) {
		*n = (size_t)r;
		im->win_bytes += *n;
		return CURLE_OK;
	}
	*n = 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return CURLE_AGAIN;
	return out ? CURLE_SEND_ERROR : CURLE_RECV_ERROR;
}

/* Sends all of buf[0..len); DC_EIMAP (session broken) when it cannot. */
dc_code
dc_imap_send_all(dc_imap *im, const char *buf, size_t len, dc_err *err)
{
	while (len > 0) {
		size_t n = 0;
		CURLcode c = xfer(im, true, (void *)buf, len, &n);

		if (c == CURLE_OK) {
			buf += n;
			len -= n;
		} else if (c == CURLE_AGAIN) {
			dc_code rc = wait_socket(im, POLLOUT, err);
			if (rc != DC_OK)
				return rc;
		} else {
			return dc_imap_break(im, err, DC_EIMAP, "sending to the IMAP server failed: %s",
				curl_easy_strerror(c));
		}
	}
	return DC_OK;
}

/* Receives at least one byte into buf[0..cap) and reports the progress;
 * DC_EIMAP when the server closed. */
static dc_code
recv_some(dc_imap *im, void *buf, size_t cap, size_t *got, dc_err *err)
{
	for (;;) {
		size_t n = 0;
		CURLcode c = xfer(im, false, buf, cap, &n);

		if (c == CURLE_OK) {
			if (n == 0)
				return dc_imap_break(
					im, err, DC_EIMAP, "%s", "the IMAP server closed the connection");
			*got = n;
			if (im->progress != NULL)
				im->progress(im->progress_ctx);
			return DC_OK;
		}
		if (c != CURLE_AGAIN)
			return dc_imap_break(im, err, DC_EIMAP, "receiving from the IMAP server failed: %s",
				curl_easy_strerror(c));
		dc_code rc = wait_socket(im, POLLIN, err);
		if (rc != DC_OK)
			return rc;
	}
}

/* Refills the empty receive buffer with at least one byte. */
static dc_code
fill(dc_imap *im, dc_err *err)
{
	size_t got = 0;
	dc_code rc;

	im->rpos = im->rend = 0;
	rc = recv_some(im, im->rbuf, DC_IMAP_RBUF_SIZE, &got, err);
	if (rc == DC_OK)
		im->rend = got;
	return rc;
}

/* Appends received bytes to im->line up to and without the next CRLF (or LF). */
static dc_code
read_line(dc_imap *im, dc_err *err)
{
	for (;;) {
		uint8_t *start, *nl;
		size_t take;

		if (im->rpos == im->rend) {
			dc_code rc = fill(im, err);
			if (rc != DC_OK)
				return rc;
		}
		start = im->rbuf + im->rpos;
		nl = memchr(start, '\n', im->rend - im->rpos);
		take = nl ? (size_t)(nl - start) : im->rend - im->rpos;
		if (im->line_len + take > DC_MAX_IMAP_LINE)
			return dc_imap_break(im, err, DC_EIMAP, "IMAP response line longer than %d bytes",
				DC_MAX_IMAP_LINE);
		memcpy(im->line + im->line_len, start, take);
		im->line_len += take;
		im->rpos += take;
		if (nl) {
			im->rpos++;
			if (im->line_len > 0 && im->line[im->line_len - 1] == '\r')
				im->line_len--;
			im->line[im->line_len] = '\0';
			return DC_OK;
		}
	}
}

/* Reads exactly n bytes into dst, or drops them when dst is NULL. */
static dc_code
read_exact(dc_imap *im, uint8_t *dst, uint64_t n, dc_err *err)
{
	while (n > 0) {
		size_t avail = im->rend - im->rpos;

		if (avail == 0) {
			/* large remainder: receive straight into the destination */
			if (dst != NULL && n >= DC_IMAP_RBUF_SIZE) {
				size_t got = 0;
				dc_code rc = recv_some(
					im, dst, n > SIZE_MAX ? SIZE_MAX : (size_t)n, &got, err);
				if (rc != DC_OK)
					return rc;
				dst += got;
				n -= got;
				continue;
			}
			dc_code rc = fill(im, err);
			if (rc != DC_OK)
				return rc;
			avail = im->rend - im->rpos;
		}
		size_t take = avail < n ? avail : (size_t)n;
		if (dst != NULL) {
			memcpy(dst, im->rbuf + im->rpos, take);
			dst += take;
		}
		im->rpos += take;
		n -= take;
	}
	return DC_OK;
}

/* If line ends with a literal announcement {n}, sets *n (UINT64_MAX when it
 * does not fit) and *at (offset of '{'). */
static bool
ends_with_literal(const char *line, size_t len, uint64_t *n, size_t *at)
{
	size_t i;
	uint64_t v = 0;

	if (len < 3 || line[len - 1] != '}')
		return false;
	i = len - 1;
	while (i > 0 && isdigit((unsigned char)line[i - 1]))
		i--;
	if (i == len - 1 || i == 0 || line[i - 1] != '{')
		return false;
	for (size_t k = i; k < len - 1; k++) {
		uint64_t d = (uint64_t)(line[k] - '0');

		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	*n = v;
	*at = i - 1;
	return true;
}

/*
 * Reads one whole response: its text in im->line (each literal replaced by
 * NIL, except the value of BODY[], which goes to im->body).  Returns DC_OK,
 * or an error with the connection marked broken.
 */
dc_code
dc_imap_read_response(dc_imap *im, dc_err *err)
{
	im->line_len = 0;
	im->has_body = im->body_dropped = false;
	im->body_len = 0;
	for (;;) {
		uint64_t n;
		size_t at;
		dc_code rc = read_line(im, err);

		if (rc != DC_OK)
			return rc;
		if (!ends_with_literal(im->line, im->line_len, &n, &at))
			return DC_OK;
		bool is_body = at >= 7 && strncasecmp(im->line + at - 7, "BODY[] ", 7) == 0;
		im->line_len = at;
		if (!is_body && n > DC_MAX_IMAP_LINE)
			return dc_imap_break(im, err, DC_EIMAP,
				"IMAP server announced a literal of %" PRIu64
				" bytes outside a message body (at most %d)",
				n, DC_MAX_IMAP_LINE);
		if (is_body && n / DC_MAX_IMAP_DRAIN > im->max_body)
			return dc_imap_break(im, err, DC_EIMAP,
				"IMAP server announced a message body of %" PRIu64
				" bytes, more than %d times max_message_bytes (%" PRIu64 ")",
				n, DC_MAX_IMAP_DRAIN, im->max_body);
		if (is_body && !im->has_body && n <= im->max_body) {
			if (n > im->body_cap) {
				uint8_t *b = realloc(im->body, (size_t)n);
				if (b == NULL)
					return dc_imap_break(
						im, err, DC_ENOMEM, "%s", "out of memory for a message body");
				im->body = b;
				im->body_cap = (size_t)n;
			}
			rc = read_exact(im, im->body, n, err);
			im->body_len = (size_t)n;
			im->has_body = true;
		} else {
			/* not the message (or a second BODY[] in one response): read and dropped */
			rc = read_exact(im, NULL, n, err);
			if (is_body && !im->has_body) {
				im->has_body = im->body_dropped = true;
				im->body_len = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
			}
		}
		if (rc != DC_OK)
			return rc;
		if (im->line_len + 3 > DC_MAX_IMAP_LINE)
			return dc_imap_break(im, err, DC_EIMAP, "IMAP response line longer than %d bytes",
				DC_MAX_IMAP_LINE);
		memcpy(im->line + im->line_len, "NIL", 3);
		im->line_len += 3;
	}
}
