/* safetensors (lib/engine/safetensors) and PEFT adapters (lib/engine/peft): the fixtures written
 * by scripts/maint/make-engine-io-fixtures load with the values they hold and the writer
 * reproduces them byte for byte; f16 conversions are exact; every malformed file gets its own
 * clear error (run under ASan, nothing is read out of bounds); PEFT names and configs round
 * trip. */
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

#include "engine/peft.h"
#include "engine/safetensors.h"

static char dir[] = "/tmp/llmops-st-XXXXXX";
static char tmp_path[128];

static void fixture(char *out, size_t n, const char *name)
{
	const char *top = getenv("top_srcdir");
	snprintf(out, n, "%s/tests/data/engine-io/%s", top ? top : ".", name);
}

static unsigned char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *p = malloc((size_t)len + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*n = (size_t)len;
	return p;
}

static void spit(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(tmp_path, sizeof tmp_path, "%s/t.safetensors", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char p[200];
	const char *names[] = {"t.safetensors", "a.safetensors", "adapter_config.json",
			       "adapter_model.safetensors"};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
	return 0;
}

static const float W[6] = {0, 1, -2, 0.5f, 3.25f, -1024};
static const float B[3] = {1.5f, -0.25f, 7};
static const float H[6] = {1, -2, 0.5f, 65504, 0x1p-14f, 0x1p-24f};
static const float G[3] = {1, -3.5f, 0x1p100f};

static void test_f32_fixture_loads_with_values_and_metadata(void **state)
{
	(void)state;
	char path[512];
	fixture(path, sizeof path, "f32.safetensors");
	struct llm_safetensors *st;
	struct llm_diag d = {0};
	assert_int_equal(llm_safetensors_open(&st, path, &d), LLM_OK);
	assert_int_equal(st->n_tensors, 2);
	assert_string_equal(llm_safetensors_meta(st, "format"), "pt");
	assert_null(llm_safetensors_meta(st, "nope"));
	const struct llm_tensor_ref *w = llm_safetensors_find(st, "w");
	assert_non_null(w);
	assert_int_equal(w->dtype, LLM_DTYPE_F32);
	assert_int_equal(w->ndim, 2);
	assert_int_equal(w->shape[0], 2);
	assert_int_equal(w->shape[1], 3);
	float got[6];
	const int64_t sw[2] = {2, 3}, sb[1] = {3};
	assert_int_equal(llm_safetensors_read_f32(st, "w", got, 2, sw, &d), LLM_OK);
	assert_memory_equal(got, W, sizeof W);
	assert_int_equal(llm_safetensors_read_f32(st, "b", got, 1, sb, &d), LLM_OK);
	assert_memory_equal(got, B, sizeof B);
	llm_safetensors_close(st);
}

static void test_wrong_shape_names_tensor_and_both_shapes(void **state)
{
	(void)state;
	char path[512];
	fixture(path, sizeof path, "f32.safetensors");
	struct llm_safetensors *st;
	struct llm_diag d = {0};
	assert_int_equal(llm_safetensors_open(&st, path, &d), LLM_OK);
	float got[6];
	const int64_t s32[2] = {3, 2};
	assert_int_equal(llm_safetensors_read_f32(st, "w", got, 2, s32, &d), LLM_ERR_CHECK);
	assert_non_null(strstr(d.msg, "'w' has shape [2, 3], expected [3, 2]"));
	assert_string_equal(d.file, path);
	assert_int_equal(llm_safetensors_read_f32(st, "missing", got, 2, s32, &d),
			 LLM_ERR_NOT_FOUND);
	assert_non_null(strstr(d.msg, "'missing'"));
	llm_safetensors_close(st);
}

static void check_half_fixtures(const char *name, size_t n_tensors)
{
	char path[512];
	fixture(path, sizeof path, name);
	struct llm_safetensors *st;
	struct llm_diag d = {0};
	assert_int_equal(llm_safetensors_open(&st, path, &d), LLM_OK);
	assert_int_equal(st->n_tensors, n_tensors);
	float got[6];
	const int64_t s23[2] = {2, 3}, s3[1] = {3};
	if (llm_safetensors_find(st, "h")) {
		assert_int_equal(llm_safetensors_find(st, "h")->dtype, LLM_DTYPE_F16);
		assert_int_equal(llm_safetensors_read_f32(st, "h", got, 2, s23, &d), LLM_OK);
		assert_memory_equal(got, H, sizeof H);
	}
	if (llm_safetensors_find(st, "g")) {
		assert_int_equal(llm_safetensors_find(st, "g")->dtype, LLM_DTYPE_BF16);
		assert_int_equal(llm_safetensors_read_f32(st, "g", got, 1, s3, &d), LLM_OK);
		assert_memory_equal(got, G, sizeof G);
	}
	if (llm_safetensors_find(st, "w")) {
		assert_int_equal(llm_safetensors_read_f32(st, "w", got, 2, s23, &d), LLM_OK);
		assert_memory_equal(got, W, sizeof W);
	}
	llm_safetensors_close(st);
}

static void test_f16_and_bf16_fixtures_load_as_exact_f32(void **state)
{
	(void)state;
	check_half_fixtures("f16.safetensors", 1);
	check_half_fixtures("bf16.safetensors", 1);
	check_half_fixtures("mixed.safetensors", 4);
}

static void test_unpadded_header_with_unaligned_data_loads(void **state)
{
	(void)state;
	check_half_fixtures("unaligned.safetensors", 4);
	char path[512];
	fixture(path, sizeof path, "unaligned.safetensors");
	struct llm_safetensors *st;
	assert_int_equal(llm_safetensors_open(&st, path, NULL), LLM_OK);
	assert_string_equal(llm_safetensors_meta(st, "k"), "v!");
	assert_true((uintptr_t)llm_safetensors_find(st, "b")->data % 4 != 0);
	llm_safetensors_close(st);
}

/* Raw f16 and bf16 bytes of H and G, for writing. */
static void half_bytes(uint16_t *h, uint16_t *g)
{
	for (int i = 0; i < 6; i++)
		h[i] = llm_f32_to_f16(H[i]);
	for (int i = 0; i < 3; i++) {
		uint32_t bits;
		memcpy(&bits, &G[i], 4);
		g[i] = (uint16_t)(bits >> 16);
	}
}

static void test_writer_matches_python_layout_byte_for_byte(void **state)
{
	(void)state;
	uint16_t h[6], g[3];
	half_bytes(h, g);
	/* Given out of order: the writer sorts as the Python library does. */
	const struct llm_tensor_ref ts[] = {
	    {.name = "w", .dtype = LLM_DTYPE_F32, .ndim = 2, .shape = {2, 3}, .data = W},
	    {.name = "h", .dtype = LLM_DTYPE_F16, .ndim = 2, .shape = {2, 3}, .data = h},
	    {.name = "g", .dtype = LLM_DTYPE_BF16, .ndim = 1, .shape = {3}, .data = g},
	    {.name = "b", .dtype = LLM_DTYPE_F32, .ndim = 1, .shape = {3}, .data = B},
	};
	const struct llm_kv_str meta[] = {{"note", "mixed"}, {"format", "pt"}};
	struct {
		const char *fixture;
		size_t n_tensors, n_meta;
		const struct llm_tensor_ref *ts;
		const struct llm_kv_str *meta;
	} cases[] = {
	    {"f32.safetensors", 2, 1, (const struct llm_tensor_ref[]){ts[0], ts[3]}, meta + 1},
	    {"mixed.safetensors", 4, 2, ts, meta},
	    {"f16.safetensors", 1, 0, ts + 1, NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char path[512];
		struct llm_diag d = {0};
		fixture(path, sizeof path, cases[i].fixture);
		assert_int_equal(llm_safetensors_write(tmp_path, cases[i].ts, cases[i].n_tensors,
						       cases[i].meta, cases[i].n_meta, &d),
				 LLM_OK);
		size_t na, nb;
		unsigned char *a = slurp(path, &na), *b = slurp(tmp_path, &nb);
		assert_int_equal(na, nb);
		assert_memory_equal(a, b, na);
		free(a);
		free(b);
	}
}

static void test_round_trip_of_many_shapes(void **state)
{
	(void)state;
	static float big[4 * 5 * 6 * 7];
	for (size_t i = 0; i < sizeof big / sizeof *big; i++)
		big[i] = (float)i * 0.125f - 3;
	float scalar = 42;
	const struct llm_tensor_ref ts[] = {
	    {.name = "model.layers.0.mlp.up_proj.weight",
	     .ndim = 4,
	     .shape = {4, 5, 6, 7},
	     .data = big},
	    {.name = "s", .ndim = 0, .data = &scalar},
	    {.name = "empty", .ndim = 2, .shape = {0, 3}, .data = NULL},
	    {.name = "quote\"name", .ndim = 1, .shape = {2}, .data = big},
	};
	struct llm_diag d = {0};
	assert_int_equal(llm_safetensors_write(tmp_path, ts, 4, NULL, 0, &d), LLM_OK);
	struct llm_safetensors *st;
	assert_int_equal(llm_safetensors_open(&st, tmp_path, &d), LLM_OK);
	assert_int_equal(st->n_tensors, 4);
	assert_int_equal(st->n_meta, 0);
	static float got[4 * 5 * 6 * 7];
	assert_int_equal(llm_safetensors_read_f32(st, ts[0].name, got, 4, ts[0].shape, &d), LLM_OK);
	assert_memory_equal(got, big, sizeof big);
	assert_int_equal(llm_safetensors_read_f32(st, "s", got, 0, NULL, &d), LLM_OK);
	assert_true(got[0] == 42);
	assert_int_equal(llm_safetensors_read_f32(st, "empty", got, 2, ts[2].shape, &d), LLM_OK);
	assert_int_equal(llm_safetensors_read_f32(st, "quote\"name", got, 1, ts[3].shape, &d),
			 LLM_OK);
	llm_safetensors_close(st);
}

static void test_writer_refuses_duplicate_and_reserved_names(void **state)
{
	(void)state;
	unlink(tmp_path);
	const struct llm_tensor_ref dup[] = {
	    {.name = "a", .ndim = 1, .shape = {1}, .data = W},
	    {.name = "a", .ndim = 1, .shape = {1}, .data = W},
	};
	struct llm_diag d = {0};
	assert_int_equal(llm_safetensors_write(tmp_path, dup, 2, NULL, 0, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "'a' appears twice"));
	const struct llm_tensor_ref meta[] = {
	    {.name = "__metadata__", .ndim = 1, .shape = {1}, .data = W}};
	assert_int_equal(llm_safetensors_write(tmp_path, meta, 1, NULL, 0, &d), LLM_ERR_USAGE);
	assert_int_equal(access(tmp_path, F_OK), -1); /* nothing left behind */
}

static void test_f16_conversion_is_exact_and_rounds_to_even(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = llm_f16_to_f32((uint16_t)h);
		if (isnan(f))
			assert_true(isnan(llm_f16_to_f32(llm_f32_to_f16(f))));
		else
			assert_int_equal(llm_f32_to_f16(f), h);
	}
	assert_int_equal(llm_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);	      /* tie: even */
	assert_int_equal(llm_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);	      /* tie: even */
	assert_int_equal(llm_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01); /* above tie */
	assert_int_equal(llm_f32_to_f16(65519.0f), 0x7bff);
	assert_int_equal(llm_f32_to_f16(65520.0f), 0x7c00);
	assert_int_equal(llm_f32_to_f16(-1e10f), 0xfc00);
	assert_int_equal(llm_f32_to_f16(0x1p-25f), 0x0000);	/* tie with 0: even */
	assert_int_equal(llm_f32_to_f16(0x1.8p-25f), 0x0001);	/* rounds up to 2^-24 */
	assert_int_equal(llm_f32_to_f16(3 * 0x1p-25f), 0x0002); /* tie: even */
	assert_int_equal(llm_f32_to_f16(0x1.ffcp-15f), 0x0400); /* subnormal rounds to normal */
	assert_true(llm_bf16_to_f32(0x3f80) == 1.0f);
}

/* --- malformed files ------------------------------------------------------------------ */

static void write_raw(uint64_t hlen, const char *header, const void *data, size_t n)
{
	FILE *f = fopen(tmp_path, "wb");
	assert_non_null(f);
	unsigned char len8[8];
	for (int i = 0; i < 8; i++)
		len8[i] = (unsigned char)(hlen >> (8 * i));
	fwrite(len8, 1, 8, f);
	fwrite(header, 1, strlen(header), f);
	if (n)
		fwrite(data, 1, n, f);
	fclose(f);
}

static void expect_fail(enum llm_err code, const char *needle)
{
	struct llm_safetensors *st = (void *)1;
	struct llm_diag d = {0};
	enum llm_err e = llm_safetensors_open(&st, tmp_path, &d);
	if (e != code || !strstr(d.msg, needle))
		fail_msg("want %s containing \"%s\", got %s: %s", llm_err_name(code), needle,
			 llm_err_name(e), d.msg);
	assert_null(st);
	assert_string_equal(d.file, tmp_path);
}

static void bad(const char *header, size_t data_len, enum llm_err code, const char *needle)
{
	static const unsigned char zeros[64];
	write_raw(strlen(header), header, zeros, data_len);
	expect_fail(code, needle);
}

static void test_truncated_files_are_refused(void **state)
{
	(void)state;
	spit(tmp_path, "abc", 3);
	expect_fail(LLM_ERR_RANGE, "truncated: 3 bytes");
	spit(tmp_path, "", 0);
	expect_fail(LLM_ERR_RANGE, "truncated: 0 bytes");
	/* Every prefix of a valid file fails cleanly. */
	char path[512];
	fixture(path, sizeof path, "mixed.safetensors");
	size_t n;
	unsigned char *p = slurp(path, &n);
	for (size_t k = 0; k < n; k++) {
		spit(tmp_path, p, k);
		struct llm_safetensors *st;
		assert_int_not_equal(llm_safetensors_open(&st, tmp_path, NULL), LLM_OK);
	}
	/* Whatever single byte is changed, the file loads or fails cleanly. */
	for (size_t k = 0; k < n; k++) {
		for (int v = 0; v < 3; v++) {
			unsigned char old = p[k];
			p[k] = (unsigned char[]){0xff, '9', '}'}[v];
			spit(tmp_path, p, n);
			struct llm_safetensors *st;
			if (llm_safetensors_open(&st, tmp_path, NULL) == LLM_OK)
				llm_safetensors_close(st);
			p[k] = old;
		}
	}
	free(p);
}

static void test_header_length_past_end_or_over_limit(void **state)
{
	(void)state;
	write_raw(1000, "{}", NULL, 0);
	expect_fail(LLM_ERR_RANGE, "header length 1000 runs past the end of the file (10 bytes)");
	write_raw(UINT64_MAX, "{}", NULL, 0);
	expect_fail(LLM_ERR_TOO_BIG, "over the 100000000-byte limit");
	write_raw(0, "", NULL, 0);
	expect_fail(LLM_ERR_JSON, "does not start with '{'");
}

static void test_header_that_is_not_json_object(void **state)
{
	(void)state;
	bad("{\"a\":", 0, LLM_ERR_JSON, "header is not valid JSON");
	bad("[1,2]", 0, LLM_ERR_JSON, "does not start with '{'");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
	    4, LLM_ERR_JSON, "duplicate");
	bad("{\"a\":7}", 0, LLM_ERR_TYPE, "'a': entry is not an object");
	bad("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, LLM_ERR_MISSING,
	    "'a': missing dtype");
	bad("{\"__metadata__\":{\"k\":1}}", 0, LLM_ERR_TYPE, "__metadata__ value 'k'");
}

