/* llm-tune export --gguf: a model directory (or a GGUF) as a llama GGUF that llama.cpp and
 * Ollama load, with the tokenizer's metadata; --gguf-lora: a PEFT adapter (as llm-tune train
 * --lora writes it, beside the base) as a llama.cpp GGUF LoRA adapter for that GGUF. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "engine/lora.h"
#include "engine/modeldir.h"
#include "tune/verbs.h"

static const struct llm_opt export_opts[] = {
    {"gguf", 'g', LLM_OPT_STRING, "FILE", "the GGUF file to write"},
    {"gguf-lora", 0, LLM_OPT_STRING, "FILE", "write DIR's PEFT adapter as a GGUF LoRA adapter"},
    {"base", 0, LLM_OPT_STRING, "DIR",
     "with --gguf-lora, the base model the adapter is for (default: DIR itself)"},
    {"f16", 0, LLM_OPT_FLAG, NULL, "store the matrices as F16 (norms stay F32)"},
    {"name", 0, LLM_OPT_STRING, "TEXT", "general.name in the file (default: the directory's name)"},
    {"tokenizer", 't', LLM_OPT_STRING, "FILE",
     "the tokenizer.json to take the vocabulary from (default: DIR/tokenizer.json)"},
    {0},
};

/* The adapter in dir (adapter_config.json, adapter_model.safetensors) on the base model base,
 * written as a llama.cpp LoRA adapter. */
static int export_lora(struct llm_cli *c, const char *out, const char *dir, const char *base)
{
	struct llm_diag d;
	struct llm_model *m;
	if (llm_modeldir_open(&m, base, &d))
		return llm_cli_fail(c, &d);
	enum llm_err e = llm_lora_load_peft(m, dir, &d);
	if (!e)
		e = llm_lora_save_gguf(m, out, &d);
	if (!e && !c->quiet)
		llm_cli_error(c, "wrote %s (LoRA r %d, alpha %g, %zu adapted matrices)", out,
			      m->lora->config.r, (double)m->lora->config.alpha,
			      m->lora->n_adapters);
	llm_model_free(m);
	return e ? llm_cli_fail(c, &d) : LLM_EXIT_OK;
}

static int export_run(struct llm_cli *c)
{
	struct llm_diag d;
	const char *out = llm_args_str(&c->args, "gguf");
	const char *lora_out = llm_args_str(&c->args, "gguf-lora");
	if (!out && !lora_out)
		return llm_cli_usage(c, "--gguf or --gguf-lora is required");
	if (llm_args_given(&c->args, "base") && !lora_out)
		return llm_cli_usage(c, "--base goes with --gguf-lora");
	if (c->args.noperands != 1)
		return llm_cli_usage(c, "one model directory is needed");
	const char *dir = c->args.operands[0];
	if (lora_out) {
		const char *base = llm_args_str(&c->args, "base");
		int status = export_lora(c, lora_out, dir, base ? base : dir);
		if (status || !out)
			return status;
	}
	struct llm_model *m;
	if (llm_modeldir_open(&m, dir, &d))
		return llm_cli_fail(c, &d);
	char tokpath[4096], name[256];
	const char *tok = llm_args_str(&c->args, "tokenizer");
	if (!tok) {
		snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", dir);
		if (access(tokpath, F_OK) == 0)
			tok = tokpath;
		else if (!c->quiet)
			llm_cli_error(
			    c, "warning: %s: no tokenizer.json; the GGUF has no vocabulary", dir);
	}
	const char *nm = llm_args_str(&c->args, "name");
	if (!nm) {
		size_t n = strlen(dir);
		while (n > 1 && dir[n - 1] == '/')
			n--;
		size_t s = n;
		while (s > 0 && dir[s - 1] != '/')
			s--;
		snprintf(name, sizeof name, "%.*s", (int)(n - s), dir + s);
		nm = name;
	}
	struct llm_gguf_export_opts o = {
	    .tokenizer = tok, .name = nm, .f16 = llm_args_flag(&c->args, "f16")};
	enum llm_err e = llm_modeldir_export_gguf(m, out, &o, &d);
	llm_model_free(m);
	if (e)
		return llm_cli_fail(c, &d);
	if (!c->quiet)
		llm_cli_error(c, "wrote %s (%s)", out, o.f16 ? "F16" : "F32");
	return LLM_EXIT_OK;
}

const struct llm_verb llm_tune_verb_export = {
    "export",
    "write a model as a llama GGUF file for llama.cpp and Ollama",
    "--gguf FILE | --gguf-lora FILE [OPTIONS] DIR",
    "Read the model directory DIR (or a .gguf file) and write FILE in GGUF v3 with the llama\n"
    "architecture's keys and tensor names, and the vocabulary, merges and special tokens of its\n"
    "tokenizer.json, so that llama.cpp loads and runs it.  With --gguf-lora, write the PEFT\n"
    "adapter in DIR as a llama.cpp LoRA adapter for the base model's GGUF.",
    {export_opts, llm_cli_opts_base, NULL},
    export_run,
};
