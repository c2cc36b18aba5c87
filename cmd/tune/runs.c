/* llm-tune runs list|show|compare: read the run folders that train and sweep write
 * (lib/tune/run.h) and show them as tables, JSON or an SVG chart of the loss curves. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/atomic.h"
#include "core/buf.h"
#include "tune/run.h"
#include "tune/verbs.h"

#define NA	 "-"
#define CELL_MAX 24 /* the widest value shown in a compare column */

/* --- formatting ------------------------------------------------------------------------------ */

static void fmt_loss(double v, char *out, size_t n)
{
	if (isnan(v))
		snprintf(out, n, NA);
	else
		snprintf(out, n, "%.4f", v);
}

static void fmt_count(double v, char *out, size_t n)
{
	if (isnan(v) || v < 0)
		snprintf(out, n, NA);
	else if (v >= 1e9)
		snprintf(out, n, "%.1fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(out, n, "%.1fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(out, n, "%.1fk", v / 1e3);
	else
		snprintf(out, n, "%.0f", v);
}

static void fmt_duration(double s, char *out, size_t n)
{
	if (isnan(s) || s < 0)
		snprintf(out, n, NA);
	else if (s < 60)
		snprintf(out, n, "%.0fs", s);
	else if (s < 3600)
		snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
	else
		snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

static void fmt_time(int64_t t, char *out, size_t n, bool full)
{
	if (t <= 0) {
		snprintf(out, n, NA);
		return;
	}
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, n, full ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M", &tm);
}

/* A JSON value as a person reads it: strings bare, numbers short, the rest as compact JSON. */
static char *value_text(const json_t *v)
{
	char tmp[64];
	if (!v)
		return strdup(NA);
	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_integer(v)) {
		snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(v));
		return strdup(tmp);
	}
	if (json_is_real(v)) {
		snprintf(tmp, sizeof tmp, "%.6g", json_real_value(v));
		return strdup(tmp);
	}
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
}

/* Seconds from start to end: the finish time, else the largest elapsed_s logged. */
static double run_duration(const struct llm_run *r)
{
	if (r->finished && r->created && r->finished >= r->created)
		return (double)(r->finished - r->created);
	return r->sum.elapsed_s;
}

static json_t *json_num_or_null(double v)
{
	return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

static json_t *json_step_or_null(int64_t s)
{
	return s < 0 ? json_null() : json_integer((json_int_t)s);
}

/* Parameters with nested objects spelled out as dotted names ("lora.r"), in their order. */
static void flatten(const json_t *o, const char *prefix, json_t *out)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v)
	{
		char name[256];
		snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", k);
		if (json_is_object(v) && json_object_size(v))
			flatten(v, name, out);
		else
			json_object_set(out, name, v);
	}
}

/* --- opening runs ------------------------------------------------------------------------- */

struct runs_ctx {
	struct llm_cli *c;
	char *dir; /* the runs directory */
};

static void report_warnings(struct llm_cli *c, const struct llm_run *r)
{
	if (c->quiet)
		return;
	for (size_t i = 0; i < r->nwarnings; i++)
		llm_cli_error(c, "%s/metrics.jsonl:%ld: warning: %s (line skipped)", r->dir,
			      r->warnings[i].line, r->warnings[i].msg);
}

static int open_run(struct runs_ctx *x, const char *ref, struct llm_run **r)
{
	struct llm_diag d;
	if (llm_run_open(r, x->dir, ref, &d))
		return llm_cli_fail(x->c, &d);
	report_warnings(x->c, *r);
	return 0;
}

/* --- list ---------------------------------------------------------------------------------- */

