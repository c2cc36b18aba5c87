#include "config.h"

#include "artifact/registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "artifact/manifest.h"
#include "artifact/sign.h"
#include "artifact/tarball.h"
#include "core/atomic.h"
#include "core/buf.h"
#include "core/opt.h"

/* oci.c may not be linked in (yet): call it only when the linker found it. */
#pragma weak llm_registry_open_oci

/* The longest audit line, and so the longest --reason; the journal and the log's tail are
 * read with this cap. */
#define AUDIT_LINE_MAX 8192
#define SMALL_FILE_MAX (64u << 20) /* MANIFEST.json, digest, pushed.json */

/* --- small helpers ------------------------------------------------------------------------ */

static enum llm_err nomem(struct llm_diag *d)
{
	return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
}

static char *path_join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", a, b);
	return p;
}

/* a/b/c/... with up to five parts. */
static char *path_of(const char *root, const char *a, const char *b, const char *c, const char *e)
{
	const char *parts[] = {a, b, c, e};
	size_t n = strlen(root) + 1;
	for (size_t i = 0; i < 4; i++)
		if (parts[i])
			n += strlen(parts[i]) + 1;
	char *p = malloc(n);
	if (!p)
		return NULL;
	size_t at = (size_t)snprintf(p, n, "%s", root);
	for (size_t i = 0; i < 4; i++)
		if (parts[i])
			at += (size_t)snprintf(p + at, n - at, "/%s", parts[i]);
	return p;
}

static enum llm_err io_error(struct llm_diag *d, const char *path, const char *what, int err)
{
	return llm_diag_set(d, err == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0, "%s: %s",
			    what, strerror(err));
}

static void format_now(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static enum llm_err mkdir_p(const char *path, struct llm_diag *d)
{
	char *p = strdup(path);
	if (!p)
		return nomem(d);
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0777) != 0 && errno != EEXIST) {
			enum llm_err e = io_error(d, p, "cannot create directory", errno);
			free(p);
			return e;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return LLM_OK;
}

/* A rename or a new entry is durable only once its directory is synced. */
static enum llm_err fsync_dir(const char *dir, struct llm_diag *d)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return io_error(d, dir, "cannot open directory", errno);
	int rc = fsync(fd);
	int err = errno;
	close(fd);
	/* Some file systems cannot sync a directory; the rename is still atomic there. */
	if (rc != 0 && err != EINVAL && err != EROFS)
		return io_error(d, dir, "cannot sync directory", err);
	return LLM_OK;
}

/* Read a whole small file, NUL-terminated. */
static enum llm_err read_small(const char *path, char **out, size_t *len, size_t max,
			       struct llm_diag *d)
{
	*out = NULL;
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return io_error(d, path, "cannot open", errno);
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	enum llm_err e = buf ? LLM_OK : nomem(d);
	while (!e) {
		if (n + 1 >= cap) {
			if (cap >= max + 1) {
				e = llm_diag_set(d, LLM_ERR_TOO_BIG, path, 0,
						 "larger than %zu bytes", max);
				break;
			}
			size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			char *nb = realloc(buf, ncap);
			if (!nb) {
				e = nomem(d);
				break;
			}
			buf = nb;
			cap = ncap;
		}
		size_t got = fread(buf + n, 1, cap - 1 - n, fp);
		n += got;
		if (got == 0) {
			if (ferror(fp))
				e = io_error(d, path, "read error", errno);
			break;
		}
	}
	fclose(fp);
	if (e) {
		free(buf);
		return e;
	}
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return LLM_OK;
}

/* The first line of a small file, without its newline. */
static enum llm_err read_line_file(const char *path, char **out, struct llm_diag *d)
{
	size_t n;
	enum llm_err e = read_small(path, out, &n, 4096, d);
	if (e)
		return e;
	(*out)[strcspn(*out, "\r\n")] = '\0';
	return LLM_OK;
}

static enum llm_err write_all(int fd, const char *path, const void *p, size_t n, struct llm_diag *d)
{
	const char *s = p;
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return io_error(d, path, "write error", errno);
		}
		s += w;
		n -= (size_t)w;
	}
	return LLM_OK;
}

/* Create path (which must not exist) with data, synced. */
static enum llm_err write_new(const char *path, const void *data, size_t n, struct llm_diag *d)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd < 0)
		return io_error(d, path, "cannot create", errno);
	enum llm_err e = write_all(fd, path, data, n, d);
	if (!e && fsync(fd) != 0)
		e = io_error(d, path, "cannot sync", errno);
	if (close(fd) != 0 && !e)
		e = io_error(d, path, "write error", errno);
	return e;
}

/* Copy src to dst (created, must not exist unless trunc), synced. */
static enum llm_err copy_file(const char *src, const char *dst, bool trunc, uint64_t *size,
			      struct llm_diag *d)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return io_error(d, src, "cannot open", errno);
	int out = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC | (trunc ? O_TRUNC : O_EXCL), 0666);
	if (out < 0) {
		enum llm_err e = io_error(d, dst, "cannot create", errno);
		close(in);
		return e;
	}
	enum llm_err e = LLM_OK;
	uint64_t total = 0;
	static char buf[1 << 16];
	for (;;) {
		ssize_t r = read(in, buf, sizeof buf);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			e = io_error(d, src, "read error", errno);
			break;
		}
		if (r == 0)
			break;
		e = write_all(out, dst, buf, (size_t)r, d);
		if (e)
			break;
		total += (uint64_t)r;
	}
	if (!e && fsync(out) != 0)
		e = io_error(d, dst, "cannot sync", errno);
	if (close(out) != 0 && !e)
		e = io_error(d, dst, "write error", errno);
	close(in);
	if (size)
		*size = total;
	return e;
}

/* Remove a directory tree that we wrote (regular files and directories only). */
static void remove_tree(const char *path)
{
	DIR *dir = opendir(path);
	if (dir) {
		struct dirent *de;
		while ((de = readdir(dir))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char *p = path_join(path, de->d_name);
			if (!p)
				break;
			struct stat st;
			if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
				remove_tree(p);
			else
				unlink(p);
			free(p);
		}
		closedir(dir);
	}
	if (rmdir(path) != 0 && errno == ENOTDIR)
		unlink(path);
}

/* A growable list of strings, NULL-terminated, for the ops' answers. */
struct strv {
	char **v;
	size_t n, cap;
};

static bool strv_push(struct strv *s, const char *str)
{
	if (s->n + 2 > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 16;
		char **nv = realloc(s->v, ncap * sizeof *nv);
		if (!nv)
			return false;
		s->v = nv;
		s->cap = ncap;
	}
	if (!(s->v[s->n] = strdup(str)))
		return false;
	s->v[++s->n] = NULL;
	return true;
}

static enum llm_err strv_finish(struct strv *s, char ***out, size_t *n, struct llm_diag *d)
{
	if (!s->v && !(s->v = calloc(1, sizeof *s->v)))
		return nomem(d);
	*out = s->v;
	*n = s->n;
	return LLM_OK;
}

static int cmp_bytes(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Precedence, then bytewise, so that versions differing only in build metadata still sort
 * the same way every time. */
static int cmp_semver(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	int c = llm_semver_cmp(x, y);
	return c ? c : strcmp(x, y);
}

/* --- names, versions, who ---------------------------------------------------------------- */

bool llm_registry_name_ok(const char *s)
{
	return llm_artifact_name_check(s, NULL) == LLM_OK;
}

bool llm_registry_alias_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > LLM_REGISTRY_NAME_MAX)
		return false;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool llm_registry_version_ok(const char *v)
{
	return llm_semver_check(v, NULL) == LLM_OK;
}

