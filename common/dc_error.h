/*
 * dc_error.h - the project's one error enum and the error record that travels
 * beside it.
 *
 * Every fallible function returns a dc_code (0 = DC_OK) and, on failure, fills
 * a caller-provided dc_err with one short factual line, set once where the
 * failure happens.  New codes go at the end only; dc_strerror() is a switch
 * with no default so the compiler catches a code without text.
 *
 * Deliberately not here: logging, exit codes (the program maps codes to exit
 * statuses), or any global state.
 */
#ifndef DC_ERROR_H
#define DC_ERROR_H

#include <stdarg.h>

#define DC_WUR __attribute__((warn_unused_result))

typedef enum dc_code {
	DC_OK = 0,
	DC_ENOMEM,           /* allocation failed */
	DC_EIO,              /* local file or system call failed */
	DC_EUSAGE,           /* bad command line */
	DC_ECONFIG,          /* bad configuration file or value */
	DC_EFORMAT,          /* bytes are not any format we read */
	DC_ENOREPORT,        /* a message held no aggregate report */
	DC_EMIME,            /* MIME structure unusable */
	DC_EZIP,             /* zip archive corrupt or unreadable */
	DC_EGZIP,            /* gzip/zlib stream corrupt */
	DC_EXML,             /* XML not well-formed */
	DC_ESCHEMA,          /* well-formed XML that is not a usable aggregate report */
	DC_ETOOBIG_MESSAGE,  /* message larger than limits.max_message_bytes */
	DC_ETOOBIG_REPORT,   /* decompressed report larger than limits.max_report_bytes */
	DC_ERATIO,           /* decompression ratio above limits.max_ratio (a bomb) */
	DC_ETOOMANY_RECORDS, /* more than limits.max_records records */
	DC_ETOODEEP,         /* nesting (MIME, archives, XML) deeper than allowed */
	DC_ETOOLONG,         /* one field or token longer than its hard cap */
	DC_EDB,              /* database unreachable, gone, or failed in a way that passes */
	DC_EIMAP,            /* IMAP server unreachable or refused a command */
	DC_EAUTH,            /* login refused */
	DC_ETLS,             /* TLS negotiation or certificate verification failed */
	DC_EDNS,             /* DNS resolver failed */
	DC_EINTERRUPTED,     /* stopped by a signal; nothing half-done */
	DC_SKIP,             /* not an error: a sink asks to skip the rest (duplicate) */
	DC_EDBREFUSED,       /* the database answered and refused: privilege, missing object,
	                        login; stays until an administrator acts (storage/dc_pg.h) */
	DC_EINPUT_LIMIT,     /* one input over a per-input cap (members, nesting, reports,
	                      * decompressed bytes): rejected as a whole */
} dc_code;

/* Bounded one-line message; code mirrors the return value. */
#define DC_ERR_MSG_MAX 512
typedef struct dc_err {
	dc_code code;
	char msg[DC_ERR_MSG_MAX];
} dc_err;

/* Returns a static, never-NULL description of code. */
const char *dc_strerror(dc_code code);

/* Returns the kind of a poll failure, a static never-NULL label for metrics and
 * the run log: "database", "imap", "auth", "tls", "config", "interrupted",
 * "resource" (memory, local I/O) or "other" (DC_OK gives "none"). */
const char *dc_code_kind(dc_code code);

/* Sets err (when err is not NULL) to code and the printf-formatted message;
 * returns code so callers can write `return dc_err_set(...)`. */
dc_code dc_err_set(dc_err *err, dc_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Sticky first failure: when *first holds no failure yet, sets it to code
 * and the vprintf-formatted message (as formatted, not joined to one line);
 * then copies *first to err (when err is not NULL).  Returns first->code,
 * the first failure's code. */
dc_code dc_err_firstv(dc_err *first, dc_err *err, dc_code code, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

/* Clears err to DC_OK with an empty message. */
void dc_err_clear(dc_err *err);

/* A dc_err's text: its message, or dc_strerror(code) when the message is empty. */
const char *dc_err_text(const dc_err *err);

#endif
