/* Model registries: where packed artifacts (NAME-VERSION.tar.gz, see lib/artifact/manifest.h)
 * are kept by name and version, with aliases (production, staging, ...) that move atomically
 * and, for the directory kind, an append-only audit log of every change.
 *
 * Two kinds sit behind one table of operations (struct llm_registry_ops):
 *
 *   - a directory, the default ($LLMOPS_HOME/registry, LLMOPS_HOME defaulting to ~/.llmops),
 *     implemented in registry.c; its layout is documented in llmops-registry(5):
 *
 *         REG/registry.json                  optional policy: {"require_signature": bool,
 *                                            "pubkeys": ["KEY.pub", ...]} (relative to REG)
 *         REG/lock                           flock(2)ed around every change
 *         REG/journal                        the audit line of the change in progress
 *         REG/audit.log                      JSONL, one line per change, appended
 *         REG/names/NAME/versions/VERSION/   immutable once renamed into place:
 *             artifact.tar.gz  artifact.tar.gz.sig (when signed)  MANIFEST.json  digest
 *             pushed.json                    {"pushed","by","size","reason"}
 *         REG/names/NAME/aliases/ALIAS       the version, one line; replaced by rename
 *         REG/names/NAME/.tmp-*              a push or alias change cut short; ignored by every
 *                                            reader and removed by the next change to NAME
 *
 *   - an OCI distribution registry (oci://host[:port]/repo), implemented in oci.c.
 *
 * A change to a directory registry (push, alias) holds the lock, writes its audit line to the
 * journal, makes itself visible with one rename, appends the line to audit.log and removes the
 * journal.  The next change first completes an interrupted one: the line is appended when the
 * journal's change is in the tree and the log does not end with it.  So after a kill -9 at any
 * moment the tree is consistent and the log holds each change that happened exactly once.
 *
 * The OCI kind.  oci.c implements
 *
 *     enum llm_err llm_registry_open_oci(struct llm_registry *r, const char *url,
 *                                        struct llm_diag *d);
 *
 * r arrives zeroed except r->ref (the reference as the user gave it, owned by registry.c).
 * Set r->ops to your table and r->impl to your state (freed by your ops->close, which must not
 * free r itself); leave r->require_signature false and r->pubkeys NULL unless the registry
 * itself says otherwise.  url is r->ref ("oci://host[:port]/repo[/...]").  An op you cannot
 * provide may be NULL: the generic layer then answers "not supported by oci registries" with
 * LLM_ERR_USAGE (history is the likely one).  Names, versions and aliases reaching the ops
 * have been checked with llm_registry_name_ok / _version_ok / _alias_ok, so
 * they are safe as path components and OCI tags (a version's "+build" needs mapping: tags
 * cannot hold '+').  The generic layer resolves "latest", checks immutability before push
 * (through show) and verifies what pull fetched; the ops only move bytes and records.
 * registry.c calls llm_registry_open_oci only for oci:// references, through a weak
 * reference, so the library links before oci.c exists. */
#ifndef LLM_ARTIFACT_REGISTRY_H
#define LLM_ARTIFACT_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

#define LLM_REGISTRY_NAME_MAX	 128
#define LLM_REGISTRY_VERSION_MAX 128

struct llm_registry;

/* What an artifact being pushed is, read from its MANIFEST.json by llm_registry_push. */
struct llm_registry_artifact {
	const char *path;     /* the NAME-VERSION.tar.gz */
	const char *sig_path; /* its detached signature (PATH.sig), or NULL */
	const char *name;
	const char *version;
	const char *digest;   /* the identity: "sha256:" and 64 hex digits */
	const char *manifest; /* MANIFEST.json as stored in the tarball */
	size_t manifest_len;
	uint64_t size; /* bytes of the tarball */
};

/* Who makes a change and why, for the audit log. */
struct llm_registry_why {
	const char *action; /* "push", "alias", "promote", "delete" */
	const char *who;    /* llm_registry_who() */
	const char *reason; /* --reason, or NULL */
};

