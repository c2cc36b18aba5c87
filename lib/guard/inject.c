/* Prompt-injection, jailbreak, template-token, invisible-character, markdown-exfiltration and
 * refusal detectors (see inject.h).
 *
 * The phrase detectors are PCRE2 patterns compiled once (pthread_once) and then only read;
 * each scan has its own match data.  They run on a normalized copy of the text whose every
 * byte remembers the original byte it came from, so a span found in "ｉｇｎｏｒｅ" names the
 * fullwidth bytes.  Pure ASCII text without control characters needs no copy: the patterns
 * are caseless, and the text is its own normalized form.
 *
 * The invisible-character detector is a walk over the code points, because whether a
 * character hides something depends on its neighbours: a zero-width joiner inside an emoji
 * sequence or a Persian word is writing, one inside "ignore" is an attack; tag characters
 * after U+1F3F4 spell a subdivision flag, anywhere else they smuggle ASCII. */
#include "config.h"

#include "guard/inject.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include "core/json.h"

static const char *const kind_names[LLM_INJECT__COUNT] = {
    "prompt_injection",	     "jailbreak", "template_token", "invisible_char",
    "markdown_exfiltration", "refusal",
};

const char *llm_inject_kind_name(enum llm_inject_kind k)
{
	return (unsigned)k < LLM_INJECT__COUNT ? kind_names[k] : "unknown";
}

bool llm_inject_kind_parse(const char *name, size_t len, enum llm_inject_kind *out)
{
	for (int i = 0; i < LLM_INJECT__COUNT; i++)
		if (strlen(kind_names[i]) == len && !memcmp(kind_names[i], name, len)) {
			*out = (enum llm_inject_kind)i;
			return true;
		}
	return false;
}

void llm_inject_matches_free(struct llm_inject_matches *ms)
{
	free(ms->m);
	ms->m = NULL;
	ms->n = ms->cap = 0;
	ms->truncated = false;
}

/* ---- the patterns ----------------------------------------------------------------------- */

/* Where a pattern looks: the normalized text (phrases) or the text as it is (structure). */
enum { ON_NORM = 1, CASELESS = 2 };

struct pattern {
	enum llm_inject_kind kind;
	const char *detector;
	double score;
	unsigned flags;
	const char *re;
};

/* Between two words: up to six characters that are neither letters nor digits (spaces,
 * punctuation, markdown emphasis, a line break). */
#define GAP "[^\\p{L}\\p{N}]{1,6}"
/* Up to two filler words ("the", "all of"), each followed by a gap; lazy, so the grammar's
 * own words are tried first. */
#define FILL "(?:[\\p{L}\\p{N}']{1,24}" GAP "){0,2}?"

/* The verb-adjective-object grammar of instruction overrides (Rebuff's and Vigil's word lists,
 * less the objects a customer uses: "ignore my previous message" is not an attack). */
#define IGN_VERB                                                                                   \
	"(?:ignore|disregard|forget|skip|overlook|neglect|omit|bypass|override|discard|abandon|"   \
	"dismiss|pay\\s+no\\s+(?:attention|heed)\\s+to|do\\s+not\\s+(?:follow|obey)|"              \
	"don't\\s+(?:follow|obey)|stop\\s+following|no\\s+longer\\s+follow)"
#define IGN_ADJ                                                                                    \
	"(?:previous|previously|prior|preceding|above|earlier|former|foregoing|all|any|every|"     \
	"your|system|developer)"
#define IGN_NOUN                                                                                   \
	"(?:instructions?|directions|directives?|commands?|prompts?|rules|guidelines|guidance|"    \
	"constraints|restrictions|guardrails|programming|context|training|policies)"
#define LEAK_VERB                                                                                  \
	"(?:reveal|show|print|display|output|repeat|recite|tell\\s+me|give\\s+me|share|leak|dump|" \
	"expose|disclose|write\\s+out|spell\\s+out|list|what\\s+(?:is|are|was|were)|what's)"
#define YOU_ARE "(?:you\\s+are|you're|you\\s+will\\s+be|you\\s+are\\s+now|you're\\s+now)"

