/* llm-monitor scan: the guard detectors over prompts and answers, and the traffic-abuse
 * detectors over the stream; each finding a JSONL record, or (--tag) a flag on the record.
 *
 * What is scanned where:
 *   the user's text     prompt_injection, jailbreak, template_token, invisible_char,
 *                       markdown_exfiltration (lib/guard/inject.h).  A text prompt is all
 *                       user text; in a chat, only the user messages are (the system prompt is
 *                       the operator's own and may hold template tokens by design), and their
 *                       findings name the field "prompt_user": the user messages' contents
 *                       joined by newlines, which is what their spans count in.
 *   the whole prompt    email, phone, ip_address, credit_card, iban, secret, high_entropy
 *                       (lib/guard/pii.h), field "prompt".
 *   the answer          refusal and markdown_exfiltration, and the PII kinds (a leak), field
 *                       "output".
 *   the traffic         rate_spike, near_duplicates, long_prompt_flood (lib/monitor/abuse.h),
 *                       field "traffic", span null, on the request that set them off.
 * Spans are byte offsets in the decoded text of their field. */
#include "config.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard/inject.h"
#include "guard/pii.h"
#include "monitor/abuse.h"
#include "monitor/monitor.h"
#include "serve/reqlog.h"

/* ---- the kinds ------------------------------------------------------------------------- */

/* One numbering for all the kinds scan reports: the guard's injection kinds, then the PII
 * types, then the abuse kinds. */
enum {
	K_INJECT = 0,
	K_PII = K_INJECT + LLM_INJECT__COUNT,
	K_ABUSE = K_PII + LLM_PII__COUNT,
	K_COUNT = K_ABUSE + LLM_ABUSE__COUNT,
};

#define BIT(k) (1u << (k))
#define M_ALL  ((1u << K_COUNT) - 1)
#define M_ATTACKS                                                                                  \
	(BIT(K_INJECT + LLM_INJECT_PROMPT_INJECTION) | BIT(K_INJECT + LLM_INJECT_JAILBREAK) |      \
	 BIT(K_INJECT + LLM_INJECT_TEMPLATE_TOKEN) | BIT(K_INJECT + LLM_INJECT_INVISIBLE) |        \
	 BIT(K_INJECT + LLM_INJECT_MARKDOWN_EXFIL))
#define M_PII                                                                                      \
	(BIT(K_PII + LLM_PII_EMAIL) | BIT(K_PII + LLM_PII_PHONE) |                                 \
	 BIT(K_PII + LLM_PII_IP_ADDRESS) | BIT(K_PII + LLM_PII_CREDIT_CARD) |                      \
	 BIT(K_PII + LLM_PII_IBAN))
#define M_SECRETS (BIT(K_PII + LLM_PII_SECRET) | BIT(K_PII + LLM_PII_HIGH_ENTROPY))
#define M_ABUSE	  (((1u << LLM_ABUSE__COUNT) - 1) << K_ABUSE)

static const char *kind_name(int k)
{
	if (k < K_PII)
		return llm_inject_kind_name((enum llm_inject_kind)(k - K_INJECT));
	if (k < K_ABUSE)
		return llm_pii_type_name((enum llm_pii_type)(k - K_PII));
	return llm_abuse_kind_name((enum llm_abuse_kind)(k - K_ABUSE));
}

static const struct {
	const char *name;
	unsigned mask;
} groups[] = {
    {"all", M_ALL},	    {"attacks", M_ATTACKS}, {"pii", M_PII},
    {"secrets", M_SECRETS}, {"abuse", M_ABUSE},
};

#define KINDS_HELP                                                                                 \
	"prompt_injection, jailbreak, template_token, invisible_char, markdown_exfiltration, "     \
	"refusal, email, phone, ip_address, credit_card, iban, secret, high_entropy, rate_spike, " \
	"near_duplicates, long_prompt_flood, or the groups attacks, pii, secrets, abuse, all"

