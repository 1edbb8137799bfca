/*
 * dc_unpack_layer.c - the readers of one decompression layer (see
 * dc_unpack_layer.h): memory, peek, inflate (gzip RFC 1952 with every
 * member, zlib RFC 1950, zip deflate) and libzip's member reader, each
 * metered against limits.max_report_bytes, the ratio and the input's
 * unpacked budget as bytes come out.
 *
 * Deliberately not here: deciding what a stream is and where it goes (the
 * walk in dc_unpack.c), opening zip archives, buffering.
 */
#include "dc_unpack_layer.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records the chain's first failure and copies it to err; returns code. */
dc_code
dc_chain_fail(chain *ch, dc_err *err, dc_code code, const char *fmt, ...)
{
	va_list ap;
	dc_code rc;

	va_start(ap, fmt);
	rc = dc_err_firstv(&ch->err, err, code, fmt, ap);
	va_end(ap);
	return rc;
}

/* Appends one repair note (cut when the buffer is full). */
void
dc_chain_note(chain *ch, const char *fmt, ...)
{
	size_t l = strlen(ch->notes);
	va_list ap;

	if (l > 0 && l + 2 < sizeof(ch->notes)) {
		memcpy(ch->notes + l, "; ", 3);
		l += 2;
	}
	if (l + 1 >= sizeof(ch->notes))
		return;
	va_start(ap, fmt);
	vsnprintf(ch->notes + l, sizeof(ch->notes) - l, fmt, ap);
	va_end(ap);
}

/* Starts a chain of readers for one stream of the walk's unit. */
void
dc_chain_init(chain *ch, const dc_limits *lim, budget *b, const char *notes)
{
	memset(ch, 0, sizeof(*ch));
	ch->lim = lim;
	ch->b = b;
	if (notes != NULL)
		snprintf(ch->notes, sizeof(ch->notes), "%s", notes);
}

/* Checks one layer's output (got more bytes, m->out in all) against the
 * report size and the ratio: of the layer itself, of the chain since its
 * first compressed layer (root), and of the whole unit.  Returns DC_OK or
 * DC_ETOOBIG_REPORT / DC_ERATIO with err set. */
dc_code
dc_meter_check(chain *ch, const meter *m, const meter *root, size_t got, const char *what, dc_err *err)
{
	const dc_limits *l = ch->lim;
	budget *b = ch->b;
	bool over;

	/* the whole unit's budget is spent even when a layer's own check fires
	 * first, so the walk stops instead of trying the next member */
	b->out += got;
	if (b->t != NULL) {
		b->t->unpacked += got;
		if (l->max_unpacked_bytes > 0 && b->t->unpacked > l->max_unpacked_bytes) {
			b->spent = true;
			dc_unpack_tally_over(b->t, NULL,
				"input decompresses to more than limits.max_unpacked_bytes (%llu) in all, stopped",
				(unsigned long long)l->max_unpacked_bytes);
			return dc_chain_fail(ch, err, DC_EINPUT_LIMIT, "%s", b->t->over.msg);
		}
	}
	over = l->max_ratio > 0 && b->out > DC_RATIO_GRACE_BYTES &&
		(unsigned __int128)b->in * l->max_ratio < b->out;
	if (over)
		b->spent = true;
	if (l->max_report_bytes > 0 && m->out > l->max_report_bytes)
		return dc_chain_fail(ch, err, DC_ETOOBIG_REPORT,
			"%s output exceeds max_report_bytes (%llu), stopped after %llu bytes", what,
			(unsigned long long)l->max_report_bytes, (unsigned long long)m->out);
	if (l->max_ratio > 0 && m->out > DC_RATIO_GRACE_BYTES) {
		if ((unsigned __int128)m->in * l->max_ratio < m->out)
			return dc_chain_fail(ch, err, DC_ERATIO,
				"%s expands more than %llu:1, stopped after %llu bytes", what,
				(unsigned long long)l->max_ratio, (unsigned long long)m->out);
		if (root != NULL && root != m && (unsigned __int128)root->in * l->max_ratio < m->out)
			return dc_chain_fail(ch, err, DC_ERATIO,
				"nested archives expand more than %llu:1, stopped after %llu bytes",
				(unsigned long long)l->max_ratio, (unsigned long long)m->out);
	}
	if (over)
		return dc_chain_fail(ch, err, DC_ERATIO,
			"archive expands more than %llu:1 in all (%llu bytes from %llu), stopped",
			(unsigned long long)l->max_ratio, (unsigned long long)b->out,
			(unsigned long long)b->in);
	return DC_OK;
}


