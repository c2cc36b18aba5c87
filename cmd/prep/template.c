/* llm-prep template: turn records into model inputs with a chat format or a prompt template. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "text/template.h"
#include "prep/verbs.h"

struct tmpl {
	enum { MODE_FORMAT, MODE_JINJA, MODE_PROMPT } mode;
	enum llm_chat_format format;
	struct llm_chat_template *chat;
	struct llm_prompt_template *prompt;
	const char *source; /* the file or format name, for messages */
	bool mask, gen;
	const char *messages_field, *prompt_field, *completion_field, *text_field, *spans_field;
	uint64_t max;
};

/* A decoded string field, or NULL when absent or not a string (*present tells which). */
static char *string_field(const struct llm_record *rec, const char *name, bool *present)
{
	const struct llm_json_member *m = llm_json_get(&rec->fields, name);
	*present = m != NULL;
	if (!m || m->type != LLM_JSON_STRING)
		return NULL;
	struct llm_buf b;
	llm_buf_init(&b, 0);
	if (llm_json_string_decode(m->val, m->val_len, &b)) {
		llm_buf_free(&b);
		return NULL;
	}
	return b.data ? b.data : strdup("");
}

static enum llm_err render_chat(const struct tmpl *t, json_t *msgs, bool gen, struct llm_buf *out,
				struct llm_spans *spans, struct llm_diag *d)
{
	if (t->mode == MODE_FORMAT)
		return llm_chat_render(t->format, msgs, gen, out, spans, d);
	return llm_chat_template_render(t->chat, msgs, gen, out, spans, d);
}

