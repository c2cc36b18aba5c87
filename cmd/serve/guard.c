/* llm-serve's guard: --guard-input checks the prompts of /v1/chat/completions and
 * /v1/completions for prompt-injection and jailbreak phrases, chat-template tokens, invisible
 * characters and markdown-image exfiltration (lib/guard/inject.h); --guard-output checks the
 * answers for PII and secrets (lib/guard/pii.h), refusals and exfiltrating images.
 *
 *   flag    each finding goes into the request's log line as a flag {kind, type, field,
 *           span, score}; the request goes on unchanged.
 *   redact  as flag, and the text changes: a prompt loses its invisible characters and has its
 *           template tokens neutralised before the model sees it; an answer has its PII and
 *           secrets replaced by placeholders, as llm-prep redact does.  Injection phrases and
 *           refusals are only flagged: there is no safe rewording of them.
 *   refuse  (prompts) a finding scored 0.5 or more answers 400 guard_refused, naming the kinds
 *           and where they were, never the text; weaker findings are flagged.
 *
 * Spans are byte offsets into the text as it arrived (the prompt as the client sent it, the
 * answer as the model wrote it).  A chat request's system and developer messages are the
 * operator's own and are not checked; every other message is (user text, tool results and
 * earlier assistant turns a client may have forged).  A streamed answer has left before it is
 * complete: it is checked at its end, flagged, and redacted in the log only.
 *
 * local.c (and gateway.c) call in at a few places marked "guard.c"; everything else is here. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "guard/inject.h"
#include "guard/pii.h"
#include "serve/serve.h"

const struct llm_opt serve_guard_opts[] = {
    {"guard-input", 0, LLM_OPT_CHOICE, "MODE",
     "check prompts for injection phrases, chat-template tokens and invisible characters: none, "
     "flag (in the log), redact (remove invisibles, neutralise tokens) or refuse (400)",
     "none", "none|flag|redact|refuse"},
    {"guard-output", 0, LLM_OPT_CHOICE, "MODE",
     "check answers for PII, secrets, refusals and image exfiltration: none, flag (in the log) "
     "or redact (PII and secrets replaced by placeholders)",
     "none", "none|flag|redact"},
    {0},
};

enum guard_mode { GUARD_NONE, GUARD_FLAG, GUARD_REDACT, GUARD_REFUSE };

struct serve_guard_config {
	enum guard_mode in, out;
	struct llm_guard_config pii;
};

/* The flags one request's log line keeps; past them the rest are counted in nothing but the
 * decision (refuse still sees every finding). */
#define GUARD_FLAGS_MAX 64
#define GUARD_FIELD_MAX 80
/* A finding this sure refuses a request under --guard-input refuse. */
#define REFUSE_SCORE 0.5

struct serve_guard {
	struct llm_reqlog_flag flag[GUARD_FLAGS_MAX];
	char field[GUARD_FLAGS_MAX][GUARD_FIELD_MAX];
	size_t n;
};

static enum guard_mode mode_of(const char *s)
{
	return !strcmp(s, "flag")     ? GUARD_FLAG
	       : !strcmp(s, "redact") ? GUARD_REDACT
	       : !strcmp(s, "refuse") ? GUARD_REFUSE
				      : GUARD_NONE;
}

int serve_guard_setup(struct serve *S)
{
	struct llm_cli *c = S->c;
	enum guard_mode in = mode_of(llm_args_str(&c->args, "guard-input"));
	enum guard_mode out = mode_of(llm_args_str(&c->args, "guard-output"));
	if (in == GUARD_NONE && out == GUARD_NONE)
		return 0;
	struct serve_guard_config *g = calloc(1, sizeof *g);
	if (!g) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	g->in = in;
	g->out = out;
	llm_guard_config_init(&g->pii);
	S->guard = g;
	/* Compile the patterns now: a failure shows at start, not on the first request. */
	struct llm_inject_matches ms = {0};
	struct llm_diag d;
	enum llm_err e = llm_inject_scan("", 0, 0, 1, &ms, &d);
	llm_inject_matches_free(&ms);
	return e ? llm_cli_fail(c, &d) : 0;
}

