/*
 * test_unpack.c - classification by bytes and the container walk: gzip
 * (multi-member, trailing bytes, nested), zlib, zip (directories, __MACOSX,
 * empty names, encrypted, corrupt), truncation, limits and bombs.  Inputs are
 * built in memory (zlib, a hand-written zip writer) so every byte is known.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <zlib.h>

#include "dc_unpack.h"

/* ------------------------------------------------------------ builders */

typedef struct buf {
	uint8_t *p;
	size_t len, cap;
} buf;

static void
put(buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
put16(buf *b, unsigned v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	put(b, x, 2);
}

static void
put32(buf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	put(b, x, 4);
}

/* wbits: 31 gzip, 15 zlib, -15 raw deflate */
static buf
deflated(const void *p, size_t n, int wbits)
{
	buf b = { 0 };
	z_stream z;
	uint8_t out[16384];
	int rc;

	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)p;
	z.avail_in = (uInt)n;
	do {
		z.next_out = out;
		z.avail_out = sizeof(out);
		rc = deflate(&z, Z_FINISH);
		put(&b, out, sizeof(out) - z.avail_out);
	} while (rc == Z_OK);
	assert_int_equal(rc, Z_STREAM_END);
	deflateEnd(&z);
	return b;
}

typedef struct zmember {
	const char *name;
	const void *data;
	size_t len;
	int method;     /* 0 stored, 8 deflated */
	unsigned flags; /* general purpose bits (1 = encrypted) */
	const buf *raw; /* precompressed deflate data, overrides data */
	uint32_t usize; /* with raw: the uncompressed size to declare */
	uint32_t crc;   /* with raw */
} zmember;

/* A zip (APPNOTE 4.3) of the members, written by hand. */
static buf
zip_of(const zmember *m, size_t n)
{
	buf b = { 0 }, cd = { 0 };
	uint32_t offs[16];

	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++) {
		buf comp = { 0 };
		const buf *c;
		uint32_t crc, usize;

		if (m[i].raw != NULL) {
			c = m[i].raw;
			crc = m[i].crc;
			usize = m[i].usize;
		} else {
			crc = (uint32_t)crc32(0, m[i].data, (uInt)m[i].len);
			usize = (uint32_t)m[i].len;
			if (m[i].method == 8)
				comp = deflated(m[i].data, m[i].len, -15);
			else
				put(&comp, m[i].data, m[i].len);
			c = &comp;
		}
		offs[i] = (uint32_t)b.len;
		put32(&b, 0x04034b50);
		put16(&b, 20);
		put16(&b, m[i].flags);
		put16(&b, (unsigned)m[i].method);
		put16(&b, 0);
		put16(&b, 0x21);
		put32(&b, crc);
		put32(&b, (uint32_t)c->len);
		put32(&b, usize);
		put16(&b, (unsigned)strlen(m[i].name));
		put16(&b, 0);
		put(&b, m[i].name, strlen(m[i].name));
		put(&b, c->p, c->len);
		put32(&cd, 0x02014b50);
		put16(&cd, 20);
		put16(&cd, 20);
		put16(&cd, m[i].flags);
		put16(&cd, (unsigned)m[i].method);
		put16(&cd, 0);
		put16(&cd, 0x21);
		put32(&cd, crc);
		put32(&cd, (uint32_t)c->len);
		put32(&cd, usize);
		put16(&cd, (unsigned)strlen(m[i].name));
		put16(&cd, 0);
		put16(&cd, 0);
		put16(&cd, 0);
		put16(&cd, 0);
		put32(&cd, 0);
		put32(&cd, offs[i]);
		put(&cd, m[i].name, strlen(m[i].name));
		free(comp.p);
	}
	{
		uint32_t cdoff = (uint32_t)b.len;
		put(&b, cd.p, cd.len);
		put32(&b, 0x06054b50);
		put16(&b, 0);
		put16(&b, 0);
		put16(&b, (unsigned)n);
		put16(&b, (unsigned)n);
		put32(&b, (uint32_t)cd.len);
		put32(&b, cdoff);
		put16(&b, 0);
	}
	free(cd.p);
	return b;
}

/*
 * A raw deflate stream of `blocks` x 64 KiB of zeros, about 1.5 KB per MiB:
 * one block compressed with a full flush (byte-aligned, no history) repeated,
 * then a final empty block.  *crc gets the CRC-32 of the zeros.
 */
