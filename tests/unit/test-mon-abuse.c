/* Unit tests for lib/monitor/abuse: a key that bursts above its own baseline is flagged once
 * per burst, and one above the absolute rate even when new; a flood of near-identical prompts
 * from several keys is one cluster, flagged at its size and at twice it, while distinct
 * prompts and duplicates spread beyond the window are not; a key sending many long prompts in
 * a window is flagged, the same prompts spread over hours are not; a benign stream of many
 * keys with varied prompts sets nothing off; and memory stays bounded whatever the number of
 * keys and prompts. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/abuse.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define T0  1767225600000LL /* 2026-01-01T00:00:00Z */

static struct llm_abuse *make(const struct llm_abuse_config *c)
{
	struct llm_abuse_config def;
	if (!c) {
		llm_abuse_config_init(&def);
		c = &def;
	}
	struct llm_abuse *a = NULL;
	struct llm_diag d;
	if (llm_abuse_new(&a, c, &d) != LLM_OK)
		fail_msg("llm_abuse_new: %s", d.msg);
	return a;
}

/* Counts of findings by kind over a run of requests. */
struct tally {
	unsigned n[LLM_ABUSE__COUNT];
	struct llm_abuse_finding last[LLM_ABUSE__COUNT];
	int64_t last_ts[LLM_ABUSE__COUNT];
};

static void send(struct llm_abuse *a, int64_t ts, const char *key, const char *text, int64_t chars,
		 struct tally *t)
{
	struct llm_abuse_request r = {
	    ts, key, key ? strlen(key) : 0, text, text ? strlen(text) : 0, chars};
	struct llm_abuse_findings out;
	struct llm_diag d;
	if (llm_abuse_add(a, &r, &out, &d) != LLM_OK)
		fail_msg("llm_abuse_add: %s", d.msg);
	for (size_t i = 0; i < out.n; i++) {
		const struct llm_abuse_finding *f = &out.f[i];
		assert_true(f->score >= 0.5 && f->score <= 1);
		assert_true((double)f->count >= f->threshold);
		t->n[f->kind]++;
		t->last[f->kind] = *f;
		t->last_ts[f->kind] = ts;
	}
}

/* A deterministic generator (xorshift), so the streams are the same on every run. */
static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void rate_spike_against_the_keys_baseline(void **state)
{
	(void)state;
	struct llm_abuse_config c;
	llm_abuse_config_init(&c);
	c.kinds = 1u << LLM_ABUSE_RATE_SPIKE;
	struct llm_abuse *a = make(&c);
	struct tally t = {0};
	int64_t ts = T0;
	/* Two hours of one request every 10 s from "steady" and from "burst": 6 a minute. */
	for (int i = 0; i < 720; i++, ts += 10 * SEC) {
		send(a, ts, "steady", NULL, -1, &t);
		send(a, ts + 1, "burst", NULL, -1, &t);
	}
	assert_int_equal(t.n[LLM_ABUSE_RATE_SPIKE], 0);
	/* "burst" sends 60 in 30 s: ten times its baseline. */
	for (int i = 0; i < 60; i++)
		send(a, ts + i * 500, "burst", NULL, -1, &t);
	assert_int_equal(t.n[LLM_ABUSE_RATE_SPIKE], 1);
	const struct llm_abuse_finding *f = &t.last[LLM_ABUSE_RATE_SPIKE];
	assert_string_equal(f->detector, "rate_relative");
	assert_true(f->baseline > 5 && f->baseline < 7.5);
	assert_true(f->threshold >= 30 && f->threshold <= 5 * 7.5);
	assert_true((double)f->count >= f->threshold && (double)f->count < f->threshold + 1);
	/* Back to normal for ten minutes, then a second burst is a second episode. */
	ts += 30 * SEC;
	for (int i = 0; i < 60; i++, ts += 10 * SEC)
		send(a, ts, "burst", NULL, -1, &t);
	assert_int_equal(t.n[LLM_ABUSE_RATE_SPIKE], 1);
	for (int i = 0; i < 60; i++)
		send(a, ts + i * 500, "burst", NULL, -1, &t);
	assert_int_equal(t.n[LLM_ABUSE_RATE_SPIKE], 2);
	llm_abuse_free(a);
}

