/* llm-monitor: monitoring with human feedback: summaries, drift, abuse detection, rules and
 * alerts, and the loop back to training.  Each verb lives in cmd/monitor/VERB.c; the input
 * they share is cmd/monitor/input.c; what they compute is lib/monitor/. */
#include "config.h"

#include <stddef.h>

#include "cli.h"
#include "monitor/monitor.h"

static const struct llm_verb *const verbs[] = {
    &llm_monitor_verb_summarize,
    &llm_monitor_verb_drift,
    &llm_monitor_verb_scan,
    &llm_monitor_verb_check,
    &llm_monitor_verb_alert,
    &llm_monitor_verb_feedback,
    &llm_monitor_verb_curate,
    NULL,
};

static const struct llm_tool tool = {
    "llm-monitor",
    "monitor",
    "Watch a served model: summaries, drift, abuse, rules and alerts, feedback and curation.",
    verbs,
};

int main(int argc, char **argv)
{
	return llm_cli_main(&tool, argc, argv);
}
