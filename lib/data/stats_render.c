/* Rendering a stats report (the JSON of llm_stats_report) as a terminal table or an HTML page.
 *
 * Both work from the JSON alone, so a report saved with --report renders the same later, and
 * both read it defensively: a missing or mistyped member reads as zero or empty rather than
 * failing, since a saved file may come from an older or newer version.  Every string that
 * came from the data (field names, the title) is escaped: control characters never reach the
 * terminal, and markup never reaches the page. */
#include "config.h"

#include "data/stats.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- reading the report -------------------------------------------------------------------- */

static json_t *get(const json_t *o, const char *k)
{
	return json_is_object(o) ? json_object_get(o, k) : NULL;
}

static uint64_t num(const json_t *o, const char *k)
{
	json_t *v = get(o, k);
	if (json_is_integer(v))
		return json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
	if (json_is_real(v) && json_real_value(v) > 0 && json_real_value(v) < 1.8e19)
		return (uint64_t)json_real_value(v);
	return 0;
}

static double real(const json_t *o, const char *k)
{
	json_t *v = get(o, k);
	return json_is_number(v) ? json_number_value(v) : 0;
}

/* A string member and its length (names may hold NUL); "" when missing. */
static const char *str(const json_t *o, const char *k, size_t *len)
{
	json_t *v = get(o, k);
	if (!json_is_string(v)) {
		*len = 0;
		return "";
	}
	*len = json_string_length(v);
	return json_string_value(v);
}

static double fraction_of(uint64_t part, uint64_t whole)
{
	return whole ? (double)part / (double)whole : 0;
}

/* --- formatting ----------------------------------------------------------------------------- */

