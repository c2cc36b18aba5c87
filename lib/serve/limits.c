#include "config.h"

#include "serve/limits.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "core/atomic.h"
#include "core/hash.h"

/* Stripes of the client table: a request locks one, so threads serving different clients
 * rarely meet. */
#define STRIPES	   16
#define CLIENT_MAX 128 /* bytes in a client name, NUL included */
#define NIL	   UINT32_MAX
/* How far from the least recently used end a full stripe looks for an entry to reuse. */
#define EVICT_SCAN 64

/* A token bucket: level at time t, refilling at rate per second up to cap. */
struct bucket {
	double level, cap, rate, t;
};

struct client {
	char id[CLIENT_MAX];
	uint64_t hash;
	uint64_t generation; /* bumped on reuse, so a stale ticket is recognized */
	struct bucket req, tok;
	int64_t used;	   /* tokens settled + reserved, since the entry was made */
	uint32_t inflight; /* admitted, not yet settled */
	bool live;
	bool has_budget;     /* the last rule had a budget: used must survive */
	uint32_t chain;	     /* next in the hash chain */
	uint32_t prev, next; /* LRU list: head is the most recent */
};

struct stripe {
	pthread_mutex_t lock;
	struct client *c;
	uint32_t n, cap; /* entries made so far (never reused until cap), capacity */
	uint32_t *heads; /* hash chains, nheads (a power of two) */
	uint32_t mask;
	uint32_t head, tail;
};

struct llm_limits {
	struct llm_limits_config cfg;
	struct stripe s[STRIPES];
	pthread_mutex_t glock; /* the global buckets */
	struct bucket greq, gtok;
};

