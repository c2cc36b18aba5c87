/* Exploratory statistics over JSONL records: accumulation and the JSON report.
 *
 * The report (llm_stats_report) has this layout; keys are stable, and new keys are only ever
 * added:
 *
 *   {
 *     "records": N,                      good records
 *     "bad": N,                          bad records (rejected by the reader or by --on-error)
 *     "bad_by_reason": {"invalid_json": N, ...},      only reasons that occurred
 *     "fields": [                        top-level fields in first-seen order
 *       {"name": "text",                 the decoded key
 *        "present": N,                   records that have it
 *        "fraction": F,                  present / records
 *        "types": {"string": N, "number": N, "boolean": N, "null": N, "object": N, "array": N},
 *        "empty": N,                     string values empty or only whitespace  } only for
 *        "length": {"chars": D,          Unicode code points of the decoded value } measured
 *                   "words": D,          maximal runs of non-White_Space         } string
 *                   "bytes": D}},        UTF-8 bytes of the decoded value        } fields
 *       {"name": "(other)", "other": true, ...}   fields past max_fields, when there were any
 *     ],
 *     "text_field": "text",
 *     "duplicates": {
 *       "records": {"counted": N, "distinct": N, "duplicates": N, "estimated": B},
 *       "text": {"counted": N, "distinct": N, "duplicates": N, "estimated": B}
 *     },
 *     "scripts": {
 *       "letters": N,                    letters in the text field, all records
 *       "by_letters": [{"script": "Latin", "letters": N, "fraction": F}, ...],
 *       "by_records": [{"script": "Latin", "records": N}, ..., {"script": "none", ...}]
 *     },
 *     "tokens": [                        only with tokenizers (cfg->tokenizers), in order
 *       {"name": "cl100k_base",
 *        "records": N,                   texts (string text fields) tokenized
 *        "tokens": N, "chars": N, "words": N,     totals over those texts
 *        "tokens_per_char": F, "tokens_per_word": F,  ratios of the totals
 *        "per_record": D}                tokens per text; absent when no texts
 *     ],
 *     "flags": {                         only when some record has the flags field
 *       "field": "flags", "records": N,  records with the field
 *       "flagged": N,                    records with at least one flag
 *       "flags": N,                      flags in all
 *       "not_array": N,                  records whose field is not a readable array
 *       "by_kind": [{"kind": "pii", "flags": N, "records": N}, ...],
 *       "by_name": [{"kind": "pii", "name": "email", "flags": N, "records": N}, ...]
 *     },
 *     "clusters": {                      only when some record has a cluster id or the mark
 *       "field": "cluster_id", "records": N,   records with a cluster id (not null)
 *       "clusters": N,                   distinct ids
 *       "multi": N, "in_multi": N,       clusters of two or more records, and their records
 *       "largest": [{"id": "...", "records": N}, ...],  up to 10 of those, largest first
 *       "estimated": B,
 *       "duplicate_field": "duplicate", "duplicates": N   records whose mark is true
 *     },
 *     "splits": {                        only when some record has the split field
 *       "field": "split", "records": N,
 *       "by_split": [{"split": "train", "records": N, "fraction": F, "chars_p50": N}, ...]
 *     }
 *   }
 *
 * where a distribution D is
 *
 *   {"count": N, "min": N, "max": N, "mean": F, "p50": N, "p90": N, "p99": N,
 *    "histogram": [{"lo": N, "hi": N, "count": N}, ...]}
 *
 * with histogram bins [lo, hi), log-spaced, contiguous from min to max, empty bins included,
 * so a chart can draw them as equal-width bars on a log axis.  Lists of scripts are sorted by
 * count, largest first.  "estimated" is true once more than max_exact_distinct distinct values
 * were seen and the counts come from a HyperLogLog sketch.
 *
 * A record with the same key twice counts the first occurrence only (as llm_json_get does).
 * A text field that is not a string counts as absent for duplicates and scripts.
 *
 * A flag is an object whose "kind" is its kind and whose "rule", else "type", is its name (a
 * flag that is a string is a kind alone); lists of kinds, names and splits are sorted by
 * count, largest first, ties in first-seen order, and hold at most cfg->max_names entries
 * (256) before one "(other)".  A cluster id or split that is not a string is named by its
 * JSON text.  "chars_p50" is the median length in characters of the text field of the
 * split's records (absent when none had one).  Cluster ids are counted exactly up to
 * max_exact_distinct; past that "clusters" is estimated, the ids already seen go on being
 * counted and "in_multi" is a lower bound; "estimated" says so.  "largest" lists clusters of
 * at least two records, ties in the order they reached two; an "id" is null when it could
 * not be kept (more than 16 MB of ids). */
#include "config.h"

#include "data/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/json.h"
#include "text/bpe.h"

#define DEFAULT_MAX_FIELDS 256
#define DEFAULT_MAX_EXACT  2000000u /* two sets of at most 64 MB each */
#define POS_CACHE_MAX	   4096 /* member positions remembered from the previous record */
#define NO_FIELD	   UINT32_MAX
#define OTHER_NAME	   "(other)"
#define DEFAULT_MAX_NAMES  256

/* --- log-bucketed histograms --------------------------------------------------------------
 * Values below EXACT_LIMIT have a bucket each; above, every power of two is split into
 * SUB_BUCKETS, so a bucket's lower bound is within 1/256 (0.4 %) of any value in it. */

#define EXACT_LIMIT 2048u
#define EXACT_BITS  11
#define SUB_BITS    8
#define SUB_BUCKETS (1u << SUB_BITS)
#define NBUCKETS    (EXACT_LIMIT + (64 - EXACT_BITS) * SUB_BUCKETS)
#define CHART_BINS  30

struct hist {
	uint64_t *b; /* counts per bucket, grown to the highest bucket seen */
	uint32_t nb;
	uint64_t count, sum, min, max;
};

static inline uint32_t bucket_of(uint64_t v)
{
	if (v < EXACT_LIMIT)
		return (uint32_t)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	return EXACT_LIMIT + (e - EXACT_BITS) * SUB_BUCKETS +
	       (uint32_t)((v >> (e - SUB_BITS)) & (SUB_BUCKETS - 1));
}

static uint64_t bucket_lo(uint32_t i)
{
	if (i < EXACT_LIMIT)
		return i;
	unsigned e = EXACT_BITS + (i - EXACT_LIMIT) / SUB_BUCKETS;
	uint64_t sub = (i - EXACT_LIMIT) % SUB_BUCKETS;
	return (SUB_BUCKETS + sub) << (e - SUB_BITS);
}

/* One past the largest value of bucket i (saturating at the top). */
static uint64_t bucket_hi(uint32_t i)
{
	return i + 1 < NBUCKETS ? bucket_lo(i + 1) : UINT64_MAX;
}

static enum llm_err hist_grow(struct hist *h, uint32_t idx)
{
	uint32_t nb = h->nb ? h->nb : 64;
	while (nb <= idx)
		nb *= 2;
	if (nb > NBUCKETS)
		nb = NBUCKETS;
	uint64_t *b = realloc(h->b, nb * sizeof *b);
	if (!b)
		return LLM_ERR_NOMEM;
	memset(b + h->nb, 0, (nb - h->nb) * sizeof *b);
	h->b = b;
	h->nb = nb;
	return LLM_OK;
}

