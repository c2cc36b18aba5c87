/* llm-tune sweep: grid or random search over the options of llm-tune train.  Each trial is a
 * child `llm-tune train` (this same binary, /proc/self/exe) with the common arguments given
 * after `--`, the trial's values, its own --out (OUT/trial-NNN) and run name (SWEEP-tNNN), and
 * --threads shared out so that --jobs trials run at once.  The trials are recorded in
 * OUT/trial-NNN/trial.json, so running the same command again skips those that finished with
 * the same arguments and reruns the rest; the leaderboard goes to standard output and to
 * OUT/leaderboard.json, and OUT/best is a symbolic link to the best trial's folder. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "core/atomic.h"
#include "core/rand.h"
#include "tune/run.h"
#include "tune/sweep.h"
#include "tune/verbs.h"

#define MAX_JOBS 256

static const struct llm_opt sweep_opts[] = {
    {"space", 's', LLM_OPT_STRING, "FILE", "the search space, a JSON file (required)"},
    {"out", 'o', LLM_OPT_STRING, "DIR", "where the trials and the leaderboard go (required)"},
    {"trials", 'n', LLM_OPT_INT, "N",
     "trials to run (default: the whole grid; required for a random search)", NULL, .min = 1,
     .max = 1000000},
    {"jobs", 'J', LLM_OPT_INT, "N", "trials that run at once", "1", .min = 1, .max = MAX_JOBS},
    {"threads", 'j', LLM_OPT_INT, "N", "threads per trial (default: the cores over --jobs)", "0",
     .min = 0, .max = 4096},
    {"seed", 0, LLM_OPT_INT, "N", "seed of the random search", "1", .min = 0,
     .max = 9007199254740991.0},
    {"name", 0, LLM_OPT_STRING, "ID",
     "the sweep's id, which names its runs (default: the one in DIR, else time and a suffix)"},
    {"runs-dir", 0, LLM_OPT_STRING, "DIR", "where the run folders go (default $LLMOPS_HOME/runs)"},
    {"fail-fast", 0, LLM_OPT_FLAG, NULL, "stop every trial when one fails"},
    {"sort", 0, LLM_OPT_CHOICE, "KEY", "the leaderboard's order", "val_loss", "val_loss|cost"},
    {"json", 0, LLM_OPT_FLAG, NULL, "write the leaderboard as JSON"},
    {0},
};

enum trial_state { T_PENDING, T_RUNNING, T_FINISHED, T_FAILED, T_INTERRUPTED, T_SKIPPED };

struct trial {
	int num; /* 1-based */
	char dir[4096];
	char run[256];
	json_t *args; /* the arguments that make it this trial: common, fixed and swept */
	int attempt;
	enum trial_state state;
	int exit_status; /* -1 when killed by a signal */
	pid_t pid;
	double t0, seconds;
	/* from the run folder */
	double best_val, train_loss, tokens;
};

static volatile sig_atomic_t stop_signal;
static volatile pid_t live[MAX_JOBS];

static void on_signal(int sig)
{
	if (!stop_signal)
		stop_signal = sig;
	for (int i = 0; i < MAX_JOBS; i++)
		if (live[i] > 0)
			kill(live[i], SIGINT);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int mkdir_p(struct llm_cli *c, const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
			goto fail;
		*p = '/';
	}
	if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
		goto fail;
	return 0;
fail:
	llm_cli_error(c, "%s: cannot create: %s", tmp, strerror(errno));
	return LLM_EXIT_IO;
}

static json_t *read_json(const char *path)
{
	json_error_t je;
	return json_load_file(path, 0, &je);
}

static const char *state_name(enum trial_state s)
{
	switch (s) {
	case T_FINISHED:
	case T_SKIPPED:
		return "finished";
	case T_FAILED:
		return "failed";
	case T_INTERRUPTED:
		return "interrupted";
	case T_RUNNING:
		return "running";
	default:
		return "pending";
	}
}

/* The sweep's id: --name, else the one recorded in OUT/sweep.json, else a new one. */
static char *sweep_id(struct llm_cli *c, const char *out)
{
	const char *given = llm_args_str(&c->args, "name");
	if (given)
		return strdup(given);
	char path[4096];
	snprintf(path, sizeof path, "%s/sweep.json", out);
	json_t *o = read_json(path);
	const char *id = json_string_value(json_object_get(o, "id"));
	char *r = NULL;
	if (id && *id && !strchr(id, '/') && id[0] != '.')
		r = strdup(id);
	json_decref(o);
	if (r)
		return r;
	char b[64];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	struct llm_rand rnd;
	llm_rand_seed(&rnd, (uint64_t)t ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(now() * 1e9));
	snprintf(b, sizeof b, "sweep-%04d%02d%02d-%02d%02d%02d-%04x", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(llm_rand_next(&rnd) & 0xffff));
	return strdup(b);
}