static int parse_kinds(struct llm_cli *c, const char *opt, unsigned *mask)
{
	char **items = NULL;
	size_t n = 0;
	if (llm_args_list(&c->args, opt, &items, &n)) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	*mask = 0;
	int st = 0;
	for (size_t i = 0; i < n && !st; i++) {
		bool found = false;
		for (size_t g = 0; g < sizeof groups / sizeof *groups && !found; g++)
			if (!strcmp(items[i], groups[g].name)) {
				*mask |= groups[g].mask;
				found = true;
			}
		for (int k = 0; k < K_COUNT && !found; k++)
			if (!strcmp(items[i], kind_name(k))) {
				*mask |= BIT(k);
				found = true;
			}
		if (!found)
			st = llm_cli_usage(c, "--%s: unknown kind '%s' (%s)", opt, items[i],
					   KINDS_HELP);
	}
	llm_strv_free(items);
	return st;
}

/* ---- findings -------------------------------------------------------------------------- */

#define EXCERPT_MAX 200 /* bytes of text in an excerpt */

struct finding {
	int kind;
	const char *type; /* the flag's type: the PII type, else the detector */
	const char *detector;
	const char *field;
	bool traffic;
	size_t start, end;
	double score;
	const struct llm_abuse_finding *abuse;
	const char *text; /* the field's text, for excerpts */
	size_t text_len;
};

struct scan {
	struct llm_cli *c;
	unsigned kinds, fail_on;
	double min_score;
	bool tag, excerpts;
	size_t max_findings;
	const char *flags_field;
	struct llm_guard_config pii;
	struct llm_abuse *abuse;
	/* one record's findings */
	struct finding *f;
	size_t nf, capf;
	struct llm_inject_matches im;
	struct llm_pii_matches pm;
	struct llm_abuse_findings af;
	struct llm_buf line, flags, merged;
	/* counts */
	uint64_t by_kind[K_COUNT];
	uint64_t findings, records_flagged, written, truncated;
	bool failed; /* a finding of a --fail-on kind */
};

static bool add_finding(struct scan *s, const struct finding *f)
{
	if (!(s->kinds & BIT(f->kind)) || f->score < s->min_score)
		return true;
	if (s->nf == s->capf) {
		size_t cap = s->capf ? s->capf * 2 : 16;
		struct finding *p = realloc(s->f, cap * sizeof *p);
		if (!p)
			return false;
		s->f = p;
		s->capf = cap;
	}
	s->f[s->nf++] = *f;
	s->by_kind[f->kind]++;
	s->findings++;
	if (s->fail_on & BIT(f->kind))
		s->failed = true;
	return true;
}

static enum llm_err scan_inject(struct scan *s, const char *field, struct llm_mon_str t,
				unsigned kinds, struct llm_diag *d)
{
	unsigned want = 0;
	for (int k = 0; k < LLM_INJECT__COUNT; k++)
		if ((kinds & BIT(k)) && (s->kinds & BIT(K_INJECT + k)))
			want |= BIT(k);
	if (!want || !t.p)
		return LLM_OK;
	enum llm_err e = llm_inject_scan(t.p, t.n, want, s->max_findings, &s->im, d);
	if (e)
		return e;
	s->truncated += s->im.truncated;
	for (size_t i = 0; i < s->im.n; i++) {
		const struct llm_inject_match *m = &s->im.m[i];
		struct finding f = {K_INJECT + (int)m->kind,
				    m->detector,
				    m->detector,
				    field,
				    false,
				    m->start,
				    m->end,
				    m->score,
				    NULL,
				    t.p,
				    t.n};
		if (!add_finding(s, &f))
			return LLM_ERR_NOMEM;
	}
	return LLM_OK;
}

static enum llm_err scan_pii(struct scan *s, const char *field, struct llm_mon_str t,
			     struct llm_diag *d)
{
	if (!(s->kinds & (M_PII | M_SECRETS)) || !t.p)
		return LLM_OK;
	enum llm_err e = llm_guard_scan(t.p, t.n, &s->pii, &s->pm, d);
	if (e)
		return e;
	size_t n = s->pm.n;
	if (s->max_findings && n > s->max_findings) {
		n = s->max_findings;
		s->truncated++;
	}
	for (size_t i = 0; i < n; i++) {
		const struct llm_pii_match *m = &s->pm.m[i];
		struct finding f = {K_PII + (int)m->type,
				    llm_pii_type_name(m->type),
				    m->detector,
				    field,
				    false,
				    m->start,
				    m->end,
				    m->score,
				    NULL,
				    t.p,
				    t.n};
		if (!add_finding(s, &f))
			return LLM_ERR_NOMEM;
	}
	return LLM_OK;
}

