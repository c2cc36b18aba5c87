/* llm-pack diff: two artifacts side by side: files added, removed and changed; the manifest
 * fields that differ; parameters and metrics with their deltas. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "artifact/manifest.h"
#include "cli.h"
#include "core/buf.h"
#include "pack/common.h"
#include "pack/verbs.h"

struct side {
	struct llm_manifest m;
	char id[LLM_DIGEST_SIZE];
	json_t *params; /* flattened: "lora.r" */
};

/* Nested parameter objects spelled out as dotted names. */
static void flatten(const json_t *o, const char *prefix, json_t *out)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v)
	{
		char name[256];
		snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", k);
		if (json_is_object(v) && json_object_size(v))
			flatten(v, name, out);
		else
			json_object_set(out, name, v);
	}
}

/* The keys of both objects: a's in order, then b's that a lacks. */
static json_t *union_keys(const json_t *a, const json_t *b)
{
	json_t *keys = json_array();
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)a, k, v)
	{
		json_array_append_new(keys, json_string(k));
	}
	json_object_foreach((json_t *)b, k, v)
	{
		if (!json_object_get(a, k))
			json_array_append_new(keys, json_string(k));
	}
	return keys;
}

static bool same(const json_t *a, const json_t *b)
{
	return (!a && !b) || (a && b && json_equal((json_t *)a, (json_t *)b));
}

static json_t *delta(const json_t *a, const json_t *b)
{
	if (!json_is_number(a) || !json_is_number(b))
		return NULL;
	if (json_is_integer(a) && json_is_integer(b))
		return json_integer(json_integer_value(b) - json_integer_value(a));
	double d = json_number_value(b) - json_number_value(a);
	return isfinite(d) ? json_real(d) : NULL;
}

static json_t *row(const char *name, const json_t *a, const json_t *b)
{
	json_t *r = json_pack("{s:s,s:O,s:O,s:b}", "name", name, "a", a ? (json_t *)a : json_null(),
			      "b", b ? (json_t *)b : json_null(), "differs", !same(a, b));
	json_t *dl = delta(a, b);
	if (dl)
		json_object_set_new(r, "delta", dl);
	return r;
}

static json_t *file_obj(const struct llm_manifest_file *f)
{
	return json_pack("{s:s,s:I,s:s}", "path", f->path, "size", (json_int_t)f->size, "sha256",
			 f->sha256);
}

static json_t *diff_files(const struct llm_manifest *a, const struct llm_manifest *b)
{
	json_t *added = json_array(), *removed = json_array(), *changed = json_array();
	size_t i = 0, j = 0, unchanged = 0;
	while (i < a->nfiles || j < b->nfiles) {
		int c = i == a->nfiles	 ? 1
			: j == b->nfiles ? -1
					 : strcmp(a->files[i].path, b->files[j].path);
		if (c < 0) {
			json_array_append_new(removed, file_obj(&a->files[i++]));
		} else if (c > 0) {
			json_array_append_new(added, file_obj(&b->files[j++]));
		} else {
			const struct llm_manifest_file *x = &a->files[i++], *y = &b->files[j++];
			if (strcmp(x->sha256, y->sha256) || x->executable != y->executable)
				json_array_append_new(
				    changed,
				    json_pack("{s:s,s:I,s:I,s:s,s:s}", "path", x->path, "size_a",
					      (json_int_t)x->size, "size_b", (json_int_t)y->size,
					      "sha256_a", x->sha256, "sha256_b", y->sha256));
			else
				unchanged++;
		}
	}
	return json_pack("{s:o,s:o,s:o,s:I}", "added", added, "removed", removed, "changed",
			 changed, "unchanged", (json_int_t)unchanged);
}

