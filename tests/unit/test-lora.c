/* Unit tests of LoRA (engine/lora.h and the adapter terms in engine/model.c).
 *
 * Numerical checks, each with its tolerance stated where it is applied:
 *   - finite differences: every adapter matrix's gradient, all seven targets, including layer
 *     0's, whose gradients need the activation gradients of everything above them;
 *   - PyTorch: logits, loss and every adapter gradient against tests/data/engine/lora, which
 *     scripts/maint/make-lora-reference writes (adapters stored as a PEFT adapter directory);
 *   - exactness: B = 0 leaves the logits bit for bit; merging leaves them within float
 *     rounding.
 * And the files: PEFT names, shapes and adapter_config.json; the GGUF adapter's names and
 * metadata; the specification parser's errors. */
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
#include <jansson.h>

#include "core/rand.h"
#include "engine/generate.h"
#include "engine/gguf.h"
#include "engine/hparams.h"
#include "engine/lora.h"
#include "engine/model.h"
#include "engine/safetensors.h"

/* --- helpers -------------------------------------------------------------------------------- */

static const char *data_path(const char *rel)
{
	static char path[4096];
	const char *top = getenv("top_srcdir");
	snprintf(path, sizeof path, "%s/tests/data/engine/lora/%s", top ? top : ".", rel);
	return path;
}

static char tmpdir[256];

static int make_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test-lora.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static const char *tmp_path(const char *name)
{
	static char path[512];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	return path;
}

