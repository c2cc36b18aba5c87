/* Unit tests for lib/text/bpe: tiktoken's published token ids, pre-splitting edge cases,
 * special tokens, decoding, long pieces, Hugging Face tokenizer.json semantics, and bad
 * vocabularies. */
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

#include "core/buf.h"
#include "text/bpe.h"

static const char *vocab_dir(void)
{
	static char dir[4096];
	const char *top = getenv("top_srcdir");
	snprintf(dir, sizeof dir, "%s/data/tokenizers", top ? top : ".");
	return dir;
}

static struct llm_bpe *open_enc(const char *name)
{
	struct llm_bpe *b = NULL;
	struct llm_diag d;
	if (llm_bpe_open_encoding(&b, vocab_dir(), name, &d))
		fail_msg("cannot load %s: %s", name, d.msg);
	return b;
}

/* Encode s and compare with want[0..n). */
static void expect_ids(struct llm_bpe *b, const char *s, const uint32_t *want, size_t n)
{
	struct llm_bpe_ids ids = {0};
	struct llm_diag d;
	if (llm_bpe_encode(b, s, strlen(s), &ids, &d))
		fail_msg("encode failed: %s", d.msg);
	if (ids.n != n) {
		for (size_t i = 0; i < ids.n; i++)
			print_message("  got[%zu] = %u\n", i, ids.v[i]);
		fail_msg("\"%s\": %zu ids, expected %zu", s, ids.n, n);
	}
	for (size_t i = 0; i < n; i++)
		if (ids.v[i] != want[i])
			fail_msg("\"%s\": id %zu is %u, expected %u", s, i, ids.v[i], want[i]);
	llm_bpe_ids_free(&ids);
}

#define EXPECT(b, s, ...)                                                                          \
	do {                                                                                       \
		const uint32_t want_[] = {__VA_ARGS__};                                            \
		expect_ids(b, s, want_, sizeof want_ / sizeof *want_);                             \
	} while (0)

/* tiktoken's tests/test_encoding.py and test_simple_public.py. */
static void published_ids_gpt2(void **state)
{
	struct llm_bpe *b = open_enc("gpt2");
	EXPECT(b, "hello world", 31373, 995);
	assert_int_equal(llm_bpe_vocab_size(b), 50257);
	llm_bpe_free(b);
}

static void published_ids_cl100k(void **state)
{
	struct llm_bpe *b = open_enc("cl100k_base");
	EXPECT(b, "hello world", 15339, 1917);
	EXPECT(b, "today\n ", 31213, 198, 220);
	EXPECT(b, "today\n \n", 31213, 27907);
	EXPECT(b, "today\n  \n", 31213, 14211);
	EXPECT(b, "\xf0\x9f\x91\x8d", 9468, 239, 235); /* thumbs up */
	EXPECT(b, "hello <|endoftext|>", 15339, 83739, 8862, 728, 428, 91, 29);
	llm_bpe_free(b);
}

static void published_ids_o200k(void **state)
{
	struct llm_bpe *b = open_enc("o200k_base");
	EXPECT(b, "hello world", 24912, 2375);
	llm_bpe_free(b);
}

/* Special tokens are text by default (encode_ordinary) and one id when allowed. */
static void special_tokens_are_text_unless_allowed(void **state)
{
	struct llm_bpe *b = open_enc("gpt2");
	struct llm_diag d;
	EXPECT(b, "<|endoftext|>", 27, 91, 437, 1659, 5239, 91, 29);
	assert_int_equal(llm_bpe_allow_special(b, "<|endoftext|>", &d), LLM_OK);
	EXPECT(b, "hello <|endoftext|> world", 31373, 220, 50256, 995);
	EXPECT(b, "<|endoftext|><|endoftext|>", 50256, 50256);
	assert_int_equal(llm_bpe_allow_special(b, "<|nope|>", &d), LLM_ERR_NOT_FOUND);
	uint32_t id = 0;
	assert_true(llm_bpe_special_id(b, "<|endoftext|>", &id));
	assert_int_equal(id, 50256);
	assert_false(llm_bpe_special_id(b, "<|nope|>", &id));
	llm_bpe_free(b);
}

