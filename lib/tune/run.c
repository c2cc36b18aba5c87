#include "config.h"

#include "tune/run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/atomic.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/jsonl.h"

/* The commit the library was built from, when the build could ask git (mk/tune.am writes
 * this header into the build tree); a build from a tarball has none. */
#if defined(__has_include)
#if __has_include("tune-commit.h")
#include "tune-commit.h"
#endif
#endif
#ifndef LLMOPS_GIT_COMMIT
#define LLMOPS_GIT_COMMIT ""
#endif

#define META_FILE    "meta.json"
#define PARAMS_FILE  "params.json"
#define METRICS_FILE "metrics.jsonl"
/* A metrics line is a few hundred bytes; anything near this is not one. */
#define METRICS_MAX_LINE (1u << 20)
#define JSON_FILE_FLAGS	 (JSON_INDENT(2) | JSON_REAL_PRECISION(10))
#define JSON_LINE_FLAGS	 (JSON_COMPACT | JSON_REAL_PRECISION(10))

static const char *const status_names[] = {"running", "finished", "failed", "interrupted",
					   "unknown"};

const char *llm_run_status_name(enum llm_run_status s)
{
	return (unsigned)s <= LLM_RUN_UNKNOWN ? status_names[s] : "unknown";
}

bool llm_run_status_parse(const char *s, enum llm_run_status *out)
{
	for (int i = 0; i < LLM_RUN_UNKNOWN; i++)
		if (!strcmp(s, status_names[i])) {
			*out = (enum llm_run_status)i;
			return true;
		}
	return false;
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

char *llm_run_default_dir(void)
{
	const char *home = getenv("LLMOPS_HOME");
	if (home && *home)
		return join(home, "runs");
	const char *user = getenv("HOME");
	if (!user || !*user) {
		struct passwd *pw = getpwuid(getuid());
		user = pw && pw->pw_dir ? pw->pw_dir : ".";
	}
	return join(user, ".llmops/runs");
}

static void format_time(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int64_t llm_run_parse_time(const char *s)
{
	struct tm tm = {0};
	int n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
	    n == 0 || s[n])
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

static enum llm_err mkdir_p(const char *path, struct llm_diag *d)
{
	char *p = strdup(path);
	if (!p)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0777) != 0 && errno != EEXIST) {
			int err = errno;
			llm_diag_set(d, LLM_ERR_IO, p, 0, "cannot create directory: %s",
				     strerror(err));
			free(p);
			return LLM_ERR_IO;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return llm_diag_set(d, LLM_ERR_IO, path, 0, "not a directory");
	return LLM_OK;
}

static enum llm_err write_json(const char *dir, const char *name, const json_t *v,
			       struct llm_diag *d)
{
	char *path = join(dir, name);
	char *s = json_dumps(v, JSON_FILE_FLAGS);
	enum llm_err e;
	if (!path || !s) {
		e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	} else {
		size_t n = strlen(s);
		s[n] = '\n'; /* json_dumps leaves room: its NUL */
		e = llm_atomic_write_file(path, s, n + 1, d);
	}
	free(s);
	free(path);
	return e;
}

/* SHA-256 of a data file, streamed so a large corpus costs no memory. */
static enum llm_err digest_file(const char *path, json_t **out, struct llm_diag *d)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "cannot open: %s", strerror(errno));
	if (S_ISDIR(st.st_mode))
		return llm_diag_set(d, LLM_ERR_IS_DIR, path, 0, "is a directory");
	FILE *f = fopen(path, "rb");
	if (!f)
		return llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot open: %s", strerror(errno));
	struct llm_sha256 h;
	enum llm_err e = llm_sha256_init(&h);
	if (e) {
		fclose(f);
		return llm_diag_set(d, e, path, 0, "cannot start a digest");
	}
	unsigned char buf[1 << 14];
	uint64_t bytes = 0;
	size_t n;
	while (!e && (n = fread(buf, 1, sizeof buf, f)) > 0) {
		e = llm_sha256_update(&h, buf, n);
		bytes += n;
	}
	unsigned char dg[LLM_SHA256_LEN];
	bool bad = ferror(f);
	fclose(f);
	enum llm_err e2 = llm_sha256_final(&h, dg);
	if (bad)
		return llm_diag_set(d, LLM_ERR_IO, path, 0, "read error");
	if (e || e2)
		return llm_diag_set(d, e ? e : e2, path, 0, "digest failed");
	char hex[LLM_SHA256_HEX_LEN + 1];
	llm_hex(dg, sizeof dg, hex);
	*out = json_pack("{s:s,s:I,s:s}", "path", path, "bytes", (json_int_t)bytes, "sha256", hex);
	return *out ? LLM_OK : llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
}

