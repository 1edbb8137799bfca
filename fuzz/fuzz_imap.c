/*
 * fuzz_imap.c - libFuzzer target for the IMAP response reader (collector/dc_imap_io.c
 * and the commands in dc_imap.c):
 * the fuzz input is everything a hostile server says, as one byte stream, and
 * the client runs the session the poller runs (CAPABILITY, LIST, SELECT,
 * UID FETCH sizes, UID FETCH BODY.PEEK[], UID MOVE, LIST of a non-ASCII
 * folder) against it.  Every call must return a code, bodies must stay within
 * the cap, nothing may leak.  The client's own commands go to the other end
 * of the socket pair, unread.  The input's first line is also decoded as a
 * modified UTF-7 folder name: what decodes must encode and decode back to
 * the same name (collector/dc_imap_folder.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dc_imap.h"

#define BODY_CAP  4096
#define INPUT_MAX (128 * 1024) /* stays below the socket buffers: no writer thread */

static dc_code
on_body(void *ctx, uint64_t uid, const uint8_t *data, size_t len, dc_err *err)
{
	size_t *total = ctx;

	(void)uid;
	(void)err;
	if (data == NULL)
		return DC_OK; /* over the cap: dropped, only its size given */
	if (len > BODY_CAP)
		abort(); /* the cap was not enforced */
	for (size_t i = 0; i < len; i++)
		*total += data[i]; /* touch every byte */
	return DC_OK;
}

/* Decodes the input's first line as a folder name; a name that decodes must
 * survive dc_imap_quote_folder and decode to itself again. */
static void
folder_round_trip(const uint8_t *data, size_t size)
{
	char name[1024], *d, *q, *d2 = NULL;
	size_t n = 0;
	dc_err err;

	while (n < size && n < sizeof(name) - 1 && data[n] != '\n' && data[n] != '\r' && data[n] != '\0')
		n++;
	memcpy(name, data, n);
	name[n] = '\0';
	d = dc_imap_decode_folder(name, '/', &err);
	if (d == NULL)
		return;
	q = dc_imap_quote_folder(d, '/', &err);
	if (q == NULL)
		abort(); /* a decoded name the encoder refuses */
	{
		size_t j = 0; /* unquote: drop the quotes and the backslashes */
		for (size_t i = 1; q[i] && q[i + 1]; i++) {
			if (q[i] == '\\')
				i++;
			q[j++] = q[i];
		}
		q[j] = '\0';
	}
	d2 = dc_imap_decode_folder(q, '/', &err);
	if (d2 == NULL || strcmp(d, d2) != 0) {
		fprintf(stderr, "'%s' -> '%s' -> '%s' -> '%s'\n", name, d, q, d2 ? d2 : "(null)");
		abort();
	}
	free(d);
	free(q);
	free(d2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	int big = 4 * INPUT_MAX;
	dc_imap *im = NULL;
	dc_imap_opts o = { .timeout_ms = 2000, .max_message_bytes = BODY_CAP };
	dc_imap_folder_info fi;
	dc_imap_msg *msgs = NULL;
	size_t n = 0, total = 0;
	uint64_t uids[] = { 1, 2, 5 };
	dc_err err;

	if (size > INPUT_MAX)
		return 0;
	folder_round_trip(data, size);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 0;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	if (write(sv[1], data, size) != (ssize_t)size)
		goto out;
	shutdown(sv[1], SHUT_WR); /* the server says no more than the input */

	if (dc_imap_open_fd(sv[0], &o, &im, &err) != DC_OK)
		goto out;
	(void)dc_imap_has_capability(im, "MOVE");
	if (dc_imap_select(im, "INBOX", &fi, &err) == DC_OK &&
		dc_imap_list(im, 1, 0, 100, &msgs, &n, &err) == DC_OK) {
		for (size_t i = 0; i < n; i++)
			total += msgs[i].uid;
	}
	if (dc_imap_fetch(im, uids, 3, on_body, &total, &err) == DC_OK)
		(void)dc_imap_move(im, uids, 3, "Archive/DMARC", &err);
	(void)dc_imap_ensure_folder(im, "Archiv/Entw\xc3\xbcrfe", &err);
out:
	free(msgs);
	dc_imap_free(im);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
