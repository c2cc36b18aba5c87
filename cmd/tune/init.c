/* llm-tune init: a new model directory from a preset or a config.json, sized to a tokenizer,
 * with weights initialised as transformers does. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "engine/hparams.h"
#include "engine/modeldir.h"
#include "text/bpe.h"
#include "tune/verbs.h"

static const struct llm_opt init_opts[] = {
    {"preset", 'p', LLM_OPT_STRING, "NAME|FILE",
     "the model's shape: tiny, small, or a config.json", "tiny"},
    {"tokenizer", 't', LLM_OPT_STRING, "FILE", "the tokenizer.json the model uses (required)"},
    {"out", 'o', LLM_OPT_STRING, "DIR", "the model directory to write (required)"},
    {"seed", 0, LLM_OPT_INT, "N", "seed of the random initialisation", "1234", .min = 0,
     .max = 9007199254740991.0},
    {"init-std", 0, LLM_OPT_DOUBLE, "X", "standard deviation of the initial weights", "0.02",
     .min = 1e-9, .max = 10},
    {"eos-token", 0, LLM_OPT_STRING, "TEXT",
     "the end-of-text token (default: <|endoftext|>, </s> or <|eot_id|> when the tokenizer has "
     "one)"},
    {"bos-token", 0, LLM_OPT_STRING, "TEXT", "the beginning-of-text token (default: none)"},
    {"force", 'f', LLM_OPT_FLAG, NULL, "replace DIR when it exists"},
    {0},
};

static bool is_config_file(const char *s)
{
	size_t n = strlen(s);
	return strchr(s, '/') || (n > 5 && !strcmp(s + n - 5, ".json"));
}

static bool nonempty_dir(const char *path, bool *exists)
{
	struct stat sb;
	*exists = stat(path, &sb) == 0;
	if (!*exists)
		return false;
	if (!S_ISDIR(sb.st_mode))
		return true;
	DIR *dp = opendir(path);
	if (!dp)
		return true;
	struct dirent *de;
	bool any = false;
	while ((de = readdir(dp)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			any = true;
	closedir(dp);
	return any;
}

static int init_run(struct llm_cli *c)
{
	struct llm_diag d;
	const char *preset = llm_args_str(&c->args, "preset");
	const char *tokpath = llm_args_str(&c->args, "tokenizer");
	const char *out = llm_args_str(&c->args, "out");
	if (!tokpath)
		return llm_cli_usage(c, "--tokenizer is required");
	if (!out)
		return llm_cli_usage(c, "--out is required");
	if (c->args.noperands)
		return llm_cli_usage(c, "unexpected operand '%s'", c->args.operands[0]);
	bool exists;
	if (nonempty_dir(out, &exists) && !llm_args_flag(&c->args, "force"))
		return llm_cli_usage(c, "%s exists; --force replaces it", out);

	struct llm_model_config mc;
	bool from_file = is_config_file(preset);
	if (from_file ? llm_model_config_load(&mc, preset, &d)
		      : llm_model_config_preset(&mc, preset, &d)) {
		if (d.code == LLM_ERR_USAGE)
			return llm_cli_usage(c, "%s", d.msg);
		return llm_cli_fail(c, &d);
	}
	struct llm_bpe *tok;
	if (llm_bpe_open_file(&tok, tokpath, &d))
		return llm_cli_fail(c, &d);
	uint32_t nv = llm_bpe_vocab_size(tok);
	if (!from_file)
		mc.vocab_size = (int)nv;
	if (mc.vocab_size < (int)nv) {
		llm_bpe_free(tok);
		return llm_cli_usage(c, "%s: vocab_size %d is smaller than the tokenizer's %u",
				     preset, mc.vocab_size, nv);
	}
	uint32_t id;
	const char *eos = llm_args_str(&c->args, "eos-token");
	const char *bos = llm_args_str(&c->args, "bos-token");
	if (eos) {
		if (!llm_bpe_special_id(tok, eos, &id)) {
			llm_bpe_free(tok);
			return llm_cli_usage(c, "--eos-token: %s has no such token", tokpath);
		}
		mc.eos_token_id = (int)id;
	} else {
		/* A new model's special tokens are its tokenizer's, whatever a config says. */
		mc.eos_token_id = -1;
		static const char *const cands[] = {"<|endoftext|>", "</s>", "<|eot_id|>",
						    "<|im_end|>", NULL};
		for (size_t i = 0; cands[i]; i++)
			if (llm_bpe_special_id(tok, cands[i], &id)) {
				mc.eos_token_id = (int)id;
				break;
			}
	}
	mc.bos_token_id = -1;
	if (bos) {
		if (!llm_bpe_special_id(tok, bos, &id)) {
			llm_bpe_free(tok);
			return llm_cli_usage(c, "--bos-token: %s has no such token", tokpath);
		}
		mc.bos_token_id = (int)id;
	}
	llm_bpe_free(tok);

	struct llm_model *m;
	if (llm_model_new(&m, &mc, &d))
		return llm_cli_fail(c, &d);
	llm_model_init_random(m, (uint64_t)llm_args_int(&c->args, "seed"),
			      (float)llm_args_double(&c->args, "init-std"));
	struct llm_modeldir_save_opts so = {.tokenizer = tokpath};
	enum llm_err e = llm_modeldir_save(m, out, &so, &d);
	size_t np = llm_model_config_num_params(&mc);
	llm_model_free(m);
	if (e)
		return llm_cli_fail(c, &d);
	if (!c->quiet)
		llm_cli_error(c, "%s: %zu parameters (%s, vocabulary %d, %d layers, hidden %d)", out,
			      np, preset, mc.vocab_size, mc.num_hidden_layers, mc.hidden_size);
	return LLM_EXIT_OK;
}

const struct llm_verb llm_tune_verb_init = {
    "init",
    "create a new model directory from a preset or a config.json",
    "--tokenizer FILE --out DIR [OPTIONS]",
    "Write DIR as a Hugging Face model directory (config.json, model.safetensors,\n"
    "generation_config.json, tokenizer.json, tokenizer_config.json) holding a new Llama model\n"
    "of the preset's shape, its vocabulary the tokenizer's, its weights drawn from the seed.",
    {init_opts, llm_cli_opts_base, NULL},
    init_run,
};
