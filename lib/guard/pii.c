/* PII and secret detectors (see pii.h).  Each detector is a small hand-written scanner over
 * the bytes: the shapes are simple, and a scanner lets each one check its own context (word
 * boundaries, checksums, "version" before a dotted quad) without a regex engine. */
#include "config.h"

#include "guard/pii.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const type_names[LLM_PII__COUNT] = {
    "email", "phone", "ip_address", "credit_card", "iban", "secret", "high_entropy",
};
static const char *const placeholders[LLM_PII__COUNT] = {
    "<EMAIL>", "<PHONE>", "<IP_ADDRESS>", "<CREDIT_CARD>", "<IBAN>", "<SECRET>", "<SECRET>",
};

const char *llm_pii_type_name(enum llm_pii_type t)
{
	return (unsigned)t < LLM_PII__COUNT ? type_names[t] : "unknown";
}

const char *llm_pii_placeholder(enum llm_pii_type t)
{
	return (unsigned)t < LLM_PII__COUNT ? placeholders[t] : "<REDACTED>";
}

bool llm_pii_type_parse(const char *name, size_t len, enum llm_pii_type *out)
{
	for (int i = 0; i < LLM_PII__COUNT; i++)
		if (strlen(type_names[i]) == len && !memcmp(type_names[i], name, len)) {
			*out = (enum llm_pii_type)i;
			return true;
		}
	return false;
}

void llm_guard_config_init(struct llm_guard_config *cfg)
{
	cfg->types = LLM_PII_ALL;
	cfg->entropy_min_len = 20;
	cfg->entropy_base64_bits = 4.5;
	cfg->entropy_hex_bits = 3.0;
}

void llm_pii_matches_free(struct llm_pii_matches *ms)
{
	free(ms->m);
	ms->m = NULL;
	ms->n = ms->cap = 0;
}

/* ---- character classes (ASCII only: every shape below is ASCII) ------------------------- */

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}
static bool is_upper(int c)
{
	return c >= 'A' && c <= 'Z';
}
static bool is_lower(int c)
{
	return c >= 'a' && c <= 'z';
}
static bool is_alpha(int c)
{
	return is_upper(c) || is_lower(c);
}
static bool is_alnum(int c)
{
	return is_alpha(c) || is_digit(c);
}
static bool is_hex(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static bool is_word(int c)
{
	return is_alnum(c) || c == '_';
}
static bool is_b64(int c)
{
	return is_alnum(c) || c == '+' || c == '/' || c == '=' || c == '-' || c == '_';
}

/* The byte at i, or 0 outside the text, so the scanners can look around without bounds tests. */
#define AT(i)	  ((i) < len ? (unsigned char)t[i] : 0)
#define BEFORE(i) ((i) > 0 ? (unsigned char)t[(i)-1] : 0)

/* ---- checks -------------------------------------------------------------------------- */

bool llm_luhn_valid(const char *d, size_t n)
{
	if (n < 2)
		return false;
	unsigned sum = 0;
	for (size_t k = 0; k < n; k++) {
		if (!is_digit(d[n - 1 - k]))
			return false;
		unsigned v = (unsigned)(d[n - 1 - k] - '0');
		if (k & 1) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return sum % 10 == 0;
}

/* IBAN lengths by country, from the SWIFT IBAN registry (ISO 13616). */
static const struct {
	char cc[3];
	unsigned char len;
} iban_lengths[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24},
    {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18},
    {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27},
    {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27},
    {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20},
    {"LV", 21}, {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20}, {"MR", 27},
    {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PK", 24}, {"PL", 28},
    {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"RU", 33}, {"SA", 24}, {"SC", 31},
    {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"SO", 23}, {"ST", 25}, {"SV", 28},
    {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20}, {"YE", 30},
};

static size_t iban_length(const char *cc)
{
	for (size_t i = 0; i < sizeof iban_lengths / sizeof *iban_lengths; i++)
		if (iban_lengths[i].cc[0] == cc[0] && iban_lengths[i].cc[1] == cc[1])
			return iban_lengths[i].len;
	return 0;
}

bool llm_iban_valid(const char *s, size_t n)
{
	if (n < 5 || !is_upper(s[0]) || !is_upper(s[1]) || !is_digit(s[2]) || !is_digit(s[3]))
		return false;
	if (iban_length(s) != n)
		return false;
	/* ISO 7064 mod 97-10: move the first four characters to the end, letters become 10..35,
	 * and the number must leave 1.  Reduce as we go so it fits in an integer. */
	unsigned rem = 0;
	for (size_t k = 0; k < n; k++) {
		int c = s[(k + 4) % n];
		if (is_digit(c))
			rem = (rem * 10 + (unsigned)(c - '0')) % 97;
		else if (is_upper(c))
			rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
		else
			return false;
	}
	return rem == 1;
}

double llm_shannon_entropy(const char *s, size_t n)
{
	if (!n)
		return 0;
	size_t count[256] = {0};
	for (size_t i = 0; i < n; i++)
		count[(unsigned char)s[i]]++;
	double h = 0;
	for (int c = 0; c < 256; c++)
		if (count[c]) {
			double p = (double)count[c] / (double)n;
			h -= p * log2(p);
		}
	return h;
}

/* ---- candidates and overlap resolution ----------------------------------------------- */

/* Lower ranks win overlaps: the more specific shape claims the text. */
enum {
	RANK_PEM,
	RANK_SECRET,
	RANK_EMAIL,
	RANK_IBAN,
	RANK_CARD,
	RANK_IPV6,
	RANK_IPV4,
	RANK_PHONE,
	RANK_ENTROPY,
};

struct cand {
	struct llm_pii_match m;
	int rank;
};

struct scan {
	const char *t;
	size_t len;
	const struct llm_guard_config *cfg;
	struct cand *c;
	size_t n, cap;
	bool nomem;
};

static bool wanted(const struct scan *s, enum llm_pii_type type)
{
	return s->cfg->types & (1u << type);
}

static void add(struct scan *s, enum llm_pii_type type, const char *det, size_t start, size_t end,
		double score, int rank)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct cand *p = realloc(s->c, cap * sizeof *p);
		if (!p) {
			s->nomem = true;
			return;
		}
		s->c = p;
		s->cap = cap;
	}
	s->c[s->n++] = (struct cand){{type, det, start, end, score}, rank};
}

