/* Feedback joined with requests (see join.h): entries in a hash table by request id and in
 * two lists, pending (oldest first) and ready (released next). */
#include "config.h"

#include "monitor/join.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "serve/reqlog.h"

struct entry {
	struct entry *prev, *next; /* in pending or ready */
	struct entry *hnext;	   /* hash chain */
	bool in_table, ready;
	char *id; /* NULL: a record without a request id */
	size_t idlen;
	uint64_t hash;
	char *text; /* the request; NULL while only feedback is held */
	size_t len;
	char *file;
	long line;
	int64_t since; /* when it was taken (caller's clock) */
	struct llm_mon_fb *fb;
	size_t nfb, capfb;
	bool evicted;
};

struct list {
	struct entry *head, *tail;
	size_t n;
};

struct llm_mon_join {
	struct llm_mon_join_opts o;
	struct entry **table;
	size_t nbuckets, nkeys;
	struct list pending, ready;
	struct entry *last; /* released by the previous next(), freed on the following one */
	struct llm_mon_join_counts c;
};

static void list_push(struct list *l, struct entry *e)
{
	e->prev = l->tail;
	e->next = NULL;
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
	l->n++;
}

static void list_remove(struct list *l, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NULL;
	l->n--;
}

static void entry_free(struct entry *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->nfb; i++) {
		free(e->fb[i].id);
		free(e->fb[i].comment);
		free(e->fb[i].correction);
	}
	free(e->fb);
	free(e->id);
	free(e->text);
	free(e->file);
	free(e);
}

enum llm_err llm_mon_join_new(struct llm_mon_join **out, const struct llm_mon_join_opts *o)
{
	struct llm_mon_join *j = calloc(1, sizeof *j);
	if (!j)
		return LLM_ERR_NOMEM;
	if (o)
		j->o = *o;
	j->nbuckets = 1024;
	j->table = calloc(j->nbuckets, sizeof *j->table);
	if (!j->table) {
		free(j);
		return LLM_ERR_NOMEM;
	}
	*out = j;
	return LLM_OK;
}

void llm_mon_join_free(struct llm_mon_join *j)
{
	if (!j)
		return;
	struct list *ls[] = {&j->pending, &j->ready};
	for (size_t k = 0; k < 2; k++)
		for (struct entry *e = ls[k]->head, *n; e; e = n) {
			n = e->next;
			entry_free(e);
		}
	entry_free(j->last);
	free(j->table);
	free(j);
}

