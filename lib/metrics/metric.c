#include "config.h"

#include "metrics/metric.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "metrics/match.h"

enum kind {
	K_BLEU,
	K_CHRF,
	K_CHRFPP,
	K_TER,
	K_ROUGE,
	K_EXACT,
	K_F1,
	K_CONTAINS,
	K_REGEX,
	K_JSON,
	K_SCHEMA,
	K_PASSK,
	K_PPL,
	K_BPB,
	K_JUDGE,
	K_JUDGE_PASS,
};

/* The fixed names; rouge1..rouge9 and pass@K are recognized by shape. */
static const struct {
	const char *name;
	enum kind kind;
} names[] = {
    {"bleu", K_BLEU},	      {"chrf", K_CHRF},
    {"chrf++", K_CHRFPP},     {"ter", K_TER},
    {"rougeL", K_ROUGE},      {"rougeLsum", K_ROUGE},
    {"exact", K_EXACT},	      {"f1", K_F1},
    {"contains", K_CONTAINS}, {"regex", K_REGEX},
    {"json", K_JSON},	      {"json-schema", K_SCHEMA},
    {"perplexity", K_PPL},    {"bpb", K_BPB},
    {"judge", K_JUDGE},	      {"judge_pass", K_JUDGE_PASS},
};

const char *llm_metric_known(void)
{
	return "bleu, chrf, chrf++, ter, rouge1..rouge9, rougeL, rougeLsum, exact, f1, contains, "
	       "regex, json, json-schema, pass@K, perplexity, bpb, judge, judge_pass";
}

#define MAX_ROUGE 11

struct llm_metric_set {
	struct llm_metric_opts o;
	struct llm_chrf_opts chrfpp;
	struct llm_bleu_opts bleu_sentence; /* effective order for per-record scores */
	struct llm_metric *m;
	size_t n;
	size_t row_len;
	unsigned needs;
	struct llm_rouge *rouge;
	const char *rouge_types[MAX_ROUGE];
	size_t n_rouge;
	struct llm_rouge_prf prf[MAX_ROUGE];
	struct llm_bleu_scratch *bleu_scratch;
	struct llm_chrf_scratch *chrf_scratch;
	struct llm_ter_scratch *ter_scratch;
	struct llm_regex *re;
	struct llm_jschema *schema;
	char schema_digest[LLM_SHA256_HEX_LEN + 1];
	char *regex_text;
};

void llm_metric_opts_default(struct llm_metric_opts *o)
{
	memset(o, 0, sizeof *o);
	llm_bleu_opts_default(&o->bleu);
	llm_chrf_opts_default(&o->chrf);
	llm_ter_opts_default(&o->ter);
	o->pass_check = LLM_PASS_EXACT;
}

bool llm_pass_check_parse(const char *name, enum llm_pass_check *out)
{
	static const char *const checks[] = {"exact", "contains", "regex", "json", "json-schema"};
	for (size_t i = 0; i < sizeof checks / sizeof *checks; i++)
		if (!strcmp(name, checks[i])) {
			*out = (enum llm_pass_check)i;
			return true;
		}
	return false;
}

static const char *pass_check_name(enum llm_pass_check c)
{
	static const char *const checks[] = {"exact", "contains", "regex", "json", "json-schema"};
	return checks[c];
}

/* A positive decimal integer with nothing after it. */
static bool parse_k(const char *s, long *k)
{
	if (*s < '1' || *s > '9')
		return false;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > 1000000)
		return false;
	*k = v;
	return true;
}

static bool lookup(const char *name, enum kind *kind, long *k)
{
	*k = 0;
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (!strcmp(name, names[i].name)) {
			*kind = names[i].kind;
			return true;
		}
	if (!strncmp(name, "rouge", 5) && name[5] >= '1' && name[5] <= '9' && !name[6]) {
		*kind = K_ROUGE;
		*k = name[5] - '0';
		return true;
	}
	if (!strncmp(name, "pass@", 5) && parse_k(name + 5, k)) {
		*kind = K_PASSK;
		return true;
	}
	return false;
}

