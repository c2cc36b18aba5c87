/* Unit tests for lib/text/template: the built-in chat formats (strings worked out from the
 * reference templates: Qwen2's ChatML, Meta-Llama-3-8B-Instruct, Llama-2-chat, Stanford
 * Alpaca), their loss spans, tokenizer_config loading, span location in Jinja templates, and
 * {{field}} prompt templates. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/json.h"
#include "text/template.h"

static const char *conv = "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
			  "{\"role\":\"user\",\"content\":\" Hi \"},"
			  "{\"role\":\"assistant\",\"content\":\"Hello.\"},"
			  "{\"role\":\"user\",\"content\":\"Bye\"}]";

static void check_format(enum llm_chat_format f, bool gen, const char *want, size_t nspans,
			 const char *const *spans_text)
{
	json_t *m = json_loads(conv, 0, NULL);
	struct llm_buf out;
	llm_buf_init(&out, 0);
	struct llm_spans sp = {0};
	struct llm_diag d;
	assert_int_equal(llm_chat_render(f, m, gen, &out, &sp, &d), LLM_OK);
	assert_string_equal(out.data, want);
	assert_int_equal(sp.n, nspans);
	for (size_t i = 0; i < nspans; i++) {
		size_t len = sp.v[i].end - sp.v[i].start;
		assert_int_equal(len, strlen(spans_text[i]));
		assert_memory_equal(out.data + sp.v[i].start, spans_text[i], len);
	}
	llm_spans_free(&sp);
	llm_buf_free(&out);
	json_decref(m);
}

static void chatml_marks_content_and_im_end(void **state)
{
	(void)state;
	const char *s[] = {"Hello.<|im_end|>"};
	check_format(LLM_CHAT_CHATML, true,
		     "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n"
		     "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
		     "<|im_start|>assistant\n",
		     1, s);
}

static void llama3_trims_content_and_marks_eot(void **state)
{
	(void)state;
	const char *s[] = {"Hello.<|eot_id|>"};
	check_format(
	    LLM_CHAT_LLAMA3, false,
	    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
	    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
	    "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
	    "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>",
	    1, s);
}

static void llama2_puts_the_system_message_in_the_first_inst(void **state)
{
	(void)state;
	const char *s[] = {"Hello. </s>"};
	check_format(LLM_CHAT_LLAMA2, true,
		     "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello. </s>"
		     "<s>[INST] Bye [/INST]",
		     1, s);
}

static void alpaca_is_one_instruction(void **state)
{
	(void)state;
	json_t *m = json_loads(conv, 0, NULL);
	struct llm_buf out;
	llm_buf_init(&out, 0);
	struct llm_diag d;
	assert_int_equal(llm_chat_render(LLM_CHAT_ALPACA, m, false, &out, NULL, &d), LLM_ERR_CHECK);
	json_decref(m);
	m = json_loads("[{\"role\":\"user\",\"content\":\"Sum 2 and 2.\"},"
		       "{\"role\":\"assistant\",\"content\":\"4\"}]",
		       0, NULL);
	struct llm_spans sp = {0};
	assert_int_equal(llm_chat_render(LLM_CHAT_ALPACA, m, false, &out, &sp, &d), LLM_OK);
	assert_string_equal(out.data,
			    "Below is an instruction that describes a task. Write a response that "
			    "appropriately completes the request.\n\n### Instruction:\nSum 2 and "
			    "2.\n\n### Response:\n4");
	assert_int_equal(sp.n, 1);
	assert_int_equal(sp.v[0].end, out.len);
	assert_int_equal(sp.v[0].start, out.len - 1);
	llm_spans_free(&sp);
	llm_buf_free(&out);
	json_decref(m);
}

static void malformed_messages_are_named(void **state)
{
	(void)state;
	json_t *m =
	    json_loads("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\"}]", 0, NULL);
	struct llm_buf out;
	llm_buf_init(&out, 0);
	struct llm_diag d;
	assert_int_equal(llm_chat_render(LLM_CHAT_CHATML, m, false, &out, NULL, &d), LLM_ERR_TYPE);
	assert_non_null(strstr(d.msg, "message 2"));
	llm_buf_free(&out);
	json_decref(m);
}

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/llmops-tpl-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void config_tokens_may_be_objects_and_templates_a_list(void **state)
{
	(void)state;
	char *p = write_tmp(
	    "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\","
	    " \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"},"
	    " {\"name\": \"default\", \"template\": \"{{ bos_token }}{% for m in messages %}"
	    "[{{ m.content | trim }}]{{ eos_token }}{% endfor %}\"}]}");
	struct llm_chat_template *t;
	struct llm_diag d;
	assert_int_equal(llm_chat_template_load(p, &t, &d), LLM_OK);
	assert_string_equal(llm_chat_template_token(t, "bos_token"), "<s>");
	json_t *m = json_loads("[{\"role\":\"user\",\"content\":\"q\"},"
			       "{\"role\":\"assistant\",\"content\":\" a \"}]",
			       0, NULL);
	struct llm_buf out;
	llm_buf_init(&out, 0);
	struct llm_spans sp = {0};
	assert_int_equal(llm_chat_template_render(t, m, false, &out, &sp, &d), LLM_OK);
	assert_string_equal(out.data, "<s>[q]</s>[a]</s>");
	/* Found by the marker pass: the trimmed answer; eos_token is not right after it ("]"
	 * comes first), so it is not part of the span. */
	assert_int_equal(sp.n, 1);
	assert_int_equal(sp.v[0].start, 11);
	assert_int_equal(sp.v[0].end, 12);
	llm_spans_free(&sp);
	llm_buf_free(&out);
	json_decref(m);
	llm_chat_template_free(t);
	unlink(p);
	free(p);
}

