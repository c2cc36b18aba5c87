/* GGUF (lib/engine/gguf): every kind of metadata and F32/F16 tensors round trip through the
 * writer and the reader with aligned data; malformed files (bad magic, other versions,
 * truncated strings, absurd counts, unknown value and tensor types, misaligned or out-of-range
 * offsets) each get a clear error without reading out of bounds (run under ASan); the llama
 * name map and the Q/K permutation match a hand-computed example; LoRA adapters carry the
 * names, shapes and keys llama.cpp expects. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/gguf.h"
#include "engine/peft.h"

static char dir[] = "/tmp/llmops-gguf-XXXXXX";
static char path[128];

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof path, "%s/t.gguf", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static unsigned char *slurp(const char *p, size_t *n)
{
	FILE *f = fopen(p, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *b = malloc((size_t)len + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*n = (size_t)len;
	return b;
}

static void spit(const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static void test_metadata_and_tensors_round_trip(void **state)
{
	(void)state;
	struct llm_gguf_writer *w;
	struct llm_diag d = {0};
	assert_int_equal(llm_gguf_writer_new(&w, &d), LLM_OK);
	const char *toks[] = {"a", "", "<0x00>", "bé"};
	const int32_t ints[] = {-1, 0, 7};
	const float fl[] = {0.5f, -2};
	assert_int_equal(llm_gguf_add_str(w, "general.name", "tiny"), LLM_OK);
	assert_int_equal(llm_gguf_add_u32(w, "n", 4000000000u), LLM_OK);
	assert_int_equal(llm_gguf_add_i32(w, "i", -5), LLM_OK);
	assert_int_equal(llm_gguf_add_f32(w, "f", 1e-5f), LLM_OK);
	assert_int_equal(llm_gguf_add_bool(w, "b", true), LLM_OK);
	assert_int_equal(llm_gguf_add_arr_str(w, "toks", toks, 4), LLM_OK);
	assert_int_equal(llm_gguf_add_arr_i32(w, "ints", ints, 3), LLM_OK);
	assert_int_equal(llm_gguf_add_arr_f32(w, "fl", fl, 2), LLM_OK);
	assert_int_equal(llm_gguf_add_arr_str(w, "none", NULL, 0), LLM_OK);
	assert_int_equal(llm_gguf_add_u32(w, "n", 1), LLM_ERR_USAGE); /* twice */
	float m[3 * 5], v[7];
	for (int i = 0; i < 15; i++)
		m[i] = (float)i - 7;
	for (int i = 0; i < 7; i++)
		v[i] = (float)i * 0.5f;
	const int64_t sm[2] = {3, 5}, sv[1] = {7};
	assert_int_equal(llm_gguf_add_tensor(w, "m", 2, sm, m, LLM_GGML_TYPE_F32), LLM_OK);
	assert_int_equal(llm_gguf_add_tensor(w, "v", 1, sv, v, LLM_GGML_TYPE_F16), LLM_OK);
	assert_int_equal(llm_gguf_add_tensor(w, "m", 1, sv, v, LLM_GGML_TYPE_F32), LLM_ERR_USAGE);
	assert_int_equal(llm_gguf_add_tensor(w, "q", 1, sv, v, 8), LLM_ERR_USAGE);
	assert_int_equal(llm_gguf_writer_write(w, path, &d), LLM_OK);
	llm_gguf_writer_free(w);

	struct llm_gguf *g;
	assert_int_equal(llm_gguf_open(&g, path, &d), LLM_OK);
	assert_int_equal(g->version, 3);
	assert_int_equal(g->alignment, 32);
	assert_int_equal(g->n_kv, 9);
	const char *s;
	uint32_t u;
	float f;
	assert_int_equal(llm_gguf_get_str(g, "general.name", &s, &d), LLM_OK);
	assert_string_equal(s, "tiny");
	assert_int_equal(llm_gguf_get_u32(g, "n", &u, &d), LLM_OK);
	assert_int_equal(u, 4000000000u);
	assert_int_equal(llm_gguf_get_u32(g, "i", &u, &d), LLM_ERR_RANGE);
	assert_int_equal(llm_gguf_find_kv(g, "i")->i, -5);
	assert_int_equal(llm_gguf_get_f32(g, "f", &f, &d), LLM_OK);
	assert_true(f == 1e-5f);
	assert_int_equal(llm_gguf_get_f32(g, "general.name", &f, &d), LLM_ERR_TYPE);
	assert_non_null(strstr(d.msg, "'general.name' is a string, expected a float"));
	assert_int_equal(llm_gguf_get_u32(g, "absent", &u, &d), LLM_ERR_MISSING);
	assert_int_equal(llm_gguf_find_kv(g, "b")->type, LLM_GGUF_BOOL);
	assert_int_equal(llm_gguf_find_kv(g, "b")->u, 1);
	const struct llm_gguf_kv *kv = llm_gguf_find_kv(g, "toks");
	assert_int_equal(kv->type, LLM_GGUF_ARRAY);
	assert_int_equal(kv->arr_type, LLM_GGUF_STRING);
	assert_int_equal(kv->arr_n, 4);
	const struct llm_gguf_str *ss = kv->arr;
	for (int i = 0; i < 4; i++)
		assert_string_equal(ss[i].s, toks[i]);
	kv = llm_gguf_find_kv(g, "ints");
	assert_int_equal(kv->arr_type, LLM_GGUF_INT32);
	assert_memory_equal(kv->arr, ints, sizeof ints);
	kv = llm_gguf_find_kv(g, "fl");
	assert_int_equal(kv->arr_type, LLM_GGUF_FLOAT32);
	assert_memory_equal(kv->arr, fl, sizeof fl);
	assert_int_equal(llm_gguf_find_kv(g, "none")->arr_n, 0);

	assert_int_equal(g->n_tensors, 2);
	const struct llm_tensor_ref *t = llm_gguf_find_tensor(g, "m");
	assert_int_equal(t->ndim, 2);
	assert_int_equal(t->shape[0], 3);
	assert_int_equal(t->shape[1], 5);
	assert_int_equal(g->ggml_types[1], LLM_GGML_TYPE_F16);
	for (size_t i = 0; i < g->n_tensors; i++)
		assert_int_equal((uintptr_t)g->tensors[i].data % 32, 0);
	float got[15];
	assert_int_equal(llm_gguf_read_f32(g, "m", got, 2, sm, &d), LLM_OK);
	assert_memory_equal(got, m, sizeof m);
	assert_int_equal(llm_gguf_read_f32(g, "v", got, 1, sv, &d), LLM_OK);
	assert_memory_equal(got, v, sizeof v);
	const int64_t wrong[2] = {5, 3};
	assert_int_equal(llm_gguf_read_f32(g, "m", got, 2, wrong, &d), LLM_ERR_CHECK);
	assert_non_null(strstr(d.msg, "'m' has shape [3, 5], expected [5, 3]"));
	llm_gguf_close(g);

	/* On disk the dimensions run fastest first: m is ne = [5, 3]. */
	size_t n;
	unsigned char *b = slurp(path, &n);
	const unsigned char want[] = {1, 0, 0, 0, 0, 0, 0, 0, 'm', 2, 0, 0, 0, 5, 0, 0, 0,
				      0, 0, 0, 0, 3, 0, 0, 0, 0,   0, 0, 0, 0, 0, 0, 0};
	assert_non_null(memmem(b, n, want, sizeof want));
	free(b);
}