static inline enum llm_err hist_add(struct hist *h, uint64_t v)
{
	uint32_t idx = bucket_of(v);
	if (idx >= h->nb) {
		enum llm_err e = hist_grow(h, idx);
		if (e)
			return e;
	}
	h->b[idx]++;
	if (!h->count || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->count++;
	h->sum += v;
	return LLM_OK;
}

/* Nearest rank: the smallest bucket whose cumulative count reaches ceil(p% of count),
 * reported as its lower bound (exact below EXACT_LIMIT), kept within [min, max]. */
static uint64_t hist_percentile(const struct hist *h, unsigned p)
{
	uint64_t rank = (h->count * p + 99) / 100, seen = 0;
	if (!rank)
		rank = 1;
	for (uint32_t i = 0; i < h->nb; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t v = bucket_lo(i);
			return v < h->min ? h->min : v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/* --- duplicate counting ---------------------------------------------------------------------
 * A set of 128-bit hashes (two seeds of llm_hash64) in open addressing, exact up to max_exact
 * distinct values; past that, or when the table cannot grow, a HyperLogLog sketch seeded with
 * every hash seen so far. */

#define HLL_P 14
#define HLL_M (1u << HLL_P)
#define SEED1 0x6c6c6d6f7073ULL
#define SEED2 0x9e3779b97f4a7c15ULL

struct dupset {
	uint64_t *slot; /* pairs (h1, h2); h1 == 0 marks an empty slot */
	size_t cap;	/* slots, a power of two */
	size_t n;
	uint64_t counted;
	uint64_t max_exact;
	uint8_t *hll; /* registers, once estimating */
};

static inline void hll_add(uint8_t *reg, uint64_t h)
{
	uint32_t j = (uint32_t)(h >> (64 - HLL_P));
	uint8_t rho = (uint8_t)(__builtin_clzll((h << HLL_P) | (1ULL << (HLL_P - 1))) + 1);
	if (rho > reg[j])
		reg[j] = rho;
}

static double hll_estimate(const uint8_t *reg)
{
	double m = HLL_M, sum = 0;
	unsigned zeros = 0;
	for (uint32_t j = 0; j < HLL_M; j++) {
		sum += ldexp(1.0, -reg[j]);
		zeros += !reg[j];
	}
	double est = 0.7213 / (1 + 1.079 / m) * m * m / sum;
	if (est <= 2.5 * m && zeros)
		est = m * log(m / zeros); /* linear counting is better for small sets */
	return est;
}

static enum llm_err dup_to_hll(struct dupset *d)
{
	d->hll = calloc(HLL_M, 1);
	if (!d->hll)
		return LLM_ERR_NOMEM;
	for (size_t i = 0; i < d->cap; i++)
		if (d->slot[2 * i])
			hll_add(d->hll, d->slot[2 * i + 1]);
	free(d->slot);
	d->slot = NULL;
	d->cap = d->n = 0;
	return LLM_OK;
}

static inline void dup_put(uint64_t *slot, size_t cap, uint64_t h1, uint64_t h2)
{
	size_t i = h1 & (cap - 1);
	while (slot[2 * i])
		i = (i + 1) & (cap - 1);
	slot[2 * i] = h1;
	slot[2 * i + 1] = h2;
}

static enum llm_err dup_grow(struct dupset *d)
{
	size_t cap = d->cap ? d->cap * 2 : 1024;
	uint64_t *slot = cap <= SIZE_MAX / 16 ? calloc(cap, 2 * sizeof *slot) : NULL;
	if (!slot)
		return dup_to_hll(d); /* estimate rather than fail */
	for (size_t i = 0; i < d->cap; i++)
		if (d->slot[2 * i])
			dup_put(slot, cap, d->slot[2 * i], d->slot[2 * i + 1]);
	free(d->slot);
	d->slot = slot;
	d->cap = cap;
	return LLM_OK;
}

static enum llm_err dup_add(struct dupset *d, const void *p, size_t n)
{
	uint64_t h1 = llm_hash64(p, n, SEED1), h2 = llm_hash64(p, n, SEED2);
	d->counted++;
	if (d->hll) {
		hll_add(d->hll, h2);
		return LLM_OK;
	}
	if (!h1)
		h1 = 1;
	if ((d->n + 1) * 4 > d->cap * 3) {
		enum llm_err e = dup_grow(d);
		if (e || d->hll) {
			if (d->hll)
				hll_add(d->hll, h2);
			return e;
		}
	}
	size_t mask = d->cap - 1, i = h1 & mask;
	while (d->slot[2 * i]) {
		if (d->slot[2 * i] == h1 && d->slot[2 * i + 1] == h2)
			return LLM_OK;
		i = (i + 1) & mask;
	}
	d->slot[2 * i] = h1;
	d->slot[2 * i + 1] = h2;
	if (++d->n > d->max_exact) {
		enum llm_err e = dup_to_hll(d);
		if (e)
			return e;
	}
	return LLM_OK;
}

static uint64_t dup_distinct(const struct dupset *d)
{
	if (!d->hll)
		return d->n;
	double est = hll_estimate(d->hll);
	uint64_t v = est >= (double)d->counted ? d->counted : (uint64_t)llround(est);
	return v;
}

static void dup_free(struct dupset *d)
{
	free(d->slot);
	free(d->hll);
}

/* --- scripts --------------------------------------------------------------------------------*/

/* clang-format off */
enum script {
	SC_LATIN, SC_GREEK, SC_CYRILLIC, SC_ARMENIAN, SC_HEBREW, SC_ARABIC, SC_DEVANAGARI,
	SC_BENGALI, SC_TAMIL, SC_THAI, SC_GEORGIAN, SC_HANGUL, SC_HIRAGANA, SC_KATAKANA,
	SC_HAN, SC_ETHIOPIC, SC_OTHER, SC__COUNT
};
/* clang-format on */

/* clang-format off */
static const char *const script_names[SC__COUNT] = {
	"Latin", "Greek", "Cyrillic", "Armenian", "Hebrew", "Arabic", "Devanagari", "Bengali",
	"Tamil", "Thai", "Georgian", "Hangul", "Hiragana", "Katakana", "Han", "Ethiopic", "Other",
};
/* clang-format on */

struct script_range {
	uint32_t lo, hi;
	uint8_t script;
};

/* Letters (and the vowel signs that Unicode counts as alphabetic) of non-ASCII code points,
 * sorted.  Exact at the level of the letter blocks of the major scripts; the minor scripts are
 * covered block by block as "Other".  A code point in no range is not a letter: digits,
 * punctuation, symbols, emoji, combining marks, spaces. */
/* clang-format off */
static const struct script_range script_ranges[] = {
	{0x00AA, 0x00AA, SC_LATIN}, {0x00BA, 0x00BA, SC_LATIN},
	{0x00C0, 0x00D6, SC_LATIN}, {0x00D8, 0x00F6, SC_LATIN},
	{0x00F8, 0x02B8, SC_LATIN}, {0x02E0, 0x02E4, SC_LATIN},
	{0x0370, 0x0373, SC_GREEK}, {0x0376, 0x0377, SC_GREEK},
	{0x037A, 0x037D, SC_GREEK}, {0x037F, 0x037F, SC_GREEK},
	{0x0386, 0x0386, SC_GREEK}, {0x0388, 0x038A, SC_GREEK},
	{0x038C, 0x038C, SC_GREEK}, {0x038E, 0x03A1, SC_GREEK},
	{0x03A3, 0x03E1, SC_GREEK}, {0x03E2, 0x03EF, SC_OTHER}, /* Coptic */
	{0x03F0, 0x03F5, SC_GREEK}, {0x03F7, 0x03FF, SC_GREEK},
	{0x0400, 0x0481, SC_CYRILLIC}, {0x048A, 0x052F, SC_CYRILLIC},
	{0x0531, 0x0556, SC_ARMENIAN}, {0x0559, 0x0559, SC_ARMENIAN},
	{0x0560, 0x0588, SC_ARMENIAN},
	{0x05B0, 0x05BD, SC_HEBREW}, {0x05BF, 0x05BF, SC_HEBREW},
	{0x05C1, 0x05C2, SC_HEBREW}, {0x05C4, 0x05C5, SC_HEBREW},
	{0x05C7, 0x05C7, SC_HEBREW}, {0x05D0, 0x05EA, SC_HEBREW},
	{0x05EF, 0x05F2, SC_HEBREW},
	{0x0610, 0x061A, SC_ARABIC}, {0x0620, 0x0657, SC_ARABIC},
	{0x0659, 0x065F, SC_ARABIC}, {0x066E, 0x06D3, SC_ARABIC},
	{0x06D5, 0x06DC, SC_ARABIC}, {0x06E1, 0x06E8, SC_ARABIC},
	{0x06ED, 0x06EF, SC_ARABIC}, {0x06FA, 0x06FC, SC_ARABIC},
	{0x06FF, 0x06FF, SC_ARABIC},
	{0x0710, 0x074F, SC_OTHER}, /* Syriac */
	{0x0750, 0x077F, SC_ARABIC},
	{0x0780, 0x07B1, SC_OTHER}, /* Thaana */
	{0x07CA, 0x07F5, SC_OTHER}, /* NKo */
	{0x0800, 0x0815, SC_OTHER}, /* Samaritan */
	{0x0840, 0x0858, SC_OTHER}, /* Mandaic */
	{0x0860, 0x086A, SC_OTHER}, /* Syriac supplement */
	{0x0870, 0x0887, SC_ARABIC}, {0x0889, 0x088E, SC_ARABIC},
	{0x08A0, 0x08C9, SC_ARABIC}, {0x08D4, 0x08DF, SC_ARABIC},
	{0x08E3, 0x08E9, SC_ARABIC}, {0x08F0, 0x08FF, SC_ARABIC},
	{0x0900, 0x094C, SC_DEVANAGARI}, {0x094E, 0x0950, SC_DEVANAGARI},
	{0x0955, 0x0963, SC_DEVANAGARI}, {0x0971, 0x097F, SC_DEVANAGARI},
	{0x0980, 0x0983, SC_BENGALI}, {0x0985, 0x09B9, SC_BENGALI},
	{0x09BD, 0x09CC, SC_BENGALI}, {0x09CE, 0x09CE, SC_BENGALI},
	{0x09D7, 0x09D7, SC_BENGALI}, {0x09DC, 0x09E3, SC_BENGALI},
	{0x09F0, 0x09F1, SC_BENGALI}, {0x09FC, 0x09FC, SC_BENGALI},
	{0x0A01, 0x0A65, SC_OTHER}, {0x0A70, 0x0A75, SC_OTHER}, /* Gurmukhi */
	{0x0A81, 0x0AE5, SC_OTHER}, {0x0AF9, 0x0AFF, SC_OTHER}, /* Gujarati */
	{0x0B01, 0x0B65, SC_OTHER}, {0x0B71, 0x0B71, SC_OTHER}, /* Oriya */
	{0x0B82, 0x0B83, SC_TAMIL}, {0x0B85, 0x0BB9, SC_TAMIL},
	{0x0BBE, 0x0BCC, SC_TAMIL}, {0x0BD0, 0x0BD0, SC_TAMIL},
	{0x0BD7, 0x0BD7, SC_TAMIL},
	{0x0C00, 0x0C65, SC_OTHER}, /* Telugu */
	{0x0C80, 0x0CE5, SC_OTHER}, {0x0CF1, 0x0CF3, SC_OTHER}, /* Kannada */
	{0x0D00, 0x0D65, SC_OTHER}, {0x0D7A, 0x0D7F, SC_OTHER}, /* Malayalam */
	{0x0D81, 0x0DE5, SC_OTHER}, {0x0DF2, 0x0DF3, SC_OTHER}, /* Sinhala */
	{0x0E01, 0x0E3A, SC_THAI}, {0x0E40, 0x0E4E, SC_THAI},
	{0x0E81, 0x0ECF, SC_OTHER}, {0x0EDC, 0x0EDF, SC_OTHER}, /* Lao */
	{0x0F00, 0x0F00, SC_OTHER}, {0x0F40, 0x0FBC, SC_OTHER}, /* Tibetan */
	{0x1000, 0x103F, SC_OTHER}, {0x1050, 0x108F, SC_OTHER}, /* Myanmar */
	{0x10A0, 0x10C5, SC_GEORGIAN}, {0x10C7, 0x10C7, SC_GEORGIAN},
	{0x10CD, 0x10CD, SC_GEORGIAN}, {0x10D0, 0x10FA, SC_GEORGIAN},
	{0x10FC, 0x10FF, SC_GEORGIAN},
	{0x1100, 0x11FF, SC_HANGUL},
	{0x1200, 0x135A, SC_ETHIOPIC}, {0x1380, 0x138F, SC_ETHIOPIC},
	{0x13A0, 0x13FD, SC_OTHER}, /* Cherokee */
	{0x1401, 0x166C, SC_OTHER}, {0x166F, 0x167F, SC_OTHER}, /* Canadian syllabics */
	{0x1681, 0x169A, SC_OTHER}, /* Ogham (U+1680 is a space) */
	{0x16A0, 0x16EA, SC_OTHER}, {0x16EE, 0x16F8, SC_OTHER}, /* Runic */
	{0x1700, 0x17D3, SC_OTHER}, {0x17D7, 0x17D7, SC_OTHER}, /* Philippine, Khmer */
	{0x17DC, 0x17DC, SC_OTHER},
	{0x1820, 0x1878, SC_OTHER}, {0x1880, 0x18AA, SC_OTHER}, /* Mongolian */
	{0x1900, 0x193B, SC_OTHER}, {0x1950, 0x19AB, SC_OTHER}, /* Limbu, Tai Le, ... */
	{0x19B0, 0x19C9, SC_OTHER}, {0x1A00, 0x1A1B, SC_OTHER},
	{0x1A20, 0x1A74, SC_OTHER},
	{0x1B00, 0x1B4C, SC_OTHER}, {0x1B80, 0x1BAF, SC_OTHER}, /* Balinese, Sundanese, ... */
	{0x1BBA, 0x1BE5, SC_OTHER}, {0x1C00, 0x1C36, SC_OTHER},
	{0x1C4D, 0x1C4F, SC_OTHER}, {0x1C5A, 0x1C7D, SC_OTHER},
	{0x1C80, 0x1C88, SC_CYRILLIC},
	{0x1C90, 0x1CBA, SC_GEORGIAN}, {0x1CBD, 0x1CBF, SC_GEORGIAN},
	{0x1D00, 0x1D25, SC_LATIN}, {0x1D26, 0x1D2A, SC_GREEK},
	{0x1D2B, 0x1D2B, SC_CYRILLIC}, {0x1D2C, 0x1D5C, SC_LATIN},
	{0x1D5D, 0x1D61, SC_GREEK}, {0x1D62, 0x1D65, SC_LATIN},
	{0x1D66, 0x1D6A, SC_GREEK}, {0x1D6B, 0x1D77, SC_LATIN},
	{0x1D78, 0x1D78, SC_CYRILLIC}, {0x1D79, 0x1DBE, SC_LATIN},
	{0x1DBF, 0x1DBF, SC_GREEK},
	{0x1E00, 0x1EFF, SC_LATIN},
	{0x1F00, 0x1FBC, SC_GREEK}, {0x1FBE, 0x1FBE, SC_GREEK},
	{0x1FC2, 0x1FCC, SC_GREEK}, {0x1FD0, 0x1FDB, SC_GREEK},
	{0x1FE0, 0x1FEC, SC_GREEK}, {0x1FF2, 0x1FFC, SC_GREEK},
	{0x2071, 0x2071, SC_LATIN}, {0x207F, 0x207F, SC_LATIN},
	{0x2090, 0x209C, SC_LATIN},
	{0x2C00, 0x2C5F, SC_OTHER}, /* Glagolitic */
	{0x2C60, 0x2C7F, SC_LATIN},
	{0x2C80, 0x2CE4, SC_OTHER}, /* Coptic */
	{0x2D00, 0x2D25, SC_GEORGIAN}, {0x2D27, 0x2D27, SC_GEORGIAN},
	{0x2D2D, 0x2D2D, SC_GEORGIAN},
	{0x2D30, 0x2D67, SC_OTHER}, {0x2D6F, 0x2D6F, SC_OTHER}, /* Tifinagh */
	{0x2D80, 0x2DDE, SC_ETHIOPIC},
	{0x2DE0, 0x2DFF, SC_CYRILLIC},
	{0x3005, 0x3005, SC_HAN}, {0x3007, 0x3007, SC_HAN},
	{0x3021, 0x3029, SC_HAN}, {0x3038, 0x303B, SC_HAN},
	{0x3041, 0x3096, SC_HIRAGANA}, {0x309D, 0x309F, SC_HIRAGANA},
	{0x30A1, 0x30FA, SC_KATAKANA}, {0x30FC, 0x30FF, SC_KATAKANA},
	{0x3105, 0x312F, SC_OTHER}, /* Bopomofo */
	{0x3131, 0x318E, SC_HANGUL},
	{0x31A0, 0x31BF, SC_OTHER}, /* Bopomofo extended */
	{0x31F0, 0x31FF, SC_KATAKANA},
	{0x3400, 0x4DBF, SC_HAN}, {0x4E00, 0x9FFF, SC_HAN},
	{0xA000, 0xA48C, SC_OTHER}, /* Yi */
	{0xA4D0, 0xA4FD, SC_OTHER}, /* Lisu */
	{0xA500, 0xA60C, SC_OTHER}, {0xA610, 0xA61F, SC_OTHER}, /* Vai */
	{0xA62A, 0xA62B, SC_OTHER},
	{0xA640, 0xA66E, SC_CYRILLIC}, {0xA67F, 0xA69F, SC_CYRILLIC},
	{0xA6A0, 0xA6EF, SC_OTHER}, /* Bamum */
	{0xA722, 0xA787, SC_LATIN}, {0xA78B, 0xA7FF, SC_LATIN},
	{0xA800, 0xA827, SC_OTHER}, {0xA840, 0xA873, SC_OTHER}, /* Syloti Nagri, Phags-pa, */
	{0xA880, 0xA8C5, SC_OTHER},                             /* Saurashtra */
	{0xA960, 0xA97C, SC_HANGUL},
	{0xAA00, 0xAA36, SC_OTHER}, {0xAA40, 0xAA4D, SC_OTHER}, /* Cham */
	{0xAB01, 0xAB2E, SC_ETHIOPIC},
	{0xAB30, 0xAB5A, SC_LATIN}, {0xAB5C, 0xAB64, SC_LATIN},
	{0xAB65, 0xAB65, SC_GREEK},
	{0xAB70, 0xABEA, SC_OTHER}, /* Cherokee, Meetei Mayek */
	{0xAC00, 0xD7A3, SC_HANGUL}, {0xD7B0, 0xD7FB, SC_HANGUL},
	{0xF900, 0xFAFF, SC_HAN},
	{0xFB00, 0xFB06, SC_LATIN}, {0xFB13, 0xFB17, SC_ARMENIAN},
	{0xFB1D, 0xFB4F, SC_HEBREW},
	{0xFB50, 0xFBB1, SC_ARABIC}, {0xFBD3, 0xFD3D, SC_ARABIC},
	{0xFD50, 0xFDC7, SC_ARABIC}, {0xFDF0, 0xFDFB, SC_ARABIC},
	{0xFE70, 0xFEFC, SC_ARABIC},
	{0xFF21, 0xFF3A, SC_LATIN}, {0xFF41, 0xFF5A, SC_LATIN},
	{0xFF66, 0xFF9F, SC_KATAKANA},
	{0xFFA0, 0xFFDC, SC_HANGUL},
	{0x10000, 0x1AFFF, SC_OTHER}, /* historic scripts */
	{0x1B000, 0x1B16F, SC_HIRAGANA}, /* kana supplement */
	{0x1E800, 0x1E94B, SC_OTHER}, /* Mende Kikakui, Adlam */
	{0x20000, 0x2FA1F, SC_HAN}, {0x30000, 0x323AF, SC_HAN},
};
/* clang-format on */

#define NSCRIPT_RANGES (sizeof script_ranges / sizeof script_ranges[0])

/* The range holding cp, or NULL when cp is not a letter. */
static const struct script_range *script_find(uint32_t cp)
{
	size_t lo = 0, hi = NSCRIPT_RANGES;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cp < script_ranges[mid].lo)
			hi = mid;
		else if (cp > script_ranges[mid].hi)
			lo = mid + 1;
		else
			return &script_ranges[mid];
	}
	return NULL;
}

/* --- measuring one string ------------------------------------------------------------------ */

/* The class of a code point: a script (its letters), whitespace, or neither. */
enum { CL_SPACE = SC__COUNT, CL_NONE, CL__COUNT };

/* Unicode White_Space above ASCII. */
/* clang-format off */
static const uint16_t uspaces[] = {
	0x0085, 0x00A0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
	0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
};
/* clang-format on */

/* The class of every code point of the Basic Multilingual Plane, from the tables above, so
 * that the hot loop classifies a character with one load. */
static void classes_build(uint8_t *cl)
{
	memset(cl, CL_NONE, 0x10000);
	for (size_t i = 0; i < NSCRIPT_RANGES && script_ranges[i].lo < 0x10000; i++) {
		uint32_t hi = script_ranges[i].hi < 0x10000 ? script_ranges[i].hi : 0xFFFF;
		memset(cl + script_ranges[i].lo, script_ranges[i].script,
		       hi - script_ranges[i].lo + 1);
	}
	memset(cl + 'A', SC_LATIN, 26);
	memset(cl + 'a', SC_LATIN, 26);
	memset(cl + '\t', CL_SPACE, 5); /* \t \n \v \f \r */
	cl[' '] = CL_SPACE;
	for (size_t i = 0; i < sizeof uspaces / sizeof uspaces[0]; i++)
		cl[uspaces[i]] = CL_SPACE;
}

struct measure {
	uint64_t chars, words;
	uint64_t letters[CL__COUNT]; /* by class; only the scripts mean anything */
};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SWAR 1
#endif

#define REP(b) (0x0101010101010101ULL * (b))
#define HIGH   REP(0x80)

/* For eight bytes x with the high bit of each set (xh = x | HIGH): the high bit of each byte
 * that is >= k, for k <= 0x80.  No borrow crosses bytes. */
#define GE(xh, k) (((xh)-REP(k)) & HIGH)

/* The number of bytes with the high bit set in a mask of high bits only.  A multiply rather
 * than popcount, which without -mpopcnt is a library call. */
static inline uint64_t count_high(uint64_t mask)
{
	return ((mask >> 7) * REP(1)) >> 56;
}

/* Whitespace and (case-folded) letters among eight ASCII bytes: high-bit masks. */
#define ASCII_SPACES(xh)  ((GE(xh, 0x09) & ~GE(xh, 0x0E)) | (GE(xh, 0x20) & ~GE(xh, 0x21)))
#define ASCII_LETTERS(xh) (GE((xh) | REP(0x20), 'a') & ~GE((xh) | REP(0x20), 'z' + 1))

/* What measure_string() carries from one stretch of a string to the next. */
struct tally {
	uint64_t chars, words, latin;
	uint64_t space; /* 1 when the previous character was whitespace (or there was none) */
};

#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>

static inline uint64_t sum_bytes(__m128i v)
{
	__m128i t = _mm_sad_epu8(v, _mm_setzero_si128());
	return (uint64_t)_mm_cvtsi128_si64(t) +
	       (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(t, t));
}

/* Tally whole blocks of sixteen ASCII bytes from s[i], stopping at a block with a non-ASCII
 * byte or when fewer than sixteen bytes are left; returns where it stopped.  Word starts and
 * letters are counted per byte lane and summed every 255 blocks, before a lane can wrap. */
static inline __attribute__((always_inline)) size_t
ascii_blocks(const unsigned char *s, size_t i, size_t n, bool scripts, struct tally *t)
{
	const __m128i blank = _mm_set1_epi8(' '), tab_lo = _mm_set1_epi8('\t' - 1),
		      tab_hi = _mm_set1_epi8('\r' + 1), a = _mm_set1_epi8('a' - 1),
		      z = _mm_set1_epi8('z' + 1);
	__m128i prev = _mm_set_epi8(t->space ? -1 : 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
	__m128i starts = _mm_setzero_si128(), letters = _mm_setzero_si128();
	unsigned blocks = 0;
	for (; i + 16 <= n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
		if (_mm_movemask_epi8(v))
			break;
		__m128i sp = _mm_or_si128(
		    _mm_cmpeq_epi8(v, blank),
		    _mm_and_si128(_mm_cmpgt_epi8(v, tab_lo), _mm_cmplt_epi8(v, tab_hi)));
		/* a word starts at a non-space after a space (the last of the block before
		 * shifted in at the front) */
		__m128i before = _mm_or_si128(_mm_slli_si128(sp, 1), _mm_srli_si128(prev, 15));
		starts = _mm_sub_epi8(starts, _mm_andnot_si128(sp, before));
		prev = sp;
		if (scripts) {
			__m128i y = _mm_or_si128(v, blank); /* fold case */
			letters = _mm_sub_epi8(
			    letters, _mm_and_si128(_mm_cmpgt_epi8(y, a), _mm_cmplt_epi8(y, z)));
		}
		t->chars += 16;
		if (++blocks == 255) {
			t->words += sum_bytes(starts);
			t->latin += sum_bytes(letters);
			starts = letters = _mm_setzero_si128();
			blocks = 0;
		}
	}
	t->words += sum_bytes(starts);
	t->latin += sum_bytes(letters);
	t->space = (unsigned)_mm_movemask_epi8(prev) >> 15;
	return i;
}
#define SIMD 1
#endif

/* Count code points, words and letters by script in s[0..n), which is valid UTF-8.  Runs of
 * ASCII, most of the text in most corpora, go sixteen bytes at a time with SSE2 where there
 * is SSE2, then eight at a time (SWAR) up to the next non-ASCII byte; other characters are
 * decoded and classified by table.  Latin letters in ASCII are counted only when scripts is
 * true (the callers pass a constant, so each gets its own loop). */
static inline __attribute__((always_inline)) void measure_string(const uint8_t *classes,
								 const unsigned char *s, size_t n,
								 bool scripts, struct measure *m)
{
	struct tally t = {.space = 1};
	size_t i = 0;
	memset(m->letters, 0, sizeof m->letters);
	while (i < n) {
#ifdef SIMD
		/* only for a run of at least one block: entering costs a few instructions */
		if (i + 16 <= n &&
		    !_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(const void *)(s + i))))
			i = ascii_blocks(s, i, n, scripts, &t);
#endif
#ifdef SWAR
		uint64_t x, sp;
		for (; i + 8 <= n; i += 8) {
			memcpy(&x, s + i, 8);
			if (x & HIGH)
				break;
			uint64_t xh = x | HIGH;
			sp = ASCII_SPACES(xh);
			t.words += count_high(~sp & ((sp << 8) | (t.space << 7)));
			t.space = sp >> 63;
			if (scripts)
				t.latin += count_high(ASCII_LETTERS(xh));
			t.chars += 8;
		}
		if (i + 8 <= n) {
			/* some ASCII, then a non-ASCII byte: the ASCII part, masked */
			unsigned k = (unsigned)__builtin_ctzll(x & HIGH) >> 3;
			if (k) {
				uint64_t keep = (1ULL << (8 * k)) - 1, xh = x | HIGH;
				sp = ASCII_SPACES(xh) & keep;
				t.words += count_high(~sp & ((sp << 8) | (t.space << 7)) & keep);
				t.space = (sp >> (8 * k - 1)) & 1;
				if (scripts)
					t.latin += count_high(ASCII_LETTERS(xh) & keep);
				t.chars += k;
				i += k;
			}
		}
#endif
		if (i >= n)
			break;
		if (s[i] < 0x80) {
			unsigned c = s[i++];
			uint64_t sp1 = c == ' ' || (c >= '\t' && c <= '\r');
			t.words += t.space & !sp1;
			t.space = sp1;
			t.chars++;
			if (scripts)
				t.latin += ((c | 0x20) - 'a') < 26u;
			continue;
		}
		/* a run of non-ASCII characters, up to the next ASCII byte */
		do {
			const unsigned char *q = s + i;
			uint32_t cp;
			if (q[0] < 0xE0) {
				cp = (q[0] & 0x1Fu) << 6 | (q[1] & 0x3Fu);
				i += 2;
			} else if (q[0] < 0xF0) {
				cp = (q[0] & 0x0Fu) << 12 | (q[1] & 0x3Fu) << 6 | (q[2] & 0x3Fu);
				i += 3;
			} else {
				cp = (q[0] & 0x07u) << 18 | (q[1] & 0x3Fu) << 12 |
				     (q[2] & 0x3Fu) << 6 | (q[3] & 0x3Fu);
				i += 4;
			}
			unsigned cl;
			if (cp < 0x10000) {
				cl = classes[cp];
			} else {
				const struct script_range *r = script_find(cp);
				cl = r ? r->script : CL_NONE;
			}
			uint64_t sp1 = cl == CL_SPACE;
			t.words += t.space & !sp1;
			t.space = sp1;
			t.chars++;
			m->letters[cl]++;
		} while (i < n && s[i] >= 0x80);
	}
	m->chars = t.chars;
	m->words = t.words;
	m->letters[SC_LATIN] += t.latin;
}