static const struct pattern patterns[] = {
    /* --- prompt injection -------------------------------------------------------------- */
    {LLM_INJECT_PROMPT_INJECTION, "ignore_previous", 0.9, ON_NORM | CASELESS,
     "\\b" IGN_VERB GAP FILL IGN_ADJ GAP FILL IGN_NOUN "\\b"},
    {LLM_INJECT_PROMPT_INJECTION, "ignore_previous", 0.85, ON_NORM | CASELESS,
     "\\b" IGN_VERB GAP FILL IGN_NOUN GAP FILL
     "(?:above|before|so\\s+far|until\\s+now|given\\s+(?:to\\s+you\\s+)?(?:before|earlier|"
     "previously))\\b"},
    {LLM_INJECT_PROMPT_INJECTION, "forget_everything", 0.9, ON_NORM | CASELESS,
     "\\b(?:ignore|disregard|forget)" GAP "(?:everything|all|anything)" GAP FILL
     "(?:you(?:'ve|\\s+have)?\\s+(?:been|were)\\s+(?:told|given|taught|instructed)|"
     "(?:in|of)\\s+(?:your|the)\\s+(?:system\\s+)?(?:prompt|instructions))\\b"},
    {LLM_INJECT_PROMPT_INJECTION, "forget_everything", 0.75, ON_NORM | CASELESS,
     "\\b(?:ignore|disregard|forget)" GAP "(?:everything|all|anything)" GAP
     "(?:above|before\\s+this|prior\\s+to\\s+this|written\\s+above|said\\s+above)\\b"},
    {LLM_INJECT_PROMPT_INJECTION, "new_instructions", 0.6, ON_NORM | CASELESS,
     "\\b(?:your\\s+)?(?:new|updated|real|actual|true|revised)\\s+(?:system\\s+)?"
     "(?:instructions|prompt|directives?)\\s*(?:are|is)?\\s*:"},
    {LLM_INJECT_PROMPT_INJECTION, "system_override", 0.7, ON_NORM | CASELESS,
     "\\b(?:system|admin|administrator|developer)\\s+(?:override|instructions?)\\s*:"},
    {LLM_INJECT_PROMPT_INJECTION, "from_now_on", 0.4, ON_NORM | CASELESS,
     "\\bfrom\\s+now\\s+on\\b" GAP
     "(?:you\\s+(?:are|will|must|shall|should)|ignore|only\\s+(?:respond|answer|reply)|"
     "always\\s+(?:respond|answer|reply)|act\\s+as)\\b"},
    {LLM_INJECT_PROMPT_INJECTION, "system_prompt_leak", 0.85, ON_NORM | CASELESS,
     "\\b" LEAK_VERB GAP FILL "(?:(?:system|hidden|secret|internal|developer|confidential)[\\s_-]*"
     "(?:prompt|instructions|directives|message)|pre-?prompt|(?:your|its)\\s+"
     "(?:(?:initial|original|first|full|exact|entire|complete)\\s+(?:prompt|instructions|"
     "directives)|prompt|programming))\\b"},
    {LLM_INJECT_PROMPT_INJECTION, "repeat_above", 0.75, ON_NORM | CASELESS,
     "\\b(?:repeat|print|output|recite|copy|reproduce)" GAP FILL
     "(?:words|text|everything|content|lines|sentences)" GAP FILL
     "(?:above|before\\s+this|preceding|prior\\s+to\\s+this)\\b"},

    /* --- jailbreaks -------------------------------------------------------------------- */
    {LLM_INJECT_JAILBREAK, "dan", 0.85, ON_NORM | CASELESS,
     "\\b(?:" YOU_ARE "|act\\s+as|become|pretend\\s+to\\s+be|roleplay\\s+as)\\s+(?:now\\s+)?"
     "(?:an?\\s+)?dan\\b"},
    {LLM_INJECT_JAILBREAK, "dan", 0.9, ON_NORM | CASELESS,
     "\\bdan\\s*(?:mode|prompt|jailbreak)\\b"},
    {LLM_INJECT_JAILBREAK, "dan", 0.95, ON_NORM | CASELESS,
     "\\bdan\\b[^.!?\\n]{0,40}\\bdo\\s+anything\\s+now\\b|\\bdo\\s+anything\\s+now\\b"
     "[^.!?\\n\\p{L}]{0,10}dan\\b"},
    {LLM_INJECT_JAILBREAK, "developer_mode", 0.85, ON_NORM | CASELESS,
     "\\b(?:chatgpt|gpt|ai|assistant|model|llm|you)\\b[^.!?\\n]{0,30}\\b(?:developer|god|"
     "jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil)\\s+mode\\b"},
    {LLM_INJECT_JAILBREAK, "developer_mode", 0.8, ON_NORM | CASELESS,
     "\\b(?:enable|activate|enter|switch\\s+to|turn\\s+on|simulate)\\s+(?:the\\s+)?(?:god|"
     "jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil)\\s+mode\\b|"
     "\\b(?:simulate|pretend|act\\s+(?:as|like))\\s+(?:you're\\s+|you\\s+are\\s+)?"
     "(?:in\\s+)?(?:a\\s+)?developer\\s+mode\\b"},
    {LLM_INJECT_JAILBREAK, "unrestricted_persona", 0.8, ON_NORM | CASELESS,
     "\\b" YOU_ARE "\\s+(?:now\\s+)?(?:an?\\s+)?(?:completely\\s+|totally\\s+|fully\\s+)?"
     "(?:unrestricted|unfiltered|uncensored|jailbroken|amoral|immoral|unbound|unchained|"
     "free\\s+(?:from|of)\\s+(?:all\\s+)?(?:restrictions|rules|guidelines|filters))\\b"},
    {LLM_INJECT_JAILBREAK, "roleplay_no_rules", 0.75, ON_NORM | CASELESS,
     "\\b(?:pretend|imagine|act|behave|roleplay|role-play)\\s+(?:that\\s+)?(?:you\\s+are|"
     "you're|to\\s+be|as|like)\\b[^.!?\\n]{0,60}\\b(?:no|without(?:\\s+any)?|free\\s+(?:of|"
     "from)|not\\s+bound\\s+by|(?:don|doesn)['\u2019]t\\s+have|do(?:es)?\\s+not\\s+have|has\\s+no|"
     "ignores?|unrestricted\\s+by)"
     "\\s+(?:any\\s+)?(?:[\\p{L}]+\\s+)?(?:restrictions|rules|limits|limitations|filters|"
     "guidelines|censorship|morals|ethics|policies|boundaries|content\\s+policy)\\b"},
    {LLM_INJECT_JAILBREAK, "no_ethics", 0.6, ON_NORM | CASELESS,
     "\\b(?:without|ignoring|ignore|no)\\s+(?:any\\s+)?(?:moral|ethical|safety)\\s+"
     "(?:restrictions|guidelines|constraints|boundaries|filters|considerations)\\b"},
    {LLM_INJECT_JAILBREAK, "stay_in_character", 0.5, ON_NORM | CASELESS,
     "\\b(?:stay|remain|keep)\\s+in\\s+character\\b"},

    /* --- chat-template tokens (the text as it is: only exact tokens are special) -------- */
    {LLM_INJECT_TEMPLATE_TOKEN, "chatml", 1.0, 0, "<\\|im_(?:start|end|sep)\\|>"},
    {LLM_INJECT_TEMPLATE_TOKEN, "llama3", 1.0, 0,
     "<\\|(?:begin_of_text|end_of_text|start_header_id|end_header_id|eot_id|eom_id|"
     "python_tag|finetune_right_pad_id)\\|>"},
    {LLM_INJECT_TEMPLATE_TOKEN, "special_token", 1.0, 0,
     "<\\|(?:endoftext|endofprompt|fim_prefix|fim_middle|fim_suffix|fim_pad|repo_name|"
     "file_sep|system|user|assistant|end|tool|tool_call|tool_response|start|message|channel|"
     "return|call|constrain|pad|unk)\\|>"},
    {LLM_INJECT_TEMPLATE_TOKEN, "special_token_like", 0.8, 0,
     "<\\|[A-Za-z][A-Za-z0-9_.:-]{0,40}\\|>"},
    {LLM_INJECT_TEMPLATE_TOKEN, "llama2_inst", 1.0, 0, "\\[/?INST\\]"},
    {LLM_INJECT_TEMPLATE_TOKEN, "llama2_sys", 1.0, 0, "<</?SYS>>"},
    {LLM_INJECT_TEMPLATE_TOKEN, "sentence_marker", 0.5, 0, "</?s>"},
    {LLM_INJECT_TEMPLATE_TOKEN, "gemma_turn", 1.0, 0, "<(?:start_of_turn|end_of_turn)>"},
    {LLM_INJECT_TEMPLATE_TOKEN, "mistral_control", 0.9, 0,
     "\\[/?(?:SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS|TOOL_CONTENT)\\]"},
    {LLM_INJECT_TEMPLATE_TOKEN, "deepseek_token", 0.9, 0,
     "<\\x{FF5C}[^\\x{FF5C}\\n]{1,40}\\x{FF5C}>"},
    /* Alpaca and Vicuna headers at the start of a line: the match starts at the first '#'
     * (\K), so neutralising it breaks the run of hashes. */
    {LLM_INJECT_TEMPLATE_TOKEN, "instruction_header", 0.6, CASELESS,
     "(?m)^[ \\t]*\\K#{2,}[ \\t]*(?:instructions?|response|input|system|human|assistant|user)"
     "[ \\t]*:"},
    {LLM_INJECT_TEMPLATE_TOKEN, "role_link", 0.9, CASELESS,
     "\\[system\\]\\(#(?:assistant|context|instructions|user)\\)"},
    {LLM_INJECT_TEMPLATE_TOKEN, "guidance_block", 0.9, CASELESS,
     "\\{\\{[#/~]?(?:system|user|assistant)~?\\}\\}"},
    {LLM_INJECT_TEMPLATE_TOKEN, "human_assistant_turn", 0.4, 0, "(?<=\\n\\n)(?:Human|Assistant):"},

    /* --- markdown images whose URL carries data ---------------------------------------- */
    {LLM_INJECT_MARKDOWN_EXFIL, "markdown_image", 0.9, CASELESS,
     "!\\[[^\\]\\n]{0,500}\\]\\(\\s*<?https?://[^\\s)>?#]+\\?[^\\s)>]*=[^\\s)>]*>?"
     "(?:\\s+\"[^\"\\n]{0,200}\")?\\s*\\)"},
    {LLM_INJECT_MARKDOWN_EXFIL, "html_image", 0.8, CASELESS,
     "<img\\b[^>]{0,300}?\\bsrc\\s*=\\s*[\"']?https?://[^\\s\"'>?]+\\?[^\\s\"'>]*=[^>]{0,300}>"},

    /* --- refusals ---------------------------------------------------------------------- */
    {LLM_INJECT_REFUSAL, "sorry_but", 0.9, ON_NORM | CASELESS,
     "\\b(?:i'm|i\\s+am)\\s+(?:really\\s+|very\\s+|so\\s+|truly\\s+)?sorry,?\\s+but\\s+"
     "(?:i|as\\s+an\\s+ai)\\b(?:\\s*(?:can't|cannot|can\\s+not|won't|will\\s+not|"
     "am\\s+not\\s+able\\s+to|am\\s+unable\\s+to|'m\\s+not\\s+able\\s+to|'m\\s+unable\\s+to|"
     "must\\s+decline|don't|do\\s+not))?"},
    {LLM_INJECT_REFUSAL, "cannot_help", 0.75, ON_NORM | CASELESS,
     "\\bi\\s*(?:can't|cannot|can\\s+not|won't|will\\s+not|am\\s+unable\\s+to|'m\\s+unable\\s+to|"
     "am\\s+not\\s+able\\s+to|'m\\s+not\\s+able\\s+to)\\s+(?:help|assist|comply|provide|"
     "fulfill|do\\s+that|answer|create|generate|engage)\\b(?:\\s+(?:you\\s+)?(?:with\\s+)?"
     "(?:that|this|your|such|the)(?:\\s+requests?)?)?"},
    {LLM_INJECT_REFUSAL, "as_an_ai", 0.8, ON_NORM | CASELESS,
     "\\bas\\s+an?\\s+(?:ai|artificial\\s+intelligence)(?:\\s+(?:language\\s+model|assistant|"
     "model|chatbot))?\\b"},
    {LLM_INJECT_REFUSAL, "as_an_ai", 0.9, ON_NORM | CASELESS,
     "\\bas\\s+a\\s+(?:large\\s+)?language\\s+model\\b"},
    {LLM_INJECT_REFUSAL, "decline", 0.8, ON_NORM | CASELESS,
     "\\bi\\s+(?:must|have\\s+to|will\\s+have\\s+to)\\s+(?:respectfully\\s+|politely\\s+)?"
     "(?:decline|refuse)\\b"},
    {LLM_INJECT_REFUSAL, "against_policy", 0.7, ON_NORM | CASELESS,
     "\\b(?:it's|it\\s+is|that's|that\\s+is|this\\s+is)\\s+(?:against|a\\s+violation\\s+of)\\s+"
     "(?:my|our|the)\\s+(?:guidelines|policies|policy|programming|principles|"
     "usage\\s+polic(?:y|ies)|content\\s+polic(?:y|ies))\\b"},
    {LLM_INJECT_REFUSAL, "apologize_but", 0.8, ON_NORM | CASELESS,
     "\\b(?:i\\s+apologi[sz]e|my\\s+apologies),?\\s+but\\s+i\\b"},
};

