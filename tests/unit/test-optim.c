/* Unit tests for lib/engine/optim: AdamW, clipping and the schedules against PyTorch 1.13's
 * values in tests/data/engine-train/adamw.json (scripts/maint/make-optim-reference). */
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

#include "engine/optim.h"

/* The fixture's tolerance: 1e-6 relative, with an absolute floor for values that are small
 * sums of larger terms (exp_avg near 0.002 built from gradients near 1 differs from torch by
 * 3e-9, an ulp of its terms); parameters agree to 2e-7 relative. */
#define REL_TOL 1e-6
#define ABS_TOL 1e-8

static json_t *fixture;

static int load_fixture(void **state)
{
	(void)state;
	char path[4096];
	const char *top = getenv("top_srcdir");
	snprintf(path, sizeof path, "%s/tests/data/engine-train/adamw.json", top ? top : ".");
	json_error_t err;
	fixture = json_load_file(path, 0, &err);
	if (!fixture) {
		fprintf(stderr, "cannot load %s: %s\n", path, err.text);
		return -1;
	}
	return 0;
}

static int free_fixture(void **state)
{
	(void)state;
	json_decref(fixture);
	return 0;
}

static json_t *get(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		fail_msg("fixture has no \"%s\"", key);
	return v;
}

static double num(json_t *obj, const char *key)
{
	return json_number_value(get(obj, key));
}

/* A JSON array of numbers as floats; the caller frees. */
static float *floats(json_t *obj, const char *key, size_t *n)
{
	json_t *a = get(obj, key);
	*n = json_array_size(a);
	float *f = malloc((*n ? *n : 1) * sizeof *f);
	assert_non_null(f);
	for (size_t i = 0; i < *n; i++)
		f[i] = (float)json_number_value(json_array_get(a, i));
	return f;
}

static void expect_close(double got, double want, const char *what, size_t step, size_t i)
{
	if (fabs(got - want) > REL_TOL * fabs(want) + ABS_TOL)
		fail_msg("%s at step %zu, index %zu: got %.9g, PyTorch %.9g (rel %.3g)", what, step,
			 i, got, want, fabs(got - want) / fabs(want));
}

static void expect_all_close(const float *got, json_t *obj, const char *key, size_t n, size_t step)
{
	size_t m;
	float *want = floats(obj, key, &m);
	assert_int_equal(m, n);
	for (size_t i = 0; i < n; i++)
		expect_close(got[i], want[i], key, step, i);
	free(want);
}

static void adamw_with_clipping_and_cosine_matches_pytorch(void **state)
{
	(void)state;
	json_t *fx = get(fixture, "adamw");
	struct llm_adamw_params p = {
	    .beta1 = num(fx, "beta1"),
	    .beta2 = num(fx, "beta2"),
	    .eps = num(fx, "eps"),
	    .weight_decay = num(fx, "weight_decay"),
	};
	struct llm_lr_schedule sched = {
	    .kind = LLM_LR_COSINE,
	    .lr = num(fx, "lr"),
	    .warmup_steps = (int64_t)json_integer_value(get(fx, "warmup_steps")),
	    .total_steps = (int64_t)json_integer_value(get(fx, "total_steps")),
	};
	size_t n;
	float *params = floats(fx, "initial", &n);
	struct llm_adamw o;
	assert_int_equal(llm_adamw_init(&o, n, &p, NULL), LLM_OK);
	/* The fixture's no-decay group is a mask here: exempt each run of zeros. */
	json_t *mask = get(fx, "decay_mask");
	assert_int_equal(json_array_size(mask), n);
	for (size_t i = 0; i < n; i++)
		if (json_integer_value(json_array_get(mask, i)) == 0)
			assert_int_equal(llm_adamw_no_decay(&o, i, 1, NULL), LLM_OK);

	json_t *steps = get(fx, "steps");
	float max_norm = (float)num(fx, "max_norm");
	for (size_t s = 0; s < json_array_size(steps); s++) {
		json_t *st = json_array_get(steps, s);
		size_t ng;
		float *grads = floats(st, "grad", &ng);
		assert_int_equal(ng, n);
		double lr = llm_lr_at(&sched, o.step);
		expect_close(lr, num(st, "lr"), "lr", s, 0);
		float norm = llm_clip_grad_norm(grads, n, max_norm);
		expect_close(norm, num(st, "norm"), "norm", s, 0);
		expect_all_close(grads, st, "clipped", n, s);
		llm_adamw_step(&o, params, grads, lr);
		expect_all_close(params, st, "params", n, s);
		free(grads);
	}
	/* The state a checkpoint saves: the same m, v and step as torch's state dict. */
	assert_int_equal(o.step, json_integer_value(get(fx, "final_step")));
	expect_all_close(o.m, fx, "exp_avg", n, o.step);
	expect_all_close(o.v, fx, "exp_avg_sq", n, o.step);
	free(params);
	llm_adamw_free(&o);
}

static void schedules_match_transformers(void **state)
{
	(void)state;
	json_t *list = get(fixture, "schedules");
	assert_true(json_array_size(list) >= 4);
	for (size_t k = 0; k < json_array_size(list); k++) {
		json_t *fx = json_array_get(list, k);
		const char *kind = json_string_value(get(fx, "kind"));
		struct llm_lr_schedule s = {
		    .kind = strcmp(kind, "constant") == 0 ? LLM_LR_CONSTANT
			    : strcmp(kind, "linear") == 0 ? LLM_LR_LINEAR
							  : LLM_LR_COSINE,
		    .lr = num(fx, "lr"),
		    .warmup_steps = (int64_t)json_integer_value(get(fx, "warmup_steps")),
		    .total_steps = (int64_t)json_integer_value(get(fx, "total_steps")),
		    .min_lr_ratio = num(fx, "min_lr_ratio"),
		};
		json_t *lrs = get(fx, "lrs");
		for (size_t i = 0; i < json_array_size(lrs); i++)
			expect_close(llm_lr_at(&s, (int64_t)i),
				     json_number_value(json_array_get(lrs, i)), kind, k, i);
	}
}

