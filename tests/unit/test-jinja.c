/* Unit tests for lib/text/jinja: expressions, control flow, whitespace control, filters, tests,
 * methods, macros, {% generation %} spans, and errors with the template's line.  The expected
 * strings are what Python's jinja2 3.1 renders for the same template and variables, configured
 * as transformers configures it (trim_blocks, lstrip_blocks, loop controls, tojson without
 * HTML escaping). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "text/jinja.h"

static const char *vars_json =
    "{\"s\": \"  H\xc3\xa9 llo  \", \"n\": 7, \"f\": 2.5, \"xs\": [1, 2, 3, 4],"
    " \"m\": {\"role\": \"user\", \"content\": \"hi\"},"
    " \"msgs\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": "
    "\"U\"},"
    " {\"role\": \"assistant\", \"content\": \"A\"}], \"t\": true, \"nil\": null}";

/* Render src with vars; returns the diag code, fills out (caller frees). */
static enum llm_err render(const char *src, const char *vars, struct llm_buf *out,
			   struct llm_diag *d)
{
	struct llm_jinja *t;
	llm_buf_init(out, 1 << 20);
	enum llm_err e = llm_jinja_parse(src, strlen(src), "t.jinja", &t, d);
	if (e)
		return e;
	json_t *v = json_loads(vars, 0, NULL);
	assert_non_null(v);
	e = llm_jinja_render(t, v, out, NULL, NULL, d);
	json_decref(v);
	llm_jinja_free(t);
	return e;
}

static const struct {
	const char *src, *want;
} cases[] = {
    {"{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 7 / "
     "2 }}|{{ 2 ** 10 }}",
     "7|9|3|-4|1|2|3.5|1024"},
    {"{{ 'a' ~ 1 ~ none }}|{{ 'a' + 'b' }}|{{ [1] + [2] }}|{{ 'ab' * 3 }}",
     "a1None|ab|[1, 2]|ababab"},
    {"{{ 1 < 2 and 2 <= 2 }}|{{ not t }}|{{ 3 in xs }}|{{ 9 not in xs }}|{{ 'ell' in 'hello' }}|{{ "
     "'role' in m }}",
     "True|False|True|True|True|True"},
    {"{{ nil or 'x' }}|{{ 0 and 1 }}|{{ 'yes' if t else 'no' }}|{{ 'yes' if nil else 'no' }}",
     "x|0|yes|no"},
    {"{{ m.role }}|{{ m['content'] }}|{{ msgs[1:] | length }}|{{ xs[-1] }}|{{ xs[::-1] }}|{{ "
     "xs[1:3] }}|{{ 'h\xc3\xa9"
     "llo'[1:3] }}",
     "user|hi|2|4|[4, 3, 2, 1]|[2, 3]|\xc3\xa9"
     "l"},
    {"{{ s | trim }}|{{ s | length }}|{{ s | upper }}|{{ s | lower }}|{{ 'x' | default('d') }}|{{ "
     "undefined_thing | default('d') }}|{{ '' | default('d', true) }}",
     "H\xc3\xa9"
     " llo|10|  H\xc3\x89"
     " LLO  |  h\xc3\xa9"
     " llo  |x|d|d"},
    {"{{ xs | join(', ') }}|{{ xs | first }}|{{ xs | last }}|{{ xs | string }}|{{ f | string }}|{{ "
     "m | tojson }}|{{ msgs | map(attribute='role') | join('/') }}",
     "1, 2, 3, 4|1|4|[1, 2, 3, 4]|2.5|{\"role\": \"user\", \"content\": "
     "\"hi\"}|system/user/assistant"},
    {"{{ msgs | selectattr('role', 'equalto', 'user') | list | length }}|{{ xs | reject('odd') | "
     "list }}|{{ m | tojson(indent=2) }}",
     "1|[2, 4]|{\n  \"role\": \"user\",\n  \"content\": \"hi\"\n}"},
    {"{{ x is defined }}|{{ m is mapping }}|{{ s is string }}|{{ n is number }}|{{ nil is none "
     "}}|{{ nil is not none }}|{{ xs is iterable }}|{{ n is divisibleby(7) }}",
     "False|True|True|True|True|False|True|True"},
    {"{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ "
     "loop.length }}{{ loop.revindex }},{% endfor %}",
     "10TrueFalse44,21FalseFalse43,32FalseFalse42,43FalseTrue41,"},
    {"{% for x in xs if x is even %}{{ x }}{{ loop.last }}{% else %}none{% endfor %}|{% for x in "
     "[] %}y{% else %}empty{% endfor %}",
     "2False4True|empty"},
    {"{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif "
     "%}{{ x }}{% endfor %}",
     "13"},
    {"{% set ns = namespace(total=0, seen=false) %}{% for x in xs %}{% set ns.total = ns.total + x "
     "%}{% set local = x %}{% endfor %}{{ ns.total }}{{ local is defined }}",
     "10False"},
    {"{% if n > 10 %}big{% elif n > 5 %}mid{% else %}small{% endif %}", "mid"},
    {"a  \n  {%- if t -%}  \n  b  \n  {%- endif -%}  \n  c", "abc"},
    {"x\n    {% if t %}\n    y\n    {% endif %}\nz\n", "x\n    y\nz"},
    {"{{- '  a  ' -}}   {# comment #}\n  {{ 'b' }}  {#- c -#}  d", "  a    bd"},
    {"{% for k, v in m.items() %}{{ k }}={{ v }};{% endfor %}|{{ m.get('nope', 'dflt') }}|{{ "
     "'a,b,c'.split(',') }}|{{ '  q '.strip() }}|{{ 'ab'.startswith('a') }}|{{ 'user'.title() }}",
     "role=user;content=hi;|dflt|['a', 'b', 'c']|q|True|User"},
    {"{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bo') }} {{ "
     "greet('Al', punct='?') }}",
     "Hi Bo! Hi Al?"},
    {"{% set x %}in {{ n }}{% endset %}[{{ x }}]|{{ range(3) | list }}|{{ {'a': 1, 'b': [true, "
     "none]} | tojson }}|{{ 1.0 }}|{{ 1e20 }}|{{ 0.1 + 0.2 }}",
     "[in 7]|[0, 1, 2]|{\"a\": 1, \"b\": [true, null]}|1.0|1e+20|0.30000000000000004"},
    {"{{ m.missing }}|{{ m.missing is defined }}|{{ 'x' ~ m.missing ~ 'y' }}", "|False|xy"},
};

