/* Byte-level BPE tokenizers: tiktoken encodings (gpt2, cl100k_base, o200k_base, or any
 * .tiktoken file with its .meta.json) and Hugging Face tokenizer.json files whose model is
 * byte-level BPE (GPT-2, Llama 3, Qwen and their kin).
 *
 * Encoding gives the ids tiktoken and Hugging Face tokenizers give: special and added tokens
 * are cut out first, the rest is pre-split with the tokenizer's regular expression (PCRE2,
 * UTF + UCP + JIT, with \s spelled out as Unicode White_Space), and each piece is merged on its
 * UTF-8 bytes, lowest rank first and leftmost on ties.  A piece that is itself in the
 * vocabulary becomes one token (tiktoken, and HF with ignore_merges); long pieces merge through
 * a heap, so a 10 MB run of one character takes time proportional to its length times a
 * logarithm, never its square.
 *
 * Special tokens (tiktoken's, and HF added tokens marked special) are text unless allowed
 * with llm_bpe_allow_special(): "<|endoftext|>" in a document is then five ordinary tokens,
 * as tiktoken's encode_ordinary gives.  HF added tokens that are not special are always
 * matched, as in Hugging Face.
 *
 * An llm_bpe holds scratch space for encoding, so one is used by one thread at a time. */
#ifndef LLM_TEXT_BPE_H
#define LLM_TEXT_BPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

struct llm_bpe;

/* Load the encoding name ("cl100k_base") from dir: dir/name.tiktoken and dir/name.meta.json.
 * The meta file gives the pattern, the special tokens and the vocabulary's sha256, which is
 * checked: a corrupt or altered vocabulary fails with LLM_ERR_IO.  A name with no meta file in
 * dir fails with LLM_ERR_NOT_FOUND. */
enum llm_err llm_bpe_open_encoding(struct llm_bpe **out, const char *dir, const char *name,
				   struct llm_diag *diag);

/* Load a tokenizer file: a Hugging Face tokenizer.json (recognised by its leading '{'), or a
 * .tiktoken file with NAME.meta.json beside it (NAME being path without ".tiktoken"). */
enum llm_err llm_bpe_open_file(struct llm_bpe **out, const char *path, struct llm_diag *diag);

/* Build a tiktoken-style tokenizer from memory: vocab is the .tiktoken text, pattern the
 * pre-splitting regex (NULL: GPT-2's), and specials nspecial (text, id) pairs. */
enum llm_err llm_bpe_from_tiktoken(struct llm_bpe **out, const char *vocab, size_t vocab_len,
				   const char *pattern, const char *const *special_text,
				   const uint32_t *special_id, size_t nspecial,
				   struct llm_diag *diag);

/* Build from the text of a Hugging Face tokenizer.json. */
enum llm_err llm_bpe_from_hf_json(struct llm_bpe **out, const char *json, size_t len,
				  const char *name, struct llm_diag *diag);

void llm_bpe_free(struct llm_bpe *b);

/* One more than the largest id, special tokens included: the size a model's embedding needs. */
uint32_t llm_bpe_vocab_size(const struct llm_bpe *b);

/* The id of a special or added token given by its text; false when there is none. */
bool llm_bpe_special_id(const struct llm_bpe *b, const char *text, uint32_t *id);

/* Let the special token text (or every one, for "all") be recognised in the text to encode.
 * LLM_ERR_NOT_FOUND when the tokenizer has no such special token. */
enum llm_err llm_bpe_allow_special(struct llm_bpe *b, const char *text, struct llm_diag *diag);

/* A growing list of token ids. */
struct llm_bpe_ids {
	uint32_t *v;
	size_t n;
	size_t cap;
};
void llm_bpe_ids_free(struct llm_bpe_ids *ids);

/* Append the ids of text[0..len) (valid UTF-8) to out. */
enum llm_err llm_bpe_encode(struct llm_bpe *b, const char *text, size_t len,
			    struct llm_bpe_ids *out, struct llm_diag *diag);

/* The pre-split pieces of text[0..len), for tests and tools that count words: each piece's
 * start offset is appended to starts, then a final entry len.  Special tokens are not cut. */
enum llm_err llm_bpe_split(struct llm_bpe *b, const char *text, size_t len,
			   struct llm_bpe_ids *starts, struct llm_diag *diag);

/* Pre-splitting of ASCII text by hand for the GPT-2 and cl100k_base patterns (on by default,
 * same pieces as the regex); off, every piece comes from the regex.  For tests and benchmarks. */
void llm_bpe_use_fast_split(struct llm_bpe *b, bool on);

/* A SHA-256 (64 hex digits and a NUL into hex) of everything that decides the ids: the
 * vocabulary, the merges, the pattern, the special tokens and which are allowed.  Two
 * tokenizers with the same digest encode every text alike. */
enum llm_err llm_bpe_digest(const struct llm_bpe *b, char hex[65], struct llm_diag *diag);

/* Append the bytes of ids to out (they may end inside a UTF-8 character).  An id outside the
 * vocabulary fails with LLM_ERR_RANGE. */
enum llm_err llm_bpe_decode(const struct llm_bpe *b, const uint32_t *ids, size_t n,
			    struct llm_buf *out, struct llm_diag *diag);

#endif