/* Build [{"role":"user","content":prompt}(,{"role":"assistant","content":completion})]. */
static json_t *pair_messages(const char *prompt, const char *completion)
{
	json_t *a = json_pack("[{s:s,s:s}]", "role", "user", "content", prompt);
	if (a && completion &&
	    json_array_append_new(
		a, json_pack("{s:s,s:s}", "role", "assistant", "content", completion))) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/* Render one record into text (and spans under --mask).  A problem with the record fills why
 * (FILE:LINE of the record) and returns its code. */
static enum llm_err render_record(const struct tmpl *t, const struct llm_record *rec,
				  struct llm_buf *text, struct llm_spans *spans,
				  struct llm_diag *why)
{
	struct llm_diag d = {0};
	enum llm_err e = LLM_OK;
	struct llm_spans *sp = t->mask ? spans : NULL;
	if (t->mode == MODE_PROMPT) {
		e = llm_prompt_template_render(t->prompt, &rec->fields, text, &d);
		if (e)
			return llm_diag_set(why, e, rec->file, rec->line, "%s (%s:%ld)", d.msg,
					    d.file, d.line);
		if (!t->mask)
			return LLM_OK;
		const struct llm_json_member *m = llm_json_get(&rec->fields, t->completion_field);
		if (!m)
			return llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
					    "missing field \"%s\" for --mask", t->completion_field);
		size_t start = text->len;
		e = m->type == LLM_JSON_STRING ? llm_json_string_decode(m->val, m->val_len, text)
					       : llm_buf_append(text, m->val, m->val_len);
		if (!e && text->len > start)
			e = llm_spans_add(spans, start, text->len);
		if (e)
			return llm_diag_set(why, e, rec->file, rec->line, "the text is too big");
		return LLM_OK;
	}
	const struct llm_json_member *m = llm_json_get(&rec->fields, t->messages_field);
	json_t *msgs = NULL;
	bool gen = t->gen;
	if (m) {
		if (m->type != LLM_JSON_ARRAY)
			return llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
					    "field \"%s\" is %s, not an array of messages",
					    t->messages_field, llm_json_type_phrase(m->type));
		msgs = json_loadb(m->val, m->val_len, 0, NULL);
	} else {
		bool has_prompt, has_completion;
		char *prompt = string_field(rec, t->prompt_field, &has_prompt);
		char *completion =
		    t->mask ? string_field(rec, t->completion_field, &has_completion) : NULL;
		if (t->mode == MODE_FORMAT && t->format == LLM_CHAT_ALPACA && !has_prompt) {
			bool has_instr, has_input, has_output;
			char *instr = string_field(rec, "instruction", &has_instr);
			char *input = string_field(rec, "input", &has_input);
			char *output = t->mask ? string_field(rec, "output", &has_output) : NULL;
			if (instr && (!t->mask || output))
				e = llm_alpaca_render(instr, input, output, text, sp);
			else
				e = llm_diag_set(
				    why, LLM_ERR_MISSING, rec->file, rec->line,
				    "no \"%s\" array, \"%s\" string or \"%s\" string%s",
				    t->messages_field, t->prompt_field,
				    instr ? "output" : "instruction", instr ? " for --mask" : "");
			if (e == LLM_ERR_TOO_BIG)
				llm_diag_set(why, e, rec->file, rec->line, "the text is too big");
			free(instr);
			free(input);
			free(output);
			free(prompt);
			return e;
		}
		if (!prompt || (t->mask && !completion)) {
			bool bad_prompt = !prompt;
			free(prompt);
			free(completion);
			if (bad_prompt && has_prompt)
				return llm_diag_set(why, LLM_ERR_TYPE, rec->file, rec->line,
						    "field \"%s\" is not a string",
						    t->prompt_field);
			if (bad_prompt)
				return llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
						    "no \"%s\" field (nor \"%s\")",
						    t->messages_field, t->prompt_field);
			return llm_diag_set(why, has_completion ? LLM_ERR_TYPE : LLM_ERR_MISSING,
					    rec->file, rec->line, "field \"%s\" %s for --mask",
					    t->completion_field,
					    has_completion ? "is not a string" : "is missing");
		}
		/* A training pair is a one-turn conversation; as a prompt alone it ends where
		 * the answer starts. */
		msgs = pair_messages(prompt, completion);
		gen = !t->mask;
		free(prompt);
		free(completion);
	}
	if (!msgs)
		return llm_diag_set(why, LLM_ERR_NOMEM, rec->file, rec->line, "out of memory");
	e = render_chat(t, msgs, gen, text, sp, &d);
	json_decref(msgs);
	if (!e)
		return LLM_OK;
	if (e == LLM_ERR_CHECK && t->mode == MODE_JINJA && d.line)
		return llm_diag_set(why, e, rec->file, rec->line,
				    "the chat template refused it: %s (%s:%ld)", d.msg, d.file,
				    d.line);
	if (d.file[0])
		return llm_diag_set(why, e, rec->file, rec->line, "%s (%s:%ld)", d.msg, d.file,
				    d.line);
	return llm_diag_set(why, e, rec->file, rec->line, "%s", d.msg);
}

static enum llm_err spans_json(const struct llm_spans *s, struct llm_buf *b)
{
	enum llm_err e = llm_buf_putc(b, '[');
	for (size_t i = 0; i < s->n && !e; i++)
		e = llm_buf_printf(b, "%s[%zu,%zu]", i ? "," : "", s->v[i].start, s->v[i].end);
	return e ? e : llm_buf_putc(b, ']');
}

