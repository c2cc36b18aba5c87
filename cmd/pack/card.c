/* llm-pack card: a Hugging Face model card (README.md: YAML front matter with licence, base
 * model, datasets, tags and model-index eval results, then Markdown) from an artifact's
 * manifest, so what the Hub shows is what the artifact records. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "artifact/manifest.h"
#include "cli.h"
#include "core/atomic.h"
#include "core/buf.h"
#include "pack/common.h"
#include "pack/verbs.h"

/* A YAML scalar: double-quoted with JSON's escapes, which YAML reads the same. */
static void yq(struct llm_buf *b, const char *s)
{
	llm_buf_json_string(b, s, strlen(s));
}

/* A Markdown table cell: no newlines, '|' escaped. */
static void md_cell(struct llm_buf *b, const char *s)
{
	for (; *s; s++)
		if (*s == '|')
			llm_buf_puts(b, "\\|");
		else if (*s == '\n' || *s == '\r')
			llm_buf_putc(b, ' ');
		else
			llm_buf_putc(b, *s);
}

static void md_value(struct llm_buf *b, const json_t *v)
{
	struct llm_buf t;
	llm_buf_init(&t, 0);
	llm_pack_value_text(v, &t);
	md_cell(b, t.data ? t.data : "");
	llm_buf_free(&t);
}

/* The Hub's licence field: a single SPDX id, lower-cased (apache-2.0, mit); an expression
 * becomes "other" with its text as license_name. */
static void front_licence(struct llm_buf *b, const char *lic)
{
	if (!lic)
		return;
	if (strpbrk(lic, " ()")) {
		llm_buf_puts(b, "license: other\nlicense_name: ");
		yq(b, lic);
		llm_buf_putc(b, '\n');
		return;
	}
	char low[257];
	size_t i = 0;
	for (; lic[i] && i < sizeof low - 1; i++)
		low[i] = (char)tolower((unsigned char)lic[i]);
	low[i] = '\0';
	llm_buf_puts(b, "license: ");
	yq(b, low);
	llm_buf_putc(b, '\n');
}

static void front_matter(struct llm_buf *b, const struct llm_manifest *m, const char *eval_ds)
{
	const json_t *doc = m->doc;
	llm_buf_puts(b, "---\n");
	front_licence(b, json_string_value(json_object_get(doc, "licence")));
	const char *base =
	    json_string_value(json_object_get(json_object_get(doc, "base_model"), "ref"));
	if (base) {
		llm_buf_puts(b, "base_model: ");
		yq(b, base);
		llm_buf_putc(b, '\n');
	}
	const json_t *ds = json_object_get(doc, "datasets");
	size_t i;
	json_t *v;
	if (json_array_size(ds)) {
		llm_buf_puts(b, "datasets:\n");
		json_array_foreach(ds, i, v)
		{
			llm_buf_puts(b, "- ");
			yq(b, json_string_value(json_object_get(v, "name")));
			llm_buf_putc(b, '\n');
		}
	}
	llm_buf_puts(b, "pipeline_tag: text-generation\ntags:\n- llmops\n");
	json_array_foreach(json_object_get(doc, "tags"), i, v)
	{
		llm_buf_puts(b, "- ");
		yq(b, json_string_value(v));
		llm_buf_putc(b, '\n');
	}
	const json_t *metrics = json_object_get(doc, "metrics");
	size_t scored = 0;
	const char *k;
	json_object_foreach((json_t *)metrics, k, v)
	{
		scored += json_is_number(json_object_get(v, "score"));
	}
	if (scored) {
		llm_buf_puts(b, "model-index:\n- name: ");
		yq(b, m->name);
		llm_buf_puts(b, "\n  results:\n  - task:\n      type: text-generation\n"
				"      name: Text Generation\n    dataset:\n      name: ");
		yq(b, eval_ds);
		llm_buf_puts(b, "\n      type: ");
		yq(b, eval_ds);
		llm_buf_puts(b, "\n    metrics:\n");
		json_object_foreach((json_t *)metrics, k, v)
		{
			const json_t *score = json_object_get(v, "score");
			if (!json_is_number(score))
				continue;
			llm_buf_puts(b, "    - type: ");
			yq(b, k);
			llm_buf_puts(b, "\n      value: ");
			llm_json_canonical(score, b);
			llm_buf_puts(b, "\n      name: ");
			yq(b, k);
			llm_buf_putc(b, '\n');
			const char *sig = json_string_value(json_object_get(v, "signature"));
			if (sig) {
				llm_buf_puts(b, "      args:\n        signature: ");
				yq(b, sig);
				llm_buf_putc(b, '\n');
			}
			llm_buf_puts(b, "      verified: false\n");
		}
	}
	llm_buf_puts(b, "---\n");
}