static enum llm_err scan_traffic(struct scan *s, const struct llm_mon_event *ev, struct llm_diag *d)
{
	if (!s->abuse)
		return LLM_OK;
	struct llm_abuse_request r = {
	    .ts_ms = ev->ts_ms,
	    .key = ev->key_id.p,
	    .key_len = ev->key_id.n,
	    .text = ev->prompt_user.p,
	    .text_len = ev->prompt_user.n,
	    .chars = ev->prompt_chars,
	};
	enum llm_err e = llm_abuse_add(s->abuse, &r, &s->af, d);
	if (e)
		return e;
	for (size_t i = 0; i < s->af.n; i++) {
		const struct llm_abuse_finding *a = &s->af.f[i];
		struct finding f = {K_ABUSE + (int)a->kind,
				    a->detector,
				    a->detector,
				    "traffic",
				    true,
				    0,
				    0,
				    a->score,
				    a,
				    ev->prompt_user.p,
				    ev->prompt_user.n};
		if (!add_finding(s, &f))
			return LLM_ERR_NOMEM;
	}
	return LLM_OK;
}

/* Every finding of one request, in s->f. */
static enum llm_err scan_event(struct scan *s, const struct llm_mon_event *ev, struct llm_diag *d)
{
	s->nf = 0;
	const char *user_field = ev->chat ? "prompt_user" : "prompt";
	enum llm_err e = scan_inject(s, user_field, ev->prompt_user, LLM_INJECT_INPUT, d);
	if (!e)
		e = scan_pii(s, "prompt", ev->prompt, d);
	if (!e)
		e = scan_inject(s, "output", ev->output, LLM_INJECT_OUTPUT, d);
	if (!e)
		e = scan_pii(s, "output", ev->output, d);
	if (!e)
		e = scan_traffic(s, ev, d);
	if (!e && s->nf)
		s->records_flagged++;
	return e;
}

/* ---- writing --------------------------------------------------------------------------- */

static enum llm_err put_str_or_null(struct llm_buf *b, const struct llm_mon_str *v)
{
	return v->p ? llm_buf_json_string(b, v->p, v->n) : llm_buf_puts(b, "null");
}

/* At most EXCERPT_MAX bytes, cut at a character boundary. */
static enum llm_err put_excerpt(struct llm_buf *b, const char *t, size_t n)
{
	if (n > EXCERPT_MAX) {
		n = EXCERPT_MAX;
		while (n && ((unsigned char)t[n] & 0xC0) == 0x80)
			n--;
	}
	return llm_buf_json_string(b, t, n);
}

static enum llm_err put_number(struct llm_buf *b, double v)
{
	if (!isfinite(v))
		return llm_buf_puts(b, "null");
	return llm_buf_printf(b, "%.6g", v);
}

static enum llm_err put_detail(struct llm_buf *b, const struct llm_abuse_finding *a)
{
	enum llm_err e = llm_buf_printf(
	    b, ",\"detail\":{\"count\":%llu,\"threshold\":", (unsigned long long)a->count);
	if (!e)
		e = put_number(b, a->threshold);
	if (!e)
		e = llm_buf_printf(b, ",\"window_ms\":%lld", (long long)a->window_ms);
	if (!e && a->kind == LLM_ABUSE_RATE_SPIKE) {
		e = llm_buf_puts(b, ",\"baseline\":");
		if (!e)
			e = a->baseline < 0 ? llm_buf_puts(b, "null") : put_number(b, a->baseline);
	}
	if (!e && a->kind == LLM_ABUSE_NEAR_DUPLICATES)
		e = llm_buf_printf(b, ",\"keys\":%u", a->keys);
	if (!e && a->kind == LLM_ABUSE_LONG_PROMPTS)
		e = llm_buf_printf(b, ",\"limit_chars\":%lld", (long long)a->limit_chars);
	if (!e)
		e = llm_buf_putc(b, '}');
	return e;
}