/* ---- e-mail -------------------------------------------------------------------------- */

/* Bytes of non-ASCII characters count too: RFC 6531 allows UTF-8 local parts (jöhn@...),
 * and cutting a name in two would leave half of it behind. */
static bool email_local_char(int c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c >= 0x80;
}

static bool domain_ok(const char *d, size_t n)
{
	if (n < 4 || n > 253)
		return false;
	size_t label = 0, dots = 0, last_dot = 0;
	for (size_t i = 0; i < n; i++) {
		if (d[i] == '.') {
			if (!label || d[i - 1] == '-')
				return false;
			label = 0;
			dots++;
			last_dot = i;
		} else {
			if (!label && d[i] == '-')
				return false;
			if (++label > 63)
				return false;
		}
	}
	if (!dots || !label)
		return false;
	size_t tld = n - last_dot - 1;
	if (tld < 2)
		return false;
	for (size_t i = last_dot + 1; i < n; i++)
		if (!is_alpha(d[i]))
			return false;
	return true;
}

static void find_emails(struct scan *s)
{
	const char *t = s->t;
	size_t len = s->len;
	const char *at = t;
	while ((at = memchr(at, '@', len - (size_t)(at - t)))) {
		size_t i = (size_t)(at - t);
		at++;
		size_t a = i;
		while (a > 0 && email_local_char(BEFORE(a)))
			a--;
		while (a < i && t[a] == '.')
			a++;
		if (a == i || i - a > 64 || t[i - 1] == '.')
			continue;
		size_t b = i + 1;
		while (b < len && (is_alnum(AT(b)) || AT(b) == '.' || AT(b) == '-'))
			b++;
		while (b > i + 1 && (t[b - 1] == '.' || t[b - 1] == '-'))
			b--;
		if (AT(b) == '@' || !domain_ok(t + i + 1, b - i - 1))
			continue;
		add(s, LLM_PII_EMAIL, "email", a, b, 1.0, RANK_EMAIL);
		at = t + b;
	}
}

/* ---- known secret shapes ------------------------------------------------------------- */

static size_t run_of(const struct scan *s, size_t i, bool (*cls)(int))
{
	const char *t = s->t;
	size_t len = s->len, j = i;
	while (j < len && cls(AT(j)))
		j++;
	return j - i;
}

