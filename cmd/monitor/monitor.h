/* llm-monitor's verbs, and the input every verb that reads a monitoring stream shares: the
 * files or standard input (gzip read transparently) or one followed file (--follow), each
 * good record parsed into an event (lib/monitor/event.h), bad ones dealt with by --on-error. */
#ifndef LLM_CMD_MONITOR_H
#define LLM_CMD_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "monitor/event.h"

extern const struct llm_verb llm_monitor_verb_summarize;
extern const struct llm_verb llm_monitor_verb_drift;
extern const struct llm_verb llm_monitor_verb_scan;
extern const struct llm_verb llm_monitor_verb_check;
extern const struct llm_verb llm_monitor_verb_alert;
extern const struct llm_verb llm_monitor_verb_feedback;
extern const struct llm_verb llm_monitor_verb_curate;

/* A verb that reads a stream has the tables llm_cli_opts_base, llm_cli_opts_input,
 * llm_cli_opts_on_error, mon_opts_fields and (when it can follow) mon_opts_follow.
 *
 * The field-name options (--ts-field, --request-id-field, --model-field, --key-id-field,
 * --status-field, --latency-field, --ttft-field, --usage-field, --finish-reason-field,
 * --prompt-field, --messages-field, --output-field, --flags-field, --error-field,
 * --score-field, --kind-field) and the follow options (--follow, --from-end, --poll). */
extern const struct llm_opt mon_opts_fields[];
extern const struct llm_opt mon_opts_follow[];

struct llm_mon_tail;

struct mon_in {
	struct llm_cli_in in; /* the files (not under --follow) */
	struct llm_mon_tail *tail;
	const char *follow_path;
	struct llm_record follow_rec;
	struct llm_mon_parser *parser;
	struct llm_mon_event ev;
	int tick_ms;
	int64_t last_tick_ms;
	uint64_t events, requests, feedback;
};

/* Open the input of c's operands (--follow takes exactly one file).  want_text: decode
 * prompts and outputs (scan, drift of texts, curate).  keep_writes: bad records kept under
 * --on-error=keep go to stdout (curate passes records through; the others do not).
 * tick_ms: under --follow, how often next() returns 2 when no record came (0: never).  On
 * failure (the exit status is returned) nothing stays open; mon_in_close() is harmless. */
int mon_in_open(struct llm_cli *c, struct mon_in *m, bool want_text, bool keep_writes,
		int tick_ms);
/* 1: *ev is the next event; 2: a tick under --follow (no event); 0: end of input; -1: stop,
 * m->in.status is the exit status.  A record that parses as JSON but not as an event (a
 * status that is a string) goes through --on-error like a bad line. */
int mon_in_next(struct llm_cli *c, struct mon_in *m, struct llm_mon_event **ev);
void mon_in_close(struct mon_in *m);
/* The input side of a --report (llm_cli_in_report) with "events", "requests", "feedback". */
json_t *mon_in_report(const struct mon_in *m);

/* A terminal gets colour when stderr/stdout (fd) is a terminal and NO_COLOR is unset. */
bool mon_color(int fd);

#endif
