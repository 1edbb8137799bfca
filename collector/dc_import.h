/*
 * dc_import.h - `import PATH...`: local files into the store.
 *
 * Inputs: single messages (.eml), mbox files (first line "From "; mboxrd
 * ">From " quoting undone), Maildirs (a directory with cur/ new/ tmp/: the
 * messages in cur/ and new/), directory trees (recursed, dot files skipped)
 * and bare reports (.xml, .json, .gz, .zip, zlib), which dc_extract recognises by
 * their bytes.  Each message or file is one input; each rejected unit is one
 * dmarc.failures row and one call of hooks->rejected.
 */
#ifndef DC_IMPORT_H
#define DC_IMPORT_H

#include <signal.h>
#include <stdint.h>

#include "dc_store.h"

/* The files to import, found by dc_import_collect, in a stable order. */
typedef struct dc_import_list {
	char **paths;
	size_t n;
	size_t cap;
} dc_import_list;

typedef struct dc_import_stats {
	uint64_t files_total;     /* files in the list */
	uint64_t files;           /* files done */
	uint64_t inputs;          /* messages and files handed on (each mbox message counts) */
	uint64_t reports;         /* reports stored */
	uint64_t duplicates;      /* reports already stored */
	uint64_t records;         /* records of the reports stored */
	uint64_t rejected;        /* rows written to dmarc.failures */
	uint64_t tls_reports;     /* SMTP TLS reports stored, duplicates included */
	uint64_t failure_reports; /* DMARC failure reports stored, duplicates included */
} dc_import_stats;

typedef struct dc_import_hooks {
	void *ctx;
	/* One rejected unit: where is the path (with "#N" for mbox message N),
	 * reason one line ("stage: why", with the attachment's name when there
	 * is one).  May be NULL. */
	void (*rejected)(void *ctx, const char *where, const char *reason);
	/* Called after each file and every 100 mbox messages.  May be NULL. */
	void (*progress)(void *ctx, const dc_import_stats *s);
	/* When not NULL and nonzero (set by a signal handler), the import stops
	 * before the next input with DC_EINTERRUPTED; the input being imported
	 * is finished first. */
	const volatile sig_atomic_t *stop;
} dc_import_hooks;

/*
 * Expands paths (files, directories, Maildirs) into *out (caller frees with
 * dc_import_list_free).  Symbolic links named on the command line are
 * followed; inside a tree, links to files are followed and links to
 * directories are not (no loops).  Returns DC_EUSAGE naming the path when a
 * named path does not exist, is not a file or directory, or a directory
 * cannot be read; nothing has been imported then.
 */
dc_code dc_import_collect(char *const *paths, size_t n, dc_import_list **out, dc_err *err) DC_WUR;
void dc_import_list_free(dc_import_list *list);

/*
 * Imports every file of list into st.  Each input is read with a cap of
 * lim->max_message_bytes (a larger one becomes a failure row, stage
 * "limits", without being read); a file that cannot be read becomes a
 * failure row (stage "read", no content).  stats is added to.  Returns DC_OK
 * when every input was stored or recorded as rejected, or a fatal code
 * (dc_extract_is_fatal: the database went away ...) with err set, after
 * which the remaining inputs were not touched.
 */
dc_code dc_import_run(dc_store *st, const dc_limits *lim, const dc_import_list *list,
	const dc_import_hooks *hooks, dc_import_stats *stats, dc_err *err) DC_WUR;

#endif
