/* llm-eval: score model outputs against references with the field's metrics, each computed as
 * its reference implementation computes it, and summarize them for people and for CI.  This
 * file holds the options and the run; the parts are in cmd/eval/ (eval.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eval/eval.h"

static const struct llm_opt eval_opts[] = {
    {"metrics", 'm', LLM_OPT_STRING, "LIST",
     "the metrics, comma-separated: bleu, chrf, chrf++, ter, rouge1, rouge2, "
     "rougeL, rougeLsum, exact, f1, contains, regex, json, json-schema, pass@k, perplexity, "
     "judge",
     "bleu", .repeat = true},
    {"output-field", 0, LLM_OPT_STRING, "NAME", "the field with the model's answer", "output"},
    {"reference-field", 0, LLM_OPT_STRING, "NAME",
     "the field with the reference: a string or an array of strings", "reference"},
    {"id-field", 0, LLM_OPT_STRING, "NAME",
     "the record id that pairs records with a --baseline (when absent: derived from the "
     "record's other fields)",
     "id"},
    {"scores-field", 0, LLM_OPT_STRING, "NAME", "the field the scores are written to", "scores"},
    {"bleu-tokenize", 0, LLM_OPT_CHOICE, "NAME", "BLEU's tokenizer", "13a", "13a|none|intl|char"},
    {"bleu-smooth", 0, LLM_OPT_CHOICE, "METHOD", "BLEU's smoothing", "exp", "exp|floor|add-k|none"},
    {"bleu-smooth-value", 0, LLM_OPT_DOUBLE, "X",
     "the value of floor (default 0.1) and add-k (default 1) smoothing", .min = 0, .max = 1e9},
    {"bleu-max-order", 0, LLM_OPT_INT, "N", "BLEU's largest n-gram order", "4", .min = 1, .max = 8},
    {"lowercase", 0, LLM_OPT_FLAG, NULL, "lowercase before BLEU and chrF (sacreBLEU's -lc)"},
    {"chrf-char-order", 0, LLM_OPT_INT, "N", "chrF's character n-gram order", "6", .min = 1,
     .max = 20},
    {"chrf-word-order", 0, LLM_OPT_INT, "N", "chrf's word n-gram order (chrf++ uses 2)", "0",
     .min = 0, .max = 20},
    {"chrf-beta", 0, LLM_OPT_DOUBLE, "B", "chrF's weight of recall against precision", "2",
     .min = 0.001, .max = 1000},
    {"chrf-whitespace", 0, LLM_OPT_FLAG, NULL, "keep whitespace in chrF's character n-grams"},
    {"chrf-eps-smoothing", 0, LLM_OPT_FLAG, NULL,
     "chrF with sacreBLEU's epsilon smoothing instead of chrF++.py's"},
    {"ter-normalized", 0, LLM_OPT_FLAG, NULL, "TER with tercom's normalization"},
    {"ter-no-punct", 0, LLM_OPT_FLAG, NULL, "TER without punctuation"},
    {"ter-asian-support", 0, LLM_OPT_FLAG, NULL, "TER splitting Asian characters"},
    {"ter-case-sensitive", 0, LLM_OPT_FLAG, NULL, "TER keeping case"},
    {"rouge-stemmer", 0, LLM_OPT_FLAG, NULL,
     "stem ROUGE tokens with NLTK's Porter stemmer (rouge-score's use_stemmer)"},
    {"rouge-tokenizer", 0, LLM_OPT_CHOICE, "NAME",
     "rouge-score's tokenizer, or one that keeps Unicode letters and digits", "default",
     "default|unicode"},
    {"contains-normalize", 0, LLM_OPT_FLAG, NULL,
     "contains compares SQuAD-normalized text instead of bytes"},
    {"regex", 0, LLM_OPT_STRING, "PATTERN",
     "the regex metric's pattern (PCRE2, searched anywhere in the output)"},
    {"regex-ignore-case", 0, LLM_OPT_FLAG, NULL, "the pattern ignores case"},
    {"schema", 0, LLM_OPT_STRING, "FILE", "the json-schema metric's JSON Schema"},
    {"pass-k", 0, LLM_OPT_STRING, "LIST", "the k values of pass@k, comma-separated", "1",
     .repeat = true},
    {"pass-check", 0, LLM_OPT_CHOICE, "CHECK",
     "how pass@k decides a sample of outputs passed when the record has no verdicts", "exact",
     "exact|contains|regex|json|json-schema"},
    {"outputs-field", 0, LLM_OPT_STRING, "NAME", "pass@k: the array of sampled outputs", "outputs"},
    {"results-field", 0, LLM_OPT_STRING, "NAME", "pass@k: the array of verdicts (booleans)",
     "results"},
    {"passed-field", 0, LLM_OPT_STRING, "NAME", "pass@k: the number of samples that passed",
     "passed"},
    {"samples-field", 0, LLM_OPT_STRING, "NAME",
     "pass@k: the number of samples, with --passed-field and no outputs array", "n"},
    {"logprobs-field", 0, LLM_OPT_STRING, "NAME",
     "perplexity: the output's token log-probabilities, as llm-gen writes them", "logprobs"},
    {"model", 0, LLM_OPT_STRING, "REF",
     "perplexity: score the text with this model (a directory, GGUF file or /v1 URL)"},
    {"model-name", 0, LLM_OPT_STRING, "ID", "the model id to send to the --model server"},
    {"text-field", 0, LLM_OPT_STRING, "NAME",
     "perplexity with --model: the text to score (the output when a record has none)", "text"},
    {"judge-model", 0, LLM_OPT_STRING, "REF", "judge: the model that grades each record"},
    {"judge-model-name", 0, LLM_OPT_STRING, "ID", "the model id to send to the judge server"},
    {"rubric", 0, LLM_OPT_STRING, "FILE",
     "judge: the prompt, with {{output}}, {{reference}} and other {{field}}s"},
    {"judge-scale", 0, LLM_OPT_STRING, "MIN-MAX", "judge: the range of the score", "1-10"},
    {"judge-pass", 0, LLM_OPT_DOUBLE, "X",
     "judge: the lowest passing score (default: the middle of the scale)", .min = -1e9, .max = 1e9},
    {"judge-max-tokens", 0, LLM_OPT_INT, "N", "judge: the longest answer", "512", .min = 1,
     .max = 1000000},
    {"judge-field", 0, LLM_OPT_STRING, "NAME",
     "judge: the field its prompt, answer, score, pass and reason are written to", "judge"},
    {"concurrency", 0, LLM_OPT_INT, "N", "requests in flight to each model", "4", .min = 1,
     .max = 1024},
    {"threads", 0, LLM_OPT_INT, "N", "threads of the embedded engine (0: all cores)", "0", .min = 0,
     .max = 1024},
    {"cache", 0, LLM_OPT_STRING, "DIR",
     "the models' answer cache (default $LLMOPS_HOME/cache/eval)"},
    {"no-cache", 0, LLM_OPT_FLAG, NULL, "neither read nor write the answer cache"},
    {0},
};

static const struct llm_opt summary_opts[] = {
    {"report", 0, LLM_OPT_STRING, "FILE",
     "write the summary as JSON: scores, intervals, signatures, slices, per-record statistics"},
    {"by", 0, LLM_OPT_STRING, "FIELD", "also score each value of this field apart", .repeat = true},
    {"bootstrap", 0, LLM_OPT_INT, "N",
     "resamples for the confidence intervals and the paired tests (0: none)", "1000", .min = 0,
     .max = 1000000},
    {"seed", 0, LLM_OPT_INT, "N", "the seed of the resampling", "12345", .min = 0, .max = 9.0e18},
    {"summary", 0, LLM_OPT_FLAG, NULL,
     "print the summary table on stderr even when it is not a terminal"},
    {"fail-under", 0, LLM_OPT_STRING, "METRIC=VALUE",
     "exit 1 when the metric's score is below VALUE", .repeat = true},
    {"fail-over", 0, LLM_OPT_STRING, "METRIC=VALUE",
     "exit 1 when the metric's score is above VALUE (for ter, perplexity, bpb)", .repeat = true},
    {"baseline", 0, LLM_OPT_STRING, "REPORT",
     "compare with an earlier --report, record by record; exit 1 on a significant regression"},
    {"alpha", 0, LLM_OPT_DOUBLE, "P", "the significance level of a regression", "0.05", .min = 1e-9,
     .max = 1},
    {"baseline-test", 0, LLM_OPT_CHOICE, "TEST", "the paired test that decides a regression",
     "randomization", "randomization|bootstrap"},
    {"junit", 0, LLM_OPT_STRING, "FILE",
     "write JUnit XML: a test case per threshold and per baseline comparison"},
    {"markdown", 0, LLM_OPT_STRING, "FILE",
     "write the summary as a Markdown table (also appended to $GITHUB_STEP_SUMMARY)"},
    {0},
};

/* Parse a --judge-scale "MIN-MAX" (either may be negative or fractional). */
static bool parse_scale(const char *s, double *lo, double *hi)
{
	char *end;
	*lo = strtod(s, &end);
	if (end == s || *end != '-')
		return false;
	const char *t = end + 1;
	*hi = strtod(t, &end);
	return end != t && !*end && *lo < *hi;
}