/* --- names counted from the data ------------------------------------------------------------
 * Flag kinds, flag names and split names: a table of at most max distinct names, found by
 * hash; names past the limit are counted together as "(other)".  A name may have two parts
 * (a flag's kind and its type or rule), kept together with the length of the first. */

struct name_entry {
	char *name;	  /* both parts, NUL-terminated */
	uint32_t len;	  /* bytes of both parts */
	uint32_t first;	  /* bytes of the first part (len when there is one part) */
	uint64_t n;	  /* occurrences */
	uint64_t records; /* records with at least one */
	uint64_t seen;	  /* the last record counted in records */
	struct hist chars; /* splits: text lengths of its records */
};

struct names {
	struct name_entry *e;
	uint32_t n, cap;
	uint32_t *table; /* entry index + 1, 0 when empty */
	uint32_t tcap;
	size_t max;
	struct name_entry other;
};

static uint64_t name_hash(const char *p, size_t len, uint32_t first)
{
	return llm_hash64(p, len, first);
}

static enum llm_err names_rehash(struct names *t)
{
	uint32_t cap = t->tcap ? t->tcap * 2 : 64;
	uint32_t *tab = calloc(cap, sizeof *tab);
	if (!tab)
		return LLM_ERR_NOMEM;
	for (uint32_t i = 0; i < t->n; i++) {
		const struct name_entry *x = &t->e[i];
		uint32_t j = (uint32_t)name_hash(x->name, x->len, x->first) & (cap - 1);
		while (tab[j])
			j = (j + 1) & (cap - 1);
		tab[j] = i + 1;
	}
	free(t->table);
	t->table = tab;
	t->tcap = cap;
	return LLM_OK;
}

