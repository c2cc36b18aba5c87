/* The parts of deduplication between signatures and the filter: band records, their text
 * form, grouping sorted band records into candidate pairs, and union-find clusters.
 *
 * A band record says "document ORD has key KEY in band BAND".  Documents are named by their
 * ordinal in the input (the n-th record, counting from 0 over every input file in order, bad
 * records included), so a record's ordinal is the same in every pass and on every machine that
 * reads the same files, and the smallest ordinal of a cluster is its first record in input
 * order: its representative.
 *
 * The binary form is 24 bytes, every integer big-endian so that memcmp sorts by band, key,
 * then ordinal (lib/data/spill.h).  The text form, one line per record, sorts the same way
 * under `LC_ALL=C sort`:
 *     BAND<TAB>KEY<TAB>ORD\n        4, 24 and 16 lower-case hex digits
 * A cluster map line names a document and its representative:
 *     ORD<TAB>REP\n                 16 and 16 lower-case hex digits; REP == ORD for the
 *                                   representative itself. */
#ifndef LLM_DATA_DEDUP_H
#define LLM_DATA_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define LLM_DEDUP_KEY_LEN 12
#define LLM_DEDUP_REC_LEN 24
#define LLM_DEDUP_LINE_LEN 47 /* a band record's text form, newline included */
#define LLM_DEDUP_MAP_LINE_LEN 34
#define LLM_DEDUP_MAX_BAND 0xffff

void llm_dedup_rec_pack(unsigned char rec[LLM_DEDUP_REC_LEN], unsigned band,
			const unsigned char key[LLM_DEDUP_KEY_LEN], uint64_t ord);
uint64_t llm_dedup_rec_ord(const unsigned char rec[LLM_DEDUP_REC_LEN]);
/* Write the text form (LLM_DEDUP_LINE_LEN bytes, newline included, no NUL). */
void llm_dedup_rec_format(const unsigned char rec[LLM_DEDUP_REC_LEN],
			  char line[LLM_DEDUP_LINE_LEN]);
/* Read the text form (without its newline); false when the line is not a band record. */
bool llm_dedup_rec_parse(const char *line, size_t n, unsigned char rec[LLM_DEDUP_REC_LEN]);

void llm_dedup_map_format(uint64_t ord, uint64_t rep, char line[LLM_DEDUP_MAP_LINE_LEN]);
bool llm_dedup_map_parse(const char *line, size_t n, uint64_t *ord, uint64_t *rep);

/* Union-find over ordinals, holding only the documents that took part in a union (about 24
 * bytes each), so its size follows the number of near-duplicates, not of documents.  The root
 * of a set is always its smallest ordinal. */
struct llm_uf {
	uint64_t *slot_ord; /* open-addressing table: ordinal -> node, UINT64_MAX when empty */
	uint32_t *slot_node;
	size_t nslots;
	uint64_t *ord; /* per node */
	uint32_t *parent;
	size_t n, cap;
};

void llm_uf_init(struct llm_uf *uf);
void llm_uf_free(struct llm_uf *uf);
enum llm_err llm_uf_union(struct llm_uf *uf, uint64_t a, uint64_t b);
/* The representative (smallest ordinal) of a's set; a itself when a never took part. */
uint64_t llm_uf_find(struct llm_uf *uf, uint64_t a);
/* Every node as (ordinal, representative), sorted by ordinal: what the cluster map holds.
 * *out is malloc'ed, 2 * *n values long. */
enum llm_err llm_uf_pairs(struct llm_uf *uf, uint64_t **out, size_t *n);

/* Turns band records, fed in sorted order, into unions: every record joins the first record
 * of its (band, key) group.  Checks the order, so unsorted input is caught. */
struct llm_dedup_grouper {
	unsigned char prev[LLM_DEDUP_REC_LEN];
	uint64_t first;
	bool have;
	uint64_t records; /* fed */
	uint64_t unions;  /* pairs joined */
};

/* LLM_ERR_RANGE when rec sorts before the previous record. */
enum llm_err llm_dedup_group_add(struct llm_dedup_grouper *g, struct llm_uf *uf,
				 const unsigned char rec[LLM_DEDUP_REC_LEN]);

#endif
