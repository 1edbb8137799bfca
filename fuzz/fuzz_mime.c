/*
 * fuzz_mime.c - libFuzzer target for dc_extract, the parser's entry point:
 * arbitrary bytes as a message or bare file, small limits, a counting sink
 * that reads every string and the origin blob it is given (ASan catches a
 * dangling pointer), and checks that every unit was accounted for once.
 *
 *   cmake -DDC_FUZZ=ON -DCMAKE_C_COMPILER=clang -B build-fuzz && cmake --build build-fuzz --target fuzz_mime
 *   build-fuzz/fuzz/fuzz_mime -max_total_time=60 CORPUS_DIR tests/data/unpack
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dc_extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct count {
	uint64_t begun, ended, aborted, records, cur, bytes;
} count;

static void
touch(count *c, const char *s)
{
	if (s != NULL)
		c->bytes += strlen(s);
}

static dc_code
f_begin(void *ctx, const dc_report *r, const dc_blob *o, dc_err *err)
{
	count *c = ctx;

	(void)err;
	touch(c, r->org_name);
	touch(c, r->report_id);
	touch(c, r->policy_domain);
	touch(c, r->errors);
	touch(c, o->name);
	touch(c, o->path);
	touch(c, o->notes);
	for (size_t i = 0; i < o->len; i += 4096)
		c->bytes += o->data[i];
	c->begun++;
	c->cur = 0;
	return DC_OK;
}

static dc_code
f_record(void *ctx, const dc_report *r, const dc_record *rec, dc_err *err)
{
	count *c = ctx;

	(void)r;
	(void)err;
	touch(c, rec->source_ip);
	touch(c, rec->header_from);
	c->cur++;
	return DC_OK;
}

static dc_code
f_end(void *ctx, const dc_report *r, dc_err *err)
{
	count *c = ctx;

	(void)r;
	(void)err;
	c->ended++;
	c->records += c->cur; /* only records of stored reports count */
	return DC_OK;
}

static void
f_abort(void *ctx)
{
	((count *)ctx)->aborted++;
}

static dc_code
f_failure(void *ctx, const char *stage, const dc_err *why, const dc_blob *unit, dc_err *err)
{
	count *c = ctx;

	(void)err;
	touch(c, stage);
	touch(c, why->msg);
	touch(c, unit->path);
	touch(c, unit->name);
	if (unit->len > 0)
		c->bytes += unit->data[unit->len - 1];
	return DC_OK;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	count c = { 0 };
	dc_extract_cb cb = { { &c, f_begin, f_record, f_end, f_abort, NULL, NULL }, f_failure, &c, NULL,
		NULL };
	dc_extract_stats st = { 0 };
	dc_limits lim;
	dc_err err;
	dc_code rc;

	dc_limits_default(&lim);
	lim.max_message_bytes = 1 << 20;
	lim.max_report_bytes = 4 << 20;
	lim.max_records = 10000;
	rc = dc_extract(data, size, "fuzz", &lim, &cb, &st, &err);
	/* a counting sink never fails, so neither may dc_extract */
	if (rc != DC_OK)
		abort();
	if (st.reports != c.ended || c.begun != c.ended + c.aborted || st.records != c.records)
		abort();
	return 0;
}
