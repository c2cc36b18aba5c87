/* llm-prep: explore and prepare JSONL data.
 *
 *   validate  check records: JSON, UTF-8, required fields and their types
 *   stats     counts, field presence, length distributions, duplicates, scripts
 *   head      the first records
 *   sample    a seeded random sample (reservoir or Bernoulli)
 *   shard     split into files by count, by size, round-robin or by hash of a field
 *
 * Each verb is one run_* function over the shared record loop in cli.c. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/atomic.h"
#include "core/hash.h"
#include "core/rand.h"
#include "data/stats.h"

/* --- validate ------------------------------------------------------------------------- */

struct requirement {
	char *field;
	unsigned types; /* bit per enum llm_json_type; 0 = any */
	bool integer;   /* "integer" was among the types */
};

static bool type_bits(const char *name, unsigned *bits, bool *integer)
{
	static const struct {
		const char *name;
		unsigned bits;
	} names[] = {
		{"string", 1u << LLM_JSON_STRING},
		{"number", 1u << LLM_JSON_NUMBER},
		{"integer", 1u << LLM_JSON_NUMBER},
		{"boolean", 1u << LLM_JSON_TRUE | 1u << LLM_JSON_FALSE},
		{"object", 1u << LLM_JSON_OBJECT},
		{"array", 1u << LLM_JSON_ARRAY},
		{"null", 1u << LLM_JSON_NULL},
	};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (!strcmp(names[i].name, name)) {
			*bits |= names[i].bits;
			*integer |= !strcmp(name, "integer");
			return true;
		}
	return false;
}

/* The next item of a list separated by sep: [*p, end) is the item; *p moves past it. */
static bool next_item(const char **p, char sep, const char **start, size_t *len)
{
	if (!*p)
		return false;
	const char *s = *p, *e = strchr(s, sep);
	*start = s;
	*len = e ? (size_t)(e - s) : strlen(s);
	*p = e ? e + 1 : NULL;
	return true;
}

static int parse_requirement(struct llm_cli *c, const char *item, size_t len,
			     struct requirement *r)
{
	const char *colon = memchr(item, ':', len);
	size_t flen = colon ? (size_t)(colon - item) : len;
	if (!flen)
		return llm_cli_usage(c, "--require: a field name is empty");
	if (!(r->field = strndup(item, flen))) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	if (!colon)
		return 0;
	char *types = strndup(colon + 1, len - flen - 1);
	const char *p = types, *t;
	size_t tlen;
	int st = types ? 0 : LLM_EXIT_IO;
	while (!st && next_item(&p, '|', &t, &tlen)) {
		char name[16];
		snprintf(name, sizeof name, "%.*s", (int)(tlen < 15 ? tlen : 15), t);
		if (tlen >= 15 || !type_bits(name, &r->types, &r->integer))
			st = llm_cli_usage(c,
					   "--require: unknown type '%.*s' (string, number, integer, "
					   "boolean, object, array, null)",
					   (int)tlen, t);
	}
	free(types);
	return st;
}

/* Parse "--require text:string,reference:string|array,id" into reqs. */
static int parse_requirements(struct llm_cli *c, struct requirement **out, size_t *nout)
{
	size_t nvals;
	char *const *vals = llm_args_strs(&c->args, "require", &nvals);
	struct requirement *reqs = NULL;
	size_t n = 0;
	int st = 0;
	for (size_t i = 0; i < nvals && !st; i++) {
		const char *p = vals[i], *item;
		size_t len;
		while (!st && next_item(&p, ',', &item, &len)) {
			struct requirement *grown = realloc(reqs, (n + 1) * sizeof *grown);
			if (!grown) {
				llm_cli_error(c, "out of memory");
				st = LLM_EXIT_IO;
				break;
			}
			reqs = grown;
			reqs[n] = (struct requirement){0};
			st = parse_requirement(c, item, len, &reqs[n]);
			n++;
		}
	}
	*out = reqs;
	*nout = n;
	return st;
}

static void free_requirements(struct requirement *reqs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(reqs[i].field);
	free(reqs);
}

