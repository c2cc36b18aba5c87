/* llm-prep decontaminate: drop, tag or cut training records that share n-grams with
 * evaluation sets (the GPT-3 recipe). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/json.h"
#include "data/decontam.h"
#include "prep/verbs.h"

enum mode { MODE_DROP, MODE_TAG, MODE_CUT };

struct fields {
	char **name;
	size_t n;
};

static void fields_free(struct fields *f)
{
	llm_strv_free(f->name);
	f->name = NULL;
	f->n = 0;
}

static bool fields_parse(const struct llm_args *a, const char *opt, struct fields *f)
{
	return llm_args_list(a, opt, &f->name, &f->n) == LLM_OK;
}

/* One evaluation record: where it came from, its id, and how many training records hit it. */
struct eval_rec {
	char *id;
	char *file;
	long line;
	uint64_t touched;
	uint64_t stamp; /* the last training record (1-based) that counted it */
	uint64_t mark;	/* the last flag that listed it */
};

struct decon {
	struct llm_cli *c;
	struct llm_decontam *dc;
	unsigned ngram;
	enum mode mode;
	struct fields eval_fields, text_fields;
	struct eval_rec *evals;
	size_t nevals, evals_cap;
	uint64_t eval_texts, eval_short;
	size_t window, min_piece, max_pieces;
	const char *flags_field;
	struct llm_decontam_hits hits;
	struct llm_buf text, flags;
	struct llm_buf *vals;
	struct llm_edit *edits;
	uint64_t contaminated, cut, dropped_dirty;
	uint64_t serial; /* flags written so far */
};

/* Add one evaluation value: a string, an array of strings, or chat messages (their
 * "content" strings).  *grams grows by the n-grams found. */
