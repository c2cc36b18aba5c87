/* PII and secret detectors: e-mail addresses, phone numbers, IPv4 and IPv6 addresses, payment
 * card numbers (Luhn), IBANs (ISO 13616 mod-97 and per-country length), well-known API-key and
 * secret shapes (AWS, GitHub, OpenAI, Slack, Stripe, Google, PEM private keys, JWTs) and
 * generic high-entropy tokens.
 *
 * llm-prep redact, llm-serve and llm-monitor share these detectors, so this module does no I/O
 * and keeps no state between calls: llm_guard_scan() takes UTF-8 text and returns typed,
 * non-overlapping byte spans in text order.  Where two detectors claim overlapping text the
 * more specific one wins (a PEM block over the tokens inside it, a card number over a phone
 * number), so a span is redacted once, under its best name.
 *
 * The detectors lean towards keeping data: a digit run that fails Luhn is not a card, a
 * dotted quad after "v" or "version" is a version number, dates and times are never phone
 * numbers or IPv6 addresses. */
#ifndef LLM_GUARD_PII_H
#define LLM_GUARD_PII_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

/* The numbers are stable; a set of types is a bit mask of (1u << type). */
enum llm_pii_type {
	LLM_PII_EMAIL = 0,
	LLM_PII_PHONE = 1,
	LLM_PII_IP_ADDRESS = 2,
	LLM_PII_CREDIT_CARD = 3,
	LLM_PII_IBAN = 4,
	LLM_PII_SECRET = 5,	  /* a known key or token shape (detector says which) */
	LLM_PII_HIGH_ENTROPY = 6, /* a long token whose characters look random */
	LLM_PII__COUNT
};

#define LLM_PII_ALL ((1u << LLM_PII__COUNT) - 1)

/* One finding: text[start, end) in bytes. */
struct llm_pii_match {
	enum llm_pii_type type;
	const char *detector; /* finer name: "ipv6", "aws_access_key_id", "jwt", ... (static) */
	size_t start, end;
	double score; /* confidence in [0, 1]; 1 for a shape confirmed by a checksum or prefix */
};

struct llm_pii_matches {
	struct llm_pii_match *m;
	size_t n, cap;
};

/* The entropy test: a token of at least min_len characters from the base64 alphabet (with
 * the URL-safe '-' and '_') whose Shannon entropy, in bits per character over the token's own
 * character frequencies, reaches base64_bits, or a token of hexadecimal digits only (at least
 * 32 of them) whose entropy reaches hex_bits.  A base64 token must also mix upper case, lower
 * case and digits, which prose words and paths rarely do. */
struct llm_guard_config {
	unsigned types; /* bit mask of enum llm_pii_type; 0 means all */
	size_t entropy_min_len;
	double entropy_base64_bits;
	double entropy_hex_bits;
};

/* The defaults: every type; 20 characters, 4.5 and 3.0 bits (detect-secrets' limits). */
void llm_guard_config_init(struct llm_guard_config *cfg);

/* Scan text[0, len) (UTF-8; invalid bytes are treated as separators) and replace the contents
 * of out with the findings, sorted by start, none overlapping. */
enum llm_err llm_guard_scan(const char *text, size_t len, const struct llm_guard_config *cfg,
			    struct llm_pii_matches *out, struct llm_diag *diag);
void llm_pii_matches_free(struct llm_pii_matches *ms);

/* The type's name as users write it ("email", "ip_address", ...), and back; the placeholder
 * that replaces it ("<EMAIL>", "<IP_ADDRESS>", ...). */
const char *llm_pii_type_name(enum llm_pii_type t);
bool llm_pii_type_parse(const char *name, size_t len, enum llm_pii_type *out);
const char *llm_pii_placeholder(enum llm_pii_type t);

/* The checks behind the detectors, for callers that hold a candidate already.  digits are
 * ASCII digits only; iban is the electronic form (no spaces). */
bool llm_luhn_valid(const char *digits, size_t n);
bool llm_iban_valid(const char *iban, size_t n);
/* Shannon entropy in bits per character (byte) of s[0, n); 0 for an empty string. */
double llm_shannon_entropy(const char *s, size_t n);

#endif
