/* llm-monitor drift: compare a reference log with a current one, column by column, with
 * Evidently's default tests (lib/monitor/drift.h), and say whether the dataset drifted.
 *
 * Every event of an input is one row.  Each column keeps one slot per row: a double for a
 * numeric column (8 bytes), a category number for a categorical one (4 bytes), and the word
 * numbers of a text for the word columns (4 bytes a word), so memory grows with the input;
 * --sample N keeps a uniform reservoir of N rows per input instead (Vitter's algorithm R,
 * seeded by --seed).  The strings of categories and words are held once each. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/rand.h"
#include "monitor/drift.h"
#include "monitor/monitor.h"

#define MISSING UINT32_MAX

/* --- strings, each held once ------------------------------------------------------------ */

struct dict {
	char **s;
	uint32_t *len;
	uint32_t n, cap;
	uint32_t *slot; /* open addressing: index + 1, 0 for empty */
	size_t nslot;
};

static void dict_free(struct dict *d)
{
	for (uint32_t i = 0; i < d->n; i++)
		free(d->s[i]);
	free(d->s);
	free(d->len);
	free(d->slot);
}

/* The number of s[0..n), added when new; MISSING when out of memory. */
static uint32_t dict_id(struct dict *d, const char *s, size_t n)
{
	if ((size_t)d->n * 2 >= d->nslot) {
		size_t ns = d->nslot ? d->nslot * 2 : 1024;
		uint32_t *slot = calloc(ns, sizeof *slot);
		if (!slot)
			return MISSING;
		for (uint32_t i = 0; i < d->n; i++) {
			size_t h = llm_hash64(d->s[i], d->len[i], 0) & (ns - 1);
			while (slot[h])
				h = (h + 1) & (ns - 1);
			slot[h] = i + 1;
		}
		free(d->slot);
		d->slot = slot;
		d->nslot = ns;
	}
	size_t h = llm_hash64(s, n, 0) & (d->nslot - 1);
	for (; d->slot[h]; h = (h + 1) & (d->nslot - 1)) {
		uint32_t i = d->slot[h] - 1;
		if (d->len[i] == n && !memcmp(d->s[i], s, n))
			return i;
	}
	if (d->n == d->cap || n >= UINT32_MAX || d->n >= MISSING - 1) {
		uint32_t cap = d->cap ? d->cap * 2 : 256;
		char **ns = realloc(d->s, cap * sizeof *ns);
		if (ns)
			d->s = ns;
		uint32_t *nl = ns ? realloc(d->len, cap * sizeof *nl) : NULL;
		if (!nl)
			return MISSING;
		d->len = nl;
		d->cap = cap;
	}
	char *copy = malloc(n + 1);
	if (!copy)
		return MISSING;
	memcpy(copy, s, n);
	copy[n] = 0;
	d->s[d->n] = copy;
	d->len[d->n] = (uint32_t)n;
	d->slot[h] = d->n + 1;
	return d->n++;
}

/* --- columns ---------------------------------------------------------------------------- */

enum col_src {
	SRC_PROMPT_CHARS,
	SRC_OUTPUT_CHARS,
	SRC_LATENCY,
	SRC_TTFT,
	SRC_PROMPT_TOKENS,
	SRC_COMPLETION_TOKENS,
	SRC_SCORE,
	SRC_MODEL,
	SRC_FINISH_REASON,
	SRC_STATUS,
	SRC_KEY_ID,
	SRC_PROMPT_WORDS,
	SRC_OUTPUT_WORDS,
	SRC_FIELD, /* a field named by --numeric, --categorical or --field */
};

enum col_type { COL_NUMERIC, COL_CATEGORICAL, COL_WORDS, COL_AUTO };

static const struct {
	const char *name;
	enum col_type type;
} builtin[] = {
    [SRC_PROMPT_CHARS] = {"prompt_chars", COL_NUMERIC},
    [SRC_OUTPUT_CHARS] = {"output_chars", COL_NUMERIC},
    [SRC_LATENCY] = {"latency_ms", COL_NUMERIC},
    [SRC_TTFT] = {"ttft_ms", COL_NUMERIC},
    [SRC_PROMPT_TOKENS] = {"prompt_tokens", COL_NUMERIC},
    [SRC_COMPLETION_TOKENS] = {"completion_tokens", COL_NUMERIC},
    [SRC_SCORE] = {"score", COL_NUMERIC},
    [SRC_MODEL] = {"model", COL_CATEGORICAL},
    [SRC_FINISH_REASON] = {"finish_reason", COL_CATEGORICAL},
    [SRC_STATUS] = {"status", COL_CATEGORICAL},
    [SRC_KEY_ID] = {"key_id", COL_CATEGORICAL},
    [SRC_PROMPT_WORDS] = {"prompt_words", COL_WORDS},
    [SRC_OUTPUT_WORDS] = {"output_words", COL_WORDS},
};
#define NBUILTIN (sizeof builtin / sizeof *builtin)

