/* Search spaces and trials for llm-tune sweep; see sweep.h. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/rand.h"
#include "tune/sweep.h"

#define SPACE_MAX_BYTES (16u << 20)
#define LIST_MAX	100000

const char *llm_sweep_reserved(const char *name)
{
	static const char *const names[][2] = {
	    {"out", "each trial writes to OUT/trial-NNN"},
	    {"run-name", "each trial's run is named after the sweep"},
	    {"runs-dir", "use sweep's --runs-dir"},
	    {"threads", "use sweep's --threads"},
	    {"resume", "the sweep decides which trials to run again"},
	    {"force", "the sweep decides which trials to run again"},
	    {"help", "not a training parameter"},
	    {"version", "not a training parameter"},
	    {"completion-helper", "not a training parameter"},
	    {"quiet", "not a training parameter"},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcmp(names[i][0], name))
			return names[i][1];
	return NULL;
}

static void param_free(struct llm_sweep_param *p)
{
	free(p->name);
	for (size_t i = 0; i < p->nvalues; i++)
		free(p->values[i]);
	free(p->values);
}

void llm_sweep_space_free(struct llm_sweep_space *s)
{
	for (size_t i = 0; i < s->nparams; i++)
		param_free(&s->params[i]);
	for (size_t i = 0; i < s->nfixed; i++)
		param_free(&s->fixed[i]);
	free(s->params);
	free(s->fixed);
	memset(s, 0, sizeof *s);
}

/* The shortest text that reads back as x. */
static char *fmt_double(double x)
{
	char b[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(b, sizeof b, "%.*g", prec, x);
		if (strtod(b, NULL) == x)
			break;
	}
	return strdup(b);
}

static char *fmt_int(long long v)
{
	char b[32];
	snprintf(b, sizeof b, "%lld", v);
	return strdup(b);
}

/* One value as command-line text; NULL with d set when it cannot be one. */
static enum llm_err value_text(json_t *v, const struct llm_opt *o, const char *file,
			       const char *where, char **out, struct llm_diag *d)
{
	*out = NULL;
	if (o->type == LLM_OPT_FLAG) {
		if (!json_is_boolean(v))
			return llm_diag_set(d, LLM_ERR_TYPE, file, 0,
					    "%s: '%s' is a flag: true or false", where, o->name);
		*out = strdup(json_is_true(v) ? "true" : "false");
	} else if (json_is_integer(v)) {
		*out = fmt_int((long long)json_integer_value(v));
	} else if (json_is_real(v)) {
		*out = fmt_double(json_real_value(v));
	} else if (json_is_string(v)) {
		*out = strdup(json_string_value(v));
	} else {
		return llm_diag_set(d, LLM_ERR_TYPE, file, 0,
				    "%s: a value of '%s' must be a number or a string", where,
				    o->name);
	}
	return *out ? LLM_OK : llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
}

static const struct llm_opt *find_opt(const struct llm_opt *table, const char *name)
{
	for (const struct llm_opt *o = table; o->name; o++)
		if (!strcmp(o->name, name))
			return o;
	return NULL;
}

static enum llm_err check_name(const struct llm_opt *table, const char *name, const char *file,
			       const char *where, const struct llm_opt **o, struct llm_diag *d)
{
	const char *why = llm_sweep_reserved(name);
	if (why)
		return llm_diag_set(d, LLM_ERR_USAGE, file, 0, "%s: '%s' cannot be swept (%s)",
				    where, name, why);
	*o = find_opt(table, name);
	if (!*o)
		return llm_diag_set(d, LLM_ERR_USAGE, file, 0,
				    "%s: unknown parameter '%s' (not an option of llm-tune train)",
				    where, name);
	return LLM_OK;
}

static enum llm_err add_value(struct llm_sweep_param *p, json_t *v, const char *file,
			      const char *where, struct llm_diag *d)
{
	char *t;
	enum llm_err e = value_text(v, p->opt, file, where, &t, d);
	if (e)
		return e;
	p->values[p->nvalues++] = t;
	return LLM_OK;
}

