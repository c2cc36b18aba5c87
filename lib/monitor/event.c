/* Monitoring events from JSONL records: see event.h.
 *
 * The record's top-level members are already scanned (core/json.h); nested objects (usage,
 * error, request, response) are scanned the same way from their spans, and only the arrays
 * that need walking (flags, messages, choices) go through jansson.  Decoded strings land in
 * one arena reserved up front at three times the line's length, which bounds everything an
 * event holds (a decoded string is never longer than its JSON text, and the two prompt texts
 * are built from message contents), so no pointer moves while an event is filled. */
#include "config.h"

#include "monitor/event.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/hash.h"
#include "core/json.h"

struct llm_mon_parser {
	struct llm_mon_fields f;
	bool want_text;
	struct llm_buf arena;
	struct llm_json_members sub;	   /* usage, error, request, response */
	struct llm_json_members sub2;	   /* nested once more */
	struct llm_mon_flag *flags;
	size_t flags_cap;
};

static const struct llm_mon_fields defaults = {
    .ts = "ts",
    .request_id = "request_id",
    .model = "model",
    .key_id = "key_id",
    .status = "status",
    .latency = "latency_ms",
    .ttft = "ttft_ms",
    .usage = "usage",
    .finish_reason = "finish_reason",
    .prompt = "prompt",
    .messages = "messages",
    .output = "output",
    .flags = "flags",
    .error = "error",
    .score = "score",
    .kind = "kind",
};

enum llm_err llm_mon_parser_new(struct llm_mon_parser **out, const struct llm_mon_fields *fields,
				bool want_text)
{
	struct llm_mon_parser *p = calloc(1, sizeof *p);
	if (!p)
		return LLM_ERR_NOMEM;
	p->f = defaults;
	if (fields) {
		const char **dst = (const char **)&p->f;
		const char *const *src = (const char *const *)fields;
		for (size_t i = 0; i < sizeof p->f / sizeof(const char *); i++)
			if (src[i])
				dst[i] = src[i];
	}
	/* Copy the names, so the caller's may go. */
	const char **names = (const char **)&p->f;
	for (size_t i = 0; i < sizeof p->f / sizeof(const char *); i++) {
		names[i] = strdup(names[i]);
		if (!names[i]) {
			llm_mon_parser_free(p);
			return LLM_ERR_NOMEM;
		}
	}
	p->want_text = want_text;
	llm_buf_init(&p->arena, 0);
	*out = p;
	return LLM_OK;
}

void llm_mon_parser_free(struct llm_mon_parser *p)
{
	if (!p)
		return;
	char **names = (char **)&p->f;
	for (size_t i = 0; i < sizeof p->f / sizeof(const char *); i++)
		free(names[i]);
	llm_buf_free(&p->arena);
	llm_json_members_free(&p->sub);
	llm_json_members_free(&p->sub2);
	free(p->flags);
	free(p);
}

/* --- time ---------------------------------------------------------------------------------- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, int *v)
{
	int x = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (s[i] - '0');
	}
	*v = x;
	return true;
}

bool llm_mon_parse_time(const char *s, size_t n, int64_t *ms)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, se;
	if (n < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !digits(s + 17, 2, &se))
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
		return false;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return false;
	size_t i = 19;
	int64_t frac_ms = 0;
	if (i < n && s[i] == '.') {
		i++;
		size_t start = i;
		int64_t scale = 100;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			frac_ms += (s[i] - '0') * scale;
			scale /= 10;
			i++;
		}
		if (i == start)
			return false;
	}
	int64_t offset_min = 0;
	if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
		int oh, om;
		if (!digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
			return false;
		offset_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
		i += 6;
	} else {
		return false;
	}
	if (i != n)
		return false;
	if (se == 60) /* a leap second is the next second's start, as most parsers take it */
		se = 59, frac_ms = 999;
	int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
	int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - offset_min * 60;
	*ms = secs * 1000 + frac_ms;
	return true;
}