static int by_created(const void *a, const void *b)
{
	const struct llm_run *x = *(struct llm_run *const *)a, *y = *(struct llm_run *const *)b;
	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int by_id(const void *a, const void *b)
{
	return strcmp((*(struct llm_run *const *)a)->id, (*(struct llm_run *const *)b)->id);
}

/* Lower first, runs without the number last. */
static int cmp_loss(double a, double b)
{
	if (isnan(a) || isnan(b))
		return isnan(a) - isnan(b);
	return a < b ? -1 : a > b;
}

static int by_val_loss(const void *a, const void *b)
{
	const struct llm_run *x = *(struct llm_run *const *)a, *y = *(struct llm_run *const *)b;
	int k = cmp_loss(x->sum.best_val_loss, y->sum.best_val_loss);
	return k ? k : by_created(a, b);
}

static int by_train_loss(const void *a, const void *b)
{
	const struct llm_run *x = *(struct llm_run *const *)a, *y = *(struct llm_run *const *)b;
	int k = cmp_loss(x->sum.train_loss, y->sum.train_loss);
	return k ? k : by_created(a, b);
}

static int by_steps(const void *a, const void *b)
{
	const struct llm_run *x = *(struct llm_run *const *)a, *y = *(struct llm_run *const *)b;
	if (x->sum.steps != y->sum.steps)
		return x->sum.steps > y->sum.steps ? -1 : 1;
	return by_created(a, b);
}

/* The parameters worth a glance: those whose values differ between the runs listed, or, when
 * none differ, the first few. */
static json_t *params_of_note(struct llm_run **runs, size_t n)
{
	json_t *flat = json_array(), *keys = json_object();
	for (size_t i = 0; i < n; i++) {
		json_t *f = json_object();
		flatten(runs[i]->params, "", f);
		json_array_append_new(flat, f);
		const char *k;
		json_t *v;
		json_object_foreach(f, k, v)
		{
			json_t *first = json_object_get(keys, k);
			if (!first)
				json_object_set_new(keys, k,
						    json_pack("{s:O,s:b}", "v", v, "d", 0));
			else if (!json_equal(json_object_get(first, "v"), v))
				json_object_set_new(first, "d", json_true());
		}
		/* A key some runs lack differs too. */
	}
	json_t *note = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(keys, k, v)
	{
		bool differs = json_is_true(json_object_get(v, "d"));
		for (size_t i = 0; i < n && !differs; i++)
			differs = !json_object_get(json_array_get(flat, i), k);
		if (differs)
			json_array_append_new(note, json_string(k));
	}
	if (!json_array_size(note) || n == 1) {
		json_array_clear(note);
		json_object_foreach(keys, k, v)
		{
			if (json_array_size(note) >= 4)
				break;
			json_array_append_new(note, json_string(k));
		}
	}
	json_decref(keys);
	json_decref(flat);
	return note;
}

static char *params_summary(const struct llm_run *r, const json_t *note)
{
	json_t *f = json_object();
	flatten(r->params, "", f);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	size_t i;
	json_t *k;
	json_array_foreach(note, i, k)
	{
		json_t *v = json_object_get(f, json_string_value(k));
		if (!v)
			continue;
		char *t = value_text(v);
		llm_buf_printf(&b, "%s%s=%s", b.len ? " " : "", json_string_value(k), t ? t : "?");
		free(t);
	}
	json_decref(f);
	char *s = strdup(b.data ? b.data : "");
	llm_buf_free(&b);
	return s;
}

static json_t *run_json(const struct llm_run *r)
{
	char created[32], finished[32];
	fmt_time(r->created, created, sizeof created, true);
	fmt_time(r->finished, finished, sizeof finished, true);
	return json_pack(
	    "{s:s,s:s,s:s,s:s*,s:s*,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:O}", "id", r->id, "dir", r->dir,
	    "status", llm_run_status_name(r->status), "created", r->created ? created : NULL,
	    "finished", r->finished ? finished : NULL, "steps", json_step_or_null(r->sum.steps),
	    "tokens", json_num_or_null(r->sum.tokens), "train_loss",
	    json_num_or_null(r->sum.train_loss), "val_loss", json_num_or_null(r->sum.val_loss),
	    "best_val_loss", json_num_or_null(r->sum.best_val_loss), "best_step",
	    json_step_or_null(r->sum.best_step), "duration_s", json_num_or_null(run_duration(r)),
	    "params", r->params);
}

/* Columns padded to their widest cell; the last column is not padded. */
struct table {
	size_t ncols;
	json_t *rows; /* arrays of strings */
};

static void table_row(struct table *t, const char *const *cells)
{
	json_t *row = json_array();
	for (size_t i = 0; i < t->ncols; i++)
		json_array_append_new(row, json_string(cells[i] ? cells[i] : ""));
	json_array_append_new(t->rows, row);
}

static bool table_print(struct llm_cli *c, struct table *t, const char *indent)
{
	size_t w[16] = {0};
	size_t i;
	json_t *row;
	json_array_foreach(t->rows, i, row)
	{
		for (size_t j = 0; j < t->ncols && j < 16; j++) {
			size_t len = strlen(json_string_value(json_array_get(row, j)));
			if (len > w[j])
				w[j] = len;
		}
	}
	struct llm_buf b;
	llm_buf_init(&b, 0);
	json_array_foreach(t->rows, i, row)
	{
		llm_buf_puts(&b, indent);
		for (size_t j = 0; j < t->ncols; j++) {
			const char *s = json_string_value(json_array_get(row, j));
			if (j + 1 == t->ncols)
				llm_buf_puts(&b, s);
			else
				llm_buf_printf(&b, "%-*s  ", (int)w[j], s);
		}
		while (b.len && b.data[b.len - 1] == ' ')
			b.len--;
		llm_buf_putc(&b, '\n');
	}
	bool ok = llm_cli_write(c, b.data, b.len);
	llm_buf_free(&b);
	json_array_clear(t->rows);
	return ok;
}

static int run_list(struct runs_ctx *x)
{
	struct llm_cli *c = x->c;
	if (c->args.noperands)
		return llm_cli_usage(c, "list takes no operands");
	struct llm_diag d;
	char **ids;
	size_t n;
	if (llm_run_list(x->dir, &ids, &n, &d))
		return llm_cli_fail(c, &d);
	bool json = llm_args_flag(&c->args, "json");
	int st = 0;
	struct llm_run **runs = calloc(n ? n : 1, sizeof *runs);
	size_t nr = 0;
	for (size_t i = 0; runs && i < n; i++) {
		char *path = malloc(strlen(x->dir) + strlen(ids[i]) + 2);
		if (!path)
			break;
		snprintf(path, strlen(x->dir) + strlen(ids[i]) + 2, "%s/%s", x->dir, ids[i]);
		/* One broken run is reported and the others still listed; the status says so. */
		if (llm_run_open(&runs[nr], x->dir, path, &d)) {
			llm_cli_fail(c, &d);
			st = LLM_EXIT_NEGATIVE;
		} else {
			report_warnings(c, runs[nr++]);
		}
		free(path);
	}
	llm_run_list_free(ids, n);
	if (!runs)
		return llm_cli_error(c, "out of memory"), LLM_EXIT_IO;
	const char *sort = llm_args_str(&c->args, "sort");
	int (*cmp)(const void *, const void *) = by_created;
	if (!strcmp(sort, "val_loss"))
		cmp = by_val_loss;
	else if (!strcmp(sort, "train_loss"))
		cmp = by_train_loss;
	else if (!strcmp(sort, "steps"))
		cmp = by_steps;
	else if (!strcmp(sort, "id"))
		cmp = by_id;
	if (nr)
		qsort(runs, nr, sizeof *runs, cmp);
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < nr; i++)
			json_array_append_new(a, run_json(runs[i]));
		if (llm_cli_write_json(c, "-", a, &d) && !st)
			st = llm_cli_fail(c, &d);
		json_decref(a);
	} else if (!nr && !st) {
		if (!c->quiet)
			fprintf(stderr,
				"%s: no runs in %s yet ('llm-tune train' makes them; --runs-dir "
				"or LLMOPS_HOME point elsewhere)\n",
				c->tool->name, x->dir);
	} else if (nr) {
		json_t *note = params_of_note(runs, nr);
		struct table t = {9, json_array()};
		const char *head[] = {"ID",    "STATUS", "CREATED",  "STEPS", "BEST VAL",
				      "TRAIN", "TOKENS", "DURATION", "PARAMS"};
		table_row(&t, head);
		for (size_t i = 0; i < nr; i++) {
			const struct llm_run *r = runs[i];
			char created[32], steps[32], best[32], train[32], tokens[32], dur[32];
			fmt_time(r->created, created, sizeof created, false);
			fmt_count(r->sum.steps < 0 ? NAN : (double)r->sum.steps, steps,
				  sizeof steps);
			if (r->sum.steps >= 0)
				snprintf(steps, sizeof steps, "%lld", (long long)r->sum.steps);
			fmt_loss(r->sum.best_val_loss, best, sizeof best);
			fmt_loss(r->sum.train_loss, train, sizeof train);
			fmt_count(r->sum.tokens, tokens, sizeof tokens);
			fmt_duration(run_duration(r), dur, sizeof dur);
			char *ps = params_summary(r, note);
			const char *row[] = {r->id,   llm_run_status_name(r->status),
					     created, steps,
					     best,    train,
					     tokens,  dur,
					     ps};
			table_row(&t, row);
			free(ps);
		}
		if (!table_print(c, &t, "") && !st)
			st = LLM_EXIT_IO;
		json_decref(t.rows);
		json_decref(note);
	}
	for (size_t i = 0; i < nr; i++)
		llm_run_close(runs[i]);
	free(runs);
	return st;
}

