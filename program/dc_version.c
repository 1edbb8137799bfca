/*
 * dc_version.c - the --version text (dc_version.h).
 *
 * The only file that includes the generated dc_build_version.h, so a new
 * git description recompiles this file and relinks the program, nothing
 * else.  The library versions come from the layer that links each library
 * (dc_libversion.h): the copies loaded at run time, which may be newer than
 * the headers the program was built with.
 */
#include "dc_version.h"

#include "dc_build_version.h"
#include "dc_imap.h"
#include "dc_ipdb.h"
#include "dc_libversion.h"
#include "dc_mime.h"
#include "dc_pg.h"
#include "dc_resolver.h"
#include "dc_tlsrpt.h"
#include "dc_unpack.h"
#include "dc_xml.h"

#define N_LIBS 16

void
dc_version_print(FILE *out)
{
	size_t (*const layers[])(dc_libversion *, size_t) = {
		dc_imap_libversions,
		dc_xml_libversions,
		dc_pg_libversions,
		dc_mime_libversions,
		dc_resolver_libversions,
		dc_ipdb_libversions,
		dc_unpack_libversions,
		dc_tlsrpt_libversions,
	};
	dc_libversion libs[N_LIBS] = { 0 };
	size_t n = 0;

	if (DC_GIT_DESCRIBE[0] != '\0')
		fprintf(out, "dmarc-collector %s (git %s)\n", DC_VERSION, DC_GIT_DESCRIBE);
	else
		fprintf(out, "dmarc-collector %s\n", DC_VERSION);
	for (size_t i = 0; i < sizeof(layers) / sizeof(layers[0]); i++)
		n += layers[i](libs + n, N_LIBS - n);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "  %s %s\n", libs[i].name, libs[i].version);
}

const char *
dc_version_string(void)
{
	return DC_VERSION;
}

const char *
dc_version_git(void)
{
	return DC_GIT_DESCRIBE;
}