/* Options a trial gets from the sweep, which the common arguments may not carry. */
static const char *common_conflict(char *const *ops, size_t n)
{
	static const char *const bad[] = {"--out",	"-o",	     "--run-name",
					  "--runs-dir", "--threads", "-j",
					  "--resume",	"--force",   "-f"};
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
			size_t l = strlen(bad[k]);
			if (!strncmp(ops[i], bad[k], l) &&
			    (ops[i][l] == '\0' || ops[i][l] == '=' ||
			     (bad[k][1] != '-' && ops[i][l] != '\0')))
				return bad[k];
		}
	return NULL;
}

static void add_opt(json_t *args, const struct llm_sweep_param *p, const char *v)
{
	char name[300];
	snprintf(name, sizeof name, "--%s", p->name);
	if (p->opt->type == LLM_OPT_FLAG) {
		if (!strcmp(v, "true"))
			json_array_append_new(args, json_string(name));
		return;
	}
	json_array_append_new(args, json_string(name));
	json_array_append_new(args, json_string(v));
}

/* Write OUT/trial-NNN/trial.json. */
static int write_trial(struct llm_cli *c, const struct trial *t, const struct llm_sweep_space *s,
		       const struct llm_sweep_trials *tr)
{
	json_t *o = json_object(), *params = json_object();
	for (size_t p = 0; p < tr->nparams; p++)
		json_object_set_new(
		    params, s->params[p].name,
		    json_string(tr->values[(size_t)(t->num - 1) * tr->nparams + p]));
	json_object_set_new(o, "trial", json_integer(t->num));
	json_object_set_new(o, "run", json_string(t->run));
	json_object_set_new(o, "attempt", json_integer(t->attempt));
	json_object_set_new(o, "status", json_string(state_name(t->state)));
	json_object_set_new(o, "exit_status",
			    t->state == T_RUNNING ? json_null() : json_integer(t->exit_status));
	json_object_set_new(o, "seconds",
			    t->state == T_RUNNING ? json_null() : json_real(t->seconds));
	json_object_set_new(o, "params", params);
	json_object_set_new(o, "args", json_incref(t->args));
	char path[4200];
	snprintf(path, sizeof path, "%s/trial.json", t->dir);
	struct llm_diag d;
	enum llm_err e = llm_cli_write_json(c, path, o, &d);
	json_decref(o);
	return e ? llm_cli_fail(c, &d) : 0;
}

struct sweep {
	struct llm_cli *c;
	const char *out;
	char *id;
	char *runs_dir;
	char exe[4096];
	int threads;
	struct llm_sweep_space space;
	struct llm_sweep_trials tr;
	struct trial *t;
	size_t n;
};

static pid_t spawn(struct sweep *sw, struct trial *t)
{
	size_t na = json_array_size(t->args);
	char **argv = calloc(na + 16, sizeof *argv);
	if (!argv)
		return -1;
	char threads[32];
	snprintf(threads, sizeof threads, "%d", sw->threads);
	size_t k = 0;
	argv[k++] = (char *)"llm-tune";
	argv[k++] = (char *)"train";
	for (size_t i = 0; i < na; i++)
		argv[k++] = (char *)json_string_value(json_array_get(t->args, i));
	argv[k++] = (char *)"--out";
	argv[k++] = t->dir;
	argv[k++] = (char *)"--run-name";
	argv[k++] = t->run;
	argv[k++] = (char *)"--runs-dir";
	argv[k++] = sw->runs_dir;
	argv[k++] = (char *)"--threads";
	argv[k++] = threads;
	argv[k++] = (char *)"--force";
	argv[k] = NULL;
	char log[4200];
	snprintf(log, sizeof log, "%s/log.txt", t->dir);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0666);
		int nul = open("/dev/null", O_RDONLY);
		if (fd < 0 || nul < 0)
			_exit(LLM_EXIT_IO);
		dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		close(nul);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execv(sw->exe, argv);
		dprintf(2, "llm-tune sweep: cannot run %s: %s\n", sw->exe, strerror(errno));
		_exit(LLM_EXIT_IO);
	}
	free(argv);
	return pid;
}

