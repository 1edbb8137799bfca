/*
 * dc_extract.h - the parser's public entry point: every aggregate report in
 * one input (an RFC 5322 message, or a bare .xml/.json/.gz/.zip/zlib file), found
 * by looking at the bytes, never at names or Content-Type, and streamed
 * through the XML reader into a sink.
 *
 * Layers (each its own module): dc_mime (GMime 3: every leaf part,
 * message/rfc822 recursively), dc_unpack (zip via libzip, gzip/zlib via zlib,
 * nested, with the ratio/size limits), dc_xml (libxml2 xmlReader, no network,
 * no DTD, no entities).  SMTP TLS reports (RFC 8460: JSON with "report-id"
 * and "policies", gzip or not) go through dc_tlsrpt to sink.tls_report.
 */
#ifndef DC_EXTRACT_H
#define DC_EXTRACT_H

#include "dc_mime.h"
#include "dc_report.h"

typedef struct dc_extract_stats {
	uint64_t reports;         /* reports that reached report_end (stored) */
	uint64_t duplicates;      /* reports whose report_begin returned DC_SKIP */
	uint64_t records;         /* records handed to the sink of stored reports */
	uint64_t failures;        /* units handed to cb->failure */
	uint64_t tls_reports;     /* SMTP TLS reports stored, duplicates included */
	uint64_t failure_reports; /* DMARC failure reports stored, duplicates included */
} dc_extract_stats;

typedef struct dc_extract_cb {
	dc_sink sink;
	/*
	 * Called once per rejected unit: stage is a short word ("mime", "unpack",
	 * "xml", "report", "limits", "store"), why the one-line reason, unit the
	 * original bytes of what was rejected (the attachment or file as received,
	 * or the whole message when it held no report at all).  Returning an error
	 * stops dc_extract with that error (the failure could not be recorded).
	 */
	dc_code (*failure)(void *ctx, const char *stage, const dc_err *why, const dc_blob *unit, dc_err *err);
	void *failure_ctx;
	/*
	 * May be NULL.  Called at most once per input, when the input itself is
	 * a message (not a bare report or archive, not a message inside one),
	 * after GMime parsed it and before anything of it reaches the sink or
	 * failure: the header fields the store keeps (its Message-ID), so the
	 * caller can put them in the origin of what follows.  An error stops
	 * dc_extract with it.
	 */
	dc_code (*message)(void *ctx, const dc_mime_head *head, dc_err *err);
	void *message_ctx;
} dc_extract_cb;

/*
 * Finds and parses every report in data[0..len).  name is the file or
 * attachment name (informational, may be NULL).  Returns DC_OK when the input
 * was walked to its end: each report either reached the sink's report_end,
 * was skipped as a duplicate, or was passed to cb->failure (stats says which).
 * Returns an error only for conditions that must stop the caller without
 * recording a failure: a sink returning DC_EDB, DC_ENOMEM, DC_EIO or
 * DC_EINTERRUPTED, or cb->failure failing; nothing of the unfinished report is
 * kept (report_abort was called).  stats is added to, not reset.
 */
dc_code dc_extract(const uint8_t *data, size_t len, const char *name, const dc_limits *lim,
	const dc_extract_cb *cb, dc_extract_stats *stats, dc_err *err) DC_WUR;

/* True for codes that stop an import (the service, not the input, failed). */
bool dc_extract_is_fatal(dc_code code);

#endif
