/* Windowed, grouped aggregates of monitoring events (aggregate.h).
 *
 * The hot path is llm_mon_agg_add for a request: the group's values are read from the event's
 * borrowed strings (no copy), hashed, and looked up in an open-addressing table of groups;
 * each group remembers the row of its latest window, so consecutive records of one window
 * cost one hash lookup and a few additions.  Memory is allocated only when a group, a row, or
 * a new name within a row (a status, an error code, a flag kind) is first seen.
 *
 * Rows are keyed by (window key, group).  The join of feedback to requests keeps 64-bit
 * hashes of ids in bounded first-in-first-out tables (struct fifo), so it never grows with
 * the log. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hash.h"
#include "guard/inject.h"
#include "monitor/aggregate.h"

#define MAX_BY 16
#define DEFAULT_MAX_GROUPS 100000
#define NAMES_MAX 64     /* distinct error codes, flag kinds per row; more count as "other" */
#define NAME_BYTES 128   /* longer names are cut (at a character boundary) */
#define JOIN_REQUESTS 262144
#define JOIN_SEEN 262144
#define JOIN_PENDING 65536
#define NO_TIME INT64_MIN

/* --- price table ------------------------------------------------------------------------- */

struct price {
	char *model;
	double prompt, completion; /* per million tokens */
};

struct llm_mon_prices {
	char *currency;
	struct price *v;
	size_t n;
	const struct price *star;
};

void llm_mon_prices_free(struct llm_mon_prices *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].model);
	free(p->v);
	free(p->currency);
	free(p);
}

const char *llm_mon_prices_currency(const struct llm_mon_prices *p)
{
	return p && p->currency ? p->currency : "USD";
}

enum llm_err llm_mon_prices_load(struct llm_mon_prices **out, const char *path,
				 struct llm_diag *diag)
{
	*out = NULL;
	json_error_t jerr;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		FILE *f = fopen(path, "r");
		if (!f)
			return llm_diag_set(diag, LLM_ERR_IO, path, 0, "cannot open the price table");
		fclose(f);
		return llm_diag_set(diag, LLM_ERR_FORMAT, path, jerr.line, "%s", jerr.text);
	}
	enum llm_err e = LLM_OK;
	struct llm_mon_prices *p = calloc(1, sizeof *p);
	json_t *models = json_object_get(j, "models"), *cur = json_object_get(j, "currency");
	if (!p) {
		e = llm_diag_set(diag, LLM_ERR_NOMEM, path, 0, "out of memory");
		goto done;
	}
	if (!json_is_object(j) || !json_is_object(models)) {
		e = llm_diag_set(diag, LLM_ERR_FORMAT, path, 0,
				 "a price table is {\"models\":{\"MODEL\":{\"prompt\":P,"
				 "\"completion\":C}}} (per million tokens)");
		goto done;
	}
	if (cur && !json_is_string(cur)) {
		e = llm_diag_set(diag, LLM_ERR_FORMAT, path, 0, "\"currency\" is not a string");
		goto done;
	}
	if (cur && !(p->currency = strdup(json_string_value(cur)))) {
		e = llm_diag_set(diag, LLM_ERR_NOMEM, path, 0, "out of memory");
		goto done;
	}
	if (!(p->v = calloc(json_object_size(models) + 1, sizeof *p->v))) {
		e = llm_diag_set(diag, LLM_ERR_NOMEM, path, 0, "out of memory");
		goto done;
	}
	const char *name;
	json_t *m;
	json_object_foreach (models, name, m) {
		json_t *pp = json_object_get(m, "prompt"), *cc = json_object_get(m, "completion");
		if (!json_is_object(m) || !json_is_number(pp) || !json_is_number(cc) ||
		    json_number_value(pp) < 0 || json_number_value(cc) < 0) {
			e = llm_diag_set(diag, LLM_ERR_FORMAT, path, 0,
					 "model \"%s\": \"prompt\" and \"completion\" must be "
					 "prices per million tokens (numbers, not negative)",
					 name);
			goto done;
		}
		struct price *pr = &p->v[p->n];
		if (!(pr->model = strdup(name))) {
			e = llm_diag_set(diag, LLM_ERR_NOMEM, path, 0, "out of memory");
			goto done;
		}
		pr->prompt = json_number_value(pp);
		pr->completion = json_number_value(cc);
		p->n++;
	}
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->v[i].model, "*"))
			p->star = &p->v[i];
done:
	json_decref(j);
	if (e) {
		llm_mon_prices_free(p);
		return e;
	}
	*out = p;
	return LLM_OK;
}

static const struct price *price_find(const struct llm_mon_prices *p, const char *m, size_t n)
{
	for (size_t i = 0; i < p->n; i++)
		if (strlen(p->v[i].model) == n && !memcmp(p->v[i].model, m, n))
			return &p->v[i];
	size_t cut = 0;
	while (cut < n && m[cut] != '@' && m[cut] != ':')
		cut++;
	if (cut < n)
		for (size_t i = 0; i < p->n; i++)
			if (strlen(p->v[i].model) == cut && !memcmp(p->v[i].model, m, cut))
				return &p->v[i];
	return p->star;
}

/* --- bounded FIFO tables of 64-bit hashes ------------------------------------------------- */

/* A ring of cap slots, oldest first, with a linear-probing index from hash to slot (keys may
 * repeat).  A removed slot is dead (key 0) until the ring passes it. */
struct fifo {
	uint64_t *key;
	uint32_t *index; /* slot + 1; 0 empty */
	uint32_t cap, head, used, live;
	size_t mask;
};

static uint64_t nonzero(uint64_t h)
{
	return h ? h : 1;
}

static bool fifo_init(struct fifo *f, uint32_t cap)
{
	size_t isz = 1;
	while (isz < (size_t)cap * 2)
		isz <<= 1;
	f->key = calloc(cap, sizeof *f->key);
	f->index = calloc(isz, sizeof *f->index);
	if (!f->key || !f->index) {
		free(f->key);
		free(f->index);
		f->key = NULL;
		f->index = NULL;
		return false;
	}
	f->cap = cap;
	f->mask = isz - 1;
	f->head = f->used = f->live = 0;
	return true;
}

static void fifo_free(struct fifo *f)
{
	free(f->key);
	free(f->index);
	memset(f, 0, sizeof *f);
}

/* The slot of the first live entry with key h, or -1. */
static long fifo_find(const struct fifo *f, uint64_t h)
{
	if (!f->live)
		return -1;
	for (size_t i = h & f->mask; f->index[i]; i = (i + 1) & f->mask)
		if (f->key[f->index[i] - 1] == h)
			return (long)f->index[i] - 1;
	return -1;
}

/* Take slot out of the index (backward-shift deletion keeps probe runs whole). */
static void fifo_remove(struct fifo *f, uint32_t slot)
{
	size_t i = f->key[slot] & f->mask;
	while (f->index[i] != slot + 1)
		i = (i + 1) & f->mask;
	for (size_t j = i;;) {
		j = (j + 1) & f->mask;
		if (!f->index[j])
			break;
		size_t k = f->key[f->index[j] - 1] & f->mask;
		/* Move j's entry back to i unless its home lies cyclically in (i, j]. */
		bool stays = i <= j ? (k > i && k <= j) : (k > i || k <= j);
		if (!stays) {
			f->index[i] = f->index[j];
			i = j;
		}
	}
	f->index[i] = 0;
	f->key[slot] = 0;
	f->live--;
}

