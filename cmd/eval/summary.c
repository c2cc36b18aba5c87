/* llm-eval's summary, once every record is scored: corpus scores from the summed statistics,
 * bootstrap confidence intervals, per-slice tables, the thresholds of --fail-under and
 * --fail-over, the paired comparison with a --baseline report, and the forms they are shown
 * in: the --report JSON (which a later run reads as its baseline), a table on stderr,
 * --markdown (and $GITHUB_STEP_SUMMARY) and --junit. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/atomic.h"
#include "eval/eval.h"

#define REPORT_FORMAT 1

/* What the summary knows of one metric. */
struct mres {
	const struct llm_metric *m;
	double score;
	bool have_ci;
	struct llm_ci ci;
	struct llm_buf sig;
	/* against the baseline */
	const char *not_compared; /* why, when it was not */
	bool compared, regression;
	size_t paired;
	struct llm_paired p;
	double p_value; /* of the test that decides */
};

struct threshold_res {
	const struct threshold *t;
	double score;
	bool passed;
};

struct summary {
	struct eval *ev;
	struct mres *r;
	struct threshold_res *thr;
	bool need_ci;
	size_t base_records; /* records in the baseline */
	size_t regressions, missed;
	double *col; /* scratch: one metric's vectors, n rows */
	double *col2;
	double *sums; /* scratch: one metric's sums */
};

/* --- preparing --------------------------------------------------------------------------- */

static int parse_threshold(struct eval *ev, const char *opt, const char *s, bool over)
{
	const char *eq = strrchr(s, '=');
	if (!eq || eq == s)
		return llm_cli_usage(ev->c, "--%s: expected METRIC=VALUE, not '%s'", opt, s);
	char name[64];
	snprintf(name, sizeof name, "%.*s", (int)(eq - s), s);
	const struct llm_metric *m = llm_metric_set_find(ev->set, name);
	if (!m)
		return llm_cli_usage(ev->c, "--%s: '%s' is not one of the metrics computed", opt,
				     name);
	char *end;
	errno = 0;
	double v = strtod(eq + 1, &end);
	if (errno || end == eq + 1 || *end || !isfinite(v))
		return llm_cli_usage(ev->c, "--%s: '%s' is not a number", opt, eq + 1);
	ev->thr[ev->nthr++] = (struct threshold){m, v, over};
	return 0;
}

int eval_summary_prepare(struct eval *ev)
{
	struct llm_cli *c = ev->c;
	size_t nu, no;
	char *const *under = llm_args_strs(&c->args, "fail-under", &nu);
	char *const *over = llm_args_strs(&c->args, "fail-over", &no);
	if (nu + no && !(ev->thr = calloc(nu + no, sizeof *ev->thr))) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	int st = 0;
	for (size_t i = 0; i < nu && !st; i++)
		st = parse_threshold(ev, "fail-under", under[i], false);
	for (size_t i = 0; i < no && !st; i++)
		st = parse_threshold(ev, "fail-over", over[i], true);
	if (st)
		return st;
	ev->baseline_path = llm_args_str(&c->args, "baseline");
	if (!ev->baseline_path)
		return 0;
	if (ev->resamples < 1)
		return llm_cli_usage(c,
				     "--baseline needs resampling: --bootstrap must be at least 1");
	FILE *f = fopen(ev->baseline_path, "rb");
	if (!f) {
		llm_cli_error(c, "%s: cannot open: %s", ev->baseline_path, strerror(errno));
		return LLM_EXIT_IO;
	}
	json_error_t err;
	ev->baseline = json_loadf(f, 0, &err);
	fclose(f);
	if (!ev->baseline)
		return llm_cli_usage(c, "--baseline: %s:%d: %s", ev->baseline_path, err.line,
				     err.text);
	json_t *pr = json_object_get(ev->baseline, "per_record");
	if (!json_is_object(json_object_get(ev->baseline, "metrics")) ||
	    !json_is_object(json_object_get(pr, "records")))
		return llm_cli_usage(c,
				     "--baseline: %s is not an llm-eval report with per-record "
				     "statistics",
				     ev->baseline_path);
	return 0;
}

/* --- computing ---------------------------------------------------------------------------- */

/* One metric's vectors of the records idx (all records when idx is NULL) into s->col. */
static size_t gather(struct summary *s, const struct llm_metric *m, const size_t *idx, size_t n,
		     double *out)
{
	struct eval *ev = s->ev;
	for (size_t i = 0; i < n; i++) {
		size_t r = idx ? idx[i] : i;
		memcpy(out + i * m->n_stats, ev->rows + r * ev->row_len + m->offset,
		       m->n_stats * sizeof *out);
	}
	return n;
}

