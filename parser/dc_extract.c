/*
 * dc_extract.c - every report in one input, found by its bytes: ties dc_mime
 * (message leaves), dc_unpack (containers, limits) and dc_xml (the report)
 * together, and turns every outcome into exactly one of: a stored report, a
 * duplicate, or a failure handed to cb->failure with the unit as received.
 *
 * Units: a bare input is one unit; in a message each leaf part (after
 * transfer decoding) is one unit.  Leaves whose bytes are no report format
 * (text bodies, images, HTML, XML with another root element, JSON without
 * "report-id" and "policies") are skipped
 * silently; a message that yields no report and no failure at all becomes
 * one failure of its own (stage "mime").  A zip with good and bad members
 * stores the good ones and fails each bad one (path names the member).
 * A message found inside an archive is no unit of its own: what it holds
 * refers to the archive's unit, so that no failure or original is ever a
 * decompressed copy (distinct units are disjoint parts of the input, and
 * their bytes together are at most the input's size).
 *
 * Per input (one dc_extract call): members (zip members and report-like
 * MIME parts), archive nesting, reports and decompressed bytes are counted
 * in one dc_unpack_tally; the first cap exceeded stops the walk and becomes
 * one failure (stage "limits") of the unit in hand; nothing after it is
 * examined or recorded.
 *
 * DMARC failure reports (dc_arf): after a message's leaves were walked, a
 * message that names "feedback-report" is parsed again by dc_arf, which
 * hands each failure report in it (the message itself or one forwarded in
 * a message/rfc822 part) to the sink's failure_report, with the current
 * unit (the message) as its origin and its part number as the path, and
 * each multipart/report of that type that is no usable report to
 * cb->failure (stage "report").  Their feedback and rfc822-headers parts
 * are no units of their own.  A report is never looked for inside a
 * failure report's original.
 *
 * Not here: storage, logging, retries.  See dc_extract.h for the contract.
 */
#include "dc_extract.h"

#include <glib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dc_arf.h"
#include "dc_mime.h"
#include "dc_tlsrpt.h"
#include "dc_unpack.h"
#include "dc_xml.h"

/* Room for the "(N parts: ...)" list in a no-report failure. */
#define PREFIX_MAX DC_UNPACK_PATH_MAX
/* Messages within archives within messages...: a backstop over both caps. */
#define MAX_NEST   (DC_MAX_MIME_DEPTH + DC_MAX_NESTING_CEILING)
#define SHA256_LEN 32

bool
dc_extract_is_fatal(dc_code code)
{
	return code == DC_EDB || code == DC_EDBREFUSED || code == DC_ENOMEM || code == DC_EIO ||
		code == DC_EINTERRUPTED;
}

/* Which stage a failure code belongs to. */
static const struct {
	dc_code code;
	const char *stage;
} stages[] = {
	{ DC_EFORMAT, "unpack" },
	{ DC_EZIP, "unpack" },
	{ DC_EGZIP, "unpack" },
	{ DC_EMIME, "mime" },
	{ DC_ENOREPORT, "mime" },
	{ DC_EXML, "xml" },
	{ DC_ETOOLONG, "xml" },
	{ DC_ESCHEMA, "report" },
	{ DC_ETOOBIG_MESSAGE, "limits" },
	{ DC_ETOOBIG_REPORT, "limits" },
	{ DC_ERATIO, "limits" },
	{ DC_ETOOMANY_RECORDS, "limits" },
	{ DC_ETOODEEP, "limits" },
	{ DC_EINPUT_LIMIT, "limits" },
};

static const char *
stage_of(dc_code code)
{
	for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
		if (stages[i].code == code)
			return stages[i].stage;
	return "unpack";
}