bool llm_mon_parse_duration(const char *s, int64_t *ms)
{
	if (!s || !*s)
		return false;
	char *end;
	errno = 0;
	double bare = strtod(s, &end);
	if (end != s && !*end && isfinite(bare) && bare >= 0 && bare < 1e15) {
		*ms = (int64_t)llround(bare * 1000);
		return true;
	}
	double total = 0;
	const char *q = s;
	while (*q) {
		if (!isdigit((unsigned char)*q) && *q != '.')
			return false;
		double v = strtod(q, &end);
		if (end == q || v < 0)
			return false;
		q = end;
		double unit;
		if (!strncmp(q, "ms", 2))
			unit = 1, q += 2;
		else if (*q == 's')
			unit = 1000, q++;
		else if (*q == 'm')
			unit = 60e3, q++;
		else if (*q == 'h')
			unit = 3600e3, q++;
		else if (*q == 'd')
			unit = 86400e3, q++;
		else if (*q == 'w')
			unit = 7 * 86400e3, q++;
		else
			return false;
		total += v * unit;
	}
	if (!(total < 1e15))
		return false;
	*ms = (int64_t)llround(total);
	return true;
}

/* --- fields -------------------------------------------------------------------------------- */

static enum llm_err bad(struct llm_diag *why, const struct llm_record *rec, enum llm_err code,
			const char *field, const char *what)
{
	return llm_diag_set(why, code, rec->file, rec->line, "field '%s' %s", field, what);
}

/* Decode a string value into the arena (room is reserved by the caller). */
static void put_str(struct llm_mon_parser *p, const struct llm_json_member *m,
		    struct llm_mon_str *out)
{
	size_t off = p->arena.len;
	/* Cannot fail: the arena holds room for three times the line. */
	(void)llm_json_string_decode(m->val, m->val_len, &p->arena);
	(void)llm_buf_putc(&p->arena, '\0');
	out->p = p->arena.data + off;
	out->n = p->arena.len - off - 1;
}

static void put_bytes(struct llm_mon_parser *p, const char *s, size_t n, struct llm_mon_str *out)
{
	size_t off = p->arena.len;
	(void)llm_buf_append(&p->arena, s, n);
	(void)llm_buf_putc(&p->arena, '\0');
	out->p = p->arena.data + off;
	out->n = n;
}

/* A string field, or a number written as text (a status "200" stays a type error). */
static enum llm_err get_str(struct llm_mon_parser *p, const struct llm_record *rec,
			    const struct llm_json_members *ms, const char *name,
			    struct llm_mon_str *out, struct llm_diag *why)
{
	const struct llm_json_member *m = llm_json_get(ms, name);
	if (!m || m->type == LLM_JSON_NULL)
		return LLM_OK;
	if (m->type == LLM_JSON_NUMBER) { /* an id or model given as a number */
		put_bytes(p, m->val, m->val_len, out);
		return LLM_OK;
	}
	if (m->type != LLM_JSON_STRING)
		return bad(why, rec, LLM_ERR_TYPE, name, "is not a string");
	put_str(p, m, out);
	return LLM_OK;
}

/* A JSON number's value.  Most numbers in logs (latencies, counts, times) have at most 15
 * significant digits and a small exponent: then the digits are an exact double and so is the
 * power of ten (up to 1e22), and one IEEE division or product rounds correctly, as strtod
 * would (Clinger's fast path).  Anything else goes to strtod. */
static double number(const char *s, size_t n)
{
	static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
				       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
				       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
	size_t i = 0;
	bool neg = i < n && s[i] == '-';
	i += neg;
	uint64_t mant = 0;
	int digits = 0, scale = 0;
	while (i < n && s[i] >= '0' && s[i] <= '9') {
		if (mant || s[i] != '0')
			digits++;
		mant = mant * 10 + (uint64_t)(s[i++] - '0');
		if (digits > 15)
			return strtod(s, NULL);
	}
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (mant || s[i] != '0')
				digits++;
			mant = mant * 10 + (uint64_t)(s[i++] - '0');
			scale--;
			if (digits > 15)
				return strtod(s, NULL);
		}
	}
	if (i != n || -scale > 22)
		return strtod(s, NULL); /* an exponent, or too many decimals */
	double v = (double)mant / pow10[-scale];
	return neg ? -v : v;
}

