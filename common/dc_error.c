/*
 * dc_error.c - text for dc_code values and the one-line error record.
 */
#include "dc_error.h"

#include <stdio.h>
#include <string.h>

const char *
dc_code_kind(dc_code code)
{
	switch (code) {
	case DC_OK: return "none";
	case DC_EDB:
	case DC_EDBREFUSED: return "database";
	case DC_EIMAP: return "imap";
	case DC_EAUTH: return "auth";
	case DC_ETLS: return "tls";
	case DC_EUSAGE:
	case DC_ECONFIG: return "config";
	case DC_EINTERRUPTED: return "interrupted";
	case DC_ENOMEM:
	case DC_EIO: return "resource";
	default: return "other";
	}
}

const char *
dc_strerror(dc_code code)
{
	switch (code) {
	case DC_OK: return "success";
	case DC_ENOMEM: return "out of memory";
	case DC_EIO: return "input/output error";
	case DC_EUSAGE: return "usage error";
	case DC_ECONFIG: return "configuration error";
	case DC_EFORMAT: return "unrecognised format";
	case DC_ENOREPORT: return "no aggregate report found";
	case DC_EMIME: return "unusable MIME structure";
	case DC_EZIP: return "corrupt zip archive";
	case DC_EGZIP: return "corrupt gzip stream";
	case DC_EXML: return "XML not well-formed";
	case DC_ESCHEMA: return "not a valid aggregate report";
	case DC_ETOOBIG_MESSAGE: return "message too large";
	case DC_ETOOBIG_REPORT: return "decompressed report too large";
	case DC_ERATIO: return "decompression ratio too high";
	case DC_ETOOMANY_RECORDS: return "too many records";
	case DC_ETOODEEP: return "nesting too deep";
	case DC_ETOOLONG: return "field too long";
	case DC_EDB: return "database error";
	case DC_EIMAP: return "IMAP error";
	case DC_EAUTH: return "authentication failed";
	case DC_ETLS: return "TLS error";
	case DC_EDNS: return "DNS error";
	case DC_EINTERRUPTED: return "interrupted";
	case DC_SKIP: return "skipped";
	case DC_EDBREFUSED: return "database refused the statement";
	case DC_EINPUT_LIMIT: return "input over a per-input limit";
	}
	return "unknown error";
}

dc_code
dc_err_set(dc_err *err, dc_code code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	/* one line: newlines from foreign messages (libxml2, libpq) become spaces */
	for (char *p = err->msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	for (size_t n = strlen(err->msg); n > 0 && err->msg[n - 1] == ' '; n--)
		err->msg[n - 1] = '\0';
	return code;
}

dc_code
dc_err_firstv(dc_err *first, dc_err *err, dc_code code, const char *fmt, va_list ap)
{
	if (first->code == DC_OK) {
		first->code = code;
		vsnprintf(first->msg, sizeof(first->msg), fmt, ap);
	}
	if (err != NULL)
		*err = *first;
	return first->code;
}

void
dc_err_clear(dc_err *err)
{
	if (err == NULL)
		return;
	err->code = DC_OK;
	err->msg[0] = '\0';
}

const char *
dc_err_text(const dc_err *err)
{
	if (err == NULL)
		return "";
	return err->msg[0] ? err->msg : dc_strerror(err->code);
}
