/*
 * dc_unpack.c - classification by bytes and the container walk: zip (libzip,
 * from memory), gzip (RFC 1952, every member), raw zlib (RFC 1950), nested up
 * to limits.max_nesting, every XML stream handed on as a pull stream.
 *
 * Streams: each decompression layer is a dc_read_fn over the layer above it
 * (the readers and their size and ratio meters are in dc_unpack_layer.c;
 * this file sniffs and walks); a stream is peeked (DC_UNPACK_SNIFF_BYTES) to classify what came out, then
 * either handed to the XML callback (peeked bytes first) or wrapped in the
 * next layer.  Nothing decompressed is held whole, except a zip or a message
 * found inside another container (libzip and GMime need all of it): those
 * are buffered up to limits.max_report_bytes / max_message_bytes.
 *
 * Repaired (noted): trailing bytes after a gzip or zlib stream, whitespace
 * before the XML.  Tolerated silently: several gzip members (RFC 1952 2.2),
 * zip directories, __MACOSX/ resource forks, empty member names.  Rejected:
 * corrupt or truncated streams, encrypted members, anything over a limit.
 * A limit of 0 means "no limit".
 */
#include "dc_unpack.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zip.h>
#include <zlib.h>

#include "dc_tlsrpt.h"
#include "dc_unpack_layer.h"
#include "dc_utf8.h"

/* ---------------------------------------------------------------- sniffing */

static size_t
skip_ws(const uint8_t *p, size_t n, size_t i)
{
	while (i < n && dc_unpack_is_ws(p[i]))
		i++;
	return i;
}

/* Index after an optional UTF-8 byte-order mark. */
static size_t
skip_bom(const uint8_t *p, size_t n)
{
	return (n >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) ? 3 : 0;
}

static bool
is_field_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		c == '_' || c == '.';
}

/* True when a "Name: value" line, ending in LF within p[0..n), starts at i;
 * *end is the index after its LF. */
static bool
header_line(const uint8_t *p, size_t n, size_t i, size_t *end)
{
	size_t k = i;

	while (k < n && k - i < 80 && is_field_char(p[k]))
		k++;
	if (k == i || k >= n || p[k] != ':')
		return false;
	while (k < n && p[k] != '\n')
		k++;
	if (k >= n)
		return false;
	*end = k + 1;
	return true;
}

/* An RFC 5322 header block: after optional whitespace and an mbox "From "
 * line, a header field whose next line is a field, a fold or the blank line. */
static bool
looks_message(const uint8_t *p, size_t n)
{
	size_t i = skip_ws(p, n, 0), e;

	if (n - i >= 5 && memcmp(p + i, "From ", 5) == 0) {
		while (i < n && p[i] != '\n')
			i++;
		i++;
	}
	if (i >= n || !header_line(p, n, i, &e))
		return false;
	if (e >= n)
		return false;
	if (p[e] == ' ' || p[e] == '\t' || p[e] == '\n' || (p[e] == '\r' && e + 1 < n && p[e + 1] == '\n'))
		return true;
	return header_line(p, n, e, &i);
}

static bool
looks_xml(const uint8_t *p, size_t n)
{
	size_t i;

	if (n >= 2 && ((p[0] == 0xff && p[1] == 0xfe) || (p[0] == 0xfe && p[1] == 0xff)))
		return true; /* UTF-16 with BOM */
	if (n >= 4 && p[0] == '<' && p[1] == 0 && p[2] == '?' && p[3] == 0)
		return true; /* UTF-16LE without BOM */
	if (n >= 4 && p[0] == 0 && p[1] == '<' && p[2] == 0 && p[3] == '?')
		return true; /* UTF-16BE without BOM */
	i = skip_ws(p, n, skip_bom(p, n));
	return i < n && p[i] == '<';
}

/* A JSON object: '{' after an optional BOM and whitespace. */
static bool
looks_json(const uint8_t *p, size_t n)
{
	size_t i = skip_ws(p, n, skip_bom(p, n));

	return i < n && p[i] == '{';
}