typedef struct xctx {
	const dc_limits *lim;
	const dc_extract_cb *cb;
	dc_extract_stats *stats;
	int nest;
	int depth; /* archive layers above the message being walked */
	/* the unit failures refer to */
	const uint8_t *unit;
	size_t unit_len;
	const char *unit_name;
	uint8_t unit_sha[SHA256_LEN];
	bool unit_sha_ok;       /* unit_sha is the current unit's */
	unsigned archived;      /* messages-in-archives around: the unit stays */
	const char *prefix;     /* "part 2", "" at the top */
	const char *mime_notes; /* repairs of the message, or NULL */
	/* the message being walked */
	char *listing;
	size_t listed;
	/* the report being parsed */
	bool begun; /* report_begin was called and did not return DC_SKIP */
	bool ended, sink_failed;
	uint64_t records;
	/* the input's caps */
	dc_unpack_tally tally;
	uint64_t reports_seen; /* XML streams handed to the parser */
	bool capped;           /* the one "limits" failure of the input is recorded */
} xctx;

/* The current unit's SHA-256, computed once per unit (the store's content
 * address: one hash per unit, however many reports and failures refer to
 * it). */
static const uint8_t *
unit_digest(xctx *x)
{
	if (!x->unit_sha_ok) {
		GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
		const uint8_t *p = x->unit;
		size_t left = x->unit_len;
		gsize n = SHA256_LEN;

		if (c == NULL)
			return NULL;
		while (left > 0) {
			size_t piece = left > (1u << 30) ? (1u << 30) : left;
			g_checksum_update(c, p, (gssize)piece);
			p += piece;
			left -= piece;
		}
		g_checksum_get_digest(c, x->unit_sha, &n);
		g_checksum_free(c);
		x->unit_sha_ok = true;
	}
	return x->unit_sha;
}

/* Makes data[0..len) the current unit unless the walk is inside a message
 * found in an archive (then the archive's unit stays). */
static void
set_unit(xctx *x, const uint8_t *data, size_t len, const char *name)
{
	if (x->archived > 0)
		return;
	if (data != x->unit || len != x->unit_len)
		x->unit_sha_ok = false;
	x->unit = data;
	x->unit_len = len;
	x->unit_name = name;
}

/* prefix " > " path, or whichever is non-empty; NULL when both are empty. */
static const char *
full_path(char *buf, size_t cap, const char *prefix, const char *path)
{
	prefix = prefix ? prefix : "";
	path = path ? path : "";
	if (!*prefix && !*path)
		return NULL;
	snprintf(buf, cap, "%s%s%s", prefix, *prefix && *path ? " > " : "", path);
	return buf;
}

/* Hands one failure of the current unit on and counts it; returns DC_OK or
 * the failure callback's error. */
static dc_code
fail(xctx *x, const char *stage, const dc_err *why, const char *path, dc_err *err)
{
	char buf[PREFIX_MAX * 2];
	dc_blob unit = { x->unit, x->unit_len, x->unit_name, full_path(buf, sizeof(buf), x->prefix, path),
		NULL, NULL };
	dc_code rc = DC_OK;

	if (x->unit != NULL)
		unit.sha256 = unit_digest(x);

	x->stats->failures++;
	if (x->cb->failure != NULL)
		rc = x->cb->failure(x->cb->failure_ctx, stage, why, &unit, err);
	return rc;
}