struct words {
	uint32_t *id;
	uint32_t n;
};

/* One column's slots for one input. */
struct slots {
	double *num;	   /* COL_NUMERIC, COL_AUTO */
	uint32_t *cat;	   /* COL_CATEGORICAL, COL_AUTO */
	struct words *txt; /* COL_WORDS */
};

struct column {
	const char *name;
	enum col_src src;
	enum col_type type;
	struct dict dict;
	struct slots side[2];
	bool non_number; /* COL_AUTO: some value was not a number */
};

struct drift {
	struct column *col;
	size_t ncol;
	size_t cap;	  /* slots allocated per column and side */
	size_t rows[2];	  /* rows held */
	uint64_t seen[2]; /* events read */
	uint64_t sample;  /* --sample (0: all) */
	struct llm_rand rand;
	bool want_text;
	struct llm_buf tmp;
	size_t top_words;
};

static void drift_free(struct drift *d)
{
	for (size_t i = 0; i < d->ncol; i++) {
		struct column *c = &d->col[i];
		for (int s = 0; s < 2; s++) {
			free(c->side[s].num);
			free(c->side[s].cat);
			if (c->side[s].txt)
				for (size_t r = 0; r < d->cap; r++)
					free(c->side[s].txt[r].id);
			free(c->side[s].txt);
		}
		dict_free(&c->dict);
	}
	free(d->col);
	llm_buf_free(&d->tmp);
}

static bool add_column(struct drift *d, const char *name, enum col_src src, enum col_type type)
{
	for (size_t i = 0; i < d->ncol; i++)
		if (!strcmp(d->col[i].name, name)) {
			d->col[i].type = type;
			d->col[i].src = src;
			return true;
		}
	struct column *nc = realloc(d->col, (d->ncol + 1) * sizeof *nc);
	if (!nc)
		return false;
	d->col = nc;
	memset(&d->col[d->ncol], 0, sizeof *d->col);
	d->col[d->ncol].name = name;
	d->col[d->ncol].src = src;
	d->col[d->ncol].type = type;
	d->ncol++;
	return true;
}

/* Room for one more slot on side s in every column. */
static bool grow(struct drift *d, int s, size_t need)
{
	if (need <= d->cap)
		return true;
	size_t cap = d->cap ? d->cap * 2 : 1024;
	while (cap < need)
		cap *= 2;
	for (size_t i = 0; i < d->ncol; i++)
		for (int k = 0; k < 2; k++) {
			struct slots *sl = &d->col[i].side[k];
			enum col_type t = d->col[i].type;
			if (t == COL_NUMERIC || t == COL_AUTO) {
				double *p = realloc(sl->num, cap * sizeof *p);
				if (!p)
					return false;
				sl->num = p;
			}
			if (t == COL_CATEGORICAL || t == COL_AUTO) {
				uint32_t *p = realloc(sl->cat, cap * sizeof *p);
				if (!p)
					return false;
				sl->cat = p;
			}
			if (t == COL_WORDS) {
				struct words *p = realloc(sl->txt, cap * sizeof *p);
				if (!p)
					return false;
				memset(p + d->cap, 0, (cap - d->cap) * sizeof *p);
				sl->txt = p;
			}
		}
	(void)s;
	d->cap = cap;
	return true;
}

struct word_ctx {
	struct dict *dict;
	struct words *w;
	size_t cap;
	bool nomem;
};

static bool add_word(void *ctx, const char *word, size_t len)
{
	struct word_ctx *x = ctx;
	uint32_t id = dict_id(x->dict, word, len);
	if (id == MISSING) {
		x->nomem = true;
		return false;
	}
	if (x->w->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 16;
		uint32_t *p = realloc(x->w->id, cap * sizeof *p);
		if (!p) {
			x->nomem = true;
			return false;
		}
		x->w->id = p;
		x->cap = cap;
	}
	x->w->id[x->w->n++] = id;
	return true;
}