/* --- malformed files, built byte by byte ----------------------------------------------- */

struct bb {
	unsigned char p[4096];
	size_t n;
};

static void b_bytes(struct bb *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof b->p);
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void b_u32(struct bb *b, uint32_t v)
{
	b_bytes(b, &v, 4);
}

static void b_u64(struct bb *b, uint64_t v)
{
	b_bytes(b, &v, 8);
}

static void b_str(struct bb *b, const char *s)
{
	b_u64(b, strlen(s));
	b_bytes(b, s, strlen(s));
}

static void b_head(struct bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
	b->n = 0;
	b_bytes(b, "GGUF", 4);
	b_u32(b, version);
	b_u64(b, n_tensors);
	b_u64(b, n_kv);
}

/* A tensor info; then the caller pads and adds data. */
static void b_tensor(struct bb *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type,
		     uint64_t offset)
{
	b_str(b, name);
	b_u32(b, nd);
	for (uint32_t i = 0; i < nd; i++)
		b_u64(b, ne[i]);
	b_u32(b, type);
	b_u64(b, offset);
}

static void b_pad(struct bb *b, size_t align, size_t data)
{
	while (b->n % align)
		b->p[b->n++] = 0;
	memset(b->p + b->n, 0, data);
	b->n += data;
}

static void expect(struct bb *b, enum llm_err code, const char *needle)
{
	spit(b->p, b->n);
	struct llm_gguf *g = (void *)1;
	struct llm_diag d = {0};
	enum llm_err e = llm_gguf_open(&g, path, &d);
	if (e != code || !strstr(d.msg, needle))
		fail_msg("want %s containing \"%s\", got %s: %s", llm_err_name(code), needle,
			 llm_err_name(e), d.msg);
	assert_null(g);
	assert_string_equal(d.file, path);
}

