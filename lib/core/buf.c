#include "config.h"

#include "core/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void llm_buf_init(struct llm_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max ? max : SIZE_MAX / 2;
}

void llm_buf_free(struct llm_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

enum llm_err llm_buf_reserve(struct llm_buf *b, size_t extra)
{
	if (extra > b->max - b->len)
		return LLM_ERR_TOO_BIG;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return LLM_OK;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 4 ? need : cap * 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	char *p = realloc(b->data, cap);
	if (!p)
		return LLM_ERR_NOMEM;
	b->data = p;
	b->cap = cap;
	return LLM_OK;
}

enum llm_err llm_buf_append(struct llm_buf *b, const void *p, size_t n)
{
	enum llm_err e = llm_buf_reserve(b, n);
	if (e)
		return e;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return LLM_OK;
}

enum llm_err llm_buf_puts(struct llm_buf *b, const char *s)
{
	return llm_buf_append(b, s, strlen(s));
}

enum llm_err llm_buf_putc(struct llm_buf *b, char c)
{
	return llm_buf_append(b, &c, 1);
}

enum llm_err llm_buf_printf(struct llm_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char small[256];
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return LLM_ERR_USAGE;
	if ((size_t)n < sizeof small)
		return llm_buf_append(b, small, (size_t)n);
	enum llm_err e = llm_buf_reserve(b, (size_t)n);
	if (e)
		return e;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return LLM_OK;
}

enum llm_err llm_buf_json_string(struct llm_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	enum llm_err e = llm_buf_putc(b, '"');
	size_t run = 0;
	for (size_t i = 0; i < n && !e; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		e = llm_buf_append(b, s + run, i - run);
		run = i + 1;
		if (e)
			break;
		char esc[7] = {'\\', 0};
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
		}
		e = llm_buf_puts(b, esc);
	}
	if (!e)
		e = llm_buf_append(b, s + run, n - run);
	if (!e)
		e = llm_buf_putc(b, '"');
	return e;
}

enum llm_err llm_buf_base64(struct llm_buf *b, const void *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = p;
	enum llm_err e = llm_buf_reserve(b, (n + 2) / 3 * 4);
	if (e)
		return e;
	char *o = b->data + b->len;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
		*o++ = tab[v & 63];
	}
	if (i < n) {
		unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	b->len = (size_t)(o - b->data);
	b->data[b->len] = '\0';
	return LLM_OK;
}
