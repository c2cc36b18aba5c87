/* llm-prep shard: split into files by count, size, round-robin or hash of a field. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/atomic.h"
#include "core/hash.h"
#include "prep/verbs.h"

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
		size_t i = 0;
		if (hashed) {
			struct llm_diag why;
			if (hash_shard(rec, key, shards, &i, &why)) {
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

const struct llm_verb llm_prep_verb_shard = {
	"shard", "split into files by count, size, round-robin or hash", "--out PATTERN [OPTIONS] [FILE...]",
	"Writes the records, unchanged, into numbered files.  The files appear only when the\n"
	"whole input was read and written; nothing is left behind on failure.",
	{shard_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base}, run_shard,
};
