/* llm-prep validate: check records: JSON, UTF-8, required fields and their types. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/json.h"
#include "prep/verbs.h"

struct requirement {
	char *field;
	unsigned types; /* bit per enum llm_json_type; 0 = any */
	bool integer;   /* "integer" was among the types */
};

static bool type_bits(const char *name, unsigned *bits, bool *integer)
{
	static const struct {
		const char *name;
		unsigned bits;
	} names[] = {
		{"string", 1u << LLM_JSON_STRING},
		{"number", 1u << LLM_JSON_NUMBER},
		{"integer", 1u << LLM_JSON_NUMBER},
		{"boolean", 1u << LLM_JSON_TRUE | 1u << LLM_JSON_FALSE},
		{"object", 1u << LLM_JSON_OBJECT},
		{"array", 1u << LLM_JSON_ARRAY},
		{"null", 1u << LLM_JSON_NULL},
	};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (!strcmp(names[i].name, name)) {
			*bits |= names[i].bits;
			*integer |= !strcmp(name, "integer");
			return true;
		}
	return false;
}

/* One "FIELD[:TYPE[|TYPE...]]" into r. */
static int parse_requirement(struct llm_cli *c, const char *item, struct requirement *r)
{
	const char *colon = strchr(item, ':');
	size_t flen = colon ? (size_t)(colon - item) : strlen(item);
	if (!flen)
		return llm_cli_usage(c, "--require: a field name is empty");
	if (!(r->field = strndup(item, flen))) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	for (const char *t = colon ? colon + 1 : NULL; t;) {
		const char *bar = strchr(t, '|');
		size_t tlen = bar ? (size_t)(bar - t) : strlen(t);
		char name[16];
		snprintf(name, sizeof name, "%.*s", (int)(tlen < 15 ? tlen : 15), t);
		if (tlen >= 15 || !type_bits(name, &r->types, &r->integer))
			return llm_cli_usage(c,
					     "--require: unknown type '%.*s' (string, number, integer, "
					     "boolean, object, array, null)",
					     (int)tlen, t);
		t = bar ? bar + 1 : NULL;
	}
	return 0;
}

/* Parse "--require text:string,reference:string|array,id" into reqs. */
static int parse_requirements(struct llm_cli *c, struct requirement **out, size_t *nout)
{
	char **items;
	size_t n;
	*out = NULL;
	*nout = 0;
	if (llm_args_list(&c->args, "require", &items, &n) ||
	    !(*out = calloc(n + 1, sizeof **out))) {
		llm_strv_free(items);
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	int st = 0;
	for (size_t i = 0; i < n && !st; i++) {
		st = parse_requirement(c, items[i], &(*out)[i]);
		*nout = i + 1;
	}
	llm_strv_free(items);
	return st;
}

static void free_requirements(struct requirement *reqs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(reqs[i].field);
	free(reqs);
}

/* Check one good record; fill why and return false when it fails a requirement. */
static bool check_record(const struct llm_record *rec, const struct requirement *reqs, size_t n,
			 struct llm_diag *why)
{
	const struct llm_json_members *ms = &rec->fields;
	for (size_t i = 0; i < n; i++) {
		const struct llm_json_member *m = llm_json_get(ms, reqs[i].field);
		if (!m) {
			llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
				     "missing required field \"%s\"", reqs[i].field);
			return false;
		}
		bool ok = !reqs[i].types || (reqs[i].types & (1u << m->type));
		if (ok && reqs[i].integer && m->type == LLM_JSON_NUMBER &&
		    !(reqs[i].types & ~(1u << LLM_JSON_NUMBER)) && !m->is_integer)
			ok = false;
		if (!ok) {
			llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
				     "field \"%s\" is %s, not the required type", reqs[i].field,
				     m->type == LLM_JSON_NUMBER && !m->is_integer
					     ? "a non-integer number"
					     : llm_json_type_phrase(m->type));
			return false;
		}
	}
	/* Duplicate keys are legal JSON but mean different things to different readers. */
	for (size_t i = 1; i < ms->n; i++)
		for (size_t k = 0; k < i; k++)
			if (ms->m[i].key_len == ms->m[k].key_len &&
			    !memcmp(ms->m[i].key, ms->m[k].key, ms->m[i].key_len)) {
				llm_diag_set(why, LLM_ERR_JSON, rec->file, rec->line,
					     "field \"%.*s\" appears twice", (int)ms->m[i].key_len,
					     ms->m[i].key);
				return false;
			}
	return true;
}

static int run_validate(struct llm_cli *c)
{
	struct requirement *reqs;
	size_t nreqs;
	int st = parse_requirements(c, &reqs, &nreqs);
	if (st) {
		free_requirements(reqs, nreqs);
		return st;
	}
	bool pass = llm_args_flag(&c->args, "pass");
	struct llm_cli_in in;
	if ((st = llm_cli_in_open(c, &in, pass))) {
		free_requirements(reqs, nreqs);
		return st;
	}
	in.always_report = true;
	struct llm_record *rec;
	int r;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		struct llm_diag why;
		if (!check_record(rec, reqs, nreqs, &why)) {
			if (!llm_cli_in_reject(c, &in, rec, &why)) {
				r = -1;
				break;
			}
			continue;
		}
		if (pass && !llm_cli_emit(c, rec, NULL, 0)) {
			in.status = LLM_EXIT_IO;
			r = -1;
			break;
		}
	}
	uint64_t bad = in.bad;
	st = r < 0 ? in.status : (bad ? LLM_EXIT_NEGATIVE : 0);
	if (r == 0 || st == LLM_EXIT_NEGATIVE) {
		if (!c->quiet || bad)
			fprintf(stderr, "%s: validate: %llu records, %llu valid, %llu invalid\n",
				c->tool->name, (unsigned long long)(in.records + bad),
				(unsigned long long)in.records, (unsigned long long)bad);
		const char *report = llm_args_str(&c->args, "report");
		if (report && r == 0) {
			json_t *j = json_pack("{s:I,s:I,s:I,s:b}", "records",
					      (json_int_t)(in.records + bad), "valid",
					      (json_int_t)in.records, "invalid", (json_int_t)bad,
					      "ok", bad == 0);
			struct llm_diag d;
			if (j && llm_cli_write_json(c, report, j, &d))
				st = llm_cli_fail(c, &d);
			json_decref(j);
		}
	}
	llm_cli_in_close(&in);
	free_requirements(reqs, nreqs);
	return st;
}

static const struct llm_opt validate_opts[] = {
	{"require", 'r', LLM_OPT_STRING, "FIELD[:TYPE]",
	 "a field every record must have, optionally of TYPE (string, number, integer, boolean, "
	 "object, array, null; several as a|b); a comma-separated list also works",
	 .repeat = true},
	{"pass", 'p', LLM_OPT_FLAG, NULL, "write the valid records to stdout"},
	{"on-error", 0, LLM_OPT_CHOICE, "MODE",
	 "fail stops at the first bad record; skip reports each and goes on; keep also writes "
	 "bad records with an error field under --pass",
	 "skip", "fail|skip|keep"},
	{"report", 0, LLM_OPT_STRING, "FILE", "write the counts as JSON to FILE"},
	{0},
};

const struct llm_verb llm_prep_verb_validate = {
	"validate", "check records: JSON, UTF-8, required fields and types", "[OPTIONS] [FILE...]",
	"Reads every record and reports each bad one as FILE:LINE: reason, then the counts.\n"
	"Exits 1 when any record is bad.",
	{validate_opts, llm_cli_opts_input, llm_cli_opts_base}, run_validate,
};
