#include "config.h"

#include "serve/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/json.h"

#define DEFAULT_MAX_SERIES 256

struct llm_series {
	struct llm_metric *m;
	struct llm_series *next;  /* creation order */
	struct llm_series *chain; /* hash chain */
	uint64_t hash;
	/* A counter's or gauge's value, or a histogram's sum: the bits of a double, so updates
	 * are one compare-and-swap. */
	_Atomic uint64_t bits;
	_Atomic uint64_t *buckets; /* histogram: nbounds + 1 counts, not cumulative */
	atomic_bool used;	   /* the overflow series shows only once something went there */
	const char *values[LLM_METRIC_LABELS_MAX];
};

struct llm_metric {
	struct llm_metrics *r;
	struct llm_metric *next;
	enum llm_metric_type type;
	char *name;
	char *help;
	char *labels[LLM_METRIC_LABELS_MAX];
	size_t nlabels;
	double *bounds;
	size_t nbounds;
	pthread_rwlock_t lock; /* the series list and table; values are atomic */
	struct llm_series *first, *last;
	size_t nseries;
	struct llm_series **table;
	size_t mask;
	struct llm_series *overflow;
};

struct llm_metrics {
	pthread_mutex_t lock; /* the family list */
	struct llm_metric *first, *last;
	size_t max_series;
};

static uint64_t dbits(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof b);
	return b;
}

