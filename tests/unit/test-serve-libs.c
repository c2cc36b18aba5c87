/* Unit tests for the pieces of llm-serve in lib/serve that need no network: API keys (keys),
 * rate limits and budgets on a fake clock (limits), the Prometheus registry (metrics) and the
 * request log (reqlog), each also from many threads at once. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/buf.h"
#include "core/hash.h"
#include "serve/keys.h"
#include "serve/limits.h"
#include "serve/metrics.h"
#include "serve/reqlog.h"

/* Key checks must go through OpenSSL's constant-time comparison.  This definition interposes
 * on libcrypto's (the program's own symbols come first), counts the calls, and compares the
 * way OpenSSL does: every byte, whatever the first difference. */
static _Atomic unsigned long memcmp_calls;
int CRYPTO_memcmp(const void *a, const void *b, size_t n);
int CRYPTO_memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	unsigned char d = 0;
	memcmp_calls++;
	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d != 0;
}

/* A scratch directory per run, removed at the end. */
static char tmpdir[64];

static void path_in_tmp(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* ---- keys ---------------------------------------------------------------------------- */

static const char keyfile[] =
    "# the team keys\n"
    "\n"
    "sk-test-key-0001 name=team-a rpm=60 tpm=100000 budget_tokens=5000000\r\n"
    "   sk-test-key-0002\t rpm=none models=small,large   # the batch jobs\n"
    "sha256:34E2298193114f6f5d073fd959f0e05b01f6bd10d3d1abe67fc5d7d5664c5bb6 name=ci\n"
    "  # an indented comment\n";

static void keys_file_gives_keys_settings_and_ids(void **state)
{
	struct llm_keys *k;
	struct llm_diag d = {0};
	assert_int_equal(llm_keys_parse(&k, keyfile, strlen(keyfile), "keys.txt", &d), LLM_OK);
	assert_int_equal(llm_keys_count(k), 3);

	struct llm_key key;
	assert_true(llm_keys_check(k, "sk-test-key-0001", 16, &key));
	assert_string_equal(key.id, "team-a");
	assert_int_equal(key.rpm, 60);
	assert_int_equal(key.tpm, 100000);
	assert_int_equal(key.budget_tokens, 5000000);
	assert_string_equal(key.models, "");
	assert_int_equal(key.line, 3);

	/* No name=: "key-" and the first 8 hex digits of sha256("sk-test-key-0002") (Python's
	 * hashlib gives 03d607954c42...). */
	assert_true(llm_keys_check(k, "sk-test-key-0002", 16, &key));
	assert_string_equal(key.id, "key-03d60795");
	assert_int_equal(key.rpm, LLM_KEY_NONE);
	assert_int_equal(key.tpm, LLM_KEY_UNSET);
	assert_int_equal(key.budget_tokens, LLM_KEY_UNSET);
	assert_string_equal(key.models, "small,large");
	assert_true(llm_key_allows_model(&key, "large"));
	assert_false(llm_key_allows_model(&key, "larg"));
	assert_false(llm_key_allows_model(&key, "medium"));

	/* A key given as its digest (upper-case hex accepted) matches the key itself. */
	assert_true(llm_keys_check(k, "sk-other-key-9999", 17, &key));
	assert_string_equal(key.id, "ci");
	assert_true(llm_key_allows_model(&key, "anything"));

	char id[LLM_KEY_ID_MAX];
	llm_key_id("sk-test-key-0001", 16, id);
	assert_string_equal(id, "key-9933df25");
	llm_keys_free(k);
}

static void keys_check_refuses_near_misses_through_crypto_memcmp(void **state)
{
	struct llm_keys *k;
	assert_int_equal(llm_keys_parse(&k, keyfile, strlen(keyfile), "keys.txt", NULL), LLM_OK);
	unsigned long before = memcmp_calls;
	assert_true(llm_keys_check(k, "sk-test-key-0001", 16, NULL));
	assert_true(memcmp_calls > before);
	const char *wrong[] = {
	    "sk-test-key-000",	"sk-test-key-00011", "sk-test-key-0003", "SK-TEST-KEY-0001", "",
	    "sk-test-key-0001 "};
	for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++)
		assert_false(llm_keys_check(k, wrong[i], strlen(wrong[i]), NULL));
	/* The digest line's text is no key. */
	const char *digest =
	    "sha256:34E2298193114f6f5d073fd959f0e05b01f6bd10d3d1abe67fc5d7d5664c5bb6";
	assert_false(llm_keys_check(k, digest, strlen(digest), NULL));
	/* A NUL inside the presented key counts: the key is n bytes, not a C string. */
	assert_false(llm_keys_check(k, "sk-test-key-0001\0x", 18, NULL));
	llm_keys_free(k);
}

