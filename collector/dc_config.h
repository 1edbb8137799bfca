/*
 * dc_config.h - the configuration file (INI, inih) of SPEC section 7.
 *
 * Every key can also be set from the environment as
 * DMARC_COLLECTOR_<SECTION>_<KEY> (upper case, section name without its
 * label); every secret also from a *_file.  Unknown sections and keys are
 * errors.  Precedence: environment over file over defaults.
 */
#ifndef DC_CONFIG_H
#define DC_CONFIG_H

#include <stdbool.h>
#include <sys/socket.h>

#include "dc_error.h"
#include "dc_limits.h"

typedef enum { DC_AFTER_MOVE = 0, DC_AFTER_SEEN, DC_AFTER_DELETE } dc_after;
typedef enum { DC_TLS_REQUIRED = 0, DC_TLS_NONE } dc_tls;

typedef struct dc_mailbox_config {
	char *label; /* the NAME of [mailbox NAME] */
	char *url;   /* imaps://host[:port]/FOLDER or imap://... */
	char *user;
	char *password;             /* from password_file or the environment; NULL if none */
	char *oauth2_token_command; /* XOAUTH2 when set */
	char *ca_file;
	dc_tls tls;
	char *archive_folder; /* default "Archive/DMARC" */
	char *invalid_folder; /* default "Archive/Invalid" */
	dc_after after;
	int connections; /* IMAP (and database) connections per poll, 1..16, default 4 */
} dc_mailbox_config;

typedef struct dc_config {
	char *path;        /* file read, NULL when none */
	char *db_conninfo; /* NULL = libpq environment */
	char *db_password; /* from [database] password_file; a libpq connection parameter */
	dc_mailbox_config *mailboxes;
	size_t n_mailboxes;
	int interval;        /* [service] interval, seconds, default 300 */
	char *dns_servers;   /* [dns] servers, "ip:port,..."; NULL = system */
	int dns_timeout_ms;  /* [dns] timeout_ms, default 2000 */
	int dns_retry_after; /* [dns] retry_after, seconds before a failed lookup is retried, default 86400 */
	int dns_in_flight;   /* [dns] in_flight, IPs resolved at once, default 64 */
	char *asn_db;        /* [enrich] asn_db, a MaxMind-format file with AS numbers; NULL = none */
	char *country_db;    /* [enrich] country_db, one with countries (may be asn_db); NULL = none */
	char *metrics_listen; /* [service] metrics_listen, HOST:PORT of /metrics; NULL = off */
	dc_limits limits;
	char *alerts_command; /* [alerts] command: PATH [ARG...], run after each poll round; NULL = none */
	int alerts_timeout;   /* [alerts] timeout, seconds before the command is killed, default 60 */
} dc_config;

/* Loads path (NULL: no file, defaults and environment only) into a new config
 * owned by the caller (dc_config_free).  Returns DC_ECONFIG with err naming
 * the file, line and key on any unknown or invalid entry. */
dc_code dc_config_load(const char *path, dc_config **out, dc_err *err) DC_WUR;
void dc_config_free(dc_config *cfg);

/* Parses a listening address, "IPv4:PORT", "[IPv6]:PORT" or "localhost:PORT"
 * (127.0.0.1), into *ss and *len (no name lookup).  DC_ECONFIG with a reason. */
dc_code
dc_config_parse_listen(const char *value, struct sockaddr_storage *ss, socklen_t *len, dc_err *err) DC_WUR;

/* Checks what loading does not: the mailbox's URL parses, tls = none only on
 * loopback, its folder names can be sent.  DC_ECONFIG with a reason. */
dc_code dc_config_check_mailbox(const dc_mailbox_config *mb, dc_err *err) DC_WUR;

/* What `poll` needs: at least one mailbox, each passing
 * dc_config_check_mailbox.  DC_ECONFIG with the first reason. */
dc_code dc_config_check_poll(const dc_config *cfg, dc_err *err) DC_WUR;

#endif
