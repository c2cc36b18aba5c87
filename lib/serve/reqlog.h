/* The request log of llm-serve (`--log FILE`, read by llm-monitor): one JSON line per request
 * and one per feedback, the records of DESIGN.md section 3.
 *
 * A request record, members in this order (absent values are left out, never written null,
 * except usage and ttft_ms, which are null when unknown):
 *
 *   {"ts":"2026-01-02T03:04:05.678Z","request_id":"req-...","endpoint":"/v1/chat/completions",
 *    "model":"support-bot@3","key_id":"team-a","status":200,"latency_ms":812.4,"ttft_ms":95.1,
 *    "usage":{"prompt_tokens":31,"completion_tokens":120},"finish_reason":"stop",
 *    "prompt":"...","output":"...","flags":[{"kind":"pii","type":"email","field":"output",
 *    "span":[10,27],"score":1}],"error":{"code":"...","message":"..."}, ...extra members}
 *
 * ts is the time the request arrived, RFC 3339 in UTC with milliseconds.  The prompt is the
 * prompt string of /v1/completions; a chat request's messages array is written, as given, in a
 * "messages" member instead.  The content mode decides how prompt, messages and output appear:
 *
 *   full  as above;
 *   hash  "prompt_sha256":"<hex>","prompt_len":N (and "output_sha256","output_len"): the
 *         SHA-256 of the UTF-8 text (of the messages' JSON text for a chat request) and its
 *         length in Unicode code points, so lengths can still be watched for drift;
 *   none  neither text nor hash.
 *
 * Flags keep their spans in every mode (offsets are not content).  A record longer than
 * max_line is written in hash mode with "truncated":true rather than cut or lost.
 *
 * A feedback record: {"kind":"feedback","request_id":"req-...","score":1,"comment":"...",
 * "ts":"..."} (comment left out when there is none).  It may come before or after its request.
 *
 * Each line goes out in one write(2) on a descriptor opened with O_APPEND, under a lock, so
 * lines never tear or interleave, between threads or with other processes appending to the
 * same file.  llm_reqlog_reopen() (SIGHUP, after logrotate renames the file) opens the path
 * again and swaps descriptors under the same lock: every line lands whole in the old file or
 * the new one.  Durability, by sync policy: none (the default) leaves each line with the
 * kernel when write returns, which outlives a crash of the server but not of the machine;
 * interval fdatasync()s at most every sync_interval seconds, after a write; every
 * fdatasync()s after each line (slow, for audit logs).  Reopen and close sync the old
 * descriptor under every policy but none.  The path "-" is standard output, which reopen
 * leaves alone.  New files are created with mode 0600: prompts are private.
 *
 * Thread-safe; nothing here prints. */
#ifndef LLM_SERVE_REQLOG_H
#define LLM_SERVE_REQLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

enum llm_reqlog_content { LLM_REQLOG_FULL, LLM_REQLOG_HASH, LLM_REQLOG_NONE };
enum llm_reqlog_sync { LLM_REQLOG_SYNC_NONE, LLM_REQLOG_SYNC_INTERVAL, LLM_REQLOG_SYNC_EVERY };

struct llm_reqlog_config {
	const char *path; /* "-" for standard output */
	enum llm_reqlog_content content;
	enum llm_reqlog_sync sync;
	double sync_interval; /* seconds, for LLM_REQLOG_SYNC_INTERVAL; 0: 1 s */
	size_t max_line;      /* bytes in one line; 0: 1 MiB */
};

/* One finding of a detector: kind ("pii", "injection"), type ("email"), the field it was found
 * in ("prompt", "output"), text[start, end) in bytes, and a score in [0, 1]. */
struct llm_reqlog_flag {
	const char *kind;
	const char *type; /* NULL: left out */
	const char *field;
	size_t start, end;
	double score;
};

/* One request.  Strings may be NULL (left out); text must be valid UTF-8. */
struct llm_reqlog_record {
	int64_t ts_ms; /* Unix time in ms when the request arrived; 0: now */
	const char *request_id;
	const char *endpoint;
	const char *model;
	const char *key_id;
	int status;	       /* HTTP status */
	double latency_ms;     /* < 0: left out */
	double ttft_ms;	       /* < 0: null (no token came, or not streamed) */
	int64_t prompt_tokens; /* < 0: usage is null */
	int64_t completion_tokens;
	const char *finish_reason;
	const char *prompt; /* a text prompt, prompt_len bytes */
	size_t prompt_len;
	const char *messages_json; /* a chat prompt: the messages array as JSON text */
	size_t messages_len;
	const char *output; /* output_len bytes */
	size_t output_len;
	const struct llm_reqlog_flag *flags;
	size_t nflags;
	const char *error_code; /* with error_message: the "error" member */
	const char *error_message;
	/* Extra members appended as they are: a JSON text of the form "\"a\":1,\"b\":\"x\""
	 * (no braces), e.g. the upstream or model version that answered.  NULL: none. */
	const char *extra_json;
};

struct llm_reqlog;

enum llm_err llm_reqlog_open(struct llm_reqlog **out, const struct llm_reqlog_config *cfg,
			     struct llm_diag *diag);
/* Sync (per policy) and close; NULL is fine. */
void llm_reqlog_close(struct llm_reqlog *l);
/* Open the path again and switch to it (see above).  On failure the old file stays in use. */
enum llm_err llm_reqlog_reopen(struct llm_reqlog *l, struct llm_diag *diag);

/* Append one request record / one feedback record (comment may be NULL; ts_ms 0: now). */
enum llm_err llm_reqlog_write(struct llm_reqlog *l, const struct llm_reqlog_record *r,
			      struct llm_diag *diag);
enum llm_err llm_reqlog_feedback(struct llm_reqlog *l, const char *request_id, double score,
				 const char *comment, int64_t ts_ms, struct llm_diag *diag);

/* Lines written and lines that failed since open (for /metrics and /health). */
void llm_reqlog_counts(struct llm_reqlog *l, uint64_t *written, uint64_t *failed);

/* Format a record as one line, newline included, appended to out (what write() writes). */
enum llm_err llm_reqlog_format(const struct llm_reqlog_record *r, enum llm_reqlog_content mode,
			       struct llm_buf *out);
enum llm_err llm_reqlog_format_feedback(const char *request_id, double score, const char *comment,
					int64_t ts_ms, struct llm_buf *out);

/* ts as RFC 3339 UTC with milliseconds: "2026-01-02T03:04:05.678Z" (25 bytes with NUL). */
#define LLM_REQLOG_TS_MAX 32
void llm_reqlog_ts(int64_t unix_ms, char out[LLM_REQLOG_TS_MAX]);
/* The wall clock in Unix milliseconds. */
int64_t llm_reqlog_now_ms(void);

/* A fresh request id: "req-" and 24 random hex digits (from the OS's random source). */
#define LLM_REQLOG_ID_MAX 32
void llm_reqlog_request_id(char out[LLM_REQLOG_ID_MAX]);

/* Parse "full", "hash", "none" (for --log-content); LLM_ERR_USAGE otherwise. */
enum llm_err llm_reqlog_content_parse(const char *s, enum llm_reqlog_content *out);

#endif
