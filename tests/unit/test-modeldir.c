/* Model directories and GGUF (lib/engine/modeldir): a saved directory loads back with the same
 * parameters, tied and untied; the safetensors file has transformers' names and shapes; a save
 * over an existing directory replaces it whole and leaves no temporaries; a GGUF export (F32
 * exactly, F16 to half precision) loads back; bad directories fail with their own codes. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include "engine/modeldir.h"
#include "engine/safetensors.h"

static char dir[] = "/tmp/llmops-md-XXXXXX";

static struct llm_model *small_model(bool tied)
{
	struct llm_model_config c;
	assert_int_equal(llm_model_config_preset(&c, "tiny", NULL), LLM_OK);
	c.vocab_size = 300;
	c.hidden_size = 32;
	c.intermediate_size = 48;
	c.num_hidden_layers = 2;
	c.num_attention_heads = 4;
	c.num_key_value_heads = 2;
	c.max_position_embeddings = 64;
	c.tie_word_embeddings = tied;
	c.bos_token_id = 1;
	c.eos_token_id = 2;
	struct llm_model *m;
	assert_int_equal(llm_model_new(&m, &c, NULL), LLM_OK);
	llm_model_init_random(m, 42, 0.02f);
	return m;
}

static void path_in(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static void save_load_round_trip(bool tied)
{
	char p[256];
	path_in(p, sizeof p, tied ? "tied" : "untied");
	struct llm_model *m = small_model(tied);
	struct llm_diag d;
	assert_int_equal(llm_modeldir_save(m, p, NULL, &d), LLM_OK);
	struct llm_model *b;
	assert_int_equal(llm_modeldir_load(&b, p, &d), LLM_OK);
	assert_int_equal(b->num_params, m->num_params);
	assert_memory_equal(b->params, m->params, m->num_params * sizeof(float));
	assert_int_equal(b->config.tie_word_embeddings, tied);
	assert_int_equal(b->config.eos_token_id, 2);
	llm_model_free(b);
	llm_model_free(m);
}

static void test_save_load_tied(void **state)
{
	(void)state;
	save_load_round_trip(true);
}

static void test_save_load_untied(void **state)
{
	(void)state;
	save_load_round_trip(false);
}

static void test_safetensors_has_transformers_names(void **state)
{
	(void)state;
	char p[256], f[300];
	path_in(p, sizeof p, "names");
	struct llm_model *m = small_model(false);
	assert_int_equal(llm_modeldir_save(m, p, NULL, NULL), LLM_OK);
	snprintf(f, sizeof f, "%s/model.safetensors", p);
	struct llm_safetensors *st;
	assert_int_equal(llm_safetensors_open(&st, f, NULL), LLM_OK);
	assert_int_equal(st->n_tensors, 2 + 9 * 2 + 1);
	const struct llm_tensor_ref *t = llm_safetensors_find(st, "model.layers.1.self_attn.k_proj.weight");
	assert_non_null(t);
	assert_int_equal(t->shape[0], 16); /* 2 kv heads of 8 */
	assert_int_equal(t->shape[1], 32);
	t = llm_safetensors_find(st, "model.layers.0.mlp.down_proj.weight");
	assert_non_null(t);
	assert_int_equal(t->shape[0], 32);
	assert_int_equal(t->shape[1], 48);
	assert_non_null(llm_safetensors_find(st, "lm_head.weight"));
	assert_non_null(llm_safetensors_find(st, "model.norm.weight"));
	assert_string_equal(llm_safetensors_meta(st, "format"), "pt");
	llm_safetensors_close(st);
	llm_model_free(m);
}

