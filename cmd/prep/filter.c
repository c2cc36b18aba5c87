/* llm-prep filter: quality rules (Gopher, C4, FineWeb, length, regex) that drop records or
 * tag them with flags. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data/quality.h"
#include "prep/verbs.h"

/* Counts per "rule.check", in first-seen order; few enough for a linear search. */
struct tally {
	char **keys;
	uint64_t *counts;
	size_t n;
};

static bool tally_add(struct tally *t, const struct llm_quality_hit *h)
{
	char key[128];
	snprintf(key, sizeof key, "%s.%s", h->rule_name, h->check);
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->keys[i], key)) {
			t->counts[i]++;
			return true;
		}
	char **k = realloc(t->keys, (t->n + 1) * sizeof *k);
	if (k)
		t->keys = k;
	uint64_t *c = realloc(t->counts, (t->n + 1) * sizeof *c);
	if (c)
		t->counts = c;
	if (!k || !c || !(t->keys[t->n] = strdup(key)))
		return false;
	t->counts[t->n++] = 1;
	return true;
}

static json_t *tally_json(const struct tally *t)
{
	json_t *o = json_object();
	for (size_t i = 0; i < t->n; i++)
		json_object_set_new(o, t->keys[i], json_integer((json_int_t)t->counts[i]));
	return o;
}

static void tally_free(struct tally *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->keys[i]);
	free(t->keys);
	free(t->counts);
}

/* Append one flag object for a hit. */
static enum llm_err flag_json(struct llm_buf *b, const struct llm_quality *q,
			      const struct llm_quality_hit *h)
{
	char rule[128];
	snprintf(rule, sizeof rule, "%s.%s", h->rule_name, h->check);
	enum llm_err e = llm_buf_puts(b, "{\"kind\":\"quality\",\"rule\":");
	if (!e)
		e = llm_buf_json_string(b, rule, strlen(rule));
	if (!e)
		e = llm_buf_printf(b, ",\"value\":%.10g,\"threshold\":%.10g", h->value,
				   h->threshold);
	const char *pat = llm_quality_regex(q, h->pattern);
	if (!e && pat) {
		e = llm_buf_puts(b, ",\"pattern\":");
		if (!e)
			e = llm_buf_json_string(b, pat, strlen(pat));
	}
	if (!e)
		e = llm_buf_putc(b, '}');
	return e;
}

/* The flags value: the record's own array with the hits appended, or a new array. */
static enum llm_err build_flags(struct llm_buf *b, const struct llm_json_member *old,
				const struct llm_quality *q, const struct llm_quality_result *res)
{
	llm_buf_clear(b);
	bool first = true;
	enum llm_err e;
	if (old) {
		e = llm_buf_append(b, old->val, old->val_len - 1); /* without its "]" */
		for (uint32_t i = 1; i + 1 < old->val_len; i++)
			if (!strchr(" \t\r\n", old->val[i]))
				first = false;
	} else {
		e = llm_buf_putc(b, '[');
	}
	for (size_t i = 0; i < res->nhits && !e; i++) {
		if (!first)
			e = llm_buf_putc(b, ',');
		first = false;
		if (!e)
			e = flag_json(b, q, &res->hits[i]);
	}
	if (!e)
		e = llm_buf_putc(b, ']');
	return e;
}

static int setup(struct llm_cli *c, struct llm_quality *q)
{
	struct llm_diag d;
	const char *rules = llm_args_str(&c->args, "rules");
	if (llm_quality_use(q, rules, &d))
		return llm_cli_usage(c, "--rules: %s", d.msg);
	size_t n;
	char *const *v = llm_args_strs(&c->args, "regex", &n);
	for (size_t i = 0; i < n; i++)
		if (llm_quality_add_regex(q, v[i], &d))
			return d.code == LLM_ERR_USAGE ? llm_cli_usage(c, "%s", d.msg)
						       : llm_cli_fail(c, &d);
	if (llm_quality_uses(q, LLM_QUALITY_REGEX) && !n)
		return llm_cli_usage(c, "--rules regex needs at least one --regex PATTERN");
	v = llm_args_strs(&c->args, "set", &n);
	for (size_t i = 0; i < n; i++)
		if (llm_quality_set(q, v[i], &d))
			return llm_cli_usage(c, "%s", d.msg);
	return 0;
}

