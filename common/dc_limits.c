/* dc_limits.c - defaults for the user-settable limits. */
#include "dc_limits.h"

void
dc_limits_default(dc_limits *l)
{
	l->max_message_bytes = DC_DEFAULT_MAX_MESSAGE_BYTES;
	l->max_report_bytes = DC_DEFAULT_MAX_REPORT_BYTES;
	l->max_ratio = DC_DEFAULT_MAX_RATIO;
	l->max_records = DC_DEFAULT_MAX_RECORDS;
	l->max_members = DC_DEFAULT_MAX_MEMBERS;
	l->max_nesting = DC_DEFAULT_MAX_NESTING;
	l->max_reports = DC_DEFAULT_MAX_REPORTS;
	l->max_unpacked_bytes = DC_DEFAULT_MAX_UNPACKED_BYTES;
	l->keep_failure_body = 0;
}