/* "NAME=VALUE": VALUE as JSON when it parses, else as a string. */
static int set_vars(struct llm_cli *c, struct tmpl *t)
{
	size_t n;
	char *const *vals = llm_args_strs(&c->args, "var", &n);
	for (size_t i = 0; i < n; i++) {
		if (!vals[i])
			continue;
		const char *eq = strchr(vals[i], '=');
		if (!eq || eq == vals[i])
			return llm_cli_usage(c, "--var: expected NAME=VALUE, not '%s'", vals[i]);
		char *name = strndup(vals[i], (size_t)(eq - vals[i]));
		json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
		if (!v)
			v = json_string(eq + 1);
		enum llm_err e =
		    name && v ? llm_chat_template_set(t->chat, name, v) : LLM_ERR_NOMEM;
		free(name);
		if (e) {
			llm_cli_error(c, "out of memory");
			return LLM_EXIT_IO;
		}
	}
	static const char *const toks[] = {"bos-token", "eos-token"};
	for (size_t i = 0; i < 2; i++) {
		const char *v = llm_args_str(&c->args, toks[i]);
		if (v &&
		    llm_chat_template_set(t->chat, i ? "eos_token" : "bos_token", json_string(v))) {
			llm_cli_error(c, "out of memory");
			return LLM_EXIT_IO;
		}
	}
	return 0;
}

static int run_template(struct llm_cli *c)
{
	struct tmpl t = {0};
	const char *fmt = llm_args_str(&c->args, "format");
	const char *chat = llm_args_str(&c->args, "chat-template");
	const char *prompt = llm_args_str(&c->args, "template");
	if (!!fmt + !!chat + !!prompt != 1)
		return llm_cli_usage(c,
				     "give exactly one of --format, --chat-template or --template");
	t.mask = llm_args_flag(&c->args, "mask");
	t.gen = llm_args_flag(&c->args, "generation-prompt");
	t.messages_field = llm_args_str(&c->args, "messages-field");
	t.prompt_field = llm_args_str(&c->args, "prompt-field");
	t.completion_field = llm_args_str(&c->args, "completion-field");
	t.text_field = llm_args_str(&c->args, "text-field");
	t.spans_field = llm_args_str(&c->args, "spans-field");
	t.max = llm_args_size(&c->args, "max-record-bytes");
	if ((llm_args_given(&c->args, "var") || llm_args_given(&c->args, "bos-token") ||
	     llm_args_given(&c->args, "eos-token")) &&
	    !chat)
		return llm_cli_usage(c,
				     "--var, --bos-token and --eos-token go with --chat-template");
	struct llm_diag d;
	int st = 0;
	if (fmt) {
		t.mode = MODE_FORMAT;
		llm_chat_format_parse(fmt, &t.format);
		t.source = fmt;
	} else if (chat) {
		t.mode = MODE_JINJA;
		t.source = chat;
		if (llm_chat_template_load(chat, &t.chat, &d))
			return llm_cli_fail(c, &d);
		if ((st = set_vars(c, &t)))
			goto out;
	} else {
		t.mode = MODE_PROMPT;
		t.source = prompt;
		if (llm_prompt_template_load(prompt, &t.prompt, &d))
			return llm_cli_fail(c, &d);
	}

	struct llm_cli_in in;
	if ((st = llm_cli_in_open(c, &in, true)))
		goto out;
	struct llm_record *rec;
	struct llm_buf text, val, spans_text;
	llm_buf_init(&text, t.max);
	llm_buf_init(&val, 0);
	llm_buf_init(&spans_text, 0);
	struct llm_spans spans = {0};
	uint64_t written = 0;
	int r;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		llm_buf_clear(&text);
		llm_buf_clear(&val);
		llm_buf_clear(&spans_text);
		spans.n = 0;
		struct llm_diag why;
		enum llm_err e = render_record(&t, rec, &text, &spans, &why);
		if (e == LLM_ERR_NOMEM) {
			in.status = llm_cli_fail(c, &why);
			r = -1;
			break;
		}
		if (e) {
			if (!llm_cli_in_reject(c, &in, rec, &why)) {
				r = -1;
				break;
			}
			continue;
		}
		e = llm_buf_json_string(&val, text.data ? text.data : "", text.len);
		if (!e && t.mask)
			e = spans_json(&spans, &spans_text);
		if (e) {
			llm_diag_set(&d, e, rec->file, rec->line, "out of memory");
			in.status = llm_cli_fail(c, &d);
			r = -1;
			break;
		}
		struct llm_edit edits[2] = {
		    {t.mask ? t.text_field : t.prompt_field, val.data},
		    {t.spans_field, spans_text.data},
		};
		if (!llm_cli_emit(c, rec, edits, t.mask ? 2 : 1)) {
			in.status = LLM_EXIT_IO;
			r = -1;
			break;
		}
		written++;
	}
	st = r < 0 ? in.status : 0;
	llm_buf_free(&text);
	llm_buf_free(&val);
	llm_buf_free(&spans_text);
	llm_spans_free(&spans);
	if (!st) {
		if (!c->quiet)
			fprintf(stderr, "%s: template: %llu records written, %llu dropped\n",
				c->tool->name, (unsigned long long)(written + in.kept),
				(unsigned long long)in.dropped);
		const char *report = llm_args_str(&c->args, "report");
		json_t *j = llm_cli_in_report(&in);
		if (j) {
			json_object_set_new(j, "written",
					    json_integer((json_int_t)(written + in.kept)));
			json_object_set_new(j, "dropped", json_integer((json_int_t)in.dropped));
			json_object_set_new(j, "template", json_string(t.source));
		}
		if (report && j && llm_cli_write_json(c, report, j, &d))
			st = llm_cli_fail(c, &d);
		json_decref(j);
	}
	llm_cli_in_close(&in);
