/* Every metric llm-eval computes, in one shape: a name, a vector of sufficient statistics per
 * record, the corpus score of summed vectors, the direction (higher or lower is better) and
 * the precision to show it with.  That shape is what the bootstrap and the paired tests of
 * resample.h take, so confidence intervals and baseline comparisons serve every metric alike.
 *
 * A metric set is built from the names the user lists (llm_metric_set_new); each record is
 * reduced once to one row holding every metric's vector side by side (llm_metric_set_stats),
 * so ROUGE tokenizes a record once for all its variants and a record's statistics are kept in
 * one place.  The sums of any subset of rows give that subset's scores (llm_metric_score).
 *
 * The metrics and their vectors:
 *   bleu, chrf, chrf++, ter     sacreBLEU's statistics (bleu.h, chrf.h, ter.h); the corpus
 *                               score from summed statistics, as sacreBLEU computes it; the
 *                               per-record BLEU with effective order, as sentence_bleu does
 *   rouge1..rouge9, rougeL,     (F, precision, recall) of rouge-score (rouge.h); the corpus
 *   rougeLsum                   score is the mean F
 *   exact, f1, contains,        one number per record (match.h); the corpus score is the mean
 *   regex, json, json-schema
 *   pass@K                      the unbiased estimator per record; the mean
 *   perplexity, bpb             (negative log-likelihood in nats, tokens, bytes): the corpus
 *                               perplexity is exp(Σ nll / Σ tokens), bits per byte
 *                               Σ nll / ln 2 / Σ bytes (lower is better)
 *   judge, judge_pass           a judge's score and pass (1 or 0), each a mean
 * Where the numbers come from that are not text (samples passed, log-probabilities, a judge's
 * score) is the caller's business: it puts them in the input. */
#ifndef LLM_METRICS_METRIC_H
#define LLM_METRICS_METRIC_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "metrics/bleu.h"
#include "metrics/chrf.h"
#include "metrics/rouge.h"
#include "metrics/ter.h"

/* What a metric reads from a record (llm_metric_set_needs ORs them). */
enum {
	LLM_METRIC_NEEDS_OUTPUT = 1u << 0,   /* the hypothesis */
	LLM_METRIC_NEEDS_REFS = 1u << 1,     /* one or more references */
	LLM_METRIC_NEEDS_SAMPLES = 1u << 2,  /* pass@k: samples and how many passed */
	LLM_METRIC_NEEDS_LOGPROBS = 1u << 3, /* perplexity: log-likelihood, tokens, bytes */
	LLM_METRIC_NEEDS_JUDGE = 1u << 4,    /* a judge's score and verdict */
};

/* How pass@k decides whether one sample passed when the record gives no verdicts. */
enum llm_pass_check {
	LLM_PASS_EXACT = 0, /* SQuAD exact match with a reference */
	LLM_PASS_CONTAINS = 1,
	LLM_PASS_REGEX = 2,
	LLM_PASS_JSON = 3,
	LLM_PASS_SCHEMA = 4,
};

struct llm_metric_opts {
	struct llm_bleu_opts bleu;
	struct llm_chrf_opts chrf; /* chrf++ is this with word order 2 */
	struct llm_ter_opts ter;
	struct llm_rouge_opts rouge;
	bool contains_normalize; /* contains after SQuAD normalization of both sides */
	const char *regex;	 /* the pattern of "regex" (and of pass@k's regex check) */
	bool regex_caseless;
	const char *schema_path; /* the JSON Schema file of "json-schema" */
	enum llm_pass_check pass_check;
	/* Where perplexity's numbers and the judge's come from, for their signatures
	 * ("model:REF", "model:REF|rubric:DIGEST|scale:1-10"); borrowed, they must outlive the
	 * set.  NULL: "logprobs" and "judge". */
	const char *ppl_desc;
	const char *judge_desc;
};

/* The defaults of every module (sacreBLEU's corpus defaults, rouge-score's, exact checks). */
void llm_metric_opts_default(struct llm_metric_opts *o);

/* "exact", "contains", "regex", "json", "json-schema". */
bool llm_pass_check_parse(const char *name, enum llm_pass_check *out);

struct llm_metric_set;