static void keys_errors_name_file_and_line_and_never_the_key(void **state)
{
	static const struct {
		const char *text;
		long line;
		const char *msg;
	} cases[] = {
	    {"# c\nshort\n", 2, "8 to 256 characters"},
	    {"sk-test-key-0001 rpm=0\n", 1, "rpm= wants a whole number"},
	    {"sk-test-key-0001 tpm=12x\n", 1, "tpm= wants a whole number"},
	    {"sk-test-key-0001 budget_tokens=-5\n", 1, "budget_tokens= wants"},
	    {"\n\nsk-test-key-0001 colour=blue\n", 3, "unknown setting 'colour'"},
	    {"sk-test-key-0001 rpm=5 rpm=6\n", 1, "rpm= given twice"},
	    {"sk-test-key-0001 team-a\n", 1, "expected NAME=VALUE"},
	    {"sk-test-key-0001 name=team/a\n", 1, "name= may hold only"},
	    {"sk-test-key-0001 name=\n", 1, "name= must have"},
	    {"sk-test-key-0001 models=a,,b\n", 1, "models= wants"},
	    {"sha256:abcd\n", 1, "64 hex digits"},
	    {"sk-test\xc3\xa9-key\n", 1, "printable ASCII"},
	    {"sk-test#key-0001\n", 1, "may not contain '#'"},
	    {"sk-test-key-0001\nsk-test-key-0002\nsk-test-key-0001 name=x\n", 3,
	     "the same key as on line 1"},
	    {"sk-test-key-0001 name=a\nsk-test-key-0002 name=a\n", 2,
	     "key id 'a' already names the key on line 1"},
	    {"sk-test-key-0001\nsk-test-key-0002 name=key-9933df25\n", 2,
	     "key id 'key-9933df25' already names"},
	    {"sk-test-key-0001 rpm=1\nsk-\0test-key\n", 2, "NUL"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct llm_keys *k = (struct llm_keys *)1;
		struct llm_diag d = {0};
		size_t n = strlen(cases[i].text);
		if (strstr(cases[i].msg, "NUL"))
			n = 36;
		enum llm_err e = llm_keys_parse(&k, cases[i].text, n, "keys.txt", &d);
		if (e != LLM_ERR_FORMAT || d.line != cases[i].line ||
		    !strstr(d.msg, cases[i].msg) || strcmp(d.file, "keys.txt") != 0)
			fail_msg("case %zu: got %d %s:%ld: %s", i, e, d.file, d.line, d.msg);
		assert_null(k);
		assert_null(strstr(d.msg, "sk-test"));
		char line[1200];
		llm_diag_format(&d, line, sizeof line);
		char want[64];
		snprintf(want, sizeof want, "keys.txt:%ld: ", cases[i].line);
		assert_memory_equal(line, want, strlen(want));
	}
}

static void keys_reload_swaps_atomically_and_keeps_the_old_set_on_error(void **state)
{
	char path[128];
	path_in_tmp(path, sizeof path, "keys.txt");
	write_file(path, "sk-test-key-0001 name=old\n");
	struct llm_keys *k;
	struct llm_diag d = {0};
	assert_int_equal(llm_keys_open(&k, path, &d), LLM_OK);
	assert_true(llm_keys_check(k, "sk-test-key-0001", 16, NULL));

	write_file(path, "sk-test-key-0002 name=new\n");
	assert_int_equal(llm_keys_reload(k, &d), LLM_OK);
	struct llm_key key;
	assert_false(llm_keys_check(k, "sk-test-key-0001", 16, NULL));
	assert_true(llm_keys_check(k, "sk-test-key-0002", 16, &key));
	assert_string_equal(key.id, "new");

	write_file(path, "sk-test-key-0003\nsk-test-key-0004 rpm=fast\n");
	assert_int_equal(llm_keys_reload(k, &d), LLM_ERR_FORMAT);
	assert_int_equal(d.line, 2);
	assert_string_equal(d.file, path);
	assert_true(llm_keys_check(k, "sk-test-key-0002", 16, NULL));
	assert_false(llm_keys_check(k, "sk-test-key-0003", 16, NULL));

	unlink(path);
	assert_int_equal(llm_keys_reload(k, &d), LLM_ERR_NOT_FOUND);
	assert_true(llm_keys_check(k, "sk-test-key-0002", 16, NULL));
	llm_keys_free(k);

	assert_int_equal(llm_keys_open(&k, path, &d), LLM_ERR_NOT_FOUND);
	assert_null(k);
	assert_int_equal(llm_keys_open(&k, tmpdir, &d), LLM_ERR_IS_DIR);
	assert_int_equal(llm_keys_parse(&k, "", 0, "empty", &d), LLM_OK);
	assert_int_equal(llm_keys_count(k), 0);
	assert_false(llm_keys_check(k, "sk-test-key-0001", 16, NULL));
	assert_int_equal(llm_keys_reload(k, &d), LLM_ERR_USAGE);
	llm_keys_free(k);
}

struct key_thread {
	struct llm_keys *k;
	int bad;
};

static void *check_keys(void *arg)
{
	struct key_thread *t = arg;
	for (int i = 0; i < 3000; i++) {
		struct llm_key key;
		/* Either file holds this key, under one of two names. */
		if (!llm_keys_check(t->k, "sk-test-key-0001", 16, &key) ||
		    (strcmp(key.id, "one") != 0 && strcmp(key.id, "uno") != 0))
			t->bad++;
	}
	return NULL;
}

static void keys_check_on_threads_during_reloads(void **state)
{
	char path[128];
	path_in_tmp(path, sizeof path, "keys-mt.txt");
	write_file(path, "sk-test-key-0001 name=one\n");
	struct llm_keys *k;
	assert_int_equal(llm_keys_open(&k, path, NULL), LLM_OK);
	pthread_t th[4];
	struct key_thread t[4];
	for (int i = 0; i < 4; i++) {
		t[i] = (struct key_thread){k, 0};
		pthread_create(&th[i], NULL, check_keys, &t[i]);
	}
	for (int i = 0; i < 30; i++) {
		write_file(path, i % 2 ? "sk-test-key-0001 name=one\n"
				       : "sk-test-key-0002\nsk-test-key-0001 name=uno\n");
		assert_int_equal(llm_keys_reload(k, NULL), LLM_OK);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].bad, 0);
	}
	llm_keys_free(k);
	unlink(path);
}

static void keys_bearer_header_is_parsed(void **state)
{
	size_t n = 0;
	const char *p = llm_keys_bearer("Bearer sk-abc", &n);
	assert_non_null(p);
	assert_int_equal(n, 6);
	assert_memory_equal(p, "sk-abc", 6);
	p = llm_keys_bearer("  bEaReR \t sk-abc  ", &n);
	assert_non_null(p);
	assert_int_equal(n, 6);
	assert_null(llm_keys_bearer("Basic dXNlcjpwYXNz", &n));
	assert_null(llm_keys_bearer("Bearer", &n));
	assert_null(llm_keys_bearer("Bearer   ", &n));
	assert_null(llm_keys_bearer("Bearersk-abc", &n));
	assert_null(llm_keys_bearer("Bearer a b", &n));
	assert_null(llm_keys_bearer(NULL, &n));
}

/* ---- limits -------------------------------------------------------------------------- */

static double fake_now;
static double fake_clock(void *ctx)
{
	(void)ctx;
	return fake_now;
}

static struct llm_limits *limits_with(int64_t rpm, int64_t tpm, int64_t budget, size_t max_clients)
{
	struct llm_limits_config cfg = {
	    .defaults = {rpm, tpm, budget},
	    .max_clients = max_clients,
	    .clock = fake_clock,
	};
	struct llm_limits *l;
	fake_now = 1000;
	assert_int_equal(llm_limits_new(&l, &cfg), LLM_OK);
	return l;
}

static enum llm_limit_verdict ask(struct llm_limits *l, const char *client, int64_t est,
				  struct llm_limit_ticket *t, struct llm_limit_result *r)
{
	struct llm_limit_ticket tt;
	struct llm_limit_result rr;
	assert_int_equal(llm_limits_acquire(l, client, NULL, est, t ? t : &tt, r ? r : &rr),
			 LLM_OK);
	if (!t && (r ? r : &rr)->verdict == LLM_LIMIT_OK)
		llm_limits_settle(l, &tt, est);
	return (r ? r : &rr)->verdict;
}

static void limits_rpm_bucket_bursts_a_minute_then_refills(void **state)
{
	struct llm_limits *l = limits_with(60, 0, 0, 0);
	struct llm_limit_result r;
	for (int i = 0; i < 60; i++)
		assert_int_equal(ask(l, "a", 0, NULL, &r), LLM_LIMIT_OK);
	assert_int_equal(r.limit_requests, 60);
	assert_int_equal(r.remaining_requests, 0);
	assert_float_equal(r.reset_requests, 60.0, 1e-9);
	assert_int_equal(ask(l, "a", 0, NULL, &r), LLM_LIMIT_RPM);
	assert_float_equal(r.retry_after, 1.0, 1e-9);
	assert_string_equal(llm_limit_verdict_code(r.verdict), "rate_limit_exceeded");
	assert_string_equal(llm_limit_verdict_name(r.verdict), "rpm");
	fake_now += 0.25;
	assert_int_equal(ask(l, "a", 0, NULL, &r), LLM_LIMIT_RPM);
	assert_float_equal(r.retry_after, 0.75, 1e-9);
	/* Another client has its own bucket. */
	assert_int_equal(ask(l, "b", 0, NULL, &r), LLM_LIMIT_OK);
	assert_int_equal(r.remaining_requests, 59);
	fake_now += 0.75;
	assert_int_equal(ask(l, "a", 0, NULL, &r), LLM_LIMIT_OK);
	assert_int_equal(ask(l, "a", 0, NULL, &r), LLM_LIMIT_RPM);
	/* A long pause refills to one minute's worth, not more. */
	fake_now += 3600;
	for (int i = 0; i < 60; i++)
		assert_int_equal(ask(l, "a", 0, NULL, &r), LLM_LIMIT_OK);
	assert_int_equal(ask(l, "a", 0, NULL, &r), LLM_LIMIT_RPM);
	llm_limits_free(l);
}

