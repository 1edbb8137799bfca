/*
 * fuzz_xml.c - libFuzzer target for dc_xml_parse: the input bytes are one
 * report stream, handed over in pieces whose size the first byte picks (so
 * the read filter's state machines meet every boundary), and a sink that
 * reads every string it is given (ASan catches any dangling pointer).
 *
 *   cmake -DDC_FUZZ=ON -DCMAKE_C_COMPILER=clang -B build-fuzz && cmake --build build-fuzz --target fuzz_xml
 *   build-fuzz/fuzz/fuzz_xml -max_total_time=60 tests/data/corpus/...
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dc_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct mem {
	const uint8_t *data;
	size_t len, pos, piece;
} mem;

static dc_code
mem_read(void *ctx, void *buf, size_t cap, size_t *got, dc_err *err)
{
	mem *m = ctx;
	size_t n = m->len - m->pos;
	(void)err;

	if (n > cap)
		n = cap;
	if (m->piece > 0 && n > m->piece)
		n = m->piece;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	*got = n;
	return DC_OK;
}

static size_t
touch(const char *s)
{
	return s ? strlen(s) : 0;
}

static size_t
touch_report(const dc_report *r)
{
	return touch(r->xmlns) + touch(r->version) + touch(r->org_name) + touch(r->org_email) +
		touch(r->extra_contact_info) + touch(r->report_id) + touch(r->generator) + touch(r->errors) +
		touch(r->policy_domain) + touch(r->policy_adkim) + touch(r->policy_aspf) +
		touch(r->policy_p) + touch(r->policy_sp) + touch(r->policy_np) + touch(r->policy_testing) +
		touch(r->policy_discovery_method) + touch(r->policy_fo) + (size_t)r->policy_pct +
		(size_t)r->date_begin + (size_t)r->date_end;
}

static dc_code
on_begin(void *ctx, const dc_report *r, const dc_blob *origin, dc_err *err)
{
	size_t *sum = ctx;
	(void)origin;
	(void)err;
	*sum += touch_report(r);
	return DC_OK;
}

static dc_code
on_record(void *ctx, const dc_report *r, const dc_record *c, dc_err *err)
{
	size_t *sum = ctx;
	(void)r;
	(void)err;
	*sum += touch(c->source_ip) + (size_t)c->message_count + touch(c->disposition) +
		touch(c->dkim_aligned) + touch(c->spf_aligned) + touch(c->header_from) +
		touch(c->envelope_from) + touch(c->envelope_to) + (size_t)c->ordinal;
	for (size_t i = 0; i < c->n_reasons; i++)
		*sum += touch(c->reasons[i].type) + touch(c->reasons[i].comment);
	for (size_t i = 0; i < c->n_dkim; i++)
		*sum += touch(c->dkim[i].domain) + touch(c->dkim[i].selector) + touch(c->dkim[i].result) +
			touch(c->dkim[i].human_result);
	for (size_t i = 0; i < c->n_spf; i++)
		*sum += touch(c->spf[i].domain) + touch(c->spf[i].scope) + touch(c->spf[i].result) +
			touch(c->spf[i].human_result);
	return DC_OK;
}

static dc_code
on_end(void *ctx, const dc_report *r, dc_err *err)
{
	size_t *sum = ctx;
	(void)err;
	*sum += touch_report(r);
	return DC_OK;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t pieces[8] = { 0, 1, 2, 3, 7, 64, 511, 4096 };
	size_t sum = 0;
	mem m = { data, size, 0, 0 };
	dc_sink sink = { &sum, on_begin, on_record, on_end, NULL, NULL, NULL };
	dc_blob origin = { data, size, "fuzz.xml", NULL, NULL, NULL };
	dc_limits lim;
	dc_err err;
	dc_code rc;

	if (size > 0) {
		m.piece = pieces[data[size - 1] & 7];
	}
	dc_limits_default(&lim);
	lim.max_records = 1000;
	rc = dc_xml_parse(mem_read, &m, &lim, &origin, &sink, &err);
	if (rc != DC_OK && strlen(err.msg) >= DC_ERR_MSG_MAX)
		__builtin_trap();
	return 0;
}