static enum llm_err add_eval_value(struct decon *x, const struct llm_json_member *m, uint32_t idx,
				   size_t *grams, struct llm_diag *d)
{
	size_t n = 0;
	if (m->type == LLM_JSON_STRING) {
		llm_buf_clear(&x->text);
		enum llm_err e = llm_json_string_decode(m->val, m->val_len, &x->text);
		if (!e)
			e = llm_decontam_add(x->dc, x->text.data, x->text.len, idx, &n, d);
		x->eval_texts++;
		*grams += n;
		return e;
	}
	json_t *arr = json_loadb(m->val, m->val_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (!arr)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	size_t i;
	json_t *item;
	enum llm_err e = LLM_OK;
	json_array_foreach(arr, i, item)
	{
		json_t *s = json_is_object(item) ? json_object_get(item, "content") : item;
		if (!json_is_string(s))
			continue;
		e = llm_decontam_add(x->dc, json_string_value(s), json_string_length(s), idx, &n,
				     d);
		if (e)
			break;
		x->eval_texts++;
		*grams += n;
	}
	json_decref(arr);
	return e;
}

/* Read the evaluation files into the index.  Any bad evaluation record stops the run: a
 * decontamination that skipped part of the benchmark would promise more than it checked. */
static int load_evals(struct decon *x)
{
	struct llm_cli *c = x->c;
	size_t npaths;
	char *const *paths = llm_args_strs(&c->args, "eval", &npaths);
	const char *id_field = llm_args_str(&c->args, "eval-id-field");
	struct llm_jsonl_reader *r;
	struct llm_diag d;
	if (llm_jsonl_open(&r, paths, npaths, llm_args_size(&c->args, "max-record-bytes"), &d))
		return llm_cli_fail(c, &d);
	struct llm_record rec = {0};
	int st = 0;
	for (;;) {
		if (llm_jsonl_next(r, &rec, &d)) {
			st = llm_cli_fail(c, &d);
			break;
		}
		if (!rec.text)
			break;
		if (rec.status) {
			st = llm_cli_fail(c, &rec.diag);
			break;
		}
		if (x->nevals == x->evals_cap) {
			size_t cap = x->evals_cap ? x->evals_cap * 2 : 256;
			struct eval_rec *p = realloc(x->evals, cap * sizeof *p);
			if (!p) {
				llm_cli_error(c, "out of memory");
				st = LLM_EXIT_IO;
				break;
			}
			x->evals = p;
			x->evals_cap = cap;
		}
		uint32_t idx = (uint32_t)x->nevals;
		struct eval_rec *ev = &x->evals[x->nevals++];
		*ev = (struct eval_rec){.file = strdup(rec.file), .line = rec.line};
		const struct llm_json_member *idm = llm_json_get(&rec.fields, id_field);
		struct llm_buf idb;
		llm_buf_init(&idb, 0);
		if (idm && idm->type == LLM_JSON_STRING)
			llm_json_string_decode(idm->val, idm->val_len, &idb);
		else if (idm)
			llm_buf_append(&idb, idm->val, idm->val_len);
		else
			llm_buf_printf(&idb, "%s:%ld", rec.file, rec.line);
		ev->id = idb.data ? idb.data : strdup("");
		size_t grams = 0, present = 0;
		enum llm_err e = LLM_OK;
		for (size_t f = 0; f < x->eval_fields.n && !e; f++) {
			const struct llm_json_member *m =
			    llm_json_get(&rec.fields, x->eval_fields.name[f]);
			if (!m || (m->type != LLM_JSON_STRING && m->type != LLM_JSON_ARRAY))
				continue;
			present++;
			e = add_eval_value(x, m, idx, &grams, &d);
		}
		if (e) {
			st = llm_cli_fail(c, &d);
			break;
		}
		if (!present) {
			llm_diag_set(&d, LLM_ERR_MISSING, rec.file, rec.line,
				     "no text in the --eval-field fields (%s%s)",
				     x->eval_fields.name[0], x->eval_fields.n > 1 ? ", ..." : "");
			st = llm_cli_fail(c, &d);
			break;
		}
		if (!grams)
			x->eval_short++;
	}
	llm_record_free(&rec);
	llm_jsonl_close(r);
	if (st)
		return st;
	if (!llm_decontam_size(x->dc)) {
		/* Never "succeed" at checking nothing. */
		llm_cli_error(
		    c,
		    "decontaminate: the eval files yield no %u-grams: none of their %zu "
		    "records has %u words in the --eval-field fields; nothing could ever match "
		    "(lower --ngram or check --eval-field)",
		    x->ngram, x->nevals, x->ngram);
		return LLM_EXIT_NEGATIVE;
	}
	if (x->eval_short)
		llm_cli_error(
		    c,
		    "warning: %llu of %zu eval records have fewer than %u words and cannot "
		    "be detected",
		    (unsigned long long)x->eval_short, x->nevals, x->ngram);
	return 0;
}

/* Count each evaluation record once per training record. */
static void note_leaks(struct decon *x, uint64_t recno)
{
	for (size_t i = 0; i < x->hits.n; i++) {
		struct eval_rec *ev = &x->evals[x->hits.h[i].eval];
		if (ev->stamp != recno) {
			ev->stamp = recno;
			ev->touched++;
		}
	}
}

/* Append a flag per stretch of overlapping hits: its span in code points and the ids of the
 * evaluation records it matches. */
static enum llm_err flag_hits(struct decon *x, const char *field)
{
	enum llm_err e = LLM_OK;
	size_t i = 0;
	while (i < x->hits.n && !e) {
		size_t s = x->hits.h[i].cp_start, end = x->hits.h[i].cp_end, j = i;
		while (j < x->hits.n && x->hits.h[j].cp_start < end) {
			if (x->hits.h[j].cp_end > end)
				end = x->hits.h[j].cp_end;
			j++;
		}
		if (x->flags.len)
			e = llm_buf_putc(&x->flags, ',');
		if (!e)
			e = llm_buf_puts(
			    &x->flags, "{\"kind\":\"contamination\",\"type\":\"ngram\",\"field\":");
		if (!e)
			e = llm_buf_json_string(&x->flags, field, strlen(field));
		if (!e)
			e = llm_buf_printf(
			    &x->flags, ",\"span\":[%zu,%zu],\"score\":1,\"eval_ids\":[", s, end);
		x->serial++;
		bool first = true;
		for (size_t k = i; k < j && !e; k++) {
			struct eval_rec *ev = &x->evals[x->hits.h[k].eval];
			if (ev->mark == x->serial)
				continue;
			ev->mark = x->serial;
			if (!first)
				e = llm_buf_putc(&x->flags, ',');
			if (!e)
				e = llm_buf_json_string(&x->flags, ev->id, strlen(ev->id));
			first = false;
		}
		if (!e)
			e = llm_buf_puts(&x->flags, "]}");
		i = j;
	}
	return e;
}

static enum llm_err merged_flags(const struct llm_json_member *old, const struct llm_buf *add,
				 struct llm_buf *out)
{
	if (!old)
		return llm_buf_printf(out, "[%s]", add->data);
	size_t n = old->val_len;
	while (n && old->val[n - 1] != ']')
		n--;
	size_t close = n - 1, k = 1;
	while (k < close && strchr(" \t\r\n", old->val[k]))
		k++;
	enum llm_err e = llm_buf_append(out, old->val, close);
	if (!e && k < close)
		e = llm_buf_putc(out, ',');
	return e ? e : llm_buf_printf(out, "%s]", add->data);
}

/* Decide one record: *drop, or the edits to write it with.  false: a bad record (why). */
static bool check_record(struct decon *x, const struct llm_record *rec, uint64_t recno, bool *drop,
			 size_t *nedits, struct llm_diag *why, enum llm_err *fatal)
{
	*drop = false;
	size_t ne = 0;
	bool dirty = false, changed = false;
	llm_buf_clear(&x->flags);
	const struct llm_json_member *flags = NULL;
	if (x->mode == MODE_TAG && (flags = llm_json_get(&rec->fields, x->flags_field)) &&
	    flags->type != LLM_JSON_ARRAY) {
		llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
			     "field \"%s\" is %s, not an array of flags", x->flags_field,
			     llm_json_type_phrase(flags->type));
		return false;
	}
	for (size_t f = 0; f < x->text_fields.n; f++) {
		const char *name = x->text_fields.name[f];
		const struct llm_json_member *m = llm_json_get(&rec->fields, name);
		if (!m)
			continue;
		if (m->type != LLM_JSON_STRING) {
			llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
				     "field \"%s\" is %s, not a string", name,
				     llm_json_type_phrase(m->type));
			return false;
		}
		llm_buf_clear(&x->text);
		enum llm_err e = llm_json_string_decode(m->val, m->val_len, &x->text);
		if (!e)
			e = llm_decontam_find(x->dc, x->text.data, x->text.len, &x->hits, why);
		if (e) {
			*fatal = e;
			return false;
		}
		if (!x->hits.n)
			continue;
		dirty = true;
		note_leaks(x, recno);
		if (x->mode == MODE_TAG) {
			e = flag_hits(x, name);
		} else if (x->mode == MODE_CUT && !*drop) {
			struct llm_buf kept;
			llm_buf_init(&kept, 0);
			size_t pieces, kept_cp;
			e = llm_decontam_cut(x->text.data, x->text.len, &x->hits, x->window,
					     x->min_piece, "\n\n", &kept, &pieces, &kept_cp);
			if (!e && (pieces > x->max_pieces || kept_cp == 0)) {
				*drop = true;
			} else if (!e) {
				llm_buf_clear(&x->vals[ne]);
				e = llm_buf_json_string(&x->vals[ne], kept.data ? kept.data : "",
							kept.len);
				x->edits[ne] = (struct llm_edit){name, x->vals[ne].data};
				ne++;
				changed = true;
			}
			llm_buf_free(&kept);
		}
		if (e) {
			*fatal = e;
			return false;
		}
	}
	if (dirty) {
		x->contaminated++;
		if (x->mode == MODE_DROP)
			*drop = true;
		if (x->mode == MODE_TAG) {
			struct llm_buf *v = &x->vals[x->text_fields.n];
			llm_buf_clear(v);
			if ((*fatal = merged_flags(flags, &x->flags, v)))
				return false;
			x->edits[ne++] = (struct llm_edit){x->flags_field, v->data};
		}
		if (*drop)
			x->dropped_dirty++;
		else if (changed)
			x->cut++;
	}
	*nedits = *drop ? 0 : ne;
	return true;
}