static double bitsd(uint64_t b)
{
	double v;
	memcpy(&v, &b, sizeof v);
	return v;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(p, &old, dbits(bitsd(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

enum llm_err llm_metrics_new(struct llm_metrics **out, size_t max_series)
{
	*out = NULL;
	struct llm_metrics *r = calloc(1, sizeof *r);
	if (!r)
		return LLM_ERR_NOMEM;
	pthread_mutex_init(&r->lock, NULL);
	r->max_series = max_series ? max_series : DEFAULT_MAX_SERIES;
	*out = r;
	return LLM_OK;
}

static void series_free(struct llm_series *s)
{
	free(s);
}

static void metric_free(struct llm_metric *m)
{
	for (struct llm_series *s = m->first, *n; s; s = n) {
		n = s->next;
		series_free(s);
	}
	series_free(m->overflow);
	free(m->table);
	free(m->bounds);
	for (size_t i = 0; i < m->nlabels; i++)
		free(m->labels[i]);
	free(m->name);
	free(m->help);
	pthread_rwlock_destroy(&m->lock);
	free(m);
}

void llm_metrics_free(struct llm_metrics *r)
{
	if (!r)
		return;
	for (struct llm_metric *m = r->first, *n; m; m = n) {
		n = m->next;
		metric_free(m);
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static bool name_ok(const char *s, bool colon)
{
	if (!s || !*s)
		return false;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* True when the two names would write the same sample name (a histogram's _bucket, _sum and
 * _count lines included). */
static bool names_clash(const struct llm_metric *m, const char *name, enum llm_metric_type type)
{
	if (strcmp(m->name, name) == 0)
		return true;
	static const char *const sfx[] = {"_bucket", "_sum", "_count"};
	size_t n = strlen(name), k = strlen(m->name);
	for (int i = 0; i < 3; i++) {
		size_t s = strlen(sfx[i]);
		if (m->type == LLM_METRIC_HISTOGRAM && n == k + s &&
		    strncmp(name, m->name, k) == 0 && strcmp(name + k, sfx[i]) == 0)
			return true;
		if (type == LLM_METRIC_HISTOGRAM && k == n + s && strncmp(m->name, name, n) == 0 &&
		    strcmp(m->name + n, sfx[i]) == 0)
			return true;
	}
	return false;
}

/* One allocation: the series, its bucket counts, then its label values. */
static struct llm_series *series_new(struct llm_metric *m, const char *const *values,
				     const size_t *lens)
{
	size_t nb = m->type == LLM_METRIC_HISTOGRAM ? m->nbounds + 1 : 0;
	size_t size = sizeof(struct llm_series) + nb * sizeof(_Atomic uint64_t);
	for (size_t i = 0; i < m->nlabels; i++)
		size += lens[i] + 1;
	struct llm_series *s = calloc(1, size);
	if (!s)
		return NULL;
	s->m = m;
	atomic_init(&s->bits, dbits(0.0));
	atomic_init(&s->used, false);
	s->buckets = nb ? (_Atomic uint64_t *)(s + 1) : NULL;
	for (size_t i = 0; i < nb; i++)
		atomic_init(&s->buckets[i], 0);
	char *p = (char *)(s + 1) + nb * sizeof(_Atomic uint64_t);
	for (size_t i = 0; i < m->nlabels; i++) {
		memcpy(p, values[i], lens[i]);
		p[lens[i]] = '\0';
		s->values[i] = p;
		p += lens[i] + 1;
	}
	return s;
}

static enum llm_err metric_register(struct llm_metrics *r, enum llm_metric_type type,
				    const char *name, const char *help, const char *const *labels,
				    const double *bounds, size_t nbounds, struct llm_metric **out,
				    struct llm_diag *diag)
{
	*out = NULL;
	if (!name_ok(name, true))
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "bad metric name '%.100s'",
				    name ? name : "");
	if (type == LLM_METRIC_COUNTER && !ends_with(name, "_total"))
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "counter %.100s: a counter's name ends in _total", name);
	size_t nl = 0;
	while (labels && labels[nl]) {
		const char *ln = labels[nl];
		if (nl == LLM_METRIC_LABELS_MAX)
			return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
					    "%.100s: more than %d labels", name,
					    LLM_METRIC_LABELS_MAX);
		if (!name_ok(ln, false) || strncmp(ln, "__", 2) == 0 ||
		    (type == LLM_METRIC_HISTOGRAM && strcmp(ln, "le") == 0))
			return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
					    "%.100s: bad label name '%.100s'", name, ln);
		for (size_t j = 0; j < nl; j++)
			if (strcmp(labels[j], ln) == 0)
				return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
						    "%.100s: label '%.100s' given twice", name, ln);
		nl++;
	}
	if (type == LLM_METRIC_HISTOGRAM) {
		if (nbounds > LLM_METRIC_BUCKETS_MAX)
			return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
					    "%.100s: more than %d buckets", name,
					    LLM_METRIC_BUCKETS_MAX);
		for (size_t i = 0; i < nbounds; i++)
			if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
				return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
						    "%.100s: bucket bounds must be finite and "
						    "increasing",
						    name);
	}

	struct llm_metric *m = calloc(1, sizeof *m);
	if (!m)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	pthread_rwlock_init(&m->lock, NULL);
	m->r = r;
	m->type = type;
	m->name = strdup(name);
	m->help = strdup(help ? help : "");
	bool ok = m->name && m->help;
	for (size_t i = 0; i < nl && ok; i++) {
		m->labels[i] = strdup(labels[i]);
		m->nlabels = i + 1;
		ok = m->labels[i] != NULL;
	}
	if (ok && type == LLM_METRIC_HISTOGRAM && nbounds) {
		m->bounds = malloc(nbounds * sizeof *m->bounds);
		ok = m->bounds != NULL;
		if (ok)
			memcpy(m->bounds, bounds, nbounds * sizeof *bounds);
	}
	m->nbounds = type == LLM_METRIC_HISTOGRAM ? nbounds : 0;
	size_t cap = 16;
	while (cap < 2 * r->max_series)
		cap *= 2;
	if (ok) {
		m->table = calloc(cap, sizeof *m->table);
		m->mask = cap - 1;
		ok = m->table != NULL;
	}
	if (ok) {
		const char *ov[LLM_METRIC_LABELS_MAX];
		size_t ol[LLM_METRIC_LABELS_MAX];
		for (size_t i = 0; i < nl; i++) {
			ov[i] = LLM_METRIC_OVERFLOW;
			ol[i] = strlen(LLM_METRIC_OVERFLOW);
		}
		m->overflow = series_new(m, ov, ol);
		ok = m->overflow != NULL;
	}
	if (!ok) {
		metric_free(m);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	pthread_mutex_lock(&r->lock);
	for (struct llm_metric *o = r->first; o; o = o->next)
		if (names_clash(o, name, type)) {
			pthread_mutex_unlock(&r->lock);
			metric_free(m);
			return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
					    "metric %.100s clashes with %.100s, registered before",
					    name, o->name);
		}
	if (r->last)
		r->last->next = m;
	else
		r->first = m;
	r->last = m;
	pthread_mutex_unlock(&r->lock);
	/* A family without labels has its one series from the start, showing 0. */
	if (nl == 0)
		llm_metric_series(m, NULL);
	*out = m;
	return LLM_OK;
}

enum llm_err llm_metrics_counter(struct llm_metrics *r, const char *name, const char *help,
				 const char *const *labels, struct llm_metric **out,
				 struct llm_diag *diag)
{
	return metric_register(r, LLM_METRIC_COUNTER, name, help, labels, NULL, 0, out, diag);
}

enum llm_err llm_metrics_gauge(struct llm_metrics *r, const char *name, const char *help,
			       const char *const *labels, struct llm_metric **out,
			       struct llm_diag *diag)
{
	return metric_register(r, LLM_METRIC_GAUGE, name, help, labels, NULL, 0, out, diag);
}

