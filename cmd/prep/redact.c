/* llm-prep redact: replace PII and secrets with typed placeholders, or tag them in flags. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/json.h"
#include "guard/pii.h"
#include "text/unicode.h"
#include "prep/verbs.h"

/* A comma-separated list from repeatable options, split into items. */
struct list {
	char **item;
	size_t n;
};

static void list_free(struct list *l)
{
	llm_strv_free(l->item);
	l->item = NULL;
	l->n = 0;
}

static bool list_parse(const struct llm_args *a, const char *opt, struct list *l)
{
	return llm_args_list(a, opt, &l->item, &l->n) == LLM_OK;
}

struct redactor {
	struct llm_cli *c;
	struct llm_guard_config cfg;
	struct list fields;
	const char *flags_field;
	bool tag;
	struct llm_pii_matches ms;
	struct llm_buf text;  /* the decoded field */
	struct llm_buf *vals; /* per field: its new JSON value; one more for the flags */
	struct llm_buf flags; /* the new flag objects, comma-separated */
	struct llm_edit *edits;
	uint64_t per_type[LLM_PII__COUNT];
	uint64_t records_with, spans;
};

/* Append the placeholder version of the decoded text, as a JSON string, to out. */
static enum llm_err redacted_value(const struct redactor *r, struct llm_buf *out)
{
	struct llm_buf plain;
	llm_buf_init(&plain, 0);
	enum llm_err e = LLM_OK;
	size_t pos = 0;
	for (size_t i = 0; i < r->ms.n && !e; i++) {
		const struct llm_pii_match *m = &r->ms.m[i];
		e = llm_buf_append(&plain, r->text.data + pos, m->start - pos);
		if (!e)
			e = llm_buf_puts(&plain, llm_pii_placeholder(m->type));
		pos = m->end;
	}
	if (!e)
		e = llm_buf_append(&plain, r->text.data + pos, r->text.len - pos);
	if (!e)
		e = llm_buf_json_string(out, plain.data, plain.len);
	llm_buf_free(&plain);
	return e;
}

/* Append one flag per match to r->flags; spans in code points of the decoded text. */
static enum llm_err flag_matches(struct redactor *r, const char *field)
{
	enum llm_err e = LLM_OK;
	size_t byte = 0, cp = 0;
	for (size_t i = 0; i < r->ms.n && !e; i++) {
		const struct llm_pii_match *m = &r->ms.m[i];
		cp += llm_unicode_count(r->text.data + byte, m->start - byte);
		size_t cp_end = cp + llm_unicode_count(r->text.data + m->start, m->end - m->start);
		byte = m->start;
		if (r->flags.len)
			e = llm_buf_putc(&r->flags, ',');
		if (!e)
			e = llm_buf_printf(&r->flags,
					   "{\"kind\":\"pii\",\"type\":\"%s\",\"detector\":\"%s\","
					   "\"field\":",
					   llm_pii_type_name(m->type), m->detector);
		if (!e)
			e = llm_buf_json_string(&r->flags, field, strlen(field));
		if (!e)
			e = llm_buf_printf(&r->flags, ",\"span\":[%zu,%zu],\"score\":%.3g}", cp,
					   cp_end, m->score);
	}
	return e;
}

/* The flags array with the new flags appended: after the existing items, or a new array. */
static enum llm_err merged_flags(const struct llm_json_member *old, const struct llm_buf *add,
				 struct llm_buf *out)
{
	if (!old)
		return llm_buf_printf(out, "[%s]", add->data);
	const char *v = old->val;
	size_t n = old->val_len;
	while (n && v[n - 1] != ']')
		n--;
	size_t close = n - 1;
	size_t k = 1;
	while (k < close && strchr(" \t\r\n", v[k]))
		k++;
	enum llm_err e = llm_buf_append(out, v, close);
	if (!e && k < close)
		e = llm_buf_putc(out, ',');
	if (!e)
		e = llm_buf_printf(out, "%s]", add->data);
	return e;
}

