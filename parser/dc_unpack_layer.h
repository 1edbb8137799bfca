/*
 * dc_unpack_layer.h - the readers a decompression layer of dc_unpack is
 * made of, each a dc_read_fn over the layer above it: a unit in memory, a
 * peeker (the first DC_UNPACK_SNIFF_BYTES served again after sniffing), an
 * inflater (gzip with every member, zlib, a zip member's raw deflate data)
 * and a libzip member reader; plus the chain they share (first failure,
 * repair notes) and the meters that hold them to the size and ratio limits.
 *
 * Internal to parser/: only dc_unpack.c and dc_unpack_layer.c include it.
 * The structs are open so the walk can keep them on its stack.
 */
#ifndef DC_UNPACK_LAYER_H
#define DC_UNPACK_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zip.h>
#include <zlib.h>

#include "dc_unpack.h"

/* compressed bytes pulled from a layer's source per read */
#define DC_UNPACK_CHUNK 16384

/* XML white space, also what counts as padding after a gzip stream. */
static inline bool
dc_unpack_is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The state one XML stream's chain of readers shares. */
/* What the whole unit may expand to: all layers of all members together
 * (a 42.zip-style archive stops every single stream early, but holds
 * thousands of them). */
typedef struct budget {
	uint64_t in;        /* the unit's size */
	uint64_t out;       /* bytes produced by every layer of every member so far */
	bool spent;         /* over the ratio: the walk stops */
	dc_unpack_tally *t; /* the input's (NULL: none) */
} budget;

typedef struct chain {
	const dc_limits *lim;
	budget *b;
	dc_err err;                      /* first failure anywhere in the chain */
	char notes[DC_UNPACK_NOTES_MAX]; /* repairs, "; "-joined */
} chain;

typedef struct meter {
	uint64_t in;  /* compressed bytes consumed */
	uint64_t out; /* bytes produced */
} meter;

/* A source: how a layer pulls from the layer above it. */
typedef struct src {
	dc_read_fn rd;
	void *ctx;
} src;

/* memory: a unit already in memory */
typedef struct memsrc {
	const uint8_t *p;
	size_t len, pos;
} memsrc;

/* peek: the first DC_UNPACK_SNIFF_BYTES of a stream, served again, then the
 * rest; skip drops leading bytes (whitespace before XML). */
typedef struct peeker {
	chain *ch;
	src up;
	uint8_t buf[DC_UNPACK_SNIFF_BYTES];
	size_t n, pos;
	bool eof;
} peeker;

/* inflate: gzip (every member), zlib, or a zip member's raw deflate data */
typedef enum imode { IM_GZIP, IM_ZLIB, IM_ZIP } imode;

typedef struct inflater {
	chain *ch;
	src up;
	z_stream z;
	bool zinit;
	imode mode;
	dc_code bad; /* code for corrupt data: DC_EGZIP, or DC_EZIP for zip members */
	bool done;   /* every member inflated and trailing bytes drained */
	bool up_eof;
	const char *what; /* "gzip" / "zlib" / "zip member" */
	meter m;
	const meter *root; /* first compressed layer of the chain (may be &m) */
	uint64_t before;   /* compressed bytes of members already finished */
	unsigned members;
	bool check_crc; /* zip: compare the CRC-32 of the output with crc_want */
	uLong crc, crc_want;
	uint8_t in[DC_UNPACK_CHUNK];
} inflater;

/* zip member: libzip decompresses; compressed size is known up front */
typedef struct zipreader {
	chain *ch;
	zip_file_t *zf;
	bool raw; /* compressed bytes for an inflater: no meter */
	meter m;
	const meter *root;
} zipreader;

/* Records the chain's first failure and copies it to err (may be NULL);
 * returns the chain's code. */
dc_code dc_chain_fail(chain *ch, dc_err *err, dc_code code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Appends one repair note to ch->notes (cut when the buffer is full). */
void dc_chain_note(chain *ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts a chain of readers for one stream of the walk's unit; notes (may
 * be NULL) are the notes it starts with. */
void dc_chain_init(chain *ch, const dc_limits *lim, budget *b, const char *notes);

/* Checks one layer's output (got more bytes, m->out in all) against the
 * report size and the ratio: of the layer itself, of the chain since its
 * first compressed layer (root), and of the whole unit.  Returns DC_OK or
 * DC_ETOOBIG_REPORT / DC_ERATIO / DC_EINPUT_LIMIT with err set. */
dc_code dc_meter_check(
	chain *ch, const meter *m, const meter *root, size_t got, const char *what, dc_err *err) DC_WUR;

/* dc_read_fn over a memsrc. */
dc_code dc_mem_read(void *ctx, void *buf, size_t cap, size_t *got, dc_err *err);

/* Reads until the peek buffer is full or the stream ended; DC_OK or the
 * source's error (recorded in the chain). */
dc_code dc_peek_fill(peeker *pk, dc_err *err) DC_WUR;

/* dc_read_fn over a peeker: the peeked bytes from pos, then the rest. */
dc_code dc_peek_read(void *ctx, void *buf, size_t cap, size_t *got, dc_err *err);

/* Returns a new inflater over up (mode IM_GZIP, IM_ZLIB or IM_ZIP; root
 * is the chain's first compressed meter, NULL when this is it), or NULL
 * when out of memory.  The caller frees it with dc_inflater_free. */
inflater *dc_inflater_new(chain *ch, src up, imode mode, const meter *root);

/* Frees f (NULL accepted). */
void dc_inflater_free(inflater *f);

/* dc_read_fn over an inflater: decompressed bytes, metered. */
dc_code dc_inflater_read(void *ctx, void *buf, size_t cap, size_t *got, dc_err *err);

/* True when libzip failed for want of memory: DC_ENOMEM then, never a
 * "corrupt zip" failure of an input that is not to blame.  (libzip calls
 * malloc itself; the allocation-failure test cannot reach it.) */
bool dc_zip_oom(zip_error_t *ze);

/* dc_read_fn over a zipreader: the member's bytes from libzip, metered
 * unless raw. */
dc_code dc_zip_read(void *ctx, void *buf, size_t cap, size_t *got, dc_err *err);

#endif
