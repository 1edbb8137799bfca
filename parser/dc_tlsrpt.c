/*
 * dc_tlsrpt.c - one SMTP TLS report (RFC 8460 section 4) from JSON (RFC
 * 8259) bytes, with json-c's tokener (strict mode, depth-limited) into a
 * DOM, then read field by field through a table per object.
 *
 * Not streamed: a TLS report is one JSON document of a few kB (Google's
 * are under 2 kB), so the whole buffer is capped (DC_MAX_TLSRPT_BYTES, and
 * limits.max_report_bytes) and parsed at once.  Dates are RFC 3339
 * date-times (section 5.6), converted here without the C library's time
 * zone.  Not here: finding the JSON (dc_unpack, dc_extract), storage.
 * See dc_tlsrpt.h for what is accepted and what is rejected.
 */
#include "dc_tlsrpt.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "dc_utf8.h"

typedef struct tls_priv {
	json_object *root;
	dc_tls_policy *policies;
	dc_tls_failure *failures;
	const char **strings; /* every policy's policy_string and mx_host entries */
} tls_priv;

uint64_t
dc_tlsrpt_max_bytes(const dc_limits *lim)
{
	uint64_t cap = DC_MAX_TLSRPT_BYTES;

	if (lim != NULL && lim->max_report_bytes > 0 && lim->max_report_bytes < cap)
		cap = lim->max_report_bytes;
	return cap;
}

static bool
has_key(const uint8_t *p, size_t n, const char *needle)
{
	size_t l = strlen(needle);

	for (size_t i = 0; i + l <= n; i++)
		if (p[i] == (uint8_t)needle[0] && memcmp(p + i, needle, l) == 0)
			return true;
	return false;
}

size_t
dc_tlsrpt_libversions(dc_libversion *v, size_t max)
{
	if (max == 0)
		return 0;
	v[0].name = "json-c";
	snprintf(v[0].version, sizeof(v[0].version), "%s", json_c_version());
	return 1;
}

bool
dc_tlsrpt_looks(const uint8_t *data, size_t len)
{
	return has_key(data, len, "\"report-id\"") && has_key(data, len, "\"policies\"");
}

void
dc_tlsrpt_free(dc_tls_report *r)
{
	tls_priv *p;

	if (r == NULL)
		return;
	p = r->priv;
	if (p != NULL) {
		json_object_put(p->root);
		free(p->policies);
		free(p->failures);
		free(p->strings);
		free(p);
	}
	free(r);
}

/* ---- values ------------------------------------------------------------ */

/* A string member: NULL when absent or null; DC_ESCHEMA for another type,
 * DC_ETOOLONG past DC_MAX_FIELD_BYTES, DC_ESCHEMA for a NUL or bad UTF-8. */
static dc_code
get_string(json_object *v, const char *where, const char *key, const char **out, dc_err *err)
{
	const char *s;
	size_t n;

	*out = NULL;
	if (v == NULL || json_object_is_type(v, json_type_null))
		return DC_OK;
	if (!json_object_is_type(v, json_type_string))
		return dc_err_set(err, DC_ESCHEMA, "TLS report: %s%s is a %s, not a string", where, key,
			json_type_to_name(json_object_get_type(v)));
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (n > DC_MAX_FIELD_BYTES)
		return dc_err_set(err, DC_ETOOLONG, "TLS report: %s%s is longer than %d bytes", where, key,
			DC_MAX_FIELD_BYTES);
	if (strlen(s) != n)
		return dc_err_set(err, DC_ESCHEMA, "TLS report: %s%s contains a NUL character", where, key);
	if (!dc_utf8_valid(s, n))
		return dc_err_set(err, DC_ESCHEMA, "TLS report: %s%s is not valid UTF-8", where, key);
	*out = s;
	return DC_OK;
}

/* A session count: an integer, or a string of decimal digits, 0 ..
 * DC_MAX_TLSRPT_COUNT; -1 when absent or null. */
