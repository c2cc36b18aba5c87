/* Model-free detectors for attacks on a language model and for its refusals: prompt-injection
 * and jailbreak phrases, chat-template tokens smuggled into user text, invisible and control
 * characters, markdown images that exfiltrate data in their URL, and refusals in answers.
 *
 * llm-serve (--guard-input, --guard-output) and llm-monitor (scan) share these detectors, so
 * this module does no I/O and keeps no state between calls: llm_inject_scan() takes UTF-8 text
 * and returns typed byte spans of that text, in text order.  The compiled patterns are built
 * once, on first use, and then only read, so any number of threads may scan at once.
 *
 * The phrase detectors (injection, jailbreak, refusal) are curated PCRE2 patterns in the spirit
 * of the heuristics of LLM Guard, Rebuff and Vigil: verb-adjective-object grammars such as
 * "ignore ... previous ... instructions", with word boundaries, matched without regard to case
 * on a normalized copy of the text: NFKC with case folding (fullwidth "Ｉｇｎｏｒｅ" is
 * "ignore"), marks stripped, invisible characters dropped ("ig<U+200D>nore" is "ignore") and
 * the Cyrillic and Greek letters that look like Latin ones mapped to them.  A span always
 * names the original bytes, so the characters that hid a phrase are inside its span.  Each
 * pattern has a weight, its score: how sure a match alone makes us (1 for a chat-template
 * token, 0.3 for a soft hyphen).  The patterns are English; they lean towards missing an
 * attack rather than flagging a customer who writes "please ignore my previous message".
 *
 * The structural detectors (template tokens, markdown images) look at the text as it is: a
 * fullwidth "<｜im_start｜>" is not the special token a tokenizer would see. */
#ifndef LLM_GUARD_INJECT_H
#define LLM_GUARD_INJECT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* The numbers are stable; a set of kinds is a bit mask of (1u << kind). */
enum llm_inject_kind {
	LLM_INJECT_PROMPT_INJECTION = 0, /* "ignore previous instructions", "reveal your system
					  * prompt", instructions hidden in base64 */
	LLM_INJECT_JAILBREAK = 1,	 /* "you are now DAN", "developer mode enabled", role-play
					  * openers that shed the rules */
	LLM_INJECT_TEMPLATE_TOKEN = 2,	 /* <|im_start|>, [INST], <<SYS>>, "### Instruction:" */
	LLM_INJECT_INVISIBLE = 3,	 /* zero-width, bidi controls, tag characters, controls */
	LLM_INJECT_MARKDOWN_EXFIL = 4,	 /* ![..](https://host/path?data=...) */
	LLM_INJECT_REFUSAL = 5,		 /* "I'm sorry, but I can't", "As an AI language model" */
	LLM_INJECT__COUNT
};

#define LLM_INJECT_ALL ((1u << LLM_INJECT__COUNT) - 1)
/* What a prompt is checked for, and what an answer is (refusals and image exfiltration). */
#define LLM_INJECT_INPUT                                                                           \
	((1u << LLM_INJECT_PROMPT_INJECTION) | (1u << LLM_INJECT_JAILBREAK) |                      \
	 (1u << LLM_INJECT_TEMPLATE_TOKEN) | (1u << LLM_INJECT_INVISIBLE) |                        \
	 (1u << LLM_INJECT_MARKDOWN_EXFIL))
#define LLM_INJECT_OUTPUT ((1u << LLM_INJECT_REFUSAL) | (1u << LLM_INJECT_MARKDOWN_EXFIL))

/* One finding: text[start, end) in bytes. */
struct llm_inject_match {
	enum llm_inject_kind kind;
	const char *detector; /* finer name: "ignore_previous", "chatml", "bidi_control", ...
			       * (static) */
	size_t start, end;
	double score; /* the detector's weight, in (0, 1] */
};

/* Findings of one kind never overlap (overlapping matches merge into one span, under the
 * detector with the highest score); findings of different kinds may (a zero-width joiner
 * inside an injection phrase is both). */
struct llm_inject_matches {
	struct llm_inject_match *m;
	size_t n, cap;
	bool truncated; /* max_matches was reached: the text holds more */
};

/* Scan text[0, len) (valid UTF-8) for the kinds in the mask (0: all) and replace the contents
 * of out with the findings, sorted by start (then kind).  At most max_matches findings are
 * kept (0: no limit), so a hostile text cannot make the list grow without bound.  Fails only
 * for want of memory (or, never expected, a pattern that does not compile). */
enum llm_err llm_inject_scan(const char *text, size_t len, unsigned kinds, size_t max_matches,
			     struct llm_inject_matches *out, struct llm_diag *diag);
void llm_inject_matches_free(struct llm_inject_matches *ms);

/* The text a model should see, appended to out: with LLM_INJECT_INVISIBLE in what, every
 * character the invisible detector flags is removed; with LLM_INJECT_TEMPLATE_TOKEN, each
 * template token is neutralised by a space after its first character ("<|im_start|>" becomes
 * "< |im_start|>", "[INST]" becomes "[ INST]"), which no tokenizer reads as a special token and
 * a reader still understands.  Other kinds are left as they are.  *changes (when not NULL)
 * counts the characters removed and the tokens neutralised; scanning the result finds
 * neither kind again. */
enum llm_err llm_inject_sanitize(const char *text, size_t len, unsigned what, struct llm_buf *out,
				 size_t *changes, struct llm_diag *diag);

/* The kind's name as logs and options write it: "prompt_injection", "jailbreak",
 * "template_token", "invisible_char", "markdown_exfiltration", "refusal"; and back. */
const char *llm_inject_kind_name(enum llm_inject_kind k);
bool llm_inject_kind_parse(const char *name, size_t len, enum llm_inject_kind *out);

#endif