void llm_registry_who(char *out, size_t outsz)
{
	const char *env = getenv("LLMOPS_USER");
	if (env && *env) {
		snprintf(out, outsz, "%s", env);
		return;
	}
	struct passwd *pw = getpwuid(geteuid());
	struct utsname u;
	const char *host = uname(&u) == 0 ? u.nodename : "localhost";
	if (pw && pw->pw_name)
		snprintf(out, outsz, "%s@%s", pw->pw_name, host);
	else
		snprintf(out, outsz, "%ld@%s", (long)geteuid(), host);
}

enum llm_err llm_registry_default_ref(const char *explicit_ref, char *out, size_t outsz,
				      struct llm_diag *d)
{
	const char *ref = explicit_ref;
	if (!ref || !*ref)
		ref = getenv("LLMOPS_PACK_REGISTRY");
	int n;
	if (ref && *ref) {
		n = snprintf(out, outsz, "%s", ref);
	} else {
		const char *home = getenv("LLMOPS_HOME");
		if (home && *home) {
			n = snprintf(out, outsz, "%s/registry", home);
		} else {
			const char *user = getenv("HOME");
			if (!user || !*user) {
				struct passwd *pw = getpwuid(getuid());
				user = pw && pw->pw_dir ? pw->pw_dir : ".";
			}
			n = snprintf(out, outsz, "%s/.llmops/registry", user);
		}
	}
	if (n < 0 || (size_t)n >= outsz)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "registry path too long");
	return LLM_OK;
}

enum llm_err llm_registry_split_ref(const char *s, char **name, char **at, struct llm_diag *d)
{
	*name = NULL;
	*at = NULL;
	char *copy = strdup(s);
	if (!copy)
		return nomem(d);
	char *sep = strchr(copy, '@');
	if (sep) {
		*sep = '\0';
		if (!llm_registry_version_ok(sep + 1) && !llm_registry_alias_ok(sep + 1)) {
			llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				     "%s: not a version (SemVer) or an alias after '@'", s);
			free(copy);
			return LLM_ERR_USAGE;
		}
	}
	if (!llm_registry_name_ok(copy)) {
		llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
			     "%s: not a model name (lower-case letters, digits, '.', '_', '-')", s);
		free(copy);
		return LLM_ERR_USAGE;
	}
	*name = copy;
	*at = sep ? sep + 1 : NULL;
	return LLM_OK;
}

void llm_registry_entry_clear(struct llm_registry_entry *e)
{
	free(e->name);
	free(e->version);
	free(e->digest);
	free(e->manifest);
	free(e->pushed);
	free(e->pushed_by);
	memset(e, 0, sizeof *e);
}

/* --- the directory registry --------------------------------------------------------------- */

struct dirreg {
	char *root;
	int lock_fd; /* -1 when not held */
};

static struct dirreg *DR(struct llm_registry *r)
{
	return r->impl;
}

static char *name_dir(struct dirreg *g, const char *name)
{
	return path_of(g->root, "names", name, NULL, NULL);
}

static char *version_dir(struct dirreg *g, const char *name, const char *version)
{
	return path_of(g->root, "names", name, "versions", version);
}

static char *alias_path(struct dirreg *g, const char *name, const char *alias)
{
	return path_of(g->root, "names", name, "aliases", alias);
}

/* The last line of the audit log (without its newline), or an empty string.  A torn last
 * line (no newline: a write cut short) is cut off first, so what follows starts clean. */
static enum llm_err audit_tail(const char *log, char *line, size_t linesz, struct llm_diag *d)
{
	line[0] = '\0';
	int fd = open(log, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? LLM_OK : io_error(d, log, "cannot open", errno);
	struct stat st;
	enum llm_err e = LLM_OK;
	if (fstat(fd, &st) != 0) {
		e = io_error(d, log, "cannot stat", errno);
		close(fd);
		return e;
	}
	off_t size = st.st_size;
	size_t want = size > (off_t)(2 * AUDIT_LINE_MAX) ? 2 * AUDIT_LINE_MAX : (size_t)size;
	char *buf = malloc(want + 1);
	if (!buf) {
		close(fd);
		return nomem(d);
	}
	ssize_t got = pread(fd, buf, want, size - (off_t)want);
	if (got != (ssize_t)want) {
		e = io_error(d, log, "read error", got < 0 ? errno : EIO);
		goto out;
	}
	buf[want] = '\0';
	size_t end = want;
	if (end && buf[end - 1] != '\n') {
		/* Torn: drop back to the last complete line. */
		char *nl = memrchr(buf, '\n', end);
		size_t keep = nl ? (size_t)(nl - buf) + 1 : 0;
		off_t newsize = size - (off_t)(end - keep);
		if (!nl && size > (off_t)want) {
			e = llm_diag_set(d, LLM_ERR_FORMAT, log, 0, "last line too long");
			goto out;
		}
		if (ftruncate(fd, newsize) != 0 || fsync(fd) != 0) {
			e = io_error(d, log, "cannot repair a torn last line", errno);
			goto out;
		}
		end = keep;
	}
	if (end) {
		buf[end - 1] = '\0';
		char *nl = strrchr(buf, '\n');
		snprintf(line, linesz, "%s", nl ? nl + 1 : buf);
	}
out:
	free(buf);
	close(fd);
	return e;
}

static enum llm_err audit_append(struct dirreg *g, const char *line, struct llm_diag *d)
{
	char *log = path_join(g->root, "audit.log");
	if (!log)
		return nomem(d);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
	enum llm_err e = LLM_OK;
	if (fd < 0) {
		e = io_error(d, log, "cannot open", errno);
	} else {
		size_t n = strlen(line);
		char *withnl = malloc(n + 2);
		if (!withnl) {
			e = nomem(d);
		} else {
			memcpy(withnl, line, n);
			withnl[n] = '\n';
			/* One write: a line is never interleaved, and a kill leaves it whole or
			 * absent (a torn one after a power cut is cut off by audit_tail). */
			e = write_all(fd, log, withnl, n + 1, d);
			free(withnl);
		}
		if (!e && fsync(fd) != 0)
			e = io_error(d, log, "cannot sync", errno);
		close(fd);
	}
	free(log);
	return e;
}

/* Has the change a journal describes reached the tree? */
static bool journal_done(struct dirreg *g, json_t *rec)
{
	const char *action = json_string_value(json_object_get(rec, "action"));
	const char *name = json_string_value(json_object_get(rec, "name"));
	if (!action || !name || !llm_registry_name_ok(name))
		return false;
	if (!strcmp(action, "push")) {
		const char *version = json_string_value(json_object_get(rec, "version"));
		const char *digest = json_string_value(json_object_get(rec, "digest"));
		if (!version || !digest || !llm_registry_version_ok(version))
			return false;
		char *vd = version_dir(g, name, version);
		char *dp = vd ? path_join(vd, "digest") : NULL;
		char *have = NULL;
		bool done =
		    dp && read_line_file(dp, &have, NULL) == LLM_OK && !strcmp(have, digest);
		free(have);
		free(dp);
		free(vd);
		return done;
	}
	const char *alias = json_string_value(json_object_get(rec, "alias"));
	if (!alias || !llm_registry_alias_ok(alias))
		return false;
	const char *to = json_string_value(json_object_get(rec, "to"));
	char *ap = alias_path(g, name, alias);
	char *have = NULL;
	enum llm_err e = ap ? read_line_file(ap, &have, NULL) : LLM_ERR_NOMEM;
	bool done = to ? (e == LLM_OK && !strcmp(have, to)) : e == LLM_ERR_NOT_FOUND;
	free(have);
	free(ap);
	return done;
}

/* Under the lock, before any change: finish the log line of a change cut short after it
 * reached the tree (the journal says which), and forget one that never did. */
static enum llm_err recover(struct dirreg *g, struct llm_diag *d)
{
	char *jp = path_join(g->root, "journal");
	char *log = path_join(g->root, "audit.log");
	char tail[AUDIT_LINE_MAX];
	enum llm_err e = jp && log ? LLM_OK : nomem(d);
	if (!e)
		e = audit_tail(log, tail, sizeof tail, d);
	char *text = NULL;
	if (!e) {
		enum llm_err je = read_small(jp, &text, NULL, AUDIT_LINE_MAX, d);
		if (je == LLM_ERR_NOT_FOUND) {
			goto out;
		} else if (je) {
			e = je;
			goto out;
		}
		text[strcspn(text, "\n")] = '\0';
		json_t *rec = json_loads(text, 0, NULL);
		if (rec && journal_done(g, rec) && strcmp(tail, text) != 0)
			e = audit_append(g, text, d);
		json_decref(rec);
		if (!e && unlink(jp) != 0)
			e = io_error(d, jp, "cannot remove", errno);
		if (!e)
			e = fsync_dir(g->root, d);
	}
out:
	free(text);
	free(log);
	free(jp);
	return e;
}

static enum llm_err journal_write(struct dirreg *g, const char *line, struct llm_diag *d)
{
	char *jp = path_join(g->root, "journal");
	if (!jp)
		return nomem(d);
	enum llm_err e = llm_atomic_write_file(jp, line, strlen(line), d);
	if (!e)
		e = fsync_dir(g->root, d);
	free(jp);
	return e;
}

static void journal_clear(struct dirreg *g)
{
	char *jp = path_join(g->root, "journal");
	if (jp)
		unlink(jp);
	free(jp);
}

/* Take the registry's lock (creating the registry), then recover and sweep the leftovers of
 * changes to name that were cut short. */
static enum llm_err lock_take(struct dirreg *g, const char *name, struct llm_diag *d)
{
	enum llm_err e = mkdir_p(g->root, d);
	if (e)
		return e;
	char *lp = path_join(g->root, "lock");
	if (!lp)
		return nomem(d);
	int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0) {
		e = io_error(d, lp, "cannot open lock file", errno);
		free(lp);
		return e;
	}
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			e = io_error(d, lp, "cannot lock", errno);
			close(fd);
			free(lp);
			return e;
		}
	}
	free(lp);
	g->lock_fd = fd;
	e = recover(g, d);
	if (e)
		return e;
	char *nd = name ? name_dir(g, name) : NULL;
	DIR *dir = nd ? opendir(nd) : NULL;
	if (dir) {
		struct dirent *de;
		while ((de = readdir(dir))) {
			if (strncmp(de->d_name, ".tmp-", 5) != 0)
				continue;
			char *p = path_join(nd, de->d_name);
			if (p)
				remove_tree(p);
			free(p);
		}
		closedir(dir);
	}
	free(nd);
	return LLM_OK;
}

