/* Packing tokenized documents into fixed-length training sequences, with the boundaries kept.
 *
 * The input is a token file with its document index (text/tokfile.h), as `llm-prep tokenize
 * --out` writes it.  The output is a token file of N sequences of exactly seq_len tokens, each
 * sequence one "document" of its index, and beside it the segment file PATH.seg: a token file
 * of the same layout (llm.c header, then N * seq_len little-endian values, with its own
 * PATH.seg.idx) whose value at each position is the number of the document that token belongs
 * to within its sequence, 1, 2, 3, ... in order, and 0 for padding.  A trainer builds its
 * block-diagonal attention mask (attend only where the segment numbers are equal and not 0)
 * and resets positions where the number changes.
 *
 * With eot, the end-of-text token follows each document and belongs to its segment.  A
 * document (with its end-of-text token) longer than seq_len is cut into pieces of seq_len
 * tokens, the last one shorter; each piece is then placed as a document of its own, with its
 * own segment number.  Empty documents are counted and skipped.
 *
 * Strategies: greedy keeps the input order, appending pieces to the current sequence and
 * padding it out when the next piece does not fit.  First-fit decreasing takes the pieces
 * longest first (ties in input order) and puts each into the first sequence with room for it,
 * opening a new one when none has; within a sequence pieces keep the order they were placed
 * in.  Both are deterministic. */
#ifndef LLM_DATA_PACK_H
#define LLM_DATA_PACK_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "text/tokfile.h"

enum llm_pack_strategy {
	LLM_PACK_GREEDY,
	LLM_PACK_FFD,
};

struct llm_pack_opts {
	uint32_t seq_len; /* >= 1 */
	uint32_t pad_id;
	bool use_eot;
	uint32_t eot_id;
	enum llm_pack_strategy strategy;
};

struct llm_pack_stats {
	uint64_t documents; /* documents read, empty ones included */
	uint64_t empty;	    /* documents with no tokens: skipped, even with eot */
	uint64_t split;	    /* documents cut into more than one piece */
	uint64_t pieces;    /* what was placed: whole documents and pieces of split ones */
	uint64_t sequences;
	uint64_t tokens;  /* document tokens written, end-of-text tokens included */
	uint64_t padding; /* padding tokens written */
};

/* Pack in into out (and out.idx, out.seg, out.seg.idx), all written atomically. */
enum llm_err llm_pack(const struct llm_tokfile *in, const struct llm_pack_opts *o, const char *out,
		      struct llm_pack_stats *st, struct llm_diag *diag);

#endif
