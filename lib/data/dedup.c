#include "config.h"

#include "data/dedup.h"

#include <stdlib.h>
#include <string.h>

#include "data/spill.h"

static const char hexd[] = "0123456789abcdef";

static void put_be(unsigned char *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

static void put_hex(char *out, const unsigned char *p, int bytes)
{
	for (int i = 0; i < bytes; i++) {
		out[2 * i] = hexd[p[i] >> 4];
		out[2 * i + 1] = hexd[p[i] & 15];
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Lower-case hex only: upper case would sort differently from what the writer produced. */
static bool get_hex(const char *s, unsigned char *p, int bytes)
{
	for (int i = 0; i < bytes; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		p[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

void llm_dedup_rec_pack(unsigned char rec[LLM_DEDUP_REC_LEN], unsigned band,
			const unsigned char key[LLM_DEDUP_KEY_LEN], uint64_t ord)
{
	put_be(rec, band, 4);
	memcpy(rec + 4, key, LLM_DEDUP_KEY_LEN);
	put_be(rec + 16, ord, 8);
}

uint64_t llm_dedup_rec_ord(const unsigned char rec[LLM_DEDUP_REC_LEN])
{
	return get_be(rec + 16, 8);
}

void llm_dedup_rec_format(const unsigned char rec[LLM_DEDUP_REC_LEN],
			  char line[LLM_DEDUP_LINE_LEN])
{
	/* The band is stored in 4 bytes but printed in 4 digits: bands never pass 0xffff. */
	put_hex(line, rec + 2, 2);
	line[4] = '\t';
	put_hex(line + 5, rec + 4, LLM_DEDUP_KEY_LEN);
	line[29] = '\t';
	put_hex(line + 30, rec + 16, 8);
	line[46] = '\n';
}

bool llm_dedup_rec_parse(const char *line, size_t n, unsigned char rec[LLM_DEDUP_REC_LEN])
{
	if (n != LLM_DEDUP_LINE_LEN - 1 || line[4] != '\t' || line[29] != '\t')
		return false;
	rec[0] = rec[1] = 0;
	return get_hex(line, rec + 2, 2) && get_hex(line + 5, rec + 4, LLM_DEDUP_KEY_LEN) &&
	       get_hex(line + 30, rec + 16, 8);
}

void llm_dedup_map_format(uint64_t ord, uint64_t rep, char line[LLM_DEDUP_MAP_LINE_LEN])
{
	unsigned char b[8];
	put_be(b, ord, 8);
	put_hex(line, b, 8);
	line[16] = '\t';
	put_be(b, rep, 8);
	put_hex(line + 17, b, 8);
	line[33] = '\n';
}

bool llm_dedup_map_parse(const char *line, size_t n, uint64_t *ord, uint64_t *rep)
{
	unsigned char a[8], b[8];
	if (n != LLM_DEDUP_MAP_LINE_LEN - 1 || line[16] != '\t' || !get_hex(line, a, 8) ||
	    !get_hex(line + 17, b, 8))
		return false;
	*ord = get_be(a, 8);
	*rep = get_be(b, 8);
	return true;
}

/* ----- union-find ------------------------------------------------------------------------ */

#define EMPTY UINT64_MAX

static inline size_t slot_of(uint64_t ord, size_t nslots)
{
	uint64_t z = ord * 0x9E3779B97F4A7C15ULL;
	z ^= z >> 29;
	return (size_t)(z & (nslots - 1));
}

void llm_uf_init(struct llm_uf *uf)
{
	memset(uf, 0, sizeof *uf);
}

void llm_uf_free(struct llm_uf *uf)
{
	free(uf->slot_ord);
	free(uf->slot_node);
	free(uf->ord);
	free(uf->parent);
	memset(uf, 0, sizeof *uf);
}

static enum llm_err grow_table(struct llm_uf *uf)
{
	size_t ns = uf->nslots ? 2 * uf->nslots : 1024;
	uint64_t *so = malloc(ns * sizeof *so);
	uint32_t *sn = malloc(ns * sizeof *sn);
	if (!so || !sn) {
		free(so);
		free(sn);
		return LLM_ERR_NOMEM;
	}
	for (size_t i = 0; i < ns; i++)
		so[i] = EMPTY;
	for (size_t i = 0; i < uf->nslots; i++) {
		if (uf->slot_ord[i] == EMPTY)
			continue;
		size_t j = slot_of(uf->slot_ord[i], ns);
		while (so[j] != EMPTY)
			j = (j + 1) & (ns - 1);
		so[j] = uf->slot_ord[i];
		sn[j] = uf->slot_node[i];
	}
	free(uf->slot_ord);
	free(uf->slot_node);
	uf->slot_ord = so;
	uf->slot_node = sn;
	uf->nslots = ns;
	return LLM_OK;
}

/* The node of ordinal a, created when create is set; UINT32_MAX when absent. */
static enum llm_err node_of(struct llm_uf *uf, uint64_t a, bool create, uint32_t *node)
{
	*node = UINT32_MAX;
	if (uf->nslots) {
		size_t j = slot_of(a, uf->nslots);
		while (uf->slot_ord[j] != EMPTY) {
			if (uf->slot_ord[j] == a) {
				*node = uf->slot_node[j];
				return LLM_OK;
			}
			j = (j + 1) & (uf->nslots - 1);
		}
	}
	if (!create)
		return LLM_OK;
	if (a == EMPTY || uf->n >= UINT32_MAX - 1)
		return LLM_ERR_RANGE;
	if (2 * (uf->n + 1) > uf->nslots) {
		enum llm_err e = grow_table(uf);
		if (e)
			return e;
	}
	if (uf->n == uf->cap) {
		size_t cap = uf->cap ? 2 * uf->cap : 1024;
		uint64_t *o = realloc(uf->ord, cap * sizeof *o);
		if (!o)
			return LLM_ERR_NOMEM;
		uf->ord = o;
		uint32_t *p = realloc(uf->parent, cap * sizeof *p);
		if (!p)
			return LLM_ERR_NOMEM;
		uf->parent = p;
		uf->cap = cap;
	}
	size_t j = slot_of(a, uf->nslots);
	while (uf->slot_ord[j] != EMPTY)
		j = (j + 1) & (uf->nslots - 1);
	uint32_t id = (uint32_t)uf->n++;
	uf->slot_ord[j] = a;
	uf->slot_node[j] = id;
	uf->ord[id] = a;
	uf->parent[id] = id;
	*node = id;
	return LLM_OK;
}

static uint32_t root_of(struct llm_uf *uf, uint32_t x)
{
	while (uf->parent[x] != x) {
		uf->parent[x] = uf->parent[uf->parent[x]]; /* path halving */
		x = uf->parent[x];
	}
	return x;
}

enum llm_err llm_uf_union(struct llm_uf *uf, uint64_t a, uint64_t b)
{
	if (a == b)
		return LLM_OK;
	uint32_t na, nb;
	enum llm_err e = node_of(uf, a, true, &na);
	if (!e)
		e = node_of(uf, b, true, &nb);
	if (e)
		return e;
	uint32_t ra = root_of(uf, na), rb = root_of(uf, nb);
	if (ra == rb)
		return LLM_OK;
	/* The smaller ordinal stays root, so a root is always its set's first record.  Without
	 * union by rank the trees can grow deeper, but path halving keeps finds short. */
	if (uf->ord[ra] < uf->ord[rb])
		uf->parent[rb] = ra;
	else
		uf->parent[ra] = rb;
	return LLM_OK;
}

uint64_t llm_uf_find(struct llm_uf *uf, uint64_t a)
{
	uint32_t n;
	node_of(uf, a, false, &n);
	return n == UINT32_MAX ? a : uf->ord[root_of(uf, n)];
}

enum llm_err llm_uf_pairs(struct llm_uf *uf, uint64_t **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	uint64_t *p = malloc((uf->n ? uf->n : 1) * 2 * sizeof *p);
	if (!p)
		return LLM_ERR_NOMEM;
	for (size_t i = 0; i < uf->n; i++) {
		p[2 * i] = uf->ord[i];
		p[2 * i + 1] = uf->ord[root_of(uf, (uint32_t)i)];
	}
	/* Sort by ordinal: pack to big-endian 16-byte records and reuse the spill sort. */
	unsigned char *r = malloc((uf->n ? uf->n : 1) * 16);
	if (!r) {
		free(p);
		return LLM_ERR_NOMEM;
	}
	for (size_t i = 0; i < uf->n; i++) {
		put_be(r + 16 * i, p[2 * i], 8);
		put_be(r + 16 * i + 8, p[2 * i + 1], 8);
	}
	llm_spill_sort(r, uf->n, 16);
	for (size_t i = 0; i < uf->n; i++) {
		p[2 * i] = get_be(r + 16 * i, 8);
		p[2 * i + 1] = get_be(r + 16 * i + 8, 8);
	}
	free(r);
	*out = p;
	*n = uf->n;
	return LLM_OK;
}

enum llm_err llm_dedup_group_add(struct llm_dedup_grouper *g, struct llm_uf *uf,
				 const unsigned char rec[LLM_DEDUP_REC_LEN])
{
	uint64_t ord = llm_dedup_rec_ord(rec);
	if (g->have) {
		int c = memcmp(g->prev, rec, LLM_DEDUP_REC_LEN);
		if (c > 0)
			return LLM_ERR_RANGE;
		if (!memcmp(g->prev, rec, 16)) {
			g->records++;
			memcpy(g->prev, rec, LLM_DEDUP_REC_LEN);
			if (ord == g->first)
				return LLM_OK;
			g->unions++;
			return llm_uf_union(uf, g->first, ord);
		}
	}
	memcpy(g->prev, rec, LLM_DEDUP_REC_LEN);
	g->first = ord;
	g->have = true;
	g->records++;
	return LLM_OK;
}
