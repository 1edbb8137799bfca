/*
 * dc_resolver.c - PTR names of IPs with forward confirmation (c-ares), and
 * their registrable domain (libpsl).
 *
 * Per IP: a PTR query for the reverse name (dc_dnsname_reverse), then for
 * every PTR name a forward query of the IP's own family (A for IPv4, AAAA
 * for IPv6); a name whose records hold the IP is forward-confirmed, as the
 * "iprev" method of RFC 8601 section 3 defines it.  The name kept is the
 * first confirmed one, else the first.  Names are normalised by
 * dc_dnsname_norm.  Queries go out with ares_query (no search list, no
 * /etc/hosts) so only the DNS answers.
 *
 * Concurrency: up to max_inflight IPs are in flight at once on one c-ares
 * channel; new IPs are started only from the event loop, never from inside
 * a callback, so an immediate failure cannot recurse.  The loop waits with
 * poll() on the sockets c-ares reports through its socket-state callback.
 * A resolver that stops answering (a whole window of timeouts in a row)
 * ends the run with DC_EDNS rather than costing every IP the full timeout.
 *
 * Deliberately not here: SQL (storage/dc_resolve_store.c), batches and
 * configuration (collector/dc_resolve.c), the pure name helpers
 * (dc_dnsname.c).  DNS failures of one IP are a status, not an error.
 */
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

#include "dc_dnsname.h"
#include "dc_limits.h"
#include "dc_resolver.h"

#define DC_RESOLVE_RCVBUF     (1024 * 1024) /* UDP receive buffer asked for */
#define DC_RESOLVE_DEAD_AFTER 16            /* timeouts in a row (at least max_inflight) = resolver dead */

/* ---- status ---------------------------------------------------------- */

const char *
dc_resolve_status_name(dc_resolve_status s)
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
static dc_resolve_status
map_status(int ares_status)
{
	for (size_t i = 0; i < sizeof status_map / sizeof status_map[0]; i++)
		if (status_map[i].ares == ares_status)
			return status_map[i].status;
	return DC_RESOLVE_ERROR;
}

/* ---- options and results -------------------------------------------- */

void
dc_resolver_opts_default(dc_resolver_opts *o)
{
	memset(o, 0, sizeof *o);
	o->timeout_ms = DC_RESOLVE_DEFAULT_TIMEOUT_MS;
	o->tries = DC_RESOLVE_DEFAULT_TRIES;
	o->max_inflight = DC_RESOLVE_DEFAULT_MAX_INFLIGHT;
}

void
dc_resolve_results_clear(dc_resolve_result *results, size_t n)
{
	if (!results)
		return;
	for (size_t i = 0; i < n; i++) {
		free(results[i].ptr);
		free(results[i].base_domain);
		memset(&results[i], 0, sizeof results[i]);
	}
}

/* ---- the event loop -------------------------------------------------- */

typedef struct resolver resolver;
typedef struct lookup lookup;

/* One forward query of one PTR name. */
typedef struct fwd {
	lookup *lk;
	char *name; /* normalised; owned */
	int ares_status;
	bool confirmed;
} fwd;

/* One IP in flight. */
struct lookup {
	resolver *rv;
	size_t idx; /* into rv->results */
	int family;
	unsigned char addr[16];
	int pending;    /* outstanding queries */
	int ptr_status; /* c-ares status of the PTR query */
	bool bad_name;  /* a PTR name was not a host name */
	fwd fwd[DC_MAX_PTR_NAMES];
	int n_fwd;
};

struct resolver {
	ares_channel channel;
	bool channel_ok;
	struct pollfd *fds; /* sockets c-ares asked us to watch */
	size_t n_fds, cap_fds;
	struct pollfd *scratch; /* loop_once's copy of fds */
	size_t cap_scratch;
	dc_resolve_result *results;
	size_t inflight;
	size_t timeouts_in_row; /* lookups finished as 'timeout' since the last answer */
	bool oom;
	const psl_ctx_t *psl;
	dc_resolve_stats *stats;
	const dc_resolver_opts *opts;
};

/* Makes room for need entries in *fds (*cap allocated; doubling from 8).
 * Returns false when memory ran out (*fds unchanged).  Not capped: the
 * sockets are c-ares's own, one or two per configured server, not input. */
static bool
pollfds_reserve(struct pollfd **fds, size_t *cap, size_t need)
{
	if (need <= *cap)
		return true;
	size_t n = *cap ? *cap * 2 : 8;
	while (n < need)
		n *= 2;
	struct pollfd *p = realloc(*fds, n * sizeof *p);
	if (!p)
		return false;
	*fds = p;
	*cap = n;
	return true;
}

