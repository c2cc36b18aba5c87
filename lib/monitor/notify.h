/* Alert delivery: the JSON bodies the receivers of the field understand, signed, posted through
 * libcurl with retries, and an outbox folder for what could not be delivered, so that nothing
 * is dropped silently (llm-monitor alert).
 *
 * Bodies, by target type (monitor/rules.h):
 *   webhook       Alertmanager's webhook body, version 4: {"version":"4","groupKey","status",
 *                 "receiver","groupLabels","commonLabels","commonAnnotations","externalURL",
 *                 "truncatedAlerts","alerts":[{"status","labels","annotations","startsAt",
 *                 "endsAt","generatorURL","fingerprint"}]}: whatever reads Alertmanager's
 *                 webhooks reads ours;
 *   slack         an incoming-webhook message: {"text": a one-line summary, "blocks": [...]};
 *   alertmanager  the body of Alertmanager's POST /api/v2/alerts: [{"labels","annotations",
 *                 "startsAt","endsAt","generatorURL"}].
 * With a secret, a request carries X-Llmops-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
 * "<t>.<body>"> (the Stripe / Langfuse scheme: the receiver recomputes it and refuses old t).
 * Nothing here prints. */
#ifndef LLM_MONITOR_NOTIFY_H
#define LLM_MONITOR_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "monitor/rules.h"

#define LLM_NOTIFY_SIGNATURE_HEADER "X-Llmops-Signature"

/* One alert in a message. */
struct llm_notice {
	bool resolved;
	const json_t *labels;	   /* object of strings: alertname, severity, group keys, ... */
	const json_t *annotations; /* object of strings */
	int64_t starts_at;	   /* Unix ms */
	int64_t ends_at;	   /* Unix ms; 0: none (firing without an end) */
};

/* The body for a target type; external_url (may be NULL) becomes generatorURL / externalURL.
 * NULL when out of memory. */
json_t *llm_notify_body(enum llm_notify_type type, const struct llm_notice *alerts, size_t n,
			const char *external_url);

/* HMAC-SHA256 (RFC 2104) of msg under key. */
enum llm_err llm_notify_hmac(const void *key, size_t keylen, const void *msg, size_t n,
			     unsigned char out[32]);
/* The signature header's value, "t=<t>,v1=<64 hex>", into out (at least 96 bytes). */
enum llm_err llm_notify_sign(const char *secret, int64_t t, const char *body, size_t n, char *out,
			     size_t outsz);

/* Where a target's requests go: the URL itself, except for alertmanager, whose base URL gets
 * /api/v2/alerts (unless it ends so already). */
enum llm_err llm_notify_endpoint(const struct llm_notify_target *t, char *out, size_t outsz);

struct llm_notify_result {
	long status;  /* the last answer's HTTP status; 0 when none came */
	int attempts; /* requests made */
	char error[256];
};

/* POST body to t: 1 + t->retries attempts, on a network error or an answer worth retrying
 * (408, 409, 429, 5xx) after openai-python's backoff, or the answer's Retry-After when it asks
 * for longer (at most 60 s).  secret NULL: unsigned.  LLM_OK on a 2xx; LLM_ERR_REMOTE otherwise,
 * with why in res->error and diag. */
enum llm_err llm_notify_post(const struct llm_notify_target *t, const char *secret,
			     const char *body, size_t n, struct llm_notify_result *res,
			     struct llm_diag *diag);

/* --- the outbox: DIR/outbox/ID.json, one per delivery that failed ---
 * An entry holds the target (name, type, URL, secret_env, headers, retries, timeout), the body
 * as it was built, when it was first tried, its attempts and last error.  ID is the sha256 of
 * target name and body, so the same delivery is never queued twice. */
struct llm_outbox_entry {
	char *path; /* the entry's file */
	char *id;
	struct llm_notify_target target;
	char *body;
	size_t body_len;
	int64_t created_ms;
	int64_t attempts;
	char *last_error;
};

enum llm_err llm_outbox_put(const char *dir, const struct llm_notify_target *t, const char *body,
			    size_t n, int64_t now_ms, int attempts, const char *error,
			    struct llm_diag *diag);
/* The entries, oldest first (by created, then ID).  A file that is not an entry fails with
 * LLM_ERR_FORMAT naming it. */
enum llm_err llm_outbox_list(const char *dir, struct llm_outbox_entry **out, size_t *n,
			     struct llm_diag *diag);
/* After a delivery: remove the entry (delivered), or write it back with attempts and error. */
enum llm_err llm_outbox_done(struct llm_outbox_entry *e, bool delivered, int attempts,
			     const char *error, struct llm_diag *diag);
void llm_outbox_free(struct llm_outbox_entry *v, size_t n);

#endif