static enum llm_err file_digest(const char *path, char *hex, struct llm_diag *d)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot open: %s", strerror(errno));
	struct llm_sha256 h;
	enum llm_err e = llm_sha256_init(&h);
	char buf[1 << 14];
	size_t n;
	while (!e && (n = fread(buf, 1, sizeof buf, f)) > 0)
		e = llm_sha256_update(&h, buf, n);
	unsigned char md[LLM_SHA256_LEN];
	if (!e) {
		e = llm_sha256_final(&h, md);
		if (!e && ferror(f))
			e = LLM_ERR_IO;
	} else {
		llm_sha256_final(&h, md);
	}
	fclose(f);
	if (e)
		return llm_diag_set(d, e, path, 0, "cannot read");
	llm_hex(md, sizeof md, hex);
	return LLM_OK;
}

static enum llm_err setup(struct llm_metric_set *s, struct llm_metric *m, struct llm_diag *d)
{
	const struct llm_metric_opts *o = &s->o;
	m->higher_is_better = true;
	m->n_stats = 1;
	m->precision = 4;
	switch ((enum kind)m->kind) {
	case K_BLEU:
		m->n_stats = llm_bleu_n_stats(&o->bleu);
		m->precision = 2;
		m->needs = LLM_METRIC_NEEDS_OUTPUT | LLM_METRIC_NEEDS_REFS;
		break;
	case K_CHRF:
	case K_CHRFPP:
		m->n_stats = llm_chrf_n_stats(m->kind == K_CHRF ? &o->chrf : &s->chrfpp);
		m->precision = 2;
		m->needs = LLM_METRIC_NEEDS_OUTPUT | LLM_METRIC_NEEDS_REFS;
		break;
	case K_TER:
		m->n_stats = llm_ter_n_stats(&o->ter);
		m->precision = 2;
		m->higher_is_better = false;
		m->needs = LLM_METRIC_NEEDS_OUTPUT | LLM_METRIC_NEEDS_REFS;
		break;
	case K_ROUGE:
		if (s->n_rouge == MAX_ROUGE)
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "too many ROUGE types");
		s->rouge_types[s->n_rouge] = m->name;
		m->k = (long)s->n_rouge++;
		m->n_stats = 3; /* F, precision, recall */
		m->needs = LLM_METRIC_NEEDS_OUTPUT | LLM_METRIC_NEEDS_REFS;
		break;
	case K_EXACT:
	case K_F1:
	case K_CONTAINS:
		m->needs = LLM_METRIC_NEEDS_OUTPUT | LLM_METRIC_NEEDS_REFS;
		break;
	case K_REGEX:
		if (!o->regex)
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
					    "the regex metric needs a pattern (--regex)");
		m->needs = LLM_METRIC_NEEDS_OUTPUT;
		break;
	case K_SCHEMA:
		if (!o->schema_path)
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
					    "the json-schema metric needs a schema (--schema)");
		m->needs = LLM_METRIC_NEEDS_OUTPUT;
		break;
	case K_JSON:
		m->needs = LLM_METRIC_NEEDS_OUTPUT;
		break;
	case K_PASSK:
		m->needs = LLM_METRIC_NEEDS_SAMPLES;
		if ((o->pass_check == LLM_PASS_REGEX && !o->regex) ||
		    (o->pass_check == LLM_PASS_SCHEMA && !o->schema_path))
			return llm_diag_set(
			    d, LLM_ERR_USAGE, NULL, 0, "pass@k checking samples with %s needs %s",
			    pass_check_name(o->pass_check),
			    o->pass_check == LLM_PASS_REGEX ? "--regex" : "--schema");
		break;
	case K_PPL:
	case K_BPB:
		m->n_stats = 3; /* nll, tokens, bytes */
		m->precision = m->kind == K_PPL ? 3 : 4;
		m->higher_is_better = false;
		m->needs = LLM_METRIC_NEEDS_LOGPROBS;
		break;
	case K_JUDGE:
		m->precision = 3;
		m->needs = LLM_METRIC_NEEDS_JUDGE;
		break;
	case K_JUDGE_PASS:
		m->needs = LLM_METRIC_NEEDS_JUDGE;
		break;
	}
	return LLM_OK;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

