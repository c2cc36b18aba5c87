/* llm-prep pack: tokenized documents into fixed-length training sequences, boundaries kept. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data/pack.h"
#include "prep/verbs.h"
#include "text/tokfile.h"

static int run_pack(struct llm_cli *c)
{
	const char *out = llm_args_str(&c->args, "out");
	if (!out)
		return llm_cli_usage(c, "--out FILE is required");
	if (c->args.noperands != 1)
		return llm_cli_usage(c, "give exactly one token file (written by llm-prep tokenize "
					"--out)");
	const char *path = c->args.operands[0];
	if (!strcmp(path, "-"))
		return llm_cli_usage(c, "a token file is read from a file, not standard input");
	struct llm_pack_opts o = {
	    .seq_len = (uint32_t)llm_args_int(&c->args, "seq-len"),
	    .pad_id = (uint32_t)llm_args_int(&c->args, "pad-id"),
	    .use_eot = llm_args_given(&c->args, "eot-id"),
	    .eot_id = (uint32_t)llm_args_int(&c->args, "eot-id"),
	    .strategy =
		strcmp(llm_args_str(&c->args, "strategy"), "ffd") ? LLM_PACK_GREEDY : LLM_PACK_FFD,
	};
	struct llm_diag d;
	struct llm_tokfile tf;
	if (llm_tokfile_open(&tf, path, &d))
		return llm_cli_fail(c, &d);
	struct llm_pack_stats st;
	enum llm_err e = llm_pack(&tf, &o, out, &st, &d);
	llm_tokfile_close(&tf);
	if (e)
		return llm_cli_fail(c, &d);
	uint64_t slots = st.sequences * o.seq_len;
	double pad = slots ? (double)st.padding / (double)slots : 0.0;
	if (!c->quiet)
		fprintf(
		    stderr,
		    "%s: pack: %llu documents into %llu sequences of %u tokens, %.2f%% padding, "
		    "%llu split, %llu empty\n",
		    c->tool->name, (unsigned long long)st.documents,
		    (unsigned long long)st.sequences, o.seq_len, 100.0 * pad,
		    (unsigned long long)st.split, (unsigned long long)st.empty);
	const char *report = llm_args_str(&c->args, "report");
	if (!report)
		return 0;
	json_t *j = json_pack(
	    "{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "input", path, "out", out,
	    "strategy", o.strategy == LLM_PACK_FFD ? "ffd" : "greedy", "seq_len",
	    (json_int_t)o.seq_len, "read", (json_int_t)st.documents, "written",
	    (json_int_t)(st.documents - st.empty), "dropped", (json_int_t)st.empty, "split",
	    (json_int_t)st.split, "pieces", (json_int_t)st.pieces, "sequences",
	    (json_int_t)st.sequences, "tokens", (json_int_t)st.tokens, "padding",
	    (json_int_t)st.padding, "padding_fraction", pad, "efficiency", slots ? 1.0 - pad : 0.0);
	int status = 0;
	if (!j) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	if (llm_cli_write_json(c, report, j, &d))
		status = llm_cli_fail(c, &d);
	json_decref(j);
	return status;
}

static const struct llm_opt pack_opts[] = {
    {"out", 'o', LLM_OPT_STRING, "FILE",
     "the packed token file; FILE.idx, FILE.seg and FILE.seg.idx are written beside it"},
    {"seq-len", 'L', LLM_OPT_INT, "N", "tokens per sequence", "2048", .min = 1, .max = 1 << 30},
    {"strategy", 0, LLM_OPT_CHOICE, "HOW",
     "keep the input order, or first-fit decreasing (less padding)", "greedy", "greedy|ffd"},
    {"pad-id", 0, LLM_OPT_INT, "ID", "the token that fills the end of a sequence", "0", .min = 0,
     .max = 4294967295.0},
    {"eot-id", 0, LLM_OPT_INT, "ID", "append this end-of-text token after each document", .min = 0,
     .max = 4294967295.0},
    {"report", 0, LLM_OPT_STRING, "FILE", "write the counts and the padding fraction as JSON"},
    {0},
};

const struct llm_verb llm_prep_verb_pack = {
    "pack",
    "pack token files into fixed-length sequences, boundaries kept",
    "--out FILE [OPTIONS] TOKFILE",
    "Packs the documents of a token file (llm-prep tokenize --out) into sequences of exactly\n"
    "--seq-len tokens, and writes beside them FILE.seg: per token, the number of its\n"
    "document within the sequence (1, 2, ...; 0 for padding), for block-diagonal attention.\n"
    "A document longer than a sequence is cut into pieces, each placed as a document.",
    {pack_opts, llm_cli_opts_base},
    run_pack,
};