#define NPATTERNS (sizeof patterns / sizeof *patterns)

static pcre2_code *compiled[NPATTERNS];
static pcre2_match_context *match_ctx;
static pthread_once_t compile_once = PTHREAD_ONCE_INIT;
static char compile_error[256];

/* Compile every pattern once; they are never freed (they live as long as the program, and
 * every scan may use them). */
static void compile_all(void)
{
	for (size_t i = 0; i < NPATTERNS; i++) {
		uint32_t opts = PCRE2_UTF | PCRE2_UCP;
		if (patterns[i].flags & CASELESS)
			opts |= PCRE2_CASELESS;
		int code;
		PCRE2_SIZE at;
		compiled[i] = pcre2_compile((PCRE2_SPTR)patterns[i].re, PCRE2_ZERO_TERMINATED, opts,
					    &code, &at, NULL);
		if (!compiled[i]) {
			PCRE2_UCHAR msg[160];
			pcre2_get_error_message(code, msg, sizeof msg);
			snprintf(compile_error, sizeof compile_error,
				 "guard pattern %s (%zu) does not compile at %zu: %s",
				 patterns[i].detector, i, (size_t)at, (const char *)msg);
			return;
		}
		pcre2_jit_compile(compiled[i], PCRE2_JIT_COMPLETE); /* without JIT: slower */
	}
	/* The patterns are bounded, but a cap on backtracking keeps any text from costing more
	 * than a fixed amount of work per pattern. */
	match_ctx = pcre2_match_context_create(NULL);
	if (match_ctx)
		pcre2_set_match_limit(match_ctx, 1000000);
	else
		snprintf(compile_error, sizeof compile_error, "out of memory");
}

