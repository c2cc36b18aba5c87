/* llm-eval: one record in, its scores out.  The fields a metric reads are taken from the
 * record's scanned members (the output and references decoded, arrays walked without a
 * tree), reduced to one row of sufficient statistics kept for the summary, and the record is
 * written back byte for byte with the scores object (and the judge's verdict) spliced in. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "data/recid.h"
#include "eval/eval.h"

/* --- interned strings ------------------------------------------------------------------------ */

/* A slot holds the string's index + 1 in its low half and the high half of its hash above,
 * so that a probe compares strings only when the hashes agree, without reading the entries. */
static inline uint64_t slot_of(size_t index, uint64_t hash)
{
	return (hash & 0xFFFFFFFF00000000ULL) | (uint64_t)(index + 1);
}

static enum llm_err strtab_grow(struct strtab *t)
{
	size_t ns = t->nslots ? t->nslots * 2 : 64;
	uint64_t *slot = calloc(ns, sizeof *slot);
	if (!slot)
		return LLM_ERR_NOMEM;
	for (size_t i = 0; i < t->n; i++) {
		size_t h = (size_t)t->hash[i] & (ns - 1);
		while (slot[h])
			h = (h + 1) & (ns - 1);
		slot[h] = slot_of(i, t->hash[i]);
	}
	free(t->slot);
	t->slot = slot;
	t->nslots = ns;
	return LLM_OK;
}

/* The slot of s, or the empty slot where it would go. */
static size_t strtab_probe(const struct strtab *t, const char *s, size_t len, uint64_t hash)
{
	size_t h = (size_t)hash & (t->nslots - 1);
	for (uint64_t x; (x = t->slot[h]); h = (h + 1) & (t->nslots - 1)) {
		size_t i = (uint32_t)x - 1;
		if ((x ^ hash) >> 32 == 0 && t->len[i] == len && !memcmp(t->s[i], s, len))
			break;
	}
	return h;
}

long strtab_find(const struct strtab *t, const char *s)
{
	if (!t->nslots)
		return -1;
	size_t len = strlen(s);
	size_t h = strtab_probe(t, s, len, llm_hash64(s, len, 0));
	return t->slot[h] ? (long)(uint32_t)t->slot[h] - 1 : -1;
}

/* Room for len + 1 bytes in the current block, or a new one. */
static char *strtab_room(struct strtab *t, size_t len)
{
	if (len + 1 > t->block_left) {
		size_t size = len + 1 > 65536 ? len + 1 : 65536;
		char **v = realloc(t->blocks, (t->nblocks + 1) * sizeof *v);
		if (!v)
			return NULL;
		t->blocks = v;
		if (!(t->blocks[t->nblocks] = malloc(size)))
			return NULL;
		t->block_at = t->blocks[t->nblocks++];
		t->block_left = size;
	}
	char *p = t->block_at;
	t->block_at += len + 1;
	t->block_left -= len + 1;
	return p;
}

uint64_t strtab_prefetch(const struct strtab *t, const char *s, size_t len)
{
	uint64_t hash = llm_hash64(s, len, 0);
	if (t->nslots)
		__builtin_prefetch(&t->slot[(size_t)hash & (t->nslots - 1)]);
	return hash;
}

long strtab_intern(struct strtab *t, const char *s, size_t len, bool *added)
{
	return strtab_intern_hashed(t, s, len, llm_hash64(s, len, 0), added);
}

long strtab_intern_hashed(struct strtab *t, const char *s, size_t len, uint64_t hash, bool *added)
{
	*added = false;
	if ((t->n + 1) * 2 > t->nslots && strtab_grow(t))
		return -1;
	size_t h = strtab_probe(t, s, len, hash);
	if (t->slot[h])
		return (long)(uint32_t)t->slot[h] - 1;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **v = realloc(t->s, cap * sizeof *v);
		if (!v)
			return -1;
		t->s = v;
		uint32_t *u = realloc(t->uses, cap * sizeof *u);
		if (!u)
			return -1;
		t->uses = u;
		uint64_t *hs = realloc(t->hash, cap * sizeof *hs);
		if (!hs)
			return -1;
		t->hash = hs;
		size_t *ls = realloc(t->len, cap * sizeof *ls);
		if (!ls)
			return -1;
		t->len = ls;
		t->cap = cap;
	}
	char *copy = strtab_room(t, len);
	if (!copy)
		return -1;
	memcpy(copy, s, len);
	copy[len] = '\0';
	t->s[t->n] = copy;
	t->uses[t->n] = 1;
	t->hash[t->n] = hash;
	t->len[t->n] = len;
	t->slot[h] = slot_of(t->n, hash);
	*added = true;
	return (long)t->n++;
}