static void absolute_rate_flags_a_new_key(void **state)
{
	(void)state;
	struct llm_abuse_config c;
	llm_abuse_config_init(&c);
	c.kinds = 1u << LLM_ABUSE_RATE_SPIKE;
	struct llm_abuse *a = make(&c);
	struct tally t = {0};
	/* 900 requests in 60 s (15/s) from a key never seen: no baseline, but above 10/s. */
	for (int i = 0; i < 900; i++)
		send(a, T0 + i * 66, "new", NULL, -1, &t);
	assert_int_equal(t.n[LLM_ABUSE_RATE_SPIKE], 1);
	assert_string_equal(t.last[LLM_ABUSE_RATE_SPIKE].detector, "rate_absolute");
	assert_true(t.last[LLM_ABUSE_RATE_SPIKE].baseline < 0);
	assert_int_equal(t.last[LLM_ABUSE_RATE_SPIKE].count, 600);
	/* A young key below the absolute rate is not flagged: it has no baseline yet. */
	struct tally u = {0};
	for (int i = 0; i < 300; i++)
		send(a, T0 + 2 * MIN + i * 200, "young", NULL, -1, &u);
	assert_int_equal(u.n[LLM_ABUSE_RATE_SPIKE], 0);
	llm_abuse_free(a);

	/* With --max-rate 0 there is no absolute limit. */
	c.max_rate = 0;
	a = make(&c);
	struct tally v = {0};
	for (int i = 0; i < 900; i++)
		send(a, T0 + i * 66, "new", NULL, -1, &v);
	assert_int_equal(v.n[LLM_ABUSE_RATE_SPIKE], 0);
	llm_abuse_free(a);
}

/* A prompt of the phishing campaign: the same sentences, a name and an order number changed. */
static void campaign(char *buf, size_t n, int i)
{
	static const char *names[] = {"Alice", "Bob", "Carmen", "Dmitri", "Erin", "Farid"};
	snprintf(buf, n,
		 "Hello support, this is %s. Please send the gift card code for order %d to my new "
		 "address right away, my manager approved it and it is very urgent today.",
		 names[i % 6], 10000 + i * 37);
}

/* Distinct prompts: built from independent word choices, so no two are near-identical. */
static void distinct(char *buf, size_t n)
{
	static const char *w[] = {
	    "refund",  "invoice",  "password",	"shipping", "python",  "docker",  "recipe",
	    "weather", "holiday",  "contract",	"printer",  "router",  "budget",  "novel",
	    "garden",  "football", "guitar",	"lecture",  "kitchen", "airport", "museum",
	    "battery", "laptop",   "account",	"coupon",   "tax",     "visa",	  "hotel",
	    "train",   "salary",   "insurance", "kernel",   "query",   "cache",	  "thread",
	};
	size_t nw = sizeof w / sizeof *w, k = 0;
	k += (size_t)snprintf(buf, n, "question about");
	for (int i = 0; i < 9; i++)
		k += (size_t)snprintf(buf + k, n - k, " %s", w[next_rand() % nw]);
}

