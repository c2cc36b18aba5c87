/* Unit tests of the engine core: the model config (config.json), the matrix kernels, and the
 * Llama decoder's forward and backward passes.
 *
 * Two kinds of numerical check, each with its tolerance stated where it is applied:
 *   - finite differences: every parameter tensor's gradient, on small random models with
 *     grouped-query attention, tied and untied heads, and a loss mask;
 *   - PyTorch: logits, loss and every gradient against tests/data/engine, which
 *     scripts/maint/make-engine-reference writes from the same weights in plain PyTorch. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/rand.h"
#include "engine/hparams.h"
#include "engine/matmul.h"
#include "engine/model.h"

/* --- helpers -------------------------------------------------------------------------------- */

static const char *data_path(const char *rel)
{
	static char path[4096];
	const char *top = getenv("top_srcdir");
	snprintf(path, sizeof path, "%s/tests/data/engine/%s", top ? top : ".", rel);
	return path;
}

static char tmpdir[256];

static int make_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test-engine.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	char path[512];
	snprintf(path, sizeof path, "%s/config.json", tmpdir);
	unlink(path);
	return rmdir(tmpdir);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Load text as a config through a file, returning the code; diag gets the message. */
static enum llm_err load_text(const char *text, struct llm_model_config *c, struct llm_diag *d)
{
	char path[512];
	snprintf(path, sizeof path, "%s/config.json", tmpdir);
	write_text(path, text);
	return llm_model_config_load(c, path, d);
}

/* A small model shape for the gradient checks: 4 query heads sharing 2 key/value heads. */
static struct llm_model_config small_config(bool tied)
{
	struct llm_model_config c = {
	    .vocab_size = 29,
	    .hidden_size = 16,
	    .intermediate_size = 24,
	    .num_hidden_layers = 2,
	    .num_attention_heads = 4,
	    .num_key_value_heads = 2,
	    .max_position_embeddings = 12,
	    .rms_norm_eps = 1e-5,
	    .rope_theta = 10000.0,
	    .tie_word_embeddings = tied,
	    .bos_token_id = -1,
	    .eos_token_id = -1,
	};
	return c;
}

static struct llm_model *new_model(const struct llm_model_config *c, uint64_t seed, float std)
{
	struct llm_model *m = NULL;
	struct llm_diag d;
	if (llm_model_new(&m, c, &d))
		fail_msg("llm_model_new: %s", d.msg);
	llm_model_init_random(m, seed, std);
	return m;
}

static void random_ids(uint32_t *ids, size_t n, int vocab, uint64_t seed)
{
	struct llm_rand r;
	llm_rand_seed(&r, seed);
	for (size_t i = 0; i < n; i++)
		ids[i] = (uint32_t)llm_rand_below(&r, (uint64_t)vocab);
}

static float forward_loss(struct llm_model *m, const uint32_t *tok, const uint32_t *tgt,
			  const float *mask, int B, int T)
{
	float loss = NAN;
	struct llm_diag d;
	if (llm_model_forward(m, tok, tgt, mask, B, T, &loss, &d))
		fail_msg("forward: %s", d.msg);
	return loss;
}

/* --- config --------------------------------------------------------------------------------- */

static void test_config_presets_are_valid_and_tiny_is_1_to_3M(void **state)
{
	struct llm_model_config c;
	for (const char *const *n = llm_model_config_preset_names(); *n; n++) {
		assert_int_equal(llm_model_config_preset(&c, *n, NULL), LLM_OK);
		assert_int_equal(llm_model_config_check(&c, NULL, NULL), LLM_OK);
	}
	assert_int_equal(llm_model_config_preset(&c, "tiny", NULL), LLM_OK);
	size_t n = llm_model_config_num_params(&c);
	assert_true(n >= 1000000 && n <= 3000000);
	assert_int_equal(c.num_key_value_heads * 2, c.num_attention_heads);
	struct llm_diag d;
	assert_int_equal(llm_model_config_preset(&c, "huge", &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "huge"));
}