void serve_guard_stop(struct serve *S)
{
	free(S->guard);
	S->guard = NULL;
}

void serve_guard_free(struct serve_guard *g)
{
	free(g);
}

void serve_guard_log(struct serve_guard *g, struct llm_reqlog_record *rec)
{
	if (!g || !g->n)
		return;
	for (size_t i = 0; i < g->n; i++)
		g->flag[i].field = g->field[i];
	rec->flags = g->flag;
	rec->nflags = g->n;
}

/* Add a flag; false only when out of memory. */
static bool flag(struct serve_guard **gp, const char *kind, const char *type, const char *field,
		 size_t start, size_t end, double score)
{
	if (!*gp && !(*gp = calloc(1, sizeof **gp)))
		return false;
	struct serve_guard *g = *gp;
	if (g->n == GUARD_FLAGS_MAX)
		return true;
	g->flag[g->n] = (struct llm_reqlog_flag){kind, type, NULL, start, end, score};
	snprintf(g->field[g->n], GUARD_FIELD_MAX, "%s", field);
	g->n++;
	return true;
}

/* --- the texts of a request and of an answer ------------------------------------------------ */

/* A string of the body that is checked: where it is (for flags), and its node (to redact). */
typedef bool (*text_fn)(void *ctx, json_t *str, const char *field);

/* The prompt texts: "prompt" (a string, or each string of a list; token ids are not text), or
 * each checked message's content (a string, or the text of each text part). */
static bool each_prompt_text(json_t *body, bool chat, text_fn fn, void *ctx)
{
	char field[GUARD_FIELD_MAX];
	if (!chat) {
		json_t *p = json_object_get(body, "prompt");
		if (json_is_string(p))
			return fn(ctx, p, "prompt");
		for (size_t i = 0; i < json_array_size(p); i++) {
			json_t *s = json_array_get(p, i);
			snprintf(field, sizeof field, "prompt[%zu]", i);
			if (json_is_string(s) && !fn(ctx, s, field))
				return false;
		}
		return true;
	}
	json_t *msgs = json_object_get(body, "messages");
	for (size_t i = 0; i < json_array_size(msgs); i++) {
		json_t *m = json_array_get(msgs, i);
		const char *role = json_string_value(json_object_get(m, "role"));
		if (role && (!strcmp(role, "system") || !strcmp(role, "developer")))
			continue;
		json_t *content = json_object_get(m, "content");
		if (json_is_string(content)) {
			snprintf(field, sizeof field, "messages[%zu].content", i);
			if (!fn(ctx, content, field))
				return false;
			continue;
		}
		for (size_t k = 0; k < json_array_size(content); k++) {
			json_t *part = json_array_get(content, k);
			json_t *text = json_object_get(part, "text");
			snprintf(field, sizeof field, "messages[%zu].content[%zu].text", i, k);
			if (json_is_string(text) && !fn(ctx, text, field))
				return false;
		}
	}
	return true;
}

/* --- prompts -------------------------------------------------------------------------------- */

/* Append item to the comma-separated list in buf, unless it is there or does not fit. */
static void list_add(char *buf, size_t cap, const char *item)
{
	size_t n = strlen(buf), k = strlen(item);
	for (const char *p = buf; (p = strstr(p, item)); p += k)
		if ((p == buf || p[-1] == ' ') && (p[k] == ',' || !p[k]))
			return;
	if (n + k + 3 > cap)
		return;
	snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", item);
}

struct input_scan {
	const struct serve_guard_config *cfg;
	struct serve_guard **g;
	struct llm_inject_matches ms;
	struct llm_buf clean;
	unsigned refused; /* kinds that refuse (a bit mask) */
	char where[256];  /* the fields they were found in, comma-separated */
	bool changed;	  /* redact rewrote a text */
	enum llm_err err;
};