static enum llm_err parse_list(struct llm_sweep_param *p, json_t *arr, const char *file,
			       struct llm_diag *d)
{
	size_t n = json_array_size(arr);
	if (n == 0)
		return llm_diag_set(d, LLM_ERR_USAGE, file, 0, "params.%s: an empty list", p->name);
	if (n > LIST_MAX)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, file, 0, "params.%s: more than %d values",
				    p->name, LIST_MAX);
	p->values = calloc(n, sizeof *p->values);
	if (!p->values)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	char where[300];
	snprintf(where, sizeof where, "params.%s", p->name);
	for (size_t i = 0; i < n; i++) {
		enum llm_err e = add_value(p, json_array_get(arr, i), file, where, d);
		if (e)
			return e;
	}
	return LLM_OK;
}

static enum llm_err parse_range(struct llm_sweep_param *p, json_t *o, enum llm_sweep_method m,
				const char *file, struct llm_diag *d)
{
	json_t *mn = json_object_get(o, "min"), *mx = json_object_get(o, "max");
	json_t *lg = json_object_get(o, "log");
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v)
	{
		if (strcmp(key, "min") && strcmp(key, "max") && strcmp(key, "log"))
			return llm_diag_set(d, LLM_ERR_TYPE, file, 0,
					    "params.%s: unknown key '%s' (a range has min, max "
					    "and log)",
					    p->name, key);
	}
	if (!json_is_number(mn) || !json_is_number(mx))
		return llm_diag_set(d, LLM_ERR_TYPE, file, 0,
				    "params.%s: a range needs numbers min and max", p->name);
	if (lg && !json_is_boolean(lg))
		return llm_diag_set(d, LLM_ERR_TYPE, file, 0, "params.%s: log is true or false",
				    p->name);
	if (p->opt->type != LLM_OPT_INT && p->opt->type != LLM_OPT_DOUBLE)
		return llm_diag_set(d, LLM_ERR_USAGE, file, 0,
				    "params.%s: a range needs a numeric option; give a list",
				    p->name);
	if (m != LLM_SWEEP_RANDOM)
		return llm_diag_set(d, LLM_ERR_USAGE, file, 0,
				    "params.%s: a range needs \"method\": \"random\"; a grid takes "
				    "lists",
				    p->name);
	p->min = json_number_value(mn);
	p->max = json_number_value(mx);
	p->log = json_is_true(lg);
	if (!(p->min <= p->max) || !isfinite(p->min) || !isfinite(p->max))
		return llm_diag_set(d, LLM_ERR_RANGE, file, 0, "params.%s: min is above max",
				    p->name);
	if (p->log && !(p->min > 0))
		return llm_diag_set(d, LLM_ERR_RANGE, file, 0,
				    "params.%s: a log range needs min above 0", p->name);
	if (p->opt->type == LLM_OPT_INT && ceil(p->min) > floor(p->max))
		return llm_diag_set(d, LLM_ERR_RANGE, file, 0,
				    "params.%s: no integer between min and max", p->name);
	return LLM_OK;
}

static enum llm_err parse_params(json_t *params, const struct llm_opt *table,
				 struct llm_sweep_space *s, const char *file, struct llm_diag *d)
{
	size_t n = json_object_size(params);
	s->params = calloc(n + 1, sizeof *s->params);
	if (!s->params)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	const char *key;
	json_t *v;
	json_object_foreach(params, key, v)
	{
		struct llm_sweep_param *p = &s->params[s->nparams];
		const struct llm_opt *o;
		enum llm_err e = check_name(table, key, file, "params", &o, d);
		if (e)
			return e;
		if (o->type == LLM_OPT_FLAG && !json_is_array(v))
			return llm_diag_set(d, LLM_ERR_TYPE, file, 0,
					    "params.%s: a flag takes a list of true and false",
					    key);
		if (!(p->name = strdup(key)))
			return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		p->opt = o;
		s->nparams++;
		json_t *vals = json_is_object(v) ? json_object_get(v, "values") : NULL;
		if (json_is_array(v))
			e = parse_list(p, v, file, d);
		else if (vals && json_object_size(v) == 1 && json_is_array(vals))
			e = parse_list(p, vals, file, d);
		else if (json_is_object(v) && !vals)
			e = parse_range(p, v, s->method, file, d);
		else
			e = llm_diag_set(d, LLM_ERR_TYPE, file, 0,
					 "params.%s: a list, {\"values\": [...]} or {\"min\", "
					 "\"max\", \"log\"}",
					 key);
		if (e)
			return e;
	}
	return LLM_OK;
}