static void test_config_round_trips_through_config_json(void **state)
{
	struct llm_model_config a, b;
	assert_int_equal(llm_model_config_preset(&a, "small", NULL), LLM_OK);
	a.bos_token_id = 1, a.eos_token_id = 7, a.rms_norm_eps = 1e-6, a.rope_theta = 500000.0;
	a.tie_word_embeddings = false;
	char path[512];
	snprintf(path, sizeof path, "%s/config.json", tmpdir);
	struct llm_diag d;
	assert_int_equal(llm_model_config_save(&a, path, &d), LLM_OK);
	assert_int_equal(llm_model_config_load(&b, path, &d), LLM_OK);
	assert_memory_equal(&a, &b, sizeof a);

	/* The file is what transformers expects, and 1e-6 is written without float noise. */
	json_t *root = json_load_file(path, 0, NULL);
	assert_non_null(root);
	assert_string_equal(json_string_value(json_object_get(root, "model_type")), "llama");
	assert_string_equal(
	    json_string_value(json_array_get(json_object_get(root, "architectures"), 0)),
	    "LlamaForCausalLM");
	assert_int_equal(json_integer_value(json_object_get(root, "head_dim")), 64);
	json_decref(root);
	FILE *f = fopen(path, "r");
	char text[4096] = {0};
	assert_true(fread(text, 1, sizeof text - 1, f) > 0);
	fclose(f);
	assert_non_null(strstr(text, "\"rms_norm_eps\": 1e-6,"));
	assert_non_null(strstr(text, "\"rope_theta\": 500000.0"));

	/* No ids: null in the file, -1 again on reading. */
	a.bos_token_id = a.eos_token_id = -1;
	assert_int_equal(llm_model_config_save(&a, path, &d), LLM_OK);
	assert_int_equal(llm_model_config_load(&b, path, &d), LLM_OK);
	assert_int_equal(b.bos_token_id, -1);
	assert_int_equal(b.eos_token_id, -1);
}

static void test_config_reads_the_pytorch_reference_and_hf_defaults(void **state)
{
	struct llm_model_config c;
	struct llm_diag d;
	assert_int_equal(llm_model_config_load(&c, data_path("tied/config.json"), &d), LLM_OK);
	assert_int_equal(c.vocab_size, 64);
	assert_int_equal(c.num_key_value_heads, 2);
	assert_true(c.tie_word_embeddings);
	assert_int_equal(c.bos_token_id, 1);

	/* Only the five sizes: LlamaConfig's defaults fill the rest. */
	assert_int_equal(load_text("{\"vocab_size\": 100, \"hidden_size\": 64, "
				   "\"intermediate_size\": 128, \"num_hidden_layers\": 2, "
				   "\"num_attention_heads\": 4, \"eos_token_id\": [5, 6]}",
				   &c, &d),
			 LLM_OK);
	assert_int_equal(c.num_key_value_heads, 4);
	assert_int_equal(c.max_position_embeddings, 2048);
	assert_true(c.rms_norm_eps == 1e-6);
	assert_true(c.rope_theta == 10000.0);
	assert_false(c.tie_word_embeddings);
	assert_int_equal(c.bos_token_id, 1);
	assert_int_equal(c.eos_token_id, 5);
}

static void test_config_errors_name_the_file_and_key(void **state)
{
	static const struct {
		const char *text;
		enum llm_err code;
		const char *want; /* in the message */
	} cases[] = {
	    {"{\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2, "
	     "\"num_attention_heads\": 4}",
	     LLM_ERR_MISSING, "vocab_size"},
	    {"{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128, "
	     "\"num_attention_heads\": 4}",
	     LLM_ERR_MISSING, "num_hidden_layers"},
	    {"{\"vocab_size\": \"100\", \"hidden_size\": 64, \"intermediate_size\": 128, "
	     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
	     LLM_ERR_TYPE, "vocab_size"},
	    {"{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": -1, "
	     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
	     LLM_ERR_RANGE, "intermediate_size"},
	    {"{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128, "
	     "\"num_hidden_layers\": 2, \"num_attention_heads\": 5}",
	     LLM_ERR_RANGE, "num_attention_heads"},
	    {"{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128, "
	     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 3}",
	     LLM_ERR_RANGE, "num_key_value_heads"},
	    {"{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128, "
	     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"rms_norm_eps\": 0}",
	     LLM_ERR_RANGE, "rms_norm_eps"},
	    {"{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128, "
	     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"rope_theta\": \"x\"}",
	     LLM_ERR_TYPE, "rope_theta"},
	    {"{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128, "
	     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"hidden_act\": \"gelu\"}",
	     LLM_ERR_RANGE, "hidden_act"},
	    {"{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128, "
	     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
	     "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}",
	     LLM_ERR_RANGE, "rope_scaling"},
	    {"{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128, "
	     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"head_dim\": 32}",
	     LLM_ERR_RANGE, "head_dim"},
	    {"{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128, "
	     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"eos_token_id\": 100}",
	     LLM_ERR_RANGE, "eos_token_id"},
	    {"{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128, "
	     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"tie_word_embeddings\": 1}",
	     LLM_ERR_TYPE, "tie_word_embeddings"},
	    {"{\"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128, "
	     "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"model_type\": \"gpt2\"}",
	     LLM_ERR_RANGE, "model_type"},
	    {"[1, 2]", LLM_ERR_TYPE, "object"},
	    {"{\"vocab_size\": 100,", LLM_ERR_JSON, ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct llm_model_config c;
		struct llm_diag d = {0};
		enum llm_err e = load_text(cases[i].text, &c, &d);
		if (e != cases[i].code)
			fail_msg("case %zu: got %d (%s), want %d", i, e, d.msg, cases[i].code);
		if (!strstr(d.msg, cases[i].want))
			fail_msg("case %zu: message '%s' does not name '%s'", i, d.msg,
				 cases[i].want);
		assert_non_null(strstr(d.file, "config.json"));
	}
	struct llm_model_config c;
	struct llm_diag d;
	assert_int_equal(llm_model_config_load(&c, "/nonexistent/config.json", &d),
			 LLM_ERR_NOT_FOUND);
	assert_string_equal(d.file, "/nonexistent/config.json");
}