static buf
zero_bomb(unsigned blocks, uint32_t *crc)
{
	static uint8_t zeros[65536];
	uint8_t out[4096], fin[64];
	buf b = { 0 };
	z_stream z;
	size_t blen, flen;
	uLong c1 = crc32(0, zeros, sizeof(zeros)), c;

	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = zeros;
	z.avail_in = sizeof(zeros);
	z.next_out = out;
	z.avail_out = sizeof(out);
	assert_int_equal(deflate(&z, Z_FULL_FLUSH), Z_OK);
	assert_int_equal(z.avail_in, 0);
	blen = sizeof(out) - z.avail_out;
	z.next_out = fin;
	z.avail_out = sizeof(fin);
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	flen = sizeof(fin) - z.avail_out;
	deflateEnd(&z);
	for (unsigned i = 0; i < blocks; i++)
		put(&b, out, blen);
	/* blocks is a power of two: double the CRC instead of adding 64 KiB at a time */
	assert_true(blocks > 0 && (blocks & (blocks - 1)) == 0);
	c = c1;
	for (z_off_t len = sizeof(zeros); (unsigned)(len / (z_off_t)sizeof(zeros)) < blocks; len *= 2)
		c = crc32_combine(c, c, len);
	put(&b, fin, flen);
	*crc = (uint32_t)c;
	return b;
}

/* gzip (RFC 1952) around a raw deflate stream. */
static buf
gzip_wrap(const buf *raw, uint32_t crc, uint32_t isize)
{
	static const uint8_t hdr[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3 };
	buf b = { 0 };

	put(&b, hdr, sizeof(hdr));
	put(&b, raw->p, raw->len);
	put32(&b, crc);
	put32(&b, isize);
	return b;
}

static const char REPORT[] =
	"<?xml version=\"1.0\"?>\n<feedback><report_metadata><org_name>t</org_name>"
	"<report_id>1</report_id></report_metadata><record><row><source_ip>192.0.2.1</source_ip>"
	"<count>1</count></row></record></feedback>\n";

/* ------------------------------------------------------------ collector */

typedef struct got {
	int n_xml, n_fail, n_msg;
	char path[8][256];
	char notes[8][256];
	buf data[8];
	dc_code stream_code[8];
	char fpath[32][256];
	dc_err fail[32];
	char mpath[4][256];
	size_t mlen[4];
} got;

static dc_code
on_xml(void *ctx, const dc_unpack_xml *x, dc_err *err)
{
	got *g = ctx;
	uint8_t tmp[65536];
	size_t n;
	int i = g->n_xml++;

	assert_true(i < 8);
	snprintf(g->path[i], sizeof(g->path[i]), "%s", x->path);
	snprintf(g->notes[i], sizeof(g->notes[i]), "%s", x->notes ? x->notes : "");
	memset(&g->data[i], 0, sizeof(buf));
	for (;;) {
		dc_code rc = x->rd(x->rctx, tmp, sizeof(tmp), &n, err);
		if (rc != DC_OK) {
			assert_int_equal(rc, x->stream_err->code);
			break;
		}
		if (n == 0)
			break;
		put(&g->data[i], tmp, n);
	}
	g->stream_code[i] = x->stream_err->code;
	return DC_OK;
}

static dc_code
on_message(void *ctx, const uint8_t *data, size_t len, const char *path, int depth, dc_err *err)
{
	got *g = ctx;
	int i = g->n_msg++;

	(void)data;
	(void)depth;
	(void)err;
	assert_true(i < 4);
	snprintf(g->mpath[i], sizeof(g->mpath[i]), "%s", path);
	g->mlen[i] = len;
	return DC_OK;
}

static dc_code
on_failure(void *ctx, const char *path, const dc_err *why, dc_err *err)
{
	got *g = ctx;
	int i = g->n_fail++;

	(void)err;
	assert_true(i < 32);
	snprintf(g->fpath[i], sizeof(g->fpath[i]), "%s", path);
	g->fail[i] = *why;
	return DC_OK;
}

static void
got_free(got *g)
{
	for (int i = 0; i < g->n_xml && i < 8; i++)
		free(g->data[i].p);
}