static enum llm_err ready(struct llm_diag *diag)
{
	pthread_once(&compile_once, compile_all);
	if (compile_error[0])
		return llm_diag_set(diag, LLM_ERR_FORMAT, NULL, 0, "%s", compile_error);
	return LLM_OK;
}

/* ---- candidates ------------------------------------------------------------------------- */

struct cands {
	struct llm_inject_match *m;
	size_t n, cap;
	size_t limit; /* 0: none */
	bool full, nomem;
};

static void add(struct cands *c, enum llm_inject_kind kind, const char *det, size_t start,
		size_t end, double score)
{
	if (c->limit && c->n >= c->limit) {
		c->full = true;
		return;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct llm_inject_match *p = realloc(c->m, cap * sizeof *p);
		if (!p) {
			c->nomem = true;
			return;
		}
		c->m = p;
		c->cap = cap;
	}
	c->m[c->n++] = (struct llm_inject_match){kind, det, start, end, score};
}

/* ---- UTF-8 ------------------------------------------------------------------------------ */

/* Decode the code point at s[i] (valid UTF-8); returns its length. */
static size_t decode(const char *s, size_t n, size_t i, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s + i;
	size_t k = u[0] < 0x80 ? 1 : u[0] < 0xE0 ? 2 : u[0] < 0xF0 ? 3 : 4;
	if (i + k > n) {
		*cp = 0xFFFD;
		return 1;
	}
	switch (k) {
	case 1:
		*cp = u[0];
		break;
	case 2:
		*cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
		break;
	case 3:
		*cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) |
		      (u[2] & 0x3F);
		break;
	default:
		*cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
		      ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
	}
	return k;
}

static size_t encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* ---- invisible characters --------------------------------------------------------------- */

enum inv {
	INV_NONE,
	INV_CONTROL,	/* C0 but TAB, LF, CR; DEL; C1 */
	INV_BIDI,	/* embeddings, overrides, isolates: reorder what a reader sees */
	INV_BIDI_MARK,	/* LRM, RLM, ALM: common in right-to-left text */
	INV_ZERO_WIDTH, /* ZWSP, word joiner, BOM, Mongolian vowel separator, CGJ */
	INV_JOINER,	/* ZWNJ, ZWJ: writing between two non-ASCII letters or emoji */
	INV_TAG,	/* U+E0000..U+E007F: invisible ASCII */
	INV_SOFT_HYPHEN,
	INV_VARIATION, /* variation selectors: one is presentation, a run is a payload */
	INV_FILLER,    /* Hangul fillers: letters that render as nothing */
	INV_FORMAT,    /* any other Cf */
	INV_PRIVATE,   /* Co */
	INV_UNASSIGNED /* Cn in utf8proc's Unicode version, noncharacters */
};

static const struct {
	const char *name;
	double score;
} inv_info[] = {
    [INV_CONTROL] = {"control_char", 0.7},    [INV_BIDI] = {"bidi_control", 0.9},
    [INV_BIDI_MARK] = {"bidi_mark", 0.4},     [INV_ZERO_WIDTH] = {"zero_width", 0.8},
    [INV_JOINER] = {"zero_width", 0.8},	      [INV_TAG] = {"tag_char", 1.0},
    [INV_SOFT_HYPHEN] = {"soft_hyphen", 0.3}, [INV_VARIATION] = {"variation_selector", 0.6},
    [INV_FILLER] = {"hangul_filler", 0.6},    [INV_FORMAT] = {"format_char", 0.6},
    [INV_PRIVATE] = {"private_use", 0.4},     [INV_UNASSIGNED] = {"unassigned", 0.4},
};

