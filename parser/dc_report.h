/*
 * dc_report.h - the parsed shape of a DMARC aggregate report (RFC 7489
 * appendix C and RFC 9990), and the sink interface through which the parser
 * hands it on, one record at a time.
 *
 * Ownership: every pointer inside dc_report and dc_record belongs to the
 * parser and is valid only for the duration of the callback that receives it.
 * A string field is NULL when its element was absent and "" when present but
 * empty (envelope_from keeps absent, "" and "<>" distinct; SPEC section 2).
 * Values with a fixed vocabulary (p, sp, np, adkim, aspf, disposition, dkim
 * and spf results, scope, reason type, testing, discovery_method) arrive
 * trimmed and lower-cased; other values arrive trimmed.
 */
#ifndef DC_REPORT_H
#define DC_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dc_error.h"
#include "dc_limits.h"

/* Reports of other kinds, handed over whole (dc_tlsrpt.h, dc_arf.h). */
struct dc_tls_report;
struct dc_arf_report;

typedef struct dc_report {
	const char *xmlns;   /* namespace URI of <feedback>, NULL if none */
	const char *version; /* <version> */
	/* report_metadata */
	const char *org_name;
	const char *org_email;
	const char *extra_contact_info;
	const char *report_id;
	int64_t date_begin; /* seconds since the epoch, UTC */
	int64_t date_end;
	const char *generator; /* RFC 9990 */
	const char *errors;    /* <error> texts and repair notes, "; "-joined, NULL if none */
	/* policy_published */
	const char *policy_domain;
	const char *policy_adkim;
	const char *policy_aspf;
	const char *policy_p;
	const char *policy_sp;
	const char *policy_np;               /* RFC 9990 */
	const char *policy_testing;          /* RFC 9990 ("y"/"n") */
	const char *policy_discovery_method; /* RFC 9990 ("psl"/"treewalk") */
	const char *policy_fo;
	int policy_pct; /* -1 when absent */
} dc_report;

typedef struct dc_dkim_result {
	const char *domain;
	const char *selector;
	const char *result;
	const char *human_result;
} dc_dkim_result;

typedef struct dc_spf_result {
	const char *domain;
	const char *scope; /* "mfrom", "helo" or NULL when absent */
	const char *result;
	const char *human_result;
} dc_spf_result;

typedef struct dc_reason {
	const char *type;
	const char *comment;
} dc_reason;

typedef struct dc_record {
	uint64_t ordinal;      /* 1-based position of the record in the report */
	const char *source_ip; /* as written (trimmed); NULL when absent */
	int64_t message_count; /* -1 when absent */
	const char *disposition;
	const char *dkim_aligned; /* policy_evaluated/dkim: "pass"/"fail" */
	const char *spf_aligned;  /* policy_evaluated/spf */
	const dc_reason *reasons;
	size_t n_reasons;
	const char *header_from;
	const char *envelope_from;
	const char *envelope_to;
	const dc_dkim_result *dkim;
	size_t n_dkim;
	const dc_spf_result *spf;
	size_t n_spf;
} dc_record;

/* Where a report's bytes came from: the unit as received (an attachment after
 * transfer decoding, or a local file), still compressed.  Storage keeps these
 * bytes so `reparse` can run them again. */
typedef struct dc_blob {
	const uint8_t *data;
	size_t len;
	const char *name;      /* attachment or file name, may be NULL */
	const char *path;      /* where inside it: "zip:a.xml > gzip", may be NULL */
	const char *notes;     /* repairs made while unpacking, "; "-joined, NULL if none;
	                               * the XML parser adds them to the report's errors */
	const uint8_t *sha256; /* SHA-256 of data[0..len) (32 bytes) when the caller
	                               * computed it, else NULL (the sink hashes) */
} dc_blob;

/*
 * The sink.  The parser calls report_begin once the report's metadata is
 * complete (at the first <record>, or at </feedback> when there is none),
 * then record for each record in document order, then report_end.  A callback
 * returns DC_OK to go on, DC_SKIP (from report_begin, or from record when the
 * sink learns only then that the report is a duplicate: it has discarded the
 * report itself) to skip the rest of this report without error, or an error
 * code with err set, which the parser returns unchanged.  report_abort is
 * called (by dc_extract) after report_begin whenever the report did not reach
 * report_end, except after DC_SKIP; the sink must then discard everything of
 * that report.  Every callback may be NULL.
 *
 * tls_report and failure_report are called once per whole report of those
 * kinds (no begin/end), origin being the unit it came from; DC_SKIP means
 * "a duplicate" (counted as stored), another code than DC_OK an error as
 * above.  NULL: the report is ignored but still counts as found.
 */
typedef struct dc_sink {
	void *ctx;
	dc_code (*report_begin)(void *ctx, const dc_report *r, const dc_blob *origin, dc_err *err);
	dc_code (*record)(void *ctx, const dc_report *r, const dc_record *rec, dc_err *err);
	dc_code (*report_end)(void *ctx, const dc_report *r, dc_err *err);
	void (*report_abort)(void *ctx);
	/* An SMTP TLS report (RFC 8460), once per whole report (no begin/end);
	 * DC_SKIP: a duplicate, counted as stored.  NULL: ignored, still counted
	 * as found.  Errors as above. */
	dc_code (*tls_report)(void *ctx, const struct dc_tls_report *r, const dc_blob *origin, dc_err *err);
	/* A DMARC failure report (RFC 6591 ARF), likewise. */
	dc_code (*failure_report)(
		void *ctx, const struct dc_arf_report *r, const dc_blob *origin, dc_err *err);
} dc_sink;

/*
 * A pull stream of bytes: reads at most cap bytes into buf and sets *got;
 * *got == 0 with DC_OK means end of stream.  Used between the unpackers and
 * the XML reader.
 */
typedef dc_code (*dc_read_fn)(void *ctx, void *buf, size_t cap, size_t *got, dc_err *err);

#endif
