/* llm-gen: records into requests, answers into records (shared by the run and batch verbs). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/recid.h"
#include "gen/gen.h"

const struct llm_opt llm_gen_opts_request[] = {
    {"template", 't', LLM_OPT_STRING, "FILE",
     "build each prompt from the record's fields with a {{field}} template"},
    {"prompt-field", 0, LLM_OPT_STRING, "FIELD", "the prompt to send", "prompt"},
    {"messages-field", 0, LLM_OPT_STRING, "FIELD",
     "the conversation to send (an array of {role, content})", "messages"},
    {"chat", 0, LLM_OPT_FLAG, NULL,
     "send prompts to /v1/chat/completions as the user's message (default: /v1/completions)"},
    {"completions", 0, LLM_OPT_FLAG, NULL,
     "send every request to /v1/completions: records need a prompt, messages are not used"},
    {"system", 0, LLM_OPT_STRING, "PROMPT",
     "a system message for chat requests whose messages have none (implies --chat)"},
    {"max-tokens", 0, LLM_OPT_INT, "N", "the most tokens to generate per answer", .min = 0,
     .max = 1e9},
    {"temperature", 0, LLM_OPT_DOUBLE, "T",
     "sampling temperature, 0 for greedy (unset: the server's default, 1 in the API)", .min = 0,
     .max = 100},
    {"top-p", 0, LLM_OPT_DOUBLE, "P", "nucleus sampling: keep the smallest set with mass P",
     .min = 0, .max = 1},
    {"top-k", 0, LLM_OPT_INT, "K", "keep the K most likely tokens (vLLM, engine)", .min = 0,
     .max = 1e9},
    {"min-p", 0, LLM_OPT_DOUBLE, "P", "drop tokens below P times the most likely (vLLM, engine)",
     .min = 0, .max = 1},
    {"frequency-penalty", 0, LLM_OPT_DOUBLE, "F", "penalise tokens by how often they appeared",
     .min = -2, .max = 2},
    {"presence-penalty", 0, LLM_OPT_DOUBLE, "P", "penalise tokens that appeared at all", .min = -2,
     .max = 2},
    {"repetition-penalty", 0, LLM_OPT_DOUBLE, "R",
     "divide the logits of tokens seen by R (Hugging Face's; vLLM, engine)", .min = 0, .max = 100},
    {"seed", 0, LLM_OPT_INT, "N", "the sampling seed sent with every request"},
    {"stop", 0, LLM_OPT_STRING, "TEXT",
     "stop before TEXT (repeatable or a comma list; \\n, \\t, \\, and \\\\ are escapes)",
     .repeat = true},
    {"n", 0, LLM_OPT_INT, "N", "answers per prompt (output is then an array)", .min = 1,
     .max = 128},
    {"logprobs", 0, LLM_OPT_INT, "K",
     "return each token's log-probability and the K most likely alternatives", .min = 0, .max = 20},
    {"params", 0, LLM_OPT_STRING, "JSON", "a JSON object merged into every request body, last"},
    {"output-field", 0, LLM_OPT_STRING, "FIELD", "where the answer goes", "output"},
    {"id-field", 0, LLM_OPT_STRING, "FIELD",
     "the record's id (when absent: a hash of the record's other fields)", "id"},
    {0},
};

static const char *const written_fields[GEN_NWRITTEN] = {GEN_WRITTEN_FIELDS};

static bool opt_double(struct llm_cli *c, const char *name, double *out)
{
	if (llm_args_given(&c->args, name))
		*out = llm_args_double(&c->args, name);
	return true;
}

static enum llm_err push_stop(char ***v, size_t *n, struct llm_buf *cur)
{
	char **nv = realloc(*v, (*n + 2) * sizeof *nv);
	if (!nv)
		return LLM_ERR_NOMEM;
	*v = nv;
	if (!(nv[*n] = strdup(cur->data ? cur->data : "")))
		return LLM_ERR_NOMEM;
	nv[++*n] = NULL;
	llm_buf_clear(cur);
	return LLM_OK;
}

enum llm_err gen_split_stops(char *const *vals, size_t nvals, char ***out, size_t *n)
{
	char **v = calloc(1, sizeof *v);
	size_t cnt = 0;
	struct llm_buf cur;
	llm_buf_init(&cur, 0);
	enum llm_err e = v ? LLM_OK : LLM_ERR_NOMEM;
	for (size_t i = 0; i < nvals && !e; i++) {
		for (const char *s = vals[i]; *s && !e; s++) {
			if (*s == ',') {
				if (cur.len)
					e = push_stop(&v, &cnt, &cur);
				continue;
			}
			if (*s == '\\' && s[1]) {
				s++;
				char ch = *s == 'n'   ? '\n'
					  : *s == 't' ? '\t'
					  : *s == 'r' ? '\r'
						      : *s;
				if (*s != 'n' && *s != 't' && *s != 'r' && *s != ',' && *s != '\\')
					e = llm_buf_putc(&cur, '\\');
				if (!e)
					e = llm_buf_putc(&cur, ch);
				continue;
			}
			e = llm_buf_putc(&cur, *s);
		}
		if (!e && cur.len)
			e = push_stop(&v, &cnt, &cur);
	}
	llm_buf_free(&cur);
	if (e) {
		llm_strv_free(v);
		v = NULL;
		cnt = 0;
	}
	*out = v;
	*n = cnt;
	return e;
}

int gen_input_setup(struct llm_cli *c, struct gen_input *g, bool request)
{
	memset(g, 0, sizeof *g);
	llm_sampling_init(&g->sampling);
	g->output_field = llm_args_str(&c->args, "output-field");
	g->id_field = llm_args_str(&c->args, "id-field");
	g->exclude[g->nexclude++] = g->output_field;
	for (size_t i = 0; i < GEN_NWRITTEN; i++)
		g->exclude[g->nexclude++] = written_fields[i];
	if (!request)
		return 0;
	g->prompt_field = llm_args_str(&c->args, "prompt-field");
	g->messages_field = llm_args_str(&c->args, "messages-field");
	bool chat = llm_args_flag(&c->args, "chat");
	bool completions = llm_args_flag(&c->args, "completions");
	struct llm_sampling *s = &g->sampling;
	s->system = llm_args_str(&c->args, "system");
	if (chat && completions)
		return llm_cli_usage(c, "--chat and --completions exclude each other");
	if (completions && s->system)
		return llm_cli_usage(c, "--system needs chat requests, not --completions");
	g->mode = chat || s->system ? GEN_EP_CHAT : completions ? GEN_EP_COMPLETIONS : GEN_EP_AUTO;
	s->model = llm_args_str(&c->args, "model-name");
	if (llm_args_given(&c->args, "max-tokens"))
		s->max_tokens = llm_args_int(&c->args, "max-tokens");
	opt_double(c, "temperature", &s->temperature);
	opt_double(c, "top-p", &s->top_p);
	opt_double(c, "min-p", &s->min_p);
	opt_double(c, "frequency-penalty", &s->frequency_penalty);
	opt_double(c, "presence-penalty", &s->presence_penalty);
	opt_double(c, "repetition-penalty", &s->repetition_penalty);
	if (llm_args_given(&c->args, "top-k"))
		s->top_k = llm_args_int(&c->args, "top-k");
	if (llm_args_given(&c->args, "seed")) {
		s->has_seed = true;
		s->seed = llm_args_int(&c->args, "seed");
	}
	if (llm_args_given(&c->args, "n"))
		s->n = llm_args_int(&c->args, "n");
	if (llm_args_given(&c->args, "logprobs"))
		s->logprobs = llm_args_int(&c->args, "logprobs");
	size_t nv;
	char *const *vals = llm_args_strs(&c->args, "stop", &nv);
	if (gen_split_stops(vals, nv, &g->stop, &g->nstop)) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	s->stop = g->stop;
	s->nstop = g->nstop;
	const char *params = llm_args_str(&c->args, "params");
	if (params) {
		json_error_t je;
		g->params = json_loads(params, 0, &je);
		if (!json_is_object(g->params))
			return llm_cli_usage(c, "--params: not a JSON object: %s",
					     g->params ? "another JSON value" : je.text);
		s->params = g->params;
	}
	g->template_path = llm_args_str(&c->args, "template");
	if (g->template_path) {
		struct llm_diag d;
		if (llm_prompt_template_load(g->template_path, &g->tmpl, &d))
			return llm_cli_fail(c, &d);
	}
	return 0;
}

void gen_input_free(struct gen_input *g)
{
	llm_prompt_template_free(g->tmpl);
	json_decref(g->params);
	llm_strv_free(g->stop);
	memset(g, 0, sizeof *g);
}

static enum llm_err prompt_request(const struct gen_input *g, const char *p, size_t n,
				   enum llm_endpoint *ep, json_t **body, struct llm_diag *d)
{
	if (g->mode == GEN_EP_CHAT) {
		*ep = LLM_EP_CHAT;
		return llm_request_chat_prompt(&g->sampling, p, n, body, d);
	}
	*ep = LLM_EP_COMPLETIONS;
	return llm_request_completion(&g->sampling, p, n, body, d);
}

enum llm_err gen_request(const struct gen_input *g, const struct llm_record *rec,
			 enum llm_endpoint *ep, json_t **body, struct llm_diag *why)
{
	struct llm_diag d = {0};
	struct llm_buf text;
	enum llm_err e;
	*body = NULL;
	llm_buf_init(&text, 0);
	if (g->tmpl) {
		e = llm_prompt_template_render(g->tmpl, &rec->fields, &text, &d);
		if (e == LLM_ERR_MISSING)
			e = llm_diag_set(why, e, rec->file, rec->line, "%s (%s:%ld)", d.msg, d.file,
					 d.line);
		else if (e)
			e = llm_diag_set(why, e, rec->file, rec->line, "%s", d.msg);
		else
			e = prompt_request(g, text.data ? text.data : "", text.len, ep, body, why);
		llm_buf_free(&text);
		return e;
	}
	const struct llm_json_member *m =
	    g->mode == GEN_EP_COMPLETIONS ? NULL : llm_json_get(&rec->fields, g->messages_field);
	if (m) {
		if (m->type != LLM_JSON_ARRAY)
			return llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
					    "field \"%s\" is %s, not an array of messages",
					    g->messages_field, llm_json_type_phrase(m->type));
		json_t *msgs = json_loadb(m->val, m->val_len, 0, NULL);
		if (!msgs)
			return llm_diag_set(why, LLM_ERR_NOMEM, rec->file, rec->line,
					    "out of memory");
		*ep = LLM_EP_CHAT;
		e = llm_request_chat(&g->sampling, msgs, body, &d);
		json_decref(msgs);
		if (e)
			return llm_diag_set(why, e, rec->file, rec->line, "field \"%s\": %s",
					    g->messages_field, d.msg);
		return LLM_OK;
	}
	const struct llm_json_member *p = llm_json_get(&rec->fields, g->prompt_field);
	if (!p) {
		if (g->mode == GEN_EP_COMPLETIONS)
			return llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
					    "no \"%s\" field", g->prompt_field);
		return llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
				    "no \"%s\" field (nor \"%s\")", g->prompt_field,
				    g->messages_field);
	}
	if (p->type != LLM_JSON_STRING)
		return llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
				    "field \"%s\" is %s, not a string", g->prompt_field,
				    llm_json_type_phrase(p->type));
	e = llm_json_string_decode(p->val, p->val_len, &text);
	if (!e)
		e = prompt_request(g, text.data ? text.data : "", text.len, ep, body, why);
	else
		llm_diag_set(why, e, rec->file, rec->line, "out of memory");
	llm_buf_free(&text);
	return e;
}

enum llm_err gen_record_id(const struct gen_input *g, const struct llm_record *rec,
			   struct llm_buf *out, struct llm_diag *why)
{
	bool derived;
	llm_buf_clear(out);
	enum llm_err e =
	    llm_record_id(&rec->fields, g->id_field, g->exclude, g->nexclude, out, &derived);
	if (e == LLM_ERR_TYPE)
		return llm_diag_set(why, e, rec->file, rec->line,
				    "field \"%s\" is neither a string nor a number", g->id_field);
	if (e)
		return llm_diag_set(why, e, rec->file, rec->line, "out of memory");
	return LLM_OK;
}

enum llm_err gen_custom_id(const char *id, size_t len, uint64_t k, struct llm_buf *out)
{
	llm_buf_clear(out);
	enum llm_err e = llm_buf_append(out, id, len);
	if (!e && k > 1)
		e = llm_buf_printf(out, "#%llu", (unsigned long long)k);
	return e;
}

void gen_edits_free(struct gen_edits *x)
{
	for (size_t i = 0; i < x->n; i++)
		free(x->owned[i]);
	memset(x, 0, sizeof *x);
}

/* Add key = the JSON text of v (stolen; NULL for out of memory). */
static enum llm_err add_json(struct gen_edits *x, const char *key, json_t *v)
{
	char *s =
	    v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10)) : NULL;
	json_decref(v);
	if (!s)
		return LLM_ERR_NOMEM;
	x->e[x->n].key = key;
	x->e[x->n].value = s;
	x->owned[x->n++] = s;
	return LLM_OK;
}