static void limits_tpm_reserves_the_estimate_and_settles_with_real_usage(void **state)
{
	struct llm_limits *l = limits_with(0, 600, 0, 0); /* 10 tokens a second */
	struct llm_limit_ticket t1, t2;
	struct llm_limit_result r;
	assert_int_equal(ask(l, "a", 500, &t1, &r), LLM_LIMIT_OK);
	assert_int_equal(r.remaining_tokens, 100);
	assert_int_equal(r.limit_requests, 0);
	assert_int_equal(ask(l, "a", 300, &t2, &r), LLM_LIMIT_TPM);
	assert_false(t2.active);
	assert_float_equal(r.retry_after, 20.0, 1e-9);
	assert_string_equal(llm_limit_verdict_name(r.verdict), "tpm");
	/* The first request used only 100 of its 500: 400 come back. */
	llm_limits_settle(l, &t1, 100);
	assert_false(t1.active);
	llm_limits_settle(l, &t1, 100); /* a second settle does nothing */
	assert_int_equal(ask(l, "a", 300, &t2, &r), LLM_LIMIT_OK);
	assert_int_equal(r.remaining_tokens, 200);
	/* Under-estimated: 900 used of 300 reserved makes a debt of 400. */
	llm_limits_settle(l, &t2, 900);
	assert_int_equal(ask(l, "a", 60, NULL, &r), LLM_LIMIT_TPM);
	assert_float_equal(r.retry_after, (60 + 400) / 10.0, 1e-9);
	assert_float_equal(r.reset_tokens, 1000 / 10.0, 1e-9);
	fake_now += 46;
	assert_int_equal(ask(l, "a", 60, NULL, &r), LLM_LIMIT_OK);
	llm_limits_free(l);
}

static void limits_an_estimate_over_a_minute_waits_for_a_full_bucket(void **state)
{
	struct llm_limits *l = limits_with(0, 600, 0, 0);
	struct llm_limit_ticket t;
	struct llm_limit_result r;
	assert_int_equal(ask(l, "a", 1, NULL, &r), LLM_LIMIT_OK);
	assert_int_equal(ask(l, "a", 5000, &t, &r), LLM_LIMIT_TPM);
	assert_float_equal(r.retry_after, 0.1, 1e-9); /* until the bucket is full */
	fake_now += 0.1;
	assert_int_equal(ask(l, "a", 5000, &t, &r), LLM_LIMIT_OK);
	assert_int_equal(r.remaining_tokens, 0);
	llm_limits_settle(l, &t, 1000); /* 600 - 1000: 400 in debt */
	assert_int_equal(ask(l, "a", 1, NULL, &r), LLM_LIMIT_TPM);
	assert_float_equal(r.retry_after, 40.1, 1e-9);
	llm_limits_free(l);
}

struct usage_seen {
	char client[32];
	int64_t tokens, total;
	int calls;
};

static void on_usage(void *ctx, const char *client, int64_t tokens, int64_t total)
{
	struct usage_seen *u = ctx;
	snprintf(u->client, sizeof u->client, "%s", client);
	u->tokens = tokens;
	u->total = total;
	u->calls++;
}

static void limits_budget_counts_reserved_and_settled_tokens(void **state)
{
	struct usage_seen seen = {0};
	struct llm_limits_config cfg = {
	    .defaults = {LLM_LIMIT_DEFAULT, LLM_LIMIT_DEFAULT, LLM_LIMIT_DEFAULT},
	    .clock = fake_clock,
	    .on_usage = on_usage,
	    .on_usage_ctx = &seen,
	};
	struct llm_limits *l;
	assert_int_equal(llm_limits_new(&l, &cfg), LLM_OK);
	struct llm_limit_rule rule = {LLM_LIMIT_DEFAULT, LLM_LIMIT_DEFAULT, 1000};
	struct llm_limit_ticket t1, t2;
	struct llm_limit_result r;
	assert_int_equal(llm_limits_acquire(l, "team-a", &rule, 600, &t1, &r), LLM_OK);
	assert_int_equal(r.verdict, LLM_LIMIT_OK);
	assert_int_equal(r.budget_tokens, 1000);
	assert_int_equal(r.budget_used, 600);
	assert_int_equal(llm_limits_acquire(l, "team-a", &rule, 500, &t2, &r), LLM_OK);
	assert_int_equal(r.verdict, LLM_LIMIT_BUDGET);
	assert_float_equal(r.retry_after, -1, 0);
	assert_string_equal(llm_limit_verdict_code(r.verdict), "insufficient_quota");
	assert_int_equal(llm_limits_budget_used(l, "team-a"), 600);
	llm_limits_settle(l, &t1, 200);
	assert_int_equal(seen.calls, 1);
	assert_string_equal(seen.client, "team-a");
	assert_int_equal(seen.tokens, 200);
	assert_int_equal(seen.total, 200);
	assert_int_equal(llm_limits_acquire(l, "team-a", &rule, 500, &t2, &r), LLM_OK);
	assert_int_equal(r.verdict, LLM_LIMIT_OK);
	assert_int_equal(r.budget_used, 700);
	llm_limits_settle(l, &t2, 800);
	assert_int_equal(llm_limits_budget_used(l, "team-a"), 1000);
	assert_int_equal(llm_limits_acquire(l, "team-a", &rule, 1, &t2, &r), LLM_OK);
	assert_int_equal(r.verdict, LLM_LIMIT_BUDGET);
	/* A key whose rule has no budget is never refused for one. */
	struct llm_limit_rule free_rule = {0, 0, 0};
	assert_int_equal(llm_limits_acquire(l, "team-b", &free_rule, 1 << 30, &t2, &r), LLM_OK);
	assert_int_equal(r.verdict, LLM_LIMIT_OK);
	llm_limits_settle(l, &t2, 5);

	/* Saved and loaded back into a fresh table. */
	char path[128];
	path_in_tmp(path, sizeof path, "budgets.json");
	assert_int_equal(llm_limits_budgets_save(l, path, NULL), LLM_OK);
	json_error_t je;
	json_t *saved = json_load_file(path, 0, &je);
	assert_non_null(saved);
	assert_int_equal(json_integer_value(json_object_get(saved, "team-a")), 1000);
	assert_null(json_object_get(saved, "team-b")); /* no budget: nothing to keep */
	json_decref(saved);
	llm_limits_free(l);
	assert_int_equal(llm_limits_new(&l, &cfg), LLM_OK);
	assert_int_equal(llm_limits_budgets_load(l, path, NULL), LLM_OK);
	assert_int_equal(llm_limits_budget_used(l, "team-a"), 1000);
	assert_int_equal(llm_limits_acquire(l, "team-a", &rule, 1, &t2, &r), LLM_OK);
	assert_int_equal(r.verdict, LLM_LIMIT_BUDGET);
	assert_int_equal(llm_limits_budget_set(l, "team-a", 0), LLM_OK);
	assert_int_equal(llm_limits_acquire(l, "team-a", &rule, 1, &t2, &r), LLM_OK);
	assert_int_equal(r.verdict, LLM_LIMIT_OK);
	llm_limits_settle(l, &t2, 1);
	/* A missing file is an empty state; a bad one names itself. */
	path_in_tmp(path, sizeof path, "no-such-budgets.json");
	assert_int_equal(llm_limits_budgets_load(l, path, NULL), LLM_OK);
	path_in_tmp(path, sizeof path, "bad-budgets.json");
	write_file(path, "{\"a\": \"lots\"}");
	struct llm_diag d = {0};
	assert_int_equal(llm_limits_budgets_load(l, path, &d), LLM_ERR_TYPE);
	assert_string_equal(d.file, path);
	llm_limits_free(l);
}

