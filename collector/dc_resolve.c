/*
 * dc_resolve.c - PTR names of source IPs with forward confirmation (c-ares),
 * their registrable domain (libpsl), stored in dmarc.ip_names.
 *
 * Per IP: a PTR query for the reverse name (RFC 1035 section 3.5 in-addr.arpa,
 * RFC 3596 section 2.5 ip6.arpa), then for every PTR name a forward query of
 * the IP's own family (A for IPv4, AAAA for IPv6); a name whose records hold
 * the IP is forward-confirmed, as the "iprev" method of RFC 8601 section 3
 * defines it.  The name stored is the first confirmed one, else the first.
 * Names are lower-cased and lose their trailing dot.  Queries go out with
 * ares_query (no search list, no /etc/hosts) so only the DNS answers.
 *
 * Concurrency: up to max_inflight IPs are in flight at once on one c-ares
 * channel; new IPs are started only from the event loop, never from inside
 * a callback, so an immediate failure cannot recurse.  The loop waits with
 * poll() on the sockets c-ares reports through its socket-state callback.
 *
 * Deliberately not here: the classification (SQL views), and any work in a
 * report's transaction.  DNS failures of one IP are a status, not an error.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <libpsl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dc_commands.h"
#include "dc_exit.h"
#include "dc_log.h"
#include "dc_pg.h"
#include "dc_resolve.h"
#include "dc_store.h"

#define DC_RESOLVE_RCVBUF    (1024 * 1024) /* UDP receive buffer asked for */
#define DC_RESOLVE_DEAD_AFTER 16  /* timeouts in a row (at least max_inflight) = resolver dead */

/* ---- status ---------------------------------------------------------- */

const char *dc_resolve_status_name(dc_resolve_status s)
{
	switch (s) {
	case DC_RESOLVE_OK: return "ok";
	case DC_RESOLVE_NXDOMAIN: return "nxdomain";
	case DC_RESOLVE_TIMEOUT: return "timeout";
	case DC_RESOLVE_SERVFAIL: return "servfail";
	case DC_RESOLVE_ERROR: return "error";
	}
	return "error";
}

/* c-ares status -> stored status.  ECONNREFUSED (a closed UDP port) counts as
 * no answer, like a timeout; ENODATA (the name exists, no PTR) as NXDOMAIN. */
static const struct {
	int ares;
	dc_resolve_status status;
} status_map[] = {
	{ ARES_SUCCESS, DC_RESOLVE_OK },
	{ ARES_ENOTFOUND, DC_RESOLVE_NXDOMAIN },
	{ ARES_ENODATA, DC_RESOLVE_NXDOMAIN },
	{ ARES_ETIMEOUT, DC_RESOLVE_TIMEOUT },
	{ ARES_ECONNREFUSED, DC_RESOLVE_TIMEOUT },
	{ ARES_ESERVFAIL, DC_RESOLVE_SERVFAIL },
	{ ARES_EREFUSED, DC_RESOLVE_SERVFAIL },
};

/* Returns the stored status for a c-ares status (DC_RESOLVE_ERROR if unlisted). */
static dc_resolve_status map_status(int ares_status)
{
	for (size_t i = 0; i < sizeof status_map / sizeof status_map[0]; i++)
		if (status_map[i].ares == ares_status)
			return status_map[i].status;
	return DC_RESOLVE_ERROR;
}

/* ---- options --------------------------------------------------------- */

void dc_resolve_opts_default(dc_resolve_opts *o)
{
	memset(o, 0, sizeof *o);
	o->timeout_ms = DC_RESOLVE_DEFAULT_TIMEOUT_MS;
	o->tries = DC_RESOLVE_DEFAULT_TRIES;
	o->max_inflight = DC_RESOLVE_DEFAULT_MAX_INFLIGHT;
	o->retry_after = DC_RESOLVE_DEFAULT_RETRY_AFTER;
	o->refresh_after = DC_RESOLVE_DEFAULT_REFRESH_AFTER;
	o->batch = DC_RESOLVE_DEFAULT_BATCH;
}

