/* tests/lib/cyrus_preload.c - LD_PRELOADed into the test Cyrus by
 * tests/lib/cyrus.sh (a test helper, never part of the collector):
 *
 * - Cyrus logs only through syslog(3), and the machines the tests run on have
 *   no syslog daemon, so its messages (logins, errors, why a command failed)
 *   would be lost.  These syslog entry points append each message as one line
 *   to the file named by DC_CYRUS_SYSLOG instead.
 * - fsync and fdatasync do nothing: Cyrus syncs its databases and index files
 *   several times per APPEND or MOVE (30 ms a message on the test machines),
 *   and a test server loses nothing by it, as Dovecot's `mail_fsync = never`
 *   and PostgreSQL's `fsync = off` in the tests.  The tests kill and restart
 *   processes, never the machine, so what was written is still there. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void
dc_log(int pri, const char *fmt, va_list ap)
{
	const char *path = getenv("DC_CYRUS_SYSLOG");
	FILE *f = path ? fopen(path, "a") : NULL;

	if (f == NULL)
		return;
	fprintf(f, "%ld [%d] <%d> ", (long)time(NULL), (int)getpid(), pri & 7);
	vfprintf(f, fmt, ap); /* glibc's printf knows syslog's %m */
	fputc('\n', f);
	fclose(f);
}

void
syslog(int pri, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	dc_log(pri, fmt, ap);
	va_end(ap);
}

void
vsyslog(int pri, const char *fmt, va_list ap)
{
	dc_log(pri, fmt, ap);
}

/* what calls to syslog become under _FORTIFY_SOURCE (Debian builds Cyrus so) */
void
__syslog_chk(int pri, int flag, const char *fmt, ...)
{
	va_list ap;
	(void)flag;
	va_start(ap, fmt);
	dc_log(pri, fmt, ap);
	va_end(ap);
}

void
__vsyslog_chk(int pri, int flag, const char *fmt, va_list ap)
{
	(void)flag;
	dc_log(pri, fmt, ap);
}

int
fsync(int fd)
{
	(void)fd;
	return 0;
}

int
fdatasync(int fd)
{
	(void)fd;
	return 0;
}