/* Prepare trial i: its folder, arguments, and whether it finished before. */
static int prepare(struct sweep *sw, size_t i, const char *const *common, size_t ncommon)
{
	struct trial *t = &sw->t[i];
	t->num = (int)i + 1;
	t->best_val = t->train_loss = t->tokens = NAN;
	snprintf(t->dir, sizeof t->dir, "%s/trial-%03d", sw->out, t->num);
	t->args = json_array();
	for (size_t k = 0; k < ncommon; k++)
		json_array_append_new(t->args, json_string(common[k]));
	for (size_t f = 0; f < sw->space.nfixed; f++)
		add_opt(t->args, &sw->space.fixed[f], sw->space.fixed[f].values[0]);
	for (size_t p = 0; p < sw->tr.nparams; p++)
		add_opt(t->args, &sw->space.params[p], sw->tr.values[i * sw->tr.nparams + p]);
	char path[4200];
	snprintf(path, sizeof path, "%s/trial.json", t->dir);
	json_t *old = read_json(path);
	t->attempt = 1;
	if (old) {
		json_int_t a = json_integer_value(json_object_get(old, "attempt"));
		const char *st = json_string_value(json_object_get(old, "status"));
		const char *run = json_string_value(json_object_get(old, "run"));
		if (st && !strcmp(st, "finished") && run &&
		    json_equal(json_object_get(old, "args"), t->args)) {
			t->state = T_SKIPPED;
			snprintf(t->run, sizeof t->run, "%s", run);
			t->attempt = (int)a;
			t->exit_status = 0;
			t->seconds = json_number_value(json_object_get(old, "seconds"));
		} else {
			t->attempt = (int)(a > 0 && a < 1000000 ? a + 1 : 1);
		}
		json_decref(old);
	}
	if (t->state == T_SKIPPED)
		return 0;
	if (t->attempt == 1)
		snprintf(t->run, sizeof t->run, "%s-t%03d", sw->id, t->num);
	else
		snprintf(t->run, sizeof t->run, "%s-t%03d-a%d", sw->id, t->num, t->attempt);
	return mkdir_p(sw->c, t->dir);
}

static void trial_ended(struct sweep *sw, struct trial *t, int st)
{
	t->seconds = now() - t->t0;
	if (WIFEXITED(st)) {
		t->exit_status = WEXITSTATUS(st);
		t->state = t->exit_status == 0 ? T_FINISHED : T_FAILED;
	} else {
		t->exit_status = -1;
		t->state = WIFSIGNALED(st) && (WTERMSIG(st) == SIGINT || WTERMSIG(st) == SIGTERM)
			       ? T_INTERRUPTED
			       : T_FAILED;
	}
	if (stop_signal && t->state == T_FAILED && t->exit_status == LLM_EXIT_NEGATIVE)
		t->state = T_INTERRUPTED;
	if (sw->c->quiet)
		return;
	if (t->state == T_FAILED)
		llm_cli_error(sw->c, "trial %03d failed with status %d (%.1f s); see %s/log.txt",
			      t->num, t->exit_status, t->seconds, t->dir);
	else
		llm_cli_error(sw->c, "trial %03d %s (%.1f s)", t->num, state_name(t->state),
			      t->seconds);
}

/* Run the pending trials, at most jobs at once. */
static int run_trials(struct sweep *sw, int jobs, bool fail_fast)
{
	size_t next = 0;
	int running = 0, status = 0;
	bool stopping = false;
	for (;;) {
		while (!stop_signal && !stopping && running < jobs && next < sw->n) {
			struct trial *t = &sw->t[next++];
			if (t->state == T_SKIPPED)
				continue;
			t->state = T_RUNNING;
			if ((status = write_trial(sw->c, t, &sw->space, &sw->tr)))
				return status;
			t->t0 = now();
			t->pid = spawn(sw, t);
			if (t->pid < 0) {
				llm_cli_error(sw->c, "cannot start a trial: %s", strerror(errno));
				t->state = T_FAILED;
				t->exit_status = LLM_EXIT_IO;
				write_trial(sw->c, t, &sw->space, &sw->tr);
				return LLM_EXIT_IO;
			}
			for (int k = 0; k < MAX_JOBS; k++)
				if (live[k] <= 0) {
					live[k] = t->pid;
					break;
				}
			running++;
			if (!sw->c->quiet)
				llm_cli_error(sw->c, "trial %03d started (%s)", t->num, t->run);
		}
		if (!running)
			break;
		int st;
		pid_t pid = waitpid(-1, &st, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int k = 0; k < MAX_JOBS; k++)
			if (live[k] == pid)
				live[k] = 0;
		for (size_t i = 0; i < sw->n; i++) {
			struct trial *t = &sw->t[i];
			if (t->state != T_RUNNING || t->pid != pid)
				continue;
			running--;
			trial_ended(sw, t, st);
			if ((status = write_trial(sw->c, t, &sw->space, &sw->tr)))
				stopping = true;
			if (t->state == T_FAILED && fail_fast && !stopping) {
				stopping = true;
				for (int k = 0; k < MAX_JOBS; k++)
					if (live[k] > 0)
						kill(live[k], SIGINT);
			}
		}
	}
	return status;
}

