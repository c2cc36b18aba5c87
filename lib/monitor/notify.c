/* Alert delivery: bodies, signatures, HTTP with retries, the outbox (monitor/notify.h). */
#include "config.h"

#include "monitor/notify.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "backend/retry.h"
#include "core/atomic.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/rand.h"
#include "monitor/event.h"

/* What a receiver may answer: kept for the error message only. */
#define ANSWER_MAX (64u << 10)
/* The longest Retry-After we wait for: a cron job must not hang on one receiver. */
#define HINT_MAX_S 60.0
/* The largest outbox entry read back. */
#define ENTRY_MAX (64u << 20)

/* --- bodies --- */

static json_t *time_str(int64_t ms)
{
	char t[40];
	if (!ms)
		return json_string("0001-01-01T00:00:00Z"); /* Go's zero time: no end */
	llm_rules_format_time(ms, t, sizeof t);
	return json_string(t);
}

/* Alertmanager's identity of an alert is its label set; ours is a digest of the sorted set. */
static void fingerprint(const json_t *labels, char out[17])
{
	char *s = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
	unsigned char d[LLM_SHA256_LEN];
	char hex[LLM_SHA256_HEX_LEN + 1];
	if (!s || llm_sha256(s, strlen(s), d) != LLM_OK) {
		snprintf(out, 17, "0000000000000000");
	} else {
		llm_hex(d, 8, hex);
		memcpy(out, hex, 17);
	}
	free(s);
}

/* The members whose value every object of the list has alike. */
static json_t *common(const struct llm_notice *a, size_t n, bool labels)
{
	json_t *c = json_object();
	if (!n || !c)
		return c;
	const json_t *first = labels ? a[0].labels : a[0].annotations;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)first, k, v)
	{
		bool all = true;
		for (size_t i = 1; i < n && all; i++) {
			json_t *o = json_object_get(labels ? a[i].labels : a[i].annotations, k);
			all = o && json_equal(o, v);
		}
		if (all)
			json_object_set(c, k, v);
	}
	return c;
}

static json_t *alert_object(const struct llm_notice *a, const char *ext, bool webhook)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	if (webhook)
		json_object_set_new(o, "status", json_string(a->resolved ? "resolved" : "firing"));
	json_object_set_new(o, "labels", json_deep_copy(a->labels));
	json_object_set_new(o, "annotations", json_deep_copy(a->annotations));
	json_object_set_new(o, "startsAt", time_str(a->starts_at));
	if (webhook || a->ends_at)
		json_object_set_new(o, "endsAt", time_str(a->ends_at));
	/* Alertmanager checks generatorURL is a URL: leave it out rather than send "". */
	if (ext && *ext)
		json_object_set_new(o, "generatorURL", json_string(ext));
	else if (webhook)
		json_object_set_new(o, "generatorURL", json_string(""));
	if (webhook) {
		char fp[17];
		fingerprint(a->labels, fp);
		json_object_set_new(o, "fingerprint", json_string(fp));
	}
	return o;
}