static void test_bad_magic_and_versions(void **state)
{
	(void)state;
	struct bb b;
	b_head(&b, 3, 0, 0);
	b.p[3] = 'X';
	expect(&b, LLM_ERR_CHECK, "not a GGUF file");
	b.n = 2;
	expect(&b, LLM_ERR_CHECK, "not a GGUF file");
	b_head(&b, 2, 0, 0);
	expect(&b, LLM_ERR_CHECK, "GGUF version 2 is not supported (only 3)");
	b_head(&b, 4, 0, 0);
	expect(&b, LLM_ERR_CHECK, "GGUF version 4 is not supported");
	b_head(&b, 0x03000000, 0, 0);
	expect(&b, LLM_ERR_CHECK, "big-endian");
	b_head(&b, 3, 0, 0);
	b.n = 10;
	expect(&b, LLM_ERR_RANGE, "the tensor count runs past the end");
	b_head(&b, 3, 0, 0);
	struct llm_gguf *g;
	spit(b.p, b.n);
	assert_int_equal(llm_gguf_open(&g, path, NULL), LLM_OK); /* empty but valid */
	llm_gguf_close(g);
}

static void test_truncated_metadata_strings(void **state)
{
	(void)state;
	struct bb b;
	b_head(&b, 3, 0, 1);
	b_u64(&b, 100);
	b_bytes(&b, "gener", 5);
	expect(&b, LLM_ERR_RANGE,
	       "the key of metadata entry 0 is a string of 100 bytes, but only 5");
	b_head(&b, 3, 0, 1);
	b_str(&b, "general.name");
	b_u32(&b, LLM_GGUF_STRING);
	b_u64(&b, UINT64_MAX);
	expect(&b, LLM_ERR_RANGE, "the value of 'general.name' is a string of");
	b_head(&b, 3, 0, 1);
	b_str(&b, "toks");
	b_u32(&b, LLM_GGUF_ARRAY);
	b_u32(&b, LLM_GGUF_STRING);
	b_u64(&b, 2);
	b_str(&b, "ok");
	b_u64(&b, 9);
	b_bytes(&b, "short", 5);
	expect(&b, LLM_ERR_RANGE, "an item of 'toks' is a string of 9 bytes");
	b_head(&b, 3, 0, 1);
	b_str(&b, "x");
	b_u32(&b, LLM_GGUF_UINT64);
	b_u32(&b, 1);
	expect(&b, LLM_ERR_RANGE, "the value of 'x' runs past the end");
}

