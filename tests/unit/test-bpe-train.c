/* Byte-level BPE training (lib/text/bpe_train), held to Hugging Face tokenizers: its own unit
 * test's published merges, the merges its BpeTrainer learns on tests/data/train/corpus.txt
 * (hf-merges-*.json, made with tests/data/train/hf-train.js), and the ids it gives when it
 * reads our tokenizer.json (made with hf-encode.js). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "text/bpe_train.h"

static struct llm_bpe_trainer *make(uint32_t vocab, uint64_t minf, const char *pattern,
				    const char *const *specials, size_t ns)
{
	struct llm_bpe_train_opts o = {vocab, minf, pattern, specials, ns, 0};
	struct llm_bpe_trainer *t;
	struct llm_diag d;
	assert_int_equal(llm_bpe_trainer_new(&t, &o, &d), LLM_OK);
	return t;
}

static void add(struct llm_bpe_trainer *t, const char *w, uint64_t n)
{
	assert_int_equal(llm_bpe_trainer_add_word(t, w, strlen(w), n, NULL), LLM_OK);
}

static void expect_merges(struct llm_bpe_trainer *t, const char *const *want, size_t n)
{
	struct llm_bpe_train_stats st;
	llm_bpe_trainer_stats(t, &st);
	assert_int_equal(st.merges, n);
	for (size_t i = 0; i < n; i++) {
		const char *l, *r;
		llm_bpe_trainer_merge(t, i, &l, &r);
		char got[64];
		snprintf(got, sizeof got, "%s %s", l, r);
		assert_string_equal(got, want[i]);
	}
}

/* huggingface/tokenizers, models/bpe/trainer.rs, test_train: min_frequency 2 gives the merges
 * r+e, a+re, i+s, in that order. */
static void test_hf_published_train(void **state)
{
	(void)state;
	struct llm_bpe_trainer *t = make(30000, 2, NULL, NULL, 0);
	static const struct {
		const char *w;
		uint64_t n;
	} words[] = {{"roses", 1}, {"are", 2}, {"red", 1}, {"voilets", 1}, {"blue", 1}, {"BERT", 1},
		     {"is", 2},	   {"big", 1}, {"and", 1}, {"so", 1},	   {"GPT-2", 1}};
	for (size_t i = 0; i < sizeof words / sizeof *words; i++)
		add(t, words[i].w, words[i].n);
	assert_int_equal(llm_bpe_trainer_train(t, NULL), LLM_OK);
	static const char *const want[] = {"r e", "a re", "i s"};
	expect_merges(t, want, 3);
	assert_string_equal(llm_bpe_trainer_token(t, 256), "re");
	assert_string_equal(llm_bpe_trainer_token(t, 257), "are");
	assert_string_equal(llm_bpe_trainer_token(t, 258), "is");
	llm_bpe_trainer_free(t);
}

/* Worked by hand: u+g (20), u+n (16), h+ug (15), p+un (12), then p+ug and hug+s tie at 5 and
 * the smaller left id (the byte p) goes first, then b+un (4). */
static void test_hand_worked_merges(void **state)
{
	(void)state;
	struct llm_bpe_trainer *t = make(1000, 1, NULL, NULL, 0);
	add(t, "hug", 10);
	add(t, "pug", 5);
	add(t, "pun", 12);
	add(t, "bun", 4);
	add(t, "hugs", 5);
	assert_int_equal(llm_bpe_trainer_train(t, NULL), LLM_OK);
	static const char *const want[] = {"u g", "u n", "h ug", "p un", "p ug", "hug s", "b un"};
	expect_merges(t, want, 7);
	llm_bpe_trainer_free(t);
}

/* Overlapping pairs count as HF counts them: "aaaa" has three (a,a) but merges to aa aa. */
static void test_overlapping_pairs(void **state)
{
	(void)state;
	struct llm_bpe_trainer *t = make(1000, 1, NULL, NULL, 0);
	add(t, "aaaa", 1);
	add(t, "bbb", 1);
	assert_int_equal(llm_bpe_trainer_train(t, NULL), LLM_OK);
	/* (a,a) 3 > (b,b) 2; then (b,b) 2 > (aa,aa) 1; then (aa,aa) and (bb,b) tie at 1: the
	 * smaller left id is aa (made first). */
	static const char *const want[] = {"a a", "b b", "aa aa", "bb b"};
	expect_merges(t, want, 4);
	llm_bpe_trainer_free(t);
}