void strtab_free(struct strtab *t)
{
	for (size_t i = 0; i < t->nblocks; i++)
		free(t->blocks[i]);
	free(t->blocks);
	free(t->s);
	free(t->uses);
	free(t->hash);
	free(t->len);
	free(t->slot);
	memset(t, 0, sizeof *t);
}

/* --- reading fields -------------------------------------------------------------------------- */

static enum llm_err strlist_add(struct strlist *l, const char *raw, size_t raw_len)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		size_t *off = realloc(l->off, cap * sizeof *off);
		if (off)
			l->off = off;
		size_t *len = off ? realloc(l->len, cap * sizeof *len) : NULL;
		if (len)
			l->len = len;
		const char **ptr = len ? realloc(l->ptr, cap * sizeof *ptr) : NULL;
		if (!ptr)
			return LLM_ERR_NOMEM;
		l->ptr = ptr;
		l->cap = cap;
	}
	size_t at = l->text.len;
	enum llm_err e = llm_json_string_decode(raw, raw_len, &l->text);
	if (e)
		return e;
	l->off[l->n] = at;
	l->len[l->n] = l->text.len - at;
	l->n++;
	return LLM_OK;
}

/* Point ptr at the strings, once the buffer has stopped moving. */
static void strlist_fix(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		l->ptr[i] = l->text.data + l->off[i];
}

static void strlist_clear(struct strlist *l)
{
	llm_buf_clear(&l->text);
	l->n = 0;
}

void strlist_free(struct strlist *l)
{
	llm_buf_free(&l->text);
	free(l->off);
	free(l->len);
	free(l->ptr);
}

static size_t skip_ws(const char *s, size_t i, size_t n)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

static const char *value_phrase(char c)
{
	switch (c) {
	case '"':
		return "a string";
	case '{':
		return "an object";
	case '[':
		return "an array";
	case 't':
	case 'f':
		return "a boolean";
	case 'n':
		return "null";
	default:
		return "a number";
	}
}

/* Add the strings of a JSON array (scanned valid already) to l; an element that is not a
 * string is LLM_ERR_TYPE naming it. */
static enum llm_err array_strings(const struct llm_record *rec, const char *field,
				  const struct llm_json_member *m, struct strlist *l,
				  struct llm_diag *why)
{
	const char *s = m->val;
	size_t n = m->val_len, i = skip_ws(s, 1, n);
	for (size_t k = 0; i < n && s[i] != ']'; k++) {
		if (s[i] != '"')
			return llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
					    "field \"%s\": element %zu is %s, not a string", field,
					    k, value_phrase(s[i]));
		size_t start = i++;
		while (i < n && s[i] != '"')
			i += s[i] == '\\' ? 2 : 1;
		i++;
		enum llm_err e = strlist_add(l, s + start, i - start);
		if (e)
			return llm_diag_set(why, e, rec->file, rec->line, "field \"%s\": too long",
					    field);
		i = skip_ws(s, i, n);
		if (i < n && s[i] == ',')
			i = skip_ws(s, i + 1, n);
	}
	return LLM_OK;
}

/* A string, or an array of strings, into l. */
static enum llm_err string_or_array(const struct llm_record *rec, const char *field,
				    const struct llm_json_member *m, struct strlist *l,
				    struct llm_diag *why)
{
	if (m->type == LLM_JSON_STRING) {
		enum llm_err e = strlist_add(l, m->val, m->val_len);
		return e ? llm_diag_set(why, e, rec->file, rec->line, "field \"%s\": too long",
					field)
			 : LLM_OK;
	}
	if (m->type == LLM_JSON_ARRAY)
		return array_strings(rec, field, m, l, why);
	return llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
			    "field \"%s\" is %s, not a string or an array of strings", field,
			    llm_json_type_phrase(m->type));
}

static json_t *member_tree(const struct llm_json_member *m)
{
	return json_loadb(m->val, m->val_len, JSON_DECODE_ANY, NULL);
}

/* pass@k's samples: verdicts (results), a count (passed, with n or the outputs array), or the
 * outputs themselves to check. */
