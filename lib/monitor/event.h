/* One line of a monitoring stream, as llm-monitor reads it.
 *
 * Three shapes of record are understood, and any record may mix them:
 *   - llm-serve's request log (lib/serve/reqlog.h, DESIGN.md section 3): ts, request_id,
 *     endpoint, model, key_id, status, latency_ms, ttft_ms, usage, finish_reason, prompt or
 *     messages (or prompt_sha256 + prompt_len under --log-content=hash), output (or
 *     output_sha256 + output_len), flags, error;
 *   - llm-gen's output records: prompt or messages, output, usage, latency_ms, ttft_ms, model,
 *     finish_reason, error (no status: a record with an error counts as failed);
 *   - OpenAI-style request/response pairs (proxy logs in the manner of Helicone):
 *     {"request": {...a /v1/chat/completions or /v1/completions body...},
 *      "response": {...its answer...}, "status": 200, ...}; the prompt and model come from
 *     the request, the output (the first choice's message content or text), usage,
 *     finish_reason, model and created from the response, unless top-level fields say
 *     otherwise;
 * and the feedback record {"kind":"feedback","request_id","score","comment","ts"[,"id"]}.
 *
 * Field names are those above unless struct llm_mon_fields renames them (the --FIELD-field
 * options).  ts may be an RFC 3339 string (any offset, fraction optional) or a number of Unix
 * seconds (fraction allowed); a number above 1e11 is taken as milliseconds.  A response's
 * "created" (Unix seconds) stands in when ts is missing.
 *
 * Parsing is strict about types (a status that is a string is a bad record, named with its
 * FILE:LINE) and lenient about absence: whatever is missing is marked unknown, never guessed.
 * Nothing here prints, and an event borrows memory it owns until the next parse. */
#ifndef LLM_MONITOR_EVENT_H
#define LLM_MONITOR_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/jsonl.h"

/* The names of the fields read (NULL members mean the default, the name in parentheses). */
struct llm_mon_fields {
	const char *ts;		   /* ts */
	const char *request_id;	   /* request_id (then id) */
	const char *model;	   /* model */
	const char *key_id;	   /* key_id */
	const char *status;	   /* status */
	const char *latency;	   /* latency_ms */
	const char *ttft;	   /* ttft_ms */
	const char *usage;	   /* usage */
	const char *finish_reason; /* finish_reason */
	const char *prompt;	   /* prompt */
	const char *messages;	   /* messages */
	const char *output;	   /* output */
	const char *flags;	   /* flags */
	const char *error;	   /* error */
	const char *score;	   /* score (feedback) */
	const char *kind;	   /* kind ("feedback" marks a feedback record) */
};

enum llm_mon_kind { LLM_MON_REQUEST, LLM_MON_FEEDBACK };

/* A string borrowed from the event (decoded, NUL-terminated); p is NULL when absent. */
struct llm_mon_str {
	const char *p;
	size_t n;
};

/* One flag of the record's flags array: {"kind","type",...} (type may be absent). */
struct llm_mon_flag {
	struct llm_mon_str kind, type, field;
	double score; /* -1: absent */
};

#define LLM_MON_UNKNOWN (-1.0)

struct llm_mon_event {
	enum llm_mon_kind kind;
	int64_t ts_ms; /* Unix milliseconds; INT64_MIN when the record has no time */
	struct llm_mon_str request_id;
	struct llm_mon_str endpoint;
	struct llm_mon_str model;
	struct llm_mon_str key_id;
	struct llm_mon_str finish_reason;
	int status;    /* HTTP status; 0 when the record has none */
	bool failed;   /* status >= 400, or an error member */
	struct llm_mon_str error_code; /* error.code (or error.type); NULL when none */
	double latency_ms; /* LLM_MON_UNKNOWN when absent or null */
	double ttft_ms;
	int64_t prompt_tokens; /* -1 when unknown */
	int64_t completion_tokens;
	/* The texts, decoded, only when parsed with want_text; a chat prompt is the contents of
	 * its messages (strings, or the text parts of content arrays) joined by "\n".
	 * prompt_user is the same for the user-role messages only (equal to prompt for a text
	 * prompt): where injection is looked for. */
	struct llm_mon_str prompt, prompt_user, output;
	bool chat; /* the prompt came from messages */
	/* Lengths in Unicode code points, known even under --log-content=hash (prompt_len,
	 * output_len); -1 when unknown.  Computed from the text when there is text. */
	int64_t prompt_chars, output_chars;
	struct llm_mon_flag *flags;
	size_t nflags;
	/* Feedback records. */
	double score;	       /* LLM_MON_UNKNOWN for a request */
	struct llm_mon_str comment;
	struct llm_mon_str feedback_id; /* "id" of a feedback record, or one derived from
					 * sha256(request_id, score, comment, ts): the same
					 * feedback read twice has the same id */
	const struct llm_record *rec; /* the record parsed (for passing it through) */
};

struct llm_mon_parser;

/* fields may be NULL (every default).  The parser copies the names. */
enum llm_err llm_mon_parser_new(struct llm_mon_parser **out, const struct llm_mon_fields *fields,
				bool want_text);
void llm_mon_parser_free(struct llm_mon_parser *p);

/* Parse a good record into ev (which borrows the parser's memory and rec until the next
 * call).  A field of the wrong type fails with LLM_ERR_TYPE (a number out of range, a ts that
 * is not RFC 3339: LLM_ERR_FORMAT), why naming FILE:LINE and the field. */
enum llm_err llm_mon_parse(struct llm_mon_parser *p, const struct llm_record *rec,
			   struct llm_mon_event *ev, struct llm_diag *why);

/* The id a feedback gets when its record has none: "fb-" and 24 hex digits of a SHA-256 over
 * the request id, the score and ts_ms (INT64_MIN: none) and the comment (NULL: none), so the
 * same feedback written twice counts once. */
#define LLM_MON_FB_ID_MAX 40
void llm_mon_feedback_id(const char *request_id, size_t idlen, double score, int64_t ts_ms,
			 const char *comment, size_t comment_len, char out[LLM_MON_FB_ID_MAX]);

/* RFC 3339 ("2026-01-02T03:04:05Z", "...05.678+02:00", lower-case t/z and a space for T
 * accepted) to Unix milliseconds; false when s is not one. */
bool llm_mon_parse_time(const char *s, size_t n, int64_t *ms);
/* A duration "500ms", "30s", "5m", "1h", "1d", "1w" (or a sum: "1h30m") in milliseconds; false
 * when s is not one.  A bare number is seconds. */
bool llm_mon_parse_duration(const char *s, int64_t *ms);

#endif