static const double *sum_of(struct summary *s, const struct llm_metric *m, const double *col,
			    size_t n)
{
	memset(s->sums, 0, m->n_stats * sizeof *s->sums);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < m->n_stats; j++)
			s->sums[j] += col[i * m->n_stats + j];
	return s->sums;
}

static double score_of(struct summary *s, const struct llm_metric *m, const double *col, size_t n)
{
	return llm_metric_score(m, sum_of(s, m, col, n), n);
}

/* Score and interval of a metric over the records idx (or all). */
static int score_records(struct summary *s, const struct llm_metric *m, const size_t *idx, size_t n,
			 double *score, struct llm_ci *ci, bool *have_ci)
{
	struct eval *ev = s->ev;
	gather(s, m, idx, n, s->col);
	*score = score_of(s, m, s->col, n);
	*have_ci = false;
	if (!s->need_ci || ev->resamples < 1 || !n)
		return 0;
	struct llm_diag d;
	if (llm_bootstrap_ci(s->col, n, m->n_stats, llm_metric_score_fn, (void *)m, ev->resamples,
			     ev->seed, ci, &d))
		return llm_cli_fail(ev->c, &d);
	*have_ci = true;
	return 0;
}

/* A baseline's vector for one record and metric into out; false when it has none. */
static bool baseline_stats(json_t *rec, const struct llm_metric *m, double *out)
{
	json_t *a = json_object_get(rec, m->name);
	if (!json_is_array(a) || json_array_size(a) != m->n_stats)
		return false;
	for (size_t j = 0; j < m->n_stats; j++) {
		json_t *v = json_array_get(a, j);
		if (!json_is_number(v))
			return false;
		out[j] = json_number_value(v);
	}
	return true;
}

static int compare(struct summary *s, struct mres *r)
{
	struct eval *ev = s->ev;
	const struct llm_metric *m = r->m;
	json_t *bm = json_object_get(json_object_get(ev->baseline, "metrics"), m->name);
	json_t *recs = json_object_get(json_object_get(ev->baseline, "per_record"), "records");
	const char *bsig = json_string_value(json_object_get(bm, "signature"));
	if (!bm) {
		r->not_compared = "not in the baseline";
		return 0;
	}
	if (!bsig || strcmp(bsig, r->sig.data)) {
		r->not_compared = "computed differently (the signatures differ)";
		return 0;
	}
	size_t k = 0;
	for (size_t i = 0; i < ev->n; i++) {
		json_t *br = json_object_get(recs, ev->ids.s[ev->id_of[i]]);
		if (!br || !baseline_stats(br, m, s->col2 + k * m->n_stats))
			continue;
		memcpy(s->col + k * m->n_stats, ev->rows + i * ev->row_len + m->offset,
		       m->n_stats * sizeof(double));
		k++;
	}
	r->paired = k;
	if (!k) {
		r->not_compared = "no record ids in common";
		return 0;
	}
	struct llm_diag d;
	if (llm_paired_test(s->col2, s->col, k, m->n_stats, llm_metric_score_fn, (void *)m,
			    ev->resamples, ev->seed, &r->p, &d))
		return llm_cli_fail(ev->c, &d);
	r->compared = true;
	r->p_value = ev->use_randomization ? r->p.p_randomization : r->p.p_bootstrap;
	/* The tests give two identical systems their smallest p-value (nothing can beat a
	 * difference of 0), so a regression must also be a difference: more than what a report's
	 * ten significant digits can change. */
	double eps = 1e-8 * fmax(1, fmax(fabs(r->p.base), fabs(r->p.sys)));
	bool worse = m->higher_is_better ? r->p.delta < -eps : r->p.delta > eps;
	r->regression = worse && r->p_value < ev->alpha;
	s->regressions += r->regression;
	return 0;
}

/* --- the report ------------------------------------------------------------------------------ */

static json_t *num(double v)
{
	if (!isfinite(v))
		return json_null();
	if (v == floor(v) && fabs(v) < 9.0e15)
		return json_integer((json_int_t)v);
	return json_real(v);
}

static json_t *ci_json(const struct llm_ci *ci)
{
	return json_pack("{s:f,s:o,s:o,s:o,s:o,s:o,s:o}", "level", 0.95, "lo", num(ci->lo), "hi",
			 num(ci->hi), "mean", num(ci->mean), "sd", num(ci->sd), "p_lo",
			 num(ci->p_lo), "p_hi", num(ci->p_hi));
}

