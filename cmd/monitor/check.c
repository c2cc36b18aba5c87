/* llm-monitor check: hold a log to a rules file, for CI and cron.  Every rule is evaluated on
 * the aggregates of its window (the last complete one, or the whole input), per group; a
 * table says which hold, and the exit status whether all did. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "monitor/monitor.h"
#include "monitor/rulerun.h"

/* holds, warns (a warning threshold missed: reported, not failing), fails, nodata. */
static const char *status_of(const struct llm_rule *r, const struct llm_rule_result *res,
			     bool *failing)
{
	enum llm_rule_level l = res->level;
	if (l == LLM_LEVEL_NODATA) {
		if (r->no_data == LLM_NODATA_OK) {
			*failing = false;
			return "holds";
		}
		*failing = true;
		return r->no_data == LLM_NODATA_ALERTING ? "fails" : "nodata";
	}
	*failing = l == LLM_LEVEL_CRITICAL;
	return l == LLM_LEVEL_OK ? "holds" : l == LLM_LEVEL_WARNING ? "warns" : "fails";
}

static json_t *threshold_json(const struct llm_rule_threshold *t)
{
	if (!t || !t->set)
		return json_null();
	if (t->n == 1)
		return json_real(t->v[0]);
	json_t *a = json_array();
	for (size_t i = 0; i < t->n; i++)
		json_array_append_new(a, json_real(t->v[i]));
	return a;
}

static json_t *time_or_null(int64_t ms, bool set)
{
	char t[40];
	if (!set)
		return json_null();
	llm_rules_format_time(ms, t, sizeof t);
	return json_string(t);
}

static json_t *report_json(const struct mon_eval *ev, size_t counts[4], bool ok)
{
	static const char *const names[] = {"holds", "warns", "fails", "nodata"};
	json_t *rules = json_array();
	for (size_t i = 0; i < ev->nruns; i++) {
		const struct mon_rule_run *run = &ev->runs[i];
		const struct llm_rule *r = run->rule;
		json_t *groups = json_array();
		for (size_t j = 0; j < run->ngroups; j++) {
			const struct mon_group *g = &run->groups[j];
			bool failing;
			const char *st = status_of(r, &g->res, &failing);
			json_array_append_new(
			    groups,
			    json_pack("{s:O,s:o,s:s,s:s,s:o}", "labels", g->labels, "value",
				      g->res.have_value ? json_real(g->res.value) : json_null(),
				      "status", st, "level", llm_rule_level_name(g->res.level),
				      "threshold", threshold_json(g->res.threshold)));
		}
		json_t *o =
		    json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o}", "name", r->name, "metric", r->metric,
			      "op", llm_rule_op_name(r->op), "window", r->window, "window_start",
			      time_or_null(run->start_ms, r->window_ms > 0), "window_end",
			      time_or_null(run->end_ms, r->window_ms > 0), "groups", groups);
		if (r->value.set)
			json_object_set_new(o, "value", threshold_json(&r->value));
		if (r->warning.set)
			json_object_set_new(o, "warning", threshold_json(&r->warning));
		if (r->critical.set)
			json_object_set_new(o, "critical", threshold_json(&r->critical));
		json_array_append_new(rules, o);
	}
	json_t *sum = json_object();
	for (int k = 0; k < 4; k++)
		json_object_set_new(sum, names[k], json_integer((json_int_t)counts[k]));
	char now[40];
	llm_rules_format_time(ev->now_ms, now, sizeof now);
	return json_pack("{s:s,s:s,s:b,s:o,s:o,s:O}", "tool", "llm-monitor check", "now", now, "ok",
			 ok, "summary", sum, "rules", rules, "input", ev->input);
}

static bool put(struct llm_cli *c, const char *s)
{
	return llm_cli_write(c, s, strlen(s));
}