static void body(struct llm_buf *b, const struct llm_manifest *m, const char *id)
{
	const json_t *doc = m->doc;
	char created[21], hs[32];
	llm_rfc3339_format(m->created, created);
	llm_buf_printf(b,
		       "\n# %s %s\n\nPacked by llm-pack (llmops) on %s.  Identity `%s`: check the "
		       "files with\n`llm-pack verify %s-%s.tar.gz`.\n",
		       m->name, m->version, created, id, m->name, m->version);
	const json_t *parent = json_object_get(doc, "parent"),
		     *base = json_object_get(doc, "base_model"), *run = json_object_get(doc, "run");
	const char *lic = json_string_value(json_object_get(doc, "licence"));
	if (parent || base || run || lic) {
		llm_buf_puts(b, "\n## Lineage\n\n");
		if (parent) {
			llm_buf_printf(b, "- Parent: %s@%s",
				       json_string_value(json_object_get(parent, "name")),
				       json_string_value(json_object_get(parent, "version")));
			const char *dg = json_string_value(json_object_get(parent, "digest"));
			if (dg)
				llm_buf_printf(b, " (`%s`)", dg);
			llm_buf_putc(b, '\n');
		}
		if (base)
			llm_buf_printf(b, "- Base model: %s\n",
				       json_string_value(json_object_get(base, "ref")));
		if (run)
			llm_buf_printf(b, "- Training run: %s\n",
				       json_string_value(json_object_get(run, "id")));
		if (lic)
			llm_buf_printf(b, "- Licence: %s\n", lic);
	}
	size_t i;
	json_t *v;
	const json_t *ds = json_object_get(doc, "datasets");
	if (json_array_size(ds)) {
		llm_buf_puts(b, "\n## Data\n\n| dataset | records | sha256 |\n|---|---:|---|\n");
		json_array_foreach(ds, i, v)
		{
			llm_buf_puts(b, "| ");
			md_value(b, json_object_get(v, "name"));
			llm_buf_puts(b, " | ");
			md_value(b, json_object_get(v, "records"));
			llm_buf_printf(b, " | `%s` |\n",
				       json_string_value(json_object_get(v, "sha256")));
		}
	}
	const json_t *params = json_object_get(doc, "params");
	const char *k;
	if (json_object_size(params)) {
		llm_buf_puts(b, "\n## Hyperparameters\n\n| name | value |\n|---|---|\n");
		json_object_foreach((json_t *)params, k, v)
		{
			llm_buf_puts(b, "| ");
			md_cell(b, k);
			llm_buf_puts(b, " | ");
			md_value(b, v);
			llm_buf_puts(b, " |\n");
		}
	}
	const json_t *metrics = json_object_get(doc, "metrics");
	if (json_object_size(metrics)) {
		llm_buf_puts(b, "\n## Evaluation\n\n| metric | score | 95% CI | signature |\n"
				"|---|---:|---|---|\n");
		json_object_foreach((json_t *)metrics, k, v)
		{
			llm_buf_puts(b, "| ");
			md_cell(b, k);
			llm_buf_puts(b, " | ");
			md_value(b, json_object_get(v, "score"));
			llm_buf_puts(b, " | ");
			const json_t *ci = json_object_get(v, "ci");
			if (json_object_get(ci, "lo") && json_object_get(ci, "hi")) {
				md_value(b, json_object_get(ci, "lo"));
				llm_buf_puts(b, " – ");
				md_value(b, json_object_get(ci, "hi"));
			}
			llm_buf_puts(b, " | ");
			const json_t *sig = json_object_get(v, "signature");
			if (sig)
				md_value(b, sig);
			llm_buf_puts(b, " |\n");
		}
	}
	llm_pack_human_size(m->total_size, hs, sizeof hs);
	llm_buf_printf(b,
		       "\n## Files\n\n%zu files, %s.\n\n| path | size | sha256 |\n|---|---:|---|\n",
		       m->nfiles, hs);
	for (i = 0; i < m->nfiles; i++) {
		llm_pack_human_size(m->files[i].size, hs, sizeof hs);
		llm_buf_puts(b, "| ");
		md_cell(b, m->files[i].path);
		llm_buf_printf(b, " | %s | `%s` |\n", hs, m->files[i].sha256);
	}
}

static int run_card(struct llm_cli *c)
{
	struct llm_args *a = &c->args;
	if (a->noperands != 1)
		return llm_cli_usage(c, "card needs one artifact");
	struct llm_manifest m;
	char id[LLM_DIGEST_SIZE];
	int st = llm_pack_load(c, a->operands[0], &m, id);
	if (st)
		return st;
	const char *eval_ds = llm_args_str(a, "eval-dataset");
	const json_t *ds = json_object_get(m.doc, "datasets");
	if (!eval_ds && json_array_size(ds))
		eval_ds = json_string_value(
		    json_object_get(json_array_get(ds, json_array_size(ds) - 1), "name"));
	struct llm_buf b;
	llm_buf_init(&b, 0);
	front_matter(&b, &m, eval_ds ? eval_ds : "evaluation");
	body(&b, &m, id);
	const char *out = llm_args_str(a, "out");
	struct llm_diag d;
	if (out && strcmp(out, "-")) {
		if (llm_atomic_write_file(out, b.data, b.len, &d))
			st = llm_cli_fail(c, &d);
	} else if (!llm_cli_write(c, b.data, b.len)) {
		st = LLM_EXIT_IO;
	}
	llm_buf_free(&b);
	llm_manifest_free(&m);
	return st;
}

static const struct llm_opt card_opts[] = {
    {"out", 'o', LLM_OPT_STRING, "FILE", "write the card here (README.md) instead of stdout"},
    {"eval-dataset", 0, LLM_OPT_STRING, "NAME",
     "the dataset the metrics were measured on (default: the last dataset listed)"},
    {0},
};

const struct llm_verb llm_pack_verb_card = {
    "card",
    "write a Hugging Face model card from the manifest",
    "[OPTIONS] ARTIFACT",
    "Writes a README.md for the Hugging Face Hub: YAML front matter with license, base_model,\n"
    "datasets, tags and model-index eval results, then the lineage, data, hyperparameters,\n"
    "metrics and files as Markdown tables.",
    {card_opts, llm_cli_opts_base},
    run_card,
};
