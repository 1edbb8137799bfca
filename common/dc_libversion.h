/*
 * dc_libversion.h - the run-time version of a library the program links,
 * as the loaded copy reports it (not the headers it was built against):
 * what `dmarc-collector --version` prints for bug reports.
 *
 * Each layer reports the libraries it owns through its own function, so
 * only the module that links a library calls into it:
 *   parser/   dc_mime_libversions (GMime), dc_xml_libversions (libxml2),
 *             dc_unpack_libversions (libzip, zlib), dc_tlsrpt_libversions (json-c)
 *   storage/  dc_pg_libversions (libpq)
 *   collector dc_imap_libversions (libcurl with its TLS library)
 *   resolve/  dc_resolver_libversions (c-ares, libpsl),
 *             dc_ipdb_libversions (libmaxminddb)
 * Each fills at most max entries of v and returns how many it filled.
 */
#ifndef DC_LIBVERSION_H
#define DC_LIBVERSION_H

#include <stddef.h>

#define DC_LIBVERSION_MAX 96 /* "7.88.1 (OpenSSL/3.0.17)" and the like */

typedef struct dc_libversion {
	const char *name;                /* "libxml2", a static string */
	char version[DC_LIBVERSION_MAX]; /* "2.9.14" */
} dc_libversion;

#endif