static int remove_tmpdir(void **state)
{
	static const char *const files[] = {"adapter_config.json", "adapter_model.safetensors",
					    "adapter.gguf"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		unlink(tmp_path(files[i]));
	return rmdir(tmpdir);
}

/* Grouped-query attention (4 query heads, 2 key/value heads) and every Linear a different
 * shape, so a transposed or misplaced adapter cannot pass. */
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

static void attach(struct llm_model *m, const char *spec, uint64_t seed)
{
	struct llm_lora_config cfg;
	struct llm_diag d;
	if (llm_lora_parse(spec, &cfg, &d) || llm_lora_attach(m, &cfg, seed, &d))
		fail_msg("LoRA %s: %s", spec, d.msg);
}

/* Give every B (which starts at zero) entries of spread s, so the adapters do something. */
static void randomize_b(struct llm_model *m, uint64_t seed, float s)
{
	struct llm_rand r;
	llm_rand_seed(&r, seed);
	for (size_t k = 0; k < m->lora->n_adapters; k++) {
		struct llm_lora_adapter *ad = &m->lora->adapter[k];
		for (size_t i = 0; i < (size_t)ad->out * m->lora->config.r; i++)
			ad->b[i] = (float)((2 * llm_rand_double(&r) - 1) * s);
	}
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

/* max |got − want| ≤ rtol · max |want|; returns the ratio. */
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

/* --- the specification ---------------------------------------------------------------------- */

static void test_parse_reads_the_issue_example_peft_names_and_all_linear(void **state)
{
	struct llm_lora_config c;
	struct llm_diag d;
	assert_int_equal(llm_lora_parse("r=16,alpha=32,targets=q,k,v,o", &c, &d), LLM_OK);
	assert_int_equal(c.r, 16);
	assert_true(c.alpha == 32.0f);
	assert_int_equal(c.targets,
			 1u << LLM_LORA_Q | 1u << LLM_LORA_K | 1u << LLM_LORA_V | 1u << LLM_LORA_O);

	/* Targets end at the next key; PEFT's module names work; order does not matter. */
	assert_int_equal(llm_lora_parse("targets=down_proj,gate_proj,r=4,alpha=0.5", &c, &d),
			 LLM_OK);
	assert_int_equal(c.r, 4);
	assert_true(c.alpha == 0.5f);
	assert_int_equal(c.targets, 1u << LLM_LORA_DOWN | 1u << LLM_LORA_GATE);
	assert_int_equal(llm_lora_parse("targets=all-linear", &c, &d), LLM_OK);
	assert_int_equal(c.targets, LLM_LORA_ALL_LINEAR);
	assert_int_equal(c.targets, 0x7f);

	/* What is not given keeps PEFT's defaults: r 8, alpha 8, q and v. */
	assert_int_equal(llm_lora_parse("", &c, &d), LLM_OK);
	assert_int_equal(c.r, 8);
	assert_true(c.alpha == 8.0f);
	assert_int_equal(c.targets, 1u << LLM_LORA_Q | 1u << LLM_LORA_V);
	assert_int_equal(llm_lora_parse("r=2", &c, &d), LLM_OK);
	assert_int_equal(c.r, 2);
	assert_int_equal(c.targets, 1u << LLM_LORA_Q | 1u << LLM_LORA_V);

	assert_string_equal(llm_lora_target_name(LLM_LORA_GATE), "gate");
	assert_string_equal(llm_lora_target_module(LLM_LORA_UP), "up_proj");
}

static void test_parse_errors_name_the_item_and_what_is_accepted(void **state)
{
	static const struct {
		const char *spec;
		const char *want; /* in the message */
	} cases[] = {
	    {"r=0", "r=0"},
	    {"r=-4", "r=-4"},
	    {"r=abc", "r=abc"},
	    {"r=4.5", "r=4.5"},
	    {"r=70000", "1..65536"},
	    {"r=", "r needs a number"},
	    {"alpha=-1", "alpha=-1"},
	    {"alpha=nan", "alpha=nan"},
	    {"alpha=", "alpha needs"},
	    {"rank=4", "unknown key 'rank'"},
	    {"r=4,alpha=8,dropout=0.1", "unknown key 'dropout'"},
	    {"r=4,r=8", "r is given twice"},
	    {"targets=q,targets=v", "targets is given twice"},
	    {"targets=qq", "unknown target 'qq'"},
	    {"targets=q,lm_head", "unknown target 'lm_head'"},
	    {"targets=q,,v", "empty target"},
	    {"targets=", "empty target"},
	    {"q,v", "'q' is not key=value"},
	    {"r=4,", "ends with a comma"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct llm_lora_config c = {.r = 99};
		struct llm_diag d = {0};
		enum llm_err e = llm_lora_parse(cases[i].spec, &c, &d);
		if (e != LLM_ERR_USAGE)
			fail_msg("'%s': got %d, want LLM_ERR_USAGE", cases[i].spec, e);
		if (!strstr(d.msg, cases[i].want))
			fail_msg("'%s': message '%s' does not say '%s'", cases[i].spec, d.msg,
				 cases[i].want);
		assert_int_equal(c.r, 99); /* untouched on error */
	}
	/* Unknown targets list what is accepted. */
	struct llm_lora_config c;
	struct llm_diag d;
	assert_int_equal(llm_lora_parse("targets=attn", &c, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "q_proj"));
	assert_non_null(strstr(d.msg, "all-linear"));
}

/* --- attaching ------------------------------------------------------------------------------ */

static void test_attach_initialises_a_as_peft_does_and_b_at_zero(void **state)
{
	struct llm_model_config c = small_config(false);
	struct llm_model *m = new_model(&c, 1, 0.02f);
	attach(m, "r=4,alpha=8,targets=all-linear", 7);
	const struct llm_lora *lo = m->lora;
	assert_non_null(lo);
	assert_true(lo->scale == 2.0f);
	assert_int_equal(lo->n_adapters, 2 * 7);
	/* Σ r (in + out) per layer: q 16+16, k 16+8, v 16+8, o 16+16, gate 16+24, up 16+24,
	 * down 24+16. */
	size_t n;
	assert_non_null(llm_lora_params(m, &n));
	assert_int_equal(n, 2 * 4 * (32 + 24 + 24 + 32 + 40 + 40 + 40));
	assert_int_equal(n, lo->num_params);
	assert_ptr_equal(llm_lora_grads(m, &n), lo->grads);

	/* Slots in layer order; A is U(−1/√in, 1/√in) and fills it; B and the gradients are
	 * zero. */
	for (size_t k = 0; k < lo->n_adapters; k++) {
		const struct llm_lora_adapter *ad = &lo->adapter[k];
		assert_ptr_equal(lo->slot[(size_t)ad->layer * LLM_LORA__COUNT + ad->target], ad);
		assert_int_equal(ad->layer, (int)(k / 7));
		assert_int_equal(ad->target, (int)(k % 7));
		double bound = 1.0 / sqrt(ad->in), amax = 0, sum = 0;
		size_t na = 4 * (size_t)ad->in;
		for (size_t i = 0; i < na; i++) {
			assert_true(fabs(ad->a[i]) <= bound);
			amax = fabs(ad->a[i]) > amax ? fabs(ad->a[i]) : amax;
			sum += ad->a[i];
		}
		assert_true(amax > 0.8 * bound);
		assert_true(fabs(sum / na) < 0.3 * bound);
		for (size_t i = 0; i < 4 * (size_t)ad->out; i++)
			assert_true(ad->b[i] == 0.0f && ad->db[i] == 0.0f);
	}
	assert_int_equal(lo->adapter[1].out, 8); /* k_proj: 2 kv heads of 4 */
	assert_int_equal(lo->adapter[6].in, 24); /* down_proj */

	/* Seeded; attaching twice is refused; a bad configuration is named. */
	struct llm_model *m2 = new_model(&c, 1, 0.02f);
	attach(m2, "r=4,alpha=8,targets=all-linear", 7);
	assert_memory_equal(m->lora->params, m2->lora->params, n * sizeof(float));
	struct llm_diag d;
	struct llm_lora_config cfg = {.r = 2, .alpha = 4, .targets = 1};
	assert_int_equal(llm_lora_attach(m2, &cfg, 1, &d), LLM_ERR_USAGE);
	llm_lora_detach(m2);
	assert_null(m2->lora);
	assert_null(llm_lora_params(m2, &n));
	assert_int_equal(n, 0);
	cfg.r = 0;
	assert_int_equal(llm_lora_attach(m2, &cfg, 1, &d), LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "r=0"));
	cfg.r = 2, cfg.targets = 0x80;
	assert_int_equal(llm_lora_attach(m2, &cfg, 1, &d), LLM_ERR_RANGE);
	cfg.targets = 1, cfg.alpha = 0;
	assert_int_equal(llm_lora_attach(m2, &cfg, 1, &d), LLM_ERR_RANGE);
	assert_int_equal(llm_lora_merge(m2, &d), LLM_ERR_USAGE);
	llm_lora_detach(m2); /* without adapters: nothing happens */
	llm_model_free(m2);
	llm_model_free(m); /* frees the adapters too (the sanitizer checks) */
}

/* B starts at zero, so a freshly attached model computes the base's logits exactly, and detaching
 * gives them back. */
static void test_generation_refuses_unmerged_adapters_and_runs_after_merge(void **state)
{
	struct llm_model_config c = small_config(false);
	struct llm_model *m = new_model(&c, 1, 0.02f);
	attach(m, "r=4,alpha=8,targets=q,v", 7);
	struct llm_kv *kv = NULL;
	struct llm_diag d;
	/* The cache path reads the base weights: it must not silently ignore the adapters. */
	assert_int_equal(llm_kv_new(&kv, m, 1, 0, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "merge"));
	assert_int_equal(llm_lora_merge(m, &d), LLM_OK);
	assert_int_equal(llm_kv_new(&kv, m, 1, 0, &d), LLM_OK);
	llm_kv_free(kv);
	llm_model_free(m);
}

static void test_zero_b_leaves_the_logits_bit_for_bit(void **state)
{
	struct llm_model_config c = small_config(false);
	struct llm_model *m = new_model(&c, 2, 0.3f);
	enum { B = 2, T = 9 };
	uint32_t tok[B * T];
	random_ids(tok, B * T, c.vocab_size, 3);
	size_t nl = (size_t)B * T * c.vocab_size;
	float *base = malloc(nl * sizeof(float));
	assert_non_null(base);
	assert_int_equal(llm_model_forward(m, tok, NULL, NULL, B, T, NULL, NULL), LLM_OK);
	memcpy(base, m->logits, nl * sizeof(float));
	attach(m, "r=3,alpha=7,targets=all-linear", 4);
	assert_int_equal(llm_model_forward(m, tok, NULL, NULL, B, T, NULL, NULL), LLM_OK);
	for (size_t i = 0; i < nl; i++)
		if (m->logits[i] != base[i])
			fail_msg("logit %zu: %.9g with B = 0, %.9g without adapters", i,
				 m->logits[i], base[i]);
	randomize_b(m, 5, 0.3f);
	assert_int_equal(llm_model_forward(m, tok, NULL, NULL, B, T, NULL, NULL), LLM_OK);
	double moved = 0;
	for (size_t i = 0; i < nl; i++)
		moved += fabs(m->logits[i] - base[i]);
	assert_true(moved > 1e-2 * (double)nl);
	llm_lora_detach(m);
	assert_int_equal(llm_model_forward(m, tok, NULL, NULL, B, T, NULL, NULL), LLM_OK);
	assert_memory_equal(m->logits, base, nl * sizeof(float));
	free(base);
	llm_model_free(m);
}

/* --- gradients ------------------------------------------------------------------------------ */

/* The loss as a function of one adapter entry. */
static double loss_at(struct llm_model *m, float *p, float value, const uint32_t *tok,
		      const uint32_t *tgt, const float *mask, int B, int T)
{
	float saved = *p;
	*p = value;
	double l = forward_loss(m, tok, tgt, mask, B, T);
	*p = saved;
	return l;
}

/* For every adapter matrix (A and B of each target in each layer), the analytic gradient against
 * a central difference at the 2 entries of largest gradient and 4 random ones; the tolerance
 * and step are test-engine's: h = 1e-2 on weights of spread 0.3, |fd − g| ≤ 2e-2·|g| +
 * 2e-3·max|g over the matrix| + 1e-4.  The base gets no gradient: its gradients, allocated and
 * zeroed before, stay zero. */
static void check_adapter_gradients(bool tied, const char *spec, const float *mask)
{
	struct llm_model_config c = small_config(tied);
	struct llm_model *m = new_model(&c, tied ? 27 : 28, 0.3f);
	attach(m, spec, 9);
	randomize_b(m, 10, 0.3f);
	enum { B = 2, T = 9 };
	uint32_t tok[B * T], tgt[B * T];
	random_ids(tok, B * T, c.vocab_size, 21);
	random_ids(tgt, B * T, c.vocab_size, 22);
	assert_int_equal(llm_model_zero_grad(m, NULL), LLM_OK);
	forward_loss(m, tok, tgt, mask, B, T);
	assert_int_equal(llm_model_backward(m, NULL), LLM_OK);
	for (size_t i = 0; i < m->num_params; i++)
		if (m->grads[i] != 0.0f)
			fail_msg("base gradient %zu is %g: the base is frozen", i, m->grads[i]);
	size_t n;
	float *grads = malloc(m->lora->num_params * sizeof(float));
	assert_non_null(grads);
	const float *g0 = llm_lora_grads(m, &n);
	memcpy(grads, g0, n * sizeof(float));

	struct llm_rand r;
	llm_rand_seed(&r, 99);
	const float h = 1e-2f;
	double worst = 0;
	for (size_t k = 0; k < m->lora->n_adapters; k++) {
		struct llm_lora_adapter *ad = &m->lora->adapter[k];
		for (int which = 0; which < 2; which++) {
			float *p = which ? ad->b : ad->a;
			size_t numel = (size_t)m->lora->config.r * (which ? ad->out : ad->in);
			const float *g = grads + (p - m->lora->params);
			size_t pick[6] = {0, 0};
			double gmax = 0;
			for (size_t j = 0; j < numel; j++)
				if (fabs(g[j]) > gmax)
					gmax = fabs(g[j]), pick[1] = pick[0], pick[0] = j;
			for (int q = 2; q < 6; q++)
				pick[q] = (size_t)llm_rand_below(&r, numel);
			if (gmax == 0)
				fail_msg("layer %d %s %c: gradient is all zero", ad->layer,
					 llm_lora_target_name(ad->target), which ? 'B' : 'A');
			for (int q = 0; q < 6; q++) {
				float *x = p + pick[q];
				double up = loss_at(m, x, *x + h, tok, tgt, mask, B, T);
				double down = loss_at(m, x, *x - h, tok, tgt, mask, B, T);
				double fd = (up - down) / (2.0 * h), an = g[pick[q]];
				double err = fabs(fd - an),
				       tol = 2e-2 * fabs(an) + 2e-3 * gmax + 1e-4;
				worst = err / tol > worst ? err / tol : worst;
				if (!(err <= tol))
					fail_msg("layer %d %s %c[%zu] (%s): analytic %.6g, finite "
						 "difference %.6g",
						 ad->layer, llm_lora_target_name(ad->target),
						 which ? 'B' : 'A', pick[q], spec, an, fd);
			}
		}
	}
	print_message("# finite differences (%s, %s head%s): worst error %.2f of tolerance\n", spec,
		      tied ? "tied" : "untied", mask ? ", masked" : "", worst);
	free(grads);
	llm_model_free(m);
}

static void test_adapter_gradients_match_finite_differences_all_targets(void **state)
{
	check_adapter_gradients(false, "r=3,alpha=6,targets=all-linear", NULL);
}

static void test_adapter_gradients_match_finite_differences_qv_tied_masked(void **state)
{
	float mask[18];
	for (int i = 0; i < 18; i++)
		mask[i] = (i % 9) < 4 ? 0.0f : 1.0f;
	check_adapter_gradients(true, "r=2,alpha=5,targets=q,v", mask);
}

/* With adapters, backward neither allocates nor touches the base gradients; the adapters'
 * accumulate over micro-batches until zeroed; changing the adapters between forward and
 * backward is refused. */
static void test_backward_with_adapters_leaves_the_base_alone(void **state)
{
	struct llm_model_config c = small_config(true);
	struct llm_model *m = new_model(&c, 4, 0.3f);
	attach(m, "r=2,alpha=2,targets=o,down", 1);
	randomize_b(m, 2, 0.3f);
	enum { B = 1, T = 8 };
	uint32_t tok[T], tgt[T];
	random_ids(tok, T, c.vocab_size, 5);
	random_ids(tgt, T, c.vocab_size, 6);
	forward_loss(m, tok, tgt, NULL, B, T);
	assert_int_equal(llm_model_backward(m, NULL), LLM_OK);
	assert_null(m->grads);
	size_t n;
	float *g = llm_lora_grads(m, &n), *g1 = malloc(n * sizeof(float));
	assert_non_null(g1);
	memcpy(g1, g, n * sizeof(float));
	forward_loss(m, tok, tgt, NULL, B, T);
	assert_int_equal(llm_model_backward(m, NULL), LLM_OK);
	for (size_t i = 0; i < n; i++)
		assert_true(fabsf(g[i] - 2 * g1[i]) <= 1e-6f * (1 + fabsf(g1[i])));
	llm_lora_zero_grad(m);
	for (size_t i = 0; i < n; i++)
		assert_true(g[i] == 0.0f);

	struct llm_diag d;
	forward_loss(m, tok, tgt, NULL, B, T);
	llm_lora_detach(m);
	assert_int_equal(llm_model_backward(m, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "LoRA"));
	forward_loss(m, tok, tgt, NULL, B, T);
	attach(m, "r=2,alpha=2,targets=q", 1);
	assert_int_equal(llm_model_backward(m, &d), LLM_ERR_USAGE);
	free(g1);
	llm_model_free(m);
}

/* --- merging -------------------------------------------------------------------------------- */

/* W += scale · B A gives the adapted model's logits: within 1e-5 of the largest logit (float
 * rounding of two association orders of the same sum). */
static void test_merged_model_computes_the_adapted_logits(void **state)
{
	struct llm_model_config c = small_config(false);
	struct llm_model *m = new_model(&c, 6, 0.3f);
	attach(m, "r=4,alpha=16,targets=all-linear", 3);
	randomize_b(m, 4, 0.2f);
	enum { B = 2, T = 11 };
	uint32_t tok[B * T];
	random_ids(tok, B * T, c.vocab_size, 7);
	size_t nl = (size_t)B * T * c.vocab_size;
	float *adapted = malloc(nl * sizeof(float)), *base = malloc(nl * sizeof(float));
	assert_true(adapted && base);
	assert_int_equal(llm_model_forward(m, tok, NULL, NULL, B, T, NULL, NULL), LLM_OK);
	memcpy(adapted, m->logits, nl * sizeof(float));
	struct llm_model *plain = new_model(&c, 6, 0.3f);
	assert_int_equal(llm_model_forward(plain, tok, NULL, NULL, B, T, NULL, NULL), LLM_OK);
	memcpy(base, plain->logits, nl * sizeof(float));

	assert_int_equal(llm_lora_merge(m, NULL), LLM_OK);
	assert_null(m->lora);
	assert_int_equal(llm_model_forward(m, tok, NULL, NULL, B, T, NULL, NULL), LLM_OK);
	double r = compare("merged logits", m->logits, adapted, nl, 1e-5);
	/* ...and the merge changed something. */
	double moved = 0;
	for (size_t i = 0; i < nl; i++)
		moved += fabs(m->logits[i] - base[i]);
	assert_true(moved > 1e-2 * (double)nl);
	print_message("# merge: worst relative error %.2e (tolerance 1e-5)\n", r);
	free(adapted);
	free(base);
	llm_model_free(plain);
	llm_model_free(m);
}

/* --- against PyTorch ------------------------------------------------------------------------ */

struct ref_tensor {
	char name[128];
	int dtype;
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

/* ref.bin in scripts/maint/make-engine-reference's format. */
static void ref_load(struct ref_file *rf, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s (run scripts/maint/make-lora-reference)", path);
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

/* The adapters come from the fixture's PEFT directory through llm_lora_load_peft (a file not
 * written by the engine).  Tolerance: 1e-4 of each tensor's largest magnitude for logits, loss
 * and every adapter gradient, as in test-engine. */
static void test_matches_pytorch_with_adapters_on_all_linears(void **state)
{
	struct llm_model_config c;
	struct llm_diag d;
	if (llm_model_config_load(&c, data_path("config.json"), &d))
		fail_msg("%s: %s", d.file, d.msg);
	struct llm_model *m = NULL;
	assert_int_equal(llm_model_new(&m, &c, NULL), LLM_OK);
	struct ref_file rf;
	ref_load(&rf, data_path("ref.bin"));
	for (size_t i = 0; i < llm_model_param_count(m); i++) {
		struct llm_param p;
		llm_model_param(m, i, &p);
		const struct ref_tensor *t = ref_get(&rf, p.name);
		assert_int_equal(t->numel, p.numel);
		memcpy(p.data, t->data, p.numel * sizeof(float));
	}
	const char *top = getenv("top_srcdir");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/tests/data/engine/lora", top ? top : ".");
	if (llm_lora_load_peft(m, dir, &d))
		fail_msg("%s: %s", d.file, d.msg);
	assert_int_equal(m->lora->config.r, 4);
	assert_true(m->lora->scale == 2.0f);
	assert_int_equal(m->lora->config.targets, LLM_LORA_ALL_LINEAR);

	const struct ref_tensor *tok = ref_get(&rf, "tokens"), *tgt = ref_get(&rf, "targets");
	const struct ref_tensor *mask = ref_get(&rf, "loss_mask"), *logits = ref_get(&rf, "logits");
	int N = (int)tok->numel, B = 2, T = N / B;
	float loss;
	assert_int_equal(llm_model_forward(m, tok->data, tgt->data, mask->data, B, T, &loss, &d),
			 LLM_OK);
	double worst = compare("logits", m->logits, logits->data, logits->numel, 1e-4);
	double r = compare("loss", &loss, ref_get(&rf, "loss")->data, 1, 1e-4);
	worst = r > worst ? r : worst;
	assert_int_equal(llm_model_backward(m, NULL), LLM_OK);
	size_t checked = 0;
	for (size_t k = 0; k < m->lora->n_adapters; k++) {
		const struct llm_lora_adapter *ad = &m->lora->adapter[k];
		for (int which = 0; which < 2; which++) {
			char gname[160];
			snprintf(gname, sizeof gname,
				 "grad.base_model.model.model.layers.%d.%s.%s.lora_%c.weight",
				 ad->layer, ad->target <= LLM_LORA_O ? "self_attn" : "mlp",
				 llm_lora_target_module(ad->target), which ? 'B' : 'A');
			const struct ref_tensor *t = ref_get(&rf, gname);
			size_t numel = (size_t)m->lora->config.r * (which ? ad->out : ad->in);
			assert_int_equal(t->numel, numel);
			r = compare(gname, which ? ad->db : ad->da, t->data, numel, 1e-4);
			worst = r > worst ? r : worst;
			checked++;
		}
	}
	assert_int_equal(checked, 28);
	print_message("# PyTorch reference (LoRA): worst relative error %.2e (tolerance 1e-4)\n",
		      worst);
	ref_free(&rf);
	llm_model_free(m);
}

/* --- files ---------------------------------------------------------------------------------- */

static const char *const attn_modules[] = {"q_proj", "k_proj", "v_proj", "o_proj"};

/* PEFT's names and shapes, exactly and nothing else, adapter_config.json's fields, and a load
 * that gives the same adapters back. */
static void test_peft_files_have_peft_names_shapes_and_config_and_load_back(void **state)
{
	struct llm_model_config c = small_config(false);
	struct llm_model *m = new_model(&c, 8, 0.3f);
	attach(m, "r=16,alpha=32,targets=q,k,v,o", 11);
	randomize_b(m, 12, 0.1f);
	struct llm_diag d;
	if (llm_lora_save_peft(m, tmpdir, "llmops/tiny", &d))
		fail_msg("%s: %s", d.file, d.msg);

	struct llm_safetensors *st;
	if (llm_safetensors_open(&st, tmp_path("adapter_model.safetensors"), &d))
		fail_msg("%s: %s", d.file, d.msg);
	assert_int_equal(st->n_tensors, 2 * 4 * 2);
	assert_string_equal(llm_safetensors_meta(st, "format"), "pt");
	for (int l = 0; l < 2; l++)
		for (int t = 0; t < 4; t++)
			for (int ab = 0; ab < 2; ab++) {
				char name[128];
				snprintf(name, sizeof name,
					 "base_model.model.model.layers.%d.self_attn.%s.lora_%c."
					 "weight",
					 l, attn_modules[t], ab ? 'B' : 'A');
				const struct llm_tensor_ref *tr = llm_safetensors_find(st, name);
				if (!tr)
					fail_msg("no tensor %s", name);
				assert_int_equal(tr->dtype, LLM_DTYPE_F32);
				assert_int_equal(tr->ndim, 2);
				int out = t == 1 || t == 2 ? 8 : 16; /* k, v: 2 kv heads of 4 */
				assert_int_equal(tr->shape[0], ab ? out : 16);
				assert_int_equal(tr->shape[1], ab ? 16 : 16);
				const struct llm_lora_adapter *ad = m->lora->slot[l * 7 + t];
				assert_memory_equal(tr->data, ab ? ad->b : ad->a,
						    16 * (size_t)(ab ? out : 16) * sizeof(float));
			}
	/* k_proj's A is (r, in) = (16, 16) and B (out, r) = (8, 16): out and r differ. */
	const struct llm_tensor_ref *kb = llm_safetensors_find(
	    st, "base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight");
	assert_int_equal(kb->shape[0], 8);
	assert_int_equal(kb->shape[1], 16);
	llm_safetensors_close(st);

	json_t *root = json_load_file(tmp_path("adapter_config.json"), 0, NULL);
	assert_non_null(root);
	assert_int_equal(json_integer_value(json_object_get(root, "r")), 16);
	assert_true(json_number_value(json_object_get(root, "lora_alpha")) == 32.0);
	assert_true(json_number_value(json_object_get(root, "lora_dropout")) == 0.0);
	assert_string_equal(json_string_value(json_object_get(root, "task_type")), "CAUSAL_LM");
	assert_string_equal(json_string_value(json_object_get(root, "peft_type")), "LORA");
	assert_string_equal(json_string_value(json_object_get(root, "bias")), "none");
	assert_string_equal(json_string_value(json_object_get(root, "base_model_name_or_path")),
			    "llmops/tiny");
	json_t *mods = json_object_get(root, "target_modules");
	assert_int_equal(json_array_size(mods), 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(json_string_value(json_array_get(mods, i)), attn_modules[i]);
	json_decref(root);

	/* Into a fresh model, and over adapters already attached (they are replaced). */
	struct llm_model *m2 = new_model(&c, 8, 0.3f);
	attach(m2, "r=2,targets=gate", 1);
	if (llm_lora_load_peft(m2, tmpdir, &d))
		fail_msg("%s: %s", d.file, d.msg);
	assert_int_equal(m2->lora->config.r, 16);
	assert_true(m2->lora->config.alpha == 32.0f);
	assert_int_equal(m2->lora->config.targets, m->lora->config.targets);
	assert_int_equal(m2->lora->num_params, m->lora->num_params);
	assert_memory_equal(m2->lora->params, m->lora->params, m->lora->num_params * sizeof(float));
	llm_model_free(m2);

	/* A model of another shape does not take the file, and keeps its adapters. */
	struct llm_model_config c3 = small_config(false);
	c3.num_key_value_heads = 4;
	struct llm_model *m3 = new_model(&c3, 8, 0.3f);
	attach(m3, "r=2,targets=gate", 1);
	assert_int_not_equal(llm_lora_load_peft(m3, tmpdir, &d), LLM_OK);
	assert_non_null(strstr(d.msg, "k_proj"));
	assert_int_equal(m3->lora->config.r, 2);
	llm_model_free(m3);
	llm_model_free(m);
}

/* Files that do not fit the model: a tensor for a module the config does not target, a
 * target module the engine has no Linear for, a missing tensor. */
static void test_peft_load_refuses_what_does_not_fit(void **state)
{
	struct llm_model_config c = small_config(false);
	struct llm_model *m = new_model(&c, 8, 0.3f);
	attach(m, "r=4,alpha=8,targets=q,v", 1);
	struct llm_diag d;
	assert_int_equal(llm_lora_save_peft(m, tmpdir, NULL, &d), LLM_OK);
	llm_lora_detach(m);
	assert_int_equal(llm_lora_save_peft(m, tmpdir, NULL, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_lora_save_gguf(m, tmp_path("adapter.gguf"), &d), LLM_ERR_USAGE);

	/* The config says q only: the v tensors are strangers. */
	const char *cfg_q = "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, "
			    "\"target_modules\": [\"q_proj\"]}";
	FILE *f = fopen(tmp_path("adapter_config.json"), "w");
	assert_non_null(f);
	fputs(cfg_q, f);
	fclose(f);
	assert_int_equal(llm_lora_load_peft(m, tmpdir, &d), LLM_ERR_CHECK);
	assert_non_null(strstr(d.msg, "v_proj.lora_A.weight"));
	assert_null(m->lora);

	/* lm_head is not adapted by the engine. */
	f = fopen(tmp_path("adapter_config.json"), "w");
	fputs("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, "
	      "\"target_modules\": [\"q_proj\", \"lm_head\"]}",
	      f);
	fclose(f);
	assert_int_equal(llm_lora_load_peft(m, tmpdir, &d), LLM_ERR_CHECK);
	assert_non_null(strstr(d.msg, "lm_head"));

	/* The config says q, v and o: o's tensors are missing. */
	f = fopen(tmp_path("adapter_config.json"), "w");
	fputs("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, "
	      "\"target_modules\": [\"q_proj\", \"v_proj\", \"o_proj\"]}",
	      f);
	fclose(f);
	assert_int_equal(llm_lora_load_peft(m, tmpdir, &d), LLM_ERR_NOT_FOUND);
	assert_non_null(strstr(d.msg, "o_proj"));
	/* Another rank: a shape error that names the tensor. */
	f = fopen(tmp_path("adapter_config.json"), "w");
	fputs("{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 8, "
	      "\"target_modules\": [\"q_proj\", \"v_proj\"]}",
	      f);
	fclose(f);
	assert_int_equal(llm_lora_load_peft(m, tmpdir, &d), LLM_ERR_CHECK);
	assert_non_null(strstr(d.msg, "lora_A"));
	assert_null(m->lora);
	llm_model_free(m);
}

/* llama.cpp's names (blk.N.attn_q.weight.lora_a / .lora_b), shapes (ne [in, r] and [r, out],
 * so row-major (r, in) and (out, r)), metadata, and B's rows permuted for Q and K like the base
 * weights while the other tensors are PEFT's matrices as they are. */
static void test_gguf_adapter_has_llama_cpp_names_and_metadata(void **state)
{
	struct llm_model_config c = small_config(false);
	struct llm_model *m = new_model(&c, 8, 0.3f);
	attach(m, "r=4,alpha=12,targets=q,k,v,o,down", 2);
	randomize_b(m, 3, 0.2f);
	struct llm_diag d;
	if (llm_lora_save_gguf(m, tmp_path("adapter.gguf"), &d))
		fail_msg("%s: %s", d.file, d.msg);
	struct llm_gguf *g;
	if (llm_gguf_open(&g, tmp_path("adapter.gguf"), &d))
		fail_msg("%s: %s", d.file, d.msg);
	const char *s;
	float alpha;
	assert_int_equal(llm_gguf_get_str(g, "general.type", &s, &d), LLM_OK);
	assert_string_equal(s, "adapter");
	assert_int_equal(llm_gguf_get_str(g, "adapter.type", &s, &d), LLM_OK);
	assert_string_equal(s, "lora");
	assert_int_equal(llm_gguf_get_str(g, "general.architecture", &s, &d), LLM_OK);
	assert_string_equal(s, "llama");
	assert_int_equal(llm_gguf_get_f32(g, "adapter.lora.alpha", &alpha, &d), LLM_OK);
	assert_true(alpha == 12.0f);
	assert_int_equal(g->n_tensors, 2 * 5 * 2);

	static const char *const gnames[] = {"attn_q", "attn_k", "attn_v",  "attn_output",
					     "",       "",	 "ffn_down"};
	for (size_t k = 0; k < m->lora->n_adapters; k++) {
		const struct llm_lora_adapter *ad = &m->lora->adapter[k];
		for (int ab = 0; ab < 2; ab++) {
			char name[96];
			snprintf(name, sizeof name, "blk.%d.%s.weight.lora_%c", ad->layer,
				 gnames[ad->target], ab ? 'b' : 'a');
			const struct llm_tensor_ref *t = llm_gguf_find_tensor(g, name);
			if (!t)
				fail_msg("no tensor %s", name);
			assert_int_equal(t->ndim, 2);
			assert_int_equal(t->shape[0], ab ? ad->out : 4);
			assert_int_equal(t->shape[1], ab ? 4 : ad->in);
			size_t numel = 4 * (size_t)(ab ? ad->out : ad->in);
			float *got = malloc(numel * sizeof(float)), *want = malloc(numel * 4);
			assert_true(got && want);
			assert_int_equal(llm_gguf_read_f32(g, name, got, 2, t->shape, &d), LLM_OK);
			bool permuted =
			    ab && (ad->target == LLM_LORA_Q || ad->target == LLM_LORA_K);
			if (permuted)
				assert_int_equal(llm_gguf_llama_permute(
						     want, ad->b, ad->target == LLM_LORA_Q ? 4 : 2,
						     (size_t)ad->out, 4),
						 LLM_OK);
			else
				memcpy(want, ab ? ad->b : ad->a, numel * sizeof(float));
			assert_memory_equal(got, want, numel * sizeof(float));
			free(got);
			free(want);
		}
	}
	llm_gguf_close(g);
	llm_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_reads_the_issue_example_peft_names_and_all_linear),
	    cmocka_unit_test(test_parse_errors_name_the_item_and_what_is_accepted),
	    cmocka_unit_test(test_attach_initialises_a_as_peft_does_and_b_at_zero),
	    cmocka_unit_test(test_zero_b_leaves_the_logits_bit_for_bit),
	    cmocka_unit_test(test_generation_refuses_unmerged_adapters_and_runs_after_merge),
	    cmocka_unit_test(test_adapter_gradients_match_finite_differences_all_targets),
	    cmocka_unit_test(test_adapter_gradients_match_finite_differences_qv_tied_masked),
	    cmocka_unit_test(test_backward_with_adapters_leaves_the_base_alone),
	    cmocka_unit_test(test_merged_model_computes_the_adapted_logits),
	    cmocka_unit_test(test_matches_pytorch_with_adapters_on_all_linears),
	    cmocka_unit_test(test_peft_files_have_peft_names_shapes_and_config_and_load_back),
	    cmocka_unit_test(test_peft_load_refuses_what_does_not_fit),
	    cmocka_unit_test(test_gguf_adapter_has_llama_cpp_names_and_metadata),
	};
	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