/* Ties go by id, not by text: space is the byte token U+0120, after every printable byte. */
static void test_ties_by_id_not_text(void **state)
{
	(void)state;
	struct llm_bpe_trainer *t = make(257, 0, NULL, NULL, 0);
	add(t, " a", 1);
	add(t, "bc", 1);
	assert_int_equal(llm_bpe_trainer_train(t, NULL), LLM_OK);
	static const char *const want[] = {"b c"};
	expect_merges(t, want, 1);
	llm_bpe_trainer_free(t);
}

static void test_byte_alphabet(void **state)
{
	(void)state;
	char c[3];
	assert_int_equal(llm_bpe_byte_char(' ', c), 2);
	assert_string_equal(c, "\xc4\xa0"); /* Ġ U+0120 */
	llm_bpe_byte_char('\n', c);
	assert_string_equal(c, "\xc4\x8a"); /* Ċ U+010A */
	llm_bpe_byte_char(0, c);
	assert_string_equal(c, "\xc4\x80"); /* Ā U+0100 */
	llm_bpe_byte_char(0xAD, c);
	assert_string_equal(c, "\xc5\x83"); /* Ń U+0143, the last of the 68 */
	llm_bpe_byte_char('A', c);
	assert_string_equal(c, "A");
	llm_bpe_byte_char(0xE9, c);
	assert_string_equal(c, "\xc3\xa9"); /* é stands for itself */
	/* Ids: special tokens, then code-point order. */
	static const char *const sp[] = {"<|endoftext|>", "<|pad|>"};
	struct llm_bpe_trainer *t = make(258, 0, NULL, sp, 2);
	assert_string_equal(llm_bpe_trainer_token(t, 0), "<|endoftext|>");
	assert_string_equal(llm_bpe_trainer_token(t, 1), "<|pad|>");
	assert_string_equal(llm_bpe_trainer_token(t, 2), "!");
	assert_string_equal(llm_bpe_trainer_token(t, 2 + 187), "\xc3\xbf"); /* ÿ */
	assert_string_equal(llm_bpe_trainer_token(t, 2 + 188), "\xc4\x80");
	assert_string_equal(llm_bpe_trainer_token(t, 2 + 255), "\xc5\x83");
	assert_null(llm_bpe_trainer_token(t, 258));
	llm_bpe_trainer_free(t);
}

static void test_specials_are_cut_out(void **state)
{
	(void)state;
	static const char *const sp[] = {"<|endoftext|>"};
	struct llm_bpe_trainer *t = make(300, 1, NULL, sp, 1);
	const char *s = "xy<|endoftext|>xy<|endoftext|><|endoftext|>";
	assert_int_equal(llm_bpe_trainer_feed(t, s, strlen(s), NULL), LLM_OK);
	struct llm_bpe_train_stats st;
	llm_bpe_trainer_stats(t, &st);
	assert_int_equal(st.specials_seen, 3);
	assert_int_equal(st.words, 2);
	assert_int_equal(llm_bpe_trainer_train(t, NULL), LLM_OK);
	static const char *const want[] = {"x y"};
	expect_merges(t, want, 1);
	llm_bpe_trainer_free(t);
}

static void test_options_checked(void **state)
{
	(void)state;
	struct llm_bpe_trainer *t;
	struct llm_diag d;
	static const char *const sp[] = {"<s>", "</s>"};
	struct llm_bpe_train_opts o = {257, 0, NULL, sp, 2, 0};
	assert_int_equal(llm_bpe_trainer_new(&t, &o, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "257"));
	o.vocab_size = 258;
	assert_int_equal(llm_bpe_trainer_new(&t, &o, &d), LLM_OK);
	llm_bpe_trainer_free(t);
	o.pattern = "(unclosed";
	assert_int_equal(llm_bpe_trainer_new(&t, &o, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "--pattern"));
	static const char *const twice[] = {"<s>", "<s>"};
	struct llm_bpe_train_opts o2 = {300, 0, NULL, twice, 2, 0};
	assert_int_equal(llm_bpe_trainer_new(&t, &o2, &d), LLM_ERR_USAGE);
	t = make(300, 0, NULL, NULL, 0);
	assert_int_equal(llm_bpe_trainer_feed(t, "a\xff", 2, &d), LLM_ERR_UTF8);
	llm_bpe_trainer_free(t);
}

static void test_presplit_gpt2(void **state)
{
	(void)state;
	struct llm_bpe_trainer *t = make(300, 0, LLM_BPE_PATTERN_GPT2, NULL, 0);
	const char *s = "Hello world's  end";
	assert_int_equal(llm_bpe_trainer_feed(t, s, strlen(s), NULL), LLM_OK);
	struct llm_bpe_train_stats st;
	llm_bpe_trainer_stats(t, &st);
	/* Hello | " world" | 's | " " | " end" */
	assert_int_equal(st.words, 5);
	assert_int_equal(st.distinct_words, 5);
	llm_bpe_trainer_free(t);
}