/* --- show ---------------------------------------------------------------------------------- */

/* Lower is better for these, so they have a best. */
static bool is_loss(const char *key)
{
	return strstr(key, "loss") || strstr(key, "ppl") || strstr(key, "perplexity");
}

/* The numeric metrics of a run: per name its last value, and for losses the lowest and its
 * step.  {"name": {"final": x, "best": y, "best_step": s}} in the order names first appear. */
static json_t *metric_table(const struct llm_run *r)
{
	json_t *t = json_object();
	size_t i;
	json_t *m;
	json_array_foreach(r->metrics, i, m)
	{
		json_t *step = json_object_get(m, "step");
		const char *k;
		json_t *v;
		json_object_foreach(m, k, v)
		{
			if (!json_is_number(v) || !strcmp(k, "step"))
				continue;
			json_t *e = json_object_get(t, k);
			if (!e) {
				e = json_object();
				json_object_set_new(t, k, e);
			}
			json_object_set(e, "final", v);
			json_object_set(e, "final_step", step);
			json_t *best = json_object_get(e, "best");
			if (is_loss(k) &&
			    (!best || json_number_value(v) < json_number_value(best))) {
				json_object_set(e, "best", v);
				json_object_set(e, "best_step", step);
			}
		}
	}
	return t;
}

/* Train loss as a line of block characters, averaged into at most width buckets. */
static void sparkline(const struct llm_run *r, const char *key, size_t width, struct llm_buf *b)
{
	static const char *const bars[] = {"\u2581", "\u2582", "\u2583", "\u2584",
					   "\u2585", "\u2586", "\u2587", "\u2588"};
	size_t n = 0;
	size_t i;
	json_t *m;
	json_array_foreach(r->metrics, i, m)
	{
		n += json_is_number(json_object_get(m, key));
	}
	if (!n)
		return;
	size_t buckets = n < width ? n : width;
	double *sum = calloc(buckets, sizeof *sum);
	size_t *cnt = calloc(buckets, sizeof *cnt);
	if (!sum || !cnt) {
		free(sum);
		free(cnt);
		return;
	}
	size_t j = 0;
	json_array_foreach(r->metrics, i, m)
	{
		json_t *v = json_object_get(m, key);
		if (!json_is_number(v))
			continue;
		size_t k = j++ * buckets / n;
		sum[k] += json_number_value(v);
		cnt[k]++;
	}
	double lo = INFINITY, hi = -INFINITY;
	for (size_t k = 0; k < buckets; k++) {
		sum[k] /= (double)(cnt[k] ? cnt[k] : 1);
		lo = fmin(lo, sum[k]);
		hi = fmax(hi, sum[k]);
	}
	for (size_t k = 0; k < buckets; k++) {
		int level = hi > lo ? (int)((sum[k] - lo) / (hi - lo) * 7.0 + 0.5) : 3;
		llm_buf_puts(b, bars[level < 0 ? 0 : level > 7 ? 7 : level]);
	}
	char a[32], z[32];
	fmt_loss(lo, a, sizeof a);
	fmt_loss(hi, z, sizeof z);
	llm_buf_printf(b, "  %s .. %s", z, a);
	free(sum);
	free(cnt);
}