static double num_of(const struct llm_json_member *m)
{
	char buf[64];
	size_t n = m->val_len < sizeof buf - 1 ? m->val_len : sizeof buf - 1;
	memcpy(buf, m->val, n);
	buf[n] = 0;
	return strtod(buf, NULL);
}

/* LLM_ERR_TYPE, with why naming FILE:LINE, when a field named by --numeric is not a number
 * or one named by --categorical or --field is an array or an object. */
static enum llm_err check_row(const struct drift *d, const struct llm_mon_event *ev,
			      struct llm_diag *why)
{
	for (size_t i = 0; i < d->ncol; i++) {
		const struct column *c = &d->col[i];
		if (c->src != SRC_FIELD)
			continue;
		const struct llm_json_member *m = llm_json_get(&ev->rec->fields, c->name);
		if (!m || m->type == LLM_JSON_NULL || m->type == LLM_JSON_NUMBER)
			continue;
		if (c->type == COL_NUMERIC || m->type == LLM_JSON_ARRAY ||
		    m->type == LLM_JSON_OBJECT)
			return llm_diag_set(
			    why, LLM_ERR_TYPE, ev->rec->file, ev->rec->line,
			    "field %s is %s, not %s", c->name, llm_json_type_phrase(m->type),
			    c->type == COL_NUMERIC ? "a number" : "a string, number or boolean");
	}
	return LLM_OK;
}

/* Fill row r of side s from ev (checked by check_row).  Returns LLM_OK or LLM_ERR_NOMEM. */
static enum llm_err fill_row(struct drift *d, int s, size_t r, const struct llm_mon_event *ev)
{
	bool req = ev->kind == LLM_MON_REQUEST;
	for (size_t i = 0; i < d->ncol; i++) {
		struct column *c = &d->col[i];
		struct slots *sl = &c->side[s];
		double v = NAN;
		const struct llm_mon_str *str = NULL;
		char status[16];
		struct llm_mon_str st;
		switch (c->src) {
		case SRC_PROMPT_CHARS:
			v = req && ev->prompt_chars >= 0 ? (double)ev->prompt_chars : NAN;
			break;
		case SRC_OUTPUT_CHARS:
			v = req && ev->output_chars >= 0 ? (double)ev->output_chars : NAN;
			break;
		case SRC_LATENCY:
			v = req && ev->latency_ms != LLM_MON_UNKNOWN ? ev->latency_ms : NAN;
			break;
		case SRC_TTFT:
			v = req && ev->ttft_ms != LLM_MON_UNKNOWN ? ev->ttft_ms : NAN;
			break;
		case SRC_PROMPT_TOKENS:
			v = req && ev->prompt_tokens >= 0 ? (double)ev->prompt_tokens : NAN;
			break;
		case SRC_COMPLETION_TOKENS:
			v = req && ev->completion_tokens >= 0 ? (double)ev->completion_tokens : NAN;
			break;
		case SRC_SCORE:
			v = !req && ev->score != LLM_MON_UNKNOWN ? ev->score : NAN;
			break;
		case SRC_MODEL:
			str = req ? &ev->model : NULL;
			break;
		case SRC_FINISH_REASON:
			str = req ? &ev->finish_reason : NULL;
			break;
		case SRC_KEY_ID:
			str = req ? &ev->key_id : NULL;
			break;
		case SRC_STATUS:
			if (req && ev->status) {
				st.n = (size_t)snprintf(status, sizeof status, "%d", ev->status);
				st.p = status;
				str = &st;
			}
			break;
		case SRC_PROMPT_WORDS:
		case SRC_OUTPUT_WORDS: {
			struct words *w = &sl->txt[r];
			free(w->id);
			memset(w, 0, sizeof *w);
			const struct llm_mon_str *t =
			    c->src == SRC_PROMPT_WORDS ? &ev->prompt : &ev->output;
			if (!req || !t->p)
				continue;
			struct word_ctx x = {&c->dict, w, 0, false};
			if (llm_drift_words(t->p, t->n, add_word, &x) || x.nomem)
				return LLM_ERR_NOMEM;
			continue;
		}
		case SRC_FIELD: {
			const struct llm_json_member *m = llm_json_get(&ev->rec->fields, c->name);
			if (!m || m->type == LLM_JSON_NULL)
				break;
			if (m->type == LLM_JSON_NUMBER) {
				v = num_of(m);
				if (c->type == COL_CATEGORICAL || c->type == COL_AUTO) {
					st.p = m->val;
					st.n = m->val_len;
					str = &st;
				}
			} else if (m->type == LLM_JSON_STRING) {
				llm_buf_clear(&d->tmp);
				if (llm_json_string_decode(m->val, m->val_len, &d->tmp))
					return LLM_ERR_NOMEM;
				st.p = d->tmp.data;
				st.n = d->tmp.len;
				str = &st;
				c->non_number = true;
			} else {
				st.p = m->val;
				st.n = m->val_len;
				str = &st;
				c->non_number = true;
			}
			break;
		}
		}
		if (sl->num)
			sl->num[r] = v;
		if (sl->cat) {
			uint32_t id = MISSING;
			if (str && str->p && (id = dict_id(&c->dict, str->p, str->n)) == MISSING)
				return LLM_ERR_NOMEM;
			sl->cat[r] = id;
		}
	}
	return LLM_OK;
}

