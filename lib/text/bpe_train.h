/* Byte-level BPE training, as Hugging Face tokenizers' BpeTrainer does it, written out as a
 * Hugging Face tokenizer.json.
 *
 * Text is fed in pieces: special tokens are cut out first (they are never counted), the rest
 * is pre-split by a regular expression (PCRE2, UTF + UCP) and each piece's UTF-8 bytes count
 * as one word.  Training starts from the 256 single-byte tokens written in the GPT-2
 * byte-to-unicode alphabet (the 188 printable bytes stand for themselves, the other 68 become
 * U+0100 upward in byte order) and repeatedly merges the most frequent adjacent pair, its
 * count weighted by the counts of the words it occurs in.
 *
 * Ids follow the Hugging Face trainer, so the same words give the same merges in the same
 * order: the special tokens first (0, 1, ...), then the 256 byte tokens in code-point order of
 * their characters, then one id per merge.  A tie between pairs of equal count goes to the
 * pair with the smaller (left id, right id).  Counts are 64-bit.  Pair counts are updated
 * incrementally after each merge, in the words where the pair occurs only, and the next pair
 * is taken from a max-heap with lazy updates.
 *
 * The word-count table is the only structure that grows with the corpus: when it passes
 * max_words distinct words, the rarest are pruned (every word seen at most once, then at most
 * twice, ... until a quarter of the room is free), so counts of rare words are approximate on
 * corpora with more distinct words than the cap. */
#ifndef LLM_TEXT_BPE_TRAIN_H
#define LLM_TEXT_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

/* Pre-splitting patterns of GPT-2 and of cl100k_base (GPT-3.5/4, Llama 3). */
#define LLM_BPE_PATTERN_GPT2                                                                       \
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define LLM_BPE_PATTERN_CL100K                                                                     \
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                 \
	"?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

struct llm_bpe_train_opts {
	uint32_t vocab_size;	     /* the target, special tokens included; >= 256 + nspecials */
	uint64_t min_frequency;	     /* stop when the best pair is rarer than this */
	const char *pattern;	     /* pre-splitting regex (PCRE2 syntax); NULL: cl100k's */
	const char *const *specials; /* special tokens, in id order */
	size_t nspecials;
	uint64_t max_words; /* distinct words kept while counting; 0: no cap */
};

struct llm_bpe_train_stats {
	uint64_t words;		 /* word occurrences counted */
	uint64_t distinct_words; /* distinct words kept for training */
	uint64_t pruned_words;	 /* distinct words pruned to respect max_words */
	uint64_t pruned_count;	 /* occurrences of them */
	uint64_t specials_seen;	 /* special tokens found (and cut out) in the text */
	uint64_t merges;
	uint64_t vocab; /* the final vocabulary size, special tokens included */
};

struct llm_bpe_trainer;

/* Checks the options (vocab_size, the pattern, special tokens: non-empty, valid UTF-8,
 * distinct); LLM_ERR_USAGE with the reason when they are wrong. */
enum llm_err llm_bpe_trainer_new(struct llm_bpe_trainer **out, const struct llm_bpe_train_opts *o,
				 struct llm_diag *diag);
void llm_bpe_trainer_free(struct llm_bpe_trainer *t);

/* Count the words of one text (UTF-8; LLM_ERR_UTF8 otherwise). */
enum llm_err llm_bpe_trainer_feed(struct llm_bpe_trainer *t, const char *text, size_t n,
				  struct llm_diag *diag);
/* Count one word directly (raw bytes, not split), count times. */
enum llm_err llm_bpe_trainer_add_word(struct llm_bpe_trainer *t, const char *word, size_t n,
				      uint64_t count, struct llm_diag *diag);

/* Learn the merges.  Called once, after feeding; the word table is released. */
enum llm_err llm_bpe_trainer_train(struct llm_bpe_trainer *t, struct llm_diag *diag);

void llm_bpe_trainer_stats(const struct llm_bpe_trainer *t, struct llm_bpe_train_stats *out);
/* After training: token id's text (byte-level alphabet; a special token as given), and merge
 * i's two halves. */
const char *llm_bpe_trainer_token(const struct llm_bpe_trainer *t, uint32_t id);
void llm_bpe_trainer_merge(const struct llm_bpe_trainer *t, size_t i, const char **left,
			   const char **right);

/* After training: the whole tokenizer.json (version "1.0", the special tokens as added tokens,
 * Split + ByteLevel pre-tokenizer, ByteLevel decoder, the BPE model with merges as pairs).
 * NULL when out of memory. */
json_t *llm_bpe_trainer_json(const struct llm_bpe_trainer *t);

/* The GPT-2 byte-to-unicode character of byte b, as UTF-8 in out (1 or 2 bytes, then a NUL). */
size_t llm_bpe_byte_char(unsigned char b, char out[3]);

#endif