/* --- the leaderboard ------------------------------------------------------------------------ */

static bool is_done(const struct trial *t)
{
	return t->state == T_FINISHED || t->state == T_SKIPPED;
}

static const char *sort_key = "val_loss";

/* NANs last. */
static int cmp_num(double a, double b)
{
	if (isnan(a) || isnan(b))
		return isnan(a) - isnan(b);
	return a < b ? -1 : a > b;
}

static int cmp_rows(const void *pa, const void *pb)
{
	const struct trial *a = *(const struct trial *const *)pa;
	const struct trial *b = *(const struct trial *const *)pb;
	int r = (int)!is_done(a) - (int)!is_done(b);
	if (!r && !strcmp(sort_key, "cost")) {
		r = cmp_num(a->tokens, b->tokens);
		if (!r)
			r = cmp_num(a->seconds, b->seconds);
	}
	if (!r)
		r = cmp_num(a->best_val, b->best_val);
	if (!r)
		r = cmp_num(a->train_loss, b->train_loss);
	return r ? r : a->num - b->num;
}

static void load_results(struct sweep *sw)
{
	for (size_t i = 0; i < sw->n; i++) {
		struct trial *t = &sw->t[i];
		if (t->state == T_PENDING)
			continue;
		struct llm_run *r;
		struct llm_diag d;
		if (llm_run_open(&r, sw->runs_dir, t->run, &d) != LLM_OK)
			continue;
		t->best_val = r->sum.best_val_loss;
		t->train_loss = r->sum.train_loss;
		t->tokens = r->sum.tokens;
		llm_run_close(r);
	}
}

static json_t *num_or_null(double x)
{
	return isnan(x) ? json_null() : json_real(x);
}

static json_t *leaderboard_json(const struct sweep *sw, struct trial **rows, size_t n,
				const struct trial *best)
{
	json_t *o = json_object(), *arr = json_array(), *vary = json_array();
	json_object_set_new(o, "sweep", json_string(sw->id));
	json_object_set_new(o, "method",
			    json_string(sw->space.method == LLM_SWEEP_GRID ? "grid" : "random"));
	json_object_set_new(o, "sort", json_string(sort_key));
	for (size_t p = 0; p < sw->tr.nparams; p++)
		if (llm_sweep_trials_vary(&sw->tr, p))
			json_array_append_new(vary, json_string(sw->space.params[p].name));
	json_object_set_new(o, "varying", vary);
	char bdir[64];
	if (best)
		snprintf(bdir, sizeof bdir, "trial-%03d", best->num);
	json_object_set_new(o, "best", best ? json_string(bdir) : json_null());
	for (size_t i = 0; i < n; i++) {
		const struct trial *t = rows[i];
		json_t *r = json_object(), *params = json_object();
		char dir[64];
		snprintf(dir, sizeof dir, "trial-%03d", t->num);
		for (size_t p = 0; p < sw->tr.nparams; p++)
			json_object_set_new(
			    params, sw->space.params[p].name,
			    json_string(sw->tr.values[(size_t)(t->num - 1) * sw->tr.nparams + p]));
		json_object_set_new(r, "rank", json_integer((json_int_t)i + 1));
		json_object_set_new(r, "trial", json_integer(t->num));
		json_object_set_new(r, "dir", json_string(dir));
		json_object_set_new(r, "run",
				    t->state == T_PENDING ? json_null() : json_string(t->run));
		json_object_set_new(r, "status", json_string(state_name(t->state)));
		json_object_set_new(r, "skipped", json_boolean(t->state == T_SKIPPED));
		json_object_set_new(r, "params", params);
		json_object_set_new(r, "best_val_loss", num_or_null(t->best_val));
		json_object_set_new(r, "train_loss", num_or_null(t->train_loss));
		json_object_set_new(r, "tokens", num_or_null(t->tokens));
		json_object_set_new(r, "seconds",
				    t->state == T_PENDING ? json_null() : json_real(t->seconds));
		json_object_set_new(r, "exit_status",
				    t->state == T_PENDING || t->exit_status < 0
					? json_null()
					: json_integer(t->exit_status));
		json_object_set_new(r, "best", json_boolean(t == best));
		json_array_append_new(arr, r);
	}
	json_object_set_new(o, "trials", arr);
	return o;
}