void dc_resolve_opts_from_config(dc_resolve_opts *o, const dc_config *cfg)
{
	dc_resolve_opts_default(o);
	o->servers = cfg->dns_servers;
	if (cfg->dns_timeout_ms > 0)
		o->timeout_ms = cfg->dns_timeout_ms;
	if (cfg->dns_retry_after >= 0)
		o->retry_after = cfg->dns_retry_after;
	if (cfg->dns_in_flight > 0)
		o->max_inflight = cfg->dns_in_flight;
}

void dc_resolve_results_clear(dc_resolve_result *results, size_t n)
{
	if (!results)
		return;
	for (size_t i = 0; i < n; i++) {
		free(results[i].ptr);
		free(results[i].base_domain);
		memset(&results[i], 0, sizeof results[i]);
	}
}

/* ---- names ----------------------------------------------------------- */

/* Returns a new normalised copy of name (lower case, one trailing dot
 * removed), or NULL when it is not a usable host name (empty, too long, a
 * label empty or over 63 bytes, a byte outside letters, digits, '-', '_').
 * The caller owns the copy. */
static char *name_norm(const char *name)
{
	size_t len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DC_MAX_DNS_NAME)
		return NULL;
	char *out = malloc(len + 1);
	if (!out)
		return NULL;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c == '.') {
			if (label == 0)
				goto bad;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
			if (++label > 63)
				goto bad;
		} else {
			goto bad;
		}
		out[i] = (char)c;
	}
	if (label == 0)
		goto bad;
	out[len] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* Writes the reverse-lookup name of addr (family AF_INET: 4 bytes, AF_INET6:
 * 16) into buf; returns 0, or -1 when buf is too small. */
static int reverse_name(int family, const unsigned char *addr, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	if (family == AF_INET) {
		int n = snprintf(buf, size, "%u.%u.%u.%u.in-addr.arpa",
			addr[3], addr[2], addr[1], addr[0]);
		return n > 0 && (size_t)n < size ? 0 : -1;
	}
	if (size < 16 * 4 + sizeof "ip6.arpa")
		return -1;
	char *p = buf;
	for (int i = 15; i >= 0; i--) {
		*p++ = hex[addr[i] & 0xf];
		*p++ = '.';
		*p++ = hex[addr[i] >> 4];
		*p++ = '.';
	}
	memcpy(p, "ip6.arpa", sizeof "ip6.arpa");
	return 0;
}

/* ---- the event loop -------------------------------------------------- */

typedef struct resolver resolver;
typedef struct lookup lookup;

/* One forward query of one PTR name. */
typedef struct fwd {
	lookup *lk;
	char *name;             /* normalised; owned */
	int ares_status;
	bool confirmed;
} fwd;

/* One IP in flight. */
struct lookup {
	resolver *rv;
	size_t idx;             /* into rv->results */
	int family;
	unsigned char addr[16];
	int pending;            /* outstanding queries */
	int ptr_status;         /* c-ares status of the PTR query */
	bool bad_name;          /* a PTR name was not a host name */
	fwd fwd[DC_MAX_PTR_NAMES];
	int n_fwd;
};

struct resolver {
	ares_channel channel;
	bool channel_ok;
	struct pollfd *fds;     /* sockets c-ares asked us to watch */
	size_t n_fds, cap_fds;
	struct pollfd *scratch; /* loop_once's copy of fds */
	size_t cap_scratch;
	dc_resolve_result *results;
	size_t inflight;
	size_t timeouts_in_row; /* lookups finished as 'timeout' since the last answer */
	bool oom;
	const psl_ctx_t *psl;
	dc_resolve_stats *stats;
};

/* c-ares socket-state callback: keeps rv->fds in step with c-ares. */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	resolver *rv = data;
	size_t i;
	for (i = 0; i < rv->n_fds; i++)
		if (rv->fds[i].fd == fd)
			break;
	if (!readable && !writable) {
		if (i < rv->n_fds)
			rv->fds[i] = rv->fds[--rv->n_fds];
		return;
	}
	if (i == rv->n_fds) {
		if (rv->n_fds == rv->cap_fds) {
			size_t cap = rv->cap_fds ? rv->cap_fds * 2 : 8;
			struct pollfd *p = realloc(rv->fds, cap * sizeof *p);
			if (!p) {
				rv->oom = true;
				return;
			}
			rv->fds = p;
			rv->cap_fds = cap;
		}
		rv->n_fds++;
		rv->fds[i].fd = fd;
	}
	rv->fds[i].events = (short)((readable ? POLLIN : 0) | (writable ? POLLOUT : 0));
	rv->fds[i].revents = 0;
}