static void split_starts(struct llm_bpe *b, const char *s, const uint32_t *want, size_t n)
{
	struct llm_bpe_ids st = {0};
	struct llm_diag d;
	assert_int_equal(llm_bpe_split(b, s, strlen(s), &st, &d), LLM_OK);
	if (st.n != n)
		fail_msg("\"%s\": %zu pieces, expected %zu", s, st.n - 1, n - 1);
	for (size_t i = 0; i < n; i++)
		if (st.v[i] != want[i])
			fail_msg("\"%s\": piece %zu starts at %u, expected %u", s, i, st.v[i],
				 want[i]);
	llm_bpe_ids_free(&st);
}

#define SPLIT(b, s, ...)                                                                           \
	do {                                                                                       \
		const uint32_t want_[] = {__VA_ARGS__};                                            \
		split_starts(b, s, want_, sizeof want_ / sizeof *want_);                           \
	} while (0)

static void pre_splitting_follows_the_patterns(void **state)
{
	struct llm_bpe *b = open_enc("cl100k_base");
	/* \s+(?!\S) leaves a run's last space to the next word. */
	SPLIT(b, "a   b", 0, 1, 3, 5);
	/* Trailing whitespace stays one piece. */
	SPLIT(b, "a   ", 0, 1, 4);
	/* Numbers go by three. */
	SPLIT(b, "1234567", 0, 3, 6, 7);
	/* Contractions, any case. */
	SPLIT(b, "I'LL", 0, 1, 4);
	/* Newlines gather with the whitespace before them. */
	SPLIT(b, "a \n\nb", 0, 1, 4, 5);
	/* U+180E is not White_Space (PCRE2's \s would say it is): "!" and it are one piece. */
	SPLIT(b, "!\xe1\xa0\x8e", 0, 4);
	/* A no-break space is White_Space: it is given back to the word. */
	SPLIT(b,
	      "a\xc2\xa0\xc2\xa0"
	      "b",
	      0, 1, 3, 6);
	llm_bpe_free(b);

	b = open_enc("gpt2");
	SPLIT(b, "hello world", 0, 5, 11);
	SPLIT(b, "12345 x", 0, 5, 7);
	SPLIT(b, "I'LL", 0, 1, 2, 4); /* gpt2's contractions are lower case only */
	llm_bpe_free(b);

	b = open_enc("o200k_base");
	/* o200k splits camel case before an upper-case letter and keeps "/" with punctuation. */
	SPLIT(b, "HelloWorld", 0, 5, 10);
	llm_bpe_free(b);
}

/* The pieces of s with the ASCII matcher and with the regex alone must be the same. */
static void expect_same_split(struct llm_bpe *b, const char *s, size_t n)
{
	struct llm_bpe_ids fast = {0}, re = {0};
	struct llm_diag d;
	llm_bpe_use_fast_split(b, true);
	assert_int_equal(llm_bpe_split(b, s, n, &fast, &d), LLM_OK);
	llm_bpe_use_fast_split(b, false);
	assert_int_equal(llm_bpe_split(b, s, n, &re, &d), LLM_OK);
	llm_bpe_use_fast_split(b, true);
	for (size_t i = 0; i < fast.n || i < re.n; i++)
		if (i >= fast.n || i >= re.n || fast.v[i] != re.v[i]) {
			print_message("  text: \"%.*s\"\n", (int)n, s);
			fail_msg("piece %zu starts at %d by hand, at %d by the regex", i,
				 i < fast.n ? (int)fast.v[i] : -1, i < re.n ? (int)re.v[i] : -1);
		}
	llm_bpe_ids_free(&fast);
	llm_bpe_ids_free(&re);
}