/* Read one input into side s.  Returns an exit status. */
static int read_side(struct llm_cli *c, struct drift *d, int s, const char *path)
{
	char **ops = c->args.operands;
	size_t nops = c->args.noperands;
	char *one[1] = {(char *)path};
	c->args.operands = one;
	c->args.noperands = 1;
	struct mon_in m;
	int st = mon_in_open(c, &m, d->want_text, false, 0);
	if (st) {
		/* A failed open may hold the parser already; close frees what there is. */
		mon_in_close(&m);
		c->args.operands = ops;
		c->args.noperands = nops;
		return st;
	}
	struct llm_mon_event *ev;
	int r;
	while ((r = mon_in_next(c, &m, &ev)) > 0) {
		if (r != 1)
			continue;
		struct llm_diag why;
		if (check_row(d, ev, &why)) {
			if (!llm_cli_in_reject(c, &m.in, ev->rec, &why)) {
				r = -1;
				break;
			}
			continue;
		}
		d->seen[s]++;
		size_t row;
		if (!d->sample || d->rows[s] < d->sample) {
			row = d->rows[s];
			if (!grow(d, s, row + 1)) {
				r = -1;
				m.in.status = LLM_EXIT_IO;
				llm_cli_error(c, "out of memory");
				break;
			}
		} else {
			/* Algorithm R: the k-th event replaces a random row with probability N/k.
			 */
			uint64_t j = llm_rand_below(&d->rand, d->seen[s]);
			if (j >= d->sample)
				continue;
			row = (size_t)j;
		}
		enum llm_err e = fill_row(d, s, row, ev);
		if (e) {
			llm_cli_error(c, "out of memory");
			r = -1;
			m.in.status = LLM_EXIT_IO;
			break;
		}
		if (row == d->rows[s])
			d->rows[s]++;
	}
	st = r < 0 ? m.in.status : 0;
	mon_in_close(&m);
	c->args.operands = ops;
	c->args.noperands = nops;
	return st;
}

/* --- the tests ---------------------------------------------------------------------------- */

static const struct dict *sort_dict;

static int cmp_by_string(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	size_t lx = sort_dict->len[x], ly = sort_dict->len[y];
	int c = memcmp(sort_dict->s[x], sort_dict->s[y], lx < ly ? lx : ly);
	return c ? c : (lx > ly) - (lx < ly);
}

static const uint64_t *sort_counts;

/* Most frequent first, then by the word's bytes. */
static int cmp_by_count(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	if (sort_counts[x] != sort_counts[y])
		return sort_counts[x] > sort_counts[y] ? -1 : 1;
	return cmp_by_string(a, b);
}

/* The result of one column, or a reason it was skipped. */
struct outcome {
	const struct column *col;
	const char *kind;
	struct llm_drift_result res;
	const char *skipped;
};