static const char *str_member(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* "model=a, key_id=b": the labels other than alertname and severity. */
static void label_text(const json_t *labels, struct llm_buf *b)
{
	const char *k;
	json_t *v;
	size_t i = 0;
	json_object_foreach((json_t *)labels, k, v)
	{
		if (!strcmp(k, "alertname") || !strcmp(k, "severity"))
			continue;
		llm_buf_printf(b, "%s%s=%s", i++ ? ", " : "", k, json_string_value(v));
	}
}

static json_t *slack_body(const struct llm_notice *a, size_t n, const char *ext)
{
	struct llm_buf text, detail;
	llm_buf_init(&text, 0);
	llm_buf_init(&detail, 0);
	size_t firing = 0;
	for (size_t i = 0; i < n; i++)
		firing += !a[i].resolved;
	json_t *blocks = json_array();
	for (size_t i = 0; i < n; i++) {
		const json_t *l = a[i].labels, *an = a[i].annotations;
		llm_buf_clear(&detail);
		llm_buf_printf(&detail, "%s *[%s:%s] %s*",
			       a[i].resolved ? ":white_check_mark:" : ":rotating_light:",
			       a[i].resolved ? "RESOLVED" : "FIRING", str_member(l, "severity"),
			       str_member(l, "alertname"));
		struct llm_buf lt;
		llm_buf_init(&lt, 0);
		label_text(l, &lt);
		if (lt.len)
			llm_buf_printf(&detail, " (%s)", lt.data);
		if (i == 0) {
			llm_buf_printf(
			    &text, "[%s:%s] %s%s%s%s", a[i].resolved ? "RESOLVED" : "FIRING",
			    str_member(l, "severity"), str_member(l, "alertname"),
			    lt.len ? " (" : "", lt.len ? lt.data : "", lt.len ? ")" : "");
			if (*str_member(an, "summary"))
				llm_buf_printf(&text, ": %s", str_member(an, "summary"));
			if (n > 1)
				llm_buf_printf(&text, " and %zu more (%zu firing)", n - 1, firing);
		}
		llm_buf_free(&lt);
		if (*str_member(an, "summary"))
			llm_buf_printf(&detail, "\n%s", str_member(an, "summary"));
		if (*str_member(an, "description"))
			llm_buf_printf(&detail, "\n%s", str_member(an, "description"));
		json_array_append_new(blocks,
				      json_pack("{s:s,s:{s:s,s:s}}", "type", "section", "text",
						"type", "mrkdwn", "text", detail.data));
		char since[40];
		llm_rules_format_time(a[i].resolved && a[i].ends_at ? a[i].ends_at : a[i].starts_at,
				      since, sizeof since);
		llm_buf_clear(&detail);
		llm_buf_printf(&detail, "%s %s", a[i].resolved ? "resolved at" : "since", since);
		if (*str_member(an, "value"))
			llm_buf_printf(&detail, " · value %s", str_member(an, "value"));
		if (*str_member(an, "threshold"))
			llm_buf_printf(&detail, " · must be %s", str_member(an, "threshold"));
		if (ext && *ext)
			llm_buf_printf(&detail, " · <%s|source>", ext);
		json_array_append_new(blocks,
				      json_pack("{s:s,s:[{s:s,s:s}]}", "type", "context",
						"elements", "type", "mrkdwn", "text", detail.data));
	}
	json_t *o = json_pack("{s:s,s:o}", "text", text.data ? text.data : "", "blocks", blocks);
	llm_buf_free(&text);
	llm_buf_free(&detail);
	return o;
}

static json_t *webhook_body(const struct llm_notice *a, size_t n, const char *ext)
{
	json_t *alerts = json_array();
	size_t firing = 0;
	for (size_t i = 0; i < n; i++) {
		firing += !a[i].resolved;
		json_array_append_new(alerts, alert_object(&a[i], ext, true));
	}
	json_t *cl = common(a, n, true), *ca = common(a, n, false);
	json_t *gl = json_object();
	json_t *name = json_object_get(cl, "alertname");
	if (name)
		json_object_set(gl, "alertname", name);
	char *gls = json_dumps(gl, JSON_COMPACT | JSON_SORT_KEYS);
	struct llm_buf key;
	llm_buf_init(&key, 0);
	llm_buf_puts(&key, "{}:{");
	if (name)
		llm_buf_printf(&key, "alertname=\"%s\"", json_string_value(name));
	llm_buf_putc(&key, '}');
	free(gls);
	json_t *o =
	    json_pack("{s:s,s:s,s:i,s:s,s:s,s:o,s:o,s:o,s:s,s:o}", "version", "4", "groupKey",
		      key.data, "truncatedAlerts", 0, "status", firing ? "firing" : "resolved",
		      "receiver", "llmops", "groupLabels", gl, "commonLabels", cl,
		      "commonAnnotations", ca, "externalURL", ext ? ext : "", "alerts", alerts);
	llm_buf_free(&key);
	return o;
}

json_t *llm_notify_body(enum llm_notify_type type, const struct llm_notice *alerts, size_t n,
			const char *external_url)
{
	switch (type) {
	case LLM_NOTIFY_WEBHOOK:
		return webhook_body(alerts, n, external_url);
	case LLM_NOTIFY_SLACK:
		return slack_body(alerts, n, external_url);
	case LLM_NOTIFY_ALERTMANAGER: {
		json_t *arr = json_array();
		for (size_t i = 0; i < n && arr; i++)
			json_array_append_new(arr, alert_object(&alerts[i], external_url, false));
		return arr;
	}
	}
	return NULL;
}

/* --- signatures --- */

enum llm_err llm_notify_hmac(const void *key, size_t keylen, const void *msg, size_t n,
			     unsigned char out[32])
{
	unsigned int len = 0;
	static const unsigned char empty[1];
	if (!HMAC(EVP_sha256(), keylen ? key : empty, (int)keylen,
		  n ? (const unsigned char *)msg : empty, n, out, &len) ||
	    len != 32)
		return llm_diag_set(NULL, LLM_ERR_NOMEM, NULL, 0, "hmac failed");
	return LLM_OK;
}

enum llm_err llm_notify_sign(const char *secret, int64_t t, const char *body, size_t n, char *out,
			     size_t outsz)
{
	char ts[32];
	int k = snprintf(ts, sizeof ts, "%" PRId64 ".", t);
	struct llm_buf msg;
	llm_buf_init(&msg, 0);
	unsigned char mac[32];
	char hex[65];
	enum llm_err e = llm_buf_append(&msg, ts, (size_t)k);
	if (!e)
		e = llm_buf_append(&msg, body, n);
	if (!e)
		e = llm_notify_hmac(secret, strlen(secret), msg.data, msg.len, mac);
	llm_buf_free(&msg);
	if (e)
		return e;
	llm_hex(mac, 32, hex);
	if ((size_t)snprintf(out, outsz, "t=%" PRId64 ",v1=%s", t, hex) >= outsz)
		return LLM_ERR_TOO_BIG;
	return LLM_OK;
}

/* --- HTTP --- */

enum llm_err llm_notify_endpoint(const struct llm_notify_target *t, char *out, size_t outsz)
{
	const char *u = t->url;
	size_t n = strlen(u);
	static const char suffix[] = "/api/v2/alerts";
	int k;
	if (t->type != LLM_NOTIFY_ALERTMANAGER ||
	    (n >= sizeof suffix - 1 && !strcmp(u + n - (sizeof suffix - 1), suffix)))
		k = snprintf(out, outsz, "%s", u);
	else
		k = snprintf(out, outsz, "%.*s%s", (int)(n && u[n - 1] == '/' ? n - 1 : n), u,
			     suffix);
	return k < 0 || (size_t)k >= outsz ? LLM_ERR_TOO_BIG : LLM_OK;
}

struct xfer {
	struct llm_retry_headers h;
	struct llm_buf answer;
};

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	llm_retry_headers_line(&x->h, p, size * n);
	return size * n;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	/* Keep the start of the answer for the message; drop the rest, never fail for it. */
	size_t room = x->answer.len < 512 ? 512 - x->answer.len : 0;
	llm_buf_append(&x->answer, p, size * n < room ? size * n : room);
	return size * n;
}

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* The answer's first line, printable, for a message. */
static void answer_snippet(const struct llm_buf *b, char *out, size_t outsz)
{
	size_t j = 0;
	for (size_t i = 0; i < b->len && j + 1 < outsz && j < 120; i++) {
		unsigned char ch = (unsigned char)b->data[i];
		if (ch == '\n' || ch == '\r')
			break;
		out[j++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
	}
	out[j] = '\0';
}

enum llm_err llm_notify_post(const struct llm_notify_target *t, const char *secret,
			     const char *body, size_t n, struct llm_notify_result *res,
			     struct llm_diag *diag)
{
	memset(res, 0, sizeof *res);
	char url[4096];
	if (llm_notify_endpoint(t, url, sizeof url))
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "%s: the URL is too long",
				    t->name);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return llm_diag_set(diag, LLM_ERR_IO, NULL, 0, "cannot initialize libcurl");
	CURL *e = curl_easy_init();
	if (!e)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	struct xfer x;
	llm_buf_init(&x.answer, ANSWER_MAX);
	struct llm_rand rnd;
	llm_rand_seed(&rnd, (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
	char errbuf[CURL_ERROR_SIZE];
	enum llm_err err = LLM_ERR_REMOTE;
	for (int attempt = 0; attempt <= t->retries; attempt++) {
		struct curl_slist *hs = NULL;
		hs = curl_slist_append(hs, "Content-Type: application/json");
		hs = curl_slist_append(hs, "Expect:");
		const char *hk;
		json_t *hv;
		json_object_foreach(t->headers, hk, hv)
		{
			char line[2048];
			snprintf(line, sizeof line, "%s: %s", hk, json_string_value(hv));
			hs = curl_slist_append(hs, line);
		}
		if (secret) {
			char sig[128], line[192];
			/* A fresh timestamp each attempt: a receiver that refuses old ones must
			 * not refuse a retry. */
			llm_notify_sign(secret, (int64_t)time(NULL), body, n, sig, sizeof sig);
			snprintf(line, sizeof line, "%s: %s", LLM_NOTIFY_SIGNATURE_HEADER, sig);
			hs = curl_slist_append(hs, line);
		}
		llm_retry_headers_reset(&x.h);
		llm_buf_clear(&x.answer);
		errbuf[0] = '\0';
		curl_easy_reset(e);
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hs);
		curl_easy_setopt(e, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION);
		curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(e, CURLOPT_HEADERDATA, &x);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &x);
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
		curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
		CURLcode cc = curl_easy_perform(e);
		curl_slist_free_all(hs);
		res->attempts++;
		long status = 0;
		bool again;
		if (cc != CURLE_OK) {
			res->status = 0;
			snprintf(res->error, sizeof res->error, "%s",
				 *errbuf ? errbuf : curl_easy_strerror(cc));
			again = true;
		} else {
			curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
			res->status = status;
			if (status >= 200 && status < 300) {
				res->error[0] = '\0';
				err = LLM_OK;
				break;
			}
			char snip[128];
			answer_snippet(&x.answer, snip, sizeof snip);
			snprintf(res->error, sizeof res->error, "HTTP %ld%s%s", status,
				 *snip ? ": " : "", snip);
			int should = llm_retry_should(&x.h);
			again = should == 1 || (should == -1 && llm_retry_status(status));
		}
		if (!again || attempt == t->retries)
			break;
		double wait = llm_retry_backoff(attempt, llm_rand_double(&rnd)), hint;
		if (cc == CURLE_OK && llm_retry_hint(&x.h, &hint) && isfinite(hint) && hint > wait)
			wait = fmin(hint, HINT_MAX_S);
		sleep_s(wait);
	}
	curl_easy_cleanup(e);
	llm_buf_free(&x.answer);
	if (err)
		llm_diag_set(diag, LLM_ERR_REMOTE, NULL, 0, "%s: %s: %s (after %d attempt%s)",
			     t->name, url, res->error, res->attempts,
			     res->attempts == 1 ? "" : "s");
	return err;
}