static enum llm_err samples(struct eval *ev, const struct llm_record *rec,
			    struct llm_metric_input *mi, struct strlist *outs, struct llm_diag *why)
{
	const struct llm_json_member *res = llm_json_get(&rec->fields, ev->results_field);
	const struct llm_json_member *passed = llm_json_get(&rec->fields, ev->passed_field);
	const struct llm_json_member *outputs = llm_json_get(&rec->fields, ev->outputs_field);
	const char *outputs_field = ev->outputs_field;
	if (!outputs) {
		/* llm-gen --n N writes its N answers as an array in the output field. */
		const struct llm_json_member *o = llm_json_get(&rec->fields, ev->output_field);
		if (o && o->type == LLM_JSON_ARRAY) {
			outputs = o;
			outputs_field = ev->output_field;
		}
	}
	if (res) {
		json_t *v = member_tree(res);
		if (!v)
			return llm_diag_set(why, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		enum llm_err e = LLM_OK;
		if (!json_is_array(v))
			e = llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
					 "field \"%s\" is %s, not an array of booleans",
					 ev->results_field, llm_json_type_phrase(res->type));
		mi->n_samples = 0;
		mi->n_passed = 0;
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
		{
			if (e)
				break;
			if (json_is_boolean(x))
				mi->n_passed += json_is_true(x);
			else if (json_is_number(x) &&
				 (json_number_value(x) == 0 || json_number_value(x) == 1))
				mi->n_passed += json_number_value(x) == 1;
			else
				e = llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
						 "field \"%s\": element %zu is not a boolean",
						 ev->results_field, i);
			mi->n_samples++;
		}
		json_decref(v);
		return e;
	}
	if (outputs && outputs->type != LLM_JSON_ARRAY)
		return llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
				    "field \"%s\" is %s, not an array of strings", outputs_field,
				    llm_json_type_phrase(outputs->type));
	if (passed) {
		if (passed->type != LLM_JSON_NUMBER || !passed->is_integer)
			return llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
					    "field \"%s\" is %s, not an integer", ev->passed_field,
					    llm_json_type_phrase(passed->type));
		mi->n_passed = strtol(passed->val, NULL, 10);
		const struct llm_json_member *n = llm_json_get(&rec->fields, ev->samples_field);
		if (n) {
			if (n->type != LLM_JSON_NUMBER || !n->is_integer)
				return llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
						    "field \"%s\" is %s, not an integer",
						    ev->samples_field,
						    llm_json_type_phrase(n->type));
			mi->n_samples = strtol(n->val, NULL, 10);
		} else if (outputs) {
			json_t *v = member_tree(outputs);
			mi->n_samples = v ? (long)json_array_size(v) : 0;
			json_decref(v);
		} else {
			return llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
					    "field \"%s\" needs \"%s\" or \"%s\" beside it",
					    ev->passed_field, ev->samples_field, ev->outputs_field);
		}
		if (mi->n_passed < 0 || mi->n_passed > mi->n_samples)
			return llm_diag_set(why, LLM_ERR_RANGE, rec->file, rec->line,
					    "%ld samples passed of %ld", mi->n_passed,
					    mi->n_samples);
		return LLM_OK;
	}
	if (outputs) {
		enum llm_err e = array_strings(rec, outputs_field, outputs, outs, why);
		if (e)
			return e;
		strlist_fix(outs);
		mi->samples = outs->ptr;
		mi->sample_lens = outs->len;
		mi->n_samples = (long)outs->n;
		mi->n_passed = -1;
		return LLM_OK;
	}
	return llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
			    "pass@k needs field \"%s\", \"%s\" or \"%s\"", ev->results_field,
			    ev->passed_field, ev->outputs_field);
}

/* The log-probabilities llm-gen keeps: an array of numbers, an array of {"logprob"}, the chat
 * API's {"content": [{"logprob"}]} or the completions API's {"token_logprobs": [...]}
 * (where a null, the first token's, is skipped). */
static bool sum_logprobs(json_t *v, double *nll, double *tokens)
{
	if (json_is_object(v)) {
		json_t *x = json_object_get(v, "content");
		if (!x)
			x = json_object_get(v, "token_logprobs");
		return x && json_is_array(x) && sum_logprobs(x, nll, tokens);
	}
	if (!json_is_array(v))
		return false;
	size_t i;
	json_t *x;
	json_array_foreach(v, i, x)
	{
		if (json_is_object(x))
			x = json_object_get(x, "logprob");
		if (json_is_null(x))
			continue;
		if (!json_is_number(x))
			return false;
		*nll -= json_number_value(x);
		*tokens += 1;
	}
	return true;
}