static void test_absurd_counts(void **state)
{
	(void)state;
	struct bb b;
	b_head(&b, 3, 0, UINT64_MAX);
	expect(&b, LLM_ERR_TOO_BIG, "metadata entries cannot fit");
	b_head(&b, 3, 1ull << 60, 0);
	expect(&b, LLM_ERR_TOO_BIG, "1152921504606846976 tensors");
	b_head(&b, 3, 0, 1);
	b_str(&b, "a");
	b_u32(&b, LLM_GGUF_ARRAY);
	b_u32(&b, LLM_GGUF_FLOAT64);
	b_u64(&b, 1ull << 40);
	expect(&b, LLM_ERR_TOO_BIG, "'a' claims 1099511627776 items of float64");
	b_head(&b, 3, 0, 1);
	b_str(&b, "a");
	b_u32(&b, LLM_GGUF_ARRAY);
	b_u32(&b, LLM_GGUF_STRING);
	b_u64(&b, UINT64_MAX / 2);
	expect(&b, LLM_ERR_TOO_BIG, "items of string");
}

static void test_unknown_value_types(void **state)
{
	(void)state;
	struct bb b;
	b_head(&b, 3, 0, 1);
	b_str(&b, "k");
	b_u32(&b, 13);
	b_u64(&b, 0);
	expect(&b, LLM_ERR_TYPE, "'k' has unknown value type 13");
	b_head(&b, 3, 0, 1);
	b_str(&b, "k");
	b_u32(&b, LLM_GGUF_ARRAY);
	b_u32(&b, 99);
	b_u64(&b, 0);
	expect(&b, LLM_ERR_TYPE, "'k' is an array of unknown value type 99");
	b_head(&b, 3, 0, 1);
	b_str(&b, "k");
	b_u32(&b, LLM_GGUF_ARRAY);
	b_u32(&b, LLM_GGUF_ARRAY);
	b_u64(&b, 0);
	expect(&b, LLM_ERR_TYPE, "'k' is an array of arrays");
	b_head(&b, 3, 0, 2);
	b_str(&b, "k");
	b_u32(&b, LLM_GGUF_UINT8);
	b_bytes(&b, "\1", 1);
	b_str(&b, "k");
	b_u32(&b, LLM_GGUF_UINT8);
	b_bytes(&b, "\2", 1);
	expect(&b, LLM_ERR_CHECK, "metadata key 'k' appears twice");
}

static void test_unknown_and_quantised_tensor_types(void **state)
{
	(void)state;
	struct bb b;
	const uint64_t ne[2] = {32, 2};
	b_head(&b, 3, 1, 0);
	b_tensor(&b, "blk.0.attn_q.weight", 2, ne, 99, 0);
	b_pad(&b, 32, 256);
	expect(&b, LLM_ERR_TYPE, "tensor 'blk.0.attn_q.weight' has unknown type 99");
	b_head(&b, 3, 1, 0);
	b_tensor(&b, "t", 2, ne, 2, 0);
	b_pad(&b, 32, 256);
	expect(&b, LLM_ERR_TYPE, "tensor 't' has type 2 (Q4_0): only F32, F16 and BF16 load");
	b_head(&b, 3, 1, 0);
	b_tensor(&b, "t", 5, (const uint64_t[]){1, 1, 1, 1, 1}, 0, 0);
	b_pad(&b, 32, 32);
	expect(&b, LLM_ERR_RANGE, "tensor 't' has 5 dimensions");
	b_head(&b, 3, 1, 0);
	b_tensor(&b, "t", 2, (const uint64_t[]){1ull << 40, 1ull << 40}, 0, 0);
	b_pad(&b, 32, 32);
	expect(&b, LLM_ERR_RANGE, "'t': its size overflows");
}