static bool input_text(void *ctx, json_t *str, const char *field)
{
	struct input_scan *in = ctx;
	const char *s = json_string_value(str);
	size_t n = json_string_length(str);
	struct llm_diag d;
	if ((in->err = llm_inject_scan(s, n, LLM_INJECT_INPUT, GUARD_FLAGS_MAX, &in->ms, &d)))
		return false;
	unsigned sanitize = 0;
	bool refuses = false;
	for (size_t i = 0; i < in->ms.n; i++) {
		const struct llm_inject_match *m = &in->ms.m[i];
		if (!flag(in->g, llm_inject_kind_name(m->kind), m->detector, field, m->start,
			  m->end, m->score)) {
			in->err = LLM_ERR_NOMEM;
			return false;
		}
		if (m->score >= REFUSE_SCORE) {
			in->refused |= 1u << m->kind;
			refuses = true;
		}
		if (m->kind == LLM_INJECT_INVISIBLE || m->kind == LLM_INJECT_TEMPLATE_TOKEN)
			sanitize |= 1u << m->kind;
	}
	if (refuses)
		list_add(in->where, sizeof in->where, field);
	if (in->cfg->in == GUARD_REDACT && sanitize) {
		llm_buf_clear(&in->clean);
		if ((in->err = llm_inject_sanitize(s, n, sanitize, &in->clean, NULL, &d)))
			return false;
		if (json_string_setn(str, in->clean.data ? in->clean.data : "", in->clean.len)) {
			in->err = LLM_ERR_NOMEM;
			return false;
		}
		in->changed = true;
	}
	return true;
}

/* Answer 400 guard_refused and write the log line, flags and all. */
static void refuse(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
		   struct serve_guard *g, unsigned kinds, const char *where)
{
	char names[256] = "";
	for (int k = 0; k < LLM_INJECT__COUNT; k++)
		if (kinds & (1u << k))
			list_add(names, sizeof names,
				 llm_inject_kind_name((enum llm_inject_kind)k));
	char msg[600];
	snprintf(msg, sizeof msg,
		 "The request was refused by this server's input guard: %s found in %s.", names,
		 where);
	llm_httpd_add_header(r, "x-request-id", who->request_id);
	llm_httpd_error(r, 400, "invalid_request_error", "guard_refused", "%s", msg);
	struct llm_reqlog_record rec;
	serve_record_init(S, r, who, 400, &rec);
	rec.error_code = "guard_refused";
	rec.error_message = msg;
	serve_guard_log(g, &rec);
	serve_record(S, &rec);
}

static bool check_input(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
			json_t *body, bool chat, struct serve_guard **g, bool *changed)
{
	struct input_scan in = {.cfg = S->guard, .g = g};
	llm_buf_init(&in.clean, 0);
	each_prompt_text(body, chat, input_text, &in);
	llm_inject_matches_free(&in.ms);
	llm_buf_free(&in.clean);
	if (in.err) {
		serve_fail(S, r, who, 500, "server_error", NULL, "the input guard failed: %s",
			   in.err == LLM_ERR_NOMEM ? "out of memory" : llm_err_name(in.err));
		return false;
	}
	if (S->guard->in == GUARD_REFUSE && in.refused) {
		refuse(S, r, who, *g, in.refused, in.where);
		return false;
	}
	*changed = in.changed;
	return true;
}

bool serve_guard_input(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
		       json_t *body, bool chat, struct serve_guard **g)
{
	bool changed;
	if (!S->guard || S->guard->in == GUARD_NONE || !body)
		return true;
	return check_input(S, r, who, body, chat, g, &changed);
}

bool serve_guard_body(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
		      bool chat, const char **body, size_t *len, struct serve_guard **g,
		      char **owned)
{
	*owned = NULL;
	if (!S->guard || S->guard->in == GUARD_NONE)
		return true;
	/* The proxy reports a body that is not a JSON object: leave it to say so. */
	json_t *o = json_loadb(*body, *len, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return true;
	}
	/* Forward the bytes as they came unless a text changed (a dump would respell numbers). */
	bool changed = false;
	bool ok = check_input(S, r, who, o, chat, g, &changed);
	if (ok && changed) {
		*owned = json_dumps(o, JSON_COMPACT);
		if (*owned) {
			*body = *owned;
			*len = strlen(*owned);
		} else {
			/* Never forward the unredacted prompt instead. */
			serve_fail(S, r, who, 500, "server_error", NULL, "out of memory");
			ok = false;
		}
	}
	json_decref(o);
	return ok;
}