static void near_duplicate_flood_across_keys(void **state)
{
	(void)state;
	struct llm_abuse_config c;
	llm_abuse_config_init(&c);
	c.kinds = 1u << LLM_ABUSE_NEAR_DUPLICATES;
	struct llm_abuse *a = make(&c);
	struct tally t = {0};
	char buf[512];
	int64_t ts = T0;
	/* Background: 2000 distinct prompts over an hour. */
	for (int i = 0; i < 2000; i++, ts += 1800) {
		distinct(buf, sizeof buf);
		send(a, ts, "bg", buf, -1, &t);
	}
	assert_int_equal(t.n[LLM_ABUSE_NEAR_DUPLICATES], 0);
	/* The campaign: 45 prompts in 5 minutes from five keys, mixed with background. */
	static const char *ks[] = {"k1", "k2", "k3", "k4", "k5"};
	for (int i = 0; i < 45; i++) {
		campaign(buf, sizeof buf, i);
		send(a, ts, ks[i % 5], buf, -1, &t);
		if (i == 18)
			assert_int_equal(t.n[LLM_ABUSE_NEAR_DUPLICATES], 0);
		if (i == 19) {
			assert_int_equal(t.n[LLM_ABUSE_NEAR_DUPLICATES], 1);
			assert_int_equal(t.last[LLM_ABUSE_NEAR_DUPLICATES].count, 20);
			assert_int_equal(t.last[LLM_ABUSE_NEAR_DUPLICATES].keys, 5);
			assert_string_equal(t.last[LLM_ABUSE_NEAR_DUPLICATES].detector,
					    "minhash_cluster");
		}
		distinct(buf, sizeof buf);
		send(a, ts + 1, "bg", buf, -1, &t);
		ts += 6 * SEC;
	}
	/* flagged at 20 and again at 40 */
	assert_int_equal(t.n[LLM_ABUSE_NEAR_DUPLICATES], 2);
	assert_int_equal(t.last[LLM_ABUSE_NEAR_DUPLICATES].count, 40);
	assert_true(t.last[LLM_ABUSE_NEAR_DUPLICATES].score == 1);
	size_t keys, prompts, clusters;
	llm_abuse_counts(a, &keys, &prompts, &clusters);
	assert_true(prompts <= c.dup_max_prompts);
	llm_abuse_free(a);
}

static void duplicates_spread_beyond_the_window_are_not_a_flood(void **state)
{
	(void)state;
	struct llm_abuse_config c;
	llm_abuse_config_init(&c);
	c.kinds = 1u << LLM_ABUSE_NEAR_DUPLICATES;
	struct llm_abuse *a = make(&c);
	struct tally t = {0};
	char buf[512];
	/* 60 of the campaign's prompts, one every 40 s: 15 in any 10 minutes. */
	for (int i = 0; i < 60; i++) {
		campaign(buf, sizeof buf, i);
		send(a, T0 + i * 40 * SEC, "k1", buf, -1, &t);
	}
	assert_int_equal(t.n[LLM_ABUSE_NEAR_DUPLICATES], 0);
	/* Short prompts are not compared: "hi" forty times is not a campaign. */
	for (int i = 0; i < 40; i++)
		send(a, T0 + 3600 * SEC + i, "k2", "hi there", -1, &t);
	assert_int_equal(t.n[LLM_ABUSE_NEAR_DUPLICATES], 0);
	llm_abuse_free(a);
}

