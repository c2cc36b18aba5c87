/* The --where filter language of llm-monitor: which records a verb keeps.
 *
 *   feedback.score<=2 and not flags.kind=refusal
 *   (status>=500 or latency_ms>1000) and model=="support-bot@3"
 *   exists(feedback) and feedback.mean < 3
 *
 * Grammar (keywords and function names are lower case; white space is free):
 *
 *   expr    := and { ("or" | "||") and }
 *   and     := unary { ("and" | "&&") unary }
 *   unary   := ("not" | "!") unary | "(" expr ")" | "exists" "(" path ")" | compare
 *   compare := path op value
 *   op      := "==" | "=" | "!=" | "<" | "<=" | ">" | ">="
 *   path    := name { "." name }       a name is letters, digits, "_", "-" (not first)
 *   value   := number | "string" | 'string' | true | false | null | bare word
 *
 * A bare word (letters, digits and _ - . : / @ +) is a string, unless it reads as a number:
 * model=gpt-4o and model=="gpt-4o" are the same.  Quoted strings take the JSON escapes
 * (\" \\ \n \t \uXXXX).
 *
 * A path walks through objects member by member; when it meets an array it goes on into
 * every element, and the comparison holds when it holds for any value reached (as jq's
 * `any`): flags.kind=refusal holds when any flag has that kind, and not flags.kind=refusal
 * when none has.  A comparison with a field that is absent or null is false (so is its
 * negation with !=: use not).  Numbers compare as numbers; strings as strings (bytewise, so
 * RFC 3339 times in UTC order correctly); a string field compared with a number literal
 * compares with the literal's text (key_id=42 matches "42"); true, false and null match
 * only themselves; any other mix is false.  exists(path) holds when the path reaches any
 * value that is not null.
 *
 * A malformed expression is refused at compile time with the column (1-based, in bytes) and
 * what was expected there.  Nothing here prints; a compiled expression is read-only and may
 * be shared between threads. */
#ifndef LLM_MONITOR_WHERE_H
#define LLM_MONITOR_WHERE_H

#include <stdbool.h>

#include <jansson.h>

#include "core/err.h"

struct llm_mon_where;

/* Compile expr.  On a syntax error returns LLM_ERR_USAGE with diag->msg "column N: ..." and
 * diag->line 0. */
enum llm_err llm_mon_where_compile(struct llm_mon_where **out, const char *expr,
				   struct llm_diag *diag);
void llm_mon_where_free(struct llm_mon_where *w);

/* Whether the record (a JSON object) matches. */
bool llm_mon_where_match(const struct llm_mon_where *w, const json_t *rec);

/* Whether the expression reads the top-level member name (a path starting with it), so a
 * caller knows what it must provide ("feedback": join feedback first). */
bool llm_mon_where_reads(const struct llm_mon_where *w, const char *name);

#endif