/* What a finding and its flag both say: ,"detector","field","span","score". */
static enum llm_err put_where(struct llm_buf *b, const struct finding *f)
{
	enum llm_err e = llm_buf_puts(b, ",\"detector\":");
	if (!e)
		e = llm_buf_json_string(b, f->detector, strlen(f->detector));
	if (!e)
		e = llm_buf_printf(b, ",\"field\":\"%s\",\"span\":", f->field);
	if (!e)
		e = f->traffic ? llm_buf_puts(b, "null")
			       : llm_buf_printf(b, "[%zu,%zu]", f->start, f->end);
	if (!e)
		e = llm_buf_puts(b, ",\"score\":");
	if (!e)
		e = put_number(b, f->score);
	return e;
}

/* {"kind","detector","field","span","score","request_id","ts","model","key_id"[,"detail"]
 *  [,"excerpt"]} */
static enum llm_err finding_line(struct scan *s, const struct finding *f,
				 const struct llm_mon_event *ev)
{
	struct llm_buf *b = &s->line;
	llm_buf_clear(b);
	const char *kind = kind_name(f->kind);
	enum llm_err e = llm_buf_puts(b, "{\"kind\":");
	if (!e)
		e = llm_buf_json_string(b, kind, strlen(kind));
	if (!e)
		e = put_where(b, f);
	if (!e)
		e = llm_buf_puts(b, ",\"request_id\":");
	if (!e)
		e = put_str_or_null(b, &ev->request_id);
	if (!e)
		e = llm_buf_puts(b, ",\"ts\":");
	if (!e && ev->ts_ms != INT64_MIN) {
		char ts[LLM_REQLOG_TS_MAX];
		llm_reqlog_ts(ev->ts_ms, ts);
		e = llm_buf_printf(b, "\"%s\"", ts);
	} else if (!e) {
		e = llm_buf_puts(b, "null");
	}
	if (!e)
		e = llm_buf_puts(b, ",\"model\":");
	if (!e)
		e = put_str_or_null(b, &ev->model);
	if (!e)
		e = llm_buf_puts(b, ",\"key_id\":");
	if (!e)
		e = put_str_or_null(b, &ev->key_id);
	if (!e && f->abuse)
		e = put_detail(b, f->abuse);
	if (!e && s->excerpts) {
		if (!f->traffic) {
			e = llm_buf_puts(b, ",\"excerpt\":");
			if (!e)
				e = put_excerpt(b, f->text + f->start, f->end - f->start);
		} else if (f->text) {
			/* the prompt that completed the cluster or the flood, from its start */
			e = llm_buf_puts(b, ",\"excerpt\":");
			if (!e)
				e = put_excerpt(b, f->text, f->text_len);
		}
	}
	if (!e)
		e = llm_buf_puts(b, "}\n");
	return e;
}

/* The flag of a finding, in the request log's shape: {"kind","type","detector","field",
 * "span","score"}, kind "pii" for the PII and secret types (as llm-serve and llm-prep redact
 * write them). */
static enum llm_err put_flag(struct llm_buf *b, const struct finding *f)
{
	const char *kind = f->kind >= K_PII && f->kind < K_ABUSE ? "pii" : kind_name(f->kind);
	enum llm_err e = llm_buf_puts(b, "{\"kind\":");
	if (!e)
		e = llm_buf_json_string(b, kind, strlen(kind));
	if (!e)
		e = llm_buf_puts(b, ",\"type\":");
	if (!e)
		e = llm_buf_json_string(b, f->type, strlen(f->type));
	if (!e)
		e = put_where(b, f);
	if (!e)
		e = llm_buf_putc(b, '}');
	return e;
}

/* Whether the record's flags already hold this finding's flag (a record tagged twice gains
 * nothing the second time). */