static json_t *metric_json(struct summary *s, struct mres *r)
{
	struct eval *ev = s->ev;
	const struct llm_metric *m = r->m;
	json_t *o =
	    json_pack("{s:o,s:b,s:i,s:s,s:I,s:I}", "score", num(r->score), "higher_is_better",
		      m->higher_is_better, "precision", m->precision, "signature", r->sig.data,
		      "records", (json_int_t)ev->n, "n_stats", (json_int_t)m->n_stats);
	json_object_set_new(o, "ci", r->have_ci ? ci_json(&r->ci) : json_null());
	gather(s, m, NULL, ev->n, s->col);
	const double *sums = sum_of(s, m, s->col, ev->n);
	struct llm_metric_detail det[16];
	size_t nd = llm_metric_details(m, sums, ev->n, det, 16);
	if (nd) {
		json_t *dj = json_object();
		for (size_t i = 0; i < nd; i++)
			json_object_set_new(dj, det[i].name, num(det[i].value));
		json_object_set_new(o, "details", dj);
	}
	return o;
}

static int slices_json(struct summary *s, json_t *report)
{
	struct eval *ev = s->ev;
	if (!ev->nby)
		return 0;
	json_t *all = json_object();
	json_object_set_new(report, "slices", all);
	size_t *idx = malloc((ev->n ? ev->n : 1) * sizeof *idx);
	if (!idx) {
		llm_cli_error(ev->c, "out of memory");
		return LLM_EXIT_IO;
	}
	int st = 0;
	for (size_t b = 0; b < ev->nby && !st; b++) {
		struct slicing *sl = &ev->by[b];
		json_t *list = json_array();
		json_object_set_new(all, sl->field, list);
		for (size_t v = 0; v < sl->values.n && !st; v++) {
			size_t k = 0;
			for (size_t i = 0; i < ev->n; i++)
				if (sl->of[i] == v)
					idx[k++] = i;
			json_t *ms = json_object();
			json_array_append_new(list,
					      json_pack("{s:s,s:I,s:o}", "value", sl->values.s[v],
							"records", (json_int_t)k, "metrics", ms));
			for (size_t i = 0; i < ev->nm && !st; i++) {
				const struct llm_metric *m = llm_metric_set_get(ev->set, i);
				double score;
				struct llm_ci ci;
				bool have;
				st = score_records(s, m, idx, k, &score, &ci, &have);
				json_object_set_new(ms, m->name,
						    json_pack("{s:o,s:o}", "score", num(score),
							      "ci",
							      have ? ci_json(&ci) : json_null()));
			}
		}
	}
	free(idx);
	return st;
}

/* A number as the report's jansson numbers print (num() and JSON_REAL_PRECISION(10)). */
static enum llm_err put_num(struct llm_buf *b, double v)
{
	if (!isfinite(v))
		return llm_buf_puts(b, "null");
	if (v == floor(v) && fabs(v) < 9.0e15)
		return llm_buf_put_int(b, (long long)v);
	return llm_buf_put_g(b, v, 10);
}

/* "name": [stats] of one metric of one record. */
static enum llm_err put_stats(struct llm_buf *b, const char *name, const double *v, size_t n)
{
	enum llm_err e = llm_buf_json_string(b, name, strlen(name));
	if (!e)
		e = llm_buf_puts(b, ": [");
	for (size_t j = 0; j < n && !e; j++) {
		if (j)
			e = llm_buf_putc(b, ',');
		if (!e)
			e = put_num(b, v[j]);
	}
	return e ? e : llm_buf_putc(b, ']');
}

/* The per-record statistics, {"metrics": [names], "records": {id: {metric: [stats]}}}, written
 * straight into b: a tree of jansson values for 100,000 records cost as much time as scoring
 * them, and five times the memory. */
static enum llm_err render_per_record(struct summary *s, struct llm_buf *b)
{
	struct eval *ev = s->ev;
	enum llm_err e = llm_buf_puts(b, "{\"metrics\": [");
	for (size_t i = 0; i < ev->nm && !e; i++) {
		const char *name = llm_metric_set_get(ev->set, i)->name;
		if (i)
			e = llm_buf_puts(b, ", ");
		if (!e)
			e = llm_buf_json_string(b, name, strlen(name));
	}
	if (!e)
		e = llm_buf_puts(b, "], \"records\": {");
	for (size_t r = 0; r < ev->n && !e; r++) {
		const char *id = ev->ids.s[ev->id_of[r]];
		e = llm_buf_puts(b, r ? ",\n" : "\n");
		if (!e)
			e = llm_buf_json_string(b, id, strlen(id));
		if (!e)
			e = llm_buf_puts(b, ": {");
		for (size_t i = 0; i < ev->nm && !e; i++) {
			const struct llm_metric *m = llm_metric_set_get(ev->set, i);
			if (i)
				e = llm_buf_puts(b, ", ");
			if (!e)
				e = put_stats(b, m->name, ev->rows + r * ev->row_len + m->offset,
					      m->n_stats);
		}
		if (!e)
			e = llm_buf_putc(b, '}');
	}
	return e ? e : llm_buf_puts(b, "}}");
}