/* Read the metric options into ev->mopts.  Returns an exit status. */
static int metric_options(struct eval *ev)
{
	struct llm_cli *c = ev->c;
	struct llm_metric_opts *o = &ev->mopts;
	struct llm_diag d;
	llm_metric_opts_default(o);
	if (llm_sacretok_parse(llm_args_str(&c->args, "bleu-tokenize"), &o->bleu.tokenize, &d) ||
	    llm_bleu_smooth_parse(llm_args_str(&c->args, "bleu-smooth"), &o->bleu.smooth, &d))
		return llm_cli_usage(c, "%s", d.msg);
	if (llm_args_given(&c->args, "bleu-smooth-value"))
		o->bleu.smooth_value = llm_args_double(&c->args, "bleu-smooth-value");
	o->bleu.max_order = (int)llm_args_int(&c->args, "bleu-max-order");
	o->bleu.lowercase = llm_args_flag(&c->args, "lowercase");
	o->chrf.lowercase = o->bleu.lowercase;
	o->chrf.char_order = (int)llm_args_int(&c->args, "chrf-char-order");
	o->chrf.word_order = (int)llm_args_int(&c->args, "chrf-word-order");
	o->chrf.beta = llm_args_double(&c->args, "chrf-beta");
	o->chrf.whitespace = llm_args_flag(&c->args, "chrf-whitespace");
	o->chrf.eps_smoothing = llm_args_flag(&c->args, "chrf-eps-smoothing");
	o->ter.normalized = llm_args_flag(&c->args, "ter-normalized");
	o->ter.no_punct = llm_args_flag(&c->args, "ter-no-punct");
	o->ter.asian_support = llm_args_flag(&c->args, "ter-asian-support");
	o->ter.case_sensitive = llm_args_flag(&c->args, "ter-case-sensitive");
	o->rouge.stemmer = llm_args_flag(&c->args, "rouge-stemmer");
	o->rouge.unicode = !strcmp(llm_args_str(&c->args, "rouge-tokenizer"), "unicode");
	o->contains_normalize = llm_args_flag(&c->args, "contains-normalize");
	o->regex = llm_args_str(&c->args, "regex");
	o->regex_caseless = llm_args_flag(&c->args, "regex-ignore-case");
	o->schema_path = llm_args_str(&c->args, "schema");
	llm_pass_check_parse(llm_args_str(&c->args, "pass-check"), &o->pass_check);
	const char *scale = llm_args_str(&c->args, "judge-scale");
	if (!parse_scale(scale, &ev->judge_min, &ev->judge_max))
		return llm_cli_usage(c, "--judge-scale: expected MIN-MAX with MIN < MAX, not '%s'",
				     scale);
	ev->judge_pass = llm_args_given(&c->args, "judge-pass")
			     ? llm_args_double(&c->args, "judge-pass")
			     : (ev->judge_min + ev->judge_max) / 2;
	return 0;
}