/* Fills the lookup's result and frees what it owns (lk itself included). */
static void lookup_finish(lookup *lk)
{
	resolver *rv = lk->rv;
	dc_resolve_result *res = &rv->results[lk->idx];
	dc_resolve_status st = map_status(lk->ptr_status);
	int pick = -1;

	for (int i = 0; i < lk->n_fwd && pick < 0; i++)
		if (lk->fwd[i].confirmed)
			pick = i;
	if (st == DC_RESOLVE_OK) {
		if (pick < 0 && lk->n_fwd > 0) {
			/* Unconfirmed: if a forward lookup failed for want of an
			 * answer, the verdict is not final; store that status so
			 * the IP is tried again after retry_after. */
			pick = 0;
			for (int i = 0; i < lk->n_fwd; i++) {
				dc_resolve_status fs = map_status(lk->fwd[i].ares_status);
				if (fs == DC_RESOLVE_TIMEOUT || fs == DC_RESOLVE_SERVFAIL) {
					st = fs;
					break;
				}
			}
		} else if (lk->n_fwd == 0) {
			st = lk->bad_name ? DC_RESOLVE_ERROR : DC_RESOLVE_NXDOMAIN;
		}
	}
	res->status = st;
	res->done = true;
	rv->timeouts_in_row = st == DC_RESOLVE_TIMEOUT ? rv->timeouts_in_row + 1 : 0;
	if (pick >= 0) {
		res->ptr = lk->fwd[pick].name;
		lk->fwd[pick].name = NULL;
		res->confirmed = lk->fwd[pick].confirmed;
		if (rv->psl) {
			const char *base = psl_registrable_domain(rv->psl, res->ptr);
			if (base) {
				res->base_domain = strdup(base);
				if (!res->base_domain)
					rv->oom = true;
			}
		}
	}
	if (rv->stats) {
		dc_resolve_stats *s = rv->stats;
		s->ips++;
		if (res->ptr && st == DC_RESOLVE_OK)
			s->ok++;
		if (res->confirmed)
			s->confirmed++;
		switch (st) {
		case DC_RESOLVE_OK: break;
		case DC_RESOLVE_NXDOMAIN: s->nxdomain++; break;
		case DC_RESOLVE_TIMEOUT: s->timeout++; break;
		case DC_RESOLVE_SERVFAIL: s->servfail++; break;
		case DC_RESOLVE_ERROR: s->error++; break;
		}
	}
	for (int i = 0; i < lk->n_fwd; i++)
		free(lk->fwd[i].name);
	rv->inflight--;
	free(lk);
}

/* Forward (A/AAAA) answer for one PTR name: confirmed when it holds the IP. */
static void fwd_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	fwd *f = arg;
	lookup *lk = f->lk;
	if (lk->rv->stats)
		lk->rv->stats->retries += (uint64_t)timeouts;
	f->ares_status = status;
	if (status == ARES_SUCCESS) {
		int n = DC_MAX_FORWARD_ADDRS;
		if (lk->family == AF_INET) {
			struct ares_addrttl a[DC_MAX_FORWARD_ADDRS];
			f->ares_status = ares_parse_a_reply(abuf, alen, NULL, a, &n);
			for (int i = 0; f->ares_status == ARES_SUCCESS && i < n; i++)
				if (memcmp(&a[i].ipaddr, lk->addr, 4) == 0)
					f->confirmed = true;
		} else {
			struct ares_addr6ttl a[DC_MAX_FORWARD_ADDRS];
			f->ares_status = ares_parse_aaaa_reply(abuf, alen, NULL, a, &n);
			for (int i = 0; f->ares_status == ARES_SUCCESS && i < n; i++)
				if (memcmp(&a[i].ip6addr, lk->addr, 16) == 0)
					f->confirmed = true;
		}
	}
	if (--lk->pending == 0)
		lookup_finish(lk);
}