static enum llm_err get_num(const struct llm_record *rec, const struct llm_json_members *ms,
			    const char *name, double *out, struct llm_diag *why)
{
	const struct llm_json_member *m = llm_json_get(ms, name);
	if (!m || m->type == LLM_JSON_NULL)
		return LLM_OK;
	if (m->type != LLM_JSON_NUMBER)
		return bad(why, rec, LLM_ERR_TYPE, name, "is not a number");
	*out = number(m->val, m->val_len);
	if (!isfinite(*out))
		return bad(why, rec, LLM_ERR_RANGE, name, "is out of range");
	return LLM_OK;
}

static enum llm_err get_time(const struct llm_record *rec, const struct llm_json_members *ms,
			     const char *name, int64_t *out, struct llm_diag *why)
{
	const struct llm_json_member *m = llm_json_get(ms, name);
	if (!m || m->type == LLM_JSON_NULL)
		return LLM_OK;
	if (m->type == LLM_JSON_NUMBER) {
		double v = number(m->val, m->val_len);
		if (!isfinite(v) || fabs(v) > 1e15)
			return bad(why, rec, LLM_ERR_RANGE, name, "is out of range");
		*out = (int64_t)llround(fabs(v) > 1e11 ? v : v * 1000);
		return LLM_OK;
	}
	if (m->type != LLM_JSON_STRING)
		return bad(why, rec, LLM_ERR_TYPE, name, "is not a time (RFC 3339 or Unix seconds)");
	if (m->key_escaped || memchr(m->val, '\\', m->val_len) ||
	    !llm_mon_parse_time(m->val + 1, m->val_len - 2, out))
		return llm_diag_set(why, LLM_ERR_FORMAT, rec->file, rec->line,
				    "field '%s' is not an RFC 3339 time: %.*s", name,
				    (int)(m->val_len > 64 ? 64 : m->val_len), m->val);
	return LLM_OK;
}

/* Scan an object member's value into ms; false when absent or not an object. */
static bool sub_object(const struct llm_json_members *in, const char *name,
		       struct llm_json_members *ms)
{
	const struct llm_json_member *m = llm_json_get(in, name);
	if (!m || m->type != LLM_JSON_OBJECT)
		return false;
	struct llm_json_fault fault;
	return llm_json_scan(m->val, m->val_len, ms, &fault) == LLM_OK;
}

static int64_t cps(const char *s, size_t n)
{
	int64_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xC0) != 0x80;
	return c;
}

static enum llm_err usage_from(const struct llm_record *rec, struct llm_json_members *ms,
			       const char *name, struct llm_mon_event *ev, struct llm_diag *why)
{
	const struct llm_json_member *m = llm_json_get(ms, name);
	if (!m || m->type == LLM_JSON_NULL)
		return LLM_OK;
	if (m->type != LLM_JSON_OBJECT)
		return bad(why, rec, LLM_ERR_TYPE, name, "is not an object");
	struct llm_json_members u = {0};
	struct llm_json_fault fault;
	enum llm_err e = llm_json_scan(m->val, m->val_len, &u, &fault);
	if (e != LLM_OK) {
		llm_json_members_free(&u);
		return bad(why, rec, e, name, "cannot be read");
	}
	double pt = -1, ct = -1;
	e = get_num(rec, &u, "prompt_tokens", &pt, why);
	if (e == LLM_OK)
		e = get_num(rec, &u, "completion_tokens", &ct, why);
	if (e == LLM_OK && pt < 0) /* Anthropic-style names */
		e = get_num(rec, &u, "input_tokens", &pt, why);
	if (e == LLM_OK && ct < 0)
		e = get_num(rec, &u, "output_tokens", &ct, why);
	llm_json_members_free(&u);
	if (e != LLM_OK)
		return e;
	if (pt >= 0)
		ev->prompt_tokens = (int64_t)pt;
	if (ct >= 0)
		ev->completion_tokens = (int64_t)ct;
	return LLM_OK;
}

/* The text of one message's content: a string, or the "text" of an array's text parts. */
static void content_text(struct llm_buf *b, json_t *content)
{
	if (json_is_string(content)) {
		(void)llm_buf_append(b, json_string_value(content), json_string_length(content));
		return;
	}
	size_t i;
	json_t *part;
	bool first = true;
	json_array_foreach(content, i, part)
	{
		json_t *t = json_object_get(part, "text");
		if (!json_is_string(t))
			continue;
		if (!first)
			(void)llm_buf_putc(b, '\n');
		first = false;
		(void)llm_buf_append(b, json_string_value(t), json_string_length(t));
	}
}

