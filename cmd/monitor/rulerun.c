/* The evaluation check and alert share (rulerun.h). */
#include "config.h"

#include "monitor/rulerun.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "monitor/aggregate.h"
#include "monitor/monitor.h"

const struct llm_opt mon_opts_rules[] = {
    {"rules", 'r', LLM_OPT_STRING, "FILE", "the rules file (llmops-rules(5))"},
    {"now", 0, LLM_OPT_STRING, "TIME",
     "the clock, RFC 3339 or Unix seconds (default: the wall clock; check: the newest record)"},
    {"prices", 0, LLM_OPT_STRING, "FILE", "the price table for cost metrics (JSON)"},
    {0},
};

int mon_rules_load(struct llm_cli *c, struct llm_rules **out)
{
	const char *path = llm_args_str(&c->args, "rules");
	if (!path)
		return llm_cli_usage(c, "--rules FILE is required");
	struct llm_diag d;
	enum llm_err e = llm_rules_load(out, path, &d);
	if (!e)
		return 0;
	int st = llm_cli_fail(c, &d);
	/* A rules file that is there but wrong is a usage error, as a bad option is. */
	return e == LLM_ERR_IO || e == LLM_ERR_NOT_FOUND || e == LLM_ERR_NOMEM ? st
									       : LLM_EXIT_USAGE;
}

bool mon_parse_now(const char *s, int64_t *ms)
{
	if (llm_mon_parse_time(s, strlen(s), ms))
		return true;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e11)
		return false;
	*ms = (int64_t)llround(v * 1000.0);
	return true;
}

void mon_group_text(const json_t *labels, char *out, size_t outsz)
{
	size_t len = 0;
	const char *k;
	json_t *v;
	out[0] = '\0';
	json_object_foreach((json_t *)labels, k, v)
	{
		int n = snprintf(out + len, outsz - len, "%s%s=%s", len ? "," : "", k,
				 json_string_value(v));
		if (n < 0 || (size_t)n >= outsz - len)
			break;
		len += (size_t)n;
	}
	if (!len)
		snprintf(out, outsz, "-");
}

void mon_value_text(bool have, double v, char *out, size_t outsz)
{
	if (!have)
		snprintf(out, outsz, "-");
	else
		snprintf(out, outsz, "%.6g", v);
}

/* One aggregate per distinct (window, keys): rules that look alike share a pass. */
struct slot {
	int64_t window_ms;
	char **keys; /* borrowed from the rule: by, then where keys */
	size_t nkeys;
	struct llm_mon_agg *agg;
};

static bool slot_matches(const struct slot *s, const struct llm_rule *r)
{
	if (s->window_ms != r->window_ms || s->nkeys != r->nby + r->nwhere)
		return false;
	for (size_t i = 0; i < s->nkeys; i++) {
		const char *k = i < r->nby ? r->by[i] : r->where_keys[i - r->nby];
		if (strcmp(s->keys[i], k))
			return false;
	}
	return true;
}

static bool row_get(void *ctx, const char *metric, double *v)
{
	if (llm_mon_row_metric(ctx, metric, v))
		return true;
	/* The per-value counts (status_429, errors_by_code.X, flags.KIND) exist only for values
	 * seen: in a row that has requests, one that is absent counts 0, not no data. */
	double n;
	if ((!strncmp(metric, "status_", 7) || !strncmp(metric, "errors_by_code.", 15) ||
	     !strncmp(metric, "flags.", 6)) &&
	    llm_mon_row_metric(ctx, "requests", &n)) {
		*v = 0;
		return true;
	}
	return false;
}

static int64_t floor_to(int64_t t, int64_t w)
{
	int64_t q = t / w;
	if (t % w != 0 && t < 0)
		q--;
	return q * w;
}