static json_t *report_json(struct summary *s, const struct llm_cli_in *in, int *st)
{
	struct eval *ev = s->ev;
	json_t *input = llm_cli_in_report(in);
	json_object_set_new(input, "scored", json_integer((json_int_t)ev->n));
	json_t *report = json_pack("{s:s,s:s,s:i,s:o,s:I,s:{s:i,s:I,s:f}}", "tool", "llm-eval",
				   "version", PACKAGE_VERSION, "format", REPORT_FORMAT, "input",
				   input, "records", (json_int_t)ev->n, "bootstrap", "resamples",
				   ev->resamples, "seed", (json_int_t)ev->seed, "level", 0.95);
	json_t *ms = json_object();
	json_object_set_new(report, "metrics", ms);
	for (size_t i = 0; i < ev->nm; i++)
		json_object_set_new(ms, s->r[i].m->name, metric_json(s, &s->r[i]));
	if (ev->nthr) {
		json_t *t = json_array();
		for (size_t i = 0; i < ev->nthr; i++) {
			struct threshold_res *x = &s->thr[i];
			json_array_append_new(
			    t, json_pack("{s:s,s:s,s:f,s:o,s:b}", "metric", x->t->m->name, "op",
					 x->t->over ? "<=" : ">=", "value", x->t->value, "score",
					 num(x->score), "passed", x->passed));
		}
		json_object_set_new(report, "thresholds", t);
	}
	if (ev->baseline) {
		json_t *cmp = json_array();
		for (size_t i = 0; i < ev->nm; i++) {
			struct mres *r = &s->r[i];
			json_t *o =
			    json_pack("{s:s,s:b}", "metric", r->m->name, "compared", r->compared);
			if (r->compared) {
				json_object_set_new(o, "paired",
						    json_integer((json_int_t)r->paired));
				json_object_set_new(o, "baseline", num(r->p.base));
				json_object_set_new(o, "score", num(r->p.sys));
				json_object_set_new(o, "delta", num(r->p.delta));
				json_object_set_new(o, "p_bootstrap", num(r->p.p_bootstrap));
				json_object_set_new(o, "p_randomization",
						    num(r->p.p_randomization));
				json_object_set_new(o, "regression", json_boolean(r->regression));
			} else {
				json_object_set_new(o, "reason", json_string(r->not_compared));
			}
			json_array_append_new(cmp, o);
		}
		json_object_set_new(report, "baseline",
				    json_pack("{s:s,s:I,s:s,s:f,s:o}", "file", ev->baseline_path,
					      "records", (json_int_t)s->base_records, "test",
					      ev->use_randomization ? "randomization" : "bootstrap",
					      "alpha", ev->alpha, "comparisons", cmp));
	}
	*st = slices_json(s, report);
	return report;
}

/* --- the table, Markdown and JUnit --------------------------------------------------------- */

static void fmt(char *out, size_t n, double v, int prec)
{
	if (isfinite(v))
		snprintf(out, n, "%.*f", prec, v);
	else
		snprintf(out, n, "-");
}

static void fmt_ci(char *out, size_t n, const struct mres *r, const char *sep)
{
	char lo[32], hi[32];
	if (!r->have_ci) {
		snprintf(out, n, "-");
		return;
	}
	fmt(lo, sizeof lo, r->ci.lo, r->m->precision);
	fmt(hi, sizeof hi, r->ci.hi, r->m->precision);
	snprintf(out, n, "%s%s%s", lo, sep, hi);
}

static void fmt_delta(char *out, size_t n, const struct mres *r)
{
	if (!r->compared) {
		snprintf(out, n, "-");
		return;
	}
	if (r->p.delta > 0 && n > 1) {
		*out++ = '+';
		n--;
	}
	fmt(out, n, r->p.delta, r->m->precision);
}

