/*
 * dc_xml.h - one DMARC aggregate report (RFC 7489 appendix C, RFC 9990) read
 * with libxml2's streaming xmlReader from a pull stream and handed to a sink
 * record by record; memory does not grow with the number of records.
 *
 * No network, no DTD loading, no entity expansion (XML_PARSE_NONET, no
 * XML_PARSE_DTDLOAD/NOENT; a DOCTYPE with entity declarations is rejected).
 */
#ifndef DC_XML_H
#define DC_XML_H

#include "dc_report.h"
#include "dc_libversion.h"

/*
 * Reads one report from rd and calls sink.  Returns DC_OK after report_end
 * returned DC_OK, DC_SKIP when report_begin asked to skip, a parse error
 * (DC_EXML, DC_ESCHEMA, DC_ETOOLONG, DC_ETOOMANY_RECORDS, DC_ETOODEEP, or a
 * read error from rd) with err set, or whatever error a sink callback
 * returned.  Does not call report_abort (the caller does).  origin is passed
 * through to report_begin.
 */
dc_code dc_xml_parse(dc_read_fn rd, void *rctx, const dc_limits *lim, const dc_blob *origin,
	const dc_sink *sink, dc_err *err) DC_WUR;

/* Calls xmlInitParser() once; the program calls this before threads (if any). */
void dc_xml_init(void);

/* libxml2 as loaded (xmlParserVersion, "20914" -> "2.9.14"); dc_libversion.h. */
size_t dc_xml_libversions(dc_libversion *v, size_t max);

#endif