static double mono_now(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_of(const struct llm_limits *l)
{
	return l->cfg.clock(l->cfg.clock_ctx);
}

/* Bring a bucket to time now, resized to a limit per minute (0: none, then it stays full). */
static void bucket_at(struct bucket *b, int64_t per_minute, double now)
{
	double cap = (double)per_minute;
	if (b->cap != 0 && now > b->t) {
		b->level += (now - b->t) * b->rate;
		if (b->level > b->cap)
			b->level = b->cap;
	}
	if (now > b->t || b->cap != cap)
		b->t = now;
	if (b->cap != cap) {
		/* A new limit (or the first): a fresh bucket starts full; a changed one keeps its
		 * debt but not more than the new minute. */
		if (b->cap == 0 || per_minute == 0)
			b->level = cap;
		else if (b->level > cap)
			b->level = cap;
		b->cap = cap;
		b->rate = cap / 60.0;
	}
}

/* Seconds until the bucket holds need (0 when it does, or when it has no limit). */
static double bucket_wait(const struct bucket *b, double need)
{
	if (b->cap == 0)
		return 0;
	if (need > b->cap)
		need = b->cap;
	if (b->level >= need)
		return 0;
	return (need - b->level) / b->rate;
}

static bool bucket_full(const struct bucket *b, double now)
{
	if (b->cap == 0)
		return true;
	return b->level + (now - b->t) * b->rate >= b->cap;
}

static void bucket_refund(struct bucket *b, double n)
{
	if (b->cap == 0)
		return;
	b->level += n;
	if (b->level > b->cap)
		b->level = b->cap;
}

static int64_t pick(int64_t v, int64_t def)
{
	if (v < 0)
		v = def;
	return v < 0 ? 0 : v;
}

enum llm_err llm_limits_new(struct llm_limits **out, const struct llm_limits_config *cfg)
{
	*out = NULL;
	struct llm_limits *l = calloc(1, sizeof *l);
	if (!l)
		return LLM_ERR_NOMEM;
	l->cfg = *cfg;
	if (!l->cfg.clock)
		l->cfg.clock = mono_now;
	if (l->cfg.global_rpm < 0)
		l->cfg.global_rpm = 0;
	if (l->cfg.global_tpm < 0)
		l->cfg.global_tpm = 0;
	size_t max = cfg->max_clients ? cfg->max_clients : 65536;
	if (max > (size_t)STRIPES * (UINT32_MAX / 4))
		max = (size_t)STRIPES * (UINT32_MAX / 4);
	uint32_t per = (uint32_t)((max + STRIPES - 1) / STRIPES);
	uint32_t nheads = 4;
	while (nheads < per)
		nheads *= 2;
	for (int i = 0; i < STRIPES; i++) {
		struct stripe *s = &l->s[i];
		pthread_mutex_init(&s->lock, NULL);
		s->cap = per;
		s->c = calloc(per, sizeof *s->c);
		s->heads = malloc(nheads * sizeof *s->heads);
		if (!s->c || !s->heads) {
			for (int j = 0; j <= i; j++) {
				free(l->s[j].c);
				free(l->s[j].heads);
				pthread_mutex_destroy(&l->s[j].lock);
			}
			free(l);
			return LLM_ERR_NOMEM;
		}
		for (uint32_t h = 0; h < nheads; h++)
			s->heads[h] = NIL;
		s->mask = nheads - 1;
		s->head = s->tail = NIL;
	}
	pthread_mutex_init(&l->glock, NULL);
	double now = now_of(l);
	bucket_at(&l->greq, l->cfg.global_rpm, now);
	bucket_at(&l->gtok, l->cfg.global_tpm, now);
	*out = l;
	return LLM_OK;
}

void llm_limits_free(struct llm_limits *l)
{
	if (!l)
		return;
	for (int i = 0; i < STRIPES; i++) {
		free(l->s[i].c);
		free(l->s[i].heads);
		pthread_mutex_destroy(&l->s[i].lock);
	}
	pthread_mutex_destroy(&l->glock);
	free(l);
}

static void lru_unlink(struct stripe *s, uint32_t i)
{
	struct client *c = &s->c[i];
	if (c->prev != NIL)
		s->c[c->prev].next = c->next;
	else
		s->head = c->next;
	if (c->next != NIL)
		s->c[c->next].prev = c->prev;
	else
		s->tail = c->prev;
	c->prev = c->next = NIL;
}

static void lru_push(struct stripe *s, uint32_t i)
{
	struct client *c = &s->c[i];
	c->prev = NIL;
	c->next = s->head;
	if (s->head != NIL)
		s->c[s->head].prev = i;
	s->head = i;
	if (s->tail == NIL)
		s->tail = i;
}

static void chain_unlink(struct stripe *s, uint32_t i)
{
	uint32_t *p = &s->heads[s->c[i].hash & s->mask];
	while (*p != NIL && *p != i)
		p = &s->c[*p].chain;
	if (*p == i)
		*p = s->c[i].chain;
}

static uint32_t find(struct stripe *s, const char *id, uint64_t h)
{
	for (uint32_t i = s->heads[h & s->mask]; i != NIL; i = s->c[i].chain)
		if (s->c[i].hash == h && strcmp(s->c[i].id, id) == 0)
			return i;
	return NIL;
}

static bool evictable(const struct client *c, double now)
{
	return c->inflight == 0 && !(c->has_budget && c->used > 0) && bucket_full(&c->req, now) &&
	       bucket_full(&c->tok, now);
}

/* The entry for id, made if need be; NIL when the stripe is full of entries worth keeping. */
static uint32_t find_or_make(struct stripe *s, const char *id, uint64_t h, double now)
{
	uint32_t i = find(s, id, h);
	if (i != NIL) {
		lru_unlink(s, i);
		lru_push(s, i);
		return i;
	}
	if (s->n < s->cap) {
		i = s->n++;
	} else {
		uint32_t j = s->tail;
		for (int k = 0; k < EVICT_SCAN && j != NIL; k++, j = s->c[j].prev)
			if (evictable(&s->c[j], now))
				break;
		if (j == NIL || !evictable(&s->c[j], now))
			return NIL;
		i = j;
		lru_unlink(s, i);
		chain_unlink(s, i);
	}
	struct client *c = &s->c[i];
	uint64_t gen = c->generation + 1;
	memset(c, 0, sizeof *c);
	c->generation = gen;
	snprintf(c->id, sizeof c->id, "%s", id);
	c->hash = h;
	c->live = true;
	c->chain = s->heads[h & s->mask];
	s->heads[h & s->mask] = i;
	lru_push(s, i);
	return i;
}

static struct stripe *stripe_of(struct llm_limits *l, uint64_t h)
{
	return &l->s[h >> 60 & (STRIPES - 1)];
}

static void fill_bucket_result(const struct bucket *b, int64_t limit, int64_t *lim,
			       int64_t *remaining, double *reset)
{
	*lim = limit;
	if (!limit) {
		*remaining = 0;
		*reset = 0;
		return;
	}
	*remaining = b->level > 0 ? (int64_t)floor(b->level) : 0;
	*reset = b->level >= b->cap ? 0 : (b->cap - b->level) / b->rate;
}

enum llm_err llm_limits_acquire(struct llm_limits *l, const char *client,
				const struct llm_limit_rule *rule, int64_t est_tokens,
				struct llm_limit_ticket *ticket, struct llm_limit_result *res)
{
	memset(res, 0, sizeof *res);
	memset(ticket, 0, sizeof *ticket);
	if (!client || !*client || strlen(client) >= CLIENT_MAX || est_tokens < 0)
		return LLM_ERR_USAGE;
	const struct llm_limit_rule *d = &l->cfg.defaults;
	struct llm_limit_rule none = {LLM_LIMIT_DEFAULT, LLM_LIMIT_DEFAULT, LLM_LIMIT_DEFAULT};
	if (!rule)
		rule = &none;
	int64_t rpm = pick(rule->rpm, d->rpm), tpm = pick(rule->tpm, d->tpm);
	int64_t budget = pick(rule->budget_tokens, d->budget_tokens);
	uint64_t h = llm_hash64(client, strlen(client), 0x6c696d697473ULL);
	struct stripe *s = stripe_of(l, h);
	double est = (double)est_tokens;

	pthread_mutex_lock(&s->lock);
	double now = now_of(l);
	uint32_t i = find_or_make(s, client, h, now);
	if (i == NIL) {
		pthread_mutex_unlock(&s->lock);
		res->verdict = LLM_LIMIT_FULL;
		res->retry_after = 1;
		return LLM_OK;
	}
	struct client *c = &s->c[i];
	c->has_budget = budget > 0;
	bucket_at(&c->req, rpm, now);
	bucket_at(&c->tok, tpm, now);

	pthread_mutex_lock(&l->glock);
	bucket_at(&l->greq, l->cfg.global_rpm, now);
	bucket_at(&l->gtok, l->cfg.global_tpm, now);
	/* Every test, then the longest wait decides: all must pass for the request to go. */
	enum llm_limit_verdict v = LLM_LIMIT_OK;
	double wait = 0, w;
	if (budget > 0 && c->used + est_tokens > budget) {
		v = LLM_LIMIT_BUDGET;
		wait = -1;
	} else {
		if ((w = bucket_wait(&c->req, 1)) > wait)
			wait = w, v = LLM_LIMIT_RPM;
		if ((w = bucket_wait(&c->tok, est)) > wait)
			wait = w, v = LLM_LIMIT_TPM;
		if ((w = bucket_wait(&l->greq, 1)) > wait)
			wait = w, v = LLM_LIMIT_GLOBAL_RPM;
		if ((w = bucket_wait(&l->gtok, est)) > wait)
			wait = w, v = LLM_LIMIT_GLOBAL_TPM;
	}
	if (v == LLM_LIMIT_OK) {
		if (rpm)
			c->req.level -= 1;
		if (tpm)
			c->tok.level -= est;
		if (l->cfg.global_rpm)
			l->greq.level -= 1;
		if (l->cfg.global_tpm)
			l->gtok.level -= est;
		c->used += est_tokens;
		c->inflight++;
		ticket->stripe = (uint32_t)(s - l->s);
		ticket->slot = i;
		ticket->generation = c->generation;
		ticket->reserved = est_tokens;
		ticket->active = true;
	}
	pthread_mutex_unlock(&l->glock);
	res->verdict = v;
	res->retry_after = wait;
	fill_bucket_result(&c->req, rpm, &res->limit_requests, &res->remaining_requests,
			   &res->reset_requests);
	fill_bucket_result(&c->tok, tpm, &res->limit_tokens, &res->remaining_tokens,
			   &res->reset_tokens);
	res->budget_tokens = budget;
	res->budget_used = c->used;
	pthread_mutex_unlock(&s->lock);
	return LLM_OK;
}

void llm_limits_settle(struct llm_limits *l, struct llm_limit_ticket *t, int64_t used)
{
	if (!t || !t->active || t->stripe >= STRIPES)
		return;
	t->active = false;
	if (used < 0)
		used = 0;
	struct stripe *s = &l->s[t->stripe];
	pthread_mutex_lock(&s->lock);
	if (t->slot >= s->n || s->c[t->slot].generation != t->generation) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	struct client *c = &s->c[t->slot];
	double now = now_of(l);
	/* Bring the buckets to now at their current size, then give back (or take) the
	 * difference between the reservation and the real use. */
	bucket_at(&c->req, (int64_t)c->req.cap, now);
	bucket_at(&c->tok, (int64_t)c->tok.cap, now);
	double back = (double)(t->reserved - used);
	bucket_refund(&c->tok, back);
	c->used += used - t->reserved;
	if (c->inflight)
		c->inflight--;
	pthread_mutex_lock(&l->glock);
	bucket_at(&l->gtok, l->cfg.global_tpm, now);
	bucket_refund(&l->gtok, back);
	pthread_mutex_unlock(&l->glock);
	if (l->cfg.on_usage)
		l->cfg.on_usage(l->cfg.on_usage_ctx, c->id, used, c->used);
	pthread_mutex_unlock(&s->lock);
}

int64_t llm_limits_budget_used(struct llm_limits *l, const char *client)
{
	if (!client)
		return 0;
	uint64_t h = llm_hash64(client, strlen(client), 0x6c696d697473ULL);
	struct stripe *s = stripe_of(l, h);
	pthread_mutex_lock(&s->lock);
	uint32_t i = find(s, client, h);
	int64_t used = i == NIL ? 0 : s->c[i].used;
	pthread_mutex_unlock(&s->lock);
	return used;
}

enum llm_err llm_limits_budget_set(struct llm_limits *l, const char *client, int64_t used)
{
	if (!client || !*client || strlen(client) >= CLIENT_MAX || used < 0)
		return LLM_ERR_USAGE;
	uint64_t h = llm_hash64(client, strlen(client), 0x6c696d697473ULL);
	struct stripe *s = stripe_of(l, h);
	pthread_mutex_lock(&s->lock);
	uint32_t i = find_or_make(s, client, h, now_of(l));
	if (i != NIL) {
		s->c[i].used = used;
		/* A restored budget must not be forgotten before the client's next request
		 * says whether it still has one. */
		s->c[i].has_budget = true;
	}
	pthread_mutex_unlock(&s->lock);
	return i == NIL ? LLM_ERR_TOO_BIG : LLM_OK;
}

enum llm_err llm_limits_budgets_save(struct llm_limits *l, const char *path, struct llm_diag *diag)
{
	json_t *o = json_object();
	if (!o)
		return llm_diag_set(diag, LLM_ERR_NOMEM, path, 0, "out of memory");
	enum llm_err e = LLM_OK;
	for (int k = 0; k < STRIPES && !e; k++) {
		struct stripe *s = &l->s[k];
		pthread_mutex_lock(&s->lock);
		for (uint32_t i = 0; i < s->n && !e; i++) {
			const struct client *c = &s->c[i];
			if (!c->live || c->used <= 0 || !c->has_budget)
				continue;
			if (json_object_set_new(o, c->id, json_integer(c->used)))
				e = LLM_ERR_NOMEM;
		}
		pthread_mutex_unlock(&s->lock);
	}
	char *text = e ? NULL : json_dumps(o, JSON_SORT_KEYS | JSON_INDENT(0) | JSON_COMPACT);
	json_decref(o);
	if (!text)
		return llm_diag_set(diag, LLM_ERR_NOMEM, path, 0, "out of memory");
	size_t n = strlen(text);
	char *t2 = realloc(text, n + 2);
	if (!t2) {
		free(text);
		return llm_diag_set(diag, LLM_ERR_NOMEM, path, 0, "out of memory");
	}
	t2[n] = '\n';
	t2[n + 1] = '\0';
	e = llm_atomic_write_file(path, t2, n + 1, diag);
	free(t2);
	return e;
}

enum llm_err llm_limits_budgets_load(struct llm_limits *l, const char *path, struct llm_diag *diag)
{
	struct stat st;
	if (stat(path, &st) != 0 && errno == ENOENT)
		return LLM_OK;
	json_error_t je;
	json_t *o = json_load_file(path, 0, &je);
	if (!o) {
		return llm_diag_set(diag, LLM_ERR_JSON, path, je.line > 0 ? je.line : 0, "%s",
				    je.text);
	}
	if (!json_is_object(o)) {
		json_decref(o);
		return llm_diag_set(diag, LLM_ERR_TYPE, path, 0,
				    "wants an object of client names and token counts");
	}
	const char *k;
	json_t *v;
	enum llm_err e = LLM_OK;
	json_object_foreach(o, k, v)
	{
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			e = llm_diag_set(diag, LLM_ERR_TYPE, path, 0,
					 "'%.64s': wants a whole number of tokens", k);
			break;
		}
		e = llm_limits_budget_set(l, k, (int64_t)json_integer_value(v));
		if (e) {
			llm_diag_set(diag, e, path, 0, "'%.64s': cannot hold this client", k);
			break;
		}
	}
	json_decref(o);
	return e;
}

