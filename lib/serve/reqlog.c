#include "config.h"

#include "serve/reqlog.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "core/hash.h"
#include "core/json.h"

#define DEFAULT_MAX_LINE (1u << 20)
/* Small enough for any record without its texts, its extra members and its error message. */
#define MIN_MAX_LINE 4096

struct llm_reqlog {
	pthread_mutex_t lock; /* one line at a time, and the descriptor swap of reopen */
	int fd;
	bool is_stdout;
	char *path;
	enum llm_reqlog_content content;
	enum llm_reqlog_sync sync;
	double sync_interval;
	double last_sync;
	size_t max_line;
	/* A write failed part-way: the next line starts with a newline, so it lands whole after
	 * the fragment instead of being glued to it. */
	bool torn;
	uint64_t written, failed;
};

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t llm_reqlog_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void llm_reqlog_ts(int64_t ms, char out[LLM_REQLOG_TS_MAX])
{
	int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	int milli = (int)(ms - sec * 1000);
	time_t t = (time_t)sec;
	struct tm tm;
	if (!gmtime_r(&t, &tm)) {
		snprintf(out, LLM_REQLOG_TS_MAX, "1970-01-01T00:00:00.000Z");
		return;
	}
	size_t n = strftime(out, LLM_REQLOG_TS_MAX - 5, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, LLM_REQLOG_TS_MAX - n, ".%03dZ", milli);
}

void llm_reqlog_request_id(char out[LLM_REQLOG_ID_MAX])
{
	unsigned char r[12];
	if (RAND_bytes(r, sizeof r) != 1) {
		/* OpenSSL's generator failed (it should not): fall back to time and a counter,
		 * still unique within the process. */
		static _Atomic uint64_t seq;
		uint64_t a = (uint64_t)llm_reqlog_now_ms(), b = ++seq;
		memcpy(r, &a, 8);
		memcpy(r + 8, &b, 4);
	}
	char hex[25];
	llm_hex(r, sizeof r, hex);
	snprintf(out, LLM_REQLOG_ID_MAX, "req-%s", hex);
}

enum llm_err llm_reqlog_content_parse(const char *s, enum llm_reqlog_content *out)
{
	if (!s)
		return LLM_ERR_USAGE;
	if (strcmp(s, "full") == 0)
		*out = LLM_REQLOG_FULL;
	else if (strcmp(s, "hash") == 0)
		*out = LLM_REQLOG_HASH;
	else if (strcmp(s, "none") == 0)
		*out = LLM_REQLOG_NONE;
	else
		return LLM_ERR_USAGE;
	return LLM_OK;
}

/* --- formatting ------------------------------------------------------------------------ */

/* A JSON string of n bytes of text; bytes that are not valid UTF-8 (a model can stop inside a
 * character) become U+FFFD, so the line stays valid JSON. */
static enum llm_err put_text(struct llm_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	enum llm_err e = llm_buf_putc(b, '"');
	while (n && !e) {
		size_t ok = llm_utf8_valid_prefix(s, n);
		size_t run = 0;
		for (size_t i = 0; i < ok && !e; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c >= 0x20 && c != '"' && c != '\\')
				continue;
			e = llm_buf_append(b, s + run, i - run);
			run = i + 1;
			char esc[7] = {'\\', 0};
			switch (c) {
			case '"':
				esc[1] = '"';
				break;
			case '\\':
				esc[1] = '\\';
				break;
			case '\n':
				esc[1] = 'n';
				break;
			case '\r':
				esc[1] = 'r';
				break;
			case '\t':
				esc[1] = 't';
				break;
			default:
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
			}
			if (!e)
				e = llm_buf_puts(b, esc);
		}
		if (!e)
			e = llm_buf_append(b, s + run, ok - run);
		if (ok < n && !e)
			e = llm_buf_puts(b, "\xef\xbf\xbd");
		if (ok < n) {
			/* One U+FFFD for a lead byte and the continuation bytes it began (a
			 * character cut short), one for each stray byte otherwise. */
			size_t bad = 1;
			if ((unsigned char)s[ok] >= 0xc2)
				while (bad < 4 && ok + bad < n &&
				       ((unsigned char)s[ok + bad] & 0xc0) == 0x80)
					bad++;
			ok += bad;
		}
		s += ok;
		n -= ok;
	}
	if (!e)
		e = llm_buf_putc(b, '"');
	return e;
}

static enum llm_err put_str(struct llm_buf *b, const char *s)
{
	return put_text(b, s, strlen(s));
}

/* ,"name":"value" when value is not NULL. */
static enum llm_err member_str(struct llm_buf *b, const char *name, const char *v)
{
	if (!v)
		return LLM_OK;
	enum llm_err e = llm_buf_printf(b, ",\"%s\":", name);
	return e ? e : put_str(b, v);
}