/* x with prec decimals, or "-" when unknown. */
static void cell_num(char *b, size_t n, double x, int prec)
{
	if (isnan(x))
		snprintf(b, n, "-");
	else
		snprintf(b, n, "%.*f", prec, x);
}

/* The table: one row per trial, columns padded to their widest cell. */
static bool print_table(struct sweep *sw, struct trial **rows, size_t n, const struct trial *best)
{
	size_t np = sw->tr.nparams, nv = 0;
	size_t *vp = calloc(np + 1, sizeof *vp);
	if (!vp)
		return false;
	for (size_t p = 0; p < np; p++)
		if (llm_sweep_trials_vary(&sw->tr, p))
			vp[nv++] = p;
	size_t ncol = 2 + nv + 5;
	char(*cells)[64] = calloc((n + 1) * ncol, sizeof *cells);
	size_t *w = calloc(ncol, sizeof *w);
	if (!cells || !w) {
		free(vp);
		free(cells);
		free(w);
		return false;
	}
	size_t k = 0;
	snprintf(cells[k++], 64, "rank");
	snprintf(cells[k++], 64, "trial");
	for (size_t j = 0; j < nv; j++)
		snprintf(cells[k++], 64, "%s", sw->space.params[vp[j]].name);
	const char *heads[] = {"best_val_loss", "train_loss", "tokens", "seconds", "status"};
	for (size_t j = 0; j < 5; j++)
		snprintf(cells[k++], 64, "%s", heads[j]);
	for (size_t i = 0; i < n; i++) {
		const struct trial *t = rows[i];
		snprintf(cells[k++], 64, "%zu", i + 1);
		snprintf(cells[k++], 64, "%03d", t->num);
		for (size_t j = 0; j < nv; j++)
			snprintf(cells[k++], 64, "%s",
				 sw->tr.values[(size_t)(t->num - 1) * np + vp[j]]);
		cell_num(cells[k++], 64, t->best_val, 4);
		cell_num(cells[k++], 64, t->train_loss, 4);
		cell_num(cells[k++], 64, t->tokens, 0);
		cell_num(cells[k++], 64, t->state == T_PENDING ? NAN : t->seconds, 1);
		snprintf(cells[k++], 64, "%s%s", state_name(t->state),
			 t->state == T_SKIPPED ? " (before)" : "");
	}
	for (size_t i = 0; i < k; i++)
		if (strlen(cells[i]) > w[i % ncol])
			w[i % ncol] = strlen(cells[i]);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	for (size_t r = 0; r <= n; r++) {
		llm_buf_puts(&b, r > 0 && rows[r - 1] == best ? "* " : "  ");
		for (size_t j = 0; j < ncol; j++) {
			const char *s = cells[r * ncol + j];
			if (j + 1 == ncol)
				llm_buf_printf(&b, "%s\n", s);
			else
				llm_buf_printf(&b, "%-*s  ", (int)w[j], s);
		}
	}
	bool ok = llm_cli_write(sw->c, b.data, b.len);
	llm_buf_free(&b);
	free(vp);
	free(cells);
	free(w);
	return ok;
}

/* OUT/best -> trial-NNN, replaced atomically; removed when there is no best. */
static int mark_best(struct sweep *sw, const struct trial *best)
{
	char link[4200], tmp[4200], target[64];
	snprintf(link, sizeof link, "%s/best", sw->out);
	if (!best) {
		unlink(link);
		return 0;
	}
	snprintf(target, sizeof target, "trial-%03d", best->num);
	snprintf(tmp, sizeof tmp, "%s/.best.%ld", sw->out, (long)getpid());
	unlink(tmp);
	if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
		llm_cli_error(sw->c, "%s: cannot link to %s: %s", link, target, strerror(errno));
		unlink(tmp);
		return LLM_EXIT_IO;
	}
	return 0;
}