static bool key_char(int c)
{
	return is_alnum(c) || c == '_' || c == '-';
}
static bool slack_char(int c)
{
	return is_alnum(c) || c == '-';
}
static bool upper_digit(int c)
{
	return is_upper(c) || is_digit(c);
}
static bool alnum_char(int c)
{
	return is_alnum(c);
}
static bool word_char(int c)
{
	return is_word(c);
}

static bool starts(const struct scan *s, size_t i, const char *p)
{
	size_t n = strlen(p);
	return i + n <= s->len && !memcmp(s->t + i, p, n);
}

/* A PEM private key: from its BEGIN line through its END line (or to the end of the text
 * when the END line is missing: a truncated key is still a key). */
static size_t pem_block(const struct scan *s, size_t i)
{
	const char *t = s->t;
	size_t len = s->len, j = i + 11;
	while (j < len && (is_upper(AT(j)) || AT(j) == ' '))
		j++;
	if (j < i + 11 + 11 || memcmp(t + j - 11, "PRIVATE KEY", 11) || !starts(s, j, "-----"))
		return 0;
	for (size_t k = j + 5; k + 9 <= len; k++)
		if (t[k] == '-' && starts(s, k, "-----END ")) {
			size_t e = k + 9;
			while (e < len && (is_upper(AT(e)) || AT(e) == ' '))
				e++;
			if (starts(s, e, "-----"))
				return e + 5 - i;
		}
	return len - i;
}

/* The length of a JWT starting at i: three base64url segments, the first two JSON objects
 * ("eyJ" is the encoding of '{"'); the signature may be empty (alg none). */
static size_t jwt(const struct scan *s, size_t i)
{
	const char *t = s->t;
	size_t len = s->len;
	size_t a = run_of(s, i, key_char);
	if (a < 10 || AT(i + a) != '.' || !starts(s, i + a + 1, "eyJ"))
		return 0;
	size_t b = run_of(s, i + a + 1, key_char);
	if (b < 10 || AT(i + a + 1 + b) != '.')
		return 0;
	size_t c = run_of(s, i + a + b + 2, key_char);
	return a + b + c + 2;
}

static void find_secrets(struct scan *s)
{
	static const char *const aws[] = {"AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA",
					  "AIPA", "ANPA", "ANVA", "AROA", "APKA", "ASCA"};
	static const char *const github[] = {"ghp_", "gho_", "ghu_", "ghs_", "ghr_"};
	static const char *const stripe[] = {"sk_live_", "sk_test_", "rk_live_", "rk_test_"};
	const char *t = s->t;
	size_t len = s->len;
	for (size_t i = 0; i < len; i++) {
		int c = AT(i);
		if (c != '-' && !is_alpha(c))
			continue;
		if (c == '-') {
			size_t n;
			if (starts(s, i, "-----BEGIN ") && (n = pem_block(s, i))) {
				add(s, LLM_PII_SECRET, "private_key", i, i + n, 1.0, RANK_PEM);
				i += n - 1;
			}
			continue;
		}
		if (is_word(BEFORE(i)) || BEFORE(i) == '-')
			continue;
		const char *det = NULL;
		size_t n = 0;
		for (size_t k = 0; !det && k < sizeof aws / sizeof *aws; k++)
			if (starts(s, i, aws[k]) && run_of(s, i + 4, upper_digit) == 16 &&
			    !is_alnum(AT(i + 20)))
				det = "aws_access_key_id", n = 20;
		for (size_t k = 0; !det && k < sizeof github / sizeof *github; k++)
			if (starts(s, i, github[k]) && (n = run_of(s, i + 4, alnum_char)) >= 36 &&
			    n <= 251)
				det = "github_token", n += 4;
		if (!det && starts(s, i, "github_pat_") && (n = run_of(s, i + 11, word_char)) >= 22)
			det = "github_token", n += 11;
		for (size_t k = 0; !det && k < sizeof stripe / sizeof *stripe; k++)
			if (starts(s, i, stripe[k]) && (n = run_of(s, i + 8, alnum_char)) >= 16)
				det = "stripe_secret_key", n += 8;
		if (!det && starts(s, i, "sk-") && (n = run_of(s, i + 3, key_char)) >= 20) {
			bool digit = false, letter = false;
			for (size_t k = i + 3; k < i + 3 + n; k++)
				digit |= is_digit(t[k]), letter |= is_alpha(t[k]);
			if (digit && letter)
				det = "openai_api_key", n += 3;
		}
		if (!det && starts(s, i, "xox") && i + 4 < len && strchr("baprs", t[i + 3]) &&
		    t[i + 4] == '-' && (n = run_of(s, i + 5, slack_char)) >= 10)
			det = "slack_token", n += 5;
		if (!det && starts(s, i, "AIza") && (n = run_of(s, i + 4, key_char)) >= 35)
			det = "google_api_key", n += 4;
		if (!det && starts(s, i, "eyJ") && (n = jwt(s, i)))
			det = "jwt";
		if (det) {
			add(s, LLM_PII_SECRET, det, i, i + n, 1.0, RANK_SECRET);
			i += n - 1;
		}
	}
}

