/* Growable byte buffers with a ceiling.
 *
 * Every buffer that input can grow has a maximum size, so no input makes the program grow
 * without bound: an append past the maximum fails with LLM_ERR_TOO_BIG and leaves the
 * buffer as it was.  The contents are always NUL-terminated (the NUL is not counted). */
#ifndef LLM_CORE_BUF_H
#define LLM_CORE_BUF_H

#include <stddef.h>
#include <string.h>

#include "core/err.h"

struct llm_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* the most len may reach; 0 means SIZE_MAX / 2 */
};

void llm_buf_init(struct llm_buf *b, size_t max);
void llm_buf_free(struct llm_buf *b);
static inline void llm_buf_clear(struct llm_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}
/* llm_buf_reserve when the buffer has no room: it grows it. */
enum llm_err llm_buf_grow(struct llm_buf *b, size_t extra);
/* Make room for extra more bytes.  These three are inline: most appends find room, and they
 * are the inner loop of every record written. */
static inline enum llm_err llm_buf_reserve(struct llm_buf *b, size_t extra)
{
	if (extra < b->cap - b->len && extra <= b->max - b->len)
		return LLM_OK;
	return llm_buf_grow(b, extra);
}
static inline enum llm_err llm_buf_append(struct llm_buf *b, const void *p, size_t n)
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
static inline enum llm_err llm_buf_putc(struct llm_buf *b, char c)
{
	return llm_buf_append(b, &c, 1);
}
enum llm_err llm_buf_puts(struct llm_buf *b, const char *s);
enum llm_err llm_buf_printf(struct llm_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal, quotes included; s must be valid UTF-8. */
enum llm_err llm_buf_json_string(struct llm_buf *b, const char *s, size_t n);
/* Append v as printf's "%.*g" with precision prec writes it, the same text, several times
 * faster for the plain decimal numbers that scores are (the rest goes through snprintf). */
enum llm_err llm_buf_put_g(struct llm_buf *b, double v, int prec);
/* Append v as a JSON number in the fewest digits that read back the same double (an integer
 * below 1e15 without a fraction, never "-0"); null when v is not finite. */
enum llm_err llm_buf_json_number(struct llm_buf *b, double v);
/* Append v in decimal, as printf's "%lld". */
enum llm_err llm_buf_put_int(struct llm_buf *b, long long v);
/* Append n bytes of p in base64 (RFC 4648, padded). */
enum llm_err llm_buf_base64(struct llm_buf *b, const void *p, size_t n);

#endif