static int cmp_leak(const void *a, const void *b)
{
	const struct eval_rec *const *x = a, *const *y = b;
	if ((*x)->touched != (*y)->touched)
		return (*x)->touched > (*y)->touched ? -1 : 1;
	return *x < *y ? -1 : *x > *y;
}

static json_t *leak_report(const struct decon *x, size_t *nleaked)
{
	const struct eval_rec **order = malloc((x->nevals + 1) * sizeof *order);
	json_t *arr = json_array();
	size_t n = 0;
	for (size_t i = 0; order && i < x->nevals; i++)
		if (x->evals[i].touched)
			order[n++] = &x->evals[i];
	if (order)
		qsort(order, n, sizeof *order, cmp_leak);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr,
				      json_pack("{s:s,s:s,s:I,s:I}", "id", order[i]->id, "file",
						order[i]->file ? order[i]->file : "", "line",
						(json_int_t)order[i]->line, "training_records",
						(json_int_t)order[i]->touched));
	free(order);
	*nleaked = n;
	return arr;
}

static int run_decontaminate(struct llm_cli *c)
{
	struct decon x = {.c = c};
	if (!llm_args_given(&c->args, "eval"))
		return llm_cli_usage(c, "--eval FILE is required (the evaluation set to protect)");
	x.ngram = (unsigned)llm_args_int(&c->args, "ngram");
	const char *mode = llm_args_str(&c->args, "mode");
	x.mode = !strcmp(mode, "tag") ? MODE_TAG : !strcmp(mode, "cut") ? MODE_CUT : MODE_DROP;
	x.window = (size_t)llm_args_int(&c->args, "window");
	x.min_piece = (size_t)llm_args_int(&c->args, "min-piece");
	x.max_pieces = (size_t)llm_args_int(&c->args, "max-pieces");
	x.flags_field = llm_args_str(&c->args, "flags-field");
	int st = 0;
	struct llm_diag d;
	llm_buf_init(&x.text, 0);
	llm_buf_init(&x.flags, 0);
	if (!fields_parse(&c->args, "eval-field", &x.eval_fields) ||
	    !fields_parse(&c->args, "text-field", &x.text_fields)) {
		llm_cli_error(c, "out of memory");
		st = LLM_EXIT_IO;
		goto out;
	}
	if (!x.eval_fields.n || !x.text_fields.n) {
		st = llm_cli_usage(c, "--eval-field and --text-field need a field name");
		goto out;
	}
	x.vals = calloc(x.text_fields.n + 1, sizeof *x.vals);
	x.edits = calloc(x.text_fields.n + 1, sizeof *x.edits);
	if (!x.vals || !x.edits) {
		llm_cli_error(c, "out of memory");
		st = LLM_EXIT_IO;
		goto out;
	}
	for (size_t i = 0; i <= x.text_fields.n; i++)
		llm_buf_init(&x.vals[i], 0);
	if (llm_decontam_new(&x.dc, x.ngram, &d)) {
		st = llm_cli_fail(c, &d);
		goto out;
	}
	if ((st = load_evals(&x)))
		goto out;

	struct llm_cli_in in;
	if ((st = llm_cli_in_open(c, &in, true)))
		goto out;
	struct llm_record *rec;
	uint64_t written = 0, recno = 0;
	int got;
	while ((got = llm_cli_in_next(c, &in, &rec)) > 0) {
		struct llm_diag why;
		enum llm_err fatal = LLM_OK;
		bool drop;
		size_t ne;
		if (!check_record(&x, rec, ++recno, &drop, &ne, &why, &fatal)) {
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
		if (drop)
			continue;
		if (!llm_cli_emit(c, rec, x.edits, ne)) {
			in.status = LLM_EXIT_IO;
			got = -1;
			break;
		}
		written++;
	}
	st = got < 0 ? in.status : 0;
	if (!st) {
		size_t nleaked;
		json_t *leaked = leak_report(&x, &nleaked);
		if (!c->quiet)
			fprintf(
			    stderr,
			    "%s: decontaminate: %llu records, %llu contaminated (%s: %llu dropped, "
			    "%llu cut); %zu of %zu eval records leaked\n",
			    c->tool->name, (unsigned long long)(in.records + in.bad),
			    (unsigned long long)x.contaminated, mode,
			    (unsigned long long)x.dropped_dirty, (unsigned long long)x.cut, nleaked,
			    x.nevals);
		const char *report = llm_args_str(&c->args, "report");
		if (report) {
			json_t *j = llm_cli_in_report(&in);
			json_object_set_new(j, "written",
					    json_integer((json_int_t)(written + in.kept)));
			json_object_set_new(
			    j, "dropped", json_integer((json_int_t)(in.dropped + x.dropped_dirty)));
			json_object_set_new(j, "dropped_contaminated",
					    json_integer((json_int_t)x.dropped_dirty));
			json_object_set_new(j, "contaminated",
					    json_integer((json_int_t)x.contaminated));
			json_object_set_new(j, "cut", json_integer((json_int_t)x.cut));
			json_object_set_new(j, "mode", json_string(mode));
			json_object_set_new(j, "ngram", json_integer(x.ngram));
			json_object_set_new(j, "eval",
					    json_pack("{s:I,s:I,s:I,s:I}", "records",
						      (json_int_t)x.nevals, "texts",
						      (json_int_t)x.eval_texts, "ngrams",
						      (json_int_t)llm_decontam_size(x.dc),
						      "too_short", (json_int_t)x.eval_short));
			json_object_set_new(j, "leaked_eval_records",
					    json_integer((json_int_t)nleaked));
			json_object_set(j, "leaked", leaked);
			if (llm_cli_write_json(c, report, j, &d))
				st = llm_cli_fail(c, &d);
			json_decref(j);
		}
		json_decref(leaked);
	}
	llm_cli_in_close(&in);
out:
	for (size_t i = 0; x.vals && i <= x.text_fields.n; i++)
		llm_buf_free(&x.vals[i]);
	free(x.vals);
	free(x.edits);
	for (size_t i = 0; i < x.nevals; i++) {
		free(x.evals[i].id);
		free(x.evals[i].file);
	}
	free(x.evals);
	llm_buf_free(&x.text);
	llm_buf_free(&x.flags);
	llm_decontam_hits_free(&x.hits);
	llm_decontam_free(x.dc);
	fields_free(&x.eval_fields);
	fields_free(&x.text_fields);
	return st;
}

static const struct llm_opt decontaminate_opts[] = {
    {"eval", 'e', LLM_OPT_STRING, "FILE",
     "an evaluation set (JSONL) to protect; repeat for several", .repeat = true},
    {"eval-field", 0, LLM_OPT_STRING, "LIST",
     "the evaluation fields whose text counts (strings, arrays of strings, or messages)",
     "text,prompt,reference", .repeat = true},
    {"eval-id-field", 0, LLM_OPT_STRING, "FIELD",
     "the evaluation records' id, for the report (FILE:LINE when absent)", "id"},
    {"text-field", 'f', LLM_OPT_STRING, "LIST", "the training fields to check (strings)", "text",
     .repeat = true},
    {"ngram", 'n', LLM_OPT_INT, "N", "the n-gram length, in lowercased words", "13", .min = 1,
     .max = 1000},
    {"mode", 'm', LLM_OPT_CHOICE, "MODE",
     "drop contaminated records, tag them in flags, or cut the matches out (GPT-3)", "drop",
     "drop|tag|cut"},
    {"window", 0, LLM_OPT_INT, "CHARS", "under --mode cut: characters removed on each side", "200",
     .min = 0, .max = 1e9},
    {"min-piece", 0, LLM_OPT_INT, "CHARS", "under --mode cut: shorter pieces are discarded", "200",
     .min = 1, .max = 1e9},
    {"max-pieces", 0, LLM_OPT_INT, "N",
     "under --mode cut: a text split into more pieces is dropped", "10", .min = 1, .max = 1e9},
    {"flags-field", 0, LLM_OPT_STRING, "FIELD", "the array that --mode tag appends to", "flags"},
    {"report", 0, LLM_OPT_STRING, "FILE", "write the counts and the leaked eval records as JSON"},
    {0},
};

const struct llm_verb llm_prep_verb_decontaminate = {
    "decontaminate",
    "remove training text that overlaps evaluation sets (13-grams)",
    "--eval FILE [OPTIONS] [FILE...]",
    "Drops (or tags, or cuts) every training record that shares an n-gram of lowercased words\n"
    "with a record of the --eval files, and reports which eval records leaked.  Fails when\n"
    "the eval files give no n-gram at all, rather than silently checking nothing.",
    {decontaminate_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base},
    run_decontaminate,
};