dc_code
dc_mem_read(void *ctx, void *buf, size_t cap, size_t *got, dc_err *err)
{
	memsrc *m = ctx;
	size_t k = m->len - m->pos;

	(void)err;
	if (k > cap)
		k = cap;
	memcpy(buf, m->p + m->pos, k);
	m->pos += k;
	*got = k;
	return DC_OK;
}


/* Reads until the peek buffer is full or the stream ended. */
dc_code
dc_peek_fill(peeker *pk, dc_err *err)
{
	size_t got;
	dc_code rc;

	while (pk->n < sizeof(pk->buf) && !pk->eof) {
		rc = pk->up.rd(pk->up.ctx, pk->buf + pk->n, sizeof(pk->buf) - pk->n, &got, err);
		if (rc != DC_OK)
			return dc_chain_fail(pk->ch, err, rc, "%s", dc_err_text(err));
		if (got == 0)
			pk->eof = true;
		pk->n += got;
	}
	return DC_OK;
}

dc_code
dc_peek_read(void *ctx, void *buf, size_t cap, size_t *got, dc_err *err)
{
	peeker *pk = ctx;
	size_t k;

	*got = 0;
	if (pk->ch->err.code != DC_OK)
		return dc_chain_fail(pk->ch, err, pk->ch->err.code, "%s", pk->ch->err.msg);
	if (pk->pos < pk->n) {
		k = pk->n - pk->pos < cap ? pk->n - pk->pos : cap;
		memcpy(buf, pk->buf + pk->pos, k);
		pk->pos += k;
		*got = k;
		return DC_OK;
	}
	if (pk->eof)
		return DC_OK;
	return pk->up.rd(pk->up.ctx, buf, cap, got, err);
}


/* Pulls more compressed input, keeping unconsumed bytes; sets up_eof. */
static dc_code
inflater_pull(inflater *f, dc_err *err)
{
	size_t got;
	dc_code rc;

	if (f->z.avail_in > 0 && f->z.next_in != f->in)
		memmove(f->in, f->z.next_in, f->z.avail_in);
	f->z.next_in = f->in;
	rc = f->up.rd(f->up.ctx, f->in + f->z.avail_in, sizeof(f->in) - f->z.avail_in, &got, err);
	if (rc != DC_OK)
		return dc_chain_fail(f->ch, err, rc, "%s", dc_err_text(err));
	if (got == 0)
		f->up_eof = true;
	f->z.avail_in += (uInt)got;
	return DC_OK;
}

/* After a member ended: checks a zip member's CRC, starts the next gzip
 * member, or drains and notes trailing bytes and marks the stream done. */
static dc_code
inflater_next(inflater *f, dc_err *err)
{
	uint64_t trailing = 0;
	bool padding = true;
	dc_code rc;

	f->members++;
	f->before += f->z.total_in;
	if (f->mode == IM_ZIP) {
		if (f->check_crc && f->crc != f->crc_want)
			return dc_chain_fail(f->ch, err, DC_EZIP,
				"zip member CRC mismatch (%08lx, header says %08lx)", f->crc, f->crc_want);
		f->done = true;
		return DC_OK;
	}
	while (f->mode == IM_GZIP && f->z.avail_in < 2 && !f->up_eof)
		if ((rc = inflater_pull(f, err)) != DC_OK)
			return rc;
	if (f->mode == IM_GZIP && f->z.avail_in >= 2 && f->z.next_in[0] == 0x1f && f->z.next_in[1] == 0x8b) {
		if (inflateReset(&f->z) != Z_OK)
			return dc_chain_fail(
				f->ch, err, DC_EGZIP, "gzip: cannot start member %u", f->members + 1);
		return DC_OK;
	}
	for (;;) {
		for (uInt i = 0; i < f->z.avail_in; i++)
			if (f->z.next_in[i] != 0 && !dc_unpack_is_ws(f->z.next_in[i]))
				padding = false;
		trailing += f->z.avail_in;
		f->m.in += f->z.avail_in;
		f->z.avail_in = 0;
		if (f->up_eof)
			break;
		if ((rc = inflater_pull(f, err)) != DC_OK)
			return rc;
	}
	if (trailing > 0)
		dc_chain_note(f->ch, "%s followed by %llu bytes of %s, ignored", f->what,
			(unsigned long long)trailing, padding ? "padding" : "trailing data");
	f->done = true;
	return DC_OK;
}