/* A valid RFC 1950 header whose first bytes also inflate without error. */
static bool
looks_zlib(const uint8_t *p, size_t n)
{
	uint8_t scratch[4096];
	z_stream z;
	int rc;
	bool ok = true;

	if (n < 3 || (p[0] & 0x0f) != 8 || (p[0] >> 4) > 7 || (p[1] & 0x20) ||
		((unsigned)p[0] << 8 | p[1]) % 31 != 0)
		return false;
	memset(&z, 0, sizeof(z));
	/* out of memory proves nothing about the bytes: a valid header is then
	 * taken as zlib, and the inflater that reads it decides (DC_ENOMEM or
	 * corrupt), rather than a report being called "not a report" */
	if ((rc = inflateInit(&z)) != Z_OK)
		return rc == Z_MEM_ERROR;
	z.next_in = (Bytef *)(uintptr_t)p;
	z.avail_in = n > 1024 ? 1024 : (uInt)n;
	for (int guard = 0; guard < 64 && z.avail_in > 0; guard++) {
		z.next_out = scratch;
		z.avail_out = sizeof(scratch);
		rc = inflate(&z, Z_NO_FLUSH);
		if (rc == Z_STREAM_END)
			break;
		if (rc != Z_OK) {
			ok = rc == Z_BUF_ERROR || rc == Z_MEM_ERROR;
			break;
		}
	}
	inflateEnd(&z);
	return ok;
}

/* The classification table, tried in order; the first match wins. */
static const struct {
	dc_kind kind;
	bool (*match)(const uint8_t *p, size_t n);
} sniffers[] = {
	{ DC_KIND_XML, looks_xml },
	{ DC_KIND_MESSAGE, looks_message },
	{ DC_KIND_JSON, looks_json },
	{ DC_KIND_ZLIB, looks_zlib },
};

dc_kind
dc_unpack_sniff(const uint8_t *p, size_t n)
{
	if (n == 0)
		return DC_KIND_EMPTY;
	if (n >= 4 && p[0] == 'P' && p[1] == 'K' && ((p[2] == 3 && p[3] == 4) || (p[2] == 5 && p[3] == 6)))
		return DC_KIND_ZIP;
	if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b)
		return DC_KIND_GZIP;
	for (size_t i = 0; i < sizeof(sniffers) / sizeof(sniffers[0]); i++)
		if (sniffers[i].match(p, n))
			return sniffers[i].kind;
	return DC_KIND_OTHER;
}

const char *
dc_unpack_kind_name(dc_kind k)
{
	switch (k) {
	case DC_KIND_EMPTY: return "empty";
	case DC_KIND_ZIP: return "zip";
	case DC_KIND_GZIP: return "gzip";
	case DC_KIND_ZLIB: return "zlib";
	case DC_KIND_XML: return "XML";
	case DC_KIND_MESSAGE: return "message";
	case DC_KIND_OTHER: return "other";
	case DC_KIND_JSON: return "JSON";
	}
	return "other";
}

static const struct {
	const char *magic;
	size_t len;
	const char *what;
} magics[] = {
	{ "\x89PNG", 4, "PNG image" },
	{ "%PDF", 4, "PDF document" },
	{ "\xff\xd8\xff", 3, "JPEG image" },
	{ "GIF8", 4, "GIF image" },
	{ "\xd0\xcf\x11\xe0", 4, "MS Office (OLE2) document" },
	{ "Rar!", 4, "RAR archive" },
	{ "7z\xbc\xaf", 4, "7-Zip archive" },
	{ "BZh", 3, "bzip2 data" },
	{ "\xfd"
	  "7zXZ",
		5, "xz data" },
	{ "\x28\xb5\x2f\xfd", 4, "zstd data" },
	{ "PK", 2, "zip fragment (no local header)" },
};