static void lock_release(struct dirreg *g)
{
	if (g->lock_fd >= 0) {
		close(g->lock_fd); /* closing drops the flock */
		g->lock_fd = -1;
	}
}

/* The audit record of a change, as one line of JSON. */
static char *audit_line(const struct llm_registry_why *why, const char *name, const char *version,
			const char *alias, const char *from, const char *to, const char *digest,
			bool has_to)
{
	char ts[32];
	format_now(ts);
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "who", json_string(why->who ? why->who : ""));
	json_object_set_new(o, "action", json_string(why->action));
	json_object_set_new(o, "name", json_string(name));
	if (version)
		json_object_set_new(o, "version", json_string(version));
	if (alias) {
		json_object_set_new(o, "alias", json_string(alias));
		json_object_set_new(o, "from", from ? json_string(from) : json_null());
		if (has_to)
			json_object_set_new(o, "to", to ? json_string(to) : json_null());
	}
	if (digest)
		json_object_set_new(o, "digest", json_string(digest));
	json_object_set_new(o, "why", why->reason ? json_string(why->reason) : json_null());
	char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	if (s && strlen(s) >= AUDIT_LINE_MAX - 1) {
		free(s);
		return NULL;
	}
	return s;
}

static enum llm_err dir_show(struct llm_registry *r, const char *name, const char *version,
			     struct llm_registry_entry *e, struct llm_diag *d)
{
	struct dirreg *g = DR(r);
	memset(e, 0, sizeof *e);
	char *vd = version_dir(g, name, version);
	if (!vd)
		return nomem(d);
	char *dp = path_join(vd, "digest"), *mp = path_join(vd, "MANIFEST.json");
	char *pp = path_join(vd, "pushed.json"), *ap = path_join(vd, "artifact.tar.gz");
	char *sp = path_join(vd, "artifact.tar.gz.sig");
	enum llm_err err = dp && mp && pp && ap && sp ? LLM_OK : nomem(d);
	struct stat st;
	if (!err && stat(vd, &st) != 0)
		err = errno == ENOENT
			  ? llm_diag_set(d, LLM_ERR_NOT_FOUND, NULL, 0,
					 "%s@%s: no such version in %s", name, version, r->ref)
			  : io_error(d, vd, "cannot stat", errno);
	if (!err)
		err = read_line_file(dp, &e->digest, d);
	if (!err)
		err = read_small(mp, &e->manifest, NULL, SMALL_FILE_MAX, d);
	if (!err && stat(ap, &st) == 0)
		e->size = (uint64_t)st.st_size;
	if (!err)
		e->is_signed = access(sp, F_OK) == 0;
	if (!err) {
		char *pushed = NULL;
		if (read_small(pp, &pushed, NULL, SMALL_FILE_MAX, NULL) == LLM_OK) {
			json_t *o = json_loads(pushed, 0, NULL);
			const char *t = json_string_value(json_object_get(o, "pushed"));
			const char *by = json_string_value(json_object_get(o, "by"));
			e->pushed = t ? strdup(t) : NULL;
			e->pushed_by = by ? strdup(by) : NULL;
			json_decref(o);
		}
		free(pushed);
		e->name = strdup(name);
		e->version = strdup(version);
		if (!e->name || !e->version)
			err = nomem(d);
	}
	if (err)
		llm_registry_entry_clear(e);
	free(dp);
	free(mp);
	free(pp);
	free(ap);
	free(sp);
	free(vd);
	return err;
}