/* Redact or tag one record; *why is set and false returned for a bad record. */
static bool redact_record(struct redactor *r, const struct llm_record *rec, size_t *nedits,
			  struct llm_diag *why, enum llm_err *fatal)
{
	size_t ne = 0;
	bool found = false;
	llm_buf_clear(&r->flags);
	const struct llm_json_member *flags = NULL;
	if (r->tag && (flags = llm_json_get(&rec->fields, r->flags_field)) &&
	    flags->type != LLM_JSON_ARRAY) {
		llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
			     "field \"%s\" is %s, not an array of flags", r->flags_field,
			     llm_json_type_phrase(flags->type));
		return false;
	}
	for (size_t f = 0; f < r->fields.n; f++) {
		const struct llm_json_member *m = llm_json_get(&rec->fields, r->fields.item[f]);
		if (!m)
			continue;
		if (m->type != LLM_JSON_STRING) {
			llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
				     "field \"%s\" is %s, not a string", r->fields.item[f],
				     llm_json_type_phrase(m->type));
			return false;
		}
		llm_buf_clear(&r->text);
		enum llm_err e = llm_json_string_decode(m->val, m->val_len, &r->text);
		if (!e)
			e = llm_guard_scan(r->text.data, r->text.len, &r->cfg, &r->ms, why);
		if (e) {
			*fatal = e;
			return false;
		}
		if (!r->ms.n)
			continue;
		found = true;
		r->spans += r->ms.n;
		for (size_t i = 0; i < r->ms.n; i++)
			r->per_type[r->ms.m[i].type]++;
		if (r->tag) {
			e = flag_matches(r, r->fields.item[f]);
		} else {
			llm_buf_clear(&r->vals[ne]);
			e = redacted_value(r, &r->vals[ne]);
			r->edits[ne] = (struct llm_edit){r->fields.item[f], r->vals[ne].data};
			ne++;
		}
		if (e) {
			*fatal = e;
			return false;
		}
	}
	if (found && r->tag) {
		struct llm_buf *v = &r->vals[r->fields.n];
		llm_buf_clear(v);
		if ((*fatal = merged_flags(flags, &r->flags, v)))
			return false;
		r->edits[ne++] = (struct llm_edit){r->flags_field, v->data};
	}
	r->records_with += found;
	*nedits = ne;
	return true;
}

