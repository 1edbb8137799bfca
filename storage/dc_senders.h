/*
 * dc_senders.h - the sender map (dmarc.sender_map, sql/migrations/
 * 004_senders.sql): loading a file of parsedmarc's CSV format
 * (base_reverse_dns,name,type) as one source, and the local overrides
 * (source 'local') that `senders set` and `senders unset` edit.
 *
 * The CSV is parsed by PostgreSQL (COPY ... WITH (FORMAT csv, HEADER MATCH)),
 * never by hand here: the caller hands over the file's bytes, a leading
 * UTF-8 byte order mark already removed.  Deliberately not here: reading the
 * file (program/dc_senders_cmd.c), which row wins (the view dmarc.senders).
 */
#ifndef DC_SENDERS_H
#define DC_SENDERS_H

#include <stddef.h>
#include <stdint.h>

#include "dc_error.h"
#include "dc_store.h"

/* Longest source name and override field accepted (bytes). */
#define DC_SENDERS_MAX_SOURCE 64
#define DC_SENDERS_MAX_FIELD  1024

/* What a load did. */
typedef struct dc_senders_load_stats {
	uint64_t rows;       /* data rows of the file */
	uint64_t domains;    /* rows stored: one per distinct base domain */
	uint64_t duplicates; /* rows whose domain came again later in the file (the last one kept) */
	uint64_t known;      /* stored domains the source had before */
	uint64_t added;      /* stored domains the source did not have */
	uint64_t removed;    /* domains the source had that the file no longer has */
} dc_senders_load_stats;

/*
 * Replaces every row of source in dmarc.sender_map by the rows of csv (len
 * bytes, parsedmarc's format with its header line), in one transaction:
 * either the whole file is stored or nothing changes.  Base domains are
 * normalised (lower case, no trailing dot); names and types trimmed; a
 * domain given twice keeps its last row.  Returns DC_EFORMAT with "line N:
 * reason" (N counts the file's lines, the header is line 1) for a file
 * PostgreSQL cannot read as CSV (quoting, invalid UTF-8, a wrong header or
 * number of columns), an empty domain or name, or control characters;
 * DC_EUSAGE for a bad source name; DC_ECONFIG when the schema lacks the
 * table (not migrated); DC_EDB or DC_EDBREFUSED.  *s is set on DC_OK.
 */
dc_code dc_senders_load(dc_store *st, const char *source, const char *csv, size_t len,
	dc_senders_load_stats *s, dc_err *err) DC_WUR;

/* Upserts the local override for domain (normalised as above): *replaced
 * says whether one was there.  DC_EFORMAT for an empty domain or name or
 * control characters; DC_ECONFIG, DC_EDB, DC_EDBREFUSED. */
dc_code dc_senders_set(dc_store *st, const char *domain, const char *name, const char *type, int *replaced,
	dc_err *err) DC_WUR;

/* Deletes the local override for domain: *found says whether there was one.
 * DC_ECONFIG, DC_EDB, DC_EDBREFUSED. */
dc_code dc_senders_unset(dc_store *st, const char *domain, int *found, dc_err *err) DC_WUR;

#endif