static void test_save_replaces_whole_and_leaves_nothing(void **state)
{
	(void)state;
	char p[256];
	path_in(p, sizeof p, "replace");
	struct llm_model *a = small_model(true), *b = small_model(true);
	llm_model_init_random(b, 7, 0.02f);
	assert_int_equal(llm_modeldir_save(a, p, NULL, NULL), LLM_OK);
	assert_int_equal(llm_modeldir_save(b, p, NULL, NULL), LLM_OK);
	struct llm_model *r;
	assert_int_equal(llm_modeldir_load(&r, p, NULL), LLM_OK);
	assert_memory_equal(r->params, b->params, b->num_params * sizeof(float));
	DIR *dp = opendir(dir);
	struct dirent *de;
	while ((de = readdir(dp)))
		assert_null(strstr(de->d_name, ".tmp-"));
	closedir(dp);
	llm_model_free(r);
	llm_model_free(a);
	llm_model_free(b);
}

static void gguf_round_trip(bool tied, bool f16)
{
	char p[256];
	path_in(p, sizeof p, f16 ? "m16.gguf" : "m32.gguf");
	struct llm_model *m = small_model(tied);
	struct llm_gguf_export_opts o = {.f16 = f16, .name = "test"};
	struct llm_diag d;
	assert_int_equal(llm_modeldir_export_gguf(m, p, &o, &d), LLM_OK);
	struct llm_model *b;
	assert_int_equal(llm_modeldir_open(&b, p, &d), LLM_OK);
	assert_int_equal(b->num_params, m->num_params);
	assert_int_equal(b->config.tie_word_embeddings, tied);
	assert_int_equal(b->config.num_key_value_heads, 2);
	assert_int_equal(b->config.bos_token_id, -1); /* no tokenizer given */
	if (!f16) {
		assert_memory_equal(b->params, m->params, m->num_params * sizeof(float));
	} else {
		for (size_t i = 0; i < m->num_params; i++)
			assert_true(fabsf(b->params[i] - m->params[i]) <=
				    1e-3f * fabsf(m->params[i]) + 1e-7f);
	}
	llm_model_free(b);
	llm_model_free(m);
}

static void test_gguf_f32_round_trip(void **state)
{
	(void)state;
	gguf_round_trip(false, false);
	gguf_round_trip(true, false);
}

static void test_gguf_f16_round_trip(void **state)
{
	(void)state;
	gguf_round_trip(true, true);
}

static void test_bad_directories(void **state)
{
	(void)state;
	char p[256], f[300];
	struct llm_diag d;
	struct llm_model *m;
	path_in(p, sizeof p, "missing");
	assert_int_equal(llm_modeldir_load(&m, p, &d), LLM_ERR_NOT_FOUND);
	path_in(p, sizeof p, "empty");
	mkdir(p, 0777);
	assert_int_equal(llm_modeldir_load(&m, p, &d), LLM_ERR_NOT_FOUND);
	assert_non_null(strstr(d.file, "config.json"));
	/* A truncated model.safetensors. */
	path_in(p, sizeof p, "trunc");
	struct llm_model *a = small_model(true);
	assert_int_equal(llm_modeldir_save(a, p, NULL, NULL), LLM_OK);
	snprintf(f, sizeof f, "%s/model.safetensors", p);
	struct stat sb;
	stat(f, &sb);
	assert_int_equal(truncate(f, sb.st_size - 100), 0);
	assert_int_not_equal(llm_modeldir_load(&m, p, &d), LLM_OK);
	assert_non_null(strstr(d.file, "model.safetensors"));
	/* Weights of another shape. */
	path_in(p, sizeof p, "shape");
	assert_int_equal(llm_modeldir_save(a, p, NULL, NULL), LLM_OK);
	struct llm_model *b = small_model(false);
	snprintf(f, sizeof f, "%s/model.safetensors", p);
	assert_int_equal(llm_modeldir_read_weights(b, f, &d), LLM_ERR_MISSING);
	llm_model_free(a);
	llm_model_free(b);
}

static int cleanup(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_save_load_tied),
	    cmocka_unit_test(test_save_load_untied),
	    cmocka_unit_test(test_safetensors_has_transformers_names),
	    cmocka_unit_test(test_save_replaces_whole_and_leaves_nothing),
	    cmocka_unit_test(test_gguf_f32_round_trip),
	    cmocka_unit_test(test_gguf_f16_round_trip),
	    cmocka_unit_test(test_bad_directories),
	};
	return cmocka_run_group_tests(tests, NULL, cleanup);
}