static bool show_text(struct llm_cli *c, const struct llm_run *r)
{
	struct table t = {2, json_array()};
	char created[32], finished[32], dur[32], buf[256];
	fmt_time(r->created, created, sizeof created, true);
	fmt_time(r->finished, finished, sizeof finished, true);
	fmt_duration(run_duration(r), dur, sizeof dur);
	const json_t *meta = r->meta;
	const char *commit = json_string_value(json_object_get(meta, "git_commit"));
	const char *version = json_string_value(json_object_get(meta, "llmops_version"));
	snprintf(buf, sizeof buf, "llmops %s%s%s%s", version ? version : "?",
		 commit ? " (commit " : "", commit ? commit : "", commit ? ")" : "");
	const char *rows[][2] = {
	    {"run", r->id},
	    {"folder", r->dir},
	    {"status", llm_run_status_name(r->status)},
	    {"created", created},
	    {"finished", finished},
	    {"duration", dur},
	    {"code", buf},
	    {"host", json_string_value(json_object_get(meta, "hostname"))},
	    {"command", json_string_value(json_object_get(meta, "command"))},
	};
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
		if (rows[i][1])
			table_row(&t, rows[i]);
	size_t i;
	json_t *dg;
	json_array_foreach(json_object_get(meta, "data"), i, dg)
	{
		char line[512];
		const char *sha = json_string_value(json_object_get(dg, "sha256"));
		snprintf(line, sizeof line, "%s  %lld bytes  sha256:%.16s",
			 json_string_value(json_object_get(dg, "path")) ?: "?",
			 (long long)json_integer_value(json_object_get(dg, "bytes")), sha ?: "?");
		const char *row[] = {i ? "" : "data", line};
		table_row(&t, row);
	}
	bool ok = table_print(c, &t, "");

	json_t *flat = json_object();
	flatten(r->params, "", flat);
	ok = ok && llm_cli_write(c, "\nparams\n", 8);
	const char *k;
	json_t *v;
	json_object_foreach(flat, k, v)
	{
		char *s = value_text(v);
		const char *row[] = {k, s ? s : "?"};
		table_row(&t, row);
		free(s);
	}
	if (!json_object_size(flat)) {
		const char *row[] = {"(none)", ""};
		table_row(&t, row);
	}
	ok = ok && table_print(c, &t, "  ");
	json_decref(flat);

	char head[128];
	snprintf(head, sizeof head, "\nmetrics (%zu lines, last step %lld)\n", r->sum.points,
		 (long long)r->sum.steps);
	ok = ok && llm_cli_write(c, head, strlen(head));
	json_t *mt = metric_table(r);
	t.ncols = 5;
	const char *top[] = {"", "final", "step", "best", "step"};
	table_row(&t, top);
	json_object_foreach(mt, k, v)
	{
		char *fin = value_text(json_object_get(v, "final"));
		char *fs = value_text(json_object_get(v, "final_step"));
		json_t *bv = json_object_get(v, "best");
		char *best = bv ? value_text(bv) : strdup("");
		char *bs = bv ? value_text(json_object_get(v, "best_step")) : strdup("");
		const char *row[] = {k, fin ?: "?", fs ?: "?", best ?: "", bs ?: ""};
		table_row(&t, row);
		free(fin);
		free(fs);
		free(best);
		free(bs);
	}
	json_decref(mt);
	ok = ok && table_print(c, &t, "  ");
	struct llm_buf b;
	llm_buf_init(&b, 0);
	const char *curves[] = {"train_loss", "val_loss"};
	for (size_t j = 0; j < 2; j++) {
		size_t before = b.len;
		llm_buf_printf(&b, "  %-10s  ", curves[j]);
		size_t mark = b.len;
		sparkline(r, curves[j], 48, &b);
		if (b.len == mark)
			b.len = before;
		else
			llm_buf_putc(&b, '\n');
	}
	if (b.len)
		ok = ok && llm_cli_write(c, "\n", 1) && llm_cli_write(c, b.data, b.len);
	llm_buf_free(&b);
	json_decref(t.rows);
	return ok;
}

