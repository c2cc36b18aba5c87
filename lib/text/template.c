/* Prompt templates: built-in chat formats, Hugging Face chat templates, {{field}} prompts. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/template.h"

enum llm_err llm_spans_add(struct llm_spans *s, size_t start, size_t end)
{
	if (s->n && s->v[s->n - 1].end == start) {
		s->v[s->n - 1].end = end;
		return LLM_OK;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct llm_jinja_span *v = realloc(s->v, cap * sizeof *v);
		if (!v)
			return LLM_ERR_NOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (struct llm_jinja_span){start, end};
	return LLM_OK;
}

void llm_spans_free(struct llm_spans *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

/* ---- built-in formats ------------------------------------------------------------------ */

bool llm_chat_format_parse(const char *name, enum llm_chat_format *out)
{
	static const char *const names[] = {"chatml", "llama3", "llama2", "alpaca"};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (!strcmp(name, names[i])) {
			*out = (enum llm_chat_format)i;
			return true;
		}
	return false;
}

struct msg {
	const char *role;
	const char *content;
	size_t len;
};

/* Python's str.strip() on ASCII and the common Unicode spaces, as "| trim" and .strip() in the
 * reference templates. */
static bool ws_at(const char *s, size_t n, size_t i, size_t *len)
{
	unsigned char c = (unsigned char)s[i];
	*len = 1;
	if ((c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20))
		return true;
	if (c == 0xc2 && i + 1 < n &&
	    ((unsigned char)s[i + 1] == 0x85 || (unsigned char)s[i + 1] == 0xa0)) {
		*len = 2;
		return true;
	}
	if (c == 0xe3 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
	    (unsigned char)s[i + 2] == 0x80) {
		*len = 3;
		return true;
	}
	if (c == 0xe2 && i + 2 < n) {
		unsigned char b = (unsigned char)s[i + 1], d = (unsigned char)s[i + 2];
		if ((b == 0x80 && (d <= 0x8a || d == 0xa8 || d == 0xa9 || d == 0xaf)) ||
		    (b == 0x81 && d == 0x9f)) {
			*len = 3;
			return true;
		}
	}
	if (c == 0xe1 && i + 2 < n && (unsigned char)s[i + 1] == 0x9a &&
	    (unsigned char)s[i + 2] == 0x80) {
		*len = 3;
		return true;
	}
	return false;
}

static void trim(const char **p, size_t *n)
{
	size_t l;
	while (*n && ws_at(*p, *n, 0, &l)) {
		*p += l;
		*n -= l;
	}
	for (;;) {
		size_t i = *n;
		if (!i)
			break;
		/* Step back to the start of the last code point. */
		do
			i--;
		while (i > 0 && ((unsigned char)(*p)[i] & 0xc0) == 0x80);
		if (!ws_at(*p, *n, i, &l) || i + l != *n)
			break;
		*n = i;
	}
}

static enum llm_err get_messages(json_t *messages, struct msg **out, size_t *n, struct llm_diag *d)
{
	*out = NULL;
	*n = 0;
	if (!json_is_array(messages))
		return llm_diag_set(d, LLM_ERR_TYPE, NULL, 0, "messages is not an array");
	size_t k = json_array_size(messages);
	struct msg *m = calloc(k ? k : 1, sizeof *m);
	if (!m)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	for (size_t i = 0; i < k; i++) {
		json_t *o = json_array_get(messages, i);
		json_t *role = json_object_get(o, "role"), *content = json_object_get(o, "content");
		if (!json_is_object(o) || !json_is_string(role)) {
			free(m);
			return llm_diag_set(d, LLM_ERR_TYPE, NULL, 0,
					    "message %zu has no \"role\" string", i + 1);
		}
		if (!json_is_string(content)) {
			free(m);
			return llm_diag_set(d, LLM_ERR_TYPE, NULL, 0,
					    "message %zu: \"content\" is %s, not a string", i + 1,
					    content ? "not text" : "missing");
		}
		m[i] = (struct msg){json_string_value(role), json_string_value(content),
				    json_string_length(content)};
	}
	*out = m;
	*n = k;
	return LLM_OK;
}

static enum llm_err put(struct llm_buf *b, const char *s)
{
	return llm_buf_puts(b, s);
}