static bool table(struct llm_cli *c, const struct mon_eval *ev)
{
	/* Widths from the contents, so the columns line up whatever the names. */
	int wr = 4, wg = 5, wm = 6;
	for (size_t i = 0; i < ev->nruns; i++) {
		const struct mon_rule_run *run = &ev->runs[i];
		int n = (int)strlen(run->rule->name);
		wr = n > wr ? n : wr;
		n = (int)strlen(run->rule->metric);
		wm = n > wm ? n : wm;
		for (size_t j = 0; j < run->ngroups; j++) {
			char gt[512];
			mon_group_text(run->groups[j].labels, gt, sizeof gt);
			n = (int)strlen(gt);
			wg = n > wg ? n : wg;
		}
	}
	wg = wg > 60 ? 60 : wg;
	char line[2048];
	snprintf(line, sizeof line, "%-*s  %-*s  %-*s  %-12s  %-20s  %-6s  %s\n", wr, "RULE", wg,
		 "GROUP", wm, "METRIC", "VALUE", "CONDITION", "WINDOW", "STATUS");
	if (!put(c, line))
		return false;
	for (size_t i = 0; i < ev->nruns; i++) {
		const struct mon_rule_run *run = &ev->runs[i];
		for (size_t j = 0; j < run->ngroups; j++) {
			const struct mon_group *g = &run->groups[j];
			char gt[512], val[64], thr[256], cond[300];
			bool failing;
			const char *st = status_of(run->rule, &g->res, &failing);
			mon_group_text(g->labels, gt, sizeof gt);
			mon_value_text(g->res.have_value, g->res.value, val, sizeof val);
			llm_rule_threshold_format(g->res.threshold, thr, sizeof thr);
			snprintf(cond, sizeof cond, "%s %s", llm_rule_op_name(run->rule->op), thr);
			snprintf(line, sizeof line, "%-*s  %-*s  %-*s  %-12s  %-20s  %-6s  %s\n",
				 wr, run->rule->name, wg, gt, wm, run->rule->metric, val, cond,
				 run->rule->window, st);
			if (!put(c, line))
				return false;
		}
	}
	return true;
}

static int run_check(struct llm_cli *c)
{
	struct llm_rules *rules = NULL;
	int st = mon_rules_load(c, &rules);
	if (st)
		return st;
	const char *fmt = llm_args_str(&c->args, "format");
	struct mon_eval ev;
	if ((st = mon_eval_run(c, rules, true, &ev))) {
		mon_eval_free(&ev);
		llm_rules_free(rules);
		return st;
	}
	size_t counts[4] = {0}; /* holds, warns, fails, nodata */
	bool any_failing = false;
	for (size_t i = 0; i < ev.nruns; i++)
		for (size_t j = 0; j < ev.runs[i].ngroups; j++) {
			bool failing;
			const char *s =
			    status_of(ev.runs[i].rule, &ev.runs[i].groups[j].res, &failing);
			any_failing |= failing;
			counts[!strcmp(s, "holds")   ? 0
			       : !strcmp(s, "warns") ? 1
			       : !strcmp(s, "fails") ? 2
						     : 3]++;
		}
	json_t *rep = report_json(&ev, counts, !any_failing);
	struct llm_diag d;
	if (!strcmp(fmt, "json")) {
		if (llm_cli_write_json(c, "-", rep, &d))
			st = llm_cli_fail(c, &d);
	} else if (!table(c, &ev)) {
		st = LLM_EXIT_IO;
	}
	const char *report = llm_args_str(&c->args, "report");
	if (!st && report && llm_cli_write_json(c, report, rep, &d))
		st = llm_cli_fail(c, &d);
	if (!st && !c->quiet)
		fprintf(
		    stderr,
		    "llm-monitor: check: %zu holding, %zu warning, %zu failing, %zu without data\n",
		    counts[0], counts[1], counts[2], counts[3]);
	json_decref(rep);
	mon_eval_free(&ev);
	llm_rules_free(rules);
	return st ? st : any_failing ? LLM_EXIT_NEGATIVE : LLM_EXIT_OK;
}

static const struct llm_opt check_opts[] = {
    {"format", 0, LLM_OPT_CHOICE, "FORMAT", "the result on standard output: a table or JSON",
     "table", "table|json"},
    {"report", 0, LLM_OPT_STRING, "FILE", "also write the result as JSON to FILE"},
    {0},
};

const struct llm_verb llm_monitor_verb_check = {
    "check",
    "hold a log to a rules file: exit 0 when every rule holds",
    "--rules FILE [OPTIONS] [FILE...]",
    "Evaluates every rule of the rules file (llmops-rules(5)) on the aggregates of the input:\n"
    "over the rule's window (the last window complete at the clock, which is --now or the\n"
    "newest record's time) or the whole input (window \"all\"), per group of its \"by\" fields.\n"
    "Prints which rules hold, with their values.  Status 0 when every rule holds (a missed\n"
    "warning threshold is reported, not failing), 1 when one fails or has no data (unless its\n"
    "no_data is \"ok\"), 2 for a usage error or a bad rules file, 3 for an I/O failure.",
    {check_opts, mon_opts_rules, mon_opts_fields, llm_cli_opts_input, llm_cli_opts_on_error,
     llm_cli_opts_base},
    run_check,
};