/* --- summaries ----------------------------------------------------------------------------- */

static void summary_init(struct llm_run_summary *s)
{
	*s = (struct llm_run_summary){0, -1, NAN, NAN, NAN, NAN, -1, NAN};
}

static double num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static void summary_add(struct llm_run_summary *s, const json_t *m)
{
	int64_t step = (int64_t)num(m, "step");
	double v;
	s->points++;
	if (step > s->steps)
		s->steps = step;
	if (!isnan(v = num(m, "tokens")) && !(v <= s->tokens))
		s->tokens = v;
	if (!isnan(v = num(m, "elapsed_s")) && !(v <= s->elapsed_s))
		s->elapsed_s = v;
	if (!isnan(v = num(m, "train_loss")))
		s->train_loss = v;
	if (!isnan(v = num(m, "val_loss"))) {
		s->val_loss = v;
		if (!(v >= s->best_val_loss)) {
			s->best_val_loss = v;
			s->best_step = step;
		}
	}
}

static void summary_of(struct llm_run *r)
{
	summary_init(&r->sum);
	size_t i;
	json_t *m;
	json_array_foreach(r->metrics, i, m)
	{
		summary_add(&r->sum, m);
	}
}

/* Numbers that jansson cannot hold (NAN) are left out rather than written as null. */
static void set_num(json_t *o, const char *key, double v)
{
	if (isnan(v) || isinf(v))
		json_object_del(o, key);
	else if (v == (double)(json_int_t)v && fabs(v) < 9e15)
		json_object_set_new(o, key, json_integer((json_int_t)v));
	else
		json_object_set_new(o, key, json_real(v));
}

static enum llm_err write_meta(struct llm_run *r, struct llm_diag *d)
{
	json_t *m = r->meta;
	json_object_set_new(m, "status", json_string(llm_run_status_name(r->status)));
	if (r->finished) {
		char t[32];
		format_time(r->finished, t);
		json_object_set_new(m, "finished", json_string(t));
	} else {
		json_object_set_new(m, "finished", json_null());
	}
	const struct llm_run_summary *s = &r->sum;
	set_num(m, "steps", s->steps < 0 ? NAN : (double)s->steps);
	set_num(m, "tokens", s->tokens);
	set_num(m, "train_loss", s->train_loss);
	set_num(m, "val_loss", s->val_loss);
	set_num(m, "best_step", s->best_step < 0 ? NAN : (double)s->best_step);
	set_num(m, "best_val_loss", s->best_val_loss);
	set_num(m, "elapsed_s", s->elapsed_s);
	return write_json(r->dir, META_FILE, m, d);
}

/* --- writing ------------------------------------------------------------------------------- */

