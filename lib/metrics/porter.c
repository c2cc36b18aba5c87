#include "config.h"

#include <stdbool.h>
#include <string.h>

#include "metrics/rouge.h"

/* NLTK's PorterStemmer in its default mode (NLTK_EXTENSIONS), which is what rouge-score uses.
 * The word is stemmed in place in the output buffer: no step makes it longer than it was, so
 * the bytes appended at the start are all the room it needs.
 *
 * Every condition of the algorithm looks at a prefix of the word, and whether a letter is a
 * consonant depends only on the letters before it, so the checks below read the prefix of the
 * current word directly instead of copying stems out. */

struct word {
	char *s;
	size_t n;
};

static bool is_vowel(char c)
{
	return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
}

/* NLTK's _is_consonant, without its recursion: a run of y's alternates, starting from what
 * the letter before the run makes the first y (a consonant after a vowel or at the start). */
static bool cons(const char *s, size_t i)
{
	if (is_vowel(s[i]))
		return false;
	if (s[i] != 'y')
		return true;
	size_t k = i;
	while (k > 0 && s[k - 1] == 'y')
		k--;
	bool first = k == 0 || is_vowel(s[k - 1]);
	return (i - k) % 2 == 0 ? first : !first;
}

/* The measure m of s[0..n): the number of vowel-consonant transitions. */
static int measure(const char *s, size_t n)
{
	int m = 0;
	bool prev = true; /* a consonant before the start never forms "vc" */
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool cur = is_vowel(c) ? false : c == 'y' ? (i == 0 || !prev) : true;
		if (!prev && cur)
			m++;
		prev = cur;
	}
	return m;
}

static bool has_vowel(const char *s, size_t n)
{
	bool prev = true;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool cur = is_vowel(c) ? false : c == 'y' ? (i == 0 || !prev) : true;
		if (!cur)
			return true;
		prev = cur;
	}
	return false;
}

static bool ends_double(const char *s, size_t n)
{
	return n >= 2 && s[n - 1] == s[n - 2] && cons(s, n - 1);
}

/* *o, with NLTK's extension that a two-letter vowel-consonant stem counts too. */
static bool ends_cvc(const char *s, size_t n)
{
	if (n >= 3 && cons(s, n - 3) && !cons(s, n - 2) && cons(s, n - 1) && s[n - 1] != 'w' &&
	    s[n - 1] != 'x' && s[n - 1] != 'y')
		return true;
	return n == 2 && !cons(s, 0) && cons(s, 1);
}

static bool ends(const struct word *w, const char *suf, size_t len)
{
	return w->n >= len && memcmp(w->s + w->n - len, suf, len) == 0;
}

#define ENDS(w, lit) ends((w), (lit), sizeof(lit) - 1)

/* Replace the last cut bytes by rep. */
static void replace(struct word *w, size_t cut, const char *rep)
{
	size_t r = strlen(rep);
	memcpy(w->s + w->n - cut, rep, r);
	w->n = w->n - cut + r;
}

enum cond {
	M_GT0,	   /* m(stem) > 0 */
	M_GT1,	   /* m(stem) > 1 */
	M_GT1_ST,  /* m(stem) > 1 and the stem ends in s or t */
	M_LOGI_GT0 /* m(stem + "l") > 0: NLTK's logi rule keeps the l with the stem */
};

struct rule {
	const char *suffix, *rep;
	enum cond cond;
};

static bool holds(const struct word *w, size_t stem, enum cond c)
{
	switch (c) {
	case M_GT0:
		return measure(w->s, stem) > 0;
	case M_GT1:
		return measure(w->s, stem) > 1;
	case M_GT1_ST:
		return measure(w->s, stem) > 1 && (w->s[stem - 1] == 's' || w->s[stem - 1] == 't');
	case M_LOGI_GT0:
		return measure(w->s, stem + 1) > 0;
	}
	return false;
}

/* NLTK's _apply_rule_list: the first rule whose suffix matches decides, whether or not its
 * condition holds. */
static void apply(struct word *w, const struct rule *rules, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(rules[i].suffix);
		if (!ends(w, rules[i].suffix, len))
			continue;
		if (holds(w, w->n - len, rules[i].cond))
			replace(w, len, rules[i].rep);
		return;
	}
}

static void step1a(struct word *w)
{
	if (ENDS(w, "ies") && w->n == 4) {
		replace(w, 3, "ie");
		return;
	}
	if (ENDS(w, "sses"))
		replace(w, 4, "ss");
	else if (ENDS(w, "ies"))
		replace(w, 3, "i");
	else if (ENDS(w, "ss"))
		return;
	else if (ENDS(w, "s"))
		w->n--;
}

static void step1b(struct word *w)
{
	if (ENDS(w, "ied")) {
		replace(w, 3, w->n == 4 ? "ie" : "i");
		return;
	}
	if (ENDS(w, "eed")) {
		if (measure(w->s, w->n - 3) > 0)
			w->n--;
		return;
	}
	size_t cut;
	if (ENDS(w, "ed") && has_vowel(w->s, w->n - 2))
		cut = 2;
	else if (ENDS(w, "ing") && has_vowel(w->s, w->n - 3))
		cut = 3;
	else
		return;
	w->n -= cut;
	if (ENDS(w, "at") || ENDS(w, "bl") || ENDS(w, "iz")) {
		replace(w, 0, "e");
	} else if (ends_double(w->s, w->n)) {
		char last = w->s[w->n - 1];
		if (last != 'l' && last != 's' && last != 'z')
			w->n--;
	} else if (measure(w->s, w->n) == 1 && ends_cvc(w->s, w->n)) {
		replace(w, 0, "e");
	}
}