/* Milliseconds to the microsecond: more digits are noise. */
static double ms_round(double v)
{
	return round(v * 1000.0) / 1000.0;
}

static size_t code_points(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += ((unsigned char)s[i] & 0xc0) != 0x80;
	return k;
}

/* "NAME_sha256":"hex","NAME_len":N */
static enum llm_err put_hashed(struct llm_buf *b, const char *name, const char *s, size_t n)
{
	unsigned char d[LLM_SHA256_LEN];
	enum llm_err e = llm_sha256(s, n, d);
	if (e)
		return e;
	char hex[LLM_SHA256_HEX_LEN + 1];
	llm_hex(d, sizeof d, hex);
	return llm_buf_printf(b, ",\"%s_sha256\":\"%s\",\"%s_len\":%zu", name, hex, name,
			      code_points(s, n));
}

static enum llm_err format_record(const struct llm_reqlog_record *r, enum llm_reqlog_content mode,
				  bool truncated, struct llm_buf *b)
{
	char ts[LLM_REQLOG_TS_MAX];
	llm_reqlog_ts(r->ts_ms ? r->ts_ms : llm_reqlog_now_ms(), ts);
	enum llm_err e = llm_buf_printf(b, "{\"ts\":\"%s\"", ts);
	if (!e)
		e = member_str(b, "request_id", r->request_id);
	if (!e)
		e = member_str(b, "endpoint", r->endpoint);
	if (!e)
		e = member_str(b, "model", r->model);
	if (!e)
		e = member_str(b, "key_id", r->key_id);
	if (!e)
		e = llm_buf_printf(b, ",\"status\":%d", r->status);
	if (!e && r->latency_ms >= 0) {
		e = llm_buf_puts(b, ",\"latency_ms\":");
		if (!e)
			e = llm_buf_json_number(b, ms_round(r->latency_ms));
	}
	if (!e) {
		e = llm_buf_puts(b, ",\"ttft_ms\":");
		if (!e)
			e = r->ttft_ms >= 0 ? llm_buf_json_number(b, ms_round(r->ttft_ms))
					    : llm_buf_puts(b, "null");
	}
	if (!e) {
		if (r->prompt_tokens >= 0)
			e = llm_buf_printf(
			    b,
			    ",\"usage\":{\"prompt_tokens\":%lld,"
			    "\"completion_tokens\":%lld}",
			    (long long)r->prompt_tokens,
			    (long long)(r->completion_tokens > 0 ? r->completion_tokens : 0));
		else
			e = llm_buf_puts(b, ",\"usage\":null");
	}
	if (!e)
		e = member_str(b, "finish_reason", r->finish_reason);
	if (!e && mode == LLM_REQLOG_FULL) {
		if (r->prompt) {
			e = llm_buf_puts(b, ",\"prompt\":");
			if (!e)
				e = put_text(b, r->prompt, r->prompt_len);
		}
		if (!e && r->messages_json && r->messages_len) {
			e = llm_buf_puts(b, ",\"messages\":");
			if (!e)
				e = llm_buf_append(b, r->messages_json, r->messages_len);
		}
		if (!e && r->output) {
			e = llm_buf_puts(b, ",\"output\":");
			if (!e)
				e = put_text(b, r->output, r->output_len);
		}
	} else if (!e && mode == LLM_REQLOG_HASH) {
		if (r->prompt)
			e = put_hashed(b, "prompt", r->prompt, r->prompt_len);
		else if (r->messages_json && r->messages_len)
			e = put_hashed(b, "prompt", r->messages_json, r->messages_len);
		if (!e && r->output)
			e = put_hashed(b, "output", r->output, r->output_len);
	}
	if (!e && r->nflags) {
		e = llm_buf_puts(b, ",\"flags\":[");
		for (size_t i = 0; i < r->nflags && !e; i++) {
			const struct llm_reqlog_flag *f = &r->flags[i];
			e = llm_buf_puts(b, i ? ",{\"kind\":" : "{\"kind\":");
			if (!e)
				e = put_str(b, f->kind ? f->kind : "");
			if (!e)
				e = member_str(b, "type", f->type);
			if (!e)
				e = member_str(b, "field", f->field);
			if (!e)
				e = llm_buf_printf(b, ",\"span\":[%zu,%zu],\"score\":", f->start,
						   f->end);
			if (!e)
				e = llm_buf_json_number(b, f->score);
			if (!e)
				e = llm_buf_putc(b, '}');
		}
		if (!e)
			e = llm_buf_putc(b, ']');
	}
	if (!e && (r->error_code || r->error_message)) {
		e = llm_buf_puts(b, ",\"error\":{");
		if (!e && r->error_code) {
			e = llm_buf_puts(b, "\"code\":");
			if (!e)
				e = put_str(b, r->error_code);
		}
		if (!e && r->error_message) {
			e = llm_buf_puts(b, r->error_code ? ",\"message\":" : "\"message\":");
			if (!e)
				e = put_str(b, r->error_message);
		}
		if (!e)
			e = llm_buf_putc(b, '}');
	}
	if (!e && truncated)
		e = llm_buf_puts(b, ",\"truncated\":true");
	if (!e && r->extra_json && *r->extra_json) {
		e = llm_buf_putc(b, ',');
		if (!e)
			e = llm_buf_puts(b, r->extra_json);
	}
	if (!e)
		e = llm_buf_puts(b, "}\n");
	return e;
}