static struct llm_run *run_new(const char *dir)
{
	struct llm_run *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	/* "." or "../.." name no run: the id comes from the folder's real name then. */
	const char *base = strrchr(dir, '/');
	base = base ? base + 1 : dir;
	if (!strcmp(base, ".") || !strcmp(base, ".."))
		r->dir = realpath(dir, NULL);
	else
		r->dir = strdup(dir);
	size_t n = r->dir ? strlen(r->dir) : 0;
	while (n > 1 && r->dir[n - 1] == '/')
		r->dir[--n] = '\0';
	const char *slash = r->dir ? strrchr(r->dir, '/') : NULL;
	r->id = slash ? slash + 1 : r->dir;
	r->params = json_object();
	summary_init(&r->sum);
	if (!r->dir || !r->params) {
		llm_run_close(r);
		return NULL;
	}
	return r;
}

static void random_suffix(char out[7])
{
	unsigned char b[3];
	if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
		/* No entropy source: the clock and the process still tell runs apart, and mkdir
		 * retries when they do not. */
		uint64_t x = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20 ^ (uint64_t)clock();
		b[0] = (unsigned char)x;
		b[1] = (unsigned char)(x >> 8);
		b[2] = (unsigned char)(x >> 16);
	}
	llm_hex(b, sizeof b, out);
}

static bool valid_name(const char *s)
{
	return *s && *s != '.' && !strchr(s, '/') && strlen(s) < 200;
}

/* Claim the run folder: mkdir fails when it exists, so the name is ours alone. */
static enum llm_err claim(const struct llm_run_spec *spec, int64_t now, char **dir,
			  struct llm_diag *d)
{
	char id[256];
	for (int tries = 0; tries < 32; tries++) {
		if (spec->name) {
			snprintf(id, sizeof id, "%s", spec->name);
		} else {
			char t[32], sfx[7];
			time_t tt = (time_t)now;
			struct tm tm;
			gmtime_r(&tt, &tm);
			strftime(t, sizeof t, "%Y%m%d-%H%M%S", &tm);
			random_suffix(sfx);
			snprintf(id, sizeof id, "%s-%s", t, sfx);
		}
		char *p = join(spec->runs_dir, id);
		if (!p)
			return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		if (mkdir(p, 0777) == 0) {
			*dir = p;
			return LLM_OK;
		}
		int err = errno;
		free(p);
		if (err != EEXIST)
			return llm_diag_set(d, LLM_ERR_IO, spec->runs_dir, 0,
					    "cannot create run folder %s: %s", id, strerror(err));
		if (spec->name)
			return llm_diag_set(d, LLM_ERR_USAGE, spec->runs_dir, 0,
					    "a run named '%s' exists already", id);
	}
	return llm_diag_set(d, LLM_ERR_IO, spec->runs_dir, 0, "cannot find a free run id");
}

/* Undo a half-made run folder: only the files this module writes, then the folder. */
static void remove_run_dir(const char *dir)
{
	const char *files[] = {META_FILE, PARAMS_FILE, METRICS_FILE};
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		char *p = join(dir, files[i]);
		if (p)
			unlink(p);
		free(p);
	}
	rmdir(dir);
}

