/* API keys for llm-serve: the key file, the check of a presented key, and a key id for logs.
 *
 * The key file holds one key per line, with optional settings after it:
 *
 *     # comments start with '#' (at the start of a line or after whitespace); blank lines are fine
 *     sk-team-a-5b0f1e8c2d  name=team-a rpm=60 tpm=100000 budget_tokens=5000000
 *     sk-batch-77aa01       rpm=none models=small,large
 *     sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  name=ci
 *
 * A key is the first word of its line: 8 to 256 printable ASCII characters other than space
 * and '#'.  Written as `sha256:` and 64 hex digits it is the SHA-256 of the key instead, so
 * the file need not hold the key itself (`printf %s KEY | sha256sum`).  Settings are
 * `NAME=VALUE` words, each at most once per line:
 *
 *   name=ID          the key id logs and metrics name the key by: 1 to 64 of [A-Za-z0-9._-],
 *                    unique in the file.  Without it the id is "key-" and the first 8 hex
 *                    digits of the key's SHA-256, the same on every load and every machine.
 *   rpm=N|none       requests per minute (N >= 1); none: no limit.  Absent: the server default.
 *   tpm=N|none       tokens (prompt + completion) per minute, likewise.
 *   budget_tokens=N|none  total tokens the key may ever use, likewise.
 *   models=A,B,...   the model names the key may call (at most LLM_KEY_MODELS_MAX bytes in
 *                    all); absent or "*": every model.
 *
 * A key given twice, a name given twice, an unknown setting or a bad value fails the whole
 * load with "FILE:LINE: message" in the diagnostic.  The message never quotes a key.
 *
 * After a load, keys live only as SHA-256 digests: the text of the file is wiped and freed.
 * A presented key is hashed and its digest compared with CRYPTO_memcmp, so neither the time
 * nor the result of a comparison depends on where two keys first differ, and hashing first
 * means the key's length is not leaked either.  The digests sit in a hash table keyed by
 * their first bytes, so a check costs one SHA-256 and one comparison however many keys there
 * are; what the table's timing could reveal is a bucket of a digest, which is of no use
 * without a preimage of SHA-256.
 *
 * Thread-safe: checks run on any number of threads while llm_keys_reload() (for SIGHUP)
 * parses the file again and swaps the new set in at once; a failed reload keeps the old set,
 * so a typo in the file never locks everyone out.  Nothing here prints. */
#ifndef LLM_SERVE_KEYS_H
#define LLM_SERVE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define LLM_KEY_ID_MAX	   65  /* a key id with its NUL */
#define LLM_KEY_MODELS_MAX 256 /* the models= list with its NUL */
#define LLM_KEY_MIN_LEN	   8
#define LLM_KEY_MAX_LEN	   256

/* A limit value in struct llm_key: a positive number, or one of these. */
#define LLM_KEY_UNSET (-1) /* not given for this key: the server's default applies */
#define LLM_KEY_NONE  0	   /* "none": no limit for this key */

/* What a check tells about a key: everything but the key. */
struct llm_key {
	char id[LLM_KEY_ID_MAX]; /* name= or "key-XXXXXXXX" */
	int64_t rpm;		 /* LLM_KEY_UNSET, LLM_KEY_NONE or >= 1 */
	int64_t tpm;
	int64_t budget_tokens;
	char models[LLM_KEY_MODELS_MAX]; /* "" for every model, else "a,b,c" */
	long line;			 /* where the key is in the file (for messages) */
};

/* A loaded key file.  Opaque; see above for thread safety. */
struct llm_keys;

/* Load path.  On failure *out is NULL and diag names FILE:LINE. */
enum llm_err llm_keys_open(struct llm_keys **out, const char *path, struct llm_diag *diag);
/* The same from text in memory (name is what diagnostics call it); the text is not kept. */
enum llm_err llm_keys_parse(struct llm_keys **out, const char *text, size_t n, const char *name,
			    struct llm_diag *diag);
void llm_keys_free(struct llm_keys *k);

/* Read the file named at open again and switch to it atomically.  On failure the old set
 * stays in force and the error is returned.  A set made by llm_keys_parse() has no file:
 * LLM_ERR_USAGE. */
enum llm_err llm_keys_reload(struct llm_keys *k, struct llm_diag *diag);

/* How many keys are in force. */
size_t llm_keys_count(struct llm_keys *k);

/* Check a presented key (n bytes, any content).  True and *out filled (when out is not NULL)
 * when it is one of the keys; false otherwise. */
bool llm_keys_check(struct llm_keys *k, const char *key, size_t n, struct llm_key *out);

/* True when the key may call model (its models= list names it, or it has none). */
bool llm_key_allows_model(const struct llm_key *key, const char *model);

/* The id a key without name= gets: "key-" and the first 8 hex digits of its SHA-256. */
void llm_key_id(const char *key, size_t n, char out[LLM_KEY_ID_MAX]);

/* The key in an Authorization header value "Bearer KEY" (scheme case-insensitive, spaces
 * around the key ignored), or NULL when the value is not of that form; *n is its length. */
const char *llm_keys_bearer(const char *header, size_t *n);

#endif
