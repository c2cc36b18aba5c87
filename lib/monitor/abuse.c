/* Traffic-abuse detectors: rate spikes and long-prompt floods per key, near-identical prompts
 * across keys (see abuse.h for the rules). */
#include "config.h"

#include "monitor/abuse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/minhash.h"

#define NB		10  /* buckets in a window */
#define WARM_WINDOWS	5   /* a key's baseline counts after this many windows */
#define DUP_PERM	128 /* MinHash signature length */
#define DUP_NGRAM	2   /* words per shingle: prompts are short */
#define DUP_SEED	0x61627573652d6475ULL
#define KEY_SEED	0x61627573652d6b65ULL
#define LEN_BUCKETS	256
#define LEN_PER_OCTAVE	8    /* length buckets per doubling: 9 % wide */
#define LEN_MIN_HISTORY 1000 /* lengths known before the percentile counts */
#define NONE		UINT32_MAX

void llm_abuse_config_init(struct llm_abuse_config *cfg)
{
	*cfg = (struct llm_abuse_config){
	    .kinds = LLM_ABUSE_ALL,
	    .rate_window_ms = 60 * 1000,
	    .rate_baseline_ms = 3600 * 1000,
	    .rate_factor = 5,
	    .rate_min = 30,
	    .max_rate = 10,
	    .max_keys = 10000,
	    .dup_window_ms = 600 * 1000,
	    .dup_max_prompts = 10000,
	    .dup_threshold = 0.7,
	    .dup_count = 20,
	    .dup_min_words = 5,
	    .long_window_ms = 300 * 1000,
	    .long_percentile = 99,
	    .long_min_chars = 2000,
	    .long_count = 10,
	    .long_history = 10000,
	};
}

/* ---- sliding windows of ten buckets ------------------------------------------------------ */

struct ring {
	int64_t bucket; /* the current bucket's number (time / bucket width); INT64_MIN: none */
	uint32_t c[NB];
	uint32_t sum;
	uint8_t head;
};

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* An exponentially weighted mean with Adam's bias correction: mean = m / w. */
struct ewma {
	double m, w;
};

static void ewma_add(struct ewma *e, double x, double alpha)
{
	e->m += alpha * (x - e->m);
	e->w += alpha * (1 - e->w);
}

/* k zeros at once: the mean decays, the weight grows towards 1. */
static void ewma_zeros(struct ewma *e, double k, double alpha)
{
	double keep = pow(1 - alpha, k);
	e->m *= keep;
	e->w = 1 - keep * (1 - e->w);
}

/* Move r to bucket b (never backwards); the buckets that leave the window go into e (when
 * not NULL). */
static void ring_move(struct ring *r, int64_t b, struct ewma *e, double alpha)
{
	if (r->bucket == INT64_MIN) {
		r->bucket = b;
		return;
	}
	if (b <= r->bucket)
		return;
	int64_t k = b - r->bucket;
	int64_t steps = k < NB ? k : NB;
	for (int64_t i = 0; i < steps; i++) {
		r->head = (uint8_t)((r->head + 1) % NB);
		uint32_t leaving = r->c[r->head];
		r->sum -= leaving;
		r->c[r->head] = 0;
		if (e)
			ewma_add(e, leaving, alpha);
	}
	if (e && k > steps)
		ewma_zeros(e, (double)(k - steps), alpha);
	r->bucket = b;
}

static void ring_count(struct ring *r)
{
	r->c[r->head]++;
	r->sum++;
}

/* ---- keys -------------------------------------------------------------------------------- */

struct key {
	uint64_t hash;
	uint32_t chain;	     /* next key in the same hash bucket */
	uint32_t prev, next; /* the recency list, most recent first */
	int64_t first_ms;
	struct ring rate, lng;
	struct ewma base; /* requests per bucket, over the buckets that left the window */
	bool rate_on, long_on;
};

/* ---- near-duplicate window --------------------------------------------------------------- */

struct entry {
	int64_t ts;
	uint64_t key;
	uint32_t cluster;
};

struct node {
	uint64_t h; /* the band's key, hashed with the band's number */
	uint32_t next;
	bool linked;
};

struct cluster {
	uint32_t count;
	uint32_t next_report;
	uint32_t next_free;
};