static enum llm_err test_column(struct drift *d, struct column *c, enum llm_drift_test test,
				double threshold, struct outcome *o)
{
	o->col = c;
	enum col_type t = c->type;
	if (t == COL_AUTO)
		t = c->non_number ? COL_CATEGORICAL : COL_NUMERIC;
	o->kind = t == COL_NUMERIC ? "numeric" : t == COL_WORDS ? "words" : "categorical";
	if (t == COL_NUMERIC) {
		double *v[2] = {NULL, NULL};
		size_t n[2] = {0, 0};
		for (int s = 0; s < 2; s++) {
			v[s] = malloc((d->rows[s] ? d->rows[s] : 1) * sizeof *v[s]);
			if (!v[s]) {
				free(v[0]);
				return LLM_ERR_NOMEM;
			}
			for (size_t r = 0; r < d->rows[s]; r++)
				if (!isnan(c->side[s].num[r]))
					v[s][n[s]++] = c->side[s].num[r];
		}
		enum llm_err e = LLM_OK;
		if (!n[0] || !n[1])
			o->skipped = !n[0] && !n[1] ? "no values"
				     : !n[0]	    ? "no values in the reference"
						    : "no values in the current input";
		else
			e = llm_drift_column(&(struct llm_drift_sample){LLM_DRIFT_NUMERIC, v[0],
									v[1], n[0], n[1], NULL,
									NULL, 0},
					     test, threshold, &o->res);
		free(v[0]);
		free(v[1]);
		return e;
	}
	/* Categories (or words) counted per side over the column's strings. */
	uint32_t k = c->dict.n;
	uint64_t *cnt = calloc(2 * (size_t)k + 2, sizeof *cnt);
	uint32_t *order = malloc(((size_t)k + 1) * sizeof *order);
	uint64_t *rc = calloc((size_t)k + 2, sizeof *rc), *cc = calloc((size_t)k + 2, sizeof *cc);
	if (!cnt || !order || !rc || !cc) {
		free(cnt), free(order), free(rc), free(cc);
		return LLM_ERR_NOMEM;
	}
	uint64_t tot[2] = {0, 0};
	for (int s = 0; s < 2; s++)
		for (size_t r = 0; r < d->rows[s]; r++) {
			if (t == COL_WORDS) {
				const struct words *w = &c->side[s].txt[r];
				for (uint32_t i = 0; i < w->n; i++)
					cnt[(size_t)s * k + w->id[i]]++;
				tot[s] += w->n;
			} else if (c->side[s].cat[r] != MISSING) {
				cnt[(size_t)s * k + c->side[s].cat[r]]++;
				tot[s]++;
			}
		}
	size_t m = 0;
	for (uint32_t i = 0; i < k; i++)
		if (cnt[i] || cnt[k + i])
			order[m++] = i;
	sort_dict = &c->dict;
	uint64_t other[2] = {0, 0};
	if (t == COL_WORDS) {
		/* The reference's top words; every other word goes to one "other" category. */
		sort_counts = cnt;
		qsort(order, m, sizeof *order, cmp_by_count);
		size_t keep = 0;
		for (size_t i = 0; i < m; i++) {
			if (keep < d->top_words && cnt[order[i]])
				order[keep++] = order[i];
			else
				other[0] += cnt[order[i]], other[1] += cnt[k + order[i]];
		}
		m = keep;
	}
	qsort(order, m, sizeof *order, cmp_by_string);
	for (size_t i = 0; i < m; i++) {
		rc[i] = cnt[order[i]];
		cc[i] = cnt[k + order[i]];
	}
	if (other[0] || other[1]) {
		rc[m] = other[0];
		cc[m] = other[1];
		m++;
	}
	enum llm_err e = LLM_OK;
	if (!tot[0] || !tot[1])
		o->skipped = !tot[0] && !tot[1] ? "no values"
			     : !tot[0]		? "no values in the reference"
						: "no values in the current input";
	else
		e = llm_drift_column(
		    &(struct llm_drift_sample){LLM_DRIFT_CATEGORICAL, NULL, NULL, 0, 0, rc, cc, m},
		    test, threshold, &o->res);
	free(cnt), free(order), free(rc), free(cc);
	return e;
}

/* --- output ------------------------------------------------------------------------------- */