/* ---- IBAN ---------------------------------------------------------------------------- */

static void find_ibans(struct scan *s)
{
	const char *t = s->t;
	size_t len = s->len;
	for (size_t i = 0; i + 15 <= len; i++) {
		if (!is_upper(AT(i)) || !is_upper(AT(i + 1)) || !is_digit(AT(i + 2)) ||
		    !is_digit(AT(i + 3)) || is_alnum(BEFORE(i)))
			continue;
		size_t want = iban_length(t + i);
		if (!want)
			continue;
		/* Electronic form, or the print form in groups of four separated by one space. */
		char buf[40];
		size_t n = 0, j = i, group = 0;
		while (j < len && n < want) {
			int c = AT(j);
			if (is_upper(c) || is_digit(c)) {
				buf[n++] = (char)c;
				group++;
				j++;
			} else if (c == ' ' && group == 4 &&
				   (is_upper(AT(j + 1)) || is_digit(AT(j + 1)))) {
				group = 0;
				j++;
			} else {
				break;
			}
		}
		if (n != want || is_alnum(AT(j)) || !llm_iban_valid(buf, n))
			continue;
		add(s, LLM_PII_IBAN, "iban", i, j, 1.0, RANK_IBAN);
		i = j - 1;
	}
}

/* ---- payment cards ------------------------------------------------------------------- */

/* Issuer prefixes of the major networks (Visa, Mastercard, American Express, Discover, JCB,
 * Diners Club, UnionPay, Maestro): a Luhn-valid number outside them is more likely an id. */
static bool card_prefix_ok(const char *d, size_t n)
{
	unsigned p2 = (unsigned)(d[0] - '0') * 10 + (unsigned)(d[1] - '0');
	unsigned p3 = p2 * 10 + (unsigned)(d[2] - '0');
	unsigned p4 = p3 * 10 + (unsigned)(d[3] - '0');
	if (d[0] == '4')
		return n == 13 || n == 16 || n == 19;
	if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))
		return n == 16;
	if (p2 == 34 || p2 == 37)
		return n == 15;
	if (p4 == 6011 || p2 == 65 || (p3 >= 644 && p3 <= 649) || p2 == 62)
		return n >= 16 && n <= 19;
	if (p4 >= 3528 && p4 <= 3589)
		return n >= 16 && n <= 19;
	if (p2 == 36 || p2 == 38 || (p3 >= 300 && p3 <= 305))
		return n >= 14 && n <= 19;
	if (p2 == 50 || (p2 >= 56 && p2 <= 69))
		return n >= 12 && n <= 19;
	return false;
}