static dc_code fail_msg(xctx *x, const char *stage, dc_code code, const char *path, dc_err *err,
	const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static dc_code
fail_msg(xctx *x, const char *stage, dc_code code, const char *path, dc_err *err, const char *fmt, ...)
{
	dc_err why;
	va_list ap;

	why.code = code;
	va_start(ap, fmt);
	vsnprintf(why.msg, sizeof(why.msg), fmt, ap);
	va_end(ap);
	return fail(x, stage, &why, path, err);
}

/* rc from a walk: the first DC_EINPUT_LIMIT of the input becomes its one
 * "limits" failure, of the unit in hand; returns DC_EINPUT_LIMIT (which
 * stops every walk above) or the failure callback's error. */
static dc_code
input_over(xctx *x, dc_code rc, const char *path, dc_err *err)
{
	dc_err why;

	if (rc != DC_EINPUT_LIMIT || x->capped)
		return rc;
	x->capped = true;
	why = x->tally.over;
	if (why.code == DC_OK)
		dc_err_set(&why, DC_EINPUT_LIMIT, "%s", dc_err_text(err));
	rc = fail(x, "limits", &why, path, err);
	if (rc != DC_OK)
		return rc;
	*err = why;
	return DC_EINPUT_LIMIT;
}

/* ---- the sink wrapper: counts records, knows whether the report began/ended */

static dc_code
w_begin(void *ctx, const dc_report *r, const dc_blob *origin, dc_err *err)
{
	xctx *x = ctx;
	dc_code rc = DC_OK;

	if (x->cb->sink.report_begin != NULL)
		rc = x->cb->sink.report_begin(x->cb->sink.ctx, r, origin, err);
	/* a begin that failed may have opened something: it gets report_abort too */
	if (rc != DC_SKIP)
		x->begun = true;
	if (rc != DC_OK && rc != DC_SKIP)
		x->sink_failed = true;
	return rc;
}

static dc_code
w_record(void *ctx, const dc_report *r, const dc_record *rec, dc_err *err)
{
	xctx *x = ctx;
	dc_code rc = DC_OK;

	if (x->cb->sink.record != NULL)
		rc = x->cb->sink.record(x->cb->sink.ctx, r, rec, err);
	if (rc == DC_OK)
		x->records++;
	else
		x->sink_failed = true;
	return rc;
}

static dc_code
w_end(void *ctx, const dc_report *r, dc_err *err)
{
	xctx *x = ctx;
	dc_code rc = DC_OK;

	if (x->cb->sink.report_end != NULL)
		rc = x->cb->sink.report_end(x->cb->sink.ctx, r, err);
	if (rc == DC_OK)
		x->ended = true;
	else
		x->sink_failed = true;
	return rc;
}

/* ---- callbacks of the unpack walk */

/* One XML stream: parse it into the sink and account for the outcome. */
static dc_code
on_xml(void *ctx, const dc_unpack_xml *ux, dc_err *err)
{
	xctx *x = ctx;
	char pbuf[PREFIX_MAX * 2];
	dc_sink s = { .ctx = x, .report_begin = w_begin, .record = w_record, .report_end = w_end };
	dc_blob origin;
	dc_err perr, why;
	dc_code rc;

	if (x->lim->max_reports > 0 && ++x->reports_seen > x->lim->max_reports)
		return dc_unpack_tally_over(&x->tally, err,
			"more than limits.max_reports (%llu) reports in one input",
			(unsigned long long)x->lim->max_reports);
	origin.data = x->unit;
	origin.len = x->unit_len;
	origin.name = x->unit_name;
	origin.sha256 = x->unit != NULL ? unit_digest(x) : NULL;
	origin.path = full_path(pbuf, sizeof(pbuf), x->prefix, ux->path);
	/* live: the unpack layer appends repairs it finds while the XML is read,
	 * and dc_xml composes the report's errors again at report_end */
	origin.notes = ux->notes;
	x->begun = x->ended = x->sink_failed = false;
	x->records = 0;
	dc_err_clear(&perr);
	rc = dc_xml_parse(ux->rd, ux->rctx, x->lim, &origin, &s, &perr);
	if (x->ended) {
		/* stored; an error after report_end (a broken gzip trailer after
		 * </feedback>) cannot unstore it */
		x->stats->reports++;
		x->stats->records += x->records;
		if (dc_extract_is_fatal(rc)) {
			*err = perr;
			return rc;
		}
		return DC_OK;
	}
	if (rc == DC_SKIP) {
		x->stats->duplicates++;
		return DC_OK;
	}
	if (x->begun && x->cb->sink.report_abort != NULL)
		x->cb->sink.report_abort(x->cb->sink.ctx);
	if (rc == DC_OK)
		dc_err_set(&perr, DC_ESCHEMA, "the XML reader ended without a report");
	why = ux->stream_err->code != DC_OK && !x->sink_failed ? *ux->stream_err : perr;
	if (why.code == DC_OK)
		why.code = rc == DC_OK ? DC_ESCHEMA : rc;
	if (dc_extract_is_fatal(rc) || dc_extract_is_fatal(why.code)) {
		*err = why;
		return dc_extract_is_fatal(rc) ? rc : why.code;
	}
	if (x->tally.over.code != DC_OK) {
		/* the input went over a cap while this report was read */
		*err = x->tally.over;
		return DC_EINPUT_LIMIT;
	}
	return fail(x, x->sink_failed ? "store" : stage_of(why.code), &why, ux->path, err);
}

/* One JSON document: an SMTP TLS report when it has "report-id" and
 * "policies" (parsed whole into sink.tls_report), else not a report. */
static dc_code
on_json(void *ctx, const uint8_t *data, size_t len, const char *path, const char *notes, dc_err *err)
{
	xctx *x = ctx;
	char pbuf[PREFIX_MAX * 2];
	dc_tls_report *r = NULL;
	dc_blob origin;
	dc_err why;
	dc_code rc;

	if (!dc_tlsrpt_looks(data, len)) {
		char desc[200];

		dc_unpack_describe(data, len < DC_UNPACK_SNIFF_BYTES ? len : DC_UNPACK_SNIFF_BYTES, len, desc,
			sizeof(desc));
		return fail_msg(x, "unpack", DC_EFORMAT, path, err,
			"not a report (no \"report-id\" and \"policies\"): %s", desc);
	}
	if (x->lim->max_reports > 0 && ++x->reports_seen > x->lim->max_reports)
		return dc_unpack_tally_over(&x->tally, err,
			"more than limits.max_reports (%llu) reports in one input",
			(unsigned long long)x->lim->max_reports);
	dc_err_clear(&why);
	rc = dc_tlsrpt_parse(data, len, x->lim, &r, &why);
	if (rc == DC_ENOMEM) {
		*err = why;
		return rc;
	}
	if (rc != DC_OK)
		return fail(x,
			why.code == DC_EFORMAT                                    ? "json" :
				why.code == DC_ETOOLONG || why.code == DC_ESCHEMA ? "report" :
										    stage_of(why.code),
			&why, path, err);
	origin.data = x->unit;
	origin.len = x->unit_len;
	origin.name = x->unit_name;
	origin.sha256 = x->unit != NULL ? unit_digest(x) : NULL;
	origin.path = full_path(pbuf, sizeof(pbuf), x->prefix, path);
	origin.notes = notes != NULL && *notes ? notes : NULL;
	rc = x->cb->sink.tls_report != NULL ? x->cb->sink.tls_report(x->cb->sink.ctx, r, &origin, &why) :
					      DC_OK;
	dc_tlsrpt_free(r);
	if (rc == DC_OK || rc == DC_SKIP) {
		x->stats->tls_reports++;
		return DC_OK;
	}
	if (dc_extract_is_fatal(rc)) {
		*err = why;
		return rc;
	}
	return fail(x, "store", &why, path, err);
}

static dc_code
on_failure(void *ctx, const char *path, const dc_err *why, dc_err *err)
{
	xctx *x = ctx;

	if (dc_extract_is_fatal(why->code)) {
		*err = *why;
		return why->code;
	}
	return fail(x, stage_of(why->code), why, path, err);
}

static dc_code
extract_message(xctx *x, const uint8_t *data, size_t len, const char *prefix, bool must_yield, dc_err *err);

/* dc_mime's head callback for the input's own message: hands the header
 * fields to cb->message. */
static dc_code
on_head(void *ctx, const dc_mime_head *head, dc_err *err)
{
	xctx *x = ctx;

	return x->cb->message(x->cb->message_ctx, head, err);
}

/* A message found inside an archive: its own leaves are new units. */
static dc_code
on_message(void *ctx, const uint8_t *data, size_t len, const char *path, int depth, dc_err *err)
{
	xctx *x = ctx;
	char buf[PREFIX_MAX * 2];
	const char *p = full_path(buf, sizeof(buf), x->prefix, path);
	int saved = x->depth;
	dc_code rc;

	/* archives inside this message count on from the ones around it; its
	 * parts refer to the archive's unit */
	x->depth = depth;
	x->archived += depth > 0;
	rc = extract_message(x, data, len, p ? p : "", true, err);
	x->archived -= depth > 0;
	x->depth = saved;
	return rc;
}

static const dc_unpack_cb unpack_cb_template = { NULL, NULL, on_xml, on_message, on_failure, NULL, on_json };

/* Adds one part to the current message's listing. */
static void
list_part(xctx *x, const dc_mime_leaf *leaf, const char *desc)
{
	size_t l = strlen(x->listing);

	x->listed++;
	if (l + 8 >= DC_MAX_LISTING)
		return;
	snprintf(x->listing + l, DC_MAX_LISTING - l, "%s%s%s%s%s%s%s", l ? ", " : "", leaf->content_type,
		leaf->filename ? " \"" : "", leaf->filename ? leaf->filename : "", leaf->filename ? "\"" : "",
		desc ? ": " : "", desc ? desc : "");
}

/* The parts of a failure report besides its original, which are no units of
 * their own: the feedback fields and the original's headers. */
static bool
is_arf_part(const char *type)
{
	return strcmp(type, "message/feedback-report") == 0 || strcmp(type, "text/rfc822-headers") == 0 ||
		strcmp(type, "message/rfc822-headers") == 0 || strcmp(type, "message/global-headers") == 0;
}

/* dc_arf's callback: one failure report of the message being walked, to
 * the sink; the unit is the message's. */
static dc_code
on_arf(void *ctx, const dc_arf_report *r, const char *section, dc_err *err)
{
	xctx *x = ctx;
	char pbuf[PREFIX_MAX * 2], sec[PREFIX_MAX];
	dc_blob origin;
	dc_code rc = DC_OK;

	if (x->lim->max_reports > 0 && ++x->reports_seen > x->lim->max_reports)
		return dc_unpack_tally_over(&x->tally, err,
			"more than limits.max_reports (%llu) reports in one input",
			(unsigned long long)x->lim->max_reports);
	snprintf(sec, sizeof(sec), "%s%s", *section ? "part " : "", section);
	origin.data = x->unit;
	origin.len = x->unit_len;
	origin.name = x->unit_name;
	origin.sha256 = x->unit != NULL ? unit_digest(x) : NULL;
	origin.path = full_path(pbuf, sizeof(pbuf), x->prefix, sec);
	origin.notes = r->notes;
	if (x->cb->sink.failure_report != NULL)
		rc = x->cb->sink.failure_report(x->cb->sink.ctx, r, &origin, err);
	if (rc == DC_OK || rc == DC_SKIP) {
		x->stats->failure_reports++;
		return DC_OK;
	}
	if (dc_extract_is_fatal(rc))
		return rc;
	/* the store refused a value: the report is a failure of its unit */
	{
		dc_err why = *err;

		return fail(x, "store", &why, sec, err);
	}
}

/* dc_arf's callback: a multipart/report of report-type feedback-report that
 * is no usable failure report. */
static dc_code
on_arf_bad(void *ctx, const dc_err *why, const char *section, dc_err *err)
{
	xctx *x = ctx;
	char sec[PREFIX_MAX];

	snprintf(sec, sizeof(sec), "%s%s", *section ? "part " : "", section);
	return fail(x, "report", why, sec, err);
}

/* The failure reports of the message data[0..len) being walked (see the
 * comment at the top); DC_OK or a fatal code. */
static dc_code
extract_arf(xctx *x, const uint8_t *data, size_t len, dc_err *err)
{
	dc_code rc;

	if (!dc_arf_maybe(data, len))
		return DC_OK;
	rc = dc_arf_walk(data, len, x->lim->keep_failure_body != 0, on_arf, on_arf_bad, x, NULL, err);
	if (rc == DC_EMIME)
		rc = DC_OK; /* dc_mime made a message of it: not reached */
	return input_over(x, rc, NULL, err);
}

/* One leaf of a message: skipped when its bytes are no report format,
 * otherwise walked as a unit of its own. */
static dc_code
on_leaf(void *ctx, const dc_mime_leaf *leaf, dc_err *err)
{
	xctx *x = ctx;
	size_t probe = leaf->len < DC_UNPACK_SNIFF_BYTES ? leaf->len : DC_UNPACK_SNIFF_BYTES;
	dc_kind k = dc_unpack_sniff(leaf->data, probe);
	const uint8_t *su = x->unit;
	size_t sl = x->unit_len;
	const char *sn = x->unit_name, *sp = x->prefix;
	bool ss = x->unit_sha_ok;
	uint8_t sha[SHA256_LEN];
	char prefix[PREFIX_MAX], root[64], desc[200];
	dc_unpack_cb cb = unpack_cb_template;
	dc_code rc;

	snprintf(prefix, sizeof(prefix), "%s%spart %s", x->prefix, *x->prefix ? " > " : "", leaf->section);
	if (is_arf_part(leaf->content_type)) {
		/* read by dc_arf with the report around it (extract_message) */
		list_part(x, leaf, "failure report part");
		return DC_OK;
	}
	if (k == DC_KIND_EMPTY || k == DC_KIND_OTHER ||
		(k == DC_KIND_XML && dc_unpack_xml_root(leaf->data, probe, root, sizeof(root)) &&
			strcasecmp(root, "feedback") != 0) ||
		(k == DC_KIND_JSON && !dc_tlsrpt_looks(leaf->data, leaf->len))) {
		dc_unpack_describe(leaf->data, probe, leaf->len, desc, sizeof(desc));
		list_part(x, leaf, desc);
		return DC_OK;
	}
	if (k == DC_KIND_MESSAGE) {
		/* headers or a message the sender did not label message/rfc822 */
		list_part(x, leaf, "message");
		return extract_message(x, leaf->data, leaf->len, prefix, false, err);
	}
	list_part(x, leaf, dc_unpack_kind_name(k));
	memcpy(sha, x->unit_sha, sizeof(sha));
	set_unit(x, leaf->data, leaf->len, leaf->filename);
	x->prefix = prefix;
	if (x->lim->max_members > 0 && ++x->tally.members > x->lim->max_members) {
		rc = dc_unpack_tally_over(&x->tally, err,
			"more than limits.max_members (%llu) zip members and report parts in one input",
			(unsigned long long)x->lim->max_members);
	} else {
		cb.ctx = x;
		cb.notes = x->mime_notes;
		cb.tally = &x->tally;
		rc = dc_unpack_walk(leaf->data, leaf->len, x->depth, x->lim, &cb, err);
	}
	rc = input_over(x, rc, NULL, err);
	x->unit = su;
	x->unit_len = sl;
	x->unit_name = sn;
	x->unit_sha_ok = ss;
	memcpy(x->unit_sha, sha, sizeof(sha));
	x->prefix = sp;
	return rc;
}

/*
 * Walks a message.  prefix names where it sits ("" at the top); failures of
 * the message as a whole refer to the current unit.  must_yield: a message
 * that produced no report, duplicate or failure becomes one failure.
 */
static dc_code
extract_message(xctx *x, const uint8_t *data, size_t len, const char *prefix, bool must_yield, dc_err *err)
{
	dc_extract_stats *st = x->stats;
	uint64_t before = st->reports + st->duplicates + st->failures + st->tls_reports + st->failure_reports;
	char listing[DC_MAX_LISTING] = "";
	char *sl = x->listing;
	size_t sc = x->listed;
	const char *sp = x->prefix, *sn = x->mime_notes;
	dc_mime_info *info = NULL;
	uint64_t left;
	bool top;
	dc_code rc = DC_OK;

	if (x->nest >= MAX_NEST) {
		rc = fail_msg(x, "limits", DC_ETOODEEP, prefix, err,
			"messages and archives nested deeper than %d", MAX_NEST);
		return rc;
	}
	if ((info = calloc(1, sizeof(*info))) == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	x->nest++;
	x->listing = listing;
	x->listed = 0;
	x->prefix = prefix;
	x->mime_notes = info->notes;
	/* every part counts against what is left of max_members: a message
	 * of too many parts is refused before any of them is handled */
	left = x->lim->max_members == 0                 ? UINT64_MAX :
		x->tally.members >= x->lim->max_members ? 0 :
							  x->lim->max_members - x->tally.members;
	/* the input itself is this message (not one inside an archive or a part) */
	top = x->nest == 1 && x->depth == 0 && x->cb->message != NULL;
	rc = dc_mime_walk_capped(data, len, left, top ? on_head : NULL, on_leaf, x, info, err);
	if (rc == DC_EINPUT_LIMIT && x->tally.over.code == DC_OK)
		dc_unpack_tally_over(&x->tally, NULL, "%s: over limits.max_members (%llu) in one input",
			dc_err_text(err), (unsigned long long)x->lim->max_members);
	x->prefix = sp;
	if (rc == DC_EMIME && !must_yield) {
		/* a part that merely looked like headers: nothing to report */
		rc = DC_OK;
		goto out;
	}
	if (rc == DC_EMIME || rc == DC_ETOODEEP) {
		dc_err why = *err;

		rc = fail(x, stage_of(why.code), &why, prefix, err);
		goto out;
	}
	if (rc != DC_OK)
		goto out;
	if ((rc = extract_arf(x, data, len, err)) != DC_OK)
		goto out;
	if (info->too_deep > 0 &&
		(rc = fail_msg(x, "limits", DC_ETOODEEP, prefix, err,
			 "MIME parts nested deeper than %d; %u container(s) not examined", DC_MAX_MIME_DEPTH,
			 info->too_deep)) != DC_OK)
		goto out;
	if (must_yield &&
		st->reports + st->duplicates + st->failures + st->tls_reports + st->failure_reports == before)
		rc = fail_msg(x, "mime", DC_ENOREPORT, prefix, err,
			"no aggregate report in message (%zu part%s%s%s)", x->listed,
			x->listed == 1 ? "" : "s", x->listed ? ": " : "", listing);
out:
	x->nest--;
	x->listing = sl;
	x->listed = sc;
	x->prefix = sp;
	x->mime_notes = sn;
	free(info);
	return rc;
}

dc_code
dc_extract(const uint8_t *data, size_t len, const char *name, const dc_limits *lim, const dc_extract_cb *cb,
	dc_extract_stats *stats, dc_err *err)
{
	xctx x;
	dc_unpack_cb ucb = unpack_cb_template;
	dc_kind k = dc_unpack_sniff(data, len < DC_UNPACK_SNIFF_BYTES ? len : DC_UNPACK_SNIFF_BYTES);
	dc_err local;
	dc_code rc;

	if (err == NULL)
		err = &local;
	memset(&x, 0, sizeof(x));
	x.lim = lim;
	x.cb = cb;
	x.stats = stats;
	x.unit = data;
	x.unit_len = len;
	x.unit_name = name;
	x.prefix = "";
	ucb.ctx = &x;
	ucb.tally = &x.tally;
	dc_err_clear(err);
	/* a bare XML or JSON file is bounded by its own cap (in dc_unpack) */
	if (k != DC_KIND_XML && k != DC_KIND_JSON && lim->max_message_bytes > 0 &&
		len > lim->max_message_bytes)
		return fail_msg(&x, "limits", DC_ETOOBIG_MESSAGE, NULL, err,
			"%s of %zu bytes exceeds max_message_bytes (%llu)",
			k == DC_KIND_MESSAGE ? "message" : "input", len,
			(unsigned long long)lim->max_message_bytes);
	rc = dc_unpack_walk(data, len, 0, lim, &ucb, err);
	rc = input_over(&x, rc, NULL, err);
	if (rc == DC_EINPUT_LIMIT) {
		/* recorded as the input's one failure: the input was handled */
		dc_err_clear(err);
		rc = DC_OK;
	}
	if (rc != DC_OK && err->code == DC_OK)
		dc_err_set(err, rc, "%s", dc_strerror(rc));
	return rc;
}