/* --- matmul --------------------------------------------------------------------------------- */

/* op(X)[r][c] of a row-major X with leading dimension ld. */
static double at(const float *X, int ld, bool t, int r, int c)
{
	return t ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
}

/* Every transpose combination, odd sizes around the kernel's blocks, leading dimensions wider
 * than the rows, beta 0 (with NaN in C, which must not propagate), 1 and 0.5, and a size big
 * enough to take the threaded path.  Against a double-precision product: error ≤ 1e-5 of
 * Σ|a·b| per entry (float rounding over K terms). */
static void test_matmul_matches_double_precision_product(void **state)
{
	static const int sizes[][3] = {{1, 1, 1},     {7, 5, 3},      {6, 16, 256},  {13, 33, 300},
				       {100, 70, 90}, {97, 129, 513}, {300, 200, 64}};
	struct llm_rand r;
	llm_rand_seed(&r, 7);
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		int M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
		for (int tr = 0; tr < 4; tr++) {
			bool ta = tr & 1, tb = tr & 2;
			int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
			size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
			size_t nc = (size_t)M * ldc;
			float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B);
			float *C = malloc(nc * sizeof *C), *C0 = malloc(nc * sizeof *C0);
			assert_true(A && B && C && C0);
			for (size_t i = 0; i < na; i++)
				A[i] = (float)(llm_rand_double(&r) * 2 - 1);
			for (size_t i = 0; i < nb; i++)
				B[i] = (float)(llm_rand_double(&r) * 2 - 1);
			const float betas[] = {0.0f, 1.0f, 0.5f};
			for (int bi = 0; bi < 3; bi++) {
				float beta = betas[bi], alpha = bi == 2 ? -0.75f : 1.0f;
				for (size_t i = 0; i < nc; i++)
					C0[i] = C[i] = beta == 0 ? NAN : (float)llm_rand_double(&r);
				llm_matmul(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
				for (int i = 0; i < M; i++)
					for (int j = 0; j < N; j++) {
						double want = 0, mag = 0;
						for (int k = 0; k < K; k++) {
							double p = at(A, lda, ta, i, k) *
								   at(B, ldb, tb, k, j);
							want += p;
							mag += fabs(p);
						}
						want *= alpha;
						if (beta != 0)
							want +=
							    beta * (double)C0[(size_t)i * ldc + j];
						double got = C[(size_t)i * ldc + j];
						if (!(fabs(got - want) <= 1e-5 * (mag + 1)))
							fail_msg(
							    "%dx%dx%d ta=%d tb=%d beta=%g [%d,%d]: "
							    "%g, want %g",
							    M, N, K, ta, tb, beta, i, j, got, want);
					}
				/* The padding between rows is not written. */
				for (int i = 0; i < M; i++)
					for (int j = N; j < ldc; j++) {
						float g = C[(size_t)i * ldc + j];
						float w = C0[(size_t)i * ldc + j];
						assert_true(g == w || (isnan(g) && isnan(w)));
					}
			}
			free(A), free(B), free(C), free(C0);
		}
	}
	/* Where configure found OpenBLAS, the products above went to it (opened at the first). */
#ifdef HAVE_OPENBLAS
	assert_string_equal(llm_matmul_backend(), "openblas");
#else
	assert_non_null(llm_matmul_backend());
#endif
}

/* --- model structure ------------------------------------------------------------------------ */