static int add_group(struct llm_cli *c, struct mon_rule_run *run, const struct llm_rule *r,
		     const struct llm_mon_row *row)
{
	struct mon_group *ng = realloc(run->groups, (run->ngroups + 1) * sizeof *ng);
	if (!ng) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	run->groups = ng;
	struct mon_group *g = &ng[run->ngroups++];
	memset(g, 0, sizeof *g);
	g->labels = json_object();
	for (size_t i = 0; i < r->nby; i++) {
		const char *v = row ? llm_mon_row_key(row, i) : NULL;
		if (row)
			json_object_set_new(g->labels, r->by[i], json_string(v ? v : ""));
	}
	for (size_t i = 0; i < r->nwhere; i++)
		json_object_set_new(g->labels, r->where_keys[i], json_string(r->where_vals[i]));
	g->key = json_dumps(g->labels, JSON_COMPACT | JSON_SORT_KEYS);
	if (!g->labels || !g->key) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	g->empty = !row;
	if (row) {
		llm_rule_eval(r, row_get, (void *)row, &g->res);
	} else {
		memset(&g->res, 0, sizeof g->res);
		g->res.level = LLM_LEVEL_NODATA;
		g->res.threshold = r->value.set	     ? &r->value
				   : r->critical.set ? &r->critical
						     : &r->warning;
	}
	return 0;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mon_eval_run(struct llm_cli *c, const struct llm_rules *rules, bool clock_from_data,
		 struct mon_eval *ev)
{
	memset(ev, 0, sizeof *ev);
	struct llm_diag d;
	const char *nows = llm_args_str(&c->args, "now");
	int64_t now = 0;
	if (nows && !mon_parse_now(nows, &now))
		return llm_cli_usage(c, "--now: expected RFC 3339 or Unix seconds, not '%s'", nows);
	struct llm_mon_prices *prices = NULL;
	const char *pp = llm_args_str(&c->args, "prices");
	if (pp && llm_mon_prices_load(&prices, pp, &d))
		return llm_cli_fail(c, &d);
	struct slot *slots = calloc(rules->nrules, sizeof *slots);
	size_t *slot_of = calloc(rules->nrules, sizeof *slot_of);
	size_t nslots = 0;
	int st = 0;
	struct mon_in m;
	bool in_open = false;
	if (!slots || !slot_of) {
		llm_cli_error(c, "out of memory");
		st = LLM_EXIT_IO;
		goto done;
	}
	for (size_t i = 0; i < rules->nrules; i++) {
		const struct llm_rule *r = &rules->rules[i];
		size_t k;
		for (k = 0; k < nslots && !slot_matches(&slots[k], r); k++)
			;
		slot_of[i] = k;
		if (k < nslots)
			continue;
		struct slot *s = &slots[nslots++];
		s->window_ms = r->window_ms;
		s->nkeys = r->nby + r->nwhere;
		s->keys = calloc(s->nkeys + 1, sizeof *s->keys);
		if (!s->keys) {
			llm_cli_error(c, "out of memory");
			st = LLM_EXIT_IO;
			goto done;
		}
		for (size_t j = 0; j < s->nkeys; j++)
			s->keys[j] = j < r->nby ? r->by[j] : r->where_keys[j - r->nby];
		struct llm_mon_agg_config cfg = {
		    .window_ms = r->window_ms, .by = s->keys, .nby = s->nkeys, .prices = prices};
		if (llm_mon_agg_new(&s->agg, &cfg, &d)) {
			st = llm_cli_fail(c, &d);
			goto done;
		}
	}
	if ((st = mon_in_open(c, &m, false, false, 0)))
		goto done;
	in_open = true;
	int64_t newest = INT64_MIN;
	struct llm_mon_event *e;
	int k;
	while ((k = mon_in_next(c, &m, &e)) > 0) {
		if (k != 1)
			continue;
		if (e->ts_ms != INT64_MIN && e->ts_ms > newest)
			newest = e->ts_ms;
		for (size_t i = 0; i < nslots; i++)
			if (llm_mon_agg_add(slots[i].agg, e, &d)) {
				st = llm_cli_fail(c, &d);
				goto done;
			}
	}
	if (k < 0) {
		st = m.in.status;
		goto done;
	}
	if (nows)
		ev->now_ms = now;
	else if (clock_from_data && newest != INT64_MIN)
		ev->now_ms = newest;
	else
		ev->now_ms = wall_ms();
	ev->input = mon_in_report(&m);
	ev->runs = calloc(rules->nrules, sizeof *ev->runs);
	if (!ev->runs) {
		llm_cli_error(c, "out of memory");
		st = LLM_EXIT_IO;
		goto done;
	}
	ev->nruns = rules->nrules;
	for (size_t i = 0; i < rules->nrules; i++) {
		const struct llm_rule *r = &rules->rules[i];
		struct mon_rule_run *run = &ev->runs[i];
		const struct llm_mon_agg *a = slots[slot_of[i]].agg;
		run->rule = r;
		if (r->window_ms) {
			run->end_ms = floor_to(ev->now_ms, r->window_ms);
			run->start_ms = run->end_ms - r->window_ms;
		}
		size_t n = llm_mon_agg_nrows(a);
		for (size_t j = 0; j < n; j++) {
			const struct llm_mon_row *row = llm_mon_agg_row(a, j);
			if (r->window_ms && llm_mon_row_start(row) != run->start_ms)
				continue;
			bool ok = true;
			for (size_t w = 0; w < r->nwhere && ok; w++) {
				const char *v = llm_mon_row_key(row, r->nby + w);
				ok = v && !strcmp(v, r->where_vals[w]);
			}
			if (ok && (st = add_group(c, run, r, row)))
				goto done;
		}
		/* No row at all: one group of no data stands for the rule. */
		if (!run->ngroups && (st = add_group(c, run, r, NULL)))
			goto done;
	}
done:
	if (in_open)
		mon_in_close(&m);
	for (size_t i = 0; i < nslots; i++) {
		llm_mon_agg_free(slots[i].agg);
		free(slots[i].keys);
	}
	free(slots);
	free(slot_of);
	llm_mon_prices_free(prices);
	return st;
}

void mon_eval_free(struct mon_eval *ev)
{
	for (size_t i = 0; i < ev->nruns; i++) {
		for (size_t j = 0; j < ev->runs[i].ngroups; j++) {
			json_decref(ev->runs[i].groups[j].labels);
			free(ev->runs[i].groups[j].key);
		}
		free(ev->runs[i].groups);
	}
	free(ev->runs);
	json_decref(ev->input);
	memset(ev, 0, sizeof *ev);
}