static bool already_flagged(json_t *old, const struct finding *f)
{
	const char *kind = f->kind >= K_PII && f->kind < K_ABUSE ? "pii" : kind_name(f->kind);
	size_t i;
	json_t *o;
	json_array_foreach(old, i, o)
	{
		const char *k = json_string_value(json_object_get(o, "kind"));
		const char *t = json_string_value(json_object_get(o, "type"));
		const char *fl = json_string_value(json_object_get(o, "field"));
		json_t *sp = json_object_get(o, "span");
		if (!k || !t || !fl || strcmp(k, kind) || strcmp(t, f->type) ||
		    strcmp(fl, f->field))
			continue;
		if (f->traffic
			? json_is_null(sp) || !sp
			: json_is_array(sp) && json_array_size(sp) == 2 &&
			      json_integer_value(json_array_get(sp, 0)) == (json_int_t)f->start &&
			      json_integer_value(json_array_get(sp, 1)) == (json_int_t)f->end)
			return true;
	}
	return false;
}

/* The record with its findings appended to its flags array (made when it has none). */
static bool emit_tagged(struct scan *s, const struct llm_mon_event *ev)
{
	const struct llm_json_member *old = llm_json_get(&ev->rec->fields, s->flags_field);
	if (old && old->type != LLM_JSON_ARRAY)
		old = NULL; /* null: replaced (the parser refused any other type) */
	json_t *parsed = NULL;
	if (old && old->val_len > 2) {
		json_error_t jerr;
		parsed = json_loadb(old->val, old->val_len, 0, &jerr);
	}
	llm_buf_clear(&s->flags);
	enum llm_err e = LLM_OK;
	size_t added = 0;
	for (size_t i = 0; i < s->nf && !e; i++) {
		if (parsed && already_flagged(parsed, &s->f[i]))
			continue;
		if (added++)
			e = llm_buf_putc(&s->flags, ',');
		if (!e)
			e = put_flag(&s->flags, &s->f[i]);
	}
	json_decref(parsed);
	if (!e && !added)
		return llm_cli_emit(s->c, ev->rec, NULL, 0);
	llm_buf_clear(&s->merged);
	if (!e && !old) {
		e = llm_buf_printf(&s->merged, "[%s]", s->flags.data);
	} else if (!e) {
		/* the old array's text up to its ']', a comma when it had items, the new ones */
		const char *v = old->val;
		size_t close = old->val_len;
		while (close && v[close - 1] != ']')
			close--;
		close--;
		size_t k = 1;
		while (k < close && strchr(" \t\r\n", v[k]))
			k++;
		e = llm_buf_append(&s->merged, v, close);
		if (!e && k < close)
			e = llm_buf_putc(&s->merged, ',');
		if (!e)
			e = llm_buf_printf(&s->merged, "%s]", s->flags.data);
	}
	if (e) {
		llm_cli_error(s->c, "out of memory");
		return false;
	}
	struct llm_edit ed = {s->flags_field, s->merged.data};
	return llm_cli_emit(s->c, ev->rec, &ed, 1);
}

