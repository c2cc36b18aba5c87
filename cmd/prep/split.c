/* llm-prep split: deterministic train/val/test splits by a hash of each record's key. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/atomic.h"
#include "data/split.h"
#include "prep/verbs.h"

/* The value of a field as a key: the decoded string, or the JSON text of any other type. */
static enum llm_err field_value(const struct llm_record *rec, const char *name, const char *opt,
				struct llm_buf *out, struct llm_diag *why)
{
	const struct llm_json_member *m = llm_json_get(&rec->fields, name);
	if (!m)
		return llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
				    "missing field \"%s\" (%s)", name, opt);
	llm_buf_clear(out);
	enum llm_err e = m->type == LLM_JSON_STRING
			     ? llm_json_string_decode(m->val, m->val_len, out)
			     : llm_buf_append(out, m->val, m->val_len);
	return e ? llm_diag_set(why, e, rec->file, rec->line, "out of memory") : LLM_OK;
}

struct splitter {
	struct llm_split_plan plan;
	const char *dir;
	bool made_dir;
	struct llm_atomic *files;
	uint64_t counts[LLM_SPLIT_MAX];
	char *values[LLM_SPLIT_MAX]; /* JSON strings of the names, for the split field */
	json_t *strata;		     /* {"value": {"train": n, ...}} under --stratify */
};

static enum llm_err open_outputs(struct splitter *sp, struct llm_diag *d)
{
	struct stat stt;
	if (stat(sp->dir, &stt) != 0) {
		if (errno != ENOENT || mkdir(sp->dir, 0777) != 0)
			return llm_diag_set(d, LLM_ERR_IO, sp->dir, 0,
					    "cannot create directory: %s", strerror(errno));
		sp->made_dir = true;
	} else if (!S_ISDIR(stt.st_mode)) {
		return llm_diag_set(d, LLM_ERR_IO, sp->dir, 0, "not a directory");
	}
	sp->files = calloc(sp->plan.n, sizeof *sp->files);
	if (!sp->files)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	for (size_t i = 0; i < sp->plan.n; i++) {
		struct llm_buf path;
		llm_buf_init(&path, 0);
		enum llm_err e = llm_buf_printf(&path, "%s/%s.jsonl", sp->dir, sp->plan.name[i]);
		if (!e)
			e = llm_atomic_open(&sp->files[i], path.data, d);
		else
			llm_diag_set(d, e, NULL, 0, "out of memory");
		llm_buf_free(&path);
		if (e)
			return e;
	}
	return LLM_OK;
}

static json_t *split_report(const struct splitter *sp, const struct llm_cli_in *in,
			    uint64_t written, const char *key, const char *seed,
			    const char *stratify)
{
	json_t *j = llm_cli_in_report(in);
	json_t *splits = json_object(), *ratios = json_object();
	for (size_t i = 0; i < sp->plan.n; i++) {
		json_object_set_new(splits, sp->plan.name[i],
				    json_integer((json_int_t)sp->counts[i]));
		json_object_set_new(ratios, sp->plan.name[i], json_real(sp->plan.ratio[i]));
	}
	json_object_set_new(j, "written", json_integer((json_int_t)(written + in->kept)));
	json_object_set_new(j, "dropped", json_integer((json_int_t)in->dropped));
	json_object_set_new(j, "key", json_string(key));
	json_object_set_new(j, "seed", seed ? json_string(seed) : json_null());
	json_object_set_new(j, "ratios", ratios);
	json_object_set_new(j, "splits", splits);
	if (stratify) {
		json_object_set_new(j, "stratify", json_string(stratify));
		json_object_set(j, "strata", sp->strata);
	}
	return j;
}

static bool count_stratum(struct splitter *sp, const struct llm_buf *value, size_t split)
{
	if (llm_utf8_valid_prefix(value->data, value->len) != value->len)
		return false;
	json_t *s = json_object_get(sp->strata, value->data);
	if (!s) {
		s = json_object();
		for (size_t i = 0; i < sp->plan.n; i++)
			json_object_set_new(s, sp->plan.name[i], json_integer(0));
		if (json_object_set_new(sp->strata, value->data, s))
			return false;
	}
	json_t *n = json_object_get(s, sp->plan.name[split]);
	return !json_integer_set(n, json_integer_value(n) + 1);
}

