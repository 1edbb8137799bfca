/*
 * dc_commands.h - the commands of SPEC section 4 that live in their own
 * modules, as main.c calls them.  Each returns the program's exit status
 * (0 stored, 1 some inputs rejected, 2 usage/configuration, 75 a service
 * could not be reached) and logs through dc_log.
 */
#ifndef DC_COMMANDS_H
#define DC_COMMANDS_H

#include <stdbool.h>

#include "dc_config.h"

/* `poll [--once]` (program/dc_service.c).  config_path is kept so SIGHUP can
 * reload it; cfg is the configuration already loaded from it (with --db
 * applied); db_override is --db or NULL, re-applied after a reload. */
int dc_cmd_poll(const char *config_path, const char *db_override, dc_config *cfg, bool once);

/* `resolve` (program/dc_resolve_cmd.c): PTR names for source IPs without a
 * fresh dmarc.ip_names entry. */
int dc_cmd_resolve(const dc_config *cfg);

/* `prune --older-than DAYS` (program/dc_prune_cmd.c, on storage/dc_prune.c). */
int dc_cmd_prune(const dc_config *cfg, int older_than_days);

/* `senders load FILE [--source NAME]`, `senders set DOMAIN NAME TYPE`,
 * `senders unset DOMAIN` (program/dc_senders_cmd.c, on storage/dc_senders.c);
 * argv[0] is "senders". */
int dc_cmd_senders(const dc_config *cfg, int argc, char **argv);

/* check-config's reachability probes, each 0 on success or 75 with a logged
 * reason: IMAP login to every mailbox, DNS servers answering
 * (program/dc_resolve_cmd.c). */
int dc_check_imap(const dc_config *cfg);
int dc_check_dns(const dc_config *cfg);

/* check-config's [enrich] probe: opens asn_db and country_db (when set) and
 * logs their type and build time; 0, or 2 when one cannot be read. */
int dc_check_ipdb(const dc_config *cfg);

#endif