/* Append the assistant text p[0..n) and the end-of-turn marker eot, marking both. */
static enum llm_err put_marked(struct llm_buf *b, size_t base, const char *p, size_t n,
			       const char *eot, struct llm_spans *spans)
{
	size_t start = b->len - base;
	enum llm_err e = llm_buf_append(b, p, n);
	if (!e)
		e = put(b, eot);
	if (!e && spans)
		e = llm_spans_add(spans, start, b->len - base);
	return e;
}

#define ALPACA_INTRO_INPUT                                                                         \
	"Below is an instruction that describes a task, paired with an input that provides "       \
	"further context. Write a response that appropriately completes the request.\n\n"
#define ALPACA_INTRO                                                                               \
	"Below is an instruction that describes a task. Write a response that appropriately "      \
	"completes the request.\n\n"

static enum llm_err alpaca(const char *intro, const char *instr, size_t ilen, const char *input,
			   size_t inlen, const char *output, size_t olen, bool has_output,
			   struct llm_buf *out, size_t base, struct llm_spans *spans)
{
	enum llm_err e = put(out, intro		   ? intro
				  : input && inlen ? ALPACA_INTRO_INPUT
						   : ALPACA_INTRO);
	if (!e)
		e = put(out, "### Instruction:\n");
	if (!e)
		e = llm_buf_append(out, instr, ilen);
	if (!e && input && inlen) {
		e = put(out, "\n\n### Input:\n");
		if (!e)
			e = llm_buf_append(out, input, inlen);
	}
	if (!e)
		e = put(out, "\n\n### Response:\n");
	if (!e && has_output)
		e = put_marked(out, base, output, olen, "", spans);
	return e;
}

enum llm_err llm_alpaca_render(const char *instruction, const char *input, const char *output,
			       struct llm_buf *out, struct llm_spans *spans)
{
	enum llm_err e =
	    alpaca(NULL, instruction, strlen(instruction), input, input ? strlen(input) : 0, output,
		   output ? strlen(output) : 0, output != NULL, out, out->len, spans);
	return e;
}