static void clip_grad_norm_matches_pytorch_below_and_above(void **state)
{
	(void)state;
	json_t *list = get(fixture, "clip");
	int clipped = 0, untouched = 0;
	for (size_t k = 0; k < json_array_size(list); k++) {
		json_t *fx = json_array_get(list, k);
		size_t n;
		float *g = floats(fx, "grad", &n);
		float max_norm = (float)num(fx, "max_norm");
		float norm = llm_clip_grad_norm(g, n, max_norm);
		expect_close(norm, num(fx, "norm"), "norm", k, 0);
		expect_all_close(g, fx, "clipped", n, k);
		if (norm > max_norm)
			clipped++;
		else
			untouched++;
		free(g);
	}
	/* The fixture must exercise both branches or it proves little. */
	assert_true(clipped > 0 && untouched > 0);
}

static void weight_decay_is_decoupled_and_masked(void **state)
{
	(void)state;
	/* With a zero gradient Adam's update is 0 / (0 + eps) = 0, so only the decay moves p:
	 * p * (1 - lr * wd) where decay applies, unchanged where it does not. */
	struct llm_adamw_params p;
	llm_adamw_params_default(&p);
	p.weight_decay = 0.5;
	struct llm_adamw o;
	assert_int_equal(llm_adamw_init(&o, 4, &p, NULL), LLM_OK);
	assert_int_equal(llm_adamw_no_decay(&o, 2, 2, NULL), LLM_OK);
	assert_int_equal(llm_adamw_no_decay(&o, 3, 2, NULL), LLM_ERR_RANGE);
	float w[4] = {1.0f, -2.0f, 3.0f, -4.0f}, g[4] = {0};
	llm_adamw_step(&o, w, g, 0.1);
	assert_float_equal(w[0], 0.95f, 1e-7);
	assert_float_equal(w[1], -1.9f, 1e-7);
	assert_float_equal(w[2], 3.0f, 0);
	assert_float_equal(w[3], -4.0f, 0);
	assert_int_equal(o.step, 1);
	llm_adamw_free(&o);
}

static void adamw_refuses_what_torch_refuses(void **state)
{
	(void)state;
	struct llm_adamw_params p;
	struct llm_adamw o;
	struct llm_diag d;
	llm_adamw_params_default(&p);
	p.beta1 = 1.0;
	assert_int_equal(llm_adamw_init(&o, 3, &p, &d), LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "betas"));
	llm_adamw_params_default(&p);
	p.eps = -1e-8;
	assert_int_equal(llm_adamw_init(&o, 3, &p, &d), LLM_ERR_RANGE);
	llm_adamw_params_default(&p);
	p.weight_decay = NAN;
	assert_int_equal(llm_adamw_init(&o, 3, &p, &d), LLM_ERR_RANGE);
}

static void clip_leaves_nonfinite_gradients_for_the_caller(void **state)
{
	(void)state;
	float g[3] = {1.0f, NAN, 2.0f};
	float norm = llm_clip_grad_norm(g, 3, 1.0f);
	assert_true(isnan(norm));
	assert_float_equal(g[0], 1.0f, 0);
	assert_float_equal(g[2], 2.0f, 0);
}

static void schedules_hold_their_floor_past_the_end(void **state)
{
	(void)state;
	struct llm_lr_schedule s = {.kind = LLM_LR_COSINE,
				    .lr = 1.0,
				    .warmup_steps = 2,
				    .total_steps = 10,
				    .min_lr_ratio = 0.1};
	assert_float_equal(llm_lr_at(&s, 0), 0.0, 0);
	assert_float_equal(llm_lr_at(&s, 1), 0.5, 1e-12);
	assert_float_equal(llm_lr_at(&s, 2), 1.0, 1e-12);
	assert_float_equal(llm_lr_at(&s, 6), 0.55, 1e-12);
	assert_float_equal(llm_lr_at(&s, 10), 0.1, 1e-12);
	assert_float_equal(llm_lr_at(&s, 15), 0.1, 1e-12);
	s.kind = LLM_LR_LINEAR;
	s.min_lr_ratio = 0.0;
	assert_float_equal(llm_lr_at(&s, 6), 0.5, 1e-12);
	assert_float_equal(llm_lr_at(&s, 12), 0.0, 0);
	s.kind = LLM_LR_CONSTANT;
	assert_float_equal(llm_lr_at(&s, 1), 0.5, 1e-12);
	assert_float_equal(llm_lr_at(&s, 1000), 1.0, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(adamw_with_clipping_and_cosine_matches_pytorch),
	    cmocka_unit_test(schedules_match_transformers),
	    cmocka_unit_test(clip_grad_norm_matches_pytorch_below_and_above),
	    cmocka_unit_test(weight_decay_is_decoupled_and_masked),
	    cmocka_unit_test(adamw_refuses_what_torch_refuses),
	    cmocka_unit_test(clip_leaves_nonfinite_gradients_for_the_caller),
	    cmocka_unit_test(schedules_hold_their_floor_past_the_end),
	};
	return cmocka_run_group_tests(tests, load_fixture, free_fixture);
}
