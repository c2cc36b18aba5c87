#include "config.h"

#include "data/pack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

/* A piece of a document: tokens [start, start + len) of document doc with its end-of-text
 * token at the end when there is one. */
struct piece {
	uint64_t doc;
	uint32_t start;
	uint32_t len;
};

struct packer {
	const struct llm_tokfile *in;
	const struct llm_pack_opts *o;
	struct llm_tokfile_writer *tok, *seg;
	uint32_t *seq, *segs; /* the sequence being filled */
	uint32_t fill, nseg;
	struct llm_pack_stats *st;
};

static enum llm_err nomem(struct llm_diag *d)
{
	return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
}

static void put_piece(struct packer *p, const struct piece *x)
{
	uint64_t off = p->in->offsets[x->doc];
	uint64_t len = p->in->offsets[x->doc + 1] - off;
	p->nseg++;
	for (uint32_t k = 0; k < x->len; k++) {
		uint64_t j = (uint64_t)x->start + k;
		p->seq[p->fill] = j < len ? llm_tokfile_get(p->in, off + j) : p->o->eot_id;
		p->segs[p->fill++] = p->nseg;
	}
	p->st->tokens += x->len;
}

static enum llm_err flush_seq(struct packer *p, struct llm_diag *d)
{
	uint32_t n = p->o->seq_len;
	p->st->padding += n - p->fill;
	for (uint32_t k = p->fill; k < n; k++) {
		p->seq[k] = p->o->pad_id;
		p->segs[k] = 0;
	}
	enum llm_err e = llm_tokfile_append(p->tok, p->seq, n, d);
	if (!e)
		e = llm_tokfile_append(p->seg, p->segs, n, d);
	p->fill = p->nseg = 0;
	p->st->sequences++;
	return e;
}

/* Call fn for every piece of every document in order; counts documents, empties and splits. */
static enum llm_err each_piece(struct packer *p,
			       enum llm_err (*fn)(struct packer *, const struct piece *, void *,
						  struct llm_diag *),
			       void *arg, struct llm_diag *d)
{
	uint32_t n = p->o->seq_len;
	for (uint64_t i = 0; i < p->in->ndocs; i++) {
		uint64_t len = p->in->offsets[i + 1] - p->in->offsets[i];
		p->st->documents++;
		if (!len) {
			/* Not even an end-of-text token: it would be a document of its own. */
			p->st->empty++;
			continue;
		}
		len += p->o->use_eot ? 1 : 0;
		if (len > n)
			p->st->split++;
		for (uint64_t at = 0; at < len; at += n) {
			struct piece x = {i, (uint32_t)at, (uint32_t)(len - at < n ? len - at : n)};
			p->st->pieces++;
			enum llm_err e = fn(p, &x, arg, d);
			if (e)
				return e;
		}
	}
	return LLM_OK;
}

static enum llm_err greedy_one(struct packer *p, const struct piece *x, void *arg,
			       struct llm_diag *d)
{
	(void)arg;
	if (p->fill && p->fill + x->len > p->o->seq_len) {
		enum llm_err e = flush_seq(p, d);
		if (e)
			return e;
	}
	put_piece(p, x);
	return LLM_OK;
}

struct piece_list {
	struct piece *v;
	size_t n, cap;
};

static enum llm_err collect_one(struct packer *p, const struct piece *x, void *arg,
				struct llm_diag *d)
{
	(void)p;
	struct piece_list *l = arg;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		struct piece *v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return nomem(d);
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *x;
	return LLM_OK;
}