static int run_show(struct runs_ctx *x)
{
	struct llm_cli *c = x->c;
	if (c->args.noperands != 1)
		return llm_cli_usage(c, "show takes one run (an id, a prefix of one, or a folder)");
	struct llm_run *r;
	int st = open_run(x, c->args.operands[0], &r);
	if (st)
		return st;
	if (llm_args_flag(&c->args, "json")) {
		json_t *j = run_json(r);
		json_object_set(j, "meta", r->meta);
		json_object_set_new(j, "metrics", metric_table(r));
		json_object_set_new(j, "skipped_lines", json_integer((json_int_t)r->nwarnings));
		struct llm_diag d;
		if (llm_cli_write_json(c, "-", j, &d))
			st = llm_cli_fail(c, &d);
		json_decref(j);
	} else if (!show_text(c, r)) {
		st = LLM_EXIT_IO;
	}
	llm_run_close(r);
	return st;
}

/* --- compare ------------------------------------------------------------------------------- */

static char *cell(const json_t *v)
{
	char *s = value_text(v);
	if (s && strlen(s) > CELL_MAX)
		memcpy(s + CELL_MAX - 3, "...", 4);
	return s;
}

static void fmt_delta(double d, char *out, size_t n)
{
	if (isnan(d) || d == 0)
		*out = '\0'; /* the same as the first run: the row's mark says so */
	else
		snprintf(out, n, " (%+.4g)", d);
}

/* Rows of the compare table: per name, the value of each run, and whether they differ. */
static json_t *compare_params(struct llm_run **runs, size_t n)
{
	json_t *flat = json_array(), *names = json_object();
	for (size_t i = 0; i < n; i++) {
		json_t *f = json_object();
		flatten(runs[i]->params, "", f);
		json_array_append_new(flat, f);
		const char *k;
		json_t *v;
		json_object_foreach(f, k, v)
		{
			json_object_set(names, k, json_true());
		}
	}
	json_t *rows = json_array();
	const char *k;
	json_t *unused;
	json_object_foreach(names, k, unused)
	{
		json_t *vals = json_array();
		bool differs = false;
		for (size_t i = 0; i < n; i++) {
			json_t *v = json_object_get(json_array_get(flat, i), k);
			json_array_append(vals, v ? v : json_null());
			differs = differs || !v || !json_equal(v, json_array_get(vals, 0));
			if (!v)
				json_array_set_new(vals, i, json_null());
		}
		if (n && !json_object_get(json_array_get(flat, 0), k))
			differs = true;
		json_array_append_new(rows, json_pack("{s:s,s:o,s:b}", "name", k, "values", vals,
						      "differs", differs));
	}
	json_decref(names);
	json_decref(flat);
	return rows;
}

/* Final and best of each metric across runs, with the change from the first run. */
static json_t *compare_metrics(struct llm_run **runs, size_t n, bool best)
{
	json_t *tables = json_array(), *names = json_object();
	for (size_t i = 0; i < n; i++) {
		json_t *t = metric_table(runs[i]);
		const char *k;
		json_t *v;
		json_object_foreach(t, k, v)
		{
			if (!best || json_object_get(v, "best"))
				json_object_set(names, k, json_true());
		}
		json_array_append_new(tables, t);
	}
	json_t *rows = json_array();
	const char *k;
	json_t *unused;
	json_object_foreach(names, k, unused)
	{
		json_t *vals = json_array(), *steps = json_array(), *deltas = json_array();
		double base = NAN;
		for (size_t i = 0; i < n; i++) {
			json_t *e = json_object_get(json_array_get(tables, i), k);
			json_t *v = json_object_get(e, best ? "best" : "final");
			json_t *s = json_object_get(e, best ? "best_step" : "final_step");
			json_array_append(vals, v ? v : json_null());
			json_array_append(steps, s ? s : json_null());
			if (i == 0)
				base = v ? json_number_value(v) : NAN;
			double dv = v && i && !isnan(base) ? json_number_value(v) - base : NAN;
			json_array_append_new(deltas, json_num_or_null(dv));
			if (!v)
				json_array_set_new(vals, i, json_null());
			if (!s)
				json_array_set_new(steps, i, json_null());
		}
		json_array_append_new(rows, json_pack("{s:s,s:o,s:o,s:o}", "name", k, "values",
						      vals, "steps", steps, "delta", deltas));
	}
	json_decref(names);
	json_decref(tables);
	return rows;
}