/* The oldest slot when the ring is full (the caller deals with its payload, then pushes), or
 * -1 when there is room or the oldest is dead. */
static long fifo_victim(const struct fifo *f)
{
	if (f->used < f->cap || !f->key[f->head])
		return -1;
	return f->head;
}

static uint32_t fifo_push(struct fifo *f, uint64_t h)
{
	if (f->used == f->cap) {
		if (f->key[f->head])
			fifo_remove(f, f->head);
		f->head = (f->head + 1) % f->cap;
		f->used--;
	}
	uint32_t slot = (f->head + f->used) % f->cap;
	f->key[slot] = h;
	size_t i = h & f->mask;
	while (f->index[i])
		i = (i + 1) & f->mask;
	f->index[i] = slot + 1;
	f->used++;
	f->live++;
	return slot;
}

static void fifo_clear(struct fifo *f)
{
	if (!f->key)
		return;
	memset(f->key, 0, (size_t)f->cap * sizeof *f->key);
	memset(f->index, 0, (f->mask + 1) * sizeof *f->index);
	f->head = f->used = f->live = 0;
}

/* --- rows and groups ---------------------------------------------------------------------- */

struct named {
	char *name;
	uint64_t n;
};

struct names {
	struct named *v;
	uint32_t n, cap;
	uint64_t other; /* past NAMES_MAX */
};

struct status_count {
	int code;
	uint64_t n;
};

struct group {
	uint64_t hash;
	char **val; /* nby values, NULL where absent */
	struct llm_mon_row *cur;
};

struct llm_mon_row {
	struct llm_mon_agg *a;
	int64_t wkey; /* window start; 0 for window 0; NO_TIME */
	int64_t tmin, tmax;
	struct group *g;
	uint64_t requests, errors, flagged, refusals, flags, usage_n, priced, unpriced;
	struct status_count *status;
	uint32_t nstatus, capstatus;
	struct names codes, kinds;
	int64_t prompt_tokens, completion_tokens;
	double cost;
	uint64_t fb_count, fb_negative;
	double fb_sum, fb_min;
	struct llm_sketch lat, ttft, pchars, ochars;
};

struct join_req {
	int64_t wkey;
	struct group *g;
};

struct join_fb {
	double score;
	struct llm_mon_row *own;
};

enum key_kind { K_MODEL, K_KEY_ID, K_ENDPOINT, K_STATUS, K_FINISH, K_FIELD };

struct llm_mon_agg {
	int64_t window;
	size_t nby;
	char **by;
	enum key_kind *kind;
	const struct llm_mon_prices *prices;
	double negative;
	size_t max_rows;

	struct group **groups; /* open addressing */
	size_t gmask, ngroups;
	struct llm_mon_row **rtab; /* open addressing by (wkey, group) */
	size_t rmask;
	struct llm_mon_row **rows; /* every row, in creation order until sorted */
	size_t nrows, caprows;
	size_t nshown;	/* rows with something in them, first in rows[] after sorting */
	bool sorted;

	int64_t first_wkey; /* the window of the first timed event (NO_TIME before) */
	int64_t latest;

	struct fifo reqs, seen, pending;
	struct join_req *req_v;
	struct join_fb *fb_v;

	/* Scratch for one event's group values. */
	struct llm_buf *scratch; /* nby buffers for decoded field values */
	char (*num)[32];
	const struct price *last_price;
	char last_model[128];
	size_t last_model_n;
	bool last_model_set;
	struct llm_inject_matches matches;
};

static void names_free(struct names *ns)
{
	for (uint32_t i = 0; i < ns->n; i++)
		free(ns->v[i].name);
	free(ns->v);
	memset(ns, 0, sizeof *ns);
}

static enum llm_err names_add(struct names *ns, const char *s, size_t n, uint64_t count)
{
	if (n > NAME_BYTES) {
		n = NAME_BYTES;
		while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	for (uint32_t i = 0; i < ns->n; i++)
		if (!strncmp(ns->v[i].name, s, n) && !ns->v[i].name[n]) {
			ns->v[i].n += count;
			return LLM_OK;
		}
	if (ns->n == NAMES_MAX) {
		ns->other += count;
		return LLM_OK;
	}
	if (ns->n == ns->cap) {
		uint32_t cap = ns->cap ? ns->cap * 2 : 4;
		struct named *v = realloc(ns->v, cap * sizeof *v);
		if (!v)
			return LLM_ERR_NOMEM;
		ns->v = v;
		ns->cap = cap;
	}
	char *c = malloc(n + 1);
	if (!c)
		return LLM_ERR_NOMEM;
	memcpy(c, s, n);
	c[n] = '\0';
	ns->v[ns->n].name = c;
	ns->v[ns->n].n = count;
	ns->n++;
	return LLM_OK;
}

static enum llm_err status_add(struct llm_mon_row *r, int code, uint64_t n)
{
	for (uint32_t i = 0; i < r->nstatus; i++)
		if (r->status[i].code == code) {
			r->status[i].n += n;
			return LLM_OK;
		}
	if (r->nstatus == r->capstatus) {
		uint32_t cap = r->capstatus ? r->capstatus * 2 : 4;
		struct status_count *v = realloc(r->status, cap * sizeof *v);
		if (!v)
			return LLM_ERR_NOMEM;
		r->status = v;
		r->capstatus = cap;
	}
	r->status[r->nstatus].code = code;
	r->status[r->nstatus].n = n;
	r->nstatus++;
	return LLM_OK;
}

static void row_free(struct llm_mon_row *r)
{
	if (!r)
		return;
	free(r->status);
	names_free(&r->codes);
	names_free(&r->kinds);
	llm_sketch_free(&r->lat);
	llm_sketch_free(&r->ttft);
	llm_sketch_free(&r->pchars);
	llm_sketch_free(&r->ochars);
	if (r->g && r->g->cur == r)
		r->g->cur = NULL;
	free(r);
}

static void group_free(struct group *g, size_t nby)
{
	if (!g)
		return;
	for (size_t i = 0; i < nby; i++)
		free(g->val[i]);
	free(g->val);
	free(g);
}

/* The hash of a tuple of values (NULL and "" differ). */
static uint64_t tuple_hash(const char *const *p, const size_t *n, size_t nby)
{
	uint64_t h = 0x6d6f6e69746f72;
	for (size_t i = 0; i < nby; i++)
		h = p[i] ? llm_hash64(p[i], n[i], h) : llm_hash64("", 0, h ^ 0x9e3779b97f4a7c15);
	return h;
}

static bool group_equal(const struct group *g, const char *const *p, const size_t *n, size_t nby)
{
	for (size_t i = 0; i < nby; i++) {
		if (!p[i] || !g->val[i]) {
			if (p[i] || g->val[i])
				return false;
			continue;
		}
		if (strncmp(g->val[i], p[i], n[i]) || g->val[i][n[i]])
			return false;
	}
	return true;
}

static uint64_t row_hash(int64_t wkey, const struct group *g)
{
	uint64_t h = g->hash ^ ((uint64_t)wkey * 0x9e3779b97f4a7c15);
	h ^= h >> 31;
	return h * 0xbf58476d1ce4e5b9;
}

static enum llm_err rtab_rebuild(struct llm_mon_agg *a, size_t size)
{
	struct llm_mon_row **t = calloc(size, sizeof *t);
	if (!t)
		return LLM_ERR_NOMEM;
	free(a->rtab);
	a->rtab = t;
	a->rmask = size - 1;
	for (size_t i = 0; i < a->nrows; i++) {
		size_t j = row_hash(a->rows[i]->wkey, a->rows[i]->g) & a->rmask;
		while (t[j])
			j = (j + 1) & a->rmask;
		t[j] = a->rows[i];
	}
	return LLM_OK;
}

static enum llm_err too_many(struct llm_mon_agg *a, struct llm_diag *diag)
{
	return llm_diag_set(diag, LLM_ERR_TOO_BIG, "", 0,
			    "more than %zu rows (windows times groups): raise the limit, or "
			    "group by fewer keys or over longer windows",
			    a->max_rows);
}

/* The group of these values, created when new. */
static enum llm_err group_get(struct llm_mon_agg *a, const char *const *p, const size_t *n,
			      struct group **out, struct llm_diag *diag)
{
	uint64_t h = tuple_hash(p, n, a->nby);
	size_t i = h & a->gmask;
	for (; a->groups[i]; i = (i + 1) & a->gmask)
		if (a->groups[i]->hash == h && group_equal(a->groups[i], p, n, a->nby)) {
			*out = a->groups[i];
			return LLM_OK;
		}
	if (a->ngroups >= a->max_rows)
		return too_many(a, diag);
	struct group *g = calloc(1, sizeof *g);
	if (!g || !(g->val = calloc(a->nby ? a->nby : 1, sizeof *g->val)))
		goto nomem;
	g->hash = h;
	for (size_t k = 0; k < a->nby; k++)
		if (p[k] && !(g->val[k] = strndup(p[k], n[k])))
			goto nomem;
	a->groups[i] = g;
	a->ngroups++;
	if (a->ngroups * 2 > a->gmask + 1) {
		size_t size = (a->gmask + 1) * 2;
		struct group **t = calloc(size, sizeof *t);
		if (!t)
			return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0, "out of memory");
		for (size_t k = 0; k <= a->gmask; k++) {
			if (!a->groups[k])
				continue;
			size_t j = a->groups[k]->hash & (size - 1);
			while (t[j])
				j = (j + 1) & (size - 1);
			t[j] = a->groups[k];
		}
		free(a->groups);
		a->groups = t;
		a->gmask = size - 1;
	}
	*out = g;
	return LLM_OK;
nomem:
	group_free(g, a->nby);
	return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0, "out of memory");
}