static void limits_global_rate_and_all_or_nothing(void **state)
{
	struct llm_limits_config cfg = {
	    .defaults = {10, 0, 0},
	    .global_rpm = 3,
	    .clock = fake_clock,
	};
	struct llm_limits *l;
	assert_int_equal(llm_limits_new(&l, &cfg), LLM_OK);
	struct llm_limit_result r;
	assert_int_equal(ask(l, "a", 0, NULL, &r), LLM_LIMIT_OK);
	assert_int_equal(ask(l, "b", 0, NULL, &r), LLM_LIMIT_OK);
	assert_int_equal(ask(l, "c", 0, NULL, &r), LLM_LIMIT_OK);
	assert_int_equal(ask(l, "d", 0, NULL, &r), LLM_LIMIT_GLOBAL_RPM);
	assert_float_equal(r.retry_after, 20.0, 1e-9);
	/* The refused request took nothing from d's own bucket. */
	assert_int_equal(r.remaining_requests, 10);
	fake_now += 20;
	assert_int_equal(ask(l, "d", 0, NULL, &r), LLM_LIMIT_OK);
	assert_int_equal(r.remaining_requests, 9);
	/* A rule of 0 lifts the client's own limit, not the server's. */
	struct llm_limit_rule none = {0, 0, 0};
	struct llm_limit_ticket t;
	assert_int_equal(llm_limits_acquire(l, "e", &none, 0, &t, &r), LLM_OK);
	assert_int_equal(r.verdict, LLM_LIMIT_GLOBAL_RPM);
	assert_int_equal(r.limit_requests, 0);
	/* Bad arguments. */
	assert_int_equal(llm_limits_acquire(l, "", NULL, 0, &t, &r), LLM_ERR_USAGE);
	assert_int_equal(llm_limits_acquire(l, "a", NULL, -1, &t, &r), LLM_ERR_USAGE);
	llm_limits_free(l);
}

static void limits_table_is_bounded_and_keeps_what_matters(void **state)
{
	/* 16 entries: one per stripe. */
	struct llm_limits *l = limits_with(10, 0, 0, 16);
	struct llm_limit_rule budget = {10, 0, 100};
	struct llm_limit_ticket t;
	struct llm_limit_result r;
	assert_int_equal(llm_limits_acquire(l, "keeper", &budget, 40, &t, &r), LLM_OK);
	assert_int_equal(r.verdict, LLM_LIMIT_OK);
	llm_limits_settle(l, &t, 40);
	int ok = 0, full = 0;
	for (int i = 0; i < 200; i++) {
		char name[16];
		snprintf(name, sizeof name, "ip:%d", i);
		enum llm_limit_verdict v = ask(l, name, 0, NULL, &r);
		if (v == LLM_LIMIT_OK)
			ok++;
		else if (v == LLM_LIMIT_FULL && r.retry_after > 0)
			full++;
	}
	/* Each entry holds a client that has just taken a request: nothing to evict. */
	assert_true(ok <= 15);
	assert_int_equal(ok + full, 200);
	/* A minute on, every bucket is full again, and the entries can be reused, but not the
	 * one holding a budget. */
	fake_now += 60;
	for (int i = 200; i < 400; i++) {
		char name[16];
		snprintf(name, sizeof name, "ip:%d", i);
		enum llm_limit_verdict v = ask(l, name, 0, NULL, &r);
		assert_true(v == LLM_LIMIT_OK || v == LLM_LIMIT_FULL);
		fake_now += 6; /* each bucket refills before its entry is wanted again */
	}
	assert_int_equal(llm_limits_budget_used(l, "keeper"), 40);
	llm_limits_free(l);
}

struct limit_thread {
	struct llm_limits *l;
	int id;
	int refused;
};

static void *hammer_limits(void *arg)
{
	struct limit_thread *t = arg;
	char name[16];
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof name, "c%d", (t->id + i) % 24);
		struct llm_limit_ticket tk;
		struct llm_limit_result r;
		if (llm_limits_acquire(t->l, name, NULL, 10, &tk, &r) != LLM_OK ||
		    r.verdict != LLM_LIMIT_OK) {
			t->refused++;
			continue;
		}
		llm_limits_settle(t->l, &tk, 5);
	}
	return NULL;
}

static void limits_from_threads_lose_no_usage(void **state)
{
	struct llm_limits *l = limits_with(0, 0, 0, 0);
	pthread_t th[6];
	struct limit_thread t[6];
	for (int i = 0; i < 6; i++) {
		t[i] = (struct limit_thread){l, i, 0};
		pthread_create(&th[i], NULL, hammer_limits, &t[i]);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].refused, 0);
	}
	int64_t total = 0;
	for (int c = 0; c < 24; c++) {
		char name[16];
		snprintf(name, sizeof name, "c%d", c);
		total += llm_limits_budget_used(l, name);
	}
	assert_int_equal(total, 6 * 2000 * 5);
	llm_limits_free(l);
}

/* ---- metrics ------------------------------------------------------------------------- */

static char *expose(struct llm_metrics *r)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_metrics_write(r, &b), LLM_OK);
	return b.data ? b.data : strdup("");
}

static void metrics_exposition_is_exactly_the_text_format(void **state)
{
	struct llm_metrics *r;
	assert_int_equal(llm_metrics_new(&r, 0), LLM_OK);
	struct llm_metric *req, *up, *lat, *tok;
	const char *const rl[] = {"model", "status", NULL};
	const char *const ml[] = {"model", NULL};
	const double bounds[] = {0.005, 0.1, 1};
	assert_int_equal(llm_metrics_counter(r, "llmops_requests_total",
					     "Requests answered.\nBy \\status.", rl, &req, NULL),
			 LLM_OK);
	assert_int_equal(llm_metrics_gauge(r, "llmops_up", "1 when serving.", NULL, &up, NULL),
			 LLM_OK);
	assert_int_equal(llm_metrics_histogram(r, "llmops_latency_seconds", "Latency.", ml, bounds,
					       3, &lat, NULL),
			 LLM_OK);
	assert_int_equal(
	    llm_metrics_counter(r, "llmops_tokens_total", "Never touched.", ml, &tok, NULL),
	    LLM_OK);
	const char *a[] = {"tiny", "200"}, *b[] = {"m\"x\\y\nz", "429"};
	llm_metric_add(req, a, 2);
	llm_metric_add(req, b, 1);
	llm_metric_add(req, a, 0.5);
	llm_metric_add(req, a, -3); /* counters only go up */
	llm_metric_set(up, NULL, 1);
	const char *m[] = {"tiny"};
	double obs[] = {0.001, 0.005, 0.05, 0.1, 0.5, 2, 30};
	for (size_t i = 0; i < 7; i++)
		llm_metric_observe(lat, m, obs[i]);
	char *text = expose(r);
	static const char want[] =
	    "# HELP llmops_requests_total Requests answered.\\nBy \\\\status.\n"
	    "# TYPE llmops_requests_total counter\n"
	    "llmops_requests_total{model=\"tiny\",status=\"200\"} 2.5\n"
	    "llmops_requests_total{model=\"m\\\"x\\\\y\\nz\",status=\"429\"} 1\n"
	    "# HELP llmops_up 1 when serving.\n"
	    "# TYPE llmops_up gauge\n"
	    "llmops_up 1\n"
	    "# HELP llmops_latency_seconds Latency.\n"
	    "# TYPE llmops_latency_seconds histogram\n"
	    "llmops_latency_seconds_bucket{model=\"tiny\",le=\"0.005\"} 2\n"
	    "llmops_latency_seconds_bucket{model=\"tiny\",le=\"0.1\"} 4\n"
	    "llmops_latency_seconds_bucket{model=\"tiny\",le=\"1\"} 5\n"
	    "llmops_latency_seconds_bucket{model=\"tiny\",le=\"+Inf\"} 7\n"
	    "llmops_latency_seconds_sum{model=\"tiny\"} 32.656\n"
	    "llmops_latency_seconds_count{model=\"tiny\"} 7\n";
	assert_string_equal(text, want);
	free(text);
	llm_metrics_free(r);
}