enum llm_err llm_reqlog_format(const struct llm_reqlog_record *r, enum llm_reqlog_content mode,
			       struct llm_buf *out)
{
	size_t len = out->len;
	enum llm_err e = format_record(r, mode, false, out);
	if (e) {
		out->len = len;
		if (out->data)
			out->data[len] = '\0';
	}
	return e;
}

enum llm_err llm_reqlog_format_feedback(const char *request_id, double score, const char *comment,
					int64_t ts_ms, struct llm_buf *out)
{
	if (!request_id || !isfinite(score))
		return LLM_ERR_USAGE;
	size_t len = out->len;
	char ts[LLM_REQLOG_TS_MAX];
	llm_reqlog_ts(ts_ms ? ts_ms : llm_reqlog_now_ms(), ts);
	enum llm_err e = llm_buf_puts(out, "{\"kind\":\"feedback\",\"request_id\":");
	if (!e)
		e = put_str(out, request_id);
	if (!e)
		e = llm_buf_puts(out, ",\"score\":");
	if (!e)
		e = llm_buf_json_number(out, score);
	if (!e)
		e = member_str(out, "comment", comment);
	if (!e)
		e = llm_buf_printf(out, ",\"ts\":\"%s\"}\n", ts);
	if (e) {
		out->len = len;
		if (out->data)
			out->data[len] = '\0';
	}
	return e;
}

/* --- the file ------------------------------------------------------------------------------ */

static int open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

enum llm_err llm_reqlog_open(struct llm_reqlog **out, const struct llm_reqlog_config *cfg,
			     struct llm_diag *diag)
{
	*out = NULL;
	if (!cfg->path || !*cfg->path)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "no log path");
	struct llm_reqlog *l = calloc(1, sizeof *l);
	if (!l || !(l->path = strdup(cfg->path))) {
		free(l);
		return llm_diag_set(diag, LLM_ERR_NOMEM, cfg->path, 0, "out of memory");
	}
	l->is_stdout = strcmp(cfg->path, "-") == 0;
	l->fd = l->is_stdout ? STDOUT_FILENO : open_log(cfg->path);
	if (l->fd < 0) {
		int err = errno;
		free(l->path);
		free(l);
		return llm_diag_set(diag, err == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, cfg->path,
				    0, "cannot open: %s", strerror(err));
	}
	pthread_mutex_init(&l->lock, NULL);
	l->content = cfg->content;
	l->sync = cfg->sync;
	l->sync_interval = cfg->sync_interval > 0 ? cfg->sync_interval : 1.0;
	l->max_line = cfg->max_line ? cfg->max_line : DEFAULT_MAX_LINE;
	if (l->max_line < MIN_MAX_LINE)
		l->max_line = MIN_MAX_LINE;
	l->last_sync = mono();
	*out = l;
	return LLM_OK;
}

/* fdatasync, where the descriptor can be synced at all (not a pipe or a terminal). */
static int sync_fd(int fd)
{
	if (fdatasync(fd) == 0 || errno == EINVAL || errno == EROFS || errno == ENOTSUP)
		return 0;
	return -1;
}

void llm_reqlog_close(struct llm_reqlog *l)
{
	if (!l)
		return;
	if (!l->is_stdout) {
		if (l->sync != LLM_REQLOG_SYNC_NONE)
			sync_fd(l->fd);
		close(l->fd);
	}
	pthread_mutex_destroy(&l->lock);
	free(l->path);
	free(l);
}

enum llm_err llm_reqlog_reopen(struct llm_reqlog *l, struct llm_diag *diag)
{
	if (l->is_stdout)
		return LLM_OK;
	int fd = open_log(l->path);
	if (fd < 0)
		return llm_diag_set(diag, LLM_ERR_IO, l->path, 0, "cannot reopen: %s",
				    strerror(errno));
	pthread_mutex_lock(&l->lock);
	int old = l->fd;
	l->fd = fd;
	/* A fragment left in the old file stays there; the new file starts clean. */
	l->torn = false;
	pthread_mutex_unlock(&l->lock);
	if (l->sync != LLM_REQLOG_SYNC_NONE)
		sync_fd(old);
	close(old);
	return LLM_OK;
}