/* The fixture lines, raw and with their \n, \t, \r, \" and \\ escapes undone. */
static void same_split_on_fixtures(struct llm_bpe *b)
{
	char path[4200];
	const char *top = getenv("top_srcdir");
	snprintf(path, sizeof path, "%s/tests/data/tokenize/corpus.jsonl", top ? top : ".");
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[65536], text[65536];
	int lines = 0;
	while (fgets(line, sizeof line, f)) {
		size_t n = strlen(line), k = 0;
		expect_same_split(b, line, n);
		for (size_t i = 0; i < n; i++) {
			char c = line[i];
			if (c == '\\' && i + 1 < n && strchr("ntr\"\\", line[i + 1])) {
				c = line[++i];
				c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
			}
			text[k++] = c;
		}
		expect_same_split(b, text, k);
		lines++;
	}
	fclose(f);
	assert_true(lines > 10);
}

static void ascii_split_matches_the_regex(void **state)
{
	/* Atoms that meet every branch of the two patterns: letters of the contractions, case,
	 * digits, each kind of white space, punctuation, control bytes, and now and then a
	 * character beyond ASCII that is a letter, a digit, white space or neither. */
	static const char *const ascii[] = {
	    "a",  "Z", "s", "S",  "t", "T", "e", "E", "l",  "L",  "r",	  "R",	  "v",	"m",
	    "d",  "D", "x", "'",  "'", "'", " ", " ", " ",  "  ", "\t",	  "\n",	  "\r", "\v",
	    "\f", "0", "7", "42", "!", ".", ",", "-", "\"", "/",  "\x01", "\x7f",
	};
	static const char *const beyond[] = {
	    "\xc3\xa9",	    "\xc2\xa0",	    "\xc2\x85",	    "\xd9\xa3", "\xe2\x80\x94",
	    "\xe1\xa0\x8e", "\xe3\x80\x80", "\xe6\x97\xa5", "\xc5\xbf", "\xe2\x80\xa8",
	};
	const char *encodings[] = {"gpt2", "cl100k_base"};
	for (size_t e = 0; e < 2; e++) {
		struct llm_bpe *b = open_enc(encodings[e]);
		same_split_on_fixtures(b);
		uint64_t x = 0x9E3779B97F4A7C15ULL;
		char s[512];
		for (int round = 0; round < 40000; round++) {
			size_t n = 0, atoms = 1 + round % 48;
			for (size_t a = 0; a < atoms; a++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				const char *atom =
				    round % 2 && x % 16 == 0
					? beyond[(x >> 8) % 10]
					: ascii[(x >> 8) % (sizeof ascii / sizeof *ascii)];
				size_t k = strlen(atom);
				memcpy(s + n, atom, k);
				n += k;
			}
			expect_same_split(b, s, n);
		}
		llm_bpe_free(b);
	}
}

static void decode_round_trips(void **state)
{
	const char *names[] = {"gpt2", "cl100k_base", "o200k_base"};
	const char *text = "Caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
			   "e\xcc\x81 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd  \t\n 12345678 x";
	for (size_t i = 0; i < 3; i++) {
		struct llm_bpe *b = open_enc(names[i]);
		struct llm_bpe_ids ids = {0};
		struct llm_buf out;
		struct llm_diag d;
		llm_buf_init(&out, 0);
		assert_int_equal(llm_bpe_encode(b, text, strlen(text), &ids, &d), LLM_OK);
		assert_int_equal(llm_bpe_decode(b, ids.v, ids.n, &out, &d), LLM_OK);
		assert_string_equal(out.data, text);
		uint32_t bad = llm_bpe_vocab_size(b);
		assert_int_equal(llm_bpe_decode(b, &bad, 1, &out, &d), LLM_ERR_RANGE);
		llm_buf_free(&out);
		llm_bpe_ids_free(&ids);
		llm_bpe_free(b);
	}
}

/* tiktoken's test: a piece of 1,000,000 "x" finishes.  The npm tiktoken gives "x" * 10,000 and
 * "x" * 100,000 as n / 8 tokens 45202 ("xxxxxxxx") in cl100k_base; the heap path must do the
 * same at 1,000,000, and decode back. */
