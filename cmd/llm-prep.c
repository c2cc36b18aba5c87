/* llm-prep: explore and prepare JSONL data.  Each verb lives in cmd/prep/VERB.c over the
 * shared record loop in cmd/cli.c; this file lists them. */
#include "config.h"

#include "cli.h"
#include "prep/verbs.h"

static const struct llm_verb *const verbs[] = {
	&llm_prep_verb_validate,
	&llm_prep_verb_stats,
	&llm_prep_verb_head,
	&llm_prep_verb_sample,
	&llm_prep_verb_shard,
	NULL,
};

static const struct llm_tool tool = {
	"llm-prep", "prep", "Explore and prepare JSONL data for training and evaluation.", verbs,
};

int main(int argc, char **argv)
{
	return llm_cli_main(&tool, argc, argv);
}