/* The row of (wkey, g), created when new. */
static enum llm_err row_get(struct llm_mon_agg *a, int64_t wkey, struct group *g,
			    struct llm_mon_row **out, struct llm_diag *diag)
{
	if (g->cur && g->cur->wkey == wkey) {
		*out = g->cur;
		return LLM_OK;
	}
	size_t i = row_hash(wkey, g) & a->rmask;
	for (; a->rtab[i]; i = (i + 1) & a->rmask)
		if (a->rtab[i]->wkey == wkey && a->rtab[i]->g == g) {
			*out = g->cur = a->rtab[i];
			return LLM_OK;
		}
	if (a->nrows >= a->max_rows)
		return too_many(a, diag);
	if (a->nrows == a->caprows) {
		size_t cap = a->caprows ? a->caprows * 2 : 64;
		struct llm_mon_row **v = realloc(a->rows, cap * sizeof *v);
		if (!v)
			return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0, "out of memory");
		a->rows = v;
		a->caprows = cap;
	}
	struct llm_mon_row *r = calloc(1, sizeof *r);
	if (!r)
		return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0, "out of memory");
	r->a = a;
	r->wkey = wkey;
	r->g = g;
	r->tmin = INT64_MAX;
	r->tmax = INT64_MIN;
	a->rtab[i] = r;
	a->rows[a->nrows++] = r;
	a->sorted = false;
	if (a->nrows * 2 > a->rmask + 1 && rtab_rebuild(a, (a->rmask + 1) * 2))
		return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0, "out of memory");
	*out = g->cur = r;
	return LLM_OK;
}

/* --- configuration ------------------------------------------------------------------------ */

void llm_mon_agg_free(struct llm_mon_agg *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nrows; i++) {
		a->rows[i]->g = NULL;
		row_free(a->rows[i]);
	}
	free(a->rows);
	free(a->rtab);
	if (a->groups)
		for (size_t i = 0; i <= a->gmask; i++)
			group_free(a->groups[i], a->nby);
	free(a->groups);
	for (size_t i = 0; i < a->nby; i++) {
		free(a->by[i]);
		if (a->scratch)
			llm_buf_free(&a->scratch[i]);
	}
	free(a->by);
	free(a->kind);
	free(a->scratch);
	free(a->num);
	fifo_free(&a->reqs);
	fifo_free(&a->seen);
	fifo_free(&a->pending);
	free(a->req_v);
	free(a->fb_v);
	llm_inject_matches_free(&a->matches);
	free(a);
}

enum llm_err llm_mon_agg_new(struct llm_mon_agg **out, const struct llm_mon_agg_config *cfg,
			     struct llm_diag *diag)
{
	*out = NULL;
	if (cfg->window_ms < 0)
		return llm_diag_set(diag, LLM_ERR_USAGE, "", 0, "a window cannot be negative");
	if (cfg->nby > MAX_BY)
		return llm_diag_set(diag, LLM_ERR_USAGE, "", 0, "at most %d group keys", MAX_BY);
	struct llm_mon_agg *a = calloc(1, sizeof *a);
	if (!a)
		return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0, "out of memory");
	a->window = cfg->window_ms;
	a->prices = cfg->prices;
	a->negative = cfg->negative_score;
	a->max_rows = cfg->max_groups ? cfg->max_groups : DEFAULT_MAX_GROUPS;
	a->first_wkey = NO_TIME;
	a->latest = INT64_MIN;
	a->nby = cfg->nby;
	a->by = calloc(MAX_BY, sizeof *a->by);
	a->kind = calloc(MAX_BY, sizeof *a->kind);
	a->scratch = calloc(MAX_BY, sizeof *a->scratch);
	a->num = calloc(MAX_BY, sizeof *a->num);
	a->groups = calloc(64, sizeof *a->groups);
	a->gmask = 63;
	a->rtab = calloc(128, sizeof *a->rtab);
	a->rmask = 127;
	if (!a->by || !a->kind || !a->scratch || !a->num || !a->groups || !a->rtab)
		goto nomem;
	for (size_t i = 0; i < a->nby; i++) {
		const char *b = cfg->by[i];
		for (size_t j = 0; j < i; j++)
			if (!strcmp(a->by[j], b)) {
				llm_mon_agg_free(a);
				return llm_diag_set(diag, LLM_ERR_USAGE, "", 0,
						    "group key %s given twice", b);
			}
		if (!(a->by[i] = strdup(b)))
			goto nomem;
		llm_buf_init(&a->scratch[i], 1u << 20);
		a->kind[i] = !strcmp(b, "model")	   ? K_MODEL
			     : !strcmp(b, "key_id")	   ? K_KEY_ID
			     : !strcmp(b, "endpoint")	   ? K_ENDPOINT
			     : !strcmp(b, "status")	   ? K_STATUS
			     : !strcmp(b, "finish_reason") ? K_FINISH
							   : K_FIELD;
	}
	*out = a;
	return LLM_OK;
nomem:
	llm_mon_agg_free(a);
	return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0, "out of memory");
}