/* One metric of a set.  Read-only for callers. */
struct llm_metric {
	char name[32];	       /* as the user spells it: "bleu", "chrf++", "pass@10" */
	size_t n_stats;	       /* length of its vector */
	size_t offset;	       /* where its vector starts in a set's row */
	bool higher_is_better; /* false for ter, perplexity and bpb */
	int precision;	       /* decimals to show the score with */
	unsigned needs;	       /* LLM_METRIC_NEEDS_* */
	/* internal */
	int kind;
	long k;
	const struct llm_metric_set *set;
};

/* The metric names for --help and errors, comma-separated. */
const char *llm_metric_known(void);

/* Build the metrics named (each once; a repeated name is dropped).  LLM_ERR_USAGE for an
 * unknown name (listing the known ones), for regex without opts->regex, for json-schema without
 * opts->schema_path; errors of the schema file as llm_jschema_load gives them. */
enum llm_err llm_metric_set_new(struct llm_metric_set **out, const char *const *names,
				size_t n_names, const struct llm_metric_opts *opts,
				struct llm_diag *diag);
void llm_metric_set_free(struct llm_metric_set *s);

size_t llm_metric_set_count(const struct llm_metric_set *s);
const struct llm_metric *llm_metric_set_get(const struct llm_metric_set *s, size_t i);
/* The metric of that name, or NULL. */
const struct llm_metric *llm_metric_set_find(const struct llm_metric_set *s, const char *name);
/* The length of a row: every metric's vector. */
size_t llm_metric_set_row_len(const struct llm_metric_set *s);
unsigned llm_metric_set_needs(const struct llm_metric_set *s);

/* One record's inputs.  Only what the set needs must be filled. */
struct llm_metric_input {
	const char *hyp;
	size_t hyp_len;
	const char *const *refs;
	const size_t *ref_lens;
	size_t n_refs;
	/* pass@k: n samples, c of them passed.  With c < 0, the samples are checked here, each
	 * with opts->pass_check against the references. */
	long n_samples, n_passed;
	const char *const *samples;
	const size_t *sample_lens;
	/* perplexity and bpb */
	double nll; /* -Σ log p, natural log */
	double tokens, bytes;
	/* judge */
	double judge_score;
	bool judge_pass;
};

/* Fill row (llm_metric_set_row_len doubles) with every metric's statistics for one record.
 * LLM_ERR_UTF8 for text that is not UTF-8; LLM_ERR_RANGE for pass@k with fewer samples than
 * k; the diagnostic says which metric and why. */
enum llm_err llm_metric_set_stats(struct llm_metric_set *s, const struct llm_metric_input *in,
				  double *row, struct llm_diag *diag);

/* The corpus score of a metric from the sums of its vector over n records (NaN when n is 0 or
 * the statistics allow no score, such as perplexity over no tokens). */
double llm_metric_score(const struct llm_metric *m, const double *sums, size_t n);
/* The same in resample.h's shape: ctx is the struct llm_metric. */
double llm_metric_score_fn(void *ctx, const double *sums, size_t n);
/* The score of one record from its own vector, as the per-record "scores" show it: the same as
 * the corpus score of one record, except BLEU, which uses effective order (sacreBLEU's
 * sentence_bleu). */
double llm_metric_sentence(const struct llm_metric *m, const double *stats);

/* Numbers beside the score that explain it (BLEU's brevity penalty, length ratio, lengths and
 * n-gram precisions; ROUGE's mean precision and recall; TER's edits and reference length;
 * perplexity's tokens and bytes): up to max name/value pairs, their count returned. */
struct llm_metric_detail {
	char name[24];
	double value;
};
size_t llm_metric_details(const struct llm_metric *m, const double *sums, size_t n,
			  struct llm_metric_detail *out, size_t max);

/* A signature that says how the numbers were computed, so that two reports can be compared
 * only when it matches: sacreBLEU's for bleu, chrf, chrf++ and ter
 * ("nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.3"), and the same form for the
 * others ("nrefs:1|stem:no|tok:default|impl:rouge-score").  n_refs: the references per record,
 * 0 when the number varies from record to record ("nrefs:var", as sacreBLEU writes it). */
enum llm_err llm_metric_signature(const struct llm_metric *m, size_t n_refs, struct llm_buf *out,
				  struct llm_diag *diag);

#endif
