/* The DDSketch-style quantile sketch of sketch.h: a dense array of bucket counts over the span
 * of keys seen, grown with some slack so a stream of similar values rarely reallocates, and
 * folded from below when it would pass LLM_SKETCH_MAX_BINS. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/sketch.h"

/* gamma = (1 + a) / (1 - a) for a = LLM_SKETCH_ALPHA, and its logarithm: constants, so that
 * every process (every shard) buckets a value alike. */
#define GAMMA 1.0202020202020203
#define LOG_GAMMA 0.020000666706669435
_Static_assert(LLM_SKETCH_ALPHA == 0.01, "GAMMA and LOG_GAMMA are for a = 0.01");

/* Growth slack, in buckets, on the side that grew: latencies wander over a few dozen
 * buckets, and this keeps reallocations to a handful per sketch. */
#define SLACK 32

void llm_sketch_init(struct llm_sketch *s)
{
	memset(s, 0, sizeof *s);
}

void llm_sketch_free(struct llm_sketch *s)
{
	free(s->bins);
	llm_sketch_init(s);
}

static int32_t key_of(double v)
{
	double k = ceil(log(v) / LOG_GAMMA);
	/* LLM_SKETCH_MIN_VALUE and DBL_MAX bound k to about +-36000; the clamp is for safety. */
	if (k < -1000000)
		k = -1000000;
	if (k > 1000000)
		k = 1000000;
	return (int32_t)k;
}

static double value_of(int32_t k)
{
	return 2 * exp((double)k * LOG_GAMMA) / (GAMMA + 1);
}

/* Make the keys [lo, hi] addressable, or as much of them as LLM_SKETCH_MAX_BINS allows from the
 * top (counts below the new lowest key fold into it). */
static enum llm_err cover(struct llm_sketch *s, int32_t lo, int32_t hi)
{
	/* Below a full span, counts fold into the lowest bucket (add_key). */
	if (s->cap && hi < s->offset + (int64_t)s->cap &&
	    (lo >= s->offset || s->cap >= LLM_SKETCH_MAX_BINS))
		return LLM_OK;
	int64_t nlo = lo, nhi = hi;
	if (s->cap) {
		int64_t olo = s->offset, ohi = s->offset + (int64_t)s->cap - 1;
		if (lo < olo)
			nlo = lo - SLACK;
		else
			nlo = olo;
		if (hi > ohi)
			nhi = hi + SLACK;
		else
			nhi = ohi;
	} else {
		nlo = lo - SLACK / 4;
		nhi = hi + SLACK / 4;
	}
	if (nhi - nlo + 1 > LLM_SKETCH_MAX_BINS)
		nlo = nhi - LLM_SKETCH_MAX_BINS + 1;
	size_t ncap = (size_t)(nhi - nlo + 1);
	uint64_t *nb = calloc(ncap, sizeof *nb);
	if (!nb)
		return LLM_ERR_NOMEM;
	for (uint32_t i = 0; i < s->cap; i++) {
		if (!s->bins[i])
			continue;
		int64_t k = s->offset + (int64_t)i;
		if (k < nlo)
			k = nlo;
		nb[k - nlo] += s->bins[i];
	}
	free(s->bins);
	s->bins = nb;
	s->offset = (int32_t)nlo;
	s->cap = s->nbins = (uint32_t)ncap;
	return LLM_OK;
}

/* Count n values of bucket k (folded into the lowest bucket when below the span). */
static enum llm_err add_key(struct llm_sketch *s, int32_t k, uint64_t n)
{
	enum llm_err e = cover(s, k, k);
	if (e)
		return e;
	int64_t i = (int64_t)k - s->offset;
	if (i < 0)
		i = 0;
	s->bins[i] += n;
	return LLM_OK;
}

static void extremes(struct llm_sketch *s, double lo, double hi)
{
	if (!s->count || lo < s->min)
		s->min = lo;
	if (!s->count || hi > s->max)
		s->max = hi;
}

enum llm_err llm_sketch_add(struct llm_sketch *s, double v)
{
	if (isnan(v))
		return LLM_OK;
	if (v < LLM_SKETCH_MIN_VALUE) {
		s->zero++;
	} else {
		enum llm_err e = add_key(s, key_of(v), 1);
		if (e)
			return e;
	}
	extremes(s, v, v);
	s->count++;
	s->sum += v;
	return LLM_OK;
}

/* The lowest and highest keys with a count; false when there is none. */
static bool span(const struct llm_sketch *s, int32_t *lo, int32_t *hi)
{
	uint32_t a = 0, b = s->cap;
	while (a < b && !s->bins[a])
		a++;
	while (b > a && !s->bins[b - 1])
		b--;
	if (a == b)
		return false;
	*lo = s->offset + (int32_t)a;
	*hi = s->offset + (int32_t)b - 1;
	return true;
}