static void find_cards(struct scan *s)
{
	const char *t = s->t;
	size_t len = s->len;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(AT(i)))
			continue;
		if (is_alnum(BEFORE(i)) || BEFORE(i) == '.' || BEFORE(i) == '+' ||
		    ((BEFORE(i) == '-' || BEFORE(i) == ' ') && i >= 2 && is_digit(t[i - 2]))) {
			while (i + 1 < len && is_digit(AT(i + 1)))
				i++;
			continue;
		}
		/* Groups of digits joined by one consistent separator (space or hyphen). */
		char d[24];
		size_t nd = 0, j = i, ends[12], ng = 0, glen = 0;
		int sep = 0;
		bool ok = true;
		while (j < len && ng < 12) {
			int c = AT(j);
			if (is_digit(c)) {
				if (nd == sizeof d) {
					ok = false;
					break;
				}
				d[nd++] = (char)c;
				glen++;
				j++;
			} else if ((c == ' ' || c == '-') && (!sep || sep == c) && glen >= 3 &&
				   is_digit(AT(j + 1))) {
				sep = c;
				ends[ng++] = j;
				glen = 0;
				j++;
			} else {
				break;
			}
		}
		if (ng < 12)
			ends[ng++] = j;
		size_t next = j;
		if (ok && !is_alnum(AT(j))) {
			/* The longest run of whole groups that is a valid card number: a card
			 * followed by its expiry or another number still counts. */
			for (size_t g = ng; g-- > 0;) {
				size_t e = ends[g], digits = 0;
				for (size_t k = i; k < e; k++)
					digits += is_digit(t[k]);
				if (digits < 12 || digits > 19 ||
				    (g + 1 < ng && !is_digit(AT(e + 1))))
					continue;
				if (card_prefix_ok(d, digits) && llm_luhn_valid(d, digits)) {
					add(s, LLM_PII_CREDIT_CARD, "credit_card", i, e, 1.0,
					    RANK_CARD);
					next = e;
					break;
				}
			}
		}
		i = next > i ? next - 1 : i;
	}
}

/* ---- IP addresses -------------------------------------------------------------------- */

/* A dotted quad right after "v", "version", "ver" or "release" names a version, not a host. */
static bool version_context(const struct scan *s, size_t i)
{
	const char *t = s->t;
	size_t j = i;
	while (j > 0 && (t[j - 1] == ' ' || t[j - 1] == ':' || t[j - 1] == '='))
		j--;
	size_t e = j;
	while (j > 0 && is_alpha(t[j - 1]))
		j--;
	static const char *const words[] = {"v", "ver", "version", "release", "build", "firmware"};
	for (size_t k = 0; k < sizeof words / sizeof *words; k++) {
		size_t n = strlen(words[k]);
		if (e - j == n && !strncasecmp(t + j, words[k], n))
			return true;
	}
	return false;
}

/* One octet at i: 0..255, no leading zero; returns its length or 0. */
static size_t octet(const struct scan *s, size_t i)
{
	const char *t = s->t;
	size_t len = s->len, n = 0;
	unsigned v = 0;
	while (n < 4 && is_digit(AT(i + n)))
		v = v * 10 + (unsigned)(AT(i + n) - '0'), n++;
	if (!n || n > 3 || v > 255 || (n > 1 && AT(i) == '0'))
		return 0;
	return n;
}

static void find_ipv4(struct scan *s)
{
	const char *t = s->t;
	size_t len = s->len;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(AT(i)))
			continue;
		int b = BEFORE(i);
		if (is_alnum(b) || b == '.' || b == '_' || b == '-') {
			while (i + 1 < len && (is_digit(AT(i + 1)) || AT(i + 1) == '.'))
				i++;
			continue;
		}
		size_t j = i, k;
		int parts = 0;
		while (parts < 4 && (k = octet(s, j))) {
			j += k;
			parts++;
			if (parts < 4) {
				if (AT(j) != '.')
					break;
				j++;
			}
		}
		bool longer =
		    is_alnum(AT(j)) || AT(j) == '_' || (AT(j) == '.' && is_digit(AT(j + 1)));
		if (parts == 4 && !longer && !version_context(s, i))
			add(s, LLM_PII_IP_ADDRESS, "ipv4", i, j, 0.9, RANK_IPV4);
		while (i + 1 < len && (is_digit(AT(i + 1)) || AT(i + 1) == '.'))
			i++;
	}
}

