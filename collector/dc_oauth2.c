/*
 * dc_oauth2.c - the XOAUTH2 bearer token for an IMAP login: runs the
 * mailbox's oauth2_token_command through /bin/sh (popen) and keeps the first
 * line it prints.
 *
 * The token is a secret: it is read into a buffer of DC_MAX_OAUTH2_TOKEN
 * bytes that is wiped (explicit_bzero) before it is freed, and the rest of
 * a longer output is read and dropped, so the command is not killed by
 * SIGPIPE.  Exit status 75 (EX_TEMPFAIL, sysexits.h) or a signal means
 * "try again later" (DC_EIMAP, exit 75), any other failure that the login
 * cannot happen (DC_EAUTH, exit 2).
 *
 * Not here: caching the token or fetching a new one when the server refuses
 * it (dc_ingest), the login itself (dc_imap).
 */
#include "dc_oauth2.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "dc_exit.h"
#include "dc_limits.h"

dc_code
dc_oauth2_token(const char *cmd, char **token, dc_err *err)
{
	char *buf = malloc(DC_MAX_OAUTH2_TOKEN + 1);
	size_t n = 0;
	FILE *f;
	int status;
	dc_code rc = DC_OK;

	*token = NULL;
	if (buf == NULL)
		return dc_err_set(err, DC_ENOMEM, "out of memory");
	f = popen(cmd, "r");
	if (f == NULL) {
		rc = dc_err_set(
			err, DC_ECONFIG, "oauth2_token_command could not be started: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		size_t got = fread(buf + n, 1, DC_MAX_OAUTH2_TOKEN - n, f);
		if (got == 0)
			break;
		n += got;
		if (n == DC_MAX_OAUTH2_TOKEN) { /* read the rest so the command is not killed by SIGPIPE */
			char sink[512];
			while (fread(sink, 1, sizeof(sink), f) > 0)
				;
			break;
		}
	}
	buf[n] = '\0';
	status = pclose(f);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		bool later = status != -1 && (!WIFEXITED(status) || WEXITSTATUS(status) == DC_EXIT_TEMPFAIL);

		rc = dc_err_set(err, later ? DC_EIMAP : DC_EAUTH, "oauth2_token_command failed (%s %d)",
			WIFEXITED(status) ? "exit status" : "signal",
			WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		goto out;
	}
	{
		char *s = buf + strspn(buf, " \t\r\n");
		size_t len = strcspn(s, "\r\n");

		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len == 0) {
			rc = dc_err_set(err, DC_EAUTH, "oauth2_token_command printed no token");
			goto out;
		}
		*token = strndup(s, len);
		if (*token == NULL)
			rc = dc_err_set(err, DC_ENOMEM, "out of memory");
	}
out:
	if (buf != NULL) {
		explicit_bzero(buf, DC_MAX_OAUTH2_TOKEN + 1);
		free(buf);
	}
	return rc;
}
