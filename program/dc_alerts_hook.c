/*
 * dc_alerts_hook.c - the [alerts] command: after each round of polls the
 * rows of dmarc.alerts not sent yet (storage/dc_alerts_sent.c, JSON built by
 * PostgreSQL) go to an administrator's program on its stdin; exit status 0
 * records them in dmarc.alerts_sent, so each alert is sent once; anything
 * else leaves them for the next round.
 *
 * The command is a path and blank-separated arguments, started with
 * posix_spawn: no shell, so nothing in the configuration is interpreted.
 * (dc_oauth2's popen reads one way and waits without a limit; this needs
 * stdin and stdout both, a timeout and a kill, so it has its own loop.)
 * The child gets:
 *   - stdin: the JSON array (written as it reads; a command that stops
 *     reading is no error, its exit status decides);
 *   - stdout and stderr: one pipe, each line logged ("alerts: LINE");
 *   - the collector's environment without PGPASSWORD and the
 *     DMARC_COLLECTOR_* variables (the database and IMAP passwords, a
 *     conninfo that may hold one);
 *   - default signal dispositions and an empty mask (the service ignores
 *     SIGPIPE, which exec would otherwise pass on), its own process group.
 * After [alerts] timeout seconds the group is killed (SIGKILL): a hung mail
 * relay cannot stop the polls for longer.  Once the command has exited, the
 * output still buffered is logged and the pipe closed, even if a process it
 * left behind holds the other end.
 *
 * This is the program's side (it logs, it starts processes); the poll loop
 * (dc_service.c) calls dc_alerts_hook_run after each round.
 */
#include "dc_alerts_hook.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dc_alerts_sent.h"
#include "dc_exit.h"
#include "dc_log.h"

extern char **environ;

#define MAX_ARGS      32   /* arguments of the command, its path included */
#define MAX_LOG_LINE  1000 /* bytes of one output line logged; longer ones are cut in pieces */
#define SLICE_MS      100  /* how often the child's exit is looked at */
#define ENV_DROP      "DMARC_COLLECTOR_"
#define ENV_DROP_PGPW "PGPASSWORD="

/* Returns the monotonic clock in milliseconds. */
static long long
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Splits s (modified) at blanks into argv (at most max, NULL-terminated);
 * returns the count, or -1 when there are more than max. */
static int
split_args(char *s, char **argv, int max)
{
	int n = 0;

	for (char *tok = strtok(s, " \t"); tok != NULL; tok = strtok(NULL, " \t")) {
		if (n == max)
			return -1;
		argv[n++] = tok;
	}
	argv[n] = NULL;
	return n;
}

/* Returns the child's environment: pointers into environ without the
 * secrets (see above), NULL-terminated, the array owned by the caller
 * (free); NULL when out of memory. */
static char **
child_env(void)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n] != NULL)
		n++;
	env = calloc(n + 1, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(environ[i], ENV_DROP, strlen(ENV_DROP)) == 0 ||
			strncmp(environ[i], ENV_DROP_PGPW, strlen(ENV_DROP_PGPW)) == 0)
			continue;
		env[k++] = environ[i];
	}
	env[k] = NULL;
	return env;
}

/* The command's output, logged line by line. */
typedef struct out_lines {
	char line[MAX_LOG_LINE + 1];
	size_t len;
} out_lines;

/* Logs the line gathered in o (when there is one) and empties it. */
static void
out_flush(out_lines *o)
{
	while (o->len > 0 && o->line[o->len - 1] == '\r')
		o->len--;
	if (o->len > 0) {
		o->line[o->len] = '\0';
		dc_log_info("alerts: %s", o->line);
	}
	o->len = 0;
}

/* Reads what fd holds now; returns false at end of file or on an error
 * other than "nothing more yet". */