static void find_ipv6(struct scan *s)
{
	const char *t = s->t;
	size_t len = s->len;
	for (size_t i = 0; i < len; i++) {
		int c = AT(i);
		if (!is_hex(c) && c != ':')
			continue;
		int b = BEFORE(i);
		size_t j = i;
		while (j < len && (is_hex(AT(j)) || AT(j) == ':' || AT(j) == '.'))
			j++;
		if (is_word(b) || b == ':' || b == '.' || b == '-') {
			i = j;
			continue;
		}
		size_t e = j;
		while (e > i && t[e - 1] == '.')
			e--;
		if (e > i + 1 && t[e - 1] == ':' && t[e - 2] != ':')
			e--;
		size_t colons = 0, groups = 0;
		bool dot = false;
		for (size_t k = i; k < e; k++) {
			colons += t[k] == ':';
			dot |= t[k] == '.';
			groups += is_hex(t[k]) && (k == i || t[k - 1] == ':');
		}
		char buf[64];
		unsigned char addr[16];
		if (e == j && (is_word(AT(j)) || AT(j) == '-')) {
			i = j;
			continue;
		}
		if (colons >= 2 && e - i < sizeof buf && (groups >= 2 || dot)) {
			memcpy(buf, t + i, e - i);
			buf[e - i] = '\0';
			if (inet_pton(AF_INET6, buf, addr) == 1)
				add(s, LLM_PII_IP_ADDRESS, "ipv6", i, e, 0.9, RANK_IPV6);
		}
		i = j;
	}
}

/* ---- phone numbers ------------------------------------------------------------------- */

/* International numbers with a '+' (8 to 15 digits, E.164), North American numbers written
 * as 3-3-4 groups (with an optional leading 1), and national numbers with a trunk 0 in at least
 * three groups with one separator (020 7946 0958, 01 23 45 67 89).  A bare run of digits is not
 * a phone number: too many ids, amounts and timestamps look like one. */
static void find_phones(struct scan *s)
{
	const char *t = s->t;
	size_t len = s->len;
	for (size_t i = 0; i < len; i++) {
		int c = AT(i);
		if (c != '+' && c != '(' && !is_digit(c))
			continue;
		int b = BEFORE(i);
		if (is_alnum(b) || b == '.' || b == '-' || b == '_' || b == '/' || b == '+' ||
		    b == ')' || (b == ' ' && i >= 2 && is_digit(t[i - 2]))) {
			while (i + 1 < len && is_digit(AT(i + 1)))
				i++;
			continue;
		}
		bool plus = c == '+', parens = false, mixed = false;
		size_t j = i + plus, digits = 0, glen[16], ng = 0;
		int sep = 0;
		char first = 0;
		for (;;) {
			bool open = AT(j) == '(';
			if (open)
				j++;
			size_t g = 0;
			while (is_digit(AT(j))) {
				if (!first)
					first = t[j];
				g++, j++;
			}
			if (!g || ng == 16)
				break;
			glen[ng++] = g;
			digits += g;
			if (open) {
				if (AT(j) != ')')
					break;
				parens = true;
				j++;
				if (AT(j) == ' ' && (is_digit(AT(j + 1))))
					j++;
				continue;
			}
			int sc = AT(j);
			if ((sc == ' ' || sc == '-' || sc == '.') &&
			    (is_digit(AT(j + 1)) || AT(j + 1) == '(')) {
				if (sep && sep != sc)
					mixed = true;
				sep = sc;
				j++;
				continue;
			}
			break;
		}
		size_t end = j;
		while (end > i && !is_digit(t[end - 1]))
			end--;
		bool tail_ok = !is_alnum(AT(end)) && !(AT(end) == '.' && is_digit(AT(end + 1))) &&
			       !(AT(end) == '-' && is_digit(AT(end + 1)));
		double score = 0;
		if (ng && tail_ok) {
			if (plus && digits >= 8 && digits <= 15 && first != '0')
				score = 0.9;
			else if (!plus &&
				 ((ng == 3 && glen[0] == 3 && glen[1] == 3 && glen[2] == 4) ||
				  (ng == 4 && glen[0] == 1 && first == '1' && glen[1] == 3 &&
				   glen[2] == 3 && glen[3] == 4))) {
				score = (!mixed || parens) ? 0.8 : 0;
			} else if (!plus && !parens && first == '0' && digits >= 9 &&
				   digits <= 12 && ng >= 3 && !mixed) {
				bool groups_ok = true;
				for (size_t g = 0; g < ng; g++)
					groups_ok &= glen[g] >= 2 && glen[g] <= 5;
				score = groups_ok ? 0.7 : 0;
			}
		}
		if (score > 0)
			add(s, LLM_PII_PHONE, "phone", i, end, score, RANK_PHONE);
		i = (end > i ? end : j > i ? j : i + 1) - 1;
	}
}

/* ---- high-entropy tokens ------------------------------------------------------------- */