/* The fields other than files, params and metrics, one row each. */
static json_t *diff_fields(struct side *a, struct side *b)
{
	static const char *const skip[] = {"files", "params", "metrics", "format"};
	json_t *rows = json_array(), *keys = union_keys(a->m.doc, b->m.doc);
	json_t *ia = json_string(a->id), *ib = json_string(b->id);
	json_array_append_new(rows, row("identity", ia, ib));
	json_decref(ia);
	json_decref(ib);
	size_t i;
	json_t *k;
	json_array_foreach(keys, i, k)
	{
		const char *name = json_string_value(k);
		bool skipped = false;
		for (size_t s = 0; s < sizeof skip / sizeof *skip; s++)
			skipped |= !strcmp(name, skip[s]);
		if (!skipped)
			json_array_append_new(rows, row(name, json_object_get(a->m.doc, name),
							json_object_get(b->m.doc, name)));
	}
	json_decref(keys);
	return rows;
}

static json_t *diff_table(const json_t *a, const json_t *b, bool metrics)
{
	json_t *rows = json_array(), *keys = union_keys(a, b);
	size_t i;
	json_t *k;
	json_array_foreach(keys, i, k)
	{
		const char *name = json_string_value(k);
		const json_t *x = json_object_get(a, name), *y = json_object_get(b, name);
		if (!metrics) {
			json_array_append_new(rows, row(name, x, y));
			continue;
		}
		json_t *r = row(name, json_object_get(x, "score"), json_object_get(y, "score"));
		const json_t *sa = json_object_get(x, "signature"),
			     *sb = json_object_get(y, "signature");
		if (sa && sb && !json_equal((json_t *)sa, (json_t *)sb))
			json_object_set_new(r, "signature_differs", json_true());
		json_array_append_new(rows, r);
	}
	json_decref(keys);
	return rows;
}

static void text_table(struct llm_buf *b, const char *title, const json_t *rows, bool all)
{
	if (!json_array_size(rows))
		return;
	llm_buf_printf(b, "\n%s\n", title);
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r)
	{
		bool differs = json_is_true(json_object_get(r, "differs"));
		if (!all && !differs)
			continue;
		llm_buf_printf(b, "%c %-20s ", differs ? '*' : ' ',
			       json_string_value(json_object_get(r, "name")));
		struct llm_buf cell;
		llm_buf_init(&cell, 4096);
		json_t *a = json_object_get(r, "a"), *bb = json_object_get(r, "b");
		llm_pack_value_text(json_is_null(a) ? NULL : a, &cell);
		llm_buf_printf(b, "%-24s ", cell.data);
		llm_buf_clear(&cell);
		llm_pack_value_text(json_is_null(bb) ? NULL : bb, &cell);
		llm_buf_printf(b, "%-24s", cell.data);
		json_t *dl = json_object_get(r, "delta");
		if (dl && differs) {
			if (json_is_integer(dl))
				llm_buf_printf(b, " %+" JSON_INTEGER_FORMAT,
					       json_integer_value(dl));
			else
				llm_buf_printf(b, " %+.6g", json_real_value(dl));
		}
		if (json_is_true(json_object_get(r, "signature_differs")))
			llm_buf_puts(b, " (signatures differ: not comparable)");
		llm_buf_free(&cell);
		while (b->len && b->data[b->len - 1] == ' ')
			b->data[--b->len] = '\0';
		llm_buf_putc(b, '\n');
	}
}

static void text_files(struct llm_buf *b, const json_t *files)
{
	const json_t *add = json_object_get(files, "added"),
		     *rem = json_object_get(files, "removed"),
		     *chg = json_object_get(files, "changed");
	llm_buf_printf(
	    b, "\nfiles: %zu added, %zu removed, %zu changed, %" JSON_INTEGER_FORMAT " unchanged\n",
	    json_array_size(add), json_array_size(rem), json_array_size(chg),
	    json_integer_value(json_object_get(files, "unchanged")));
	char s1[32], s2[32];
	size_t i;
	json_t *f;
	json_array_foreach(add, i, f)
	{
		llm_pack_human_size((uint64_t)json_integer_value(json_object_get(f, "size")), s1,
				    sizeof s1);
		llm_buf_printf(b, "+ %s  %s\n", json_string_value(json_object_get(f, "path")), s1);
	}
	json_array_foreach(rem, i, f)
	{
		llm_pack_human_size((uint64_t)json_integer_value(json_object_get(f, "size")), s1,
				    sizeof s1);
		llm_buf_printf(b, "- %s  %s\n", json_string_value(json_object_get(f, "path")), s1);
	}
	json_array_foreach(chg, i, f)
	{
		llm_pack_human_size((uint64_t)json_integer_value(json_object_get(f, "size_a")), s1,
				    sizeof s1);
		llm_pack_human_size((uint64_t)json_integer_value(json_object_get(f, "size_b")), s2,
				    sizeof s2);
		llm_buf_printf(b, "~ %s  %s -> %s\n", json_string_value(json_object_get(f, "path")),
			       s1, s2);
	}
}

