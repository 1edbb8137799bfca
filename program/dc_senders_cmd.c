/*
 * dc_senders_cmd.c - the `senders` command: the sender map
 * (storage/dc_senders.c, the view dmarc.senders).
 *
 *   senders load FILE [--source NAME]  replace the rows of source NAME
 *                                      (default: FILE's base name without
 *                                      its extension) by FILE's
 *   senders set DOMAIN NAME TYPE       the local override for DOMAIN
 *   senders unset DOMAIN               remove it
 *
 * FILE is read whole, up to MAX_FILE_BYTES (parsedmarc's map is about 2 MiB),
 * and a leading UTF-8 byte order mark is dropped; the CSV itself is parsed
 * by PostgreSQL.  Exit statuses: 0 done, 2 a usage error, a file that cannot
 * be read or is not a valid map (one line naming the file's line; nothing
 * changed), or a refusing server, 75 the database could not be reached.
 */
#include "dc_buf.h"
#include "dc_commands.h"
#include "dc_exit.h"
#include "dc_log.h"
#include "dc_senders.h"
#include "dc_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES (64u << 20) /* 64 MiB */

/* Reads path whole into b (initialised by the caller with the cap; the
 * caller frees it); 0, or logs why not and returns the exit status. */
static int
read_map(const char *path, dc_buf *b)
{
	FILE *f = fopen(path, "rb");
	bool too_large = false;
	int status = 0;

	if (f == NULL) {
		dc_log_error("senders: %s: %s", path, strerror(errno));
		return DC_EXIT_CONFIG;
	}
	for (;;) {
		size_t left = MAX_FILE_BYTES - dc_buf_len(b), chunk = left < (1u << 20) ? left : (1u << 20);
		char *room;
		size_t got;

		if (left == 0) { /* exactly the cap so far: one byte more is too much */
			too_large = fgetc(f) != EOF;
			break;
		}
		if ((room = dc_buf_room(b, chunk)) == NULL)
			break;
		got = fread(room, 1, chunk, f);
		dc_buf_commit(b, got);
		if (got == 0)
			break;
	}
	if (too_large || dc_buf_code(b) == DC_ETOOLONG) {
		dc_log_error("senders: %s: larger than %u MiB", path, MAX_FILE_BYTES >> 20);
		status = DC_EXIT_CONFIG;
	} else if (dc_buf_code(b) != DC_OK) {
		dc_log_error("senders: %s: out of memory", path);
		status = DC_EXIT_TEMPFAIL;
	} else if (ferror(f)) {
		dc_log_error("senders: %s: read error", path);
		status = DC_EXIT_CONFIG;
	}
	fclose(f);
	return status;
}

/* FILE's base name without its extension, in out (size n). */
static void
default_source(const char *path, char *out, size_t n)
{
	const char *base = strrchr(path, '/');
	char *dot;

	snprintf(out, n, "%s", base != NULL ? base + 1 : path);
	if ((dot = strrchr(out, '.')) != NULL && dot != out)
		*dot = '\0';
}

/* Logs a failed senders operation (storage's messages start "senders: ",
 * a file's "line N: ", prefixed with what) and returns the exit status: 2
 * for a file that is not a valid map. */
static int
failed(dc_code rc, const dc_err *err, const char *what)
{
	if (what != NULL)
		dc_log_error("senders: %s: %s", what, dc_err_text(err));
	else
		dc_log_error("%s", dc_err_text(err));
	return rc == DC_EFORMAT ? DC_EXIT_CONFIG : dc_exit_for(rc);
}

/* `senders load FILE [--source NAME]`. */
static int
load(dc_store *st, const char *path, const char *source)
{
	char def[DC_SENDERS_MAX_SOURCE * 4];
	dc_senders_load_stats s;
	dc_buf b;
	const char *map;
	size_t len;
	dc_err err;
	dc_code rc;
	int status;

	if (source == NULL) {
		default_source(path, def, sizeof def);
		source = def;
	}
	dc_buf_init(&b, MAX_FILE_BYTES);
	if ((status = read_map(path, &b)) != 0) {
		dc_buf_free(&b);
		return status;
	}
	map = dc_buf_str(&b);
	len = dc_buf_len(&b);
	if (len >= 3 && memcmp(map, "\xEF\xBB\xBF", 3) == 0) { /* a UTF-8 BOM */
		map += 3;
		len -= 3;
	}
	dc_err_clear(&err);
	rc = dc_senders_load(st, source, map, len, &s, &err);
	dc_buf_free(&b);
	if (rc != DC_OK)
		return failed(rc, &err, rc == DC_EFORMAT ? path : NULL);
	dc_log_info("senders: %" PRIu64 " rows loaded from %s (source %s): %" PRIu64 " domains, %" PRIu64
		    " replaced, %" PRIu64 " new, %" PRIu64 " removed, %" PRIu64
		    " duplicate rows (the last one kept)",
		s.rows, path, source, s.domains, s.known, s.added, s.removed, s.duplicates);
	return 0;
}

int
dc_cmd_senders(const dc_config *cfg, int argc, char **argv)
{
	dc_store *st = NULL;
	const char *sub = argc > 1 ? argv[1] : "";
	const char *file = NULL, *source = NULL;
	dc_err err;
	dc_code rc;
	int status = 0;

	if (strcmp(sub, "load") == 0) {
		for (int i = 2; i < argc; i++) {
			if (strcmp(argv[i], "--source") == 0 && i + 1 < argc)
				source = argv[++i];
			else if (strncmp(argv[i], "--source=", 9) == 0)
				source = argv[i] + 9;
			else if (argv[i][0] != '-' && file == NULL)
				file = argv[i];
			else {
				dc_log_error(
					"senders load: unexpected argument '%s' (see dmarc-collector --help)",
					argv[i]);
				return DC_EXIT_CONFIG;
			}
		}
		if (file == NULL) {
			dc_log_error("senders load: needs FILE (see dmarc-collector --help)");
			return DC_EXIT_CONFIG;
		}
	} else if (!((strcmp(sub, "set") == 0 && argc == 5) || (strcmp(sub, "unset") == 0 && argc == 3))) {
		dc_log_error(
			"senders: use senders load FILE [--source NAME], senders set DOMAIN NAME TYPE or "
			"senders unset DOMAIN (see dmarc-collector --help)");
		return DC_EXIT_CONFIG;
	}
	dc_err_clear(&err);
	if ((rc = dc_store_open(cfg->db_conninfo, cfg->db_password, &st, &err)) != DC_OK) {
		dc_log_error("senders: %s", dc_err_text(&err));
		return dc_exit_for(rc);
	}
	if (file != NULL) {
		status = load(st, file, source);
	} else if (strcmp(sub, "set") == 0) {
		int replaced = 0;
		if ((rc = dc_senders_set(st, argv[2], argv[3], argv[4], &replaced, &err)) != DC_OK)
			status = failed(rc, &err, NULL);
		else
			dc_log_info("senders: %s the local override for %s: %s (%s)",
				replaced ? "replaced" : "added", argv[2], argv[3], argv[4]);
	} else {
		int found = 0;
		if ((rc = dc_senders_unset(st, argv[2], &found, &err)) != DC_OK)
			status = failed(rc, &err, NULL);
		else
			dc_log_info("senders: %s %s",
				found ? "removed the local override for" : "there was no local override for",
				argv[2]);
	}
	dc_store_free(st);
	return status;
}
