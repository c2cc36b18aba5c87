/* llm-prep: explore and prepare JSONL data.  Each verb lives in cmd/prep/VERB.c over the
 * shared record loop in cmd/cli.c; this file lists them. */
#include "config.h"

#include <stddef.h>

#include "cli.h"
#include "prep/verbs.h"

/* In the order of a pipeline: look at the data, clean it, shape it for training. */
static const struct llm_verb *const verbs[] = {
	&llm_prep_verb_validate,      &llm_prep_verb_stats,  &llm_prep_verb_head,
	&llm_prep_verb_sample,        &llm_prep_verb_shard,  &llm_prep_verb_clean,
	&llm_prep_verb_filter,        &llm_prep_verb_dedup,  &llm_prep_verb_redact,
	&llm_prep_verb_decontaminate, &llm_prep_verb_split,  &llm_prep_verb_template,
	&llm_prep_verb_tokenize,      &llm_prep_verb_tokenizer, &llm_prep_verb_pack,
	NULL,
};

static const struct llm_tool tool = {
	"llm-prep", "prep", "Explore and prepare JSONL data for training and evaluation.", verbs,
};

int main(int argc, char **argv)
{
	return llm_cli_main(&tool, argc, argv);
}