enum llm_err llm_run_create(struct llm_run **out, const struct llm_run_spec *spec,
			    struct llm_diag *d)
{
	*out = NULL;
	if (spec->name && !valid_name(spec->name))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "a run name must be a non-empty file name not starting "
				    "with a dot: '%s'",
				    spec->name);
	/* The digests come first: a missing data file should leave no run behind. */
	json_t *data = json_array();
	if (!data)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	for (size_t i = 0; i < spec->ndata; i++) {
		json_t *dg;
		enum llm_err e = digest_file(spec->data[i], &dg, d);
		if (e) {
			json_decref(data);
			return e;
		}
		json_array_append_new(data, dg);
	}
	enum llm_err e = mkdir_p(spec->runs_dir, d);
	int64_t now = (int64_t)time(NULL);
	char *dir = NULL;
	if (!e)
		e = claim(spec, now, &dir, d);
	if (e) {
		json_decref(data);
		return e;
	}
	struct llm_run *r = run_new(dir);
	if (!r) {
		rmdir(dir);
		free(dir);
		json_decref(data);
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	free(dir);
	char created[32], host[256] = "";
	format_time(now, created);
	gethostname(host, sizeof host - 1);
	r->created = now;
	r->status = LLM_RUN_RUNNING;
	r->meta = json_pack("{s:i,s:s,s:s,s:n,s:s}", "format", LLM_RUN_FORMAT, "id", r->id,
			    "created", created, "finished", "status", "running");
	if (r->meta) {
		json_object_set_new(r->meta, "llmops_version", json_string(PACKAGE_VERSION));
		if (*LLMOPS_GIT_COMMIT)
			json_object_set_new(r->meta, "git_commit", json_string(LLMOPS_GIT_COMMIT));
		json_object_set_new(r->meta, "hostname", json_string(host));
		if (spec->command)
			json_object_set_new(r->meta, "command", json_string(spec->command));
		json_object_set(r->meta, "data", data);
	}
	json_decref(data);
	char *mpath = join(r->dir, METRICS_FILE);
	if (!r->meta || !mpath) {
		e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	} else if (!(r->log = fopen(mpath, "a"))) {
		e = llm_diag_set(d, LLM_ERR_IO, mpath, 0, "cannot create: %s", strerror(errno));
	} else {
		e = write_json(r->dir, PARAMS_FILE, r->params, d);
		/* meta.json last: its presence is what makes the folder a run. */
		if (!e)
			e = write_meta(r, d);
	}
	free(mpath);
	if (e) {
		remove_run_dir(r->dir);
		llm_run_close(r);
		return e;
	}
	*out = r;
	return LLM_OK;
}

enum llm_err llm_run_set_params(struct llm_run *r, json_t *params, struct llm_diag *d)
{
	if (!json_is_object(params))
		return llm_diag_set(d, LLM_ERR_TYPE, NULL, 0,
				    "the parameters must be a JSON object");
	enum llm_err e = write_json(r->dir, PARAMS_FILE, params, d);
	if (e)
		return e;
	json_incref(params);
	json_decref(r->params);
	r->params = params;
	return LLM_OK;
}

enum llm_err llm_run_log_metrics(struct llm_run *r, json_t *m, struct llm_diag *d)
{
	if (!r->log)
		return llm_diag_set(d, LLM_ERR_USAGE, r->dir, 0, "the run is not open for writing");
	if (!json_is_object(m) || !json_is_number(json_object_get(m, "step")))
		return llm_diag_set(d, LLM_ERR_TYPE, NULL, 0,
				    "a metrics line must be an object with a numeric \"step\"");
	char *s = json_dumps(m, JSON_LINE_FLAGS);
	if (!s)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	size_t n = strlen(s);
	s[n] = '\n';
	bool ok = fwrite(s, 1, n + 1, r->log) == n + 1 && fflush(r->log) == 0;
	int err = errno;
	free(s);
	if (!ok)
		return llm_diag_set(d, LLM_ERR_IO, r->dir, 0, "cannot write %s: %s", METRICS_FILE,
				    strerror(err));
	/* A step below one logged already starts a resumed segment that replaces the rest; the
	 * writer keeps no lines, so it forgets a best that may be gone (readers recompute). */
	int64_t step = (int64_t)num(m, "step");
	if (step < r->sum.steps) {
		r->sum.steps = step;
		if (r->sum.best_step >= step) {
			r->sum.best_step = -1;
			r->sum.best_val_loss = NAN;
		}
	}
	summary_add(&r->sum, m);
	return LLM_OK;
}

enum llm_err llm_run_sync(struct llm_run *r, struct llm_diag *d)
{
	if (r->log && (fflush(r->log) != 0 || fsync(fileno(r->log)) != 0))
		return llm_diag_set(d, LLM_ERR_IO, r->dir, 0, "cannot sync %s: %s", METRICS_FILE,
				    strerror(errno));
	return write_meta(r, d);
}