static enum llm_err dir_push(struct llm_registry *r, const struct llm_registry_artifact *a,
			     const struct llm_registry_why *why, bool *existed, struct llm_diag *d)
{
	struct dirreg *g = DR(r);
	*existed = false;
	char *nd = name_dir(g, a->name);
	char *vsd = path_of(g->root, "names", a->name, "versions", NULL);
	char *asd = path_of(g->root, "names", a->name, "aliases", NULL);
	char *vd = version_dir(g, a->name, a->version);
	char *tmp = NULL, *line = NULL;
	enum llm_err e = nd && vsd && asd && vd ? LLM_OK : nomem(d);
	if (!e)
		e = lock_take(g, a->name, d);
	if (e)
		goto out;

	struct llm_registry_entry have;
	enum llm_err se = dir_show(r, a->name, a->version, &have, NULL);
	if (se == LLM_OK) {
		if (strcmp(have.digest, a->digest) == 0)
			*existed = true;
		else
			e = llm_diag_set(d, LLM_ERR_CHECK, NULL, 0,
					 "%s@%s is already in the registry with digest %s, not %s: "
					 "versions never change; push a new version",
					 a->name, a->version, have.digest, a->digest);
		llm_registry_entry_clear(&have);
		goto out;
	}
	if (se != LLM_ERR_NOT_FOUND) {
		e = dir_show(r, a->name, a->version, &have, d);
		goto out;
	}

	bool new_name = access(nd, F_OK) != 0;
	if ((e = mkdir_p(vsd, d)) || (e = mkdir_p(asd, d)))
		goto out;
	if (new_name && ((e = fsync_dir(nd, d)) || (e = fsync_dir(g->root, d))))
		goto out;
	{
		char *names = path_join(g->root, "names");
		e = names ? (new_name ? fsync_dir(names, d) : LLM_OK) : nomem(d);
		free(names);
		if (e)
			goto out;
	}

	/* Build the version under a temporary name, then rename it into place: readers see
	 * all of it or none of it. */
	tmp = path_join(nd, ".tmp-push-XXXXXX");
	if (!tmp) {
		e = nomem(d);
		goto out;
	}
	if (!mkdtemp(tmp)) {
		e = io_error(d, nd, "cannot create a temporary directory", errno);
		free(tmp);
		tmp = NULL;
		goto out;
	}
	char *p = path_join(tmp, "artifact.tar.gz");
	e = p ? copy_file(a->path, p, false, NULL, d) : nomem(d);
	if (!e) {
		/* The file was verified before the lock was taken: make sure the copy is still
		 * that artifact (a create rerun meanwhile would change it).  Pull and promote
		 * verify every byte again. */
		struct llm_manifest m = {0};
		char id[LLM_DIGEST_SIZE];
		e = llm_tarball_manifest(p, &m, id, d);
		llm_manifest_free(&m);
		if (!e && strcmp(id, a->digest) != 0)
			e = llm_diag_set(
			    d, LLM_ERR_CHECK, a->path, 0,
			    "changed while it was being pushed (identity %s, verified %s)", id,
			    a->digest);
	}
	free(p);
	if (!e && a->sig_path) {
		p = path_join(tmp, "artifact.tar.gz.sig");
		e = p ? copy_file(a->sig_path, p, false, NULL, d) : nomem(d);
		free(p);
	}
	if (!e) {
		p = path_join(tmp, "MANIFEST.json");
		e = p ? write_new(p, a->manifest, a->manifest_len, d) : nomem(d);
		free(p);
	}
	if (!e) {
		p = path_join(tmp, "digest");
		char buf[160];
		int n = snprintf(buf, sizeof buf, "%s\n", a->digest);
		e = p ? write_new(p, buf, (size_t)n, d) : nomem(d);
		free(p);
	}
	if (!e) {
		char ts[32];
		format_now(ts);
		json_t *o =
		    json_pack("{s:s, s:s, s:I, s:o}", "pushed", ts, "by", why->who ? why->who : "",
			      "size", (json_int_t)a->size, "reason",
			      why->reason ? json_string(why->reason) : json_null());
		char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
		json_decref(o);
		p = path_join(tmp, "pushed.json");
		if (!s || !p)
			e = nomem(d);
		else
			e = write_new(p, s, strlen(s), d);
		free(s);
		free(p);
	}
	if (!e)
		e = fsync_dir(tmp, d);
	if (!e) {
		line = audit_line(why, a->name, a->version, NULL, NULL, NULL, a->digest, false);
		if (!line)
			e = llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "the reason is too long");
	}
	if (!e)
		e = journal_write(g, line, d);
	if (!e && rename(tmp, vd) != 0) {
		e = io_error(d, vd, "cannot rename into place", errno);
		journal_clear(g);
	}
	if (!e) {
		free(tmp);
		tmp = NULL;
		e = fsync_dir(vsd, d);
	}
	if (!e)
		e = audit_append(g, line, d);
	if (!e)
		journal_clear(g);
out:
	if (tmp) {
		remove_tree(tmp);
		free(tmp);
	}
	lock_release(g);
	free(line);
	free(nd);
	free(vsd);
	free(asd);
	free(vd);
	return e;
}

static enum llm_err dir_pull(struct llm_registry *r, const char *name, const char *version,
			     const char *path, const char *sig_path, bool *has_sig,
			     struct llm_diag *d)
{
	struct dirreg *g = DR(r);
	*has_sig = false;
	char *vd = version_dir(g, name, version);
	char *ap = vd ? path_join(vd, "artifact.tar.gz") : NULL;
	char *sp = vd ? path_join(vd, "artifact.tar.gz.sig") : NULL;
	enum llm_err e = ap && sp ? LLM_OK : nomem(d);
	if (!e && access(vd, F_OK) != 0)
		e = llm_diag_set(d, LLM_ERR_NOT_FOUND, NULL, 0, "%s@%s: no such version in %s",
				 name, version, r->ref);
	if (!e)
		e = copy_file(ap, path, true, NULL, d);
	if (!e && access(sp, F_OK) == 0) {
		*has_sig = true;
		if (sig_path)
			e = copy_file(sp, sig_path, true, NULL, d);
	}
	free(vd);
	free(ap);
	free(sp);
	return e;
}

static enum llm_err dir_names(struct llm_registry *r, char ***names, size_t *n, struct llm_diag *d)
{
	struct dirreg *g = DR(r);
	*names = NULL;
	*n = 0;
	char *p = path_join(g->root, "names");
	if (!p)
		return nomem(d);
	struct strv s = {0};
	enum llm_err e = LLM_OK;
	DIR *dir = opendir(p);
	if (!dir && errno != ENOENT)
		e = io_error(d, p, "cannot read directory", errno);
	if (dir) {
		struct dirent *de;
		while ((de = readdir(dir)))
			if (llm_registry_name_ok(de->d_name) && !strv_push(&s, de->d_name)) {
				e = nomem(d);
				break;
			}
		closedir(dir);
	}
	free(p);
	if (!e && s.n)
		qsort(s.v, s.n, sizeof *s.v, cmp_bytes);
	if (!e)
		e = strv_finish(&s, names, n, d);
	if (e)
		llm_strv_free(s.v);
	return e;
}

