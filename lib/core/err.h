/* Error codes and diagnostics shared by every module of libllmops.
 *
 * Library functions return an enum llm_err and, when given a struct llm_diag, fill it with
 * the file, line and message that explain the failure.  The numbers are part of the ABI and
 * of the report files: a code is never renumbered or reused, new codes go at the end.
 * Programs turn a code into an exit status with llm_err_exit_status(). */
#ifndef LLM_CORE_ERR_H
#define LLM_CORE_ERR_H

#include <stddef.h>

enum llm_err {
	LLM_OK = 0,
	LLM_ERR_NOMEM = 1,     /* an allocation failed */
	LLM_ERR_IO = 2,        /* read, write, open, rename failed (errno in the message) */
	LLM_ERR_USAGE = 3,     /* bad option or operand */
	LLM_ERR_JSON = 4,      /* a record is not valid JSON, or not an object */
	LLM_ERR_UTF8 = 5,      /* a record is not valid UTF-8 */
	LLM_ERR_TOO_BIG = 6,   /* a record or buffer exceeds its configured maximum */
	LLM_ERR_TYPE = 7,      /* a field has the wrong JSON type */
	LLM_ERR_MISSING = 8,   /* a required field is absent */
	LLM_ERR_NOT_FOUND = 9, /* a file or entry does not exist */
	LLM_ERR_IS_DIR = 10,   /* a directory where a file was expected */
	LLM_ERR_GZIP = 11,     /* a gzip stream is corrupt or truncated */
	LLM_ERR_RANGE = 12,    /* a number is out of its allowed range */
	LLM_ERR_CHECK = 13,    /* a check ran and found a negative result */
	LLM_ERR_REMOTE = 14,   /* a remote server refused or failed a request (after retries) */
	LLM_ERR_FORMAT = 15,   /* a file is malformed for its format (safetensors, GGUF, ...) */
	LLM_ERR__COUNT
};

#define LLM_DIAG_FILE_MAX 512
#define LLM_DIAG_MSG_MAX 512

/* Where and why something failed.  line is 0 when the failure is not tied to a line. */
struct llm_diag {
	enum llm_err code;
	char file[LLM_DIAG_FILE_MAX];
	long line;
	char msg[LLM_DIAG_MSG_MAX];
};

/* A short stable name for a code ("invalid_json"), used in report files and error fields. */
const char *llm_err_name(enum llm_err code);

/* The exit status a program uses for a code (DESIGN.md section 6): 1 for a negative result or
 * a bad record, 2 for usage, 3 for I/O and remote failures. */
int llm_err_exit_status(enum llm_err code);

/* Fill diag (when not NULL) and return code, so a failure is one statement:
 *     return llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot open: %s", strerror(errno)); */
enum llm_err llm_diag_set(struct llm_diag *diag, enum llm_err code, const char *file, long line,
			  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Format a diagnostic as "FILE:LINE: message" (or "FILE: message", or "message") into out. */
void llm_diag_format(const struct llm_diag *diag, char *out, size_t outsz);

#endif
