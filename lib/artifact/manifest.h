/* MANIFEST.json: what an llmops artifact holds, in a canonical form whose digest is the
 * artifact's identity (llmops-manifest(5) is the user's description of the same).
 *
 * A manifest is one JSON object:
 *
 *     format      1 (this schema; a reader refuses a larger number)
 *     name        lower-case ASCII letters and digits, single '.', '_' or '-' between them,
 *                 at most 128 bytes (an OCI repository path component)
 *     version     a SemVer 2.0.0 version ("1.4.0", "2.0.0-rc.1+build.5"), at most 128 bytes
 *     created     RFC 3339 UTC to the second: "2026-11-27T00:00:00Z"
 *     files       [{"path", "size", "sha256", "executable"?}], sorted bytewise by path; a path
 *                 is relative, '/'-separated, without "", "." or ".." components, backslashes
 *                 or control characters; "executable": true only for 0755 files
 *     parent      {"name", "version", "digest"?}: the artifact this one derives from
 *     base_model  {"ref", "digest"?}: the model it was trained from
 *     datasets    [{"name", "sha256", "size", "records"?}]
 *     params      the hyperparameters (an object; llm-tune's params.json)
 *     run         {"id", "status", "llmops_version", "git_commit"?}: the llm-tune run
 *     metrics     {"METRIC": {"score", "ci"?: {"lo","hi","level"}, "signature"?,
 *                 "higher_is_better"?, "records"?}} from an llm-eval report
 *     licence     an SPDX expression ("Apache-2.0")
 *     tags        ["..."]
 *     x-...       anything else a user adds; other unknown keys are refused
 *
 * Only format, name, version, created and files are required.
 *
 * Canonical form (the bytes stored in the tarball, and hashed): UTF-8, no byte-order mark and
 * no whitespace outside strings; object keys sorted by their UTF-8 bytes; strings escaped
 * only where JSON requires it ('"', '\\', and U+0000..U+001F: \b \t \n \f \r as such, others
 * as \u00xx in lower-case hex), everything else written as UTF-8; integers (a number without
 * fraction or exponent that fits in 64 bits) in decimal; any other number as the shortest
 * decimal that reads back as the same IEEE double, in ECMAScript's Number-to-string form
 * (RFC 8785): 0.0003, 1.5, 1e+21, 1.2e-7; so 3.0 is written 3.  Numbers are therefore not
 * kept "as written" by the user: a manifest read and written again by any tool keeps its
 * identity.
 *
 * Identity: "sha256:" and the lower-case hex SHA-256 of the canonical bytes, the same as
 * `tar -xOzf A.tar.gz MANIFEST.json | sha256sum`. */
#ifndef LLM_ARTIFACT_MANIFEST_H
#define LLM_ARTIFACT_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/hash.h"

#define LLM_MANIFEST_FORMAT 1
#define LLM_MANIFEST_PATH   "MANIFEST.json"
/* The largest manifest read: about 150,000 files. */
#define LLM_MANIFEST_MAX_BYTES	 (32u << 20)
#define LLM_MANIFEST_NAME_MAX	 128
#define LLM_MANIFEST_VERSION_MAX 128
#define LLM_MANIFEST_PATH_MAX	 4096
/* "sha256:" and 64 hex digits, with the NUL. */
#define LLM_DIGEST_SIZE (7 + LLM_SHA256_HEX_LEN + 1)

struct llm_manifest_file {
	char *path;
	uint64_t size;
	char sha256[LLM_SHA256_HEX_LEN + 1];
	bool executable;
};

/* The required fields in C form, and the whole document (optional fields included) in doc.
 * Change files through the functions below, then llm_manifest_sync() puts them in doc. */
struct llm_manifest {
	json_t *doc;
	char name[LLM_MANIFEST_NAME_MAX + 1];
	char version[LLM_MANIFEST_VERSION_MAX + 1];
	int64_t created; /* seconds since the epoch */
	struct llm_manifest_file *files;
	size_t nfiles;
	size_t cap;
	uint64_t total_size; /* sum of the file sizes */
};

