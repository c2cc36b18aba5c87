/* llm-eval and models: perplexity by scoring each record's text through --model
 * (/v1/completions with echo, logprobs 1 and max_tokens 0: the log-probability of every token,
 * the way vLLM and the embedded engine answer it), and a judge that grades each record with a
 * rubric through --judge-model (/v1/chat/completions).  Records go out in input order: a
 * window of them is read and copied, their requests run together, then each is scored. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend/backend.h"
#include "backend/cache.h"
#include "backend/request.h"
#include "core/hash.h"
#include "eval/eval.h"
#include "metrics/match.h"
#include "text/template.h"

void model_extra_free(struct model_extra *x)
{
	free(x->judge_prompt);
	free(x->judge_answer);
	free(x->judge_reason);
	memset(x, 0, sizeof *x);
}

static const char *api_key(void)
{
	const char *k = getenv("LLMOPS_API_KEY");
	if (!k || !*k)
		k = getenv("OPENAI_API_KEY");
	return k && *k ? k : NULL;
}

static void cache_warn(struct eval *ev, const struct llm_diag *d);

static int open_one(struct eval *ev, const char *ref, const char *name, struct llm_backend **out,
		    struct llm_buf *id)
{
	struct llm_backend_opts o;
	llm_backend_opts_init(&o);
	o.ref = ref;
	o.model_name = name;
	o.api_key = api_key();
	o.concurrency = ev->concurrency;
	o.threads = (int)llm_args_int(&ev->c->args, "threads");
	o.seed = ev->seed;
	struct llm_diag d;
	if (llm_backend_open(out, &o, &d))
		return d.code == LLM_ERR_USAGE ? llm_cli_usage(ev->c, "%s", d.msg)
					       : llm_cli_fail(ev->c, &d);
	if (ev->cache && llm_cache_model_identity(ref, name, id, &d)) {
		if (d.code == LLM_ERR_NOMEM)
			return llm_cli_fail(ev->c, &d);
		cache_warn(ev, &d);
		llm_cache_close(ev->cache);
		ev->cache = NULL;
	}
	return 0;
}

/* The answer cache that llm-gen keeps too (backend/cache.h): a CI re-run pays only for new
 * requests.  --cache DIR must work; the default is a convenience a run goes on without. */
static int open_cache(struct eval *ev)
{
	struct llm_cli *c = ev->c;
	if (llm_args_flag(&c->args, "no-cache"))
		return 0;
	const char *dir = llm_args_str(&c->args, "cache");
	char *def = dir ? NULL : llm_cache_default_dir("eval");
	if (!dir && !def) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	struct llm_diag d;
	enum llm_err e = llm_cache_open(&ev->cache, dir ? dir : def, &d);
	free(def);
	if (e) {
		ev->cache = NULL;
		if (dir || e == LLM_ERR_NOMEM)
			return llm_cli_fail(c, &d);
		cache_warn(ev, &d);
	}
	return 0;
}

static enum llm_err file_digest(const char *path, char *hex, struct llm_diag *d)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot open: %s", strerror(errno));
	struct llm_sha256 h;
	enum llm_err e = llm_sha256_init(&h);
	char buf[1 << 14];
	size_t n;
	while (!e && (n = fread(buf, 1, sizeof buf, f)) > 0)
		e = llm_sha256_update(&h, buf, n);
	unsigned char md[LLM_SHA256_LEN];
	enum llm_err e2 = llm_sha256_final(&h, md);
	if (!e && (e2 || ferror(f)))
		e = e2 ? e2 : LLM_ERR_IO;
	fclose(f);
	if (e)
		return llm_diag_set(d, e, path, 0, "cannot read");
	llm_hex(md, 8, hex);
	return LLM_OK;
}

