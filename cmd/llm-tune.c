/* llm-tune: fine-tuning and hyperparameter search, and the records of the runs they make.
 * Each verb lives in cmd/tune/VERB.c; this file lists them.  init, train, lora, sweep and
 * export come with the engine (lib/engine/); runs reads the run folders of lib/tune/run.h. */
#include "config.h"

#include <stddef.h>

#include "cli.h"
#include "tune/verbs.h"

static const struct llm_verb *const verbs[] = {
    &llm_tune_verb_init,
    &llm_tune_verb_train,
    &llm_tune_verb_sweep,
    &llm_tune_verb_export,
    &llm_tune_verb_runs,
    NULL,
};

static const struct llm_tool tool = {
    "llm-tune",
    "tune",
    "Fine-tune language models, search hyperparameters, compare runs.",
    verbs,
};

int main(int argc, char **argv)
{
	return llm_cli_main(&tool, argc, argv);
}