static int run_filter(struct llm_cli *c)
{
	bool tag = llm_args_flag(&c->args, "tag");
	if (tag && llm_args_flag(&c->args, "drop"))
		return llm_cli_usage(c, "give --drop or --tag, not both");
	const char *field = llm_args_str(&c->args, "text-field");
	const char *flags_field = llm_args_str(&c->args, "flags-field");
	struct llm_quality *q;
	if (llm_quality_new(&q)) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	int st = setup(c, q);
	if (st) {
		llm_quality_free(q);
		return st;
	}
	struct llm_buf text, lit;
	llm_buf_init(&text, 0);
	llm_buf_init(&lit, 0);
	struct llm_quality_result res = {0};
	struct tally by_check = {0};
	uint64_t by_rule[LLM_QUALITY__NRULES] = {0};
	uint64_t emitted = 0, passed = 0, dropped = 0, flagged = 0, changed = 0, lines_removed = 0;

	struct llm_cli_in in;
	st = llm_cli_in_open(c, &in, true);
	if (st) {
		llm_quality_free(q);
		return st;
	}
	struct llm_record *rec;
	int r;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		struct llm_diag why;
		const struct llm_json_member *m = llm_record_string_field(rec, field, &why);
		const struct llm_json_member *fl =
		    tag ? llm_json_get(&rec->fields, flags_field) : NULL;
		bool bad = !m;
		if (m && fl && fl->type != LLM_JSON_ARRAY) {
			llm_diag_set(&why, LLM_ERR_TYPE, rec->file, rec->line,
				     "field \"%s\" is %s, not an array", flags_field,
				     llm_json_type_phrase(fl->type));
			bad = true;
		}
		if (bad) {
			if (!llm_cli_in_reject(c, &in, rec, &why)) {
				r = -1;
				break;
			}
			continue;
		}
		llm_buf_clear(&text);
		enum llm_err e = llm_json_string_decode(m->val, m->val_len, &text);
		if (!e)
			e = llm_quality_check(q, text.data, text.len,
					      tag ? LLM_QUALITY_EVERY : LLM_QUALITY_FIRST, &res);
		if (e) {
			llm_cli_error(c, "%s:%ld: %s", rec->file, rec->line, llm_err_name(e));
			in.status = LLM_EXIT_IO;
			r = -1;
			break;
		}
		bool ok = true;
		if (res.nhits) {
			by_rule[res.hits[0].rule]++;
			size_t count = tag ? res.nhits : 1;
			for (size_t i = 0; i < count && ok; i++)
				ok = tally_add(&by_check, &res.hits[i]);
			if (ok && tag) {
				flagged++;
				struct llm_edit ed = {flags_field, lit.data};
				ok = !build_flags(&lit, fl, q, &res);
				ed.value = lit.data;
				if (!ok)
					llm_cli_error(c, "out of memory");
				else if (!llm_cli_emit(c, rec, &ed, 1))
					ok = false;
				else
					emitted++;
			} else if (ok) {
				dropped++;
			}
		} else {
			passed++;
			lines_removed += res.lines_removed;
			if (res.text_changed && !tag) {
				changed++;
				llm_buf_clear(&lit);
				struct llm_edit ed = {field, NULL};
				ok = !llm_buf_json_string(&lit, res.text, res.len);
				ed.value = lit.data;
				ok = ok && llm_cli_emit(c, rec, &ed, 1);
			} else {
				ok = llm_cli_emit(c, rec, NULL, 0);
			}
			emitted += ok;
		}
		if (!ok) {
			in.status = LLM_EXIT_IO;
			r = -1;
			break;
		}
	}
	st = r < 0 ? in.status : 0;
	llm_cli_in_close(&in);
	llm_buf_free(&text);
	llm_buf_free(&lit);
	llm_quality_result_free(&res);
	llm_quality_free(q);
	if (!st && !c->quiet)
		fprintf(stderr, "%s: filter: %llu records, %llu passed, %llu %s, %llu bad\n",
			c->tool->name, (unsigned long long)in.records, (unsigned long long)passed,
			(unsigned long long)(tag ? flagged : dropped), tag ? "flagged" : "dropped",
			(unsigned long long)in.bad);
	const char *report = llm_args_str(&c->args, "report");
	if (!st && report) {
		json_t *j = llm_cli_in_report(&in);
		json_t *rules = json_object();
		for (int i = 0; i < LLM_QUALITY__NRULES; i++)
			if (by_rule[i]) {
				static const char *const names[] = {"gopher_quality",
								    "gopher_repetition",
								    "c4",
								    "fineweb",
								    "length",
								    "regex"};
				json_object_set_new(rules, names[i],
						    json_integer((json_int_t)by_rule[i]));
			}
		json_object_set_new(j, "mode", json_string(tag ? "tag" : "drop"));
		json_object_set_new(j, "written", json_integer((json_int_t)(emitted + in.kept)));
		json_object_set_new(j, "dropped", json_integer((json_int_t)(dropped + in.dropped)));
		json_object_set_new(j, "passed", json_integer((json_int_t)passed));
		json_object_set_new(j, tag ? "flagged" : "dropped_by_rules",
				    json_integer((json_int_t)(tag ? flagged : dropped)));
		json_object_set_new(j, tag ? "flagged_by_rule" : "dropped_by_rule", rules);
		json_object_set_new(j, tag ? "flags_by_check" : "dropped_by_check",
				    tally_json(&by_check));
		json_object_set_new(j, "c4_lines_removed", json_integer((json_int_t)lines_removed));
		json_object_set_new(j, "text_changed", json_integer((json_int_t)changed));
		struct llm_diag d;
		if (llm_cli_write_json(c, report, j, &d))
			st = llm_cli_fail(c, &d);
		json_decref(j);
	}
	tally_free(&by_check);
	return st;
}