static enum llm_err add_ms(struct gen_edits *x, const char *key, double ms)
{
	if (isnan(ms) || ms < 0)
		return add_json(x, key, json_null());
	char *s = malloc(32);
	if (!s)
		return LLM_ERR_NOMEM;
	snprintf(s, 32, "%.1f", ms);
	x->e[x->n].key = key;
	x->e[x->n].value = s;
	x->owned[x->n++] = s;
	return LLM_OK;
}

/* The first element when there is one choice, the array when there are more. */
static json_t *one_or_all(json_t *a, size_t n)
{
	return n == 1 ? json_incref(json_array_get(a, 0)) : json_incref(a);
}

enum llm_err gen_answer_edits(struct gen_edits *x, const struct gen_input *g, const char *body,
			      size_t len, double latency_ms, double ttft_ms, const char *model,
			      bool cached, struct llm_diag *why)
{
	struct llm_response r;
	memset(x, 0, sizeof *x);
	x->prompt_tokens = x->completion_tokens = -1;
	enum llm_err e = llm_response_parse(body, len, &r, why);
	if (e)
		return e;
	e = add_json(x, g->output_field, one_or_all(r.outputs, r.n));
	if (!e)
		e = add_json(x, "usage", r.usage ? json_incref(r.usage) : json_null());
	if (!e)
		e = add_ms(x, "latency_ms", latency_ms);
	if (!e)
		e = add_ms(x, "ttft_ms", ttft_ms);
	const char *name = r.model ? r.model : model;
	if (!e)
		e = add_json(x, "model", name ? json_string(name) : json_null());
	if (!e)
		e = add_json(x, "finish_reason", one_or_all(r.finish_reasons, r.n));
	if (!e && r.has_logprobs)
		e = add_json(x, "logprobs", one_or_all(r.logprobs, r.n));
	if (!e && cached)
		e = add_json(x, "cached", json_true());
	if (r.usage) {
		json_t *p = json_object_get(r.usage, "prompt_tokens");
		json_t *c = json_object_get(r.usage, "completion_tokens");
		if (json_is_integer(p))
			x->prompt_tokens = json_integer_value(p);
		if (json_is_integer(c))
			x->completion_tokens = json_integer_value(c);
	}
	llm_response_free(&r);
	if (e) {
		gen_edits_free(x);
		return llm_diag_set(why, e, NULL, 0, "out of memory");
	}
	return LLM_OK;
}

enum llm_err gen_error_edits(struct gen_edits *x, const struct gen_input *g,
			     const struct llm_record *rec, const char *code, const char *message,
			     int status)
{
	memset(x, 0, sizeof *x);
	x->prompt_tokens = x->completion_tokens = -1;
	json_t *err = json_pack("{s:s,s:s}", "code", code, "message", message ? message : "");
	if (err && status > 0 && json_object_set_new(err, "status", json_integer(status))) {
		json_decref(err);
		err = NULL;
	}
	enum llm_err e = LLM_OK;
	if (llm_json_get(&rec->fields, g->output_field))
		e = add_json(x, g->output_field, json_null());
	if (!e)
		e = add_json(x, "error", err);
	else
		json_decref(err);
	if (e)
		gen_edits_free(x);
	return e;
}