/* Walks data with the limits (defaults when lim is NULL) into g. */
static void
walk(const void *data, size_t len, const dc_limits *lim, got *g)
{
	dc_limits d;
	dc_unpack_cb cb = { .ctx = g, .xml = on_xml, .message = on_message, .failure = on_failure };
	dc_err err;

	memset(g, 0, sizeof(*g));
	dc_limits_default(&d);
	dc_err_clear(&err);
	assert_int_equal(dc_unpack_walk(data, len, 0, lim ? lim : &d, &cb, &err), DC_OK);
}

static void
assert_report(const got *g, int i, const char *path)
{
	assert_string_equal(g->path[i], path);
	assert_int_equal(g->stream_code[i], DC_OK);
	assert_int_equal(g->data[i].len, strlen(REPORT));
	assert_memory_equal(g->data[i].p, REPORT, strlen(REPORT));
}

/* ------------------------------------------------------------ tests */

static void
test_sniff_table(void **state)
{
	static const uint8_t zl[] = { 0x78, 0x9c, 0x4b, 0x4c, 0x4a, 0x06, 0x00, 0x02, 0x4d, 0x01, 0x27 };
	static const struct {
		const char *what;
		const char *bytes;
		size_t len;
		dc_kind kind;
	} cases[] = {
		{ "empty", "", 0, DC_KIND_EMPTY },
		{ "zip local header", "PK\x03\x04\x14\x00", 6, DC_KIND_ZIP },
		{ "empty zip", "PK\x05\x06\0\0\0\0", 8, DC_KIND_ZIP },
		{ "gzip", "\x1f\x8b\x08\x00", 4, DC_KIND_GZIP },
		{ "zlib 'abc'", (const char *)zl, sizeof(zl), DC_KIND_ZLIB },
		{ "zlib header, garbage after", "\x78\x9c\xff\xff\xff\xff", 6, DC_KIND_OTHER },
		{ "text 'x^' (valid zlib header bytes)", "x^ is a caret", 13, DC_KIND_OTHER },
		{ "XML", "<?xml version=\"1.0\"?><feedback/>", 32, DC_KIND_XML },
		{ "XML after BOM and whitespace", "\xef\xbb\xbf \r\n<feedback/>", 17, DC_KIND_XML },
		{ "UTF-16LE XML with BOM", "\xff\xfe<\0?\0", 6, DC_KIND_XML },
		{ "message", "From: a@b\r\nTo: c@d\r\n\r\nbody", 26, DC_KIND_MESSAGE },
		{ "message after whitespace", "  \n\nReceived: x\n\tfolded\nFrom: a\n\n", 33,
			DC_KIND_MESSAGE },
		{ "mbox From line", "From a@b Tue Nov 14 2023\nSubject: x\n\nbody", 42, DC_KIND_MESSAGE },
		{ "one header then body", "Subject: hi\n\nbody", 17, DC_KIND_MESSAGE },
		{ "colon line then prose", "Note: this is\nmore prose\n", 25, DC_KIND_OTHER },
		{ "text", "Test zip file\n", 14, DC_KIND_OTHER },
		{ "date text", "Tue Mar  9 02:52:28 UTC 2021\n", 29, DC_KIND_OTHER },
		{ "JSON", "{\"organization-name\":\"x\"}", 25, DC_KIND_JSON },
		{ "JSON after BOM and whitespace", "\xef\xbb\xbf \n{}", 7, DC_KIND_JSON },
		{ "PNG", "\x89PNG\r\n\x1a\n", 8, DC_KIND_OTHER },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dc_kind k = dc_unpack_sniff((const uint8_t *)cases[i].bytes, cases[i].len);
		if (k != cases[i].kind)
			fail_msg("%s: got %s, want %s", cases[i].what, dc_unpack_kind_name(k),
				dc_unpack_kind_name(cases[i].kind));
	}
}

