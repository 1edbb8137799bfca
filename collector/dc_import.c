/*
 * dc_import.c - local files into the store: single messages, mbox files,
 * Maildirs, directory trees and bare reports.
 *
 * Files are mapped read-only (mmap), so a large mbox is never copied and a
 * message over limits.max_message_bytes is rejected from its size alone.
 * mbox (qmail mbox(5), RFC 4155): a file whose first bytes are "From "; a
 * message starts after every line beginning "From " and ends before the next
 * one; one ">" is removed from lines matching ^>+From  (mboxrd, which also
 * reads mboxo files correctly unless they quoted a ">From " line themselves).
 * Maildir (maildir(5)): a directory holding cur/, new/ and tmp/; the files in
 * cur/ and new/ are messages, tmp/ is ignored.  Everything else is handed to
 * dc_extract, which recognises messages, XML, gzip, zlib and zip by their
 * bytes.
 *
 * Deliberately not here: logging (hooks report to the caller), MIME or
 * archive parsing (dc_extract), locking an mbox (we only read it).
 */
#include "dc_import.h"

#include "dc_unpack.h"
#include "dc_utf8.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMPORT_PROGRESS_EVERY 100  /* mbox messages between progress calls */
#define IMPORT_ROLLUP_EVERY   1000 /* inputs between additions to the daily rollups */
#define IMPORT_BATCH          200  /* inputs per transaction (dc_store's batch mode) */

/* ---------------------------------------------------------------- the list */

/* Appends a copy of path to l; DC_OK or DC_ENOMEM. */
static dc_code
list_add(dc_import_list *l, const char *path, dc_err *err)
{
	char *p;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **np = realloc(l->paths, cap * sizeof(*np));

		if (np == NULL)
			return dc_err_set(err, DC_ENOMEM, "out of memory");
		l->paths = np;
		l->cap = cap;
	}
	p = strdup(path);
	if (p == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	l->paths[l->n++] = p;
	return DC_OK;
}

void
dc_import_list_free(dc_import_list *list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < list->n; i++)
		free(list->paths[i]);
	free(list->paths);
	free(list);
}

/* Returns path + "/" + name in a new string, or NULL when out of memory. */
static char *
join(const char *dir, const char *name)
{
	char *s = NULL;
	size_t n = strlen(dir);

	if (asprintf(&s, "%s%s%s", dir, (n > 0 && dir[n - 1] == '/') ? "" : "/", name) < 0)
		return NULL;
	return s;
}

/* True when dir/name is a directory (links followed). */
static bool
is_dir(const char *dir, const char *name)
{
	struct stat sb;
	char *p = join(dir, name);
	bool yes = p != NULL && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);

	free(p);
	return yes;
}

/* True when dir holds cur/, new/ and tmp/ (maildir(5)). */
static bool
is_maildir(const char *dir)
{
	return is_dir(dir, "cur") && is_dir(dir, "new") && is_dir(dir, "tmp");
}

/* scandir filter: false for names starting with "." (also "." and ".."). */
static int
skip_dots(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static dc_code walk(dc_import_list *l, const char *dir, int depth, dc_err *err);

/* Adds the regular files of dir (not recursing); for Maildir's cur/ and new/. */
static dc_code
add_files(dc_import_list *l, const char *dir, dc_err *err)
{
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, skip_dots, alphasort);
	dc_code rc = DC_OK;

	if (n < 0)
		return dc_err_set(err, DC_EUSAGE, "%s: cannot read directory: %s", dir, strerror(errno));
	for (int i = 0; i < n; i++) {
		struct stat sb;
		char *p = join(dir, ents[i]->d_name);

		if (p == NULL && rc == DC_OK)
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		if (rc == DC_OK && stat(p, &sb) == 0 && S_ISREG(sb.st_mode))
			rc = list_add(l, p, err);
		free(p);
		free(ents[i]);
	}
	free(ents);
	return rc;
}

