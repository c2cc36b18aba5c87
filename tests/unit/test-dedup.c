/* Unit tests for lib/data/minhash, lib/data/spill and lib/data/dedup: the band and row choice
 * against text-dedup's optimal_param, MinHash estimates of known Jaccard similarities,
 * normalization, external sorting with spills, band and map records, union-find. */
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

#include "core/buf.h"
#include "core/rand.h"
#include "data/dedup.h"
#include "data/minhash.h"
#include "data/spill.h"

/* text-dedup's published choice (256 permutations at 0.7 give 25 bands of 10 rows), and
 * others computed independently with this Python, text-dedup's optimal_param with
 * scipy.integrate.quad replaced by composite Simpson over 4000 pieces:
 *     def integ(f, a, b, n=4000):
 *         h = (b - a) / n; s = f(a) + f(b)
 *         for i in range(1, n): s += (4 if i % 2 else 2) * f(a + i * h)
 *         return s * h / 3
 *     def opt(t, num_perm):
 *         best = float("inf"); o = (0, 0)
 *         for b in range(1, num_perm + 1):
 *             for r in range(1, num_perm // b + 1):
 *                 fp = integ(lambda s: 1 - (1 - s ** r) ** b, 0.0, t)
 *                 fn = integ(lambda s: 1 - (1 - (1 - s ** r) ** b), t, 1.0)
 *                 e = 0.5 * fp + 0.5 * fn
 *                 if e < best: best = e; o = (b, r)
 *         return o
 * which prints (25, 10), (14, 9), (9, 13), (14, 4), (5, 22), (17, 15) for the cases below. */
static void bands_and_rows_match_text_dedup_optimal_param(void **state)
{
	static const struct {
		double t;
		unsigned perm, b, r;
	} cases[] = {
		{0.7, 256, 25, 10}, {0.7, 128, 14, 9}, {0.8, 128, 9, 13},
		{0.5, 64, 14, 4},   {0.9, 112, 5, 22}, {0.8, 256, 17, 15},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		unsigned b, r;
		llm_minhash_optimal_param(cases[i].t, cases[i].perm, 0.5, 0.5, &b, &r);
		if (b != cases[i].b || r != cases[i].r)
			fail_msg("threshold %.2f, %u permutations: got (%u, %u), want (%u, %u)",
				 cases[i].t, cases[i].perm, b, r, cases[i].b, cases[i].r);
	}
}

static void candidate_probability_is_the_s_curve(void **state)
{
	/* 1 - (1 - s^r)^b, values from Python. */
	assert_true(fabs(llm_minhash_candidate_probability(0.7, 25, 10) - 0.5114698329575695) <
		    1e-12);
	assert_true(fabs(llm_minhash_candidate_probability(0.8, 14, 9) - 0.8670398049137819) <
		    1e-12);
}

/* Words w<from> .. w<to - 1>, space-separated. */
static void words(struct llm_buf *b, int from, int to)
{
	llm_buf_clear(b);
	for (int i = from; i < to; i++)
		llm_buf_printf(b, "%sw%d", i > from ? " " : "", i);
}

static double estimate(unsigned perm, uint64_t seed, int a0, int a1, int b0, int b1)
{
	struct llm_minhash m;
	struct llm_minhash_params p = {perm, 1, 1, 1, seed, false};
	assert_int_equal(llm_minhash_init(&m, &p, NULL), LLM_OK);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	size_t ns;
	words(&b, a0, a1);
	assert_int_equal(llm_minhash_sign(&m, b.data, b.len, &ns), LLM_OK);
	assert_int_equal(ns, (size_t)(a1 - a0));
	uint32_t *first = malloc(perm * sizeof *first);
	memcpy(first, m.sig, perm * sizeof *first);
	words(&b, b0, b1);
	assert_int_equal(llm_minhash_sign(&m, b.data, b.len, &ns), LLM_OK);
	double s = llm_minhash_similarity(first, m.sig, perm);
	free(first);
	llm_buf_free(&b);
	llm_minhash_free(&m);
	return s;
}