static void test_model_names_shapes_and_layout_follow_hugging_face(void **state)
{
	struct llm_model_config c = small_config(false);
	struct llm_model *m = new_model(&c, 1, 0.02f);
	size_t n = llm_model_param_count(m);
	assert_int_equal(n, 2 + 9 * 2 + 1);
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		struct llm_param p;
		llm_model_param(m, i, &p);
		total += p.numel;
		assert_int_equal(llm_model_param_find(m, p.name), (long)i);
		assert_null(p.grad);
	}
	assert_int_equal(total, m->num_params);
	assert_int_equal(total, llm_model_config_num_params(&c));

	struct llm_param p;
	llm_model_param(
	    m, (size_t)llm_model_param_find(m, "model.layers.1.self_attn.k_proj.weight"), &p);
	assert_int_equal(p.ndim, 2);
	assert_int_equal(p.shape[0], 8); /* 2 kv heads of 4 */
	assert_int_equal(p.shape[1], 16);
	assert_ptr_equal(p.data, m->w.layer[1].wk);
	llm_model_param(m, (size_t)llm_model_param_find(m, "model.layers.0.mlp.down_proj.weight"),
			&p);
	assert_int_equal(p.shape[0], 16);
	assert_int_equal(p.shape[1], 24);
	llm_model_param(m, (size_t)llm_model_param_find(m, "model.norm.weight"), &p);
	assert_int_equal(p.ndim, 1);
	assert_true(p.data[0] == 1.0f);
	assert_ptr_equal(p.data, m->w.norm);
	llm_model_param(m, (size_t)llm_model_param_find(m, "lm_head.weight"), &p);
	assert_ptr_equal(p.data, m->w.lm_head);
	assert_int_equal(llm_model_param_find(m, "model.layers.2.mlp.up_proj.weight"), -1);
	llm_model_free(m);

	c = small_config(true);
	m = new_model(&c, 1, 0.02f);
	assert_int_equal(llm_model_param_count(m), 2 + 9 * 2);
	assert_int_equal(llm_model_param_find(m, "lm_head.weight"), -1);
	assert_ptr_equal(m->w.lm_head, m->w.embed);
	assert_int_equal(llm_model_zero_grad(m, NULL), LLM_OK);
	assert_ptr_equal(m->g.lm_head, m->g.embed);
	llm_model_free(m);
}

static void test_init_is_seeded_with_the_stated_spread(void **state)
{
	struct llm_model_config c;
	assert_int_equal(llm_model_config_preset(&c, "tiny", NULL), LLM_OK);
	struct llm_model *a = new_model(&c, 42, 0.02f), *b = new_model(&c, 42, 0.02f);
	assert_memory_equal(a->params, b->params, a->num_params * sizeof(float));
	double s = 0, ss = 0;
	size_t n = (size_t)c.vocab_size * c.hidden_size;
	for (size_t i = 0; i < n; i++)
		s += a->w.embed[i], ss += (double)a->w.embed[i] * a->w.embed[i];
	assert_true(fabs(s / n) < 1e-3);
	assert_true(fabs(sqrt(ss / n) - 0.02) < 1e-3);
	assert_true(a->w.layer[3].ffn_norm[5] == 1.0f);
	llm_model_free(b);
	b = new_model(&c, 43, 0.02f);
	assert_true(memcmp(a->params, b->params, a->num_params * sizeof(float)) != 0);
	llm_model_free(a);
	llm_model_free(b);
}

static void test_forward_rejects_bad_ids_and_lengths_and_backward_needs_targets(void **state)
{
	struct llm_model_config c = small_config(true);
	struct llm_model *m = new_model(&c, 3, 0.1f);
	uint32_t tok[24] = {0};
	struct llm_diag d;
	tok[5] = 29;
	assert_int_equal(llm_model_forward(m, tok, NULL, NULL, 2, 12, NULL, &d), LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "vocab_size"));
	tok[5] = 0;
	assert_int_equal(llm_model_forward(m, tok, NULL, NULL, 1, 13, NULL, &d), LLM_ERR_RANGE);
	assert_int_equal(llm_model_forward(m, tok, NULL, NULL, 2, 12, NULL, &d), LLM_OK);
	assert_int_equal(llm_model_backward(m, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_model_forward(m, tok, tok, NULL, 2, 12, NULL, &d), LLM_OK);
	assert_int_equal(llm_model_backward(m, &d), LLM_OK);
	assert_int_equal(llm_model_backward(m, &d), LLM_ERR_USAGE);
	llm_model_free(m);
}

/* A sequence's logits do not depend on later tokens (causal mask) nor on the other sequences of
 * the batch; the logits of a batch equal those of each sequence alone. */