/* Check one good record; fill why and return false when it fails a requirement. */
static bool check_record(const struct llm_record *rec, const struct requirement *reqs, size_t n,
			 struct llm_diag *why)
{
	const struct llm_json_members *ms = &rec->fields;
	for (size_t i = 0; i < n; i++) {
		const struct llm_json_member *m = llm_json_get(ms, reqs[i].field);
		if (!m) {
			llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
				     "missing required field \"%s\"", reqs[i].field);
			return false;
		}
		bool ok = !reqs[i].types || (reqs[i].types & (1u << m->type));
		if (ok && reqs[i].integer && m->type == LLM_JSON_NUMBER &&
		    !(reqs[i].types & ~(1u << LLM_JSON_NUMBER)) && !m->is_integer)
			ok = false;
		if (!ok) {
			llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
				     "field \"%s\" is %s%s, not the required type", reqs[i].field,
				     m->type == LLM_JSON_NUMBER && !m->is_integer ? "a non-integer "
										 : "",
				     llm_json_type_name(m->type));
			return false;
		}
	}
	/* Duplicate keys are legal JSON but mean different things to different readers. */
	for (size_t i = 1; i < ms->n; i++)
		for (size_t k = 0; k < i; k++)
			if (ms->m[i].key_len == ms->m[k].key_len &&
			    !memcmp(ms->m[i].key, ms->m[k].key, ms->m[i].key_len)) {
				llm_diag_set(why, LLM_ERR_JSON, rec->file, rec->line,
					     "field \"%.*s\" appears twice", (int)ms->m[i].key_len,
					     ms->m[i].key);
				return false;
			}
	return true;
}

static int run_validate(struct llm_cli *c)
{
	struct requirement *reqs;
	size_t nreqs;
	int st = parse_requirements(c, &reqs, &nreqs);
	if (st) {
		free_requirements(reqs, nreqs);
		return st;
	}
	bool pass = llm_args_flag(&c->args, "pass");
	struct llm_cli_in in;
	if ((st = llm_cli_in_open(c, &in, pass))) {
		free_requirements(reqs, nreqs);
		return st;
	}
	in.always_report = true;
	struct llm_record *rec;
	int r;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		struct llm_diag why;
		if (!check_record(rec, reqs, nreqs, &why)) {
			in.records--; /* counted as bad instead */
			if (!llm_cli_in_reject(c, &in, rec, &why)) {
				r = -1;
				break;
			}
			continue;
		}
		if (pass) {
			struct llm_buf *o = &c->out;
			if (llm_record_render(rec, NULL, 0, o) || (o->len >= (256u << 10) &&
								   !llm_cli_flush(c))) {
				in.status = LLM_EXIT_IO;
				r = -1;
				break;
			}
		}
	}
	uint64_t bad = in.bad;
	st = r < 0 ? in.status : (bad ? LLM_EXIT_NEGATIVE : 0);
	if (r == 0 || st == LLM_EXIT_NEGATIVE) {
		if (!c->quiet || bad)
			fprintf(stderr, "%s: validate: %llu records, %llu valid, %llu invalid\n",
				c->tool->name, (unsigned long long)(in.records + bad),
				(unsigned long long)in.records, (unsigned long long)bad);
		const char *report = llm_args_str(&c->args, "report");
		if (report && r == 0) {
			json_t *j = json_pack("{s:I,s:I,s:I,s:b}", "records",
					      (json_int_t)(in.records + bad), "valid",
					      (json_int_t)in.records, "invalid", (json_int_t)bad,
					      "ok", bad == 0);
			struct llm_diag d;
			if (j && llm_cli_write_json(c, report, j, &d))
				st = llm_cli_fail(c, &d);
			json_decref(j);
		}
	}
	llm_cli_in_close(&in);
	free_requirements(reqs, nreqs);
	return st;
}

static const struct llm_opt validate_opts[] = {
	{"require", 'r', LLM_OPT_STRING, "FIELD[:TYPE]",
	 "a field every record must have, optionally of TYPE (string, number, integer, boolean, "
	 "object, array, null; several as a|b); a comma-separated list also works",
	 .repeat = true},
	{"pass", 'p', LLM_OPT_FLAG, NULL, "write the valid records to stdout"},
	{"on-error", 0, LLM_OPT_CHOICE, "MODE",
	 "fail stops at the first bad record; skip reports each and goes on; keep also writes "
	 "bad records with an error field under --pass",
	 "skip", "fail|skip|keep"},
	{"report", 0, LLM_OPT_STRING, "FILE", "write the counts as JSON to FILE"},
	{0},
};

/* --- stats ----------------------------------------------------------------------------- */

