/* Unit tests for lib/guard: each detector against examples it must find and look-alikes it
 * must leave alone, the checksums against published examples, and spans in code points. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guard/pii.h"
#include "text/unicode.h"

/* Scan text with the given types; the matches go to ms. */
static void scan_types(const char *text, unsigned types, struct llm_pii_matches *ms)
{
	struct llm_guard_config cfg;
	llm_guard_config_init(&cfg);
	cfg.types = types;
	struct llm_diag d;
	assert_int_equal(llm_guard_scan(text, strlen(text), &cfg, ms, &d), LLM_OK);
}

/* text must contain exactly one finding, of type, covering exactly want. */
static void expect_one(const char *text, enum llm_pii_type type, const char *want)
{
	struct llm_pii_matches ms = {0};
	scan_types(text, LLM_PII_ALL, &ms);
	if (ms.n != 1)
		fail_msg("'%s': %zu findings, expected one %s '%s'", text, ms.n,
			 llm_pii_type_name(type), want);
	size_t len = ms.m[0].end - ms.m[0].start;
	if (ms.m[0].type != type || len != strlen(want) || memcmp(text + ms.m[0].start, want, len))
		fail_msg("'%s': found %s '%.*s', expected %s '%s'", text,
			 llm_pii_type_name(ms.m[0].type), (int)len, text + ms.m[0].start,
			 llm_pii_type_name(type), want);
	llm_pii_matches_free(&ms);
}

/* text must contain nothing at all. */
static void expect_none(const char *text)
{
	struct llm_pii_matches ms = {0};
	scan_types(text, LLM_PII_ALL, &ms);
	if (ms.n)
		fail_msg("'%s': unexpected %s '%.*s'", text, llm_pii_type_name(ms.m[0].type),
			 (int)(ms.m[0].end - ms.m[0].start), text + ms.m[0].start);
	llm_pii_matches_free(&ms);
}