static bool compare_text(struct llm_cli *c, struct llm_run **runs, size_t n, json_t *params,
			 json_t *final, json_t *best)
{
	size_t ncols = n + 2;
	if (ncols > 16)
		ncols = 16; /* the table's limit; compare_run refuses more runs */
	struct table t = {ncols, json_array()};
	const char **row = calloc(ncols, sizeof *row);
	char **own = calloc(ncols, sizeof *own);
	if (!row || !own) {
		free(row);
		free(own);
		json_decref(t.rows);
		return false;
	}
	row[0] = "";
	row[1] = "";
	for (size_t i = 0; i < n; i++)
		row[i + 2] = runs[i]->id;
	table_row(&t, row);
	bool ok = true;
	struct {
		const char *title;
		json_t *rows;
		bool metric;
	} parts[] = {{"params", params, false}, {"final", final, true}, {"best", best, true}};
	for (size_t p = 0; p < 3; p++) {
		row[0] = "";
		row[1] = parts[p].title;
		for (size_t i = 0; i < n; i++)
			row[i + 2] = "";
		table_row(&t, row);
		size_t r;
		json_t *e;
		json_array_foreach(parts[p].rows, r, e)
		{
			/* "*" marks what differs between the runs. */
			bool differs = json_is_true(json_object_get(e, "differs"));
			json_t *vals = json_object_get(e, "values");
			for (size_t i = 0; parts[p].metric && i < n; i++) {
				json_t *v = json_array_get(vals, i);
				differs = differs || !json_equal(v, json_array_get(vals, 0));
			}
			row[0] = differs ? "*" : "";
			row[1] = json_string_value(json_object_get(e, "name"));
			for (size_t i = 0; i < n; i++) {
				json_t *v = json_array_get(vals, i);
				char *s = json_is_null(v) ? strdup(NA) : cell(v);
				if (parts[p].metric && !json_is_null(v)) {
					char extra[64] = "";
					json_t *st = json_array_get(json_object_get(e, "steps"), i);
					double dv = json_number_value(
					    json_array_get(json_object_get(e, "delta"), i));
					if (p == 2 && json_is_integer(st))
						snprintf(extra, sizeof extra, " @%lld",
							 (long long)json_integer_value(st));
					size_t len = strlen(extra);
					if (json_is_number(
						json_array_get(json_object_get(e, "delta"), i)))
						fmt_delta(dv, extra + len, sizeof extra - len);
					char *joined =
					    malloc(strlen(s ? s : "") + strlen(extra) + 1);
					if (joined) {
						memcpy(joined, s ? s : "", strlen(s ? s : "") + 1);
						memcpy(joined + strlen(joined), extra,
						       strlen(extra) + 1);
					}
					free(s);
					s = joined;
				}
				own[i + 2] = s;
				row[i + 2] = s ? s : "?";
			}
			table_row(&t, row);
			for (size_t i = 0; i < n; i++) {
				free(own[i + 2]);
				own[i + 2] = NULL;
			}
		}
	}
	ok = table_print(c, &t, "");
	json_decref(t.rows);
	free(row);
	free(own);
	return ok;
}

/* --- the SVG chart --------------------------------------------------------------------------- */

/* Tableau 10: distinct for most colour vision, on white. */
static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
				      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

#define SVG_W	   860.0
#define SVG_H	   500.0
#define PLOT_L	   70.0
#define PLOT_R	   610.0
#define PLOT_T	   40.0
#define PLOT_B	   440.0
#define MAX_POINTS 2000 /* per curve: more points add bytes, not legibility */

/* A tick step of 1, 2 or 5 times a power of ten giving about n ticks over span. */
static double nice_step(double span, int n)
{
	double raw = span / n, mag = pow(10, floor(log10(raw))), f = raw / mag;
	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static void xml_text(struct llm_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			llm_buf_puts(b, "&lt;");
		else if (*s == '>')
			llm_buf_puts(b, "&gt;");
		else if (*s == '&')
			llm_buf_puts(b, "&amp;");
		else if (*s == '"')
			llm_buf_puts(b, "&quot;");
		else
			llm_buf_putc(b, *s);
	}
}

static void tick_label(double v, double step, char *out, size_t n)
{
	if (fabs(v) >= 1e6)
		snprintf(out, n, "%.3gM", v / 1e6);
	else if (fabs(v) >= 1e4)
		snprintf(out, n, "%.4gk", v / 1e3);
	else if (step >= 1)
		snprintf(out, n, "%.0f", v);
	else
		snprintf(out, n, "%.*f", (int)ceil(-log10(step)), v);
}

/* The point of a metrics line.  A line without the x value (an evaluation line that has a
 * step but no tokens) takes the last one seen, in *carry. */
static bool point_of(const json_t *m, const char *xkey, const char *ykey, double *carry, double *x,
		     double *y)
{
	json_t *xv = json_object_get(m, xkey), *yv = json_object_get(m, ykey);
	if (json_is_number(xv))
		*carry = json_number_value(xv);
	if (!json_is_number(yv))
		return false;
	*x = *carry;
	*y = json_number_value(yv);
	return isfinite(*x) && isfinite(*y);
}