/* --- outbox --- */

static const char *const type_names[] = {"webhook", "slack", "alertmanager"};

static enum llm_err outbox_dir(const char *dir, char *out, size_t outsz, bool create,
			       struct llm_diag *diag)
{
	if ((size_t)snprintf(out, outsz, "%s/outbox", dir) >= outsz)
		return llm_diag_set(diag, LLM_ERR_USAGE, dir, 0, "path too long");
	if (create && mkdir(out, 0700) != 0 && errno != EEXIST)
		return llm_diag_set(diag, LLM_ERR_IO, out, 0, "cannot create: %s", strerror(errno));
	return LLM_OK;
}

static json_t *entry_json(const struct llm_notify_target *t, const char *body, size_t n,
			  int64_t created, int64_t attempts, const char *error)
{
	char ct[40];
	llm_rules_format_time(created, ct, sizeof ct);
	json_t *o =
	    json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:s,s:I,s:s,s:s%}", "target", t->name, "type",
		      type_names[t->type], "url", t->url, "headers", json_deep_copy(t->headers),
		      "retries", (json_int_t)t->retries, "timeout_ms", (json_int_t)t->timeout_ms,
		      "ttl_ms", (json_int_t)t->ttl_ms, "created", ct, "attempts",
		      (json_int_t)attempts, "last_error", error ? error : "", "body", body, n);
	if (o && t->secret_env)
		json_object_set_new(o, "secret_env", json_string(t->secret_env));
	return o;
}