static void test_max_words_prunes_rare(void **state)
{
	(void)state;
	struct llm_bpe_train_opts o = {1000, 0, NULL, NULL, 0, 8};
	struct llm_bpe_trainer *t;
	assert_int_equal(llm_bpe_trainer_new(&t, &o, NULL), LLM_OK);
	add(t, "common", 50);
	char w[8];
	for (int i = 0; i < 20; i++) {
		snprintf(w, sizeof w, "r%02d", i);
		add(t, w, 1);
	}
	struct llm_bpe_train_stats st;
	llm_bpe_trainer_stats(t, &st);
	assert_true(st.distinct_words <= 8);
	assert_true(st.pruned_words >= 13);
	assert_int_equal(st.pruned_words, st.pruned_count);
	assert_int_equal(llm_bpe_trainer_train(t, NULL), LLM_OK);
	const char *l, *r;
	llm_bpe_trainer_merge(t, 0, &l, &r); /* the kept word still trains: c+o, m+m, ... at 50 */
	assert_string_equal(l, "c");
	llm_bpe_trainer_free(t);
}

static char *slurp(const char *name, size_t *n)
{
	const char *top = getenv("top_srcdir");
	char path[1024];
	snprintf(path, sizeof path, "%s/tests/data/train/%s", top ? top : ".", name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)len + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)len, f), (size_t)len);
	s[len] = '\0';
	fclose(f);
	*n = (size_t)len;
	return s;
}

/* Train as HF's Tokenizer.train does on a text file: each line, with its newline, is a text. */
static struct llm_bpe_trainer *train_corpus(const char *pattern)
{
	static const char *const sp[] = {"<|endoftext|>"};
	struct llm_bpe_trainer *t = make(100000, 0, pattern, sp, 1);
	size_t n;
	char *s = slurp("corpus.txt", &n);
	for (size_t at = 0; at < n;) {
		char *nl = memchr(s + at, '\n', n - at);
		size_t end = nl ? (size_t)(nl - s) + 1 : n;
		assert_int_equal(llm_bpe_trainer_feed(t, s + at, end - at, NULL), LLM_OK);
		at = end;
	}
	free(s);
	assert_int_equal(llm_bpe_trainer_train(t, NULL), LLM_OK);
	return t;
}

static void check_hf_merges(const char *pattern, const char *fixture)
{
	struct llm_bpe_trainer *t = train_corpus(pattern);
	json_error_t err;
	size_t n;
	char *s = slurp(fixture, &n);
	json_t *want = json_loadb(s, n, 0, &err);
	free(s);
	assert_non_null(want);
	struct llm_bpe_train_stats st;
	llm_bpe_trainer_stats(t, &st);
	assert_int_equal(st.merges, json_array_size(want));
	for (size_t i = 0; i < st.merges; i++) {
		const char *l, *r;
		llm_bpe_trainer_merge(t, i, &l, &r);
		json_t *p = json_array_get(want, i);
		assert_string_equal(l, json_string_value(json_array_get(p, 0)));
		assert_string_equal(r, json_string_value(json_array_get(p, 1)));
	}
	json_decref(want);
	llm_bpe_trainer_free(t);
}

static void test_same_merges_as_hf_cl100k(void **state)
{
	(void)state;
	check_hf_merges(LLM_BPE_PATTERN_CL100K, "hf-merges-cl100k.json");
}

static void test_same_merges_as_hf_gpt2(void **state)
{
	(void)state;
	check_hf_merges(LLM_BPE_PATTERN_GPT2, "hf-merges-gpt2.json");
}

/* An independent encoder: byte-level characters, then the lowest-ranked adjacent merge
 * (leftmost on ties) until none applies; ids by looking the pieces up. */
