/*
 * dc_log.h - the program's log: one line per event on stderr, with a level.
 *
 * Under systemd (JOURNAL_STREAM set) each line starts with the sd-daemon
 * priority prefix ("<3>" ...) so journald keeps the level; on a terminal or a
 * pipe the level is written as a word.  Only the program and its service loop
 * log; library code returns errors instead.
 */
#ifndef DC_LOG_H
#define DC_LOG_H

typedef enum { DC_LOG_ERROR = 3, DC_LOG_WARN = 4, DC_LOG_INFO = 6, DC_LOG_DEBUG = 7 } dc_log_level;

/* Messages above level are dropped (default DC_LOG_INFO). */
void dc_log_set_level(dc_log_level level);
dc_log_level dc_log_get_level(void);

void dc_log(dc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define dc_log_error(...) dc_log(DC_LOG_ERROR, __VA_ARGS__)
#define dc_log_warn(...)  dc_log(DC_LOG_WARN, __VA_ARGS__)
#define dc_log_info(...)  dc_log(DC_LOG_INFO, __VA_ARGS__)
#define dc_log_debug(...) dc_log(DC_LOG_DEBUG, __VA_ARGS__)

#endif
