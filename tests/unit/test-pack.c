/* Packing (lib/data/pack): exact layouts for greedy and first-fit decreasing, the segment
 * file, end-of-text tokens, split and empty documents, on token files written here. */
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

#include "data/pack.h"
#include "text/tokfile.h"

static char dir[] = "/tmp/llmops-pack-XXXXXX";
static char in_path[128], out_path[128], seg_path[128];

/* Documents [1 2 3] [4 5] [6 7 8 9 10] [] [11]. */
static void write_input(uint32_t big)
{
	static const uint32_t d0[] = {1, 2, 3}, d1[] = {4, 5}, d2[] = {6, 7, 8, 9, 10}, d4[] = {11};
	struct llm_tokfile_writer *w;
	assert_int_equal(llm_tokfile_create(&w, in_path, big ? big : 50257, NULL), LLM_OK);
	assert_int_equal(llm_tokfile_append(w, d0, 3, NULL), LLM_OK);
	assert_int_equal(llm_tokfile_append(w, d1, 2, NULL), LLM_OK);
	assert_int_equal(llm_tokfile_append(w, d2, 5, NULL), LLM_OK);
	assert_int_equal(llm_tokfile_append(w, NULL, 0, NULL), LLM_OK);
	assert_int_equal(llm_tokfile_append(w, d4, 1, NULL), LLM_OK);
	assert_int_equal(llm_tokfile_commit(w, NULL), LLM_OK);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(in_path, sizeof in_path, "%s/in.bin", dir);
	snprintf(out_path, sizeof out_path, "%s/out.bin", dir);
	snprintf(seg_path, sizeof seg_path, "%s/out.bin.seg", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	const char *names[] = {"in.bin",      "in.bin.idx",  "out.bin",
			       "out.bin.idx", "out.bin.seg", "out.bin.seg.idx"};
	char p[160];
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
	return 0;
}

static struct llm_pack_stats run(uint32_t seq_len, enum llm_pack_strategy s, int eot)
{
	struct llm_tokfile in;
	assert_int_equal(llm_tokfile_open(&in, in_path, NULL), LLM_OK);
	struct llm_pack_opts o = {seq_len, 0, eot >= 0, eot >= 0 ? (uint32_t)eot : 0, s};
	struct llm_pack_stats st;
	assert_int_equal(llm_pack(&in, &o, out_path, &st, NULL), LLM_OK);
	llm_tokfile_close(&in);
	return st;
}

/* The file at path must hold exactly want (n values) in ndocs documents of seq_len. */
static void expect_file(const char *path, const uint32_t *want, size_t n, uint32_t seq_len)
{
	struct llm_tokfile f;
	assert_int_equal(llm_tokfile_open(&f, path, NULL), LLM_OK);
	assert_int_equal(f.ntokens, n);
	assert_int_equal(f.ndocs, n / seq_len);
	for (uint64_t i = 0; i <= f.ndocs; i++)
		assert_int_equal(f.offsets[i], i * seq_len);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(llm_tokfile_get(&f, i), want[i]);
	llm_tokfile_close(&f);
}

static void test_greedy_layout(void **state)
{
	(void)state;
	write_input(0);
	struct llm_pack_stats st = run(4, LLM_PACK_GREEDY, -1);
	static const uint32_t tok[] = {1, 2, 3, 0, 4, 5, 0, 0, 6, 7, 8, 9, 10, 11, 0, 0};
	static const uint32_t seg[] = {1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 2, 0, 0};
	expect_file(out_path, tok, 16, 4);
	expect_file(seg_path, seg, 16, 4);
	assert_int_equal(st.documents, 5);
	assert_int_equal(st.empty, 1);
	assert_int_equal(st.split, 1);
	assert_int_equal(st.pieces, 5);
	assert_int_equal(st.sequences, 4);
	assert_int_equal(st.tokens, 11);
	assert_int_equal(st.padding, 5);
}

/* Pieces longest first: [6 7 8 9] opens 0, [1 2 3] opens 1, [4 5] opens 2, then [10] fits in
 * 1 and [11] in 2. */
static void test_ffd_layout(void **state)
{
	(void)state;
	write_input(0);
	struct llm_pack_stats st = run(4, LLM_PACK_FFD, -1);
	static const uint32_t tok[] = {6, 7, 8, 9, 1, 2, 3, 10, 4, 5, 11, 0};
	static const uint32_t seg[] = {1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 2, 0};
	expect_file(out_path, tok, 12, 4);
	expect_file(seg_path, seg, 12, 4);
	assert_int_equal(st.sequences, 3);
	assert_int_equal(st.padding, 1);
	assert_int_equal(st.tokens, 11);
}

/* With an end-of-text token each document grows by one; the empty one stays out. */
static void test_greedy_with_eot(void **state)
{
	(void)state;
	write_input(0);
	struct llm_pack_stats st = run(4, LLM_PACK_GREEDY, 99);
	static const uint32_t tok[] = {1, 2, 3, 99, 4, 5, 99, 0, 6, 7, 8, 9, 10, 99, 11, 99};
	static const uint32_t seg[] = {1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 2, 2};
	expect_file(out_path, tok, 16, 4);
	expect_file(seg_path, seg, 16, 4);
	assert_int_equal(st.tokens, 15);
	assert_int_equal(st.padding, 1);
	assert_int_equal(st.empty, 1);
}

static void test_one_sequence_per_token(void **state)
{
	(void)state;
	write_input(0);
	struct llm_pack_stats st = run(1, LLM_PACK_FFD, -1);
	assert_int_equal(st.sequences, 11);
	assert_int_equal(st.padding, 0);
	assert_int_equal(st.split, 3);
	/* Every piece has length 1: input order. */
	static const uint32_t tok[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
	expect_file(out_path, tok, 11, 1);
}

/* A padding id past 16 bits widens the output to 32-bit tokens. */
static void test_wide_pad(void **state)
{
	(void)state;
	write_input(0);
	struct llm_tokfile in;
	assert_int_equal(llm_tokfile_open(&in, in_path, NULL), LLM_OK);
	assert_int_equal(in.width, 2);
	struct llm_pack_opts o = {8, 100000, false, 0, LLM_PACK_GREEDY};
	struct llm_pack_stats st;
	assert_int_equal(llm_pack(&in, &o, out_path, &st, NULL), LLM_OK);
	llm_tokfile_close(&in);
	struct llm_tokfile f;
	assert_int_equal(llm_tokfile_open(&f, out_path, NULL), LLM_OK);
	assert_int_equal(f.width, 4);
	assert_int_equal(llm_tokfile_get(&f, 7), 100000);
	llm_tokfile_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_greedy_layout),   cmocka_unit_test(test_ffd_layout),
	    cmocka_unit_test(test_greedy_with_eot), cmocka_unit_test(test_one_sequence_per_token),
	    cmocka_unit_test(test_wide_pad),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