static void metrics_histogram_buckets_are_cumulative_with_inclusive_bounds(void **state)
{
	struct llm_metrics *r;
	assert_int_equal(llm_metrics_new(&r, 0), LLM_OK);
	struct llm_metric *h;
	const double bounds[] = {1, 2, 4, 8};
	assert_int_equal(llm_metrics_histogram(r, "h_seconds", "h", NULL, bounds, 4, &h, NULL),
			 LLM_OK);
	struct llm_series *s = llm_metric_series(h, NULL);
	/* 0..10 in steps of 0.5, plus -1 (below every bound), +Inf and NaN (ignored). */
	for (int i = 0; i <= 20; i++)
		llm_series_observe(s, i * 0.5);
	llm_series_observe(s, -1);
	llm_series_observe(s, 1.0 / 0.0);
	llm_series_observe(s, 0.0 / 0.0);
	assert_float_equal(llm_series_value(s), 23, 0);
	char *text = expose(r);
	static const char want[] = "# HELP h_seconds h\n"
				   "# TYPE h_seconds histogram\n"
				   "h_seconds_bucket{le=\"1\"} 4\n"  /* -1, 0, 0.5, 1 */
				   "h_seconds_bucket{le=\"2\"} 6\n"  /* 1.5, 2 */
				   "h_seconds_bucket{le=\"4\"} 10\n" /* 2.5 .. 4 */
				   "h_seconds_bucket{le=\"8\"} 18\n" /* 4.5 .. 8 */
				   "h_seconds_bucket{le=\"+Inf\"} 23\n"
				   "h_seconds_sum +Inf\n"
				   "h_seconds_count 23\n";
	assert_string_equal(text, want);
	free(text);
	llm_metrics_free(r);
}

static void metrics_series_cap_and_bad_values_go_to_overflow(void **state)
{
	struct llm_metrics *r;
	assert_int_equal(llm_metrics_new(&r, 2), LLM_OK);
	struct llm_metric *c;
	const char *const l[] = {"model", "status", NULL};
	assert_int_equal(llm_metrics_counter(r, "x_total", "x", l, &c, NULL), LLM_OK);
	const char *a[] = {"a", "1"}, *b[] = {"b", "1"}, *cc[] = {"c", "1"};
	struct llm_series *sa = llm_metric_series(c, a);
	assert_ptr_equal(sa, llm_metric_series(c, a)); /* interned */
	llm_series_add(sa, 1);
	llm_metric_add(c, b, 1);
	llm_metric_add(c, cc, 1); /* past the cap of 2 */
	llm_metric_add(c, a, 1);
	char longv[LLM_METRIC_VALUE_MAX + 2];
	memset(longv, 'v', sizeof longv - 1);
	longv[sizeof longv - 1] = '\0';
	const char *lv[] = {longv, "1"}, *bad[] = {"\xc3(", "1"};
	llm_metric_add(c, lv, 1);
	llm_metric_add(c, bad, 1);
	llm_metric_add(c, NULL, 1);
	char *text = expose(r);
	static const char want[] = "# HELP x_total x\n"
				   "# TYPE x_total counter\n"
				   "x_total{model=\"a\",status=\"1\"} 2\n"
				   "x_total{model=\"b\",status=\"1\"} 1\n"
				   "x_total{model=\"__overflow__\",status=\"__overflow__\"} 4\n";
	assert_string_equal(text, want);
	free(text);
	llm_metrics_free(r);

	assert_int_equal(llm_metrics_new(&r, 0), LLM_OK);
	assert_int_equal(llm_metrics_counter(r, "y_total", "y", l, &c, NULL), LLM_OK);
	/* ("ab","c") and ("a","bc") are two series, not one. */
	const char *p1[] = {"ab", "c"}, *p2[] = {"a", "bc"};
	assert_ptr_not_equal(llm_metric_series(c, p1), llm_metric_series(c, p2));
	llm_metrics_free(r);
}

