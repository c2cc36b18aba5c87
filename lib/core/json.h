/* A validating JSON scanner that builds no tree.
 *
 * llm_json_scan() checks that a text is exactly one JSON object (RFC 8259, strict: no
 * trailing commas, no comments, no lone surrogates, valid UTF-8 throughout) and records where
 * each top-level member's key and value lie in the text.  Tools read the fields they need
 * from those spans and pass the rest through byte for byte, so unknown fields reach the next
 * tool unchanged and in order, and a record is never parsed twice on a hot path.  Where a
 * tool needs a tree it hands a value's span to jansson. */
#ifndef LLM_CORE_JSON_H
#define LLM_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

enum llm_json_type {
	LLM_JSON_NULL,
	LLM_JSON_FALSE,
	LLM_JSON_TRUE,
	LLM_JSON_NUMBER,
	LLM_JSON_STRING,
	LLM_JSON_ARRAY,
	LLM_JSON_OBJECT,
};

/* One top-level member.  key points inside the quotes (raw, escapes not decoded); val is the
 * whole raw value, quotes included for strings. */
struct llm_json_member {
	const char *key;
	const char *val;
	uint32_t key_len;
	uint32_t val_len;
	enum llm_json_type type;
	bool key_escaped; /* the key contains a backslash escape */
	bool is_integer;  /* a number with no fraction or exponent */
};

/* The members of one object, in order.  Reused across records to avoid allocation. */
struct llm_json_members {
	struct llm_json_member *m;
	size_t n;
	size_t cap;
};

/* Why a scan failed: the code is LLM_ERR_JSON or LLM_ERR_UTF8; offset is the byte offset of the
 * fault (0-based) and why a short lower-case reason. */
struct llm_json_fault {
	enum llm_err code;
	size_t offset;
	const char *why;
};

#define LLM_JSON_MAX_DEPTH 512

/* Scan s[0..n) as one JSON object.  Returns LLM_OK, LLM_ERR_JSON, LLM_ERR_UTF8 (fault filled)
 * or LLM_ERR_NOMEM. */
enum llm_err llm_json_scan(const char *s, size_t n, struct llm_json_members *out,
			   struct llm_json_fault *fault);
void llm_json_members_free(struct llm_json_members *ms);

/* The first member whose decoded key equals name, or NULL. */
const struct llm_json_member *llm_json_get(const struct llm_json_members *ms, const char *name);

/* Decode a raw string value (with its quotes) to UTF-8, appended to out. */
enum llm_err llm_json_string_decode(const char *val, size_t len, struct llm_buf *out);

/* The name of a type as a user writes it ("string", "number", ...). */
const char *llm_json_type_name(enum llm_json_type t);
/* The same for a sentence: "a string", "an array", "null". */
const char *llm_json_type_phrase(enum llm_json_type t);

/* Check s[0..n) is valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
 * Returns the length of the valid prefix; equal to n when all of it is valid. */
size_t llm_utf8_valid_prefix(const char *s, size_t n);
/* The length of the longest prefix of s[0..n) that is ASCII (n when all of it is). */
size_t llm_ascii_prefix(const char *s, size_t n);

#endif