static void test_attention_is_causal_and_sequences_are_independent(void **state)
{
	struct llm_model_config c = small_config(false);
	struct llm_model *m = new_model(&c, 5, 0.2f);
	enum { T = 10 };
	uint32_t tok[2 * T];
	random_ids(tok, 2 * T, c.vocab_size, 11);
	size_t V = (size_t)c.vocab_size;
	float *batch = malloc(2 * T * V * sizeof(float)), *alone = malloc(T * V * sizeof(float));
	assert_true(batch && alone);
	assert_int_equal(llm_model_forward(m, tok, NULL, NULL, 2, T, NULL, NULL), LLM_OK);
	memcpy(batch, m->logits, 2 * T * V * sizeof(float));
	assert_int_equal(llm_model_forward(m, tok + T, NULL, NULL, 1, T, NULL, NULL), LLM_OK);
	for (size_t i = 0; i < T * V; i++)
		assert_true(fabsf(m->logits[i] - batch[T * V + i]) <= 1e-5f);
	/* Change the last 4 tokens: the first 6 positions keep their logits, later ones move. */
	memcpy(alone, m->logits, T * V * sizeof(float));
	for (int t = 6; t < T; t++)
		tok[T + t] = (tok[T + t] + 1) % (uint32_t)c.vocab_size;
	assert_int_equal(llm_model_forward(m, tok + T, NULL, NULL, 1, T, NULL, NULL), LLM_OK);
	for (size_t i = 0; i < 6 * V; i++)
		assert_true(fabsf(m->logits[i] - alone[i]) <= 1e-5f);
	double moved = 0;
	for (size_t i = 6 * V; i < T * V; i++)
		moved += fabs(m->logits[i] - alone[i]);
	assert_true(moved > 1e-3);
	free(batch);
	free(alone);
	llm_model_free(m);
}

/* A packed row (several documents back to back, positions restarting at each) gives each
 * document the logits, loss and gradients it has alone in a row.  Documents longer than the
 * attention block (64) and ones that straddle a block edge check the block's first key. */
static void test_packed_rows_equal_one_document_per_row(void **state)
{
	struct llm_model_config c = small_config(false);
	c.max_position_embeddings = 160;
	struct llm_model *m = new_model(&c, 9, 0.2f);
	enum { NDOC = 4, T = 160 };
	static const int len[NDOC] = {70, 5, 50, 31}; /* 156 tokens, 4 of padding */
	uint32_t tok[T], tgt[T], pos[T];
	float mask[T];
	random_ids(tok, T, c.vocab_size, 41);
	random_ids(tgt, T, c.vocab_size, 42);
	int at = 0;
	for (int d = 0; d < NDOC; d++)
		for (int i = 0; i < len[d]; i++, at++) {
			pos[at] = (uint32_t)i;
			mask[at] = 1.0f;
		}
	for (; at < T; at++) {
		pos[at] = 0;
		mask[at] = 0.0f;
	}
	size_t V = (size_t)c.vocab_size;
	float loss;
	assert_int_equal(llm_model_forward_packed(m, tok, tgt, mask, pos, 1, T, &loss, NULL),
			 LLM_OK);
	float *logits = malloc(T * V * sizeof(float)), *g = malloc(m->num_params * sizeof(float));
	assert_true(logits && g);
	memcpy(logits, m->logits, T * V * sizeof(float));
	assert_int_equal(llm_model_zero_grad(m, NULL), LLM_OK);
	assert_int_equal(llm_model_backward(m, NULL), LLM_OK);
	memcpy(g, m->grads, m->num_params * sizeof(float));

	/* The same documents one per row (padded, weight 0): the loss is the same weighted mean
	 * and, since backward accumulates, one pass over all rows gives the same gradient. */
	uint32_t rtok[NDOC * 70] = {0}, rtgt[NDOC * 70] = {0};
	float rmask[NDOC * 70] = {0};
	at = 0;
	for (int d = 0; d < NDOC; d++)
		for (int i = 0; i < len[d]; i++, at++) {
			rtok[d * 70 + i] = tok[at];
			rtgt[d * 70 + i] = tgt[at];
			rmask[d * 70 + i] = 1.0f;
		}
	float rloss = forward_loss(m, rtok, rtgt, rmask, NDOC, 70);
	assert_true(fabsf(rloss - loss) <= 1e-5f * fabsf(loss));
	at = 0;
	for (int d = 0; d < NDOC; d++)
		for (int i = 0; i < len[d]; i++, at++)
			for (size_t v = 0; v < V; v++)
				assert_true(fabsf(m->logits[((size_t)d * 70 + i) * V + v] -
						  logits[(size_t)at * V + v]) <= 1e-4f);
	assert_int_equal(llm_model_zero_grad(m, NULL), LLM_OK);
	assert_int_equal(llm_model_backward(m, NULL), LLM_OK);
	double worst = 0;
	for (size_t i = 0; i < m->num_params; i++) {
		double e = fabs(m->grads[i] - g[i]) / (1e-3 + fabs(g[i]));
		worst = e > worst ? e : worst;
	}
	if (worst > 1e-3)
		fail_msg("packed gradients differ from one-row gradients by %g (relative)", worst);

	/* Positions that skip are refused. */
	pos[10] = 12;
	struct llm_diag d;
	assert_int_equal(llm_model_forward_packed(m, tok, tgt, mask, pos, 1, T, NULL, &d),
			 LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "token 10"));
	free(logits);
	free(g);
	llm_model_free(m);
}

/* --- gradients by finite differences -------------------------------------------------------- */