static enum inv inv_class(uint32_t cp)
{
	if (cp < 0x80)
		return (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7F
			   ? INV_CONTROL
			   : INV_NONE;
	if (cp < 0xA0)
		return INV_CONTROL;
	switch (cp) {
	case 0x00AD:
		return INV_SOFT_HYPHEN;
	case 0x034F:
	case 0x180E:
	case 0x200B:
	case 0x2060:
	case 0xFEFF:
		return INV_ZERO_WIDTH;
	case 0x200C:
	case 0x200D:
		return INV_JOINER;
	case 0x061C:
	case 0x200E:
	case 0x200F:
		return INV_BIDI_MARK;
	case 0x115F:
	case 0x1160:
	case 0x3164:
	case 0xFFA0:
		return INV_FILLER;
	default:
		break;
	}
	if ((cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069))
		return INV_BIDI;
	if (cp >= 0xE0000 && cp <= 0xE007F)
		return INV_TAG;
	if ((cp >= 0xFE00 && cp <= 0xFE0F) || (cp >= 0xE0100 && cp <= 0xE01EF))
		return INV_VARIATION;
	switch (utf8proc_category((utf8proc_int32_t)cp)) {
	case UTF8PROC_CATEGORY_CF:
		return INV_FORMAT;
	case UTF8PROC_CATEGORY_CO:
		return INV_PRIVATE;
	case UTF8PROC_CATEGORY_CN:
		return INV_UNASSIGNED;
	case UTF8PROC_CATEGORY_CC:
		return INV_CONTROL;
	default:
		return INV_NONE;
	}
}

/* A neighbour that is writing: visible, or a lone variation selector (emoji presentation). */
static bool writing(uint32_t cp)
{
	enum inv c = inv_class(cp);
	return c == INV_NONE || c == INV_VARIATION;
}

/* The length of the subdivision-flag tag sequence at s[i] (after U+1F3F4): 1 to 7 tag letters
 * or digits and the cancel tag U+E007F; 0 when it is not one. */
static size_t flag_tags(const char *s, size_t n, size_t i)
{
	size_t j = i, count = 0;
	while (j < n && count < 8) {
		uint32_t cp;
		size_t k = decode(s, n, j, &cp);
		j += k;
		if (cp == 0xE007F)
			return count >= 1 ? j - i : 0;
		if (!((cp >= 0xE0061 && cp <= 0xE007A) || (cp >= 0xE0030 && cp <= 0xE0039)))
			return 0;
		count++;
	}
	return 0;
}

typedef void (*inv_fn)(void *ctx, size_t start, size_t end, enum inv cls);

/* Call fn for each character (a whole run, for tag characters) the detector flags. */
static void invisible_walk(const char *s, size_t n, inv_fn fn, void *ctx)
{
	uint32_t prev = 0;
	bool have_prev = false;
	size_t i = 0;
	while (i < n) {
		uint32_t cp;
		size_t k = decode(s, n, i, &cp);
		enum inv c = inv_class(cp);
		if (c == INV_TAG) {
			size_t f = have_prev && prev == 0x1F3F4 ? flag_tags(s, n, i) : 0;
			if (f) {
				prev = 0xE007F;
				i += f;
				continue;
			}
		}
		bool flag = c != INV_NONE;
		if (c == INV_JOINER) {
			uint32_t next = 0;
			bool have_next = i + k < n;
			if (have_next)
				decode(s, n, i + k, &next);
			flag = !have_prev || !have_next || prev < 0x80 || next < 0x80 ||
			       !writing(prev) || !writing(next);
		} else if (c == INV_VARIATION) {
			flag = have_prev && inv_class(prev) == INV_VARIATION;
		}
		if (flag)
			fn(ctx, i, i + k, c);
		prev = cp;
		have_prev = true;
		i += k;
	}
}

struct inv_collect {
	struct cands *c;
	size_t run_end;
	enum inv run_cls;
};

static void inv_add(void *ctx, size_t start, size_t end, enum inv cls)
{
	struct inv_collect *ic = ctx;
	struct cands *c = ic->c;
	/* A run of one class is one finding: a smuggled message of tag characters is one span. */
	if (c->n && ic->run_end == start && ic->run_cls == cls &&
	    c->m[c->n - 1].kind == LLM_INJECT_INVISIBLE) {
		c->m[c->n - 1].end = end;
	} else {
		add(c, LLM_INJECT_INVISIBLE, inv_info[cls].name, start, end, inv_info[cls].score);
	}
	ic->run_end = end;
	ic->run_cls = cls;
}

/* ---- the normalized view ---------------------------------------------------------------- */

/* Latin look-alikes from other scripts (after case folding), the confusables that keep a
 * word readable to a person while a byte match fails. */
static uint32_t confusable(uint32_t cp)
{
	switch (cp) {
	case 0x0430: /* Cyrillic а */
	case 0x03B1: /* Greek α */
	case 0x0251: /* Latin ɑ */
		return 'a';
	case 0x0441:
		return 'c';
	case 0x0501:
		return 'd';
	case 0x0435:
	case 0x03B5:
		return 'e';
	case 0x0261:
		return 'g';
	case 0x04BB:
		return 'h';
	case 0x0456:
	case 0x03B9:
	case 0x0131:
	case 0x026A:
		return 'i';
	case 0x0458:
	case 0x0237:
		return 'j';
	case 0x043A:
	case 0x03BA:
		return 'k';
	case 0x04CF:
		return 'l';
	case 0x043E:
	case 0x03BF:
	case 0x0585:
		return 'o';
	case 0x0440:
	case 0x03C1:
		return 'p';
	case 0x051B:
		return 'q';
	case 0x0455:
		return 's';
	case 0x03C5:
		return 'u';
	case 0x03BD:
		return 'v';
	case 0x051D:
		return 'w';
	case 0x0445:
	case 0x03C7:
		return 'x';
	case 0x0443:
		return 'y';
	default:
		return cp;
	}
}

/* The text the phrase patterns read, and for each of its bytes the original byte offset of the
 * character it came from (map NULL: the text is the original). */
struct view {
	const char *s;
	size_t n;
	uint32_t *map;
	struct llm_buf buf;
	const char *orig;
	size_t orig_n;
};

static bool plain_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x7F || (c < 0x20 && c != '\t' && c != '\n' && c != '\r'))
			return false;
	}
	return true;
}

