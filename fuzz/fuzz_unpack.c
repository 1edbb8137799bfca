/*
 * fuzz_unpack.c - libFuzzer target for the container walk alone
 * (dc_unpack_walk): every XML stream found is read to its end in pieces
 * whose size the first input byte picks, under small limits; embedded
 * messages and failures are only looked at.
 *
 *   cmake -DDC_FUZZ=ON -DCMAKE_C_COMPILER=clang -B build-fuzz && cmake --build build-fuzz --target fuzz_unpack
 *   build-fuzz/fuzz/fuzz_unpack -max_total_time=60 CORPUS_DIR tests/data/corpus
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dc_unpack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct state {
	size_t piece;
	uint64_t sum;
} state;

static dc_code
on_xml(void *ctx, const dc_unpack_xml *x, dc_err *err)
{
	state *s = ctx;
	uint8_t buf[65536];
	size_t got;

	if (x->notes != NULL)
		s->sum += strlen(x->notes);
	s->sum += strlen(x->path);
	for (;;) {
		dc_code rc = x->rd(x->rctx, buf, s->piece, &got, err);
		if (rc != DC_OK) {
			/* the stream's own error must be recorded for the caller */
			if (x->stream_err->code != rc)
				abort();
			break;
		}
		if (got == 0)
			break;
		if (got > s->piece)
			abort();
		s->sum += buf[0] + buf[got - 1];
	}
	return DC_OK;
}

static dc_code
on_message(void *ctx, const uint8_t *data, size_t len, const char *path, int depth, dc_err *err)
{
	state *s = ctx;

	(void)err;
	(void)depth;
	s->sum += strlen(path) + (len ? data[len - 1] : 0);
	return DC_OK;
}

static dc_code
on_failure(void *ctx, const char *path, const dc_err *why, dc_err *err)
{
	state *s = ctx;

	(void)err;
	s->sum += strlen(path) + strlen(why->msg);
	return DC_OK;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t pieces[] = { 1, 7, 512, 4096, 65536 };
	state s = { 65536, 0 };
	dc_unpack_cb cb = { .ctx = &s, .xml = on_xml, .message = on_message, .failure = on_failure };
	dc_limits lim;
	dc_err err;

	if (size > 0) {
		s.piece = pieces[data[0] % 5];
		data++;
		size--;
	}
	dc_limits_default(&lim);
	lim.max_message_bytes = 1 << 20;
	lim.max_report_bytes = 4 << 20;
	if (dc_unpack_walk(data, size, 0, &lim, &cb, &err) != DC_OK)
		abort();
	return 0;
}