static enum llm_err render_table(struct summary *s, struct llm_buf *b)
{
	struct eval *ev = s->ev;
	enum llm_err e =
	    llm_buf_printf(b, "%-12s %10s  %-22s %8s", "metric", "score", "95% CI", "records");
	if (!e && ev->baseline)
		e = llm_buf_printf(b, " %10s %9s %8s", "baseline", "delta", "p");
	if (!e)
		e = llm_buf_putc(b, '\n');
	for (size_t i = 0; i < ev->nm && !e; i++) {
		struct mres *r = &s->r[i];
		char sc[32], ci[64];
		fmt(sc, sizeof sc, r->score, r->m->precision);
		fmt_ci(ci, sizeof ci, r, " - ");
		e = llm_buf_printf(b, "%-12s %10s  %-22s %8zu", r->m->name, sc, ci, ev->n);
		if (!e && ev->baseline) {
			char base[32], delta[32], p[32];
			if (r->compared) {
				fmt(base, sizeof base, r->p.base, r->m->precision);
				snprintf(p, sizeof p, "%.4f", r->p_value);
			} else {
				snprintf(base, sizeof base, "-");
				snprintf(p, sizeof p, "-");
			}
			fmt_delta(delta, sizeof delta, r);
			e = llm_buf_printf(b, " %10s %9s %8s%s", base, delta, p,
					   r->regression ? "  regression" : "");
		}
		if (!e)
			e = llm_buf_putc(b, '\n');
	}
	for (size_t k = 0; k < ev->nby && !e; k++) {
		struct slicing *sl = &ev->by[k];
		e = llm_buf_printf(b, "\nby %s:\n", sl->field);
		for (size_t v = 0; v < sl->values.n && !e; v++) {
			e = llm_buf_printf(b, "  %-20.20s", sl->values.s[v]);
			size_t *idx = malloc((ev->n ? ev->n : 1) * sizeof *idx);
			if (!idx)
				return LLM_ERR_NOMEM;
			size_t cnt = 0;
			for (size_t i = 0; i < ev->n; i++)
				if (sl->of[i] == v)
					idx[cnt++] = i;
			for (size_t i = 0; i < ev->nm && !e; i++) {
				const struct llm_metric *m = llm_metric_set_get(ev->set, i);
				gather(s, m, idx, cnt, s->col);
				char sc[32];
				fmt(sc, sizeof sc, score_of(s, m, s->col, cnt), m->precision);
				e = llm_buf_printf(b, " %s %s", m->name, sc);
			}
			free(idx);
			if (!e)
				e = llm_buf_printf(b, " (%zu records)\n", cnt);
		}
	}
	return e;
}

static enum llm_err render_markdown(struct summary *s, struct llm_buf *b)
{
	struct eval *ev = s->ev;
	enum llm_err e = llm_buf_printf(b, "### llm-eval: %zu records\n\n", ev->n);
	if (!e)
		e = llm_buf_puts(b, ev->baseline
					? "| metric | score | 95% CI | baseline | Δ | p | |\n"
					  "|---|---:|---|---:|---:|---:|---|\n"
					: "| metric | score | 95% CI |\n|---|---:|---|\n");
	for (size_t i = 0; i < ev->nm && !e; i++) {
		struct mres *r = &s->r[i];
		char sc[32], ci[64];
		fmt(sc, sizeof sc, r->score, r->m->precision);
		fmt_ci(ci, sizeof ci, r, " – ");
		e = llm_buf_printf(b, "| %s | %s | %s |", r->m->name, sc, ci);
		if (!e && ev->baseline) {
			char base[32], delta[32], p[32];
			if (r->compared) {
				fmt(base, sizeof base, r->p.base, r->m->precision);
				snprintf(p, sizeof p, "%.4f", r->p_value);
			} else {
				snprintf(base, sizeof base, "-");
				snprintf(p, sizeof p, "-");
			}
			fmt_delta(delta, sizeof delta, r);
			e = llm_buf_printf(b, " %s | %s | %s | %s |", base, delta, p,
					   r->regression  ? "❌ regression"
					   : !r->compared ? "not compared"
							  : "✅");
		}
		if (!e)
			e = llm_buf_putc(b, '\n');
	}
	if (!e && ev->nthr) {
		e = llm_buf_puts(b, "\n| check | score | |\n|---|---:|---|\n");
		for (size_t i = 0; i < ev->nthr && !e; i++) {
			struct threshold_res *x = &s->thr[i];
			char sc[32];
			fmt(sc, sizeof sc, x->score, x->t->m->precision);
			e = llm_buf_printf(b, "| %s %s %g | %s | %s |\n", x->t->m->name,
					   x->t->over ? "≤" : "≥", x->t->value, sc,
					   x->passed ? "✅ pass" : "❌ fail");
		}
	}
	for (size_t k = 0; k < ev->nby && !e; k++) {
		struct slicing *sl = &ev->by[k];
		e = llm_buf_printf(b, "\n| %s | records |", sl->field);
		for (size_t i = 0; i < ev->nm && !e; i++)
			e = llm_buf_printf(b, " %s |", llm_metric_set_get(ev->set, i)->name);
		if (!e)
			e = llm_buf_puts(b, "\n|---|---:|");
		for (size_t i = 0; i < ev->nm && !e; i++)
			e = llm_buf_puts(b, "---:|");
		if (!e)
			e = llm_buf_putc(b, '\n');
		size_t *idx = malloc((ev->n ? ev->n : 1) * sizeof *idx);
		if (!idx)
			return LLM_ERR_NOMEM;
		for (size_t v = 0; v < sl->values.n && !e; v++) {
			size_t cnt = 0;
			for (size_t i = 0; i < ev->n; i++)
				if (sl->of[i] == v)
					idx[cnt++] = i;
			/* A pipe in a value would end the cell. */
			e = llm_buf_puts(b, "| ");
			for (const char *p = sl->values.s[v]; *p && !e; p++)
				e = *p == '|' ? llm_buf_puts(b, "\\|") : llm_buf_putc(b, *p);
			if (!e)
				e = llm_buf_printf(b, " | %zu |", cnt);
			for (size_t i = 0; i < ev->nm && !e; i++) {
				const struct llm_metric *m = llm_metric_set_get(ev->set, i);
				gather(s, m, idx, cnt, s->col);
				char sc[32];
				fmt(sc, sizeof sc, score_of(s, m, s->col, cnt), m->precision);
				e = llm_buf_printf(b, " %s |", sc);
			}
			if (!e)
				e = llm_buf_putc(b, '\n');
		}
		free(idx);
	}
	return e;
}

