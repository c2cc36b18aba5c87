/* Exploratory statistics over a stream of JSONL records, in bounded memory.
 *
 * Feed every good record to llm_stats_add() and every bad one to llm_stats_add_bad(); then
 * llm_stats_report() gives the summary as JSON (the --report format, documented in
 * llm-prep(1)), and the renderers turn that JSON into a terminal table or a self-contained
 * HTML page with SVG charts.  Rendering works from the JSON alone, so a saved report can be
 * rendered again.
 *
 * What is measured: records (good and bad, bad by reason); per top-level field, how many
 * records have it and with which JSON types; for every string field (or those named in
 * cfg->fields), lengths in characters (Unicode code points), words (runs of non-whitespace)
 * and bytes (UTF-8), as min, mean, p50, p90, p99 and max with a histogram; empty strings
 * (empty or only whitespace); duplicates of whole records and of the text field; and the mix
 * of writing systems (scripts) of the letters of the text field, overall and per record by
 * majority.  Percentiles come from log-bucketed histograms: exact below 2048, within 0.4 %
 * above.  Duplicates are counted exactly up to cfg->max_exact_distinct distinct values, then
 * estimated (HyperLogLog) and marked "estimated": true.
 *
 * What other verbs wrote into the records is summarized when it is there: the flags array
 * (redact, filter, decontaminate: flags by kind and by type or rule), the cluster id and
 * duplicate mark of dedup (clusters, their sizes, the largest), and the split name of split
 * (records and median text length per split).  Token counts of the text field are measured
 * for each tokenizer in cfg->tokenizers, and only then: tokenizing is the one costly part. */
#ifndef LLM_DATA_STATS_H
#define LLM_DATA_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/jsonl.h"

struct llm_bpe; /* text/bpe.h */

struct llm_stats_config {
	const char *text_field;   /* for duplicates and the script mix; default "text" */
	char *const *fields;      /* measure lengths of these fields only; NULL: every string field */
	size_t nfields;
	size_t max_fields;        /* distinct top-level fields tracked; 0: 256 (more are counted as "other") */
	uint64_t max_exact_distinct; /* 0: 2,000,000 (duplicate sets and cluster ids) */
	const char *flags_field;     /* default "flags" */
	const char *cluster_field;   /* default "cluster_id" */
	const char *duplicate_field; /* default "duplicate" */
	const char *split_field;     /* default "split" */
	size_t max_names;            /* distinct flag kinds, flag names, splits; 0: 256 */
	/* Count tokens of the text field with each of these, reported under the matching
	 * name.  Borrowed: they must outlive the llm_stats, and are used by one thread. */
	struct llm_bpe *const *tokenizers;
	const char *const *tokenizer_names;
	size_t ntokenizers;
};

struct llm_stats;

enum llm_err llm_stats_new(struct llm_stats **out, const struct llm_stats_config *cfg);
enum llm_err llm_stats_add(struct llm_stats *s, const struct llm_record *rec);
/* Count n bad records rejected for reason why (LLM_ERR_JSON, _UTF8, _TOO_BIG, ...). */
void llm_stats_add_bad(struct llm_stats *s, enum llm_err why, uint64_t n);
/* The summary; the caller owns the reference.  NULL when out of memory. */
json_t *llm_stats_report(const struct llm_stats *s);
void llm_stats_free(struct llm_stats *s);

/* A readable table (for a terminal: colour escapes only when color is true). */
enum llm_err llm_stats_render_text(const json_t *report, bool color, struct llm_buf *out);
/* A self-contained HTML page (inline CSS and SVG, no scripts, nothing fetched). */
enum llm_err llm_stats_render_html(const json_t *report, const char *title, struct llm_buf *out);

#endif