static dc_code
get_count(json_object *v, const char *where, const char *key, int64_t *out, dc_err *err)
{
	int64_t n = 0;

	*out = -1;
	if (v == NULL || json_object_is_type(v, json_type_null))
		return DC_OK;
	if (json_object_is_type(v, json_type_int)) {
		n = json_object_get_int64(v);
		/* json-c clamps what does not fit an int64 to INT64_MIN/MAX, and
		 * a uint64 above INT64_MAX reads as INT64_MAX: all over the cap */
		if (n < 0)
			return dc_err_set(
				err, DC_ESCHEMA, "TLS report: %s%s is negative (%" PRId64 ")", where, key, n);
	} else if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		size_t l = (size_t)json_object_get_string_len(v);

		if (l == 0 || l > 18 || strspn(s, "0123456789") != l)
			return dc_err_set(err, DC_ESCHEMA,
				"TLS report: %s%s is a string that is not a count of at most 18 digits",
				where, key);
		for (size_t i = 0; i < l; i++)
			n = n * 10 + (s[i] - '0');
	} else {
		return dc_err_set(err, DC_ESCHEMA, "TLS report: %s%s is a %s, not an integer", where, key,
			json_type_to_name(json_object_get_type(v)));
	}
	if (n > DC_MAX_TLSRPT_COUNT)
		return dc_err_set(err, DC_ESCHEMA, "TLS report: %s%s is larger than %lld", where, key,
			(long long)DC_MAX_TLSRPT_COUNT);
	*out = n;
	return DC_OK;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's
 * days_from_civil). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* n decimal digits at s as a number; false when one is not a digit. */
static bool
digits(const char *s, int n, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* RFC 3339 date-time ("2016-04-01T00:00:00Z", fractions and offsets
 * allowed, 't'/' ' for 'T', no offset read as UTC) to epoch seconds; false
 * when malformed. */
static bool
parse_datetime(const char *s, int64_t *out)
{
	static const unsigned mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned y, mo, d, h, mi, sec, oh = 0, om = 0;
	int sign = 0;
	const char *p;

	if (strlen(s) < 19 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
		!digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
		!digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
		!digits(s + 17, 2, &sec))
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
		(mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) || h > 23 ||
		mi > 59 || sec > 60)
		return false;
	p = s + 19;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return false;
		p++;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == '\0') {
		/* no offset: Microsoft sends "2023-01-10T00:00:00"; read as UTC */
	} else if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return false;
		p += 6;
	} else {
		return false;
	}
	if (*p != '\0')
		return false;
	if (sec == 60) /* a leap second: the instant it ends */
		sec = 59;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
		sign * (int64_t)(oh * 3600 + om * 60);
	return true;
}

/* ---- objects ----------------------------------------------------------- */

