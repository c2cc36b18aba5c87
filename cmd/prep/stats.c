/* llm-prep stats: summarize records: fields, lengths, duplicates, writing systems; the flags,
 * clusters and splits other verbs wrote; and token counts for the encodings asked for. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/atomic.h"
#include "data/stats.h"
#include "prep/verbs.h"
#include "text/bpe.h"

#ifndef LLMOPS_TOKENIZER_DATADIR
#define LLMOPS_TOKENIZER_DATADIR "/usr/local/share/llmops/tokenizers"
#endif

/* The tokenizers of --encoding (repeatable, and each a comma-separated list) and --tokenizer,
 * in the order given, each loaded once. */
struct toks {
	struct llm_bpe **bpe;
	char **name;
	size_t n, cap;
};

static void toks_free(struct toks *t)
{
	for (size_t i = 0; i < t->n; i++) {
		llm_bpe_free(t->bpe[i]);
		free(t->name[i]);
	}
	free(t->bpe);
	free(t->name);
}

/* Load one tokenizer, unless one of that name is loaded already.  Returns an exit status. */
static int toks_add(struct llm_cli *c, struct toks *t, const char *name, bool file)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->name[i], name))
			return 0;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4;
		struct llm_bpe **b = realloc(t->bpe, cap * sizeof *b);
		if (b)
			t->bpe = b;
		char **nm = b ? realloc(t->name, cap * sizeof *nm) : NULL;
		if (!nm) {
			llm_cli_error(c, "out of memory");
			return LLM_EXIT_IO;
		}
		t->name = nm;
		t->cap = cap;
	}
	struct llm_diag d;
	enum llm_err e;
	if (file) {
		e = llm_bpe_open_file(&t->bpe[t->n], name, &d);
	} else {
		const char *dir = getenv("LLMOPS_TOKENIZER_DIR");
		if (!dir || !*dir)
			dir = LLMOPS_TOKENIZER_DATADIR;
		e = llm_bpe_open_encoding(&t->bpe[t->n], dir, name, &d);
		if (e == LLM_ERR_NOT_FOUND)
			return llm_cli_usage(c,
					     "%s: the encodings are gpt2, cl100k_base and "
					     "o200k_base, or give --tokenizer FILE",
					     d.msg);
	}
	if (e)
		return llm_cli_fail(c, &d);
	if (!(t->name[t->n] = strdup(name))) {
		llm_bpe_free(t->bpe[t->n]);
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	t->n++;
	return 0;
}

static int toks_load(struct llm_cli *c, struct toks *t)
{
	char **names;
	size_t n;
	if (llm_args_list(&c->args, "encoding", &names, &n)) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	int st = 0;
	for (size_t i = 0; i < n && !st; i++)
		st = toks_add(c, t, names[i], false);
	llm_strv_free(names);
	if (st)
		return st;
	char *const *vals = llm_args_strs(&c->args, "tokenizer", &n);
	for (size_t i = 0; i < n && !st; i++)
		st = toks_add(c, t, vals[i], true);
	return st;
}

static int run_stats(struct llm_cli *c)
{
	size_t nfields;
	char *const *fields = llm_args_strs(&c->args, "field", &nfields);
	struct toks toks = {0};
	int st = toks_load(c, &toks);
	if (st) {
		toks_free(&toks);
		return st;
	}
	struct llm_stats_config cfg = {
		.text_field = llm_args_str(&c->args, "text-field"),
		.fields = nfields ? fields : NULL,
		.nfields = nfields,
		.flags_field = llm_args_str(&c->args, "flags-field"),
		.cluster_field = llm_args_str(&c->args, "cluster-field"),
		.duplicate_field = llm_args_str(&c->args, "duplicate-field"),
		.split_field = llm_args_str(&c->args, "split-field"),
		.tokenizers = toks.bpe,
		.tokenizer_names = (const char *const *)toks.name,
		.ntokenizers = toks.n,
	};
	struct llm_stats *s;
	if (llm_stats_new(&s, &cfg)) {
		toks_free(&toks);
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	struct llm_cli_in in;
	st = llm_cli_in_open(c, &in, false);
	if (st) {
		llm_stats_free(s);
		toks_free(&toks);
		return st;
	}
	struct llm_record *rec;
	int r;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		enum llm_err e = llm_stats_add(s, rec);
		if (e) {
			if (e == LLM_ERR_NOMEM)
				llm_cli_error(c, "out of memory");
			else /* only a tokenizer can fail otherwise */
				llm_cli_error(c, "%s:%ld: cannot count tokens: %s", rec->file,
					      rec->line, llm_err_name(e));
			r = -1;
			in.status = e == LLM_ERR_NOMEM ? LLM_EXIT_IO : llm_err_exit_status(e);
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
		toks_free(&toks);
		return st;
	}
	json_t *report = llm_stats_report(s);
	llm_stats_free(s);
	toks_free(&toks);
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
	{"encoding", 'e', LLM_OPT_STRING, "NAME",
	 "count tokens of the text field with this encoding (gpt2, cl100k_base, o200k_base; "
	 "repeatable, or a comma list)",
	 .repeat = true},
	{"tokenizer", 0, LLM_OPT_STRING, "FILE",
	 "count tokens with this tokenizer.json or NAME.tiktoken file (repeatable)",
	 .repeat = true},
	{"flags-field", 0, LLM_OPT_STRING, "NAME", "the array of flags to count by kind and name",
	 "flags"},
	{"cluster-field", 0, LLM_OPT_STRING, "NAME", "the cluster id written by dedup",
	 "cluster_id"},
	{"duplicate-field", 0, LLM_OPT_STRING, "NAME",
	 "the duplicate mark written by dedup --tag", "duplicate"},
	{"split-field", 0, LLM_OPT_STRING, "NAME", "the split name written by split", "split"},
	{"report", 0, LLM_OPT_STRING, "FILE", "write the summary as JSON to FILE"},
	{"html", 0, LLM_OPT_STRING, "FILE", "write a self-contained HTML report with charts to FILE"},
	{"json", 0, LLM_OPT_FLAG, NULL, "print the JSON summary on stdout instead of the table"},
	{"no-table", 0, LLM_OPT_FLAG, NULL, "print nothing on stdout (with --report or --html)"},
	{0},
};

const struct llm_verb llm_prep_verb_stats = {
	"stats", "counts, fields, length distributions, duplicates, scripts, tokens",
	"[OPTIONS] [FILE...]",
	"Summarizes the records: a table on stdout, JSON with --report or --json, and an\n"
	"HTML page with charts with --html.  Flags, clusters and splits that other verbs\n"
	"wrote are summarized when present; tokens are counted with --encoding or\n"
	"--tokenizer.  Runs in bounded memory.",
	{stats_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base}, run_stats,
};
