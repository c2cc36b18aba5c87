/* Server-sent events (text/event-stream), parsed incrementally as the WHATWG HTML standard's
 * "event stream interpretation" says, for the HTTP backend's streamed responses and for
 * llm-serve's upstream streams.
 *
 * Feed the bytes as they arrive, in chunks of any size, cut anywhere (inside a line, between
 * the CR and LF of a CRLF, inside a UTF-8 character); the parser calls back once per complete
 * event.  Lines end with CRLF, LF or CR; a blank line dispatches the event; `data:` lines are
 * joined with "\n"; lines starting with ':' are comments; `event:` names the event, `id:` sets
 * the last event id (kept across events, as the standard says), `retry:` with only digits sets
 * the reconnection time; other fields are ignored; one space after the colon is dropped; a BOM
 * at the very start is skipped.  An event with no data lines is not dispatched, and neither is
 * an event the stream ends in the middle of (llm_sse_partial says whether one was cut off).
 *
 * Every buffer is capped: a line or an event's data longer than max_event bytes fails the
 * stream with LLM_ERR_TOO_BIG, so no server can make the reader grow without bound. */
#ifndef LLM_BACKEND_SSE_H
#define LLM_BACKEND_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* The default cap on one event (and one line): 16 MiB. */
#define LLM_SSE_DEFAULT_MAX_EVENT (16u << 20)

/* One dispatched event; the pointers are valid during the callback only. */
struct llm_sse_event {
	const char *type; /* the `event:` field, "message" when none was given */
	const char *data; /* the data lines joined with "\n", NUL-terminated */
	size_t data_len;
	const char *id; /* the last event id so far ("" for none) */
	long retry_ms;	/* the reconnection time set so far by `retry:`, -1 for none */
};

struct llm_sse {
	struct llm_buf line; /* the line being read, when it spans chunks */
	struct llm_buf data; /* the event's data so far, each line followed by "\n" */
	struct llm_buf type; /* the event's `event:` field */
	struct llm_buf id;   /* the last event id */
	long retry_ms;
	size_t max_event;
	bool after_cr;	/* the last byte fed was a CR: an LF right after it ends the same line */
	bool started;	/* past the optional BOM at the start of the stream */
	size_t bom_len; /* how many bytes of a BOM the stream has begun with so far */
	enum llm_err failed; /* sticky: a failure ends the stream */
};

/* Prepare a parser; max_event 0 means LLM_SSE_DEFAULT_MAX_EVENT. */
void llm_sse_init(struct llm_sse *p, size_t max_event);
void llm_sse_free(struct llm_sse *p);
/* Forget everything (for a new stream), keeping the cap and the memory. */
void llm_sse_reset(struct llm_sse *p);

/* Parse n more bytes, calling cb for each event they complete.  A callback that returns
 * anything but LLM_OK stops the feed.  Returns LLM_OK, the callback's code, or
 * LLM_ERR_TOO_BIG / LLM_ERR_NOMEM; after a failure every later feed returns the same code. */
enum llm_err llm_sse_feed(struct llm_sse *p, const char *s, size_t n,
			  enum llm_err (*cb)(void *ctx, const struct llm_sse_event *ev), void *ctx);

/* True when the stream so far ends inside an event: a partial line, or fields not yet
 * dispatched by a blank line.  At the end of a stream such an event is discarded. */
bool llm_sse_partial(const struct llm_sse *p);

#endif