static const struct llm_opt filter_opts[] = {
    {"text-field", 'f', LLM_OPT_STRING, "FIELD", "the string field the rules read", "text"},
    {"rules", 'r', LLM_OPT_STRING, "LIST",
     "rules to run, in order: gopher_quality, gopher_repetition, c4, fineweb, length, regex",
     "gopher_quality,gopher_repetition"},
    {"set", 's', LLM_OPT_STRING, "RULE.NAME=VALUE",
     "change a threshold (a number, or off), e.g. gopher_quality.min_words=20", .repeat = true},
    {"regex", 'e', LLM_OPT_STRING, "PATTERN",
     "fail documents that match this PCRE2 pattern (turns the regex rule on)", .repeat = true},
    {"drop", 0, LLM_OPT_FLAG, NULL, "remove records that fail a rule (the default)"},
    {"tag", 0, LLM_OPT_FLAG, NULL, "keep every record; add a flag for each failed check"},
    {"flags-field", 0, LLM_OPT_STRING, "FIELD", "the array field --tag appends flags to", "flags"},
    {"report", 0, LLM_OPT_STRING, "FILE", "write counts (kept, dropped per rule) as JSON"},
    {0},
};

const struct llm_verb llm_prep_verb_filter = {
    "filter",
    "drop or tag documents by quality rules (Gopher, C4, FineWeb, regex)",
    "[OPTIONS] [FILE...]",
    "Runs the chosen quality rules over one text field.  With --drop (the default) a record\n"
    "that fails a check is removed; with --tag it is kept and gains a flag per failed check:\n"
    "{\"kind\":\"quality\",\"rule\":\"RULE.CHECK\",\"value\":V,\"threshold\":T}.  The c4 rule "
    "also\n"
    "removes lines (as datatrove does) from the text of the records it keeps, under --drop.",
    {filter_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base},
    run_filter,
};