/* 1234567 as "1,234,567". */
static void fmt_count(uint64_t v, char *out, size_t outsz)
{
	char digits[24];
	int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
	size_t o = 0;
	for (int i = 0; i < n && o + 2 < outsz; i++) {
		if (i && (n - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = digits[i];
	}
	out[o] = '\0';
}

/* A fraction as a percentage with the given decimals (0 or 1) that never rounds a nonzero part
 * to 0 % or a partial whole to 100 %, since those two are what a reader looks for. */
static void fmt_pct_to(double f, int decimals, char *out, size_t outsz)
{
	double p = f * 100, step = decimals ? 0.1 : 1;
	if (p <= 0)
		snprintf(out, outsz, "0%%");
	else if (p < step)
		snprintf(out, outsz, "<%.*f%%", decimals, step);
	else if (p >= 100)
		snprintf(out, outsz, "100%%");
	else if (p > 100 - step)
		snprintf(out, outsz, ">%.*f%%", decimals, 100 - step);
	else
		snprintf(out, outsz, "%.*f%%", decimals, p);
}

static void fmt_pct(double f, char *out, size_t outsz)
{
	fmt_pct_to(f, 1, out, outsz);
}

static void fmt_pct_whole(double f, char *out, size_t outsz)
{
	fmt_pct_to(f, 0, out, outsz);
}

/* Output with a sticky error, so a page is written as a sequence of plain calls. */
struct out {
	struct llm_buf *b;
	enum llm_err e;
};

static void put(struct out *w, const char *s)
{
	if (!w->e)
		w->e = llm_buf_puts(w->b, s);
}

static void putn(struct out *w, const char *s, size_t n)
{
	if (!w->e)
		w->e = llm_buf_append(w->b, s, n);
}

static void __attribute__((format(printf, 2, 3))) putf(struct out *w, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0) {
		w->e = w->e ? w->e : LLM_ERR_USAGE;
		return;
	}
	if ((size_t)n < sizeof tmp) {
		putn(w, tmp, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		w->e = w->e ? w->e : LLM_ERR_NOMEM;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	putn(w, big, (size_t)n);
	free(big);
}

static void put_count(struct out *w, uint64_t v)
{
	char s[32];
	fmt_count(v, s, sizeof s);
	put(w, s);
}

static void put_pct(struct out *w, double f)
{
	char s[16];
	fmt_pct(f, s, sizeof s);
	put(w, s);
}

/* The next code point of valid UTF-8 at s[*i..n); a stray byte reads as U+FFFD. */
static uint32_t next_cp(const char *s, size_t n, size_t *i)
{
	const unsigned char *p = (const unsigned char *)s + *i;
	size_t left = n - *i;
	unsigned c = p[0];
	size_t k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
	if (!k || k > left) {
		*i += 1;
		return 0xFFFD;
	}
	for (size_t j = 1; j < k; j++)
		if ((p[j] & 0xC0) != 0x80) {
			*i += 1;
			return 0xFFFD;
		}
	*i += k;
	if (k == 1)
		return c;
	if (k == 2)
		return (c & 0x1Fu) << 6 | (p[1] & 0x3Fu);
	if (k == 3)
		return (c & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
	return (c & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu);
}

/* Terminal columns of a code point: 0 for combining marks, 2 for East Asian wide, else 1.
 * Close enough to wcwidth() for aligning a table without depending on the locale. */
static int cp_width(uint32_t cp)
{
	if ((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x200B && cp <= 0x200F) ||
	    (cp >= 0xFE00 && cp <= 0xFE0F))
		return 0;
	if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF && cp != 0x303F) ||
	    (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
	    (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
	    (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1F64F) ||
	    (cp >= 0x1F900 && cp <= 0x1F9FF) || (cp >= 0x20000 && cp <= 0x3FFFD))
		return 2;
	return 1;
}

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/* s[0..n) for a terminal cell at most maxw columns wide: control characters shown as '?',
 * and a name too long cut with an ellipsis.  Returns the columns used. */
static size_t term_text(const char *s, size_t n, size_t maxw, char *out, size_t outsz)
{
	size_t total = 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp = next_cp(s, n, &i);
		total += is_control(cp) ? 1 : (size_t)cp_width(cp);
	}
	size_t limit = total > maxw ? maxw - 1 : maxw, w = 0, o = 0;
	for (size_t i = 0; i < n;) {
		size_t start = i;
		uint32_t cp = next_cp(s, n, &i);
		size_t cw = is_control(cp) ? 1 : (size_t)cp_width(cp);
		if (w + cw > limit || o + (i - start) + 4 > outsz)
			break;
		if (is_control(cp) || cp == 0xFFFD) {
			out[o++] = '?';
		} else {
			memcpy(out + o, s + start, i - start);
			o += i - start;
		}
		w += cw;
	}
	if (total > maxw && o + 4 <= outsz) {
		memcpy(out + o, "\xe2\x80\xa6", 3); /* ... */
		o += 3;
		w++;
	}
	out[o] = '\0';
	return w;
}

/* --- shared pieces ---------------------------------------------------------------------- */

enum { NTYPES = 6 };
static const char *const type_names[NTYPES] = {"string", "number", "boolean",
					       "null",	 "object", "array"};

/* Type indices of field f ordered by count, largest first; returns how many are nonzero. */
static int types_by_count(const json_t *f, uint64_t counts[NTYPES], int order[NTYPES])
{
	const json_t *types = get(f, "types");
	int n = 0;
	for (int t = 0; t < NTYPES; t++) {
		counts[t] = num(types, type_names[t]);
		int j = n;
		if (!counts[t])
			continue;
		while (j > 0 && counts[order[j - 1]] < counts[t]) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = t;
		n++;
	}
	return n;
}

static size_t nfields(const json_t *report)
{
	return json_array_size(get(report, "fields"));
}

static const json_t *field_at(const json_t *report, size_t i)
{
	return json_array_get(get(report, "fields"), i);
}

/* --- the terminal table --------------------------------------------------------------------- */

#define BOLD	  "\033[1m"
#define RED	  "\033[31m"
#define RESET	  "\033[0m"
#define NAME_COLS 28
#define TYPE_COLS 34
#define NCOLS	  8

/* clang-format off */
static const char *const col_titles[NCOLS] = {
	"field", "present", "types", "chars p50", "p90", "max", "words p50", "empty",
};
/* clang-format on */
/* Where the numbers of columns 3 on come from: a member of a length distribution of the
 * field, or (no distribution) of the field itself. */
static const char *const col_dist[NCOLS] = {[3] = "chars", "chars", "chars", "words", NULL};
static const char *const col_key[NCOLS] = {[3] = "p50", "p90", "max", "p50", "empty"};
static const bool col_right[NCOLS] = {false, true, false, true, true, true, true, true};

/* The text of one cell of the field table (f NULL: the header); returns its columns. */
static size_t table_cell(const json_t *report, const json_t *f, int col, char *out, size_t outsz)
{
	if (!f)
		return (size_t)snprintf(out, outsz, "%s", col_titles[col]);
	size_t len;
	const char *name;
	out[0] = '\0';
	switch (col) {
	case 0:
		name = str(f, "name", &len);
		return term_text(name, len, NAME_COLS, out, outsz);
	case 1:
		fmt_pct(fraction_of(num(f, "present"), num(report, "records")), out, outsz);
		break;
	case 2: {
		uint64_t counts[NTYPES], sum = 0;
		int order[NTYPES];
		int n = types_by_count(f, counts, order);
		for (int t = 0; t < NTYPES; t++)
			sum += counts[t];
		char line[160] = "";
		size_t o = 0;
		for (int k = 0; k < n && o < sizeof line; k++) {
			char pct[16] = "";
			if (n > 1) /* whole percentages: the table is for a glance */
				fmt_pct_whole(fraction_of(counts[order[k]], sum), pct, sizeof pct);
			o += (size_t)snprintf(line + o, sizeof line - o, "%s%s%s%s", k ? ", " : "",
					      type_names[order[k]], n > 1 ? " " : "", pct);
		}
		return term_text(line, strlen(line), TYPE_COLS, out, outsz);
	}
	default: {
		const json_t *o = col_dist[col] ? get(get(f, "length"), col_dist[col]) : f;
		if (get(o, col_key[col]))
			fmt_count(num(o, col_key[col]), out, outsz);
	}
	}
	return strlen(out); /* numbers and percentages: one column per byte */
}

static void pad(struct out *w, size_t n)
{
	static const char spaces[] = "                                ";
	while (n) {
		size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
		putn(w, spaces, k);
		n -= k;
	}
}

static void label(struct out *w, bool color, const char *s)
{
	put(w, color ? BOLD : "");
	putf(w, "%-12s", s);
	put(w, color ? RESET : "");
}

static void text_duplicates(struct out *w, const json_t *report, bool color)
{
	const json_t *d = get(report, "duplicates");
	const json_t *dr = get(d, "records"), *dt = get(d, "text");
	size_t tl;
	const char *tf = str(report, "text_field", &tl);
	char tfname[NAME_COLS * 4 + 8];
	term_text(tf, tl, NAME_COLS, tfname, sizeof tfname);
	label(w, color, "duplicates");
	put(w, "records ");
	put_count(w, num(dr, "duplicates"));
	put(w, " (");
	put_pct(w, fraction_of(num(dr, "duplicates"), num(dr, "counted")));
	put(w, ")");
	if (num(dt, "counted")) {
		putf(w, ", %s ", tfname);
		put_count(w, num(dt, "duplicates"));
		put(w, " of ");
		put_count(w, num(dt, "counted"));
		put(w, " (");
		put_pct(w, fraction_of(num(dt, "duplicates"), num(dt, "counted")));
		put(w, ")");
	} else {
		putf(w, ", no string \"%s\" field", tfname);
	}
	if (json_is_true(get(dr, "estimated")) || json_is_true(get(dt, "estimated")))
		put(w, ", estimated");
	put(w, "\n");
}

static void text_scripts(struct out *w, const json_t *report, bool color)
{
	const json_t *sc = get(report, "scripts");
	const json_t *by_letters = get(sc, "by_letters"), *by_records = get(sc, "by_records");
	label(w, color, "scripts");
	if (!json_array_size(by_letters)) {
		put(w, "no letters\n");
		return;
	}
	for (size_t i = 0; i < json_array_size(by_letters) && i < 6; i++) {
		const json_t *e = json_array_get(by_letters, i);
		size_t n;
		const char *name = str(e, "script", &n);
		char s[64];
		term_text(name, n, 20, s, sizeof s);
		putf(w, "%s%s ", i ? ", " : "", s);
		put_pct(w, real(e, "fraction"));
	}
	if (json_array_size(by_letters) > 6)
		put(w, ", ...");
	put(w, " of ");
	put_count(w, num(sc, "letters"));
	put(w, " letters\n");
	label(w, color, "");
	put(w, "records by main script: ");
	for (size_t i = 0; i < json_array_size(by_records) && i < 6; i++) {
		const json_t *e = json_array_get(by_records, i);
		size_t n;
		const char *name = str(e, "script", &n);
		char s[64];
		term_text(name, n, 20, s, sizeof s);
		putf(w, "%s%s ", i ? ", " : "", s);
		put_count(w, num(e, "records"));
	}
	if (json_array_size(by_records) > 6)
		put(w, ", ...");
	put(w, "\n");
}

/* A line of items ("name count, name count, ...") that stops with ", ..." before it would
 * pass LINE_COLS columns, so a list of any length stays one short line. */
#define LINE_COLS 100

struct line {
	struct out *w;
	size_t col;
	size_t items;
	bool full;
};

/* An item: name (cut to maxw columns), a space, count, then suffix (ASCII). */
static void line_item(struct line *l, const char *name, size_t len, size_t maxw, uint64_t v,
		      const char *suffix)
{
	if (l->full)
		return;
	char cell[NAME_COLS * 4 + 64], digits[32];
	size_t cw = term_text(name, len, maxw, cell, sizeof cell);
	fmt_count(v, digits, sizeof digits);
	size_t width = (l->items ? 2 : 0) + cw + (cw ? 1 : 0) + strlen(digits) + strlen(suffix);
	if (l->items && l->col + width + 5 > LINE_COLS) {
		put(l->w, ", ...");
		l->full = true;
		return;
	}
	putf(l->w, "%s%s%s%s%s", l->items ? ", " : "", cell, cw ? " " : "", digits, suffix);
	l->col += width;
	l->items++;
}

static void text_tokens(struct out *w, const json_t *report, bool color)
{
	const json_t *list = get(report, "tokens");
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *t = json_array_get(list, i), *d = get(t, "per_record");
		size_t n;
		const char *name = str(t, "name", &n);
		char s[NAME_COLS * 4 + 8];
		term_text(name, n, 24, s, sizeof s);
		label(w, color, i ? "" : "tokens");
		putf(w, "%s ", s);
		put_count(w, num(t, "tokens"));
		put(w, " tokens");
		if (d) {
			put(w, ", per text p50 ");
			put_count(w, num(d, "p50"));
			put(w, " p90 ");
			put_count(w, num(d, "p90"));
			put(w, " max ");
			put_count(w, num(d, "max"));
		}
		putf(w, ", %.3f/char, %.3f/word\n", real(t, "tokens_per_char"),
		     real(t, "tokens_per_word"));
	}
}

static void text_flags(struct out *w, const json_t *report, bool color)
{
	const json_t *f = get(report, "flags");
	if (!f)
		return;
	uint64_t records = num(report, "records");
	label(w, color, "flags");
	size_t start = w->b->len; /* what follows the label is ASCII: a byte a column */
	put_count(w, num(f, "flagged"));
	put(w, " records flagged (");
	put_pct(w, fraction_of(num(f, "flagged"), records));
	put(w, "), ");
	put_count(w, num(f, "flags"));
	put(w, num(f, "flags") == 1 ? " flag" : " flags");
	if (num(f, "not_array")) {
		put(w, ", ");
		put_count(w, num(f, "not_array"));
		put(w, " not an array");
	}
	const json_t *kinds = get(f, "by_kind"), *names = get(f, "by_name");
	if (json_array_size(kinds))
		put(w, ": ");
	struct line l = {w, 12 + (w->b->len - start), 0, false};
	for (size_t i = 0; i < json_array_size(kinds); i++) {
		const json_t *e = json_array_get(kinds, i);
		size_t n;
		const char *k = str(e, "kind", &n);
		line_item(&l, k, n, 16, num(e, "flags"), "");
	}
	put(w, "\n");
	if (!json_array_size(names))
		return;
	label(w, color, "");
	l = (struct line){w, 12, 0, false};
	for (size_t i = 0; i < json_array_size(names); i++) {
		const json_t *e = json_array_get(names, i);
		size_t kn, nn;
		const char *k = str(e, "kind", &kn), *nm = str(e, "name", &nn);
		char both[256];
		snprintf(both, sizeof both, "%.*s/%.*s", (int)(kn < 100 ? kn : 100), k,
			 (int)(nn < 140 ? nn : 140), nm);
		line_item(&l, both, strlen(both), 40, num(e, "flags"), "");
	}
	put(w, "\n");
}

static void text_clusters(struct out *w, const json_t *report, bool color)
{
	const json_t *c = get(report, "clusters");
	if (!c)
		return;
	label(w, color, "clusters");
	if (num(c, "records")) {
		put_count(w, num(c, "clusters"));
		put(w, " in ");
		put_count(w, num(c, "records"));
		put(w, " records, ");
		put_count(w, num(c, "in_multi"));
		put(w, " records in ");
		put_count(w, num(c, "multi"));
		put(w, " clusters of 2+, ");
	}
	put_count(w, num(c, "duplicates"));
	put(w, " marked duplicate");
	if (json_is_true(get(c, "estimated")))
		put(w, ", estimated");
	put(w, "\n");
	const json_t *largest = get(c, "largest");
	if (!json_array_size(largest))
		return;
	label(w, color, "");
	put(w, "largest: ");
	struct line l = {w, 21, 0, false};
	for (size_t i = 0; i < json_array_size(largest); i++) {
		const json_t *e = json_array_get(largest, i);
		size_t n;
		const char *id = str(e, "id", &n);
		line_item(&l, id, n, 20, num(e, "records"), "");
	}
	put(w, "\n");
}

static void text_splits(struct out *w, const json_t *report, bool color)
{
	const json_t *sp = get(report, "splits"), *list = get(sp, "by_split");
	if (!sp)
		return;
	label(w, color, "splits");
	struct line l = {w, 12, 0, false};
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *e = json_array_get(list, i);
		size_t n;
		const char *name = str(e, "split", &n);
		char p[16], pct[24];
		fmt_pct(real(e, "fraction"), p, sizeof p);
		snprintf(pct, sizeof pct, " (%s)", p);
		line_item(&l, name, n, 20, num(e, "records"), pct);
	}
	put(w, "\n");
}

enum llm_err llm_stats_render_text(const json_t *report, bool color, struct llm_buf *b)
{
	if (!json_is_object(report))
		return LLM_ERR_TYPE;
	struct out w = {b, LLM_OK};
	uint64_t records = num(report, "records"), bad = num(report, "bad");
	label(&w, color, "records");
	put_count(&w, records);
	put(&w, ", bad ");
	if (bad && color)
		put(&w, RED);
	put_count(&w, bad);
	if (bad && color)
		put(&w, RESET);
	const json_t *reasons = get(report, "bad_by_reason");
	if (json_object_size(reasons)) {
		put(&w, " (");
		for (void *it = json_object_iter((json_t *)reasons); it;
		     it = json_object_iter_next((json_t *)reasons, it)) {
			const char *k = json_object_iter_key(it);
			char s[64];
			term_text(k, strlen(k), 24, s, sizeof s);
			putf(&w, "%s%s ", it == json_object_iter((json_t *)reasons) ? "" : ", ", s);
			put_count(&w, num(reasons, k));
		}
		put(&w, ")");
	}
	put(&w, "\n");
	text_duplicates(&w, report, color);
	text_scripts(&w, report, color);
	text_tokens(&w, report, color);
	text_flags(&w, report, color);
	text_clusters(&w, report, color);
	text_splits(&w, report, color);
	put(&w, "\n");

	size_t nf = nfields(report);
	if (!nf) {
		put(&w, "no fields\n");
		return w.e;
	}
	size_t widths[NCOLS] = {0};
	char cell[NAME_COLS * 4 + 64];
	for (size_t r = 0; r <= nf; r++)
		for (int c = 0; c < NCOLS; c++) {
			size_t cw = table_cell(report, r ? field_at(report, r - 1) : NULL, c, cell,
					       sizeof cell);
			if (cw > widths[c])
				widths[c] = cw;
		}
	for (size_t r = 0; r <= nf; r++) {
		const json_t *f = r ? field_at(report, r - 1) : NULL;
		if (!r && color)
			put(&w, BOLD);
		size_t owed = 0; /* padding held back, so no line ends in spaces */
		for (int c = 0; c < NCOLS; c++) {
			size_t cw = table_cell(report, f, c, cell, sizeof cell);
			if (!cell[0]) {
				owed += widths[c] + 2;
				continue;
			}
			pad(&w, owed + (col_right[c] ? widths[c] - cw : 0));
			put(&w, cell);
			owed = (col_right[c] ? 0 : widths[c] - cw) + 2;
		}
		if (!r && color)
			put(&w, RESET);
		put(&w, "\n");
	}
	return w.e;
}

/* --- the HTML page -------------------------------------------------------------------------- */

/* s[0..n) as HTML text or attribute value.  Control characters become U+FFFD: they are not
 * allowed in HTML and could only be noise from the data. */
static void put_esc(struct out *w, const char *s, size_t n)
{
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *rep;
		switch (c) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&#39;";
			break;
		default:
			if (c >= 0x20 && c != 0x7F)
				continue;
			rep = c == '\t' || c == '\n' ? " " : "&#xFFFD;";
		}
		putn(w, s + run, i - run);
		put(w, rep);
		run = i + 1;
	}
	putn(w, s + run, n - run);
}

