/* Growable byte buffers with a ceiling.
 *
 * Every buffer that input can grow has a maximum size, so no input makes the program grow
 * without bound: an append past the maximum fails with LLM_ERR_TOO_BIG and leaves the
 * buffer as it was.  The contents are always NUL-terminated (the NUL is not counted). */
#ifndef LLM_CORE_BUF_H
#define LLM_CORE_BUF_H

#include <stddef.h>

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
/* Make room for extra more bytes. */
enum llm_err llm_buf_reserve(struct llm_buf *b, size_t extra);
enum llm_err llm_buf_append(struct llm_buf *b, const void *p, size_t n);
enum llm_err llm_buf_puts(struct llm_buf *b, const char *s);
enum llm_err llm_buf_putc(struct llm_buf *b, char c);
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