/* --- adding events ------------------------------------------------------------------------ */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t wkey_of(struct llm_mon_agg *a, int64_t ts)
{
	if (!a->window)
		return 0;
	if (ts == INT64_MIN)
		return a->first_wkey;
	int64_t w = floor_div(ts, a->window) * a->window;
	if (a->first_wkey == NO_TIME)
		a->first_wkey = w;
	return w;
}

static void str_value(const struct llm_mon_str *s, const char **p, size_t *n)
{
	*p = s->p;
	*n = s->p ? s->n : 0;
}

/* The value of group key i for ev, borrowed from ev or held in a's scratch. */
static enum llm_err key_value(struct llm_mon_agg *a, size_t i, const struct llm_mon_event *ev,
			      const char **p, size_t *n)
{
	*p = NULL;
	*n = 0;
	switch (a->kind[i]) {
	case K_MODEL:
		str_value(&ev->model, p, n);
		return LLM_OK;
	case K_KEY_ID:
		str_value(&ev->key_id, p, n);
		return LLM_OK;
	case K_ENDPOINT:
		str_value(&ev->endpoint, p, n);
		return LLM_OK;
	case K_FINISH:
		str_value(&ev->finish_reason, p, n);
		return LLM_OK;
	case K_STATUS:
		if (ev->status > 0) {
			*n = (size_t)snprintf(a->num[i], sizeof a->num[i], "%d", ev->status);
			*p = a->num[i];
		}
		return LLM_OK;
	case K_FIELD:
		break;
	}
	if (!ev->rec || ev->rec->status != LLM_OK)
		return LLM_OK;
	const struct llm_json_member *m = llm_json_get(&ev->rec->fields, a->by[i]);
	if (!m)
		return LLM_OK;
	switch (m->type) {
	case LLM_JSON_STRING:
		if (!memchr(m->val, '\\', m->val_len)) {
			*p = m->val + 1;
			*n = m->val_len - 2;
			return LLM_OK;
		}
		llm_buf_clear(&a->scratch[i]);
		if (llm_json_string_decode(m->val, m->val_len, &a->scratch[i]))
			return LLM_ERR_NOMEM;
		*p = a->scratch[i].data;
		*n = a->scratch[i].len;
		return LLM_OK;
	case LLM_JSON_NUMBER:
	case LLM_JSON_TRUE:
	case LLM_JSON_FALSE:
		*p = m->val;
		*n = m->val_len;
		return LLM_OK;
	default: /* null, arrays and objects group as absent */
		return LLM_OK;
	}
}

static enum llm_err event_row(struct llm_mon_agg *a, const struct llm_mon_event *ev,
			      struct llm_mon_row **out, struct llm_diag *diag)
{
	const char *p[MAX_BY];
	size_t n[MAX_BY];
	for (size_t i = 0; i < a->nby; i++)
		if (key_value(a, i, ev, &p[i], &n[i]))
			return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0, "out of memory");
	struct group *g;
	enum llm_err e = group_get(a, p, n, &g, diag);
	if (e)
		return e;
	return row_get(a, wkey_of(a, ev->ts_ms), g, out, diag);
}

static void row_time(struct llm_mon_row *r, int64_t ts)
{
	if (ts == INT64_MIN)
		return;
	if (ts < r->tmin)
		r->tmin = ts;
	if (ts > r->tmax)
		r->tmax = ts;
}

static bool str_is(const struct llm_mon_str *s, const char *lit)
{
	return s->p && s->n == strlen(lit) && !memcmp(s->p, lit, s->n);
}

static void feedback_into(struct llm_mon_agg *a, struct llm_mon_row *r, double score)
{
	if (!r->fb_count || score < r->fb_min)
		r->fb_min = score;
	r->fb_count++;
	r->fb_sum += score;
	if (score <= a->negative)
		r->fb_negative++;
}

static bool join_ready(struct llm_mon_agg *a)
{
	if (a->reqs.key)
		return true;
	if (!fifo_init(&a->reqs, JOIN_REQUESTS) || !fifo_init(&a->seen, JOIN_SEEN) ||
	    !fifo_init(&a->pending, JOIN_PENDING) ||
	    !(a->req_v = calloc(JOIN_REQUESTS, sizeof *a->req_v)) ||
	    !(a->fb_v = calloc(JOIN_PENDING, sizeof *a->fb_v))) {
		fifo_free(&a->reqs);
		fifo_free(&a->seen);
		fifo_free(&a->pending);
		free(a->req_v);
		a->req_v = NULL;
		return false;
	}
	return true;
}

/* Count every waiting feedback in its own row. */
static void settle(struct llm_mon_agg *a)
{
	if (!a->pending.live)
		return;
	for (uint32_t k = 0; k < a->pending.used; k++) {
		uint32_t slot = (a->pending.head + k) % a->pending.cap;
		if (a->pending.key[slot])
			feedback_into(a, a->fb_v[slot].own, a->fb_v[slot].score);
	}
	fifo_clear(&a->pending);
	a->sorted = false;
}

static enum llm_err add_feedback(struct llm_mon_agg *a, const struct llm_mon_event *ev,
				 struct llm_diag *diag)
{
	if (isnan(ev->score))
		return LLM_OK;
	if (!join_ready(a))
		return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0, "out of memory");
	a->sorted = false;
	if (ev->feedback_id.p) {
		uint64_t fid = nonzero(llm_hash64(ev->feedback_id.p, ev->feedback_id.n, 0x6662));
		if (fifo_find(&a->seen, fid) >= 0)
			return LLM_OK;
		fifo_push(&a->seen, fid);
	}
	if (ev->ts_ms != INT64_MIN && ev->ts_ms > a->latest)
		a->latest = ev->ts_ms;
	struct llm_mon_row *r;
	enum llm_err e;
	if (ev->request_id.p) {
		uint64_t h = nonzero(llm_hash64(ev->request_id.p, ev->request_id.n, 0x7271));
		long slot = fifo_find(&a->reqs, h);
		if (slot >= 0) {
			if ((e = row_get(a, a->req_v[slot].wkey, a->req_v[slot].g, &r, diag)))
				return e;
			feedback_into(a, r, ev->score);
			return LLM_OK;
		}
		if ((e = event_row(a, ev, &r, diag)))
			return e;
		row_time(r, ev->ts_ms);
		long victim = fifo_victim(&a->pending);
		if (victim >= 0)
			feedback_into(a, a->fb_v[victim].own, a->fb_v[victim].score);
		uint32_t s = fifo_push(&a->pending, h);
		a->fb_v[s].score = ev->score;
		a->fb_v[s].own = r;
		return LLM_OK;
	}
	if ((e = event_row(a, ev, &r, diag)))
		return e;
	row_time(r, ev->ts_ms);
	feedback_into(a, r, ev->score);
	return LLM_OK;
}

static enum llm_err nomem(struct llm_diag *diag)
{
	return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0, "out of memory");
}