enum llm_err llm_metrics_histogram(struct llm_metrics *r, const char *name, const char *help,
				   const char *const *labels, const double *bounds, size_t nbounds,
				   struct llm_metric **out, struct llm_diag *diag)
{
	return metric_register(r, LLM_METRIC_HISTOGRAM, name, help, labels, bounds, nbounds, out,
			       diag);
}

static struct llm_series *find_series(struct llm_metric *m, const char *const *values,
				      const size_t *lens, uint64_t h)
{
	for (struct llm_series *s = m->table[h & m->mask]; s; s = s->chain) {
		if (s->hash != h)
			continue;
		size_t i = 0;
		while (i < m->nlabels && strlen(s->values[i]) == lens[i] &&
		       memcmp(s->values[i], values[i], lens[i]) == 0)
			i++;
		if (i == m->nlabels)
			return s;
	}
	return NULL;
}

static struct llm_series *overflow(struct llm_metric *m)
{
	atomic_store_explicit(&m->overflow->used, true, memory_order_relaxed);
	return m->overflow;
}

struct llm_series *llm_metric_series(struct llm_metric *m, const char *const *values)
{
	const char *v[LLM_METRIC_LABELS_MAX];
	size_t lens[LLM_METRIC_LABELS_MAX];
	if (m->nlabels && !values)
		return overflow(m);
	uint64_t h = 0x6d6574726963ULL;
	for (size_t i = 0; i < m->nlabels; i++) {
		v[i] = values[i] ? values[i] : "";
		lens[i] = strnlen(v[i], LLM_METRIC_VALUE_MAX + 1);
		if (lens[i] > LLM_METRIC_VALUE_MAX ||
		    llm_utf8_valid_prefix(v[i], lens[i]) != lens[i])
			return overflow(m);
		/* The length goes into the hash too, so ("ab","c") and ("a","bc") differ. */
		h = llm_hash64(v[i], lens[i], h ^ lens[i]);
	}
	pthread_rwlock_rdlock(&m->lock);
	struct llm_series *s = find_series(m, v, lens, h);
	pthread_rwlock_unlock(&m->lock);
	if (s)
		return s;
	pthread_rwlock_wrlock(&m->lock);
	s = find_series(m, v, lens, h);
	if (!s && m->nseries < m->r->max_series && (s = series_new(m, v, lens))) {
		s->hash = h;
		s->chain = m->table[h & m->mask];
		m->table[h & m->mask] = s;
		if (m->last)
			m->last->next = s;
		else
			m->first = s;
		m->last = s;
		m->nseries++;
	}
	pthread_rwlock_unlock(&m->lock);
	return s ? s : overflow(m);
}

void llm_series_add(struct llm_series *s, double v)
{
	if (s->m->type == LLM_METRIC_HISTOGRAM)
		return;
	if (s->m->type == LLM_METRIC_COUNTER && !(v >= 0))
		return;
	atomic_add_double(&s->bits, v);
}

void llm_series_set(struct llm_series *s, double v)
{
	if (s->m->type != LLM_METRIC_GAUGE)
		return;
	atomic_store_explicit(&s->bits, dbits(v), memory_order_relaxed);
}

void llm_series_observe(struct llm_series *s, double v)
{
	const struct llm_metric *m = s->m;
	if (m->type != LLM_METRIC_HISTOGRAM || isnan(v))
		return;
	/* The first bound >= v (a bucket counts values less than or equal to its bound). */
	size_t lo = 0, hi = m->nbounds;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v <= m->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
	atomic_add_double(&s->bits, v);
}

double llm_series_value(const struct llm_series *s)
{
	if (s->m->type != LLM_METRIC_HISTOGRAM)
		return bitsd(atomic_load_explicit(&s->bits, memory_order_relaxed));
	uint64_t n = 0;
	for (size_t i = 0; i <= s->m->nbounds; i++)
		n += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
	return (double)n;
}

void llm_metric_add(struct llm_metric *m, const char *const *values, double v)
{
	llm_series_add(llm_metric_series(m, values), v);
}

void llm_metric_set(struct llm_metric *m, const char *const *values, double v)
{
	llm_series_set(llm_metric_series(m, values), v);
}

void llm_metric_observe(struct llm_metric *m, const char *const *values, double v)
{
	llm_series_observe(llm_metric_series(m, values), v);
}