static void
test_describe_table(void **state)
{
	static uint8_t bin[512];
	static const struct {
		const char *bytes;
		size_t len;
		uint64_t total;
		const char *want;
	} cases[] = {
		{ "", 0, 0, "empty (0 bytes)" },
		{ "\x89PNG\r\n\x1a\n", 8, 13670, "PNG image, 13670 bytes" },
		{ "%PDF-1.4", 8, 900, "PDF document, 900 bytes" },
		{ "Test zip file\n", 14, 14, "text starting 'Test zip file', 14 bytes" },
		{ "<!DOCTYPE html>\n<html><body>", 28, 28, "HTML document, 28 bytes" },
		{ "<?xml version='1.0'?><!-- c --><x:report xmlns:x='u'>", 53, 53,
			"XML document with root <report>, 53 bytes" },
	};
	char out[200];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dc_unpack_describe(
			(const uint8_t *)cases[i].bytes, cases[i].len, cases[i].total, out, sizeof(out));
		assert_string_equal(out, cases[i].want);
	}
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (uint8_t)(i * 131 + 7);
	dc_unpack_describe(bin, sizeof(bin), sizeof(bin), out, sizeof(out));
	assert_string_equal(out, "binary, 512 bytes");
}

static void
test_xml_root(void **state)
{
	static const struct {
		const char *xml;
		const char *root; /* NULL: not found */
	} cases[] = {
		{ "<feedback>", "feedback" },
		{ "\xef\xbb\xbf\n<?xml version='1.0'?>\n<!-- hi -->\n<d:feedback xmlns:d='x'>", "feedback" },
		{ "<!DOCTYPE f [ <!ENTITY a 'b'> ]><f>", "f" },
		{ "<?xml version='1.0'?>", NULL },
		{ "text", NULL },
	};
	char root[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool ok = dc_unpack_xml_root(
			(const uint8_t *)cases[i].xml, strlen(cases[i].xml), root, sizeof(root));
		if (cases[i].root == NULL) {
			assert_false(ok);
		} else {
			assert_true(ok);
			assert_string_equal(root, cases[i].root);
		}
	}
}

static void
test_bare_xml_and_whitespace(void **state)
{
	char in[512];
	got g;

	(void)state;
	walk(REPORT, strlen(REPORT), NULL, &g);
	assert_int_equal(g.n_xml, 1);
	assert_report(&g, 0, "");
	assert_string_equal(g.notes[0], "");
	got_free(&g);
	snprintf(in, sizeof(in), "\r\n  %s", REPORT);
	walk(in, strlen(in), NULL, &g);
	assert_int_equal(g.n_xml, 1);
	assert_report(&g, 0, "");
	assert_string_equal(g.notes[0], "4 bytes of whitespace before the XML removed");
	got_free(&g);
}