static enum llm_err add_request(struct llm_mon_agg *a, const struct llm_mon_event *ev,
				struct llm_diag *diag)
{
	struct llm_mon_row *r;
	enum llm_err e = event_row(a, ev, &r, diag);
	if (e)
		return e;
	if (ev->ts_ms != INT64_MIN && ev->ts_ms > a->latest)
		a->latest = ev->ts_ms;
	row_time(r, ev->ts_ms);
	r->requests++;
	if (ev->failed)
		r->errors++;
	if (ev->status > 0 && status_add(r, ev->status, 1))
		return nomem(diag);
	if (ev->failed && ev->error_code.p &&
	    names_add(&r->codes, ev->error_code.p, ev->error_code.n, 1))
		return nomem(diag);
	if (ev->latency_ms >= 0 && llm_sketch_add(&r->lat, ev->latency_ms))
		return nomem(diag);
	if (ev->ttft_ms >= 0 && llm_sketch_add(&r->ttft, ev->ttft_ms))
		return nomem(diag);
	if (ev->prompt_chars >= 0 && llm_sketch_add(&r->pchars, (double)ev->prompt_chars))
		return nomem(diag);
	if (ev->output_chars >= 0 && llm_sketch_add(&r->ochars, (double)ev->output_chars))
		return nomem(diag);
	bool pt = ev->prompt_tokens >= 0, ct = ev->completion_tokens >= 0;
	if (pt)
		r->prompt_tokens += ev->prompt_tokens;
	if (ct)
		r->completion_tokens += ev->completion_tokens;
	if (pt || ct) {
		r->usage_n++;
		if (a->prices) {
			const struct price *pr;
			const char *m = ev->model.p ? ev->model.p : "";
			size_t mn = ev->model.p ? ev->model.n : 0;
			if (a->last_model_set && mn == a->last_model_n &&
			    !memcmp(a->last_model, m, mn)) {
				pr = a->last_price;
			} else {
				pr = price_find(a->prices, m, mn);
				a->last_model_set = mn < sizeof a->last_model;
				if (a->last_model_set) {
					memcpy(a->last_model, m, mn);
					a->last_model_n = mn;
					a->last_price = pr;
				}
			}
			if (pr) {
				r->cost += ((pt ? (double)ev->prompt_tokens * pr->prompt : 0) +
					    (ct ? (double)ev->completion_tokens * pr->completion : 0)) /
					   1e6;
				r->priced++;
			} else {
				r->unpriced++;
			}
		}
	}
	bool refusal = str_is(&ev->finish_reason, "content_filter");
	for (size_t i = 0; i < ev->nflags; i++) {
		const struct llm_mon_flag *f = &ev->flags[i];
		const struct llm_mon_str *k = f->kind.p ? &f->kind : &f->type;
		if (str_is(&f->kind, "refusal") || str_is(&f->type, "refusal"))
			refusal = true;
		r->flags++;
		if (k->p && names_add(&r->kinds, k->p, k->n, 1))
			return nomem(diag);
	}
	if (ev->nflags)
		r->flagged++;
	if (!refusal && ev->output.p && ev->output.n) {
		if ((e = llm_inject_scan(ev->output.p, ev->output.n, 1u << LLM_INJECT_REFUSAL, 1,
					 &a->matches, diag)))
			return e;
		refusal = a->matches.n > 0;
	}
	if (refusal)
		r->refusals++;

	if (ev->request_id.p) {
		if (!join_ready(a))
			return nomem(diag);
		uint64_t h = nonzero(llm_hash64(ev->request_id.p, ev->request_id.n, 0x7271));
		long slot = fifo_find(&a->reqs, h);
		if (slot < 0)
			slot = fifo_push(&a->reqs, h);
		a->req_v[slot].wkey = r->wkey;
		a->req_v[slot].g = r->g;
		while (a->pending.live && (slot = fifo_find(&a->pending, h)) >= 0) {
			feedback_into(a, r, a->fb_v[slot].score);
			fifo_remove(&a->pending, (uint32_t)slot);
		}
	}
	return LLM_OK;
}

enum llm_err llm_mon_agg_add(struct llm_mon_agg *a, const struct llm_mon_event *ev,
			     struct llm_diag *diag)
{
	if (ev->kind == LLM_MON_FEEDBACK)
		return add_feedback(a, ev, diag);
	return add_request(a, ev, diag);
}

/* --- reading rows ------------------------------------------------------------------------- */

static int cmp_str(const char *x, const char *y)
{
	if (!x || !y)
		return (x != NULL) - (y != NULL);
	return strcmp(x, y);
}

static size_t sort_nby;

static bool row_empty(const struct llm_mon_row *r)
{
	return !r->requests && !r->fb_count;
}

static int cmp_rows(const void *pa, const void *pb)
{
	const struct llm_mon_row *x = *(struct llm_mon_row *const *)pa,
				 *y = *(struct llm_mon_row *const *)pb;
	if (row_empty(x) != row_empty(y))
		return row_empty(x) ? 1 : -1;
	if (x->wkey != y->wkey)
		return x->wkey < y->wkey ? -1 : 1;
	for (size_t i = 0; i < sort_nby; i++) {
		int c = cmp_str(x->g->val[i], y->g->val[i]);
		if (c)
			return c;
	}
	return 0;
}

/* Reading sorts in place: the aggregate is the caller's, never a const object. */
static void prepare(const struct llm_mon_agg *ca)
{
	struct llm_mon_agg *a = (struct llm_mon_agg *)ca;
	settle(a);
	if (a->sorted)
		return;
	sort_nby = a->nby;
	if (a->nrows > 1)
		qsort(a->rows, a->nrows, sizeof *a->rows, cmp_rows);
	a->nshown = 0;
	while (a->nshown < a->nrows && !row_empty(a->rows[a->nshown]))
		a->nshown++;
	a->sorted = true;
}

size_t llm_mon_agg_nrows(const struct llm_mon_agg *a)
{
	prepare(a);
	return a->nshown;
}

const struct llm_mon_row *llm_mon_agg_row(const struct llm_mon_agg *a, size_t i)
{
	prepare(a);
	return i < a->nshown ? a->rows[i] : NULL;
}

int64_t llm_mon_row_start(const struct llm_mon_row *r)
{
	if (r->a->window)
		return r->wkey;
	return r->tmax == INT64_MIN ? NO_TIME : r->tmin;
}

int64_t llm_mon_row_end(const struct llm_mon_row *r)
{
	if (r->a->window)
		return r->wkey == NO_TIME ? NO_TIME : r->wkey + r->a->window;
	return r->tmax == INT64_MIN ? NO_TIME : r->tmax + 1;
}

const char *llm_mon_row_key(const struct llm_mon_row *r, size_t i)
{
	return i < r->a->nby ? r->g->val[i] : NULL;
}

int64_t llm_mon_agg_latest(const struct llm_mon_agg *a)
{
	return a->latest;
}

/* Every metric of a row that has a value, in a fixed order. */
typedef void (*metric_fn)(void *ctx, const char *name, double v, bool integer);

static void sketch_metrics(const struct llm_sketch *s, const char *pre, bool all, metric_fn f,
			   void *ctx)
{
	if (!s->count)
		return;
	char name[64];
	static const struct {
		const char *suffix;
		double q;
	} qs[] = {{"p50", 0.5}, {"p90", 0.9}, {"p95", 0.95}, {"p99", 0.99}};
	snprintf(name, sizeof name, "%s_mean", pre);
	f(ctx, name, s->sum / (double)s->count, false);
	for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
		if (!all && qs[i].q != 0.99)
			continue;
		double v;
		llm_sketch_quantile(s, qs[i].q, &v);
		snprintf(name, sizeof name, "%s_%s", pre, qs[i].suffix);
		f(ctx, name, v, false);
	}
	if (all) {
		snprintf(name, sizeof name, "%s_max", pre);
		f(ctx, name, s->max, false);
	}
}

static int cmp_status(const void *x, const void *y)
{
	return ((const struct status_count *)x)->code - ((const struct status_count *)y)->code;
}