enum llm_err llm_chat_render(enum llm_chat_format f, json_t *messages, bool generation_prompt,
			     struct llm_buf *out, struct llm_spans *spans, struct llm_diag *d)
{
	struct msg *m;
	size_t n;
	enum llm_err e = get_messages(messages, &m, &n, d);
	if (e)
		return e;
	size_t base = out->len;
	switch (f) {
	case LLM_CHAT_CHATML:
		for (size_t i = 0; i < n && !e; i++) {
			e = put(out, "<|im_start|>");
			if (!e)
				e = put(out, m[i].role);
			if (!e)
				e = put(out, "\n");
			if (e)
				break;
			if (!strcmp(m[i].role, "assistant"))
				e = put_marked(out, base, m[i].content, m[i].len, "<|im_end|>",
					       spans);
			else if (!(e = llm_buf_append(out, m[i].content, m[i].len)))
				e = put(out, "<|im_end|>");
			if (!e)
				e = put(out, "\n");
		}
		if (!e && generation_prompt)
			e = put(out, "<|im_start|>assistant\n");
		break;
	case LLM_CHAT_LLAMA3:
		e = put(out, "<|begin_of_text|>");
		for (size_t i = 0; i < n && !e; i++) {
			const char *p = m[i].content;
			size_t len = m[i].len;
			trim(&p, &len);
			e = put(out, "<|start_header_id|>");
			if (!e)
				e = put(out, m[i].role);
			if (!e)
				e = put(out, "<|end_header_id|>\n\n");
			if (e)
				break;
			if (!strcmp(m[i].role, "assistant"))
				e = put_marked(out, base, p, len, "<|eot_id|>", spans);
			else if (!(e = llm_buf_append(out, p, len)))
				e = put(out, "<|eot_id|>");
		}
		if (!e && generation_prompt)
			e = put(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
		break;
	case LLM_CHAT_LLAMA2: {
		/* Llama-2-chat: an optional system message goes inside the first [INST]; then
		 * user and assistant strictly alternate.  No generation prompt: a prompt ends with
		 * " [/INST]", which is where the answer starts. */
		size_t first = n && !strcmp(m[0].role, "system") ? 1 : 0;
		for (size_t i = first; i < n && !e; i++) {
			bool user = (i - first) % 2 == 0;
			if (strcmp(m[i].role, user ? "user" : "assistant")) {
				e = llm_diag_set(
				    d, LLM_ERR_CHECK, NULL, 0,
				    "message %zu: llama2 needs user and assistant turns "
				    "alternating after an optional system message, not \"%s\"",
				    i + 1, m[i].role);
				break;
			}
			struct llm_buf c;
			llm_buf_init(&c, 0);
			if (i == first && first) {
				e = put(&c, "<<SYS>>\n");
				if (!e)
					e = llm_buf_append(&c, m[0].content, m[0].len);
				if (!e)
					e = put(&c, "\n<</SYS>>\n\n");
			}
			if (!e)
				e = llm_buf_append(&c, m[i].content, m[i].len);
			const char *p = c.data ? c.data : "";
			size_t len = c.len;
			trim(&p, &len);
			if (!e && user) {
				e = put(out, "<s>[INST] ");
				if (!e)
					e = llm_buf_append(out, p, len);
				if (!e)
					e = put(out, " [/INST]");
			} else if (!e) {
				e = put(out, " ");
				if (!e)
					e = put_marked(out, base, p, len, " </s>", spans);
			}
			llm_buf_free(&c);
		}
		break;
	}
	case LLM_CHAT_ALPACA: {
		size_t i = 0;
		const char *intro = NULL;
		struct llm_buf ib;
		llm_buf_init(&ib, 0);
		if (n && !strcmp(m[0].role, "system")) {
			/* A system message replaces the standard preamble. */
			e = llm_buf_append(&ib, m[0].content, m[0].len);
			if (!e)
				e = put(&ib, "\n\n");
			intro = ib.data;
			i = 1;
		}
		if (!e && (i >= n || strcmp(m[i].role, "user") || n - i > 2 ||
			   (n - i == 2 && strcmp(m[i + 1].role, "assistant"))))
			e = llm_diag_set(
			    d, LLM_ERR_CHECK, NULL, 0,
			    "alpaca is one instruction: an optional system message, one "
			    "user message and at most one assistant message");
		if (!e)
			e = alpaca(intro, m[i].content, m[i].len, NULL, 0,
				   n - i == 2 ? m[i + 1].content : NULL,
				   n - i == 2 ? m[i + 1].len : 0, n - i == 2, out, base, spans);
		llm_buf_free(&ib);
		break;
	}
	}
	free(m);
	if (e && e != LLM_ERR_CHECK && e != LLM_ERR_TYPE)
		llm_diag_set(d, e, NULL, 0,
			     e == LLM_ERR_TOO_BIG ? "the rendered text is too big"
						  : "out of memory");
	return e;
}

/* ---- Hugging Face chat templates ---------------------------------------------------- */

struct llm_chat_template {
	struct llm_jinja *jinja;
	json_t *vars; /* special tokens and user variables */
};

enum llm_err llm_chat_template_from_string(const char *src, size_t n, const char *name,
					   struct llm_chat_template **out, struct llm_diag *d)
{
	*out = NULL;
	struct llm_chat_template *t = calloc(1, sizeof *t);
	if (!t || !(t->vars = json_object())) {
		free(t);
		return llm_diag_set(d, LLM_ERR_NOMEM, name, 0, "out of memory");
	}
	enum llm_err e = llm_jinja_parse(src, n, name, &t->jinja, d);
	if (e) {
		llm_chat_template_free(t);
		return e;
	}
	*out = t;
	return LLM_OK;
}

void llm_chat_template_free(struct llm_chat_template *t)
{
	if (!t)
		return;
	llm_jinja_free(t->jinja);
	json_decref(t->vars);
	free(t);
}

enum llm_err llm_chat_template_set(struct llm_chat_template *t, const char *name, json_t *value)
{
	return json_object_set_new(t->vars, name, value) ? LLM_ERR_NOMEM : LLM_OK;
}

const char *llm_chat_template_token(const struct llm_chat_template *t, const char *name)
{
	const char *s = json_string_value(json_object_get(t->vars, name));
	return s ? s : "";
}

static enum llm_err read_file(const char *path, char **out, size_t *n, struct llm_diag *d)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "cannot open: %s", strerror(errno));
	struct llm_buf b;
	llm_buf_init(&b, (size_t)64 << 20);
	char chunk[65536];
	size_t k;
	enum llm_err e = LLM_OK;
	while (!e && (k = fread(chunk, 1, sizeof chunk, f)) > 0)
		e = llm_buf_append(&b, chunk, k);
	bool bad = ferror(f);
	int err = errno;
	fclose(f);
	if (bad || e) {
		llm_buf_free(&b);
		if (bad && (err == EISDIR))
			return llm_diag_set(d, LLM_ERR_IS_DIR, path, 0, "is a directory");
		return llm_diag_set(d, bad ? LLM_ERR_IO : e, path, 0, "cannot read: %s",
				    bad ? strerror(err) : "too big (over 64 MiB)");
	}
	if (llm_utf8_valid_prefix(b.data ? b.data : "", b.len) != b.len) {
		llm_buf_free(&b);
		return llm_diag_set(d, LLM_ERR_UTF8, path, 0, "not valid UTF-8");
	}
	*out = b.data ? b.data : strdup("");
	*n = b.len;
	return *out ? LLM_OK : llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
}