static void put_esc_str(struct out *w, const char *s)
{
	put_esc(w, s, strlen(s));
}

static void put_pct_html(struct out *w, double f)
{
	char s[16];
	fmt_pct(f, s, sizeof s); /* may start with '<' or '>' */
	put_esc_str(w, s);
}

/* A mean with thousands separators and one decimal. */
static void put_mean(struct out *w, double v)
{
	if (!(v >= 0 && v < 1e18)) {
		put(w, "0");
		return;
	}
	uint64_t tenths = (uint64_t)llround(v * 10);
	put_count(w, tenths / 10);
	putf(w, ".%u", (unsigned)(tenths % 10));
}

/* A name for an SVG label: at most max code points, cut with an ellipsis. */
static void put_esc_short(struct out *w, const char *s, size_t n, size_t max)
{
	size_t i = 0, k = 0;
	while (i < n && k < max) {
		next_cp(s, n, &i);
		k++;
	}
	if (i >= n) {
		put_esc(w, s, n);
		return;
	}
	size_t j = 0;
	for (k = 0; k + 1 < max; k++)
		next_cp(s, n, &j);
	put_esc(w, s, j);
	put(w, "&#8230;");
}

/* clang-format off */
static const char page_css[] =
	":root{--fg:#1f2933;--muted:#616e7c;--bg:#f4f6f8;--card:#fff;--line:#e1e5ea;"
	"--track:#edf0f3;--accent:#2f6fde;--warn:#c2410c}\n"
	"@media (prefers-color-scheme:dark){:root{--fg:#e4e7eb;--muted:#9aa5b1;--bg:#14181d;"
	"--card:#1d232a;--line:#2e3640;--track:#27303a;--accent:#6ea0ff;--warn:#fb923c}}\n"
	"*{box-sizing:border-box}\n"
	"body{margin:0;background:var(--bg);color:var(--fg);"
	"font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\n"
	"main{max-width:1120px;margin:0 auto;padding:28px 20px 48px}\n"
	"h1{font-size:22px;margin:0 0 2px;word-break:break-all}\n"
	"h2{font-size:16px;margin:0 0 12px}\n"
	"h3{font-size:14px;margin:0 0 2px;word-break:break-all}\n"
	".sub,.note{color:var(--muted)}\n.note{font-size:12px}\n"
	"code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}\n"
	".cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:12px;"
	"margin:20px 0}\n"
	".card,section{background:var(--card);border:1px solid var(--line);border-radius:10px}\n"
	".card{padding:14px 16px}\n"
	".card .k{color:var(--muted);font-size:12px;text-transform:uppercase;"
	"letter-spacing:.05em}\n"
	".card .v{font-size:26px;font-weight:600;font-variant-numeric:tabular-nums;margin:2px 0}\n"
	".card .v.warn{color:var(--warn)}\n"
	"section{padding:18px 20px;margin:16px 0}\n"
	".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:18px}\n"
	".hist{border-top:1px solid var(--line);padding-top:10px}\n"
	"svg{display:block;width:100%;height:auto}\n"
	"svg text{font:11px system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
	"fill:var(--muted)}\n"
	"svg .name{fill:var(--fg)}\n"
	".track{fill:var(--track)}\n.bar{fill:var(--accent)}\n"
	".axis{stroke:var(--line);stroke-width:1}\n"
	".mark{stroke:var(--fg);stroke-width:1;stroke-dasharray:3 3;opacity:.7}\n"
	".t-string{fill:#2f6fde;background:#2f6fde}.t-number{fill:#16a34a;background:#16a34a}"
	".t-boolean{fill:#d97706;background:#d97706}.t-null{fill:#9aa5b1;background:#9aa5b1}"
	".t-object{fill:#7c3aed;background:#7c3aed}.t-array{fill:#0d9488;background:#0d9488}\n"
	".legend{display:flex;flex-wrap:wrap;gap:6px 16px;margin:8px 0 0;padding:0;"
	"list-style:none;font-size:12.5px}\n"
	".sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;"
	"vertical-align:-1px}\n"
	".stats{margin:6px 0 0;font-size:12px;color:var(--muted);"
	"font-variant-numeric:tabular-nums}\n"
	".scroll{overflow-x:auto}\n"
	"table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;"
	"font-size:12.5px}\n"
	"th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:right;"
	"white-space:nowrap}\n"
	"th{color:var(--muted);font-weight:600;position:sticky;top:0;background:var(--card)}\n"
	"th:first-child,td:first-child{text-align:left;white-space:normal;word-break:break-all}\n"
	"td.l{text-align:left}\n"
	".gap{margin-top:14px}\n"
	"footer{color:var(--muted);font-size:12px;margin-top:24px}\n";