struct llm_abuse {
	struct llm_abuse_config cfg;
	int64_t now;
	/* keys */
	struct key *keys;
	uint32_t nkeys, capkeys;
	uint32_t *heads;
	uint32_t mask;
	uint32_t mru, lru;
	double rate_alpha;
	/* near-duplicates */
	bool dup_on;
	struct llm_minhash mh;
	unsigned bands;
	struct entry *ent;
	uint32_t *sigs;
	struct node *nodes;
	uint32_t *dheads;
	uint32_t dmask;
	uint32_t cap, first, count; /* the ring of entries */
	struct cluster *cl;
	uint32_t free_cl, nclusters;
	uint64_t *scratch; /* the keys of one cluster, for counting them */
	/* lengths */
	uint8_t *lens;
	uint32_t len_cap, len_n, len_pos;
	uint32_t hist[LEN_BUCKETS];
};

static uint32_t pow2_at_least(uint64_t n)
{
	uint32_t p = 16;
	while (p < n && p < (1u << 30))
		p <<= 1;
	return p;
}

static bool on(const struct llm_abuse *a, enum llm_abuse_kind k)
{
	return a->cfg.kinds & (1u << k);
}

static enum llm_err check(const struct llm_abuse_config *c, struct llm_diag *diag)
{
#define BAD(...) return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, __VA_ARGS__)
	if (c->kinds & ~LLM_ABUSE_ALL)
		BAD("abuse kinds: unknown kind in the mask");
	if (c->rate_window_ms < 10 || c->dup_window_ms < 1 || c->long_window_ms < 10)
		BAD("abuse windows must be at least 10ms");
	if (c->rate_baseline_ms < 1)
		BAD("the rate baseline must be at least 1ms");
	if (!(c->rate_factor >= 1))
		BAD("the rate factor must be at least 1");
	if (c->rate_min < 1 || c->long_count < 1)
		BAD("abuse counts must be at least 1");
	if (c->dup_count < 2)
		BAD("a near-duplicate cluster must count at least 2 prompts");
	if (!(c->max_rate >= 0))
		BAD("the maximum rate must not be negative");
	if (c->max_keys < 1 || c->max_keys > (1u << 24))
		BAD("the keys tracked must be from 1 to %u", 1u << 24);
	if (c->dup_max_prompts < 2 || c->dup_max_prompts > (1u << 22))
		BAD("the prompts held must be from 2 to %u", 1u << 22);
	if (!(c->dup_threshold > 0 && c->dup_threshold <= 1))
		BAD("the near-duplicate threshold must be in (0, 1]");
	if (!(c->long_percentile >= 0 && c->long_percentile <= 100))
		BAD("the length percentile must be from 0 to 100");
	if (c->long_min_chars < 0)
		BAD("the long-prompt length must not be negative");
	if (c->long_history < 1 || c->long_history > (1u << 24))
		BAD("the lengths held must be from 1 to %u", 1u << 24);
	return LLM_OK;
#undef BAD
}