dc_code
dc_inflater_read(void *ctx, void *buf, size_t cap, size_t *got, dc_err *err)
{
	inflater *f = ctx;
	uInt want = cap > UINT_MAX ? UINT_MAX : (uInt)cap;
	dc_code rc = DC_OK;
	Bytef *from;
	int zr;

	*got = 0;
	if (cap == 0)
		return DC_OK; /* nothing asked, nothing read (as read(2)) */
	if (f->ch->err.code != DC_OK)
		return dc_chain_fail(f->ch, err, f->ch->err.code, "%s", f->ch->err.msg);
	f->z.next_out = buf;
	f->z.avail_out = want;
	while (!f->done && f->z.avail_out == want) {
		if (f->z.avail_in == 0 && !f->up_eof && (rc = inflater_pull(f, err)) != DC_OK)
			return rc;
		from = f->z.next_out;
		zr = inflate(&f->z, Z_NO_FLUSH);
		f->m.in = f->before + f->z.total_in;
		if (f->check_crc)
			f->crc = crc32(f->crc, from, (uInt)(f->z.next_out - from));
		switch (zr) {
		case Z_OK: break;
		case Z_STREAM_END:
			if ((rc = inflater_next(f, err)) != DC_OK)
				return rc;
			break;
		case Z_BUF_ERROR:
			if (f->up_eof && f->z.avail_in == 0)
				return dc_chain_fail(f->ch, err, f->bad,
					"%s truncated: input ended after %llu bytes, before the end of the stream",
					f->what, (unsigned long long)f->m.in);
			break;
		case Z_MEM_ERROR: return dc_chain_fail(f->ch, err, DC_ENOMEM, "%s: out of memory", f->what);
		case Z_NEED_DICT:
			return dc_chain_fail(f->ch, err, f->bad, "%s needs a preset dictionary", f->what);
		default:
			if (f->mode == IM_GZIP)
				return dc_chain_fail(f->ch, err, f->bad, "gzip member %u corrupt: %s",
					f->members + 1, f->z.msg ? f->z.msg : "data error");
			return dc_chain_fail(f->ch, err, f->bad, "%s corrupt: %s", f->what,
				f->z.msg ? f->z.msg : "data error");
		}
	}
	*got = want - f->z.avail_out;
	f->m.out += *got;
	return dc_meter_check(f->ch, &f->m, f->root, *got, f->what, err);
}

/* zlib's allocator for the inflaters: the C library's, called from here, so
 * that the allocation-failure test (tests/unit/test_allocfail.c) fails
 * zlib's allocations like the project's own; zlib's default would call
 * malloc from inside libz. */
static voidpf
z_alloc(voidpf opaque, uInt items, uInt size)
{
	(void)opaque;
	return calloc(items, size);
}

static void
z_free(voidpf opaque, voidpf p)
{
	(void)opaque;
	free(p);
}

/* Returns a new inflater over up (caller frees with dc_inflater_free), or NULL. */
inflater *
dc_inflater_new(chain *ch, src up, imode mode, const meter *root)
{
	static const int wbits[] = {
		[IM_GZIP] = 16 + MAX_WBITS, [IM_ZLIB] = MAX_WBITS, [IM_ZIP] = -MAX_WBITS
	};
	static const char *const what[] = { [IM_GZIP] = "gzip", [IM_ZLIB] = "zlib", [IM_ZIP] = "zip member" };
	inflater *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	f->ch = ch;
	f->up = up;
	f->mode = mode;
	f->bad = mode == IM_ZIP ? DC_EZIP : DC_EGZIP;
	f->what = what[mode];
	f->root = root != NULL ? root : &f->m;
	f->z.next_in = f->in;
	f->z.zalloc = z_alloc;
	f->z.zfree = z_free;
	if (inflateInit2(&f->z, wbits[mode]) != Z_OK) {
		free(f);
		return NULL;
	}
	f->zinit = true;
	return f;
}

void
dc_inflater_free(inflater *f)
{
	if (f == NULL)
		return;
	if (f->zinit)
		inflateEnd(&f->z);
	free(f);
}

bool
dc_zip_oom(zip_error_t *ze)
{
	return ze != NULL && zip_error_code_zip(ze) == ZIP_ER_MEMORY;
}


dc_code
dc_zip_read(void *ctx, void *buf, size_t cap, size_t *got, dc_err *err)
{
	zipreader *z = ctx;
	zip_int64_t k;

	*got = 0;
	if (z->ch->err.code != DC_OK)
		return dc_chain_fail(z->ch, err, z->ch->err.code, "%s", z->ch->err.msg);
	k = zip_fread(z->zf, buf, cap);
	if (k < 0 && dc_zip_oom(zip_file_get_error(z->zf)))
		return dc_chain_fail(z->ch, err, DC_ENOMEM, "zip member: out of memory");
	if (k < 0)
		return dc_chain_fail(
			z->ch, err, DC_EZIP, "zip member unreadable: %s", zip_file_strerror(z->zf));
	*got = (size_t)k;
	if (z->raw)
		return DC_OK;
	z->m.out += (uint64_t)k;
	return dc_meter_check(z->ch, &z->m, z->root, *got, "zip member", err);
}