/* Longest first; equal lengths in input order (doc, then start), so the order is total. */
static int by_len_desc(const void *a, const void *b)
{
	const struct piece *x = a, *y = b;
	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	if (x->doc != y->doc)
		return x->doc < y->doc ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* First-fit decreasing.  A max tree over the room left in every possible sequence (as many as
 * pieces; the unopened ones have all their room) finds the leftmost with room in log time. */
static enum llm_err pack_ffd(struct packer *p, struct llm_diag *d)
{
	struct piece_list l = {0};
	enum llm_err e = each_piece(p, collect_one, &l, d);
	if (e || !l.n) {
		free(l.v);
		return e;
	}
	qsort(l.v, l.n, sizeof *l.v, by_len_desc);
	size_t leaves = 1;
	while (leaves < l.n)
		leaves *= 2;
	uint32_t *room = malloc(2 * leaves * sizeof *room);
	uint32_t *bin = malloc(l.n * sizeof *bin);
	size_t *start = calloc(l.n + 1, sizeof *start);
	struct piece *order = malloc(l.n * sizeof *order);
	if (!room || !bin || !start || !order) {
		e = nomem(d);
		goto out;
	}
	for (size_t k = 0; k < leaves; k++)
		room[leaves + k] = k < l.n ? p->o->seq_len : 0;
	for (size_t k = leaves - 1; k >= 1; k--)
		room[k] = room[2 * k] > room[2 * k + 1] ? room[2 * k] : room[2 * k + 1];
	size_t nbins = 0;
	for (size_t i = 0; i < l.n; i++) {
		uint32_t len = l.v[i].len;
		size_t k = 1;
		while (k < leaves)
			k = room[2 * k] >= len ? 2 * k : 2 * k + 1;
		size_t b = k - leaves;
		bin[i] = (uint32_t)b;
		if (b + 1 > nbins)
			nbins = b + 1;
		room[k] -= len;
		for (k /= 2; k >= 1; k /= 2)
			room[k] = room[2 * k] > room[2 * k + 1] ? room[2 * k] : room[2 * k + 1];
	}
	/* Group the pieces by sequence, keeping the order they were placed in. */
	for (size_t i = 0; i < l.n; i++)
		start[bin[i] + 1]++;
	for (size_t b = 0; b < nbins; b++)
		start[b + 1] += start[b];
	for (size_t i = 0; i < l.n; i++)
		order[start[bin[i]]++] = l.v[i];
	size_t at = 0;
	for (size_t b = 0; b < nbins && !e; b++) {
		size_t end = start[b];
		for (; at < end; at++)
			put_piece(p, &order[at]);
		e = flush_seq(p, d);
	}
out:
	free(room);
	free(bin);
	free(start);
	free(order);
	free(l.v);
	return e;
}

enum llm_err llm_pack(const struct llm_tokfile *in, const struct llm_pack_opts *o, const char *out,
		      struct llm_pack_stats *st, struct llm_diag *d)
{
	memset(st, 0, sizeof *st);
	if (!o->seq_len)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "the sequence length must be >= 1");
	/* The output keeps the input's token width unless the padding or end-of-text id needs
	 * more. */
	uint64_t vocab = in->width == 2 ? 65536 : 65537;
	if ((uint64_t)o->pad_id + 1 > vocab)
		vocab = (uint64_t)o->pad_id + 1;
	if (o->use_eot && (uint64_t)o->eot_id + 1 > vocab)
		vocab = (uint64_t)o->eot_id + 1;
	struct llm_buf segpath;
	llm_buf_init(&segpath, 0);
	if (llm_buf_printf(&segpath, "%s.seg", out))
		return nomem(d);
	struct packer p = {in, o, NULL, NULL, NULL, NULL, 0, 0, st};
	p.seq = malloc((size_t)o->seq_len * sizeof *p.seq);
	p.segs = malloc((size_t)o->seq_len * sizeof *p.segs);
	enum llm_err e = p.seq && p.segs ? LLM_OK : nomem(d);
	if (!e)
		e = llm_tokfile_create(&p.tok, out,
				       vocab > UINT32_MAX ? UINT32_MAX : (uint32_t)vocab, d);
	if (!e)
		e = llm_tokfile_create(&p.seg, segpath.data,
				       o->seq_len < UINT32_MAX ? o->seq_len + 1 : o->seq_len, d);
	if (!e && o->strategy == LLM_PACK_FFD) {
		e = pack_ffd(&p, d);
	} else if (!e) {
		e = each_piece(&p, greedy_one, NULL, d);
		if (!e && p.fill)
			e = flush_seq(&p, d);
	}
	/* The segments first: the token file never appears without them. */
	if (!e) {
		e = llm_tokfile_commit(p.seg, d);
		p.seg = NULL;
	}
	if (!e) {
		e = llm_tokfile_commit(p.tok, d);
		p.tok = NULL;
		if (e) {
			/* No segments without their tokens either. */
			remove(segpath.data);
			if (!llm_buf_puts(&segpath, ".idx"))
				remove(segpath.data);
		}
	}
	llm_tokfile_abort(p.seg);
	llm_tokfile_abort(p.tok);
	free(p.seq);
	free(p.segs);
	llm_buf_free(&segpath);
	return e;
}