static void long_piece_is_linearithmic(void **state)
{
	struct llm_bpe *b = open_enc("cl100k_base");
	size_t n = 1000000;
	char *s = malloc(n);
	assert_non_null(s);
	memset(s, 'x', n);
	struct llm_bpe_ids ids = {0};
	struct llm_diag d;
	struct llm_buf out;
	llm_buf_init(&out, 0);
	assert_int_equal(llm_bpe_encode(b, s, n, &ids, &d), LLM_OK);
	assert_int_equal(ids.n, n / 8);
	for (size_t i = 0; i < ids.n; i++)
		if (ids.v[i] != 45202)
			fail_msg("id %zu is %u", i, ids.v[i]);
	assert_int_equal(llm_bpe_decode(b, ids.v, ids.n, &out, &d), LLM_OK);
	assert_int_equal(out.len, n);
	assert_memory_equal(out.data, s, n);
	llm_buf_free(&out);
	llm_bpe_ids_free(&ids);
	free(s);
	llm_bpe_free(b);
}

/* The flat path (pieces up to 128 bytes) and the heap path agree: a word repeated into one
 * piece of 136 bytes decodes back, and the first word's ids come first when no merge crosses
 * the seam ("...docious" + "super..."). */
static void long_and_short_merges_agree(void **state)
{
	struct llm_bpe *b = open_enc("gpt2");
	const char *word = "supercalifragilisticexpialidocious";
	struct llm_bpe_ids one = {0}, four = {0};
	struct llm_diag d;
	char buf[256];
	snprintf(buf, sizeof buf, "%s%s%s%s", word, word, word, word);
	assert_int_equal(llm_bpe_encode(b, word, strlen(word), &one, &d), LLM_OK);
	assert_int_equal(llm_bpe_encode(b, buf, strlen(buf), &four, &d), LLM_OK);
	struct llm_buf out;
	llm_buf_init(&out, 0);
	assert_int_equal(llm_bpe_decode(b, four.v, four.n, &out, &d), LLM_OK);
	assert_string_equal(out.data, buf);
	assert_true(four.n >= one.n);
	llm_buf_free(&out);
	llm_bpe_ids_free(&one);
	llm_bpe_ids_free(&four);
	llm_bpe_free(b);
}

/* A tiny tokenizer.json: merge ranks, not ids, decide the order (the HF semantics). */
static const char tiny_hf[] =
    "{\"version\":\"1.0\",\"normalizer\":null,"
    "\"added_tokens\":[{\"id\":9,\"content\":\"<eos>\",\"special\":true},"
    "{\"id\":10,\"content\":\"[X]\",\"special\":false}],"
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},"
    "\"model\":{\"type\":\"BPE\",\"ignore_merges\":false,"
    "\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"\xc4\xa0\":3,\"ab\":4,\"bc\":5,\"abc\":6,"
    "\"\xc4\xa0"
    "a\":7,\"<eos>\":9,\"[X]\":10},"
    "\"merges\":[\"b c\",[\"a\",\"b\"],\"a bc\",\"\xc4\xa0 a\"]}}";

static void hf_tokenizer_json_uses_merge_ranks(void **state)
{
	struct llm_bpe *b = NULL;
	struct llm_diag d;
	if (llm_bpe_from_hf_json(&b, tiny_hf, strlen(tiny_hf), "tiny.json", &d))
		fail_msg("%s", d.msg);
	/* "bc" is merged first (rank 0) although "ab" has the lower id: a + bc -> abc. */
	EXPECT(b, "abc", 6);
	EXPECT(b, "ab", 4);
	/* " ab": Ġ a (rank 3) loses to a b (rank 1): Ġ, ab. */
	EXPECT(b, " ab", 3, 4);
	EXPECT(b, " a", 7);
	/* Added tokens that are not special are always cut out; special ones only when allowed. */
	EXPECT(b, "a[X]b", 0, 10, 1);
	assert_int_equal(llm_bpe_allow_special(b, "all", &d), LLM_OK);
	EXPECT(b, "a<eos>", 0, 9);
	/* A byte with no token is an error, not a guess. */
	struct llm_bpe_ids ids = {0};
	assert_int_equal(llm_bpe_encode(b, "z", 1, &ids, &d), LLM_ERR_RANGE);
	llm_bpe_ids_free(&ids);
	assert_int_equal(llm_bpe_vocab_size(b), 11);
	llm_bpe_free(b);
}