static void metrics_registration_enforces_the_naming_rules(void **state)
{
	struct llm_metrics *r;
	assert_int_equal(llm_metrics_new(&r, 0), LLM_OK);
	struct llm_metric *m;
	struct llm_diag d = {0};
	const double b[] = {1, 2}, bad_b[] = {2, 1};
	const char *const le[] = {"le", NULL}, *const dunder[] = {"__x", NULL};
	const char *const twice[] = {"a", "a", NULL}, *const badl[] = {"a-b", NULL};
	assert_int_equal(llm_metrics_counter(r, "requests", "h", NULL, &m, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "_total"));
	assert_int_equal(llm_metrics_gauge(r, "9lives", "h", NULL, &m, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_metrics_gauge(r, "a-b", "h", NULL, &m, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_metrics_gauge(r, "g", "h", dunder, &m, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_metrics_gauge(r, "g", "h", twice, &m, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_metrics_gauge(r, "g", "h", badl, &m, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_metrics_histogram(r, "h", "h", le, b, 2, &m, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_metrics_histogram(r, "h", "h", NULL, bad_b, 2, &m, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_metrics_gauge(r, "ns:g", "h", le, &m, &d), LLM_OK); /* le is fine */
	assert_int_equal(llm_metrics_gauge(r, "ns:g", "h", NULL, &m, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_metrics_histogram(r, "lat_seconds", "h", NULL, b, 2, &m, &d), LLM_OK);
	assert_int_equal(llm_metrics_gauge(r, "lat_seconds_count", "h", NULL, &m, &d),
			 LLM_ERR_USAGE);
	assert_int_equal(llm_metrics_gauge(r, "q_bucket", "h", NULL, &m, &d), LLM_OK);
	assert_int_equal(llm_metrics_histogram(r, "q", "h", NULL, b, 2, &m, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "clashes"));
	llm_metrics_free(r);
}

static void metrics_numbers_print_as_prometheus_reads_them(void **state)
{
	struct llm_metrics *r;
	assert_int_equal(llm_metrics_new(&r, 0), LLM_OK);
	struct llm_metric *g;
	const char *const l[] = {"v", NULL};
	assert_int_equal(llm_metrics_gauge(r, "g", "g", l, &g, NULL), LLM_OK);
	static const struct {
		const char *label;
		double v;
	} cases[] = {{"a", 0.1},	{"b", 1e-5},	  {"c", -0.0}, {"d", 1.0 / 0.0},
		     {"e", -1.0 / 0.0}, {"f", 0.0 / 0.0}, {"g", 1e20}, {"h", 123456789012345.0},
		     {"i", 1.0 / 3},	{"j", -2.5}};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const char *v[] = {cases[i].label};
		llm_metric_set(g, v, cases[i].v);
	}
	char *text = expose(r);
	static const char want[] = "# HELP g g\n# TYPE g gauge\n"
				   "g{v=\"a\"} 0.1\n"
				   "g{v=\"b\"} 1e-05\n"
				   "g{v=\"c\"} 0\n"
				   "g{v=\"d\"} +Inf\n"
				   "g{v=\"e\"} -Inf\n"
				   "g{v=\"f\"} NaN\n"
				   "g{v=\"g\"} 1e+20\n"
				   "g{v=\"h\"} 123456789012345\n"
				   "g{v=\"i\"} 0.3333333333333333\n"
				   "g{v=\"j\"} -2.5\n";
	assert_string_equal(text, want);
	free(text);
	llm_metrics_free(r);
}

struct metric_thread {
	struct llm_metric *c, *h;
	int id;
};

static void *hammer_metrics(void *arg)
{
	struct metric_thread *t = arg;
	for (int i = 0; i < 20000; i++) {
		char model[8];
		snprintf(model, sizeof model, "m%d", i % 5);
		const char *v[] = {model};
		llm_metric_add(t->c, v, 1);
		llm_metric_observe(t->h, v, 0.5);
	}
	return NULL;
}

static void metrics_updates_from_threads_are_not_lost(void **state)
{
	struct llm_metrics *r;
	assert_int_equal(llm_metrics_new(&r, 0), LLM_OK);
	const char *const l[] = {"model", NULL};
	const double b[] = {1};
	struct metric_thread t[6];
	pthread_t th[6];
	struct llm_metric *c, *h;
	assert_int_equal(llm_metrics_counter(r, "n_total", "n", l, &c, NULL), LLM_OK);
	assert_int_equal(llm_metrics_histogram(r, "d_seconds", "d", l, b, 1, &h, NULL), LLM_OK);
	for (int i = 0; i < 6; i++) {
		t[i] = (struct metric_thread){c, h, i};
		pthread_create(&th[i], NULL, hammer_metrics, &t[i]);
	}
	/* Expositions while the threads update must always be well formed. */
	for (int i = 0; i < 20; i++)
		free(expose(r));
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	for (int m = 0; m < 5; m++) {
		char model[8];
		snprintf(model, sizeof model, "m%d", m);
		const char *v[] = {model};
		assert_float_equal(llm_series_value(llm_metric_series(c, v)), 6 * 4000, 0);
		assert_float_equal(llm_series_value(llm_metric_series(h, v)), 6 * 4000, 0);
	}
	llm_metrics_free(r);
}

static void metrics_standard_set_registers_once(void **state)
{
	struct llm_metrics *r;
	assert_int_equal(llm_metrics_new(&r, 0), LLM_OK);
	struct llm_serve_metrics m;
	struct llm_diag d = {0};
	assert_int_equal(llm_serve_metrics_register(r, &m, &d), LLM_OK);
	assert_non_null(m.requests);
	assert_non_null(m.rate_limited);
	/* Nothing observed yet: labelled families stay out of the exposition. */
	char *text = expose(r);
	assert_string_equal(text, "");
	free(text);
	const char *v[] = {"tiny"};
	llm_metric_observe(m.ttft, v, 0.0003);
	text = expose(r);
	assert_non_null(strstr(text, "llmops_time_to_first_token_seconds_bucket{model=\"tiny\","
				     "le=\"0.00025\"} 0\n"
				     "llmops_time_to_first_token_seconds_bucket{model=\"tiny\","
				     "le=\"0.0005\"} 1\n"));
	free(text);
	struct llm_serve_metrics again;
	assert_int_equal(llm_serve_metrics_register(r, &again, &d), LLM_ERR_USAGE);
	llm_metrics_free(r);
}

/* ---- reqlog -------------------------------------------------------------------------- */

static const struct llm_reqlog_flag flag = {"pii", "email", "output", 10, 27, 1};

static struct llm_reqlog_record sample_record(void)
{
	return (struct llm_reqlog_record){
	    .ts_ms = 1767323045678,
	    .request_id = "req-1",
	    .endpoint = "/v1/completions",
	    .model = "tiny@3",
	    .key_id = "team-a",
	    .status = 200,
	    .latency_ms = 812.4000001,
	    .ttft_ms = 95.25,
	    .prompt_tokens = 5,
	    .completion_tokens = 12,
	    .finish_reason = "stop",
	    .prompt = "h\xc3\xa9llo w\xc3\xb6rld",
	    .prompt_len = 13,
	    .output = "say \"hi\"\n\tto bob@example.com",
	    .output_len = 28,
	    .flags = &flag,
	    .nflags = 1,
	    .extra_json = "\"upstream\":\"a\"",
	};
}

static char *format(const struct llm_reqlog_record *r, enum llm_reqlog_content mode)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_reqlog_format(r, mode, &b), LLM_OK);
	return b.data;
}

static void reqlog_records_in_the_three_content_modes(void **state)
{
	struct llm_reqlog_record r = sample_record();
	char *full = format(&r, LLM_REQLOG_FULL);
	assert_string_equal(
	    full, "{\"ts\":\"2026-01-02T03:04:05.678Z\",\"request_id\":\"req-1\","
		  "\"endpoint\":\"/v1/completions\",\"model\":\"tiny@3\",\"key_id\":\"team-a\","
		  "\"status\":200,\"latency_ms\":812.4,\"ttft_ms\":95.25,"
		  "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":12},"
		  "\"finish_reason\":\"stop\",\"prompt\":\"h\xc3\xa9llo w\xc3\xb6rld\","
		  "\"output\":\"say \\\"hi\\\"\\n\\tto bob@example.com\","
		  "\"flags\":[{\"kind\":\"pii\",\"type\":\"email\",\"field\":\"output\","
		  "\"span\":[10,27],\"score\":1}],\"upstream\":\"a\"}\n");
	free(full);

	/* sha256("héllo wörld") from Python's hashlib; its length is 11 code points. */
	char *hash = format(&r, LLM_REQLOG_HASH);
	assert_non_null(strstr(hash, ",\"prompt_sha256\":\"a1003f7d04a4115711d0b48a2eaf1359ce565d2d"
				     "2a6fd65098dfcffadeeef59f\",\"prompt_len\":11,"
				     "\"output_sha256\":\""));
	assert_null(strstr(hash, "w\xc3\xb6rld"));
	assert_null(strstr(hash, "bob@"));
	assert_non_null(strstr(hash, "\"span\":[10,27]"));
	free(hash);

	char *none = format(&r, LLM_REQLOG_NONE);
	assert_null(strstr(none, "\"prompt\":"));
	assert_null(strstr(none, "prompt_sha256"));
	assert_null(strstr(none, "\"output\":"));
	assert_null(strstr(none, "output_sha256"));
	assert_non_null(strstr(none, "\"finish_reason\":\"stop\",\"flags\":"));
	free(none);

	/* A chat request: the messages as given; unknowns as null or left out; an error. */
	struct llm_reqlog_record c = {
	    .ts_ms = 1,
	    .request_id = "req-2",
	    .status = 400,
	    .latency_ms = -1,
	    .ttft_ms = -1,
	    .prompt_tokens = -1,
	    .messages_json = "[{\"role\":\"user\",\"content\":\"hi\"}]",
	    .messages_len = 32,
	    .output = "x\xe6\x97",
	    .output_len = 3,
	    .error_code = "context_length_exceeded",
	    .error_message = "prompt of 9000 tokens; the context holds 4096",
	};
	char *chat = format(&c, LLM_REQLOG_FULL);
	assert_string_equal(chat,
			    "{\"ts\":\"1970-01-01T00:00:00.001Z\",\"request_id\":\"req-2\","
			    "\"status\":400,\"ttft_ms\":null,\"usage\":null,"
			    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
			    "\"output\":\"x\xef\xbf\xbd\","
			    "\"error\":{\"code\":\"context_length_exceeded\","
			    "\"message\":\"prompt of 9000 tokens; the context holds 4096\"}}\n");
	json_error_t je;
	json_t *j = json_loads(chat, 0, &je);
	assert_non_null(j);
	json_decref(j);
	free(chat);
	chat = format(&c, LLM_REQLOG_HASH);
	assert_non_null(strstr(chat, "\"prompt_len\":32,"));
	free(chat);
}

static void reqlog_feedback_and_timestamps(void **state)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(
	    llm_reqlog_format_feedback("req-1", -1, "wrong \"answer\"", 1767323045678, &b), LLM_OK);
	assert_string_equal(b.data, "{\"kind\":\"feedback\",\"request_id\":\"req-1\",\"score\":-1,"
				    "\"comment\":\"wrong \\\"answer\\\"\","
				    "\"ts\":\"2026-01-02T03:04:05.678Z\"}\n");
	llm_buf_clear(&b);
	assert_int_equal(llm_reqlog_format_feedback("req-1", 0.75, NULL, 1767323045000, &b),
			 LLM_OK);
	assert_string_equal(b.data,
			    "{\"kind\":\"feedback\",\"request_id\":\"req-1\",\"score\":0.75,"
			    "\"ts\":\"2026-01-02T03:04:05.000Z\"}\n");
	llm_buf_clear(&b);
	assert_int_equal(llm_reqlog_format_feedback("req-1", 0.0 / 0.0, NULL, 1, &b),
			 LLM_ERR_USAGE);
	assert_int_equal(llm_reqlog_format_feedback(NULL, 1, NULL, 1, &b), LLM_ERR_USAGE);
	assert_int_equal(b.len, 0);
	llm_buf_free(&b);

	char ts[LLM_REQLOG_TS_MAX];
	llm_reqlog_ts(0, ts);
	assert_string_equal(ts, "1970-01-01T00:00:00.000Z");
	llm_reqlog_ts(951782400999, ts); /* a leap day */
	assert_string_equal(ts, "2000-02-29T00:00:00.999Z");
	llm_reqlog_ts(-1, ts);
	assert_string_equal(ts, "1969-12-31T23:59:59.999Z");
	int64_t now = llm_reqlog_now_ms();
	assert_true(now > 1700000000000);

	char id1[LLM_REQLOG_ID_MAX], id2[LLM_REQLOG_ID_MAX];
	llm_reqlog_request_id(id1);
	llm_reqlog_request_id(id2);
	assert_int_equal(strlen(id1), 28);
	assert_memory_equal(id1, "req-", 4);
	assert_int_equal(strspn(id1 + 4, "0123456789abcdef"), 24);
	assert_string_not_equal(id1, id2);

	enum llm_reqlog_content mode;
	assert_int_equal(llm_reqlog_content_parse("hash", &mode), LLM_OK);
	assert_int_equal(mode, LLM_REQLOG_HASH);
	assert_int_equal(llm_reqlog_content_parse("plain", &mode), LLM_ERR_USAGE);
}

/* Read a log file: the number of lines, each checked to be a JSON object ending in a newline. */
static size_t check_lines(const char *path, size_t *bytes)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *line = NULL;
	size_t cap = 0, n = 0, total = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) > 0) {
		total += (size_t)len;
		assert_int_equal(line[len - 1], '\n');
		json_error_t je;
		json_t *j = json_loadb(line, (size_t)len, 0, &je);
		if (!j || !json_is_object(j))
			fail_msg("%s:%zu: not a JSON object: %s", path, n + 1, je.text);
		json_decref(j);
		n++;
	}
	free(line);
	fclose(f);
	if (bytes)
		*bytes = total;
	return n;
}