/* The entry of the name p[0..len) whose first part is p[0..first); the "(other)" entry when
 * the table is full. */
static enum llm_err names_find(struct names *t, const char *p, size_t len, size_t first,
			       struct name_entry **out)
{
	if (len > UINT32_MAX - 1)
		len = first = UINT32_MAX - 1; /* cut, not refused: it is only a name */
	if ((t->n + 1) * 2 > t->tcap) {
		enum llm_err e = names_rehash(t);
		if (e)
			return e;
	}
	uint32_t mask = t->tcap - 1, j = (uint32_t)name_hash(p, len, (uint32_t)first) & mask;
	for (; t->table[j]; j = (j + 1) & mask) {
		struct name_entry *x = &t->e[t->table[j] - 1];
		if (x->len == len && x->first == first && memcmp(x->name, p, len) == 0) {
			*out = x;
			return LLM_OK;
		}
	}
	if (t->n >= t->max) {
		*out = &t->other;
		return LLM_OK;
	}
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 8;
		struct name_entry *e = realloc(t->e, cap * sizeof *e);
		if (!e)
			return LLM_ERR_NOMEM;
		t->e = e;
		t->cap = cap;
	}
	struct name_entry *x = &t->e[t->n];
	memset(x, 0, sizeof *x);
	if (!(x->name = malloc(len + 1)))
		return LLM_ERR_NOMEM;
	memcpy(x->name, p, len);
	x->name[len] = '\0';
	x->len = (uint32_t)len;
	x->first = (uint32_t)first;
	t->table[j] = ++t->n;
	*out = x;
	return LLM_OK;
}

/* Count one occurrence in record seq. */
static void name_count(struct name_entry *x, uint64_t seq)
{
	x->n++;
	if (x->seen != seq) {
		x->seen = seq;
		x->records++;
	}
}

static void names_free(struct names *t)
{
	for (uint32_t i = 0; i < t->n; i++) {
		free(t->e[i].name);
		free(t->e[i].chars.b);
	}
	free(t->e);
	free(t->table);
	free(t->other.chars.b);
}

/* --- clusters -------------------------------------------------------------------------------
 * Records per cluster id: a table of 64-bit hashes of the ids with a count each, exact up to
 * max_exact distinct ids.  Past that the ids already in the table go on being counted, new
 * ones only in a HyperLogLog sketch (for the number of clusters), and the report says the
 * numbers are estimated.  The id's text is kept only for clusters that reach two records
 * (those are the ones a "largest" list can show), in an arena of bounded size. */

#define CLUSTER_NAMES_MAX (16u << 20) /* bytes of cluster ids kept for the largest list */
#define LARGEST		  10

struct cslot {
	uint64_t h; /* 0: empty */
	uint32_t count;
	uint32_t name; /* index + 1 into names, 0 while the cluster has one record */
};

struct cname {
	uint64_t h;
	uint32_t off, len; /* in the arena; len UINT32_MAX when the id could not be kept */
};

struct clusterset {
	struct cslot *slot;
	size_t cap, n;
	uint64_t max_exact;
	uint64_t records;   /* records with a cluster id */
	uint64_t untracked; /* records whose id came past the limit */
	uint8_t *hll;	    /* once past the limit: every id seen since, and all before */
	struct cname *names;
	size_t nnames, capnames;
	struct llm_buf arena;
};

