/* A Jinja interpreter for the subset that chat templates use.
 *
 * Hugging Face tokenizers ship their chat format as a Jinja template (the "chat_template" of
 * tokenizer_config.json) and render it with Python's jinja2 in a sandboxed environment with
 * trim_blocks and lstrip_blocks on, loop controls enabled, a tojson filter that does not
 * escape HTML, and the globals raise_exception() and strftime_now().  This module renders the
 * same templates the same way, byte for byte, so that a model is trained on exactly the text
 * it will see when served:
 *
 *   statements   {% if %}/{% elif %}/{% else %}, {% for x in xs [if cond] %} with {% else %},
 *                loop.index/index0/revindex/revindex0/first/last/length/previtem/nextitem,
 *                {% break %}/{% continue %}, {% set x = e %}, {% set ns.attr = e %},
 *                {% set x %}...{% endset %}, {% macro %} and calls, {% generation %} (the
 *                transformers extension that marks assistant text), comments {# #}
 *   whitespace   {%- -%} {{- -}} {#- -#}, {%+ (no lstrip), trim_blocks, lstrip_blocks, and
 *                one trailing newline of the template dropped, as jinja2 does
 *   expressions  literals (strings, integers, floats, true/false/none, lists, tuples, dicts),
 *                + - * / // % ** ~, == != < <= > >=, in, not in, and, or, not, x if c else y,
 *                attribute and item access, slices [a:b:c], calls with keyword arguments
 *   tests        defined undefined none string number integer float boolean true false
 *                mapping iterable sequence callable equalto eq ne lt le gt ge in odd even
 *                divisibleby sameas lower upper
 *   filters      trim tojson length count lower upper default d join first last string list
 *                items selectattr rejectattr select reject map int float abs capitalize title
 *                replace safe reverse sort unique min max sum round indent wordcount
 *   methods      str: strip lstrip rstrip upper lower title capitalize startswith endswith
 *                split replace find count; dict: items keys values get
 *   globals      raise_exception(msg), namespace(...), range(...), dict(...),
 *                strftime_now(fmt) (from SOURCE_DATE_EPOCH when set, so runs reproduce)
 *
 * Values print as Python prints them (True, None, ['a', 1]); strings are sequences of Unicode
 * code points for length, indexing and slicing.  An undefined name renders as nothing; using
 * it in arithmetic, or reading an attribute of it, is an error.  Errors name the template and
 * the line in it; raise_exception() is reported with the code LLM_ERR_CHECK and its message,
 * so a caller can tell "the template refused this input" from a broken template. */
#ifndef LLM_TEXT_JINJA_H
#define LLM_TEXT_JINJA_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"

struct llm_jinja;

/* A half-open byte range [start, end) of the rendered text. */
struct llm_jinja_span {
	size_t start;
	size_t end;
};

/* Compile src[0..n) (UTF-8).  name is what errors call the template (a file name).  A syntax
 * error returns LLM_ERR_USAGE with diag naming name and the line. */
enum llm_err llm_jinja_parse(const char *src, size_t n, const char *name, struct llm_jinja **out,
			     struct llm_diag *diag);
void llm_jinja_free(struct llm_jinja *t);

/* True when the template marks assistant text with {% generation %} blocks. */
bool llm_jinja_has_generation(const struct llm_jinja *t);

/* Render with the members of the JSON object vars as variables, appending to out (whose
 * ceiling bounds the output).  When spans is not NULL it receives a malloc'd array of the byte
 * ranges of out written inside {% generation %} blocks (adjacent ranges merged), relative to
 * out's length at the call.  Errors: LLM_ERR_CHECK for raise_exception(), LLM_ERR_TYPE for a
 * type error or an undefined value used, LLM_ERR_TOO_BIG past out's ceiling. */
enum llm_err llm_jinja_render(const struct llm_jinja *t, json_t *vars, struct llm_buf *out,
			      struct llm_jinja_span **spans, size_t *nspans, struct llm_diag *diag);

#endif