static void each_metric(const struct llm_mon_row *r, metric_fn f, void *ctx)
{
	double req = (double)r->requests;
	char name[NAME_BYTES + 32];
	f(ctx, "requests", req, true);
	f(ctx, "errors", (double)r->errors, true);
	if (r->requests)
		f(ctx, "error_rate", (double)r->errors / req, false);
	uint64_t cls[6] = {0};
	struct status_count st[1000];
	uint32_t ns = 0;
	for (uint32_t i = 0; i < r->nstatus; i++) {
		int c = r->status[i].code;
		if (c >= 100 && c < 600)
			cls[c / 100] += r->status[i].n;
		if (ns < 1000)
			st[ns++] = r->status[i];
	}
	for (int c = 2; c <= 5; c++) {
		snprintf(name, sizeof name, "status_%dxx", c);
		f(ctx, name, (double)cls[c], true);
	}
	qsort(st, ns, sizeof *st, cmp_status);
	for (uint32_t i = 0; i < ns; i++) {
		snprintf(name, sizeof name, "status_%d", st[i].code);
		f(ctx, name, (double)st[i].n, true);
	}
	for (uint32_t i = 0; i < r->codes.n; i++) {
		snprintf(name, sizeof name, "errors_by_code.%s", r->codes.v[i].name);
		f(ctx, name, (double)r->codes.v[i].n, true);
	}
	if (r->codes.other)
		f(ctx, "errors_by_code.other", (double)r->codes.other, true);
	sketch_metrics(&r->lat, "latency", true, f, ctx);
	sketch_metrics(&r->ttft, "ttft", true, f, ctx);
	if (r->usage_n) {
		f(ctx, "prompt_tokens", (double)r->prompt_tokens, true);
		f(ctx, "completion_tokens", (double)r->completion_tokens, true);
		f(ctx, "total_tokens", (double)(r->prompt_tokens + r->completion_tokens), true);
		f(ctx, "tokens_per_request",
		  (double)(r->prompt_tokens + r->completion_tokens) / (double)r->usage_n, false);
	}
	if (r->a->prices) {
		f(ctx, "cost", r->cost, false);
		if (r->priced)
			f(ctx, "cost_per_request", r->cost / (double)r->priced, false);
		f(ctx, "cost_unpriced", (double)r->unpriced, true);
	}
	f(ctx, "refusals", (double)r->refusals, true);
	if (r->requests)
		f(ctx, "refusal_rate", (double)r->refusals / req, false);
	f(ctx, "flags", (double)r->flags, true);
	for (uint32_t i = 0; i < r->kinds.n; i++) {
		snprintf(name, sizeof name, "flags.%s", r->kinds.v[i].name);
		f(ctx, name, (double)r->kinds.v[i].n, true);
	}
	if (r->kinds.other)
		f(ctx, "flags.other", (double)r->kinds.other, true);
	if (r->requests)
		f(ctx, "flagged_rate", (double)r->flagged / req, false);
	f(ctx, "feedback_count", (double)r->fb_count, true);
	if (r->fb_count) {
		f(ctx, "feedback_mean", r->fb_sum / (double)r->fb_count, false);
		f(ctx, "feedback_min", r->fb_min, false);
	}
	f(ctx, "feedback_negative", (double)r->fb_negative, true);
	if (r->fb_count)
		f(ctx, "feedback_negative_rate", (double)r->fb_negative / (double)r->fb_count,
		  false);
	sketch_metrics(&r->pchars, "prompt_chars", false, f, ctx);
	sketch_metrics(&r->ochars, "output_chars", false, f, ctx);
}

struct find_ctx {
	const char *name;
	double v;
	bool found;
};

static void find_cb(void *ctx, const char *name, double v, bool integer)
{
	(void)integer;
	struct find_ctx *c = ctx;
	if (!c->found && !strcmp(name, c->name)) {
		c->v = v;
		c->found = true;
	}
}

bool llm_mon_row_metric(const struct llm_mon_row *r, const char *name, double *value)
{
	struct find_ctx c = {name, 0, false};
	each_metric(r, find_cb, &c);
	if (c.found)
		*value = c.v;
	return c.found;
}

/* --- JSON ---------------------------------------------------------------------------------- */

static json_t *time_json(int64_t ms)
{
	if (ms == NO_TIME)
		return json_null();
	time_t s = (time_t)floor_div(ms, 1000);
	int frac = (int)(ms - (int64_t)s * 1000);
	struct tm tm;
	if (!gmtime_r(&s, &tm))
		return json_null();
	char buf[64];
	if (frac)
		snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
	else
		snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return json_string(buf);
}

struct json_ctx {
	json_t *o;
	bool fail;
};

static void json_cb(void *ctx, const char *name, double v, bool integer)
{
	struct json_ctx *c = ctx;
	json_t *j = integer ? json_integer((json_int_t)v) : json_real(v);
	if (!j || json_object_set_new(c->o, name, j))
		c->fail = true;
}

static json_t *names_json(const struct names *ns)
{
	json_t *o = json_object();
	for (uint32_t i = 0; o && i < ns->n; i++)
		if (json_object_set_new(o, ns->v[i].name, json_integer((json_int_t)ns->v[i].n))) {
			json_decref(o);
			return NULL;
		}
	return o;
}

/* Set k to v in o (v may be NULL from a failed constructor; o takes v either way). */
static bool set(json_t *o, const char *k, json_t *v)
{
	return v && !json_object_set_new(o, k, v);
}

static json_t *state_json(const struct llm_mon_row *r)
{
	const struct llm_mon_agg *a = r->a;
	json_t *s = json_object(), *by = json_array(), *st = json_object();
	bool ok = s && by && st;
	for (size_t i = 0; ok && i < a->nby; i++)
		ok = !json_array_append_new(by, json_string(a->by[i]));
	for (uint32_t i = 0; ok && i < r->nstatus; i++) {
		char k[16];
		snprintf(k, sizeof k, "%d", r->status[i].code);
		ok = set(st, k, json_integer((json_int_t)r->status[i].n));
	}
	if (!ok) {
		json_decref(by);
		json_decref(st);
		json_decref(s);
		return NULL;
	}
	bool t = r->tmax != INT64_MIN;
	ok = set(s, "version", json_integer(1)) && set(s, "window_ms", json_integer(a->window)) &&
	     set(s, "by", by);
	ok = set(s, "status", st) && ok;
	ok = ok && set(s, "tmin", t ? json_integer(r->tmin) : json_null()) &&
	     set(s, "tmax", t ? json_integer(r->tmax) : json_null()) &&
	     set(s, "requests", json_integer((json_int_t)r->requests)) &&
	     set(s, "errors", json_integer((json_int_t)r->errors)) &&
	     set(s, "flagged", json_integer((json_int_t)r->flagged)) &&
	     set(s, "refusals", json_integer((json_int_t)r->refusals)) &&
	     set(s, "flags", json_integer((json_int_t)r->flags)) &&
	     set(s, "usage_requests", json_integer((json_int_t)r->usage_n)) &&
	     set(s, "priced", json_integer((json_int_t)r->priced)) &&
	     set(s, "unpriced", json_integer((json_int_t)r->unpriced)) &&
	     set(s, "errors_by_code", names_json(&r->codes)) &&
	     set(s, "errors_by_code_other", json_integer((json_int_t)r->codes.other)) &&
	     set(s, "flags_by_kind", names_json(&r->kinds)) &&
	     set(s, "flags_by_kind_other", json_integer((json_int_t)r->kinds.other)) &&
	     set(s, "prompt_tokens", json_integer(r->prompt_tokens)) &&
	     set(s, "completion_tokens", json_integer(r->completion_tokens)) &&
	     set(s, "cost", json_real(r->cost)) &&
	     set(s, "feedback_count", json_integer((json_int_t)r->fb_count)) &&
	     set(s, "feedback_negative", json_integer((json_int_t)r->fb_negative)) &&
	     set(s, "feedback_sum", json_real(r->fb_sum)) &&
	     set(s, "feedback_min", json_real(r->fb_min)) &&
	     set(s, "latency", llm_sketch_to_json(&r->lat)) &&
	     set(s, "ttft", llm_sketch_to_json(&r->ttft)) &&
	     set(s, "prompt_chars", llm_sketch_to_json(&r->pchars)) &&
	     set(s, "output_chars", llm_sketch_to_json(&r->ochars));
	if (!ok) {
		json_decref(s);
		return NULL;
	}
	return s;
}