static void minhash_estimates_known_jaccard_similarities(void **state)
{
	/* Unigram sets with known Jaccard: [0,90) vs [10,100) share 80 of 100 (0.8); [0,100) vs
	 * [50,150) share 50 of 150 (1/3).  With 1024 permutations the standard error is at most
	 * 0.016; 0.05 is three of them. */
	struct {
		int a0, a1, b0, b1;
		double j;
	} cases[] = {
		{0, 90, 10, 100, 0.8},
		{0, 100, 50, 150, 1.0 / 3},
		{0, 100, 0, 100, 1.0},
		{0, 100, 100, 200, 0.0},
		{0, 200, 20, 200, 0.9},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		double s = estimate(1024, 7, cases[i].a0, cases[i].a1, cases[i].b0, cases[i].b1);
		if (fabs(s - cases[i].j) > 0.05)
			fail_msg("case %zu: estimate %.3f, Jaccard %.3f", i, s, cases[i].j);
	}
	/* Unbiased: the mean of 40 independent 128-permutation estimates of 0.8 is within 0.015
	 * (standard error of the mean 0.0056). */
	double sum = 0;
	for (uint64_t seed = 1; seed <= 40; seed++)
		sum += estimate(128, seed, 0, 90, 10, 100);
	assert_true(fabs(sum / 40 - 0.8) < 0.015);
}

static void shingles_are_word_ngrams(void **state)
{
	struct llm_minhash m;
	struct llm_minhash_params p = {64, 5, 8, 8, 1, true};
	assert_int_equal(llm_minhash_init(&m, &p, NULL), LLM_OK);
	size_t ns;
	const char *t = "one two three four five six seven";
	assert_int_equal(llm_minhash_sign(&m, t, strlen(t), &ns), LLM_OK);
	assert_int_equal(ns, 3);
	assert_int_equal(llm_minhash_sign(&m, "a b", 3, &ns), LLM_OK);
	assert_int_equal(ns, 1); /* fewer words than the n-gram: one shingle of them all */
	assert_int_equal(llm_minhash_sign(&m, " ,.; ", 5, &ns), LLM_OK);
	assert_int_equal(ns, 0);
	assert_int_equal(m.sig[0], UINT32_MAX);
	/* Normalization makes case, punctuation and spacing irrelevant. */
	uint32_t first[64];
	const char *x = "The cat sat on the mat, didn't it?";
	const char *y = "the  CAT sat on the mat didnt it";
	llm_minhash_sign(&m, x, strlen(x), &ns);
	memcpy(first, m.sig, sizeof first);
	llm_minhash_sign(&m, y, strlen(y), &ns);
	assert_memory_equal(first, m.sig, sizeof first);
	/* Word order matters inside a shingle. */
	const char *z = "cat the sat on the mat didnt it";
	llm_minhash_sign(&m, z, strlen(z), &ns);
	assert_true(llm_minhash_similarity(first, m.sig, 64) < 1.0);
	llm_minhash_free(&m);
}

static void invalid_parameters_are_refused(void **state)
{
	struct llm_minhash m;
	struct llm_diag d;
	struct llm_minhash_params p = {128, 5, 20, 10, 1, true};
	assert_int_equal(llm_minhash_init(&m, &p, &d), LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "bands (20) times rows (10)"));
	p = (struct llm_minhash_params){0, 5, 1, 1, 1, true};
	assert_int_equal(llm_minhash_init(&m, &p, &d), LLM_ERR_RANGE);
}

static void normalization_follows_datatrove(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"  Hello,   WORLD!  ", "hello world"},
		{"In 1999 it cost 4.50 $", "in 0 it cost 0"},
		{"caf\xc3\xa9 \xc3\x89T\xc3\x89", "cafe ete"}, /* diacritics removed after folding */
		{"Stra\xc3\x9f" "e", "strasse"},               /* full case folding */
		{"a\xe2\x80\x94" "b \xc2\xab" "c\xc2\xbb", "ab c"}, /* Unicode punctuation */
		{"x\xc2\xa0y\xe3\x80\x80z", "x y z"},              /* Unicode spaces */
		{"\xd9\xa3\xd9\xa4 apples", "0 apples"},           /* Arabic-Indic digits */
		{"tab\tand\nnewline", "tab and newline"},
		{"", ""},
	};
	struct llm_buf b;
	llm_buf_init(&b, 0);
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		llm_buf_clear(&b);
		assert_int_equal(llm_minhash_normalize(cases[i].in, strlen(cases[i].in), &b), LLM_OK);
		if (strcmp(b.data ? b.data : "", cases[i].out))
			fail_msg("normalize(\"%s\") = \"%s\", want \"%s\"", cases[i].in, b.data,
				 cases[i].out);
	}
	llm_buf_free(&b);
}