enum llm_err llm_abuse_new(struct llm_abuse **out, const struct llm_abuse_config *cfg,
			   struct llm_diag *diag)
{
	*out = NULL;
	enum llm_err e = check(cfg, diag);
	if (e)
		return e;
	struct llm_abuse *a = calloc(1, sizeof *a);
	if (!a)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	a->cfg = *cfg;
	if (!a->cfg.kinds)
		a->cfg.kinds = LLM_ABUSE_ALL;
	a->now = INT64_MIN;
	a->mru = a->lru = NONE;
	a->free_cl = NONE;
	/* Per bucket: the weight of a bucket in a mean with time constant rate_baseline_ms. */
	a->rate_alpha =
	    1 - exp(-(double)(cfg->rate_window_ms / NB) / (double)cfg->rate_baseline_ms);
	if (on(a, LLM_ABUSE_RATE_SPIKE) || on(a, LLM_ABUSE_LONG_PROMPTS)) {
		uint32_t nh = pow2_at_least((uint64_t)cfg->max_keys * 2);
		a->heads = malloc(nh * sizeof *a->heads);
		if (!a->heads)
			goto nomem;
		memset(a->heads, 0xff, nh * sizeof *a->heads);
		a->mask = nh - 1;
	}
	if (on(a, LLM_ABUSE_LONG_PROMPTS)) {
		a->len_cap = (uint32_t)cfg->long_history;
		if (!(a->lens = malloc(a->len_cap)))
			goto nomem;
	}
	if (on(a, LLM_ABUSE_NEAR_DUPLICATES)) {
		unsigned bands, rows;
		llm_minhash_optimal_param(cfg->dup_threshold, DUP_PERM, 0.5, 0.5, &bands, &rows);
		struct llm_minhash_params p = {DUP_PERM, DUP_NGRAM, bands, rows, DUP_SEED, true};
		if ((e = llm_minhash_init(&a->mh, &p, diag)) != LLM_OK) {
			free(a->heads);
			free(a->lens);
			free(a);
			return e;
		}
		a->dup_on = true;
		a->bands = bands;
		a->cap = (uint32_t)cfg->dup_max_prompts;
		uint32_t nh = pow2_at_least((uint64_t)a->cap * bands);
		a->dmask = nh - 1;
		a->ent = malloc(a->cap * sizeof *a->ent);
		a->sigs = malloc((size_t)a->cap * DUP_PERM * sizeof *a->sigs);
		a->nodes = calloc((size_t)a->cap * bands, sizeof *a->nodes);
		a->dheads = malloc(nh * sizeof *a->dheads);
		a->cl = malloc(a->cap * sizeof *a->cl);
		a->scratch = malloc(a->cap * sizeof *a->scratch);
		if (!a->ent || !a->sigs || !a->nodes || !a->dheads || !a->cl || !a->scratch)
			goto nomem;
		memset(a->dheads, 0xff, nh * sizeof *a->dheads);
		for (uint32_t i = 0; i < a->cap; i++)
			a->cl[i].next_free = i + 1 < a->cap ? i + 1 : NONE;
		a->free_cl = 0;
	}
	*out = a;
	return LLM_OK;
nomem:
	llm_abuse_free(a);
	return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
}

void llm_abuse_free(struct llm_abuse *a)
{
	if (!a)
		return;
	free(a->keys);
	free(a->heads);
	free(a->lens);
	if (a->dup_on)
		llm_minhash_free(&a->mh);
	free(a->ent);
	free(a->sigs);
	free(a->nodes);
	free(a->dheads);
	free(a->cl);
	free(a->scratch);
	free(a);
}

/* ---- keys -------------------------------------------------------------------------------- */

static void lru_unlink(struct llm_abuse *a, uint32_t i)
{
	struct key *k = &a->keys[i];
	if (k->prev != NONE)
		a->keys[k->prev].next = k->next;
	else
		a->mru = k->next;
	if (k->next != NONE)
		a->keys[k->next].prev = k->prev;
	else
		a->lru = k->prev;
}

static void lru_front(struct llm_abuse *a, uint32_t i)
{
	struct key *k = &a->keys[i];
	k->prev = NONE;
	k->next = a->mru;
	if (a->mru != NONE)
		a->keys[a->mru].prev = i;
	a->mru = i;
	if (a->lru == NONE)
		a->lru = i;
}

static void chain_remove(struct llm_abuse *a, uint32_t i)
{
	uint32_t *p = &a->heads[a->keys[i].hash & a->mask];
	while (*p != NONE && *p != i)
		p = &a->keys[*p].chain;
	if (*p == i)
		*p = a->keys[i].chain;
}

/* The key's state, made (or taken from the least recently seen key) when new; NULL only for
 * want of memory. */
static struct key *key_get(struct llm_abuse *a, uint64_t h, int64_t now)
{
	uint32_t b = (uint32_t)(h & a->mask);
	for (uint32_t i = a->heads[b]; i != NONE; i = a->keys[i].chain)
		if (a->keys[i].hash == h) {
			if (a->mru != i) {
				lru_unlink(a, i);
				lru_front(a, i);
			}
			return &a->keys[i];
		}
	uint32_t i;
	if (a->nkeys < a->cfg.max_keys) {
		if (a->nkeys == a->capkeys) {
			uint32_t cap = a->capkeys ? a->capkeys * 2 : 64;
			if (cap > a->cfg.max_keys)
				cap = (uint32_t)a->cfg.max_keys;
			struct key *k = realloc(a->keys, cap * sizeof *k);
			if (!k)
				return NULL;
			a->keys = k;
			a->capkeys = cap;
		}
		i = a->nkeys++;
	} else {
		i = a->lru;
		lru_unlink(a, i);
		chain_remove(a, i);
	}
	struct key *k = &a->keys[i];
	memset(k, 0, sizeof *k);
	k->hash = h;
	k->first_ms = now;
	k->rate.bucket = k->lng.bucket = INT64_MIN;
	k->chain = a->heads[b];
	a->heads[b] = i;
	lru_front(a, i);
	return k;
}