static enum llm_err write_entry(const char *path, json_t *o, struct llm_diag *diag)
{
	if (!o)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	char *s = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	if (!s)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	enum llm_err e = llm_atomic_write_file(path, s, strlen(s), diag);
	free(s);
	return e;
}

enum llm_err llm_outbox_put(const char *dir, const struct llm_notify_target *t, const char *body,
			    size_t n, int64_t now_ms, int attempts, const char *error,
			    struct llm_diag *diag)
{
	char od[4096], path[4200];
	enum llm_err e = outbox_dir(dir, od, sizeof od, true, diag);
	if (e)
		return e;
	struct llm_sha256 h;
	unsigned char d[LLM_SHA256_LEN];
	char hex[LLM_SHA256_HEX_LEN + 1];
	if ((e = llm_sha256_init(&h)) ||
	    (e = llm_sha256_update(&h, t->name, strlen(t->name) + 1)) ||
	    (e = llm_sha256_update(&h, body, n)) || (e = llm_sha256_final(&h, d)))
		return llm_diag_set(diag, e, NULL, 0, "cannot hash the delivery");
	llm_hex(d, LLM_SHA256_LEN, hex);
	snprintf(path, sizeof path, "%s/%.32s.json", od, hex);
	return write_entry(path, entry_json(t, body, n, now_ms, attempts, error), diag);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct llm_outbox_entry *x = a, *y = b;
	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

static enum llm_err read_entry(const char *path, const char *id, struct llm_outbox_entry *en,
			       struct llm_diag *diag)
{
	json_error_t je;
	json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return llm_diag_set(diag, LLM_ERR_FORMAT, path, je.line > 0 ? je.line : 0,
				    "not an outbox entry: %s", je.text);
	const char *target = NULL, *type = NULL, *url = NULL, *created = NULL, *last = NULL,
		   *secret = NULL, *body = NULL;
	size_t blen = 0;
	json_int_t retries = 3, timeout = 10000, ttl = 3600000, attempts = 0;
	json_t *headers = NULL;
	enum llm_err e = LLM_OK;
	if (json_unpack(o, "{s:s,s:s,s:s,s?o,s?I,s?I,s?I,s:s,s?I,s?s,s?s,s:s%}", "target", &target,
			"type", &type, "url", &url, "headers", &headers, "retries", &retries,
			"timeout_ms", &timeout, "ttl_ms", &ttl, "created", &created, "attempts",
			&attempts, "last_error", &last, "secret_env", &secret, "body", &body,
			&blen) != 0) {
		e = llm_diag_set(diag, LLM_ERR_FORMAT, path, 0, "not an outbox entry");
		goto done;
	}
	int k;
	for (k = 0; k < 3 && strcmp(type, type_names[k]); k++)
		;
	int64_t cms;
	if (k == 3 || !llm_mon_parse_time(created, strlen(created), &cms) ||
	    (headers && !json_is_object(headers))) {
		e = llm_diag_set(diag, LLM_ERR_FORMAT, path, 0, "not an outbox entry");
		goto done;
	}
	en->path = strdup(path);
	en->id = strdup(id);
	en->target.name = strdup(target);
	en->target.type = (enum llm_notify_type)k;
	en->target.url = strdup(url);
	en->target.secret_env = secret ? strdup(secret) : NULL;
	en->target.headers = headers ? json_deep_copy(headers) : json_object();
	en->target.retries = (int)(retries < 0 ? 0 : retries > 20 ? 20 : retries);
	en->target.timeout_ms = timeout > 0 ? timeout : 10000;
	en->target.ttl_ms = ttl > 0 ? ttl : 3600000;
	en->body = malloc(blen + 1);
	en->created_ms = cms;
	en->attempts = attempts;
	en->last_error = strdup(last ? last : "");
	if (!en->path || !en->id || !en->target.name || !en->target.url || !en->body ||
	    !en->last_error || !en->target.headers || (secret && !en->target.secret_env)) {
		e = llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		goto done;
	}
	memcpy(en->body, body, blen);
	en->body[blen] = '\0';
	en->body_len = blen;
done:
	json_decref(o);
	return e;
}

static void entry_free(struct llm_outbox_entry *en)
{
	free(en->path);
	free(en->id);
	free(en->target.name);
	free(en->target.url);
	free(en->target.secret_env);
	json_decref(en->target.headers);
	free(en->body);
	free(en->last_error);
}

void llm_outbox_free(struct llm_outbox_entry *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		entry_free(&v[i]);
	free(v);
}

enum llm_err llm_outbox_list(const char *dir, struct llm_outbox_entry **out, size_t *n,
			     struct llm_diag *diag)
{
	*out = NULL;
	*n = 0;
	char od[4096];
	enum llm_err e = outbox_dir(dir, od, sizeof od, false, diag);
	if (e)
		return e;
	DIR *dp = opendir(od);
	if (!dp) {
		if (errno == ENOENT)
			return LLM_OK;
		return llm_diag_set(diag, LLM_ERR_IO, od, 0, "cannot open: %s", strerror(errno));
	}
	struct llm_outbox_entry *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(dp))) {
		size_t len = strlen(de->d_name);
		/* Only NAME.json: the atomic writer's temporaries and anything else stay put. */
		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		if (cnt == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct llm_outbox_entry *nv = realloc(v, nc * sizeof *nv);
			if (!nv) {
				e = llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
				break;
			}
			v = nv;
			cap = nc;
		}
		char path[4400], id[256];
		snprintf(path, sizeof path, "%s/%s", od, de->d_name);
		snprintf(id, sizeof id, "%.*s", (int)(len - 5), de->d_name);
		struct stat st;
		if (stat(path, &st) == 0 && st.st_size > (off_t)ENTRY_MAX) {
			e = llm_diag_set(diag, LLM_ERR_TOO_BIG, path, 0,
					 "an outbox entry over %u bytes", ENTRY_MAX);
			break;
		}
		memset(&v[cnt], 0, sizeof v[cnt]);
		cnt++;
		if ((e = read_entry(path, id, &v[cnt - 1], diag)))
			break;
	}
	closedir(dp);
	if (e) {
		llm_outbox_free(v, cnt);
		return e;
	}
	if (cnt)
		qsort(v, cnt, sizeof *v, cmp_entry);
	*out = v;
	*n = cnt;
	return LLM_OK;
}

enum llm_err llm_outbox_done(struct llm_outbox_entry *en, bool delivered, int attempts,
			     const char *error, struct llm_diag *diag)
{
	if (delivered) {
		if (unlink(en->path) != 0 && errno != ENOENT)
			return llm_diag_set(diag, LLM_ERR_IO, en->path, 0, "cannot remove: %s",
					    strerror(errno));
		return LLM_OK;
	}
	en->attempts += attempts;
	return write_entry(
	    en->path,
	    entry_json(&en->target, en->body, en->body_len, en->created_ms, en->attempts, error),
	    diag);
}
