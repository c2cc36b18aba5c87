#include "config.h"

#include "backend/request.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void llm_sampling_init(struct llm_sampling *s)
{
	memset(s, 0, sizeof *s);
	s->max_tokens = -1;
	s->temperature = s->top_p = s->min_p = NAN;
	s->frequency_penalty = s->presence_penalty = s->repetition_penalty = NAN;
	s->top_k = -1;
	s->n = 0;
	s->logprobs = -1;
}

static int set_real(json_t *o, const char *k, double v)
{
	return isnan(v) ? 0 : json_object_set_new(o, k, json_real(v));
}

static int set_int(json_t *o, const char *k, int64_t v)
{
	return json_object_set_new(o, k, json_integer((json_int_t)v));
}

/* The sampling members, then --params over them. */
static enum llm_err fill(const struct llm_sampling *s, enum llm_endpoint ep, json_t *o,
			 struct llm_diag *d)
{
	int bad = 0;
	if (s->model)
		bad |= json_object_set_new(o, "model", json_string(s->model));
	if (s->max_tokens >= 0)
		bad |= set_int(o, "max_tokens", s->max_tokens);
	bad |= set_real(o, "temperature", s->temperature);
	bad |= set_real(o, "top_p", s->top_p);
	if (s->top_k >= 0)
		bad |= set_int(o, "top_k", s->top_k);
	bad |= set_real(o, "min_p", s->min_p);
	bad |= set_real(o, "frequency_penalty", s->frequency_penalty);
	bad |= set_real(o, "presence_penalty", s->presence_penalty);
	bad |= set_real(o, "repetition_penalty", s->repetition_penalty);
	if (s->has_seed)
		bad |= set_int(o, "seed", s->seed);
	if (s->nstop) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < s->nstop; i++)
			bad |= json_array_append_new(a, json_string(s->stop[i]));
		bad |= json_object_set_new(o, "stop", a);
	}
	if (s->n >= 1)
		bad |= set_int(o, "n", s->n);
	if (s->logprobs >= 0) {
		if (ep == LLM_EP_CHAT) {
			bad |= json_object_set_new(o, "logprobs", json_true());
			bad |= set_int(o, "top_logprobs", s->logprobs);
		} else {
			bad |= set_int(o, "logprobs", s->logprobs);
		}
	}
	if (s->params && json_object_update(o, (json_t *)s->params))
		bad = 1;
	if (bad)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	return LLM_OK;
}

enum llm_err llm_request_chat(const struct llm_sampling *s, const json_t *messages, json_t **body,
			      struct llm_diag *diag)
{
	*body = NULL;
	if (!json_is_array(messages))
		return llm_diag_set(diag, LLM_ERR_TYPE, NULL, 0, "the messages are not an array");
	if (!json_array_size(messages))
		return llm_diag_set(diag, LLM_ERR_MISSING, NULL, 0, "the messages are empty");
	bool has_system = false;
	for (size_t i = 0; i < json_array_size(messages); i++) {
		json_t *m = json_array_get(messages, i);
		json_t *role = json_object_get(m, "role");
		if (!json_is_object(m) || !json_is_string(role))
			return llm_diag_set(diag, LLM_ERR_TYPE, NULL, 0,
					    "message %zu is not an object with a \"role\" string",
					    i + 1);
		if (!strcmp(json_string_value(role), "system") ||
		    !strcmp(json_string_value(role), "developer"))
			has_system = true;
	}
	json_t *o = json_object();
	json_t *msgs = json_deep_copy(messages);
	if (msgs && s->system && !has_system &&
	    json_array_insert_new(msgs, 0,
				  json_pack("{s:s,s:s}", "role", "system", "content", s->system))) {
		json_decref(msgs);
		msgs = NULL;
	}
	if (!o || !msgs || json_object_set_new(o, "messages", msgs)) {
		json_decref(o);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	enum llm_err e = fill(s, LLM_EP_CHAT, o, diag);
	if (e) {
		json_decref(o);
		return e;
	}
	*body = o;
	return LLM_OK;
}

enum llm_err llm_request_chat_prompt(const struct llm_sampling *s, const char *prompt, size_t len,
				     json_t **body, struct llm_diag *diag)
{
	json_t *msgs = json_pack("[{s:s,s:s%}]", "role", "user", "content", prompt, len);
	if (!msgs) {
		*body = NULL;
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	enum llm_err e = llm_request_chat(s, msgs, body, diag);
	json_decref(msgs);
	return e;
}

enum llm_err llm_request_completion(const struct llm_sampling *s, const char *prompt, size_t len,
				    json_t **body, struct llm_diag *diag)
{
	json_t *o = json_pack("{s:s%}", "prompt", prompt, len);
	*body = NULL;
	if (!o)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	enum llm_err e = fill(s, LLM_EP_COMPLETIONS, o, diag);
	if (e) {
		json_decref(o);
		return e;
	}
	*body = o;
	return LLM_OK;
}

bool llm_request_deterministic(const json_t *body)
{
	json_t *seed = json_object_get(body, "seed");
	if (seed && !json_is_null(seed))
		return true;
	json_t *t = json_object_get(body, "temperature");
	return json_is_number(t) && json_number_value(t) == 0.0;
}

char *llm_request_canonical(const json_t *body)
{
	return json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
}

void llm_response_free(struct llm_response *r)
{
	json_decref(r->root);
	json_decref(r->outputs);
	json_decref(r->finish_reasons);
	json_decref(r->logprobs);
	json_decref(r->usage);
	memset(r, 0, sizeof *r);
}

static int cmp_index(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "index"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "index"));
	return (x > y) - (x < y);
}