static void renders_as_jinja2_does(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct llm_buf out;
		struct llm_diag d = {0};
		enum llm_err e = render(cases[i].src, vars_json, &out, &d);
		if (e)
			fail_msg("case %zu: %s:%ld: %s", i, d.file, d.line, d.msg);
		if (strcmp(out.data ? out.data : "", cases[i].want))
			fail_msg("case %zu: got [%s], want [%s]", i, out.data, cases[i].want);
		llm_buf_free(&out);
	}
}

static void a_trailing_newline_of_the_template_is_dropped(void **state)
{
	(void)state;
	struct llm_buf out;
	struct llm_diag d;
	assert_int_equal(render("a\n\n", "{}", &out, &d), LLM_OK);
	assert_string_equal(out.data, "a\n");
	llm_buf_free(&out);
	assert_int_equal(render("a\r\nb\r\n", "{}", &out, &d), LLM_OK);
	assert_string_equal(out.data, "a\nb");
	llm_buf_free(&out);
}

static void syntax_errors_name_the_template_line(void **state)
{
	(void)state;
	static const struct {
		const char *src;
		long line;
		const char *msg;
	} bad[] = {
	    {"ok\n{% if x %}\nno end", 2, "'if' is never closed"},
	    {"a\nb\n{{ x + }}", 3, "unexpected '}}'"},
	    {"{% for x in y %}\n{% endif %}", 2, "unexpected 'endif'"},
	    {"\n\n{% frobnicate %}", 3, "unknown tag 'frobnicate'"},
	    {"{{ 'abc }}", 1, "unterminated string"},
	    {"x {# never closed", 1, "unclosed comment"},
	    {"{{ a b }}", 1, "expected '}}'"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct llm_jinja *t = NULL;
		struct llm_diag d = {0};
		enum llm_err e = llm_jinja_parse(bad[i].src, strlen(bad[i].src), "t.jinja", &t, &d);
		if (e != LLM_ERR_USAGE || d.line != bad[i].line || !strstr(d.msg, bad[i].msg) ||
		    strcmp(d.file, "t.jinja"))
			fail_msg("case %zu: code %d line %ld msg %s", i, e, d.line, d.msg);
		assert_null(t);
	}
}

static void runtime_errors_name_the_line_and_raise_exception_is_a_check(void **state)
{
	(void)state;
	struct llm_buf out;
	struct llm_diag d = {0};
	assert_int_equal(render("a\n{{ raise_exception('roles must alternate') }}", "{}", &out, &d),
			 LLM_ERR_CHECK);
	assert_int_equal(d.line, 2);
	assert_string_equal(d.msg, "roles must alternate");
	assert_int_equal(out.len, 0); /* nothing half-rendered is left */
	llm_buf_free(&out);
	assert_int_equal(render("\n{{ m.missing.deeper }}", vars_json, &out, &d), LLM_ERR_TYPE);
	assert_int_equal(d.line, 2);
	assert_string_equal(d.msg, "'dict object' has no attribute 'missing'");
	llm_buf_free(&out);
	assert_int_equal(render("{{ nope + 1 }}", "{}", &out, &d), LLM_ERR_TYPE);
	assert_string_equal(d.msg, "'nope' is undefined");
	llm_buf_free(&out);
	assert_int_equal(render("{{ xs | frob }}", vars_json, &out, &d), LLM_ERR_TYPE);
	assert_string_equal(d.msg, "unknown filter 'frob'");
	llm_buf_free(&out);
	assert_int_equal(render("{{ 1 // 0 }}", "{}", &out, &d), LLM_ERR_TYPE);
	llm_buf_free(&out);
	assert_int_equal(render("{% set x = 1 %}{% set x.a = 2 %}", "{}", &out, &d), LLM_ERR_TYPE);
	llm_buf_free(&out);
}

static void generation_blocks_give_byte_spans(void **state)
{
	(void)state;
	const char *src =
	    "{% for m in msgs %}<{{ m.role }}>{% if m.role == 'assistant' %}"
	    "{% generation %}{{ m.content }}!{% endgeneration %}{% else %}{{ m.content }}"
	    "{% endif %}{% endfor %}";
	struct llm_jinja *t;
	struct llm_diag d;
	assert_int_equal(llm_jinja_parse(src, strlen(src), "g", &t, &d), LLM_OK);
	assert_true(llm_jinja_has_generation(t));
	json_t *v = json_loads(vars_json, 0, NULL);
	struct llm_buf out;
	llm_buf_init(&out, 0);
	assert_int_equal(llm_buf_puts(&out, "prefix"), LLM_OK);
	struct llm_jinja_span *sp;
	size_t n;
	assert_int_equal(llm_jinja_render(t, v, &out, &sp, &n, &d), LLM_OK);
	assert_string_equal(out.data, "prefix<system>S<user>U<assistant>A!");
	assert_int_equal(n, 1);
	/* Offsets are relative to where the render started, and the two outputs merge. */
	assert_int_equal(sp[0].start, strlen("<system>S<user>U<assistant>"));
	assert_int_equal(sp[0].end, sp[0].start + 2);
	free(sp);
	llm_buf_free(&out);
	json_decref(v);
	llm_jinja_free(t);
}

static void output_over_the_ceiling_fails(void **state)
{
	(void)state;
	const char *src = "{% for i in range(1000) %}xxxxxxxxxx{% endfor %}";
	struct llm_jinja *t;
	struct llm_diag d;
	assert_int_equal(llm_jinja_parse(src, strlen(src), "big", &t, &d), LLM_OK);
	json_t *v = json_object();
	struct llm_buf out;
	llm_buf_init(&out, 100);
	assert_int_equal(llm_jinja_render(t, v, &out, NULL, NULL, &d), LLM_ERR_TOO_BIG);
	assert_int_equal(out.len, 0);
	llm_buf_free(&out);
	json_decref(v);
	llm_jinja_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(renders_as_jinja2_does),
	    cmocka_unit_test(a_trailing_newline_of_the_template_is_dropped),
	    cmocka_unit_test(syntax_errors_name_the_template_line),
	    cmocka_unit_test(runtime_errors_name_the_line_and_raise_exception_is_a_check),
	    cmocka_unit_test(generation_blocks_give_byte_spans),
	    cmocka_unit_test(output_over_the_ceiling_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