static enum llm_err messages_text(struct llm_mon_parser *p, const struct llm_record *rec,
				  const struct llm_json_member *m, const char *name,
				  struct llm_mon_event *ev, struct llm_diag *why)
{
	if (m->type != LLM_JSON_ARRAY)
		return bad(why, rec, LLM_ERR_TYPE, name, "is not an array of messages");
	ev->chat = true;
	if (!p->want_text)
		return LLM_OK;
	json_error_t jerr;
	json_t *arr = json_loadb(m->val, m->val_len, JSON_DECODE_ANY, &jerr);
	if (!arr)
		return LLM_ERR_NOMEM;
	for (int pass = 0; pass < 2; pass++) {
		size_t off = p->arena.len;
		size_t i;
		json_t *msg;
		bool first = true;
		json_array_foreach(arr, i, msg)
		{
			if (!json_is_object(msg))
				continue;
			const char *role = json_string_value(json_object_get(msg, "role"));
			if (pass == 1 && (!role || strcmp(role, "user")))
				continue;
			json_t *content = json_object_get(msg, "content");
			if (!json_is_string(content) && !json_is_array(content))
				continue;
			if (!first)
				(void)llm_buf_putc(&p->arena, '\n');
			first = false;
			content_text(&p->arena, content);
		}
		(void)llm_buf_putc(&p->arena, '\0');
		struct llm_mon_str *dst = pass ? &ev->prompt_user : &ev->prompt;
		dst->p = p->arena.data + off;
		dst->n = p->arena.len - off - 1;
	}
	json_decref(arr);
	return LLM_OK;
}

static enum llm_err flags_from(struct llm_mon_parser *p, const struct llm_record *rec,
			       const struct llm_json_member *m, const char *name,
			       struct llm_mon_event *ev, struct llm_diag *why)
{
	if (m->type == LLM_JSON_NULL)
		return LLM_OK;
	if (m->type != LLM_JSON_ARRAY)
		return bad(why, rec, LLM_ERR_TYPE, name, "is not an array of flags");
	if (m->val_len <= 2)
		return LLM_OK;
	json_error_t jerr;
	json_t *arr = json_loadb(m->val, m->val_len, JSON_DECODE_ANY, &jerr);
	if (!arr)
		return LLM_ERR_NOMEM;
	size_t n = json_array_size(arr);
	if (n > p->flags_cap) {
		struct llm_mon_flag *f = realloc(p->flags, n * sizeof *f);
		if (!f) {
			json_decref(arr);
			return LLM_ERR_NOMEM;
		}
		p->flags = f;
		p->flags_cap = n;
	}
	size_t i, k = 0;
	json_t *fl;
	json_array_foreach(arr, i, fl)
	{
		if (!json_is_object(fl) || !json_is_string(json_object_get(fl, "kind"))) {
			json_decref(arr);
			return bad(why, rec, LLM_ERR_TYPE, name,
				   "has an element that is not an object with a string \"kind\"");
		}
		struct llm_mon_flag *f = &p->flags[k++];
		memset(f, 0, sizeof *f);
		const char *keys[] = {"kind", "type", "field"};
		struct llm_mon_str *dst[] = {&f->kind, &f->type, &f->field};
		for (int j = 0; j < 3; j++) {
			json_t *s = json_object_get(fl, keys[j]);
			if (json_is_string(s))
				put_bytes(p, json_string_value(s), json_string_length(s), dst[j]);
		}
		json_t *sc = json_object_get(fl, "score");
		f->score = json_is_number(sc) ? json_number_value(sc) : -1;
	}
	json_decref(arr);
	ev->flags = p->flags;
	ev->nflags = k;
	return LLM_OK;
}