int eval_models_describe(struct eval *ev)
{
	struct llm_cli *c = ev->c;
	const char *ppl = llm_args_str(&c->args, "model");
	const char *judge = llm_args_str(&c->args, "judge-model");
	const char *rubric = llm_args_str(&c->args, "rubric");
	enum llm_err e = LLM_OK;
	if (ppl) {
		e = llm_buf_printf(&ev->ppl_desc, "model:%s", ppl);
		ev->mopts.ppl_desc = ev->ppl_desc.data;
	}
	if (!e && judge && rubric) {
		char hex[LLM_SHA256_HEX_LEN + 1];
		struct llm_diag d;
		if (file_digest(rubric, hex, &d))
			return llm_cli_fail(c, &d);
		e = llm_buf_printf(&ev->judge_desc, "model:%s|rubric:%s|scale:%s|pass:%g", judge,
				   hex, llm_args_str(&c->args, "judge-scale"), ev->judge_pass);
		ev->mopts.judge_desc = ev->judge_desc.data;
	}
	if (e) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	return 0;
}

int eval_models_open(struct eval *ev)
{
	struct llm_cli *c = ev->c;
	const char *ppl = llm_args_str(&c->args, "model");
	const char *judge = llm_args_str(&c->args, "judge-model");
	ev->rubric_path = llm_args_str(&c->args, "rubric");
	if (ppl && !(ev->needs & LLM_METRIC_NEEDS_LOGPROBS))
		return llm_cli_usage(c, "--model scores perplexity: add perplexity to --metrics");
	if (judge && !(ev->needs & LLM_METRIC_NEEDS_JUDGE))
		return llm_cli_usage(c, "--judge-model grades records: add judge to --metrics");
	if ((ev->needs & LLM_METRIC_NEEDS_JUDGE) && (!judge || !ev->rubric_path))
		return llm_cli_usage(c, "the judge metric needs --judge-model and --rubric");
	struct llm_diag d;
	if (ev->rubric_path && (ev->needs & LLM_METRIC_NEEDS_JUDGE) &&
	    llm_prompt_template_load(ev->rubric_path, &ev->rubric, &d))
		return d.code == LLM_ERR_USAGE ? llm_cli_usage(c, "%s", d.msg)
					       : llm_cli_fail(c, &d);
	int st = ppl || judge ? open_cache(ev) : 0;
	if (!st && ppl)
		st = open_one(ev, ppl, llm_args_str(&c->args, "model-name"), &ev->ppl_model,
			      &ev->ppl_id);
	if (!st && judge)
		st = open_one(ev, judge, llm_args_str(&c->args, "judge-model-name"),
			      &ev->judge_model, &ev->judge_id);
	return st;
}

void eval_models_close(struct eval *ev)
{
	llm_backend_close(ev->ppl_model);
	llm_backend_close(ev->judge_model);
	llm_prompt_template_free(ev->rubric);
	llm_cache_close(ev->cache);
	ev->cache = NULL;
	ev->ppl_model = ev->judge_model = NULL;
	ev->rubric = NULL;
}

/* --- the judge's answer ---------------------------------------------------------------------- */

static bool number_value(json_t *v, double *out)
{
	if (json_is_number(v)) {
		*out = json_number_value(v);
		return true;
	}
	if (json_is_string(v)) {
		char *end;
		*out = strtod(json_string_value(v), &end);
		return end != json_string_value(v) && !*end;
	}
	return false;
}

/* {"score": N, "reason": "..."} somewhere in the answer (fenced, bare, or among prose). */
static bool judge_json(const char *s, size_t n, double *score, char **reason)
{
	size_t start, len;
	llm_json_extract(s, n, &start, &len);
	json_t *o = json_loadb(s + start, len, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		const char *a = memchr(s, '{', n), *b = NULL;
		for (const char *p = s + n; p > s; p--)
			if (p[-1] == '}') {
				b = p;
				break;
			}
		if (!a || !b || b <= a)
			return false;
		o = json_loadb(a, (size_t)(b - a), 0, NULL);
	}
	bool ok = json_is_object(o);
	json_t *v = NULL;
	const char *keys[] = {"score", "rating", "grade"};
	for (size_t i = 0; ok && !v && i < 3; i++)
		v = json_object_get(o, keys[i]);
	ok = ok && v && number_value(v, score);
	const char *why[] = {"reason", "reasoning", "explanation", "rationale"};
	for (size_t i = 0; ok && i < 4; i++) {
		json_t *r = json_object_get(o, why[i]);
		if (json_is_string(r)) {
			*reason = strdup(json_string_value(r));
			break;
		}
	}
	json_decref(o);
	return ok;
}