static enum llm_err dir_versions(struct llm_registry *r, const char *name, char ***versions,
				 size_t *n, struct llm_diag *d)
{
	struct dirreg *g = DR(r);
	*versions = NULL;
	*n = 0;
	char *p = path_of(g->root, "names", name, "versions", NULL);
	if (!p)
		return nomem(d);
	struct strv s = {0};
	enum llm_err e = LLM_OK;
	DIR *dir = opendir(p);
	if (!dir)
		e = errno == ENOENT ? llm_diag_set(d, LLM_ERR_NOT_FOUND, NULL, 0,
						   "%s: no such model in %s", name, r->ref)
				    : io_error(d, p, "cannot read directory", errno);
	if (dir) {
		struct dirent *de;
		while ((de = readdir(dir)))
			if (llm_registry_version_ok(de->d_name) && !strv_push(&s, de->d_name)) {
				e = nomem(d);
				break;
			}
		closedir(dir);
	}
	free(p);
	if (!e && s.n == 0)
		e = llm_diag_set(d, LLM_ERR_NOT_FOUND, NULL, 0, "%s: no such model in %s", name,
				 r->ref);
	if (!e)
		qsort(s.v, s.n, sizeof *s.v, cmp_semver);
	if (!e)
		e = strv_finish(&s, versions, n, d);
	if (e)
		llm_strv_free(s.v);
	return e;
}

static enum llm_err dir_alias_get(struct llm_registry *r, const char *name, const char *alias,
				  char **version, struct llm_diag *d)
{
	*version = NULL;
	char *ap = alias_path(DR(r), name, alias);
	if (!ap)
		return nomem(d);
	enum llm_err e = read_line_file(ap, version, NULL);
	if (e == LLM_ERR_NOT_FOUND)
		e = llm_diag_set(d, LLM_ERR_NOT_FOUND, NULL, 0, "%s@%s: no such alias in %s", name,
				 alias, r->ref);
	else if (e)
		e = read_line_file(ap, version, d);
	else if (!llm_registry_version_ok(*version)) {
		free(*version);
		*version = NULL;
		e = llm_diag_set(d, LLM_ERR_FORMAT, ap, 0, "not a version");
	}
	free(ap);
	return e;
}

static enum llm_err dir_alias_set(struct llm_registry *r, const char *name, const char *alias,
				  const char *version, const struct llm_registry_why *why,
				  char **previous, struct llm_diag *d)
{
	struct dirreg *g = DR(r);
	if (previous)
		*previous = NULL;
	char *nd = name_dir(g, name);
	char *asd = path_of(g->root, "names", name, "aliases", NULL);
	char *ap = alias_path(g, name, alias);
	char *tmp = NULL, *line = NULL, *prev = NULL;
	struct llm_registry_entry ent = {0};
	enum llm_err e = nd && asd && ap ? LLM_OK : nomem(d);
	if (!e)
		e = lock_take(g, name, d);
	if (e)
		goto out;
	if (version && (e = dir_show(r, name, version, &ent, d)))
		goto out;
	enum llm_err ge = dir_alias_get(r, name, alias, &prev, NULL);
	if (ge && ge != LLM_ERR_NOT_FOUND) {
		e = dir_alias_get(r, name, alias, &prev, d);
		goto out;
	}
	if (!version && !prev) {
		e = llm_diag_set(d, LLM_ERR_NOT_FOUND, NULL, 0, "%s@%s: no such alias in %s", name,
				 alias, r->ref);
		goto out;
	}
	if (version && prev && !strcmp(prev, version))
		goto done; /* already there: nothing to log */
	if ((e = mkdir_p(asd, d)))
		goto out;
	line = audit_line(why, name, NULL, alias, prev, version, version ? ent.digest : NULL, true);
	if (!line) {
		e = llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "the reason is too long");
		goto out;
	}
	if (version) {
		tmp = path_join(nd, ".tmp-alias-XXXXXX");
		int fd = tmp ? mkstemp(tmp) : -1;
		if (fd < 0) {
			e = tmp ? io_error(d, nd, "cannot create a temporary file", errno)
				: nomem(d);
			free(tmp);
			tmp = NULL;
			goto out;
		}
		char buf[LLM_REGISTRY_VERSION_MAX + 2];
		int n = snprintf(buf, sizeof buf, "%s\n", version);
		e = write_all(fd, tmp, buf, (size_t)n, d);
		if (!e && fchmod(fd, 0644) != 0)
			e = io_error(d, tmp, "cannot chmod", errno);
		if (!e && fsync(fd) != 0)
			e = io_error(d, tmp, "cannot sync", errno);
		close(fd);
		if (e)
			goto out;
	}
	if ((e = journal_write(g, line, d)))
		goto out;
	if (version ? rename(tmp, ap) != 0 : unlink(ap) != 0) {
		e = io_error(d, ap, version ? "cannot rename into place" : "cannot remove", errno);
		journal_clear(g);
		goto out;
	}
	free(tmp);
	tmp = NULL;
	if ((e = fsync_dir(asd, d)) || (e = audit_append(g, line, d)))
		goto out;
	journal_clear(g);
done:
	if (previous) {
		*previous = prev;
		prev = NULL;
	}
out:
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	lock_release(g);
	llm_registry_entry_clear(&ent);
	free(prev);
	free(line);
	free(nd);
	free(asd);
	free(ap);
	return e;
}

static enum llm_err dir_aliases(struct llm_registry *r, const char *name, char ***aliases,
				char ***versions, size_t *n, struct llm_diag *d)
{
	struct dirreg *g = DR(r);
	*aliases = *versions = NULL;
	*n = 0;
	char *p = path_of(g->root, "names", name, "aliases", NULL);
	if (!p)
		return nomem(d);
	struct strv s = {0}, v = {0};
	enum llm_err e = LLM_OK;
	DIR *dir = opendir(p);
	if (!dir && errno != ENOENT)
		e = io_error(d, p, "cannot read directory", errno);
	if (dir) {
		struct dirent *de;
		while ((de = readdir(dir)))
			if (llm_registry_alias_ok(de->d_name) && !strv_push(&s, de->d_name)) {
				e = nomem(d);
				break;
			}
		closedir(dir);
	}
	free(p);
	if (!e && s.n)
		qsort(s.v, s.n, sizeof *s.v, cmp_bytes);
	for (size_t i = 0; !e && i < s.n; i++) {
		char *ver = NULL;
		e = dir_alias_get(r, name, s.v[i], &ver, d);
		if (!e && !strv_push(&v, ver))
			e = nomem(d);
		free(ver);
	}
	if (!e)
		e = strv_finish(&s, aliases, n, d);
	if (!e) {
		size_t nv;
		e = strv_finish(&v, versions, &nv, d);
	}
	if (e) {
		llm_strv_free(s.v);
		llm_strv_free(v.v);
		*aliases = *versions = NULL;
		*n = 0;
	}
	return e;
}

static enum llm_err dir_history(struct llm_registry *r, const char *name, json_t **records,
				struct llm_diag *d)
{
	struct dirreg *g = DR(r);
	*records = json_array();
	if (!*records)
		return nomem(d);
	char *log = path_join(g->root, "audit.log");
	if (!log)
		return nomem(d);
	FILE *fp = fopen(log, "r");
	enum llm_err e = LLM_OK;
	if (!fp) {
		if (errno != ENOENT)
			e = io_error(d, log, "cannot open", errno);
		free(log);
		return e;
	}
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&buf, &cap, fp)) > 0) {
		/* A line without its newline is a write cut short: not (yet) a record. */
		if (buf[n - 1] != '\n')
			break;
		json_t *rec = json_loads(buf, 0, NULL);
		if (!json_is_object(rec)) {
			json_decref(rec);
			continue;
		}
		const char *rn = json_string_value(json_object_get(rec, "name"));
		if (name && (!rn || strcmp(rn, name) != 0)) {
			json_decref(rec);
			continue;
		}
		json_array_append_new(*records, rec);
	}
	if (ferror(fp))
		e = io_error(d, log, "read error", errno);
	free(buf);
	fclose(fp);
	free(log);
	return e;
}