static double score_of(double count, double threshold)
{
	double s = count / (2 * threshold);
	return s > 1 ? 1 : s;
}

static void rate_check(struct llm_abuse *a, struct key *k, int64_t now,
		       struct llm_abuse_findings *out)
{
	const struct llm_abuse_config *c = &a->cfg;
	int64_t width = c->rate_window_ms / NB;
	ring_move(&k->rate, floor_div(now, width), &k->base, a->rate_alpha);
	ring_count(&k->rate);
	double t_abs =
	    c->max_rate > 0 ? ceil(c->max_rate * (double)c->rate_window_ms / 1000) : INFINITY;
	if (t_abs < 1)
		t_abs = 1;
	bool warm = now - k->first_ms >= WARM_WINDOWS * c->rate_window_ms;
	double base = warm && k->base.w > 0 ? k->base.m / k->base.w * NB : -1;
	double t_rel = warm ? fmax((double)c->rate_min, c->rate_factor * base) : INFINITY;
	double t = fmin(t_abs, t_rel);
	double n = k->rate.sum;
	if (!k->rate_on && n >= t) {
		k->rate_on = true;
		out->f[out->n++] = (struct llm_abuse_finding){
		    .kind = LLM_ABUSE_RATE_SPIKE,
		    .detector = n >= t_abs ? "rate_absolute" : "rate_relative",
		    .score = score_of(n, t),
		    .count = k->rate.sum,
		    .threshold = t,
		    .window_ms = c->rate_window_ms,
		    .baseline = base,
		    .limit_chars = -1,
		};
	} else if (k->rate_on && (isinf(t) || n <= t / 2)) {
		k->rate_on = false;
	}
}

/* ---- lengths ----------------------------------------------------------------------------- */

static unsigned len_bucket(int64_t chars)
{
	double b = floor(LEN_PER_OCTAVE * log2(1.0 + (double)chars));
	return b >= LEN_BUCKETS - 1 ? LEN_BUCKETS - 1 : (unsigned)b;
}

/* The longest length in bucket b. */
static int64_t len_upper(unsigned b)
{
	return (int64_t)ceil(exp2((double)(b + 1) / LEN_PER_OCTAVE) - 1);
}

static int64_t long_limit(const struct llm_abuse *a)
{
	int64_t limit = a->cfg.long_min_chars;
	if (a->cfg.long_percentile <= 0 || a->len_n < LEN_MIN_HISTORY)
		return limit;
	uint64_t want = (uint64_t)ceil(a->cfg.long_percentile / 100 * a->len_n);
	if (want < 1)
		want = 1;
	uint64_t cum = 0;
	for (unsigned b = 0; b < LEN_BUCKETS; b++) {
		cum += a->hist[b];
		if (cum >= want) {
			int64_t p = len_upper(b);
			return p > limit ? p : limit;
		}
	}
	return limit;
}

static void len_add(struct llm_abuse *a, int64_t chars)
{
	uint8_t b = (uint8_t)len_bucket(chars);
	if (a->len_n == a->len_cap)
		a->hist[a->lens[a->len_pos]]--;
	else
		a->len_n++;
	a->lens[a->len_pos] = b;
	a->hist[b]++;
	a->len_pos = (a->len_pos + 1) % a->len_cap;
}