static int leaderboard(struct sweep *sw)
{
	load_results(sw);
	struct trial **rows = calloc(sw->n + 1, sizeof *rows);
	if (!rows) {
		llm_cli_error(sw->c, "out of memory");
		return LLM_EXIT_IO;
	}
	for (size_t i = 0; i < sw->n; i++)
		rows[i] = &sw->t[i];
	qsort(rows, sw->n, sizeof *rows, cmp_rows);
	const struct trial *best = NULL;
	for (size_t i = 0; i < sw->n; i++) {
		const struct trial *t = &sw->t[i];
		if (is_done(t) && !isnan(t->best_val) && (!best || t->best_val < best->best_val))
			best = t;
	}
	json_t *o = leaderboard_json(sw, rows, sw->n, best);
	char path[4200];
	snprintf(path, sizeof path, "%s/leaderboard.json", sw->out);
	struct llm_diag d;
	int status = 0;
	if (llm_cli_write_json(sw->c, path, o, &d))
		status = llm_cli_fail(sw->c, &d);
	if (!status)
		status = mark_best(sw, best);
	if (!status) {
		if (llm_args_flag(&sw->c->args, "json")) {
			if (llm_cli_write_json(sw->c, "-", o, &d))
				status = llm_cli_fail(sw->c, &d);
		} else if (!print_table(sw, rows, sw->n, best)) {
			status = LLM_EXIT_IO;
		}
	}
	json_decref(o);
	free(rows);
	return status;
}

/* --- the verb ------------------------------------------------------------------------------- */

static int write_sweep_json(struct sweep *sw, const char *space_path, char *const *common,
			    size_t ncommon)
{
	json_t *o = json_object(), *args = json_array();
	for (size_t i = 0; i < ncommon; i++)
		json_array_append_new(args, json_string(common[i]));
	json_object_set_new(o, "id", json_string(sw->id));
	json_object_set_new(o, "space", json_string(space_path));
	json_object_set_new(o, "method",
			    json_string(sw->space.method == LLM_SWEEP_GRID ? "grid" : "random"));
	json_object_set_new(o, "seed", json_integer(llm_args_int(&sw->c->args, "seed")));
	json_object_set_new(o, "trials", json_integer((json_int_t)sw->n));
	json_object_set_new(o, "runs_dir", json_string(sw->runs_dir));
	json_object_set_new(o, "common_args", args);
	char path[4200];
	snprintf(path, sizeof path, "%s/sweep.json", sw->out);
	struct llm_diag d;
	enum llm_err e = llm_cli_write_json(sw->c, path, o, &d);
	json_decref(o);
	return e ? llm_cli_fail(sw->c, &d) : 0;
}

static void sweep_free(struct sweep *sw)
{
	for (size_t i = 0; sw->t && i < sw->n; i++)
		json_decref(sw->t[i].args);
	free(sw->t);
	llm_sweep_trials_free(&sw->tr);
	llm_sweep_space_free(&sw->space);
	free(sw->id);
	free(sw->runs_dir);
}