static json_object *
member(json_object *o, const char *key)
{
	json_object *v = NULL;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* A string or an array of strings (entries into strings[*used..]). */
static dc_code
get_strings(json_object *v, const char *where, const char *key, const char **strings, size_t *used,
	size_t cap, const char *const **out, size_t *n, dc_err *err)
{
	size_t len, start = *used;
	dc_code rc;

	*out = NULL;
	*n = 0;
	if (v == NULL || json_object_is_type(v, json_type_null))
		return DC_OK;
	if (json_object_is_type(v, json_type_string)) {
		if (*used >= cap)
			return dc_err_set(err, DC_ETOOMANY_RECORDS, "TLS report: too many strings");
		if ((rc = get_string(v, where, key, &strings[*used], err)) != DC_OK)
			return rc;
		(*used)++;
	} else if (json_object_is_type(v, json_type_array)) {
		len = json_object_array_length(v);
		if (len > DC_MAX_TLSRPT_STRINGS)
			return dc_err_set(err, DC_ETOOMANY_RECORDS,
				"TLS report: %s%s has %zu entries, more than %d", where, key, len,
				DC_MAX_TLSRPT_STRINGS);
		if (len > cap - *used)
			return dc_err_set(err, DC_ETOOMANY_RECORDS, "TLS report: too many strings");
		for (size_t i = 0; i < len; i++) {
			json_object *e = json_object_array_get_idx(v, i);

			if (e == NULL || !json_object_is_type(e, json_type_string))
				return dc_err_set(err, DC_ESCHEMA, "TLS report: %s%s[%zu] is not a string",
					where, key, i);
			if ((rc = get_string(e, where, key, &strings[*used], err)) != DC_OK)
				return rc;
			(*used)++;
		}
	} else {
		return dc_err_set(err, DC_ESCHEMA, "TLS report: %s%s is a %s, not a string or an array",
			where, key, json_type_to_name(json_object_get_type(v)));
	}
	*out = strings + start;
	*n = *used - start;
	return DC_OK;
}

/* The string members of one failure-details object. */
static const struct {
	const char *key;
	size_t off;
} failure_fields[] = {
	{ "result-type", offsetof(dc_tls_failure, result_type) },
	{ "sending-mta-ip", offsetof(dc_tls_failure, sending_mta_ip) },
	{ "receiving-mx-hostname", offsetof(dc_tls_failure, receiving_mx_hostname) },
	{ "receiving-mx-helo", offsetof(dc_tls_failure, receiving_mx_helo) },
	{ "receiving-ip", offsetof(dc_tls_failure, receiving_ip) },
	{ "additional-information", offsetof(dc_tls_failure, additional_information) },
	{ "failure-reason-code", offsetof(dc_tls_failure, failure_reason_code) },
};

static dc_code
read_failure(json_object *o, const char *where, dc_tls_failure *f, dc_err *err)
{
	dc_code rc;

	if (!json_object_is_type(o, json_type_object))
		return dc_err_set(err, DC_ESCHEMA, "TLS report: %s is not an object", where);
	for (size_t i = 0; i < sizeof(failure_fields) / sizeof(failure_fields[0]); i++) {
		const char **slot = (const char **)(void *)((char *)f + failure_fields[i].off);

		if ((rc = get_string(member(o, failure_fields[i].key), where, failure_fields[i].key, slot,
			     err)) != DC_OK)
			return rc;
	}
	if (f->result_type == NULL)
		return dc_err_set(err, DC_ESCHEMA, "TLS report: %sresult-type is missing", where);
	return get_count(member(o, "failed-session-count"), where, "failed-session-count",
		&f->failed_session_count, err);
}

/* Counts the strings and failure details of the policies, for one
 * allocation each; checks the shapes that the counting relies on. */
static dc_code
count_policies(json_object *pols, size_t *strings, size_t *failures, dc_err *err)
{
	size_t n = json_object_array_length(pols);

	*strings = *failures = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(pols, i), *pol, *v, *fd;

		if (p == NULL || !json_object_is_type(p, json_type_object))
			return dc_err_set(err, DC_ESCHEMA, "TLS report: policies[%zu] is not an object", i);
		pol = member(p, "policy");
		if (pol == NULL || !json_object_is_type(pol, json_type_object))
			return dc_err_set(err, DC_ESCHEMA, "TLS report: policies[%zu].policy is %s", i,
				pol == NULL ? "missing" : "not an object");
		for (int k = 0; k < 2; k++) {
			v = member(pol, k == 0 ? "policy-string" : "mx-host");
			if (v != NULL && json_object_is_type(v, json_type_array))
				*strings += json_object_array_length(v);
			else if (v != NULL)
				*strings += 1;
		}
		fd = member(p, "failure-details");
		if (fd != NULL && !json_object_is_type(fd, json_type_null)) {
			if (!json_object_is_type(fd, json_type_array))
				return dc_err_set(err, DC_ESCHEMA,
					"TLS report: policies[%zu].failure-details is not an array", i);
			*failures += json_object_array_length(fd);
			if (*failures > DC_MAX_TLSRPT_FAILURES)
				return dc_err_set(err, DC_ETOOMANY_RECORDS,
					"TLS report: more than %d failure-details", DC_MAX_TLSRPT_FAILURES);
		}
	}
	return DC_OK;
}