static void long_check(struct llm_abuse *a, struct key *k, int64_t now, int64_t chars,
		       struct llm_abuse_findings *out)
{
	const struct llm_abuse_config *c = &a->cfg;
	int64_t limit = long_limit(a);
	ring_move(&k->lng, floor_div(now, c->long_window_ms / NB), NULL, 0);
	if (chars >= 0 && chars > limit)
		ring_count(&k->lng);
	if (chars >= 0)
		len_add(a, chars);
	uint32_t n = k->lng.sum;
	if (!k->long_on && n >= c->long_count) {
		k->long_on = true;
		out->f[out->n++] = (struct llm_abuse_finding){
		    .kind = LLM_ABUSE_LONG_PROMPTS,
		    .detector = "long_prompt_flood",
		    .score = score_of(n, c->long_count),
		    .count = n,
		    .threshold = c->long_count,
		    .window_ms = c->long_window_ms,
		    .baseline = -1,
		    .limit_chars = limit,
		};
	} else if (k->long_on && n <= c->long_count / 2) {
		k->long_on = false;
	}
}

/* ---- near-duplicates --------------------------------------------------------------------- */

static void node_unlink(struct llm_abuse *a, uint32_t ni)
{
	struct node *nd = &a->nodes[ni];
	if (!nd->linked)
		return;
	uint32_t *p = &a->dheads[nd->h & a->dmask];
	while (*p != NONE && *p != ni)
		p = &a->nodes[*p].next;
	if (*p == ni)
		*p = nd->next;
	nd->linked = false;
}

static void cluster_leave(struct llm_abuse *a, uint32_t ci)
{
	struct cluster *cl = &a->cl[ci];
	cl->count--;
	if (cl->count < a->cfg.dup_count / 2)
		cl->next_report = a->cfg.dup_count;
	if (!cl->count) {
		cl->next_free = a->free_cl;
		a->free_cl = ci;
		a->nclusters--;
	}
}

