/* What `llm-monitor feedback join` and `llm-monitor curate` share: the join options, feeding
 * events into a lib/monitor/join, and the corrections found in feedback. */
#ifndef LLM_CMD_MONITOR_FBJOIN_H
#define LLM_CMD_MONITOR_FBJOIN_H

#include <stdbool.h>
#include <stdint.h>

#include "monitor/join.h"
#include "monitor/monitor.h"

/* --join-wait, --max-pending, --correction-field. */
extern const struct llm_opt mon_opts_join[];

/* Open a join for c's options: under --follow (follow) a request is released when its first
 * feedback arrives or after --join-wait; otherwise at the end of the input.  Returns an exit
 * status (0: *j is open). */
int mon_join_open(struct llm_cli *c, struct llm_mon_join **j, bool follow);

/* Feed one event.  A feedback's correction is its --correction-field member (a string), or
 * the rest of a comment that starts with "correction:" (any case).  Returns an exit status. */
int mon_join_take(struct llm_cli *c, struct llm_mon_join *j, const struct llm_mon_event *ev,
		  int64_t now);

/* The monotonic clock in ms (the join's clock). */
int64_t mon_join_now(void);

/* The tick under --follow: how often releases due by --join-wait are looked for. */
#define MON_JOIN_TICK_MS 100

#endif