static enum llm_err logprobs(struct eval *ev, const struct llm_record *rec,
			     struct llm_metric_input *mi, struct llm_diag *why)
{
	const struct llm_json_member *m = llm_json_get(&rec->fields, ev->logprobs_field);
	if (!m)
		return llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
				    "missing field \"%s\" (perplexity without --model needs the "
				    "output's log-probabilities)",
				    ev->logprobs_field);
	json_t *v = member_tree(m);
	if (!v)
		return llm_diag_set(why, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	mi->nll = 0;
	mi->tokens = 0;
	bool ok = sum_logprobs(v, &mi->nll, &mi->tokens);
	json_decref(v);
	if (!ok)
		return llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
				    "field \"%s\" is not a list of token log-probabilities",
				    ev->logprobs_field);
	/* The bytes the tokens spell: the output's. */
	enum llm_err e = llm_record_string(rec, ev->output_field, &ev->scratch, why);
	if (e)
		return e;
	mi->bytes = (double)ev->scratch.len;
	return LLM_OK;
}

/* The record's id (data/recid.h) into ev->idbuf: the id field, else a digest of the fields no
 * tool writes, which stays the same from one system's outputs to another's.  Its slot in the
 * table of ids starts coming from memory (a table of every id is larger than the caches), for
 * record_id once the record is scored; the hash goes to *hash. */
static int record_id_text(struct eval *ev, const struct llm_record *rec, uint64_t *hash)
{
	struct llm_buf *b = &ev->idbuf;
	llm_buf_clear(b);
	bool derived;
	if (llm_record_id(&rec->fields, ev->id_field, ev->exclude, ev->nexclude, b, &derived)) {
		/* An id of another type (an object, an array): its JSON text. */
		const struct llm_json_member *m = llm_json_get(&rec->fields, ev->id_field);
		llm_buf_clear(b);
		if (!m || llm_buf_append(b, m->val, m->val_len))
			return -1;
	}
	*hash = strtab_prefetch(&ev->ids, b->data, b->len);
	return 0;
}

/* The index of the id in ev->idbuf.  A repeated id gets "#2", "#3", ... so that every record
 * pairs with one baseline record. */
static long record_id(struct eval *ev, uint64_t hash)
{
	struct llm_buf *b = &ev->idbuf;
	bool added;
	long id = strtab_intern_hashed(&ev->ids, b->data, b->len, hash, &added);
	if (id < 0 || added)
		return id;
	/* The k-th record with this id becomes "ID#k"; the count kept with the id makes that one
	 * step, and only an id that happens to be spelled "ID#k" already costs another. */
	long first = id;
	size_t base = b->len;
	while (id >= 0 && !added) {
		uint32_t k = ++ev->ids.uses[first];
		b->len = base;
		if (llm_buf_printf(b, "#%u", (unsigned)k))
			return -1;
		id = strtab_intern(&ev->ids, b->data, b->len, &added);
	}
	return id;
}

/* The slice value of a --by field: a string's text, another value's JSON, "(none)". */
static long slice_of(struct eval *ev, struct slicing *s, const struct llm_record *rec)
{
	const struct llm_json_member *m = llm_json_get(&rec->fields, s->field);
	struct llm_buf *b = &ev->scratch;
	llm_buf_clear(b);
	enum llm_err e;
	if (!m)
		e = llm_buf_puts(b, "(none)");
	else if (m->type == LLM_JSON_STRING)
		e = llm_json_string_decode(m->val, m->val_len, b);
	else
		e = llm_buf_append(b, m->val, m->val_len);
	bool added;
	return e ? -1 : strtab_intern(&s->values, b->data, b->len, &added);
}

static enum llm_err put_number(struct llm_buf *b, double v)
{
	if (!isfinite(v))
		return llm_buf_puts(b, "null");
	if (v == 0)
		v = 0; /* no "-0" */
	return llm_buf_put_g(b, v, 10);
}

/* The scores object: the record's own one (kept, ours replacing same-named members), else a
 * new one. */