static void reqlog_long_records_become_hashed_not_lost(void **state)
{
	char path[128];
	path_in_tmp(path, sizeof path, "long.jsonl");
	struct llm_reqlog_config cfg = {.path = path, .content = LLM_REQLOG_FULL, .max_line = 4096};
	struct llm_reqlog *l;
	assert_int_equal(llm_reqlog_open(&l, &cfg, NULL), LLM_OK);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char *big = malloc(20000);
	memset(big, 'a', 20000);
	struct llm_reqlog_record r = sample_record();
	r.prompt = big;
	r.prompt_len = 20000;
	assert_int_equal(llm_reqlog_write(l, &r, NULL), LLM_OK);
	/* An error message too long for any line: the record keeps its facts. */
	big[19999] = '\0';
	r.prompt_len = 10;
	r.error_code = "upstream";
	r.error_message = big;
	assert_int_equal(llm_reqlog_write(l, &r, NULL), LLM_OK);
	r.error_message = NULL;
	assert_int_equal(llm_reqlog_feedback(l, "req-1", 1, "fine", 0, NULL), LLM_OK);
	uint64_t w, f;
	llm_reqlog_counts(l, &w, &f);
	assert_int_equal(w, 3);
	assert_int_equal(f, 0);
	llm_reqlog_close(l);
	free(big);
	assert_int_equal(check_lines(path, NULL), 3);
	FILE *fp = fopen(path, "r");
	char line[4200];
	assert_non_null(fgets(line, sizeof line, fp));
	assert_non_null(strstr(line, "\"prompt_len\":20000,"));
	assert_non_null(strstr(line, "\"truncated\":true"));
	assert_null(strstr(line, "aaaa"));
	assert_non_null(fgets(line, sizeof line, fp));
	assert_non_null(strstr(line, "\"error\":{\"code\":\"upstream\"}"));
	assert_non_null(strstr(line, "\"truncated\":true"));
	fclose(fp);
}

struct log_thread {
	struct llm_reqlog *l;
	int id;
	int errors;
};

#define LOG_THREADS 8
#define LOG_LINES   400

static void *hammer_log(void *arg)
{
	struct log_thread *t = arg;
	/* Lines of many sizes, some far over a pipe's atomic 4 KiB. */
	size_t sizes[] = {10, 300, 5000, 70000};
	char *text = malloc(70000);
	memset(text, 'a' + t->id, 70000);
	for (int i = 0; i < LOG_LINES; i++) {
		char id[32];
		snprintf(id, sizeof id, "req-%d-%d", t->id, i);
		struct llm_reqlog_record r = sample_record();
		r.request_id = id;
		r.output = text;
		r.output_len = sizes[(i + t->id) % 4];
		if (i % 7 == 3) {
			if (llm_reqlog_feedback(t->l, id, 1, NULL, 0, NULL))
				t->errors++;
		} else if (llm_reqlog_write(t->l, &r, NULL)) {
			t->errors++;
		}
	}
	free(text);
	return NULL;
}