static void the_fixed_hash_does_not_change(void **state)
{
	/* Signatures made on one machine are compared with those made on another: these values
	 * are part of the band record format. */
	assert_int_equal(llm_minhash_hash64("hello", 5, 0), 0xa857fdaf8f6296aeULL);
	assert_int_equal(llm_minhash_hash64("", 0, 1), 0xb456bcfc34c2cb2cULL);
	assert_int_equal(llm_minhash_hash64("0123456789abcdefXYZ", 19, 42), 0x70d9e78a36e88c07ULL);
}

static int cmp24(const void *a, const void *b)
{
	return memcmp(a, b, 24);
}

static void spill_sorts_in_bounded_memory(void **state)
{
	/* 100,000 records of 24 bytes through 2 KB of memory (the floor: 1040 records): many
	 * runs, early merges. */
	const size_t n = 100000;
	unsigned char *want = malloc(n * 24);
	struct llm_rand r;
	llm_rand_seed(&r, 3);
	for (size_t i = 0; i < n; i++)
		for (int j = 0; j < 24; j++) /* few distinct leading bytes: many ties */
			want[i * 24 + j] = (unsigned char)(j < 2 ? llm_rand_below(&r, 3)
								  : llm_rand_next(&r));
	for (size_t memory = 2048; memory <= (64u << 20); memory *= 32768) {
		struct llm_spill *s;
		struct llm_diag d;
		assert_int_equal(llm_spill_open(&s, 24, memory, "/tmp", &d), LLM_OK);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(llm_spill_add(s, want + i * 24, &d), LLM_OK);
		assert_int_equal(llm_spill_finish(s, &d), LLM_OK);
		if (memory == 2048)
			assert_true(llm_spill_runs(s) > 64); /* past one merge's fan-in */
		else
			assert_int_equal(llm_spill_runs(s), 0);
		unsigned char *sorted = malloc(n * 24);
		memcpy(sorted, want, n * 24);
		qsort(sorted, n, 24, cmp24);
		const void *rec;
		size_t i = 0;
		while (llm_spill_next(s, &rec, &d) == LLM_OK && rec) {
			assert_true(i < n);
			assert_memory_equal(rec, sorted + i * 24, 24);
			i++;
		}
		assert_int_equal(i, n);
		assert_int_equal(llm_spill_count(s), n);
		llm_spill_close(s);
		free(sorted);
	}
	free(want);
}

static void in_place_sort_handles_sorted_reversed_and_equal_input(void **state)
{
	const size_t n = 5000;
	uint32_t *v = malloc(n * sizeof *v);
	for (int pattern = 0; pattern < 3; pattern++) {
		for (size_t i = 0; i < n; i++) {
			uint32_t x = pattern == 0 ? (uint32_t)i : pattern == 1 ? (uint32_t)(n - i) : 7;
			unsigned char *p = (unsigned char *)&v[i];
			p[0] = (unsigned char)(x >> 24); /* big-endian, so memcmp is numeric */
			p[1] = (unsigned char)(x >> 16);
			p[2] = (unsigned char)(x >> 8);
			p[3] = (unsigned char)x;
		}
		llm_spill_sort(v, n, 4);
		for (size_t i = 1; i < n; i++)
			assert_true(memcmp(&v[i - 1], &v[i], 4) <= 0);
	}
	free(v);
}

static void band_and_map_lines_round_trip_and_sort_like_sort(void **state)
{
	unsigned char key[12], rec[24], back[24];
	for (int i = 0; i < 12; i++)
		key[i] = (unsigned char)(0xa0 + i);
	llm_dedup_rec_pack(rec, 0x1f, key, 0x123456789aULL);
	char line[LLM_DEDUP_LINE_LEN + 1] = {0};
	llm_dedup_rec_format(rec, line);
	assert_string_equal(line, "001f\ta0a1a2a3a4a5a6a7a8a9aaab\t000000123456789a\n");
	assert_true(llm_dedup_rec_parse(line, LLM_DEDUP_LINE_LEN - 1, back));
	assert_memory_equal(rec, back, 24);
	assert_int_equal(llm_dedup_rec_ord(back), 0x123456789aULL);
	line[5] = 'A'; /* upper case would sort apart from what the writer produced */
	assert_false(llm_dedup_rec_parse(line, LLM_DEDUP_LINE_LEN - 1, back));
	assert_false(llm_dedup_rec_parse("001f\tshort", 10, back));
	/* Text order equals binary order: band 2 sorts after band 1 in both. */
	unsigned char r1[24], r2[24];
	char l1[48] = {0}, l2[48] = {0};
	llm_dedup_rec_pack(r1, 1, key, 99);
	llm_dedup_rec_pack(r2, 2, key, 1);
	llm_dedup_rec_format(r1, l1);
	llm_dedup_rec_format(r2, l2);
	assert_true(memcmp(r1, r2, 24) < 0 && strcmp(l1, l2) < 0);

	char m[LLM_DEDUP_MAP_LINE_LEN + 1] = {0};
	llm_dedup_map_format(17, 3, m);
	assert_string_equal(m, "0000000000000011\t0000000000000003\n");
	uint64_t o, rp;
	assert_true(llm_dedup_map_parse(m, LLM_DEDUP_MAP_LINE_LEN - 1, &o, &rp));
	assert_true(o == 17 && rp == 3);
}