static enum llm_err write_svg(struct llm_run **runs, size_t n, const char *xkey, const char *path,
			      struct llm_diag *d)
{
	static const char *const ykeys[] = {"train_loss", "val_loss"};
	double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
	for (size_t i = 0; i < n; i++) {
		size_t j;
		json_t *m;
		double carry = NAN;
		json_array_foreach(runs[i]->metrics, j, m)
		{
			for (size_t k = 0; k < 2; k++) {
				double x, y;
				if (!point_of(m, xkey, ykeys[k], &carry, &x, &y))
					continue;
				x0 = fmin(x0, x), x1 = fmax(x1, x);
				y0 = fmin(y0, y), y1 = fmax(y1, y);
			}
		}
	}
	bool empty = !(x0 <= x1);
	if (empty)
		x0 = 0, x1 = 1, y0 = 0, y1 = 1;
	if (x1 == x0)
		x1 = x0 + 1;
	if (y1 == y0)
		y0 -= 0.5, y1 += 0.5;
	double xs = nice_step(x1 - x0, 6), ys = nice_step(y1 - y0, 6);
	x0 = floor(x0 / xs) * xs, x1 = ceil(x1 / xs) * xs;
	y0 = floor(y0 / ys) * ys, y1 = ceil(y1 / ys) * ys;
#define PX(v) (PLOT_L + ((v)-x0) / (x1 - x0) * (PLOT_R - PLOT_L))
#define PY(v) (PLOT_B - ((v)-y0) / (y1 - y0) * (PLOT_B - PLOT_T))
	struct llm_buf b;
	llm_buf_init(&b, 0);
	llm_buf_printf(&b,
		       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		       "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		       "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
		       "<title>loss by %s</title>\n"
		       "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
		       SVG_W, SVG_H, SVG_W, SVG_H, xkey);
	/* Grid and ticks. */
	llm_buf_puts(&b, "<g class=\"axes\" stroke=\"#dddddd\" stroke-width=\"1\">\n");
	for (double v = x0; v <= x1 + xs / 2; v += xs)
		llm_buf_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
			       PX(v), PLOT_T, PX(v), PLOT_B);
	for (double v = y0; v <= y1 + ys / 2; v += ys)
		llm_buf_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
			       PLOT_L, PY(v), PLOT_R, PY(v));
	llm_buf_printf(&b,
		       "</g>\n<g stroke=\"#333333\" stroke-width=\"1\">\n"
		       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n"
		       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n</g>\n",
		       PLOT_L, PLOT_B, PLOT_R, PLOT_B, PLOT_L, PLOT_T, PLOT_L, PLOT_B);
	llm_buf_puts(&b, "<g class=\"ticks\" fill=\"#333333\">\n");
	char label[64];
	for (double v = x0; v <= x1 + xs / 2; v += xs) {
		tick_label(v, xs, label, sizeof label);
		llm_buf_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
			       PX(v), PLOT_B + 18, label);
	}
	for (double v = y0; v <= y1 + ys / 2; v += ys) {
		tick_label(v, ys, label, sizeof label);
		llm_buf_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
			       PLOT_L - 8, PY(v) + 4, label);
	}
	llm_buf_printf(&b,
		       "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n"
		       "<text x=\"18\" y=\"%.1f\" text-anchor=\"middle\" "
		       "transform=\"rotate(-90 18 %.1f)\">loss</text>\n"
		       "<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">"
		       "train and validation loss</text>\n</g>\n",
		       (PLOT_L + PLOT_R) / 2, PLOT_B + 42, xkey, (PLOT_T + PLOT_B) / 2,
		       (PLOT_T + PLOT_B) / 2, (PLOT_L + PLOT_R) / 2);
	if (empty)
		llm_buf_printf(
		    &b,
		    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#777777\">"
		    "no loss values by %s</text>\n",
		    (PLOT_L + PLOT_R) / 2, (PLOT_T + PLOT_B) / 2, xkey);
	/* The curves: one path per run and loss, train solid, validation dashed. */
	for (size_t i = 0; i < n; i++) {
		const char *colour = palette[i % (sizeof palette / sizeof *palette)];
		for (size_t k = 0; k < 2; k++) {
			size_t total = 0, j;
			json_t *m;
			double x, y, carry = NAN;
			json_array_foreach(runs[i]->metrics, j, m)
			{
				total += point_of(m, xkey, ykeys[k], &carry, &x, &y);
			}
			if (!total)
				continue;
			size_t stride = (total + MAX_POINTS - 1) / MAX_POINTS, seen = 0;
			llm_buf_printf(&b,
				       "<path class=\"%s\" fill=\"none\" stroke=\"%s\" "
				       "stroke-width=\"%s\"%s d=\"",
				       k ? "val" : "train", colour, k ? "2" : "1.5",
				       k ? " stroke-dasharray=\"6 4\"" : "");
			carry = NAN;
			json_array_foreach(runs[i]->metrics, j, m)
			{
				if (!point_of(m, xkey, ykeys[k], &carry, &x, &y))
					continue;
				if (seen++ % stride && seen != total)
					continue;
				llm_buf_printf(&b, "%s%.1f %.1f", seen == 1 ? "M" : " L", PX(x),
					       PY(y));
			}
			llm_buf_puts(&b, "\"><title>");
			xml_text(&b, runs[i]->id);
			llm_buf_printf(&b, " %s</title></path>\n", ykeys[k]);
		}
	}
	/* The legend: a swatch per run, and which dash is which loss. */
	llm_buf_puts(&b, "<g class=\"legend\" fill=\"#333333\">\n");
	double ly = PLOT_T + 6;
	for (size_t i = 0; i < n; i++, ly += 20) {
		const char *colour = palette[i % (sizeof palette / sizeof *palette)];
		llm_buf_printf(
		    &b,
		    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
		    "stroke-width=\"3\"/>\n<text x=\"%.1f\" y=\"%.1f\">",
		    PLOT_R + 20, ly, PLOT_R + 44, ly, colour, PLOT_R + 52, ly + 4);
		/* Long names are cut to stay inside the chart. */
		char name[32];
		snprintf(name, sizeof name, "%.28s%s", runs[i]->id,
			 strlen(runs[i]->id) > 28 ? "..." : "");
		xml_text(&b, name);
		llm_buf_puts(&b, "</text>\n");
	}
	ly += 10;
	llm_buf_printf(&b,
		       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\" "
		       "stroke-width=\"1.5\"/>\n<text x=\"%.1f\" y=\"%.1f\">train loss</text>\n"
		       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\" "
		       "stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n"
		       "<text x=\"%.1f\" y=\"%.1f\">validation loss</text>\n</g>\n</svg>\n",
		       PLOT_R + 20, ly, PLOT_R + 44, ly, PLOT_R + 52, ly + 4, PLOT_R + 20, ly + 20,
		       PLOT_R + 44, ly + 20, PLOT_R + 52, ly + 24);