/* clang-format on */

/* A colour for each script, the same in every chart and every report; "Other" and "none"
 * (records without letters) are greys. */
/* clang-format off */
static const struct {
	const char *script, *colour;
} script_colours[] = {
	{"Latin", "#2f6fde"},    {"Greek", "#8e44ad"},    {"Cyrillic", "#e4572e"},
	{"Armenian", "#b5179e"}, {"Hebrew", "#29335c"},   {"Arabic", "#17a398"},
	{"Devanagari", "#f3a712"}, {"Bengali", "#6a994e"}, {"Tamil", "#c2185b"},
	{"Thai", "#4cc9f0"},     {"Georgian", "#7f5539"}, {"Hangul", "#0d9488"},
	{"Hiragana", "#ff7f11"}, {"Katakana", "#d97706"}, {"Han", "#dc2626"},
	{"Ethiopic", "#16a34a"}, {"Other", "#9aa5b1"},    {"none", "#cbd2d9"},
};
/* clang-format on */

static const char *script_colour(const char *name)
{
	for (size_t i = 0; i < sizeof script_colours / sizeof script_colours[0]; i++)
		if (!strcmp(name, script_colours[i].script))
			return script_colours[i].colour;
	return "#616e7c"; /* a name from a newer report */
}

/* A summary card: a big number, then a note written by the caller, then card_end(). */
static void card_begin(struct out *w, const char *key, uint64_t value, bool warn)
{
	putf(w, "<div class=\"card\"><div class=\"k\">%s</div><div class=\"v%s\">", key,
	     warn ? " warn" : "");
	put_count(w, value);
	put(w, "</div><div class=\"note\">");
}

static void card_end(struct out *w)
{
	put(w, "</div></div>\n");
}

static void html_cards(struct out *w, const json_t *report)
{
	uint64_t records = num(report, "records"), bad = num(report, "bad");
	const json_t *d = get(report, "duplicates");
	const json_t *dr = get(d, "records"), *dt = get(d, "text");
	size_t tl;
	const char *tf = str(report, "text_field", &tl);
	put(w, "<div class=\"cards\">\n");
	card_begin(w, "Records", records, false);
	put(w, "valid JSON objects");
	card_end(w);
	card_begin(w, "Bad records", bad, bad > 0);
	put_pct_html(w, fraction_of(bad, records + bad));
	put(w, " of all lines");
	card_end(w);
	card_begin(w, "Duplicate records", num(dr, "duplicates"), false);
	put_pct_html(w, fraction_of(num(dr, "duplicates"), num(dr, "counted")));
	put(w, json_is_true(get(dr, "estimated")) ? " of records, estimated" : " of records");
	card_end(w);
	card_begin(w, "Duplicate texts", num(dt, "duplicates"), false);
	if (num(dt, "counted")) {
		put_pct_html(w, fraction_of(num(dt, "duplicates"), num(dt, "counted")));
		put(w, " of ");
		put_count(w, num(dt, "counted"));
		put(w, " values of <code>");
		put_esc(w, tf, tl);
		put(w, json_is_true(get(dt, "estimated")) ? "</code>, estimated" : "</code>");
	} else {
		put(w, "no string <code>");
		put_esc(w, tf, tl);
		put(w, "</code> field");
	}
	card_end(w);
	put(w, "</div>\n");
}