json_t *llm_mon_row_json(const struct llm_mon_agg *a, const struct llm_mon_row *r,
			 bool with_state)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	if (json_object_set_new(o, "window_start", time_json(llm_mon_row_start(r))) ||
	    json_object_set_new(o, "window_end", time_json(llm_mon_row_end(r))))
		goto fail;
	for (size_t i = 0; i < a->nby; i++)
		if (json_object_set_new(o, a->by[i],
					r->g->val[i] ? json_string(r->g->val[i]) : json_null()))
			goto fail;
	struct json_ctx c = {o, false};
	each_metric(r, json_cb, &c);
	if (c.fail)
		goto fail;
	if (a->prices && json_object_set_new(o, "currency",
					     json_string(llm_mon_prices_currency(a->prices))))
		goto fail;
	if (with_state) {
		json_t *s = state_json(r);
		if (!s || json_object_set_new(o, "state", s))
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

/* --- merging ------------------------------------------------------------------------------- */

static enum llm_err row_add(struct llm_mon_row *d, const struct llm_mon_row *s)
{
	if (s->tmax != INT64_MIN) {
		row_time(d, s->tmin);
		row_time(d, s->tmax);
	}
	d->requests += s->requests;
	d->errors += s->errors;
	d->flagged += s->flagged;
	d->refusals += s->refusals;
	d->flags += s->flags;
	d->usage_n += s->usage_n;
	d->priced += s->priced;
	d->unpriced += s->unpriced;
	for (uint32_t i = 0; i < s->nstatus; i++)
		if (status_add(d, s->status[i].code, s->status[i].n))
			return LLM_ERR_NOMEM;
	for (uint32_t i = 0; i < s->codes.n; i++)
		if (names_add(&d->codes, s->codes.v[i].name, strlen(s->codes.v[i].name),
			      s->codes.v[i].n))
			return LLM_ERR_NOMEM;
	d->codes.other += s->codes.other;
	for (uint32_t i = 0; i < s->kinds.n; i++)
		if (names_add(&d->kinds, s->kinds.v[i].name, strlen(s->kinds.v[i].name),
			      s->kinds.v[i].n))
			return LLM_ERR_NOMEM;
	d->kinds.other += s->kinds.other;
	d->prompt_tokens += s->prompt_tokens;
	d->completion_tokens += s->completion_tokens;
	d->cost += s->cost;
	if (s->fb_count && (!d->fb_count || s->fb_min < d->fb_min))
		d->fb_min = s->fb_min;
	d->fb_count += s->fb_count;
	d->fb_negative += s->fb_negative;
	d->fb_sum += s->fb_sum;
	if (llm_sketch_merge(&d->lat, &s->lat) || llm_sketch_merge(&d->ttft, &s->ttft) ||
	    llm_sketch_merge(&d->pchars, &s->pchars) || llm_sketch_merge(&d->ochars, &s->ochars))
		return LLM_ERR_NOMEM;
	return LLM_OK;
}

/* The window of dst that holds [start, end) (end exclusive; NO_TIME for none). */
static enum llm_err dst_window(struct llm_mon_agg *a, int64_t start, int64_t end, int64_t *wkey,
			       struct llm_diag *diag)
{
	if (!a->window) {
		*wkey = 0;
		return LLM_OK;
	}
	if (start == NO_TIME) {
		*wkey = NO_TIME;
		return LLM_OK;
	}
	int64_t w = floor_div(start, a->window) * a->window;
	if (end != NO_TIME && end - 1 >= w + a->window)
		return llm_diag_set(diag, LLM_ERR_FORMAT, "", 0,
				    "a row spans more than one window of %lld ms (merge with the "
				    "--window the rows were written with, or a multiple of it)",
				    (long long)a->window);
	if (a->first_wkey == NO_TIME || w < a->first_wkey)
		a->first_wkey = w;
	*wkey = w;
	return LLM_OK;
}

/* Add s (values vals for src_by) into a's row for [start, end). */
static enum llm_err merge_row(struct llm_mon_agg *a, const struct llm_mon_row *s, int64_t start,
			      int64_t end, char *const *src_by, char *const *vals, size_t nsrc,
			      struct llm_diag *diag)
{
	int64_t wkey = 0;
	enum llm_err e = dst_window(a, start, end, &wkey, diag);
	if (e)
		return e;
	const char *p[MAX_BY];
	size_t n[MAX_BY];
	for (size_t i = 0; i < a->nby; i++) {
		p[i] = NULL;
		n[i] = 0;
		for (size_t k = 0; k < nsrc; k++)
			if (!strcmp(src_by[k], a->by[i]) && vals[k]) {
				p[i] = vals[k];
				n[i] = strlen(vals[k]);
			}
	}
	struct group *g;
	struct llm_mon_row *d;
	if ((e = group_get(a, p, n, &g, diag)) || (e = row_get(a, wkey, g, &d, diag)))
		return e;
	if (s->tmax != INT64_MIN && s->tmax > a->latest)
		a->latest = s->tmax;
	a->sorted = false;
	if (row_add(d, s))
		return nomem(diag);
	return LLM_OK;
}

enum llm_err llm_mon_agg_merge(struct llm_mon_agg *dst, const struct llm_mon_agg *src,
			       struct llm_diag *diag)
{
	size_t n = llm_mon_agg_nrows(src);
	for (size_t i = 0; i < n; i++) {
		const struct llm_mon_row *r = llm_mon_agg_row(src, i);
		enum llm_err e = merge_row(dst, r, llm_mon_row_start(r), llm_mon_row_end(r),
					   src->by, r->g->val, src->nby, diag);
		if (e)
			return e;
	}
	return LLM_OK;
}

enum llm_err llm_mon_agg_collapse(const struct llm_mon_agg *a, struct llm_mon_agg **out,
				  struct llm_diag *diag)
{
	struct llm_mon_agg_config cfg = {
		.window_ms = 0,
		.by = a->by,
		.nby = a->nby,
		.prices = a->prices,
		.negative_score = a->negative,
		.max_groups = a->max_rows,
	};
	enum llm_err e = llm_mon_agg_new(out, &cfg, diag);
	if (e)
		return e;
	if ((e = llm_mon_agg_merge(*out, a, diag))) {
		llm_mon_agg_free(*out);
		*out = NULL;
	}
	return e;
}

static bool get_count(const json_t *o, const char *k, uint64_t *v)
{
	const json_t *j = json_object_get(o, k);
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return false;
	*v = (uint64_t)json_integer_value(j);
	return true;
}

static bool get_int(const json_t *o, const char *k, int64_t *v)
{
	const json_t *j = json_object_get(o, k);
	if (!json_is_integer(j))
		return false;
	*v = json_integer_value(j);
	return true;
}

static bool get_num(const json_t *o, const char *k, double *v)
{
	const json_t *j = json_object_get(o, k);
	if (!json_is_number(j))
		return false;
	*v = json_number_value(j);
	return true;
}

static bool names_from(struct names *ns, const json_t *o)
{
	if (!json_is_object(o))
		return false;
	const char *k;
	json_t *v;
	json_object_foreach ((json_t *)o, k, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    names_add(ns, k, strlen(k), (uint64_t)json_integer_value(v)))
			return false;
	}
	return true;
}