static void a_template_that_rewrites_answers_cannot_be_masked(void **state)
{
	(void)state;
	const char *src = "{% for m in messages %}{{ m.content | upper }}{% endfor %}";
	struct llm_chat_template *t;
	struct llm_diag d;
	assert_int_equal(llm_chat_template_from_string(src, strlen(src), "u", &t, &d), LLM_OK);
	json_t *m = json_loads("[{\"role\":\"assistant\",\"content\":\"abc\"}]", 0, NULL);
	struct llm_buf out;
	llm_buf_init(&out, 0);
	struct llm_spans sp = {0};
	assert_int_equal(llm_chat_template_render(t, m, false, &out, &sp, &d), LLM_ERR_CHECK);
	assert_non_null(strstr(d.msg, "cannot locate assistant message 1"));
	assert_int_equal(out.len, 0);
	llm_spans_free(&sp);
	llm_buf_free(&out);
	json_decref(m);
	llm_chat_template_free(t);
}

static void prompt_templates_fill_fields(void **state)
{
	(void)state;
	const char *src = "Q: {{q}} n={{ n }} {{obj}} {{{{lit}}}}\n";
	struct llm_prompt_template *t;
	struct llm_diag d;
	assert_int_equal(llm_prompt_template_parse(src, strlen(src), "p.txt", &t, &d), LLM_OK);
	const char *rec = "{\"q\":\"caf\\u00e9\\n?\",\"n\":1e3,\"obj\":{\"a\": [1]}}";
	struct llm_json_members ms = {0};
	struct llm_json_fault f;
	assert_int_equal(llm_json_scan(rec, strlen(rec), &ms, &f), LLM_OK);
	struct llm_buf out;
	llm_buf_init(&out, 0);
	assert_int_equal(llm_prompt_template_render(t, &ms, &out, &d), LLM_OK);
	assert_string_equal(out.data, "Q: caf\xc3\xa9\n? n=1e3 {\"a\": [1]} {{lit}}");
	llm_buf_free(&out);
	llm_json_members_free(&ms);
	rec = "{\"q\":\"x\"}";
	assert_int_equal(llm_json_scan(rec, strlen(rec), &ms, &f), LLM_OK);
	llm_buf_init(&out, 0);
	assert_int_equal(llm_prompt_template_render(t, &ms, &out, &d), LLM_ERR_MISSING);
	assert_string_equal(d.msg, "missing field \"n\"");
	assert_string_equal(d.file, "p.txt");
	assert_int_equal(d.line, 1);
	llm_buf_free(&out);
	llm_json_members_free(&ms);
	llm_prompt_template_free(t);
	const char *bad = "a\nb {{ q\n";
	assert_int_equal(llm_prompt_template_parse(bad, strlen(bad), "p.txt", &t, &d),
			 LLM_ERR_USAGE);
	assert_int_equal(d.line, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(chatml_marks_content_and_im_end),
	    cmocka_unit_test(llama3_trims_content_and_marks_eot),
	    cmocka_unit_test(llama2_puts_the_system_message_in_the_first_inst),
	    cmocka_unit_test(alpaca_is_one_instruction),
	    cmocka_unit_test(malformed_messages_are_named),
	    cmocka_unit_test(config_tokens_may_be_objects_and_templates_a_list),
	    cmocka_unit_test(a_template_that_rewrites_answers_cannot_be_masked),
	    cmocka_unit_test(prompt_templates_fill_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