static void dir_close(struct llm_registry *r)
{
	struct dirreg *g = DR(r);
	if (g) {
		lock_release(g);
		free(g->root);
		free(g);
	}
	r->impl = NULL;
}

static const struct llm_registry_ops dir_ops = {
    "dir",	   dir_push,	  dir_pull,    dir_names,   dir_versions, dir_show,
    dir_alias_get, dir_alias_set, dir_aliases, dir_history, dir_close,
};

/* registry.json: {"require_signature": bool, "pubkeys": ["PATH", ...]}; paths relative to the
 * registry. */
static enum llm_err dir_policy(struct llm_registry *r, struct llm_diag *d)
{
	struct dirreg *g = DR(r);
	char *p = path_join(g->root, "registry.json");
	if (!p)
		return nomem(d);
	char *text = NULL;
	enum llm_err e = read_small(p, &text, NULL, SMALL_FILE_MAX, d);
	if (e == LLM_ERR_NOT_FOUND) {
		free(p);
		return LLM_OK;
	}
	json_error_t je;
	json_t *o = e ? NULL : json_loads(text, 0, &je);
	if (!e && !json_is_object(o))
		e = llm_diag_set(d, LLM_ERR_FORMAT, p, o ? 0 : je.line, "%s",
				 o ? "not a JSON object" : je.text);
	json_t *req = json_object_get(o, "require_signature");
	json_t *keys = json_object_get(o, "pubkeys");
	if (!e && req && !json_is_boolean(req))
		e = llm_diag_set(d, LLM_ERR_TYPE, p, 0, "require_signature: not true or false");
	if (!e && keys && !json_is_array(keys))
		e = llm_diag_set(d, LLM_ERR_TYPE, p, 0, "pubkeys: not an array of paths");
	if (!e) {
		r->require_signature = json_is_true(req);
		struct strv s = {0};
		size_t i;
		json_t *k;
		json_array_foreach(keys, i, k)
		{
			const char *kp = json_string_value(k);
			if (!kp || !*kp) {
				e = llm_diag_set(d, LLM_ERR_TYPE, p, 0,
						 "pubkeys: not an array of paths");
				break;
			}
			char *full = kp[0] == '/' ? strdup(kp) : path_join(g->root, kp);
			bool ok = full && strv_push(&s, full);
			free(full);
			if (!ok) {
				e = nomem(d);
				break;
			}
		}
		if (!e)
			e = strv_finish(&s, &r->pubkeys, &r->npubkeys, d);
		else
			llm_strv_free(s.v);
		if (!e && r->require_signature && r->npubkeys == 0)
			e = llm_diag_set(d, LLM_ERR_FORMAT, p, 0,
					 "require_signature is true but no pubkeys are listed");
	}
	json_decref(o);
	free(text);
	free(p);
	return e;
}

/* --- the generic layer ------------------------------------------------------------------- */

enum llm_err llm_registry_open(const char *ref, struct llm_registry **out, struct llm_diag *d)
{
	*out = NULL;
	char buf[PATH_MAX];
	enum llm_err e = llm_registry_default_ref(ref, buf, sizeof buf, d);
	if (e)
		return e;
	struct llm_registry *r = calloc(1, sizeof *r);
	if (!r || !(r->ref = strdup(buf))) {
		free(r);
		return nomem(d);
	}
	if (strncmp(buf, "oci://", 6) == 0) {
		if (!llm_registry_open_oci) {
			free(r->ref);
			free(r);
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
					    "%s: this build has no OCI registry support", buf);
		}
		e = llm_registry_open_oci(r, r->ref, d);
	} else {
		struct dirreg *g = calloc(1, sizeof *g);
		if (!g || !(g->root = strdup(buf))) {
			free(g);
			e = nomem(d);
		} else {
			/* Trailing slashes would double in every path. */
			size_t n = strlen(g->root);
			while (n > 1 && g->root[n - 1] == '/')
				g->root[--n] = '\0';
			g->lock_fd = -1;
			r->ops = &dir_ops;
			r->impl = g;
			e = dir_policy(r, d);
		}
	}
	if (e) {
		llm_registry_close(r);
		return e;
	}
	*out = r;
	return LLM_OK;
}

void llm_registry_close(struct llm_registry *r)
{
	if (!r)
		return;
	if (r->ops && r->ops->close)
		r->ops->close(r);
	llm_strv_free(r->pubkeys);
	free(r->ref);
	free(r);
}

static enum llm_err unsupported(struct llm_registry *r, const char *what, struct llm_diag *d)
{
	return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "%s: %s is not supported by %s registries",
			    r->ref, what, r->ops->kind);
}

enum llm_err llm_registry_names(struct llm_registry *r, char ***names, size_t *n,
				struct llm_diag *d)
{
	if (!r->ops->names)
		return unsupported(r, "listing names", d);
	return r->ops->names(r, names, n, d);
}

enum llm_err llm_registry_versions(struct llm_registry *r, const char *name, char ***versions,
				   size_t *n, struct llm_diag *d)
{
	if (!r->ops->versions)
		return unsupported(r, "listing versions", d);
	return r->ops->versions(r, name, versions, n, d);
}

enum llm_err llm_registry_aliases(struct llm_registry *r, const char *name, char ***aliases,
				  char ***versions, size_t *n, struct llm_diag *d)
{
	if (!r->ops->aliases)
		return unsupported(r, "listing aliases", d);
	return r->ops->aliases(r, name, aliases, versions, n, d);
}

enum llm_err llm_registry_show(struct llm_registry *r, const char *name, const char *version,
			       struct llm_registry_entry *e, struct llm_diag *d)
{
	if (!r->ops->show)
		return unsupported(r, "show", d);
	return r->ops->show(r, name, version, e, d);
}

enum llm_err llm_registry_history(struct llm_registry *r, const char *name, json_t **records,
				  struct llm_diag *d)
{
	*records = NULL;
	if (!r->ops->history)
		return unsupported(r, "history", d);
	return r->ops->history(r, name, records, d);
}

enum llm_err llm_registry_resolve(struct llm_registry *r, const char *name, const char *ref,
				  char **version, struct llm_diag *d)
{
	*version = NULL;
	if (!llm_registry_name_ok(name))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "%s: not a model name", name);
	if (!ref || !strcmp(ref, "latest")) {
		char **v;
		size_t n;
		enum llm_err e = llm_registry_versions(r, name, &v, &n, d);
		if (e)
			return e;
		/* Sorted by precedence: the last is the highest. */
		*version = strdup(v[n - 1]);
		llm_strv_free(v);
		return *version ? LLM_OK : nomem(d);
	}
	enum llm_err err;
	if (llm_registry_version_ok(ref)) {
		struct llm_registry_entry e;
		err = llm_registry_show(r, name, ref, &e, d);
		if (!err) {
			llm_registry_entry_clear(&e);
			*version = strdup(ref);
			return *version ? LLM_OK : nomem(d);
		}
	} else if (!llm_registry_alias_ok(ref)) {
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "%s@%s: not a version or an alias",
				    name, ref);
	} else if (!r->ops->alias_get) {
		return unsupported(r, "aliases", d);
	} else {
		err = r->ops->alias_get(r, name, ref, version, d);
	}
	if (err == LLM_ERR_NOT_FOUND) {
		/* Say so when the whole name is missing, not only the version or alias. */
		char **v = NULL;
		size_t n;
		if (llm_registry_versions(r, name, &v, &n, NULL) == LLM_ERR_NOT_FOUND)
			llm_registry_versions(r, name, &v, &n, d);
		llm_strv_free(v);
	}
	return err;
}

