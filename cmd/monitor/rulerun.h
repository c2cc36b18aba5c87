/* What `llm-monitor check` and `llm-monitor alert` share: the rules file, the clock, and one
 * pass over the input that aggregates it (lib/monitor/aggregate) for every rule's window and
 * groups and evaluates the rules (lib/monitor/rules) on the window each one looks at. */
#ifndef LLM_CMD_MONITOR_RULERUN_H
#define LLM_CMD_MONITOR_RULERUN_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "cli.h"
#include "monitor/rules.h"

/* --rules, --now, --prices. */
extern const struct llm_opt mon_opts_rules[];

/* One group of one rule. */
struct mon_group {
	json_t *labels; /* the by keys' values, then the where keys' (a missing value is "") */
	char *key;	/* labels as compact JSON with sorted keys: the group's identity */
	bool empty;	/* no row matched at all: the rule's stand-in group of no data */
	struct llm_rule_result res;
};

struct mon_rule_run {
	const struct llm_rule *rule;
	int64_t start_ms, end_ms; /* the window evaluated; both 0 for "all" */
	struct mon_group *groups;
	size_t ngroups;
};

struct mon_eval {
	int64_t now_ms;
	struct mon_rule_run *runs; /* one per rule, in the file's order */
	size_t nruns;
	json_t *input; /* mon_in_report */
};

/* Load --rules: 0, or the exit status after the message (2 for a bad file, 3 unreadable). */
int mon_rules_load(struct llm_cli *c, struct llm_rules **out);
/* --now: RFC 3339 or Unix seconds; false when neither. */
bool mon_parse_now(const char *s, int64_t *ms);
/* Read the input and evaluate every rule at the clock: --now when given, else the newest
 * event's time when clock_from_data (check), else the wall clock.  A windowed rule looks at
 * the last window that is complete at that clock: [floor(now / w) * w - w, floor(now / w) * w).
 * Returns 0 or the exit status. */
int mon_eval_run(struct llm_cli *c, const struct llm_rules *rules, bool clock_from_data,
		 struct mon_eval *ev);
void mon_eval_free(struct mon_eval *ev);
/* "model=m1, key_id=k" (or "-" when the group has no labels). */
void mon_group_text(const json_t *labels, char *out, size_t outsz);
/* A value for a table: "0.0512" or "-" (no data). */
void mon_value_text(bool have, double v, char *out, size_t outsz);

#endif
