/* The verbs of llm-prep, one per file in cmd/prep/. */
#ifndef LLM_CMD_PREP_VERBS_H
#define LLM_CMD_PREP_VERBS_H

#include "cli.h"

extern const struct llm_verb llm_prep_verb_validate;
extern const struct llm_verb llm_prep_verb_stats;
extern const struct llm_verb llm_prep_verb_head;
extern const struct llm_verb llm_prep_verb_sample;
extern const struct llm_verb llm_prep_verb_shard;
extern const struct llm_verb llm_prep_verb_clean;
extern const struct llm_verb llm_prep_verb_filter;
extern const struct llm_verb llm_prep_verb_dedup;
extern const struct llm_verb llm_prep_verb_redact;
extern const struct llm_verb llm_prep_verb_decontaminate;
extern const struct llm_verb llm_prep_verb_split;
extern const struct llm_verb llm_prep_verb_template;
extern const struct llm_verb llm_prep_verb_tokenize;
extern const struct llm_verb llm_prep_verb_tokenizer;
extern const struct llm_verb llm_prep_verb_pack;

#endif
