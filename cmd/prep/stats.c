/* llm-prep stats: summarize records: fields, lengths, duplicates, writing systems. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/atomic.h"
#include "data/stats.h"
#include "prep/verbs.h"

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

const struct llm_verb llm_prep_verb_stats = {
	"stats", "counts, fields, length distributions, duplicates, scripts", "[OPTIONS] [FILE...]",
	"Summarizes the records: a table on stdout, JSON with --report or --json, and an\n"
	"HTML page with charts with --html.  Runs in bounded memory.",
	{stats_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base}, run_stats,
};