enum llm_err llm_response_parse(const char *body, size_t len, struct llm_response *r,
				struct llm_diag *diag)
{
	memset(r, 0, sizeof *r);
	json_error_t je;
	json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, &je);
	if (!json_is_object(root)) {
		json_decref(root);
		return llm_diag_set(diag, LLM_ERR_FORMAT, NULL, 0,
				    "the response is not a JSON object");
	}
	json_t *err = json_object_get(root, "error");
	if (json_is_object(err) || json_is_string(err)) {
		json_t *msg = json_is_string(err) ? err : json_object_get(err, "message");
		llm_diag_set(diag, LLM_ERR_REMOTE, NULL, 0, "%s",
			     json_is_string(msg) ? json_string_value(msg) : "the server said no");
		json_decref(root);
		return LLM_ERR_REMOTE;
	}
	json_t *choices = json_object_get(root, "choices");
	if (!json_is_array(choices) || !json_array_size(choices)) {
		json_decref(root);
		return llm_diag_set(diag, LLM_ERR_FORMAT, NULL, 0,
				    "the response has no \"choices\"");
	}
	size_t n = json_array_size(choices);
	json_t **v = malloc(n * sizeof *v);
	r->root = root;
	r->outputs = json_array();
	r->finish_reasons = json_array();
	r->logprobs = json_array();
	if (!v || !r->outputs || !r->finish_reasons || !r->logprobs) {
		free(v);
		llm_response_free(r);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(choices, i);
	qsort(v, n, sizeof *v, cmp_index);
	enum llm_err e = LLM_OK;
	json_t *first = v[0];
	r->ep = json_is_object(first) && json_object_get(first, "message") ? LLM_EP_CHAT
									   : LLM_EP_COMPLETIONS;
	for (size_t i = 0; i < n && !e; i++) {
		json_t *c = v[i];
		json_t *text = NULL;
		if (!json_is_object(c)) {
			e = llm_diag_set(diag, LLM_ERR_FORMAT, NULL, 0,
					 "choice %zu is not an object", i);
			break;
		}
		if (r->ep == LLM_EP_CHAT) {
			json_t *m = json_object_get(c, "message");
			if (!json_is_object(m)) {
				e = llm_diag_set(diag, LLM_ERR_FORMAT, NULL, 0,
						 "choice %zu has no \"message\"", i);
				break;
			}
			text = json_object_get(m, "content");
		} else {
			text = json_object_get(c, "text");
			if (!text) {
				e = llm_diag_set(diag, LLM_ERR_FORMAT, NULL, 0,
						 "choice %zu has no \"text\"", i);
				break;
			}
		}
		json_t *fr = json_object_get(c, "finish_reason");
		json_t *lp = json_object_get(c, "logprobs");
		if (lp && !json_is_null(lp))
			r->has_logprobs = true;
		if (json_array_append_new(r->outputs,
					  json_is_string(text) ? json_incref(text) : json_null()) ||
		    json_array_append_new(r->finish_reasons, fr ? json_incref(fr) : json_null()) ||
		    json_array_append_new(r->logprobs, lp ? json_incref(lp) : json_null()))
			e = llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	free(v);
	if (e) {
		llm_response_free(r);
		return e;
	}
	r->n = n;
	json_t *u = json_object_get(root, "usage");
	if (json_is_object(u)) {
		json_t *p = json_object_get(u, "prompt_tokens");
		json_t *c = json_object_get(u, "completion_tokens");
		r->usage = json_object();
		if (r->usage && json_is_integer(p))
			json_object_set(r->usage, "prompt_tokens", p);
		if (r->usage && json_is_integer(c))
			json_object_set(r->usage, "completion_tokens", c);
	}
	json_t *model = json_object_get(root, "model");
	r->model = json_is_string(model) ? json_string_value(model) : NULL;
	return LLM_OK;
}