enum llm_err llm_run_finish(struct llm_run *r, enum llm_run_status status, struct llm_diag *d)
{
	r->status = status;
	r->finished = (int64_t)time(NULL);
	enum llm_err e = llm_run_sync(r, d);
	if (r->log && fclose(r->log) != 0 && !e)
		e = llm_diag_set(d, LLM_ERR_IO, r->dir, 0, "cannot close %s: %s", METRICS_FILE,
				 strerror(errno));
	r->log = NULL;
	return e;
}

/* --- reading ------------------------------------------------------------------------------- */

static enum llm_err load_object(const char *dir, const char *name, bool optional, json_t **out,
				struct llm_diag *d)
{
	*out = NULL;
	char *path = join(dir, name);
	if (!path)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	json_error_t je;
	json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	enum llm_err e = LLM_OK;
	if (!v) {
		struct stat st;
		if (stat(path, &st) != 0 && errno == ENOENT) {
			if (optional)
				v = json_object();
			else
				e = llm_diag_set(d, LLM_ERR_NOT_FOUND, path, 0, "not a run: no %s",
						 name);
		} else if (access(path, R_OK) != 0) {
			e = llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot open: %s",
					 strerror(errno));
		} else {
			e = llm_diag_set(d, LLM_ERR_JSON, path, je.line > 0 ? je.line : 0,
					 "invalid JSON: %s", je.text);
		}
	} else if (!json_is_object(v)) {
		e = llm_diag_set(d, LLM_ERR_TYPE, path, 0, "not a JSON object");
	}
	free(path);
	if (e) {
		json_decref(v);
		return e;
	}
	*out = v;
	return LLM_OK;
}

static enum llm_err read_meta(struct llm_run *r, struct llm_diag *d)
{
	enum llm_err e = load_object(r->dir, META_FILE, false, &r->meta, d);
	if (e)
		return e;
	const char *status = json_string_value(json_object_get(r->meta, "status"));
	const char *created = json_string_value(json_object_get(r->meta, "created"));
	const char *finished = json_string_value(json_object_get(r->meta, "finished"));
	if (!status || !created) {
		char *p = join(r->dir, META_FILE);
		llm_diag_set(d, LLM_ERR_MISSING, p ? p : META_FILE, 0,
			     "\"status\" and \"created\" must be strings");
		free(p);
		return LLM_ERR_MISSING;
	}
	if (!llm_run_status_parse(status, &r->status))
		r->status = LLM_RUN_UNKNOWN;
	int64_t t = llm_run_parse_time(created);
	r->created = t < 0 ? 0 : t;
	t = finished ? llm_run_parse_time(finished) : 0;
	r->finished = t < 0 ? 0 : t;
	return LLM_OK;
}

static bool add_warning(struct llm_run *r, long line, const char *msg)
{
	struct llm_run_warning *w = realloc(r->warnings, (r->nwarnings + 1) * sizeof *w);
	if (!w)
		return false;
	r->warnings = w;
	w += r->nwarnings++;
	w->line = line;
	snprintf(w->msg, sizeof w->msg, "%s", msg);
	return true;
}

/* Drop the lines from step on: a resumed run logged them again. */
static void supersede(json_t *points, double step)
{
	size_t n = json_array_size(points);
	while (n > 0 && num(json_array_get(points, n - 1), "step") >= step)
		json_array_remove(points, --n);
}