/* The first choice of an OpenAI response: output text and finish_reason. */
static void response_choice(struct llm_mon_parser *p, const struct llm_json_members *resp,
			    struct llm_mon_event *ev)
{
	const struct llm_json_member *m = llm_json_get(resp, "choices");
	if (!m || m->type != LLM_JSON_ARRAY || m->val_len <= 2)
		return;
	json_error_t jerr;
	json_t *arr = json_loadb(m->val, m->val_len, JSON_DECODE_ANY, &jerr);
	json_t *c0 = json_array_get(arr, 0);
	if (json_is_object(c0)) {
		json_t *fr = json_object_get(c0, "finish_reason");
		if (json_is_string(fr) && !ev->finish_reason.p)
			put_bytes(p, json_string_value(fr), json_string_length(fr),
				  &ev->finish_reason);
		json_t *msg = json_object_get(c0, "message");
		json_t *text = json_is_object(msg) ? json_object_get(msg, "content")
						   : json_object_get(c0, "text");
		if (json_is_string(text) && !ev->output.p && ev->output_chars < 0) {
			const char *s = json_string_value(text);
			size_t n = json_string_length(text);
			ev->output_chars = cps(s, n);
			if (p->want_text)
				put_bytes(p, s, n, &ev->output);
		}
	}
	json_decref(arr);
}

void llm_mon_feedback_id(const char *request_id, size_t idlen, double score, int64_t ts_ms,
			 const char *comment, size_t comment_len, char out[LLM_MON_FB_ID_MAX])
{
	/* The request id and a NUL, "score|ts" and a NUL, the comment. */
	struct llm_sha256 h;
	unsigned char d[LLM_SHA256_LEN];
	char num[64];
	llm_sha256_init(&h);
	llm_sha256_update(&h, request_id ? request_id : "", request_id ? idlen : 0);
	llm_sha256_update(&h, "", 1);
	int n = snprintf(num, sizeof num, "%.17g|%lld", score, (long long)ts_ms);
	llm_sha256_update(&h, num, (size_t)n + 1);
	llm_sha256_update(&h, comment ? comment : "", comment ? comment_len : 0);
	llm_sha256_final(&h, d);
	char hex[2 * LLM_SHA256_LEN + 1];
	llm_hex(d, 12, hex);
	memcpy(out, "fb-", 3);
	memcpy(out + 3, hex, 25); /* 24 digits and the NUL */
}

static void feedback_id(struct llm_mon_parser *p, struct llm_mon_event *ev)
{
	char id[LLM_MON_FB_ID_MAX];
	llm_mon_feedback_id(ev->request_id.p, ev->request_id.n, ev->score, ev->ts_ms,
			    ev->comment.p, ev->comment.n, id);
	put_bytes(p, id, strlen(id), &ev->feedback_id);
}

enum llm_err llm_mon_parse(struct llm_mon_parser *p, const struct llm_record *rec,
			   struct llm_mon_event *ev, struct llm_diag *why)
{
	const struct llm_mon_fields *f = &p->f;
	const struct llm_json_members *ms = &rec->fields;
	memset(ev, 0, sizeof *ev);
	ev->rec = rec;
	ev->ts_ms = INT64_MIN;
	ev->latency_ms = ev->ttft_ms = ev->score = LLM_MON_UNKNOWN;
	ev->prompt_tokens = ev->completion_tokens = -1;
	ev->prompt_chars = ev->output_chars = -1;
	llm_buf_clear(&p->arena);
	enum llm_err e = llm_buf_reserve(&p->arena, 3 * rec->len + 4096);
	if (e != LLM_OK)
		return e;

	const struct llm_json_member *kind = llm_json_get(ms, f->kind);
	bool is_feedback = kind && kind->type == LLM_JSON_STRING &&
			   kind->val_len == sizeof "\"feedback\"" - 1 &&
			   !memcmp(kind->val, "\"feedback\"", kind->val_len);
	ev->kind = is_feedback ? LLM_MON_FEEDBACK : LLM_MON_REQUEST;