enum llm_err llm_chat_template_load(const char *path, struct llm_chat_template **out,
				    struct llm_diag *d)
{
	*out = NULL;
	char *text;
	size_t n;
	enum llm_err e = read_file(path, &text, &n, d);
	if (e)
		return e;
	json_error_t jerr;
	json_t *cfg = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(cfg)) {
		/* Not a config: a bare template (chat_template.jinja). */
		json_decref(cfg);
		e = llm_chat_template_from_string(text, n, path, out, d);
		free(text);
		return e;
	}
	free(text);
	json_t *tpl = json_object_get(cfg, "chat_template");
	if (json_is_array(tpl)) {
		/* Several named templates: the default one is what apply_chat_template uses. */
		json_t *pick = NULL, *item;
		size_t i;
		json_array_foreach(tpl, i, item)
		{
			const char *nm = json_string_value(json_object_get(item, "name"));
			if (nm && !strcmp(nm, "default"))
				pick = json_object_get(item, "template");
		}
		tpl = pick;
	}
	if (!json_is_string(tpl)) {
		json_decref(cfg);
		return llm_diag_set(d, LLM_ERR_MISSING, path, 0,
				    "no \"chat_template\" string in this tokenizer config");
	}
	e = llm_chat_template_from_string(json_string_value(tpl), json_string_length(tpl), path,
					  out, d);
	static const char *const tokens[] = {"bos_token", "eos_token", "unk_token", "pad_token",
					     "sep_token", "cls_token", "mask_token"};
	for (size_t i = 0; !e && i < sizeof tokens / sizeof *tokens; i++) {
		json_t *v = json_object_get(cfg, tokens[i]);
		if (json_is_object(v))
			v = json_object_get(v, "content");
		if (json_is_string(v))
			e = llm_chat_template_set(*out, tokens[i], json_incref(v));
	}
	json_decref(cfg);
	if (e && *out) {
		llm_chat_template_free(*out);
		*out = NULL;
		if (e == LLM_ERR_NOMEM)
			llm_diag_set(d, e, path, 0, "out of memory");
	}
	return e;
}