/* A number at s (after optional "*", ":", "=", "is" and spaces); the end in *end. */
static bool number_after(const char *s, const char *lim, double *v, const char **end)
{
	while (s < lim && (*s == ' ' || *s == '*' || *s == ':' || *s == '=' || *s == '\t'))
		s++;
	if (lim - s > 3 && !strncasecmp(s, "is ", 3))
		s += 3;
	while (s < lim && *s == ' ')
		s++;
	if (s >= lim || !(isdigit((unsigned char)*s) || *s == '-' || *s == '+'))
		return false;
	char buf[64];
	size_t k = (size_t)(lim - s) < sizeof buf - 1 ? (size_t)(lim - s) : sizeof buf - 1;
	memcpy(buf, s, k);
	buf[k] = '\0';
	char *e;
	*v = strtod(buf, &e);
	if (e == buf)
		return false;
	*end = s + (e - buf);
	return true;
}

/* The last score the answer states: "[[N]]" (MT-bench), "score: N", "rating: N", "grade: N",
 * "N/MAX", "N out of MAX", or an answer that is only a number. */
static bool judge_text(const char *s, size_t n, double max, double *score)
{
	const char *lim = s + n, *end;
	bool found = false;
	double v;
	for (const char *p = s; p + 2 < lim; p++)
		if (p[0] == '[' && p[1] == '[' && number_after(p + 2, lim, &v, &end) &&
		    end + 1 < lim && end[0] == ']' && end[1] == ']') {
			*score = v;
			found = true;
		}
	if (found)
		return true;
	const char *words[] = {"score", "rating", "grade"};
	for (const char *p = s; p < lim; p++)
		for (size_t w = 0; w < 3; w++) {
			size_t k = strlen(words[w]);
			if ((size_t)(lim - p) > k && !strncasecmp(p, words[w], k) &&
			    number_after(p + k, lim, &v, &end)) {
				*score = v;
				found = true;
			}
		}
	if (found)
		return true;
	for (const char *p = s; p < lim; p++) {
		if (!isdigit((unsigned char)*p) ||
		    (p > s && (isdigit((unsigned char)p[-1]) || p[-1] == '.')))
			continue;
		if (!number_after(p, lim, &v, &end))
			continue;
		double m;
		const char *e2;
		while (end < lim && *end == ' ')
			end++;
		if (end < lim && *end == '/' && number_after(end + 1, lim, &m, &e2) && m == max) {
			*score = v;
			found = true;
		} else if ((size_t)(lim - end) > 7 && !strncasecmp(end, "out of ", 7) &&
			   number_after(end + 7, lim, &m, &e2) && m == max) {
			*score = v;
			found = true;
		}
	}
	if (found)
		return true;
	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return n && number_after(s, s + n, score, &end) && end == s + n;
}

static char *trimmed(const char *s, size_t n)
{
	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return strndup(s, n);
}

/* --- the window of records in flight ------------------------------------------------------- */

enum { PPL = 0, JUDGE = 1 };

struct item {
	struct llm_record rec; /* a copy that outlives the reader's buffer */
	char *text;
	struct model_extra x;
	bool bad;
	struct llm_diag why;
	/* per model: the cache key and canonical request of a deterministic request */
	char *canon[2];
	char key[2][LLM_CACHE_KEY_LEN + 1];
};