static void test_misaligned_and_out_of_range_offsets(void **state)
{
	(void)state;
	struct bb b;
	const uint64_t ne[1] = {4};
	b_head(&b, 3, 1, 0);
	b_tensor(&b, "t", 1, ne, 0, 4);
	b_pad(&b, 32, 64);
	expect(&b, LLM_ERR_CHECK, "tensor 't' has offset 4, not a multiple of the alignment 32");
	b_head(&b, 3, 1, 0);
	b_tensor(&b, "t", 1, ne, 0, 32);
	b_pad(&b, 32, 40);
	expect(&b, LLM_ERR_RANGE, "tensor 't' (16 bytes at offset 32) runs past the 40 bytes");
	b_head(&b, 3, 1, 0);
	b_tensor(&b, "t", 1, ne, 0, 0);
	expect(&b, LLM_ERR_RANGE, "truncated: the tensor data would start at byte");
	b_head(&b, 3, 2, 0);
	b_tensor(&b, "a", 1, (const uint64_t[]){16}, 0, 0);
	b_tensor(&b, "b", 1, ne, 0, 32);
	b_pad(&b, 32, 96);
	expect(&b, LLM_ERR_CHECK, "tensors 'a' and 'b' overlap");
	b_head(&b, 3, 2, 0);
	b_tensor(&b, "a", 1, ne, 0, 0);
	b_tensor(&b, "a", 1, ne, 0, 32);
	b_pad(&b, 32, 64);
	expect(&b, LLM_ERR_CHECK, "tensor 'a' appears twice");
	/* general.alignment is honoured, and must be a power of two. */
	b_head(&b, 3, 1, 1);
	b_str(&b, "general.alignment");
	b_u32(&b, LLM_GGUF_UINT32);
	b_u32(&b, 8);
	b_tensor(&b, "t", 1, ne, 0, 8);
	b_pad(&b, 8, 24);
	spit(b.p, b.n);
	struct llm_gguf *g;
	assert_int_equal(llm_gguf_open(&g, path, NULL), LLM_OK);
	assert_int_equal(g->alignment, 8);
	llm_gguf_close(g);
	b_head(&b, 3, 0, 1);
	b_str(&b, "general.alignment");
	b_u32(&b, LLM_GGUF_UINT32);
	b_u32(&b, 24);
	expect(&b, LLM_ERR_CHECK, "general.alignment must be a power of two");
}

static void test_every_prefix_and_byte_change_fails_cleanly(void **state)
{
	(void)state;
	struct llm_gguf_writer *w;
	assert_int_equal(llm_gguf_writer_new(&w, NULL), LLM_OK);
	const char *toks[] = {"x", "yy"};
	const int32_t ints[] = {1, 2};
	float m[6] = {1, 2, 3, 4, 5, 6};
	const int64_t sm[2] = {2, 3};
	llm_gguf_add_str(w, "s", "str");
	llm_gguf_add_arr_str(w, "t", toks, 2);
	llm_gguf_add_arr_i32(w, "i", ints, 2);
	llm_gguf_add_tensor(w, "m", 2, sm, m, LLM_GGML_TYPE_F16);
	llm_gguf_add_tensor(w, "n", 2, sm, m, LLM_GGML_TYPE_F32);
	assert_int_equal(llm_gguf_writer_write(w, path, NULL), LLM_OK);
	llm_gguf_writer_free(w);
	size_t n;
	unsigned char *p = slurp(path, &n);
	struct llm_gguf *g;
	for (size_t k = 0; k < n; k++) {
		spit(p, k);
		if (llm_gguf_open(&g, path, NULL) == LLM_OK) {
			/* Only a cut inside the last tensor's padding still loads. */
			assert_true(k >= n - 32 + 24);
			llm_gguf_close(g);
		}
	}
	for (size_t k = 0; k < n; k++) {
		for (int v = 0; v < 3; v++) {
			unsigned char old = p[k];
			p[k] = (unsigned char[]){0xff, 0x80, 0x09}[v];
			spit(p, n);
			if (llm_gguf_open(&g, path, NULL) == LLM_OK)
				llm_gguf_close(g);
			p[k] = old;
		}
	}
	free(p);
}

/* --- llama ---------------------------------------------------------------------------- */