static int sweep_main(struct sweep *sw)
{
	struct llm_cli *c = sw->c;
	struct llm_args *a = &c->args;
	struct llm_diag d;
	const char *space = llm_args_str(a, "space");
	if (!space || !sw->out)
		return llm_cli_usage(c, "--space and --out are required");
	const char *bad = common_conflict(a->operands, a->noperands);
	if (bad)
		return llm_cli_usage(c, "%s after '--': the sweep sets it for each trial", bad);
	if (llm_sweep_space_load(space, llm_tune_verb_train.opts[0], &sw->space, &d)) {
		if (d.code == LLM_ERR_USAGE || d.code == LLM_ERR_TYPE || d.code == LLM_ERR_RANGE) {
			char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 8];
			llm_diag_format(&d, msg, sizeof msg);
			return llm_cli_usage(c, "%s", msg);
		}
		return llm_cli_fail(c, &d);
	}
	uint64_t grid = llm_sweep_grid_size(&sw->space);
	bool given = llm_args_given(a, "trials");
	uint64_t n = given ? (uint64_t)llm_args_int(a, "trials") : grid;
	if (sw->space.method == LLM_SWEEP_RANDOM && !given)
		return llm_cli_usage(c, "a random search needs --trials");
	if (sw->space.method == LLM_SWEEP_GRID) {
		if (grid > 1000000 && !given)
			return llm_cli_usage(c, "the grid has more than a million points; give "
						"--trials");
		if (n < grid && !c->quiet)
			llm_cli_error(c,
				      "the grid has %llu points; running the first %llu (--trials)",
				      (unsigned long long)grid, (unsigned long long)n);
		if (n > grid)
			n = grid;
	}
	sw->n = (size_t)n;
	if (llm_sweep_trials_make(&sw->space, sw->n, (uint64_t)llm_args_int(a, "seed"), &sw->tr,
				  &d))
		return llm_cli_fail(c, &d);
	int jobs = (int)llm_args_int(a, "jobs");
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	sw->threads = (int)llm_args_int(a, "threads");
	if (sw->threads == 0)
		sw->threads = cores / jobs > 1 ? (int)(cores / jobs) : 1;
	ssize_t len = readlink("/proc/self/exe", sw->exe, sizeof sw->exe - 1);
	if (len <= 0) {
		llm_cli_error(c, "cannot find this program (/proc/self/exe): %s", strerror(errno));
		return LLM_EXIT_IO;
	}
	sw->exe[len] = '\0';
	sw->runs_dir = llm_args_str(a, "runs-dir") ? strdup(llm_args_str(a, "runs-dir"))
						   : llm_run_default_dir();
	int status = mkdir_p(c, sw->out);
	if (status)
		return status;
	sw->id = sweep_id(c, sw->out);
	sw->t = calloc(sw->n + 1, sizeof *sw->t);
	if (!sw->id || !sw->runs_dir || !sw->t) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	if ((status = write_sweep_json(sw, space, a->operands, a->noperands)))
		return status;
	size_t skipped = 0;
	for (size_t i = 0; i < sw->n && !status; i++) {
		status = prepare(sw, i, (const char *const *)a->operands, a->noperands);
		skipped += sw->t[i].state == T_SKIPPED;
	}
	if (status)
		return status;
	if (skipped && !c->quiet)
		llm_cli_error(c, "%zu of %zu trials finished before; running the other %zu",
			      skipped, sw->n, sw->n - skipped);

	struct sigaction sa = {0}, old_int, old_term;
	sa.sa_handler = on_signal; /* no SA_RESTART: waitpid returns to see the stop */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	status = run_trials(sw, jobs, llm_args_flag(a, "fail-fast"));
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);

	int lb = leaderboard(sw);
	if (!status)
		status = lb;
	size_t failed = 0, done = 0;
	for (size_t i = 0; i < sw->n; i++) {
		failed += sw->t[i].state == T_FAILED || sw->t[i].state == T_INTERRUPTED;
		done += is_done(&sw->t[i]);
	}
	if (!c->quiet)
		llm_cli_error(
		    c, "%s: %zu of %zu trials finished%s; leaderboard in %s/leaderboard.json",
		    sw->id, done, sw->n, failed ? ", the others failed or stopped" : "", sw->out);
	if (!status && done < sw->n)
		status = LLM_EXIT_NEGATIVE;
	return status;
}

static int sweep_run(struct llm_cli *c)
{
	struct sweep sw = {.c = c, .out = llm_args_str(&c->args, "out")};
	sort_key = llm_args_str(&c->args, "sort");
	int status = sweep_main(&sw);
	sweep_free(&sw);
	if (stop_signal) {
		llm_cli_flush(c);
		fflush(stdout);
		signal(stop_signal, SIG_DFL);
		raise(stop_signal);
	}
	return status;
}

const struct llm_verb llm_tune_verb_sweep = {
    "sweep",
    "search hyperparameters: a grid or random trials of train, ranked by validation loss",
    "--space FILE --out DIR [OPTIONS] -- TRAIN-OPTIONS...",
    "Run llm-tune train once per trial of the search space in --space (a grid, or random\n"
    "draws), --jobs at a time, with the train options given after '--' common to all; each\n"
    "trial writes to DIR/trial-NNN and has a run folder.  Then print the leaderboard, best\n"
    "validation loss first, write it to DIR/leaderboard.json and link DIR/best to the best\n"
    "trial.  Running the same command again skips the trials that finished.",
    {sweep_opts, llm_cli_opts_base, NULL},
    sweep_run,
};