/* Adds name (raw, from the PTR answer) to lk's names unless it is bad or
 * already there. */
static void add_name(lookup *lk, const char *raw)
{
	if (lk->n_fwd >= DC_MAX_PTR_NAMES)
		return;
	char *n = name_norm(raw);
	if (!n) {
		lk->bad_name = true;
		return;
	}
	for (int i = 0; i < lk->n_fwd; i++)
		if (strcmp(lk->fwd[i].name, n) == 0) {
			free(n);
			return;
		}
	lk->fwd[lk->n_fwd].lk = lk;
	lk->fwd[lk->n_fwd].name = n;
	lk->fwd[lk->n_fwd].ares_status = ARES_ETIMEOUT;
	lk->n_fwd++;
}

/* PTR answer: collect the names, then ask for each name's addresses. */
static void ptr_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	lookup *lk = arg;
	if (lk->rv->stats)
		lk->rv->stats->retries += (uint64_t)timeouts;
	lk->ptr_status = status;
	if (status == ARES_SUCCESS) {
		struct hostent *h = NULL;
		int addrlen = lk->family == AF_INET ? 4 : 16;
		lk->ptr_status = ares_parse_ptr_reply(abuf, alen, lk->addr, addrlen, lk->family, &h);
		if (lk->ptr_status == ARES_SUCCESS && h) {
			if (h->h_aliases)
				for (char **a = h->h_aliases; *a; a++)
					add_name(lk, *a);
			if (h->h_name)
				add_name(lk, h->h_name);
		}
		if (h)
			ares_free_hostent(h);
	}
	/* Channel going away: finish with what we have, ask nothing more. */
	if (status != ARES_EDESTRUCTION && lk->ptr_status == ARES_SUCCESS) {
		int type = lk->family == AF_INET ? 1 /* A */ : 28 /* AAAA */;
		lk->pending += lk->n_fwd;
		for (int i = 0; i < lk->n_fwd; i++)
			ares_query(lk->rv->channel, lk->fwd[i].name, 1 /* IN */, type, fwd_cb, &lk->fwd[i]);
	}
	if (--lk->pending == 0)
		lookup_finish(lk);
}

/* Starts the lookup of ips[idx]; an unparsable IP is finished at once. */
static void lookup_start(resolver *rv, const char *ip, size_t idx)
{
	char rname[128];
	char buf[INET6_ADDRSTRLEN + 8];
	lookup *lk = calloc(1, sizeof *lk);
	if (!lk) {
		rv->oom = true;
		return;
	}
	lk->rv = rv;
	lk->idx = idx;
	rv->inflight++;

	/* PostgreSQL may render a host address with a /32 or /128 suffix. */
	size_t len = strcspn(ip, "/");
	if (len >= sizeof buf)
		len = sizeof buf - 1;
	memcpy(buf, ip, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, lk->addr) == 1) {
		lk->family = AF_INET;
	} else if (inet_pton(AF_INET6, buf, lk->addr) == 1) {
		lk->family = AF_INET6;
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)lk->addr)) {
			memmove(lk->addr, lk->addr + 12, 4);
			lk->family = AF_INET;
		}
	} else {
		lk->ptr_status = ARES_EBADNAME;
		lookup_finish(lk);
		return;
	}
	if (reverse_name(lk->family, lk->addr, rname, sizeof rname) != 0) {
		lk->ptr_status = ARES_EBADNAME;
		lookup_finish(lk);
		return;
	}
	lk->pending = 1;
	ares_query(rv->channel, rname, 1 /* IN */, 12 /* PTR */, ptr_cb, lk);
}

/* Waits once for c-ares' sockets (at most until its next timeout) and lets
 * it process what happened, timeouts included; callbacks run from here.
 * Returns 0 (also when a signal cut the wait short), -1 when poll failed or
 * memory ran out. */