static void test_llama_names_map_both_ways(void **state)
{
	(void)state;
	const char *pairs[][2] = {
	    {"model.embed_tokens.weight", "token_embd.weight"},
	    {"model.norm.weight", "output_norm.weight"},
	    {"lm_head.weight", "output.weight"},
	    {"model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight"},
	    {"model.layers.1.self_attn.k_proj.weight", "blk.1.attn_k.weight"},
	    {"model.layers.2.self_attn.v_proj.weight", "blk.2.attn_v.weight"},
	    {"model.layers.3.self_attn.o_proj.weight", "blk.3.attn_output.weight"},
	    {"model.layers.10.mlp.gate_proj.weight", "blk.10.ffn_gate.weight"},
	    {"model.layers.11.mlp.up_proj.weight", "blk.11.ffn_up.weight"},
	    {"model.layers.12.mlp.down_proj.weight", "blk.12.ffn_down.weight"},
	    {"model.layers.13.input_layernorm.weight", "blk.13.attn_norm.weight"},
	    {"model.layers.14.post_attention_layernorm.weight", "blk.14.ffn_norm.weight"},
	};
	char out[128];
	for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
		assert_int_equal(llm_gguf_llama_name(pairs[i][0], out, sizeof out), LLM_OK);
		assert_string_equal(out, pairs[i][1]);
		assert_int_equal(llm_gguf_llama_hf_name(pairs[i][1], out, sizeof out), LLM_OK);
		assert_string_equal(out, pairs[i][0]);
	}
	const char *unknown[] = {
	    "model.layers.01.mlp.up_proj.weight", "model.layers.x.mlp.up_proj.weight",
	    "model.layers.0.mlp.up_proj.bias",	  "model.rotary.inv_freq",
	    "model.layers..mlp.up_proj.weight",	  ""};
	for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++)
		assert_int_equal(llm_gguf_llama_name(unknown[i], out, sizeof out),
				 LLM_ERR_NOT_FOUND);
	assert_int_equal(llm_gguf_llama_name("model.layers.3.mlp.up_proj.weight", out, 8),
			 LLM_ERR_TOO_BIG);
	assert_int_equal(
	    llm_gguf_llama_permute_heads("model.layers.3.self_attn.q_proj.weight", 8, 2), 8);
	assert_int_equal(
	    llm_gguf_llama_permute_heads("model.layers.3.self_attn.k_proj.weight", 8, 2), 2);
	assert_int_equal(
	    llm_gguf_llama_permute_heads("model.layers.3.self_attn.v_proj.weight", 8, 2), 0);
}

/* Rows tagged by their Hugging Face index; two columns so whole rows must move. */
static void rows(float *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		m[2 * i] = (float)i;
		m[2 * i + 1] = (float)i + 0.5f;
	}
}

static void test_qk_permutation_matches_hand_computed_rows(void **state)
{
	(void)state;
	/* Two heads of dimension 4: HF pairs (0,2) (1,3) become GGUF rows (0,1) (2,3). */
	float src[16], dst[16], back[16];
	rows(src, 8);
	assert_int_equal(llm_gguf_llama_permute(dst, src, 2, 8, 2), LLM_OK);
	const float want8[8] = {0, 2, 1, 3, 4, 6, 5, 7};
	for (int i = 0; i < 8; i++) {
		assert_true(dst[2 * i] == want8[i]);
		assert_true(dst[2 * i + 1] == want8[i] + 0.5f);
	}
	assert_int_equal(llm_gguf_llama_unpermute(back, dst, 2, 8, 2), LLM_OK);
	assert_memory_equal(back, src, sizeof src);
	/* One head of dimension 6: reshape(1, 2, 3, cols).swapaxes(1, 2). */
	float s6[12], d6[12];
	rows(s6, 6);
	assert_int_equal(llm_gguf_llama_permute(d6, s6, 1, 6, 2), LLM_OK);
	const float want6[6] = {0, 3, 1, 4, 2, 5};
	for (int i = 0; i < 6; i++)
		assert_true(d6[2 * i] == want6[i]);
	assert_int_equal(llm_gguf_llama_unpermute(back, d6, 1, 6, 2), LLM_OK);
	assert_memory_equal(back, s6, sizeof s6);
	assert_int_equal(llm_gguf_llama_permute(dst, src, 3, 8, 2), LLM_ERR_USAGE);
	assert_int_equal(llm_gguf_llama_permute(dst, src, 0, 8, 2), LLM_ERR_USAGE);
}