/* Adds every input under dir: a Maildir's messages, or the tree's files. */
static dc_code
walk(dc_import_list *l, const char *dir, int depth, dc_err *err)
{
	struct dirent **ents = NULL;
	dc_code rc = DC_OK;
	int n;

	if (depth > DC_MAX_IMPORT_DEPTH)
		return dc_err_set(
			err, DC_EUSAGE, "%s: directories nested deeper than %d", dir, DC_MAX_IMPORT_DEPTH);
	if (is_maildir(dir)) {
		char *cur = join(dir, "cur"), *nw = join(dir, "new");

		if (cur == NULL || nw == NULL)
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		if (rc == DC_OK)
			rc = add_files(l, cur, err);
		if (rc == DC_OK)
			rc = add_files(l, nw, err);
		free(cur);
		free(nw);
		return rc;
	}
	n = scandir(dir, &ents, skip_dots, alphasort);
	if (n < 0)
		return dc_err_set(err, DC_EUSAGE, "%s: cannot read directory: %s", dir, strerror(errno));
	for (int i = 0; i < n; i++) {
		struct stat lsb, sb;
		char *p = join(dir, ents[i]->d_name);

		if (p == NULL && rc == DC_OK)
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		if (rc == DC_OK && lstat(p, &lsb) == 0) {
			if (S_ISDIR(lsb.st_mode))
				rc = walk(l, p, depth + 1, err);
			else if (S_ISREG(lsb.st_mode) ||
				(S_ISLNK(lsb.st_mode) && stat(p, &sb) == 0 && S_ISREG(sb.st_mode)))
				rc = list_add(l, p, err);
		}
		free(p);
		free(ents[i]);
	}
	free(ents);
	return rc;
}