/* The loss as a function of one parameter entry, in float32 like the model itself. */
static double loss_at(struct llm_model *m, float *p, float value, const uint32_t *tok,
		      const uint32_t *tgt, const float *mask, int B, int T)
{
	float saved = *p;
	*p = value;
	double l = forward_loss(m, tok, tgt, mask, B, T);
	*p = saved;
	return l;
}

/* For every parameter tensor, compare the analytic gradient with a central difference of the
 * loss: at the 2 entries of largest gradient and 4 random ones.  Step h = 1e-2 on weights of
 * spread 0.3 (0.02 would leave the model nearly linear and test little); the float32 loss is
 * accurate to ~1e-6, so the difference is good to ~1e-4 plus O(h²) curvature.  Tolerance:
 * |fd − g| ≤ 2e-2·|g| + 2e-3·max|g over the tensor| + 1e-4. */
static void check_gradients(bool tied, const float *mask)
{
	struct llm_model_config c = small_config(tied);
	struct llm_model *m = new_model(&c, tied ? 17 : 18, 0.3f);
	/* Norm weights away from one, so their gradients are not a special case. */
	struct llm_rand r;
	llm_rand_seed(&r, 99);
	size_t np = llm_model_param_count(m);
	for (size_t i = 0; i < np; i++) {
		struct llm_param p;
		llm_model_param(m, i, &p);
		if (p.ndim == 1)
			for (size_t j = 0; j < p.numel; j++)
				p.data[j] = (float)(0.7 + 0.6 * llm_rand_double(&r));
	}
	enum { B = 2, T = 9 };
	uint32_t tok[B * T], tgt[B * T];
	random_ids(tok, B * T, c.vocab_size, 21);
	random_ids(tgt, B * T, c.vocab_size, 22);
	assert_int_equal(llm_model_zero_grad(m, NULL), LLM_OK);
	forward_loss(m, tok, tgt, mask, B, T);
	assert_int_equal(llm_model_backward(m, NULL), LLM_OK);
	float *grads = malloc(m->num_params * sizeof(float));
	assert_non_null(grads);
	memcpy(grads, m->grads, m->num_params * sizeof(float));

	const float h = 1e-2f;
	double worst = 0;
	for (size_t i = 0; i < np; i++) {
		struct llm_param p;
		llm_model_param(m, i, &p);
		const float *g = grads + (p.data - m->params);
		size_t pick[6] = {0, 0};
		double gmax = 0;
		for (size_t j = 0; j < p.numel; j++) {
			double a = fabs(g[j]);
			if (a > gmax)
				gmax = a, pick[1] = pick[0], pick[0] = j;
		}
		for (int k = 2; k < 6; k++)
			pick[k] = (size_t)llm_rand_below(&r, p.numel);
		if (gmax == 0)
			fail_msg("%s: gradient is all zero", p.name);
		for (int k = 0; k < 6; k++) {
			float *x = p.data + pick[k];
			double up = loss_at(m, x, *x + h, tok, tgt, mask, B, T);
			double down = loss_at(m, x, *x - h, tok, tgt, mask, B, T);
			double fd = (up - down) / (2.0 * h), an = g[pick[k]];
			double err = fabs(fd - an), tol = 2e-2 * fabs(an) + 2e-3 * gmax + 1e-4;
			if (err / tol > worst)
				worst = err / tol;
			if (!(err <= tol))
				fail_msg("%s[%zu] (%s head%s): analytic %.6g, finite difference "
					 "%.6g",
					 p.name, pick[k], tied ? "tied" : "untied",
					 mask ? ", masked" : "", an, fd);
		}
	}
	print_message("# finite differences (%s%s): worst error %.2f of tolerance\n",
		      tied ? "tied" : "untied", mask ? ", masked" : "", worst);
	free(grads);
	llm_model_free(m);
}

static void test_gradients_match_finite_differences_untied(void **state)
{
	check_gradients(false, NULL);
}

static void test_gradients_match_finite_differences_tied_with_loss_mask(void **state)
{
	float mask[18];
	for (int i = 0; i < 18; i++)
		mask[i] = (i % 9) < 4 ? 0.0f : 1.0f; /* a 4-token prompt per sequence */
	check_gradients(true, mask);
}

/* Masked targets do not count: the loss is the mean over the others, changing a masked target
 * changes nothing, and with every weight zero the loss and gradients are zero. */