static void
test_gzip_multimember_and_trailing(void **state)
{
	size_t half = strlen(REPORT) / 2;
	buf a = deflated(REPORT, half, 31), b = deflated(REPORT + half, strlen(REPORT) - half, 31);
	static const struct {
		const char *tail;
		size_t len;
		const char *note;
	} tails[] = {
		{ "", 0, "" },
		{ "\r\n", 2, "gzip followed by 2 bytes of padding, ignored" },
		{ "\0\0\0\0", 4, "gzip followed by 4 bytes of padding, ignored" },
		{ "junk!", 5, "gzip followed by 5 bytes of trailing data, ignored" },
		{ "\x1f", 1, "gzip followed by 1 bytes of trailing data, ignored" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		buf in = { 0 };
		got g;

		put(&in, a.p, a.len);
		put(&in, b.p, b.len);
		put(&in, tails[i].tail, tails[i].len);
		walk(in.p, in.len, NULL, &g);
		assert_int_equal(g.n_fail, 0);
		assert_int_equal(g.n_xml, 1);
		assert_report(&g, 0, "gzip");
		assert_string_equal(g.notes[0], tails[i].note);
		got_free(&g);
		free(in.p);
	}
	free(a.p);
	free(b.p);
}

static void
test_nested_gzip_and_zlib(void **state)
{
	buf g1 = deflated(REPORT, strlen(REPORT), 31);
	buf g2 = deflated(g1.p, g1.len, 31);
	buf z1 = deflated(REPORT, strlen(REPORT), 15);
	buf zg = deflated(z1.p, z1.len, 31);
	buf g3 = deflated(g2.p, g2.len, 31), g4 = deflated(g3.p, g3.len, 31), g5 = deflated(g4.p, g4.len, 31);
	got g;

	(void)state;
	walk(g2.p, g2.len, NULL, &g);
	assert_int_equal(g.n_xml, 1);
	assert_report(&g, 0, "gzip > gzip");
	got_free(&g);
	walk(z1.p, z1.len, NULL, &g);
	assert_int_equal(g.n_xml, 1);
	assert_report(&g, 0, "zlib");
	got_free(&g);
	walk(zg.p, zg.len, NULL, &g);
	assert_int_equal(g.n_xml, 1);
	assert_report(&g, 0, "gzip > zlib");
	got_free(&g);
	/* DC_MAX_ARCHIVE_DEPTH layers are read, one more is refused */
	walk(g4.p, g4.len, NULL, &g);
	assert_int_equal(g.n_xml, 1);
	assert_report(&g, 0, "gzip > gzip > gzip > gzip");
	got_free(&g);
	walk(g5.p, g5.len, NULL, &g);
	assert_int_equal(g.n_xml, 0);
	assert_int_equal(g.n_fail, 1);
	assert_int_equal(g.fail[0].code, DC_ETOODEEP);
	assert_string_equal(g.fpath[0], "gzip > gzip > gzip > gzip");
	got_free(&g);
	free(g1.p), free(g2.p), free(z1.p), free(zg.p), free(g3.p), free(g4.p), free(g5.p);
}

static void
test_zip_members(void **state)
{
	buf gz = deflated(REPORT, strlen(REPORT), 31);
	zmember m[] = {
		{ "__MACOSX/._a.xml", "\0\5\26\7junk", 8, 0, 0, NULL, 0, 0 },
		{ "dir/", "", 0, 0, 0, NULL, 0, 0 },
		{ "dir/a.xml", REPORT, strlen(REPORT), 8, 0, NULL, 0, 0 },
		{ "b.xml.gz", gz.p, gz.len, 0, 0, NULL, 0, 0 },
		{ "c.txt", "Test zip file\n", 14, 8, 0, NULL, 0, 0 },
	};
	zmember e[] = { { "", REPORT, strlen(REPORT), 8, 0, NULL, 0, 0 } };
	buf z = zip_of(m, 5), ze = zip_of(e, 1);
	got g;

	(void)state;
	walk(z.p, z.len, NULL, &g);
	assert_int_equal(g.n_xml, 2);
	assert_report(&g, 0, "zip:dir/a.xml");
	assert_report(&g, 1, "zip:b.xml.gz > gzip");
	assert_int_equal(g.n_fail, 1);
	assert_string_equal(g.fpath[0], "zip:c.txt");
	assert_int_equal(g.fail[0].code, DC_EFORMAT);
	assert_string_equal(g.fail[0].msg, "not a report: text starting 'Test zip file', 14 bytes");
	got_free(&g);
	walk(ze.p, ze.len, NULL, &g);
	assert_int_equal(g.n_fail, 0);
	assert_int_equal(g.n_xml, 1);
	assert_report(&g, 0, "zip:");
	got_free(&g);
	free(z.p), free(ze.p), free(gz.p);
}

/* True when s is valid UTF-8 without control characters (a strict decoder). */
static bool
clean_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		int n = *p < 0x80                  ? 1 :
			(*p >= 0xc2 && *p <= 0xdf) ? 2 :
			(*p >= 0xe0 && *p <= 0xef) ? 3 :
			(*p >= 0xf0 && *p <= 0xf4) ? 4 :
						     0;
		if (n == 0 || *p < 32 || *p == 127)
			return false;
		for (int i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		p += n;
	}
	return true;
}

static void
test_member_names_are_clean_text(void **state)
{
	zmember m[] = {
		/* not flagged UTF-8: libzip reads it as CP437 and converts */
		{ "a\xff\x01r\xc3\xa9\x1b.xml", REPORT, strlen(REPORT), 8, 0, NULL, 0, 0 },
		/* flagged UTF-8 (bit 11) and valid */
		{ "b-r\xc3\xa9port.xml", REPORT, strlen(REPORT), 8, 0x800, NULL, 0, 0 },
	};
	/* flagged UTF-8 but not (libzip also counts control characters as invalid) */
	zmember bad[] = { { "c\xff\x01.xml", REPORT, strlen(REPORT), 8, 0x800, NULL, 0, 0 } };
	buf z = zip_of(m, 2), zb = zip_of(bad, 1);
	got g;

	(void)state;
	walk(z.p, z.len, NULL, &g);
	assert_int_equal(g.n_xml, 2);
	for (int i = 0; i < 2; i++) {
		if (!clean_utf8(g.path[i]))
			fail_msg("path %d is not clean UTF-8: %s", i, g.path[i]);
		assert_int_equal(g.stream_code[i], DC_OK);
	}
	assert_string_equal(g.path[1], "zip:b-r\xc3\xa9port.xml");
	got_free(&g);
	/* flagged UTF-8 but invalid: libzip refuses the whole archive */
	walk(zb.p, zb.len, NULL, &g);
	assert_int_equal(g.n_fail, 1);
	assert_int_equal(g.fail[0].code, DC_EZIP);
	assert_string_equal(g.fail[0].msg, "zip: Zip archive inconsistent");
	got_free(&g);
	free(z.p);
	free(zb.p);
}