enum llm_err llm_metric_set_new(struct llm_metric_set **out, const char *const *list,
				size_t n_names, const struct llm_metric_opts *opts,
				struct llm_diag *d)
{
	*out = NULL;
	struct llm_metric_set *s = calloc(1, sizeof *s);
	if (!s || !(s->m = calloc(n_names ? n_names : 1, sizeof *s->m))) {
		free(s);
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	s->o = *opts;
	s->regex_text = dup_or_null(opts->regex);
	s->o.regex = s->regex_text;
	s->o.schema_path = NULL;
	s->chrfpp = opts->chrf;
	s->chrfpp.word_order = 2;
	s->bleu_sentence = opts->bleu;
	s->bleu_sentence.effective_order = true;
	enum llm_err e = LLM_OK;
	if (opts->regex && !s->regex_text)
		e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	for (size_t i = 0; i < n_names && !e; i++) {
		enum kind kind;
		long k;
		if (!lookup(list[i], &kind, &k)) {
			e = llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
					 "unknown metric '%s' (known: %s)", list[i],
					 llm_metric_known());
			break;
		}
		if (llm_metric_set_find(s, list[i]))
			continue;
		struct llm_metric *m = &s->m[s->n];
		snprintf(m->name, sizeof m->name, "%s", list[i]);
		m->kind = (int)kind;
		m->k = k;
		m->set = s;
		if (kind == K_SCHEMA || (kind == K_PASSK && opts->pass_check == LLM_PASS_SCHEMA))
			s->o.schema_path = opts->schema_path;
		if ((e = setup(s, m, d)))
			break;
		m->offset = s->row_len;
		s->row_len += m->n_stats;
		s->needs |= m->needs;
		s->n++;
	}
	bool want_re = false;
	for (size_t i = 0; i < s->n; i++)
		want_re |= s->m[i].kind == K_REGEX ||
			   (s->m[i].kind == K_PASSK && opts->pass_check == LLM_PASS_REGEX);
	if (!e && want_re)
		e = llm_regex_new(&s->re, opts->regex, opts->regex_caseless, d);
	if (!e && s->o.schema_path) {
		e = llm_jschema_load(&s->schema, s->o.schema_path, d);
		if (!e)
			e = file_digest(s->o.schema_path, s->schema_digest, d);
	}
	if (!e && s->n_rouge)
		e = llm_rouge_new(&s->rouge, &opts->rouge, s->rouge_types, s->n_rouge, d);
	/* Workspaces kept from record to record: a corpus allocates nothing once they have grown
	 * to its longest segment. */
	for (size_t i = 0; i < s->n && !e; i++) {
		int k = s->m[i].kind;
		if (k == K_BLEU && !s->bleu_scratch)
			e = llm_bleu_scratch_new(&s->bleu_scratch, d);
		else if ((k == K_CHRF || k == K_CHRFPP) && !s->chrf_scratch)
			e = llm_chrf_scratch_new(&s->chrf_scratch, d);
		else if (k == K_TER && !s->ter_scratch)
			e = llm_ter_scratch_new(&s->ter_scratch, d);
	}
	if (e) {
		llm_metric_set_free(s);
		return e;
	}
	*out = s;
	return LLM_OK;
}

void llm_metric_set_free(struct llm_metric_set *s)
{
	if (!s)
		return;
	if (s->rouge)
		llm_rouge_free(s->rouge);
	if (s->bleu_scratch)
		llm_bleu_scratch_free(s->bleu_scratch);
	if (s->chrf_scratch)
		llm_chrf_scratch_free(s->chrf_scratch);
	if (s->ter_scratch)
		llm_ter_scratch_free(s->ter_scratch);
	if (s->re)
		llm_regex_free(s->re);
	if (s->schema)
		llm_jschema_free(s->schema);
	free(s->regex_text);
	free(s->m);
	free(s);
}