static enum llm_err render_once(const struct llm_chat_template *t, json_t *messages, bool gen,
				struct llm_buf *out, struct llm_jinja_span **gspans,
				size_t *ngspans, struct llm_diag *d)
{
	json_t *vars = json_copy(t->vars);
	if (!vars || json_object_set(vars, "messages", messages) ||
	    json_object_set_new(vars, "add_generation_prompt", json_boolean(gen)) ||
	    json_object_set_new(vars, "tools", json_null()) ||
	    json_object_set_new(vars, "documents", json_null())) {
		json_decref(vars);
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	enum llm_err e = llm_jinja_render(t->jinja, vars, out, gspans, ngspans, d);
	json_decref(vars);
	return e;
}

#define MARKER_FMT "@@LLMOPS_ASSISTANT_%zu@@"

/* Find the assistant spans of a template without {% generation %}: see template.h. */
static enum llm_err locate_spans(const struct llm_chat_template *t, json_t *messages, bool gen,
				 const char *text, size_t tlen, struct llm_spans *spans,
				 struct llm_diag *d)
{
	json_t *marked = json_deep_copy(messages);
	if (!marked)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	size_t n = json_array_size(marked), k = 0;
	enum llm_err e = LLM_OK;
	for (size_t i = 0; i < n && !e; i++) {
		json_t *m = json_array_get(marked, i);
		const char *role = json_string_value(json_object_get(m, "role"));
		if (!role || strcmp(role, "assistant"))
			continue;
		if (!json_is_string(json_object_get(m, "content")))
			e = llm_diag_set(
			    d, LLM_ERR_TYPE, NULL, 0,
			    "message %zu: an assistant \"content\" must be a string to "
			    "be masked",
			    i + 1);
		char mk[64];
		snprintf(mk, sizeof mk, MARKER_FMT, k++);
		if (!e && json_object_set_new(m, "content", json_string(mk)))
			e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	struct llm_buf mb;
	llm_buf_init(&mb, 0);
	if (!e)
		e = render_once(t, marked, gen, &mb, NULL, NULL, d);
	const char *eos = llm_chat_template_token(t, "eos_token");
	size_t eos_len = strlen(eos);
	/* shift: how much longer the real text is than the marked text before this point. */
	long long shift = 0;
	size_t after = 0, k2 = 0, mfrom = 0;
	for (size_t i = 0; i < n && !e; i++) {
		json_t *m = json_array_get(messages, i);
		const char *role = json_string_value(json_object_get(m, "role"));
		if (!role || strcmp(role, "assistant"))
			continue;
		char mk[64];
		int mlen = snprintf(mk, sizeof mk, MARKER_FMT, k2++);
		const char *at =
		    mb.data ? memmem(mb.data + mfrom, mb.len - mfrom, mk, (size_t)mlen) : NULL;
		const char *c = json_string_value(json_object_get(m, "content"));
		size_t clen = json_string_length(json_object_get(m, "content"));
		if (!at) {
			/* The template dropped this message (some drop old reasoning): nothing to
			 * train on there. */
			continue;
		}
		long long pos = (long long)(at - mb.data) + shift;
		const char *tc = c;
		size_t tcl = clen;
		trim(&tc, &tcl);
		size_t len = 0;
		bool found = false;
		if (pos >= (long long)after && (size_t)pos + clen <= tlen &&
		    !memcmp(text + pos, c, clen)) {
			len = clen;
			found = true;
		} else if (pos >= (long long)after && (size_t)pos + tcl <= tlen &&
			   !memcmp(text + pos, tc, tcl)) {
			len = tcl;
			found = true;
		}
		if (!found) {
			e = llm_diag_set(
			    d, LLM_ERR_CHECK, NULL, 0,
			    "cannot locate assistant message %zu in the rendered text "
			    "(the template changes it); add {%% generation %%} blocks to "
			    "the template to mark assistant text",
			    i + 1);
			break;
		}
		size_t end = (size_t)pos + len;
		if (eos_len && end + eos_len <= tlen && !memcmp(text + end, eos, eos_len))
			end += eos_len;
		e = llm_spans_add(spans, (size_t)pos, end);
		if (e)
			llm_diag_set(d, e, NULL, 0, "out of memory");
		after = end;
		shift += (long long)len - mlen;
		mfrom = (size_t)(at - mb.data) + (size_t)mlen;
	}
	llm_buf_free(&mb);
	json_decref(marked);
	return e;
}

enum llm_err llm_chat_template_render(const struct llm_chat_template *t, json_t *messages, bool gen,
				      struct llm_buf *out, struct llm_spans *spans,
				      struct llm_diag *d)
{
	if (!json_is_array(messages))
		return llm_diag_set(d, LLM_ERR_TYPE, NULL, 0, "messages is not an array");
	size_t base = out->len;
	struct llm_jinja_span *gs = NULL;
	size_t ngs = 0;
	bool gen_blocks = spans && llm_jinja_has_generation(t->jinja);
	enum llm_err e = render_once(t, messages, gen, out, gen_blocks ? &gs : NULL, &ngs, d);
	if (!e && gen_blocks)
		for (size_t i = 0; i < ngs && !e; i++)
			e = llm_spans_add(spans, gs[i].start, gs[i].end);
	free(gs);
	if (!e && spans && !gen_blocks)
		e = locate_spans(t, messages, gen, out->data + base, out->len - base, spans, d);
	if (e) {
		out->len = base;
		if (out->data)
			out->data[base] = '\0';
	}
	return e;
}

/* ---- {{field}} prompt templates ------------------------------------------------------- */

struct piece {
	bool field;
	const char *p; /* text, or the field name */
	size_t n;
	long line;
};

struct llm_prompt_template {
	char *src;
	char *name;
	struct piece *pieces;
	size_t n;
};

void llm_prompt_template_free(struct llm_prompt_template *t)
{
	if (!t)
		return;
	free(t->src);
	free(t->name);
	free(t->pieces);
	free(t);
}

static bool field_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.' || c == '$' || c == '@' || (unsigned char)c >= 0x80;
}

enum llm_err llm_prompt_template_parse(const char *src, size_t n, const char *name,
				       struct llm_prompt_template **out, struct llm_diag *d)
{
	*out = NULL;
	struct llm_prompt_template *t = calloc(1, sizeof *t);
	if (!t || !(t->src = malloc(n + 1)) || !(t->name = strdup(name)) ||
	    !(t->pieces = calloc(n + 1, sizeof *t->pieces))) {
		llm_prompt_template_free(t);
		return llm_diag_set(d, LLM_ERR_NOMEM, name, 0, "out of memory");
	}
	if (n && src[n - 1] == '\n')
		n--;
	memcpy(t->src, src, n);
	t->src[n] = '\0';
	const char *s = t->src;
	long line = 1;
	/* Text pieces are copied compacted into the source buffer as escapes are undone. */
	size_t w = 0, start = 0;
	long start_line = 1;
	for (size_t i = 0; i < n;) {
		if (s[i] == '{' && i + 3 < n && !memcmp(s + i, "{{{{", 4)) {
			t->src[w++] = '{';
			t->src[w++] = '{';
			i += 4;
			continue;
		}
		if (s[i] == '}' && i + 3 < n && !memcmp(s + i, "}}}}", 4)) {
			t->src[w++] = '}';
			t->src[w++] = '}';
			i += 4;
			continue;
		}
		if (s[i] == '{' && i + 1 < n && s[i + 1] == '{') {
			size_t j = i + 2;
			while (j < n && (s[j] == ' ' || s[j] == '\t'))
				j++;
			size_t f0 = j;
			while (j < n && field_char(s[j]))
				j++;
			size_t f1 = j;
			while (j < n && (s[j] == ' ' || s[j] == '\t'))
				j++;
			if (f1 == f0 || j + 1 >= n || s[j] != '}' || s[j + 1] != '}') {
				llm_prompt_template_free(t);
				return llm_diag_set(
				    d, LLM_ERR_USAGE, name, line,
				    "'{{' must be followed by a field name and '}}' "
				    "(write '{{{{' for a literal '{{')");
			}
			if (w > start)
				t->pieces[t->n++] =
				    (struct piece){false, t->src + start, w - start, start_line};
			/* The name stays where it is in the source: nothing before it was moved
			 * past it, since w <= i. */
			memmove(t->src + w, s + f0, f1 - f0);
			t->pieces[t->n++] = (struct piece){true, t->src + w, f1 - f0, line};
			w += f1 - f0;
			start = w;
			start_line = line;
			i = j + 2;
			continue;
		}
		if (s[i] == '\n')
			line++;
		t->src[w++] = s[i++];
		if (w - 1 == start)
			start_line = line - (s[i - 1] == '\n');
	}
	if (w > start)
		t->pieces[t->n++] = (struct piece){false, t->src + start, w - start, start_line};
	*out = t;
	return LLM_OK;
}

enum llm_err llm_prompt_template_load(const char *path, struct llm_prompt_template **out,
				      struct llm_diag *d)
{
	char *text;
	size_t n;
	enum llm_err e = read_file(path, &text, &n, d);
	if (e)
		return e;
	e = llm_prompt_template_parse(text, n, path, out, d);
	free(text);
	return e;
}

enum llm_err llm_prompt_template_render(const struct llm_prompt_template *t,
					const struct llm_json_members *fields, struct llm_buf *out,
					struct llm_diag *d)
{
	size_t base = out->len;
	enum llm_err e = LLM_OK;
	for (size_t i = 0; i < t->n && !e; i++) {
		const struct piece *p = &t->pieces[i];
		if (!p->field) {
			e = llm_buf_append(out, p->p, p->n);
			continue;
		}
		char name[256];
		snprintf(name, sizeof name, "%.*s", (int)p->n, p->p);
		const struct llm_json_member *m = llm_json_get(fields, name);
		if (!m) {
			out->len = base;
			if (out->data)
				out->data[base] = '\0';
			return llm_diag_set(d, LLM_ERR_MISSING, t->name, p->line,
					    "missing field \"%s\"", name);
		}
		e = m->type == LLM_JSON_STRING ? llm_json_string_decode(m->val, m->val_len, out)
					       : llm_buf_append(out, m->val, m->val_len);
	}
	if (e) {
		out->len = base;
		if (out->data)
			out->data[base] = '\0';
		llm_diag_set(d, e, t->name, 0,
			     e == LLM_ERR_TOO_BIG ? "the prompt is too big" : "out of memory");
	}
	return e;
}
