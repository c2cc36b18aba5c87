/* The verbs of llm-tune, one per file in cmd/tune/. */
#ifndef LLM_CMD_TUNE_VERBS_H
#define LLM_CMD_TUNE_VERBS_H

#include "cli.h"

extern const struct llm_verb llm_tune_verb_init;
extern const struct llm_verb llm_tune_verb_train;
extern const struct llm_verb llm_tune_verb_sweep;
extern const struct llm_verb llm_tune_verb_export;
extern const struct llm_verb llm_tune_verb_runs;

#endif