static void test_llama_tensors_written_permuted_and_read_back(void **state)
{
	(void)state;
	struct llm_gguf_writer *w;
	struct llm_diag d = {0};
	assert_int_equal(llm_gguf_writer_new(&w, &d), LLM_OK);
	const struct llm_gguf_llama_hparams hp = {.name = "t",
						  .vocab_size = 16,
						  .context_length = 32,
						  .embedding_length = 8,
						  .block_count = 1,
						  .feed_forward_length = 16,
						  .head_count = 2,
						  .head_count_kv = 1,
						  .rms_norm_eps = 1e-5f,
						  .rope_freq_base = 10000};
	assert_int_equal(llm_gguf_llama_add_hparams(w, &hp), LLM_OK);
	float q[8 * 2], k[4 * 2], norm[8];
	rows(q, 8);
	rows(k, 4);
	for (int i = 0; i < 8; i++)
		norm[i] = 1 + (float)i;
	const int64_t sq[2] = {8, 2}, sk[2] = {4, 2}, sn[1] = {8};
	assert_int_equal(llm_gguf_llama_add_hf_tensor(w, "model.layers.0.self_attn.q_proj.weight",
						      2, sq, q, LLM_GGML_TYPE_F32, 2, 1, &d),
			 LLM_OK);
	assert_int_equal(llm_gguf_llama_add_hf_tensor(w, "model.layers.0.self_attn.k_proj.weight",
						      2, sk, k, LLM_GGML_TYPE_F16, 2, 1, &d),
			 LLM_OK);
	assert_int_equal(llm_gguf_llama_add_hf_tensor(w, "model.norm.weight", 1, sn, norm,
						      LLM_GGML_TYPE_F32, 2, 1, &d),
			 LLM_OK);
	assert_int_equal(llm_gguf_llama_add_hf_tensor(w, "model.rotary.inv_freq", 1, sn, norm,
						      LLM_GGML_TYPE_F32, 2, 1, &d),
			 LLM_ERR_NOT_FOUND);
	assert_int_equal(llm_gguf_llama_add_hf_tensor(w, "model.layers.1.self_attn.q_proj.weight",
						      2, sk, k, LLM_GGML_TYPE_F32, 3, 1, &d),
			 LLM_ERR_USAGE);
	assert_int_equal(llm_gguf_writer_write(w, path, &d), LLM_OK);
	llm_gguf_writer_free(w);

	struct llm_gguf *g;
	assert_int_equal(llm_gguf_open(&g, path, &d), LLM_OK);
	const char *arch;
	uint32_t u;
	assert_int_equal(llm_gguf_get_str(g, "general.architecture", &arch, &d), LLM_OK);
	assert_string_equal(arch, "llama");
	assert_int_equal(llm_gguf_get_u32(g, "llama.rope.dimension_count", &u, &d), LLM_OK);
	assert_int_equal(u, 4);
	assert_int_equal(llm_gguf_get_u32(g, "llama.attention.head_count_kv", &u, &d), LLM_OK);
	assert_int_equal(u, 1);
	float got[16];
	/* On disk, interleaved: K's one head of 4 rows is HF rows 0 2 1 3. */
	assert_int_equal(llm_gguf_read_f32(g, "blk.0.attn_k.weight", got, 2, sk, &d), LLM_OK);
	assert_true(got[0] == 0 && got[2] == 2 && got[4] == 1 && got[6] == 3);
	assert_int_equal(llm_gguf_llama_read_hf(g, "model.layers.0.self_attn.q_proj.weight", got, 2,
						sq, 2, 1, &d),
			 LLM_OK);
	assert_memory_equal(got, q, sizeof q);
	assert_int_equal(llm_gguf_llama_read_hf(g, "model.layers.0.self_attn.k_proj.weight", got, 2,
						sk, 2, 1, &d),
			 LLM_OK);
	assert_memory_equal(got, k, sizeof k);
	assert_int_equal(llm_gguf_llama_read_hf(g, "model.norm.weight", got, 1, sn, 2, 1, &d),
			 LLM_OK);
	assert_memory_equal(got, norm, sizeof norm);
	assert_int_equal(llm_gguf_llama_read_hf(g, "lm_head.weight", got, 1, sn, 2, 1, &d),
			 LLM_ERR_NOT_FOUND);
	llm_gguf_close(g);
}