static struct entry *lookup(struct llm_mon_join *j, const char *id, size_t n, uint64_t h)
{
	for (struct entry *e = j->table[h & (j->nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == h && e->idlen == n && !memcmp(e->id, id, n))
			return e;
	return NULL;
}

static void unhash(struct llm_mon_join *j, struct entry *e)
{
	if (!e->in_table)
		return;
	struct entry **pp = &j->table[e->hash & (j->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->in_table = false;
	j->nkeys--;
}

static enum llm_err rehash(struct llm_mon_join *j)
{
	size_t nb = j->nbuckets * 2;
	struct entry **t = calloc(nb, sizeof *t);
	if (!t)
		return LLM_ERR_NOMEM;
	for (size_t i = 0; i < j->nbuckets; i++)
		for (struct entry *e = j->table[i], *n; e; e = n) {
			n = e->hnext;
			e->hnext = t[e->hash & (nb - 1)];
			t[e->hash & (nb - 1)] = e;
		}
	free(j->table);
	j->table = t;
	j->nbuckets = nb;
	return LLM_OK;
}

/* A new pending entry, in the table when it has an id. */
static struct entry *add_entry(struct llm_mon_join *j, const char *id, size_t n, uint64_t h,
			       int64_t now)
{
	struct entry *e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	if (id) {
		if (!(e->id = malloc(n + 1))) {
			free(e);
			return NULL;
		}
		memcpy(e->id, id, n);
		e->id[n] = '\0';
		e->idlen = n;
		e->hash = h;
		if (j->nkeys >= j->nbuckets && rehash(j) != LLM_OK) {
			entry_free(e);
			return NULL;
		}
		size_t b = h & (j->nbuckets - 1);
		e->hnext = j->table[b];
		j->table[b] = e;
		e->in_table = true;
		j->nkeys++;
	}
	e->since = now;
	list_push(&j->pending, e);
	return e;
}

/* A pending entry goes out of the table and on to the ready list. */
static void make_ready(struct llm_mon_join *j, struct entry *e)
{
	list_remove(&j->pending, e);
	unhash(j, e);
	e->ready = true;
	list_push(&j->ready, e);
}

/* Over max_pending: the oldest pending entries become ready, as they stand. */
static void evict(struct llm_mon_join *j)
{
	while (j->o.max_pending && j->pending.n > j->o.max_pending) {
		j->pending.head->evicted = true;
		j->c.evicted++;
		make_ready(j, j->pending.head);
	}
}

static char *dup_n(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

enum llm_err llm_mon_join_request(struct llm_mon_join *j, const char *id, size_t idlen,
				  const char *text, size_t len, const char *file, long line,
				  int64_t now)
{
	j->c.requests++;
	uint64_t h = id ? llm_hash64(id, idlen, 0x6a6f696e) : 0;
	struct entry *e = id ? lookup(j, id, idlen, h) : NULL;
	if (e && e->text) {
		/* The same request id again (a log read twice): the later record is held on its
		 * own and the earlier one keeps the feedback it has; new feedback goes to the
		 * later one. */
		unhash(j, e);
		e = NULL;
	}
	if (e) {
		/* Early feedback was held: the request takes its place in the order from now. */
		list_remove(&j->pending, e);
		list_push(&j->pending, e);
		e->since = now;
	} else if (!(e = add_entry(j, id, idlen, h, now))) {
		return LLM_ERR_NOMEM;
	}
	if (!(e->text = dup_n(text, len)) || (file && !(e->file = strdup(file)))) {
		free(e->text);
		e->text = NULL;
		return LLM_ERR_NOMEM;
	}
	e->len = len;
	e->line = line;
	/* Early feedback waited for this request: with emit_on_feedback it is due now. */
	if (j->o.emit_on_feedback && e->nfb && !e->ready)
		make_ready(j, e);
	evict(j);
	return LLM_OK;
}

enum llm_err llm_mon_join_feedback(struct llm_mon_join *j, const char *request_id, size_t idlen,
				   const char *fb_id, double score, const char *comment,
				   const char *correction, int64_t ts_ms, int64_t now, bool *dup)
{
	if (dup)
		*dup = false;
	j->c.feedback++;
	uint64_t h = llm_hash64(request_id, idlen, 0x6a6f696e);
	struct entry *e = lookup(j, request_id, idlen, h);
	if (e) {
		for (size_t i = 0; i < e->nfb; i++)
			if (!strcmp(e->fb[i].id, fb_id)) {
				j->c.duplicates++;
				if (dup)
					*dup = true;
				return LLM_OK;
			}
	} else if (!(e = add_entry(j, request_id, idlen, h, now))) {
		return LLM_ERR_NOMEM;
	}
	if (e->nfb == e->capfb) {
		size_t cap = e->capfb ? 2 * e->capfb : 2;
		struct llm_mon_fb *v = realloc(e->fb, cap * sizeof *v);
		if (!v)
			return LLM_ERR_NOMEM;
		e->fb = v;
		e->capfb = cap;
	}
	struct llm_mon_fb *f = &e->fb[e->nfb];
	memset(f, 0, sizeof *f);
	f->score = score;
	f->ts_ms = ts_ms;
	if (!(f->id = strdup(fb_id)) || (comment && !(f->comment = strdup(comment))) ||
	    (correction && !(f->correction = strdup(correction)))) {
		free(f->id);
		free(f->comment);
		return LLM_ERR_NOMEM;
	}
	e->nfb++;
	if (j->o.emit_on_feedback && e->text && !e->ready)
		make_ready(j, e);
	evict(j);
	return LLM_OK;
}

bool llm_mon_join_next(struct llm_mon_join *j, int64_t now, bool flush, struct llm_mon_joined *out)
{
	entry_free(j->last);
	j->last = NULL;
	struct entry *e = j->ready.head;
	if (e) {
		list_remove(&j->ready, e);
	} else {
		e = j->pending.head;
		if (!e || !(flush || (j->o.wait_ms > 0 && now - e->since >= j->o.wait_ms)))
			return false;
		list_remove(&j->pending, e);
		unhash(j, e);
	}
	j->last = e;
	memset(out, 0, sizeof *out);
	out->request_id = e->id;
	out->text = e->text;
	out->len = e->len;
	out->file = e->file;
	out->line = e->line;
	out->fb = e->fb;
	out->nfb = e->nfb;
	out->evicted = e->evicted;
	if (e->text) {
		j->c.released++;
		j->c.rated += e->nfb > 0;
	} else {
		j->c.orphan_feedback += e->nfb;
		j->c.orphan_requests++;
	}
	return true;
}

void llm_mon_join_counts(const struct llm_mon_join *j, struct llm_mon_join_counts *c)
{
	*c = j->c;
	c->pending = j->pending.n + j->ready.n;
}


static enum llm_err put_str(struct llm_buf *b, const char *s)
{
	return llm_buf_json_string(b, s, strlen(s));
}

enum llm_err llm_mon_join_render(const struct llm_mon_joined *r, struct llm_buf *out)
{
	size_t len = out->len;
	double sum = 0, lo = INFINITY, hi = -INFINITY;
	for (size_t i = 0; i < r->nfb; i++) {
		sum += r->fb[i].score;
		lo = fmin(lo, r->fb[i].score);
		hi = fmax(hi, r->fb[i].score);
	}
	enum llm_err e = llm_buf_printf(out, "{\"count\":%zu,\"mean\":", r->nfb);
	if (!e)
		e = r->nfb ? llm_buf_json_number(out, sum / (double)r->nfb) : llm_buf_puts(out, "null");
	if (!e)
		e = llm_buf_puts(out, ",\"min\":");
	if (!e)
		e = r->nfb ? llm_buf_json_number(out, lo) : llm_buf_puts(out, "null");
	if (!e)
		e = llm_buf_puts(out, ",\"max\":");
	if (!e)
		e = r->nfb ? llm_buf_json_number(out, hi) : llm_buf_puts(out, "null");
	if (!e)
		e = llm_buf_puts(out, ",\"scores\":[");
	for (size_t i = 0; !e && i < r->nfb; i++)
		if (!(e = i ? llm_buf_putc(out, ',') : LLM_OK))
			e = llm_buf_json_number(out, r->fb[i].score);
	if (!e)
		e = llm_buf_puts(out, "],\"comments\":[");
	bool first = true, any_correction = false;
	for (size_t i = 0; !e && i < r->nfb; i++) {
		any_correction |= r->fb[i].correction != NULL;
		if (!r->fb[i].comment || !*r->fb[i].comment)
			continue;
		if (!(e = first ? LLM_OK : llm_buf_putc(out, ',')))
			e = put_str(out, r->fb[i].comment);
		first = false;
	}
	if (!e)
		e = llm_buf_puts(out, "],\"ids\":[");
	for (size_t i = 0; !e && i < r->nfb; i++)
		if (!(e = i ? llm_buf_putc(out, ',') : LLM_OK))
			e = put_str(out, r->fb[i].id);
	if (!e)
		e = llm_buf_putc(out, ']');
	if (!e && any_correction) {
		e = llm_buf_puts(out, ",\"corrections\":[");
		first = true;
		for (size_t i = 0; !e && i < r->nfb; i++) {
			if (!r->fb[i].correction)
				continue;
			if (!(e = first ? LLM_OK : llm_buf_putc(out, ',')))
				e = put_str(out, r->fb[i].correction);
			first = false;
		}
		if (!e)
			e = llm_buf_putc(out, ']');
	}
	if (!e)
		e = llm_buf_putc(out, '}');
	if (e) {
		out->len = len;
		if (out->data)
			out->data[len] = '\0';
	}
	return e;
}

enum llm_err llm_mon_feedback_format(const char *request_id, double score, const char *comment,
				     const char *correction, int64_t ts_ms, const char *id,
				     struct llm_buf *out)
{
	if (!request_id || !isfinite(score) || !id)
		return LLM_ERR_USAGE;
	size_t len = out->len;
	enum llm_err e = llm_buf_puts(out, "{\"kind\":\"feedback\",\"request_id\":");
	if (!e)
		e = put_str(out, request_id);
	if (!e)
		e = llm_buf_puts(out, ",\"score\":");
	if (!e)
		e = llm_buf_json_number(out, score);
	if (!e && comment) {
		e = llm_buf_puts(out, ",\"comment\":");
		if (!e)
			e = put_str(out, comment);
	}
	if (!e && ts_ms != INT64_MIN) {
		char ts[LLM_REQLOG_TS_MAX];
		llm_reqlog_ts(ts_ms, ts);
		e = llm_buf_printf(out, ",\"ts\":\"%s\"", ts);
	}
	if (!e) {
		e = llm_buf_puts(out, ",\"id\":");
		if (!e)
			e = put_str(out, id);
	}
	if (!e && correction) {
		e = llm_buf_puts(out, ",\"correction\":");
		if (!e)
			e = put_str(out, correction);
	}
	if (!e)
		e = llm_buf_puts(out, "}\n");
	if (e) {
		out->len = len;
		if (out->data)
			out->data[len] = '\0';
	}
	return e;
}