static void item_free(struct item *it)
{
	free(it->text);
	free(it->canon[PPL]);
	free(it->canon[JUDGE]);
	llm_json_members_free(&it->rec.fields);
	model_extra_free(&it->x);
	memset(it, 0, sizeof *it);
}

static enum llm_err item_copy(struct item *it, const struct llm_record *rec)
{
	memset(it, 0, sizeof *it);
	if (!(it->text = malloc(rec->len + 1)))
		return LLM_ERR_NOMEM;
	memcpy(it->text, rec->text, rec->len);
	it->text[rec->len] = '\0';
	it->rec = *rec;
	it->rec.text = it->text;
	memset(&it->rec.fields, 0, sizeof it->rec.fields);
	struct llm_json_fault f;
	return llm_json_scan(it->text, rec->len, &it->rec.fields, &f);
}

/* Mark the item bad, once: "A: B" (or "AB" when a ends in a space). */
static void item_fail(struct item *it, enum llm_err code, const char *a, const char *b)
{
	if (it->bad)
		return;
	it->bad = true;
	size_t k = strlen(a);
	bool sep = k && a[k - 1] != ' ' && *b;
	llm_diag_set(&it->why, code, it->rec.file, it->rec.line, "%s%s%s", a, sep ? ": " : "", b);
}

/* The request of one record to --model (prompt scoring), or NULL with the item marked bad. */
static json_t *ppl_request(struct eval *ev, struct item *it)
{
	const char *field =
	    llm_json_get(&it->rec.fields, ev->text_field) ? ev->text_field : ev->output_field;
	if (llm_record_string(&it->rec, field, &ev->scratch, &it->why)) {
		it->bad = true;
		return NULL;
	}
	it->x.bytes = (double)ev->scratch.len;
	struct llm_sampling sm;
	llm_sampling_init(&sm);
	sm.max_tokens = 0;
	sm.temperature = 0;
	sm.logprobs = 1;
	json_t *params = json_pack("{s:b}", "echo", 1);
	sm.params = params;
	json_t *body = NULL;
	struct llm_diag d;
	if (!params || llm_request_completion(&sm, ev->scratch.data, ev->scratch.len, &body, &d))
		item_fail(it, LLM_ERR_NOMEM, "out of memory", "");
	json_decref(params);
	return body;
}

/* The judge's request: the rubric rendered with the record's fields, as the user's turn. */
static json_t *judge_request(struct eval *ev, struct item *it)
{
	struct llm_diag d;
	llm_buf_clear(&ev->scratch);
	if (llm_prompt_template_render(ev->rubric, &it->rec.fields, &ev->scratch, &d)) {
		char where[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32];
		llm_diag_format(&d, where, sizeof where);
		item_fail(it, d.code, "rubric", where);
		return NULL;
	}
	if (!(it->x.judge_prompt = strndup(ev->scratch.data, ev->scratch.len))) {
		item_fail(it, LLM_ERR_NOMEM, "out of memory", "");
		return NULL;
	}
	struct llm_sampling sm;
	llm_sampling_init(&sm);
	sm.max_tokens = ev->judge_max_tokens;
	sm.temperature = 0;
	json_t *body = NULL;
	if (llm_request_chat_prompt(&sm, ev->scratch.data, ev->scratch.len, &body, &d))
		item_fail(it, LLM_ERR_NOMEM, "out of memory", "");
	return body;
}

/* Sum the token log-probabilities of a completions choice: {"token_logprobs": [...]}, the first
 * (which has no context) null. */
static bool prompt_logprobs(json_t *lp, double *nll, double *tokens)
{
	json_t *tl = json_object_get(lp, "token_logprobs");
	if (!json_is_array(tl))
		return false;
	size_t i;
	json_t *v;
	json_array_foreach(tl, i, v)
	{
		if (json_is_null(v))
			continue;
		if (!json_is_number(v))
			return false;
		*nll -= json_number_value(v);
		*tokens += 1;
	}
	return true;
}