static void test_lora_adapter_has_llamacpp_names_shapes_and_keys(void **state)
{
	(void)state;
	/* hidden 8, two heads, r 2: A (2, 8), B (8, 2). */
	float a[16], b[16];
	for (int i = 0; i < 16; i++)
		a[i] = (float)i;
	rows(b, 8);
	const struct llm_lora_pair pairs[] = {
	    {"model.layers.0.self_attn.q_proj", 2, 8, 8, a, b},
	    {"model.layers.0.self_attn.v_proj", 2, 8, 8, a, b},
	};
	struct llm_diag d = {0};
	assert_int_equal(llm_gguf_lora_write(path, pairs, 2, 16, 2, 2, &d), LLM_OK);
	struct llm_gguf *g;
	assert_int_equal(llm_gguf_open(&g, path, &d), LLM_OK);
	const char *s;
	float alpha;
	assert_int_equal(llm_gguf_get_str(g, "general.type", &s, &d), LLM_OK);
	assert_string_equal(s, "adapter");
	assert_int_equal(llm_gguf_get_str(g, "adapter.type", &s, &d), LLM_OK);
	assert_string_equal(s, "lora");
	assert_int_equal(llm_gguf_get_str(g, "general.architecture", &s, &d), LLM_OK);
	assert_string_equal(s, "llama");
	assert_int_equal(llm_gguf_get_f32(g, "adapter.lora.alpha", &alpha, &d), LLM_OK);
	assert_true(alpha == 16);
	assert_int_equal(g->n_tensors, 4);
	float got[16];
	const int64_t sa[2] = {2, 8}, sb[2] = {8, 2};
	assert_int_equal(llm_gguf_read_f32(g, "blk.0.attn_q.weight.lora_a", got, 2, sa, &d),
			 LLM_OK);
	assert_memory_equal(got, a, sizeof a);
	assert_int_equal(llm_gguf_read_f32(g, "blk.0.attn_q.weight.lora_b", got, 2, sb, &d),
			 LLM_OK);
	const float want8[8] = {0, 2, 1, 3, 4, 6, 5, 7}; /* B's rows follow Q's permutation */
	for (int i = 0; i < 8; i++)
		assert_true(got[2 * i] == want8[i]);
	assert_int_equal(llm_gguf_read_f32(g, "blk.0.attn_v.weight.lora_b", got, 2, sb, &d),
			 LLM_OK);
	assert_memory_equal(got, b, sizeof b);
	llm_gguf_close(g);
	const struct llm_lora_pair odd[] = {{"model.layers.0.self_attn.rotary", 2, 8, 8, a, b}};
	assert_int_equal(llm_gguf_lora_write(path, odd, 1, 16, 2, 2, &d), LLM_ERR_NOT_FOUND);
	assert_non_null(strstr(d.msg, "'model.layers.0.self_attn.rotary'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_metadata_and_tensors_round_trip),
	    cmocka_unit_test(test_bad_magic_and_versions),
	    cmocka_unit_test(test_truncated_metadata_strings),
	    cmocka_unit_test(test_absurd_counts),
	    cmocka_unit_test(test_unknown_value_types),
	    cmocka_unit_test(test_unknown_and_quantised_tensor_types),
	    cmocka_unit_test(test_misaligned_and_out_of_range_offsets),
	    cmocka_unit_test(test_every_prefix_and_byte_change_fails_cleanly),
	    cmocka_unit_test(test_llama_names_map_both_ways),
	    cmocka_unit_test(test_qk_permutation_matches_hand_computed_rows),
	    cmocka_unit_test(test_llama_tensors_written_permuted_and_read_back),
	    cmocka_unit_test(test_lora_adapter_has_llamacpp_names_shapes_and_keys),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