static json_t *num_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static json_t *report_json(struct drift *d, const struct outcome *o, size_t n, const char *ref,
			   const char *cur, enum llm_drift_test test, double share, size_t tested,
			   size_t drifted, bool dataset)
{
	json_t *root = json_object(), *cols = json_array(), *skipped = json_array();
	const char *paths[2] = {ref, cur}, *names[2] = {"reference", "current"};
	for (int s = 0; s < 2; s++)
		json_object_set_new(root, names[s],
				    json_pack("{s:s, s:I, s:I, s:b}", "path", paths[s], "events",
					      (json_int_t)d->seen[s], "rows",
					      (json_int_t)d->rows[s], "sampled",
					      d->sample && d->seen[s] > d->sample));
	json_object_set_new(root, "stattest", json_string(llm_drift_test_name(test)));
	for (size_t i = 0; i < n; i++) {
		if (o[i].skipped) {
			json_array_append_new(skipped,
					      json_pack("{s:s, s:s}", "column", o[i].col->name,
							"reason", o[i].skipped));
			continue;
		}
		const struct llm_drift_result *r = &o[i].res;
		json_t *j = json_pack("{s:s, s:s, s:s}", "column", o[i].col->name, "kind",
				      o[i].kind, "test", llm_drift_test_name(r->test));
		json_object_set_new(j, "statistic", num_or_null(r->statistic));
		json_object_set_new(j, "p_value", num_or_null(r->p_value));
		json_object_set_new(j, "score", num_or_null(r->score));
		json_object_set_new(j, "threshold", json_real(r->threshold));
		json_object_set_new(j, "drifted", json_boolean(r->drifted));
		json_object_set_new(j, "n_ref", json_integer((json_int_t)r->nref));
		json_object_set_new(j, "n_cur", json_integer((json_int_t)r->ncur));
		json_object_set_new(j, "bins", json_integer((json_int_t)r->bins));
		json_object_set_new(j, "distinct", json_integer((json_int_t)r->distinct));
		if (r->test == LLM_DRIFT_KS)
			json_object_set_new(j, "exact", json_boolean(r->exact));
		if (r->test == LLM_DRIFT_WASSERSTEIN)
			json_object_set_new(j, "wasserstein", num_or_null(r->wasserstein));
		json_array_append_new(cols, j);
	}
	json_object_set_new(root, "columns", cols);
	json_object_set_new(root, "skipped", skipped);
	json_object_set_new(root, "tested_columns", json_integer((json_int_t)tested));
	json_object_set_new(root, "drifted_columns", json_integer((json_int_t)drifted));
	json_object_set_new(root, "drift_share", json_real(share));
	json_object_set_new(root, "dataset_drift", json_boolean(dataset));
	return root;
}

static void fmt_num(char *out, size_t n, double v)
{
	if (isnan(v))
		snprintf(out, n, "-");
	else if (isinf(v))
		snprintf(out, n, "inf");
	else if (v != 0 && (fabs(v) < 1e-4 || fabs(v) >= 1e6))
		snprintf(out, n, "%.3e", v);
	else
		snprintf(out, n, "%.4f", v);
}

static bool print_table(struct llm_cli *cl, const struct outcome *o, size_t n, size_t tested,
			size_t drifted, double share, bool dataset, bool color)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	llm_buf_printf(&b, "%-18s %-11s %-13s %11s %11s %9s %8s %8s %5s  %s\n", "column", "kind",
		       "test", "statistic", "p-value", "threshold", "n_ref", "n_cur", "bins",
		       "drift");
	for (size_t i = 0; i < n; i++) {
		if (o[i].skipped) {
			llm_buf_printf(&b, "%-18s %-11s (skipped: %s)\n", o[i].col->name, o[i].kind,
				       o[i].skipped);
			continue;
		}
		const struct llm_drift_result *r = &o[i].res;
		char st[32], p[32], th[32], bins[16];
		fmt_num(st, sizeof st, r->statistic);
		fmt_num(p, sizeof p, r->p_value);
		fmt_num(th, sizeof th, r->threshold);
		snprintf(bins, sizeof bins, r->bins ? "%zu" : "-", r->bins);
		const char *on = color ? (r->drifted ? "\033[31m" : "\033[32m") : "";
		llm_buf_printf(&b, "%-18s %-11s %-13s %11s %11s %9s %8llu %8llu %5s  %s%s%s\n",
			       o[i].col->name, o[i].kind, llm_drift_test_name(r->test), st, p, th,
			       (unsigned long long)r->nref, (unsigned long long)r->ncur, bins, on,
			       r->drifted ? "DRIFT" : "ok", color ? "\033[0m" : "");
	}
	llm_buf_printf(&b, "dataset drift: %s (%zu of %zu columns drifted; drift share %g)\n",
		       dataset ? "yes" : "no", drifted, tested, share);
	bool ok = b.data && llm_cli_write(cl, b.data, b.len);
	llm_buf_free(&b);
	return ok;
}