/* The stored path, byte by byte: every byte that does not begin a
 * well-formed UTF-8 sequence becomes one '?'.  Names are read raw, but
 * libzip itself already reads a name that is not UTF-8 in shape (control
 * characters, stray or cut sequences) as CP437 and converts it; what it lets
 * through (overlong forms, surrogates, code points above U+10FFFF) is ours
 * to replace. */
static void
test_member_name_bytes(void **state)
{
	static const struct {
		const char *name, *path;
	} cases[] = {
		{ "plain.xml", "zip:plain.xml" },
		{ "r\xc3\xa9sum\xc3\xa9.xml", "zip:r\xc3\xa9sum\xc3\xa9.xml" },
		{ "\xf0\x9f\x93\x8a.xml", "zip:\xf0\x9f\x93\x8a.xml" },
		{ "\xc0\xaf.xml", "zip:??.xml" },           /* overlong '/' */
		{ "\xe0\x80\xaf.xml", "zip:???.xml" },      /* overlong, 3 bytes */
		{ "\xed\xa0\x80.xml", "zip:???.xml" },      /* surrogate U+D800 */
		{ "\xf4\x90\x80\x80.xml", "zip:????.xml" }, /* above U+10FFFF */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		zmember m[] = { { cases[i].name, REPORT, strlen(REPORT), 0, 0, NULL, 0, 0 } };
		buf z = zip_of(m, 1);
		got g;

		walk(z.p, z.len, NULL, &g);
		assert_int_equal(g.n_xml, 1);
		if (strcmp(g.path[0], cases[i].path) != 0)
			fail_msg("case %zu: path '%s', want '%s'", i, g.path[0], cases[i].path);
		got_free(&g);
		free(z.p);
	}
}

static void
test_zip_in_gzip_and_message_in_zip(void **state)
{
	static const char msg[] = "From: a@b\r\nSubject: r\r\n\r\nhello\r\n";
	zmember m[] = { { "r.xml", REPORT, strlen(REPORT), 8, 0, NULL, 0, 0 } };
	zmember em[] = { { "fwd.eml", msg, strlen(msg), 8, 0, NULL, 0, 0 } };
	buf z = zip_of(m, 1), gz = deflated(z.p, z.len, 31), ez = zip_of(em, 1);
	got g;

	(void)state;
	walk(gz.p, gz.len, NULL, &g);
	assert_int_equal(g.n_xml, 1);
	assert_report(&g, 0, "gzip > zip:r.xml");
	got_free(&g);
	walk(ez.p, ez.len, NULL, &g);
	assert_int_equal(g.n_xml, 0);
	assert_int_equal(g.n_msg, 1);
	assert_string_equal(g.mpath[0], "zip:fwd.eml");
	assert_int_equal(g.mlen[0], strlen(msg));
	got_free(&g);
	free(z.p), free(gz.p), free(ez.p);
}