static enum llm_err xml_text(struct llm_buf *b, const char *s)
{
	enum llm_err e = LLM_OK;
	for (; *s && !e; s++) {
		unsigned char ch = (unsigned char)*s;
		switch (ch) {
		case '&':
			e = llm_buf_puts(b, "&amp;");
			break;
		case '<':
			e = llm_buf_puts(b, "&lt;");
			break;
		case '>':
			e = llm_buf_puts(b, "&gt;");
			break;
		case '"':
			e = llm_buf_puts(b, "&quot;");
			break;
		default:
			/* XML 1.0 has no place for other control characters. */
			if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r')
				e = llm_buf_putc(b, ' ');
			else
				e = llm_buf_putc(b, (char)ch);
		}
	}
	return e;
}

/* One <testcase>; failure NULL when it passed; skipped when it could not run. */
static enum llm_err testcase(struct llm_buf *b, const char *cls, const char *name,
			     const char *failure, const char *out, bool skipped)
{
	enum llm_err e = llm_buf_puts(b, "    <testcase classname=\"");
	if (!e)
		e = xml_text(b, cls);
	if (!e)
		e = llm_buf_puts(b, "\" name=\"");
	if (!e)
		e = xml_text(b, name);
	if (!e)
		e = llm_buf_puts(b, "\" time=\"0\">\n");
	if (!e && failure) {
		e = llm_buf_puts(b, skipped ? "      <skipped message=\""
					    : "      <failure type=\"llm-eval\" message=\"");
		if (!e)
			e = xml_text(b, failure);
		if (!e)
			e = llm_buf_puts(b, "\">");
		if (!e)
			e = xml_text(b, failure);
		if (!e)
			e = llm_buf_puts(b, skipped ? "</skipped>\n" : "</failure>\n");
	}
	if (!e && out) {
		e = llm_buf_puts(b, "      <system-out>");
		if (!e)
			e = xml_text(b, out);
		if (!e)
			e = llm_buf_puts(b, "</system-out>\n");
	}
	return e ? e : llm_buf_puts(b, "    </testcase>\n");
}

static enum llm_err render_junit(struct summary *s, struct llm_buf *b)
{
	struct eval *ev = s->ev;
	size_t tests = 1 + ev->nthr, failures = (ev->n == 0) + s->missed, skipped = 0;
	if (ev->baseline) {
		tests += ev->nm;
		failures += s->regressions;
		for (size_t i = 0; i < ev->nm; i++)
			skipped += !s->r[i].compared;
	}
	enum llm_err e = llm_buf_printf(
	    b,
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<testsuites name=\"llm-eval\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
	    "skipped=\"%zu\" time=\"0\">\n"
	    "  <testsuite name=\"llm-eval\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
	    "skipped=\"%zu\" time=\"0\">\n",
	    tests, failures, skipped, tests, failures, skipped);
	char name[256], msg[512], out[400];
	snprintf(msg, sizeof msg, "no records were scored");
	snprintf(out, sizeof out, "%zu records scored", ev->n);
	if (!e)
		e = testcase(b, "llm-eval.records", "records scored", ev->n ? NULL : msg, out,
			     false);
	for (size_t i = 0; i < ev->nthr && !e; i++) {
		struct threshold_res *x = &s->thr[i];
		char sc[32];
		fmt(sc, sizeof sc, x->score, x->t->m->precision);
		snprintf(name, sizeof name, "%s %s %g", x->t->m->name,
			 x->t->over ? "<=" : ">=", x->t->value);
		snprintf(msg, sizeof msg, "%s is %s, %s %g", x->t->m->name, sc,
			 x->t->over ? "over" : "under", x->t->value);
		snprintf(out, sizeof out, "%s = %s", x->t->m->name, sc);
		e = testcase(b, "llm-eval.threshold", name, x->passed ? NULL : msg, out, false);
	}
	for (size_t i = 0; ev->baseline && i < ev->nm && !e; i++) {
		struct mres *r = &s->r[i];
		snprintf(name, sizeof name, "%s against the baseline", r->m->name);
		if (r->compared) {
			char base[32], sc[32], delta[32];
			fmt(base, sizeof base, r->p.base, r->m->precision);
			fmt(sc, sizeof sc, r->p.sys, r->m->precision);
			fmt_delta(delta, sizeof delta, r);
			snprintf(out, sizeof out,
				 "%s: %s -> %s (%s), p = %.4f over %zu paired records", r->m->name,
				 base, sc, delta, r->p_value, r->paired);
			snprintf(msg, sizeof msg, "significant regression: %s (p < %g)", out,
				 ev->alpha);
		} else {
			snprintf(out, sizeof out, "%s: not compared: %s", r->m->name,
				 r->not_compared ? r->not_compared : "no records");
			snprintf(msg, sizeof msg, "%s", out);
		}
		e = testcase(b, "llm-eval.baseline", name,
			     r->regression || !r->compared ? msg : NULL, out, !r->compared);
	}
	return e ? e : llm_buf_puts(b, "  </testsuite>\n</testsuites>\n");
}