/* The shortest decimal that reads back as v; Prometheus's spellings of the infinities. */
static void format_number(double v, char out[32])
{
	if (isnan(v)) {
		snprintf(out, 32, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, 32, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(out, 32, "%.0f", v);
		if (strcmp(out, "-0") == 0)
			snprintf(out, 32, "0");
		return;
	}
	/* A double has 15 to 17 significant digits; %g drops the trailing zeros, so the first
	 * precision that reads back is the shortest form. */
	for (int p = 15; p <= 17; p++) {
		snprintf(out, 32, "%.*g", p, v);
		if (p == 17 || strtod(out, NULL) == v)
			return;
	}
}

static enum llm_err put_escaped(struct llm_buf *b, const char *s, bool quote)
{
	enum llm_err e = LLM_OK;
	size_t run = 0, i = 0;
	for (; s[i] && !e; i++) {
		const char *esc = NULL;
		if (s[i] == '\\')
			esc = "\\\\";
		else if (s[i] == '\n')
			esc = "\\n";
		else if (quote && s[i] == '"')
			esc = "\\\"";
		if (!esc)
			continue;
		e = llm_buf_append(b, s + run, i - run);
		if (!e)
			e = llm_buf_puts(b, esc);
		run = i + 1;
	}
	if (!e)
		e = llm_buf_append(b, s + run, i - run);
	return e;
}

/* NAME{labels[,le="B"]} VALUE\n */
static enum llm_err put_sample(struct llm_buf *b, const struct llm_metric *m, const char *suffix,
			       const struct llm_series *s, const char *le, double v)
{
	enum llm_err e = llm_buf_puts(b, m->name);
	if (!e)
		e = llm_buf_puts(b, suffix);
	bool any = m->nlabels || le;
	if (!e && any)
		e = llm_buf_putc(b, '{');
	for (size_t i = 0; i < m->nlabels && !e; i++) {
		e = llm_buf_printf(b, "%s%s=\"", i ? "," : "", m->labels[i]);
		if (!e)
			e = put_escaped(b, s->values[i], true);
		if (!e)
			e = llm_buf_putc(b, '"');
	}
	if (!e && le)
		e = llm_buf_printf(b, "%sle=\"%s\"", m->nlabels ? "," : "", le);
	if (!e && any)
		e = llm_buf_putc(b, '}');
	char num[32];
	format_number(v, num);
	if (!e)
		e = llm_buf_printf(b, " %s\n", num);
	return e;
}

static enum llm_err put_series(struct llm_buf *b, const struct llm_metric *m,
			       const struct llm_series *s)
{
	if (m->type != LLM_METRIC_HISTOGRAM)
		return put_sample(b, m, "", s, NULL,
				  bitsd(atomic_load_explicit(&s->bits, memory_order_relaxed)));
	/* Read every bucket once and derive _count from them, so the +Inf bucket and _count
	 * agree even while other threads observe. */
	uint64_t cum = 0;
	enum llm_err e = LLM_OK;
	char le[32];
	for (size_t i = 0; i <= m->nbounds && !e; i++) {
		cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
		format_number(i < m->nbounds ? m->bounds[i] : INFINITY, le);
		e = put_sample(b, m, "_bucket", s, le, (double)cum);
	}
	if (!e)
		e = put_sample(b, m, "_sum", s, NULL,
			       bitsd(atomic_load_explicit(&s->bits, memory_order_relaxed)));
	if (!e)
		e = put_sample(b, m, "_count", s, NULL, (double)cum);
	return e;
}

enum llm_err llm_metrics_write(struct llm_metrics *r, struct llm_buf *out)
{
	static const char *const type_names[] = {"counter", "gauge", "histogram"};
	enum llm_err e = LLM_OK;
	pthread_mutex_lock(&r->lock);
	for (struct llm_metric *m = r->first; m && !e; m = m->next) {
		pthread_rwlock_rdlock(&m->lock);
		bool ov = atomic_load_explicit(&m->overflow->used, memory_order_relaxed);
		if (m->first || ov) {
			e = llm_buf_printf(out, "# HELP %s ", m->name);
			if (!e)
				e = put_escaped(out, m->help, false);
			if (!e)
				e = llm_buf_printf(out, "\n# TYPE %s %s\n", m->name,
						   type_names[m->type]);
			for (const struct llm_series *s = m->first; s && !e; s = s->next)
				e = put_series(out, m, s);
			if (!e && ov)
				e = put_series(out, m, m->overflow);
		}
		pthread_rwlock_unlock(&m->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return e;
}

/* vLLM's bounds (vllm/engine/metrics.py), with sub-millisecond bounds in front for a gateway
 * and for small models on the CPU, whose times vLLM's first bucket would swallow. */
static const double ttft_bounds[] = {0.00025, 0.0005, 0.001, 0.005, 0.01, 0.02,	 0.04,	0.06,
				     0.08,    0.1,    0.25,  0.5,   0.75, 1.0,	 2.5,	5.0,
				     7.5,     10.0,   20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
static const double tpot_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075,
				     0.1,    0.15,  0.2,    0.3,   0.4,	 0.5,	0.75, 1.0,
				     2.5,    5.0,   7.5,    10.0,  20.0, 40.0,	80.0};
static const double e2e_bounds[] = {0.001, 0.0025, 0.005, 0.01,	 0.025, 0.05,	0.1,
				    0.3,   0.5,	   0.8,	  1.0,	 1.5,	2.0,	2.5,
				    5.0,   10.0,   15.0,  20.0,	 30.0,	40.0,	50.0,
				    60.0,  120.0,  240.0, 480.0, 960.0, 1920.0, 7680.0};
static const double queue_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,  0.01,  0.025,
				      0.05,   0.1,     0.3,    0.5,   0.8,    1.0,    1.5,   2.0,
				      2.5,    5.0,     10.0,   15.0,  20.0,   30.0,   40.0,  50.0,
				      60.0,   120.0,   240.0,  480.0, 960.0,  1920.0, 7680.0};

#define NB(a) (sizeof(a) / sizeof(a)[0])

enum llm_err llm_serve_metrics_register(struct llm_metrics *r, struct llm_serve_metrics *o,
					struct llm_diag *diag)
{
	static const char *const by_model[] = {"model", NULL};
	static const char *const by_request[] = {"model", "endpoint", "status", NULL};
	static const char *const by_upstream[] = {"upstream", NULL};
	static const char *const by_upstream_status[] = {"upstream", "status", NULL};
	static const char *const by_reason[] = {"reason", NULL};
	memset(o, 0, sizeof *o);
	enum llm_err e;
	if ((e = llm_metrics_counter(r, "llmops_requests_total",
				     "Requests answered, by model, endpoint and HTTP status.",
				     by_request, &o->requests, diag)) ||
	    (e = llm_metrics_histogram(r, "llmops_time_to_first_token_seconds",
				       "Time from a request's arrival to its first output token.",
				       by_model, ttft_bounds, NB(ttft_bounds), &o->ttft, diag)) ||
	    (e = llm_metrics_histogram(r, "llmops_time_per_output_token_seconds",
				       "Time per output token after the first.", by_model,
				       tpot_bounds, NB(tpot_bounds), &o->tpot, diag)) ||
	    (e = llm_metrics_histogram(r, "llmops_e2e_request_latency_seconds",
				       "Time from a request's arrival to its last byte.", by_model,
				       e2e_bounds, NB(e2e_bounds), &o->e2e, diag)) ||
	    (e = llm_metrics_histogram(r, "llmops_queue_time_seconds",
				       "Time a request waited before its work began.", by_model,
				       queue_bounds, NB(queue_bounds), &o->queue, diag)) ||
	    (e = llm_metrics_counter(r, "llmops_prompt_tokens_total", "Prompt tokens processed.",
				     by_model, &o->prompt_tokens, diag)) ||
	    (e = llm_metrics_counter(r, "llmops_generation_tokens_total",
				     "Output tokens generated.", by_model, &o->generation_tokens,
				     diag)) ||
	    (e = llm_metrics_gauge(r, "llmops_requests_running",
				   "Requests being decoded or proxied now.", by_model, &o->running,
				   diag)) ||
	    (e = llm_metrics_gauge(r, "llmops_requests_waiting", "Requests queued for a slot.",
				   by_model, &o->waiting, diag)) ||
	    (e = llm_metrics_counter(r, "llmops_upstream_requests_total",
				     "Attempts sent to each upstream, by HTTP status (error: none "
				     "came back).",
				     by_upstream_status, &o->upstream_requests, diag)) ||
	    (e = llm_metrics_counter(r, "llmops_upstream_retries_total",
				     "Attempts repeated after an upstream failed.", by_upstream,
				     &o->upstream_retries, diag)) ||
	    (e = llm_metrics_counter(r, "llmops_upstream_fallbacks_total",
				     "Requests moved to a fallback model.", by_model,
				     &o->upstream_fallbacks, diag)) ||
	    (e = llm_metrics_gauge(r, "llmops_upstream_healthy",
				   "1 when the upstream's last health probe passed, else 0.",
				   by_upstream, &o->upstream_healthy, diag)) ||
	    (e = llm_metrics_counter(r, "llmops_rate_limited_total",
				     "Requests refused with 429, by reason.", by_reason,
				     &o->rate_limited, diag)))
		return e;
	return LLM_OK;
}