static void bad_tokenizers_are_refused(void **state)
{
	struct llm_bpe *b = NULL;
	struct llm_diag d;
	/* A merge naming a token not in the vocabulary. */
	const char *bad_merge = "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":"
				"\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a q\"]}}";
	assert_int_equal(llm_bpe_from_hf_json(&b, bad_merge, strlen(bad_merge), "x", &d),
			 LLM_ERR_IO);
	/* A WordPiece model is not byte-level BPE. */
	const char *wp = "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}";
	assert_int_equal(llm_bpe_from_hf_json(&b, wp, strlen(wp), "x", &d), LLM_ERR_USAGE);
	assert_int_equal(llm_bpe_from_hf_json(&b, "{", 1, "x", &d), LLM_ERR_IO);
	assert_null(b);
	/* A .tiktoken line that is not "BASE64 RANK", and one lacking single bytes. */
	assert_int_equal(llm_bpe_from_tiktoken(&b, "YQ==\n", 5, NULL, NULL, NULL, 0, &d),
			 LLM_ERR_IO);
	assert_int_equal(llm_bpe_from_tiktoken(&b, "YQ== 0\n", 7, NULL, NULL, NULL, 0, &d),
			 LLM_ERR_IO);
	assert_non_null(strstr(d.msg, "single byte"));
	/* Not valid UTF-8. */
	b = open_enc("gpt2");
	struct llm_bpe_ids ids = {0};
	assert_int_equal(llm_bpe_encode(b, "\xff", 1, &ids, &d), LLM_ERR_UTF8);
	llm_bpe_free(b);
	/* A name with no meta file, and a path in a name. */
	assert_int_equal(llm_bpe_open_encoding(&b, vocab_dir(), "p50k_nope", &d),
			 LLM_ERR_NOT_FOUND);
	assert_int_equal(llm_bpe_open_encoding(&b, vocab_dir(), "../x", &d), LLM_ERR_NOT_FOUND);
}

/* A vocabulary whose bytes differ from the digest in its meta file is refused. */
static void a_corrupt_vocabulary_fails_its_sha256(void **state)
{
	char dir[] = "/tmp/llmops-bpe-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char src[4200], dst[4200];
	snprintf(src, sizeof src, "%s/gpt2.meta.json", vocab_dir());
	snprintf(dst, sizeof dst, "%s/gpt2.meta.json", dir);
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	assert_non_null(in);
	assert_non_null(out);
	int ch;
	while ((ch = getc(in)) != EOF)
		putc(ch, out);
	fclose(in);
	fclose(out);
	snprintf(src, sizeof src, "%s/gpt2.tiktoken", vocab_dir());
	snprintf(dst, sizeof dst, "%s/gpt2.tiktoken", dir);
	in = fopen(src, "rb");
	out = fopen(dst, "wb");
	long k = 0;
	while ((ch = getc(in)) != EOF)
		putc(k++ == 100 ? (ch == 'A' ? 'B' : 'A') : ch, out);
	fclose(in);
	fclose(out);
	struct llm_bpe *b = NULL;
	struct llm_diag d;
	assert_int_equal(llm_bpe_open_encoding(&b, dir, "gpt2", &d), LLM_ERR_IO);
	assert_non_null(strstr(d.msg, "sha256"));
	assert_null(b);
	unlink(dst);
	snprintf(dst, sizeof dst, "%s/gpt2.meta.json", dir);
	unlink(dst);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(published_ids_gpt2),
	    cmocka_unit_test(published_ids_cl100k),
	    cmocka_unit_test(published_ids_o200k),
	    cmocka_unit_test(special_tokens_are_text_unless_allowed),
	    cmocka_unit_test(pre_splitting_follows_the_patterns),
	    cmocka_unit_test(ascii_split_matches_the_regex),
	    cmocka_unit_test(decode_round_trips),
	    cmocka_unit_test(long_piece_is_linearithmic),
	    cmocka_unit_test(long_and_short_merges_agree),
	    cmocka_unit_test(hf_tokenizer_json_uses_merge_ranks),
	    cmocka_unit_test(bad_tokenizers_are_refused),
	    cmocka_unit_test(a_corrupt_vocabulary_fails_its_sha256),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