	if ((e = get_time(rec, ms, f->ts, &ev->ts_ms, why)) != LLM_OK)
		return e;
	if ((e = get_str(p, rec, ms, f->request_id, &ev->request_id, why)) != LLM_OK)
		return e;
	if (is_feedback) {
		const struct llm_json_member *s = llm_json_get(ms, f->score);
		if (!s)
			return llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
					    "feedback without a '%s' field", f->score);
		if ((e = get_num(rec, ms, f->score, &ev->score, why)) != LLM_OK)
			return e;
		if (!ev->request_id.p)
			return llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
					    "feedback without a '%s' field", f->request_id);
		if ((e = get_str(p, rec, ms, "comment", &ev->comment, why)) != LLM_OK)
			return e;
		if ((e = get_str(p, rec, ms, "id", &ev->feedback_id, why)) != LLM_OK)
			return e;
		if ((e = get_str(p, rec, ms, f->model, &ev->model, why)) != LLM_OK)
			return e;
		if ((e = get_str(p, rec, ms, f->key_id, &ev->key_id, why)) != LLM_OK)
			return e;
		if (!ev->feedback_id.p)
			feedback_id(p, ev);
		return LLM_OK;
	}
	if (!ev->request_id.p && strcmp(f->request_id, "id") &&
	    (e = get_str(p, rec, ms, "id", &ev->request_id, why)) != LLM_OK)
		return e;
	if ((e = get_str(p, rec, ms, "endpoint", &ev->endpoint, why)) != LLM_OK ||
	    (e = get_str(p, rec, ms, f->model, &ev->model, why)) != LLM_OK ||
	    (e = get_str(p, rec, ms, f->key_id, &ev->key_id, why)) != LLM_OK ||
	    (e = get_str(p, rec, ms, f->finish_reason, &ev->finish_reason, why)) != LLM_OK)
		return e;
	double status = -1;
	if ((e = get_num(rec, ms, f->status, &status, why)) != LLM_OK)
		return e;
	if (status >= 0) {
		if (status != floor(status) || status > 999)
			return bad(why, rec, LLM_ERR_RANGE, f->status, "is not an HTTP status");
		ev->status = (int)status;
	}
	if ((e = get_num(rec, ms, f->latency, &ev->latency_ms, why)) != LLM_OK ||
	    (e = get_num(rec, ms, f->ttft, &ev->ttft_ms, why)) != LLM_OK)
		return e;
	if ((e = usage_from(rec, (struct llm_json_members *)ms, f->usage, ev, why)) != LLM_OK)
		return e;

	const struct llm_json_member *err = llm_json_get(ms, f->error);
	if (err && err->type != LLM_JSON_NULL) {
		ev->failed = true;
		if (err->type == LLM_JSON_STRING) {
			put_str(p, err, &ev->error_code);
		} else if (err->type == LLM_JSON_OBJECT) {
			if (sub_object(ms, f->error, &p->sub)) {
				if ((e = get_str(p, rec, &p->sub, "code", &ev->error_code, why)) !=
				    LLM_OK)
					return e;
				if (!ev->error_code.p &&
				    (e = get_str(p, rec, &p->sub, "type", &ev->error_code, why)) !=
					LLM_OK)
					return e;
			}
		} else if (err->type == LLM_JSON_FALSE) {
			ev->failed = false;
		}
	}

	/* Texts, or their lengths under --log-content=hash. */
	const struct llm_json_member *pm = llm_json_get(ms, f->prompt);
	const struct llm_json_member *mm = llm_json_get(ms, f->messages);
	if (pm && pm->type == LLM_JSON_STRING) {
		struct llm_mon_str s;
		put_str(p, pm, &s);
		ev->prompt_chars = cps(s.p, s.n);
		if (p->want_text)
			ev->prompt = ev->prompt_user = s;
		else
			p->arena.len -= s.n + 1;
	} else if (pm && pm->type != LLM_JSON_NULL) {
		return bad(why, rec, LLM_ERR_TYPE, f->prompt, "is not a string");
	} else if (mm && mm->type != LLM_JSON_NULL) {
		if ((e = messages_text(p, rec, mm, f->messages, ev, why)) != LLM_OK)
			return e;
		if (ev->prompt.p)
			ev->prompt_chars = cps(ev->prompt.p, ev->prompt.n);
	}
	const struct llm_json_member *om = llm_json_get(ms, f->output);
	if (om && om->type == LLM_JSON_STRING) {
		struct llm_mon_str s;
		put_str(p, om, &s);
		ev->output_chars = cps(s.p, s.n);
		if (p->want_text)
			ev->output = s;
		else
			p->arena.len -= s.n + 1;
	} else if (om && om->type == LLM_JSON_ARRAY) {
		/* n > 1 samples: the first one speaks for the record */
		json_error_t jerr;
		json_t *arr = json_loadb(om->val, om->val_len, JSON_DECODE_ANY, &jerr);
		json_t *first = json_array_get(arr, 0);
		if (json_is_string(first)) {
			const char *s = json_string_value(first);
			size_t n = json_string_length(first);
			ev->output_chars = cps(s, n);
			if (p->want_text)
				put_bytes(p, s, n, &ev->output);
		}
		json_decref(arr);
	} else if (om && om->type != LLM_JSON_NULL) {
		return bad(why, rec, LLM_ERR_TYPE, f->output, "is not a string");
	}
	double len;
	if (ev->prompt_chars < 0) {
		len = -1;
		if ((e = get_num(rec, ms, "prompt_len", &len, why)) != LLM_OK)
			return e;
		if (len >= 0)
			ev->prompt_chars = (int64_t)len;
	}
	if (ev->output_chars < 0) {
		len = -1;
		if ((e = get_num(rec, ms, "output_len", &len, why)) != LLM_OK)
			return e;
		if (len >= 0)
			ev->output_chars = (int64_t)len;
	}

	/* An OpenAI request/response pair fills what the top level left out. */
	if (sub_object(ms, "request", &p->sub)) {
		if (!ev->model.p && (e = get_str(p, rec, &p->sub, "model", &ev->model, why)) != LLM_OK)
			return e;
		if (ev->prompt_chars < 0) {
			const struct llm_json_member *rp = llm_json_get(&p->sub, "prompt");
			const struct llm_json_member *rm = llm_json_get(&p->sub, "messages");
			if (rp && rp->type == LLM_JSON_STRING) {
				struct llm_mon_str s;
				put_str(p, rp, &s);
				ev->prompt_chars = cps(s.p, s.n);
				if (p->want_text)
					ev->prompt = ev->prompt_user = s;
			} else if (rm && rm->type == LLM_JSON_ARRAY) {
				if ((e = messages_text(p, rec, rm, "request.messages", ev, why)) !=
				    LLM_OK)
					return e;
				if (ev->prompt.p)
					ev->prompt_chars = cps(ev->prompt.p, ev->prompt.n);
			}
		}
		if (!ev->endpoint.p) {
			const char *ep = llm_json_get(&p->sub, "messages") ? "/v1/chat/completions"
			                 : llm_json_get(&p->sub, "prompt") ? "/v1/completions"
			                                                   : NULL;
			if (ep)
				put_bytes(p, ep, strlen(ep), &ev->endpoint);
		}
	}
	if (sub_object(ms, "response", &p->sub)) {
		if (!ev->model.p && (e = get_str(p, rec, &p->sub, "model", &ev->model, why)) != LLM_OK)
			return e;
		if (ev->prompt_tokens < 0 && ev->completion_tokens < 0 &&
		    (e = usage_from(rec, &p->sub, "usage", ev, why)) != LLM_OK)
			return e;
		if (ev->ts_ms == INT64_MIN && (e = get_time(rec, &p->sub, "created", &ev->ts_ms, why)) !=
						  LLM_OK)
			return e;
		if (!ev->request_id.p && (e = get_str(p, rec, &p->sub, "id", &ev->request_id, why)) !=
					     LLM_OK)
			return e;
		const struct llm_json_member *re = llm_json_get(&p->sub, "error");
		if (re && re->type == LLM_JSON_OBJECT && !ev->failed) {
			ev->failed = true;
			if (sub_object(&p->sub, "error", &p->sub2)) {
				if ((e = get_str(p, rec, &p->sub2, "code", &ev->error_code, why)) !=
				    LLM_OK)
					return e;
				if (!ev->error_code.p &&
				    (e = get_str(p, rec, &p->sub2, "type", &ev->error_code, why)) !=
					LLM_OK)
					return e;
			}
		}
		response_choice(p, &p->sub, ev);
	}

	const struct llm_json_member *fm = llm_json_get(ms, f->flags);
	if (fm && (e = flags_from(p, rec, fm, f->flags, ev, why)) != LLM_OK)
		return e;
	if (ev->status >= 400)
		ev->failed = true;
	return LLM_OK;
}