/* One version, as show reports it.  Strings are owned; free with llm_registry_entry_clear. */
struct llm_registry_entry {
	char *name;
	char *version;
	char *digest;	/* "sha256:<hex>", the artifact's identity */
	char *manifest; /* MANIFEST.json text */
	char *pushed;	/* RFC 3339, or NULL when the registry does not know */
	char *pushed_by;
	uint64_t size;	/* bytes of the tarball, 0 when unknown */
	bool is_signed; /* a detached signature is stored with it */
};
void llm_registry_entry_clear(struct llm_registry_entry *e);

/* String lists below are NULL-terminated arrays with their count, sorted (names bytewise,
 * versions by SemVer precedence, aliases bytewise); free with llm_strv_free (core/opt.h). */
struct llm_registry_ops {
	const char *kind; /* "dir", "oci" */
	/* Store a version.  Existing with the same digest: LLM_OK and *existed = true; with
	 * another digest: LLM_ERR_CHECK (versions never change). */
	enum llm_err (*push)(struct llm_registry *r, const struct llm_registry_artifact *a,
			     const struct llm_registry_why *why, bool *existed, struct llm_diag *d);
	/* Write the version's tarball to path (atomically), and its signature to sig_path when
	 * it has one and sig_path is not NULL; *has_sig says whether it had one. */
	enum llm_err (*pull)(struct llm_registry *r, const char *name, const char *version,
			     const char *path, const char *sig_path, bool *has_sig,
			     struct llm_diag *d);
	enum llm_err (*names)(struct llm_registry *r, char ***names, size_t *n, struct llm_diag *d);
	/* LLM_ERR_NOT_FOUND when the name has no versions. */
	enum llm_err (*versions)(struct llm_registry *r, const char *name, char ***versions,
				 size_t *n, struct llm_diag *d);
	/* LLM_ERR_NOT_FOUND when there is no such version. */
	enum llm_err (*show)(struct llm_registry *r, const char *name, const char *version,
			     struct llm_registry_entry *e, struct llm_diag *d);
	/* The version an alias names; LLM_ERR_NOT_FOUND when unset. */
	enum llm_err (*alias_get)(struct llm_registry *r, const char *name, const char *alias,
				  char **version, struct llm_diag *d);
	/* Point alias at version (an existing one), or remove it when version is NULL;
	 * *previous (when not NULL) gets the version it named before, or NULL. */
	enum llm_err (*alias_set)(struct llm_registry *r, const char *name, const char *alias,
				  const char *version, const struct llm_registry_why *why,
				  char **previous, struct llm_diag *d);
	/* Aliases of a name with the versions they point at, parallel arrays. */
	enum llm_err (*aliases)(struct llm_registry *r, const char *name, char ***aliases,
				char ***versions, size_t *n, struct llm_diag *d);
	/* Audit records, oldest first, for one name or all (name NULL): a JSON array. */
	enum llm_err (*history)(struct llm_registry *r, const char *name, json_t **records,
				struct llm_diag *d);
	void (*close)(struct llm_registry *r); /* frees impl, not r */
};

struct llm_registry {
	const struct llm_registry_ops *ops;
	void *impl;
	char *ref; /* as given: a directory or oci://... */
	bool require_signature;
	char **pubkeys; /* PEM files a signature must verify against (NULL-terminated) */
	size_t npubkeys;
};

/* The registry reference to use: explicit when not NULL or empty, else LLMOPS_PACK_REGISTRY,
 * else $LLMOPS_HOME/registry, else ~/.llmops/registry. */
enum llm_err llm_registry_default_ref(const char *explicit_ref, char *out, size_t outsz,
				      struct llm_diag *d);
/* Open a registry: oci:// URLs through oci.c, anything else a directory (created on first
 * change, with its parents; a reader of a missing directory sees an empty registry). */
enum llm_err llm_registry_open(const char *ref, struct llm_registry **out, struct llm_diag *d);
void llm_registry_close(struct llm_registry *r);
/* Implemented in oci.c (see the note at the top). */
enum llm_err llm_registry_open_oci(struct llm_registry *r, const char *url, struct llm_diag *d);

