/*
 * dc_tlsrpt.h - one SMTP TLS report (RFC 8460 section 4, JSON) parsed from
 * a bounded byte buffer with json-c into struct dc_tls_report: its policies
 * and their failure details as arrays, RFC 8460's fields kept as sent.
 *
 * Bounds (dc_limits.h): the buffer at most DC_MAX_TLSRPT_BYTES (and
 * limits.max_report_bytes when smaller), JSON nesting DC_MAX_JSON_DEPTH,
 * DC_MAX_TLSRPT_POLICIES policies, DC_MAX_TLSRPT_FAILURES failure details
 * in all, DC_MAX_TLSRPT_STRINGS policy-string / mx-host entries per policy,
 * DC_MAX_FIELD_BYTES per string, counts 0 .. DC_MAX_TLSRPT_COUNT.
 *
 * Rules: the bytes must be valid UTF-8 and strict JSON (json-c's
 * JSON_TOKENER_STRICT: no comments, no trailing text); every decoded string
 * valid UTF-8 without NUL.  A key given twice in one object: the last value
 * counts (json-c's behaviour, as in ECMAScript's JSON.parse; RFC 8259
 * section 4 leaves it open).  Required: organization-name, date-range with
 * start-datetime and end-datetime (RFC 3339), report-id, policies (an
 * array; each element an object with a policy object holding policy-type).
 * Tolerated as real reporters send them: contact-info, policy-domain,
 * summary and failure-details absent; a date-time without an offset (read
 * as UTC, as Microsoft sends it); policy-string or mx-host as one
 * string instead of an array; counts as strings of decimal digits.  A
 * number with a fraction or exponent, negative, or above the cap is
 * rejected.
 */
#ifndef DC_TLSRPT_H
#define DC_TLSRPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dc_error.h"
#include "dc_libversion.h"
#include "dc_limits.h"

/* One failure-details element (RFC 8460 section 4.3); NULL = absent. */
typedef struct dc_tls_failure {
	const char *result_type;
	const char *sending_mta_ip;
	const char *receiving_mx_hostname;
	const char *receiving_mx_helo;
	const char *receiving_ip;
	const char *additional_information;
	const char *failure_reason_code;
	int64_t failed_session_count; /* -1 when absent */
} dc_tls_failure;

/* One policies element: its policy and summary (RFC 8460 section 4.4). */
typedef struct dc_tls_policy {
	const char *policy_type;
	const char *const *policy_string; /* n_policy_string entries */
	size_t n_policy_string;
	const char *policy_domain;
	const char *const *mx_host;
	size_t n_mx_host;
	int64_t successful_sessions; /* summary/total-successful-session-count, -1 absent */
	int64_t failed_sessions;     /* summary/total-failure-session-count, -1 absent */
	const dc_tls_failure *failures;
	size_t n_failures;
} dc_tls_policy;

/* A parsed report.  Every pointer belongs to the report (dc_tlsrpt_free). */
struct dc_tls_report {
	const char *organization_name;
	const char *contact_info; /* NULL when absent */
	const char *report_id;
	const char *start_datetime; /* as sent */
	const char *end_datetime;
	int64_t date_begin; /* start-datetime, seconds since the epoch (UTC) */
	int64_t date_end;
	const dc_tls_policy *policies;
	size_t n_policies;
	size_t n_failures; /* over all policies */
	void *priv;        /* the parser's own */
};
typedef struct dc_tls_report dc_tls_report;

/*
 * Parses data[0..len).  On DC_OK *out is a new report owned by the caller
 * (dc_tlsrpt_free).  Errors, with a one-line err: DC_EFORMAT (not JSON,
 * truncated, not UTF-8), DC_ESCHEMA (JSON that is no usable TLS report: a
 * field missing or of the wrong type, a bad date, a bad number),
 * DC_ETOOBIG_REPORT, DC_ETOODEEP, DC_ETOOMANY_RECORDS, DC_ETOOLONG,
 * DC_ENOMEM.
 */
dc_code dc_tlsrpt_parse(
	const uint8_t *data, size_t len, const dc_limits *lim, dc_tls_report **out, dc_err *err) DC_WUR;

/* Frees r (NULL is fine). */
void dc_tlsrpt_free(dc_tls_report *r);

/* True when data[0..len) holds both keys a TLS report must have ("report-id"
 * and "policies", quoted): what tells a TLS report from other JSON. */
bool dc_tlsrpt_looks(const uint8_t *data, size_t len);

/* The largest bytes of JSON parsed for lim (the smaller of the two caps). */
uint64_t dc_tlsrpt_max_bytes(const dc_limits *lim);

/* json-c as loaded (json_c_version); dc_libversion.h. */
size_t dc_tlsrpt_libversions(dc_libversion *v, size_t max);

#endif