/* A model's answer (from the server or the cache) into the item; false when it is not one. */
static bool answer(struct eval *ev, struct item *it, int which, const char *body, size_t len)
{
	struct llm_response r;
	struct llm_diag d;
	const char *who = which == PPL ? "--model" : "--judge-model";
	if (llm_response_parse(body, len, &r, &d)) {
		item_fail(it, d.code == LLM_ERR_NOMEM ? d.code : LLM_ERR_REMOTE, who, d.msg);
		return false;
	}
	bool ok = true;
	if (which == PPL) {
		double nll = 0, tokens = 0;
		if (!prompt_logprobs(json_array_get(r.logprobs, 0), &nll, &tokens)) {
			item_fail(it, LLM_ERR_REMOTE, "--model",
				  "the answer has no token_logprobs (does the server score "
				  "prompts: echo with logprobs?)");
			ok = false;
		} else {
			it->x.ppl = true;
			it->x.nll = nll;
			it->x.tokens = tokens;
		}
		llm_response_free(&r);
		return ok;
	}
	json_t *content = json_array_get(r.outputs, 0);
	if (!json_is_string(content)) {
		llm_response_free(&r);
		item_fail(it, LLM_ERR_REMOTE, "--judge-model", "the answer has no text");
		return false;
	}
	const char *s = json_string_value(content);
	size_t n = json_string_length(content);
	it->x.judge_answer = strndup(s, n);
	double score = NAN;
	char *reason = NULL;
	bool found = judge_json(s, n, &score, &reason) || judge_text(s, n, ev->judge_max, &score);
	it->x.judge_reason = reason ? reason : trimmed(s, n);
	llm_response_free(&r);
	if (!it->x.judge_answer || !it->x.judge_reason) {
		item_fail(it, LLM_ERR_NOMEM, "out of memory", "");
		return false;
	}
	if (!found) {
		/* The model answered; its answer is what is wrong with this record. */
		item_fail(it, LLM_ERR_CHECK, "the judge's answer states no score",
			  it->x.judge_reason);
		return true;
	}
	if (!(score >= ev->judge_min && score <= ev->judge_max)) {
		char msg[128];
		snprintf(msg, sizeof msg, "the judge's score %g is outside the scale %s", score,
			 llm_args_str(&ev->c->args, "judge-scale"));
		item_fail(it, LLM_ERR_RANGE, msg, "");
		return true;
	}
	it->x.judged = true;
	it->x.judge_score = score;
	it->x.judge_pass = score >= ev->judge_pass;
	return true;
}

static void cache_warn(struct eval *ev, const struct llm_diag *d)
{
	if (ev->cache_warned || ev->c->quiet)
		return;
	char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32];
	llm_diag_format(d, msg, sizeof msg);
	llm_cli_error(ev->c, "cache: %s (going on without it)", msg);
	ev->cache_warned = true;
}

/* Send an item's request, or answer it from the cache. */
static void ask(struct eval *ev, struct item *it, size_t idx, int which)
{
	struct llm_backend *b = which == PPL ? ev->ppl_model : ev->judge_model;
	json_t *body = which == PPL ? ppl_request(ev, it) : judge_request(ev, it);
	if (!body)
		return;
	enum llm_endpoint ep = which == PPL ? LLM_EP_COMPLETIONS : LLM_EP_CHAT;
	const char *id = which == PPL ? ev->ppl_id.data : ev->judge_id.data;
	if (ev->cache && llm_request_deterministic(body)) {
		it->canon[which] = llm_request_canonical(body);
		if (it->canon[which] && !llm_cache_key(id, ep, it->canon[which], it->key[which])) {
			struct llm_cache_hit hit;
			if (llm_cache_get(ev->cache, it->key[which], &hit)) {
				bool ok = answer(ev, it, which, hit.response, hit.len);
				llm_cache_hit_clear(&hit);
				if (ok) {
					ev->cached++;
					free(it->canon[which]);
					it->canon[which] = NULL;
					json_decref(body);
					return;
				}
				/* Not an answer: ask again, and overwrite the entry. */
				if (it->why.code == LLM_ERR_NOMEM) {
					json_decref(body);
					return;
				}
				it->bad = false;
			}
		}
	}
	char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(body);
	struct llm_diag d;
	if (!text)
		item_fail(it, LLM_ERR_NOMEM, "out of memory", "");
	else if (llm_backend_submit(b, idx * 2 + (size_t)which, ep, text, strlen(text), &d))
		item_fail(it, d.code, which == PPL ? "--model" : "--judge-model", d.msg);
	free(text);
}