out:
	llm_chat_template_free(t.chat);
	llm_prompt_template_free(t.prompt);
	return st;
}

static const struct llm_opt template_opts[] = {
    {"format", 'f', LLM_OPT_CHOICE, "NAME", "render with a built-in chat format", NULL,
     "chatml|llama3|llama2|alpaca"},
    {"chat-template", 'c', LLM_OPT_STRING, "FILE",
     "render with the Jinja chat_template of a tokenizer_config.json (or a .jinja file)"},
    {"template", 't', LLM_OPT_STRING, "FILE", "render a {{field}} prompt template"},
    {"generation-prompt", 'g', LLM_OPT_FLAG, NULL,
     "end a conversation with the header of an assistant turn (add_generation_prompt)"},
    {"mask", 'm', LLM_OPT_FLAG, NULL,
     "write the whole text with the answers, and the byte spans of assistant output"},
    {"messages-field", 0, LLM_OPT_STRING, "FIELD", "the conversation to render", "messages"},
    {"prompt-field", 0, LLM_OPT_STRING, "FIELD",
     "where the rendered prompt goes (and a training pair's prompt is read)", "prompt"},
    {"completion-field", 0, LLM_OPT_STRING, "FIELD", "a training pair's answer", "completion"},
    {"text-field", 0, LLM_OPT_STRING, "FIELD", "where the whole text goes under --mask", "text"},
    {"spans-field", 0, LLM_OPT_STRING, "FIELD", "where the spans go under --mask", "loss_spans"},
    {"var", 0, LLM_OPT_STRING, "NAME=VALUE",
     "set a chat template variable (VALUE is JSON, or else a string)", .repeat = true},
    {"bos-token", 0, LLM_OPT_STRING, "TEXT", "the chat template's bos_token"},
    {"eos-token", 0, LLM_OPT_STRING, "TEXT", "the chat template's eos_token"},
    {"report", 0, LLM_OPT_STRING, "FILE", "write the counts as JSON to FILE"},
    {0},
};

const struct llm_verb llm_prep_verb_template = {
    "template",
    "render records as model inputs: chat formats, HF chat templates, prompts",
    "(--format NAME | --chat-template FILE | --template FILE) [OPTIONS] [FILE...]",
    "Renders each record's messages (or prompt and completion) with a built-in chat format\n"
    "or a Hugging Face chat template, or its fields with a {{field}} prompt template, and\n"
    "writes the text into a field; every other field passes through unchanged.  With --mask\n"
    "the text includes the answers and the byte spans of what the model should learn.",
    {template_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base},
    run_template,
};