/* One row per field: a bar as long as the field's presence, split by JSON type. */
static void html_presence(struct out *w, const json_t *report)
{
	size_t nf = nfields(report);
	uint64_t records = num(report, "records");
	const double label_w = 200, bar_x = 210, bar_w = 470, row_h = 24;
	double height = (double)nf * row_h + 8;
	put(w, "<section><h2>Fields</h2>\n");
	if (!nf) {
		put(w, "<p class=\"sub\">No fields: no good records.</p></section>\n");
		return;
	}
	putf(w, "<svg viewBox=\"0 0 760 %.0f\" role=\"img\" aria-label=\"field presence\">\n",
	     height);
	for (size_t i = 0; i < nf; i++) {
		const json_t *f = field_at(report, i);
		size_t n;
		const char *name = str(f, "name", &n);
		double frac = fraction_of(num(f, "present"), records), y = 4 + (double)i * row_h;
		uint64_t counts[NTYPES], sum = 0;
		int order[NTYPES];
		int nt = types_by_count(f, counts, order);
		for (int t = 0; t < NTYPES; t++)
			sum += counts[t];
		put(w, "<g><title>");
		put_esc(w, name, n);
		put(w, ": in ");
		put_count(w, num(f, "present"));
		put(w, " records (");
		put_pct_html(w, frac);
		put(w, ")");
		for (int k = 0; k < nt; k++) {
			putf(w, "%s%s ", k ? ", " : "; ", type_names[order[k]]);
			put_count(w, counts[order[k]]);
		}
		put(w, "</title>");
		putf(w, "<text class=\"name\" x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">", label_w,
		     y + 15);
		put_esc_short(w, name, n, 30);
		put(w, "</text>");
		putf(w,
		     "<rect class=\"track\" x=\"%.0f\" y=\"%.1f\" width=\"%.0f\" height=\"14\" "
		     "rx=\"3\"/>",
		     bar_x, y + 4, bar_w);
		double x = bar_x;
		for (int k = 0; k < nt && sum; k++) {
			double seg = bar_w * frac * (double)counts[order[k]] / (double)sum;
			putf(w,
			     "<rect class=\"t-%s\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" "
			     "height=\"14\"/>",
			     type_names[order[k]], x, y + 4, seg);
			x += seg;
		}
		putf(w, "<text x=\"%.0f\" y=\"%.1f\">", bar_x + bar_w + 8, y + 15);
		put_pct_html(w, frac);
		put(w, "</text></g>\n");
	}
	put(w, "</svg>\n<ul class=\"legend\">");
	for (int t = 0; t < NTYPES; t++)
		putf(w, "<li><span class=\"sw t-%s\"></span>%s</li>", type_names[t], type_names[t]);
	put(w, "</ul></section>\n");
}

/* Where value v falls on a chart of equal-width bins: bin index plus the part of it. */
static double bin_pos(const json_t *bins, uint64_t v)
{
	size_t nb = json_array_size(bins);
	for (size_t k = 0; k < nb; k++) {
		const json_t *b = json_array_get(bins, k);
		uint64_t lo = num(b, "lo"), hi = num(b, "hi");
		if (v < hi || k + 1 == nb) {
			/* the middle of the value's unit, so a one-value bin is marked at its
			 * centre */
			double part =
			    hi > lo ? ((double)(v > lo ? v - lo : 0) + 0.5) / (double)(hi - lo)
				    : 0.5;
			return (double)k + (part > 1 ? 1 : part);
		}
	}
	return 0;
}

/* How a distribution chart is labelled: the heading, what is counted ("length in
 * characters", "strings"), the unit in bar tips and under the axis. */
struct dist_labels {
	const char *name;
	size_t name_len;
	const char *what, *items, *unit, *axis, *aria;
};

/* A histogram of a distribution D, with markers at p50 and p90; empty, when not NULL, is the
 * object whose "empty" count is shown beneath. */
static void html_dist(struct out *w, const json_t *chars, const struct dist_labels *lb,
		      const json_t *empty)
{
	const json_t *bins = get(chars, "histogram");
	size_t nb = json_array_size(bins);
	if (!nb)
		return;
	/* Bars of equal width (the bins are log-spaced), at most 28 wide, centred. */
	const double left = 46, right = 352, y0 = 18, y1 = 138;
	double bw = (right - left) / (double)nb;
	if (bw > 28)
		bw = 28;
	double x0 = left + ((right - left) - bw * (double)nb) / 2, x1 = x0 + bw * (double)nb;
	uint64_t cmax = 1;
	for (size_t k = 0; k < nb; k++)
		if (num(json_array_get(bins, k), "count") > cmax)
			cmax = num(json_array_get(bins, k), "count");
	put(w, "<div class=\"hist\"><h3>");
	put_esc(w, lb->name, lb->name_len);
	putf(w, "</h3><div class=\"note\">%s, ", lb->what);
	put_count(w, num(chars, "count"));
	putf(w, " %s, log scale</div>\n", lb->items);
	putf(w, "<svg viewBox=\"0 0 360 172\" role=\"img\" aria-label=\"histogram of %s\">\n",
	     lb->aria);
	putf(w, "<line class=\"axis\" x1=\"%.2f\" y1=\"%.0f\" x2=\"%.2f\" y2=\"%.0f\"/>", x0, y1,
	     x1, y1);
	putf(w, "<line class=\"axis\" x1=\"%.2f\" y1=\"%.0f\" x2=\"%.2f\" y2=\"%.0f\"/>\n", x0, y0,
	     x0, y1);
	putf(w, "<text x=\"%.2f\" y=\"%.0f\" text-anchor=\"end\">", x0 - 4, y0 + 4);
	put_count(w, cmax);
	putf(w, "</text><text x=\"%.2f\" y=\"%.0f\" text-anchor=\"end\">0</text>\n", x0 - 4, y1);
	for (size_t k = 0; k < nb; k++) {
		const json_t *b = json_array_get(bins, k);
		uint64_t c = num(b, "count");
		double h = (y1 - y0) * (double)c / (double)cmax;
		if (c && h < 1)
			h = 1;
		putf(w,
		     "<rect class=\"bar\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\">"
		     "<title>",
		     x0 + bw * (double)k + 0.5, y1 - h, bw > 2 ? bw - 1 : bw, h);
		put_count(w, num(b, "lo"));
		if (num(b, "hi") > num(b, "lo") + 1) {
			put(w, "&#8211;");
			put_count(w, num(b, "hi") - 1);
		}
		putf(w, " %s: ", lb->unit);
		put_count(w, c);
		put(w, "</title></rect>\n");
	}
	/* Markers for the median and the 90th percentile; labels kept apart when close. */
	double xm = x0 + bw * bin_pos(bins, num(chars, "p50"));
	double x9 = x0 + bw * bin_pos(bins, num(chars, "p90"));
	bool close = fabs(x9 - xm) < 30;
	putf(w, "<line class=\"mark\" x1=\"%.2f\" y1=\"%.0f\" x2=\"%.2f\" y2=\"%.0f\"/>", xm,
	     y0 - 6, xm, y1);
	putf(w, "<text class=\"name\" x=\"%.2f\" y=\"%.0f\" text-anchor=\"middle\">p50</text>\n",
	     fmin(fmax(xm, 14), 346), y0 - 8);
	putf(w, "<line class=\"mark\" x1=\"%.2f\" y1=\"%.0f\" x2=\"%.2f\" y2=\"%.0f\"/>", x9,
	     close ? y0 + 6 : y0 - 6, x9, y1);
	if (!close)
		putf(w,
		     "<text class=\"name\" x=\"%.2f\" y=\"%.0f\" text-anchor=\"middle\">p90"
		     "</text>\n",
		     fmin(x9, 346), y0 - 8);
	else if (x9 + 26 < 360) /* beside its line, lower down */
		putf(w, "<text class=\"name\" x=\"%.2f\" y=\"%.0f\">p90</text>\n", x9 + 3, y0 + 10);
	else
		putf(w,
		     "<text class=\"name\" x=\"%.2f\" y=\"%.0f\" text-anchor=\"end\">p90"
		     "</text>\n",
		     x9 - 3, y0 + 10);
	/* Axis labels: the ends, and the percentiles where there is room. */
	putf(w, "<text x=\"%.2f\" y=\"%.0f\"%s>", nb == 1 ? (x0 + x1) / 2 : x0, y1 + 15,
	     nb == 1 ? " text-anchor=\"middle\"" : "");
	put_count(w, num(chars, "min"));
	put(w, "</text>");
	if (nb > 1) {
		putf(w, "<text x=\"%.2f\" y=\"%.0f\" text-anchor=\"end\">", x1, y1 + 15);
		put_count(w, num(chars, "max"));
		put(w, "</text>");
	}
	put(w, "\n");
	if (xm - x0 > 30 && x1 - xm > 30) {
		putf(w, "<text class=\"name\" x=\"%.2f\" y=\"%.0f\" text-anchor=\"middle\">", xm,
		     y1 + 15);
		put_count(w, num(chars, "p50"));
		put(w, "</text>");
	}
	if (x9 - xm > 40 && x1 - x9 > 30) {
		putf(w, "<text class=\"name\" x=\"%.2f\" y=\"%.0f\" text-anchor=\"middle\">", x9,
		     y1 + 15);
		put_count(w, num(chars, "p90"));
		put(w, "</text>");
	}
	putf(w, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n",
	     (left + right) / 2, y1 + 31, lb->axis);
	put(w, "</svg>\n<div class=\"stats\">min ");
	put_count(w, num(chars, "min"));
	put(w, " &middot; p50 ");
	put_count(w, num(chars, "p50"));
	put(w, " &middot; p90 ");
	put_count(w, num(chars, "p90"));
	put(w, " &middot; p99 ");
	put_count(w, num(chars, "p99"));
	put(w, " &middot; max ");
	put_count(w, num(chars, "max"));
	put(w, " &middot; mean ");
	put_mean(w, real(chars, "mean"));
	if (get(empty, "empty")) {
		put(w, " &middot; empty ");
		put_count(w, num(empty, "empty"));
	}
	put(w, "</div></div>\n");
}