const char *llm_limit_verdict_code(enum llm_limit_verdict v)
{
	switch (v) {
	case LLM_LIMIT_OK:
		return "ok";
	case LLM_LIMIT_BUDGET:
		return "insufficient_quota";
	default:
		return "rate_limit_exceeded";
	}
}

const char *llm_limit_verdict_reason(enum llm_limit_verdict v)
{
	switch (v) {
	case LLM_LIMIT_OK:
		return "within limits";
	case LLM_LIMIT_RPM:
		return "requests per minute";
	case LLM_LIMIT_TPM:
		return "tokens per minute";
	case LLM_LIMIT_BUDGET:
		return "token budget";
	case LLM_LIMIT_GLOBAL_RPM:
		return "server requests per minute";
	case LLM_LIMIT_GLOBAL_TPM:
		return "server tokens per minute";
	case LLM_LIMIT_FULL:
		return "too many clients";
	}
	return "unknown";
}

const char *llm_limit_verdict_name(enum llm_limit_verdict v)
{
	switch (v) {
	case LLM_LIMIT_OK:
		return "ok";
	case LLM_LIMIT_RPM:
		return "rpm";
	case LLM_LIMIT_TPM:
		return "tpm";
	case LLM_LIMIT_BUDGET:
		return "budget";
	case LLM_LIMIT_GLOBAL_RPM:
		return "global_rpm";
	case LLM_LIMIT_GLOBAL_TPM:
		return "global_tpm";
	case LLM_LIMIT_FULL:
		return "clients";
	}
	return "unknown";
}