static int run_diff(struct llm_cli *c)
{
	struct llm_args *a = &c->args;
	if (a->noperands != 2)
		return llm_cli_usage(c, "diff needs two artifacts");
	struct side s[2];
	memset(s, 0, sizeof s);
	int st = 0;
	for (int i = 0; i < 2 && !st; i++)
		if (!(st = llm_pack_load(c, a->operands[i], &s[i].m, s[i].id))) {
			s[i].params = json_object();
			flatten(json_object_get(s[i].m.doc, "params"), "", s[i].params);
		}
	if (st)
		goto out;
	json_t *files = diff_files(&s[0].m, &s[1].m);
	json_t *fields = diff_fields(&s[0], &s[1]);
	json_t *params = diff_table(s[0].params, s[1].params, false);
	json_t *metrics = diff_table(json_object_get(s[0].m.doc, "metrics"),
				     json_object_get(s[1].m.doc, "metrics"), true);
	bool all = llm_args_flag(a, "all");
	if (llm_args_flag(a, "json")) {
		struct llm_diag d;
		json_t *o = json_pack(
		    "{s:{s:s,s:s,s:s,s:s},s:{s:s,s:s,s:s,s:s},s:b,s:O,s:O,s:O,s:O}", "a", "path",
		    a->operands[0], "name", s[0].m.name, "version", s[0].m.version, "identity",
		    s[0].id, "b", "path", a->operands[1], "name", s[1].m.name, "version",
		    s[1].m.version, "identity", s[1].id, "same", !strcmp(s[0].id, s[1].id), "files",
		    files, "fields", fields, "params", params, "metrics", metrics);
		if (llm_cli_write_json(c, "-", o, &d))
			st = llm_cli_fail(c, &d);
		json_decref(o);
	} else {
		struct llm_buf b;
		llm_buf_init(&b, 0);
		llm_buf_printf(&b, "--- %s %s %s\n+++ %s %s %s\n", s[0].m.name, s[0].m.version,
			       s[0].id, s[1].m.name, s[1].m.version, s[1].id);
		text_files(&b, files);
		text_table(&b, "fields", fields, all);
		text_table(&b, "params", params, all);
		text_table(&b, "metrics", metrics, true);
		if (!llm_cli_write(c, b.data, b.len))
			st = LLM_EXIT_IO;
		llm_buf_free(&b);
	}
	if (!st && llm_args_flag(a, "exit-code") && strcmp(s[0].id, s[1].id))
		st = LLM_EXIT_NEGATIVE;
	json_decref(files);
	json_decref(fields);
	json_decref(params);
	json_decref(metrics);
out:
	for (int i = 0; i < 2; i++) {
		llm_manifest_free(&s[i].m);
		json_decref(s[i].params);
	}
	return st;
}

static const struct llm_opt diff_opts[] = {
    {"json", 0, LLM_OPT_FLAG, NULL, "print the comparison as JSON"},
    {"all", 'a', LLM_OPT_FLAG, NULL, "show every field and parameter, not only those that differ"},
    {"exit-code", 0, LLM_OPT_FLAG, NULL, "exit with status 1 when the artifacts differ"},
    {0},
};

const struct llm_verb llm_pack_verb_diff = {
    "diff",
    "compare two artifacts: files, fields, parameters, metrics",
    "[OPTIONS] A B",
    "Compares the manifests of A and B (tarballs, MANIFEST.json files or unpacked folders):\n"
    "files added (+), removed (-) and changed (~); the fields that differ (version, parent,\n"
    "licence, datasets, ...); parameters and metrics side by side with B - A.  Rows that differ\n"
    "start with '*'.",
    {diff_opts, llm_cli_opts_base},
    run_diff,
};