static void html_histogram(struct out *w, const json_t *f)
{
	struct dist_labels lb = {.what = "length in characters", .items = "strings",
				 .unit = "chars", .axis = "characters", .aria = "lengths"};
	lb.name = str(f, "name", &lb.name_len);
	html_dist(w, get(get(f, "length"), "chars"), &lb, f);
}

static void html_lengths(struct out *w, const json_t *report)
{
	size_t nf = nfields(report), shown = 0;
	for (size_t i = 0; i < nf; i++)
		shown += json_array_size(get(get(get(field_at(report, i), "length"), "chars"),
					     "histogram")) > 0;
	if (!shown)
		return;
	put(w, "<section><h2>Lengths of string fields</h2>\n<div class=\"grid\">\n");
	for (size_t i = 0; i < nf; i++)
		html_histogram(w, field_at(report, i));
	put(w, "</div></section>\n");
}

/* The colour of part i of a bar, named name. */
typedef const char *colour_fn(const char *name, size_t i);

static const char *colour_of_script(const char *name, size_t i)
{
	(void)i;
	return script_colour(name);
}

/* Splits: the usual three always in the same colours, then a palette; "(other)" grey. */
static const char *colour_of_split(const char *name, size_t i)
{
	static const char *const palette[] = {"#7c3aed", "#0d9488", "#dc2626",
					      "#8e44ad", "#f3a712", "#29335c"};
	if (!strcmp(name, "train"))
		return "#2f6fde";
	if (!strcmp(name, "val") || !strcmp(name, "validation"))
		return "#d97706";
	if (!strcmp(name, "test"))
		return "#16a34a";
	if (!strcmp(name, "(other)"))
		return "#9aa5b1";
	return palette[i % (sizeof palette / sizeof palette[0])];
}

/* A bar of 100 % split into the parts of list: objects with a name (name_key) and a count
 * (key), coloured by colour. */
static void html_stacked_by(struct out *w, const json_t *list, const char *name_key,
			    const char *key, uint64_t total, const char *what, colour_fn *colour)
{
	double x = 0;
	put(w, "<svg viewBox=\"0 0 1000 30\" preserveAspectRatio=\"none\" role=\"img\" "
	       "style=\"height:30px\">");
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *e = json_array_get(list, i);
		size_t n;
		const char *name = str(e, name_key, &n);
		double wd = 1000 * fraction_of(num(e, key), total);
		putf(w, "<rect x=\"%.2f\" y=\"0\" width=\"%.2f\" height=\"30\" fill=\"%s\"><title>",
		     x, wd, colour(name, i));
		put_esc(w, name, n);
		put(w, ": ");
		put_count(w, num(e, key));
		putf(w, " %s (", what);
		put_pct_html(w, fraction_of(num(e, key), total));
		put(w, ")</title></rect>");
		x += wd;
	}
	put(w, "</svg>\n<ul class=\"legend\">");
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *e = json_array_get(list, i);
		size_t n;
		const char *name = str(e, name_key, &n);
		putf(w, "<li><span class=\"sw\" style=\"background:%s\"></span>", colour(name, i));
		put_esc(w, name, n);
		put(w, " ");
		put_pct_html(w, fraction_of(num(e, key), total));
		put(w, " <span class=\"note\">(");
		put_count(w, num(e, key));
		put(w, ")</span></li>");
	}
	put(w, "</ul>\n");
}

/* The same for a list of scripts. */
static void html_stacked(struct out *w, const json_t *list, const char *key, uint64_t total,
			 const char *what)
{
	html_stacked_by(w, list, "script", key, total, what, colour_of_script);
}

static void html_scripts(struct out *w, const json_t *report)
{
	const json_t *sc = get(report, "scripts");
	const json_t *by_letters = get(sc, "by_letters"), *by_records = get(sc, "by_records");
	size_t tl;
	const char *tf = str(report, "text_field", &tl);
	uint64_t nrec = 0;
	for (size_t i = 0; i < json_array_size(by_records); i++)
		nrec += num(json_array_get(by_records, i), "records");
	put(w, "<section><h2>Writing systems in <code>");
	put_esc(w, tf, tl);
	put(w, "</code></h2>\n");
	if (!nrec) {
		put(w, "<p class=\"sub\">No records have this field as a string.</p></section>\n");
		return;
	}
	put(w, "<p class=\"note\">Letters by script (");
	put_count(w, num(sc, "letters"));
	put(w, " letters)</p>\n");
	if (json_array_size(by_letters))
		html_stacked(w, by_letters, "letters", num(sc, "letters"), "letters");
	else
		put(w, "<p class=\"sub\">No letters.</p>\n");
	put(w, "<p class=\"note\">Records by main script</p>\n");
	html_stacked(w, by_records, "records", nrec, "records");
	put(w, "</section>\n");
}

