#include "config.h"

#include "core/opt.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void llm_opt_env_name(const char *tool, const char *opt, char *out, size_t outsz)
{
	size_t k = (size_t)snprintf(out, outsz, "LLMOPS_");
	for (const char *p = tool; *p && k + 1 < outsz; p++)
		out[k++] = (char)toupper((unsigned char)*p);
	if (k + 1 < outsz)
		out[k++] = '_';
	for (const char *p = opt; *p && k + 1 < outsz; p++)
		out[k++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	out[k < outsz ? k : outsz - 1] = '\0';
}

bool llm_parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*s))
		return false;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return false;
	unsigned shift = 0;
	switch (toupper((unsigned char)*end)) {
	case '\0': break;
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	case 'T': shift = 40; break;
	default: return false;
	}
	if (*end) {
		end++;
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'B' || *end == 'b')
			end++;
		if (*end)
			return false;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

static bool choice_ok(const char *choices, const char *v)
{
	size_t n = strlen(v);
	for (const char *p = choices; *p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && memcmp(p, v, n) == 0)
			return true;
		if (!bar)
			break;
		p = bar + 1;
	}
	return false;
}

/* Check v against o's type; on failure fill diag.  where says where v came from. */
static enum llm_err check_value(const struct llm_opt *o, const char *v, const char *where,
				struct llm_diag *d)
{
	char *end;
	switch (o->type) {
	case LLM_OPT_FLAG:
	case LLM_OPT_STRING:
		return LLM_OK;
	case LLM_OPT_INT: {
		errno = 0;
		long long x = strtoll(v, &end, 10);
		if (errno || end == v || *end)
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "%s: not an integer: '%s'",
					    where, v);
		if (o->min < o->max && (x < o->min || x > o->max))
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
					    "%s: %lld is out of range (%.0f to %.0f)", where, x,
					    o->min, o->max);
		return LLM_OK;
	}
	case LLM_OPT_SIZE: {
		uint64_t x;
		if (!llm_parse_size(v, &x))
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
					    "%s: not a size: '%s' (try 64M or 1G)", where, v);
		if (o->min < o->max && ((double)x < o->min || (double)x > o->max))
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "%s: '%s' is out of range",
					    where, v);
		return LLM_OK;
	}
	case LLM_OPT_DOUBLE: {
		errno = 0;
		double x = strtod(v, &end);
		if (errno || end == v || *end || !isfinite(x))
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "%s: not a number: '%s'",
					    where, v);
		if (o->min < o->max && (x < o->min || x > o->max))
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
					    "%s: %g is out of range (%g to %g)", where, x, o->min,
					    o->max);
		return LLM_OK;
	}
	case LLM_OPT_CHOICE:
		if (!choice_ok(o->choices, v))
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "%s: '%s' is not one of %s",
					    where, v, o->choices);
		return LLM_OK;
	}
	return LLM_OK;
}

static enum llm_err add_value(struct llm_args *a, size_t i, const char *v)
{
	if (!a->opts[i]->repeat) {
		for (size_t k = 0; k < a->nvals[i]; k++)
			free(a->vals[i][k]);
		a->nvals[i] = 0;
	}
	char **p = realloc(a->vals[i], (a->nvals[i] + 1) * sizeof *p);
	if (!p)
		return LLM_ERR_NOMEM;
	a->vals[i] = p;
	if (!(p[a->nvals[i]] = strdup(v)))
		return LLM_ERR_NOMEM;
	a->nvals[i]++;
	return LLM_OK;
}

static long find_long(const struct llm_args *a, const char *name, size_t len)
{
	for (size_t i = 0; i < a->nopts; i++)
		if (strlen(a->opts[i]->name) == len && memcmp(a->opts[i]->name, name, len) == 0)
			return (long)i;
	return -1;
}

static long find_short(const struct llm_args *a, char c)
{
	for (size_t i = 0; i < a->nopts; i++)
		if (a->opts[i]->short_name == c)
			return (long)i;
	return -1;
}

static enum llm_err from_env(struct llm_args *a, const char *tool, struct llm_diag *d)
{
	for (size_t i = 0; i < a->nopts; i++) {
		const struct llm_opt *o = a->opts[i];
		if (o->no_env)
			continue;
		char name[128];
		llm_opt_env_name(tool, o->name, name, sizeof name);
		const char *v = getenv(name);
		if (!v)
			continue;
		if (o->type == LLM_OPT_FLAG) {
			if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"))
				v = "1";
			else if (!*v || !strcmp(v, "0") || !strcasecmp(v, "false") ||
				 !strcasecmp(v, "no"))
				continue;
			else
				return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
						    "%s: expected 1, 0, true, false, yes or no, not '%s'",
						    name, v);
		}
		enum llm_err e = check_value(o, v, name, d);
		if (e)
			return e;
		if ((e = add_value(a, i, v)))
			return e;
	}
	return LLM_OK;
}