static int run_split(struct llm_cli *c)
{
	struct splitter sp = {0};
	struct llm_diag d;
	if (llm_split_plan_parse(&sp.plan, llm_args_str(&c->args, "ratios"),
				 llm_args_str(&c->args, "names"), &d))
		return d.code == LLM_ERR_USAGE ? llm_cli_usage(c, "%s", d.msg)
					       : llm_cli_fail(c, &d);
	const char *key = llm_args_str(&c->args, "key");
	const char *seed = llm_args_str(&c->args, "seed");
	const char *stratify = llm_args_str(&c->args, "stratify");
	const char *field = llm_args_str(&c->args, "split-field");
	sp.dir = llm_args_str(&c->args, "out");
	int st = 0;
	for (size_t i = 0; i < sp.plan.n && !st; i++) {
		struct llm_buf b;
		llm_buf_init(&b, 0);
		if (llm_buf_json_string(&b, sp.plan.name[i], strlen(sp.plan.name[i]))) {
			llm_cli_error(c, "out of memory");
			st = LLM_EXIT_IO;
		}
		sp.values[i] = b.data;
	}
	if (!st && llm_utf8_valid_prefix(field, strlen(field)) != strlen(field))
		st = llm_cli_usage(c, "--split-field: not UTF-8");
	sp.strata = json_object();
	if (!st && sp.dir && open_outputs(&sp, &d))
		st = llm_cli_fail(c, &d);
	struct llm_cli_in in = {0};
	bool opened = false;
	if (!st && !(st = llm_cli_in_open(c, &in, true)))
		opened = true;
	uint64_t written = 0;
	struct llm_buf kv, sv;
	llm_buf_init(&kv, 0);
	llm_buf_init(&sv, 0);
	int got = 0;
	struct llm_record *rec;
	while (opened && (got = llm_cli_in_next(c, &in, &rec)) > 0) {
		struct llm_diag why;
		double u = 0;
		enum llm_err e = field_value(rec, key, "the --key", &kv, &why);
		if (!e && stratify)
			e = field_value(rec, stratify, "the --stratify field", &sv, &why);
		if (!e && llm_split_unit(kv.data, kv.len, seed, &u))
			e = llm_diag_set(&why, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		if (e == LLM_ERR_NOMEM) {
			in.status = llm_cli_fail(c, &why);
			got = -1;
			break;
		}
		if (e) {
			if (!llm_cli_in_reject(c, &in, rec, &why)) {
				got = -1;
				break;
			}
			continue;
		}
		size_t i = llm_split_pick(&sp.plan, u);
		if (stratify && !count_stratum(&sp, &sv, i)) {
			llm_cli_error(c, "out of memory");
			in.status = LLM_EXIT_IO;
			got = -1;
			break;
		}
		sp.counts[i]++;
		written++;
		if (sp.dir) {
			FILE *fp = sp.files[i].fp;
			if (fwrite(rec->text, 1, rec->len, fp) != rec->len ||
			    putc('\n', fp) == EOF) {
				llm_diag_set(&d, LLM_ERR_IO, sp.files[i].path, 0, "write error: %s",
					     strerror(errno));
				in.status = llm_cli_fail(c, &d);
				got = -1;
				break;
			}
		} else {
			struct llm_edit ed = {field, sp.values[i]};
			if (!llm_cli_emit(c, rec, &ed, 1)) {
				in.status = LLM_EXIT_IO;
				got = -1;
				break;
			}
		}
	}
	if (opened) {
		if (got < 0)
			st = in.status;
		llm_cli_in_close(&in);
	}
	/* All the files or none: commit only when everything was read and written. */
	for (size_t i = 0; sp.files && i < sp.plan.n && !st; i++)
		if (llm_atomic_commit(&sp.files[i], &d))
			st = llm_cli_fail(c, &d);
	if (sp.files)
		for (size_t i = 0; i < sp.plan.n; i++)
			llm_atomic_abort(&sp.files[i]);
	if (st && sp.made_dir)
		rmdir(sp.dir);
	if (!st && !c->quiet) {
		struct llm_buf b;
		llm_buf_init(&b, 0);
		for (size_t i = 0; i < sp.plan.n; i++)
			llm_buf_printf(&b, "%s %s %llu", i ? "," : "", sp.plan.name[i],
				       (unsigned long long)sp.counts[i]);
		fprintf(stderr, "%s: split: %llu records:%s; %llu bad\n", c->tool->name,
			(unsigned long long)written, b.data ? b.data : "",
			(unsigned long long)in.bad);
		llm_buf_free(&b);
	}
	const char *report = llm_args_str(&c->args, "report");
	if (!st && report) {
		json_t *j = split_report(&sp, &in, written, key, seed, stratify);
		if (llm_cli_write_json(c, report, j, &d))
			st = llm_cli_fail(c, &d);
		json_decref(j);
	}
	llm_buf_free(&kv);
	llm_buf_free(&sv);
	for (size_t i = 0; i < sp.plan.n; i++)
		free(sp.values[i]);
	free(sp.files);
	json_decref(sp.strata);
	llm_split_plan_free(&sp.plan);
	return st;
}

static const struct llm_opt split_opts[] = {
    {"ratios", 'r', LLM_OPT_STRING, "LIST",
     "the share of each split, comma-separated, adding up to 1", "0.8,0.1,0.1"},
    {"names", 'n', LLM_OPT_STRING, "LIST", "the names of the splits, as many as the ratios",
     "train,val,test"},
    {"key", 'k', LLM_OPT_STRING, "FIELD",
     "the field whose value decides the split; records without it are bad", "id"},
    {"seed", 's', LLM_OPT_STRING, "SALT",
     "hash SALT:KEY instead of KEY, for a different but equally reproducible split"},
    {"stratify", 0, LLM_OPT_STRING, "FIELD",
     "count the splits per value of FIELD (records without it are bad)"},
    {"split-field", 0, LLM_OPT_STRING, "FIELD", "the field that names the split on stdout",
     "split"},
    {"out", 'o', LLM_OPT_STRING, "DIR",
     "write DIR/NAME.jsonl per split, unchanged, instead of stdout (all files or none)"},
    {"report", 0, LLM_OPT_STRING, "FILE", "write the counts per split and stratum as JSON to FILE"},
    {0},
};

const struct llm_verb llm_prep_verb_split = {
    "split",
    "deterministic train/val/test splits by hash of a key",
    "[OPTIONS] [FILE...]",
    "Assigns each record to a split by the SHA-256 of its --key value, so the same record\n"
    "lands in the same split whatever the order of the input or the machine.  Adds a split\n"
    "field on stdout, or writes one file per split under --out DIR.",
    {split_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base},
    run_split,
};
