/* llm-eval's parts, shared by the files of cmd/eval: the state of one run, reading a record's
 * fields into a metric input (input.c), asking models for log-probabilities and judgements
 * (model.c), and the summary in its forms: the report, the table, Markdown, JUnit, the
 * thresholds and the baseline comparison (summary.c). */
#ifndef LLM_CMD_EVAL_H
#define LLM_CMD_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cli.h"
#include "core/buf.h"
#include "metrics/metric.h"
#include "metrics/resample.h"

struct llm_backend;
struct llm_cache;
struct llm_prompt_template;

/* Interned strings: record ids and slice values, each stored once, looked up by hash.  The
 * bytes live in large blocks, so that 100,000 ids cost a few allocations, not 100,000. */
struct strtab {
	char **s;
	uint32_t *uses; /* per string: how often record_id met it (for "#k" suffixes) */
	uint64_t *hash; /* per string */
	size_t *len;	/* per string */
	size_t n, cap;
	uint64_t *slot; /* open addressing: index + 1 and the hash's high half, 0 empty */
	size_t nslots;
	char **blocks; /* the string bytes */
	size_t nblocks, block_left;
	char *block_at;
};
/* The index of s (len bytes), added when absent; -1 when out of memory. */
long strtab_intern(struct strtab *t, const char *s, size_t len, bool *added);
/* The same for a hash from strtab_prefetch, which starts loading the slot of s from memory so
 * that this call, a little later, does not wait for it. */
uint64_t strtab_prefetch(const struct strtab *t, const char *s, size_t len);
long strtab_intern_hashed(struct strtab *t, const char *s, size_t len, uint64_t hash, bool *added);
long strtab_find(const struct strtab *t, const char *s);
void strtab_free(struct strtab *t);

/* Decoded strings side by side in one buffer, as pointer and length lists for the metrics. */
struct strlist {
	struct llm_buf text;
	size_t *off, *len;
	const char **ptr;
	size_t n, cap;
};
void strlist_free(struct strlist *l);

/* One --by field: the slice of every record. */
struct slicing {
	const char *field;
	struct strtab values;
	uint32_t *of; /* per record */
};

/* A threshold of --fail-under (the score must be at least value) or --fail-over (at most). */
struct threshold {
	const struct llm_metric *m;
	double value;
	bool over;
};

/* What a model said about one record (model.c). */
struct model_extra {
	bool ppl; /* nll, tokens and bytes came from --model */
	double nll, tokens, bytes;
	bool judged;
	char *judge_prompt, *judge_answer, *judge_reason;
	double judge_score;
	bool judge_pass;
};
void model_extra_free(struct model_extra *x);

struct eval {
	struct llm_cli *c;
	struct llm_metric_opts mopts;
	struct llm_metric_set *set;
	size_t nm, row_len;
	unsigned needs;
	/* fields */
	const char *output_field, *reference_field, *id_field, *scores_field, *text_field;
	const char *outputs_field, *results_field, *passed_field, *samples_field, *logprobs_field;
	const char *judge_field;
	/* per-record statistics, n rows of row_len, and ids */
	double *rows;
	size_t n, cap;
	struct strtab ids;
	long *id_of;		   /* per record: index into ids */
	size_t min_refs, max_refs; /* references per record, over the records that had some */
	const char *exclude[24];   /* what a derived id leaves out: fields tools write */
	size_t nexclude;
	struct slicing *by;
	size_t nby;
	/* models */
	struct llm_backend *ppl_model, *judge_model;
	struct llm_prompt_template *rubric;
	const char *rubric_path;
	struct llm_buf ppl_desc, judge_desc;
	double judge_min, judge_max, judge_pass;
	long judge_max_tokens;
	int concurrency;
	struct llm_cache *cache;
	struct llm_buf ppl_id, judge_id; /* the models' identities, for cache keys */
	bool cache_warned;
	uint64_t cached;       /* answers taken from the cache */
	uint64_t model_failed; /* records a model failed on (after its retries) */
	/* summary */
	struct threshold *thr;
	size_t nthr;
	json_t *baseline; /* the --baseline report */
	const char *baseline_path;
	double alpha;
	bool use_randomization;
	int resamples;
	uint64_t seed;
	/* scratch, reused per record */
	struct llm_buf hyp, scratch, line, idbuf;
	struct strlist refs, outs; /* a record's references and samples */
	double *row_tmp;
};

/* input.c: score one good record (its model answers in x, or NULL) and write it out with its
 * scores.  Returns 1 when scored, 0 when it was bad and --on-error let the run go on, -1 to
 * stop (in->status says why). */
int eval_record(struct eval *ev, struct llm_cli_in *in, struct llm_record *rec,
		const struct model_extra *x);

/* model.c: describe the models for the signatures of perplexity and judge (before the metric
 * set is made), then open them and the rubric.  Both return an exit status. */
int eval_models_describe(struct eval *ev);
int eval_models_open(struct eval *ev);
void eval_models_close(struct eval *ev);
/* Read, ask the models about and score every record, a window at a time, in input order.
 * Returns an exit status. */
int eval_with_models(struct eval *ev, struct llm_cli_in *in);

/* summary.c: everything after the last record.  Returns the exit status of the run. */
int eval_summary(struct eval *ev, const struct llm_cli_in *in);
/* Parse --fail-under, --fail-over and --baseline before any record is read.  An exit status. */
int eval_summary_prepare(struct eval *ev);

#endif
