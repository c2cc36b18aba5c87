#include "config.h"

#include "core/buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
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

enum llm_err llm_buf_grow(struct llm_buf *b, size_t extra)
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

enum llm_err llm_buf_puts(struct llm_buf *b, const char *s)
{
	return llm_buf_append(b, s, strlen(s));
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

enum llm_err llm_buf_put_int(struct llm_buf *b, long long v)
{
	char tmp[24], *w = tmp + sizeof tmp;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	do
		*--w = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--w = '-';
	return llm_buf_append(b, w, (size_t)(tmp + sizeof tmp - w));
}

/* Exact powers of ten as doubles (10^22 is the last one a double holds exactly). */
static const double pow10_exact[] = {1e0,  1e1,	 1e2,  1e3,  1e4,  1e5,	 1e6,  1e7,
				     1e8,  1e9,	 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
				     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The digits of a (> 0) rounded to prec significant digits, as an integer d with
 * 10^(prec-1) <= d < 10^prec, and the decimal exponent of its first digit; false where that
 * cannot be told for certain from one scaling in doubles (close to a rounding tie), which
 * leaves it to snprintf.  a·10^k is one correctly rounded operation (10^|k| is exact), so it
 * is off by at most half an ulp; a fraction further than a few ulps from one half rounds the
 * same way as the exact value would. */
static bool sig_digits(double a, int prec, int e, unsigned long long *d, int *exp10)
{
	for (int tries = 0; tries < 3; tries++) {
		int k = prec - 1 - e;
		if (k > 22 || k < -22)
			return false;
		double y = k >= 0 ? a * pow10_exact[k] : a / pow10_exact[-k];
		double lo = pow10_exact[prec - 1], hi = pow10_exact[prec];
		if (y >= hi) { /* e too small */
			e++;
			continue;
		}
		unsigned long long r = (unsigned long long)y;
		double f = y - (double)r, margin = y * 0x1p-49;
		if (f > 0.5 - margin && f < 0.5 + margin)
			return false;
		r += f > 0.5;
		if ((double)r < lo) { /* e too large */
			e--;
			continue;
		}
		if ((double)r >= hi) { /* 9.99...96 rounded up to the next power of ten */
			r = (unsigned long long)lo;
			e++;
		}
		*d = r;
		*exp10 = e;
		return true;
	}
	return false;
}

enum llm_err llm_buf_put_g(struct llm_buf *b, double v, int prec)
{
	/* The fast path: finite, nonzero, at most 15 digits (so that the digits fit a double
	 * exactly) and a magnitude that %g writes without an exponent. */
	double a = v < 0 ? -v : v;
	if (v == 0 && prec >= 1)
		return llm_buf_puts(b, signbit(v) ? "-0" : "0");
	if (prec < 1 || prec > 15 || !(a >= 1e-5) || !(a < 1e15))
		return llm_buf_printf(b, "%.*g", prec, v);
	/* The decimal exponent, near enough: sig_digits corrects it by one either way. */
	int e = 0;
	if (a >= 1) {
		while (e < 14 && a >= pow10_exact[e + 1])
			e++;
	} else {
		e = -1;
		while (e > -5 && a < 1.0 / pow10_exact[-e])
			e--;
	}
	unsigned long long d;
	int x;
	if (!sig_digits(a, prec, e, &d, &x) || x < -4 || x >= prec)
		return llm_buf_printf(b, "%.*g", prec, v);
	/* The prec digits of d, two at a time from the low eight and the high seven, two
	 * independent chains of divisions. */
	static const char pairs[] = "00010203040506070809101112131415161718192021222324"
				    "25262728293031323334353637383940414243444546474849"
				    "50515253545556575859606162636465666768697071727374"
				    "75767778798081828384858687888990919293949596979899";
	char dig[32]; /* 16 digits, and room for the fixed-size copies below */
	memset(dig + 16, '0', 16);
	uint32_t hi = (uint32_t)(d / 100000000), lo = (uint32_t)(d % 100000000);
	for (int i = 14; i >= 8; i -= 2, lo /= 100, hi /= 100) {
		memcpy(dig + i, pairs + 2 * (lo % 100), 2);
		memcpy(dig + i - 8, pairs + 2 * (hi % 100), 2);
	}
	/* dig[0..16) is d in 16 digits; the prec of them that are d's start at 16 - prec. */
	const char *p = dig + 16 - prec;
	int nd = prec; /* %g drops the fraction's trailing zeros, then a bare point */
	while (nd > 1 && p[nd - 1] == '0' && nd > x + 1)
		nd--;
	/* Written in place, in copies of 16 bytes of which the first so many count: at most 33
	 * bytes are written.  Near the buffer's ceiling, through out instead. */
	char out[40];
	bool in_place = llm_buf_reserve(b, sizeof out) == LLM_OK;
	char *const start = in_place ? b->data + b->len : out;
	char *w = start;
	if (v < 0)
		*w++ = '-';
	if (x < 0) {
		*w++ = '0';
		*w++ = '.';
		for (int i = 0; i < -x - 1; i++)
			*w++ = '0';
		memcpy(w, p, 16);
		w += nd;
	} else {
		memcpy(w, p, 16);
		w += x + 1;
		if (nd > x + 1) {
			*w++ = '.';
			memcpy(w, p + x + 1, 16);
			w += nd - x - 1;
		}
	}
	if (!in_place)
		return llm_buf_append(b, out, (size_t)(w - out));
	b->len += (size_t)(w - start);
	b->data[b->len] = '\0';
	return LLM_OK;
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

enum llm_err llm_buf_json_number(struct llm_buf *b, double v)
{
	if (!isfinite(v))
		return llm_buf_puts(b, "null");
	if (v == floor(v) && fabs(v) < 1e15)
		return llm_buf_put_int(b, (long long)v);
	char s[32];
	for (int p = 15; p <= 17; p++) {
		snprintf(s, sizeof s, "%.*g", p, v);
		if (p == 17 || strtod(s, NULL) == v)
			break;
	}
	return llm_buf_puts(b, s);
}