static void test_loss_mask_leaves_masked_targets_out(void **state)
{
	struct llm_model_config c = small_config(false);
	struct llm_model *m = new_model(&c, 8, 0.2f);
	enum { B = 2, T = 6, N = B * T };
	uint32_t tok[N], tgt[N];
	random_ids(tok, N, c.vocab_size, 31);
	random_ids(tgt, N, c.vocab_size, 32);
	float mask[N], one[N];
	for (int i = 0; i < N; i++)
		mask[i] = i % 3 == 0 ? 0.0f : 1.0f;
	/* The masked mean equals the mean of single-position losses over unmasked positions. */
	double sum = 0;
	for (int i = 0; i < N; i++) {
		if (mask[i] == 0)
			continue;
		for (int j = 0; j < N; j++)
			one[j] = j == i ? 1.0f : 0.0f;
		sum += forward_loss(m, tok, tgt, one, B, T);
	}
	float masked = forward_loss(m, tok, tgt, mask, B, T);
	assert_true(fabs(masked - sum / 8) <= 1e-5 * fabs(masked));

	assert_int_equal(llm_model_zero_grad(m, NULL), LLM_OK);
	assert_int_equal(llm_model_backward(m, NULL), LLM_OK);
	float *g1 = malloc(m->num_params * sizeof(float));
	assert_non_null(g1);
	memcpy(g1, m->grads, m->num_params * sizeof(float));
	tgt[3] = (tgt[3] + 5) % (uint32_t)c.vocab_size; /* mask[3] is 0 */
	assert_true(forward_loss(m, tok, tgt, mask, B, T) == masked);
	assert_int_equal(llm_model_zero_grad(m, NULL), LLM_OK);
	assert_int_equal(llm_model_backward(m, NULL), LLM_OK);
	assert_memory_equal(g1, m->grads, m->num_params * sizeof(float));

	/* Backward accumulates: a second pass doubles the gradient. */
	forward_loss(m, tok, tgt, mask, B, T);
	assert_int_equal(llm_model_backward(m, NULL), LLM_OK);
	for (size_t i = 0; i < m->num_params; i++)
		assert_true(fabsf(m->grads[i] - 2 * g1[i]) <= 1e-6f * (1 + fabsf(g1[i])));

	for (int i = 0; i < N; i++)
		mask[i] = 0.0f;
	assert_true(forward_loss(m, tok, tgt, mask, B, T) == 0.0f);
	assert_int_equal(llm_model_zero_grad(m, NULL), LLM_OK);
	assert_int_equal(llm_model_backward(m, NULL), LLM_OK);
	for (size_t i = 0; i < m->num_params; i++)
		assert_true(m->grads[i] == 0.0f);
	free(g1);
	llm_model_free(m);
}

/* --- against PyTorch ------------------------------------------------------------------------ */

struct ref_tensor {
	char name[128];
	int dtype; /* 0 float32, 1 int32 */
	int ndim;
	int64_t dims[4];
	size_t numel;
	void *data;
};

struct ref_file {
	struct ref_tensor *t;
	size_t n;
};

static uint32_t rd_u32(FILE *f)
{
	unsigned char b[4];
	assert_int_equal(fread(b, 1, 4, f), 4);
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Read ref.bin (format in scripts/maint/make-engine-reference); little-endian host assumed,
 * as the engine's checkpoints assume. */
static void ref_load(struct ref_file *rf, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s (run scripts/maint/make-engine-reference)", path);
	char magic[8];
	assert_int_equal(fread(magic, 1, 8, f), 8);
	assert_memory_equal(magic, "LLMTREF1", 8);
	rf->n = rd_u32(f);
	rf->t = calloc(rf->n, sizeof *rf->t);
	assert_non_null(rf->t);
	for (size_t i = 0; i < rf->n; i++) {
		struct ref_tensor *t = &rf->t[i];
		uint32_t len = rd_u32(f);
		assert_true(len < sizeof t->name);
		assert_int_equal(fread(t->name, 1, len, f), len);
		t->dtype = (int)rd_u32(f);
		t->ndim = (int)rd_u32(f);
		assert_true(t->ndim <= 4);
		t->numel = 1;
		for (int k = 0; k < t->ndim; k++) {
			assert_int_equal(fread(&t->dims[k], 8, 1, f), 1);
			t->numel *= (size_t)t->dims[k];
		}
		t->data = malloc(t->numel * 4 + 1);
		assert_non_null(t->data);
		assert_int_equal(fread(t->data, 4, t->numel, f), t->numel);
	}
	fclose(f);
}

static void ref_free(struct ref_file *rf)
{
	for (size_t i = 0; i < rf->n; i++)
		free(rf->t[i].data);
	free(rf->t);
}

static const struct ref_tensor *ref_get(const struct ref_file *rf, const char *name)
{
	for (size_t i = 0; i < rf->n; i++)
		if (strcmp(rf->t[i].name, name) == 0)
			return &rf->t[i];
	fail_msg("reference has no %s", name);
	return NULL;
}

/* max |got − want| ≤ rtol · max |want|, tensor by tensor: relative to the tensor's scale, since
 * entry-wise relative error is meaningless for entries near zero.  Returns the ratio. */
static double compare(const char *what, const float *got, const float *want, size_t n, double rtol)
{
	double emax = 0, wmax = 0;
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)got[i] - want[i]);
		emax = e > emax ? e : emax;
		wmax = fabs(want[i]) > wmax ? fabs(want[i]) : wmax;
	}
	if (!(emax <= rtol * wmax))
		fail_msg("%s: max error %.3g against max |reference| %.3g (tolerance %.0e)", what,
			 emax, wmax, rtol);
	return wmax > 0 ? emax / wmax : 0;
}