/* Write the whole line; the caller holds the lock. */
static enum llm_err put_line(struct llm_reqlog *l, const char *s, size_t n, struct llm_diag *diag)
{
	if (l->torn) {
		if (write(l->fd, "\n", 1) != 1) {
			l->failed++;
			return llm_diag_set(diag, LLM_ERR_IO, l->path, 0, "cannot write: %s",
					    strerror(errno));
		}
		l->torn = false;
	}
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(l->fd, s + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int err = w < 0 ? errno : EIO;
			l->torn = done > 0;
			l->failed++;
			return llm_diag_set(diag, LLM_ERR_IO, l->path, 0, "cannot write: %s",
					    strerror(err));
		}
		done += (size_t)w;
	}
	l->written++;
	if (l->sync == LLM_REQLOG_SYNC_EVERY ||
	    (l->sync == LLM_REQLOG_SYNC_INTERVAL && mono() - l->last_sync >= l->sync_interval)) {
		l->last_sync = mono();
		if (sync_fd(l->fd) != 0)
			return llm_diag_set(diag, LLM_ERR_IO, l->path, 0, "cannot sync: %s",
					    strerror(errno));
	}
	return LLM_OK;
}

static enum llm_err write_buf(struct llm_reqlog *l, const struct llm_buf *b, struct llm_diag *diag)
{
	pthread_mutex_lock(&l->lock);
	enum llm_err e = put_line(l, b->data, b->len, diag);
	pthread_mutex_unlock(&l->lock);
	return e;
}

enum llm_err llm_reqlog_write(struct llm_reqlog *l, const struct llm_reqlog_record *r,
			      struct llm_diag *diag)
{
	struct llm_buf b;
	llm_buf_init(&b, l->max_line);
	struct llm_reqlog_record rr = *r;
	if (!rr.ts_ms)
		rr.ts_ms = llm_reqlog_now_ms();
	enum llm_err e = format_record(&rr, l->content, false, &b);
	if (e == LLM_ERR_TOO_BIG) {
		/* Too long for one line: keep the record, with its texts as hashes. */
		llm_buf_clear(&b);
		e = format_record(&rr,
				  l->content == LLM_REQLOG_NONE ? LLM_REQLOG_NONE : LLM_REQLOG_HASH,
				  true, &b);
		if (e == LLM_ERR_TOO_BIG) {
			/* Still too long (a huge error message or extra members): the facts
			 * that fit in any line. */
			struct llm_reqlog_record m = {
			    .ts_ms = rr.ts_ms,
			    .request_id = rr.request_id,
			    .endpoint = rr.endpoint,
			    .model = rr.model,
			    .key_id = rr.key_id,
			    .status = rr.status,
			    .latency_ms = rr.latency_ms,
			    .ttft_ms = rr.ttft_ms,
			    .prompt_tokens = rr.prompt_tokens,
			    .completion_tokens = rr.completion_tokens,
			    .finish_reason = rr.finish_reason,
			    .error_code = rr.error_code,
			};
			llm_buf_clear(&b);
			e = format_record(&m, LLM_REQLOG_NONE, true, &b);
		}
	}
	if (e) {
		llm_buf_free(&b);
		pthread_mutex_lock(&l->lock);
		l->failed++;
		pthread_mutex_unlock(&l->lock);
		return llm_diag_set(diag, e, l->path, 0, "cannot format a log record: %s",
				    llm_err_name(e));
	}
	e = write_buf(l, &b, diag);
	llm_buf_free(&b);
	return e;
}

enum llm_err llm_reqlog_feedback(struct llm_reqlog *l, const char *request_id, double score,
				 const char *comment, int64_t ts_ms, struct llm_diag *diag)
{
	struct llm_buf b;
	llm_buf_init(&b, l->max_line);
	enum llm_err e = llm_reqlog_format_feedback(request_id, score, comment, ts_ms, &b);
	if (e) {
		llm_buf_free(&b);
		return llm_diag_set(diag, e, l->path, 0,
				    e == LLM_ERR_USAGE ? "feedback needs a request id and a "
							 "finite score"
						       : "feedback too long for one line");
	}
	e = write_buf(l, &b, diag);
	llm_buf_free(&b);
	return e;
}

void llm_reqlog_counts(struct llm_reqlog *l, uint64_t *written, uint64_t *failed)
{
	pthread_mutex_lock(&l->lock);
	if (written)
		*written = l->written;
	if (failed)
		*failed = l->failed;
	pthread_mutex_unlock(&l->lock);
}