static struct cslot *cluster_slot(const struct cslot *slot, size_t cap, uint64_t h)
{
	size_t i = h & (cap - 1);
	while (slot[i].h && slot[i].h != h)
		i = (i + 1) & (cap - 1);
	return (struct cslot *)&slot[i];
}

static enum llm_err cluster_grow(struct clusterset *c)
{
	size_t cap = c->cap ? c->cap * 2 : 1024;
	struct cslot *slot = cap <= SIZE_MAX / sizeof *slot ? calloc(cap, sizeof *slot) : NULL;
	if (!slot)
		return LLM_ERR_NOMEM;
	for (size_t i = 0; i < c->cap; i++)
		if (c->slot[i].h)
			*cluster_slot(slot, cap, c->slot[i].h) = c->slot[i];
	free(c->slot);
	c->slot = slot;
	c->cap = cap;
	return LLM_OK;
}

static enum llm_err cluster_estimate(struct clusterset *c)
{
	if (!(c->hll = calloc(HLL_M, 1)))
		return LLM_ERR_NOMEM;
	for (size_t i = 0; i < c->cap; i++)
		if (c->slot[i].h)
			hll_add(c->hll, c->slot[i].h);
	return LLM_OK;
}

/* Keep the id p[0..n) of the cluster in slot x, which has just reached two records. */
static enum llm_err cluster_name(struct clusterset *c, struct cslot *x, const char *p, size_t n)
{
	if (c->nnames == c->capnames) {
		size_t cap = c->capnames ? c->capnames * 2 : 64;
		struct cname *v = realloc(c->names, cap * sizeof *v);
		if (!v)
			return LLM_ERR_NOMEM;
		c->names = v;
		c->capnames = cap;
	}
	struct cname *nm = &c->names[c->nnames];
	nm->h = x->h;
	nm->off = (uint32_t)c->arena.len;
	nm->len = UINT32_MAX;
	if (n < CLUSTER_NAMES_MAX && llm_buf_append(&c->arena, p, n) == LLM_OK)
		nm->len = (uint32_t)n; /* a full arena: the cluster is listed without its id */
	x->name = (uint32_t)++c->nnames;
	return LLM_OK;
}

static enum llm_err cluster_add(struct clusterset *c, const char *p, size_t n, uint64_t seed)
{
	uint64_t h = llm_hash64(p, n, seed);
	if (!h)
		h = 1;
	c->records++;
	if (c->hll)
		hll_add(c->hll, h);
	if (c->cap) {
		struct cslot *x = cluster_slot(c->slot, c->cap, h);
		if (x->h) {
			x->count += x->count < UINT32_MAX;
			return x->count == 2 ? cluster_name(c, x, p, n) : LLM_OK;
		}
	}
	if (c->hll || c->n >= c->max_exact) {
		enum llm_err e = c->hll ? LLM_OK : cluster_estimate(c);
		if (!e)
			hll_add(c->hll, h);
		c->untracked++;
		return e;
	}
	if ((c->n + 1) * 4 > c->cap * 3) {
		enum llm_err e = cluster_grow(c);
		if (e) { /* estimate rather than fail */
			if ((e = cluster_estimate(c)))
				return e;
			hll_add(c->hll, h);
			c->untracked++;
			return LLM_OK;
		}
	}
	struct cslot *x = cluster_slot(c->slot, c->cap, h);
	x->h = h;
	x->count = 1;
	c->n++;
	return LLM_OK;
}

static void cluster_free(struct clusterset *c)
{
	free(c->slot);
	free(c->hll);
	free(c->names);
	llm_buf_free(&c->arena);
}

/* --- fields -------------------------------------------------------------------------------- */

enum { T_STRING, T_NUMBER, T_BOOLEAN, T_NULL, T_OBJECT, T_ARRAY, T__COUNT };

/* clang-format off */
static const uint8_t type_slot[] = {
	[LLM_JSON_NULL] = T_NULL,     [LLM_JSON_FALSE] = T_BOOLEAN, [LLM_JSON_TRUE] = T_BOOLEAN,
	[LLM_JSON_NUMBER] = T_NUMBER, [LLM_JSON_STRING] = T_STRING, [LLM_JSON_ARRAY] = T_ARRAY,
	[LLM_JSON_OBJECT] = T_OBJECT,
};
/* clang-format on */

/* One type of each slot, to name it with llm_json_type_name(). */
/* clang-format off */
static const enum llm_json_type slot_type[T__COUNT] = {
	LLM_JSON_STRING, LLM_JSON_NUMBER, LLM_JSON_TRUE, LLM_JSON_NULL, LLM_JSON_OBJECT,
	LLM_JSON_ARRAY,
};
/* clang-format on */

/* Fields that other verbs write, looked at when a record has them. */
enum { ROLE_FLAGS = 1, ROLE_CLUSTER = 2, ROLE_DUPLICATE = 4, ROLE_SPLIT = 8 };

/* Token counts of the text field with one tokenizer. */
struct tokens {
	struct llm_bpe *bpe; /* borrowed */
	char *name;
	struct hist per_record;
	uint64_t tokens, chars, words;
};

struct field {
	char *name; /* decoded, NUL-terminated (a key may hold "\u0000", so name_len rules) */
	uint32_t name_len;
	bool measured; /* lengths of its string values are counted */
	bool is_text;  /* the text field: duplicates and scripts */
	bool other;    /* the bucket for fields past max_fields */
	uint8_t role;  /* ROLE_*: a field another verb wrote, summarized when present */
	uint64_t seen; /* the last record (by number) that had it: each record counts once */
	uint64_t present;
	uint64_t types[T__COUNT];
	uint64_t empty;
	struct hist chars, words, bytes;
};

struct llm_stats {
	char *text_field;
	size_t text_field_len;
	char **want; /* cfg->fields, copied */
	size_t nwant;
	size_t max_fields;

	uint64_t records;
	uint64_t bad[LLM_ERR__COUNT + 1]; /* the last counts codes out of range */

	struct field *fields;
	uint32_t nfields, capfields;
	uint32_t ncapped; /* fields counted against max_fields */
	struct field other;
	uint32_t *table; /* open addressing by name hash: field index + 1, 0 when empty */
	uint32_t tcap;
	uint32_t pos[POS_CACHE_MAX]; /* field index of each member position in the last record */

	uint8_t classes[0x10000]; /* class of each BMP code point (classes_build) */
	struct llm_buf scratch;	  /* a decoded value, reused */
	struct llm_buf keybuf;	  /* a decoded key, reused */

	struct dupset dup_records, dup_text;
	uint64_t letters[SC__COUNT];
	uint64_t dominant[SC__COUNT + 1]; /* records by majority script; the last: no letters */

	/* what other verbs wrote: field names (decoded), and what was found */
	char *role_name[4]; /* by bit of ROLE_*: flags, cluster, duplicate, split */
	size_t role_len[4];
	uint64_t flags_present, flags_not_array, flagged, nflags;
	struct names kinds, flag_names, splits;
	struct clusterset clusters;
	uint64_t dup_present, dup_marked;
	uint64_t split_records;

	/* the current record: its text length in characters, and its split */
	uint64_t text_seq, text_chars;
	struct name_entry *rec_split;

	struct tokens *tok;
	size_t ntok;
	struct llm_bpe_ids ids;
};

static char *dup_bytes(const char *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

enum llm_err llm_stats_new(struct llm_stats **out, const struct llm_stats_config *cfg)
{
	static const struct llm_stats_config defaults = {0};
	if (!cfg)
		cfg = &defaults;
	*out = NULL;
	struct llm_stats *s = calloc(1, sizeof *s);
	if (!s)
		return LLM_ERR_NOMEM;
	const char *tf = cfg->text_field ? cfg->text_field : "text";
	s->text_field_len = strlen(tf);
	s->text_field = dup_bytes(tf, s->text_field_len);
	s->max_fields = cfg->max_fields ? cfg->max_fields : DEFAULT_MAX_FIELDS;
	uint64_t max_exact = cfg->max_exact_distinct ? cfg->max_exact_distinct : DEFAULT_MAX_EXACT;
	s->dup_records.max_exact = s->dup_text.max_exact = max_exact;
	s->other.name = dup_bytes(OTHER_NAME, strlen(OTHER_NAME));
	s->other.name_len = (uint32_t)strlen(OTHER_NAME);
	s->other.other = true;
	memset(s->pos, 0xFF, sizeof s->pos);
	classes_build(s->classes);
	llm_buf_init(&s->scratch, 0);
	llm_buf_init(&s->keybuf, 0);
	const char *roles[4] = {
	    cfg->flags_field ? cfg->flags_field : "flags",
	    cfg->cluster_field ? cfg->cluster_field : "cluster_id",
	    cfg->duplicate_field ? cfg->duplicate_field : "duplicate",
	    cfg->split_field ? cfg->split_field : "split",
	};
	bool ok = s->text_field && s->other.name;
	for (int r = 0; r < 4; r++) {
		s->role_len[r] = strlen(roles[r]);
		ok = ok && (s->role_name[r] = dup_bytes(roles[r], s->role_len[r])) != NULL;
	}
	s->kinds.max = s->flag_names.max = s->splits.max =
	    cfg->max_names ? cfg->max_names : DEFAULT_MAX_NAMES;
	s->clusters.max_exact = max_exact;
	llm_buf_init(&s->clusters.arena, CLUSTER_NAMES_MAX);
	if (ok && cfg->ntokenizers) {
		s->tok = calloc(cfg->ntokenizers, sizeof *s->tok);
		ok = s->tok != NULL;
		for (size_t i = 0; ok && i < cfg->ntokenizers; i++, s->ntok++) {
			const char *nm = cfg->tokenizer_names && cfg->tokenizer_names[i]
					     ? cfg->tokenizer_names[i]
					     : "";
			s->tok[i].bpe = cfg->tokenizers[i];
			ok = (s->tok[i].name = dup_bytes(nm, strlen(nm))) != NULL;
		}
	}
	if (ok && cfg->fields && cfg->nfields) {
		s->want = calloc(cfg->nfields, sizeof *s->want);
		ok = s->want != NULL;
		for (size_t i = 0; ok && i < cfg->nfields; i++, s->nwant++)
			ok = (s->want[i] = dup_bytes(cfg->fields[i], strlen(cfg->fields[i]))) !=
			     NULL;
	}
	if (!ok) {
		llm_stats_free(s);
		return LLM_ERR_NOMEM;
	}
	*out = s;
	return LLM_OK;
}

static void field_free(struct field *f)
{
	free(f->name);
	free(f->chars.b);
	free(f->words.b);
	free(f->bytes.b);
}

void llm_stats_free(struct llm_stats *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->nfields; i++)
		field_free(&s->fields[i]);
	field_free(&s->other);
	free(s->fields);
	free(s->table);
	for (size_t i = 0; i < s->nwant; i++)
		free(s->want[i]);
	free(s->want);
	free(s->text_field);
	llm_buf_free(&s->scratch);
	llm_buf_free(&s->keybuf);
	dup_free(&s->dup_records);
	dup_free(&s->dup_text);
	for (int r = 0; r < 4; r++)
		free(s->role_name[r]);
	names_free(&s->kinds);
	names_free(&s->flag_names);
	names_free(&s->splits);
	cluster_free(&s->clusters);
	for (size_t i = 0; i < s->ntok; i++) {
		free(s->tok[i].name);
		free(s->tok[i].per_record.b);
	}
	free(s->tok);
	llm_bpe_ids_free(&s->ids);
	free(s);
}