static enum llm_err missing_arg(const struct llm_opt *o, struct llm_diag *d)
{
	return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "option '--%s' needs an argument (%s)",
			    o->name, o->arg ? o->arg : "a value");
}

/* A value from the command line: checked, and replacing any from the environment. */
static enum llm_err set_from_cli(struct llm_args *a, size_t i, const char *val, bool *seen,
				 struct llm_diag *d)
{
	char where[96];
	snprintf(where, sizeof where, "--%s", a->opts[i]->name);
	enum llm_err e = check_value(a->opts[i], val, where, d);
	if (e)
		return e;
	if (!seen[i]) {
		for (size_t v = 0; v < a->nvals[i]; v++)
			free(a->vals[i][v]);
		a->nvals[i] = 0;
		seen[i] = true;
	}
	return add_value(a, i, val);
}

enum llm_err llm_opt_parse(const struct llm_opt *const *tables, const char *tool, int argc,
			   char **argv, struct llm_args *a, struct llm_diag *d)
{
	memset(a, 0, sizeof *a);
	a->tables = tables;
	for (size_t t = 0; tables[t]; t++)
		for (const struct llm_opt *o = tables[t]; o->name; o++)
			a->nopts++;
	a->opts = calloc(a->nopts + 1, sizeof *a->opts);
	a->vals = calloc(a->nopts + 1, sizeof *a->vals);
	a->nvals = calloc(a->nopts + 1, sizeof *a->nvals);
	a->operands = calloc((size_t)argc + 1, sizeof *a->operands);
	if (!a->opts || !a->vals || !a->nvals || !a->operands)
		return LLM_ERR_NOMEM;
	size_t k = 0;
	for (size_t t = 0; tables[t]; t++)
		for (const struct llm_opt *o = tables[t]; o->name; o++)
			a->opts[k++] = o;

	enum llm_err e = from_env(a, tool, d);
	if (e)
		return e;
	/* Options given on the command line replace those from the environment. */
	bool *seen = calloc(a->nopts + 1, sizeof *seen);
	if (!seen)
		return LLM_ERR_NOMEM;
	bool only_operands = false;
	for (int i = 0; i < argc && !e; i++) {
		const char *arg = argv[i];
		if (only_operands || arg[0] != '-' || !strcmp(arg, "-")) {
			a->operands[a->noperands++] = argv[i];
			continue;
		}
		if (!strcmp(arg, "--")) {
			only_operands = true;
			continue;
		}
		if (arg[1] == '-') {
			const char *name = arg + 2;
			const char *eq = strchr(name, '=');
			size_t len = eq ? (size_t)(eq - name) : strlen(name);
			long idx = find_long(a, name, len);
			if (idx < 0) {
				e = llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "unknown option '--%.*s'",
						 (int)len, name);
				break;
			}
			const char *val = eq ? eq + 1 : NULL;
			if (a->opts[idx]->type == LLM_OPT_FLAG && val) {
				e = llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
						 "option '--%s' takes no argument", a->opts[idx]->name);
				break;
			}
			if (a->opts[idx]->type != LLM_OPT_FLAG && !val) {
				if (i + 1 >= argc) {
					e = missing_arg(a->opts[idx], d);
					break;
				}
				val = argv[++i];
			}
			e = set_from_cli(a, (size_t)idx, val ? val : "1", seen, d);
			continue;
		}
		/* Short options: "-n5", "-n 5", or a bundle of flags "-qv". */
		for (size_t j = 1; arg[j] && !e; j++) {
			long idx = find_short(a, arg[j]);
			if (idx < 0) {
				e = llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "unknown option '-%c'",
						 arg[j]);
				break;
			}
			if (a->opts[idx]->type == LLM_OPT_FLAG) {
				e = set_from_cli(a, (size_t)idx, "1", seen, d);
				continue;
			}
			const char *val = arg + j + 1;
			if (!*val) {
				if (i + 1 >= argc) {
					e = missing_arg(a->opts[idx], d);
					break;
				}
				val = argv[++i];
			}
			e = set_from_cli(a, (size_t)idx, val, seen, d);
			break;
		}
	}
	free(seen);
	return e;
}

