/* External sorting of fixed-size binary records in bounded memory.
 *
 * Records are collected in a buffer of at most `memory` bytes; a full buffer is sorted and
 * written as a run to an unnamed temporary file in tmp_dir (created with mkstemp and unlinked
 * at once, so a crash leaves nothing behind).  When reading back, the runs are merged k ways
 * with a heap.  Runs are merged early, 64 at a time, so no more than 65 files are open and the
 * merge buffers fit in the same memory.  Records compare as byte strings (memcmp over the
 * whole record), so callers store integers big-endian to sort them numerically.
 *
 * Use: llm_spill_open, llm_spill_add for each record, llm_spill_finish, then llm_spill_next
 * until it hands back NULL, and llm_spill_close. */
#ifndef LLM_DATA_SPILL_H
#define LLM_DATA_SPILL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define LLM_SPILL_MAX_RECORD 256

struct llm_spill;

/* rec_size: 1 to LLM_SPILL_MAX_RECORD bytes.  memory: the buffer's size in bytes (at least
 * 16 records' worth is used whatever is asked).  tmp_dir: where runs go. */
enum llm_err llm_spill_open(struct llm_spill **out, size_t rec_size, size_t memory,
			    const char *tmp_dir, struct llm_diag *diag);
/* Add one record (rec_size bytes). */
enum llm_err llm_spill_add(struct llm_spill *s, const void *rec, struct llm_diag *diag);
/* No more records: sort what is in memory and get ready to read back in order. */
enum llm_err llm_spill_finish(struct llm_spill *s, struct llm_diag *diag);
/* The next record in ascending order, or *rec = NULL at the end.  The pointer stays valid
 * until the next call. */
enum llm_err llm_spill_next(struct llm_spill *s, const void **rec, struct llm_diag *diag);
/* Records added, and the runs written to disk (0 when everything fitted in memory). */
uint64_t llm_spill_count(const struct llm_spill *s);
uint64_t llm_spill_runs(const struct llm_spill *s);
void llm_spill_close(struct llm_spill *s);

/* Sort n records of size bytes in place, ascending by memcmp (an introsort that allocates
 * nothing, unlike glibc's qsort, which may copy the whole array). */
void llm_spill_sort(void *base, size_t n, size_t size);

#endif