static void union_find_roots_are_the_first_members(void **state)
{
	struct llm_uf uf;
	llm_uf_init(&uf);
	assert_int_equal(llm_uf_union(&uf, 5, 3), LLM_OK);
	assert_int_equal(llm_uf_union(&uf, 7, 5), LLM_OK);
	assert_int_equal(llm_uf_union(&uf, 10, 11), LLM_OK);
	assert_int_equal(llm_uf_union(&uf, 11, 2), LLM_OK); /* 2 joins {10, 11} and leads it */
	assert_true(llm_uf_find(&uf, 7) == 3);
	assert_true(llm_uf_find(&uf, 10) == 2);
	assert_true(llm_uf_find(&uf, 99) == 99);
	/* Thousands of nodes in a chain: the table grows, roots stay the minimum. */
	for (uint64_t i = 1000; i < 6000; i++)
		assert_int_equal(llm_uf_union(&uf, i + 1, i), LLM_OK);
	assert_true(llm_uf_find(&uf, 6000) == 1000);
	assert_int_equal(llm_uf_union(&uf, 6000, 4), LLM_OK);
	assert_true(llm_uf_find(&uf, 1000) == 3 || llm_uf_find(&uf, 1000) == 4);
	assert_true(llm_uf_find(&uf, 1000) == llm_uf_find(&uf, 4));
	uint64_t *pairs;
	size_t n;
	assert_int_equal(llm_uf_pairs(&uf, &pairs, &n), LLM_OK);
	assert_int_equal(n, 7 + 5001);
	for (size_t i = 1; i < n; i++)
		assert_true(pairs[2 * (i - 1)] < pairs[2 * i]);
	assert_true(pairs[0] == 2 && pairs[1] == 2); /* {2, 10, 11} */
	assert_true(pairs[2] == 3 && pairs[3] == 3);
	free(pairs);
	llm_uf_free(&uf);
}

static void grouper_joins_equal_keys_and_rejects_unsorted_input(void **state)
{
	struct llm_uf uf;
	llm_uf_init(&uf);
	struct llm_dedup_grouper g = {0};
	unsigned char k1[12] = {1}, k2[12] = {2}, rec[24];
	const struct {
		unsigned band;
		const unsigned char *key;
		uint64_t ord;
	} in[] = {{0, k1, 4}, {0, k1, 9}, {0, k2, 1}, {1, k1, 2}, {1, k1, 9}};
	for (size_t i = 0; i < 5; i++) {
		llm_dedup_rec_pack(rec, in[i].band, in[i].key, in[i].ord);
		assert_int_equal(llm_dedup_group_add(&g, &uf, rec), LLM_OK);
	}
	assert_true(llm_uf_find(&uf, 9) == 2 && llm_uf_find(&uf, 4) == 2);
	assert_true(llm_uf_find(&uf, 1) == 1);
	assert_int_equal(g.unions, 2);
	llm_dedup_rec_pack(rec, 0, k1, 1);
	assert_int_equal(llm_dedup_group_add(&g, &uf, rec), LLM_ERR_RANGE);
	llm_uf_free(&uf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bands_and_rows_match_text_dedup_optimal_param),
		cmocka_unit_test(candidate_probability_is_the_s_curve),
		cmocka_unit_test(minhash_estimates_known_jaccard_similarities),
		cmocka_unit_test(shingles_are_word_ngrams),
		cmocka_unit_test(invalid_parameters_are_refused),
		cmocka_unit_test(normalization_follows_datatrove),
		cmocka_unit_test(the_fixed_hash_does_not_change),
		cmocka_unit_test(spill_sorts_in_bounded_memory),
		cmocka_unit_test(in_place_sort_handles_sorted_reversed_and_equal_input),
		cmocka_unit_test(band_and_map_lines_round_trip_and_sort_like_sort),
		cmocka_unit_test(union_find_roots_are_the_first_members),
		cmocka_unit_test(grouper_joins_equal_keys_and_rejects_unsorted_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