/* Run every request queued on b and hand each result to its item. */
static int drain(struct eval *ev, struct llm_backend *b, struct item *items)
{
	while (b && llm_backend_pending(b)) {
		struct llm_result r = {0};
		struct llm_diag d;
		int k = llm_backend_next(b, &r, &d);
		if (k < 0)
			return llm_cli_fail(ev->c, &d);
		if (k == 0)
			break;
		struct item *it = &items[r.tag / 2];
		int which = (int)(r.tag % 2);
		const char *who = which == PPL ? "--model" : "--judge-model";
		if (r.err) {
			char msg[LLM_DIAG_MSG_MAX];
			snprintf(msg, sizeof msg, "%s",
				 r.error_message ? r.error_message : r.error_code);
			item_fail(it, r.err, who, msg);
		} else if (answer(ev, it, which, r.body, r.body_len) && it->canon[which]) {
			const char *id = which == PPL ? ev->ppl_id.data : ev->judge_id.data;
			if (llm_cache_put(ev->cache, it->key[which], id,
					  which == PPL ? LLM_EP_COMPLETIONS : LLM_EP_CHAT,
					  it->canon[which], r.body, r.body_len, r.latency_ms,
					  r.ttft_ms, &d))
				cache_warn(ev, &d);
		}
		llm_result_clear(&r);
	}
	return 0;
}

int eval_with_models(struct eval *ev, struct llm_cli_in *in)
{
	struct llm_cli *c = ev->c;
	size_t window = (size_t)ev->concurrency * 4;
	if (window < 16)
		window = 16;
	struct item *items = calloc(window, sizeof *items);
	if (!items) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	int st = 0;
	bool eof = false;
	while (!eof && !st) {
		size_t n = 0;
		struct llm_record *rec;
		while (n < window) {
			int r = llm_cli_in_next(c, in, &rec);
			if (r < 0) {
				st = in->status;
				break;
			}
			if (r == 0) {
				eof = true;
				break;
			}
			struct item *it = &items[n++];
			if (item_copy(it, rec)) {
				llm_cli_error(c, "out of memory");
				st = LLM_EXIT_IO;
				break;
			}
			if (ev->ppl_model)
				ask(ev, it, n - 1, PPL);
			if (ev->judge_model && !it->bad)
				ask(ev, it, n - 1, JUDGE);
		}
		if (!st)
			st = drain(ev, ev->ppl_model, items);
		if (!st)
			st = drain(ev, ev->judge_model, items);
		for (size_t i = 0; i < n && !st; i++) {
			struct item *it = &items[i];
			if (!it->bad) {
				if (eval_record(ev, in, &it->rec, &it->x) < 0)
					st = in->status;
				continue;
			}
			if (it->why.code == LLM_ERR_NOMEM) {
				llm_cli_error(c, "out of memory");
				st = LLM_EXIT_IO;
				break;
			}
			/* A model that failed (after its retries) is an I/O failure, not a bad
			 * record, when the run stops for it. */
			bool remote = llm_err_exit_status(it->why.code) == LLM_EXIT_IO;
			ev->model_failed += remote;
			if (!llm_cli_in_reject(c, in, &it->rec, &it->why))
				st = remote ? LLM_EXIT_IO : in->status;
		}
		for (size_t i = 0; i < n; i++)
			item_free(&items[i]);
	}
	free(items);
	return st;
}