static enum llm_err row_time_json(const json_t *row, const char *k, int64_t *ms,
				  struct llm_diag *diag)
{
	const json_t *t = json_object_get(row, k);
	if (json_is_null(t) || !t) {
		*ms = NO_TIME;
		return LLM_OK;
	}
	if (!json_is_string(t) ||
	    !llm_mon_parse_time(json_string_value(t), json_string_length(t), ms))
		return llm_diag_set(diag, LLM_ERR_FORMAT, "", 0, "%s is not an RFC 3339 time", k);
	return LLM_OK;
}

enum llm_err llm_mon_agg_merge_json(struct llm_mon_agg *a, const json_t *row, struct llm_diag *diag)
{
	const json_t *st = json_object_get(row, "state");
	if (!json_is_object(st))
		return llm_diag_set(diag, LLM_ERR_FORMAT, "", 0,
				    "the row has no \"state\" (write rows to merge with --state)");
	struct llm_mon_agg fake = {.window = 1};
	struct llm_mon_row r = {.a = &fake};
	enum llm_err e = LLM_OK;
	const json_t *by = json_object_get(st, "by"), *status = json_object_get(st, "status");
	int64_t tmin = 0, tmax = 0, version = 0;
	bool times = json_is_null(json_object_get(st, "tmin"));
	if (!times && get_int(st, "tmin", &tmin) && get_int(st, "tmax", &tmax))
		times = true, r.tmin = tmin, r.tmax = tmax;
	else if (times)
		r.tmin = INT64_MAX, r.tmax = INT64_MIN;
	if (!get_int(st, "version", &version) || version != 1 || !times || !json_is_array(by) ||
	    json_array_size(by) > MAX_BY || !json_is_object(status) ||
	    !get_count(st, "requests", &r.requests) || !get_count(st, "errors", &r.errors) ||
	    !get_count(st, "flagged", &r.flagged) || !get_count(st, "refusals", &r.refusals) ||
	    !get_count(st, "flags", &r.flags) || !get_count(st, "usage_requests", &r.usage_n) ||
	    !get_count(st, "priced", &r.priced) || !get_count(st, "unpriced", &r.unpriced) ||
	    !get_count(st, "errors_by_code_other", &r.codes.other) ||
	    !get_count(st, "flags_by_kind_other", &r.kinds.other) ||
	    !get_int(st, "prompt_tokens", &r.prompt_tokens) ||
	    !get_int(st, "completion_tokens", &r.completion_tokens) ||
	    !get_num(st, "cost", &r.cost) || !get_count(st, "feedback_count", &r.fb_count) ||
	    !get_count(st, "feedback_negative", &r.fb_negative) ||
	    !get_num(st, "feedback_sum", &r.fb_sum) || !get_num(st, "feedback_min", &r.fb_min)) {
		e = llm_diag_set(diag, LLM_ERR_FORMAT, "", 0,
				 "the row's \"state\" is not one llm-monitor summarize --state "
				 "writes (version 1)");
		goto done;
	}
	const char *k;
	json_t *v;
	json_object_foreach ((json_t *)status, k, v) {
		char *end;
		long code = strtol(k, &end, 10);
		if (*end || code <= 0 || code > 999 || !json_is_integer(v) ||
		    json_integer_value(v) < 0) {
			e = llm_diag_set(diag, LLM_ERR_FORMAT, "", 0, "bad status count in state");
			goto done;
		}
		if (status_add(&r, (int)code, (uint64_t)json_integer_value(v))) {
			e = nomem(diag);
			goto done;
		}
	}
	if (!names_from(&r.codes, json_object_get(st, "errors_by_code")) ||
	    !names_from(&r.kinds, json_object_get(st, "flags_by_kind"))) {
		e = llm_diag_set(diag, LLM_ERR_FORMAT, "", 0, "bad name counts in state");
		goto done;
	}
	static const char *const sk[] = {"latency", "ttft", "prompt_chars", "output_chars"};
	struct llm_sketch *sv[] = {&r.lat, &r.ttft, &r.pchars, &r.ochars};
	for (size_t i = 0; i < 4; i++)
		if ((e = llm_sketch_from_json(sv[i], json_object_get(st, sk[i]), diag)))
			goto done;
	int64_t start, end;
	if ((e = row_time_json(row, "window_start", &start, diag)) ||
	    (e = row_time_json(row, "window_end", &end, diag)))
		goto done;
	char *src_by[MAX_BY], *vals[MAX_BY];
	char numbuf[MAX_BY][32];
	size_t nsrc = json_array_size(by);
	for (size_t i = 0; i < nsrc; i++) {
		const json_t *b = json_array_get(by, i);
		if (!json_is_string(b)) {
			e = llm_diag_set(diag, LLM_ERR_FORMAT, "", 0, "bad \"by\" in state");
			goto done;
		}
		src_by[i] = (char *)json_string_value(b);
		const json_t *val = json_object_get(row, src_by[i]);
		vals[i] = NULL;
		if (json_is_string(val)) {
			vals[i] = (char *)json_string_value(val);
		} else if (json_is_integer(val)) {
			snprintf(numbuf[i], sizeof numbuf[i], "%lld",
				 (long long)json_integer_value(val));
			vals[i] = numbuf[i];
		}
	}
	e = merge_row(a, &r, start, end, src_by, vals, nsrc, diag);
done:
	r.g = NULL;
	free(r.status);
	names_free(&r.codes);
	names_free(&r.kinds);
	llm_sketch_free(&r.lat);
	llm_sketch_free(&r.ttft);
	llm_sketch_free(&r.pchars);
	llm_sketch_free(&r.ochars);
	return e;
}

void llm_mon_agg_drop_before(struct llm_mon_agg *a, int64_t t)
{
	if (!a->window)
		return;
	settle(a);
	size_t k = 0;
	for (size_t i = 0; i < a->nrows; i++) {
		struct llm_mon_row *r = a->rows[i];
		if (r->wkey != NO_TIME && r->wkey + a->window <= t)
			row_free(r);
		else
			a->rows[k++] = r;
	}
	if (k == a->nrows)
		return;
	a->nrows = k;
	a->sorted = false;
	/* The table is rebuilt at its size (no allocation can fail here if it keeps it). */
	memset(a->rtab, 0, (a->rmask + 1) * sizeof *a->rtab);
	for (size_t i = 0; i < a->nrows; i++) {
		size_t j = row_hash(a->rows[i]->wkey, a->rows[i]->g) & a->rmask;
		while (a->rtab[j])
			j = (j + 1) & a->rmask;
		a->rtab[j] = a->rows[i];
	}
}
