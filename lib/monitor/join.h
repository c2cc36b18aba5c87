/* Feedback joined with its request, whichever of the two arrives first.
 *
 * A join holds request records (their text, as read) and feedback (score, comment, and an
 * optional correction: a better answer) keyed by request id, and releases each request with
 * every distinct feedback given for it.  Feedback is idempotent by its id: the same feedback
 * read twice (a log read again, a `feedback add` repeated, an import of what the log already
 * holds) counts once.  Feedback whose request is not held when it is released is an orphan.
 *
 * When an entry is released (llm_mon_join_next), in this order of precedence:
 *   - ready: with emit_on_feedback (a stream under --follow), a request as soon as its first
 *     feedback arrives; feedback arriving for it later finds no request and is an orphan;
 *   - evicted: when more than max_pending entries (requests and early feedback together)
 *     are held, the oldest is released as it stands, so memory stays bounded whatever the
 *     input: a request with the feedback it has so far, early feedback as an orphan;
 *   - waited: with wait_ms > 0, an entry held for wait_ms (by the caller's clock) is released
 *     as it stands;
 *   - flushed: at the end of the input (flush), everything, oldest first.
 * Requests are released in the order they were read, except those released early by
 * emit_on_feedback.  Records without a request id are held in the same order (so the output
 * keeps the input's order) but join nothing.
 *
 * Nothing here prints; one thread uses a join at a time. */
#ifndef LLM_MONITOR_JOIN_H
#define LLM_MONITOR_JOIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

struct llm_mon_join_opts {
	size_t max_pending;    /* 0: no limit */
	int64_t wait_ms;       /* 0: wait until flushed */
	bool emit_on_feedback; /* release a request when its first feedback arrives */
};

/* One feedback, as held.  Strings are NUL-terminated; comment and correction may be NULL. */
struct llm_mon_fb {
	char *id;
	double score;
	char *comment;
	char *correction;
	int64_t ts_ms; /* INT64_MIN: none */
};

/* What llm_mon_join_next releases; valid until the next call. */
struct llm_mon_joined {
	const char *request_id; /* NULL for a record without one */
	const char *text;	/* the request record as read; NULL for orphan feedback */
	size_t len;
	const char *file; /* where the request was read (for diagnostics) */
	long line;
	const struct llm_mon_fb *fb; /* in arrival order, duplicates dropped */
	size_t nfb;
	bool evicted; /* released early because max_pending was reached */
};

struct llm_mon_join_counts {
	uint64_t requests;	  /* request records taken */
	uint64_t feedback;	  /* feedback records taken */
	uint64_t duplicates;	  /* feedback dropped as a repeat of one held (same id) */
	uint64_t released;	  /* requests released */
	uint64_t rated;		  /* ... of them with at least one feedback */
	uint64_t evicted;	  /* entries released early by max_pending */
	uint64_t orphan_feedback; /* feedback released without its request */
	uint64_t orphan_requests; /* distinct request ids of that feedback */
	uint64_t pending;	  /* entries held now */
};

struct llm_mon_join;

enum llm_err llm_mon_join_new(struct llm_mon_join **out, const struct llm_mon_join_opts *o);
void llm_mon_join_free(struct llm_mon_join *j);

/* Take a request record (text is copied).  id may be NULL (the record joins nothing).  now is
 * the caller's clock in ms (for wait_ms); file and line say where it was read. */
enum llm_err llm_mon_join_request(struct llm_mon_join *j, const char *id, size_t idlen,
				  const char *text, size_t len, const char *file, long line,
				  int64_t now);
/* Take a feedback (strings copied; comment, correction may be NULL).  *dup (may be NULL) is
 * set when it repeats one held and was dropped. */
enum llm_err llm_mon_join_feedback(struct llm_mon_join *j, const char *request_id, size_t idlen,
				   const char *fb_id, double score, const char *comment,
				   const char *correction, int64_t ts_ms, int64_t now, bool *dup);

/* Release the next entry due at time now (all of them, oldest first, with flush).  Returns
 * true with *out filled, false when none is due. */
bool llm_mon_join_next(struct llm_mon_join *j, int64_t now, bool flush, struct llm_mon_joined *out);

void llm_mon_join_counts(const struct llm_mon_join *j, struct llm_mon_join_counts *c);

/* Append the "feedback" member's value for a released request: {"count","mean","min","max",
 * "scores":[...],"comments":[...],"ids":[...]} and "corrections":[...] when any; scores,
 * comments and ids in arrival order; comments without the empty ones. */
enum llm_err llm_mon_join_render(const struct llm_mon_joined *r, struct llm_buf *out);

/* Append one feedback record, newline included, in the request log's shape (what
 * llm_reqlog_format_feedback writes) with "id" after ts, and "correction" when given:
 * {"kind":"feedback","request_id":...,"score":...,"comment":...,"ts":...,"id":...}.
 * comment and correction NULL: left out; ts_ms INT64_MIN: no ts. */
enum llm_err llm_mon_feedback_format(const char *request_id, double score, const char *comment,
				     const char *correction, int64_t ts_ms, const char *id,
				     struct llm_buf *out);

#endif
