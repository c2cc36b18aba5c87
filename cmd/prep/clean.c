/* llm-prep clean: Unicode normalization, line breaks, controls, invisible characters and
 * whitespace in one text field; every step switchable, counted in the report. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "prep/verbs.h"
#include "text/unicode.h"

/* Parse "--skip trim,collapse" into step bits. */
static int parse_skip(struct llm_cli *c, unsigned *steps)
{
	size_t nv;
	char *const *vals = llm_args_strs(&c->args, "skip", &nv);
	for (size_t i = 0; i < nv; i++) {
		const char *p = vals[i];
		while (p && *p) {
			const char *e = strchr(p, ',');
			size_t len = e ? (size_t)(e - p) : strlen(p);
			unsigned bit;
			if (!llm_clean_step_parse(p, len, &bit))
				return llm_cli_usage(
				    c,
				    "--skip: unknown step '%.*s' (newlines, controls, "
				    "invisible, spaces, normalize, lowercase, collapse, "
				    "trim, blank-lines)",
				    (int)len, p);
			*steps &= ~bit;
			p = e ? e + 1 : NULL;
		}
	}
	return 0;
}

static int run_clean(struct llm_cli *c)
{
	unsigned steps = LLM_CLEAN_DEFAULT;
	const char *form = llm_args_str(&c->args, "form");
	enum llm_uform uf = LLM_UFORM_NFC;
	if (!strcmp(form, "nfkc"))
		uf = LLM_UFORM_NFKC;
	else if (!strcmp(form, "none"))
		steps &= ~(unsigned)LLM_CLEAN_NORMALIZE;
	if (llm_args_flag(&c->args, "lowercase"))
		steps |= LLM_CLEAN_LOWERCASE;
	int st = parse_skip(c, &steps);
	if (st)
		return st;
	const char *field = llm_args_str(&c->args, "text-field");
	bool drop_empty = llm_args_flag(&c->args, "drop-empty");

	struct llm_clean cl;
	llm_clean_init(&cl, steps, uf, llm_args_flag(&c->args, "strip-joiners"));
	struct llm_buf text, lit;
	llm_buf_init(&text, 0);
	llm_buf_init(&lit, 0);
	uint64_t by_step[LLM_CLEAN_NSTEPS] = {0};
	uint64_t changed = 0, emitted = 0, empty = 0;

	struct llm_cli_in in;
	st = llm_cli_in_open(c, &in, true);
	if (st) {
		llm_clean_free(&cl);
		return st;
	}
	struct llm_record *rec;
	int r;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		struct llm_diag why;
		const struct llm_json_member *m = llm_record_string_field(rec, field, &why);
		if (!m) {
			if (!llm_cli_in_reject(c, &in, rec, &why)) {
				r = -1;
				break;
			}
			continue;
		}
		llm_buf_clear(&text);
		const char *out;
		size_t outn;
		unsigned ch = 0;
		enum llm_err e = llm_json_string_decode(m->val, m->val_len, &text);
		if (!e)
			e = llm_clean_text(&cl, text.data, text.len, &out, &outn, &ch);
		if (e) {
			llm_diag_set(&why, e, rec->file, rec->line, "cannot clean field \"%s\": %s",
				     field, llm_err_name(e));
			if (!llm_cli_in_reject(c, &in, rec, &why)) {
				r = -1;
				break;
			}
			continue;
		}
		if (drop_empty && outn == 0) {
			empty++;
			continue;
		}
		bool ok;
		if (ch) {
			changed++;
			for (unsigned i = 0; i < LLM_CLEAN_NSTEPS; i++)
				by_step[i] += (ch >> i) & 1;
			llm_buf_clear(&lit);
			if (llm_buf_json_string(&lit, out, outn)) {
				llm_cli_error(c, "out of memory");
				in.status = LLM_EXIT_IO;
				r = -1;
				break;
			}
			struct llm_edit ed = {field, lit.data};
			ok = llm_cli_emit(c, rec, &ed, 1);
		} else {
			ok = llm_cli_emit(c, rec, NULL, 0); /* byte for byte */
		}
		if (!ok) {
			in.status = LLM_EXIT_IO;
			r = -1;
			break;
		}
		emitted++;
	}
	st = r < 0 ? in.status : 0;
	llm_cli_in_close(&in);
	llm_clean_free(&cl);
	llm_buf_free(&text);
	llm_buf_free(&lit);
	if (st)
		return st;
	if (!c->quiet)
		fprintf(stderr, "%s: clean: %llu records, %llu changed, %llu bad\n", c->tool->name,
			(unsigned long long)(in.records), (unsigned long long)changed,
			(unsigned long long)in.bad);
	const char *report = llm_args_str(&c->args, "report");
	if (report) {
		json_t *j = llm_cli_in_report(&in);
		json_t *steps_j = json_object();
		for (unsigned i = 0; i < LLM_CLEAN_NSTEPS; i++)
			if (steps & (1u << i))
				json_object_set_new(steps_j, llm_clean_step_name(i),
						    json_integer((json_int_t)by_step[i]));
		json_object_set_new(j, "written", json_integer((json_int_t)(emitted + in.kept)));
		json_object_set_new(j, "dropped", json_integer((json_int_t)(in.dropped + empty)));
		json_object_set_new(j, "dropped_empty", json_integer((json_int_t)empty));
		json_object_set_new(j, "changed", json_integer((json_int_t)changed));
		json_object_set_new(j, "changed_by_step", steps_j);
		struct llm_diag d;
		if (llm_cli_write_json(c, report, j, &d))
			st = llm_cli_fail(c, &d);
		json_decref(j);
	}
	return st;
}

static const struct llm_opt clean_opts[] = {
    {"text-field", 'f', LLM_OPT_STRING, "FIELD", "the string field to clean", "text"},
    {"form", 0, LLM_OPT_CHOICE, "FORM", "Unicode normalization form, or none", "nfc",
     "nfc|nfkc|none"},
    {"lowercase", 0, LLM_OPT_FLAG, NULL, "also lowercase the text (simple Unicode mapping)"},
    {"skip", 0, LLM_OPT_STRING, "STEPS",
     "comma-separated steps not to run: newlines, controls, invisible, spaces, normalize, "
     "collapse, trim, blank-lines",
     .repeat = true},
    {"strip-joiners", 0, LLM_OPT_FLAG, NULL,
     "also remove zero-width joiners and non-joiners (U+200D, U+200C)"},
    {"drop-empty", 0, LLM_OPT_FLAG, NULL, "drop records whose text is empty after cleaning"},
    {"report", 0, LLM_OPT_STRING, "FILE", "write counts (read, written, changed by step) as JSON"},
    {0},
};

const struct llm_verb llm_prep_verb_clean = {
    "clean",
    "normalize Unicode, line breaks, invisible characters and whitespace",
    "[OPTIONS] [FILE...]",
    "Cleans one text field of each record in place: line breaks to LF, control and invisible\n"
    "characters out, Unicode spaces to U+0020, NFC (or NFKC), runs of spaces collapsed, line\n"
    "ends trimmed, at most one blank line in a row.  Every other field passes through byte\n"
    "for byte; a record that needs no change is written exactly as it was read.",
    {clean_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base},
    run_clean,
};