static void find_entropy(struct scan *s)
{
	const char *t = s->t;
	size_t len = s->len;
	const struct llm_guard_config *cfg = s->cfg;
	for (size_t i = 0; i < len; i++) {
		if (!is_b64(AT(i)))
			continue;
		size_t j = i;
		bool up = false, low = false, dig = false, hex = true;
		while (j < len && is_b64(AT(j))) {
			int c = AT(j);
			up |= is_upper(c), low |= is_lower(c), dig |= is_digit(c);
			hex &= is_hex(c);
			j++;
		}
		size_t n = j - i;
		if (n >= cfg->entropy_min_len) {
			double h = llm_shannon_entropy(t + i, n);
			/* Hex: letters and digits both, and case not mixed (a hash, not a word). */
			bool is_hexkey = hex && n >= 32 && dig && (up != low);
			if (is_hexkey && h >= cfg->entropy_hex_bits)
				add(s, LLM_PII_HIGH_ENTROPY, "hex_entropy", i, j,
				    fmin(1.0, h / 4.0), RANK_ENTROPY);
			else if (!hex && up && low && dig && h >= cfg->entropy_base64_bits)
				add(s, LLM_PII_HIGH_ENTROPY, "base64_entropy", i, j,
				    fmin(1.0, h / 6.0), RANK_ENTROPY);
		}
		i = j;
	}
}

/* ---- the scan ------------------------------------------------------------------------ */

static int by_rank(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (x->m.start != y->m.start)
		return x->m.start < y->m.start ? -1 : 1;
	return 0;
}

static int by_start(const void *a, const void *b)
{
	const struct llm_pii_match *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

enum llm_err llm_guard_scan(const char *text, size_t len, const struct llm_guard_config *cfg,
			    struct llm_pii_matches *out, struct llm_diag *diag)
{
	struct llm_guard_config def;
	if (!cfg) {
		llm_guard_config_init(&def);
		cfg = &def;
	}
	struct llm_guard_config eff = *cfg;
	if (!eff.types)
		eff.types = LLM_PII_ALL;
	if (!eff.entropy_min_len)
		eff.entropy_min_len = 1;
	struct scan s = {text, len, &eff, NULL, 0, 0, false};
	out->n = 0;
	if (wanted(&s, LLM_PII_SECRET))
		find_secrets(&s);
	if (wanted(&s, LLM_PII_EMAIL))
		find_emails(&s);
	if (wanted(&s, LLM_PII_IBAN))
		find_ibans(&s);
	if (wanted(&s, LLM_PII_CREDIT_CARD))
		find_cards(&s);
	if (wanted(&s, LLM_PII_IP_ADDRESS)) {
		find_ipv6(&s);
		find_ipv4(&s);
	}
	if (wanted(&s, LLM_PII_PHONE))
		find_phones(&s);
	if (wanted(&s, LLM_PII_HIGH_ENTROPY))
		find_entropy(&s);
	if (s.nomem) {
		free(s.c);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	if (!s.n) {
		free(s.c);
		return LLM_OK;
	}
	/* Resolve overlaps: by rank, then position; a byte map of claimed text keeps it linear in
	 * the total length of the candidates. */
	qsort(s.c, s.n, sizeof *s.c, by_rank);
	unsigned char *claimed = calloc(len / 8 + 1, 1);
	if (!claimed) {
		free(s.c);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	enum llm_err e = LLM_OK;
	for (size_t k = 0; k < s.n && !e; k++) {
		const struct llm_pii_match *m = &s.c[k].m;
		bool free_span = true;
		for (size_t b = m->start; b < m->end && free_span; b++)
			free_span = !(claimed[b / 8] & (1u << (b % 8)));
		if (!free_span)
			continue;
		for (size_t b = m->start; b < m->end; b++)
			claimed[b / 8] |= (unsigned char)(1u << (b % 8));
		if (out->n == out->cap) {
			size_t cap = out->cap ? out->cap * 2 : 8;
			struct llm_pii_match *p = realloc(out->m, cap * sizeof *p);
			if (!p) {
				e = llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
				break;
			}
			out->m = p;
			out->cap = cap;
		}
		out->m[out->n++] = *m;
	}
	free(claimed);
	free(s.c);
	if (!e)
		qsort(out->m, out->n, sizeof *out->m, by_start);
	return e;
}
