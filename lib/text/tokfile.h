/* Token files for training: what `llm-prep tokenize --out` writes and `llm-prep pack` and
 * `llm-tune train` read.
 *
 * The token file is llm.c's format, so llm.c's trainers read it as is: a header of 256
 * little-endian int32 (header[0] = 20240520, header[1] = 1 for uint16 tokens or 2 for uint32
 * tokens, header[2] = the number of tokens), then the tokens, little-endian.  Version 1 is
 * used when every id fits in 16 bits (vocabularies up to 65,536), else version 2.
 *
 * Beside it, PATH.idx holds the document boundaries: the 8 bytes "LLMOPSIX", a little-endian
 * uint32 version (1), a uint32 of zero, a uint64 document count D, then D + 1 uint64 token
 * offsets (the first 0, the last the token count), so document i is tokens
 * [offset[i], offset[i+1]).
 *
 * Both files are written atomically: they appear together at commit, or not at all (see
 * llm_tokfile_resume for the exception that keeps a long run's progress). */
#ifndef LLM_TEXT_TOKFILE_H
#define LLM_TEXT_TOKFILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define LLM_TOKFILE_MAGIC	20240520
#define LLM_TOKFILE_HEADER_INTS 256
#define LLM_TOKFILE_IDX_MAGIC	"LLMOPSIX"

struct llm_tokfile_writer;

/* Start writing path (and path.idx).  vocab_size decides the token width. */
enum llm_err llm_tokfile_create(struct llm_tokfile_writer **out, const char *path,
				uint32_t vocab_size, struct llm_diag *diag);
/* Append one document's tokens (a boundary is recorded after them). */
enum llm_err llm_tokfile_append(struct llm_tokfile_writer *w, const uint32_t *ids, size_t n,
				struct llm_diag *diag);
/* Finish both files and move them into place; frees w whatever the outcome. */
enum llm_err llm_tokfile_commit(struct llm_tokfile_writer *w, struct llm_diag *diag);
/* Discard both files; frees w. */
void llm_tokfile_abort(struct llm_tokfile_writer *w);

/* Resumable writing, for runs long enough to be interrupted: path.partial and
 * path.partial.idx are written in place rather than as temporaries, so whatever
 * llm_tokfile_sync() made durable outlives the process.  ntokens and ndocs are such a
 * checkpoint: the partial files are cut back to it and appending goes on from there (0 and 0
 * start afresh, replacing any partial files); partial files shorter than the checkpoint, or
 * whose index does not end at it, fail with LLM_ERR_JSON.  llm_tokfile_commit() fills in the
 * counts and renames them to path and path.idx, giving the bytes an uninterrupted
 * llm_tokfile_create() run gives; llm_tokfile_abort() closes them and leaves them in place. */
enum llm_err llm_tokfile_resume(struct llm_tokfile_writer **out, const char *path,
				uint32_t vocab_size, uint64_t ntokens, uint64_t ndocs,
				struct llm_diag *diag);
/* Flush and fsync what has been appended; *ntokens and *ndocs are the checkpoint to resume
 * from (on any writer, though only a resumable one keeps its files when it dies). */
enum llm_err llm_tokfile_sync(struct llm_tokfile_writer *w, uint64_t *ntokens, uint64_t *ndocs,
			      struct llm_diag *diag);

/* A token file opened for reading (memory-mapped; checked against its header and index). */
struct llm_tokfile {
	uint64_t ntokens;
	uint64_t ndocs; /* 1 when there is no .idx file: the whole file is one document */
	unsigned width; /* 2 or 4 bytes per token */
	const unsigned char *tokens;
	const uint64_t *offsets; /* ndocs + 1 entries */
	void *map_tokens, *map_idx;
	size_t map_tokens_len, map_idx_len;
	uint64_t whole[2]; /* offsets when there is no .idx file */
};

enum llm_err llm_tokfile_open(struct llm_tokfile *tf, const char *path, struct llm_diag *diag);
void llm_tokfile_close(struct llm_tokfile *tf);
static inline uint32_t llm_tokfile_get(const struct llm_tokfile *tf, uint64_t i)
{
	const unsigned char *p = tf->tokens + i * tf->width;
	return tf->width == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8
			      : (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
				    (uint32_t)p[3] << 24;
}

#endif