size_t llm_metric_set_count(const struct llm_metric_set *s)
{
	return s->n;
}

const struct llm_metric *llm_metric_set_get(const struct llm_metric_set *s, size_t i)
{
	return i < s->n ? &s->m[i] : NULL;
}

const struct llm_metric *llm_metric_set_find(const struct llm_metric_set *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->m[i].name, name))
			return &s->m[i];
	return NULL;
}

size_t llm_metric_set_row_len(const struct llm_metric_set *s)
{
	return s->row_len;
}

unsigned llm_metric_set_needs(const struct llm_metric_set *s)
{
	return s->needs;
}

/* Did one sample pass the set's check? */
static enum llm_err check_sample(struct llm_metric_set *s, const struct llm_metric_input *in,
				 const char *x, size_t n, double *out, struct llm_diag *d)
{
	switch (s->o.pass_check) {
	case LLM_PASS_EXACT:
	case LLM_PASS_CONTAINS:
		if (!in->n_refs)
			return llm_diag_set(d, LLM_ERR_MISSING, NULL, 0,
					    "pass@k: samples without verdicts are checked against "
					    "the reference, and there is none");
		if (s->o.pass_check == LLM_PASS_EXACT)
			return llm_match_exact(x, n, in->refs, in->ref_lens, in->n_refs, out, d);
		return llm_match_contains(x, n, in->refs, in->ref_lens, in->n_refs,
					  s->o.contains_normalize, out, d);
	case LLM_PASS_REGEX:
		return llm_regex_search(s->re, x, n, out, d);
	case LLM_PASS_JSON:
		*out = llm_match_json_valid(x, n);
		return LLM_OK;
	case LLM_PASS_SCHEMA:
		return llm_jschema_check(s->schema, x, n, out, NULL, d);
	}
	return LLM_OK;
}

/* Prefix a module's message with the metric it came from, once. */
static enum llm_err blame(const struct llm_metric *m, enum llm_err e, struct llm_diag *d)
{
	if (e && d && strncmp(d->msg, m->name, strlen(m->name))) {
		char msg[LLM_DIAG_MSG_MAX];
		memcpy(msg, d->msg, sizeof msg);
		size_t k = strlen(m->name);
		if (k + 2 < sizeof d->msg) {
			memcpy(d->msg, m->name, k);
			memcpy(d->msg + k, ": ", 2);
			snprintf(d->msg + k + 2, sizeof d->msg - k - 2, "%.*s",
				 (int)(sizeof d->msg - k - 3), msg);
		}
	}
	return e;
}