static void luhn_accepts_the_published_test_numbers_only(void **state)
{
	(void)state;
	const char *good[] = {"79927398713",	  "4111111111111111", "378282246310005",
			      "5555555555554444", "6011111111111117", "4012888888881881"};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_true(llm_luhn_valid(good[i], strlen(good[i])));
	const char *bad[] = {"79927398710", "4111111111111112", "1234567812345678", "41111x1111",
			     "7"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_false(llm_luhn_valid(bad[i], strlen(bad[i])));
}

static void iban_registry_examples_pass_and_altered_ones_fail(void **state)
{
	(void)state;
	/* The examples of the SWIFT IBAN registry (ISO 13616). */
	const char *good[] = {
	    "GB82WEST12345698765432",
	    "DE89370400440532013000",
	    "FR1420041010050500013M02606",
	    "NL91ABNA0417164300",
	    "BE68539007547034",
	    "CH9300762011623852957",
	    "NO9386011117947",
	    "IT60X0542811101000000123456",
	    "ES9121000418450200051332",
	    "AT611904300234573201",
	    "PL61109010140000071219812874",
	    "MT84MALT011000012345MTLCAST001S",
	    "LC55HEMM000100010012001200023015",
	    "BR1800360305000010009795493C1",
	};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		if (!llm_iban_valid(good[i], strlen(good[i])))
			fail_msg("rejected %s", good[i]);
	const char *bad[] = {
	    "GB82WEST12345698765431",  /* last digit changed */
	    "GB28WEST12345698765432",  /* check digits swapped */
	    "DE8937040044053201300",   /* one short for Germany */
	    "DE893704004405320130000", /* one long */
	    "XX82WEST12345698765432",  /* no such country */
	    "gb82west12345698765432",  /* lower case */
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (llm_iban_valid(bad[i], strlen(bad[i])))
			fail_msg("accepted %s", bad[i]);
}

static void shannon_entropy_matches_hand_computed_values(void **state)
{
	(void)state;
	assert_float_equal(llm_shannon_entropy("", 0), 0.0, 1e-12);
	assert_float_equal(llm_shannon_entropy("aaaa", 4), 0.0, 1e-12);
	assert_float_equal(llm_shannon_entropy("abab", 4), 1.0, 1e-12);
	assert_float_equal(llm_shannon_entropy("abcd", 4), 2.0, 1e-12);
	assert_float_equal(llm_shannon_entropy("0123456789abcdef", 16), 4.0, 1e-12);
	/* 3 a, 1 b: -(3/4 log2 3/4 + 1/4 log2 1/4) */
	assert_float_equal(llm_shannon_entropy("aaab", 4), 0.8112781244591328, 1e-12);
}

static void emails_with_plus_and_subdomains_are_found_whole(void **state)
{
	(void)state;
	expect_one("write to john.smith+news@mail.sub.example.org today", LLM_PII_EMAIL,
		   "john.smith+news@mail.sub.example.org");
	expect_one("(mail: a_b-c%d@ex-ample.co.uk).", LLM_PII_EMAIL, "a_b-c%d@ex-ample.co.uk");
	expect_one("end of sentence x@y.io.", LLM_PII_EMAIL, "x@y.io");
	expect_one("jöhn@example.de", LLM_PII_EMAIL, "jöhn@example.de");
}

static void things_with_at_signs_that_are_not_emails_stay(void **state)
{
	(void)state;
	expect_none("user@localhost");
	expect_none("follow @handle on the site");
	expect_none("a@b.c");
	expect_none("x@-bad.com");
	expect_none("me@example.123");
	expect_none("@@@");
}

static void phone_numbers_in_common_formats_are_found(void **state)
{
	(void)state;
	expect_one("call +1 415 555 2671 now", LLM_PII_PHONE, "+1 415 555 2671");
	expect_one("call (415) 555-2671 now", LLM_PII_PHONE, "(415) 555-2671");
	expect_one("call 415.555.2671", LLM_PII_PHONE, "415.555.2671");
	expect_one("call 1-415-555-2671", LLM_PII_PHONE, "1-415-555-2671");
	expect_one("tel:+14155552671", LLM_PII_PHONE, "+14155552671");
	expect_one("London +44 20 7946 0958.", LLM_PII_PHONE, "+44 20 7946 0958");
	expect_one("London 020 7946 0958", LLM_PII_PHONE, "020 7946 0958");
	expect_one("Paris 01 23 45 67 89", LLM_PII_PHONE, "01 23 45 67 89");
}

static void dates_times_ids_and_versions_are_not_phone_numbers(void **state)
{
	(void)state;
	expect_none("on 2024-03-15 at noon");
	expect_none("on 15.03.2024 at noon");
	expect_none("on 01.02.2023 12:30");
	expect_none("at 10:30:00");
	expect_none("order 4155552671 shipped");
	expect_none("call 12345");
	expect_none("release 2.10.3");
	expect_none("ISBN 978-3-16-148410-0");
	expect_none("pi is 3.14159265358979");
}

static void ipv4_addresses_need_valid_octets_and_context(void **state)
{
	(void)state;
	expect_one("host 192.168.0.1 is up", LLM_PII_IP_ADDRESS, "192.168.0.1");
	expect_one("from=10.0.0.255.", LLM_PII_IP_ADDRESS, "10.0.0.255");
	expect_one("1.2.3.4", LLM_PII_IP_ADDRESS, "1.2.3.4");
	expect_none("version 1.2.3.4");
	expect_none("Version: 1.2.3.4");
	expect_none("v1.2.3.4");
	expect_none("256.1.1.1");
	expect_none("1.2.3.4.5");
	expect_none("01.02.03.04");
	expect_none("1.2.3");
	expect_none("lib-1.2.3.4");
}

static void ipv6_compressed_full_and_mapped_forms_are_found(void **state)
{
	(void)state;
	expect_one("at 2001:db8::ff00:42:8329 now", LLM_PII_IP_ADDRESS, "2001:db8::ff00:42:8329");
	expect_one("at 2001:0db8:0000:0000:0000:ff00:0042:8329", LLM_PII_IP_ADDRESS,
		   "2001:0db8:0000:0000:0000:ff00:0042:8329");
	expect_one("link fe80::1.", LLM_PII_IP_ADDRESS, "fe80::1");
	expect_one("mapped ::ffff:192.0.2.128 here", LLM_PII_IP_ADDRESS, "::ffff:192.0.2.128");
	expect_one("[2001:db8::1]:8080", LLM_PII_IP_ADDRESS, "2001:db8::1");
	expect_none("std::vector<int> v;");
	expect_none("Foo::Bar::baz()");
	expect_none("at 10:30:00");
	expect_none("mac 00:1A:2B:3C:4D:5E");
	expect_none("loopback ::1 and ::");
	expect_none("2001:db8::zz");
}

static void card_numbers_need_luhn_and_an_issuer_prefix(void **state)
{
	(void)state;
	expect_one("card 4111 1111 1111 1111 exp", LLM_PII_CREDIT_CARD, "4111 1111 1111 1111");
	expect_one("card 4111-1111-1111-1111", LLM_PII_CREDIT_CARD, "4111-1111-1111-1111");
	expect_one("card 4111111111111111", LLM_PII_CREDIT_CARD, "4111111111111111");
	expect_one("amex 3782 822463 10005", LLM_PII_CREDIT_CARD, "3782 822463 10005");
	expect_one("mc 5555555555554444 12/29", LLM_PII_CREDIT_CARD, "5555555555554444");
	expect_none("card 4111 1111 1111 1112");
	expect_none("id 1234567812345678");
	expect_none("zeros 0000000000000000");
	expect_none("long 41111111111111110000000");
}

static void ibans_are_found_in_electronic_and_print_forms(void **state)
{
	(void)state;
	expect_one("pay to GB82 WEST 1234 5698 7654 32 please", LLM_PII_IBAN,
		   "GB82 WEST 1234 5698 7654 32");
	expect_one("IBAN: DE89370400440532013000.", LLM_PII_IBAN, "DE89370400440532013000");
	expect_none("pay to GB82WEST12345698765431");
	expect_none("pay to DE8937040044053201300");
}

static void api_keys_and_tokens_are_found_by_shape(void **state)
{
	(void)state;
	expect_one("key AKIAIOSFODNN7EXAMPLE end", LLM_PII_SECRET, "AKIAIOSFODNN7EXAMPLE");
	expect_one("t=ghp_aBcdEfGhIjKlMnOpQrStUvWxYz0123456789", LLM_PII_SECRET,
		   "ghp_aBcdEfGhIjKlMnOpQrStUvWxYz0123456789");
	expect_one("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", LLM_PII_SECRET,
		   "github_pat_11ABCDEFG0123456789_abcdefghijklmnop");
	expect_one("OPENAI_API_KEY=sk-proj-abc123DEF456ghi789JKL", LLM_PII_SECRET,
		   "sk-proj-abc123DEF456ghi789JKL");
	expect_one("xoxb-123456789012-abcdefghij", LLM_PII_SECRET, "xoxb-123456789012-abcdefghij");
	expect_one("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", LLM_PII_SECRET,
		   "sk_live_4eC39HqLyjWDarjtT1zdp7dc");
	expect_one("AIzaSyA1234567890abcdefghijklmnopqrstuv", LLM_PII_SECRET,
		   "AIzaSyA1234567890abcdefghijklmnopqrstuv");
	/* The example token of jwt.io. */
	expect_one(
	    "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6"
	    "IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
	    LLM_PII_SECRET,
	    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4g"
	    "RG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
	expect_one("x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
		   "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n"
		   "-----END RSA PRIVATE KEY-----\ny",
		   LLM_PII_SECRET,
		   "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
		   "4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n"
		   "-----END RSA PRIVATE KEY-----");
	expect_none("AKIA1234 is too short");
	expect_none("the task-force met");
	expect_none("pip install sk-learn");
	expect_none("ghp_short");
	expect_none("-----BEGIN PUBLIC KEY-----");
}

static void the_entropy_test_finds_random_tokens_and_spares_words(void **state)
{
	(void)state;
	/* AWS's documented example secret key: 40 characters, 4.66 bits. */
	expect_one("secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", LLM_PII_HIGH_ENTROPY,
		   "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
	/* MD5 of the empty string: 32 hex digits, 3.39 bits. */
	expect_one("md5 d41d8cd98f00b204e9800998ecf8427e", LLM_PII_HIGH_ENTROPY,
		   "d41d8cd98f00b204e9800998ecf8427e");
	expect_one("aB3dE5gH7jK9mN1pQ2sT4vW6yZ8", LLM_PII_HIGH_ENTROPY,
		   "aB3dE5gH7jK9mN1pQ2sT4vW6yZ8");
	/* 21 distinct characters: at most log2(21) = 4.39 bits, under 4.5. */
	expect_none("Zx9Qm2Lp7Rt4Vb8Nc3Kd6");
	expect_none("internationalization_and_localization");
	expect_none("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1A");
	expect_none("31415926535897932384626433832795028841");
	expect_none("d41d8cd98f00b204e9800998ecf8427");	 /* 31 hex digits */
	expect_none("D41d8cd98f00b204e9800998ecf8427e"); /* mixed case: not a hash */
}

static void the_entropy_thresholds_are_configurable(void **state)
{
	(void)state;
	struct llm_guard_config cfg;
	llm_guard_config_init(&cfg);
	cfg.types = 1u << LLM_PII_HIGH_ENTROPY;
	cfg.entropy_base64_bits = 4.3;
	struct llm_pii_matches ms = {0};
	const char *t = "Zx9Qm2Lp7Rt4Vb8Nc3Kd6";
	assert_int_equal(llm_guard_scan(t, strlen(t), &cfg, &ms, NULL), LLM_OK);
	assert_int_equal(ms.n, 1);
	cfg.entropy_min_len = 22;
	assert_int_equal(llm_guard_scan(t, strlen(t), &cfg, &ms, NULL), LLM_OK);
	assert_int_equal(ms.n, 0);
	llm_pii_matches_free(&ms);
}

static void spans_convert_to_code_points_after_non_ascii_text(void **state)
{
	(void)state;
	/* "Grüße — 日本 " is 11 code points in 19 bytes. */
	const char *t = "Grüße — 日本 a@b.co and 10.1.2.3";
	struct llm_pii_matches ms = {0};
	scan_types(t, LLM_PII_ALL, &ms);
	assert_int_equal(ms.n, 2);
	assert_int_equal(ms.m[0].start, 19);
	assert_int_equal(llm_unicode_count(t, ms.m[0].start), 11);
	assert_int_equal(llm_unicode_count(t, ms.m[0].end), 17);
	assert_int_equal(llm_unicode_count(t, ms.m[1].start), 22);
	assert_int_equal(llm_unicode_count(t, ms.m[1].end), 30);
	llm_pii_matches_free(&ms);
}

static void overlapping_findings_go_to_the_most_specific_detector(void **state)
{
	(void)state;
	struct llm_pii_matches ms = {0};
	/* A card number is not also a phone number; a key inside a PEM block is one finding. */
	scan_types("4111 1111 1111 1111", LLM_PII_ALL, &ms);
	assert_int_equal(ms.n, 1);
	assert_int_equal(ms.m[0].type, LLM_PII_CREDIT_CARD);
	scan_types("ghp_aBcdEfGhIjKlMnOpQrStUvWxYz0123456789", LLM_PII_ALL, &ms);
	assert_int_equal(ms.n, 1);
	assert_string_equal(ms.m[0].detector, "github_token");
	/* Only the types asked for are reported. */
	scan_types("a@b.co 10.0.0.1", 1u << LLM_PII_IP_ADDRESS, &ms);
	assert_int_equal(ms.n, 1);
	assert_int_equal(ms.m[0].type, LLM_PII_IP_ADDRESS);
	/* Findings come sorted by position. */
	scan_types("10.0.0.1 a@b.co +1 415 555 2671", LLM_PII_ALL, &ms);
	assert_int_equal(ms.n, 3);
	assert_true(ms.m[0].start < ms.m[1].start && ms.m[1].start < ms.m[2].start);
	llm_pii_matches_free(&ms);
}

static void type_names_and_placeholders_round_trip(void **state)
{
	(void)state;
	for (int t = 0; t < LLM_PII__COUNT; t++) {
		enum llm_pii_type back;
		const char *name = llm_pii_type_name((enum llm_pii_type)t);
		assert_true(llm_pii_type_parse(name, strlen(name), &back));
		assert_int_equal(back, t);
		assert_true(llm_pii_placeholder((enum llm_pii_type)t)[0] == '<');
	}
	enum llm_pii_type x;
	assert_false(llm_pii_type_parse("ip", 2, &x));
	assert_string_equal(llm_pii_placeholder(LLM_PII_IP_ADDRESS), "<IP_ADDRESS>");
	assert_string_equal(llm_pii_placeholder(LLM_PII_CREDIT_CARD), "<CREDIT_CARD>");
}

static void empty_and_binaryish_text_scans_cleanly(void **state)
{
	(void)state;
	expect_none("");
	expect_none("\xff\xfe@\x80.");
	expect_none("@");
	expect_none(":");
	expect_none("+");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(luhn_accepts_the_published_test_numbers_only),
	    cmocka_unit_test(iban_registry_examples_pass_and_altered_ones_fail),
	    cmocka_unit_test(shannon_entropy_matches_hand_computed_values),
	    cmocka_unit_test(emails_with_plus_and_subdomains_are_found_whole),
	    cmocka_unit_test(things_with_at_signs_that_are_not_emails_stay),
	    cmocka_unit_test(phone_numbers_in_common_formats_are_found),
	    cmocka_unit_test(dates_times_ids_and_versions_are_not_phone_numbers),
	    cmocka_unit_test(ipv4_addresses_need_valid_octets_and_context),
	    cmocka_unit_test(ipv6_compressed_full_and_mapped_forms_are_found),
	    cmocka_unit_test(card_numbers_need_luhn_and_an_issuer_prefix),
	    cmocka_unit_test(ibans_are_found_in_electronic_and_print_forms),
	    cmocka_unit_test(api_keys_and_tokens_are_found_by_shape),
	    cmocka_unit_test(the_entropy_test_finds_random_tokens_and_spares_words),
	    cmocka_unit_test(the_entropy_thresholds_are_configurable),
	    cmocka_unit_test(spans_convert_to_code_points_after_non_ascii_text),
	    cmocka_unit_test(overlapping_findings_go_to_the_most_specific_detector),
	    cmocka_unit_test(type_names_and_placeholders_round_trip),
	    cmocka_unit_test(empty_and_binaryish_text_scans_cleanly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
