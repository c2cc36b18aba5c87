/* What every llmops program shares: verb dispatch, --help and --version from the option
 * tables, the record loop with --on-error, output to stdout with its errors checked, exit
 * statuses, and diagnostics as "llm-TOOL: message".  Each program is a table of verbs and a
 * main() that calls llm_cli_main(). */
#ifndef LLM_CMD_CLI_H
#define LLM_CMD_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/jsonl.h"
#include "core/opt.h"
#include "core/progress.h"

/* Exit statuses (DESIGN.md section 6). */
enum {
	LLM_EXIT_OK = 0,
	LLM_EXIT_NEGATIVE = 1,
	LLM_EXIT_USAGE = 2,
	LLM_EXIT_IO = 3,
};

struct llm_cli;

struct llm_verb {
	const char *name;
	const char *summary; /* one line for the verb list */
	const char *usage;   /* operands after the verb: "[OPTIONS] [FILE...]" */
	const char *about;   /* a paragraph for --help */
	const struct llm_opt *opts[8]; /* the verb's tables, NULL-terminated */
	int (*run)(struct llm_cli *cli);
};

struct llm_tool {
	const char *name; /* "llm-prep" */
	const char *env;  /* "prep": LLMOPS_PREP_<OPTION> */
	const char *summary;
	const struct llm_verb *const *verbs; /* ends with NULL */
	/* A program with no verbs (llm-eval): every argument is this verb's, and its --help shows
	 * no verb name.  verbs is then NULL. */
	const struct llm_verb *main;
};

struct llm_cli {
	const struct llm_tool *tool;
	const struct llm_verb *verb;
	struct llm_args args;
	bool quiet;
	struct llm_buf out; /* pending stdout bytes */
};

/* Options every verb has; those of every verb that reads records; --on-error. */
extern const struct llm_opt llm_cli_opts_base[];
extern const struct llm_opt llm_cli_opts_input[];
extern const struct llm_opt llm_cli_opts_on_error[];

int llm_cli_main(const struct llm_tool *tool, int argc, char **argv);

/* Diagnostics on stderr: "llm-prep: message". */
void llm_cli_error(const struct llm_cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print a diagnostic and return the exit status for its code. */
int llm_cli_fail(const struct llm_cli *c, const struct llm_diag *d);
/* Report a usage error and return 2. */
int llm_cli_usage(const struct llm_cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Queue bytes for stdout; returns false (after printing why) when stdout failed. */
bool llm_cli_write(struct llm_cli *c, const void *p, size_t n);
/* Flush pending output; false on failure.  Called at exit by llm_cli_main. */
bool llm_cli_flush(struct llm_cli *c);

/* Queue a record for stdout with edits applied (see llm_record_render). */
bool llm_cli_emit(struct llm_cli *c, const struct llm_record *rec, const struct llm_edit *edits,
		  size_t nedits);

/* Write a JSON value to path atomically (or to stdout when path is "-"), indented, with the
 * project's number precision. */
enum llm_err llm_cli_write_json(struct llm_cli *c, const char *path, json_t *v,
				struct llm_diag *d);
#define LLM_JSON_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(10))

/* The record loop.  llm_cli_in_next hands back good records; bad ones are dealt with by
 * --on-error: fail stops the run, skip drops it with a warning, keep also writes the error
 * record to stdout when the verb passes records through (keep_writes). */
struct llm_cli_in {
	struct llm_jsonl_reader *reader;
	enum llm_on_error on_error;
	bool keep_writes;
	bool always_report; /* report bad records even under --quiet (validate) */
	struct llm_progress progress;
	struct llm_record rec;
	uint64_t records; /* good records read */
	uint64_t bad;     /* bad records seen (dropped + kept) */
	uint64_t dropped;
	uint64_t kept;
	uint64_t bad_by_code[LLM_ERR__COUNT];
	int status; /* exit status when next() returned -1 */
};

int llm_cli_in_open(struct llm_cli *c, struct llm_cli_in *in, bool keep_writes);
/* 1: *rec is a good record; 0: end of input; -1: stop, in->status says why. */
int llm_cli_in_next(struct llm_cli *c, struct llm_cli_in *in, struct llm_record **rec);
/* Apply --on-error to a record the verb itself finds bad (it then counts as bad, not good).
 * Returns false when the run stops. */
bool llm_cli_in_reject(struct llm_cli *c, struct llm_cli_in *in, const struct llm_record *rec,
		       const struct llm_diag *why);
void llm_cli_in_close(struct llm_cli_in *in);
/* The input side of a --report: {"read","good","bad","bad_dropped","bad_kept","bad_by_reason"}.
 * A verb adds what it wrote and dropped, so that read = written + dropped can be checked. */
json_t *llm_cli_in_report(const struct llm_cli_in *in);

#endif