static int run_stats(struct llm_cli *c)
{
	size_t nfields;
	char *const *fields = llm_args_strs(&c->args, "field", &nfields);
	struct llm_stats_config cfg = {
		.text_field = llm_args_str(&c->args, "text-field"),
		.fields = nfields ? fields : NULL,
		.nfields = nfields,
	};
	struct llm_stats *s;
	if (llm_stats_new(&s, &cfg)) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	struct llm_cli_in in;
	int st = llm_cli_in_open(c, &in, false);
	if (st) {
		llm_stats_free(s);
		return st;
	}
	struct llm_record *rec;
	int r;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		if (llm_stats_add(s, rec)) {
			llm_cli_error(c, "out of memory");
			r = -1;
			in.status = LLM_EXIT_IO;
			break;
		}
	}
	/* Bad records were dealt with by --on-error; the report counts them. */
	for (int code = 0; code < LLM_ERR__COUNT; code++)
		llm_stats_add_bad(s, (enum llm_err)code, in.bad_by_code[code]);
	st = r < 0 ? in.status : 0;
	llm_cli_in_close(&in);
	if (st) {
		llm_stats_free(s);
		return st;
	}
	json_t *report = llm_stats_report(s);
	llm_stats_free(s);
	if (!report) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	struct llm_diag d;
	const char *path;
	if ((path = llm_args_str(&c->args, "report")) && llm_cli_write_json(c, path, report, &d))
		st = llm_cli_fail(c, &d);
	if (!st && (path = llm_args_str(&c->args, "html"))) {
		struct llm_buf html;
		llm_buf_init(&html, 0);
		const char *title = c->args.noperands ? c->args.operands[0] : LLM_STDIN_NAME;
		if (llm_stats_render_html(report, title, &html)) {
			llm_cli_error(c, "out of memory");
			st = LLM_EXIT_IO;
		} else if (llm_atomic_write_file(path, html.data, html.len, &d)) {
			st = llm_cli_fail(c, &d);
		}
		llm_buf_free(&html);
	}
	if (!st && llm_args_flag(&c->args, "json")) {
		if (llm_cli_write_json(c, "-", report, &d))
			st = llm_cli_fail(c, &d);
	} else if (!st && !llm_args_flag(&c->args, "no-table")) {
		struct llm_buf t;
		llm_buf_init(&t, 0);
		if (llm_stats_render_text(report, llm_color_enabled(stdout), &t) ||
		    !llm_cli_write(c, t.data, t.len))
			st = LLM_EXIT_IO;
		llm_buf_free(&t);
	}
	json_decref(report);
	return st;
}

static const struct llm_opt stats_opts[] = {
	{"text-field", 't', LLM_OPT_STRING, "NAME",
	 "the field whose duplicates and writing systems are counted", "text"},
	{"field", 'f', LLM_OPT_STRING, "NAME",
	 "measure lengths of this string field only (default: every string field)",
	 .repeat = true},
	{"report", 0, LLM_OPT_STRING, "FILE", "write the summary as JSON to FILE"},
	{"html", 0, LLM_OPT_STRING, "FILE", "write a self-contained HTML report with charts to FILE"},
	{"json", 0, LLM_OPT_FLAG, NULL, "print the JSON summary on stdout instead of the table"},
	{"no-table", 0, LLM_OPT_FLAG, NULL, "print nothing on stdout (with --report or --html)"},
	{0},
};

/* --- head ------------------------------------------------------------------------------ */

static bool emit(struct llm_cli *c, const struct llm_record *rec)
{
	if (llm_record_render(rec, NULL, 0, &c->out) != LLM_OK) {
		llm_cli_error(c, "out of memory");
		return false;
	}
	return c->out.len < (256u << 10) || llm_cli_flush(c);
}

static int run_head(struct llm_cli *c)
{
	uint64_t want = (uint64_t)llm_args_int(&c->args, "records");
	struct llm_cli_in in;
	int st = llm_cli_in_open(c, &in, true);
	if (st)
		return st;
	struct llm_record *rec;
	int r = 0;
	while (in.records < want && (r = llm_cli_in_next(c, &in, &rec)) > 0)
		if (!emit(c, rec)) {
			in.status = LLM_EXIT_IO;
			r = -1;
			break;
		}
	llm_cli_in_close(&in);
	return r < 0 ? in.status : 0;
}

static const struct llm_opt head_opts[] = {
	{"records", 'n', LLM_OPT_INT, "N", "how many records", "10", .min = 0, .max = 1e18},
	{0},
};

/* --- sample ---------------------------------------------------------------------------- */

struct kept {
	uint64_t index;
	char *line; /* the record, newline included */
	size_t len;
};

