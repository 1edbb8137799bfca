/*
 * dc_arf.h - DMARC failure reports: the Abuse Reporting Format (RFC 5965)
 * with the authentication-failure extensions of RFC 6591 and RFC 9991 (DMARC
 * failure reporting), read with GMime 3.
 *
 * A failure report is a multipart/report (RFC 6522) with
 * report-type=feedback-report, holding a message/feedback-report part (the
 * fields below) and the reported message, as message/rfc822 or as
 * text/rfc822-headers.  dc_arf_walk finds every such report in one message:
 * the message itself, or a report forwarded inside it as a message/rfc822
 * part (GMime walks those as it walks every part).  A report is never looked
 * for inside the original of another report: that is evidence, not a report.
 *
 * Not here: aggregate reports (dc_extract), storage, what the fields mean
 * for the classification (sql/objects/47_failure_reports.sql).
 */
#ifndef DC_ARF_H
#define DC_ARF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dc_error.h"

/* Original-Rcpt-To fields kept per report (more are counted in notes). */
#define DC_ARF_MAX_RCPT 100
/* Feedback fields read per report (more are ignored and noted). */
#define DC_ARF_MAX_FIELDS 1000

/*
 * One failure report; every pointer belongs to the parser and is valid only
 * during the callback.  A field is NULL when absent; values are unfolded,
 * with leading and trailing white space removed, as sent (feedback_type,
 * auth_failure, delivery_result and identity_alignment lower-cased).  When a
 * field that occurs once occurs again, the first is kept.  Texts are bytes
 * as received, not checked for UTF-8 (the store replaces bad bytes).
 */
typedef struct dc_arf_report {
	/* the message/feedback-report part (RFC 5965 3.1, RFC 6591 3.1) */
	const char *feedback_type; /* "auth-failure", "abuse", ... */
	const char *version;
	const char *user_agent;
	const char *arrival_date;    /* as sent (RFC 5322 date-time) */
	int64_t arrival_time;        /* it in seconds since the epoch; INT64_MIN: absent or unreadable */
	const char *source_ip;       /* the address alone, a comment after it dropped */
	const char *reported_domain; /* the first Reported-Domain */
	const char *original_mail_from;
	const char *const *original_rcpt_to; /* n_original_rcpt_to of them */
	size_t n_original_rcpt_to;
	const char *original_envelope_id;
	const char *reporting_mta;
	const char *authentication_results;
	const char *auth_failure; /* RFC 6591: dmarc, dkim, spf, adsp, bodyhash, revoked, signature */
	const char *delivery_result;
	const char *dkim_domain;
	const char *dkim_identity;
	const char *dkim_selector;
	const char *dkim_canonicalized_header;
	const char *dkim_canonicalized_body;
	const char *spf_dns;
	const char *identity_alignment; /* RFC 9991 */
	/* the reported message */
	const char *headers; /* its header block as received (folds kept), NULL when absent */
	const uint8_t *body; /* its body, only when asked for (keep_body) and present */
	size_t body_len;
	bool body_present; /* it had a body (whether kept or not) */
	/* fields of its header block (NULL when absent), From and Subject
	 * with RFC 2047 encoded words decoded */
	const char *orig_return_path;
	const char *orig_auto_submitted;
	const char *orig_content_type;
	const char *orig_from;
	const char *orig_subject;
	const char *orig_message_id;
	const char *
		part_types; /* the report's parts, e.g. "text/plain, message/feedback-report, message/rfc822" */
	const char *notes; /* what was odd and left out, "; "-joined, NULL if nothing */
} dc_arf_report;

/*
 * Called once per report found, with section its part number ("" for the
 * message itself, "2" for a report in part 2); DC_OK goes on, any other code
 * stops the walk, which returns it.
 */
typedef dc_code (*dc_arf_fn)(void *ctx, const dc_arf_report *r, const char *section, dc_err *err);
/*
 * Called once per multipart/report of report-type feedback-report that is
 * no usable report: why says what is missing (DC_ESCHEMA).  DC_OK goes on.
 */
typedef dc_code (*dc_arf_bad_fn)(void *ctx, const dc_err *why, const char *section, dc_err *err);

/*
 * True when data[0..len) may hold a failure report: it names
 * "feedback-report" somewhere (case-insensitive).  A cheap test before
 * dc_arf_walk parses the message again.
 */
bool dc_arf_maybe(const uint8_t *data, size_t len);

/*
 * Parses data[0..len) (owned by the caller) as a message and calls fn for
 * each failure report in it, bad for each unusable one; *found (may be NULL)
 * is set to the number of both.  keep_body: hand on the reported message's
 * body too.  Nesting deeper than DC_MAX_MIME_DEPTH is not examined.
 * Returns DC_OK (also when there was none), DC_EMIME when GMime makes no
 * message of the bytes, DC_ENOMEM, or a callback's code.
 */
dc_code dc_arf_walk(const uint8_t *data, size_t len, bool keep_body, dc_arf_fn fn, dc_arf_bad_fn bad,
	void *ctx, unsigned *found, dc_err *err) DC_WUR;

/*
 * The value of the first field name in a header block hdr (RFC 5322: folds
 * undone, white space around it removed) as a new string (g_free), or NULL
 * when absent.  For callers that want a field dc_arf_report does not keep.
 */
char *dc_arf_header(const char *hdr, const char *name);

#endif
