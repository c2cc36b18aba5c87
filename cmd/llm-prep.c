/* llm-prep: explore and prepare JSONL data.  Each verb lives in cmd/prep/VERB.c over the
 * shared record loop in cmd/cli.c; this file lists them. */
#include "config.h"

#include <stddef.h>

#include "cli.h"
#include "prep/verbs.h"

/* DEVELOPMENT ONLY: verbs still being written are weak references, so the program links
 * without them.  Every one is made strong again before a commit lands. */
#pragma weak llm_prep_verb_clean
#pragma weak llm_prep_verb_filter
#pragma weak llm_prep_verb_dedup
#pragma weak llm_prep_verb_redact
#pragma weak llm_prep_verb_decontaminate
#pragma weak llm_prep_verb_split
#pragma weak llm_prep_verb_template
#pragma weak llm_prep_verb_tokenize
#pragma weak llm_prep_verb_tokenizer
#pragma weak llm_prep_verb_pack

static const struct llm_verb *const all[] = {
	&llm_prep_verb_validate, &llm_prep_verb_stats,    &llm_prep_verb_head,
	&llm_prep_verb_sample,   &llm_prep_verb_shard,    &llm_prep_verb_clean,
	&llm_prep_verb_filter,   &llm_prep_verb_dedup,    &llm_prep_verb_redact,
	&llm_prep_verb_decontaminate, &llm_prep_verb_split, &llm_prep_verb_template,
	&llm_prep_verb_tokenize, &llm_prep_verb_tokenizer, &llm_prep_verb_pack,
};

int main(int argc, char **argv)
{
	static const struct llm_verb *verbs[sizeof all / sizeof *all + 1];
	size_t n = 0;
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		if (all[i])
			verbs[n++] = all[i];
	static const struct llm_tool tool = {
		"llm-prep", "prep", "Explore and prepare JSONL data for training and evaluation.",
		verbs,
	};
	return llm_cli_main(&tool, argc, argv);
}