/* Drop the oldest prompt of the window. */
static void dup_evict(struct llm_abuse *a)
{
	uint32_t e = a->first;
	for (unsigned b = 0; b < a->bands; b++)
		node_unlink(a, e * a->bands + b);
	cluster_leave(a, a->ent[e].cluster);
	a->first = (a->first + 1) % a->cap;
	a->count--;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

static uint32_t cluster_keys(struct llm_abuse *a, uint32_t ci)
{
	size_t n = 0;
	for (uint32_t i = 0; i < a->count; i++) {
		const struct entry *en = &a->ent[(a->first + i) % a->cap];
		if (en->cluster == ci)
			a->scratch[n++] = en->key;
	}
	qsort(a->scratch, n, sizeof *a->scratch, cmp_u64);
	uint32_t keys = 0;
	for (size_t i = 0; i < n; i++)
		keys += !i || a->scratch[i] != a->scratch[i - 1];
	return keys;
}

static enum llm_err dup_check(struct llm_abuse *a, uint64_t keyh, int64_t now, const char *text,
			      size_t len, struct llm_abuse_findings *out, struct llm_diag *diag)
{
	const struct llm_abuse_config *c = &a->cfg;
	while (a->count && (a->count == a->cap || a->ent[a->first].ts < now - c->dup_window_ms))
		dup_evict(a);
	size_t shingles = 0;
	if (llm_minhash_sign(&a->mh, text, len, &shingles))
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	if (!shingles || a->mh.nwords < c->dup_min_words)
		return LLM_OK;
	const uint32_t *sig = a->mh.sig;
	uint32_t e = (a->first + a->count) % a->cap;
	double best = -1;
	uint32_t best_e = NONE;
	for (unsigned b = 0; b < a->bands; b++) {
		unsigned char key[LLM_MINHASH_KEY_LEN];
		llm_minhash_band_key(&a->mh, sig, b, key);
		uint64_t h = llm_minhash_hash64(key, sizeof key, DUP_SEED + b);
		uint32_t *head = &a->dheads[h & a->dmask];
		for (uint32_t ni = *head; ni != NONE; ni = a->nodes[ni].next) {
			if (a->nodes[ni].h != h)
				continue;
			/* Only the latest prompt of a band key is kept: a flood of one prompt
			 * stays one candidate per band, not thousands. */
			uint32_t ce = ni / a->bands;
			double s =
			    llm_minhash_similarity(sig, a->sigs + (size_t)ce * DUP_PERM, DUP_PERM);
			if (s > best) {
				best = s;
				best_e = ce;
			}
			node_unlink(a, ni);
			break;
		}
		struct node *nd = &a->nodes[e * a->bands + b];
		nd->h = h;
		nd->next = *head;
		nd->linked = true;
		*head = e * a->bands + b;
	}
	uint32_t ci;
	if (best_e != NONE && best >= c->dup_threshold) {
		ci = a->ent[best_e].cluster;
	} else {
		ci = a->free_cl;
		a->free_cl = a->cl[ci].next_free;
		a->cl[ci] = (struct cluster){0, c->dup_count, NONE};
		a->nclusters++;
	}
	a->ent[e] = (struct entry){now, keyh, ci};
	memcpy(a->sigs + (size_t)e * DUP_PERM, sig, DUP_PERM * sizeof *sig);
	a->count++;
	struct cluster *cl = &a->cl[ci];
	cl->count++;
	if (cl->count >= cl->next_report) {
		out->f[out->n++] = (struct llm_abuse_finding){
		    .kind = LLM_ABUSE_NEAR_DUPLICATES,
		    .detector = "minhash_cluster",
		    .score = score_of(cl->count, c->dup_count),
		    .count = cl->count,
		    .threshold = c->dup_count,
		    .window_ms = c->dup_window_ms,
		    .baseline = -1,
		    .keys = cluster_keys(a, ci),
		    .limit_chars = -1,
		};
		cl->next_report =
		    cl->next_report > UINT32_MAX / 2 ? UINT32_MAX : cl->next_report * 2;
	}
	return LLM_OK;
}

/* ---- one request ------------------------------------------------------------------------- */

enum llm_err llm_abuse_add(struct llm_abuse *a, const struct llm_abuse_request *r,
			   struct llm_abuse_findings *out, struct llm_diag *diag)
{
	out->n = 0;
	if (r->ts_ms != INT64_MIN && (a->now == INT64_MIN || r->ts_ms > a->now))
		a->now = r->ts_ms;
	if (a->now == INT64_MIN)
		a->now = 0;
	int64_t now = a->now;
	uint64_t h = r->key ? llm_minhash_hash64(r->key, r->key_len, KEY_SEED)
			    : llm_minhash_hash64("", 0, KEY_SEED + 1);
	if (a->heads) {
		struct key *k = key_get(a, h, now);
		if (!k)
			return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		if (on(a, LLM_ABUSE_RATE_SPIKE))
			rate_check(a, k, now, out);
		if (on(a, LLM_ABUSE_LONG_PROMPTS))
			long_check(a, k, now, r->chars, out);
	}
	if (a->dup_on && r->text)
		return dup_check(a, h, now, r->text, r->text_len, out, diag);
	return LLM_OK;
}

size_t llm_abuse_memory(const struct llm_abuse *a)
{
	size_t n = sizeof *a + (size_t)a->capkeys * sizeof *a->keys;
	if (a->heads)
		n += ((size_t)a->mask + 1) * sizeof *a->heads;
	n += a->len_cap;
	if (a->dup_on) {
		n += (size_t)a->cap *
		     (sizeof *a->ent + DUP_PERM * sizeof *a->sigs + a->bands * sizeof *a->nodes +
		      sizeof *a->cl + sizeof *a->scratch);
		n += ((size_t)a->dmask + 1) * sizeof *a->dheads;
	}
	return n;
}

void llm_abuse_counts(const struct llm_abuse *a, size_t *keys, size_t *prompts, size_t *clusters)
{
	*keys = a->nkeys;
	*prompts = a->count;
	*clusters = a->nclusters;
}

static const char *const kind_names[LLM_ABUSE__COUNT] = {"rate_spike", "near_duplicates",
							 "long_prompt_flood"};

const char *llm_abuse_kind_name(enum llm_abuse_kind k)
{
	return (unsigned)k < LLM_ABUSE__COUNT ? kind_names[k] : "unknown";
}

bool llm_abuse_kind_parse(const char *name, size_t len, enum llm_abuse_kind *out)
{
	for (int k = 0; k < LLM_ABUSE__COUNT; k++)
		if (strlen(kind_names[k]) == len && !memcmp(kind_names[k], name, len)) {
			*out = (enum llm_abuse_kind)k;
			return true;
		}
	return false;
}
