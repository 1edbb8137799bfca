/*
 * dc_log.c - leveled one-line logging to stderr, journald-aware.
 * Process-wide state by design: this is the program's log, not library code.
 */
#include "dc_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dc_log_level g_level = DC_LOG_INFO;

void
dc_log_set_level(dc_log_level level)
{
	g_level = level;
}

dc_log_level
dc_log_get_level(void)
{
	return g_level;
}

static const char *
level_word(dc_log_level level)
{
	switch (level) {
	case DC_LOG_ERROR: return "error";
	case DC_LOG_WARN: return "warning";
	case DC_LOG_INFO: return "info";
	case DC_LOG_DEBUG: return "debug";
	}
	return "info";
}

void
dc_log(dc_log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	if (level > g_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (getenv("JOURNAL_STREAM") != NULL)
		fprintf(stderr, "<%d>%s\n", (int)level, line);
	else
		fprintf(stderr, "dmarc-collector: %s: %s\n", level_word(level), line);
}
