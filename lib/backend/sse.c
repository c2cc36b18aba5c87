#include "config.h"

#include "backend/sse.h"

#include <limits.h>
#include <string.h>

static const unsigned char bom[3] = {0xef, 0xbb, 0xbf};

void llm_sse_init(struct llm_sse *p, size_t max_event)
{
	memset(p, 0, sizeof *p);
	p->max_event = max_event ? max_event : LLM_SSE_DEFAULT_MAX_EVENT;
	llm_buf_init(&p->line, p->max_event);
	/* The joined data may reach max_event bytes: one more for the "\n" after the last line. */
	llm_buf_init(&p->data, p->max_event + 1);
	llm_buf_init(&p->type, p->max_event);
	llm_buf_init(&p->id, p->max_event);
	p->retry_ms = -1;
}

void llm_sse_free(struct llm_sse *p)
{
	llm_buf_free(&p->line);
	llm_buf_free(&p->data);
	llm_buf_free(&p->type);
	llm_buf_free(&p->id);
}

void llm_sse_reset(struct llm_sse *p)
{
	llm_buf_clear(&p->line);
	llm_buf_clear(&p->data);
	llm_buf_clear(&p->type);
	llm_buf_clear(&p->id);
	p->retry_ms = -1;
	p->after_cr = false;
	p->started = false;
	p->bom_len = 0;
	p->failed = LLM_OK;
}

bool llm_sse_partial(const struct llm_sse *p)
{
	return p->line.len > 0 || p->data.len > 0;
}

static enum llm_err set_buf(struct llm_buf *b, const char *s, size_t n)
{
	llm_buf_clear(b);
	return llm_buf_append(b, s, n);
}

static bool field_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && memcmp(name, want, n) == 0;
}

static enum llm_err dispatch(struct llm_sse *p,
			     enum llm_err (*cb)(void *ctx, const struct llm_sse_event *ev),
			     void *ctx)
{
	if (p->data.len == 0) {
		llm_buf_clear(&p->type);
		return LLM_OK;
	}
	p->data.data[--p->data.len] = '\0'; /* the "\n" after the last data line */
	struct llm_sse_event ev = {
	    .type = p->type.len ? p->type.data : "message",
	    .data = p->data.data,
	    .data_len = p->data.len,
	    .id = p->id.len ? p->id.data : "",
	    .retry_ms = p->retry_ms,
	};
	enum llm_err e = cb(ctx, &ev);
	llm_buf_clear(&p->data);
	llm_buf_clear(&p->type);
	return e;
}

/* One complete line, without its line end. */
static enum llm_err line(struct llm_sse *p, const char *s, size_t n,
			 enum llm_err (*cb)(void *ctx, const struct llm_sse_event *ev), void *ctx)
{
	if (n == 0)
		return dispatch(p, cb, ctx);
	if (s[0] == ':')
		return LLM_OK;
	const char *colon = memchr(s, ':', n);
	size_t flen = colon ? (size_t)(colon - s) : n;
	const char *v = colon ? colon + 1 : s + n;
	size_t vlen = colon ? n - flen - 1 : 0;
	if (vlen > 0 && v[0] == ' ') {
		v++;
		vlen--;
	}
	enum llm_err e = LLM_OK;
	if (field_is(s, flen, "data")) {
		e = llm_buf_append(&p->data, v, vlen);
		if (e == LLM_OK)
			e = llm_buf_putc(&p->data, '\n');
	} else if (field_is(s, flen, "event")) {
		e = set_buf(&p->type, v, vlen);
	} else if (field_is(s, flen, "id")) {
		/* An id with a NUL in it is ignored, as the standard says. */
		if (!memchr(v, '\0', vlen))
			e = set_buf(&p->id, v, vlen);
	} else if (field_is(s, flen, "retry")) {
		long ms = 0;
		bool digits = vlen > 0;
		for (size_t i = 0; i < vlen && digits; i++) {
			if (v[i] < '0' || v[i] > '9')
				digits = false;
			else if (ms <= (LONG_MAX - 9) / 10)
				ms = ms * 10 + (v[i] - '0');
		}
		if (digits)
			p->retry_ms = ms;
	}
	return e;
}

static enum llm_err feed(struct llm_sse *p, const char *s, size_t n,
			 enum llm_err (*cb)(void *ctx, const struct llm_sse_event *ev), void *ctx)
{
	size_t i = 0;
	if (p->after_cr && n > 0) {
		p->after_cr = false;
		if (s[0] == '\n')
			i = 1;
	}
	while (i < n) {
		size_t j = i;
		while (j < n && s[j] != '\n' && s[j] != '\r')
			j++;
		if (j == n) {
			if (p->line.len + (n - i) > p->max_event)
				return LLM_ERR_TOO_BIG;
			return llm_buf_append(&p->line, s + i, n - i);
		}
		enum llm_err e;
		if (p->line.len == 0) {
			/* The common case: the whole line is in this chunk; no copy. */
			if (j - i > p->max_event)
				return LLM_ERR_TOO_BIG;
			e = line(p, s + i, j - i, cb, ctx);
		} else {
			e = llm_buf_append(&p->line, s + i, j - i);
			if (e == LLM_OK)
				e = line(p, p->line.data, p->line.len, cb, ctx);
			llm_buf_clear(&p->line);
		}
		if (e != LLM_OK)
			return e;
		if (s[j] == '\r') {
			if (j + 1 < n && s[j + 1] == '\n')
				j++;
			else if (j + 1 == n)
				p->after_cr = true;
		}
		i = j + 1;
	}
	return LLM_OK;
}

enum llm_err llm_sse_feed(struct llm_sse *p, const char *s, size_t n,
			  enum llm_err (*cb)(void *ctx, const struct llm_sse_event *ev), void *ctx)
{
	if (p->failed != LLM_OK)
		return p->failed;
	/* The standard skips one BOM at the start of the stream; it may arrive a byte at a time. */
	while (!p->started && n > 0) {
		if ((unsigned char)s[0] == bom[p->bom_len]) {
			s++;
			n--;
			if (++p->bom_len == sizeof bom)
				p->started = true;
			continue;
		}
		p->started = true;
		if (p->bom_len > 0) {
			/* A false start: what looked like a BOM is data. */
			size_t k = p->bom_len;
			p->bom_len = 0;
			enum llm_err e = feed(p, (const char *)bom, k, cb, ctx);
			if (e != LLM_OK)
				return p->failed = e;
		}
	}
	enum llm_err e = feed(p, s, n, cb, ctx);
	if (e != LLM_OK)
		p->failed = e;
	return e;
}
