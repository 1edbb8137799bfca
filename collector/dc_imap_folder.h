/*
 * dc_imap_folder.h - IMAP folder names: modified UTF-7 (RFC 3501 section
 * 5.1.3) both ways and folder comparison.  Pure functions, no session;
 * dc_imap.h includes this header, so callers of dc_imap see them too.
 */
#ifndef DC_IMAP_FOLDER_H
#define DC_IMAP_FOLDER_H

#include <stdbool.h>

#include "dc_error.h"

/* Encodes a UTF-8 folder name ("/" separated) as an IMAP quoted string for a
 * server whose separator is sep: modified UTF-7, quoted and escaped.  Returns
 * a new string owned by the caller, or NULL with err set (DC_ECONFIG for
 * control characters or invalid UTF-8, DC_ENOMEM). */
char *dc_imap_quote_folder(const char *folder, char sep, dc_err *err);

/* Decodes a folder name as an IMAP server sends it (unquoted, modified UTF-7
 * of RFC 3501 section 5.1.3, levels split by sep) into UTF-8 with "/" between
 * levels: the inverse of dc_imap_quote_folder.  Strict: 8-bit or control
 * characters, a bad base64 character, a missing "-", a lone surrogate, bits
 * left over, encoded printable ASCII or two adjacent encoded runs are
 * DC_EIMAP; names longer than DC_MAX_IMAP_LINE too.  Returns a new string
 * owned by the caller, or NULL with err set. */
char *dc_imap_decode_folder(const char *name, char sep, dc_err *err);

/* True when folder names a and b (UTF-8, "/" levels) are the same: INBOX
 * (and its sub-levels' first level) in any case (RFC 3501 5.1), the rest
 * exactly. */
bool dc_imap_same_folder(const char *a, const char *b);

#endif
