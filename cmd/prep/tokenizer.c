/* llm-prep tokenizer train: learn a byte-level BPE from JSONL text, write a tokenizer.json. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/json.h"
#include "prep/verbs.h"
#include "text/bpe_train.h"

/* Split "a,b,c" into its non-empty parts (in place in a copy the caller frees). */
static size_t split_specials(char *s, const char **out, size_t max)
{
	size_t n = 0;
	while (s && *s && n < max) {
		char *comma = strchr(s, ',');
		if (comma)
			*comma = '\0';
		if (*s)
			out[n++] = s;
		s = comma ? comma + 1 : NULL;
	}
	return n;
}

static int train(struct llm_cli *c)
{
	const char *out = llm_args_str(&c->args, "out");
	if (!out)
		return llm_cli_usage(c, "--out FILE is required (the tokenizer.json to write)");
	const char *field = llm_args_str(&c->args, "text-field");
	const char *pattern = llm_args_str(&c->args, "pattern");
	if (!strcmp(pattern, "cl100k"))
		pattern = LLM_BPE_PATTERN_CL100K;
	else if (!strcmp(pattern, "gpt2"))
		pattern = LLM_BPE_PATTERN_GPT2;
	char *spec = strdup(llm_args_str(&c->args, "special-tokens"));
	const char **specials = calloc(spec ? strlen(spec) / 2 + 2 : 1, sizeof *specials);
	if (!spec || !specials) {
		free(spec);
		free(specials);
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	struct llm_bpe_train_opts o = {
	    .vocab_size = (uint32_t)llm_args_int(&c->args, "vocab-size"),
	    .min_frequency = (uint64_t)llm_args_int(&c->args, "min-frequency"),
	    .pattern = pattern,
	    .specials = specials,
	    .nspecials = split_specials(spec, specials, strlen(spec) / 2 + 1),
	    .max_words = (uint64_t)llm_args_int(&c->args, "max-words"),
	};
	struct llm_diag d;
	struct llm_bpe_trainer *t;
	enum llm_err e = llm_bpe_trainer_new(&t, &o, &d);
	free(specials);
	free(spec);
	if (e == LLM_ERR_USAGE)
		return llm_cli_usage(c, "%s", d.msg);
	if (e)
		return llm_cli_fail(c, &d);

	struct llm_cli_in in;
	int st = llm_cli_in_open(c, &in, false);
	if (st) {
		llm_bpe_trainer_free(t);
		return st;
	}
	struct llm_buf text;
	llm_buf_init(&text, 0);
	struct llm_record *rec;
	int r;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		struct llm_diag why;
		const struct llm_json_member *m = llm_record_string_field(rec, field, &why);
		if (!m) {
			if (!llm_cli_in_reject(c, &in, rec, &why)) {
				r = -1;
				break;
			}
			continue;
		}
		llm_buf_clear(&text);
		e = llm_json_string_decode(m->val, m->val_len, &text);
		if (!e)
			e = llm_bpe_trainer_feed(t, text.data, text.len, &d);
		if (e) {
			if (e == LLM_ERR_NOMEM)
				llm_diag_set(&d, e, NULL, 0, "out of memory");
			in.status = llm_cli_fail(c, &d);
			r = -1;
			break;
		}
	}
	llm_buf_free(&text);
	st = r < 0 ? in.status : 0;
	llm_cli_in_close(&in);
	if (!st && llm_bpe_trainer_train(t, &d))
		st = llm_cli_fail(c, &d);
	json_t *j = st ? NULL : llm_bpe_trainer_json(t);
	if (!st && !j) {
		llm_cli_error(c, "out of memory");
		st = LLM_EXIT_IO;
	}
	if (j && llm_cli_write_json(c, out, j, &d))
		st = llm_cli_fail(c, &d);
	json_decref(j);
	struct llm_bpe_train_stats s;
	llm_bpe_trainer_stats(t, &s);
	llm_bpe_trainer_free(t);
	if (st)
		return st;
	if (!c->quiet)
		fprintf(
		    stderr,
		    "%s: tokenizer train: %llu records, %llu words (%llu distinct), %llu merges, "
		    "vocabulary %llu\n",
		    c->tool->name, (unsigned long long)in.records, (unsigned long long)s.words,
		    (unsigned long long)s.distinct_words, (unsigned long long)s.merges,
		    (unsigned long long)s.vocab);
	const char *report = llm_args_str(&c->args, "report");
	if (report) {
		json_t *rep = llm_cli_in_report(&in);
		json_t *more = json_pack(
		    "{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "out", out, "written",
		    (json_int_t)in.records, "dropped", (json_int_t)in.bad, "words",
		    (json_int_t)s.words, "distinct_words", (json_int_t)s.distinct_words,
		    "pruned_words", (json_int_t)s.pruned_words, "pruned_count",
		    (json_int_t)s.pruned_count, "specials_seen", (json_int_t)s.specials_seen,
		    "merges", (json_int_t)s.merges, "vocab_size", (json_int_t)s.vocab);
		if (!rep || !more || json_object_update(rep, more)) {
			llm_cli_error(c, "out of memory");
			st = LLM_EXIT_IO;
		} else if (llm_cli_write_json(c, report, rep, &d)) {
			st = llm_cli_fail(c, &d);
		}
		json_decref(rep);
		json_decref(more);
	}
	return st;
}

static int run_tokenizer(struct llm_cli *c)
{
	if (!c->args.noperands)
		return llm_cli_usage(c, "a sub-verb is needed: train");
	if (strcmp(c->args.operands[0], "train"))
		return llm_cli_usage(c, "unknown sub-verb '%s' (sub-verbs: train)",
				     c->args.operands[0]);
	/* The files are the operands after the sub-verb. */
	memmove(c->args.operands, c->args.operands + 1,
		c->args.noperands * sizeof *c->args.operands);
	c->args.noperands--;
	return train(c);
}

static const struct llm_opt tokenizer_opts[] = {
    {"out", 'o', LLM_OPT_STRING, "FILE", "the tokenizer.json to write"},
    {"text-field", 0, LLM_OPT_STRING, "FIELD", "the field that holds the text", "text"},
    {"vocab-size", 'V', LLM_OPT_INT, "N",
     "the vocabulary size to reach: special tokens, 256 byte tokens and the merges", "32000",
     .min = 1, .max = 1 << 30},
    {"min-frequency", 0, LLM_OPT_INT, "N", "stop when the most frequent pair is rarer than N", "2",
     .min = 0, .max = 1e18},
    {"special-tokens", 0, LLM_OPT_STRING, "LIST",
     "comma-separated special tokens, given the first ids and never split", "<|endoftext|>"},
    {"pattern", 0, LLM_OPT_STRING, "REGEX",
     "pre-splitting pattern: cl100k, gpt2 or a PCRE2 regular expression", "cl100k"},
    {"max-words", 0, LLM_OPT_INT, "N",
     "distinct words kept while counting; the rarest are pruned past it", "5000000", .min = 1,
     .max = 4e9},
    {"report", 0, LLM_OPT_STRING, "FILE", "write the counts as JSON to FILE"},
    {0},
};

const struct llm_verb llm_prep_verb_tokenizer = {
    "tokenizer",
    "train a byte-level BPE tokenizer (tokenizer.json)",
    "train --out FILE [OPTIONS] [FILE...]",
    "train: learns a byte-level BPE from the text of the records, as Hugging Face\n"
    "tokenizers' BpeTrainer does, and writes a tokenizer.json that Hugging Face tokenizers,\n"
    "transformers and llm-prep tokenize read.",
    {tokenizer_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base},
    run_tokenizer,
};