/* Checks for what goes into paths and tags.  A name as manifest.h allows one (lower-case
 * letters and digits, single '.', '_' or '-' between them, at most 128 bytes: an OCI repository
 * component).  An alias: 1-128 of [A-Za-z0-9._-], starting with a letter (so never a
 * version); "latest" passes here but cannot be set (it is derived).  A version: SemVer 2.0.0
 * (llm_semver_check of manifest.h, whose llm_semver_cmp orders them). */
bool llm_registry_name_ok(const char *name);
bool llm_registry_alias_ok(const char *alias);
bool llm_registry_version_ok(const char *version);

/* "user@host": LLMOPS_USER when set, else the passwd name and the node name. */
void llm_registry_who(char *out, size_t outsz);

/* Split "NAME[@REF]"; *at is NULL when there is no '@'.  Returns a copy to free (name points
 * into it).  LLM_ERR_USAGE when the name or ref is malformed. */
enum llm_err llm_registry_split_ref(const char *s, char **name, char **at, struct llm_diag *d);

/* Resolve REF (a version, an alias, "latest", or NULL meaning latest) to a version of name
 * that exists.  LLM_ERR_NOT_FOUND when nothing matches. */
enum llm_err llm_registry_resolve(struct llm_registry *r, const char *name, const char *ref,
				  char **version, struct llm_diag *d);

/* Push an artifact file: its manifest is read and the tarball verified first; PATH.sig
 * beside it travels with it.  *existed is set when the same version was already there with
 * the same digest (a no-op); a different digest is LLM_ERR_CHECK. */
enum llm_err llm_registry_push(struct llm_registry *r, const char *path, const char *reason,
			       struct llm_registry_entry *pushed, bool *existed,
			       struct llm_diag *d);

/* Fetch name@version to path (and its signature to path.sig when it has one), verified
 * against the recorded digest before it appears at path. */
enum llm_err llm_registry_pull(struct llm_registry *r, const char *name, const char *version,
			       const char *path, bool *has_sig, struct llm_diag *d);

enum llm_err llm_registry_show(struct llm_registry *r, const char *name, const char *version,
			       struct llm_registry_entry *e, struct llm_diag *d);
enum llm_err llm_registry_names(struct llm_registry *r, char ***names, size_t *n,
				struct llm_diag *d);
enum llm_err llm_registry_versions(struct llm_registry *r, const char *name, char ***versions,
				   size_t *n, struct llm_diag *d);
enum llm_err llm_registry_aliases(struct llm_registry *r, const char *name, char ***aliases,
				  char ***versions, size_t *n, struct llm_diag *d);

/* Point an alias at an existing version (version NULL removes it); action is "alias" or
 * "promote" for the log.  *previous as in the ops. */
enum llm_err llm_registry_alias_set(struct llm_registry *r, const char *name, const char *alias,
				    const char *version, const char *action, const char *reason,
				    char **previous, struct llm_diag *d);

/* Promote: pull name@version into a temporary file, verify it, check its signature against
 * the registry's pubkeys when the registry requires signatures (LLM_ERR_CHECK when unsigned
 * or not signed by one of them), then move the alias. */
enum llm_err llm_registry_promote(struct llm_registry *r, const char *name, const char *version,
				  const char *alias, const char *reason, char **previous,
				  struct llm_diag *d);

/* The parent chain of name@version from the manifests: a JSON array of
 * {"name","version","digest"} starting with the version itself, following each manifest's
 * parent while it is in this registry; a parent outside it ends the chain with
 * {"ref": ..., "missing": true}.  Cycles end it too. */
enum llm_err llm_registry_lineage(struct llm_registry *r, const char *name, const char *version,
				  json_t **chain, struct llm_diag *d);

/* The audit log (all names when name is NULL), oldest first. */
enum llm_err llm_registry_history(struct llm_registry *r, const char *name, json_t **records,
				  struct llm_diag *d);

#endif