static size_t encode_word(const struct llm_bpe_trainer *t, const char *w, uint32_t *ids)
{
	char parts[64][64];
	size_t n = 0;
	for (const char *p = w; *p; p++)
		llm_bpe_byte_char((unsigned char)*p, parts[n++]);
	struct llm_bpe_train_stats st;
	llm_bpe_trainer_stats(t, &st);
	for (;;) {
		size_t best = SIZE_MAX, at = 0;
		for (size_t i = 0; i + 1 < n; i++)
			for (size_t m = 0; m < st.merges && m < best; m++) {
				const char *l, *r;
				llm_bpe_trainer_merge(t, m, &l, &r);
				if (!strcmp(l, parts[i]) && !strcmp(r, parts[i + 1])) {
					best = m;
					at = i;
				}
			}
		if (best == SIZE_MAX)
			break;
		size_t la = strlen(parts[at]), lb = strlen(parts[at + 1]);
		memcpy(parts[at] + la, parts[at + 1], lb + 1); /* test words are short */
		memmove(parts[at + 1], parts[at + 2], (n - at - 2) * sizeof parts[0]);
		n--;
	}
	for (size_t i = 0; i < n; i++) {
		ids[i] = UINT32_MAX;
		for (uint32_t id = 0; id < st.vocab; id++)
			if (!strcmp(llm_bpe_trainer_token(t, id), parts[i]))
				ids[i] = id;
	}
	return n;
}

/* The ids HF tokenizers gives when it reads the tokenizer.json we write for this corpus
 * (node tests/data/train/hf-encode.js FILE WORD...). */
static void test_hf_reads_our_ids(void **state)
{
	(void)state;
	struct llm_bpe_trainer *t = train_corpus(LLM_BPE_PATTERN_CL100K);
	static const struct {
		const char *word;
		uint32_t ids[6];
		size_t n;
	} cases[] = {
	    {"the", {258}, 1},
	    {" the", {260}, 1},
	    {"lowest", {642}, 1},
	    {"aaaaaaa", {408, 280}, 2},
	    {"lowlowestthe", {267, 267, 349}, 3},
	    {"bcbcb", {66, 295, 295}, 3},
	    {"\xc3\x9f\xc3\x9f\xc3\x9f"
	     "aa\xc3\xa9\xe4\xb8\xad",
	     {632, 265, 259, 411},
	     4},
	    {"!abcLL", {513, 67, 271}, 3},
	    {" zebra", {221, 90, 69, 66, 82, 65}, 6},
	};
	for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
		uint32_t got[64];
		size_t n = encode_word(t, cases[k].word, got);
		assert_int_equal(n, cases[k].n);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(got[i], cases[k].ids[i]);
	}
	llm_bpe_trainer_free(t);
}

static void test_json_shape_and_determinism(void **state)
{
	(void)state;
	struct llm_bpe_trainer *a = train_corpus(NULL), *b = train_corpus(NULL);
	json_t *ja = llm_bpe_trainer_json(a), *jb = llm_bpe_trainer_json(b);
	char *sa = json_dumps(ja, JSON_COMPACT), *sb = json_dumps(jb, JSON_COMPACT);
	assert_string_equal(sa, sb);
	assert_string_equal(json_string_value(json_object_get(ja, "version")), "1.0");
	json_t *model = json_object_get(ja, "model");
	assert_string_equal(json_string_value(json_object_get(model, "type")), "BPE");
	assert_true(json_is_null(json_object_get(model, "unk_token")));
	json_t *vocab = json_object_get(model, "vocab");
	assert_int_equal(json_integer_value(json_object_get(vocab, "<|endoftext|>")), 0);
	assert_int_equal(json_integer_value(json_object_get(vocab, "\xc4\xa0")), 1 + 188 + 32);
	json_t *added = json_array_get(json_object_get(ja, "added_tokens"), 0);
	assert_true(json_is_true(json_object_get(added, "special")));
	assert_true(json_is_false(json_object_get(added, "normalized")));
	json_t *merge0 = json_array_get(json_object_get(model, "merges"), 0);
	assert_true(json_is_array(merge0));
	assert_int_equal(json_array_size(merge0), 2);
	free(sa);
	free(sb);
	json_decref(ja);
	json_decref(jb);
	llm_bpe_trainer_free(a);
	llm_bpe_trainer_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hf_published_train),
	    cmocka_unit_test(test_hand_worked_merges),
	    cmocka_unit_test(test_overlapping_pairs),
	    cmocka_unit_test(test_ties_by_id_not_text),
	    cmocka_unit_test(test_byte_alphabet),
	    cmocka_unit_test(test_specials_are_cut_out),
	    cmocka_unit_test(test_options_checked),
	    cmocka_unit_test(test_presplit_gpt2),
	    cmocka_unit_test(test_max_words_prunes_rare),
	    cmocka_unit_test(test_same_merges_as_hf_cl100k),
	    cmocka_unit_test(test_same_merges_as_hf_gpt2),
	    cmocka_unit_test(test_hf_reads_our_ids),
	    cmocka_unit_test(test_json_shape_and_determinism),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