/* Append a name to a growing list; false when out of memory. */
static bool push(char ***v, size_t *n, const char *s)
{
	char **w = realloc(*v, (*n + 2) * sizeof *w);
	if (!w)
		return false;
	*v = w;
	if (!(w[*n] = strdup(s)))
		return false;
	w[++*n] = NULL;
	return true;
}

/* The metric names of --metrics with the families spelled out: pass@k becomes one pass@K per
 * --pass-k, perplexity brings bpb, judge brings judge_pass.  Returns an exit status. */
static int metric_names(struct eval *ev, char ***out, size_t *nout)
{
	struct llm_cli *c = ev->c;
	char **items = NULL, **ks = NULL, **names = NULL;
	size_t n = 0, nk = 0, nn = 0;
	int st = 0;
	if (llm_args_list(&c->args, "metrics", &items, &n) ||
	    llm_args_list(&c->args, "pass-k", &ks, &nk)) {
		st = LLM_EXIT_IO;
		goto out;
	}
	if (!n) {
		st = llm_cli_usage(c, "--metrics: no metric named");
		goto out;
	}
	for (size_t i = 0; i < n && !st; i++) {
		bool ok = true;
		if (!strcmp(items[i], "pass@k")) {
			for (size_t j = 0; j < nk && ok; j++) {
				char name[32];
				snprintf(name, sizeof name, "pass@%s", ks[j]);
				ok = push(&names, &nn, name);
			}
		} else if (!strcmp(items[i], "perplexity")) {
			ok = push(&names, &nn, "perplexity") && push(&names, &nn, "bpb");
		} else if (!strcmp(items[i], "judge")) {
			ok = push(&names, &nn, "judge") && push(&names, &nn, "judge_pass");
		} else {
			ok = push(&names, &nn, items[i]);
		}
		if (!ok)
			st = LLM_EXIT_IO;
	}
out:
	if (st == LLM_EXIT_IO)
		llm_cli_error(c, "out of memory");
	llm_strv_free(items);
	llm_strv_free(ks);
	if (st) {
		llm_strv_free(names);
		names = NULL;
		nn = 0;
	}
	*out = names;
	*nout = nn;
	return st;
}

