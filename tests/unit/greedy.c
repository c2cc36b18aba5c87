/* A test helper: the greedy continuation our engine gives, for comparison with llama.cpp's.
 *
 *     greedy [-n N] [--lora DIR] [--ids] [--margins] MODEL PROMPT
 *
 * MODEL is a model directory (or a .gguf file); its tokenizer.json encodes PROMPT (--tokenizer
 * FILE takes another).  --lora merges the PEFT adapter in DIR first.  Prints the N (default
 * 16) token ids that llm_generate picks at temperature 0, EOS included and not stopping, one
 * per line.  --ids prints the prompt's ids instead, one per line.  --margins adds, on stderr,
 * each step's gap between the best and the second-best logit: where it is tiny, float rounding
 * in another implementation may pick the other token. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/generate.h"
#include "engine/lora.h"
#include "engine/modeldir.h"
#include "text/bpe.h"

static int fail(const struct llm_diag *d)
{
	char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32];
	llm_diag_format(d, msg, sizeof msg);
	fprintf(stderr, "greedy: %s\n", msg);
	return 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: greedy [-n N] [--lora DIR] [--tokenizer FILE] [--ids] [--margins] "
			"MODEL PROMPT\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *lora = NULL, *tokpath = NULL, *model = NULL, *prompt = NULL;
	bool ids_only = false, margins = false;
	long n = 16;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			char *end;
			n = strtol(argv[++i], &end, 10);
			if (*end || n < 1 || n > 100000)
				return usage();
		} else if (!strcmp(argv[i], "--lora") && i + 1 < argc) {
			lora = argv[++i];
		} else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) {
			tokpath = argv[++i];
		} else if (!strcmp(argv[i], "--ids")) {
			ids_only = true;
		} else if (!strcmp(argv[i], "--margins")) {
			margins = true;
		} else if (!model) {
			model = argv[i];
		} else if (!prompt) {
			prompt = argv[i];
		} else {
			return usage();
		}
	}
	if (!model || !prompt)
		return usage();

	struct llm_diag d;
	char path[4096];
	if (!tokpath) {
		snprintf(path, sizeof path, "%s/tokenizer.json", model);
		tokpath = path;
	}
	struct llm_bpe *bpe;
	if (llm_bpe_open_file(&bpe, tokpath, &d))
		return fail(&d);
	struct llm_bpe_ids ids = {0};
	if (llm_bpe_encode(bpe, prompt, strlen(prompt), &ids, &d)) {
		llm_bpe_free(bpe);
		return fail(&d);
	}
	if (ids.n == 0 || ids_only) {
		for (size_t i = 0; i < ids.n; i++)
			printf("%u\n", ids.v[i]);
		if (ids.n == 0)
			fprintf(stderr, "greedy: the prompt encodes to no tokens\n");
		llm_bpe_free(bpe);
		llm_bpe_ids_free(&ids);
		return ids.n == 0 || fflush(stdout) ? 1 : 0;
	}

	struct llm_model *m;
	enum llm_err e = llm_modeldir_open(&m, model, &d);
	if (e) {
		llm_bpe_free(bpe);
		llm_bpe_ids_free(&ids);
		return fail(&d);
	}
	if (lora && (llm_lora_load_peft(m, lora, &d) || llm_lora_merge(m, &d))) {
		llm_model_free(m);
		llm_bpe_free(bpe);
		llm_bpe_ids_free(&ids);
		return fail(&d);
	}
	struct llm_gen_params p;
	llm_gen_params_default(&p);
	p.sampler.temperature = 0;
	p.sampler.n_logprobs = margins ? 2 : 0;
	p.logprobs = margins;
	p.max_tokens = (int)n;
	p.ignore_eos = true;
	/* The text is for the reader (on stderr with --margins); without a decoder
	 * llm_generate has no text to stream. */
	p.bpe = bpe;
	struct llm_gen_result r;
	e = llm_generate(m, ids.v, ids.n, &p, &r, &d);
	llm_model_free(m);
	llm_bpe_free(bpe);
	llm_bpe_ids_free(&ids);
	if (e) {
		llm_gen_result_free(&r);
		return fail(&d);
	}
	for (size_t i = 0; i < r.n_tokens; i++) {
		printf("%u\n", r.tokens[i]);
		/* Log-probabilities under the raw logits differ by what the logits differ by. */
		if (margins && r.logprobs && r.logprobs[i].n_top >= 2)
			fprintf(
			    stderr, "step %zu: token %u, top-2 logit gap %.4g\n", i, r.tokens[i],
			    (double)(r.logprobs[i].top[0].logprob - r.logprobs[i].top[1].logprob));
	}
	if (margins)
		fprintf(stderr, "text: %.*s\n", (int)r.text.len, r.text.data ? r.text.data : "");
	llm_gen_result_free(&r);
	return fflush(stdout) ? 1 : 0;
}