void llm_args_free(struct llm_args *a)
{
	for (size_t i = 0; i < a->nopts && a->vals; i++) {
		for (size_t k = 0; k < a->nvals[i]; k++)
			free(a->vals[i][k]);
		free(a->vals[i]);
	}
	free(a->vals);
	free(a->nvals);
	free(a->opts);
	free(a->operands);
	memset(a, 0, sizeof *a);
}

static long index_of(const struct llm_args *a, const char *name)
{
	/* A verb asking for an option its tables lack is a programming error that the
	 * option tests catch; here it reads as an option never given. */
	return find_long(a, name, strlen(name));
}

bool llm_args_given(const struct llm_args *a, const char *name)
{
	long i = index_of(a, name);
	return i >= 0 && a->nvals[i] > 0;
}

const char *llm_args_str(const struct llm_args *a, const char *name)
{
	long i = index_of(a, name);
	if (i < 0)
		return NULL;
	if (a->nvals[i])
		return a->vals[i][a->nvals[i] - 1];
	return a->opts[i]->def;
}

char *const *llm_args_strs(const struct llm_args *a, const char *name, size_t *n)
{
	long i = index_of(a, name);
	*n = i < 0 ? 0 : a->nvals[i];
	return i < 0 ? NULL : a->vals[i];
}

static enum llm_err strv_push(char ***v, size_t *n, const char *s, size_t len)
{
	char **p = realloc(*v, (*n + 2) * sizeof *p);
	if (!p)
		return LLM_ERR_NOMEM;
	*v = p;
	if (!(p[*n] = strndup(s, len)))
		return LLM_ERR_NOMEM;
	p[++*n] = NULL;
	return LLM_OK;
}

enum llm_err llm_args_list(const struct llm_args *a, const char *name, char ***items, size_t *n)
{
	size_t nv;
	char *const *vals = llm_args_strs(a, name, &nv);
	const char *def = llm_args_str(a, name);
	*items = NULL;
	*n = 0;
	if (!nv && def) {
		vals = (char *const *)&def;
		nv = 1;
	}
	/* A valid, empty, NULL-terminated list even when there are no values. */
	if (!(*items = calloc(1, sizeof **items)))
		return LLM_ERR_NOMEM;
	enum llm_err e = LLM_OK;
	for (size_t i = 0; i < nv && !e; i++)
		for (const char *s = vals[i]; s && !e;) {
			const char *comma = strchr(s, ',');
			size_t len = comma ? (size_t)(comma - s) : strlen(s);
			if (len)
				e = strv_push(items, n, s, len);
			s = comma ? comma + 1 : NULL;
		}
	if (e) {
		llm_strv_free(*items);
		*items = NULL;
		*n = 0;
	}
	return e;
}

void llm_strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

bool llm_args_flag(const struct llm_args *a, const char *name)
{
	const char *v = llm_args_str(a, name);
	return v && strcmp(v, "0") != 0;
}

int64_t llm_args_int(const struct llm_args *a, const char *name)
{
	const char *v = llm_args_str(a, name);
	return v ? strtoll(v, NULL, 10) : 0;
}

uint64_t llm_args_size(const struct llm_args *a, const char *name)
{
	const char *v = llm_args_str(a, name);
	uint64_t x = 0;
	if (v)
		llm_parse_size(v, &x);
	return x;
}

double llm_args_double(const struct llm_args *a, const char *name)
{
	const char *v = llm_args_str(a, name);
	return v ? strtod(v, NULL) : 0.0;
}

enum llm_err llm_opt_help(const struct llm_opt *table, struct llm_buf *out)
{
	enum llm_err e = LLM_OK;
	for (const struct llm_opt *o = table; o->name && !e; o++) {
		char head[96], shrt[8] = "    ";
		if (o->short_name)
			snprintf(shrt, sizeof shrt, "-%c, ", o->short_name);
		int n = snprintf(head, sizeof head, "  %s--%s%s%s", shrt, o->name,
				 o->type == LLM_OPT_FLAG ? "" : " ",
				 o->type == LLM_OPT_FLAG ? "" : (o->arg ? o->arg : "VALUE"));
		e = llm_buf_printf(out, "%s%*s%s", head, n < 32 ? 32 - n : 1, "", o->help);
		if (!e && o->type == LLM_OPT_CHOICE && o->choices)
			e = llm_buf_printf(out, " (%s)", o->choices);
		if (!e && o->def && o->type != LLM_OPT_FLAG)
			e = llm_buf_printf(out, " [default: %s]", o->def);
		if (!e && o->repeat)
			e = llm_buf_puts(out, " (repeatable)");
		if (!e)
			e = llm_buf_putc(out, '\n');
	}
	return e;
}