static void test_offsets_overlapping_out_of_range_or_short_of_end(void **state)
{
	(void)state;
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
	    12, LLM_ERR_CHECK, "'b' at data offset 4 overlaps");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, LLM_ERR_CHECK,
	    "'a' starts at data offset 4, leaving a gap");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, LLM_ERR_RANGE,
	    "'a': data_offsets [0, 16] run past the 8 bytes of data");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12, LLM_ERR_CHECK,
	    "the tensors end at data offset 4 but the file holds 12 bytes of data");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8, LLM_ERR_RANGE,
	    "are not a range");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, LLM_ERR_TYPE,
	    "data_offsets is not two integers");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, LLM_ERR_RANGE,
	    "are not a range");
}

static void test_sizes_that_do_not_match_the_shape(void **state)
{
	(void)state;
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,6]}}", 6, LLM_ERR_CHECK,
	    "'a': data_offsets [0, 6] hold 6 bytes, but shape [2] of F32 needs 8");
	bad("{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, LLM_ERR_CHECK,
	    "shape [2] of F16 needs 4");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
	    "\"data_offsets\":[0,0]}}",
	    0, LLM_ERR_RANGE, "'a': shape [4294967296, 4294967296] overflows 64 bits");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}", 0,
	    LLM_ERR_RANGE, "overflows 64 bits");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, LLM_ERR_TYPE,
	    "non-negative integers");
	bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
	    LLM_ERR_RANGE, "'a' has 5 dimensions: at most 4");
}