dc_code
dc_import_collect(char *const *paths, size_t n, dc_import_list **out, dc_err *err)
{
	dc_import_list *l = calloc(1, sizeof(*l));
	dc_code rc = DC_OK;

	*out = NULL;
	if (l == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	for (size_t i = 0; i < n && rc == DC_OK; i++) {
		struct stat sb;

		if (stat(paths[i], &sb) != 0)
			rc = dc_err_set(err, DC_EUSAGE, "%s: %s", paths[i], strerror(errno));
		else if (S_ISDIR(sb.st_mode))
			rc = walk(l, paths[i], 0, err);
		else if (S_ISREG(sb.st_mode))
			rc = list_add(l, paths[i], err);
		else
			rc = dc_err_set(err, DC_EUSAGE, "%s: not a file or directory", paths[i]);
	}
	if (rc != DC_OK) {
		dc_import_list_free(l);
		return rc;
	}
	*out = l;
	return DC_OK;
}

/* ---------------------------------------------------------------- one input */

/* What one file's inputs share. */
typedef struct importer {
	dc_store *st;
	const dc_limits *lim;
	const dc_import_hooks *hooks;
	dc_import_stats *stats;
	dc_extract_cb store_cb;  /* dc_store_callbacks(st) */
	const char *where;       /* path or path#N of the current input */
	const dc_origin *origin; /* the current input's, while dc_extract runs */
	/* the open batch (one transaction for several files' inputs) */
	bool in_batch;
	uint64_t batch_inputs;
	dc_import_stats before; /* the stats when it began */
	char **held;            /* "where\0reason" of its rejections, told after the commit */
	size_t n_held, cap_held;
} importer;

/* Tells the hook (if any) about a rejection at im->where; inside a batch
 * only once it is committed (a replayed batch must not tell twice). */
static void
reject_hook(importer *im, const char *reason)
{
	size_t lw, lr;
	char *h;

	if (im->hooks == NULL || im->hooks->rejected == NULL)
		return;
	if (!im->in_batch) {
		im->hooks->rejected(im->hooks->ctx, im->where, reason);
		return;
	}
	lw = strlen(im->where);
	lr = strlen(reason);
	if (im->n_held == im->cap_held) {
		size_t cap = im->cap_held ? 2 * im->cap_held : 16;
		char **p = realloc(im->held, cap * sizeof(*p));
		if (p == NULL)
			goto now;
		im->held = p;
		im->cap_held = cap;
	}
	if ((h = malloc(lw + lr + 2)) == NULL)
		goto now;
	memcpy(h, im->where, lw + 1);
	memcpy(h + lw + 1, reason, lr + 1);
	im->held[im->n_held++] = h;
	return;
now: /* out of memory: told now rather than not at all */
	im->hooks->rejected(im->hooks->ctx, im->where, reason);
}

/* Tells (tell) or forgets the rejections held for the batch. */
static void
release_held(importer *im, bool tell)
{
	for (size_t i = 0; i < im->n_held; i++) {
		const char *w = im->held[i];

		if (tell)
			im->hooks->rejected(im->hooks->ctx, w, w + strlen(w) + 1);
		free(im->held[i]);
	}
	im->n_held = 0;
}

/* Writes "[NAME (PATH): |PATH: ]stage: why" into buf: the attachment's name when
 * it is not the file's own, and where inside it the unit was. */
static void
reason_text(
	char *buf, size_t cap, const char *where, const char *stage, const dc_err *why, const dc_blob *unit)
{
	const char *base = strrchr(where, '/');
	const char *name = unit ? unit->name : NULL;
	const char *path = unit ? unit->path : NULL;

	base = base ? base + 1 : where;
	if (name != NULL && strcmp(name, base) == 0)
		name = NULL;
	if (name != NULL && path != NULL)
		snprintf(buf, cap, "%s (%s): %s: %s", name, path, stage, dc_err_text(why));
	else if (name != NULL || path != NULL)
		snprintf(buf, cap, "%s: %s: %s", name ? name : path, stage, dc_err_text(why));
	else
		snprintf(buf, cap, "%s: %s", stage, dc_err_text(why));
}

/* dc_extract's failure callback: stores the failure, then tells the hook. */
static dc_code
on_failure(void *ctx, const char *stage, const dc_err *why, const dc_blob *unit, dc_err *err)
{
	importer *im = ctx;
	char reason[DC_ERR_MSG_MAX + 600];
	dc_code rc = DC_OK;

	if (im->store_cb.failure != NULL)
		rc = im->store_cb.failure(im->store_cb.failure_ctx, stage, why, unit, err);
	if (rc != DC_OK)
		return rc;
	reason_text(reason, sizeof(reason), im->where, stage, why, unit);
	reject_hook(im, reason);
	return DC_OK;
}

/* Records a rejection found here (not by dc_extract): one failure row with
 * content (NULL: none kept), one hook call. */
static dc_code
reject(importer *im, const char *stage, const char *why, const uint8_t *content, size_t len, dc_err *err)
{
	char reason[DC_ERR_MSG_MAX + 64];
	dc_code rc = dc_store_failure(im->st, stage, why, content, len, err);

	if (rc != DC_OK)
		return rc;
	im->stats->rejected++;
	snprintf(reason, sizeof(reason), "%s: %s", stage, why);
	reject_hook(im, reason);
	return DC_OK;
}

/* dc_extract's message callback: the input is a message, and its Message-ID
 * (from the MIME parse, the same value a poll stores) joins the origin of
 * what it yields. */
static dc_code
on_message(void *ctx, const dc_mime_head *head, dc_err *err)
{
	importer *im = ctx;
	dc_origin o = *im->origin;

	o.message_id = head->message_id;
	return dc_store_set_origin(im->st, &o, err);
}

/* Imports one message or bare report data[0..len) found at im->where.  A
 * bare XML file is capped by max_report_bytes (it is the report itself, and
 * real ones reach 180 MB; dc_extract applies the same rule), anything else
 * by max_message_bytes. */
static dc_code
import_one(importer *im, const uint8_t *data, size_t len, const char *name, dc_err *err)
{
	uint64_t cap = dc_unpack_sniff(data, len < 65536 ? len : 65536) == DC_KIND_XML ?
		im->lim->max_report_bytes :
		im->lim->max_message_bytes;
	dc_extract_stats xs = { 0 };
	dc_extract_cb cb = im->store_cb;
	char *file_name = dc_utf8_sanitize(im->where, strlen(im->where), "?", 0, NULL);
	dc_origin o = {
		.mailbox = NULL, .uidvalidity = -1, .uid = -1, .message_id = NULL, .file_name = file_name
	};
	dc_code rc;

	if (file_name == NULL) {
		rc = dc_err_set(err, DC_ENOMEM, "out of memory");
		goto out;
	}
	im->stats->inputs++;
	rc = dc_store_set_origin(im->st, &o, err);
	if (rc != DC_OK)
		goto out;
	if (len > cap) {
		char why[160];

		snprintf(why, sizeof(why), "%zu bytes exceed limits.%s (%" PRIu64 ")", len,
			cap == im->lim->max_message_bytes ? "max_message_bytes" : "max_report_bytes", cap);
		rc = reject(im, "limits", why, NULL, 0, err);
		goto out;
	}
	cb.failure = on_failure;
	cb.failure_ctx = im;
	cb.message = on_message;
	cb.message_ctx = im;
	im->origin = &o;
	rc = dc_extract(data, len, name, im->lim, &cb, &xs, err);
	im->origin = NULL;
	im->stats->reports += xs.reports;
	im->stats->duplicates += xs.duplicates;
	im->stats->records += xs.records;
	im->stats->rejected += xs.failures;
	im->stats->tls_reports += xs.tls_reports;
	im->stats->failure_reports += xs.failure_reports;
	if (rc != DC_OK && !dc_extract_is_fatal(rc)) {
		/* not expected from dc_extract; keep the input rather than lose it */
		char why[DC_ERR_MSG_MAX];

		snprintf(why, sizeof(why), "%s", dc_err_text(err));
		rc = reject(im, "extract", why, data, len, err);
	}
out:
	free(file_name);
	return rc;
}

/* Imports message n of an mbox, data[0..len) without its "From " line,
 * undoing mboxrd quoting. */
static dc_code
import_mbox_message(importer *im, const char *path, uint64_t n, const uint8_t *data, size_t len, dc_err *err)
{
	char *where = NULL;
	uint8_t *copy = NULL;
	const uint8_t *msg = data;
	size_t mlen = len;
	dc_code rc;

	if (asprintf(&where, "%s#%" PRIu64, path, n) < 0)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	im->where = where;
	/* a message is followed by the blank line that separates it */
	if (mlen >= 2 && msg[mlen - 1] == '\n' && msg[mlen - 2] == '\n')
		mlen--;
	else if (mlen >= 4 && memcmp(msg + mlen - 4, "\r\n\r\n", 4) == 0)
		mlen -= 2;
	if (mlen <= im->lim->max_message_bytes && memmem(msg, mlen, ">From ", 6) != NULL) {
		size_t o = 0;

		copy = malloc(mlen);
		if (copy == NULL) {
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < mlen;) {
			const uint8_t *eol = memchr(msg + i, '\n', mlen - i);
			size_t ll = eol ? (size_t)(eol - (msg + i)) + 1 : mlen - i;
			size_t k = i, skip;

			while (k < i + ll && msg[k] == '>')
				k++;
			skip = (k > i && i + ll - k >= 5 && memcmp(msg + k, "From ", 5) == 0) ? 1 : 0;
			memcpy(copy + o, msg + i + skip, ll - skip);
			o += ll - skip;
			i += ll;
		}
		msg = copy;
		mlen = o;
	}
	rc = import_one(im, msg, mlen, NULL, err);
out:
	im->where = NULL;
	free(copy);
	free(where);
	return rc;
}

/* Splits an mbox into messages and imports each. */
static dc_code
import_mbox(importer *im, const char *path, const uint8_t *data, size_t len, dc_err *err)
{
	size_t pos = 0;
	uint64_t n = 0;
	dc_code rc = DC_OK;

	while (pos < len && rc == DC_OK) {
		/* pos is at a "From " line: the message starts after it */
		const uint8_t *eol = memchr(data + pos, '\n', len - pos);
		size_t start = eol ? (size_t)(eol - data) + 1 : len;
		const uint8_t *next = start < len ? memmem(data + start - 1, len - start + 1, "\nFrom ", 6) :
						    NULL;
		size_t end = next ? (size_t)(next - data) + 1 : len;

		if (im->hooks != NULL && im->hooks->stop != NULL && *im->hooks->stop)
			return dc_err_set(err, DC_EINTERRUPTED, "interrupted before message %" PRIu64, n + 1);
		rc = import_mbox_message(im, path, ++n, data + start, end - start, err);
		pos = end;
		if (rc == DC_OK && n % IMPORT_PROGRESS_EVERY == 0 && im->hooks && im->hooks->progress)
			im->hooks->progress(im->hooks->ctx, im->stats);
	}
	return rc;
}

/* Imports one file of the list. */
static dc_code
import_file(importer *im, const char *path, dc_err *err)
{
	struct stat sb;
	uint8_t *map = NULL;
	size_t len = 0;
	const char *base = strrchr(path, '/');
	int fd;
	dc_code rc = DC_OK;

	im->where = path;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		int e = fd < 0 ? errno : 0;
		char why[300];
		dc_origin o = { .uidvalidity = -1, .uid = -1 };
		char *fname = dc_utf8_sanitize(path, strlen(path), "?", 0, NULL);

		snprintf(why, sizeof(why), "cannot read: %s", e ? strerror(e) : "not a regular file");
		o.file_name = fname;
		im->stats->inputs++;
		rc = fname == NULL ? dc_err_set(err, DC_ENOMEM, "out of memory") :
				     dc_store_set_origin(im->st, &o, err);
		if (rc == DC_OK)
			rc = reject(im, "read", why, NULL, 0, err);
		free(fname);
		goto out;
	}
	len = (size_t)sb.st_size;
	if (len > 0) {
		map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			map = NULL;
			rc = dc_err_set(err, DC_EIO, "%s: mmap: %s", path, strerror(errno));
			goto out;
		}
		(void)madvise(map, len, MADV_SEQUENTIAL);
	}
	if (len >= 5 && memcmp(map, "From ", 5) == 0)
		rc = import_mbox(im, path, map, len, err);
	else
		rc = import_one(im, map ? map : (const uint8_t *)"", len, base ? base + 1 : path, err);