static enum llm_err render_scores(struct eval *ev, const struct llm_record *rec, const double *row,
				  struct llm_buf *out)
{
	const struct llm_json_member *old = llm_json_get(&rec->fields, ev->scores_field);
	llm_buf_clear(out);
	if (old && old->type == LLM_JSON_OBJECT) {
		json_t *o = member_tree(old);
		if (!o)
			return LLM_ERR_NOMEM;
		for (size_t i = 0; i < ev->nm; i++) {
			const struct llm_metric *m = llm_metric_set_get(ev->set, i);
			double v = llm_metric_sentence(m, row + m->offset);
			json_t *x = !isfinite(v)		      ? json_null()
				    : v == floor(v) && fabs(v) < 1e15 ? json_integer((json_int_t)v)
								      : json_real(v);
			json_object_set_new(o, m->name, x);
		}
		char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
		json_decref(o);
		if (!s)
			return LLM_ERR_NOMEM;
		enum llm_err e = llm_buf_puts(out, s);
		free(s);
		return e;
	}
	enum llm_err e = llm_buf_putc(out, '{');
	for (size_t i = 0; i < ev->nm && !e; i++) {
		const struct llm_metric *m = llm_metric_set_get(ev->set, i);
		if (i)
			e = llm_buf_putc(out, ',');
		if (!e)
			e = llm_buf_json_string(out, m->name, strlen(m->name));
		if (!e)
			e = llm_buf_putc(out, ':');
		if (!e)
			e = put_number(out, llm_metric_sentence(m, row + m->offset));
	}
	return e ? e : llm_buf_putc(out, '}');
}

static enum llm_err json_field(struct llm_buf *b, const char *key, const char *s, bool comma)
{
	enum llm_err e = comma ? llm_buf_putc(b, ',') : LLM_OK;
	if (!e)
		e = llm_buf_json_string(b, key, strlen(key));
	if (!e)
		e = llm_buf_putc(b, ':');
	if (!e)
		e = s ? llm_buf_json_string(b, s, strlen(s)) : llm_buf_puts(b, "null");
	return e;
}

static enum llm_err render_judge(const struct model_extra *x, struct llm_buf *b)
{
	llm_buf_clear(b);
	enum llm_err e = llm_buf_putc(b, '{');
	if (!e)
		e = json_field(b, "prompt", x->judge_prompt, false);
	if (!e)
		e = json_field(b, "answer", x->judge_answer, true);
	if (!e)
		e = llm_buf_puts(b, ",\"score\":");
	if (!e)
		e = put_number(b, x->judge_score);
	if (!e)
		e = llm_buf_puts(b, x->judge_pass ? ",\"pass\":true" : ",\"pass\":false");
	if (!e)
		e = json_field(b, "reason", x->judge_reason, true);
	return e ? e : llm_buf_putc(b, '}');
}

static bool grow_rows(struct eval *ev)
{
	if (ev->n < ev->cap)
		return true;
	size_t cap = ev->cap ? ev->cap * 2 : 1024;
	if (cap > SIZE_MAX / sizeof(double) / (ev->row_len + 1))
		return false;
	double *rows = realloc(ev->rows, cap * (ev->row_len ? ev->row_len : 1) * sizeof *rows);
	if (!rows)
		return false;
	ev->rows = rows;
	long *id = realloc(ev->id_of, cap * sizeof *id);
	if (!id)
		return false;
	ev->id_of = id;
	for (size_t i = 0; i < ev->nby; i++) {
		uint32_t *of = realloc(ev->by[i].of, cap * sizeof *of);
		if (!of)
			return false;
		ev->by[i].of = of;
	}
	ev->cap = cap;
	return true;
}