static int parse_types(struct llm_cli *c, unsigned *types)
{
	struct list l = {0};
	if (!list_parse(&c->args, "types", &l)) {
		list_free(&l);
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	*types = 0;
	int st = 0;
	for (size_t i = 0; i < l.n && !st; i++) {
		enum llm_pii_type t;
		if (!strcmp(l.item[i], "all"))
			*types |= LLM_PII_ALL;
		else if (llm_pii_type_parse(l.item[i], strlen(l.item[i]), &t))
			*types |= 1u << t;
		else
			st = llm_cli_usage(c,
					   "--types: unknown type '%s' (email, phone, ip_address, "
					   "credit_card, iban, secret, high_entropy, all)",
					   l.item[i]);
	}
	if (!st && !*types)
		st = llm_cli_usage(c, "--types: name at least one type");
	list_free(&l);
	return st;
}

static json_t *type_counts(const uint64_t *per_type)
{
	json_t *o = json_object();
	for (int t = 0; t < LLM_PII__COUNT; t++)
		json_object_set_new(o, llm_pii_type_name((enum llm_pii_type)t),
				    json_integer((json_int_t)per_type[t]));
	return o;
}

static int run_redact(struct llm_cli *c)
{
	struct redactor r = {.c = c};
	llm_guard_config_init(&r.cfg);
	int st = parse_types(c, &r.cfg.types);
	if (st)
		return st;
	r.cfg.entropy_min_len = (size_t)llm_args_int(&c->args, "entropy-min-length");
	r.cfg.entropy_base64_bits = llm_args_double(&c->args, "entropy-bits");
	r.cfg.entropy_hex_bits = llm_args_double(&c->args, "entropy-hex-bits");
	r.tag = llm_args_flag(&c->args, "tag");
	r.flags_field = llm_args_str(&c->args, "flags-field");
	if (!list_parse(&c->args, "text-field", &r.fields)) {
		list_free(&r.fields);
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	for (size_t i = 0; i < r.fields.n; i++)
		if (!r.fields.item[i][0] || (r.tag && !strcmp(r.fields.item[i], r.flags_field))) {
			list_free(&r.fields);
			return llm_cli_usage(c, "--text-field: '%s' cannot hold text to redact",
					     r.fields.item[i]);
		}
	r.vals = calloc(r.fields.n + 1, sizeof *r.vals);
	r.edits = calloc(r.fields.n + 1, sizeof *r.edits);
	if (!r.vals || !r.edits) {
		free(r.vals);
		free(r.edits);
		list_free(&r.fields);
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	for (size_t i = 0; i <= r.fields.n; i++)
		llm_buf_init(&r.vals[i], 0);
	llm_buf_init(&r.text, 0);
	llm_buf_init(&r.flags, 0);

	struct llm_cli_in in;
	if ((st = llm_cli_in_open(c, &in, true)))
		goto out;
	struct llm_record *rec;
	uint64_t written = 0;
	int got;
	while ((got = llm_cli_in_next(c, &in, &rec)) > 0) {
		struct llm_diag why;
		enum llm_err fatal = LLM_OK;
		size_t ne = 0;
		if (!redact_record(&r, rec, &ne, &why, &fatal)) {
			if (fatal) {
				llm_diag_set(&why, fatal, NULL, 0, "out of memory");
				in.status = llm_cli_fail(c, &why);
				got = -1;
				break;
			}
			if (!llm_cli_in_reject(c, &in, rec, &why)) {
				got = -1;
				break;
			}
			continue;
		}
		if (!llm_cli_emit(c, rec, r.edits, ne)) {
			in.status = LLM_EXIT_IO;
			got = -1;
			break;
		}
		written++;
	}
	st = got < 0 ? in.status : 0;
	if (!st) {
		if (!c->quiet)
			fprintf(stderr, "%s: redact: %llu records, %llu with PII, %llu spans %s\n",
				c->tool->name, (unsigned long long)(in.records + in.bad),
				(unsigned long long)r.records_with, (unsigned long long)r.spans,
				r.tag ? "tagged" : "replaced");
		const char *report = llm_args_str(&c->args, "report");
		if (report) {
			json_t *j = llm_cli_in_report(&in);
			json_object_set_new(j, "written",
					    json_integer((json_int_t)(written + in.kept)));
			json_object_set_new(j, "dropped", json_integer((json_int_t)in.dropped));
			json_object_set_new(j, "mode", json_string(r.tag ? "tag" : "replace"));
			json_object_set_new(j, "records_with_pii",
					    json_integer((json_int_t)r.records_with));
			json_object_set_new(j, "spans", json_integer((json_int_t)r.spans));
			json_object_set_new(j, "by_type", type_counts(r.per_type));
			struct llm_diag d;
			if (llm_cli_write_json(c, report, j, &d))
				st = llm_cli_fail(c, &d);
			json_decref(j);
		}
	}
	llm_cli_in_close(&in);
out:
	for (size_t i = 0; i <= r.fields.n; i++)
		llm_buf_free(&r.vals[i]);
	free(r.vals);
	free(r.edits);
	llm_buf_free(&r.text);
	llm_buf_free(&r.flags);
	llm_pii_matches_free(&r.ms);
	list_free(&r.fields);
	return st;
}

static const struct llm_opt redact_opts[] = {
    {"text-field", 'f', LLM_OPT_STRING, "FIELD",
     "a string field to scan (repeatable, or comma-separated); records without it pass as they are",
     "text", .repeat = true},
    {"types", 't', LLM_OPT_STRING, "LIST",
     "what to find: email, phone, ip_address, credit_card, iban, secret, high_entropy, or all",
     "all", .repeat = true},
    {"tag", 0, LLM_OPT_FLAG, NULL,
     "leave the text as it is and list each finding in the flags field instead"},
    {"flags-field", 0, LLM_OPT_STRING, "FIELD", "the array that --tag appends to", "flags"},
    {"entropy-min-length", 0, LLM_OPT_INT, "N", "the shortest token the entropy test looks at",
     "20", .min = 8, .max = 4096},
    {"entropy-bits", 0, LLM_OPT_DOUBLE, "BITS",
     "Shannon entropy per character from which a base64-like token is a secret", "4.5", .min = 1,
     .max = 8},
    {"entropy-hex-bits", 0, LLM_OPT_DOUBLE, "BITS",
     "the same for a token of 32 or more hexadecimal digits", "3.0", .min = 1, .max = 4},
    {"report", 0, LLM_OPT_STRING, "FILE", "write the counts, per type, as JSON to FILE"},
    {0},
};

const struct llm_verb llm_prep_verb_redact = {
    "redact",
    "replace PII and secrets with placeholders, or tag them",
    "[OPTIONS] [FILE...]",
    "Finds e-mail addresses, phone numbers, IP addresses, card numbers (Luhn), IBANs (mod 97),\n"
    "API keys, private keys, JWTs and high-entropy tokens in the text fields, and replaces\n"
    "each with <EMAIL>, <PHONE>, <IP_ADDRESS>, <CREDIT_CARD>, <IBAN> or <SECRET>.  With --tag\n"
    "the text stays and each finding is appended to flags, its span in code points.",
    {redact_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base},
    run_redact,
};