static int cmp_kept(const void *a, const void *b)
{
	const struct kept *x = a, *y = b;
	return x->index < y->index ? -1 : x->index > y->index;
}

static int run_sample(struct llm_cli *c)
{
	bool by_fraction = llm_args_given(&c->args, "fraction");
	if (by_fraction && llm_args_given(&c->args, "records"))
		return llm_cli_usage(c, "give --records or --fraction, not both");
	uint64_t n = (uint64_t)llm_args_int(&c->args, "records");
	double fraction = llm_args_double(&c->args, "fraction");
	struct llm_rand rng;
	llm_rand_seed(&rng, (uint64_t)llm_args_int(&c->args, "seed"));
	struct kept *res = NULL;
	if (!by_fraction && n && !(res = calloc(n, sizeof *res))) {
		llm_cli_error(c, "out of memory: --records %llu is too many to hold",
			      (unsigned long long)n);
		return LLM_EXIT_IO;
	}
	struct llm_cli_in in;
	int st = llm_cli_in_open(c, &in, true);
	if (st) {
		free(res);
		return st;
	}
	struct llm_record *rec;
	int r;
	uint64_t seen = 0, held = 0;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		uint64_t i = seen++;
		if (by_fraction) {
			if (llm_rand_double(&rng) < fraction && !emit(c, rec)) {
				in.status = LLM_EXIT_IO;
				r = -1;
				break;
			}
			continue;
		}
		/* Algorithm R: record i replaces a random slot with probability n / (i + 1). */
		uint64_t slot = i < n ? i : llm_rand_below(&rng, i + 1);
		if (slot >= n)
			continue;
		char *copy = malloc(rec->len + 1);
		if (!copy) {
			llm_cli_error(c, "out of memory");
			in.status = LLM_EXIT_IO;
			r = -1;
			break;
		}
		memcpy(copy, rec->text, rec->len);
		copy[rec->len] = '\n';
		if (res[slot].line)
			free(res[slot].line);
		else
			held++;
		res[slot] = (struct kept){i, copy, rec->len + 1};
	}
	st = r < 0 ? in.status : 0;
	llm_cli_in_close(&in);
	if (!st && res) {
		/* Out in input order, so a sample reads like the data it came from. */
		qsort(res, held, sizeof *res, cmp_kept);
		for (uint64_t i = 0; i < held && !st; i++)
			if (!llm_cli_write(c, res[i].line, res[i].len))
				st = LLM_EXIT_IO;
	}
	for (uint64_t i = 0; res && i < n; i++)
		free(res[i].line);
	free(res);
	return st;
}

static const struct llm_opt sample_opts[] = {
	{"records", 'n', LLM_OPT_INT, "N",
	 "keep N records chosen uniformly (reservoir sampling; holds N records in memory)", "10",
	 .min = 0, .max = 1e12},
	{"fraction", 0, LLM_OPT_DOUBLE, "P",
	 "keep each record with probability P instead (streams; no memory)", .min = 0, .max = 1},
	{"seed", 's', LLM_OPT_INT, "N", "the random seed: the same seed and input give the same sample",
	 "0", .min = 0, .max = 9.2e18},
	{0},
};

/* --- shard ----------------------------------------------------------------------------- */

struct shard_out {
	struct llm_atomic file;
	uint64_t records;
	uint64_t bytes;
};

struct sharder {
	struct llm_cli *c;
	const char *pattern;
	struct shard_out *outs;
	size_t n;
};

/* The file name of shard i: the pattern with {n} replaced by i, zero-padded to 5 digits. */
static char *shard_name(const char *pattern, size_t i)
{
	const char *at = strstr(pattern, "{n}");
	size_t len = strlen(pattern) + 24;
	char *name = malloc(len);
	if (name)
		snprintf(name, len, "%.*s%05zu%s", (int)(at - pattern), pattern, i, at + 3);
	return name;
}

static enum llm_err open_shard(struct sharder *sh, size_t i, struct llm_diag *d)
{
	if (i < sh->n && sh->outs[i].file.tmp)
		return LLM_OK;
	if (i >= sh->n) {
		struct shard_out *p = realloc(sh->outs, (i + 1) * sizeof *p);
		if (!p)
			return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		memset(p + sh->n, 0, (i + 1 - sh->n) * sizeof *p);
		sh->outs = p;
		sh->n = i + 1;
	}
	char *name = shard_name(sh->pattern, i);
	if (!name)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	enum llm_err e = llm_atomic_open(&sh->outs[i].file, name, d);
	free(name);
	return e;
}