static enum llm_err view_build(struct view *v, const char *s, size_t n)
{
	memset(v, 0, sizeof *v);
	v->orig = s;
	v->orig_n = n;
	if (plain_ascii(s, n)) {
		v->s = s;
		v->n = n;
		return LLM_OK;
	}
	if (n > UINT32_MAX)
		return LLM_ERR_TOO_BIG;
	/* Folding can grow a character (ß is "ss", ﬃ is "ffi"): start at the original size. */
	llm_buf_init(&v->buf, 0);
	size_t cap = n + 16;
	v->map = malloc(cap * sizeof *v->map);
	if (!v->map || llm_buf_reserve(&v->buf, cap))
		return LLM_ERR_NOMEM;
	const utf8proc_option_t opt = UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE | UTF8PROC_CASEFOLD |
				      UTF8PROC_STRIPMARK | UTF8PROC_LUMP | UTF8PROC_IGNORE;
	size_t i = 0;
	while (i < n) {
		uint32_t cp;
		size_t k = decode(s, n, i, &cp);
		utf8proc_int32_t out[32];
		utf8proc_ssize_t m = 0;
		if (inv_class(cp) == INV_NONE) {
			if (cp < 0x80) {
				out[0] = (utf8proc_int32_t)cp;
				m = 1;
			} else {
				int bound = 0;
				m = utf8proc_decompose_char((utf8proc_int32_t)cp, out, 32, opt,
							    &bound);
				if (m < 0 || m > 32) {
					out[0] = (utf8proc_int32_t)cp;
					m = 1;
				}
			}
		}
		for (utf8proc_ssize_t q = 0; q < m; q++) {
			char e[4];
			size_t el = encode(confusable((uint32_t)out[q]), e);
			if (v->buf.len + el > cap) {
				cap = cap * 2 + el;
				uint32_t *p = realloc(v->map, cap * sizeof *p);
				if (!p)
					return LLM_ERR_NOMEM;
				v->map = p;
			}
			for (size_t b = 0; b < el; b++)
				v->map[v->buf.len + b] = (uint32_t)i;
			if (llm_buf_append(&v->buf, e, el))
				return LLM_ERR_NOMEM;
		}
		i += k;
	}
	v->s = v->buf.data ? v->buf.data : "";
	v->n = v->buf.len;
	return LLM_OK;
}

static void view_free(struct view *v)
{
	free(v->map);
	llm_buf_free(&v->buf);
}

/* Original span of the view's [a, b) (b > a). */
static void view_span(const struct view *v, size_t a, size_t b, size_t *start, size_t *end)
{
	if (!v->map) {
		*start = a;
		*end = b;
		return;
	}
	*start = v->map[a];
	uint32_t cp;
	size_t last = v->map[b - 1];
	*end = last + decode(v->orig, v->orig_n, last, &cp);
}

/* ---- running the patterns --------------------------------------------------------------- */

/* Each match of pattern i in s[0, n): fn(ctx, start, end).  Returns false when fn says stop. */
static void each_match(size_t i, const char *s, size_t n, pcre2_match_data *md,
		       bool (*fn)(void *, size_t, size_t), void *ctx)
{
	size_t at = 0;
	while (at <= n) {
		int rc = pcre2_match(compiled[i], (PCRE2_SPTR)(n ? s : ""), n, at,
				     PCRE2_NO_UTF_CHECK, md, match_ctx);
		/* No match, or the match limit reached: this pattern is done with the text (the
		 * others still run). */
		if (rc < 0)
			return;
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
		size_t a = ov[0], b = ov[1];
		if (b > a && !fn(ctx, a, b))
			return;
		if (b > at) {
			at = b;
		} else {
			/* An empty match (none of ours, but be safe): past one character. */
			at++;
			while (at < n && ((unsigned char)s[at] & 0xC0) == 0x80)
				at++;
		}
	}
}

struct pat_collect {
	struct cands *c;
	const struct view *v;
	size_t pat;
};

/* The score of an image link with a query: a long or encoded value is data on its way out;
 * short ones ("?branch=master", "?v=2") are what badges and caches carry. */
static double exfil_score(const char *s, size_t n, double weight)
{
	const char *q = memchr(s, '?', n);
	size_t longest = 0, run = 0;
	bool encoded = false, in_value = false;
	for (const char *p = q ? q + 1 : s + n; p < s + n; p++) {
		if (*p == '&' || *p == ')' || *p == '"' || *p == '\'' || *p == ' ' || *p == '>') {
			in_value = false;
			run = 0;
		} else if (*p == '=' && !in_value) {
			in_value = true;
		} else if (in_value) {
			encoded |= *p == '%' || *p == '+';
			if (++run > longest)
				longest = run;
		}
	}
	return encoded || longest >= 16 ? weight : 0.4;
}

