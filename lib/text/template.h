/* Prompt templates: turning records into the text a model reads.
 *
 * Three kinds:
 *   - the built-in chat formats ChatML, Llama 3, Llama 2 and Alpaca, written out in C so that
 *     they need no template file and know exactly where assistant text starts and ends;
 *   - a Hugging Face chat template (the Jinja "chat_template" of tokenizer_config.json, or a
 *     bare .jinja file), rendered as transformers renders it (text/jinja.h), with bos_token,
 *     eos_token and the other special tokens taken from the config;
 *   - a "{{field}}" prompt template for records that are not conversations.
 *
 * Loss spans.  Where a caller asks for them, the chat renderers also return the byte ranges of
 * the rendered text that are assistant output to train on: half-open [start, end) offsets
 * into the UTF-8 text, in order, not overlapping.  A span covers an assistant message's
 * content as rendered and the end-of-turn marker the model must learn to produce
 * (<|im_end|>, <|eot_id|>, " </s>" for Llama 2; nothing for Alpaca, whose response simply
 * ends).  For a Jinja template with {% generation %} blocks the spans are those blocks; for
 * one without, see llm_chat_template_render. */
#ifndef LLM_TEXT_TEMPLATE_H
#define LLM_TEXT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "text/jinja.h"

/* A growing list of spans. */
struct llm_spans {
	struct llm_jinja_span *v;
	size_t n, cap;
};
enum llm_err llm_spans_add(struct llm_spans *s, size_t start, size_t end);
void llm_spans_free(struct llm_spans *s);

/* ---- built-in chat formats --------------------------------------------------------------- */

enum llm_chat_format {
	LLM_CHAT_CHATML, /* <|im_start|>role\ncontent<|im_end|>\n ... */
	LLM_CHAT_LLAMA3, /* <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\n... */
	LLM_CHAT_LLAMA2, /* <s>[INST] <<SYS>>\n...\n<</SYS>>\n\nuser [/INST] answer </s> */
	LLM_CHAT_ALPACA, /* Below is an instruction ... ### Instruction: ... ### Response:\n */
};

/* "chatml", "llama3", "llama2" or "alpaca"; false for anything else. */
bool llm_chat_format_parse(const char *name, enum llm_chat_format *out);

/* Render messages (a JSON array of {"role": string, "content": string}) in format f, appending
 * to out; with generation_prompt, end with the header of an assistant turn.  Each format
 * renders what its reference template renders (the chat_template shipped with Qwen2 without
 * its default system message for ChatML, Meta-Llama-3-8B-Instruct, Llama-2-chat, and Stanford
 * Alpaca's prompt).  spans, when not NULL, receives the assistant spans.  Errors name the
 * message at fault: LLM_ERR_TYPE for a malformed message, LLM_ERR_CHECK for a conversation
 * the format cannot express (Llama 2 needs user/assistant turns alternating; Alpaca is one
 * instruction and at most one response). */
enum llm_err llm_chat_render(enum llm_chat_format f, json_t *messages, bool generation_prompt,
			     struct llm_buf *out, struct llm_spans *spans, struct llm_diag *diag);

/* Alpaca from the fields of the Alpaca dataset: instruction, optional input, optional output
 * (the response, marked as a span). */
enum llm_err llm_alpaca_render(const char *instruction, const char *input, const char *output,
			       struct llm_buf *out, struct llm_spans *spans);

/* ---- Hugging Face chat templates ------------------------------------------------------ */

struct llm_chat_template;

/* Load a tokenizer_config.json (its "chat_template": a string, or a list of {"name",
 * "template"} of which "default" is used; and its special tokens, strings or {"content": ...}
 * objects), or, when the file is not a JSON object, a bare Jinja template.  A syntax error in
 * the template is LLM_ERR_USAGE naming the file and the line in the template. */
enum llm_err llm_chat_template_load(const char *path, struct llm_chat_template **out,
				    struct llm_diag *diag);
/* The same from a template text; name is used in errors. */
enum llm_err llm_chat_template_from_string(const char *src, size_t n, const char *name,
					   struct llm_chat_template **out, struct llm_diag *diag);
void llm_chat_template_free(struct llm_chat_template *t);

/* Set a template variable (bos_token, eos_token, date_string, enable_thinking, ...); value is
 * taken over (its reference stolen). */
enum llm_err llm_chat_template_set(struct llm_chat_template *t, const char *name, json_t *value);
/* The value of a string variable, or "" (for bos_token and eos_token). */
const char *llm_chat_template_token(const struct llm_chat_template *t, const char *name);

/* Render messages as transformers' apply_chat_template(messages, tokenize=False,
 * add_generation_prompt=generation_prompt) does: the variables are the special tokens,
 * those set with llm_chat_template_set, messages, add_generation_prompt, and tools and
 * documents as none.
 *
 * With spans: a template with {% generation %} blocks gives them exactly.  Otherwise the
 * assistant messages are found by rendering a second time with each assistant content
 * replaced by a unique marker: marker k's position, corrected by the difference in length of
 * the contents before it, is where message k's content starts in the real rendering; it must
 * be there verbatim or stripped of surrounding white space (what "| trim" and .strip() do),
 * followed by eos_token when the template writes one.  When a template transforms the content
 * in other ways the span cannot be known and the render fails with LLM_ERR_CHECK, rather than
 * guess. */
enum llm_err llm_chat_template_render(const struct llm_chat_template *t, json_t *messages,
				      bool generation_prompt, struct llm_buf *out,
				      struct llm_spans *spans, struct llm_diag *diag);

/* ---- "{{field}}" prompt templates -------------------------------------------------------
 *
 * Text with placeholders {{name}} (spaces inside the braces allowed: {{ name }}), where name
 * is a top-level field of the record.  A string field is inserted as its decoded text; any
 * other value (number, true, false, null, array, object) as its JSON text, exactly as it is
 * in the record.  "{{{{" writes "{{" and "}}}}" writes "}}".  One newline at the end of the
 * template is dropped, so a file that ends "Answer:\n" gives a prompt that ends "Answer:". */

struct llm_prompt_template;

enum llm_err llm_prompt_template_parse(const char *src, size_t n, const char *name,
				       struct llm_prompt_template **out, struct llm_diag *diag);
enum llm_err llm_prompt_template_load(const char *path, struct llm_prompt_template **out,
				      struct llm_diag *diag);
void llm_prompt_template_free(struct llm_prompt_template *t);

/* Render with the fields of one record.  A field that is absent is LLM_ERR_MISSING with diag's
 * file and line those of the placeholder in the template, and the message naming the field. */
enum llm_err llm_prompt_template_render(const struct llm_prompt_template *t,
					const struct llm_json_members *fields, struct llm_buf *out,
					struct llm_diag *diag);

#endif