/* --- the verb ----------------------------------------------------------------------------- */

static int run(struct llm_cli *c)
{
	const char *ref = llm_args_str(&c->args, "reference"),
		   *cur = llm_args_str(&c->args, "current");
	if (c->args.noperands)
		return llm_cli_usage(
		    c, "drift takes no FILE operands: give --reference and --current");
	if (!ref || !cur)
		return llm_cli_usage(c, "drift needs --reference FILE and --current FILE");
	if (!strcmp(ref, "-") && !strcmp(cur, "-"))
		return llm_cli_usage(c, "--reference and --current cannot both be standard input");
	enum llm_drift_test test = LLM_DRIFT_AUTO;
	llm_drift_test_parse(llm_args_str(&c->args, "stattest"), &test);
	double threshold =
	    llm_args_given(&c->args, "threshold") ? llm_args_double(&c->args, "threshold") : NAN;
	double share = llm_args_double(&c->args, "drift-share");
	bool json = !strcmp(llm_args_str(&c->args, "format"), "json");

	struct drift d = {0};
	d.sample = (uint64_t)llm_args_int(&c->args, "sample");
	d.top_words = (size_t)llm_args_int(&c->args, "top-words");
	llm_rand_seed(&d.rand, (uint64_t)llm_args_int(&c->args, "seed"));
	llm_buf_init(&d.tmp, 0);
	int st = 0;
	char **want = NULL;
	size_t nwant = 0;
	if (llm_args_given(&c->args, "columns") &&
	    llm_args_list(&c->args, "columns", &want, &nwant)) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	bool ok = true;
	for (size_t i = 0; i < NBUILTIN; i++)
		ok = ok && add_column(&d, builtin[i].name, (enum col_src)i, builtin[i].type);
	static const struct {
		const char *opt;
		enum col_type type;
	} extra[] = {
	    {"numeric", COL_NUMERIC}, {"categorical", COL_CATEGORICAL}, {"field", COL_AUTO}};
	for (size_t x = 0; x < 3; x++) {
		size_t n;
		char *const *v = llm_args_strs(&c->args, extra[x].opt, &n);
		for (size_t i = 0; i < n; i++) {
			if (!*v[i]) {
				st = llm_cli_usage(c, "--%s: a field name cannot be empty",
						   extra[x].opt);
				goto out;
			}
			ok = ok && add_column(&d, v[i], SRC_FIELD, extra[x].type);
		}
	}
	if (!ok) {
		llm_cli_error(c, "out of memory");
		st = LLM_EXIT_IO;
		goto out;
	}
	if (nwant) {
		/* Keep only the columns asked for, in the order asked. */
		struct column *keep = calloc(nwant, sizeof *keep);
		if (!keep) {
			llm_cli_error(c, "out of memory");
			st = LLM_EXIT_IO;
			goto out;
		}
		for (size_t i = 0; i < nwant; i++) {
			size_t j = 0;
			while (j < d.ncol && strcmp(d.col[j].name, want[i]))
				j++;
			if (j == d.ncol) {
				free(keep);
				st = llm_cli_usage(
				    c,
				    "--columns: no column '%s' (name extra fields with "
				    "--numeric, --categorical or --field)",
				    want[i]);
				goto out;
			}
			keep[i] = d.col[j];
		}
		free(d.col);
		d.col = keep;
		d.ncol = nwant;
	}
	for (size_t i = 0; i < d.ncol; i++)
		d.want_text |= d.col[i].type == COL_WORDS;

	if ((st = read_side(c, &d, 0, ref)) || (st = read_side(c, &d, 1, cur)))
		goto out;

	struct outcome *o = calloc(d.ncol ? d.ncol : 1, sizeof *o);
	if (!o) {
		llm_cli_error(c, "out of memory");
		st = LLM_EXIT_IO;
		goto out;
	}
	size_t tested = 0, drifted = 0;
	for (size_t i = 0; i < d.ncol; i++) {
		enum llm_err e = test_column(&d, &d.col[i], test, threshold, &o[i]);
		if (e) {
			llm_cli_error(c, "%s: %s", d.col[i].name,
				      e == LLM_ERR_NOMEM ? "out of memory" : llm_err_name(e));
			st = LLM_EXIT_IO;
			free(o);
			goto out;
		}
		if (!o[i].skipped) {
			tested++;
			drifted += o[i].res.drifted;
		}
	}
	bool dataset = llm_drift_dataset(drifted, tested, share);
	json_t *rep = report_json(&d, o, d.ncol, ref, cur, test, share, tested, drifted, dataset);
	struct llm_diag diag;
	const char *path = llm_args_str(&c->args, "report");
	if (!rep) {
		llm_cli_error(c, "out of memory");
		st = LLM_EXIT_IO;
	} else if (path && llm_cli_write_json(c, path, rep, &diag)) {
		st = llm_cli_fail(c, &diag);
	} else if (json) {
		if (llm_cli_write_json(c, "-", rep, &diag))
			st = llm_cli_fail(c, &diag);
	} else if (!print_table(c, o, d.ncol, tested, drifted, share, dataset, mon_color(1))) {
		st = LLM_EXIT_IO;
	}
	json_decref(rep);
	free(o);
	if (!st && !tested && !c->quiet)
		llm_cli_error(c, "no column had values in both inputs");
	if (!st && dataset)
		st = LLM_EXIT_NEGATIVE;
out:
	llm_strv_free(want);
	drift_free(&d);
	return st;
}