static bool pat_add(void *ctx, size_t a, size_t b)
{
	struct pat_collect *pc = ctx;
	const struct pattern *p = &patterns[pc->pat];
	size_t start, end;
	view_span(pc->v, a, b, &start, &end);
	double score = p->score;
	if (p->kind == LLM_INJECT_MARKDOWN_EXFIL)
		score = exfil_score(pc->v->s + a, b - a, score);
	add(pc->c, p->kind, p->detector, start, end, score);
	return !pc->c->full && !pc->c->nomem;
}

static bool pat_found(void *ctx, size_t a, size_t b)
{
	(void)a;
	(void)b;
	*(bool *)ctx = true;
	return false;
}

/* The patterns of the kinds in mask over the text (raw) and its normalized view (norm). */
static void run_patterns(struct cands *c, unsigned mask, const struct view *raw,
			 const struct view *norm, pcre2_match_data *md)
{
	for (size_t i = 0; i < NPATTERNS && !c->full && !c->nomem; i++) {
		if (!(mask & (1u << patterns[i].kind)))
			continue;
		struct pat_collect pc = {c, patterns[i].flags & ON_NORM ? norm : raw, i};
		each_match(i, pc.v->s, pc.v->n, md, pat_add, &pc);
	}
}

/* Whether any pattern of the kinds in mask matches the plain ASCII text s. */
static bool any_phrase(unsigned mask, const char *s, size_t n, pcre2_match_data *md)
{
	bool found = false;
	for (size_t i = 0; i < NPATTERNS && !found; i++)
		if ((mask & (1u << patterns[i].kind)) && (patterns[i].flags & ON_NORM))
			each_match(i, s, n, md, pat_found, &found);
	return found;
}

/* ---- instructions in base64 ------------------------------------------------------------- */

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* The shortest run worth decoding (18 bytes of text), and the most of one run decoded. */
#define B64_MIN	   24
#define B64_DECODE (48u << 10)

/* Runs of base64 (standard or URL-safe) that decode to English-looking text: mostly printable
 * ASCII, mostly letters and spaces, several words.  One that also holds an injection or
 * jailbreak phrase is an attack hidden from the phrase patterns; one that does not is only
 * worth a look (a low score). */
static void find_base64(struct cands *c, const char *s, size_t n, pcre2_match_data *md)
{
	char *dec = NULL;
	for (size_t i = 0; i < n && !c->full && !c->nomem;) {
		if (b64_value((unsigned char)s[i]) < 0) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < n && b64_value((unsigned char)s[j]) >= 0)
			j++;
		size_t end = j;
		while (end < n && end < j + 2 && s[end] == '=')
			end++;
		size_t run = j - i;
		if (run >= B64_MIN) {
			if (!dec && !(dec = malloc(B64_DECODE))) {
				c->nomem = true;
				break;
			}
			size_t take = run / 4 * 4;
			if (take / 4 * 3 > B64_DECODE)
				take = B64_DECODE / 3 * 4;
			size_t dn = 0, printable = 0, letters = 0, spaces = 0;
			for (size_t k = 0; k + 4 <= take; k += 4) {
				uint32_t v = 0;
				for (int q = 0; q < 4; q++)
					v = v << 6 |
					    (uint32_t)b64_value((unsigned char)s[i + k + q]);
				dec[dn++] = (char)(v >> 16);
				dec[dn++] = (char)(v >> 8);
				dec[dn++] = (char)v;
			}
			for (size_t k = 0; k < dn; k++) {
				unsigned char b = (unsigned char)dec[k];
				printable +=
				    (b >= 0x20 && b < 0x7F) || b == '\n' || b == '\t' || b == '\r';
				letters += (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
				spaces += b == ' ';
			}
			if (dn && printable * 100 >= dn * 95 && (letters + spaces) * 10 >= dn * 7 &&
			    spaces >= 2) {
				/* Control bytes would not match anyway; the patterns need UTF-8. */
				for (size_t k = 0; k < dn; k++)
					if ((unsigned char)dec[k] >= 0x7F)
						dec[k] = ' ';
				unsigned phrases = (1u << LLM_INJECT_PROMPT_INJECTION) |
						   (1u << LLM_INJECT_JAILBREAK);
				if (any_phrase(phrases, dec, dn, md))
					add(c, LLM_INJECT_PROMPT_INJECTION, "base64_injection", i,
					    end, 0.95);
				else
					add(c, LLM_INJECT_PROMPT_INJECTION, "base64_text", i, end,
					    0.45);
			}
		}
		i = end > j ? end : j;
	}
	free(dec);
}

/* ---- the scan --------------------------------------------------------------------------- */