#undef PX
#undef PY
	enum llm_err e = b.data ? llm_atomic_write_file(path, b.data, b.len, d)
				: llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	llm_buf_free(&b);
	return e;
}

#define COMPARE_MAX 14

static int run_compare(struct runs_ctx *x)
{
	struct llm_cli *c = x->c;
	size_t n = c->args.noperands;
	if (n < 2)
		return llm_cli_usage(c, "compare takes two runs or more");
	if (n > COMPARE_MAX)
		return llm_cli_usage(c, "compare takes at most %d runs", COMPARE_MAX);
	struct llm_run *runs[COMPARE_MAX] = {0};
	int st = 0;
	for (size_t i = 0; i < n && !st; i++)
		st = open_run(x, c->args.operands[i], &runs[i]);
	const char *svg = llm_args_str(&c->args, "svg");
	const char *xkey = !strcmp(llm_args_str(&c->args, "x"), "tokens") ? "tokens" : "step";
	struct llm_diag d;
	if (!st) {
		json_t *params = compare_params(runs, n);
		json_t *final = compare_metrics(runs, n, false);
		json_t *best = compare_metrics(runs, n, true);
		if (llm_args_flag(&c->args, "json")) {
			json_t *ids = json_array();
			for (size_t i = 0; i < n; i++)
				json_array_append_new(ids, run_json(runs[i]));
			json_t *j = json_pack("{s:o,s:O,s:O,s:O}", "runs", ids, "params", params,
					      "final", final, "best", best);
			if (llm_cli_write_json(c, "-", j, &d))
				st = llm_cli_fail(c, &d);
			json_decref(j);
		} else if (!compare_text(c, runs, n, params, final, best)) {
			st = LLM_EXIT_IO;
		}
		json_decref(params);
		json_decref(final);
		json_decref(best);
	}
	if (!st && svg && write_svg(runs, n, xkey, svg, &d))
		st = llm_cli_fail(c, &d);
	for (size_t i = 0; i < n; i++)
		llm_run_close(runs[i]);
	return st;
}

/* --- the verb ------------------------------------------------------------------------------ */

static int run_runs(struct llm_cli *c)
{
	if (!c->args.noperands)
		return llm_cli_usage(c, "a sub-verb is needed: list, show or compare");
	const char *sub = c->args.operands[0];
	int (*fn)(struct runs_ctx *) = !strcmp(sub, "list")	 ? run_list
				       : !strcmp(sub, "show")	 ? run_show
				       : !strcmp(sub, "compare") ? run_compare
								 : NULL;
	if (!fn)
		return llm_cli_usage(c, "unknown sub-verb '%s' (sub-verbs: list, show, compare)",
				     sub);
	/* Options that only one sub-verb reads are refused by the others rather than ignored. */
	if (fn != run_list && llm_args_given(&c->args, "sort"))
		return llm_cli_usage(c, "--sort is an option of 'runs list'");
	if (fn != run_compare && (llm_args_given(&c->args, "svg") || llm_args_given(&c->args, "x")))
		return llm_cli_usage(c, "--svg and --x are options of 'runs compare'");
	memmove(c->args.operands, c->args.operands + 1,
		c->args.noperands * sizeof *c->args.operands);
	c->args.noperands--;
	struct runs_ctx x = {c, NULL};
	const char *dir = llm_args_str(&c->args, "runs-dir");
	x.dir = dir && *dir ? strdup(dir) : llm_run_default_dir();
	if (!x.dir)
		return llm_cli_error(c, "out of memory"), LLM_EXIT_IO;
	int st = fn(&x);
	free(x.dir);
	return st;
}

static const struct llm_opt runs_opts[] = {
    {"runs-dir", 0, LLM_OPT_STRING, "DIR", "where the run folders are (default $LLMOPS_HOME/runs)"},
    {"json", 0, LLM_OPT_FLAG, NULL, "write JSON on standard output instead of a table"},
    {"sort", 0, LLM_OPT_CHOICE, "KEY", "list: the order of the runs", "created",
     "created|id|val_loss|train_loss|steps"},
    {"svg", 0, LLM_OPT_STRING, "FILE", "compare: write the loss curves as an SVG chart to FILE"},
    {"x", 0, LLM_OPT_CHOICE, "AXIS", "compare: the x axis of the chart", "step", "step|tokens"},
    {0},
};

const struct llm_verb llm_tune_verb_runs = {
    "runs",
    "list, show and compare training runs",
    "list|show RUN|compare RUN RUN... [OPTIONS]",
    "list: a table of the runs (or --json).  show RUN: the parameters, where and on what it\n"
    "ran, and its final and best metrics.  compare RUN RUN...: parameters side by side with\n"
    "differences marked, final and best metrics with the change from the first run, and\n"
    "with --svg a chart of the loss curves.  RUN is an id, a unique prefix of one, or the\n"
    "path of a run folder.",
    {runs_opts, llm_cli_opts_base},
    run_runs,
};
