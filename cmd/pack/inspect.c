/* llm-pack inspect: an artifact's manifest, as a person reads it or as JSON. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "artifact/manifest.h"
#include "cli.h"
#include "core/buf.h"
#include "pack/common.h"
#include "pack/verbs.h"

#define LABEL "%-10s "

static void ref_line(struct llm_buf *b, const char *label, const json_t *o, const char *k1,
		     const char *k2)
{
	if (!o)
		return;
	llm_buf_printf(b, LABEL "%s", label, json_string_value(json_object_get(o, k1)));
	if (k2)
		llm_buf_printf(b, "@%s", json_string_value(json_object_get(o, k2)));
	const char *dg = json_string_value(json_object_get(o, "digest"));
	if (dg)
		llm_buf_printf(b, "  %s", dg);
	llm_buf_putc(b, '\n');
}

static void render_text(const struct llm_manifest *m, const char *id, struct llm_buf *b)
{
	const json_t *doc = m->doc;
	char created[21], hs[32];
	llm_rfc3339_format(m->created, created);
	llm_pack_human_size(m->total_size, hs, sizeof hs);
	llm_buf_printf(b, "%s %s\n", m->name, m->version);
	llm_buf_printf(b, LABEL "%s\n", "identity", id);
	llm_buf_printf(b, LABEL "%s\n", "created", created);
	const char *lic = json_string_value(json_object_get(doc, "licence"));
	if (lic)
		llm_buf_printf(b, LABEL "%s\n", "licence", lic);
	ref_line(b, "parent", json_object_get(doc, "parent"), "name", "version");
	ref_line(b, "base", json_object_get(doc, "base_model"), "ref", NULL);
	const json_t *run = json_object_get(doc, "run");
	if (run) {
		llm_buf_printf(b, LABEL "%s", "run", json_string_value(json_object_get(run, "id")));
		const char *s = json_string_value(json_object_get(run, "status"));
		if (s)
			llm_buf_printf(b, " (%s)", s);
		llm_buf_putc(b, '\n');
	}
	const json_t *tags = json_object_get(doc, "tags");
	if (tags) {
		llm_buf_printf(b, LABEL, "tags");
		for (size_t i = 0; i < json_array_size(tags); i++)
			llm_buf_printf(b, "%s%s", i ? ", " : "",
				       json_string_value(json_array_get(tags, i)));
		llm_buf_putc(b, '\n');
	}
	llm_buf_printf(b, "\nfiles (%zu, %s)\n", m->nfiles, hs);
	for (size_t i = 0; i < m->nfiles; i++) {
		llm_pack_human_size(m->files[i].size, hs, sizeof hs);
		llm_buf_printf(b, "  %9s  %.12s  %s%s\n", hs, m->files[i].sha256, m->files[i].path,
			       m->files[i].executable ? " (executable)" : "");
	}
	const json_t *ds = json_object_get(doc, "datasets");
	if (json_array_size(ds)) {
		llm_buf_puts(b, "\ndatasets\n");
		size_t i;
		json_t *o;
		json_array_foreach(ds, i, o)
		{
			llm_buf_printf(b, "  %s  %.12s",
				       json_string_value(json_object_get(o, "name")),
				       json_string_value(json_object_get(o, "sha256")));
			json_t *r = json_object_get(o, "records");
			if (r)
				llm_buf_printf(b, "  %" JSON_INTEGER_FORMAT " record%s",
					       json_integer_value(r),
					       json_integer_value(r) == 1 ? "" : "s");
			llm_buf_putc(b, '\n');
		}
	}
	const json_t *params = json_object_get(doc, "params");
	if (json_object_size(params)) {
		llm_buf_puts(b, "\nparams\n");
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)params, k, v)
		{
			llm_buf_printf(b, "  %-20s ", k);
			llm_pack_value_text(v, b);
			llm_buf_putc(b, '\n');
		}
	}
	const json_t *metrics = json_object_get(doc, "metrics");
	if (json_object_size(metrics)) {
		llm_buf_puts(b, "\nmetrics\n");
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)metrics, k, v)
		{
			llm_buf_printf(b, "  %-20s ", k);
			llm_pack_value_text(json_object_get(v, "score"), b);
			const json_t *ci = json_object_get(v, "ci");
			if (json_object_get(ci, "lo") && json_object_get(ci, "hi")) {
				llm_buf_puts(b, "  [");
				llm_pack_value_text(json_object_get(ci, "lo"), b);
				llm_buf_puts(b, ", ");
				llm_pack_value_text(json_object_get(ci, "hi"), b);
				llm_buf_putc(b, ']');
			}
			const char *sig = json_string_value(json_object_get(v, "signature"));
			if (sig)
				llm_buf_printf(b, "  %s", sig);
			llm_buf_putc(b, '\n');
		}
	}
}

static int run_inspect(struct llm_cli *c)
{
	if (c->args.noperands != 1)
		return llm_cli_usage(c, "inspect needs one artifact");
	const char *ref = c->args.operands[0];
	struct llm_manifest m;
	char id[LLM_DIGEST_SIZE];
	int st = llm_pack_load(c, ref, &m, id);
	if (st)
		return st;
	if (llm_args_flag(&c->args, "json")) {
		struct llm_diag d;
		json_t *o = json_pack("{s:s,s:s,s:I,s:O}", "path", ref, "identity", id, "size",
				      (json_int_t)m.total_size, "manifest", m.doc);
		if (llm_cli_write_json(c, "-", o, &d))
			st = llm_cli_fail(c, &d);
		json_decref(o);
	} else {
		struct llm_buf b;
		llm_buf_init(&b, 0);
		render_text(&m, id, &b);
		if (!llm_cli_write(c, b.data, b.len))
			st = LLM_EXIT_IO;
		llm_buf_free(&b);
	}
	llm_manifest_free(&m);
	return st;
}

static const struct llm_opt inspect_opts[] = {
    {"json", 0, LLM_OPT_FLAG, NULL, "print the manifest and identity as JSON"},
    {0},
};

const struct llm_verb llm_pack_verb_inspect = {
    "inspect",
    "show an artifact's manifest",
    "[OPTIONS] ARTIFACT",
    "Shows what an artifact holds: name, version, identity, creation time, licence, lineage,\n"
    "files with sizes and digests, datasets, parameters and metrics.  Reads only the manifest\n"
    "(use verify to check the files).  ARTIFACT is a tarball, a MANIFEST.json, or an unpacked\n"
    "artifact's folder.",
    {inspect_opts, llm_cli_opts_base},
    run_inspect,
};