static void eval_free(struct eval *ev)
{
	eval_models_close(ev);
	llm_metric_set_free(ev->set);
	free(ev->rows);
	free(ev->id_of);
	free(ev->row_tmp);
	strtab_free(&ev->ids);
	for (size_t i = 0; i < ev->nby; i++) {
		strtab_free(&ev->by[i].values);
		free(ev->by[i].of);
	}
	free(ev->by);
	free(ev->thr);
	json_decref(ev->baseline);
	llm_buf_free(&ev->hyp);
	llm_buf_free(&ev->scratch);
	llm_buf_free(&ev->line);
	llm_buf_free(&ev->idbuf);
	strlist_free(&ev->refs);
	strlist_free(&ev->outs);
	llm_buf_free(&ev->ppl_desc);
	llm_buf_free(&ev->judge_desc);
	llm_buf_free(&ev->ppl_id);
	llm_buf_free(&ev->judge_id);
}

static int run_eval(struct llm_cli *c)
{
	struct eval ev = {.c = c};
	llm_buf_init(&ev.hyp, 0);
	llm_buf_init(&ev.scratch, 0);
	llm_buf_init(&ev.line, 0);
	llm_buf_init(&ev.idbuf, 0);
	llm_buf_init(&ev.refs.text, 0);
	llm_buf_init(&ev.outs.text, 0);
	llm_buf_init(&ev.ppl_desc, 0);
	llm_buf_init(&ev.judge_desc, 0);
	llm_buf_init(&ev.ppl_id, 0);
	llm_buf_init(&ev.judge_id, 0);
	struct llm_args *a = &c->args;
	ev.output_field = llm_args_str(a, "output-field");
	ev.reference_field = llm_args_str(a, "reference-field");
	ev.id_field = llm_args_str(a, "id-field");
	ev.scores_field = llm_args_str(a, "scores-field");
	ev.text_field = llm_args_str(a, "text-field");
	ev.outputs_field = llm_args_str(a, "outputs-field");
	ev.results_field = llm_args_str(a, "results-field");
	ev.passed_field = llm_args_str(a, "passed-field");
	ev.samples_field = llm_args_str(a, "samples-field");
	ev.logprobs_field = llm_args_str(a, "logprobs-field");
	ev.judge_field = llm_args_str(a, "judge-field");
	ev.resamples = (int)llm_args_int(a, "bootstrap");
	ev.seed = (uint64_t)llm_args_int(a, "seed");
	ev.alpha = llm_args_double(a, "alpha");
	ev.use_randomization = !strcmp(llm_args_str(a, "baseline-test"), "randomization");
	ev.concurrency = (int)llm_args_int(a, "concurrency");
	ev.judge_max_tokens = llm_args_int(a, "judge-max-tokens");
	/* A derived id leaves out what llm-gen and llm-eval write, so that the records of two
	 * systems (or of a run and its baseline) derive the same ids. */
	const char *written[] = {
	    ev.output_field,  ev.scores_field, ev.judge_field,	 ev.outputs_field,
	    ev.results_field, ev.passed_field, ev.samples_field, ev.logprobs_field,
	    "usage",	      "latency_ms",    "ttft_ms",	 "model",
	    "finish_reason",  "logprobs",      "cached",	 "error"};
	for (size_t i = 0; i < sizeof written / sizeof *written; i++)
		ev.exclude[ev.nexclude++] = written[i];

	char **names = NULL;
	size_t nnames = 0;
	int st = metric_options(&ev);
	if (!st)
		st = metric_names(&ev, &names, &nnames);
	if (!st)
		st = eval_models_describe(&ev);
	struct llm_diag d;
	if (!st && llm_metric_set_new(&ev.set, (const char *const *)names, nnames, &ev.mopts, &d))
		st = d.code == LLM_ERR_USAGE ? llm_cli_usage(c, "%s", d.msg) : llm_cli_fail(c, &d);
	llm_strv_free(names);
	if (!st) {
		ev.nm = llm_metric_set_count(ev.set);
		ev.row_len = llm_metric_set_row_len(ev.set);
		ev.needs = llm_metric_set_needs(ev.set);
		if (!(ev.row_tmp = calloc(ev.row_len ? ev.row_len : 1, sizeof *ev.row_tmp))) {
			llm_cli_error(c, "out of memory");
			st = LLM_EXIT_IO;
		}
	}
	size_t nby = 0;
	char *const *by = llm_args_strs(a, "by", &nby);
	if (!st && nby && !(ev.by = calloc(nby, sizeof *ev.by))) {
		llm_cli_error(c, "out of memory");
		st = LLM_EXIT_IO;
	}
	for (size_t i = 0; !st && i < nby; i++)
		ev.by[ev.nby++].field = by[i];
	if (!st)
		st = eval_summary_prepare(&ev);
	if (!st)
		st = eval_models_open(&ev);
	struct llm_cli_in in;
	if (!st && !(st = llm_cli_in_open(c, &in, true))) {
		if (ev.ppl_model || ev.judge_model) {
			st = eval_with_models(&ev, &in);
		} else {
			struct llm_record *rec;
			int r;
			while ((r = llm_cli_in_next(c, &in, &rec)) > 0)
				if (eval_record(&ev, &in, rec, NULL) < 0) {
					r = -1;
					break;
				}
			st = r < 0 ? in.status : 0;
		}
		llm_cli_in_close(&in);
		if (!st)
			st = eval_summary(&ev, &in);
		/* As llm-gen: the records a model failed on (after its retries) were dropped or
		 * kept as --on-error says, the others summarized, and the run still ends with 3. */
		if (ev.model_failed && (st == 0 || st == LLM_EXIT_NEGATIVE)) {
			llm_cli_error(c, "%llu record%s failed at the model",
				      (unsigned long long)ev.model_failed,
				      ev.model_failed == 1 ? "" : "s");
			st = LLM_EXIT_IO;
		}
	}
	eval_free(&ev);
	return st;
}

static const struct llm_verb eval_verb = {
    "eval",
    "Score model outputs against references; summarize for people and for CI.",
    "[OPTIONS] [FILE...]",
    "Reads records with an output and a reference (a string or an array of strings) and\n"
    "writes each record unchanged with a scores object added.  Corpus scores (BLEU, chrF\n"
    "and TER from summed statistics, as sacreBLEU computes them; the others as means) with\n"
    "bootstrap 95% confidence intervals go to --report, a table on stderr when it is a\n"
    "terminal, --markdown and --junit.  --fail-under, --fail-over and --baseline turn the\n"
    "run into a CI check (exit 1).",
    {eval_opts, summary_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base},
    run_eval,
};

static const struct llm_tool tool = {
    "llm-eval", "eval",	    "Score model outputs against references; summarize for CI.",
    NULL,	&eval_verb,
};

int main(int argc, char **argv)
{
	return llm_cli_main(&tool, argc, argv);
}