out:
	if (map != NULL)
		munmap(map, len);
	if (fd >= 0)
		close(fd);
	im->where = NULL;
	return rc;
}

/* Prefixes err's message with the file it is about; returns rc. */
static dc_code
file_error(dc_err *err, dc_code rc, const char *path)
{
	char msg[DC_ERR_MSG_MAX];

	snprintf(msg, sizeof(msg), "%s", dc_err_text(err));
	return dc_err_set(err, rc, "%s: %s", path, msg);
}

/* dc_store_batch_commit's callback: a report counted as stored was a
 * duplicate. */
static void
on_duplicate(void *ctx, int64_t uid, uint64_t records)
{
	importer *im = ctx;

	(void)uid;
	im->stats->reports--;
	im->stats->duplicates++;
	im->stats->records -= records;
}

/*
 * Commits the open batch, which holds the inputs of files first..last.  If
 * the server refused anything in it (DC_ESCHEMA), nothing of it was kept:
 * those files are imported again one report per transaction, so that only
 * the bad report is rejected.  rc is the outcome of the batch's last file;
 * returns the outcome of the whole.
 */
static dc_code
end_batch(importer *im, const dc_import_list *list, size_t first, size_t last, dc_code rc, dc_err *err)
{
	dc_err e2;
	dc_code rc2;

	im->in_batch = false;
	dc_err_clear(&e2);
	rc2 = dc_store_batch_commit(im->st, on_duplicate, im, &e2);
	if (rc2 == DC_OK) {
		release_held(im, true);
		return rc;
	}
	release_held(im, false);
	if (rc2 != DC_ESCHEMA) {
		if (rc == DC_OK || !dc_extract_is_fatal(rc)) {
			*err = e2;
			rc = rc2;
		}
		return rc;
	}
	/* again, report by report */
	*im->stats = im->before;
	rc = DC_OK;
	for (size_t i = first; i <= last && rc == DC_OK; i++) {
		rc = import_file(im, list->paths[i], err);
		if (rc == DC_OK)
			im->stats->files++;
		else
			rc = file_error(err, rc, list->paths[i]);
	}
	return rc;
}