static void long_prompt_flood_from_one_key(void **state)
{
	(void)state;
	struct llm_abuse_config c;
	llm_abuse_config_init(&c);
	c.kinds = 1u << LLM_ABUSE_LONG_PROMPTS;
	struct llm_abuse *a = make(&c);
	struct tally t = {0};
	int64_t ts = T0;
	char key[16];
	/* 3000 ordinary prompts of 20 to 1500 code points from 50 keys. */
	for (int i = 0; i < 3000; i++, ts += 1000) {
		snprintf(key, sizeof key, "u%d", (int)(next_rand() % 50));
		send(a, ts, key, NULL, 20 + (int64_t)(next_rand() % 1480), &t);
	}
	assert_int_equal(t.n[LLM_ABUSE_LONG_PROMPTS], 0);
	/* "flood" sends 12 prompts of 8000 code points in two minutes. */
	for (int i = 0; i < 12; i++, ts += 10 * SEC) {
		send(a, ts, "flood", NULL, 8000, &t);
		send(a, ts + 1, "u1", NULL, 300, &t);
		assert_int_equal(t.n[LLM_ABUSE_LONG_PROMPTS], i >= 9);
	}
	const struct llm_abuse_finding *f = &t.last[LLM_ABUSE_LONG_PROMPTS];
	assert_int_equal(f->count, 10);
	assert_true(f->limit_chars >= 2000 && f->limit_chars < 8000);
	assert_string_equal(f->detector, "long_prompt_flood");
	/* "slow" sends as many, one every 20 minutes: never 10 in 5 minutes. */
	for (int i = 0; i < 12; i++, ts += 20 * MIN)
		send(a, ts, "slow", NULL, 8000, &t);
	assert_int_equal(t.n[LLM_ABUSE_LONG_PROMPTS], 1);
	llm_abuse_free(a);

	/* The limit follows the traffic: where every prompt is about 5000 code points, 5000 is
	 * not long (the 99th percentile is above it) once the first thousand lengths are known;
	 * before that --long-min-chars alone judges. */
	a = make(&c);
	struct tally u = {0}, v = {0};
	for (int i = 0; i < 3000; i++)
		send(a, T0 + i * 1000, i % 2 ? "a" : "b", NULL,
		     4500 + (int64_t)(next_rand() % 1000), i < 1000 ? &u : &v);
	assert_int_equal(u.n[LLM_ABUSE_LONG_PROMPTS], 2);
	/* a new key sending a dozen such prompts in a minute is sending ordinary prompts */
	for (int i = 0; i < 12; i++)
		send(a, T0 + 3000 * 1000 + i * 5000, "c", NULL, 5000, &v);
	assert_int_equal(v.n[LLM_ABUSE_LONG_PROMPTS], 0);
	llm_abuse_free(a);
}

static void benign_stream_sets_nothing_off(void **state)
{
	(void)state;
	struct llm_abuse *a = make(NULL);
	struct tally t = {0};
	char buf[512], key[16];
	int64_t ts = T0;
	/* Six hours of 200 keys, each request a distinct question; the busiest keys send a few
	 * a minute, with the natural jitter of a human client. */
	for (int i = 0; i < 20000; i++) {
		ts += 200 + (int64_t)(next_rand() % 1800);
		unsigned u = (unsigned)(next_rand() % 1000);
		snprintf(key, sizeof key, "team-%u", u < 500 ? u % 10 : u % 200);
		distinct(buf, sizeof buf);
		send(a, ts, key, buf, 40 + (int64_t)(next_rand() % 1200), &t);
	}
	for (int k = 0; k < LLM_ABUSE__COUNT; k++)
		if (t.n[k])
			fail_msg("%u findings of %s in a benign stream", t.n[k],
				 llm_abuse_kind_name((enum llm_abuse_kind)k));
	llm_abuse_free(a);
}

static void memory_is_bounded(void **state)
{
	(void)state;
	struct llm_abuse_config c;
	llm_abuse_config_init(&c);
	c.max_keys = 1000;
	c.dup_max_prompts = 500;
	c.long_history = 300;
	struct llm_abuse *a = make(&c);
	struct tally t = {0};
	char buf[512], key[32];
	/* Fill the tables once, then measure, then ten times as many keys and prompts. */
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof key, "key-%d", i);
		distinct(buf, sizeof buf);
		send(a, T0 + i, key, buf, 100, &t);
	}
	size_t full = llm_abuse_memory(a);
	for (int i = 2000; i < 22000; i++) {
		snprintf(key, sizeof key, "key-%d", i);
		distinct(buf, sizeof buf);
		send(a, T0 + i, key, buf, 100 + i % 50, &t);
	}
	assert_int_equal(llm_abuse_memory(a), full);
	size_t keys, prompts, clusters;
	llm_abuse_counts(a, &keys, &prompts, &clusters);
	assert_int_equal(keys, 1000);
	assert_int_equal(prompts, 500);
	assert_true(clusters <= prompts);
	/* A forgotten key comes back as a new one, and the most recent keys are kept: key-21999
	 * bursting is still one key. */
	for (int i = 0; i < 700; i++)
		send(a, T0 + 30000 + i * 50, "key-21999", NULL, -1, &t);
	assert_int_equal(t.n[LLM_ABUSE_RATE_SPIKE], 1);
	llm_abuse_free(a);
}

