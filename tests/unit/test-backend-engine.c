/* Unit tests of the engine backend: OpenAI request bodies answered by the embedded engine.
 *
 * The model is a tiny random one (query, key and head weights scaled up, as test-generate.c
 * does, so the logits are far from flat and greedy choices are not near ties), saved as a
 * model directory with a byte-level BPE tokenizer trained here, with ChatML's special tokens.
 * Every answer is held to what the engine's own primitives give for the same ids:
 * llm_generate for completions and chat, llm_score_tokens for prompt scoring, and the backend
 * at concurrency 1 for batched decoding. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "backend/backend.h"
#include "core/buf.h"
#include "core/json.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/modeldir.h"
#include "text/bpe.h"
#include "text/bpe_train.h"
#include "text/template.h"

#define MAXPOS 128
/* Batched and single evaluations sum in different orders: logprobs agree to rounding. */
#define LP_TOL 1e-4

static char dir[] = "/tmp/llmops-backend-engine-XXXXXX";
static char model_dir[256], tmpl_dir[256], gguf_path[512], tok_path[512];
static struct llm_model *model; /* the saved model, for the direct references */
static struct llm_bpe *bpe;	/* its tokenizer */
static uint32_t im_end;		/* <|im_end|>'s id */

static const char *const corpus[] = {
    "The cat sat on the mat. The dog sat on the log.",
    "Hello there, how are you today? I am fine, thank you.",
    "A small model answers questions about the weather and the sea.",
    "Numbers like 12, 345 and 6789 appear in text too.",
};

/* --- fixtures ------------------------------------------------------------------------------- */

static void scale(float *p, size_t n, float f)
{
	for (size_t i = 0; i < n; i++)
		p[i] *= f;
}

static void make_tokenizer(void)
{
	static const char *const specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
	struct llm_bpe_train_opts o = {
	    .vocab_size = 320, .min_frequency = 1, .specials = specials, .nspecials = 3};
	struct llm_bpe_trainer *t;
	struct llm_diag d;
	assert_int_equal(llm_bpe_trainer_new(&t, &o, &d), LLM_OK);
	for (int rep = 0; rep < 3; rep++)
		for (size_t i = 0; i < sizeof corpus / sizeof *corpus; i++)
			assert_int_equal(llm_bpe_trainer_feed(t, corpus[i], strlen(corpus[i]), &d),
					 LLM_OK);
	assert_int_equal(llm_bpe_trainer_train(t, &d), LLM_OK);
	json_t *j = llm_bpe_trainer_json(t);
	assert_non_null(j);
	snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", dir);
	assert_int_equal(json_dump_file(j, tok_path, 0), 0);
	json_decref(j);
	llm_bpe_trainer_free(t);
	assert_int_equal(llm_bpe_open_file(&bpe, tok_path, &d), LLM_OK);
	assert_true(llm_bpe_special_id(bpe, "<|im_end|>", &im_end));
}

static void make_model(void)
{
	uint32_t eos;
	assert_true(llm_bpe_special_id(bpe, "<|endoftext|>", &eos));
	struct llm_model_config c = {
	    .vocab_size = (int)llm_bpe_vocab_size(bpe),
	    .hidden_size = 32,
	    .intermediate_size = 48,
	    .num_hidden_layers = 2,
	    .num_attention_heads = 4,
	    .num_key_value_heads = 2,
	    .max_position_embeddings = MAXPOS,
	    .rms_norm_eps = 1e-5,
	    .rope_theta = 10000.0,
	    .tie_word_embeddings = false,
	    .bos_token_id = -1,
	    .eos_token_id = (int)eos,
	};
	struct llm_diag d;
	assert_int_equal(llm_model_new(&model, &c, &d), LLM_OK);
	llm_model_init_random(model, 7, 0.02f);
	size_t dd = (size_t)c.hidden_size, kvd = dd / c.num_attention_heads * c.num_key_value_heads;
	for (int l = 0; l < c.num_hidden_layers; l++) {
		scale(model->w.layer[l].wq, dd * dd, 40.0f);
		scale(model->w.layer[l].wk, kvd * dd, 40.0f);
		scale(model->w.layer[l].wv, kvd * dd, 20.0f);
		scale(model->w.layer[l].wo, dd * dd, 20.0f);
	}
	scale(model->w.lm_head, (size_t)c.vocab_size * dd, 20.0f);
	/* EOS made unlikely, so answers run long enough to compare. */
	scale(model->w.lm_head + (size_t)eos * dd, dd, 0.0f);

	struct llm_modeldir_save_opts so = {.tokenizer = tok_path};
	snprintf(model_dir, sizeof model_dir, "%s/model", dir);
	assert_int_equal(llm_modeldir_save(model, model_dir, &so, &d), LLM_OK);
	/* The same weights beside a tokenizer_config.json with a Jinja chat template. */
	snprintf(tmpl_dir, sizeof tmpl_dir, "%s/templated", dir);
	assert_int_equal(llm_modeldir_save(model, tmpl_dir, &so, &d), LLM_OK);
	char path[512];
	snprintf(path, sizeof path, "%s/tokenizer_config.json", tmpl_dir);
	json_t *cfg = json_pack(
	    "{s:s,s:s,s:s}", "tokenizer_class", "PreTrainedTokenizerFast", "eos_token",
	    "<|endoftext|>", "chat_template",
	    "{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] }}\n{% endfor %}"
	    "{% if add_generation_prompt %}ASSISTANT:{% endif %}");
	assert_int_equal(json_dump_file(cfg, path, 0), 0);
	json_decref(cfg);
	/* And as a GGUF file inside the model directory, its tokenizer.json beside it. */
	snprintf(gguf_path, sizeof gguf_path, "%s/model.gguf", model_dir);
	struct llm_gguf_export_opts go = {.tokenizer = tok_path};
	assert_int_equal(llm_modeldir_export_gguf(model, gguf_path, &go, &d), LLM_OK);
}