static enum llm_err parse_fixed(json_t *fixed, const struct llm_opt *table,
				struct llm_sweep_space *s, const char *file, struct llm_diag *d)
{
	size_t n = json_object_size(fixed);
	s->fixed = calloc(n + 1, sizeof *s->fixed);
	if (!s->fixed)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	const char *key;
	json_t *v;
	json_object_foreach(fixed, key, v)
	{
		struct llm_sweep_param *p = &s->fixed[s->nfixed];
		const struct llm_opt *o;
		enum llm_err e = check_name(table, key, file, "fixed", &o, d);
		if (e)
			return e;
		for (size_t i = 0; i < s->nparams; i++)
			if (!strcmp(s->params[i].name, key))
				return llm_diag_set(d, LLM_ERR_USAGE, file, 0,
						    "'%s' is both in params and in fixed", key);
		if (!(p->name = strdup(key)) || !(p->values = calloc(1, sizeof *p->values)))
			return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		p->opt = o;
		s->nfixed++;
		if ((e = add_value(p, v, file, "fixed", d)))
			return e;
	}
	return LLM_OK;
}

enum llm_err llm_sweep_space_parse(const char *text, size_t n, const char *file,
				   const struct llm_opt *table, struct llm_sweep_space *s,
				   struct llm_diag *d)
{
	memset(s, 0, sizeof *s);
	json_error_t je;
	json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return llm_diag_set(d, LLM_ERR_JSON, file, je.line, "%s", je.text);
	enum llm_err e = LLM_OK;
	json_t *method = json_object_get(root, "method"), *params = json_object_get(root, "params");
	json_t *fixed = json_object_get(root, "fixed");
	const char *key;
	json_t *v;
	if (!json_is_object(root)) {
		e = llm_diag_set(d, LLM_ERR_TYPE, file, 0, "not a JSON object");
		goto out;
	}
	json_object_foreach(root, key, v)
	{
		if (strcmp(key, "method") && strcmp(key, "params") && strcmp(key, "fixed")) {
			e = llm_diag_set(d, LLM_ERR_USAGE, file, 0,
					 "unknown key '%s' (method, params and fixed are)", key);
			goto out;
		}
	}
	if (!method || (json_is_string(method) && !strcmp(json_string_value(method), "grid")))
		s->method = LLM_SWEEP_GRID;
	else if (json_is_string(method) && !strcmp(json_string_value(method), "random"))
		s->method = LLM_SWEEP_RANDOM;
	else {
		e = llm_diag_set(d, LLM_ERR_USAGE, file, 0, "method is \"grid\" or \"random\"");
		goto out;
	}
	if (!json_is_object(params) || json_object_size(params) == 0) {
		e = llm_diag_set(d, LLM_ERR_TYPE, file, 0,
				 "params must be an object with at least one parameter");
		goto out;
	}
	if (fixed && !json_is_object(fixed)) {
		e = llm_diag_set(d, LLM_ERR_TYPE, file, 0, "fixed must be an object");
		goto out;
	}
	if ((e = parse_params(params, table, s, file, d)))
		goto out;
	if (fixed)
		e = parse_fixed(fixed, table, s, file, d);
out:
	json_decref(root);
	if (e)
		llm_sweep_space_free(s);
	return e;
}

enum llm_err llm_sweep_space_load(const char *path, const struct llm_opt *table,
				  struct llm_sweep_space *s, struct llm_diag *d)
{
	memset(s, 0, sizeof *s);
	FILE *f = fopen(path, "rb");
	if (!f)
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "cannot open: %s", strerror(errno));
	char *buf = malloc(SPACE_MAX_BYTES + 1);
	if (!buf) {
		fclose(f);
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	size_t n = fread(buf, 1, SPACE_MAX_BYTES + 1, f);
	bool bad = ferror(f);
	fclose(f);
	enum llm_err e;
	if (bad)
		e = llm_diag_set(d, LLM_ERR_IO, path, 0, "read error");
	else if (n > SPACE_MAX_BYTES)
		e = llm_diag_set(d, LLM_ERR_TOO_BIG, path, 0, "larger than %u bytes",
				 SPACE_MAX_BYTES);
	else
		e = llm_sweep_space_parse(buf, n, path, table, s, d);
	free(buf);
	return e;
}