static dc_code
read_policies(dc_tls_report *r, tls_priv *pv, json_object *pols, dc_err *err)
{
	size_t n = json_object_array_length(pols), ns, nf, used = 0, fi = 0;
	char where[64];
	dc_code rc;

	if (n > DC_MAX_TLSRPT_POLICIES)
		return dc_err_set(err, DC_ETOOMANY_RECORDS, "TLS report: %zu policies, more than %d", n,
			DC_MAX_TLSRPT_POLICIES);
	if ((rc = count_policies(pols, &ns, &nf, err)) != DC_OK)
		return rc;
	pv->policies = calloc(n ? n : 1, sizeof(*pv->policies));
	pv->failures = calloc(nf ? nf : 1, sizeof(*pv->failures));
	pv->strings = calloc(ns ? ns : 1, sizeof(*pv->strings));
	if (pv->policies == NULL || pv->failures == NULL || pv->strings == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(pols, i), *pol = member(p, "policy");
		json_object *sum = member(p, "summary"), *fd = member(p, "failure-details");
		dc_tls_policy *dp = &pv->policies[i];

		snprintf(where, sizeof(where), "policies[%zu].policy.", i);
		if ((rc = get_string(member(pol, "policy-type"), where, "policy-type", &dp->policy_type,
			     err)) != DC_OK ||
			(rc = get_string(member(pol, "policy-domain"), where, "policy-domain",
				 &dp->policy_domain, err)) != DC_OK ||
			(rc = get_strings(member(pol, "policy-string"), where, "policy-string", pv->strings,
				 &used, ns, &dp->policy_string, &dp->n_policy_string, err)) != DC_OK ||
			(rc = get_strings(member(pol, "mx-host"), where, "mx-host", pv->strings, &used, ns,
				 &dp->mx_host, &dp->n_mx_host, err)) != DC_OK)
			return rc;
		if (dp->policy_type == NULL)
			return dc_err_set(err, DC_ESCHEMA, "TLS report: %spolicy-type is missing", where);
		snprintf(where, sizeof(where), "policies[%zu].summary.", i);
		dp->successful_sessions = dp->failed_sessions = -1;
		if (sum != NULL && !json_object_is_type(sum, json_type_null)) {
			if (!json_object_is_type(sum, json_type_object))
				return dc_err_set(err, DC_ESCHEMA,
					"TLS report: policies[%zu].summary is not an object", i);
			if ((rc = get_count(member(sum, "total-successful-session-count"), where,
				     "total-successful-session-count", &dp->successful_sessions, err)) !=
					DC_OK ||
				(rc = get_count(member(sum, "total-failure-session-count"), where,
					 "total-failure-session-count", &dp->failed_sessions, err)) != DC_OK)
				return rc;
		}
		dp->failures = pv->failures + fi;
		if (fd != NULL && json_object_is_type(fd, json_type_array)) {
			size_t m = json_object_array_length(fd);

			for (size_t j = 0; j < m; j++, fi++) {
				snprintf(where, sizeof(where), "policies[%zu].failure-details[%zu].", i, j);
				if ((rc = read_failure(json_object_array_get_idx(fd, j), where,
					     &pv->failures[fi], err)) != DC_OK)
					return rc;
			}
			dp->n_failures = m;
		}
	}
	r->policies = pv->policies;
	r->n_policies = n;
	r->n_failures = fi;
	return DC_OK;
}