static void reqlog_threads_write_whole_lines_only(void **state)
{
	char path[128];
	path_in_tmp(path, sizeof path, "mt.jsonl");
	struct llm_reqlog_config cfg = {.path = path, .content = LLM_REQLOG_FULL};
	struct llm_reqlog *l;
	assert_int_equal(llm_reqlog_open(&l, &cfg, NULL), LLM_OK);
	pthread_t th[LOG_THREADS];
	struct log_thread t[LOG_THREADS];
	for (int i = 0; i < LOG_THREADS; i++) {
		t[i] = (struct log_thread){l, i, 0};
		pthread_create(&th[i], NULL, hammer_log, &t[i]);
	}
	for (int i = 0; i < LOG_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].errors, 0);
	}
	llm_reqlog_close(l);
	assert_int_equal(check_lines(path, NULL), LOG_THREADS * LOG_LINES);
	unlink(path);
}

static void reqlog_reopen_after_rename_loses_no_line(void **state)
{
	char path[128], rotated[128];
	path_in_tmp(path, sizeof path, "rot.jsonl");
	path_in_tmp(rotated, sizeof rotated, "rot.jsonl.1");
	struct llm_reqlog_config cfg = {
	    .path = path, .content = LLM_REQLOG_HASH, .sync = LLM_REQLOG_SYNC_INTERVAL};
	struct llm_reqlog *l;
	assert_int_equal(llm_reqlog_open(&l, &cfg, NULL), LLM_OK);
	struct llm_reqlog_record r = sample_record();
	for (int i = 0; i < 10; i++)
		assert_int_equal(llm_reqlog_write(l, &r, NULL), LLM_OK);
	/* logrotate: rename, then SIGHUP.  Lines between the two still reach the old file. */
	assert_int_equal(rename(path, rotated), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(llm_reqlog_write(l, &r, NULL), LLM_OK);
	assert_int_equal(llm_reqlog_reopen(l, NULL), LLM_OK);
	for (int i = 0; i < 7; i++)
		assert_int_equal(llm_reqlog_write(l, &r, NULL), LLM_OK);
	assert_int_equal(check_lines(rotated, NULL), 15);
	assert_int_equal(check_lines(path, NULL), 7);

	/* Now while threads write: every line lands whole in one file or the other. */
	pthread_t th[LOG_THREADS];
	struct log_thread t[LOG_THREADS];
	for (int i = 0; i < LOG_THREADS; i++) {
		t[i] = (struct log_thread){l, i, 0};
		pthread_create(&th[i], NULL, hammer_log, &t[i]);
	}
	size_t moved = 0;
	for (int k = 0; k < 20; k++) {
		char name[160];
		snprintf(name, sizeof name, "%s.r%d", path, k);
		assert_int_equal(rename(path, name), 0);
		assert_int_equal(llm_reqlog_reopen(l, NULL), LLM_OK);
		usleep(2000);
	}
	for (int i = 0; i < LOG_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].errors, 0);
	}
	llm_reqlog_close(l);
	for (int k = 0; k < 20; k++) {
		char name[160];
		snprintf(name, sizeof name, "%s.r%d", path, k);
		moved += check_lines(name, NULL);
		unlink(name);
	}
	moved += check_lines(path, NULL);
	assert_int_equal(moved, 7 + LOG_THREADS * LOG_LINES);
	unlink(path);
	unlink(rotated);

	/* A path that cannot be opened again leaves the old file in use. */
	char dir[128];
	path_in_tmp(dir, sizeof dir, "gone");
	assert_int_equal(mkdir(dir, 0700), 0);
	char inner[160];
	snprintf(inner, sizeof inner, "%s/log.jsonl", dir);
	cfg.path = inner;
	assert_int_equal(llm_reqlog_open(&l, &cfg, NULL), LLM_OK);
	assert_int_equal(rename(inner, path), 0);
	assert_int_equal(rmdir(dir), 0);
	struct llm_diag d = {0};
	assert_int_equal(llm_reqlog_reopen(l, &d), LLM_ERR_IO);
	assert_int_equal(llm_reqlog_write(l, &r, NULL), LLM_OK);
	llm_reqlog_close(l);
	assert_int_equal(check_lines(path, NULL), 1);
	unlink(path);
}

static void reqlog_dash_is_standard_output(void **state)
{
	char path[128];
	path_in_tmp(path, sizeof path, "stdout.jsonl");
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	dup2(fileno(f), STDOUT_FILENO);
	struct llm_reqlog_config cfg = {.path = "-", .content = LLM_REQLOG_NONE};
	struct llm_reqlog *l;
	enum llm_err e1 = llm_reqlog_open(&l, &cfg, NULL);
	struct llm_reqlog_record r = sample_record();
	enum llm_err e2 = e1 ? e1 : llm_reqlog_write(l, &r, NULL);
	enum llm_err e3 = e1 ? e1 : llm_reqlog_reopen(l, NULL);
	enum llm_err e4 = e1 ? e1 : llm_reqlog_write(l, &r, NULL);
	if (!e1)
		llm_reqlog_close(l);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	fclose(f);
	assert_int_equal(e1, LLM_OK);
	assert_int_equal(e2, LLM_OK);
	assert_int_equal(e3, LLM_OK);
	assert_int_equal(e4, LLM_OK);
	assert_int_equal(check_lines(path, NULL), 2);
	/* Standard output stays open after close. */
	assert_true(fcntl(STDOUT_FILENO, F_GETFD) != -1);
	unlink(path);
}

static int setup(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test-serve-libs.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(keys_file_gives_keys_settings_and_ids),
	    cmocka_unit_test(keys_check_refuses_near_misses_through_crypto_memcmp),
	    cmocka_unit_test(keys_errors_name_file_and_line_and_never_the_key),
	    cmocka_unit_test(keys_reload_swaps_atomically_and_keeps_the_old_set_on_error),
	    cmocka_unit_test(keys_check_on_threads_during_reloads),
	    cmocka_unit_test(keys_bearer_header_is_parsed),
	    cmocka_unit_test(limits_rpm_bucket_bursts_a_minute_then_refills),
	    cmocka_unit_test(limits_tpm_reserves_the_estimate_and_settles_with_real_usage),
	    cmocka_unit_test(limits_an_estimate_over_a_minute_waits_for_a_full_bucket),
	    cmocka_unit_test(limits_budget_counts_reserved_and_settled_tokens),
	    cmocka_unit_test(limits_global_rate_and_all_or_nothing),
	    cmocka_unit_test(limits_table_is_bounded_and_keeps_what_matters),
	    cmocka_unit_test(limits_from_threads_lose_no_usage),
	    cmocka_unit_test(metrics_exposition_is_exactly_the_text_format),
	    cmocka_unit_test(metrics_histogram_buckets_are_cumulative_with_inclusive_bounds),
	    cmocka_unit_test(metrics_series_cap_and_bad_values_go_to_overflow),
	    cmocka_unit_test(metrics_registration_enforces_the_naming_rules),
	    cmocka_unit_test(metrics_numbers_print_as_prometheus_reads_them),
	    cmocka_unit_test(metrics_updates_from_threads_are_not_lost),
	    cmocka_unit_test(metrics_standard_set_registers_once),
	    cmocka_unit_test(reqlog_records_in_the_three_content_modes),
	    cmocka_unit_test(reqlog_feedback_and_timestamps),
	    cmocka_unit_test(reqlog_long_records_become_hashed_not_lost),
	    cmocka_unit_test(reqlog_threads_write_whole_lines_only),
	    cmocka_unit_test(reqlog_reopen_after_rename_loses_no_line),
	    cmocka_unit_test(reqlog_dash_is_standard_output),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