static int setup(void **state)
{
	(void)state;
	make_tokenizer();
	make_model();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	llm_model_free(model);
	llm_bpe_free(bpe);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* --- helpers -------------------------------------------------------------------------------- */

static struct llm_backend *open_ref(const char *ref, int concurrency)
{
	struct llm_backend_opts o;
	llm_backend_opts_init(&o);
	o.ref = ref;
	o.concurrency = concurrency;
	o.seed = 1234;
	struct llm_backend *b;
	struct llm_diag d;
	if (llm_backend_open(&b, &o, &d))
		fail_msg("llm_backend_open: %s", d.msg);
	assert_false(llm_backend_is_remote(b));
	return b;
}

static struct llm_backend *open_engine(int concurrency)
{
	return open_ref(model_dir, concurrency);
}

static void submit(struct llm_backend *b, uint64_t tag, enum llm_endpoint ep, const char *body)
{
	struct llm_diag d;
	if (llm_backend_submit(b, tag, ep, body, strlen(body), &d))
		fail_msg("llm_backend_submit: %s", d.msg);
}

/* Submit one request and wait for it; the parsed body, or NULL with *res holding the error. */
static json_t *ask(struct llm_backend *b, enum llm_endpoint ep, const char *body,
		   struct llm_result *res)
{
	submit(b, 99, ep, body);
	struct llm_diag d;
	assert_int_equal(llm_backend_next(b, res, &d), 1);
	assert_int_equal(res->tag, 99);
	assert_int_equal(llm_backend_pending(b), 0);
	if (res->err)
		return NULL;
	json_error_t je;
	json_t *o = json_loadb(res->body, res->body_len, JSON_ALLOW_NUL, &je);
	if (!o)
		fail_msg("response is not JSON: %s", je.text);
	return o;
}

static json_t *ask_ok(struct llm_backend *b, enum llm_endpoint ep, const char *body)
{
	struct llm_result res;
	json_t *o = ask(b, ep, body, &res);
	if (!o)
		fail_msg("request failed: %s: %s", res.error_code, res.error_message);
	llm_result_clear(&res);
	return o;
}

static json_t *choice(json_t *o, size_t i)
{
	json_t *c = json_array_get(json_object_get(o, "choices"), i);
	assert_non_null(c);
	return c;
}

static const char *text_of(json_t *o, size_t i)
{
	json_t *c = choice(o, i);
	json_t *m = json_object_get(c, "message");
	const char *s = json_string_value(json_object_get(m ? m : c, m ? "content" : "text"));
	assert_non_null(s);
	return s;
}

static const char *finish_of(json_t *o, size_t i)
{
	return json_string_value(json_object_get(choice(o, i), "finish_reason"));
}

static json_int_t usage(json_t *o, const char *k)
{
	json_t *u = json_object_get(o, "usage");
	assert_true(json_is_integer(json_object_get(u, k)));
	return json_integer_value(json_object_get(u, k));
}

static void encode(const char *s, struct llm_bpe_ids *ids)
{
	ids->n = 0;
	assert_int_equal(llm_bpe_encode(bpe, s, strlen(s), ids, NULL), LLM_OK);
}

static void greedy_direct(const uint32_t *ids, size_t n, int max_tokens, bool chat,
			  struct llm_gen_result *r)
{
	struct llm_gen_params p;
	llm_gen_params_default(&p);
	p.sampler.temperature = 0;
	p.max_tokens = max_tokens;
	p.bpe = bpe;
	uint32_t stops[2] = {(uint32_t)model->config.eos_token_id, im_end};
	static const char *const turn[] = {"<|im_end|>"};
	if (chat) {
		p.stop_tokens = stops;
		p.n_stop_tokens = 2;
		p.stop = turn;
		p.n_stop = 1;
	}
	struct llm_diag d;
	if (llm_generate(model, ids, n, &p, r, &d))
		fail_msg("llm_generate: %s", d.msg);
}

static void expect_error(struct llm_backend *b, enum llm_endpoint ep, const char *body,
			 enum llm_err err, const char *code, const char *needle)
{
	struct llm_result res;
	json_t *o = ask(b, ep, body, &res);
	if (o)
		fail_msg("%s: expected an error, got a response", body);
	assert_int_equal(res.err, err);
	assert_string_equal(res.error_code, code);
	assert_non_null(res.error_message);
	if (!strstr(res.error_message, needle))
		fail_msg("%s: the message '%s' does not name '%s'", body, res.error_message,
			 needle);
	assert_null(res.body);
	llm_result_clear(&res);
}

/* --- tests ---------------------------------------------------------------------------------- */

/* A greedy completion is llm_generate's for the prompt's ids, with the OpenAI shape around it. */
static void greedy_completion_equals_llm_generate(void **state)
{
	(void)state;
	struct llm_backend *b = open_engine(1);
	const char *prompt = "The cat sat on";
	json_t *o =
	    ask_ok(b, LLM_EP_COMPLETIONS,
		   "{\"prompt\": \"The cat sat on\", \"max_tokens\": 20, \"temperature\": 0,"
		   " \"user\": \"unknown fields are ignored\"}");
	struct llm_bpe_ids ids = {0};
	encode(prompt, &ids);
	struct llm_gen_result r;
	greedy_direct(ids.v, ids.n, 20, false, &r);
	assert_string_equal(text_of(o, 0), r.text.data ? r.text.data : "");
	assert_string_equal(finish_of(o, 0), llm_finish_name(r.finish));
	assert_int_equal(usage(o, "prompt_tokens"), ids.n);
	assert_int_equal(usage(o, "completion_tokens"), r.n_tokens);
	assert_int_equal(usage(o, "total_tokens"), ids.n + r.n_tokens);
	assert_string_equal(json_string_value(json_object_get(o, "object")), "text_completion");
	assert_string_equal(json_string_value(json_object_get(o, "model")), model_dir);
	assert_string_equal(json_string_value(json_object_get(o, "model")), llm_backend_model(b));
	assert_true(strncmp(json_string_value(json_object_get(o, "id")), "cmpl-", 5) == 0);
	assert_true(json_is_integer(json_object_get(o, "created")));
	assert_true(json_is_null(json_object_get(choice(o, 0), "logprobs")));
	assert_int_equal(json_integer_value(json_object_get(choice(o, 0), "index")), 0);
	/* Default max_tokens is OpenAI's 16. */
	json_t *o16 =
	    ask_ok(b, LLM_EP_COMPLETIONS, "{\"prompt\": [\"The cat sat on\"], \"temperature\": 0}");
	assert_true(usage(o16, "completion_tokens") <= 16);
	if (r.n_tokens >= 16) {
		assert_int_equal(usage(o16, "completion_tokens"), 16);
		assert_string_equal(finish_of(o16, 0), "length");
	}
	/* The prompt as token ids gives the same answer. */
	char body[1024];
	size_t k = (size_t)snprintf(body, sizeof body, "{\"prompt\": [");
	for (size_t i = 0; i < ids.n; i++)
		k += (size_t)snprintf(body + k, sizeof body - k, "%s%u", i ? "," : "", ids.v[i]);
	snprintf(body + k, sizeof body - k, "], \"max_tokens\": 20, \"temperature\": 0}");
	json_t *oi = ask_ok(b, LLM_EP_COMPLETIONS, body);
	assert_string_equal(text_of(oi, 0), text_of(o, 0));
	json_decref(oi);
	json_decref(o16);
	json_decref(o);
	llm_gen_result_free(&r);
	llm_bpe_ids_free(&ids);
	llm_backend_close(b);
}

/* A chat answer is llm_generate's on the ChatML rendering llm-tune train uses, with the
 * assistant header, stopping at <|im_end|>. */
static void greedy_chat_equals_llm_generate_on_chatml(void **state)
{
	(void)state;
	struct llm_backend *b = open_engine(1);
	const char *body = "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
			   "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": "
			   "\"Hello there\"}]}], \"max_tokens\": 24, \"temperature\": 0}";
	json_t *o = ask_ok(b, LLM_EP_CHAT, body);
	json_t *msgs = json_pack("[{s:s,s:s},{s:s,s:s}]", "role", "system", "content", "Be brief.",
				 "role", "user", "content", "Hello there");
	struct llm_buf text;
	llm_buf_init(&text, 0);
	assert_int_equal(llm_chat_render(LLM_CHAT_CHATML, msgs, true, &text, NULL, NULL), LLM_OK);
	assert_non_null(strstr(text.data, "<|im_start|>assistant\n"));
	struct llm_bpe_ids ids = {0};
	encode(text.data, &ids);
	struct llm_gen_result r;
	greedy_direct(ids.v, ids.n, 24, true, &r);
	assert_string_equal(text_of(o, 0), r.text.data ? r.text.data : "");
	assert_string_equal(finish_of(o, 0), llm_finish_name(r.finish));
	assert_int_equal(usage(o, "prompt_tokens"), ids.n);
	assert_int_equal(usage(o, "completion_tokens"), r.n_tokens);
	json_t *m = json_object_get(choice(o, 0), "message");
	assert_string_equal(json_string_value(json_object_get(m, "role")), "assistant");
	assert_string_equal(json_string_value(json_object_get(o, "object")), "chat.completion");
	assert_true(strncmp(json_string_value(json_object_get(o, "id")), "chatcmpl-", 9) == 0);

	/* Without max_tokens a chat answer may fill the context. */
	json_t *full = ask_ok(b, LLM_EP_CHAT,
			      "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], "
			      "\"temperature\": 0, \"ignore_eos\": true}");
	assert_int_equal(usage(full, "total_tokens"), MAXPOS);
	assert_string_equal(finish_of(full, 0), "length");
	json_decref(full);
	json_decref(o);
	json_decref(msgs);
	llm_buf_free(&text);
	llm_gen_result_free(&r);
	llm_bpe_ids_free(&ids);
	llm_backend_close(b);
}

/* A tokenizer_config.json chat_template is rendered (Jinja) instead of ChatML. */
static void a_models_chat_template_is_used(void **state)
{
	(void)state;
	struct llm_backend *b = open_ref(tmpl_dir, 1);
	json_t *o = ask_ok(b, LLM_EP_CHAT,
			   "{\"messages\": [{\"role\": \"user\", \"content\": \"Hello there\"}], "
			   "\"max_tokens\": 12, \"temperature\": 0}");
	struct llm_bpe_ids ids = {0};
	encode("USER: Hello there\nASSISTANT:", &ids);
	struct llm_gen_result r;
	greedy_direct(ids.v, ids.n, 12, false, &r);
	assert_int_equal(usage(o, "prompt_tokens"), ids.n);
	assert_string_equal(text_of(o, 0), r.text.data ? r.text.data : "");
	json_decref(o);
	llm_gen_result_free(&r);
	llm_bpe_ids_free(&ids);
	llm_backend_close(b);
}

/* A GGUF file answers as the directory it was exported from (tokenizer.json beside it). */
static void a_gguf_file_answers_as_its_directory(void **state)
{
	(void)state;
	const char *body = "{\"prompt\": \"Hello there, how\", \"max_tokens\": 10, "
			   "\"temperature\": 0}";
	struct llm_backend *a = open_engine(1), *g = open_ref(gguf_path, 1);
	json_t *x = ask_ok(a, LLM_EP_COMPLETIONS, body), *y = ask_ok(g, LLM_EP_COMPLETIONS, body);
	assert_string_equal(text_of(x, 0), text_of(y, 0));
	assert_string_equal(json_string_value(json_object_get(y, "model")), gguf_path);
	json_decref(x);
	json_decref(y);
	llm_backend_close(a);
	llm_backend_close(g);
}

struct by_tag {
	char *text[8];
	char *finish[8];
	int got;
};

static void run_eight(struct llm_backend *b, struct by_tag *out)
{
	static const char *const bodies[8] = {
	    "{\"prompt\": \"The cat\", \"max_tokens\": 9, \"temperature\": 0}",
	    "{\"prompt\": \"Hello there, how are you today? I am\", \"max_tokens\": 14, "
	    "\"temperature\": 0}",
	    "{\"prompt\": \"A small model\", \"max_tokens\": 5, \"temperature\": 0.8, \"seed\": 3}",
	    "{\"prompt\": \"Numbers like 12\", \"max_tokens\": 20, \"temperature\": 0}",
	    "{\"prompt\": \"The dog sat on the log.\", \"max_tokens\": 3, \"temperature\": 1.0, "
	    "\"top_k\": 20, \"seed\": 11}",
	    "{\"prompt\": \"weather\", \"max_tokens\": 17, \"temperature\": 0, "
	    "\"frequency_penalty\": 0.5}",
	    "{\"prompt\": \"the sea\", \"max_tokens\": 8, \"temperature\": 0.7, \"top_p\": 0.9, "
	    "\"seed\": 5}",
	    "{\"prompt\": \"I am fine\", \"max_tokens\": 11, \"temperature\": 0, "
	    "\"repetition_penalty\": 1.3}",
	};
	for (uint64_t t = 0; t < 8; t++)
		submit(b, t, LLM_EP_COMPLETIONS, bodies[t]);
	assert_int_equal(llm_backend_pending(b), 8);
	struct llm_result res;
	struct llm_diag d;
	int n;
	memset(out, 0, sizeof *out);
	while ((n = llm_backend_next(b, &res, &d)) == 1) {
		assert_true(res.tag < 8);
		assert_int_equal(res.err, LLM_OK);
		assert_true(res.ttft_ms >= 0 && res.latency_ms >= res.ttft_ms);
		json_t *o = json_loadb(res.body, res.body_len, JSON_ALLOW_NUL, NULL);
		assert_non_null(o);
		assert_null(out->text[res.tag]);
		out->text[res.tag] = strdup(text_of(o, 0));
		out->finish[res.tag] = strdup(finish_of(o, 0));
		out->got++;
		json_decref(o);
		llm_result_clear(&res);
	}
	assert_int_equal(n, 0);
	assert_int_equal(out->got, 8);
	assert_int_equal(llm_backend_pending(b), 0);
}

/* Eight requests decoded four at a time give what each gives alone. */
static void batched_results_equal_one_at_a_time(void **state)
{
	(void)state;
	struct llm_backend *one = open_engine(1), *four = open_engine(4);
	struct by_tag a, b;
	run_eight(one, &a);
	run_eight(four, &b);
	for (int i = 0; i < 8; i++) {
		assert_string_equal(a.text[i], b.text[i]);
		assert_string_equal(a.finish[i], b.finish[i]);
		free(a.text[i]);
		free(b.text[i]);
		free(a.finish[i]);
		free(b.finish[i]);
	}
	llm_backend_close(one);
	llm_backend_close(four);
}

/* echo, logprobs 1, max_tokens 0: every prompt token's logprob, the first null, as
 * llm_score_tokens gives them. */
static void echo_logprobs_score_the_prompt(void **state)
{
	(void)state;
	struct llm_backend *b = open_engine(2);
	const char *prompt = "Hello there, how are you today? The cat sat on the mat.";
	json_t *o = ask_ok(b, LLM_EP_COMPLETIONS,
			   "{\"prompt\": \"Hello there, how are you today? The cat sat on the "
			   "mat.\", \"max_tokens\": 0, \"echo\": true, \"logprobs\": 1}");
	struct llm_bpe_ids ids = {0};
	encode(prompt, &ids);
	float *ref = calloc(ids.n, sizeof *ref);
	struct llm_score sc;
	assert_int_equal(llm_score_tokens(model, ids.v, ids.n, 1, ref, &sc, NULL), LLM_OK);
	assert_string_equal(text_of(o, 0), prompt);
	assert_string_equal(finish_of(o, 0), "length");
	assert_int_equal(usage(o, "prompt_tokens"), ids.n);
	assert_int_equal(usage(o, "completion_tokens"), 0);
	json_t *lp = json_object_get(choice(o, 0), "logprobs");
	json_t *toks = json_object_get(lp, "tokens"), *tlp = json_object_get(lp, "token_logprobs");
	json_t *top = json_object_get(lp, "top_logprobs"),
	       *off = json_object_get(lp, "text_offset");
	assert_int_equal(json_array_size(toks), ids.n);
	assert_int_equal(json_array_size(tlp), ids.n);
	assert_int_equal(json_array_size(top), ids.n);
	assert_int_equal(json_array_size(off), ids.n);
	assert_true(json_is_null(json_array_get(tlp, 0)));
	assert_true(json_is_null(json_array_get(top, 0)));
	double sum = 0;
	struct llm_buf joined;
	llm_buf_init(&joined, 0);
	for (size_t i = 0; i < ids.n; i++) {
		llm_buf_puts(&joined, json_string_value(json_array_get(toks, i)));
		assert_int_equal(json_integer_value(json_array_get(off, i)),
				 i == 0 ? 0
					: json_integer_value(json_array_get(off, i - 1)) +
					      (json_int_t)strlen(
						  json_string_value(json_array_get(toks, i - 1))));
		if (i == 0)
			continue;
		double got = json_number_value(json_array_get(tlp, i));
		assert_true(fabs(got - ref[i]) < LP_TOL);
		sum += got;
		/* logprobs 1: the best alternative, and the prompt token when it is another. */
		json_t *alt = json_array_get(top, i);
		assert_true(json_is_object(alt));
		assert_true(json_object_size(alt) >= 1 && json_object_size(alt) <= 2);
		json_t *mine = json_object_get(alt, json_string_value(json_array_get(toks, i)));
		assert_non_null(mine);
		assert_true(fabs(json_number_value(mine) - got) < 1e-6);
		const char *k;
		json_t *v;
		json_object_foreach(alt, k, v)
		{
			(void)k;
			assert_true(json_number_value(v) >= got - 1e-6);
		}
	}
	assert_true(fabs(sum - sc.sum_logprob) < LP_TOL * (double)ids.n);
	/* The ASCII prompt's tokens spell it. */
	assert_string_equal(joined.data, prompt);

	/* Echo with generation: the prompt, then the answer; the logprobs cover both. */
	json_t *g = ask_ok(b, LLM_EP_COMPLETIONS,
			   "{\"prompt\": \"Hello there, how are you today? The cat sat on the "
			   "mat.\", \"max_tokens\": 4, \"echo\": true, \"logprobs\": 0, "
			   "\"temperature\": 0, \"ignore_eos\": true}");
	assert_true(strncmp(text_of(g, 0), prompt, strlen(prompt)) == 0);
	json_t *glp = json_object_get(choice(g, 0), "logprobs");
	assert_int_equal(json_array_size(json_object_get(glp, "tokens")), ids.n + 4);
	for (size_t i = 1; i < ids.n; i++)
		assert_true(fabs(json_number_value(
				     json_array_get(json_object_get(glp, "token_logprobs"), i)) -
				 ref[i]) < LP_TOL);
	json_decref(g);
	llm_buf_free(&joined);
	free(ref);
	json_decref(o);
	llm_bpe_ids_free(&ids);
	llm_backend_close(b);
}

/* Chat logprobs in OpenAI's shape, the values llm_generate reports. */
static void chat_logprobs_have_openais_shape(void **state)
{
	(void)state;
	struct llm_backend *b = open_engine(1);
	json_t *o = ask_ok(b, LLM_EP_CHAT,
			   "{\"messages\": [{\"role\": \"user\", \"content\": \"Hello there\"}], "
			   "\"max_tokens\": 6, \"temperature\": 0, \"logprobs\": true, "
			   "\"top_logprobs\": 3}");
	json_t *content = json_object_get(json_object_get(choice(o, 0), "logprobs"), "content");
	assert_int_equal(json_array_size(content), usage(o, "completion_tokens"));
	struct llm_buf joined;
	llm_buf_init(&joined, 0);
	for (size_t i = 0; i < json_array_size(content); i++) {
		json_t *c = json_array_get(content, i);
		assert_true(json_is_string(json_object_get(c, "token")));
		assert_true(json_is_real(json_object_get(c, "logprob")));
		json_t *bytes = json_object_get(c, "bytes"),
		       *top = json_object_get(c, "top_logprobs");
		assert_true(json_is_array(bytes));
		for (size_t k = 0; k < json_array_size(bytes); k++)
			llm_buf_putc(&joined, (char)json_integer_value(json_array_get(bytes, k)));
		assert_int_equal(json_array_size(top), 3);
		/* Greedy: the chosen token is the best alternative. */
		assert_true(
		    fabs(json_number_value(json_object_get(json_array_get(top, 0), "logprob")) -
			 json_number_value(json_object_get(c, "logprob"))) < 1e-6);
		assert_true(json_is_array(json_object_get(json_array_get(top, 2), "bytes")));
	}
	/* The bytes of the tokens are the answer (no stop string cut it). */
	if (!strcmp(finish_of(o, 0), "length") &&
	    llm_utf8_valid_prefix(joined.data ? joined.data : "", joined.len) == joined.len)
		assert_string_equal(joined.data ? joined.data : "", text_of(o, 0));
	llm_buf_free(&joined);
	json_decref(o);
	llm_backend_close(b);
}

/* A stop string ends the text just before it; "stop" is the finish reason. */
static void stop_strings_cut_the_text(void **state)
{
	(void)state;
	struct llm_backend *b = open_engine(1);
	json_t *o = ask_ok(b, LLM_EP_COMPLETIONS,
			   "{\"prompt\": \"The cat\", \"max_tokens\": 30, \"temperature\": 0, "
			   "\"ignore_eos\": true}");
	assert_string_equal(finish_of(o, 0), "length");
	const char *full = text_of(o, 0);
	size_t n = strlen(full);
	assert_true(n >= 8);
	/* Two whole characters from the middle of the answer. */
	size_t at = n / 2;
	while (at > 0 && ((unsigned char)full[at] & 0xC0) == 0x80)
		at--;
	size_t end = at, chars = 0;
	while (end < n && chars < 2) {
		end++;
		while (end < n && ((unsigned char)full[end] & 0xC0) == 0x80)
			end++;
		chars++;
	}
	json_t *stop = json_stringn(full + at, end - at);
	const char *cut = strstr(full, json_string_value(stop));
	json_t *req =
	    json_pack("{s:s,s:i,s:i,s:b,s:[s,O]}", "prompt", "The cat", "max_tokens", 30,
		      "temperature", 0, "ignore_eos", 1, "stop", "never-in-this-text", stop);
	char *body = json_dumps(req, 0);
	json_t *s = ask_ok(b, LLM_EP_COMPLETIONS, body);
	assert_string_equal(finish_of(s, 0), "stop");
	assert_int_equal(strlen(text_of(s, 0)), (size_t)(cut - full));
	assert_true(strncmp(text_of(s, 0), full, (size_t)(cut - full)) == 0);
	/* A single string works too. */
	json_object_set(req, "stop", stop);
	free(body);
	body = json_dumps(req, 0);
	json_t *s1 = ask_ok(b, LLM_EP_COMPLETIONS, body);
	assert_string_equal(text_of(s1, 0), text_of(s, 0));
	json_decref(s1);
	json_decref(s);
	free(body);
	json_decref(req);
	json_decref(stop);
	json_decref(o);
	llm_backend_close(b);
}

/* n = 2 with a seed: two choices, the same on every run; choice 0 is the n = 1 answer. */
static void n_choices_with_a_seed_are_deterministic(void **state)
{
	(void)state;
	const char *body = "{\"prompt\": \"The dog\", \"max_tokens\": 10, \"temperature\": 1, "
			   "\"n\": 2, \"seed\": 42, \"ignore_eos\": true}";
	struct llm_backend *b = open_engine(2), *c = open_engine(1);
	json_t *x = ask_ok(b, LLM_EP_COMPLETIONS, body), *y = ask_ok(c, LLM_EP_COMPLETIONS, body);
	json_t *one = ask_ok(b, LLM_EP_COMPLETIONS,
			     "{\"prompt\": \"The dog\", \"max_tokens\": 10, \"temperature\": 1, "
			     "\"seed\": 42, \"ignore_eos\": true}");
	assert_int_equal(json_array_size(json_object_get(x, "choices")), 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(json_integer_value(json_object_get(choice(x, i), "index")), i);
		assert_string_equal(text_of(x, i), text_of(y, i));
	}
	assert_string_equal(text_of(x, 0), text_of(one, 0));
	/* Usage counts the tokens of every choice. */
	assert_int_equal(usage(x, "completion_tokens"), 20);
	/* The engine's seed applies when a request has none: the same twice. */
	json_t *p = ask_ok(b, LLM_EP_COMPLETIONS,
			   "{\"prompt\": \"The dog\", \"max_tokens\": 10, \"ignore_eos\": true}");
	json_t *q = ask_ok(c, LLM_EP_COMPLETIONS,
			   "{\"prompt\": \"The dog\", \"max_tokens\": 10, \"ignore_eos\": true}");
	assert_string_equal(text_of(p, 0), text_of(q, 0));
	json_decref(p);
	json_decref(q);
	json_decref(one);
	json_decref(x);
	json_decref(y);
	llm_backend_close(b);
	llm_backend_close(c);
}

/* Fields of the wrong type are invalid_request_error results that name the field. */
static void bad_fields_are_invalid_request_errors(void **state)
{
	(void)state;
	struct llm_backend *b = open_engine(2);
	static const struct {
		enum llm_endpoint ep;
		const char *body, *field;
	} cases[] = {
	    {LLM_EP_COMPLETIONS, "{\"prompt\": \"x\", \"max_tokens\": \"ten\"}", "max_tokens"},
	    {LLM_EP_COMPLETIONS, "{\"prompt\": \"x\", \"temperature\": \"hot\"}", "temperature"},
	    {LLM_EP_COMPLETIONS, "{\"prompt\": \"x\", \"stop\": 5}", "stop"},
	    {LLM_EP_COMPLETIONS, "{\"prompt\": \"x\", \"stop\": [\"a\", 1]}", "stop[1]"},
	    {LLM_EP_COMPLETIONS, "{\"prompt\": \"x\", \"n\": 0}", "'n'"},
	    {LLM_EP_COMPLETIONS, "{\"prompt\": \"x\", \"echo\": \"yes\"}", "echo"},
	    {LLM_EP_COMPLETIONS, "{\"prompt\": \"x\", \"logprobs\": true}", "logprobs"},
	    {LLM_EP_COMPLETIONS, "{\"prompt\": \"x\", \"seed\": 1.5}", "seed"},
	    {LLM_EP_COMPLETIONS, "{\"prompt\": \"x\", \"top_p\": 0}", "top_p"},
	    {LLM_EP_COMPLETIONS, "{\"prompt\": 7}", "prompt"},
	    {LLM_EP_COMPLETIONS, "{\"max_tokens\": 3}", "prompt"},
	    {LLM_EP_CHAT, "{\"messages\": \"hi\"}", "messages"},
	    {LLM_EP_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": 3}]}",
	     "messages[0].content"},
	    {LLM_EP_CHAT, "{\"messages\": [{\"content\": \"hi\"}]}", "messages[0].role"},
	    {LLM_EP_CHAT,
	     "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"logprobs\": 1}",
	     "logprobs"},
	    {LLM_EP_CHAT,
	     "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"top_logprobs\": 2}",
	     "top_logprobs"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		expect_error(b, cases[i].ep, cases[i].body, LLM_ERR_USAGE, "invalid_request_error",
			     cases[i].field);
	/* A body that is not a JSON object is refused at once. */
	struct llm_diag d;
	assert_int_equal(llm_backend_submit(b, 1, LLM_EP_CHAT, "[1]", 3, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_backend_submit(b, 1, LLM_EP_CHAT, "{", 1, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_backend_pending(b), 0);
	/* A bad request among good ones fails alone. */
	submit(b, 1, LLM_EP_COMPLETIONS, "{\"prompt\": \"The\", \"max_tokens\": 3}");
	submit(b, 2, LLM_EP_COMPLETIONS, "{\"prompt\": \"The\", \"max_tokens\": -1}");
	submit(b, 3, LLM_EP_COMPLETIONS, "{\"prompt\": \"The\", \"max_tokens\": 3}");
	struct llm_result res;
	int ok = 0, bad = 0;
	while (llm_backend_next(b, &res, &d) == 1) {
		if (res.tag == 2) {
			assert_int_equal(res.err, LLM_ERR_USAGE);
			bad++;
		} else {
			assert_int_equal(res.err, LLM_OK);
			ok++;
		}
		llm_result_clear(&res);
	}
	assert_int_equal(ok, 2);
	assert_int_equal(bad, 1);
	llm_backend_close(b);
}

/* A prompt beyond the context is context_length_exceeded, with both numbers. */
static void context_overflow_names_both_numbers(void **state)
{
	(void)state;
	struct llm_backend *b = open_engine(1);
	struct llm_buf prompt;
	llm_buf_init(&prompt, 0);
	for (int i = 0; i < 40; i++)
		llm_buf_puts(&prompt, "The cat sat on the mat. ");
	struct llm_bpe_ids ids = {0};
	encode(prompt.data, &ids);
	assert_true(ids.n > MAXPOS);
	json_t *req = json_pack("{s:s,s:i}", "prompt", prompt.data, "max_tokens", 1);
	char *body = json_dumps(req, 0);
	struct llm_result res;
	assert_null(ask(b, LLM_EP_COMPLETIONS, body, &res));
	assert_int_equal(res.err, LLM_ERR_RANGE);
	assert_string_equal(res.error_code, "context_length_exceeded");
	char num[32];
	snprintf(num, sizeof num, "%d", MAXPOS);
	assert_non_null(strstr(res.error_message, num));
	snprintf(num, sizeof num, "%zu", ids.n);
	assert_non_null(strstr(res.error_message, num));
	llm_result_clear(&res);
	free(body);
	json_decref(req);
	/* The prompt fits but the answer would not. */
	expect_error(b, LLM_EP_COMPLETIONS, "{\"prompt\": \"The cat\", \"max_tokens\": 200}",
		     LLM_ERR_RANGE, "context_length_exceeded", "128");
	expect_error(b, LLM_EP_COMPLETIONS, "{\"prompt\": \"The cat\", \"max_tokens\": 200}",
		     LLM_ERR_RANGE, "context_length_exceeded", "200");
	llm_buf_free(&prompt);
	llm_bpe_ids_free(&ids);
	llm_backend_close(b);
}

struct deltas {
	struct llm_buf text[2];
	uint64_t tag;
};

static void on_delta(void *ctx, uint64_t tag, int choice, const char *text, size_t n)
{
	struct deltas *d = ctx;
	assert_int_equal(tag, d->tag);
	assert_true(choice >= 0 && choice < 2);
	assert_int_equal(llm_buf_append(&d->text[choice], text, n), LLM_OK);
}

/* on_delta streams the pieces of each choice; they make its text. */
static void deltas_stream_each_choice(void **state)
{
	(void)state;
	struct deltas dl = {.tag = 99};
	llm_buf_init(&dl.text[0], 0);
	llm_buf_init(&dl.text[1], 0);
	struct llm_backend_opts o;
	llm_backend_opts_init(&o);
	o.ref = model_dir;
	o.concurrency = 2;
	o.threads = 1;
	o.model_name = "tiny-test";
	o.on_delta = on_delta;
	o.on_delta_ctx = &dl;
	struct llm_backend *b;
	assert_int_equal(llm_backend_open(&b, &o, NULL), LLM_OK);
	assert_string_equal(llm_backend_model(b), "tiny-test");
	struct llm_result res;
	json_t *x = ask(b, LLM_EP_CHAT,
			"{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"n\": 2, "
			"\"max_tokens\": 12, \"seed\": 9}",
			&res);
	assert_non_null(x);
	assert_true(res.ttft_ms >= 0 && res.latency_ms >= res.ttft_ms);
	assert_int_equal(res.attempts, 1);
	assert_string_equal(json_string_value(json_object_get(x, "model")), "tiny-test");
	for (int i = 0; i < 2; i++)
		assert_string_equal(dl.text[i].data ? dl.text[i].data : "", text_of(x, (size_t)i));
	llm_result_clear(&res);
	json_decref(x);
	llm_buf_free(&dl.text[0]);
	llm_buf_free(&dl.text[1]);
	llm_backend_close(b);
}

/* Closing with requests still pending frees them. */
static void close_with_pending_requests(void **state)
{
	(void)state;
	struct llm_backend *b = open_engine(1);
	submit(b, 1, LLM_EP_COMPLETIONS, "{\"prompt\": \"The\", \"max_tokens\": 3}");
	submit(b, 2, LLM_EP_COMPLETIONS, "{\"prompt\": \"The\", \"max_tokens\": 3, \"n\": 3}");
	submit(b, 3, LLM_EP_COMPLETIONS, "{\"prompt\": 1}");
	assert_int_equal(llm_backend_pending(b), 3);
	struct llm_result res;
	assert_int_equal(llm_backend_next(b, &res, NULL), 1);
	assert_int_equal(res.tag, 3); /* the bad one is ready first */
	llm_result_clear(&res);
	llm_backend_close(b);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(greedy_completion_equals_llm_generate),
	    cmocka_unit_test(greedy_chat_equals_llm_generate_on_chatml),
	    cmocka_unit_test(a_models_chat_template_is_used),
	    cmocka_unit_test(a_gguf_file_answers_as_its_directory),
	    cmocka_unit_test(batched_results_equal_one_at_a_time),
	    cmocka_unit_test(echo_logprobs_score_the_prompt),
	    cmocka_unit_test(chat_logprobs_have_openais_shape),
	    cmocka_unit_test(stop_strings_cut_the_text),
	    cmocka_unit_test(n_choices_with_a_seed_are_deterministic),
	    cmocka_unit_test(bad_fields_are_invalid_request_errors),
	    cmocka_unit_test(context_overflow_names_both_numbers),
	    cmocka_unit_test(deltas_stream_each_choice),
	    cmocka_unit_test(close_with_pending_requests),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
