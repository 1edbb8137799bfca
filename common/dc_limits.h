/*
 * dc_limits.h - every hard cap on untrusted input, in one place.
 *
 * Two kinds: compile-time caps on single fields and nesting (DC_MAX_*), which
 * bound memory per token, and the user-settable limits of SPEC section 7
 * (struct dc_limits), whose defaults are DC_DEFAULT_*.
 */
#ifndef DC_LIMITS_H
#define DC_LIMITS_H

#include <stddef.h>
#include <stdint.h>

/* [limits] defaults, SPEC section 7 */
#define DC_DEFAULT_MAX_MESSAGE_BYTES (64ULL * 1024 * 1024)
#define DC_DEFAULT_MAX_REPORT_BYTES  (1024ULL * 1024 * 1024)
#define DC_DEFAULT_MAX_RATIO         250
#define DC_DEFAULT_MAX_RECORDS       10000000ULL
/* Per input (one message or file), over all its containers (issue 9).  A
 * real report e-mail has one attachment holding one report; a few dozen
 * is generous.  An input over one of these is rejected as a whole. */
#define DC_DEFAULT_MAX_MEMBERS        50                      /* zip members + report-like MIME parts */
#define DC_DEFAULT_MAX_NESTING        4                       /* archives in archives (zip > gzip > ...) */
#define DC_DEFAULT_MAX_REPORTS        50                      /* XML reports parsed */
#define DC_DEFAULT_MAX_UNPACKED_BYTES (1024ULL * 1024 * 1024) /* decompressed, all layers */
/* Hard ceilings of the settable per-input caps (config range checks). */
#define DC_MAX_MEMBERS_CEILING 100000
#define DC_MAX_NESTING_CEILING 16
#define DC_MAX_REPORTS_CEILING 100000

/* Decompression ratio is only judged once this many bytes came out, so tiny
 * highly-compressible reports (a 300-byte XML in a 200-byte gzip) pass. */
#define DC_RATIO_GRACE_BYTES (1024 * 1024)

/* Hard caps that are not configurable. */
#define DC_MAX_FIELD_BYTES   4096   /* one XML text value (domain, reason comment...) */
#define DC_MAX_AUTH_RESULTS  64     /* dkim or spf results in one record */
#define DC_MAX_REASONS       16     /* policy_evaluated/reason elements in one record */
#define DC_MAX_XML_DEPTH     32     /* element nesting in a report */
#define DC_MAX_MIME_DEPTH    16     /* message/rfc822 and multipart nesting */
#define DC_MAX_REPORT_ERRORS 4096   /* bytes of report <error> text + repair notes kept */
#define DC_MAX_IMAP_LINE     65536  /* one IMAP response line (literals apart) */
#define DC_MAX_IMAP_LIST     100000 /* messages listed by one IMAP UID FETCH (UID RFC822.SIZE) */
#define DC_MAX_IMAP_DRAIN \
	4                            /* a BODY[] literal up to this many times max_message_bytes
                                         is read and dropped; a larger one ends the session */
#define DC_IMAP_MIN_BYTES_PER_S 1024 /* an IMAP answer's least rate, over each 2 x timeout */
#define DC_MAX_IMAP_STATUS      512  /* tagged IMAP status text kept for the caller */
#define DC_MAX_MESSAGE_ID       998  /* a Message-ID kept, in bytes (RFC 5322 line length) */
#define DC_MAX_LISTING          400  /* bytes of a "what the message held" list in a failure */
#define DC_MAX_XML_NAME         64   /* an element name the XML repair lexer looks at */
#define DC_MAX_XML_STRINGS \
	(4 * 1024 * 1024)                         /* one record's (or report header's) values;
                                         the caps above bound them to about 2.3 MB */
#define DC_MAX_IMPORT_DEPTH  64                   /* directory nesting walked by import */
#define DC_MAX_SECRET_FILE   4096                 /* bytes read from a password_file */
#define DC_MAX_OAUTH2_TOKEN  16384                /* bytes read from oauth2_token_command */
#define DC_MAX_PTR_NAMES     8                    /* PTR names examined per IP */
#define DC_MAX_FORWARD_ADDRS 64                   /* forward addresses examined per PTR name */
#define DC_MAX_DNS_NAME      253                  /* RFC 1035 section 2.3.4, without the final dot */
#define DC_MAX_DNS_LABEL     63                   /* one label of a DNS name, RFC 1035 section 2.3.4 */
#define DC_MAX_AS_NAME       256                  /* bytes of an AS name kept from an IP database */
#define DC_MAX_BYTEA         ((size_t)1000 << 20) /* under PostgreSQL's 1 GB field limit */
/* SMTP TLS reports (RFC 8460, parser/dc_tlsrpt.c): parsed whole with json-c,
 * so their own caps, well above any real report (a few kB) */
#define DC_MAX_TLSRPT_BYTES    (16u << 20)        /* JSON bytes (also at most max_report_bytes) */
#define DC_MAX_JSON_DEPTH      16                 /* nesting; a TLS report needs 5 */
#define DC_MAX_TLSRPT_POLICIES 10000              /* policies in one report */
#define DC_MAX_TLSRPT_FAILURES 100000             /* failure-details in one report, all policies */
#define DC_MAX_TLSRPT_STRINGS  1000               /* policy-string or mx-host entries in one policy */
#define DC_MAX_TLSRPT_COUNT    1000000000000000LL /* a session count (10^15) */

/* Caps of the parser layer, named after the module that applies them. */
/* GMime matches every line against every open boundary, so a message with
 * thousands of nested multiparts costs seconds; more "boundary=" parameters
 * than this are refused (DC_ETOODEEP) before parsing. */
#define DC_MIME_MAX_BOUNDARIES 1000
#define DC_MIME_NOTES_MAX      256  /* bytes of one message's MIME repair notes */
#define DC_UNPACK_PATH_MAX     1024 /* a "zip:a.xml > gzip" path kept; longer ones cut with "..." */
#define DC_UNPACK_NOTES_MAX    512  /* bytes of repair notes one unpacked stream gathers */
#define DC_MAX_PG_ARRAY        ((size_t)1000 << 20) /* one array-literal parameter, likewise */
#define DC_MAX_STORE_BUF \
	((size_t)1 << 30) /* one storage buffer (COPY text, JSON rows,
                                                        arrays): a backstop, the writer sends its
                                                        rows long before (8 MB chunks and batches) */

typedef struct dc_limits {
	uint64_t max_message_bytes;
	uint64_t max_report_bytes;
	uint64_t max_ratio;
	uint64_t max_records;
	uint64_t max_members;        /* per input: zip members and report-like MIME parts */
	uint64_t max_nesting;        /* per input: archive layers nested */
	uint64_t max_reports;        /* per input: XML reports parsed */
	uint64_t max_unpacked_bytes; /* per input: decompressed bytes of every layer */
	/* Not a limit but the parser's one setting ([failure_reports] keep_body):
	 * nonzero hands a failure report's original body on (dc_arf). */
	int keep_failure_body;
} dc_limits;

/* Fills l with the defaults above. */
void dc_limits_default(dc_limits *l);

#endif
