/* llm-gen: batch inference.  The run itself (cmd/gen/run.c) is the program's own action, with
 * no verb; "llm-gen batch export" and "llm-gen batch import" (cmd/gen/batch.c) handle the
 * OpenAI Batch API's files, and are dispatched here as verbs of a second table whose names
 * are the two words joined, so their help and diagnostics read as the user typed them. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gen/gen.h"

static const struct llm_tool tool = {
    "llm-gen",
    "gen",
    "Run prompts through a model: JSONL records in, records with answers out.",
    NULL,
    &llm_gen_verb_run,
};

static const struct llm_verb *const batch_verbs[] = {
    &llm_gen_verb_batch_export,
    &llm_gen_verb_batch_import,
    NULL,
};

static const struct llm_tool batch_tool = {
    "llm-gen", "gen", "Write and read the OpenAI Batch API's files.", batch_verbs, NULL,
};

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "batch"))
		return llm_cli_main(&tool, argc, argv);
	/* "batch export" is one verb: join the two words; anything else after "batch" goes to
	 * the batch table as it is, which lists the verbs or says what is wrong. */
	static char joined[32];
	if (argc > 2 && (!strcmp(argv[2], "export") || !strcmp(argv[2], "import"))) {
		snprintf(joined, sizeof joined, "batch %s", argv[2]);
		argv[2] = joined;
	}
	argv[1] = argv[0];
	return llm_cli_main(&batch_tool, argc - 1, argv + 1);
}