static void requests_without_time_count_at_the_latest(void **state)
{
	(void)state;
	struct llm_abuse_config c;
	llm_abuse_config_init(&c);
	c.kinds = 1u << LLM_ABUSE_RATE_SPIKE;
	struct llm_abuse *a = make(&c);
	struct tally t = {0};
	/* One timed request, then 599 with no time (or an older one): all in the same instant,
	 * 600 in the window: over 10/s. */
	send(a, T0, "k", NULL, -1, &t);
	for (int i = 0; i < 599; i++)
		send(a, i % 2 ? INT64_MIN : T0 - 3600 * SEC, "k", NULL, -1, &t);
	assert_int_equal(t.n[LLM_ABUSE_RATE_SPIKE], 1);
	/* Requests without a key share one. */
	struct tally u = {0};
	for (int i = 0; i < 600; i++)
		send(a, T0 + 10 * MIN + i, NULL, NULL, -1, &u);
	assert_int_equal(u.n[LLM_ABUSE_RATE_SPIKE], 1);
	llm_abuse_free(a);
}

static void bad_configurations_are_refused(void **state)
{
	(void)state;
	struct llm_abuse_config c;
	struct llm_abuse *a = NULL;
	struct llm_diag d;
	llm_abuse_config_init(&c);
	c.rate_window_ms = 5;
	assert_int_equal(llm_abuse_new(&a, &c, &d), LLM_ERR_USAGE);
	assert_null(a);
	llm_abuse_config_init(&c);
	c.dup_threshold = 0;
	assert_int_equal(llm_abuse_new(&a, &c, &d), LLM_ERR_USAGE);
	llm_abuse_config_init(&c);
	c.dup_count = 1;
	assert_int_equal(llm_abuse_new(&a, &c, &d), LLM_ERR_USAGE);
	llm_abuse_config_init(&c);
	c.long_percentile = 101;
	assert_int_equal(llm_abuse_new(&a, &c, &d), LLM_ERR_USAGE);
	llm_abuse_config_init(&c);
	c.kinds = 1u << LLM_ABUSE__COUNT;
	assert_int_equal(llm_abuse_new(&a, &c, &d), LLM_ERR_USAGE);
}

static void kind_names_round_trip(void **state)
{
	(void)state;
	for (int k = 0; k < LLM_ABUSE__COUNT; k++) {
		const char *n = llm_abuse_kind_name((enum llm_abuse_kind)k);
		enum llm_abuse_kind back;
		assert_true(llm_abuse_kind_parse(n, strlen(n), &back));
		assert_int_equal(back, k);
	}
	assert_string_equal(llm_abuse_kind_name(LLM_ABUSE_NEAR_DUPLICATES), "near_duplicates");
	enum llm_abuse_kind k;
	assert_false(llm_abuse_kind_parse("rate", 4, &k));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rate_spike_against_the_keys_baseline),
	    cmocka_unit_test(absolute_rate_flags_a_new_key),
	    cmocka_unit_test(near_duplicate_flood_across_keys),
	    cmocka_unit_test(duplicates_spread_beyond_the_window_are_not_a_flood),
	    cmocka_unit_test(long_prompt_flood_from_one_key),
	    cmocka_unit_test(benign_stream_sets_nothing_off),
	    cmocka_unit_test(memory_is_bounded),
	    cmocka_unit_test(requests_without_time_count_at_the_latest),
	    cmocka_unit_test(bad_configurations_are_refused),
	    cmocka_unit_test(kind_names_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