/* --- answers -------------------------------------------------------------------------------- */

/* Flag the findings in s[0, n) under field; with redact, put the text with PII and secrets
 * replaced into red (and return whether anything was replaced). */
static bool output_text(const struct serve_guard_config *cfg, struct serve_guard **g, const char *s,
			size_t n, const char *field, bool want_flags, struct llm_buf *red)
{
	struct llm_pii_matches pm = {0};
	struct llm_inject_matches im = {0};
	struct llm_diag d;
	bool replaced = false;
	if (llm_guard_scan(s, n, &cfg->pii, &pm, &d) == LLM_OK && want_flags)
		for (size_t i = 0; i < pm.n; i++)
			flag(g, "pii", llm_pii_type_name(pm.m[i].type), field, pm.m[i].start,
			     pm.m[i].end, pm.m[i].score);
	if (want_flags &&
	    llm_inject_scan(s, n, LLM_INJECT_OUTPUT, GUARD_FLAGS_MAX, &im, &d) == LLM_OK)
		for (size_t i = 0; i < im.n; i++)
			flag(g, llm_inject_kind_name(im.m[i].kind), im.m[i].detector, field,
			     im.m[i].start, im.m[i].end, im.m[i].score);
	if (red && pm.n) {
		size_t pos = 0;
		enum llm_err e = LLM_OK;
		llm_buf_clear(red);
		for (size_t i = 0; i < pm.n && !e; i++) {
			e = llm_buf_append(red, s + pos, pm.m[i].start - pos);
			if (!e)
				e = llm_buf_puts(red, llm_pii_placeholder(pm.m[i].type));
			pos = pm.m[i].end;
		}
		if (!e)
			e = llm_buf_append(red, s + pos, n - pos);
		replaced = !e;
	}
	llm_pii_matches_free(&pm);
	llm_inject_matches_free(&im);
	return replaced;
}

/* The text node of choice i of an answer. */
static json_t *choice_text(json_t *root, size_t i, bool chat)
{
	json_t *c = json_array_get(json_object_get(root, "choices"), i);
	return chat ? json_object_get(json_object_get(c, "message"), "content")
		    : json_object_get(c, "text");
}

void serve_guard_output(struct serve *S, struct serve_guard **g, json_t *root, bool chat,
			struct llm_buf *logged)
{
	const struct serve_guard_config *cfg = S->guard;
	if (!cfg || cfg->out == GUARD_NONE)
		return;
	bool redact = cfg->out == GUARD_REDACT;
	struct llm_buf red;
	llm_buf_init(&red, 0);
	/* What the client gets: every choice of a whole answer. */
	size_t nc = root ? json_array_size(json_object_get(root, "choices")) : 0;
	for (size_t i = 0; i < nc; i++) {
		json_t *t = choice_text(root, i, chat);
		if (!json_is_string(t))
			continue;
		char field[GUARD_FIELD_MAX];
		if (i)
			snprintf(field, sizeof field, "output[%zu]", i);
		else
			snprintf(field, sizeof field, "output");
		if (output_text(cfg, g, json_string_value(t), json_string_length(t), field, true,
				redact ? &red : NULL))
			json_string_setn(t, red.data ? red.data : "", red.len);
	}
	/* What the log keeps (the first choice): flagged here when there was no whole answer to
	 * look at (a stream), and redacted whenever the answers are, so the log holds no more
	 * than the client got, or less. */
	if (logged && logged->len && (!nc || redact) &&
	    output_text(cfg, g, logged->data, logged->len, "output", !nc, redact ? &red : NULL)) {
		size_t keep = red.len;
		if (logged->max && keep > logged->max)
			keep = llm_utf8_valid_prefix(red.data, logged->max);
		llm_buf_clear(logged);
		llm_buf_append(logged, red.data, keep);
	}
	llm_buf_free(&red);
}

void serve_guard_output_text(struct serve *S, struct serve_guard **g, const char *text, size_t len)
{
	const struct serve_guard_config *cfg = S->guard;
	if (!cfg || cfg->out == GUARD_NONE || !text || !len)
		return;
	output_text(cfg, g, text, len, "output", true, NULL);
}