dc_code
dc_import_run(dc_store *st, const dc_limits *lim, const dc_import_list *list, const dc_import_hooks *hooks,
	dc_import_stats *stats, dc_err *err)
{
	importer im = { .st = st, .lim = lim, .hooks = hooks, .stats = stats };
	uint64_t rolled = stats->inputs;
	size_t first = 0, last = 0;
	dc_code rc;
	dc_err e2;

	im.store_cb = dc_store_callbacks(st);
	stats->files_total += list->n;
	/* the months ahead have their partitions before the first batch; the
	 * rows of other months wait in the DEFAULT partition until the end */
	if ((rc = dc_store_partitions(st, err)) != DC_OK)
		return rc;
	/* the daily rollups once per IMPORT_ROLLUP_EVERY inputs, not at each
	 * report's COMMIT (sql/007) */
	if ((rc = dc_store_defer_rollups(st, true, err)) != DC_OK)
		return rc;
	for (size_t i = 0; i < list->n && rc == DC_OK; i++) {
		if (hooks != NULL && hooks->stop != NULL && *hooks->stop) {
			rc = dc_err_set(err, DC_EINTERRUPTED, "interrupted before %s", list->paths[i]);
			break;
		}
		if (!im.in_batch) {
			if ((rc = dc_store_batch_begin(st, err)) != DC_OK)
				break;
			im.in_batch = true;
			im.before = *stats;
			first = i;
		}
		rc = import_file(&im, list->paths[i], err);
		last = i;
		if (rc != DC_OK)
			rc = file_error(err, rc, list->paths[i]);
		else
			stats->files++;
		/* a batch ends after IMPORT_BATCH inputs, at the last file, or
		 * when a file failed (a failed statement may be why: end_batch
		 * then imports the batch again report by report) */
		if (rc != DC_OK || i + 1 == list->n || stats->inputs - im.before.inputs >= IMPORT_BATCH)
			rc = end_batch(&im, list, first, i, rc, err);
		if (rc == DC_OK && stats->inputs - rolled >= IMPORT_ROLLUP_EVERY) {
			rolled = stats->inputs;
			rc = dc_store_rollup_pending(st, NULL, err);
		}
		if (hooks != NULL && hooks->progress != NULL)
			hooks->progress(hooks->ctx, stats);
	}
	if (im.in_batch) { /* stopped by the signal between two files */
		dc_code r2 = end_batch(&im, list, first, last, DC_OK, &e2);

		if (r2 != DC_OK) {
			rc = r2;
			*err = e2;
		}
	}
	free(im.held);
	/* what was stored, also before an interruption */
	rc = dc_store_rollup_end(st, rc, err);
	/* partitions for the months the files brought (their rows move out of
	 * DEFAULT), unless the database or memory failed */
	if (rc != DC_EDB && rc != DC_EDBREFUSED && rc != DC_ENOMEM) {
		dc_code r2 = dc_store_partitions(st, rc == DC_OK ? err : &e2);

		if (rc == DC_OK)
			rc = r2;
	}
	return rc;
}