/* Tolerance: 1e-4 of each tensor's largest magnitude for logits, loss and every gradient.
 * Both sides are float32; the differences come from summation order. */
static void check_against_pytorch(const char *name)
{
	char path[256];
	snprintf(path, sizeof path, "%s/config.json", name);
	struct llm_model_config c;
	struct llm_diag d;
	if (llm_model_config_load(&c, data_path(path), &d))
		fail_msg("%s: %s", d.file, d.msg);
	struct llm_model *m = NULL;
	assert_int_equal(llm_model_new(&m, &c, NULL), LLM_OK);
	struct ref_file rf;
	snprintf(path, sizeof path, "%s/ref.bin", name);
	ref_load(&rf, data_path(path));

	size_t np = llm_model_param_count(m);
	for (size_t i = 0; i < np; i++) {
		struct llm_param p;
		llm_model_param(m, i, &p);
		const struct ref_tensor *t = ref_get(&rf, p.name);
		assert_int_equal(t->ndim, p.ndim);
		assert_int_equal(t->dims[0], p.shape[0]);
		if (p.ndim == 2)
			assert_int_equal(t->dims[1], p.shape[1]);
		memcpy(p.data, t->data, p.numel * sizeof(float));
	}
	const struct ref_tensor *tok = ref_get(&rf, "tokens"), *tgt = ref_get(&rf, "targets");
	const struct ref_tensor *mask = ref_get(&rf, "loss_mask"), *logits = ref_get(&rf, "logits");
	int N = (int)tok->numel, V = c.vocab_size, B = 2, T = N / B;
	assert_int_equal((size_t)N * V, logits->numel);

	float loss;
	assert_int_equal(llm_model_zero_grad(m, NULL), LLM_OK);
	assert_int_equal(llm_model_forward(m, tok->data, tgt->data, mask->data, B, T, &loss, &d),
			 LLM_OK);
	double worst = compare("logits", m->logits, logits->data, logits->numel, 1e-4);
	double r = compare("loss", &loss, ref_get(&rf, "loss")->data, 1, 1e-4);
	worst = r > worst ? r : worst;
	assert_int_equal(llm_model_backward(m, NULL), LLM_OK);
	for (size_t i = 0; i < np; i++) {
		struct llm_param p;
		llm_model_param(m, i, &p);
		char gname[128];
		snprintf(gname, sizeof gname, "grad.%s", p.name);
		r = compare(gname, p.grad, ref_get(&rf, gname)->data, p.numel, 1e-4);
		worst = r > worst ? r : worst;
	}
	print_message("# PyTorch reference (%s): worst relative error %.2e (tolerance 1e-4)\n",
		      name, worst);
	ref_free(&rf);
	llm_model_free(m);
}

static void test_matches_pytorch_tied_gqa_with_loss_mask(void **state)
{
	check_against_pytorch("tied");
}

static void test_matches_pytorch_untied_one_kv_head(void **state)
{
	check_against_pytorch("untied");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_presets_are_valid_and_tiny_is_1_to_3M),
	    cmocka_unit_test(test_config_round_trips_through_config_json),
	    cmocka_unit_test(test_config_reads_the_pytorch_reference_and_hf_defaults),
	    cmocka_unit_test(test_config_errors_name_the_file_and_key),
	    cmocka_unit_test(test_matmul_matches_double_precision_product),
	    cmocka_unit_test(test_model_names_shapes_and_layout_follow_hugging_face),
	    cmocka_unit_test(test_packed_rows_equal_one_document_per_row),
	    cmocka_unit_test(test_init_is_seeded_with_the_stated_spread),
	    cmocka_unit_test(test_forward_rejects_bad_ids_and_lengths_and_backward_needs_targets),
	    cmocka_unit_test(test_attention_is_causal_and_sequences_are_independent),
	    cmocka_unit_test(test_gradients_match_finite_differences_untied),
	    cmocka_unit_test(test_gradients_match_finite_differences_tied_with_loss_mask),
	    cmocka_unit_test(test_loss_mask_leaves_masked_targets_out),
	    cmocka_unit_test(test_matches_pytorch_tied_gqa_with_loss_mask),
	    cmocka_unit_test(test_matches_pytorch_untied_one_kv_head),
	};
	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