static const struct llm_opt drift_opts[] = {
    {"reference", 'r', LLM_OPT_STRING, "FILE",
     "the reference log (JSONL, gzip read as such; - for stdin)"},
    {"current", 'c', LLM_OPT_STRING, "FILE", "the current log to compare with it"},
    {"stattest", 's', LLM_OPT_CHOICE, "TEST",
     "run this test on every column it applies to (auto: Evidently's choice per column)", "auto",
     "auto|ks|chisquare|z|wasserstein|jensenshannon|psi"},
    {"threshold", 't', LLM_OPT_DOUBLE, "X",
     "drift when a p-value is below X or a distance at or above X (default 0.05 for p-values, "
     "0.1 for distances)",
     .min = 0, .max = 1e9},
    {"drift-share", 0, LLM_OPT_DOUBLE, "X",
     "dataset drift when at least this share of the columns drift", "0.5", .min = 0, .max = 1},
    {"columns", 'C', LLM_OPT_STRING, "LIST",
     "test only these columns (comma-separated; repeatable)", .repeat = true},
    {"numeric", 0, LLM_OPT_STRING, "FIELD",
     "also test this top-level field as numbers (repeatable)", .repeat = true},
    {"categorical", 0, LLM_OPT_STRING, "FIELD",
     "also test this top-level field as categories (repeatable)", .repeat = true},
    {"field", 0, LLM_OPT_STRING, "FIELD",
     "also test this field: numeric when every value is a number, else categorical (repeatable)",
     .repeat = true},
    {"top-words", 0, LLM_OPT_INT, "K",
     "the word columns: the reference's K most frequent words, the rest as one category", "20",
     .min = 1, .max = 100000},
    {"sample", 0, LLM_OPT_INT, "N", "keep a uniform sample of N events per input (0: all)", "0",
     .min = 0, .max = 1e12},
    {"seed", 0, LLM_OPT_INT, "N", "the seed of --sample", "0", .min = 0, .max = 9.2e18},
    {"format", 'f', LLM_OPT_CHOICE, "FORMAT", "what stdout gets: a table or the JSON report",
     "table", "table|json"},
    {"report", 0, LLM_OPT_STRING, "FILE", "also write the JSON report to FILE (atomically)"},
    {0},
};

const struct llm_verb llm_monitor_verb_drift = {
    "drift",
    "compare a current log with a reference one, column by column",
    "--reference FILE --current FILE [OPTIONS]",
    "Tests each column (lengths, latency, TTFT, token counts, feedback scores, model,\n"
    "finish_reason, status, key_id, the words of prompts and outputs, and fields named\n"
    "with --numeric, --categorical or --field) with Evidently's default test: KS (numeric)\n"
    "or chi-square (categorical; z for two values) at p < 0.05 when the reference has at\n"
    "most 1000 values, normalized Wasserstein or Jensen-Shannon distance >= 0.1 above.\n"
    "Exits 1 when at least --drift-share of the columns drifted.",
    {drift_opts, mon_opts_fields, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base},
    run,
};