enum llm_err llm_sketch_merge(struct llm_sketch *dst, const struct llm_sketch *src)
{
	if (!src->count)
		return LLM_OK;
	int32_t lo, hi;
	if (span(src, &lo, &hi)) {
		enum llm_err e = cover(dst, lo, hi);
		if (e)
			return e;
		for (int32_t k = lo; k <= hi; k++) {
			uint64_t n = src->bins[k - src->offset];
			if (n) {
				int64_t i = (int64_t)k - dst->offset;
				dst->bins[i < 0 ? 0 : i] += n;
			}
		}
	}
	dst->zero += src->zero;
	extremes(dst, src->min, src->max);
	dst->count += src->count;
	dst->sum += src->sum;
	return LLM_OK;
}

bool llm_sketch_quantile(const struct llm_sketch *s, double q, double *out)
{
	if (!s->count)
		return false;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	/* The value of rank floor(q (n - 1)), 0-based: the first bucket whose cumulative count
	 * passes the rank holds it. */
	double rank = q * (double)(s->count - 1);
	double v = 0;
	uint64_t cum = s->zero;
	if ((double)cum <= rank) {
		v = s->max;
		for (uint32_t i = 0; i < s->cap; i++) {
			cum += s->bins[i];
			if ((double)cum > rank) {
				v = value_of(s->offset + (int32_t)i);
				break;
			}
		}
	}
	if (v < s->min)
		v = s->min;
	if (v > s->max)
		v = s->max;
	*out = v;
	return true;
}

json_t *llm_sketch_to_json(const struct llm_sketch *s)
{
	json_t *o = json_object(), *bins = json_array();
	if (!o || !bins)
		goto fail;
	int32_t lo = 0, hi = -1;
	if (!span(s, &lo, &hi))
		lo = 0, hi = -1;
	for (int32_t k = lo; k <= hi; k++)
		if (json_array_append_new(bins,
					  json_integer((json_int_t)s->bins[k - s->offset])))
			goto fail;
	if (json_object_set_new(o, "alpha", json_real(LLM_SKETCH_ALPHA)) ||
	    json_object_set_new(o, "count", json_integer((json_int_t)s->count)) ||
	    json_object_set_new(o, "sum", json_real(s->sum)) ||
	    (s->count && json_object_set_new(o, "min", json_real(s->min))) ||
	    (s->count && json_object_set_new(o, "max", json_real(s->max))) ||
	    json_object_set_new(o, "zero", json_integer((json_int_t)s->zero)) ||
	    json_object_set_new(o, "offset", json_integer(lo)) ||
	    json_object_set_new(o, "bins", bins))
		goto fail_obj;
	return o;
fail:
	json_decref(bins);
fail_obj:
	json_decref(o);
	return NULL;
}

static bool count_of(const json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

enum llm_err llm_sketch_from_json(struct llm_sketch *s, const json_t *j, struct llm_diag *diag)
{
	const json_t *alpha = json_object_get(j, "alpha"), *bins = json_object_get(j, "bins"),
		     *off = json_object_get(j, "offset");
	uint64_t count, zero;
	if (!json_is_object(j) || !json_is_number(alpha) || !json_is_array(bins) ||
	    !json_is_integer(off) || !count_of(json_object_get(j, "count"), &count) ||
	    !count_of(json_object_get(j, "zero"), &zero) ||
	    !json_is_number(json_object_get(j, "sum")))
		return llm_diag_set(diag, LLM_ERR_FORMAT, "", 0, "not a sketch");
	if (fabs(json_number_value(alpha) - LLM_SKETCH_ALPHA) > 1e-12)
		return llm_diag_set(diag, LLM_ERR_FORMAT, "", 0,
				    "a sketch of relative accuracy %g cannot merge with %g",
				    json_number_value(alpha), LLM_SKETCH_ALPHA);
	json_int_t o = json_integer_value(off);
	size_t n = json_array_size(bins);
	if (o < -2000000 || o > 2000000 || n > 4 * LLM_SKETCH_MAX_BINS)
		return llm_diag_set(diag, LLM_ERR_FORMAT, "", 0, "sketch buckets out of range");
	uint64_t total = zero;
	for (size_t i = 0; i < n; i++) {
		uint64_t c;
		if (!count_of(json_array_get(bins, i), &c))
			return llm_diag_set(diag, LLM_ERR_FORMAT, "", 0,
					    "sketch bucket %zu is not a count", i);
		if (c && add_key(s, (int32_t)(o + (json_int_t)i), c))
			return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0, "out of memory");
		total += c;
	}
	if (total != count)
		return llm_diag_set(diag, LLM_ERR_FORMAT, "", 0,
				    "sketch buckets hold %llu values, count says %llu",
				    (unsigned long long)total, (unsigned long long)count);
	s->zero = zero;
	s->count = count;
	s->sum = json_number_value(json_object_get(j, "sum"));
	if (count) {
		const json_t *mn = json_object_get(j, "min"), *mx = json_object_get(j, "max");
		if (!json_is_number(mn) || !json_is_number(mx))
			return llm_diag_set(diag, LLM_ERR_FORMAT, "", 0, "sketch lacks min or max");
		s->min = json_number_value(mn);
		s->max = json_number_value(mx);
	}
	return LLM_OK;
}
