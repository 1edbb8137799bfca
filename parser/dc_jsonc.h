/*
 * dc_jsonc.h - the run-time version of json-c, which the parser links for
 * SMTP TLS reports (dc_tlsrpt.c), for `dmarc-collector --version`
 * (dc_libversion.h).  A file of its own so the TLS report parser stays
 * about TLS reports.
 */
#ifndef DC_JSONC_H
#define DC_JSONC_H

#include <stddef.h>

#include "dc_libversion.h"

/* json-c's version as the loaded library reports it (json_c_version()). */
size_t dc_jsonc_libversions(dc_libversion *v, size_t max);

#endif