static void
test_corrupt_and_truncated(void **state)
{
	buf gz = deflated(REPORT, strlen(REPORT), 31);
	zmember m[] = { { "a.xml", REPORT, strlen(REPORT), 8, 0, NULL, 0, 0 } };
	zmember enc[] = { { "secret.xml", REPORT, strlen(REPORT), 8, 1, NULL, 0, 0 } };
	buf z = zip_of(m, 1), zenc = zip_of(enc, 1);
	buf gbad = { 0 }, zbad = { 0 };
	got g;

	(void)state;
	/* a gzip cut anywhere after its header: truncated */
	for (size_t cut = 12; cut < gz.len; cut += 7) {
		walk(gz.p, cut, NULL, &g);
		assert_int_equal(g.n_fail + g.n_xml, 1);
		if (g.n_xml == 1)
			assert_int_equal(g.stream_code[0], DC_EGZIP);
		else
			assert_int_equal(g.fail[0].code, DC_EGZIP);
		got_free(&g);
	}
	/* a flipped bit in the deflate data or the CRC */
	put(&gbad, gz.p, gz.len);
	gbad.p[gbad.len - 6] ^= 0x40;
	walk(gbad.p, gbad.len, NULL, &g);
	assert_int_equal(g.n_fail + g.n_xml, 1);
	assert_int_equal(g.n_xml ? g.stream_code[0] : g.fail[0].code, DC_EGZIP);
	got_free(&g);
	/* a zip cut short (no central directory) */
	walk(z.p, z.len - 30, NULL, &g);
	assert_int_equal(g.n_xml, 0);
	assert_int_equal(g.n_fail, 1);
	assert_int_equal(g.fail[0].code, DC_EZIP);
	assert_string_equal(g.fpath[0], "");
	got_free(&g);
	/* a zip whose member data is damaged: the member fails */
	put(&zbad, z.p, z.len);
	zbad.p[30 + 5 + 10] ^= 0xff;
	walk(zbad.p, zbad.len, NULL, &g);
	assert_int_equal(g.n_fail + g.n_xml, 1);
	if (g.n_xml == 1) {
		assert_int_equal(g.stream_code[0], DC_EZIP);
		assert_string_equal(g.path[0], "zip:a.xml");
	} else {
		assert_int_equal(g.fail[0].code, DC_EZIP);
		assert_string_equal(g.fpath[0], "zip:a.xml");
	}
	got_free(&g);
	/* an encrypted member */
	walk(zenc.p, zenc.len, NULL, &g);
	assert_int_equal(g.n_xml, 0);
	assert_int_equal(g.n_fail, 1);
	assert_int_equal(g.fail[0].code, DC_EZIP);
	assert_string_equal(g.fail[0].msg, "zip member is encrypted");
	got_free(&g);
	free(gz.p), free(z.p), free(zenc.p), free(gbad.p), free(zbad.p);
}

static void
test_bombs(void **state)
{
	uint32_t crc;
	buf raw = zero_bomb(16384, &crc); /* 1 GiB of zeros */
	buf gz = gzip_wrap(&raw, crc, 0x40000000u);
	zmember m[] = { { "zeros.xml", NULL, 0, 8, 0, &raw, 0x40000000u, crc } };
	zmember ml[] = { { "small.xml", NULL, 0, 8, 0, &raw, 1000, crc } }; /* declared size lies */
	buf z = zip_of(m, 1), zl = zip_of(ml, 1);
	buf gg = deflated(gz.p, gz.len, 31);
	zmember nm[] = { { "inner.gz", gz.p, gz.len, 8, 0, NULL, 0, 0 } };
	buf nz = zip_of(nm, 1);
	const buf *bombs[] = { &gz, &z, &zl, &gg, &nz };
	got g;

	(void)state;
	assert_true(raw.len < 2 * 1024 * 1024);
	for (size_t i = 0; i < sizeof(bombs) / sizeof(bombs[0]); i++) {
		walk(bombs[i]->p, bombs[i]->len, NULL, &g);
		assert_int_equal(g.n_xml + g.n_fail, 1);
		if (g.n_fail == 1) {
			assert_int_equal(g.fail[0].code, DC_ERATIO);
		} else {
			assert_int_equal(g.stream_code[0], DC_ERATIO);
			/* stopped soon after the grace bytes, not after 1 GiB */
			assert_true(g.data[0].len < 4 * 1024 * 1024);
		}
		got_free(&g);
	}
	free(raw.p), free(gz.p), free(z.p), free(zl.p), free(gg.p), free(nz.p);
}

/* 42.zip-style: 16 x 16 x 16 members of 16 MiB of zeros each (64 GiB) in
 * about 100 KB.  Every single stream stops at its own ratio after 1 MiB, but
 * without a budget for the whole unit the walk would try all 4096 of them. */