void llm_stats_add_bad(struct llm_stats *s, enum llm_err why, uint64_t n)
{
	if (!n || why == LLM_OK)
		return;
	s->bad[(unsigned)why < LLM_ERR__COUNT ? (unsigned)why : LLM_ERR__COUNT] += n;
}

static bool name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(name, want, len) == 0;
}

static bool wanted(const struct llm_stats *s, const char *name, size_t len)
{
	for (size_t i = 0; i < s->nwant; i++)
		if (name_is(name, len, s->want[i]))
			return true;
	return false;
}

static enum llm_err table_grow(struct llm_stats *s)
{
	uint32_t cap = s->tcap ? s->tcap * 2 : 512;
	uint32_t *t = calloc(cap, sizeof *t);
	if (!t)
		return LLM_ERR_NOMEM;
	for (uint32_t i = 0; i < s->nfields; i++) {
		const struct field *f = &s->fields[i];
		uint32_t j = (uint32_t)llm_hash64(f->name, f->name_len, 0) & (cap - 1);
		while (t[j])
			j = (j + 1) & (cap - 1);
		t[j] = i + 1;
	}
	free(s->table);
	s->table = t;
	s->tcap = cap;
	return LLM_OK;
}

/* The field named name[0..len) (decoded), created when new and there is room; NO_FIELD when
 * it goes to the "other" bucket. */
static enum llm_err field_find(struct llm_stats *s, const char *name, size_t len, uint32_t *out)
{
	if ((s->nfields + 1) * 2 > s->tcap) {
		enum llm_err e = table_grow(s);
		if (e)
			return e;
	}
	uint32_t mask = s->tcap - 1, j = (uint32_t)llm_hash64(name, len, 0) & mask;
	for (; s->table[j]; j = (j + 1) & mask) {
		const struct field *f = &s->fields[s->table[j] - 1];
		if (f->name_len == len && memcmp(f->name, name, len) == 0) {
			*out = s->table[j] - 1;
			return LLM_OK;
		}
	}
	/* The text field and the fields asked for are always tracked, past the limit too. */
	bool is_text = len == s->text_field_len && memcmp(name, s->text_field, len) == 0;
	bool want = s->nwant && wanted(s, name, len);
	uint8_t role = 0;
	for (int r = 0; r < 4; r++)
		if (len == s->role_len[r] && memcmp(name, s->role_name[r], len) == 0)
			role |= (uint8_t)(1u << r);
	bool capped = !is_text && !want && !role;
	if (capped && s->ncapped >= s->max_fields) {
		*out = NO_FIELD;
		return LLM_OK;
	}
	if (len > UINT32_MAX - 1)
		return LLM_ERR_TOO_BIG;
	if (s->nfields == s->capfields) {
		uint32_t cap = s->capfields ? s->capfields * 2 : 16;
		struct field *f = realloc(s->fields, cap * sizeof *f);
		if (!f)
			return LLM_ERR_NOMEM;
		s->fields = f;
		s->capfields = cap;
	}
	struct field *f = &s->fields[s->nfields];
	memset(f, 0, sizeof *f);
	if (!(f->name = dup_bytes(name, len)))
		return LLM_ERR_NOMEM;
	f->name_len = (uint32_t)len;
	f->is_text = is_text;
	f->role = role;
	f->measured = s->nwant ? want : true;
	s->table[j] = s->nfields + 1;
	s->ncapped += capped;
	*out = s->nfields++;
	return LLM_OK;
}

/* The field of member i of this record.  Records of one file mostly list the same keys in the
 * same order, so the field at the same position last time is tried first. */
static inline enum llm_err field_of(struct llm_stats *s, const struct llm_json_member *m, size_t i,
				    uint32_t *out)
{
	if (!m->key_escaped && i < POS_CACHE_MAX && s->pos[i] != NO_FIELD) {
		const struct field *f = &s->fields[s->pos[i]];
		if (f->name_len == m->key_len && memcmp(f->name, m->key, m->key_len) == 0) {
			*out = s->pos[i];
			return LLM_OK;
		}
	}
	const char *name = m->key;
	size_t len = m->key_len;
	if (m->key_escaped) {
		llm_buf_clear(&s->keybuf);
		enum llm_err e = llm_json_string_decode(m->key - 1, m->key_len + 2, &s->keybuf);
		if (e)
			return e;
		name = s->keybuf.data;
		len = s->keybuf.len;
	}
	enum llm_err e = field_find(s, name, len, out);
	if (!e && i < POS_CACHE_MAX && !m->key_escaped)
		s->pos[i] = *out;
	return e;
}

/* Count the tokens of the text p[0..n) with each tokenizer; ms has its characters and words. */
static enum llm_err add_tokens(struct llm_stats *s, const char *p, size_t n,
			       const struct measure *ms)
{
	for (size_t i = 0; i < s->ntok; i++) {
		struct tokens *t = &s->tok[i];
		struct llm_diag d;
		s->ids.n = 0;
		enum llm_err e = llm_bpe_encode(t->bpe, p, n, &s->ids, &d);
		if (!e)
			e = hist_add(&t->per_record, s->ids.n);
		if (e)
			return e;
		t->tokens += s->ids.n;
		t->chars += ms->chars;
		t->words += ms->words;
	}
	/* a long text should not keep its ids' memory for the rest of the run */
	if (s->ids.cap > (1u << 20)) {
		llm_bpe_ids_free(&s->ids);
		memset(&s->ids, 0, sizeof s->ids);
	}
	return LLM_OK;
}

/* The value of m as a name: a string decoded (into buf when it has escapes), any other value
 * as its JSON text. */
static enum llm_err value_name(const struct llm_json_member *m, struct llm_buf *buf,
			       const char **p, size_t *n)
{
	if (m->type != LLM_JSON_STRING) {
		*p = m->val;
		*n = m->val_len;
		return LLM_OK;
	}
	if (!memchr(m->val, '\\', m->val_len)) {
		*p = m->val + 1;
		*n = m->val_len - 2;
		return LLM_OK;
	}
	llm_buf_clear(buf);
	enum llm_err e = llm_json_string_decode(m->val, m->val_len, buf);
	*p = buf->data ? buf->data : "";
	*n = buf->len;
	return e;
}

/* A string member of a flag object, or NULL. */
static const char *flag_str(const json_t *flag, const char *key, size_t *n)
{
	const json_t *v = json_object_get(flag, key);
	if (!json_is_string(v))
		return NULL;
	*n = json_string_length(v);
	return json_string_value(v);
}

/* One flag: an object with a "kind" and a "rule" or "type" (a string alone is a kind). */
static enum llm_err add_flag(struct llm_stats *s, const json_t *flag, uint64_t seq)
{
	static const char none[] = "(none)";
	size_t kn = 0, nn = 0;
	const char *kind = json_is_string(flag) ? json_string_value(flag) : NULL, *name = NULL;
	if (kind)
		kn = json_string_length(flag);
	if (json_is_object(flag)) {
		kind = flag_str(flag, "kind", &kn);
		if (!(name = flag_str(flag, "rule", &nn)))
			name = flag_str(flag, "type", &nn);
	}
	if (!kind) {
		kind = none;
		kn = sizeof none - 1;
	}
	struct name_entry *x;
	enum llm_err e = names_find(&s->kinds, kind, kn, kn, &x);
	if (e)
		return e;
	name_count(x, seq);
	if (!name)
		return LLM_OK;
	llm_buf_clear(&s->keybuf);
	if ((e = llm_buf_append(&s->keybuf, kind, kn)) ||
	    (e = llm_buf_append(&s->keybuf, name, nn)) ||
	    (e = names_find(&s->flag_names, s->keybuf.data, kn + nn, kn, &x)))
		return e;
	name_count(x, seq);
	return LLM_OK;
}