/* --- writing ------------------------------------------------------------------------------ */

/* The report: the summary from jansson, then "per_record" written by hand as its last member. */
static int write_report(struct summary *s, const struct llm_cli_in *in, const char *path)
{
	struct eval *ev = s->ev;
	int st = 0;
	json_t *report = report_json(s, in, &st);
	char *text = st ? NULL : json_dumps(report, LLM_JSON_FLAGS);
	json_decref(report);
	if (st)
		return st;
	struct llm_buf b;
	llm_buf_init(&b, 0);
	size_t n = text ? strlen(text) : 0;
	while (n && text[n - 1] != '}') /* the summary's closing brace */
		n--;
	enum llm_err e = n ? llm_buf_append(&b, text, n - 1) : LLM_ERR_NOMEM;
	free(text);
	if (!e)
		e = llm_buf_puts(&b, ",\n  \"per_record\": ");
	if (!e)
		e = render_per_record(s, &b);
	if (!e)
		e = llm_buf_puts(&b, "\n}\n");
	struct llm_diag d;
	if (e) {
		llm_cli_error(ev->c, "out of memory");
		st = LLM_EXIT_IO;
	} else if (!strcmp(path, "-")) {
		if (!llm_cli_write(ev->c, b.data, b.len)) /* it said why */
			st = LLM_EXIT_IO;
	} else if (llm_atomic_write_file(path, b.data, b.len, &d)) {
		st = llm_cli_fail(ev->c, &d);
	}
	llm_buf_free(&b);
	return st;
}

static int write_file(struct eval *ev, const char *path, const struct llm_buf *b)
{
	struct llm_diag d;
	if (llm_atomic_write_file(path, b->data, b->len, &d))
		return llm_cli_fail(ev->c, &d);
	return 0;
}

static int append_step_summary(struct eval *ev, const struct llm_buf *b)
{
	const char *path = getenv("GITHUB_STEP_SUMMARY");
	if (!path || !*path)
		return 0;
	FILE *f = fopen(path, "a");
	if (!f) {
		llm_cli_error(ev->c, "%s: cannot open: %s", path, strerror(errno));
		return LLM_EXIT_IO;
	}
	bool ok = fwrite(b->data, 1, b->len, f) == b->len && fputc('\n', f) != EOF;
	if (fclose(f) != 0)
		ok = false;
	if (!ok) {
		llm_cli_error(ev->c, "%s: write error: %s", path, strerror(errno));
		return LLM_EXIT_IO;
	}
	return 0;
}

static void summary_free(struct summary *s)
{
	for (size_t i = 0; s->r && i < s->ev->nm; i++)
		llm_buf_free(&s->r[i].sig);
	free(s->r);
	free(s->thr);
	free(s->col);
	free(s->col2);
	free(s->sums);
}