/* ---- the run --------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int parse_duration_opt(struct llm_cli *c, const char *name, int64_t *ms)
{
	const char *v = llm_args_str(&c->args, name);
	if (!llm_mon_parse_duration(v, ms) || *ms < 10)
		return llm_cli_usage(c, "--%s: expected a duration of at least 10ms, not '%s'",
				     name, v);
	return 0;
}

static int abuse_config(struct llm_cli *c, struct llm_abuse_config *a)
{
	llm_abuse_config_init(a);
	int st = parse_duration_opt(c, "rate-window", &a->rate_window_ms);
	if (!st)
		st = parse_duration_opt(c, "rate-baseline", &a->rate_baseline_ms);
	if (!st)
		st = parse_duration_opt(c, "dup-window", &a->dup_window_ms);
	if (!st)
		st = parse_duration_opt(c, "long-window", &a->long_window_ms);
	if (st)
		return st;
	a->rate_factor = llm_args_double(&c->args, "rate-factor");
	a->rate_min = (uint32_t)llm_args_int(&c->args, "rate-min");
	a->max_rate = llm_args_double(&c->args, "max-rate");
	a->max_keys = (size_t)llm_args_int(&c->args, "max-keys");
	a->dup_threshold = llm_args_double(&c->args, "dup-threshold");
	a->dup_count = (uint32_t)llm_args_int(&c->args, "dup-count");
	a->dup_min_words = (uint32_t)llm_args_int(&c->args, "dup-min-words");
	a->dup_max_prompts = (size_t)llm_args_int(&c->args, "dup-max-prompts");
	a->long_percentile = llm_args_double(&c->args, "long-percentile");
	a->long_min_chars = llm_args_int(&c->args, "long-min-chars");
	a->long_count = (uint32_t)llm_args_int(&c->args, "long-count");
	a->long_history = (size_t)llm_args_int(&c->args, "long-history");
	return 0;
}

static json_t *kind_counts(const struct scan *s)
{
	json_t *o = json_object();
	for (int k = 0; k < K_COUNT; k++)
		if (s->kinds & BIT(k))
			json_object_set_new(o, kind_name(k),
					    json_integer((json_int_t)s->by_kind[k]));
	return o;
}

static int write_report(struct scan *s, const struct mon_in *in, const char *path)
{
	json_t *j = mon_in_report(in);
	if (!j) {
		llm_cli_error(s->c, "out of memory");
		return LLM_EXIT_IO;
	}
	json_object_set_new(j, "mode", json_string(s->tag ? "tag" : "findings"));
	if (s->tag)
		json_object_set_new(j, "written",
				    json_integer((json_int_t)(s->written + in->in.kept)));
	json_object_set_new(j, "findings", json_integer((json_int_t)s->findings));
	json_object_set_new(j, "records_flagged", json_integer((json_int_t)s->records_flagged));
	json_object_set_new(j, "by_kind", kind_counts(s));
	json_object_set_new(j, "truncated_texts", json_integer((json_int_t)s->truncated));
	if (s->abuse) {
		size_t keys, prompts, clusters;
		llm_abuse_counts(s->abuse, &keys, &prompts, &clusters);
		json_t *a = json_object();
		json_object_set_new(a, "keys", json_integer((json_int_t)keys));
		json_object_set_new(a, "prompts", json_integer((json_int_t)prompts));
		json_object_set_new(a, "clusters", json_integer((json_int_t)clusters));
		json_object_set_new(a, "memory_bytes",
				    json_integer((json_int_t)llm_abuse_memory(s->abuse)));
		json_object_set_new(j, "abuse", a);
	}
	struct llm_diag d;
	int st = 0;
	if (llm_cli_write_json(s->c, path, j, &d))
		st = llm_cli_fail(s->c, &d);
	json_decref(j);
	return st;
}

static void summary(const struct scan *s, const struct mon_in *in)
{
	fprintf(stderr, "%s: scan: %llu requests, %llu findings in %llu of them", s->c->tool->name,
		(unsigned long long)in->requests, (unsigned long long)s->findings,
		(unsigned long long)s->records_flagged);
	const char *sep = ": ";
	for (int k = 0; k < K_COUNT; k++)
		if (s->by_kind[k]) {
			fprintf(stderr, "%s%s %llu", sep, kind_name(k),
				(unsigned long long)s->by_kind[k]);
			sep = ", ";
		}
	fputc('\n', stderr);
}

/* Under --follow: how often stdout is flushed when no record comes, and the report rewritten
 * (every tenth tick). */
#define TICK_MS 1000