static bool empty_array(const char *p, size_t n)
{
	for (size_t i = 1; i + 1 < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
			return false;
	return true;
}

static enum llm_err add_flags(struct llm_stats *s, const struct llm_json_member *m, uint64_t seq)
{
	s->flags_present++;
	if (m->type != LLM_JSON_ARRAY) {
		s->flags_not_array++;
		return LLM_OK;
	}
	if (empty_array(m->val, m->val_len))
		return LLM_OK;
	json_error_t err;
	json_t *arr = json_loadb(m->val, m->val_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
	if (!arr) {
		/* valid JSON that jansson refuses (a number out of its range, deeper nesting
		 * than it allows) or out of memory: not a list of flags we can read */
		s->flags_not_array++;
		return LLM_OK;
	}
	enum llm_err e = LLM_OK;
	size_t k = json_array_size(arr);
	s->flagged += k > 0;
	s->nflags += k;
	for (size_t i = 0; !e && i < k; i++)
		e = add_flag(s, json_array_get(arr, i), seq);
	json_decref(arr);
	return e;
}

/* A field of one of the roles (flags, cluster id, duplicate mark, split). */
static enum llm_err add_role(struct llm_stats *s, const struct field *f,
			     const struct llm_json_member *m, uint64_t seq)
{
	enum llm_err e = LLM_OK;
	const char *p;
	size_t n;
	if (f->role & ROLE_FLAGS)
		e = add_flags(s, m, seq);
	if (!e && (f->role & ROLE_CLUSTER) && m->type != LLM_JSON_NULL &&
	    !(e = value_name(m, &s->keybuf, &p, &n)))
		e = cluster_add(&s->clusters, p, n, m->type == LLM_JSON_STRING ? SEED1 : SEED2);
	if (!e && (f->role & ROLE_DUPLICATE)) {
		s->dup_present++;
		s->dup_marked += m->type == LLM_JSON_TRUE;
	}
	if (!e && (f->role & ROLE_SPLIT) && m->type != LLM_JSON_NULL &&
	    !(e = value_name(m, &s->keybuf, &p, &n)) &&
	    !(e = names_find(&s->splits, p, n, n, &s->rec_split))) {
		s->split_records++;
		name_count(s->rec_split, seq);
	}
	return e;
}

static enum llm_err add_string(struct llm_stats *s, struct field *f,
			       const struct llm_json_member *m)
{
	const char *p = m->val + 1;
	size_t n = m->val_len - 2;
	if (memchr(p, '\\', n)) {
		llm_buf_clear(&s->scratch);
		enum llm_err e = llm_json_string_decode(m->val, m->val_len, &s->scratch);
		if (e)
			return e;
		p = s->scratch.data;
		n = s->scratch.len;
	}
	struct measure ms;
	if (f->is_text) {
		measure_string(s->classes, (const unsigned char *)p, n, true, &ms);
		enum llm_err e = dup_add(&s->dup_text, p, n);
		if (e)
			return e;
		unsigned best = SC__COUNT; /* no letters */
		uint64_t most = 0;
		for (unsigned k = 0; k < SC__COUNT; k++) {
			s->letters[k] += ms.letters[k];
			if (ms.letters[k] > most) {
				most = ms.letters[k];
				best = k;
			}
		}
		s->dominant[best]++;
		s->text_seq = s->records;
		s->text_chars = ms.chars;
		if (s->ntok && (e = add_tokens(s, p, n, &ms)))
			return e;
	} else {
		measure_string(s->classes, (const unsigned char *)p, n, false, &ms);
	}
	if (!f->measured)
		return LLM_OK;
	f->empty += !ms.words;
	enum llm_err e = hist_add(&f->chars, ms.chars);
	if (!e)
		e = hist_add(&f->words, ms.words);
	if (!e)
		e = hist_add(&f->bytes, n);
	return e;
}

enum llm_err llm_stats_add(struct llm_stats *s, const struct llm_record *rec)
{
	if (rec->status != LLM_OK) {
		llm_stats_add_bad(s, rec->status, 1);
		return LLM_OK;
	}
	uint64_t seq = ++s->records;
	s->rec_split = NULL;
	enum llm_err e = dup_add(&s->dup_records, rec->text, rec->len);
	for (size_t i = 0; !e && i < rec->fields.n; i++) {
		const struct llm_json_member *m = &rec->fields.m[i];
		uint32_t idx;
		if ((e = field_of(s, m, i, &idx)))
			break;
		struct field *f = idx == NO_FIELD ? &s->other : &s->fields[idx];
		if (f->seen == seq) {
			if (f->other)
				f->types[type_slot[m->type]]++; /* another field past the limit */
			continue;
		}
		f->seen = seq;
		f->present++;
		f->types[type_slot[m->type]]++;
		if (m->type == LLM_JSON_STRING && (f->measured || f->is_text) && !f->other)
			e = add_string(s, f, m);
		if (f->role && !e)
			e = add_role(s, f, m, seq);
	}
	/* the text's length by split, whichever of the two fields came first */
	if (s->rec_split && s->text_seq == seq && !e)
		e = hist_add(&s->rec_split->chars, s->text_chars);
	return e;
}

/* --- the report ---------------------------------------------------------------------------- */

/* Set o[k] = v, stealing v; false when v is NULL or the set fails. */
static bool put(json_t *o, const char *k, json_t *v)
{
	return json_object_set_new(o, k, v) == 0;
}

static json_t *count(uint64_t v)
{
	return json_integer((json_int_t)(v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : v));
}

/* A name as a JSON string.  Names from the data are valid UTF-8 (the scanner checked), but
 * one given on the command line may not be; its bad bytes become U+FFFD rather than making
 * the whole report fail. */
static json_t *name_string(const char *p, size_t n)
{
	if (llm_utf8_valid_prefix(p, n) == n)
		return json_stringn(p, n);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	enum llm_err e = LLM_OK;
	for (size_t i = 0; i < n && !e;) {
		size_t k = llm_utf8_valid_prefix(p + i, n - i);
		e = llm_buf_append(&b, p + i, k);
		i += k;
		if (i < n && !e) {
			e = llm_buf_append(&b, "\xEF\xBF\xBD", 3);
			i++;
		}
	}
	json_t *v = e ? NULL : json_stringn(b.data ? b.data : "", b.len);
	llm_buf_free(&b);
	return v;
}

static json_t *rounded(double v, double scale)
{
	return json_real(round(v * scale) / scale);
}

static json_t *hist_chart(const struct hist *h)
{
	uint64_t edges[CHART_BINS + 3];
	size_t ne = 0;
	uint32_t top = bucket_of(h->max);
	uint64_t lo = h->min, hi = bucket_hi(top);
	edges[ne++] = lo;
	if (!lo && hi > 1)
		edges[ne++] = 1; /* zero has a bin of its own on a log axis */
	double a = lo ? (double)lo : 1.0;
	for (int k = 1; k <= CHART_BINS; k++) {
		uint64_t e;
		if (k == CHART_BINS) {
			e = hi;
		} else {
			if (hi - lo <= CHART_BINS)
				e = lo + (uint64_t)k; /* few values: one bin each */
			else
				e = (uint64_t)ceil(a * pow((double)hi / a, (double)k / CHART_BINS));
			if (e >= hi)
				continue;
			e = bucket_lo(bucket_of(e)); /* so no bucket straddles two bins */
		}
		if (e > edges[ne - 1])
			edges[ne++] = e;
	}
	json_t *arr = json_array();
	if (!arr)
		return NULL;
	size_t bin = 0;
	uint64_t c = 0;
	for (uint32_t i = bucket_of(h->min); i <= top; i++) {
		uint64_t v = bucket_lo(i);
		while (bin + 2 < ne && v >= edges[bin + 1]) {
			json_t *o = json_object();
			if (!o || !put(o, "lo", count(edges[bin])) ||
			    !put(o, "hi", count(edges[bin + 1])) || !put(o, "count", count(c)) ||
			    json_array_append_new(arr, o)) {
				json_decref(o);
				json_decref(arr);
				return NULL;
			}
			bin++;
			c = 0;
		}
		c += h->b[i];
	}
	for (; bin + 1 < ne; bin++, c = 0) {
		json_t *o = json_object();
		if (!o || !put(o, "lo", count(edges[bin])) ||
		    !put(o, "hi", count(edges[bin + 1])) || !put(o, "count", count(c)) ||
		    json_array_append_new(arr, o)) {
			json_decref(o);
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *hist_report(const struct hist *h)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	bool ok = put(o, "count", count(h->count)) && put(o, "min", count(h->min)) &&
		  put(o, "max", count(h->max)) &&
		  put(o, "mean", rounded((double)h->sum / (double)h->count, 1e3)) &&
		  put(o, "p50", count(hist_percentile(h, 50))) &&
		  put(o, "p90", count(hist_percentile(h, 90))) &&
		  put(o, "p99", count(hist_percentile(h, 99))) &&
		  put(o, "histogram", hist_chart(h));
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *field_report(const struct llm_stats *s, const struct field *f)
{
	json_t *o = json_object(), *types = json_object();
	bool ok = o && types && put(o, "name", name_string(f->name, f->name_len));
	if (ok && f->other)
		ok = put(o, "other", json_true());
	ok = ok && put(o, "present", count(f->present)) &&
	     put(o, "fraction",
		 rounded(s->records ? (double)f->present / (double)s->records : 0, 1e6));
	for (int t = 0; ok && t < T__COUNT; t++)
		ok = put(types, llm_json_type_name(slot_type[t]), count(f->types[t]));
	ok = ok && put(o, "types", types);
	types = NULL;
	if (ok && f->measured && f->chars.count) {
		json_t *len = json_object();
		ok = put(o, "empty", count(f->empty)) && put(o, "length", len) &&
		     put(len, "chars", hist_report(&f->chars)) &&
		     put(len, "words", hist_report(&f->words)) &&
		     put(len, "bytes", hist_report(&f->bytes));
	}
	json_decref(types);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *dup_report(const struct dupset *d)
{
	uint64_t distinct = dup_distinct(d);
	json_t *o = json_object();
	if (o && put(o, "counted", count(d->counted)) && put(o, "distinct", count(distinct)) &&
	    put(o, "duplicates", count(d->counted - distinct)) &&
	    put(o, "estimated", json_boolean(d->hll != NULL)))
		return o;
	json_decref(o);
	return NULL;
}

/* Indices 0..n-1 ordered by v, largest first; ties keep the order of the table. */
static void order_desc(const uint64_t *v, unsigned n, unsigned *idx)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned j = i;
		while (j > 0 && v[idx[j - 1]] < v[i]) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = i;
	}
}

static json_t *scripts_report(const struct llm_stats *s)
{
	uint64_t total = 0;
	for (unsigned k = 0; k < SC__COUNT; k++)
		total += s->letters[k];
	json_t *o = json_object(), *by_letters = json_array(), *by_records = json_array();
	bool ok = o && by_letters && by_records && put(o, "letters", count(total));
	unsigned idx[SC__COUNT + 1];
	order_desc(s->letters, SC__COUNT, idx);
	for (unsigned i = 0; ok && i < SC__COUNT && s->letters[idx[i]]; i++) {
		json_t *e = json_object();
		ok = e && !json_array_append_new(by_letters, e) &&
		     put(e, "script", json_string(script_names[idx[i]])) &&
		     put(e, "letters", count(s->letters[idx[i]])) &&
		     put(e, "fraction", rounded((double)s->letters[idx[i]] / (double)total, 1e6));
	}
	order_desc(s->dominant, SC__COUNT + 1, idx);
	for (unsigned i = 0; ok && i < SC__COUNT + 1 && s->dominant[idx[i]]; i++) {
		json_t *e = json_object();
		ok = e && !json_array_append_new(by_records, e) &&
		     put(e, "script",
			 json_string(idx[i] < SC__COUNT ? script_names[idx[i]] : "none")) &&
		     put(e, "records", count(s->dominant[idx[i]]));
	}
	ok = ok && put(o, "by_letters", by_letters);
	by_letters = NULL;
	ok = ok && put(o, "by_records", by_records);
	by_records = NULL;
	json_decref(by_letters);
	json_decref(by_records);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The entries of t ordered by occurrences, most first; ties keep first-seen order.  The
 * caller frees the result; NULL when out of memory (or when t is empty). */
static uint32_t *names_order(const struct names *t)
{
	uint32_t *idx = t->n ? malloc(t->n * sizeof *idx) : NULL;
	for (uint32_t i = 0; idx && i < t->n; i++) {
		uint32_t j = i;
		while (j > 0 && t->e[idx[j - 1]].n < t->e[i].n) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = i;
	}
	return idx;
}

/* A flag kind, or a kind and name, as an object {"kind", ["name"], "flags", "records"}. */
static json_t *flag_entry(const struct name_entry *x, bool two)
{
	json_t *o = json_object();
	bool ok = o && put(o, "kind", name_string(x->name, x->first));
	if (ok && two)
		ok = put(o, "name", name_string(x->name + x->first, x->len - x->first));
	ok = ok && put(o, "flags", count(x->n)) && put(o, "records", count(x->records));
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *flag_list(const struct names *t, bool two)
{
	json_t *arr = json_array();
	uint32_t *idx = names_order(t);
	bool ok = arr && (idx || !t->n);
	for (uint32_t i = 0; ok && i < t->n; i++)
		ok = !json_array_append_new(arr, flag_entry(&t->e[idx[i]], two));
	if (ok && t->other.n) {
		struct name_entry other = t->other;
		other.name = (char *)(two ? OTHER_NAME OTHER_NAME : OTHER_NAME);
		other.first = (uint32_t)strlen(OTHER_NAME);
		other.len = two ? 2 * other.first : other.first;
		ok = !json_array_append_new(arr, flag_entry(&other, two));
	}
	free(idx);
	if (!ok) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

static json_t *flags_report(const struct llm_stats *s)
{
	json_t *o = json_object();
	if (o && put(o, "field", name_string(s->role_name[0], s->role_len[0])) &&
	    put(o, "records", count(s->flags_present)) && put(o, "flagged", count(s->flagged)) &&
	    put(o, "flags", count(s->nflags)) && put(o, "not_array", count(s->flags_not_array)) &&
	    put(o, "by_kind", flag_list(&s->kinds, false)) &&
	    put(o, "by_name", flag_list(&s->flag_names, true)))
		return o;
	json_decref(o);
	return NULL;
}

/* The largest clusters (of two records or more): up to LARGEST, largest first, ties in the
 * order they reached two records. */
static json_t *largest_report(const struct clusterset *c)
{
	uint32_t top[LARGEST], cnt[LARGEST];
	size_t ntop = 0;
	for (size_t i = 0; i < c->nnames; i++) {
		uint32_t k = cluster_slot(c->slot, c->cap, c->names[i].h)->count;
		if (ntop == LARGEST && k <= cnt[LARGEST - 1])
			continue;
		size_t j = ntop < LARGEST ? ntop++ : LARGEST - 1;
		while (j > 0 && cnt[j - 1] < k) {
			top[j] = top[j - 1];
			cnt[j] = cnt[j - 1];
			j--;
		}
		top[j] = (uint32_t)i;
		cnt[j] = k;
	}
	json_t *arr = json_array();
	bool ok = arr != NULL;
	for (size_t i = 0; ok && i < ntop; i++) {
		const struct cname *nm = &c->names[top[i]];
		json_t *e = json_object();
		ok = e && !json_array_append_new(arr, e) &&
		     put(e, "id",
			 nm->len == UINT32_MAX ? json_null()
					       : name_string(c->arena.data + nm->off, nm->len)) &&
		     put(e, "records", count(cnt[i]));
	}
	if (!ok) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

static json_t *clusters_report(const struct llm_stats *s)
{
	const struct clusterset *c = &s->clusters;
	uint64_t multi = 0, in_multi = 0, distinct = c->n;
	for (size_t i = 0; i < c->cap; i++)
		if (c->slot[i].count > 1) {
			multi++;
			in_multi += c->slot[i].count;
		}
	if (c->hll) {
		/* Past the limit: the number of clusters from the sketch; of the records whose
		 * id was not kept, those beyond the first of their cluster are in clusters of
		 * two or more (a lower bound: the first of each such cluster is missed). */
		double est = hll_estimate(c->hll);
		uint64_t e = est >= (double)c->records ? c->records : (uint64_t)llround(est);
		distinct = e > c->n ? e : c->n;
		uint64_t new_ids = distinct - c->n;
		if (c->untracked > new_ids)
			in_multi += c->untracked - new_ids;
	}
	json_t *o = json_object();
	if (o && put(o, "field", name_string(s->role_name[1], s->role_len[1])) &&
	    put(o, "records", count(c->records)) && put(o, "clusters", count(distinct)) &&
	    put(o, "multi", count(multi)) && put(o, "in_multi", count(in_multi)) &&
	    put(o, "largest", largest_report(c)) &&
	    put(o, "estimated", json_boolean(c->hll != NULL)) &&
	    put(o, "duplicate_field", name_string(s->role_name[2], s->role_len[2])) &&
	    put(o, "duplicates", count(s->dup_marked)))
		return o;
	json_decref(o);
	return NULL;
}

static json_t *split_entry(const struct name_entry *x, uint64_t total)
{
	json_t *o = json_object();
	bool ok = o && put(o, "split", name_string(x->name, x->len)) &&
		  put(o, "records", count(x->records)) &&
		  put(o, "fraction", rounded(total ? (double)x->records / (double)total : 0, 1e6));
	if (ok && x->chars.count)
		ok = put(o, "chars_p50", count(hist_percentile(&x->chars, 50)));
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *splits_report(const struct llm_stats *s)
{
	const struct names *t = &s->splits;
	json_t *o = json_object(), *arr = json_array();
	uint32_t *idx = names_order(t);
	bool ok = o && arr && (idx || !t->n) &&
		  put(o, "field", name_string(s->role_name[3], s->role_len[3])) &&
		  put(o, "records", count(s->split_records));
	for (uint32_t i = 0; ok && i < t->n; i++)
		ok = !json_array_append_new(arr, split_entry(&t->e[idx[i]], s->split_records));
	if (ok && t->other.n) {
		struct name_entry other = t->other;
		other.name = (char *)OTHER_NAME;
		other.len = other.first = (uint32_t)strlen(OTHER_NAME);
		ok = !json_array_append_new(arr, split_entry(&other, s->split_records));
	}
	free(idx);
	if (!ok)
		json_decref(arr);
	if (!ok || !put(o, "by_split", arr)) { /* put frees arr when it fails */
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *tokens_report(const struct llm_stats *s)
{
	json_t *arr = json_array();
	bool ok = arr != NULL;
	for (size_t i = 0; ok && i < s->ntok; i++) {
		const struct tokens *t = &s->tok[i];
		json_t *o = json_object();
		ok = o && !json_array_append_new(arr, o) &&
		     put(o, "name", name_string(t->name, strlen(t->name))) &&
		     put(o, "records", count(t->per_record.count)) &&
		     put(o, "tokens", count(t->tokens)) && put(o, "chars", count(t->chars)) &&
		     put(o, "words", count(t->words)) &&
		     put(o, "tokens_per_char",
			 rounded(t->chars ? (double)t->tokens / (double)t->chars : 0, 1e6)) &&
		     put(o, "tokens_per_word",
			 rounded(t->words ? (double)t->tokens / (double)t->words : 0, 1e6));
		if (ok && t->per_record.count)
			ok = put(o, "per_record", hist_report(&t->per_record));
	}
	if (!ok) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

json_t *llm_stats_report(const struct llm_stats *s)
{
	json_t *r = json_object(), *reasons = json_object(), *fields = json_array(),
	       *dups = json_object();
	uint64_t bad = 0;
	bool ok = r && reasons && fields && dups;
	for (unsigned c = 0; ok && c <= LLM_ERR__COUNT; c++) {
		bad += s->bad[c];
		if (s->bad[c])
			ok = put(reasons, llm_err_name((enum llm_err)c), count(s->bad[c]));
	}
	ok = ok && put(r, "records", count(s->records)) && put(r, "bad", count(bad)) &&
	     put(r, "bad_by_reason", reasons);
	reasons = NULL;
	for (uint32_t i = 0; ok && i < s->nfields; i++)
		ok = !json_array_append_new(fields, field_report(s, &s->fields[i]));
	if (ok && s->other.present)
		ok = !json_array_append_new(fields, field_report(s, &s->other));
	/* A field asked for by name and never seen is worth seeing in the report. */
	for (size_t i = 0; ok && i < s->nwant; i++) {
		struct field unseen = {.name = s->want[i],
				       .name_len = (uint32_t)strlen(s->want[i])};
		bool seen = false;
		for (uint32_t j = 0; !seen && j < s->nfields; j++)
			seen = name_is(s->fields[j].name, s->fields[j].name_len, s->want[i]);
		for (size_t j = 0; !seen && j < i; j++) /* named twice */
			seen = !strcmp(s->want[j], s->want[i]);
		if (!seen)
			ok = !json_array_append_new(fields, field_report(s, &unseen));
	}
	ok = ok && put(r, "fields", fields);
	fields = NULL;
	ok = ok && put(r, "text_field", name_string(s->text_field, s->text_field_len)) &&
	     put(r, "duplicates", dups);
	ok = ok && put(dups, "records", dup_report(&s->dup_records)) &&
	     put(dups, "text", dup_report(&s->dup_text));
	dups = NULL;
	ok = ok && put(r, "scripts", scripts_report(s));
	/* What other verbs wrote, only when there is some; tokens only when asked for. */
	if (ok && s->ntok)
		ok = put(r, "tokens", tokens_report(s));
	if (ok && s->flags_present)
		ok = put(r, "flags", flags_report(s));
	if (ok && (s->clusters.records || s->dup_present))
		ok = put(r, "clusters", clusters_report(s));
	if (ok && s->split_records)
		ok = put(r, "splits", splits_report(s));
	json_decref(reasons);
	json_decref(fields);
	json_decref(dups);
	if (!ok) {
		json_decref(r);
		return NULL;
	}
	return r;
}