static void html_td_count(struct out *w, const json_t *o, const char *k)
{
	put(w, "<td>");
	if (get(o, k))
		put_count(w, num(o, k));
	put(w, "</td>");
}

/* A ratio with three decimals (0.240), for the token rates. */
static void put_ratio(struct out *w, double v)
{
	putf(w, "%.3f", v >= 0 && v < 1e9 ? v : 0.0);
}

static void html_tokens(struct out *w, const json_t *report)
{
	const json_t *list = get(report, "tokens");
	if (!json_array_size(list))
		return;
	size_t tl;
	const char *tf = str(report, "text_field", &tl);
	put(w, "<section><h2>Tokens in <code>");
	put_esc(w, tf, tl);
	put(w, "</code></h2>\n<div class=\"grid\">\n");
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *t = json_array_get(list, i), *d = get(t, "per_record");
		struct dist_labels lb = {.what = "tokens per text",
					 .items = "texts",
					 .unit = "tokens",
					 .axis = "tokens",
					 .aria = "token counts"};
		lb.name = str(t, "name", &lb.name_len);
		if (json_array_size(get(d, "histogram"))) {
			html_dist(w, d, &lb, NULL);
		} else {
			put(w, "<div class=\"hist\"><h3>");
			put_esc(w, lb.name, lb.name_len);
			put(w, "</h3><div class=\"note\">no texts</div></div>\n");
		}
	}
	put(w,
	    "</div>\n<div class=\"scroll gap\"><table>\n<thead><tr><th>encoding</th><th>texts</th>"
	    "<th>tokens</th><th>per text p50</th><th>p90</th><th>max</th><th>mean</th>"
	    "<th>tokens per char</th><th>tokens per word</th><th>chars per token</th>"
	    "</tr></thead>\n<tbody>\n");
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *t = json_array_get(list, i), *d = get(t, "per_record");
		size_t n;
		const char *name = str(t, "name", &n);
		put(w, "<tr><td><code>");
		put_esc(w, name, n);
		put(w, "</code></td>");
		html_td_count(w, t, "records");
		html_td_count(w, t, "tokens");
		html_td_count(w, d, "p50");
		html_td_count(w, d, "p90");
		html_td_count(w, d, "max");
		put(w, "<td>");
		if (d)
			put_mean(w, real(d, "mean"));
		put(w, "</td><td>");
		put_ratio(w, real(t, "tokens_per_char"));
		put(w, "</td><td>");
		put_ratio(w, real(t, "tokens_per_word"));
		put(w, "</td><td>");
		if (num(t, "tokens"))
			put_ratio(w, (double)num(t, "chars") / (double)num(t, "tokens"));
		put(w, "</td></tr>\n");
	}
	put(w, "</tbody></table></div>\n<p class=\"note\">Special tokens in the text count as "
	       "text, as tiktoken's encode_ordinary does.</p></section>\n");
}

/* Horizontal bars, one per entry of list: its label (label_key, and name_key after it when
 * given), a bar as long as its count of key against the largest, and the numbers. */
static void html_bars(struct out *w, const json_t *list, const char *label_key,
		      const char *name_key, size_t max_rows, const char *aria)
{
	size_t rows = json_array_size(list);
	if (rows > max_rows)
		rows = max_rows;
	uint64_t top = 1;
	for (size_t i = 0; i < rows; i++)
		if (num(json_array_get(list, i), "flags") > top)
			top = num(json_array_get(list, i), "flags");
	const double label_w = 380, bar_x = 390, bar_w = 270, row_h = 22;
	putf(w, "<svg viewBox=\"0 0 760 %.0f\" role=\"img\" aria-label=\"%s\">\n",
	     (double)rows * row_h + 6, aria);
	for (size_t i = 0; i < rows; i++) {
		const json_t *e = json_array_get(list, i);
		size_t kn, nn = 0;
		const char *k = str(e, label_key, &kn), *nm = name_key ? str(e, name_key, &nn) : "";
		double y = 3 + (double)i * row_h,
		       len = bar_w * (double)num(e, "flags") / (double)top;
		put(w, "<g><title>");
		put_esc(w, k, kn);
		if (name_key) {
			put(w, " ");
			put_esc(w, nm, nn);
		}
		put(w, ": ");
		put_count(w, num(e, "flags"));
		put(w, " flags in ");
		put_count(w, num(e, "records"));
		put(w, " records</title>");
		putf(w, "<text class=\"name\" x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">", label_w,
		     y + 14);
		if (name_key) {
			put_esc_short(w, k, kn, 14);
			put(w, " &#183; ");
			put_esc_short(w, nm, nn, 42);
		} else {
			put_esc_short(w, k, kn, 40);
		}
		putf(w,
		     "</text><rect class=\"track\" x=\"%.0f\" y=\"%.1f\" width=\"%.0f\" "
		     "height=\"12\" rx=\"3\"/><rect class=\"bar\" x=\"%.0f\" y=\"%.1f\" "
		     "width=\"%.2f\" height=\"12\" rx=\"3\"/>",
		     bar_x, y + 4, bar_w, bar_x, y + 4, len < 1 && num(e, "flags") ? 1 : len);
		putf(w, "<text x=\"%.0f\" y=\"%.1f\">", bar_x + bar_w + 8, y + 14);
		put_count(w, num(e, "flags"));
		put(w, "</text></g>\n");
	}
	put(w, "</svg>\n");
}

static void html_flags(struct out *w, const json_t *report)
{
	const json_t *f = get(report, "flags");
	if (!f)
		return;
	size_t fl;
	const char *field = str(f, "field", &fl);
	const json_t *kinds = get(f, "by_kind"), *names = get(f, "by_name");
	put(w, "<section><h2>Flags in <code>");
	put_esc(w, field, fl);
	put(w, "</code></h2>\n<p class=\"note\">");
	put_count(w, num(f, "flagged"));
	put(w, " records flagged (");
	put_pct_html(w, fraction_of(num(f, "flagged"), num(report, "records")));
	put(w, " of all), ");
	put_count(w, num(f, "flags"));
	put(w, " flags");
	if (num(f, "not_array")) {
		put(w, "; ");
		put_count(w, num(f, "not_array"));
		put(w, " records where the field is not an array of flags");
	}
	put(w, "</p>\n");
	if (json_array_size(kinds)) {
		put(w, "<h3>By kind</h3>\n");
		html_bars(w, kinds, "kind", NULL, 30, "flags by kind");
	}
	if (json_array_size(names)) {
		put(w, "<h3 class=\"gap\">By kind and type or rule</h3>\n");
		html_bars(w, names, "kind", "name", 30, "flags by kind and name");
		if (json_array_size(names) > 30) {
			put(w, "<p class=\"note\">");
			put_count(w, json_array_size(names) - 30);
			put(w, " more in the JSON report.</p>\n");
		}
	}
	put(w, "</section>\n");
}

