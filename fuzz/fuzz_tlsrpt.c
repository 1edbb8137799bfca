/*
 * fuzz_tlsrpt.c - libFuzzer target for the SMTP TLS report parser
 * (dc_tlsrpt_parse) under small limits: a report it accepts must hold what
 * dc_tlsrpt.h promises (required fields present, strings valid UTF-8 and
 * within DC_MAX_FIELD_BYTES, counts -1 or 0..DC_MAX_TLSRPT_COUNT, the
 * failure details of the policies adding up to n_failures); anything else
 * aborts, as does a rejection without a reason.
 *
 *   cmake -DDC_FUZZ=ON -DCMAKE_C_COMPILER=clang -B build-fuzz && cmake --build build-fuzz --target fuzz_tlsrpt
 *   build-fuzz/fuzz/fuzz_tlsrpt -max_total_time=60 CORPUS_DIR tests/data/corpus/_smtp_tls
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dc_tlsrpt.h"
#include "dc_utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_string(const char *s, int required)
{
	if (s == NULL) {
		if (required)
			abort();
		return;
	}
	if (strlen(s) > DC_MAX_FIELD_BYTES || !dc_utf8_valid(s, strlen(s)))
		abort();
}

static void
check_count(int64_t n)
{
	if (n < -1 || n > DC_MAX_TLSRPT_COUNT)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dc_limits lim;
	dc_tls_report *r = NULL;
	dc_err err;
	size_t failures = 0;

	dc_limits_default(&lim);
	lim.max_report_bytes = 1 << 20;
	dc_err_clear(&err);
	if (dc_tlsrpt_parse(data, size, &lim, &r, &err) != DC_OK) {
		if (r != NULL || err.msg[0] == '\0')
			abort();
		return 0;
	}
	check_string(r->organization_name, 1);
	check_string(r->report_id, 1);
	check_string(r->contact_info, 0);
	check_string(r->start_datetime, 1);
	check_string(r->end_datetime, 1);
	if (r->date_end < r->date_begin || r->n_policies > DC_MAX_TLSRPT_POLICIES)
		abort();
	for (size_t i = 0; i < r->n_policies; i++) {
		const dc_tls_policy *p = &r->policies[i];

		check_string(p->policy_type, 1);
		check_string(p->policy_domain, 0);
		for (size_t k = 0; k < p->n_policy_string; k++)
			check_string(p->policy_string[k], 1);
		for (size_t k = 0; k < p->n_mx_host; k++)
			check_string(p->mx_host[k], 1);
		check_count(p->successful_sessions);
		check_count(p->failed_sessions);
		for (size_t j = 0; j < p->n_failures; j++) {
			const dc_tls_failure *f = &p->failures[j];

			check_string(f->result_type, 1);
			check_string(f->sending_mta_ip, 0);
			check_string(f->receiving_mx_hostname, 0);
			check_string(f->receiving_mx_helo, 0);
			check_string(f->receiving_ip, 0);
			check_string(f->additional_information, 0);
			check_string(f->failure_reason_code, 0);
			check_count(f->failed_session_count);
		}
		failures += p->n_failures;
	}
	if (failures != r->n_failures || failures > DC_MAX_TLSRPT_FAILURES)
		abort();
	dc_tlsrpt_free(r);
	return 0;
}