static dc_code
read_report(dc_tls_report *r, tls_priv *pv, dc_err *err)
{
	json_object *root = pv->root, *dr, *pols;
	dc_code rc;

	if (!json_object_is_type(root, json_type_object))
		return dc_err_set(err, DC_ESCHEMA, "TLS report: the JSON is a %s, not an object",
			json_type_to_name(json_object_get_type(root)));
	if ((rc = get_string(member(root, "organization-name"), "", "organization-name",
		     &r->organization_name, err)) != DC_OK ||
		(rc = get_string(member(root, "contact-info"), "", "contact-info", &r->contact_info, err)) !=
			DC_OK ||
		(rc = get_string(member(root, "report-id"), "", "report-id", &r->report_id, err)) != DC_OK)
		return rc;
	if (r->organization_name == NULL)
		return dc_err_set(err, DC_ESCHEMA, "TLS report: organization-name is missing");
	if (r->report_id == NULL)
		return dc_err_set(err, DC_ESCHEMA, "TLS report: report-id is missing");
	dr = member(root, "date-range");
	if (dr == NULL || !json_object_is_type(dr, json_type_object))
		return dc_err_set(err, DC_ESCHEMA, "TLS report: date-range is %s",
			dr == NULL ? "missing" : "not an object");
	if ((rc = get_string(member(dr, "start-datetime"), "date-range.", "start-datetime",
		     &r->start_datetime, err)) != DC_OK ||
		(rc = get_string(member(dr, "end-datetime"), "date-range.", "end-datetime", &r->end_datetime,
			 err)) != DC_OK)
		return rc;
	if (r->start_datetime == NULL || !parse_datetime(r->start_datetime, &r->date_begin))
		return dc_err_set(err, DC_ESCHEMA, "TLS report: date-range.start-datetime is %s",
			r->start_datetime == NULL ? "missing" : "not an RFC 3339 date-time");
	if (r->end_datetime == NULL || !parse_datetime(r->end_datetime, &r->date_end))
		return dc_err_set(err, DC_ESCHEMA, "TLS report: date-range.end-datetime is %s",
			r->end_datetime == NULL ? "missing" : "not an RFC 3339 date-time");
	if (r->date_end < r->date_begin)
		return dc_err_set(err, DC_ESCHEMA, "TLS report: date-range ends before it starts");
	pols = member(root, "policies");
	if (pols == NULL || !json_object_is_type(pols, json_type_array))
		return dc_err_set(err, DC_ESCHEMA, "TLS report: policies is %s",
			pols == NULL ? "missing" : "not an array");
	return read_policies(r, pv, pols, err);
}

dc_code
dc_tlsrpt_parse(const uint8_t *data, size_t len, const dc_limits *lim, dc_tls_report **out, dc_err *err)
{
	dc_tls_report *r = NULL;
	tls_priv *pv = NULL;
	json_tokener *tok = NULL;
	enum json_tokener_error jerr;
	uint64_t cap = dc_tlsrpt_max_bytes(lim);
	size_t end;
	dc_code rc = DC_OK;

	*out = NULL;
	if (len > cap) {
		rc = dc_err_set(err, DC_ETOOBIG_REPORT, "TLS report of %zu bytes exceeds %llu bytes", len,
			(unsigned long long)cap);
		goto out;
	}
	if (len >= 3 && data[0] == 0xef && data[1] == 0xbb && data[2] == 0xbf) {
		data += 3; /* a UTF-8 byte-order mark (RFC 8259 section 8.1 lets a parser ignore it) */
		len -= 3;
	}
	if (!dc_utf8_valid((const char *)data, len) || memchr(data, 0, len) != NULL) {
		rc = dc_err_set(err, DC_EFORMAT, "TLS report: the JSON is not valid UTF-8 text");
		goto out;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL || (pv = calloc(1, sizeof(*pv))) == NULL ||
		(tok = json_tokener_new_ex(DC_MAX_JSON_DEPTH)) == NULL) {
		free(pv);
		pv = NULL;
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	r->priv = pv;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	pv->root = json_tokener_parse_ex(tok, (const char *)data, (int)len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue || (pv->root == NULL && jerr == json_tokener_success)) {
		rc = dc_err_set(err, DC_EFORMAT, "TLS report: the JSON ends early (truncated)");
		goto out;
	}
	if (jerr == json_tokener_error_depth) {
		rc = dc_err_set(
			err, DC_ETOODEEP, "TLS report: JSON nested deeper than %d", DC_MAX_JSON_DEPTH);
		goto out;
	}
	if (jerr != json_tokener_success) {
		rc = dc_err_set(err, DC_EFORMAT, "TLS report: not valid JSON at byte %zu: %s",
			json_tokener_get_parse_end(tok), json_tokener_error_desc(jerr));
		goto out;
	}
	for (end = json_tokener_get_parse_end(tok); end < len; end++)
		if (data[end] != ' ' && data[end] != '\t' && data[end] != '\r' && data[end] != '\n') {
			rc = dc_err_set(err, DC_EFORMAT, "TLS report: text after the JSON at byte %zu", end);
			goto out;
		}
	if ((rc = read_report(r, pv, err)) != DC_OK)
		goto out;
	*out = r;
	r = NULL;
out:
	if (tok != NULL) /* json-c 0.16's json_tokener_free does not take NULL */
		json_tokener_free(tok);
	dc_tlsrpt_free(r);
	return rc;
}