/* A new manifest; name and version are checked.  created: seconds since the epoch (0 to
 * 253402300799, years 1970 to 9999). */
enum llm_err llm_manifest_init(struct llm_manifest *m, const char *name, const char *version,
			       int64_t created, struct llm_diag *d);
void llm_manifest_free(struct llm_manifest *m);

/* Add a file (its digest may be left empty until packing fills it in).  The path is checked. */
enum llm_err llm_manifest_add_file(struct llm_manifest *m, const char *path, uint64_t size,
				   const char *sha256_hex, bool executable, struct llm_diag *d);
/* Sort the files by path and refuse duplicates and a path that is also a folder of another. */
enum llm_err llm_manifest_sort_files(struct llm_manifest *m, struct llm_diag *d);
/* The index of a file by path (files sorted), or -1. */
long llm_manifest_find(const struct llm_manifest *m, const char *path);
/* Set an optional field (steals v; NULL removes it).  The value is checked as parse would. */
enum llm_err llm_manifest_set(struct llm_manifest *m, const char *key, json_t *v,
			      struct llm_diag *d);
/* Write name, version, created and files into doc. */
enum llm_err llm_manifest_sync(struct llm_manifest *m);

/* The canonical bytes (after sync), appended to out; and the identity. */
enum llm_err llm_manifest_canonical(struct llm_manifest *m, struct llm_buf *out);
enum llm_err llm_manifest_identity(struct llm_manifest *m, char out[LLM_DIGEST_SIZE]);

/* Parse and check a manifest.  file names it in diagnostics ("x.tar.gz:MANIFEST.json").  With
 * require_canonical, bytes that are not exactly the canonical form are refused (an artifact
 * must carry its manifest canonical, so that its identity is the digest of what it holds). */
enum llm_err llm_manifest_parse(struct llm_manifest *m, const char *s, size_t n, const char *file,
				bool require_canonical, struct llm_diag *d);

/* --- pieces others need too ---------------------------------------------------------------- */

/* The canonical serialization of any JSON value, appended to out. */
enum llm_err llm_json_canonical(const json_t *v, struct llm_buf *out);
/* "sha256:HEX" of n bytes. */
enum llm_err llm_digest(const void *p, size_t n, char out[LLM_DIGEST_SIZE]);
/* Whether s is "sha256:" and 64 lower-case hex digits. */
bool llm_digest_valid(const char *s);

/* Checks with the reason in diag (field names what is checked, for the message). */
enum llm_err llm_artifact_name_check(const char *name, struct llm_diag *d);
enum llm_err llm_semver_check(const char *v, struct llm_diag *d);
/* SemVer 2.0.0 precedence: <0, 0, >0 (build metadata ignored); both must be valid. */
int llm_semver_cmp(const char *a, const char *b);
/* Whether path is a safe relative path as the manifest allows (reason in diag). */
enum llm_err llm_artifact_path_check(const char *path, struct llm_diag *d);

/* RFC 3339 UTC "YYYY-MM-DDTHH:MM:SSZ" (21 bytes with the NUL) and back.  parse accepts
 * exactly that form, or "@SECONDS". */
void llm_rfc3339_format(int64_t t, char out[21]);
bool llm_rfc3339_parse(const char *s, int64_t *t);

/* --- the optional fields, from the files other tools write ----------------------------------- */

/* params: a params.json, or an llm-tune run folder (its params.json; *run gets the run's
 * {"id","status","llmops_version","git_commit"} and *data its data digests as manifest
 * datasets, either may be NULL). */
enum llm_err llm_manifest_params_from(const char *path, json_t **params, json_t **run,
				      json_t **data, struct llm_diag *d);
/* metrics: an llm-eval --report JSON, kept as METRIC → {score, ci, signature,
 * higher_is_better, records}. */
enum llm_err llm_manifest_metrics_from(const char *path, json_t **metrics, struct llm_diag *d);
/* One dataset entry for a file: name (NULL: the file's base name), sha256, size, and records
 * (lines) for .jsonl files. */
enum llm_err llm_manifest_dataset_from(const char *path, const char *name, json_t **out,
				       struct llm_diag *d);

#endif