static bool
out_read(int fd, out_lines *o)
{
	char buf[4096];

	for (;;) {
		ssize_t got = read(fd, buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (got <= 0)
			return false;
		for (ssize_t i = 0; i < got; i++) {
			if (buf[i] == '\n') {
				out_flush(o);
				continue;
			}
			o->line[o->len++] = buf[i];
			if (o->len == MAX_LOG_LINE)
				out_flush(o);
		}
	}
}

/* Closes *fd when open and marks it closed. */
static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Starts argv with stdin from in_fd and stdout/stderr to out_fd; returns 0
 * with *pid set, else the errno value. */
static int
spawn(char **argv, char **env, int in_fd, int out_fd, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dflt;
	int e;

	if ((e = posix_spawn_file_actions_init(&fa)) != 0)
		return e;
	if ((e = posix_spawnattr_init(&attr)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return e;
	}
	sigemptyset(&none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGPIPE);
	sigaddset(&dflt, SIGTERM);
	sigaddset(&dflt, SIGINT);
	sigaddset(&dflt, SIGHUP);
	sigaddset(&dflt, SIGCHLD);
	if ((e = posix_spawn_file_actions_adddup2(&fa, in_fd, 0)) == 0 &&
		(e = posix_spawn_file_actions_adddup2(&fa, out_fd, 1)) == 0 &&
		(e = posix_spawn_file_actions_adddup2(&fa, out_fd, 2)) == 0 &&
		(e = posix_spawnattr_setsigmask(&attr, &none)) == 0 &&
		(e = posix_spawnattr_setsigdefault(&attr, &dflt)) == 0 &&
		(e = posix_spawnattr_setpgroup(&attr, 0)) == 0 &&
		(e = posix_spawnattr_setflags(
			 &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP)) == 0)
		e = posix_spawn(pid, argv[0], &fa, &attr, argv, env);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return e;
}

/*
 * Runs cmd with input on its stdin, logging its output, for at most
 * timeout_s seconds.  Returns true when it exited with status 0; otherwise
 * why (why_len bytes) says what happened.
 */
static bool
run_command(const char *cmd, int timeout_s, const char *input, char *why, size_t why_len)
{
	char *copy = strdup(cmd);
	char *argv[MAX_ARGS + 1];
	char **env = NULL;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	out_lines o = { .len = 0 };
	size_t off = 0, len = strlen(input);
	pid_t pid = -1;
	int status = 0, e;
	bool killed = false, lost = false, ok = false;
	long long deadline;

	if (copy == NULL || (env = child_env()) == NULL) {
		snprintf(why, why_len, "out of memory");
		goto out;
	}
	if (split_args(copy, argv, MAX_ARGS) <= 0) {
		snprintf(why, why_len, "no program, or more than %d words", MAX_ARGS);
		goto out;
	}
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
		snprintf(why, why_len, "cannot make a pipe: %s", strerror(errno));
		goto out;
	}
	if ((e = spawn(argv, env, in[0], out[1], &pid)) != 0) {
		pid = -1;
		snprintf(why, why_len, "could not be started: %s", strerror(e));
		goto out;
	}
	close_fd(&in[0]);
	close_fd(&out[1]);
	(void)fcntl(in[1], F_SETFL, O_NONBLOCK);
	(void)fcntl(out[0], F_SETFL, O_NONBLOCK);
	if (len == 0)
		close_fd(&in[1]);
	deadline = now_ms() + (long long)timeout_s * 1000;
	for (;;) {
		struct pollfd p[2];
		nfds_t np = 0;
		long long left;
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break; /* exited: what it wrote is in the pipe */
		if (w < 0 && errno == ECHILD) {
			lost = true; /* reaped elsewhere (SIGCHLD ignored): its status is unknown */
			break;
		}
		left = deadline - now_ms();
		if (left <= 0) {
			kill(-pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			killed = true;
			break;
		}
		if (in[1] >= 0)
			p[np++] = (struct pollfd){ .fd = in[1], .events = POLLOUT };
		if (out[0] >= 0)
			p[np++] = (struct pollfd){ .fd = out[0], .events = POLLIN };
		if (poll(np > 0 ? p : NULL, np, left < SLICE_MS ? (int)left : SLICE_MS) <= 0)
			continue; /* the slice ran out, or a signal: look at the child again */
		for (nfds_t i = 0; i < np; i++) {
			if (p[i].revents == 0)
				continue;
			if (p[i].fd == in[1]) {
				ssize_t put = write(in[1], input + off, len - off);
				if (put > 0)
					off += (size_t)put;
				/* EPIPE: it stopped reading; its exit status says whether that is fine */
				if (off == len || (put < 0 && errno != EAGAIN && errno != EINTR))
					close_fd(&in[1]);
			} else if (!out_read(out[0], &o)) {
				close_fd(&out[0]);
			}
		}
	}
	if (out[0] >= 0)
		(void)out_read(out[0], &o); /* not waiting for processes it left behind */
	out_flush(&o);
	if (killed)
		snprintf(why, why_len, "killed after %d s ([alerts] timeout)", timeout_s);
	else if (lost)
		snprintf(why, why_len, "exit status unknown");
	else if (WIFSIGNALED(status))
		snprintf(why, why_len, "killed by signal %d", WTERMSIG(status));
	else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		snprintf(why, why_len, "exit status %d", WEXITSTATUS(status));
	else
		ok = true;
out:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	free(env);
	free(copy);
	return ok;
}

/* Frees the store after a database failure: the next poll opens a new one. */
static void
drop_store(dc_store **st, dc_code rc)
{
	if (rc == DC_EDB || rc == DC_EDBREFUSED) {
		dc_store_free(*st);
		*st = NULL;
	}
}

/* See dc_alerts_hook.h. */
void
dc_alerts_hook_run(const dc_config *cfg, dc_store **st)
{
	char *json = NULL;
	char why[256] = "";
	size_t n = 0;
	dc_err err;
	dc_code rc;

	if (cfg->alerts_command == NULL || *st == NULL)
		return;
	dc_err_clear(&err);
	rc = dc_alerts_pending(*st, DC_ALERTS_MAX_PER_RUN, &json, &n, &err);
	if (rc != DC_OK) {
		dc_log_warn("alerts: %s", dc_err_text(&err));
		drop_store(st, rc);
		return;
	}
	if (n == 0)
		return;
	if (!run_command(cfg->alerts_command, cfg->alerts_timeout, json, why, sizeof(why))) {
		dc_log_error(
			"alerts: command %s: %s; its %zu alert%s will be given again after the next poll",
			cfg->alerts_command, why, n, n == 1 ? "" : "s");
		goto out;
	}
	rc = dc_alerts_mark_sent(*st, json, &err);
	if (rc != DC_OK) {
		dc_log_error(
			"alerts: %zu alert%s sent but not recorded, so sent again after the next poll: %s", n,
			n == 1 ? "" : "s", dc_err_text(&err));
		drop_store(st, rc);
		goto out;
	}
	dc_log_info("alerts: %zu new alert%s given to %s", n, n == 1 ? "" : "s", cfg->alerts_command);
out:
	free(json);
}

/* See dc_alerts_hook.h. */
int
dc_alerts_hook_check(const dc_config *cfg)
{
	char *copy, *argv[MAX_ARGS + 1];
	struct stat sb;
	int status = 0;

	if (cfg->alerts_command == NULL)
		return 0;
	if ((copy = strdup(cfg->alerts_command)) == NULL) {
		dc_log_error("check-config: alerts: out of memory");
		return DC_EXIT_TEMPFAIL;
	}
	if (split_args(copy, argv, MAX_ARGS) <= 0) {
		dc_log_error("check-config: alerts: command: no program, or more than %d words", MAX_ARGS);
		status = DC_EXIT_CONFIG;
	} else if (stat(argv[0], &sb) != 0 || !S_ISREG(sb.st_mode) || access(argv[0], X_OK) != 0) {
		dc_log_error("check-config: alerts: command %s is not an executable file", argv[0]);
		status = DC_EXIT_CONFIG;
	} else {
		dc_log_info("check-config: alerts: command %s, timeout %d s", argv[0], cfg->alerts_timeout);
	}
	free(copy);
	return status;
}