/* Everything the metrics need from one record into mi. */
static enum llm_err gather(struct eval *ev, const struct llm_record *rec,
			   const struct model_extra *x, struct llm_metric_input *mi,
			   struct strlist *refs, struct strlist *outs, struct llm_diag *why)
{
	enum llm_err e;
	mi->n_passed = -1;
	if (ev->needs & LLM_METRIC_NEEDS_OUTPUT) {
		if ((e = llm_record_string(rec, ev->output_field, &ev->hyp, why)))
			return e;
		mi->hyp = ev->hyp.data;
		mi->hyp_len = ev->hyp.len;
	}
	/* References are read when a metric needs them, or may check pass@k's samples with them;
	 * otherwise a reference of any shape is none of this run's business. */
	bool want_refs = (ev->needs & LLM_METRIC_NEEDS_REFS) ||
			 ((ev->needs & LLM_METRIC_NEEDS_SAMPLES) &&
			  (ev->mopts.pass_check == LLM_PASS_EXACT ||
			   ev->mopts.pass_check == LLM_PASS_CONTAINS));
	const struct llm_json_member *r =
		want_refs ? llm_json_get(&rec->fields, ev->reference_field) : NULL;
	if (!r && (ev->needs & LLM_METRIC_NEEDS_REFS))
		return llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
				    "missing field \"%s\"", ev->reference_field);
	if (r) {
		if ((e = string_or_array(rec, ev->reference_field, r, refs, why)))
			return e;
		if (!refs->n && (ev->needs & LLM_METRIC_NEEDS_REFS))
			return llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
					    "field \"%s\" is an empty array", ev->reference_field);
		strlist_fix(refs);
		mi->refs = refs->ptr;
		mi->ref_lens = refs->len;
		mi->n_refs = refs->n;
	}
	if ((ev->needs & LLM_METRIC_NEEDS_SAMPLES) && (e = samples(ev, rec, mi, outs, why)))
		return e;
	if (ev->needs & LLM_METRIC_NEEDS_LOGPROBS) {
		if (x && x->ppl) {
			mi->nll = x->nll;
			mi->tokens = x->tokens;
			mi->bytes = x->bytes;
		} else if ((e = logprobs(ev, rec, mi, why))) {
			return e;
		}
	}
	if (x && x->judged) {
		mi->judge_score = x->judge_score;
		mi->judge_pass = x->judge_pass;
	}
	return LLM_OK;
}

int eval_record(struct eval *ev, struct llm_cli_in *in, struct llm_record *rec,
		const struct model_extra *x)
{
	struct llm_cli *c = ev->c;
	struct llm_metric_input mi = {0};
	/* The lists keep their buffers from record to record. */
	struct strlist *refs = &ev->refs, *outs = &ev->outs;
	strlist_clear(refs);
	strlist_clear(outs);
	struct llm_diag why;
	double *row = ev->row_tmp;
	uint64_t id_hash;
	if (record_id_text(ev, rec, &id_hash) < 0)
		goto nomem;
	enum llm_err e = gather(ev, rec, x, &mi, refs, outs, &why);
	if (!e && (e = llm_metric_set_stats(ev->set, &mi, row, &why)) && !why.file[0]) {
		/* The metrics do not know where the record came from. */
		snprintf(why.file, sizeof why.file, "%s", rec->file);
		why.line = rec->line;
	}
	/* sacreBLEU's nrefs counts the references that are not empty. */
	size_t nrefs = 0;
	for (size_t i = 0; i < refs->n; i++)
		nrefs += refs->len[i] > 0;
	if (e == LLM_ERR_NOMEM) {
		llm_cli_error(c, "out of memory");
		in->status = LLM_EXIT_IO;
		return -1;
	}
	if (e)
		return llm_cli_in_reject(c, in, rec, &why) ? 0 : -1;

	if (!grow_rows(ev))
		goto nomem;
	long id = record_id(ev, id_hash);
	if (id < 0)
		goto nomem;
	for (size_t i = 0; i < ev->nby; i++) {
		long v = slice_of(ev, &ev->by[i], rec);
		if (v < 0)
			goto nomem;
		ev->by[i].of[ev->n] = (uint32_t)v;
	}
	memcpy(ev->rows + ev->n * ev->row_len, row, ev->row_len * sizeof *row);
	ev->id_of[ev->n] = id;
	ev->n++;
	if (nrefs && (!ev->min_refs || nrefs < ev->min_refs))
		ev->min_refs = nrefs;
	if (nrefs > ev->max_refs)
		ev->max_refs = nrefs;

	struct llm_buf judge;
	llm_buf_init(&judge, 0);
	struct llm_edit edits[2] = {{ev->scores_field, NULL}};
	size_t nedits = 1;
	if (render_scores(ev, rec, row, &ev->line)) {
		llm_buf_free(&judge);
		goto nomem;
	}
	edits[0].value = ev->line.data;
	if (x && x->judged) {
		if (render_judge(x, &judge)) {
			llm_buf_free(&judge);
			goto nomem;
		}
		edits[nedits++] = (struct llm_edit){ev->judge_field, judge.data};
	}
	bool ok = llm_cli_emit(c, rec, edits, nedits);
	llm_buf_free(&judge);
	if (!ok) {
		in->status = LLM_EXIT_IO;
		return -1;
	}
	return 1;
nomem:
	llm_cli_error(c, "out of memory");
	in->status = LLM_EXIT_IO;
	return -1;
}
