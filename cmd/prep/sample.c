/* llm-prep sample: a seeded random sample: reservoir or Bernoulli. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/rand.h"
#include "prep/verbs.h"

struct kept {
	uint64_t index;
	char *line; /* the record, newline included */
	size_t len;
};

static int cmp_kept(const void *a, const void *b)
{
	const struct kept *x = a, *y = b;
	return x->index < y->index ? -1 : x->index > y->index;
}

static int run_sample(struct llm_cli *c)
{
	bool by_fraction = llm_args_given(&c->args, "fraction");
	if (by_fraction && llm_args_given(&c->args, "records"))
		return llm_cli_usage(c, "give --records or --fraction, not both");
	uint64_t n = (uint64_t)llm_args_int(&c->args, "records");
	double fraction = llm_args_double(&c->args, "fraction");
	struct llm_rand rng;
	llm_rand_seed(&rng, (uint64_t)llm_args_int(&c->args, "seed"));
	struct kept *res = NULL;
	if (!by_fraction && n && !(res = calloc(n, sizeof *res))) {
		llm_cli_error(c, "out of memory: --records %llu is too many to hold",
			      (unsigned long long)n);
		return LLM_EXIT_IO;
	}
	struct llm_cli_in in;
	int st = llm_cli_in_open(c, &in, true);
	if (st) {
		free(res);
		return st;
	}
	struct llm_record *rec;
	int r;
	uint64_t seen = 0, held = 0;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		uint64_t i = seen++;
		if (by_fraction) {
			if (llm_rand_double(&rng) < fraction && !llm_cli_emit(c, rec, NULL, 0)) {
				in.status = LLM_EXIT_IO;
				r = -1;
				break;
			}
			continue;
		}
		/* Algorithm R: record i replaces a random slot with probability n / (i + 1). */
		uint64_t slot = i < n ? i : llm_rand_below(&rng, i + 1);
		if (slot >= n)
			continue;
		char *copy = malloc(rec->len + 1);
		if (!copy) {
			llm_cli_error(c, "out of memory");
			in.status = LLM_EXIT_IO;
			r = -1;
			break;
		}
		memcpy(copy, rec->text, rec->len);
		copy[rec->len] = '\n';
		if (res[slot].line)
			free(res[slot].line);
		else
			held++;
		res[slot] = (struct kept){i, copy, rec->len + 1};
	}
	st = r < 0 ? in.status : 0;
	llm_cli_in_close(&in);
	if (!st && res) {
		/* Out in input order, so a sample reads like the data it came from. */
		qsort(res, held, sizeof *res, cmp_kept);
		for (uint64_t i = 0; i < held && !st; i++)
			if (!llm_cli_write(c, res[i].line, res[i].len))
				st = LLM_EXIT_IO;
	}
	for (uint64_t i = 0; res && i < n; i++)
		free(res[i].line);
	free(res);
	return st;
}

static const struct llm_opt sample_opts[] = {
	{"records", 'n', LLM_OPT_INT, "N",
	 "keep N records chosen uniformly (reservoir sampling; holds N records in memory)", "10",
	 .min = 0, .max = 1e12},
	{"fraction", 0, LLM_OPT_DOUBLE, "P",
	 "keep each record with probability P instead (streams; no memory)", .min = 0, .max = 1},
	{"seed", 's', LLM_OPT_INT, "N", "the random seed: the same seed and input give the same sample",
	 "0", .min = 0, .max = 9.2e18},
	{0},
};

const struct llm_verb llm_prep_verb_sample = {
	"sample", "a seeded random sample", "[OPTIONS] [FILE...]",
	"Writes a uniform random sample of the records, in input order, unchanged.",
	{sample_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base}, run_sample,
};