static enum llm_err write_shard(struct sharder *sh, size_t i, const struct llm_record *rec,
				struct llm_diag *d)
{
	enum llm_err e = open_shard(sh, i, d);
	if (e)
		return e;
	struct shard_out *o = &sh->outs[i];
	if (fwrite(rec->text, 1, rec->len, o->file.fp) != rec->len || putc('\n', o->file.fp) == EOF)
		return llm_diag_set(d, LLM_ERR_IO, o->file.path, 0, "write error: %s",
				    strerror(errno));
	o->records++;
	o->bytes += rec->len + 1;
	return LLM_OK;
}

/* The shard of a record under --by hash: sha256 of the key's value (decoded when a string,
 * its JSON text otherwise), first 8 bytes big-endian, modulo the shard count. */
static enum llm_err hash_shard(const struct llm_record *rec, const char *key, size_t shards,
			       size_t *out, struct llm_diag *why)
{
	const struct llm_json_member *m = llm_json_get(&rec->fields, key);
	if (!m)
		return llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
				    "missing field \"%s\" for --by hash", key);
	struct llm_buf v;
	llm_buf_init(&v, 0);
	enum llm_err e = m->type == LLM_JSON_STRING ? llm_json_string_decode(m->val, m->val_len, &v)
						    : llm_buf_append(&v, m->val, m->val_len);
	unsigned char dg[LLM_SHA256_LEN];
	if (!e)
		e = llm_sha256(v.data, v.len, dg);
	llm_buf_free(&v);
	if (e)
		return llm_diag_set(why, e, rec->file, rec->line, "out of memory");
	uint64_t h = 0;
	for (int i = 0; i < 8; i++)
		h = h << 8 | dg[i];
	*out = (size_t)(h % shards);
	return LLM_OK;
}

static int run_shard(struct llm_cli *c)
{
	const char *pattern = llm_args_str(&c->args, "out");
	if (!pattern)
		return llm_cli_usage(c, "--out PATTERN is required (for example part-{n}.jsonl)");
	if (!strstr(pattern, "{n}"))
		return llm_cli_usage(c, "--out: the pattern must contain {n}, the shard number");
	int modes = llm_args_given(&c->args, "shards") + llm_args_given(&c->args, "records") +
		    llm_args_given(&c->args, "bytes");
	if (modes != 1)
		return llm_cli_usage(c, "give exactly one of --shards, --records or --bytes");
	const char *by = llm_args_str(&c->args, "by");
	const char *key = llm_args_str(&c->args, "key");
	bool hashed = !strcmp(by, "hash");
	if (hashed && !llm_args_given(&c->args, "shards"))
		return llm_cli_usage(c, "--by hash needs --shards");
	if (hashed && !key)
		return llm_cli_usage(c, "--by hash needs --key FIELD");
	size_t shards = (size_t)llm_args_int(&c->args, "shards");
	uint64_t per_records = (uint64_t)llm_args_int(&c->args, "records");
	uint64_t per_bytes = llm_args_size(&c->args, "bytes");

	struct sharder sh = {c, pattern, NULL, 0};
	struct llm_cli_in in;
	int st = llm_cli_in_open(c, &in, false);
	if (st)
		return st;
	struct llm_record *rec;
	struct llm_diag d;
	int r;
	size_t cur = 0;
	uint64_t rr = 0;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		size_t i;
		if (hashed) {
			struct llm_diag why;
			if (hash_shard(rec, key, shards, &i, &why)) {
				in.records--;
				if (!llm_cli_in_reject(c, &in, rec, &why)) {
					r = -1;
					break;
				}
				continue;
			}
		} else if (shards) {
			i = (size_t)(rr++ % shards);
		} else {
			if (cur < sh.n && sh.outs[cur].records &&
			    (per_records ? sh.outs[cur].records >= per_records
					 : sh.outs[cur].bytes + rec->len + 1 > per_bytes)) {
				/* This shard is full: finish its file now to keep few open. */
				if (fflush(sh.outs[cur].file.fp) || ferror(sh.outs[cur].file.fp)) {
					llm_diag_set(&d, LLM_ERR_IO, sh.outs[cur].file.path, 0,
						     "write error: %s", strerror(errno));
					in.status = llm_cli_fail(c, &d);
					r = -1;
					break;
				}
				cur++;
			}
			i = cur;
		}
		if (write_shard(&sh, i, rec, &d)) {
			in.status = llm_cli_fail(c, &d);
			r = -1;
			break;
		}
	}
	st = r < 0 ? in.status : 0;
	llm_cli_in_close(&in);
	/* All or nothing: the shards appear only when every one was written. */
	if (!st && shards)
		for (size_t i = 0; i < shards && !st; i++)
			if (open_shard(&sh, i, &d))
				st = llm_cli_fail(c, &d);
	for (size_t i = 0; i < sh.n && !st; i++)
		if (llm_atomic_commit(&sh.outs[i].file, &d))
			st = llm_cli_fail(c, &d);
	json_t *rep = json_array();
	uint64_t total = 0;
	for (size_t i = 0; i < sh.n; i++) {
		char *name = shard_name(pattern, i);
		json_array_append_new(rep, json_pack("{s:s,s:I,s:I}", "file", name ? name : "",
						     "records", (json_int_t)sh.outs[i].records,
						     "bytes", (json_int_t)sh.outs[i].bytes));
		free(name);
		total += sh.outs[i].records;
		llm_atomic_abort(&sh.outs[i].file);
	}
	free(sh.outs);
	if (!st) {
		if (!c->quiet)
			fprintf(stderr, "%s: shard: %llu records into %zu files, %llu bad\n",
				c->tool->name, (unsigned long long)total, sh.n,
				(unsigned long long)in.bad);
		const char *report = llm_args_str(&c->args, "report");
		json_t *j = json_pack("{s:I,s:I,s:I,s:O}", "records", (json_int_t)total, "bad",
				      (json_int_t)in.bad, "dropped", (json_int_t)in.dropped,
				      "shards", rep);
		if (report && j && llm_cli_write_json(c, report, j, &d))
			st = llm_cli_fail(c, &d);
		json_decref(j);
	}
	json_decref(rep);
	return st;
}