enum llm_err llm_metric_set_stats(struct llm_metric_set *s, const struct llm_metric_input *in,
				  double *row, struct llm_diag *d)
{
	enum llm_err e;
	bool rouge_done = false;
	long passed = in->n_passed;
	for (size_t i = 0; i < s->n; i++) {
		const struct llm_metric *m = &s->m[i];
		double *v = row + m->offset;
		e = LLM_OK;
		switch ((enum kind)m->kind) {
		case K_BLEU:
			e = llm_bleu_stats_scratch(s->bleu_scratch, &s->o.bleu, in->hyp,
						   in->hyp_len, in->refs, in->ref_lens, in->n_refs,
						   v, d);
			break;
		case K_CHRF:
		case K_CHRFPP:
			e = llm_chrf_scratch_stats(
			    s->chrf_scratch, m->kind == K_CHRF ? &s->o.chrf : &s->chrfpp, in->hyp,
			    in->hyp_len, in->refs, in->ref_lens, in->n_refs, v, d);
			break;
		case K_TER:
			e = llm_ter_scratch_stats(s->ter_scratch, &s->o.ter, in->hyp, in->hyp_len,
						  in->refs, in->ref_lens, in->n_refs, v, d);
			break;
		case K_ROUGE:
			if (!rouge_done) {
				e = llm_rouge_score(s->rouge, in->hyp, in->hyp_len, in->refs,
						    in->ref_lens, in->n_refs, s->prf, d);
				rouge_done = !e;
			}
			if (!e) {
				v[0] = s->prf[m->k].fmeasure;
				v[1] = s->prf[m->k].precision;
				v[2] = s->prf[m->k].recall;
			}
			break;
		case K_EXACT:
			e = llm_match_exact(in->hyp, in->hyp_len, in->refs, in->ref_lens,
					    in->n_refs, v, d);
			break;
		case K_F1:
			e = llm_match_f1(in->hyp, in->hyp_len, in->refs, in->ref_lens, in->n_refs,
					 v, d);
			break;
		case K_CONTAINS:
			e = llm_match_contains(in->hyp, in->hyp_len, in->refs, in->ref_lens,
					       in->n_refs, s->o.contains_normalize, v, d);
			break;
		case K_REGEX:
			e = llm_regex_search(s->re, in->hyp, in->hyp_len, v, d);
			break;
		case K_JSON:
			v[0] = llm_match_json_valid(in->hyp, in->hyp_len);
			break;
		case K_SCHEMA:
			e = llm_jschema_check(s->schema, in->hyp, in->hyp_len, v, NULL, d);
			break;
		case K_PASSK:
			if (passed < 0) {
				passed = 0;
				for (long j = 0; j < in->n_samples && !e; j++) {
					double ok = 0;
					e = check_sample(s, in, in->samples[j], in->sample_lens[j],
							 &ok, d);
					passed += ok > 0;
				}
				if (e) {
					passed = -1;
					break;
				}
			}
			if (in->n_samples < m->k) {
				e = llm_diag_set(d, LLM_ERR_RANGE, NULL, 0,
						 "needs at least %ld samples, the record has %ld",
						 m->k, in->n_samples);
				break;
			}
			e = llm_pass_at_k(in->n_samples, passed, m->k, v, d);
			break;
		case K_PPL:
		case K_BPB:
			v[0] = in->nll;
			v[1] = in->tokens;
			v[2] = in->bytes;
			break;
		case K_JUDGE:
			v[0] = in->judge_score;
			break;
		case K_JUDGE_PASS:
			v[0] = in->judge_pass ? 1 : 0;
			break;
		}
		if (e)
			return blame(m, e, d);
	}
	return LLM_OK;
}

double llm_metric_score(const struct llm_metric *m, const double *sums, size_t n)
{
	const struct llm_metric_set *s = m->set;
	if (!n)
		return NAN;
	switch ((enum kind)m->kind) {
	case K_BLEU: {
		struct llm_bleu_result r;
		llm_bleu_compute(&s->o.bleu, sums, &r);
		return r.score;
	}
	case K_CHRF:
		return llm_chrf_compute(&s->o.chrf, sums);
	case K_CHRFPP:
		return llm_chrf_compute(&s->chrfpp, sums);
	case K_TER:
		return llm_ter_compute(&s->o.ter, sums);
	case K_PPL:
		return sums[1] > 0 ? exp(sums[0] / sums[1]) : NAN;
	case K_BPB:
		return sums[2] > 0 ? sums[0] / M_LN2 / sums[2] : NAN;
	default:
		return sums[0] / (double)n;
	}
}

double llm_metric_score_fn(void *ctx, const double *sums, size_t n)
{
	return llm_metric_score(ctx, sums, n);
}

double llm_metric_sentence(const struct llm_metric *m, const double *stats)
{
	if (m->kind == K_BLEU) {
		struct llm_bleu_result r;
		llm_bleu_compute(&m->set->bleu_sentence, stats, &r);
		return r.score;
	}
	return llm_metric_score(m, stats, 1);
}

static size_t detail(struct llm_metric_detail *out, size_t max, size_t i, const char *name,
		     double v)
{
	if (i < max) {
		snprintf(out[i].name, sizeof out[i].name, "%s", name);
		out[i].value = v;
	}
	return i + 1;
}