/* A verified artifact: its manifest, canonical bytes and identity. */
struct art_info {
	struct llm_manifest m;
	char digest[LLM_DIGEST_SIZE];
	struct llm_buf manifest;
};

static void art_info_free(struct art_info *ai)
{
	llm_manifest_free(&ai->m);
	llm_buf_free(&ai->manifest);
	memset(ai, 0, sizeof *ai);
}

/* Verify a tarball completely (every file against the manifest) and read its manifest. */
static enum llm_err art_verify(const char *path, struct art_info *ai, struct llm_diag *d)
{
	memset(ai, 0, sizeof *ai);
	llm_buf_init(&ai->manifest, LLM_MANIFEST_MAX_BYTES);
	enum llm_err e = llm_tarball_verify(path, NULL, &ai->m, ai->digest, d);
	if (!e && (e = llm_manifest_canonical(&ai->m, &ai->manifest)))
		llm_diag_set(d, e, path, 0, "cannot serialize the manifest");
	if (e)
		art_info_free(ai);
	return e;
}

enum llm_err llm_registry_push(struct llm_registry *r, const char *path, const char *reason,
			       struct llm_registry_entry *pushed, bool *existed, struct llm_diag *d)
{
	*existed = false;
	if (pushed)
		memset(pushed, 0, sizeof *pushed);
	if (!r->ops->push)
		return unsupported(r, "push", d);
	if (reason && strlen(reason) > AUDIT_LINE_MAX / 2)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "the reason is longer than %d bytes",
				    AUDIT_LINE_MAX / 2);
	struct art_info ai;
	enum llm_err e = art_verify(path, &ai, d);
	if (e)
		return e;
	const char *name = ai.m.name, *version = ai.m.version;
	if (!llm_registry_name_ok(name))
		e = llm_diag_set(d, LLM_ERR_USAGE, path, 0,
				 "the name %s cannot go into a registry (lower-case letters, "
				 "digits, '.', '_', '-')",
				 name);
	else if (!llm_registry_version_ok(version))
		e = llm_diag_set(d, LLM_ERR_USAGE, path, 0, "the version %s is not SemVer",
				 version);
	char *sig = NULL;
	struct stat st;
	if (!e && stat(path, &st) != 0)
		e = io_error(d, path, "cannot stat", errno);
	if (!e) {
		size_t n = strlen(path) + 5;
		sig = malloc(n);
		if (!sig)
			e = nomem(d);
		else
			snprintf(sig, n, "%s.sig", path);
	}
	if (!e && access(sig, F_OK) != 0) {
		free(sig);
		sig = NULL;
	}
	if (!e) {
		/* Check here too, so a remote registry refuses before uploading. */
		struct llm_registry_entry have;
		enum llm_err se = llm_registry_show(r, name, version, &have, NULL);
		if (se == LLM_OK) {
			if (strcmp(have.digest, ai.digest) == 0)
				*existed = true;
			else
				e = llm_diag_set(
				    d, LLM_ERR_CHECK, NULL, 0,
				    "%s@%s is already in the registry with digest %s, "
				    "not %s: versions never change; push a new version",
				    name, version, have.digest, ai.digest);
			llm_registry_entry_clear(&have);
		}
	}
	if (!e && !*existed) {
		char who[256];
		llm_registry_who(who, sizeof who);
		struct llm_registry_why why = {"push", who, reason};
		struct llm_registry_artifact a = {
		    path,
		    sig,
		    name,
		    version,
		    ai.digest,
		    ai.manifest.data,
		    ai.manifest.len,
		    (uint64_t)st.st_size,
		};
		e = r->ops->push(r, &a, &why, existed, d);
	}
	if (!e && pushed)
		e = llm_registry_show(r, name, version, pushed, d);
	free(sig);
	art_info_free(&ai);
	return e;
}

enum llm_err llm_registry_pull(struct llm_registry *r, const char *name, const char *version,
			       const char *path, bool *has_sig, struct llm_diag *d)
{
	*has_sig = false;
	if (!r->ops->pull)
		return unsupported(r, "pull", d);
	struct llm_registry_entry ent;
	enum llm_err e = llm_registry_show(r, name, version, &ent, d);
	if (e)
		return e;
	size_t n = strlen(path) + 32;
	char *tmp = malloc(n), *stmp = malloc(n), *sig = malloc(n);
	if (!tmp || !stmp || !sig) {
		e = nomem(d);
		goto out;
	}
	snprintf(tmp, n, "%s.tmp-%ld", path, (long)getpid());
	snprintf(stmp, n, "%s.sig.tmp-%ld", path, (long)getpid());
	snprintf(sig, n, "%s.sig", path);
	e = r->ops->pull(r, name, version, tmp, stmp, has_sig, d);
	struct art_info ai = {0};
	if (!e)
		e = art_verify(tmp, &ai, d);
	if (!e && strcmp(ai.digest, ent.digest) != 0)
		e = llm_diag_set(d, LLM_ERR_CHECK, NULL, 0,
				 "%s@%s: the artifact fetched has identity %s, the registry "
				 "records %s",
				 name, version, ai.digest, ent.digest);
	if (!e && (strcmp(ai.m.name, name) != 0 || strcmp(ai.m.version, version) != 0))
		e = llm_diag_set(d, LLM_ERR_CHECK, NULL, 0, "%s@%s: the artifact fetched is %s@%s",
				 name, version, ai.m.name, ai.m.version);
	art_info_free(&ai);
	if (!e && *has_sig && rename(stmp, sig) != 0)
		e = io_error(d, sig, "cannot rename into place", errno);
	if (!e && !*has_sig)
		unlink(sig); /* a stale signature beside the new file would mislead */
	if (!e && rename(tmp, path) != 0)
		e = io_error(d, path, "cannot rename into place", errno);
out:
	if (tmp)
		unlink(tmp);
	if (stmp)
		unlink(stmp);
	free(tmp);
	free(stmp);
	free(sig);
	llm_registry_entry_clear(&ent);
	return e;
}

enum llm_err llm_registry_alias_set(struct llm_registry *r, const char *name, const char *alias,
				    const char *version, const char *action, const char *reason,
				    char **previous, struct llm_diag *d)
{
	if (previous)
		*previous = NULL;
	if (!r->ops->alias_set)
		return unsupported(r, "setting aliases", d);
	if (!llm_registry_name_ok(name))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "%s: not a model name", name);
	if (!llm_registry_alias_ok(alias))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "%s: not an alias (a letter, then letters, digits, '.', '_', "
				    "'-')",
				    alias);
	if (!strcmp(alias, "latest"))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "latest is derived (the highest version) and cannot be set");
	if (version && !llm_registry_version_ok(version))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "%s: not a version (SemVer)",
				    version);
	if (reason && strlen(reason) > AUDIT_LINE_MAX / 2)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "the reason is longer than %d bytes",
				    AUDIT_LINE_MAX / 2);
	char who[256];
	llm_registry_who(who, sizeof who);
	struct llm_registry_why why = {action ? action : "alias", who, reason};
	return r->ops->alias_set(r, name, alias, version, &why, previous, d);
}

