#include "config.h"

#include "core/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Open temporaries, for the signal handler.  Nodes are linked in only once complete and
 * unlinked before they are freed, so the handler sees a consistent list. */
struct pending {
	struct pending *next;
	char *tmp;
};
static struct pending *volatile pending_head;

static void track(struct pending *p)
{
	p->next = pending_head;
	pending_head = p;
}

static void untrack(const char *tmp)
{
	for (struct pending *volatile *pp = &pending_head; *pp; pp = &(*pp)->next) {
		if ((*pp)->tmp == tmp) {
			struct pending *p = *pp;
			*pp = p->next;
			free(p);
			return;
		}
	}
}

static void on_signal(int sig)
{
	for (struct pending *p = pending_head; p; p = p->next)
		unlink(p->tmp);
	signal(sig, SIG_DFL);
	raise(sig);
}

void llm_atomic_install_signals(void)
{
	int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
		struct sigaction sa = {0};
		struct sigaction old;
		sigaction(sigs[i], NULL, &old);
		if (old.sa_handler == SIG_IGN)
			continue; /* nohup and friends: keep ignoring */
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(sigs[i], &sa, NULL);
	}
}

enum llm_err llm_atomic_open(struct llm_atomic *a, const char *path, struct llm_diag *d)
{
	memset(a, 0, sizeof *a);
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return llm_diag_set(d, LLM_ERR_IS_DIR, path, 0, "is a directory");
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* A device, FIFO or socket (/dev/stderr, a named pipe): nothing to replace, so
		 * write straight to it; commit still reports any write error. */
		a->path = strdup(path);
		a->fp = a->path ? fopen(path, "w") : NULL;
		if (!a->fp) {
			int err = errno;
			llm_atomic_abort(a);
			return llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot open: %s", strerror(err));
		}
		return LLM_OK;
	}
	const char *slash = strrchr(path, '/');
	size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
	size_t n = strlen(path) + 16;
	struct pending *p = malloc(sizeof *p);
	a->path = strdup(path);
	a->tmp = malloc(n);
	if (!p || !a->path || !a->tmp) {
		free(p);
		llm_atomic_abort(a);
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	}
	snprintf(a->tmp, n, "%.*s.%s.XXXXXX", (int)dirlen, path, path + dirlen);
	int fd = mkstemp(a->tmp);
	if (fd < 0) {
		int err = errno;
		free(p);
		free(a->tmp);
		a->tmp = NULL;
		llm_atomic_abort(a);
		return llm_diag_set(d, err == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "cannot create: %s", strerror(err));
	}
	mode_t mask = umask(0);
	umask(mask);
	fchmod(fd, 0666 & ~mask);
	p->tmp = a->tmp;
	track(p);
	a->fp = fdopen(fd, "w");
	if (!a->fp) {
		close(fd);
		llm_atomic_abort(a);
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	}
	return LLM_OK;
}

enum llm_err llm_atomic_commit(struct llm_atomic *a, struct llm_diag *d)
{
	enum llm_err e = LLM_OK;
	if (fflush(a->fp) != 0 || ferror(a->fp) || (a->tmp && fsync(fileno(a->fp)) != 0))
		e = llm_diag_set(d, LLM_ERR_IO, a->path, 0, "write error: %s", strerror(errno));
	int rc = fclose(a->fp);
	a->fp = NULL;
	if (!e && rc != 0)
		e = llm_diag_set(d, LLM_ERR_IO, a->path, 0, "write error: %s", strerror(errno));
	if (!e && a->tmp && rename(a->tmp, a->path) != 0)
		e = llm_diag_set(d, LLM_ERR_IO, a->path, 0, "cannot rename into place: %s",
				 strerror(errno));
	if (!e && a->tmp) {
		untrack(a->tmp);
		free(a->tmp);
		a->tmp = NULL;
	}
	llm_atomic_abort(a);
	return e;
}

void llm_atomic_abort(struct llm_atomic *a)
{
	if (a->fp)
		fclose(a->fp);
	if (a->tmp) {
		unlink(a->tmp);
		untrack(a->tmp);
		free(a->tmp);
	}
	free(a->path);
	memset(a, 0, sizeof *a);
}

enum llm_err llm_atomic_write_file(const char *path, const void *data, size_t n,
				   struct llm_diag *d)
{
	struct llm_atomic a;
	enum llm_err e = llm_atomic_open(&a, path, d);
	if (e)
		return e;
	if (n && fwrite(data, 1, n, a.fp) != n) {
		e = llm_diag_set(d, LLM_ERR_IO, path, 0, "write error: %s", strerror(errno));
		llm_atomic_abort(&a);
		return e;
	}
	return llm_atomic_commit(&a, d);
}

enum llm_err llm_mkdirs(const char *dir, struct llm_diag *diag)
{
	char path[4096];
	size_t n = strlen(dir);
	if (n == 0 || n >= sizeof path)
		return llm_diag_set(diag, LLM_ERR_USAGE, dir, 0, "not a folder name");
	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char c = path[i];
		path[i] = '\0';
		struct stat st;
		if (mkdir(path, 0777) != 0 && errno != EEXIST)
			return llm_diag_set(diag, LLM_ERR_IO, path, 0, "cannot create: %s",
					    strerror(errno));
		if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
			return llm_diag_set(diag, LLM_ERR_IO, path, 0, "not a folder");
		path[i] = c;
	}
	return LLM_OK;
}