int eval_summary(struct eval *ev, const struct llm_cli_in *in)
{
	struct llm_cli *c = ev->c;
	struct summary s = {.ev = ev};
	const char *report_path = llm_args_str(&c->args, "report");
	const char *md_path = llm_args_str(&c->args, "markdown");
	const char *junit_path = llm_args_str(&c->args, "junit");
	bool table = !c->quiet && (llm_args_flag(&c->args, "summary") || isatty(STDERR_FILENO));
	s.need_ci = report_path || md_path || table;
	size_t width = 1;
	for (size_t i = 0; i < ev->nm; i++)
		if (llm_metric_set_get(ev->set, i)->n_stats > width)
			width = llm_metric_set_get(ev->set, i)->n_stats;
	size_t rows = ev->n ? ev->n : 1;
	s.r = calloc(ev->nm ? ev->nm : 1, sizeof *s.r);
	s.thr = calloc(ev->nthr ? ev->nthr : 1, sizeof *s.thr);
	if (rows > SIZE_MAX / sizeof(double) / width)
		rows = 0;
	s.col = rows ? malloc(rows * width * sizeof *s.col) : NULL;
	s.col2 = rows ? malloc(rows * width * sizeof *s.col2) : NULL;
	s.sums = malloc(width * sizeof *s.sums);
	if (!s.r || !s.thr || !s.col || !s.col2 || !s.sums) {
		summary_free(&s);
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	int st = 0;
	for (size_t i = 0; i < ev->nm && !st; i++) {
		struct mres *r = &s.r[i];
		r->m = llm_metric_set_get(ev->set, i);
		llm_buf_init(&r->sig, 0);
		struct llm_diag d;
		size_t nrefs = ev->min_refs == ev->max_refs ? ev->max_refs : 0;
		if (llm_metric_signature(r->m, ev->max_refs ? nrefs : 1, &r->sig, &d))
			st = llm_cli_fail(c, &d);
		if (!st)
			st = score_records(&s, r->m, NULL, ev->n, &r->score, &r->ci, &r->have_ci);
	}
	for (size_t i = 0; i < ev->nthr && !st; i++) {
		struct threshold_res *x = &s.thr[i];
		x->t = &ev->thr[i];
		x->score = s.r[x->t->m - llm_metric_set_get(ev->set, 0)].score;
		x->passed = isfinite(x->score) &&
			    (x->t->over ? x->score <= x->t->value : x->score >= x->t->value);
		s.missed += !x->passed;
	}
	if (ev->baseline) {
		s.base_records = json_object_size(
		    json_object_get(json_object_get(ev->baseline, "per_record"), "records"));
		for (size_t i = 0; i < ev->nm && !st; i++) {
			s.r[i].not_compared = "no records were scored";
			if (ev->n)
				st = compare(&s, &s.r[i]);
		}
	}
	if (!st && report_path)
		st = write_report(&s, in, report_path);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	if (!st && md_path) {
		if (render_markdown(&s, &b)) {
			llm_cli_error(c, "out of memory");
			st = LLM_EXIT_IO;
		}
		if (!st)
			st = write_file(ev, md_path, &b);
		if (!st)
			st = append_step_summary(ev, &b);
	}
	llm_buf_clear(&b);
	if (!st && junit_path) {
		if (render_junit(&s, &b)) {
			llm_cli_error(c, "out of memory");
			st = LLM_EXIT_IO;
		}
		if (!st)
			st = write_file(ev, junit_path, &b);
	}
	llm_buf_clear(&b);
	if (!st && table && ev->n) {
		if (render_table(&s, &b))
			st = LLM_EXIT_IO;
		else
			fwrite(b.data, 1, b.len, stderr);
	}
	llm_buf_free(&b);
	/* Why the run fails, in words, whatever else was asked. */
	if (!st) {
		if (!ev->n) {
			llm_cli_error(c, "no records were scored");
			st = LLM_EXIT_NEGATIVE;
		}
		for (size_t i = 0; i < ev->nthr; i++) {
			struct threshold_res *x = &s.thr[i];
			if (x->passed)
				continue;
			char sc[32];
			fmt(sc, sizeof sc, x->score, x->t->m->precision);
			llm_cli_error(c, "%s is %s, %s the threshold %g (--fail-%s)", x->t->m->name,
				      sc, x->t->over ? "over" : "under", x->t->value,
				      x->t->over ? "over" : "under");
			st = LLM_EXIT_NEGATIVE;
		}
		for (size_t i = 0; i < ev->nm; i++) {
			struct mres *r = &s.r[i];
			if (!r->regression)
				continue;
			char base[32], sc[32], delta[32];
			fmt(base, sizeof base, r->p.base, r->m->precision);
			fmt(sc, sizeof sc, r->p.sys, r->m->precision);
			fmt_delta(delta, sizeof delta, r);
			llm_cli_error(c,
				      "%s regressed from %s to %s (%s) against the baseline, p = "
				      "%.4f < %g over %zu paired records",
				      r->m->name, base, sc, delta, r->p_value, ev->alpha,
				      r->paired);
			st = LLM_EXIT_NEGATIVE;
		}
		for (size_t i = 0; ev->baseline && !c->quiet && i < ev->nm; i++)
			if (!s.r[i].compared && ev->n)
				llm_cli_error(c, "warning: %s not compared with the baseline: %s",
					      s.r[i].m->name, s.r[i].not_compared);
	}
	summary_free(&s);
	return st;
}
