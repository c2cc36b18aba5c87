#include "config.h"

#include "backend/retry.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void llm_retry_headers_reset(struct llm_retry_headers *h)
{
	memset(h, 0, sizeof *h);
}

static void copy_trimmed(char *dst, size_t dstsz, const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= dstsz)
		n = dstsz - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static bool header_is(const char *line, size_t n, const char *name, const char **val, size_t *vlen)
{
	size_t k = strlen(name);
	if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0)
		return false;
	*val = line + k + 1;
	*vlen = n - k - 1;
	return true;
}

void llm_retry_headers_line(struct llm_retry_headers *h, const char *line, size_t n)
{
	const char *v;
	size_t vlen;
	if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		const char *sp = memchr(line, ' ', n);
		llm_retry_headers_reset(h);
		h->status = sp ? strtol(sp + 1, NULL, 10) : 0;
	} else if (header_is(line, n, "retry-after-ms", &v, &vlen)) {
		copy_trimmed(h->ms, sizeof h->ms, v, vlen);
		h->have_ms = true;
	} else if (header_is(line, n, "retry-after", &v, &vlen)) {
		copy_trimmed(h->after, sizeof h->after, v, vlen);
		h->have_after = true;
	} else if (header_is(line, n, "x-should-retry", &v, &vlen)) {
		copy_trimmed(h->should, sizeof h->should, v, vlen);
		h->have_should = true;
	} else if (header_is(line, n, "content-type", &v, &vlen)) {
		copy_trimmed(h->content_type, sizeof h->content_type, v, vlen);
	}
}

/* Python's float() of a header value: surrounding blanks, a sign, digits with single
 * underscores between them, "inf", "infinity" and "nan" in any case. */
static bool py_float(const char *s, double *out, bool *overflow)
{
	char buf[64];
	size_t n = 0;
	*overflow = false;
	while (isspace((unsigned char)*s))
		s++;
	size_t len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (len == 0 || len >= sizeof buf)
		return false;
	const char *p = s;
	size_t plen = len;
	double sign = 1;
	if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		p++;
		plen--;
	}
	if ((plen == 3 && !strncasecmp(p, "inf", 3)) ||
	    (plen == 8 && !strncasecmp(p, "infinity", 8))) {
		*out = sign * INFINITY;
		return true;
	}
	if (plen == 3 && !strncasecmp(p, "nan", 3)) {
		*out = NAN;
		return true;
	}
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '_') {
			if (i == 0 || i + 1 == len || !isdigit((unsigned char)s[i - 1]) ||
			    !isdigit((unsigned char)s[i + 1]))
				return false;
			continue;
		}
		if (!isdigit((unsigned char)c) && !strchr(".eE+-", c))
			return false;
		buf[n++] = c;
	}
	buf[n] = '\0';
	char *end;
	errno = 0;
	double v = strtod(buf, &end);
	if (end == buf || *end)
		return false;
	if (errno == ERANGE && isinf(v))
		*overflow = v > 0;
	*out = v;
	return true;
}

/* An HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT", the weekday optional), as Unix time. */
static bool http_date(const char *s, time_t *out)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	const char *comma = strchr(s, ',');
	if (comma)
		s = comma + 1;
	int day, year, hh, mm, ss;
	char mon[4];
	int used = 0;
	if (sscanf(s, " %d %3s %d %d:%d:%d%n", &day, mon, &year, &hh, &mm, &ss, &used) != 6)
		return false;
	const char *m = NULL;
	for (int i = 0; i < 12 && !m; i++)
		if (!strncasecmp(mon, months + 3 * i, 3))
			m = months + 3 * i;
	if (!m || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
		return false;
	if (year < 100)
		year += year < 70 ? 2000 : 1900;
	struct tm tm = {.tm_year = year - 1900,
			.tm_mon = (int)((m - months) / 3),
			.tm_mday = day,
			.tm_hour = hh,
			.tm_min = mm,
			.tm_sec = ss};
	time_t t = timegm(&tm);
	/* A numeric zone moves it; GMT, UTC, UT and none leave it. */
	const char *z = s + used;
	while (*z == ' ')
		z++;
	if ((*z == '+' || *z == '-') && isdigit((unsigned char)z[1])) {
		long v = strtol(z + 1, NULL, 10);
		long off = (v / 100) * 3600 + (v % 100) * 60;
		t -= *z == '+' ? off : -off;
	}
	*out = t;
	return true;
}

bool llm_retry_hint(const struct llm_retry_headers *h, double *seconds)
{
	bool overflow;
	double v;
	if (h->have_ms && py_float(h->ms, &v, &overflow)) {
		*seconds = overflow ? DBL_MAX : v / 1000.0;
		return true;
	}
	if (h->have_after && py_float(h->after, &v, &overflow)) {
		*seconds = overflow ? DBL_MAX : v;
		return true;
	}
	time_t t;
	if (h->have_after && http_date(h->after, &t)) {
		*seconds = difftime(t, time(NULL));
		return true;
	}
	return false;
}

int llm_retry_should(const struct llm_retry_headers *h)
{
	if (h->have_should && !strcmp(h->should, "true"))
		return 1;
	if (h->have_should && !strcmp(h->should, "false"))
		return 0;
	return -1;
}

bool llm_retry_status(long status)
{
	return status == 408 || status == 409 || status == 429 || status >= 500;
}

double llm_retry_backoff(int retries, double u)
{
	double sleep = fmin(0.5 * pow(2.0, fmin(retries, 1000)), 8.0);
	return fmax(sleep * (1 - 0.25 * u), 0);
}