static void
test_nested_zip_bomb(void **state)
{
	uint32_t crc;
	buf raw = zero_bomb(256, &crc), level[3];
	zmember m[16];
	got g;

	(void)state;
	for (int i = 0; i < 16; i++)
		m[i] = (zmember){ "zeros.xml", NULL, 0, 8, 0, &raw, 256u * 65536u, crc };
	level[0] = zip_of(m, 16);
	for (int l = 1; l < 3; l++) {
		for (int i = 0; i < 16; i++)
			m[i] = (zmember){ "inner.zip", level[l - 1].p, level[l - 1].len, 8, 0, NULL, 0, 0 };
		level[l] = zip_of(m, 16);
	}
	assert_true(level[2].len < 200 * 1024);
	walk(level[2].p, level[2].len, NULL, &g);
	assert_int_equal(g.n_xml, 0);
	assert_true(g.n_fail >= 1 && g.n_fail < 32);
	for (int i = 0; i < g.n_fail; i++)
		assert_int_equal(g.fail[i].code, DC_ERATIO);
	assert_non_null(strstr(g.fail[g.n_fail - 1].msg, "in all"));
	got_free(&g);
	for (int l = 0; l < 3; l++)
		free(level[l].p);
	free(raw.p);
}

static void
test_report_size_limit(void **state)
{
	dc_limits lim;
	buf gz = deflated(REPORT, strlen(REPORT), 31);
	zmember m[] = { { "big.xml", REPORT, strlen(REPORT), 8, 0, NULL, 0, 0 } };
	buf z = zip_of(m, 1);
	got g;

	(void)state;
	dc_limits_default(&lim);
	lim.max_report_bytes = 100;
	walk(gz.p, gz.len, &lim, &g);
	assert_int_equal(g.n_xml + g.n_fail, 1);
	if (g.n_xml)
		assert_int_equal(g.stream_code[0], DC_ETOOBIG_REPORT);
	else
		assert_int_equal(g.fail[0].code, DC_ETOOBIG_REPORT);
	got_free(&g);
	walk(z.p, z.len, &lim, &g);
	assert_int_equal(g.n_xml, 0);
	assert_int_equal(g.n_fail, 1);
	assert_int_equal(g.fail[0].code, DC_ETOOBIG_REPORT);
	assert_non_null(strstr(g.fail[0].msg, "declares"));
	got_free(&g);
	walk(REPORT, strlen(REPORT), &lim, &g);
	assert_int_equal(g.n_xml, 0);
	assert_int_equal(g.n_fail, 1);
	assert_int_equal(g.fail[0].code, DC_ETOOBIG_REPORT);
	got_free(&g);
	free(gz.p), free(z.p);
}

static void
test_not_a_report(void **state)
{
	static const uint8_t png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
	buf gz = deflated(png, sizeof(png) - 1, 31);
	got g;

	(void)state;
	walk(png, sizeof(png) - 1, NULL, &g);
	assert_int_equal(g.n_fail, 1);
	assert_int_equal(g.fail[0].code, DC_EFORMAT);
	assert_string_equal(g.fail[0].msg, "not a report: PNG image, 16 bytes");
	got_free(&g);
	walk(gz.p, gz.len, NULL, &g);
	assert_int_equal(g.n_fail, 1);
	assert_string_equal(g.fpath[0], "gzip");
	assert_string_equal(g.fail[0].msg, "not a report: PNG image, 16 bytes");
	got_free(&g);
	walk("", 0, NULL, &g);
	assert_int_equal(g.n_fail, 1);
	assert_string_equal(g.fail[0].msg, "not a report: empty (0 bytes)");
	got_free(&g);
	free(gz.p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sniff_table),
		cmocka_unit_test(test_describe_table),
		cmocka_unit_test(test_xml_root),
		cmocka_unit_test(test_bare_xml_and_whitespace),
		cmocka_unit_test(test_gzip_multimember_and_trailing),
		cmocka_unit_test(test_nested_gzip_and_zlib),
		cmocka_unit_test(test_zip_members),
		cmocka_unit_test(test_member_names_are_clean_text),
		cmocka_unit_test(test_member_name_bytes),
		cmocka_unit_test(test_zip_in_gzip_and_message_in_zip),
		cmocka_unit_test(test_corrupt_and_truncated),
		cmocka_unit_test(test_bombs),
		cmocka_unit_test(test_nested_zip_bomb),
		cmocka_unit_test(test_report_size_limit),
		cmocka_unit_test(test_not_a_report),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