uint64_t llm_sweep_grid_size(const struct llm_sweep_space *s)
{
	if (s->method != LLM_SWEEP_GRID)
		return 0;
	uint64_t n = 1;
	for (size_t i = 0; i < s->nparams; i++) {
		uint64_t k = s->params[i].nvalues;
		if (k && n > UINT64_MAX / k)
			return UINT64_MAX;
		n *= k;
	}
	return n;
}

void llm_sweep_trials_free(struct llm_sweep_trials *t)
{
	if (t->values)
		for (size_t i = 0; i < t->n * t->nparams; i++)
			free(t->values[i]);
	free(t->values);
	memset(t, 0, sizeof *t);
}

/* A random draw of a range. */
static char *draw_range(const struct llm_sweep_param *p, struct llm_rand *r)
{
	double u = llm_rand_double(r);
	if (p->opt->type == LLM_OPT_INT) {
		double lo = ceil(p->min), hi = floor(p->max);
		if (!p->log)
			return fmt_int((long long)lo +
				       (long long)llm_rand_below(r, (uint64_t)(hi - lo) + 1));
		double x = round(exp(log(p->min) + u * (log(p->max) - log(p->min))));
		return fmt_int((long long)(x < lo ? lo : x > hi ? hi : x));
	}
	double x = p->log ? exp(log(p->min) + u * (log(p->max) - log(p->min)))
			  : p->min + u * (p->max - p->min);
	if (x < p->min)
		x = p->min;
	if (x > p->max)
		x = p->max;
	char b[40];
	snprintf(b, sizeof b, "%.4g", x);
	double y = strtod(b, NULL);
	return y >= p->min && y <= p->max ? strdup(b) : fmt_double(x);
}

enum llm_err llm_sweep_trials_make(const struct llm_sweep_space *s, size_t n, uint64_t seed,
				   struct llm_sweep_trials *out, struct llm_diag *d)
{
	memset(out, 0, sizeof *out);
	if (s->method == LLM_SWEEP_GRID && n > llm_sweep_grid_size(s))
		return llm_diag_set(d, LLM_ERR_RANGE, NULL, 0,
				    "%zu trials asked of a grid of %llu points", n,
				    (unsigned long long)llm_sweep_grid_size(s));
	size_t np = s->nparams;
	if (np && n > SIZE_MAX / sizeof(char *) / np)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "too many trials");
	out->values = calloc(n * np + 1, sizeof *out->values);
	if (!out->values)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	out->n = n;
	out->nparams = np;
	struct llm_rand r;
	llm_rand_seed(&r, seed);
	for (size_t t = 0; t < n; t++) {
		uint64_t k = t; /* the grid point, last parameter fastest */
		for (size_t i = np; s->method == LLM_SWEEP_GRID && i-- > 0;) {
			const struct llm_sweep_param *p = &s->params[i];
			out->values[t * np + i] = strdup(p->values[k % p->nvalues]);
			k /= p->nvalues;
		}
		for (size_t i = 0; s->method == LLM_SWEEP_RANDOM && i < np; i++) {
			const struct llm_sweep_param *p = &s->params[i];
			char **slot = &out->values[t * np + i];
			*slot = p->nvalues ? strdup(p->values[llm_rand_below(&r, p->nvalues)])
					   : draw_range(p, &r);
		}
		for (size_t i = 0; i < np; i++)
			if (!out->values[t * np + i]) {
				llm_sweep_trials_free(out);
				return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
			}
	}
	return LLM_OK;
}

bool llm_sweep_trials_vary(const struct llm_sweep_trials *t, size_t p)
{
	for (size_t i = 1; i < t->n; i++)
		if (strcmp(t->values[i * t->nparams + p], t->values[p]))
			return true;
	return false;
}