/* Does the signature file verify the artifact's identity under one of the registry's keys? */
static enum llm_err check_signature(struct llm_registry *r, const struct art_info *ai,
				    const char *sig_path, struct llm_diag *d)
{
	char *text = NULL;
	size_t n = 0;
	enum llm_err e = read_small(sig_path, &text, &n, LLM_SIGN_MAX_BYTES, d);
	if (e)
		return e;
	struct llm_diag last = {0};
	for (size_t i = 0; i < r->npubkeys; i++) {
		e = llm_sign_verify(r->pubkeys[i], ai->digest, text, n, "signature", NULL, &last);
		if (e != LLM_ERR_CHECK)
			break;
	}
	free(text);
	if (e == LLM_OK)
		return LLM_OK;
	if (e != LLM_ERR_CHECK) {
		*d = last;
		return e;
	}
	return llm_diag_set(d, LLM_ERR_CHECK, NULL, 0,
			    "the signature does not verify under any key the registry lists%s%s",
			    last.msg[0] ? ": " : "", last.msg);
}

enum llm_err llm_registry_promote(struct llm_registry *r, const char *name, const char *version,
				  const char *alias, const char *reason, char **previous,
				  struct llm_diag *d)
{
	if (previous)
		*previous = NULL;
	/* Check what the registry serves, fetched as any consumer would fetch it, in a folder
	 * of our own. */
	const char *tmpdir = getenv("TMPDIR");
	if (!tmpdir || !*tmpdir)
		tmpdir = "/tmp";
	size_t n = strlen(tmpdir) + 32;
	char *dir = malloc(n);
	if (!dir)
		return nomem(d);
	snprintf(dir, n, "%s/llmops-promote-XXXXXX", tmpdir);
	if (!mkdtemp(dir)) {
		enum llm_err e = io_error(d, dir, "cannot create a temporary directory", errno);
		free(dir);
		return e;
	}
	char *art = path_join(dir, "artifact.tar.gz");
	char *sig = path_join(dir, "artifact.tar.gz.sig");
	enum llm_err e = art && sig ? LLM_OK : nomem(d);
	bool has_sig = false;
	if (!e)
		e = llm_registry_pull(r, name, version, art, &has_sig, d);
	struct art_info ai = {0};
	if (!e && (r->require_signature || (has_sig && r->npubkeys)))
		e = art_verify(art, &ai, d);
	if (!e && r->require_signature && !has_sig)
		e = llm_diag_set(d, LLM_ERR_CHECK, NULL, 0,
				 "%s@%s is not signed, and %s requires a signature to promote "
				 "(llm-pack sign, then push again)",
				 name, version, r->ref);
	if (!e && has_sig && r->npubkeys)
		e = check_signature(r, &ai, sig, d);
	art_info_free(&ai);
	if (!e)
		e = llm_registry_alias_set(r, name, alias, version, "promote", reason, previous, d);
	if (art)
		unlink(art);
	if (sig)
		unlink(sig);
	rmdir(dir);
	free(art);
	free(sig);
	free(dir);
	return e;
}

/* The parent a manifest names (manifest.h: {"name", "version", "digest"?}; a string
 * "[registry:]NAME@VERSION" is read too), as name, version and the digest it records (or
 * NULL).  *ref gets text that names it for a chain that cannot follow it. */
static bool parent_of(json_t *parent, char **name, char **version, char **digest, char **ref)
{
	*name = *version = *digest = *ref = NULL;
	if (json_is_object(parent)) {
		const char *n = json_string_value(json_object_get(parent, "name"));
		const char *v = json_string_value(json_object_get(parent, "version"));
		const char *dg = json_string_value(json_object_get(parent, "digest"));
		if (n && v && llm_registry_name_ok(n) && llm_registry_version_ok(v)) {
			*name = strdup(n);
			*version = strdup(v);
			*digest = dg ? strdup(dg) : NULL;
			return *name && *version && (!dg || *digest);
		}
		*ref = json_dumps(parent, JSON_COMPACT);
		return false;
	}
	const char *s = json_string_value(parent);
	if (!s)
		return false;
	*ref = strdup(s);
	if (!strncmp(s, "registry:", 9))
		s += 9;
	char *n = NULL, *at = NULL;
	bool ok =
	    llm_registry_split_ref(s, &n, &at, NULL) == LLM_OK && at && llm_registry_version_ok(at);
	if (ok) {
		*name = strdup(n);
		*version = strdup(at);
		ok = *name && *version;
	}
	free(n);
	return ok;
}

enum llm_err llm_registry_lineage(struct llm_registry *r, const char *name, const char *version,
				  json_t **chain, struct llm_diag *d)
{
	*chain = json_array();
	if (!*chain)
		return nomem(d);
	char *n = strdup(name), *v = strdup(version), *want = NULL;
	enum llm_err e = n && v ? LLM_OK : nomem(d);
	/* Each link is a distinct digest (a cycle stops the walk), and no registry holds more
	 * versions than this in one chain. */
	for (int depth = 0; !e && depth < 100000; depth++) {
		struct llm_registry_entry ent;
		e = llm_registry_show(r, n, v, &ent, d);
		if (e == LLM_ERR_NOT_FOUND && depth > 0) {
			json_t *miss = json_pack("{s:s++, s:b}", "ref", n, "@", v, "missing", 1);
			if (want)
				json_object_set_new(miss, "digest", json_string(want));
			json_array_append_new(*chain, miss);
			e = LLM_OK;
			break;
		}
		if (e)
			break;
		json_t *link =
		    json_pack("{s:s, s:s, s:s}", "name", n, "version", v, "digest", ent.digest);
		/* The child's manifest recorded another identity for this parent: say so. */
		if (link && want && strcmp(want, ent.digest) != 0)
			json_object_set_new(link, "expected_digest", json_string(want));
		bool seen = false;
		size_t i;
		json_t *it;
		json_array_foreach(*chain, i, it)
		{
			const char *dg = json_string_value(json_object_get(it, "digest"));
			if (dg && !strcmp(dg, ent.digest))
				seen = true;
		}
		json_t *m = json_loads(ent.manifest, 0, NULL);
		llm_registry_entry_clear(&ent);
		if (seen || !link) {
			json_decref(link);
			json_decref(m);
			if (!link)
				e = nomem(d);
			break;
		}
		json_array_append_new(*chain, link);
		json_t *p = json_object_get(m, "parent");
		char *pn = NULL, *pv = NULL, *pd = NULL, *pref = NULL;
		bool ours = p && !json_is_null(p) && parent_of(p, &pn, &pv, &pd, &pref);
		if (!ours && pref)
			json_array_append_new(*chain,
					      json_pack("{s:s, s:b}", "ref", pref, "missing", 1));
		json_decref(m);
		free(pref);
		free(n);
		free(v);
		free(want);
		n = pn;
		v = pv;
		want = pd;
		if (!ours)
			break;
	}
	free(n);
	free(v);
	free(want);
	if (e) {
		json_decref(*chain);
		*chain = NULL;
	}
	return e;
}
