/* Record ids, and resuming a run that appends records to a JSONL file.
 *
 * DESIGN.md section 3: a record's id is its "id" field; where it has none, a tool that needs
 * one derives it from the content.  The derived id here is the first 32 hex digits of the
 * SHA-256 of the record's members other than those a tool writes (its outputs), each taken
 * byte for byte as "KEY":VALUE, in order.  Since every tool passes unknown fields through
 * unchanged, the record a tool reads and the record it writes derive the same id, so a
 * resumed run finds its input's records in its own output.
 *
 * Identical records have the same id; the multiset (llm_idset) counts them, so a record that
 * occurs three times in the input and twice in the output is done twice and run once more. */
#ifndef LLM_DATA_RECID_H
#define LLM_DATA_RECID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"

#define LLM_RECORD_HASH_ID_LEN 32

/* The id of a record with these fields, appended to out: the decoded id_field when it is a
 * string, its JSON text when it is a number; the derived id (see above, leaving out the
 * members named in exclude) when it is absent or null, with *derived set.  LLM_ERR_TYPE for an
 * id of another type. */
enum llm_err llm_record_id(const struct llm_json_members *fields, const char *id_field,
			   const char *const *exclude, size_t nexclude, struct llm_buf *out,
			   bool *derived);

/* A multiset of ids. */
struct llm_idset;

enum llm_err llm_idset_new(struct llm_idset **out);
void llm_idset_free(struct llm_idset *s);
/* Count one more occurrence; *count (may be NULL) receives the count after adding. */
enum llm_err llm_idset_add(struct llm_idset *s, const char *id, size_t len, uint64_t *count);
/* Take one occurrence away: true when there was one. */
bool llm_idset_take(struct llm_idset *s, const char *id, size_t len);
/* Occurrences of id. */
uint64_t llm_idset_count(const struct llm_idset *s, const char *id, size_t len);
/* Occurrences of all ids together. */
uint64_t llm_idset_total(const struct llm_idset *s);

/* What llm_resume_scan found. */
struct llm_resume {
	uint64_t done;	     /* records counted as done */
	uint64_t redo;	     /* records removed to be run again (they had redo_field) */
	uint64_t torn_bytes; /* a partial last line cut off (0 when the file ended cleanly) */
	bool existed;	     /* the file was there */
};

/* Prepare the output file of an interrupted run for appending, and learn what it holds:
 *   - a last line without its newline (the run was killed while writing it) is cut off;
 *   - records with redo_field (when not NULL; llm-gen's "error") are removed, the file being
 *     rewritten atomically, so that they are run again rather than written twice;
 *   - the ids of the others (llm_record_id with id_field and exclude) are added to done.
 * A missing file is no error (res->existed false).  A line that is not a JSON object is
 * LLM_ERR_JSON with the file's name and line: the file is not one this run wrote. */
enum llm_err llm_resume_scan(const char *path, const char *id_field, const char *const *exclude,
			     size_t nexclude, const char *redo_field, size_t max_record_bytes,
			     struct llm_idset *done, struct llm_resume *res, struct llm_diag *diag);

#endif
