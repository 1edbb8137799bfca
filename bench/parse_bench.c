/*
 * parse_bench.c - the parser alone (dc_extract: MIME walk, gzip/zip unpack,
 * XML reader) over every file of a directory, read into memory first, with
 * a sink that only counts; prints the best of several passes in
 * microseconds per file: the process's CPU time (what other load on the
 * machine disturbs least) and the wall time of that pass.  Used by
 * bench/parse.sh; a benchmark, not a test.
 *
 *   parse_bench DIR [PASSES] [EXPECT_RECORDS_PER_FILE]
 *
 * Exits 1 when a file fails or, with the third argument, when the record
 * count is not files x that number (so a broken parser cannot look fast).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dc_extract.h"

typedef struct corpus {
	uint8_t **data;
	size_t *len;
	size_t n;
} corpus;

typedef struct tally {
	uint64_t records, failures;
} tally;

static dc_code
on_record(void *ctx, const dc_report *r, const dc_record *rec, dc_err *err)
{
	(void)r;
	(void)rec;
	(void)err;
	((tally *)ctx)->records++;
	return DC_OK;
}

static dc_code
on_failure(void *ctx, const char *stage, const dc_err *why, const dc_blob *unit, dc_err *err)
{
	(void)unit;
	(void)err;
	((tally *)ctx)->failures++;
	fprintf(stderr, "parse_bench: %s failure: %s\n", stage, dc_err_text(why));
	return DC_OK;
}

static double
seconds(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads every regular file of dir into c; returns 0 or -1 (message printed). */
static int
load(const char *dir, corpus *c)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[4096];
	int rc = 0;

	if (d == NULL) {
		perror(dir);
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		FILE *f;
		long l;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) != 0 || (l = ftell(f)) < 0) {
			perror(path);
			rc = -1;
		} else {
			uint8_t **nd = realloc(c->data, (c->n + 1) * sizeof(*nd));
			size_t *nl = nd ? realloc(c->len, (c->n + 1) * sizeof(*nl)) : NULL;

			if (nd != NULL)
				c->data = nd;
			if (nl != NULL)
				c->len = nl;
			if (nd == NULL || nl == NULL || (c->data[c->n] = malloc((size_t)l + 1)) == NULL) {
				fprintf(stderr, "parse_bench: out of memory\n");
				rc = -1;
			} else {
				rewind(f);
				if (fread(c->data[c->n], 1, (size_t)l, f) != (size_t)l) {
					perror(path);
					free(c->data[c->n]);
					rc = -1;
				} else {
					c->len[c->n++] = (size_t)l;
				}
			}
		}
		if (f != NULL)
			fclose(f);
	}
	closedir(d);
	return rc;
}

int
main(int argc, char **argv)
{
	corpus c = { NULL, NULL, 0 };
	int passes = argc > 2 ? atoi(argv[2]) : 3;
	long expect = argc > 3 ? atol(argv[3]) : -1;
	double best = 0, best_cpu = 0;
	tally t = { 0, 0 };
	dc_limits lim;
	dc_extract_cb cb;
	int rc = 0;

	if (argc < 2 || passes < 1) {
		fprintf(stderr, "usage: parse_bench DIR [PASSES] [EXPECT_RECORDS_PER_FILE]\n");
		return 2;
	}
	if (load(argv[1], &c) != 0 || c.n == 0) {
		fprintf(stderr, "parse_bench: no files read from %s\n", argv[1]);
		return 1;
	}
	dc_limits_default(&lim);
	memset(&cb, 0, sizeof(cb));
	cb.sink.ctx = &t;
	cb.sink.record = on_record;
	cb.failure = on_failure;
	cb.failure_ctx = &t;
	for (int p = 0; p < passes && rc == 0; p++) {
		double w0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_PROCESS_CPUTIME_ID), w, cpu;

		t.records = t.failures = 0;
		for (size_t i = 0; i < c.n && rc == 0; i++) {
			dc_extract_stats st = { 0 };
			dc_err err;

			if (dc_extract(c.data[i], c.len[i], NULL, &lim, &cb, &st, &err) != DC_OK) {
				fprintf(stderr, "parse_bench: dc_extract: %s\n", dc_err_text(&err));
				rc = 1;
			}
		}
		w = seconds(CLOCK_MONOTONIC) - w0;
		cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
		if (p == 0 || cpu < best_cpu) {
			best = w;
			best_cpu = cpu;
		}
		if (t.failures > 0 || (expect >= 0 && t.records != (uint64_t)expect * c.n)) {
			fprintf(stderr, "parse_bench: %llu failures, %llu records (expected %ld per file)\n",
				(unsigned long long)t.failures, (unsigned long long)t.records, expect);
			rc = 1;
		}
	}
	if (rc == 0)
		printf("%zu files, %llu records, best of %d passes: %.1f us/file cpu (%.3f s), %.1f us/file wall\n",
			c.n, (unsigned long long)t.records, passes, best_cpu * 1e6 / (double)c.n, best_cpu,
			best * 1e6 / (double)c.n);
	for (size_t i = 0; i < c.n; i++)
		free(c.data[i]);
	free(c.data);
	free(c.len);
	return rc;
}
