/* llm-prep head: the first records. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "prep/verbs.h"

static int run_head(struct llm_cli *c)
{
	uint64_t want = (uint64_t)llm_args_int(&c->args, "records");
	struct llm_cli_in in;
	int st = llm_cli_in_open(c, &in, true);
	if (st)
		return st;
	struct llm_record *rec;
	int r = 0;
	while (in.records < want && (r = llm_cli_in_next(c, &in, &rec)) > 0)
		if (!llm_cli_emit(c, rec, NULL, 0)) {
			in.status = LLM_EXIT_IO;
			r = -1;
			break;
		}
	llm_cli_in_close(&in);
	return r < 0 ? in.status : 0;
}

static const struct llm_opt head_opts[] = {
	{"records", 'n', LLM_OPT_INT, "N", "how many records", "10", .min = 0, .max = 1e18},
	{0},
};

const struct llm_verb llm_prep_verb_head = {
	"head", "the first records", "[OPTIONS] [FILE...]",
	"Writes the first N records unchanged and stops reading.",
	{head_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base}, run_head,
};