static void test_unknown_or_unsupported_dtypes_name_the_tensor(void **state)
{
	(void)state;
	bad("{\"x.weight\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
	    LLM_ERR_TYPE, "tensor 'x.weight' has dtype I64: only F32, F16 and BF16 load");
	bad("{\"y\":{\"dtype\":\"Q9\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, LLM_ERR_TYPE,
	    "tensor 'y' has dtype Q9");
	bad("{\"z\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,8]}}", 8, LLM_ERR_TYPE,
	    "'z': dtype is not a string");
}

static void test_directories_and_missing_files(void **state)
{
	(void)state;
	struct llm_safetensors *st;
	struct llm_diag d = {0};
	assert_int_equal(llm_safetensors_open(&st, dir, &d), LLM_ERR_IS_DIR);
	char p[200];
	snprintf(p, sizeof p, "%s/none.safetensors", dir);
	assert_int_equal(llm_safetensors_open(&st, p, &d), LLM_ERR_NOT_FOUND);
}

/* --- PEFT ------------------------------------------------------------------------------ */

static void test_peft_names_follow_saved_keys(void **state)
{
	(void)state;
	char name[256], module[128], which;
	assert_int_equal(
	    llm_peft_tensor_name("model.layers.0.self_attn.q_proj", 'A', name, sizeof name),
	    LLM_OK);
	assert_string_equal(name, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
	assert_int_equal(
	    llm_peft_tensor_name("model.layers.11.mlp.down_proj", 'B', name, sizeof name), LLM_OK);
	assert_string_equal(name, "base_model.model.model.layers.11.mlp.down_proj.lora_B.weight");
	assert_int_equal(llm_peft_parse_name(name, module, sizeof module, &which), LLM_OK);
	assert_string_equal(module, "model.layers.11.mlp.down_proj");
	assert_int_equal(which, 'B');
	assert_int_equal(llm_peft_parse_name("base_model.model.x.lora_A.default.weight", module,
					     sizeof module, &which),
			 LLM_ERR_NOT_FOUND);
	assert_int_equal(llm_peft_parse_name("model.norm.weight", module, sizeof module, &which),
			 LLM_ERR_NOT_FOUND);
	assert_int_equal(llm_peft_tensor_name("m", 'A', name, 10), LLM_ERR_TOO_BIG);
}

static void test_peft_adapter_round_trips(void **state)
{
	(void)state;
	float a[2 * 3], b[4 * 2], a2[2 * 3], b2[4 * 2];
	for (int i = 0; i < 6; i++)
		a[i] = (float)i - 2.5f;
	for (int i = 0; i < 8; i++)
		b[i] = (float)i * 0.25f;
	char *mods[] = {"q_proj", "v_proj"};
	struct llm_peft_config c = {.r = 2,
				    .lora_alpha = 16,
				    .lora_dropout = 0.05,
				    .target_modules = mods,
				    .n_target_modules = 2,
				    .base_model_name_or_path = "llmops/tiny"};
	const struct llm_lora_pair pairs[] = {
	    {"model.layers.0.self_attn.q_proj", 2, 3, 4, a, b},
	};
	struct llm_diag d = {0};
	assert_int_equal(llm_peft_write(dir, &c, pairs, 1, &d), LLM_OK);
	char p[256];
	snprintf(p, sizeof p, "%s/adapter_config.json", dir);
	struct llm_peft_config r;
	assert_int_equal(llm_peft_config_read(p, &r, &d), LLM_OK);
	assert_int_equal(r.r, 2);
	assert_true(r.lora_alpha == 16);
	assert_true(fabs(r.lora_dropout - 0.05) < 1e-12);
	assert_int_equal(r.n_target_modules, 2);
	assert_string_equal(r.target_modules[1], "v_proj");
	assert_string_equal(r.base_model_name_or_path, "llmops/tiny");
	llm_peft_config_free(&r);
	size_t n;
	char *text = (char *)slurp(p, &n);
	text[n] = '\0';
	assert_non_null(strstr(text, "\"peft_type\": \"LORA\""));
	assert_non_null(strstr(text, "\"task_type\": \"CAUSAL_LM\""));
	assert_non_null(strstr(text, "\"bias\": \"none\""));
	assert_non_null(strstr(text, "\"lora_alpha\": 16,"));
	free(text);
	snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
	struct llm_safetensors *st;
	assert_int_equal(llm_safetensors_open(&st, p, &d), LLM_OK);
	assert_string_equal(llm_safetensors_meta(st, "format"), "pt");
	assert_int_equal(llm_peft_read_pair(st, pairs[0].module, 2, 3, 4, a2, b2, &d), LLM_OK);
	assert_memory_equal(a, a2, sizeof a);
	assert_memory_equal(b, b2, sizeof b);
	assert_int_equal(llm_peft_read_pair(st, pairs[0].module, 2, 4, 3, a2, b2, &d),
			 LLM_ERR_CHECK);
	assert_non_null(strstr(d.msg, "lora_A.weight' has shape [2, 3], expected [2, 4]"));
	llm_safetensors_close(st);
}

static void test_peft_config_errors(void **state)
{
	(void)state;
	char p[256];
	snprintf(p, sizeof p, "%s/adapter_config.json", dir);
	struct llm_peft_config r;
	struct llm_diag d = {0};
	const char *cases[][3] = {
	    {"{\"peft_type\":\"IA3\",\"r\":8}", "peft_type is not \"LORA\"", NULL},
	    {"{\"peft_type\":\"LORA\",\"lora_alpha\":8,\"target_modules\":[]}", "no r", NULL},
	    {"{\"peft_type\":\"LORA\",\"r\":8,\"lora_alpha\":8,\"target_modules\":\".*\"}",
	     "not a list", NULL},
	    {"{\"peft_type\":\"LORA\",\"r\":0,\"lora_alpha\":8}", "r is not an integer", NULL},
	    {"{\"peft_type\":", "", NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		spit(p, cases[i][0], strlen(cases[i][0]));
		assert_int_not_equal(llm_peft_config_read(p, &r, &d), LLM_OK);
		assert_non_null(strstr(d.msg, cases[i][1]));
		assert_null(r.target_modules);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_f32_fixture_loads_with_values_and_metadata),
	    cmocka_unit_test(test_wrong_shape_names_tensor_and_both_shapes),
	    cmocka_unit_test(test_f16_and_bf16_fixtures_load_as_exact_f32),
	    cmocka_unit_test(test_unpadded_header_with_unaligned_data_loads),
	    cmocka_unit_test(test_writer_matches_python_layout_byte_for_byte),
	    cmocka_unit_test(test_round_trip_of_many_shapes),
	    cmocka_unit_test(test_writer_refuses_duplicate_and_reserved_names),
	    cmocka_unit_test(test_f16_conversion_is_exact_and_rounds_to_even),
	    cmocka_unit_test(test_truncated_files_are_refused),
	    cmocka_unit_test(test_header_length_past_end_or_over_limit),
	    cmocka_unit_test(test_header_that_is_not_json_object),
	    cmocka_unit_test(test_offsets_overlapping_out_of_range_or_short_of_end),
	    cmocka_unit_test(test_sizes_that_do_not_match_the_shape),
	    cmocka_unit_test(test_unknown_or_unsupported_dtypes_name_the_tensor),
	    cmocka_unit_test(test_directories_and_missing_files),
	    cmocka_unit_test(test_peft_names_follow_saved_keys),
	    cmocka_unit_test(test_peft_adapter_round_trips),
	    cmocka_unit_test(test_peft_config_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