static int run_scan(struct llm_cli *c)
{
	struct scan s = {.c = c};
	int st = parse_kinds(c, "kinds", &s.kinds);
	if (!st)
		st = parse_kinds(c, "fail-on", &s.fail_on);
	if (st)
		return st;
	if (!s.kinds)
		return llm_cli_usage(c, "--kinds: name at least one kind");
	if (s.fail_on & ~s.kinds)
		return llm_cli_usage(c, "--fail-on: every kind must also be scanned for (--kinds)");
	s.min_score = llm_args_double(&c->args, "min-score");
	s.tag = llm_args_flag(&c->args, "tag");
	s.excerpts = llm_args_flag(&c->args, "excerpts");
	s.max_findings = (size_t)llm_args_int(&c->args, "max-findings");
	s.flags_field = llm_args_str(&c->args, "flags-field");
	llm_guard_config_init(&s.pii);
	struct llm_abuse_config ac;
	if ((st = abuse_config(c, &ac)))
		return st;
	ac.kinds = (s.kinds & M_ABUSE) >> K_ABUSE;
	struct llm_diag d;
	if (ac.kinds && llm_abuse_new(&s.abuse, &ac, &d))
		return d.code == LLM_ERR_USAGE ? llm_cli_usage(c, "%s", d.msg)
					       : llm_cli_fail(c, &d);
	const char *report = llm_args_str(&c->args, "report");
	bool follow = llm_args_flag(&c->args, "follow");
	llm_buf_init(&s.line, 0);
	llm_buf_init(&s.flags, 0);
	llm_buf_init(&s.merged, 0);

	struct mon_in in;
	if ((st = mon_in_open(c, &in, true, s.tag, follow ? TICK_MS : 0))) {
		mon_in_close(&in);
		goto out;
	}
	if (follow) {
		struct sigaction sa = {0};
		sa.sa_handler = on_stop;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	struct llm_mon_event *ev;
	int got = 0;
	unsigned ticks = 0;
	while (!stop_requested && (got = mon_in_next(c, &in, &ev)) > 0) {
		if (got == 2) {
			if (!llm_cli_flush(c)) {
				in.in.status = LLM_EXIT_IO;
				got = -1;
				break;
			}
			if (report && ++ticks % 10 == 0 &&
			    (in.in.status = write_report(&s, &in, report))) {
				got = -1;
				break;
			}
			continue;
		}
		if (ev->kind == LLM_MON_FEEDBACK) {
			if (s.tag && !llm_cli_emit(c, ev->rec, NULL, 0)) {
				in.in.status = LLM_EXIT_IO;
				got = -1;
				break;
			}
			s.written += s.tag;
			continue;
		}
		enum llm_err e = scan_event(&s, ev, &d);
		if (e) {
			in.in.status = llm_cli_fail(c, &d);
			got = -1;
			break;
		}
		bool ok = true;
		if (s.tag) {
			ok = emit_tagged(&s, ev);
			s.written++;
		} else {
			for (size_t i = 0; i < s.nf && ok; i++) {
				if (finding_line(&s, &s.f[i], ev)) {
					llm_cli_error(c, "out of memory");
					ok = false;
				} else {
					ok = llm_cli_write(c, s.line.data, s.line.len);
				}
			}
		}
		if (!ok) {
			in.in.status = LLM_EXIT_IO;
			got = -1;
			break;
		}
	}
	if (stop_requested)
		got = 0;
	st = got < 0 ? in.in.status : 0;
	if (!st) {
		if (!c->quiet)
			summary(&s, &in);
		if (report)
			st = write_report(&s, &in, report);
	}
	if (!st && s.failed)
		st = LLM_EXIT_NEGATIVE;
	mon_in_close(&in);
out:
	llm_abuse_free(s.abuse);
	free(s.f);
	llm_inject_matches_free(&s.im);
	llm_pii_matches_free(&s.pm);
	llm_buf_free(&s.line);
	llm_buf_free(&s.flags);
	llm_buf_free(&s.merged);
	return st;
}

static const struct llm_opt scan_opts[] = {
    {"kinds", 'k', LLM_OPT_STRING, "LIST", "what to look for: " KINDS_HELP, "all", .repeat = true},
    {"min-score", 0, LLM_OPT_DOUBLE, "X", "leave out findings scored below X", "0", .min = 0,
     .max = 1},
    {"tag", 0, LLM_OPT_FLAG, NULL,
     "pass every record through with its findings appended to its flags array, instead of "
     "writing findings"},
    {"excerpts", 0, LLM_OPT_FLAG, NULL,
     "add the text found (at most 200 bytes) to each finding: prompts are private, so off by "
     "default"},
    {"fail-on", 0, LLM_OPT_STRING, "LIST", "exit 1 when any finding is of these kinds",
     .repeat = true},
    {"max-findings", 0, LLM_OPT_INT, "N",
     "the most findings of each detector family kept per text (0: no limit)", "64", .min = 0,
     .max = 1000000},
    {"report", 0, LLM_OPT_STRING, "FILE",
     "write the counts by kind as JSON to FILE (under --follow, every 10 seconds too)"},
    {"rate-window", 0, LLM_OPT_STRING, "DURATION", "the window a key's request rate is counted in",
     "1m"},
    {"rate-baseline", 0, LLM_OPT_STRING, "DURATION",
     "the time constant of a key's baseline rate (an exponentially weighted mean)", "1h"},
    {"rate-factor", 0, LLM_OPT_DOUBLE, "X",
     "a key's requests in the window reaching X times its baseline are a spike", "5", .min = 1,
     .max = 1e6},
    {"rate-min", 0, LLM_OPT_INT, "N", "no fewer requests in the window are a relative spike", "30",
     .min = 1, .max = 1e9},
    {"max-rate", 0, LLM_OPT_DOUBLE, "R",
     "requests per second over the window that are a spike whatever the baseline (0: no limit)",
     "10", .min = 0, .max = 1e9},
    {"max-keys", 0, LLM_OPT_INT, "N", "the most keys followed at once (the least recent forgotten)",
     "10000", .min = 1, .max = 1 << 24},
    {"dup-window", 0, LLM_OPT_STRING, "DURATION",
     "the window near-identical prompts are counted in", "10m"},
    {"dup-threshold", 0, LLM_OPT_DOUBLE, "J",
     "the estimated Jaccard similarity of word pairs from which two prompts are near-identical",
     "0.7", .min = 0.05, .max = 1},
    {"dup-count", 0, LLM_OPT_INT, "N",
     "a cluster of N near-identical prompts in the window is flagged", "20", .min = 2, .max = 1e9},
    {"dup-min-words", 0, LLM_OPT_INT, "N", "shorter prompts are not compared", "5", .min = 1,
     .max = 1e6},
    {"dup-max-prompts", 0, LLM_OPT_INT, "N", "the most prompts held in the window", "10000",
     .min = 2, .max = 1 << 22},
    {"long-window", 0, LLM_OPT_STRING, "DURATION", "the window a key's long prompts are counted in",
     "5m"},
    {"long-percentile", 0, LLM_OPT_DOUBLE, "P",
     "a prompt longer than the P-th percentile of recent lengths is long (0: --long-min-chars "
     "alone)",
     "99", .min = 0, .max = 100},
    {"long-min-chars", 0, LLM_OPT_INT, "N", "a long prompt is always longer than N code points",
     "2000", .min = 0, .max = 1e12},
    {"long-count", 0, LLM_OPT_INT, "N", "N long prompts from one key in the window are a flood",
     "10", .min = 1, .max = 1e9},
    {"long-history", 0, LLM_OPT_INT, "N", "the recent prompts whose lengths make the percentile",
     "10000", .min = 1, .max = 1 << 24},
    {0},
};

const struct llm_verb llm_monitor_verb_scan = {
    "scan",
    "find injection, jailbreaks, PII, secrets, refusals and traffic abuse",
    "[OPTIONS] [FILE...]",
    "Runs the guard detectors over each request's prompt and answer (injection and jailbreak\n"
    "phrases, chat-template tokens, invisible characters, markdown-image exfiltration, PII,\n"
    "secrets, refusals) and the abuse detectors over the traffic (rate spikes per key, floods\n"
    "of near-identical prompts, floods of long prompts), and writes each finding as a JSONL\n"
    "record with its kind, field, byte span, score and request; or, with --tag, passes every\n"
    "record through with its findings added to its flags.",
    {scan_opts, mon_opts_follow, mon_opts_fields, llm_cli_opts_on_error, llm_cli_opts_input,
     llm_cli_opts_base},
    run_scan,
};