static int loop_once(resolver *rv)
{
	struct timeval tv, *tvp;
	size_t n = rv->n_fds;
	/* A copy: callbacks run by ares_process_fd may change rv->fds. */
	if (n > rv->cap_scratch) {
		struct pollfd *p = realloc(rv->scratch, n * sizeof *p);
		if (!p) {
			rv->oom = true;
			return -1;
		}
		rv->scratch = p;
		rv->cap_scratch = n;
	}
	struct pollfd *fds = rv->scratch;
	if (n > 0)
		memcpy(fds, rv->fds, n * sizeof fds[0]);
	tvp = ares_timeout(rv->channel, NULL, &tv);
	int ms = tvp ? (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000) : 1000;
	int r = poll(fds, (nfds_t)n, ms);
	if (r < 0)
		return errno == EINTR ? 0 : -1;  /* a signal: the caller checks opts->stop */
	for (size_t i = 0; i < n && r > 0; i++) {
		if (!fds[i].revents)
			continue;
		ares_socket_t rd = (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD;
		ares_socket_t wr = (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD;
		ares_process_fd(rv->channel, rd, wr);
	}
	/* Timeouts of queries whose sockets were silent. */
	ares_process_fd(rv->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	return 0;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

dc_code dc_resolve_ips(const char *const *ips, size_t n, const dc_resolve_opts *opts,
	dc_resolve_result *results, dc_resolve_stats *stats, dc_err *err)
{
	dc_code rc = DC_OK;
	resolver rv;
	psl_ctx_t *psl = NULL;
	bool lib_init = false;
	double t0 = now_seconds();

	memset(&rv, 0, sizeof rv);
	rv.results = results;
	rv.stats = stats;

	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
		rc = dc_err_set(err, DC_EDNS, "resolve: c-ares library initialisation failed");
		goto out;
	}
	lib_init = true;

	struct ares_options ao;
	memset(&ao, 0, sizeof ao);
	ao.timeout = opts->timeout_ms > 0 ? opts->timeout_ms : DC_RESOLVE_DEFAULT_TIMEOUT_MS;
	ao.tries = opts->tries > 0 ? opts->tries : DC_RESOLVE_DEFAULT_TRIES;
	ao.sock_state_cb = sock_state_cb;
	ao.sock_state_cb_data = &rv;
	ao.lookups = (char *)"b";
	/* Room for a burst of answers: with hundreds of queries in flight the
	 * default buffer overflows and every dropped answer costs a timeout. */
	ao.socket_receive_buffer_size = DC_RESOLVE_RCVBUF;
	int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS
		| ARES_OPT_SOCK_RCVBUF;
	int ar = ares_init_options(&rv.channel, &ao, mask);
	if (ar != ARES_SUCCESS) {
		rc = dc_err_set(err, ar == ARES_ENOMEM ? DC_ENOMEM : DC_EDNS,
			"resolve: c-ares initialisation failed: %s", ares_strerror(ar));
		goto out;
	}
	rv.channel_ok = true;
	if (opts->servers && *opts->servers) {
		ar = ares_set_servers_ports_csv(rv.channel, opts->servers);
		if (ar != ARES_SUCCESS) {
			rc = dc_err_set(err, DC_ECONFIG, "resolve: bad [dns] servers \"%s\": %s",
				opts->servers, ares_strerror(ar));
			goto out;
		}
	}

	/* The system's list file (kept current by the publicsuffix package) if
	 * present, else the list compiled into libpsl. */
	psl = psl_latest(NULL);
	rv.psl = psl ? psl : psl_builtin();

	size_t max = opts->max_inflight > 0 ? (size_t)opts->max_inflight : 1;
	/* A dead resolver would cost every IP the full timeout: once a whole
	 * window of lookups in a row got no answer, start no more. */
	size_t dead_after = max > DC_RESOLVE_DEAD_AFTER ? max : DC_RESOLVE_DEAD_AFTER;
	size_t next = 0;
	bool stopped = false, dead = false;
	while ((next < n && !stopped) || rv.inflight > 0) {
		if (opts->stop && *opts->stop)
			stopped = true;
		if (rv.timeouts_in_row >= dead_after)
			stopped = dead = true;
		while (next < n && rv.inflight < max && !rv.oom && !stopped) {
			lookup_start(&rv, ips[next], next);
			next++;
		}
		if (rv.oom) {
			rc = dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
			goto out;
		}
		if (rv.inflight == 0)
			continue;
		if (loop_once(&rv) != 0) {
			if (rv.oom)
				rc = dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
			else
				rc = dc_err_set(err, DC_EDNS, "resolve: poll failed: %s", strerror(errno));
			goto out;
		}
	}
	if (rv.oom)
		rc = dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
	else if (dead && next < n)
		rc = dc_err_set(err, DC_EDNS, "resolve: no answer from the DNS server%s (%s) for %zu "
			"lookups in a row; %zu of %zu IPs left for the next run",
			opts->servers && strchr(opts->servers, ',') ? "s" : "",
			opts->servers && *opts->servers ? opts->servers : "system resolver",
			rv.timeouts_in_row, n - next, n);
	else if (stopped && next < n)
		rc = dc_err_set(err, DC_EINTERRUPTED, "resolve: stopped after %zu of %zu IPs", next, n);
out:
	/* Destroying the channel calls every outstanding callback with
	 * ARES_EDESTRUCTION, which frees the lookups. */
	if (rv.channel_ok)
		ares_destroy(rv.channel);
	free(rv.fds);
	free(rv.scratch);
	psl_free(psl);
	if (lib_init)
		ares_library_cleanup();
	if (stats)
		stats->seconds += now_seconds() - t0;
	return rc;
}

/* ---- the database side ----------------------------------------------- */

/* IPs without a fresh entry: never looked up, an 'ok' entry older than
 * refresh_after, any other older than retry_after.  Entries written since
 * this run began ($3) are never taken again, so the run ends even with a
 * retry time of zero. */
static const char sql_candidates[] =
	"SELECT s.ip::text FROM ("
	"  SELECT DISTINCT source_ip AS ip FROM dmarc.records WHERE source_ip IS NOT NULL"
	") s LEFT JOIN dmarc.ip_names n ON n.ip = s.ip "
	"WHERE n.ip IS NULL"
	"   OR (n.resolved_at < $3::timestamptz"
	"       AND n.resolved_at < now() - make_interval(secs => CASE WHEN n.status = 'ok'"
	"                                                   THEN $1::int ELSE $2::int END)) "
	"LIMIT $4::int";

/* One batch in one statement.  A transient failure (timeout, servfail,
 * error) on an IP that had a name keeps the name and its confirmation and
 * only records the status and time (so it is retried after retry_after);
 * 'ok' and 'nxdomain' are answers and replace what was there. */
static const char sql_upsert[] =
	"INSERT INTO dmarc.ip_names AS n (ip, ptr, ptr_base_domain, forward_confirmed, resolved_at, status) "
	"SELECT u.ip, u.ptr, u.base, u.confirmed, now(), u.status "
	"FROM unnest($1::inet[], $2::text[], $3::text[], $4::boolean[], $5::text[]) "
	"  AS u(ip, ptr, base, confirmed, status) "
	"ON CONFLICT (ip) DO UPDATE SET "
	"  ptr = CASE WHEN EXCLUDED.status IN ('ok', 'nxdomain') THEN EXCLUDED.ptr ELSE n.ptr END,"
	"  ptr_base_domain = CASE WHEN EXCLUDED.status IN ('ok', 'nxdomain')"
	"                    THEN EXCLUDED.ptr_base_domain ELSE n.ptr_base_domain END,"
	"  forward_confirmed = CASE WHEN EXCLUDED.status IN ('ok', 'nxdomain')"
	"                      THEN EXCLUDED.forward_confirmed ELSE n.forward_confirmed END,"
	"  resolved_at = EXCLUDED.resolved_at,"
	"  status = EXCLUDED.status";

/* A growable text buffer for array literals; ok false after a failed grow. */
typedef struct abuf {
	char *p;
	size_t len, cap;
	bool ok;
} abuf;

static void ab_put(abuf *b, const char *s, size_t n)
{
	if (!b->ok)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (b->len + n + 1 > cap)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->ok = false;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Appends one array element: NULL, or the value double-quoted with '"' and
 * '\' escaped (the array literal syntax of PostgreSQL). */
static void ab_elem(abuf *b, const char *v)
{
	ab_put(b, b->len > 1 ? "," : "", b->len > 1 ? 1 : 0);
	if (!v) {
		ab_put(b, "NULL", 4);
		return;
	}
	ab_put(b, "\"", 1);
	for (const char *s = v; *s; s++) {
		if (*s == '"' || *s == '\\')
			ab_put(b, "\\", 1);
		ab_put(b, s, 1);
	}
	ab_put(b, "\"", 1);
}

/* Stores n results for the IPs in one statement; returns DC_OK or DC_EDB. */
static dc_code store_batch(PGconn *conn, const char *const *ips, const dc_resolve_result *res,
	size_t n, dc_err *err)
{
	dc_code rc = DC_OK;
	abuf a[5];
	PGresult *r = NULL;

	memset(a, 0, sizeof a);
	for (int k = 0; k < 5; k++) {
		a[k].ok = true;
		ab_put(&a[k], "{", 1);
	}
	for (size_t i = 0; i < n; i++) {
		if (!res[i].done)
			continue;
		ab_elem(&a[0], ips[i]);
		ab_elem(&a[1], res[i].ptr);
		ab_elem(&a[2], res[i].base_domain);
		ab_elem(&a[3], res[i].confirmed ? "t" : "f");
		ab_elem(&a[4], dc_resolve_status_name(res[i].status));
	}
	for (int k = 0; k < 5; k++) {
		ab_put(&a[k], "}", 1);
		if (!a[k].ok) {
			rc = dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
			goto out;
		}
	}
	const char *params[5] = { a[0].p, a[1].p, a[2].p, a[3].p, a[4].p };
	r = PQexecParams(conn, sql_upsert, 5, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		rc = dc_pg_fail(conn, r, "resolve: storing names failed", err);
		goto out;
	}
out:
	PQclear(r);
	for (int k = 0; k < 5; k++)
		free(a[k].p);
	return rc;
}

dc_code dc_resolve_run(PGconn *conn, const dc_resolve_opts *opts, dc_resolve_stats *stats,
	dc_err *err)
{
	dc_code rc = DC_OK;
	PGresult *r = NULL;
	char *started = NULL;
	const char **ips = NULL;
	dc_resolve_result *res = NULL;
	size_t n = 0;
	uint64_t done = 0;
	char p_refresh[24], p_retry[24], p_limit[24];

	/* A resolver that cannot be set up (bad [dns] servers) is an error even
	 * when there is nothing to look up. */
	rc = dc_resolve_ips(NULL, 0, opts, NULL, NULL, err);
	if (rc != DC_OK)
		goto out;
	r = PQexecParams(conn, "SELECT now()::text", 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		rc = dc_pg_fail(conn, r, "resolve", err);
		goto out;
	}
	started = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	r = NULL;
	if (!started) {
		rc = dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
		goto out;
	}
	snprintf(p_refresh, sizeof p_refresh, "%d", opts->refresh_after > 0 ? opts->refresh_after : 0);
	snprintf(p_retry, sizeof p_retry, "%d", opts->retry_after > 0 ? opts->retry_after : 0);

	for (;;) {
		if (opts->stop && *opts->stop) {
			rc = dc_err_set(err, DC_EINTERRUPTED, "resolve: stopped after %llu IPs",
				(unsigned long long)done);
			goto out;
		}
		int batch = opts->batch > 0 ? opts->batch : DC_RESOLVE_DEFAULT_BATCH;
		if (opts->max_ips > 0) {
			if (done >= opts->max_ips)
				break;
			if (opts->max_ips - done < (uint64_t)batch)
				batch = (int)(opts->max_ips - done);
		}
		snprintf(p_limit, sizeof p_limit, "%d", batch);
		const char *params[4] = { p_refresh, p_retry, started, p_limit };
		r = PQexecParams(conn, sql_candidates, 4, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			rc = dc_pg_fail(conn, r, "resolve: reading source IPs failed", err);
			goto out;
		}
		n = (size_t)PQntuples(r);
		if (n == 0)
			break;
		ips = calloc(n, sizeof *ips);
		res = calloc(n, sizeof *res);
		if (!ips || !res) {
			rc = dc_err_set(err, DC_ENOMEM, "resolve: out of memory");
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			ips[i] = PQgetvalue(r, (int)i, 0);
		rc = dc_resolve_ips(ips, n, opts, res, stats, err);
		if (rc == DC_EINTERRUPTED || (rc == DC_EDNS && n > 0 && res[0].done)) {
			/* Keep what was looked up; report the stop. */
			dc_err stored;
			if (store_batch(conn, ips, res, n, &stored) != DC_OK)
				rc = dc_err_set(err, stored.code, "%s", stored.msg);
			goto out;
		}
		if (rc != DC_OK)
			goto out;
		rc = store_batch(conn, ips, res, n, err);
		if (rc != DC_OK)
			goto out;
		done += n;
		dc_resolve_results_clear(res, n);
		free(res);
		res = NULL;
		free(ips);
		ips = NULL;
		PQclear(r);
		r = NULL;
		if (n < (size_t)batch)
			break;
	}
out:
	dc_resolve_results_clear(res, n);
	free(res);
	free(ips);
	PQclear(r);
	free(started);
	return rc;
}

/* ---- commands -------------------------------------------------------- */

int dc_cmd_resolve(const dc_config *cfg)
{
	dc_err err;
	dc_store *st = NULL;
	dc_resolve_opts opts;
	dc_resolve_stats stats;
	int status = 0;

	dc_err_clear(&err);
	memset(&stats, 0, sizeof stats);
	dc_resolve_opts_from_config(&opts, cfg);
	if (dc_store_open(cfg->db_conninfo, cfg->db_password, &st, &err) != DC_OK) {
		dc_log_error("resolve: %s", dc_err_text(&err));
		status = dc_exit_for(err.code);
		goto out;
	}
	dc_code rc = dc_resolve_run(dc_store_conn(st), &opts, &stats, &err);
	if (rc != DC_OK) {
		dc_log_error("%s", dc_err_text(&err));
		/* bad [dns] servers: 2 (DC_ECONFIG); a resolver that stopped
		 * answering: 75 (DC_EDNS); the database as everywhere */
		status = dc_exit_for(rc);
		goto out;
	}
	dc_log_info("resolve: %llu IPs in %.2f s: %llu named (%llu forward-confirmed), "
		"%llu nxdomain, %llu timeout, %llu servfail, %llu error",
		(unsigned long long)stats.ips, stats.seconds, (unsigned long long)stats.ok,
		(unsigned long long)stats.confirmed, (unsigned long long)stats.nxdomain,
		(unsigned long long)stats.timeout, (unsigned long long)stats.servfail,
		(unsigned long long)stats.error);
	if (stats.ips > 0 && stats.timeout == stats.ips) {
		dc_log_error("resolve: no DNS server answered (%s); the IPs are retried after %d s",
			opts.servers ? opts.servers : "system resolver", opts.retry_after);
		status = DC_EXIT_TEMPFAIL;
	}
out:
	dc_store_free(st);
	return status;
}

int dc_check_dns(const dc_config *cfg)
{
	dc_err err;
	dc_resolve_opts opts;
	dc_resolve_result res;
	const char *ip = "127.0.0.1";
	int status = 0;

	dc_err_clear(&err);
	memset(&res, 0, sizeof res);
	dc_resolve_opts_from_config(&opts, cfg);
	opts.tries = 1;
	if (dc_resolve_ips(&ip, 1, &opts, &res, NULL, &err) != DC_OK) {
		dc_log_error("check-config: DNS: %s", dc_err_text(&err));
		status = dc_exit_for(err.code);
	} else if (res.status == DC_RESOLVE_TIMEOUT) {
		dc_log_error("check-config: DNS: no answer from %s within %d ms",
			opts.servers ? opts.servers : "the system resolver", opts.timeout_ms);
		status = DC_EXIT_TEMPFAIL;
	} else {
		dc_log_info("check-config: DNS: %s answers (PTR 127.0.0.1: %s)",
			opts.servers ? opts.servers : "the system resolver",
			dc_resolve_status_name(res.status));
	}
	dc_resolve_results_clear(&res, 1);
	return status;
}