/* c-ares socket-state callback: keeps rv->fds in step with c-ares. */
static void
sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
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
		if (!pollfds_reserve(&rv->fds, &rv->cap_fds, rv->n_fds + 1)) {
			rv->oom = true;
			return;
		}
		rv->n_fds++;
		rv->fds[i].fd = fd;
	}
	rv->fds[i].events = (short)((readable ? POLLIN : 0) | (writable ? POLLOUT : 0));
	rv->fds[i].revents = 0;
}

/* Fills the lookup's result and frees what it owns (lk itself included). */
static void
lookup_finish(lookup *lk)
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
	if (rv->opts->progress)
		rv->opts->progress(rv->opts->progress_ctx);
	rv->timeouts_in_row = st == DC_RESOLVE_TIMEOUT ? rv->timeouts_in_row + 1 : 0;
	if (pick >= 0) {
		res->ptr = lk->fwd[pick].name;
		lk->fwd[pick].name = NULL;
		res->confirmed = lk->fwd[pick].confirmed;
		res->base_domain = dc_dnsname_base_domain(rv->psl, res->ptr, &rv->oom);
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
static void
fwd_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
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
static void
add_name(lookup *lk, const char *raw)
{
	if (lk->n_fwd >= DC_MAX_PTR_NAMES)
		return;
	char *n = dc_dnsname_norm(raw);
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
static void
ptr_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
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
static void
lookup_start(resolver *rv, const char *ip, size_t idx)
{
	char rname[DC_DNSNAME_REVERSE_SIZE];
	lookup *lk = calloc(1, sizeof *lk);
	if (!lk) {
		rv->oom = true;
		return;
	}
	lk->rv = rv;
	lk->idx = idx;
	rv->inflight++;

	if (dc_dnsname_parse_ip(ip, lk->addr, &lk->family) != DC_OK ||
		dc_dnsname_reverse(lk->family, lk->addr, rname, sizeof rname) != DC_OK) {
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
static int
loop_once(resolver *rv)
{
	struct timeval tv, *tvp;
	size_t n = rv->n_fds;
	/* A copy: callbacks run by ares_process_fd may change rv->fds. */
	if (!pollfds_reserve(&rv->scratch, &rv->cap_scratch, n)) {
		rv->oom = true;
		return -1;
	}
	struct pollfd *fds = rv->scratch;
	if (n > 0)
		memcpy(fds, rv->fds, n * sizeof fds[0]);
	tvp = ares_timeout(rv->channel, NULL, &tv);
	int ms = tvp ? (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000) : 1000;
	int r = poll(fds, (nfds_t)n, ms);
	if (r < 0)
		return errno == EINTR ? 0 : -1; /* a signal: the caller checks opts->stop */
	for (size_t i = 0; i < n && r > 0; i++) {
		if (!fds[i].revents)
			continue;
		ares_socket_t rd = (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd :
										     ARES_SOCKET_BAD;
		ares_socket_t wr = (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD;
		ares_process_fd(rv->channel, rd, wr);
	}
	/* Timeouts of queries whose sockets were silent. */
	ares_process_fd(rv->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	return 0;
}

static double
now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

dc_code
dc_resolve_ips(const char *const *ips, size_t n, const dc_resolver_opts *opts, dc_resolve_result *results,
	dc_resolve_stats *stats, dc_err *err)
{
	dc_code rc = DC_OK;
	resolver rv;
	psl_ctx_t *psl = NULL;
	bool lib_init = false;
	double t0 = now_seconds();

	memset(&rv, 0, sizeof rv);
	rv.results = results;
	rv.stats = stats;
	rv.opts = opts;

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
	int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS |
		ARES_OPT_SOCK_RCVBUF;
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
		rc = dc_err_set(err, DC_EDNS,
			"resolve: no answer from the DNS server%s (%s) for %zu "
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

size_t
dc_resolver_libversions(dc_libversion *v, size_t max)
{
	const struct {
		const char *name, *version;
	} libs[] = { { "c-ares", ares_version(NULL) }, { "libpsl", psl_get_version() } };
	size_t n = 0;

	for (; n < max && n < sizeof(libs) / sizeof(libs[0]); n++) {
		v[n].name = libs[n].name;
		snprintf(v[n].version, sizeof(v[n].version), "%s", libs[n].version);
	}
	return n;
}