static const struct llm_opt shard_opts[] = {
	{"out", 'o', LLM_OPT_STRING, "PATTERN",
	 "output files; {n} becomes the shard number, zero-padded to 5 digits"},
	{"shards", 'k', LLM_OPT_INT, "K", "split into K shards", .min = 1, .max = 1e6},
	{"records", 'n', LLM_OPT_INT, "N", "start a new shard every N records", .min = 1,
	 .max = 1e18},
	{"bytes", 'b', LLM_OPT_SIZE, "SIZE", "start a new shard before one would pass SIZE bytes",
	 .min = 1, .max = 1e18},
	{"by", 0, LLM_OPT_CHOICE, "HOW", "with --shards: deal records in turn, or by hash of --key",
	 "round-robin", "round-robin|hash"},
	{"key", 0, LLM_OPT_STRING, "FIELD", "the field whose value picks the shard under --by hash"},
	{"report", 0, LLM_OPT_STRING, "FILE", "write the per-shard counts as JSON to FILE"},
	{0},
};

/* --- the program ----------------------------------------------------------------------- */

static const struct llm_verb verbs[] = {
	{"validate", "check records: JSON, UTF-8, required fields and types", "[OPTIONS] [FILE...]",
	 "Reads every record and reports each bad one as FILE:LINE: reason, then the counts.\n"
	 "Exits 1 when any record is bad.",
	 {validate_opts, llm_cli_opts_input, llm_cli_opts_base}, run_validate},
	{"stats", "counts, fields, length distributions, duplicates, scripts", "[OPTIONS] [FILE...]",
	 "Summarizes the records: a table on stdout, JSON with --report or --json, and an\n"
	 "HTML page with charts with --html.  Runs in bounded memory.",
	 {stats_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base}, run_stats},
	{"head", "the first records", "[OPTIONS] [FILE...]",
	 "Writes the first N records unchanged and stops reading.",
	 {head_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base}, run_head},
	{"sample", "a seeded random sample", "[OPTIONS] [FILE...]",
	 "Writes a uniform random sample of the records, in input order, unchanged.",
	 {sample_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base}, run_sample},
	{"shard", "split into files by count, size, round-robin or hash", "--out PATTERN [OPTIONS] [FILE...]",
	 "Writes the records, unchanged, into numbered files.  The files appear only when the\n"
	 "whole input was read and written; nothing is left behind on failure.",
	 {shard_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base}, run_shard},
	{0},
};

static const struct llm_tool tool = {
	"llm-prep", "prep", "Explore and prepare JSONL data for training and evaluation.", verbs,
};

int main(int argc, char **argv)
{
	return llm_cli_main(&tool, argc, argv);
}