static void html_clusters(struct out *w, const json_t *report)
{
	const json_t *c = get(report, "clusters");
	if (!c)
		return;
	const json_t *largest = get(c, "largest");
	size_t fl, dl;
	const char *field = str(c, "field", &fl), *dfield = str(c, "duplicate_field", &dl);
	bool est = json_is_true(get(c, "estimated"));
	put(w, "<section><h2>Clusters</h2>\n<div class=\"cards\">\n");
	if (num(c, "records")) {
		card_begin(w, "Clusters", num(c, "clusters"), false);
		put(w, "distinct <code>");
		put_esc(w, field, fl);
		put(w, "</code> in ");
		put_count(w, num(c, "records"));
		put(w, est ? " records, estimated" : " records");
		card_end(w);
		card_begin(w, "In clusters of 2+", num(c, "in_multi"), false);
		put(w, "records (");
		put_pct_html(w, fraction_of(num(c, "in_multi"), num(c, "records")));
		put(w, ") in ");
		put_count(w, num(c, "multi"));
		put(w, " clusters");
		card_end(w);
		uint64_t big = json_array_size(largest) ? num(json_array_get(largest, 0), "records")
							: (num(c, "clusters") ? 1 : 0);
		card_begin(w, "Largest cluster", big, false);
		put(w, "records");
		card_end(w);
	}
	card_begin(w, "Marked duplicate", num(c, "duplicates"), false);
	put(w, "records with <code>");
	put_esc(w, dfield, dl);
	put(w, "</code> true");
	card_end(w);
	put(w, "</div>\n");
	if (json_array_size(largest)) {
		put(w, "<h3 class=\"gap\">Largest clusters</h3>\n<table><thead><tr><th>");
		put_esc(w, field, fl);
		put(w, "</th><th>records</th></tr></thead><tbody>\n");
		for (size_t i = 0; i < json_array_size(largest); i++) {
			const json_t *e = json_array_get(largest, i);
			size_t n;
			const char *id = str(e, "id", &n);
			put(w, "<tr><td><code>");
			put_esc(w, id, n);
			put(w, "</code></td>");
			html_td_count(w, e, "records");
			put(w, "</tr>\n");
		}
		put(w, "</tbody></table>\n");
	}
	put(w, "</section>\n");
}

static void html_splits(struct out *w, const json_t *report)
{
	const json_t *sp = get(report, "splits"), *list = get(sp, "by_split");
	if (!sp)
		return;
	size_t fl;
	const char *field = str(sp, "field", &fl);
	put(w, "<section><h2>Splits in <code>");
	put_esc(w, field, fl);
	put(w, "</code></h2>\n");
	html_stacked_by(w, list, "split", "records", num(sp, "records"), "records",
			colour_of_split);
	put(w, "<table class=\"gap\"><thead><tr><th>split</th><th>records</th><th>%</th>"
	       "<th>text chars p50</th></tr></thead><tbody>\n");
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *e = json_array_get(list, i);
		size_t n;
		const char *name = str(e, "split", &n);
		put(w, "<tr><td><code>");
		put_esc(w, name, n);
		put(w, "</code></td>");
		html_td_count(w, e, "records");
		put(w, "<td>");
		put_pct_html(w, real(e, "fraction"));
		put(w, "</td>");
		html_td_count(w, e, "chars_p50");
		put(w, "</tr>\n");
	}
	put(w, "</tbody></table></section>\n");
}

static void html_table(struct out *w, const json_t *report)
{
	size_t nf = nfields(report);
	uint64_t records = num(report, "records");
	if (!nf)
		return;
	put(w, "<section><h2>Numbers</h2>\n<div class=\"scroll\"><table>\n<thead><tr>"
	       "<th>field</th><th>present</th><th>%</th><th>types</th><th>empty</th>"
	       "<th>chars min</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>mean</th>"
	       "<th>words p50</th><th>p90</th><th>max</th><th>bytes p50</th><th>max</th>"
	       "</tr></thead>\n<tbody>\n");
	for (size_t i = 0; i < nf; i++) {
		const json_t *f = field_at(report, i);
		const json_t *len = get(f, "length");
		const json_t *chars = get(len, "chars"), *words = get(len, "words"),
			     *bytes = get(len, "bytes");
		size_t n;
		const char *name = str(f, "name", &n);
		uint64_t counts[NTYPES];
		int order[NTYPES];
		int nt = types_by_count(f, counts, order);
		put(w, "<tr><td><code>");
		put_esc(w, name, n);
		put(w, "</code></td>");
		html_td_count(w, f, "present");
		put(w, "<td>");
		put_pct_html(w, fraction_of(num(f, "present"), records));
		put(w, "</td><td class=\"l\">");
		for (int k = 0; k < nt; k++) {
			putf(w, "%s<span class=\"sw t-%s\"></span>%s", k ? " " : "",
			     type_names[order[k]], type_names[order[k]]);
			if (nt > 1) {
				put(w, " ");
				put_count(w, counts[order[k]]);
			}
		}
		put(w, "</td>");
		html_td_count(w, f, "empty");
		html_td_count(w, chars, "min");
		html_td_count(w, chars, "p50");
		html_td_count(w, chars, "p90");
		html_td_count(w, chars, "p99");
		html_td_count(w, chars, "max");
		put(w, "<td>");
		if (chars)
			put_mean(w, real(chars, "mean"));
		put(w, "</td>");
		html_td_count(w, words, "p50");
		html_td_count(w, words, "p90");
		html_td_count(w, words, "max");
		html_td_count(w, bytes, "p50");
		html_td_count(w, bytes, "max");
		put(w, "</tr>\n");
	}
	put(w,
	    "</tbody></table></div>\n<p class=\"note\">Lengths are of decoded strings: characters "
	    "are Unicode code points, words are runs of non-whitespace, bytes are UTF-8. "
	    "Percentiles are exact below 2,048 and within 0.4% above.</p></section>\n");
}

static void html_bad(struct out *w, const json_t *report)
{
	const json_t *reasons = get(report, "bad_by_reason");
	if (!json_object_size(reasons))
		return;
	put(w, "<section><h2>Bad records</h2>\n<table><tbody>\n");
	for (void *it = json_object_iter((json_t *)reasons); it;
	     it = json_object_iter_next((json_t *)reasons, it)) {
		const char *k = json_object_iter_key(it);
		put(w, "<tr><td><code>");
		put_esc_str(w, k);
		put(w, "</code></td>");
		html_td_count(w, reasons, k);
		put(w, "</tr>\n");
	}
	put(w, "</tbody></table></section>\n");
}

enum llm_err llm_stats_render_html(const json_t *report, const char *title, struct llm_buf *b)
{
	if (!json_is_object(report))
		return LLM_ERR_TYPE;
	if (!title)
		title = "";
	struct out w = {b, LLM_OK};
	put(&w, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
		"<title>");
	put_esc_str(&w, title);
	put(&w, " &#8212; llm-prep stats</title>\n<style>\n");
	put(&w, page_css);
	put(&w, "</style>\n</head>\n<body>\n<main>\n<header><h1>");
	put_esc_str(&w, title);
	put(&w, "</h1><div class=\"sub\">llm-prep stats &middot; ");
	put_count(&w, nfields(report));
	put(&w, nfields(report) == 1 ? " field" : " fields");
	put(&w, "</div></header>\n");
	html_cards(&w, report);
	html_presence(&w, report);
	html_lengths(&w, report);
	html_tokens(&w, report);
	html_scripts(&w, report);
	html_flags(&w, report);
	html_clusters(&w, report);
	html_splits(&w, report);
	html_table(&w, report);
	html_bad(&w, report);
	put(&w, "<footer>Made by llm-prep stats from its JSON report; no scripts, nothing fetched."
		"</footer>\n</main>\n</body>\n</html>\n");
	return w.e;
}