static int by_kind_start(const void *a, const void *b)
{
	const struct llm_inject_match *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

static int by_start_kind(const void *a, const void *b)
{
	const struct llm_inject_match *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return 0;
}

/* Merge overlapping findings of one kind in place; returns the new count. */
static size_t merge(struct llm_inject_match *m, size_t n)
{
	if (!n)
		return 0;
	qsort(m, n, sizeof *m, by_kind_start);
	size_t w = 0;
	for (size_t r = 1; r < n; r++) {
		struct llm_inject_match *last = &m[w];
		if (m[r].kind == last->kind && m[r].start < last->end) {
			if (m[r].end > last->end)
				last->end = m[r].end;
			if (m[r].score > last->score) {
				last->score = m[r].score;
				last->detector = m[r].detector;
			}
		} else {
			m[++w] = m[r];
		}
	}
	n = w + 1;
	qsort(m, n, sizeof *m, by_start_kind);
	return n;
}

static enum llm_err collect(const char *text, size_t len, unsigned kinds, size_t limit,
			    struct cands *c, struct llm_diag *diag)
{
	enum llm_err e = ready(diag);
	if (e)
		return e;
	if (llm_utf8_valid_prefix(text, len) != len)
		return llm_diag_set(diag, LLM_ERR_UTF8, NULL, 0, "the text is not valid UTF-8");
	c->limit = limit;
	if (kinds & (1u << LLM_INJECT_INVISIBLE)) {
		struct inv_collect ic = {c, SIZE_MAX, INV_NONE};
		invisible_walk(text, len, inv_add, &ic);
	}
	unsigned phrases = (1u << LLM_INJECT_PROMPT_INJECTION) | (1u << LLM_INJECT_JAILBREAK) |
			   (1u << LLM_INJECT_REFUSAL);
	struct view raw = {.s = text, .n = len, .orig = text, .orig_n = len}, norm = raw;
	if ((kinds & phrases) && (e = view_build(&norm, text, len))) {
		view_free(&norm);
		return llm_diag_set(diag, e, NULL, 0,
				    e == LLM_ERR_NOMEM ? "out of memory" : "the text is too long");
	}
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	if (!md) {
		view_free(&norm);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	run_patterns(c, kinds, &raw, &norm, md);
	if ((kinds & (1u << LLM_INJECT_PROMPT_INJECTION)) && !c->full)
		find_base64(c, text, len, md);
	pcre2_match_data_free(md);
	view_free(&norm);
	if (c->nomem)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	return LLM_OK;
}

enum llm_err llm_inject_scan(const char *text, size_t len, unsigned kinds, size_t max_matches,
			     struct llm_inject_matches *out, struct llm_diag *diag)
{
	out->n = 0;
	out->truncated = false;
	if (!kinds)
		kinds = LLM_INJECT_ALL;
	/* Room for overlaps that merge away, and then some. */
	size_t limit = max_matches ? max_matches * 4 + 64 : 0;
	struct cands c = {0};
	enum llm_err e = collect(text ? text : "", text ? len : 0, kinds, limit, &c, diag);
	if (e) {
		free(c.m);
		return e;
	}
	size_t n = merge(c.m, c.n);
	out->truncated = c.full;
	if (max_matches && n > max_matches) {
		n = max_matches;
		out->truncated = true;
	}
	free(out->m);
	out->m = c.m;
	out->cap = c.cap;
	out->n = n;
	return LLM_OK;
}

/* ---- sanitizing ------------------------------------------------------------------------- */

struct removal {
	size_t *at; /* start, end pairs */
	size_t n, cap;
	size_t chars; /* characters removed */
	bool nomem;
};

static void inv_remove(void *ctx, size_t start, size_t end, enum inv cls)
{
	(void)cls;
	struct removal *r = ctx;
	r->chars++;
	if (r->n && r->at[2 * r->n - 1] == start) {
		r->at[2 * r->n - 1] = end;
		return;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		size_t *p = realloc(r->at, 2 * cap * sizeof *p);
		if (!p) {
			r->nomem = true;
			return;
		}
		r->at = p;
		r->cap = cap;
	}
	r->at[2 * r->n] = start;
	r->at[2 * r->n + 1] = end;
	r->n++;
}

enum llm_err llm_inject_sanitize(const char *text, size_t len, unsigned what, struct llm_buf *out,
				 size_t *changes, struct llm_diag *diag)
{
	if (changes)
		*changes = 0;
	if (!text)
		text = "", len = 0;
	struct cands c = {0};
	enum llm_err e = LLM_OK;
	if (what & (1u << LLM_INJECT_TEMPLATE_TOKEN))
		e = collect(text, len, 1u << LLM_INJECT_TEMPLATE_TOKEN, 0, &c, diag);
	else if ((e = ready(diag)) == LLM_OK && llm_utf8_valid_prefix(text, len) != len)
		e = llm_diag_set(diag, LLM_ERR_UTF8, NULL, 0, "the text is not valid UTF-8");
	if (e) {
		free(c.m);
		return e;
	}
	size_t ntok = merge(c.m, c.n);
	struct removal r = {0};
	if (what & (1u << LLM_INJECT_INVISIBLE))
		invisible_walk(text, len, inv_remove, &r);
	if (r.nomem) {
		free(c.m);
		free(r.at);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	/* Copy, skipping the removals and splitting each token after its first character; a
	 * token and a removal never overlap (tokens are visible characters). */
	size_t pos = 0, t = 0, k = 0, count = 0;
	while (!e && pos < len) {
		size_t next_tok = t < ntok ? c.m[t].start : len;
		size_t next_rm = k < r.n ? r.at[2 * k] : len;
		size_t stop = next_tok < next_rm ? next_tok : next_rm;
		if (stop > pos)
			e = llm_buf_append(out, text + pos, stop - pos);
		pos = stop;
		if (e || pos >= len)
			break;
		if (k < r.n && pos == next_rm) {
			pos = r.at[2 * k + 1];
			k++;
		} else if (t < ntok && pos == next_tok) {
			uint32_t cp;
			size_t first = decode(text, len, pos, &cp);
			e = llm_buf_append(out, text + pos, first);
			if (!e)
				e = llm_buf_putc(out, ' ');
			pos += first;
			t++;
			count++;
			/* Removals inside the token cannot happen; skip any that start before. */
			while (k < r.n && r.at[2 * k] < pos)
				k++;
		}
	}
	free(c.m);
	free(r.at);
	if (e)
		return llm_diag_set(diag, e, NULL, 0, "the sanitized text is too long");
	if (changes)
		*changes = count + r.chars;
	return LLM_OK;
}
