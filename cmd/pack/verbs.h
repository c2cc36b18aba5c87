/* The verbs of llm-pack, one per file in cmd/pack/. */
#ifndef LLM_CMD_PACK_VERBS_H
#define LLM_CMD_PACK_VERBS_H

#include "cli.h"

extern const struct llm_verb llm_pack_verb_create;
extern const struct llm_verb llm_pack_verb_verify;
extern const struct llm_verb llm_pack_verb_inspect;
extern const struct llm_verb llm_pack_verb_diff;
extern const struct llm_verb llm_pack_verb_unpack;
extern const struct llm_verb llm_pack_verb_sign;
extern const struct llm_verb llm_pack_verb_keygen;
extern const struct llm_verb llm_pack_verb_card;
extern const struct llm_verb llm_pack_verb_push;
extern const struct llm_verb llm_pack_verb_pull;
extern const struct llm_verb llm_pack_verb_list;
extern const struct llm_verb llm_pack_verb_show;
extern const struct llm_verb llm_pack_verb_alias;
extern const struct llm_verb llm_pack_verb_promote;
extern const struct llm_verb llm_pack_verb_lineage;
extern const struct llm_verb llm_pack_verb_history;

#endif