void
dc_unpack_describe(const uint8_t *p, size_t n, uint64_t total, char *buf, size_t cap)
{
	size_t probe = n < 512 ? n : 512, text = 0, i, o;
	char root[64];
	char line[48];

	if (total == 0 || n == 0) {
		snprintf(buf, cap, "empty (%llu bytes)", (unsigned long long)total);
		return;
	}
	for (i = 0; i < sizeof(magics) / sizeof(magics[0]); i++)
		if (n >= magics[i].len && memcmp(p, magics[i].magic, magics[i].len) == 0) {
			snprintf(buf, cap, "%s, %llu bytes", magics[i].what, (unsigned long long)total);
			return;
		}
	if (looks_xml(p, n) && dc_unpack_xml_root(p, n, root, sizeof(root))) {
		/* the text goes into failure reasons: ASCII only */
		for (char *c = root; *c; c++)
			if ((unsigned char)*c < 32 || (unsigned char)*c >= 127)
				*c = '?';
		if (strcasecmp(root, "html") == 0)
			snprintf(buf, cap, "HTML document, %llu bytes", (unsigned long long)total);
		else
			snprintf(buf, cap, "XML document with root <%s>, %llu bytes", root,
				(unsigned long long)total);
		return;
	}
	for (i = 0; i < probe; i++)
		if ((p[i] >= 32 && p[i] < 127) || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')
			text++;
	if (text * 100 > probe * 95) {
		i = skip_ws(p, n, 0);
		for (o = 0; i < n && p[i] != '\n' && p[i] != '\r' && o + 1 < sizeof(line) - 3; i++)
			line[o++] = (p[i] >= 32 && p[i] < 127) ? (char)p[i] : '?';
		if (i < n && p[i] != '\n' && p[i] != '\r')
			line[o++] = '.', line[o++] = '.', line[o++] = '.';
		line[o] = '\0';
		snprintf(buf, cap, "text starting '%s', %llu bytes", line, (unsigned long long)total);
		return;
	}
	snprintf(buf, cap, "binary, %llu bytes", (unsigned long long)total);
}

/* Index after the first occurrence of the nul-free needle at or after i, or n. */
static size_t
skip_past(const uint8_t *p, size_t n, size_t i, const char *needle)
{
	size_t l = strlen(needle);

	for (; i + l <= n; i++)
		if (memcmp(p + i, needle, l) == 0)
			return i + l;
	return n;
}

bool
dc_unpack_xml_root(const uint8_t *p, size_t n, char *buf, size_t cap)
{
	size_t i = skip_ws(p, n, skip_bom(p, n)), s, o = 0;

	while (i < n) {
		if (p[i] != '<')
			return false;
		if (i + 1 < n && p[i + 1] == '?') {
			i = skip_past(p, n, i, "?>");
		} else if (i + 3 < n && memcmp(p + i, "<!--", 4) == 0) {
			i = skip_past(p, n, i + 4, "-->");
		} else if (i + 1 < n && p[i + 1] == '!') {
			/* DOCTYPE, possibly with an internal subset [...] */
			size_t k = i;
			while (k < n && p[k] != '>' && p[k] != '[')
				k++;
			i = (k < n && p[k] == '[') ? skip_past(p, n, k, "]") : k;
			i = skip_past(p, n, i, ">");
		} else {
			break;
		}
		if (i >= n)
			return false;
		i = skip_ws(p, n, i);
	}
	if (i >= n || p[i] != '<')
		return false;
	s = ++i;
	while (i < n && !dc_unpack_is_ws(p[i]) && p[i] != '>' && p[i] != '/') {
		if (p[i] == ':')
			s = i + 1;
		i++;
	}
	if (i >= n || cap == 0)
		return false;
	for (; s < i && o + 1 < cap; s++)
		buf[o++] = (char)p[s];
	buf[o] = '\0';
	return o > 0;
}

/* ---------------------------------------------------------------- the walk */

typedef struct walk {
	const dc_limits *lim;
	const dc_unpack_cb *cb;
	dc_err *err; /* the caller's: where a callback's error goes */
	budget b;
	char path[DC_UNPACK_PATH_MAX];
} walk;

/* Appends " > " kind part to the path (no " > " when it was empty); returns
 * the old length to restore with path_pop.  Control characters and bytes
 * that are not valid UTF-8 become '?' (paths are stored as text). */
static size_t
path_push(walk *w, const char *kind, const char *part)
{
	size_t old = strlen(w->path), l = old;
	const size_t max = sizeof(w->path) - 4;

	if (l > 0 && l + 3 < max) {
		memcpy(w->path + l, " > ", 3);
		l += 3;
	}
	for (; *kind && l < max; kind++)
		w->path[l++] = *kind;
	for (size_t rest = strlen(part); rest > 0 && l < max;) {
		const uint8_t *p = (const uint8_t *)part;
		int k = p[0] < 32 || p[0] == 127 ? 0 : dc_utf8_seq(p, rest, NULL);

		if (k <= 0 || l + (size_t)k > max) {
			/* control character, invalid or cut UTF-8: one '?' per byte */
			w->path[l++] = '?';
			part++;
			rest--;
			continue;
		}
		memcpy(w->path + l, part, (size_t)k);
		l += (size_t)k;
		part += k;
		rest -= (size_t)k;
	}
	if (*part) {
		memcpy(w->path + l, "...", 3);
		l += 3;
	}
	w->path[l] = '\0';
	return old;
}

static void
path_pop(walk *w, size_t old)
{
	w->path[old] = '\0';
}

static dc_code walk_fail(walk *w, dc_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Hands one failure of the current path to the callback; returns its code. */
static dc_code
walk_fail(walk *w, dc_code code, const char *fmt, ...)
{
	dc_err why;
	va_list ap;

	why.code = code;
	va_start(ap, fmt);
	vsnprintf(why.msg, sizeof(why.msg), fmt, ap);
	va_end(ap);
	return w->cb->failure ? w->cb->failure(w->cb->ctx, w->path, &why, w->err) : DC_OK;
}

static dc_code cap_fail(walk *w, dc_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A cap of the input exceeded: with a tally, the walk stops with
 * DC_EINPUT_LIMIT (the caller rejects the input once); without, the part
 * fails with code like any other. */
static dc_code
cap_fail(walk *w, dc_code code, const char *fmt, ...)
{
	char msg[DC_ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w->b.t != NULL) {
		w->b.spent = true;
		return dc_unpack_tally_over(w->b.t, w->err, "%s", msg);
	}
	return walk_fail(w, code, "%s", msg);
}

/* Reads a whole stream into a new buffer of at most cap bytes (*out, owned by
 * the caller, free()).  Returns DC_OK, DC_ENOMEM, the stream's error, or
 * too_big when cap is exceeded (chain err set). */
static dc_code
slurp(chain *ch, src s, uint64_t cap, dc_code too_big, const char *what, uint8_t **out, size_t *len,
	dc_err *err)
{
	uint8_t *buf = NULL, *nb;
	size_t n = 0, sz = 0, got;
	dc_code rc = DC_OK;

	*out = NULL;
	*len = 0;
	for (;;) {
		if (sz - n < DC_UNPACK_CHUNK) {
			size_t nsz = sz ? sz * 2 : 65536;
			if (nsz < sz || (nb = realloc(buf, nsz)) == NULL) {
				rc = dc_chain_fail(ch, err, DC_ENOMEM, "out of memory buffering %s", what);
				goto out;
			}
			buf = nb;
			sz = nsz;
		}
		rc = s.rd(s.ctx, buf + n, sz - n, &got, err);
		if (rc != DC_OK) {
			rc = dc_chain_fail(ch, err, rc, "%s", dc_err_text(err));
			goto out;
		}
		if (got == 0)
			break;
		n += got;
		if (cap > 0 && n > cap) {
			rc = dc_chain_fail(
				ch, err, too_big, "%s larger than %llu bytes", what, (unsigned long long)cap);
			goto out;
		}
	}
	*out = buf;
	*len = n;
	buf = NULL;
out:
	free(buf);
	return rc;
}

/* Reads a stream to its end, counting bytes (bounded by the chain's meters). */
static dc_code
drain(chain *ch, src s, uint64_t *total, dc_err *err)
{
	uint8_t buf[DC_UNPACK_CHUNK];
	size_t got;
	dc_code rc;

	for (;;) {
		rc = s.rd(s.ctx, buf, sizeof(buf), &got, err);
		if (rc != DC_OK)
			return dc_chain_fail(ch, err, rc, "%s", dc_err_text(err));
		if (got == 0)
			return DC_OK;
		*total += got;
	}
}

/* Routes a chain failure (the stream itself broke) to the failure callback. */
static dc_code
walk_chain_fail(walk *w, chain *ch)
{
	if (ch->err.code == DC_ENOMEM)
		return DC_ENOMEM;
	if (w->b.t != NULL && w->b.t->over.code != DC_OK) {
		*w->err = w->b.t->over;
		return DC_EINPUT_LIMIT;
	}
	return walk_fail(w, ch->err.code, "%s", ch->err.msg);
}

/* Hands one XML stream (s, whose first bytes pk already holds) to cb->xml. */
static dc_code
emit_xml(walk *w, chain *ch, peeker *pk, dc_err *err)
{
	dc_unpack_xml x;
	size_t i = skip_ws(pk->buf, pk->n, skip_bom(pk->buf, pk->n));

	if (i > 0 && i < pk->n && i > skip_bom(pk->buf, pk->n)) {
		dc_chain_note(ch, "%zu bytes of whitespace before the XML removed", i);
		pk->pos = i;
	}
	x.rd = dc_peek_read;
	x.rctx = pk;
	x.path = w->path;
	x.notes = ch->notes;
	x.stream_err = &ch->err;
	return w->cb->xml ? w->cb->xml(w->cb->ctx, &x, err) : DC_OK;
}

static dc_code walk_zip(walk *w, const uint8_t *p, size_t n, int depth, const meter *root, dc_err *err);

/*
 * Classifies the stream s (part of chain ch) and goes on with it: XML to the
 * callback, gzip/zlib through another inflater, zip and messages buffered,
 * anything else a failure.  root is the first compressed layer's meter.
 */
static dc_code
walk_stream(walk *w, chain *ch, src s, int depth, const meter *root, dc_err *err)
{
	peeker *pk = NULL;
	inflater *f = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t total;
	char desc[200];
	dc_code rc = DC_OK;
	dc_kind k;
	size_t mark;

	if ((pk = calloc(1, sizeof(*pk))) == NULL) {
		rc = DC_ENOMEM;
		goto out;
	}
	pk->ch = ch;
	pk->up = s;
	if (dc_peek_fill(pk, err) != DC_OK) {
		rc = walk_chain_fail(w, ch);
		goto out;
	}
	k = dc_unpack_sniff(pk->buf, pk->n);
	switch (k) {
	case DC_KIND_XML: rc = emit_xml(w, ch, pk, err); break;
	case DC_KIND_GZIP:
	case DC_KIND_ZLIB:
		if ((uint64_t)depth >= dc_unpack_max_nesting(w->lim)) {
			rc = cap_fail(w, DC_ETOODEEP, "archives nested deeper than %llu (limits.max_nesting)",
				(unsigned long long)dc_unpack_max_nesting(w->lim));
			break;
		}
		if ((f = dc_inflater_new(ch, (src){ dc_peek_read, pk }, k == DC_KIND_GZIP ? IM_GZIP : IM_ZLIB,
			     root)) == NULL) {
			rc = DC_ENOMEM;
			break;
		}
		mark = path_push(w, f->what, "");
		rc = walk_stream(w, ch, (src){ dc_inflater_read, f }, depth + 1, f->root, err);
		path_pop(w, mark);
		break;
	case DC_KIND_ZIP:
	case DC_KIND_MESSAGE:
		if (k == DC_KIND_ZIP)
			rc = slurp(ch, (src){ dc_peek_read, pk }, w->lim->max_report_bytes, DC_ETOOBIG_REPORT,
				"zip inside an archive", &buf, &len, err);
		else
			rc = slurp(ch, (src){ dc_peek_read, pk }, w->lim->max_message_bytes,
				DC_ETOOBIG_MESSAGE, "message inside an archive", &buf, &len, err);
		if (rc != DC_OK) {
			rc = walk_chain_fail(w, ch);
			break;
		}
		if (k == DC_KIND_ZIP)
			rc = walk_zip(w, buf, len, depth, root, err);
		else
			rc = w->cb->message ? w->cb->message(w->cb->ctx, buf, len, w->path, depth, err) :
					      DC_OK;
		break;
	case DC_KIND_JSON:
		/* buffered whole through the chain: its size and ratio meters apply */
		rc = slurp(ch, (src){ dc_peek_read, pk }, dc_tlsrpt_max_bytes(w->lim), DC_ETOOBIG_REPORT,
			"JSON", &buf, &len, err);
		if (rc != DC_OK) {
			rc = walk_chain_fail(w, ch);
			break;
		}
		rc = w->cb->json ? w->cb->json(w->cb->ctx, buf, len, w->path, ch->notes, err) :
				   walk_fail(w, DC_EFORMAT, "not a report: JSON, %zu bytes", len);
		break;
	case DC_KIND_EMPTY:
	case DC_KIND_OTHER:
		total = pk->n;
		if (!pk->eof) {
			pk->pos = pk->n;
			if (drain(ch, (src){ dc_peek_read, pk }, &total, err) != DC_OK) {
				rc = walk_chain_fail(w, ch);
				break;
			}
		}
		dc_unpack_describe(pk->buf, pk->n, total, desc, sizeof(desc));
		rc = walk_fail(w, DC_EFORMAT, "not a report: %s", desc);
		break;
	}
out:
	free(buf);
	dc_inflater_free(f);
	free(pk);
	return rc;
}

/*
 * One zip member: deflated members are read compressed and inflated here
 * (so the ratio is measured on the compressed bytes actually consumed, and
 * the CRC checked), other methods through libzip against the declared
 * compressed size.
 */
static dc_code
walk_member(walk *w, zip_t *za, zip_uint64_t i, const zip_stat_t *st, size_t zlen, int depth,
	const meter *root, dc_err *err)
{
	bool deflated = (st->valid & ZIP_STAT_COMP_METHOD) && st->comp_method == ZIP_CM_DEFLATE;
	inflater *f = NULL;
	zipreader zr;
	chain ch;
	dc_code rc;

	dc_chain_init(&ch, w->lim, &w->b, w->cb->notes);
	memset(&zr, 0, sizeof(zr));
	zr.ch = &ch;
	zr.raw = deflated;
	zr.zf = zip_fopen_index(za, i, deflated ? ZIP_FL_COMPRESSED : 0);
	if (zr.zf == NULL && dc_zip_oom(zip_get_error(za)))
		return DC_ENOMEM;
	if (zr.zf == NULL)
		return walk_fail(w, DC_EZIP, "zip member unreadable: %s", zip_strerror(za));
	if (deflated) {
		if ((f = dc_inflater_new(&ch, (src){ dc_zip_read, &zr }, IM_ZIP, root)) == NULL) {
			rc = DC_ENOMEM;
			goto out;
		}
		f->check_crc = (st->valid & ZIP_STAT_CRC) != 0;
		f->crc_want = st->crc;
		rc = walk_stream(w, &ch, (src){ dc_inflater_read, f }, depth + 1, f->root, err);
	} else {
		zr.m.in = (st->valid & ZIP_STAT_COMP_SIZE) ? st->comp_size : zlen;
		zr.root = root != NULL ? root : &zr.m;
		rc = walk_stream(w, &ch, (src){ dc_zip_read, &zr }, depth + 1, zr.root, err);
	}
out:
	dc_inflater_free(f);
	zip_fclose(zr.zf);
	return rc;
}

/* True for zip entries that are no file: directories, __MACOSX/ forks. */
static bool
skip_member(const char *name)
{
	return (*name && name[strlen(name) - 1] == '/') || strncmp(name, "__MACOSX/", 9) == 0;
}

/* Walks every file member of the zip p[0..n). */
static dc_code
walk_zip(walk *w, const uint8_t *p, size_t n, int depth, const meter *root, dc_err *err)
{
	zip_source_t *zs = NULL;
	zip_t *za = NULL;
	zip_error_t ze;
	zip_int64_t count, i;
	uint64_t files = 0;
	dc_code rc = DC_OK;
	size_t mark;

	zip_error_init(&ze);
	if ((uint64_t)depth >= dc_unpack_max_nesting(w->lim)) {
		rc = cap_fail(w, DC_ETOODEEP, "archives nested deeper than %llu (limits.max_nesting)",
			(unsigned long long)dc_unpack_max_nesting(w->lim));
		goto out;
	}
	if ((zs = zip_source_buffer_create(p, n, 0, &ze)) == NULL) {
		rc = dc_zip_oom(&ze) ? DC_ENOMEM : walk_fail(w, DC_EZIP, "zip: %s", zip_error_strerror(&ze));
		goto out;
	}
	if ((za = zip_open_from_source(zs, ZIP_RDONLY, &ze)) == NULL) {
		rc = dc_zip_oom(&ze) ? DC_ENOMEM : walk_fail(w, DC_EZIP, "zip: %s", zip_error_strerror(&ze));
		goto out;
	}
	zs = NULL; /* the archive owns it now */
	count = zip_get_num_entries(za, 0);
	/* the central directory says how many members there are: an input over
	 * max_members is refused before any of them is read */
	for (i = 0; i < count; i++) {
		const char *name = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
		if (name == NULL || !skip_member(name))
			files++;
	}
	if (w->lim->max_members > 0 && (w->b.t ? w->b.t->members : 0) + files > w->lim->max_members) {
		rc = cap_fail(w, DC_EZIP,
			"zip has %llu file members, more than limits.max_members (%llu) in one input",
			(unsigned long long)files, (unsigned long long)w->lim->max_members);
		goto out;
	}
	if (w->b.t != NULL)
		w->b.t->members += files;
	files = 0;
	for (i = 0; i < count && rc == DC_OK && !w->b.spent; i++) {
		zip_stat_t st;
		const char *name;

		zip_stat_init(&st);
		if (zip_stat_index(za, (zip_uint64_t)i, 0, &st) != 0) {
			rc = dc_zip_oom(zip_get_error(za)) ?
				DC_ENOMEM :
				walk_fail(w, DC_EZIP, "zip entry %lld: %s", (long long)i, zip_strerror(za));
			continue;
		}
		name = (st.valid & ZIP_STAT_NAME) && st.name ? st.name : "";
		if (skip_member(name))
			continue;
		files++;
		mark = path_push(w, "zip:", name);
		if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE) {
			rc = walk_fail(w, DC_EZIP, "zip member is encrypted");
		} else if ((st.valid & ZIP_STAT_COMP_METHOD) &&
			!zip_compression_method_supported(st.comp_method, 0)) {
			rc = walk_fail(w, DC_EZIP, "zip member compression method %d not supported",
				(int)st.comp_method);
		} else if ((st.valid & ZIP_STAT_SIZE) && w->lim->max_report_bytes > 0 &&
			st.size > w->lim->max_report_bytes) {
			rc = walk_fail(w, DC_ETOOBIG_REPORT,
				"zip member declares %llu bytes, more than max_report_bytes (%llu)",
				(unsigned long long)st.size, (unsigned long long)w->lim->max_report_bytes);
		} else {
			rc = walk_member(w, za, (zip_uint64_t)i, &st, n, depth, root, err);
		}
		path_pop(w, mark);
	}
	if (rc == DC_OK && files == 0 && !w->b.spent)
		rc = walk_fail(w, DC_EZIP, "zip archive has no file members");
out:
	if (za != NULL)
		zip_discard(za);
	zip_source_free(zs);
	return rc;
}

/* Walks a unit in memory: sniffs it whole, then as walk_stream. */
static dc_code
walk_buffer(walk *w, const uint8_t *p, size_t n, int depth, const meter *root, dc_err *err)
{
	memsrc ms = { p, n, 0 };
	chain ch;
	char desc[200];

	dc_chain_init(&ch, w->lim, &w->b, w->cb->notes);
	switch (dc_unpack_sniff(p, n)) {
	case DC_KIND_ZIP: return walk_zip(w, p, n, depth, root, err);
	case DC_KIND_MESSAGE:
		return w->cb->message ? w->cb->message(w->cb->ctx, p, n, w->path, depth, err) : DC_OK;
	case DC_KIND_XML:
		if (w->lim->max_report_bytes > 0 && n > w->lim->max_report_bytes)
			return walk_fail(w, DC_ETOOBIG_REPORT,
				"XML of %zu bytes exceeds max_report_bytes (%llu)", n,
				(unsigned long long)w->lim->max_report_bytes);
		break;
	case DC_KIND_JSON:
		if (n > dc_tlsrpt_max_bytes(w->lim))
			return walk_fail(w, DC_ETOOBIG_REPORT, "JSON of %zu bytes exceeds %llu bytes", n,
				(unsigned long long)dc_tlsrpt_max_bytes(w->lim));
		break;
	case DC_KIND_EMPTY:
	case DC_KIND_OTHER:
		dc_unpack_describe(p, n, n, desc, sizeof(desc));
		return walk_fail(w, DC_EFORMAT, "not a report: %s", desc);
	case DC_KIND_GZIP:
	case DC_KIND_ZLIB: break;
	}
	return walk_stream(w, &ch, (src){ dc_mem_read, &ms }, depth, root, err);
}

dc_code
dc_unpack_tally_over(dc_unpack_tally *t, dc_err *err, const char *fmt, ...)
{
	va_list ap;
	dc_code rc;

	va_start(ap, fmt);
	rc = dc_err_firstv(&t->over, err, DC_EINPUT_LIMIT, fmt, ap);
	va_end(ap);
	return rc;
}

uint64_t
dc_unpack_max_nesting(const dc_limits *lim)
{
	return lim->max_nesting == 0 || lim->max_nesting > DC_MAX_NESTING_CEILING ? DC_MAX_NESTING_CEILING :
										    lim->max_nesting;
}

dc_code
dc_unpack_walk(
	const uint8_t *data, size_t len, int depth, const dc_limits *lim, const dc_unpack_cb *cb, dc_err *err)
{
	dc_err local;
	walk *w;
	dc_code rc;

	if (err == NULL)
		err = &local;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	w->lim = lim;
	w->cb = cb;
	w->err = err;
	w->b.in = len;
	w->b.t = cb->tally;
	rc = walk_buffer(w, data, len, depth, NULL, err);
	if (rc == DC_ENOMEM && (err == NULL || err->code != DC_ENOMEM))
		dc_err_set(err, DC_ENOMEM, "out of memory while unpacking");
	free(w);
	return rc;
}

size_t
dc_unpack_libversions(dc_libversion *v, size_t max)
{
	const struct {
		const char *name, *version;
	} libs[] = { { "libzip", zip_libzip_version() }, { "zlib", zlibVersion() } };
	size_t n = 0;

	for (; n < max && n < sizeof(libs) / sizeof(libs[0]); n++) {
		v[n].name = libs[n].name;
		snprintf(v[n].version, sizeof(v[n].version), "%s", libs[n].version);
	}
	return n;
}