static void step1c(struct word *w)
{
	/* NLTK: y -> i only after a consonant that is not the whole stem ("spy" -> "spi"). */
	if (ENDS(w, "y") && w->n - 1 > 1 && cons(w->s, w->n - 2))
		w->s[w->n - 1] = 'i';
}

static const struct rule step2_rules[] = {
    {"ational", "ate", M_GT0},	 {"tional", "tion", M_GT0}, {"enci", "ence", M_GT0},
    {"anci", "ance", M_GT0},	 {"izer", "ize", M_GT0},    {"bli", "ble", M_GT0},
    {"alli", "al", M_GT0},	 {"entli", "ent", M_GT0},   {"eli", "e", M_GT0},
    {"ousli", "ous", M_GT0},	 {"ization", "ize", M_GT0}, {"ation", "ate", M_GT0},
    {"ator", "ate", M_GT0},	 {"alism", "al", M_GT0},    {"iveness", "ive", M_GT0},
    {"fulness", "ful", M_GT0},	 {"ousness", "ous", M_GT0}, {"aliti", "al", M_GT0},
    {"iviti", "ive", M_GT0},	 {"biliti", "ble", M_GT0},  {"fulli", "ful", M_GT0},
    {"logi", "log", M_LOGI_GT0},
};

static void step2(struct word *w)
{
	/* NLTK applies alli -> al first and, when it applies, runs step 2 again on the result. */
	while (ENDS(w, "alli") && measure(w->s, w->n - 4) > 0)
		replace(w, 4, "al");
	apply(w, step2_rules, sizeof step2_rules / sizeof *step2_rules);
}

static const struct rule step3_rules[] = {
    {"icate", "ic", M_GT0}, {"ative", "", M_GT0}, {"alize", "al", M_GT0}, {"iciti", "ic", M_GT0},
    {"ical", "ic", M_GT0},  {"ful", "", M_GT0},	  {"ness", "", M_GT0},
};

static const struct rule step4_rules[] = {
    {"al", "", M_GT1},	  {"ance", "", M_GT1}, {"ence", "", M_GT1}, {"er", "", M_GT1},
    {"ic", "", M_GT1},	  {"able", "", M_GT1}, {"ible", "", M_GT1}, {"ant", "", M_GT1},
    {"ement", "", M_GT1}, {"ment", "", M_GT1}, {"ent", "", M_GT1},  {"ion", "", M_GT1_ST},
    {"ou", "", M_GT1},	  {"ism", "", M_GT1},  {"ate", "", M_GT1},  {"iti", "", M_GT1},
    {"ous", "", M_GT1},	  {"ive", "", M_GT1},  {"ize", "", M_GT1},
};

static void step5(struct word *w)
{
	if (ENDS(w, "e")) {
		int m = measure(w->s, w->n - 1);
		if (m > 1 || (m == 1 && !ends_cvc(w->s, w->n - 1)))
			w->n--;
	}
	if (ENDS(w, "ll") && measure(w->s, w->n - 1) > 1)
		w->n--;
}

/* NLTK's table of irregular forms, looked up before any step. */
static const char *const pool[][2] = {
    {"sky", "sky"},	   {"skies", "sky"},	   {"dying", "die"},	    {"lying", "lie"},
    {"tying", "tie"},	   {"news", "news"},	   {"innings", "inning"},   {"inning", "inning"},
    {"outings", "outing"}, {"outing", "outing"},   {"cannings", "canning"}, {"canning", "canning"},
    {"howe", "howe"},	   {"proceed", "proceed"}, {"exceed", "exceed"},    {"succeed", "succeed"},
};

enum llm_err llm_porter_stem(const char *w, size_t n, struct llm_buf *out, struct llm_diag *diag)
{
	bool ascii = true;
	for (size_t i = 0; i < n; i++)
		ascii = ascii && (unsigned char)w[i] < 0x80;
	/* NLTK looks the word up as given, before lowercasing it. */
	const char *irregular = NULL;
	for (size_t i = 0; i < sizeof pool / sizeof *pool && !irregular; i++)
		if (strlen(pool[i][0]) == n && memcmp(pool[i][0], w, n) == 0)
			irregular = pool[i][1];
	size_t start = out->len;
	enum llm_err e = irregular ? llm_buf_puts(out, irregular) : llm_buf_append(out, w, n);
	if (e != LLM_OK)
		return llm_diag_set(diag, e, NULL, 0, "stem: no room for a word of %zu bytes", n);
	if (irregular || !ascii)
		return LLM_OK;
	struct word word = {out->data + start, n};
	for (size_t i = 0; i < n; i++)
		if (word.s[i] >= 'A' && word.s[i] <= 'Z')
			word.s[i] = (char)(word.s[i] - 'A' + 'a');
	if (n > 2) {
		step1a(&word);
		step1b(&word);
		step1c(&word);
		step2(&word);
		apply(&word, step3_rules, sizeof step3_rules / sizeof *step3_rules);
		apply(&word, step4_rules, sizeof step4_rules / sizeof *step4_rules);
		step5(&word);
	}
	out->len = start + word.n;
	out->data[out->len] = '\0';
	return LLM_OK;
}