static enum llm_err read_metrics(struct llm_run *r, struct llm_diag *d)
{
	r->metrics = json_array();
	char *path = join(r->dir, METRICS_FILE);
	if (!r->metrics || !path) {
		free(path);
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	if (access(path, F_OK) != 0) {
		free(path); /* a run that logged nothing yet */
		return LLM_OK;
	}
	struct llm_jsonl_reader *rd;
	enum llm_err e = llm_jsonl_open(&rd, &path, 1, METRICS_MAX_LINE, d);
	if (e) {
		free(path);
		return e;
	}
	struct llm_record rec = {0};
	double last = -INFINITY;
	for (;;) {
		if ((e = llm_jsonl_next(rd, &rec, d)) || !rec.text)
			break;
		char msg[128] = "";
		json_t *m = NULL;
		if (rec.status != LLM_OK) {
			snprintf(msg, sizeof msg, "%s%.100s",
				 rec.last_no_newline ? "torn last line: " : "", rec.diag.msg);
		} else if (!(m = json_loadb(rec.text, rec.len, 0, NULL))) {
			snprintf(msg, sizeof msg, "unreadable metrics line");
		} else if (!json_is_number(json_object_get(m, "step"))) {
			snprintf(msg, sizeof msg, "no numeric \"step\"");
		}
		if (*msg) {
			json_decref(m);
			if (!add_warning(r, rec.line, msg)) {
				e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
				break;
			}
			continue;
		}
		double step = num(m, "step");
		if (step < last)
			supersede(r->metrics, step);
		last = step;
		if (json_array_append_new(r->metrics, m)) {
			e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
			break;
		}
	}
	llm_record_free(&rec);
	llm_jsonl_close(rd);
	free(path);
	if (!e)
		summary_of(r);
	return e;
}

static bool is_run_dir(const char *dir)
{
	char *p = join(dir, META_FILE);
	struct stat st;
	bool yes = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
	free(p);
	return yes;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

enum llm_err llm_run_list(const char *runs_dir, char ***ids, size_t *n, struct llm_diag *d)
{
	*ids = NULL;
	*n = 0;
	DIR *dp = opendir(runs_dir);
	if (!dp) {
		if (errno == ENOENT)
			return LLM_OK; /* nothing has run yet */
		return llm_diag_set(d, LLM_ERR_IO, runs_dir, 0,
				    "cannot open the runs directory: %s", strerror(errno));
	}
	struct dirent *de;
	char **v = NULL;
	size_t len = 0;
	enum llm_err e = LLM_OK;
	while ((de = readdir(dp))) {
		if (de->d_name[0] == '.')
			continue;
		char *p = join(runs_dir, de->d_name);
		bool run = p && is_run_dir(p);
		free(p);
		if (!run)
			continue;
		char **nv = realloc(v, (len + 1) * sizeof *v);
		char *id = strdup(de->d_name);
		if (!nv || !id) {
			free(id);
			if (nv)
				v = nv;
			e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
			break;
		}
		v = nv;
		v[len++] = id;
	}
	closedir(dp);
	if (e) {
		llm_run_list_free(v, len);
		return e;
	}
	if (len)
		qsort(v, len, sizeof *v, cmp_str);
	*ids = v;
	*n = len;
	return LLM_OK;
}

void llm_run_list_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

enum llm_err llm_run_resolve(const char *runs_dir, const char *ref, char **path, struct llm_diag *d)
{
	*path = NULL;
	if (!*ref)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "an empty run name");
	if (strchr(ref, '/') || !strcmp(ref, ".") || !strcmp(ref, "..")) {
		if (!is_run_dir(ref))
			return llm_diag_set(d, LLM_ERR_NOT_FOUND, ref, 0,
					    "not a run folder (no %s)", META_FILE);
		*path = strdup(ref);
		return *path ? LLM_OK : llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	char *exact = join(runs_dir, ref);
	if (!exact)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	if (is_run_dir(exact)) {
		*path = exact;
		return LLM_OK;
	}
	free(exact);
	char **ids;
	size_t n, hits = 0, first = 0;
	enum llm_err e = llm_run_list(runs_dir, &ids, &n, d);
	if (e)
		return e;
	size_t rlen = strlen(ref);
	for (size_t i = 0; i < n; i++)
		if (!strncmp(ids[i], ref, rlen) && !hits++)
			first = i;
	if (hits == 1) {
		*path = join(runs_dir, ids[first]);
		e = *path ? LLM_OK : llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	} else if (hits == 0) {
		e = llm_diag_set(d, LLM_ERR_NOT_FOUND, NULL, 0, "no run '%s' in %s", ref, runs_dir);
	} else {
		/* Name the candidates, as many as the message holds. */
		struct llm_buf b;
		llm_buf_init(&b, 0);
		size_t shown = 0;
		for (size_t i = first; i < n && shown < 8; i++)
			if (!strncmp(ids[i], ref, rlen))
				llm_buf_printf(&b, "%s%s", shown++ ? ", " : "", ids[i]);
		if (hits > shown)
			llm_buf_printf(&b, " and %zu more", hits - shown);
		e = llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "'%s' matches %zu runs: %s", ref, hits,
				 b.data ? b.data : "");
		llm_buf_free(&b);
	}
	llm_run_list_free(ids, n);
	return e;
}

enum llm_err llm_run_open(struct llm_run **out, const char *runs_dir, const char *ref,
			  struct llm_diag *d)
{
	*out = NULL;
	char *dir;
	enum llm_err e = llm_run_resolve(runs_dir, ref, &dir, d);
	if (e)
		return e;
	struct llm_run *r = run_new(dir);
	free(dir);
	if (!r)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	json_decref(r->params);
	r->params = NULL;
	e = read_meta(r, d);
	if (!e)
		e = load_object(r->dir, PARAMS_FILE, true, &r->params, d);
	if (!e)
		e = read_metrics(r, d);
	if (e) {
		llm_run_close(r);
		return e;
	}
	*out = r;
	return LLM_OK;
}

/* Cut a torn last line off, so the next line starts on a line of its own. */
static enum llm_err cut_torn_tail(const char *path, struct llm_diag *d)
{
	int fd = open(path, O_RDWR);
	if (fd < 0)
		return errno == ENOENT ? LLM_OK
				       : llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot open: %s",
						      strerror(errno));
	off_t end = lseek(fd, 0, SEEK_END), keep = end;
	char buf[4096];
	while (keep > 0) {
		off_t at = keep > (off_t)sizeof buf ? keep - (off_t)sizeof buf : 0;
		ssize_t n = pread(fd, buf, (size_t)(keep - at), at);
		if (n != keep - at)
			break;
		ssize_t i = n;
		while (i > 0 && buf[i - 1] != '\n')
			i--;
		if (i > 0) {
			keep = at + i;
			break;
		}
		keep = at;
	}
	enum llm_err e = LLM_OK;
	if (keep < end && ftruncate(fd, keep) != 0)
		e = llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot truncate: %s", strerror(errno));
	close(fd);
	return e;
}

enum llm_err llm_run_resume(struct llm_run **out, const char *runs_dir, const char *ref,
			    struct llm_diag *d)
{
	struct llm_run *r;
	enum llm_err e = llm_run_open(&r, runs_dir, ref, d);
	if (e)
		return e;
	/* The writer keeps no lines: only the summary of what was read goes on. */
	json_decref(r->metrics);
	r->metrics = NULL;
	char *path = join(r->dir, METRICS_FILE);
	if (!path)
		e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	else if (!(e = cut_torn_tail(path, d)) && !(r->log = fopen(path, "a")))
		e = llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot open: %s", strerror(errno));
	free(path);
	if (!e) {
		r->status = LLM_RUN_RUNNING;
		r->finished = 0;
		e = write_meta(r, d);
	}
	if (e) {
		llm_run_close(r);
		return e;
	}
	*out = r;
	return LLM_OK;
}

void llm_run_close(struct llm_run *r)
{
	if (!r)
		return;
	if (r->log)
		fclose(r->log);
	json_decref(r->meta);
	json_decref(r->params);
	json_decref(r->metrics);
	free(r->warnings);
	free(r->dir);
	free(r);
}
