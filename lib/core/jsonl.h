/* Streaming JSONL input and output.
 *
 * The reader walks a list of inputs (files, "-" for stdin, gzip read transparently) one line
 * at a time, in bounded memory: a line longer than max_record_bytes is skipped without being
 * held and reported as too big.  Each line is scanned (core/json.h) and handed back as a
 * record that either holds its top-level members or says why it is bad, with its file and
 * line.  Blank lines are not records; a UTF-8 byte order mark at the start of a file and a
 * "\r" before the "\n" are dropped.
 *
 * The writer emits records unchanged (the bytes that were read) or with fields set, added or
 * removed, leaving every other field as it was and where it was. */
#ifndef LLM_CORE_JSONL_H
#define LLM_CORE_JSONL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"

enum llm_on_error {
	LLM_ON_ERROR_FAIL, /* stop at the first bad record (exit 1) */
	LLM_ON_ERROR_SKIP, /* drop it, count it, go on */
	LLM_ON_ERROR_KEEP, /* pass it on with an "error" field, count it, go on */
};

/* "fail", "skip" or "keep"; false when s is none of them. */
bool llm_on_error_parse(const char *s, enum llm_on_error *out);

#define LLM_STDIN_NAME "<stdin>"
#define LLM_DEFAULT_MAX_RECORD_BYTES (64u << 20)

struct llm_record {
	const char *file; /* the input's display name ("<stdin>" for "-") */
	long line;        /* 1-based line number in that input */
	const char *text; /* the line, without its newline; NULL at the end of input */
	size_t len;       /* its length; for a too-big record, the length it had */
	bool last_no_newline; /* the file ended without a newline after this line */
	enum llm_err status;  /* LLM_OK, or LLM_ERR_JSON / _UTF8 / _TOO_BIG for a bad record */
	struct llm_diag diag; /* when status is not LLM_OK: FILE:LINE and the reason */
	struct llm_json_members fields; /* when status is LLM_OK */
};

struct llm_jsonl_reader;

/* Open a reader over paths (npaths of them; none means stdin).  Every path is checked first
 * (exists, readable, not a directory), so a mistyped operand fails before any output. */
enum llm_err llm_jsonl_open(struct llm_jsonl_reader **out, char *const *paths, size_t npaths,
			    size_t max_record_bytes, struct llm_diag *diag);
/* Read only slice k (0-based) of n: the records (non-blank lines) whose ordinal modulo n is k.
 * The others are skipped before they are scanned, and line numbers stay those of the file. */
void llm_jsonl_set_slice(struct llm_jsonl_reader *r, uint64_t k, uint64_t n);
/* The next record.  At the end of input rec->text is NULL.  A bad record is returned with its
 * status set; only I/O failures (unreadable file, corrupt gzip) are returned as errors. */
enum llm_err llm_jsonl_next(struct llm_jsonl_reader *r, struct llm_record *rec,
			    struct llm_diag *diag);
/* Bytes consumed so far and the total expected (0 when unknown: stdin, pipes), for progress;
 * for gzip inputs both count compressed bytes. */
void llm_jsonl_progress(const struct llm_jsonl_reader *r, uint64_t *done, uint64_t *total);
void llm_jsonl_close(struct llm_jsonl_reader *r);
void llm_record_free(struct llm_record *rec);

/* The member name of a good record, which must be a string: returned, or NULL with why set to
 * "missing field" (LLM_ERR_MISSING) or "field is TYPE, not a string" (LLM_ERR_TYPE), naming
 * the record's file and line. */
const struct llm_json_member *llm_record_string_field(const struct llm_record *rec,
						      const char *name, struct llm_diag *why);
/* The same, decoded into out (cleared first). */
enum llm_err llm_record_string(const struct llm_record *rec, const char *name,
			       struct llm_buf *out, struct llm_diag *why);

/* A change to apply to a record when writing it: set key to the JSON text value (replacing
 * the member in place, or appending it at the end), or remove key when value is NULL. */
struct llm_edit {
	const char *key;
	const char *value;
};

/* Append rec's text with edits applied, and a newline, to out. */
enum llm_err llm_record_render(const struct llm_record *rec, const struct llm_edit *edits,
			       size_t nedits, struct llm_buf *out);

/* Append the record a bad line becomes under --on-error=keep, and a newline:
 *   {"error":{"code":"invalid_json","message":"..."},"source":{"file":F,"line":N},"raw":"..."}
 * A record that scanned (a bad record by a tool's own checks) keeps its fields and gains the
 * "error" member instead.  A line that is not UTF-8 comes back as "raw_base64"; a line over
 * the size limit has no copy (its length is in the message). */
enum llm_err llm_record_render_error(const struct llm_record *rec, const struct llm_diag *why,
				     struct llm_buf *out);

#endif
