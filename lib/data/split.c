/* Deterministic splits by hash (see split.h). */
#include "config.h"

#include "data/split.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

void llm_split_plan_free(struct llm_split_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->name[i]);
	p->n = 0;
}

enum llm_err llm_split_plan_parse(struct llm_split_plan *p, const char *ratios, const char *names,
				  struct llm_diag *d)
{
	memset(p, 0, sizeof *p);
	double sum = 0;
	size_t nr = 0;
	for (const char *s = ratios; *s;) {
		if (nr == LLM_SPLIT_MAX)
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
					    "--ratios: at most %d splits", LLM_SPLIT_MAX);
		char *end;
		errno = 0;
		double r = strtod(s, &end);
		if (errno || end == s || (*end && *end != ',') || !isfinite(r) || r < 0 || r > 1)
			return llm_diag_set(
			    d, LLM_ERR_USAGE, NULL, 0,
			    "--ratios: expected numbers in [0, 1] separated by commas, "
			    "not '%s'",
			    ratios);
		p->ratio[nr++] = r;
		sum += r;
		s = *end ? end + 1 : end;
	}
	if (nr == 0 || fabs(sum - 1.0) > 1e-6)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "--ratios: the ratios must add up to 1, not %g", sum);
	double cum = 0;
	for (size_t i = 0; i < nr; i++) {
		cum += p->ratio[i];
		p->upper[i] = cum;
	}
	p->upper[nr - 1] = 1.0; /* rounding never leaves a gap at the top */
	const char *s = names;
	size_t nn = 0;
	enum llm_err e = LLM_OK;
	while (s && !e) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		if (nn == nr) {
			e = llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
					 "--names: %zu ratios but more names ('%s')", nr, names);
			break;
		}
		if (!len || memchr(s, '/', len) || (len == 1 && s[0] == '.') ||
		    (len == 2 && !memcmp(s, "..", 2))) {
			e = llm_diag_set(
			    d, LLM_ERR_USAGE, NULL, 0,
			    "--names: '%.*s' cannot be a split name (empty, '/', '.' or '..')",
			    (int)len, s);
			break;
		}
		for (size_t k = 0; k < nn && !e; k++)
			if (strlen(p->name[k]) == len && !memcmp(p->name[k], s, len))
				e = llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
						 "--names: '%.*s' appears twice", (int)len, s);
		if (e)
			break;
		if (!(p->name[nn] = strndup(s, len)))
			e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		else
			p->n = ++nn;
		s = comma ? comma + 1 : NULL;
	}
	if (!e && nn != nr)
		e = llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "--names: %zu names for %zu ratios", nn,
				 nr);
	if (e)
		llm_split_plan_free(p);
	return e;
}

enum llm_err llm_split_unit(const char *key, size_t n, const char *salt, double *u)
{
	struct llm_sha256 h = {0};
	unsigned char dg[LLM_SHA256_LEN];
	enum llm_err e = llm_sha256_init(&h);
	if (!e && salt) {
		e = llm_sha256_update(&h, salt, strlen(salt));
		if (!e)
			e = llm_sha256_update(&h, ":", 1);
	}
	if (!e)
		e = llm_sha256_update(&h, key, n);
	if (h.ctx) {
		enum llm_err f = llm_sha256_final(&h, dg); /* also releases the context */
		if (!e)
			e = f;
	}
	if (e)
		return e;
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | dg[i];
	*u = (double)(v >> 11) * 0x1p-53;
	return LLM_OK;
}

size_t llm_split_pick(const struct llm_split_plan *p, double u)
{
	for (size_t i = 0; i + 1 < p->n; i++)
		if (u < p->upper[i])
			return i;
	return p->n - 1;
}