size_t llm_metric_details(const struct llm_metric *m, const double *sums, size_t n,
			  struct llm_metric_detail *out, size_t max)
{
	size_t i = 0;
	if (!n)
		return 0;
	switch ((enum kind)m->kind) {
	case K_BLEU: {
		struct llm_bleu_result r;
		llm_bleu_compute(&m->set->o.bleu, sums, &r);
		i = detail(out, max, i, "bp", r.bp);
		i = detail(out, max, i, "ratio", r.ratio);
		i = detail(out, max, i, "hyp_len", r.sys_len);
		i = detail(out, max, i, "ref_len", r.ref_len);
		for (int k = 0; k < m->set->o.bleu.max_order && k < LLM_BLEU_MAX_ORDER; k++) {
			char name[24];
			snprintf(name, sizeof name, "precision_%d", k + 1);
			i = detail(out, max, i, name, r.precisions[k]);
		}
		break;
	}
	case K_TER:
		i = detail(out, max, i, "edits", sums[0]);
		i = detail(out, max, i, "ref_len", sums[1]);
		break;
	case K_ROUGE:
		i = detail(out, max, i, "precision", sums[1] / (double)n);
		i = detail(out, max, i, "recall", sums[2] / (double)n);
		break;
	case K_PPL:
	case K_BPB:
		i = detail(out, max, i, "nll", sums[0]);
		i = detail(out, max, i, "tokens", sums[1]);
		i = detail(out, max, i, "bytes", sums[2]);
		break;
	default:
		break;
	}
	return i < max ? i : max;
}

enum llm_err llm_metric_signature(const struct llm_metric *m, size_t n_refs, struct llm_buf *out,
				  struct llm_diag *d)
{
	const struct llm_metric_set *s = m->set;
	const struct llm_metric_opts *o = &s->o;
	enum llm_err e = LLM_OK;
	char nrefs[24] = "var";
	if (n_refs)
		snprintf(nrefs, sizeof nrefs, "%zu", n_refs);
	switch ((enum kind)m->kind) {
	case K_BLEU:
		return llm_bleu_signature(&o->bleu, n_refs, out, d);
	case K_CHRF:
		return llm_chrf_signature(&o->chrf, n_refs, out, d);
	case K_CHRFPP:
		return llm_chrf_signature(&s->chrfpp, n_refs, out, d);
	case K_TER:
		return llm_ter_signature(&o->ter, n_refs, out, d);
	case K_ROUGE:
		e = llm_buf_printf(out, "nrefs:%s|stem:%s|tok:%s|impl:rouge-score", nrefs,
				   o->rouge.stemmer ? "yes" : "no",
				   o->rouge.unicode ? "unicode" : "default");
		break;
	case K_EXACT:
	case K_F1:
		e = llm_buf_printf(out, "nrefs:%s|norm:squad", nrefs);
		break;
	case K_CONTAINS:
		e = llm_buf_printf(out, "nrefs:%s|norm:%s", nrefs,
				   o->contains_normalize ? "squad" : "none");
		break;
	case K_REGEX:
		e = llm_buf_printf(out, "case:%s|pattern:%s", o->regex_caseless ? "lc" : "mixed",
				   o->regex);
		break;
	case K_JSON:
		e = llm_buf_puts(out, "extract:fenced|rfc:8259");
		break;
	case K_SCHEMA:
		e = llm_buf_printf(out, "extract:fenced|schema:%.16s", s->schema_digest);
		break;
	case K_PASSK:
		e = llm_buf_printf(out, "k:%ld|estimator:unbiased|check:%s", m->k,
				   pass_check_name(o->pass_check));
		break;
	case K_PPL:
	case K_BPB:
		e = llm_buf_printf(out, "unit:%s|source:%s", m->kind == K_PPL ? "token" : "byte",
				   o->ppl_desc ? o->ppl_desc : "logprobs");
		break;
	case K_JUDGE:
	case K_JUDGE_PASS:
		e = llm_buf_puts(out, o->judge_desc ? o->judge_desc : "judge");
		break;
	}
	if (e)
		return llm_diag_set(d, e, NULL, 0, "out of memory");
	return LLM_OK;
}
