/* An OCI distribution-spec client (libcurl), and llmops artifacts as OCI artifacts.
 *
 * Any registry that speaks the distribution API (Docker's distribution, Debian's
 * docker-registry, GHCR, Harbor, Zot, ...) holds llmops artifacts for a team.  An artifact is
 * one OCI image manifest (image-spec v1.1):
 *
 *     mediaType     application/vnd.oci.image.manifest.v1+json
 *     artifactType  application/vnd.llmops.model.v1            (LLM_OCI_ARTIFACT_TYPE)
 *     config        the artifact's MANIFEST.json, as stored first in the tarball,
 *                   mediaType application/vnd.llmops.model.config.v1+json
 *     layers        the NAME-VERSION.tar.gz itself, byte for byte,
 *                   mediaType application/vnd.llmops.model.layer.v1.tar+gzip; and, when
 *                   the artifact is signed, its detached signature (the .sig file's bytes),
 *                   mediaType application/vnd.llmops.model.signature.v1; each annotated
 *                   org.opencontainers.image.title = its file name (as ORAS does, so
 *                   `oras pull` writes them under their own names)
 *     annotations   org.opencontainers.image.title (the name), .version, .created (from the
 *                   MANIFEST.json, never the clock), and whatever the caller adds
 *
 * The manifest's bytes depend only on its inputs (keys sorted, no clock read here).  Tags are
 * versions (a semver '+' becomes '_', as Helm does, since tags cannot hold '+') and aliases
 * (production, staging), each an ordinary tag re-put on the same manifest bytes.
 *
 * A reference `oci://HOST[:PORT][/NAMESPACE]` names a registry and a namespace inside it;
 * artifact NAME lives in repository NAMESPACE/NAME.  The scheme is plain HTTP for a loopback
 * host (localhost, 127.0.0.0/8, [::1]) and HTTPS with the certificate verified for any other,
 * unless the options say otherwise (LLMOPS_OCI_INSECURE).
 *
 * Authentication follows what the registry asks for in its WWW-Authenticate challenge:
 * nothing (anonymous), Basic (credentials sent to the registry), or Bearer (a token fetched
 * from the challenge's realm for its service and scope, with the credentials when there are
 * some, then the request retried with it: the Docker token flow GHCR, Harbor and Docker Hub
 * use).  Credentials come from the options (llm_oci_opts_env: LLMOPS_OCI_USER and
 * LLMOPS_OCI_PASSWORD), else the first "auths" entry for the host in $REGISTRY_AUTH_FILE,
 * $XDG_RUNTIME_DIR/containers/auth.json, then $DOCKER_CONFIG/config.json or
 * ~/.docker/config.json, as podman and docker login write them (credential helpers are not
 * run).  The Authorization header never follows a redirect to another host (blob downloads
 * often redirect to a storage server), and an HTTPS registry's token realm must be HTTPS.
 *
 * The oci:// kind of registry (llm_registry_open_oci, declared in artifact/registry.h) is
 * built on this in oci.c: push, pull, names (the catalog), versions and aliases (tags), show
 * (the manifest and config), alias moves (tags re-put).  An OCI registry keeps no audit log,
 * so that kind has no history.
 *
 * Every blob that comes down is hashed as it streams and refused (LLM_ERR_CHECK) when its
 * digest or size differs from the one asked for; a file being downloaded is written to a
 * temporary and renamed into place only when it verified.  A failure names the registry, the
 * operation, the HTTP status and the registry's own error (errors[].code and .message).
 * Errors: LLM_ERR_USAGE (a bad reference, name or tag), LLM_ERR_NOT_FOUND (404, or a tag
 * that is not there), LLM_ERR_REMOTE (any other refusal, a transport failure, a denied
 * login), LLM_ERR_CHECK (a digest or size mismatch), LLM_ERR_FORMAT (a manifest that is not
 * an llmops artifact), LLM_ERR_IO, LLM_ERR_NOMEM.
 *
 * Nothing here prints or exits.  A client is used by one thread at a time. */
#ifndef LLM_ARTIFACT_OCI_H
#define LLM_ARTIFACT_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"

#define LLM_OCI_ARTIFACT_TYPE "application/vnd.llmops.model.v1"
#define LLM_OCI_CONFIG_TYPE   "application/vnd.llmops.model.config.v1+json"
#define LLM_OCI_LAYER_TYPE    "application/vnd.llmops.model.layer.v1.tar+gzip"
#define LLM_OCI_SIG_TYPE      "application/vnd.llmops.model.signature.v1"
#define LLM_OCI_MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"

/* "sha256:" and 64 hex digits, and the NUL. */
#define LLM_OCI_DIGEST_MAX 72
/* The largest manifest read or written (the distribution spec's recommended limit). */
#define LLM_OCI_MANIFEST_MAX (4u << 20)
/* The largest config blob (an artifact's MANIFEST.json) read back. */
#define LLM_OCI_CONFIG_MAX (64u << 20)

enum llm_oci_transport {
	LLM_OCI_AUTO = 0, /* HTTP for a loopback host, HTTPS otherwise */
	LLM_OCI_HTTP,	  /* plain HTTP whatever the host (LLMOPS_OCI_INSECURE=1) */
	LLM_OCI_HTTPS,	  /* HTTPS even on loopback (LLMOPS_OCI_INSECURE=0) */
};

struct llm_oci_opts {
	enum llm_oci_transport transport;
	/* Basic credentials; NULL for none.  With no user, the Docker and Podman configuration
	 * files are consulted unless no_auth_files is set (llm_oci_opts_env reads the
	 * LLMOPS_OCI_USER and LLMOPS_OCI_PASSWORD variables into these). */
	const char *user;
	const char *password;
	bool no_auth_files;
	const char *ca_file;	  /* PEM bundle to verify the server with; NULL: the system's */
	uint64_t chunk_size;	  /* upload blobs larger than this in PATCH chunks of this
				   * size; 0: one monolithic PUT whatever the size */
	double connect_timeout_s; /* 0: 30 s */
	double stall_timeout_s;	  /* a transfer that moves no byte this long fails; 0: 60 s */
};

/* The defaults: transport auto, no credentials given, monolithic uploads. */
void llm_oci_opts_default(struct llm_oci_opts *o);
/* Overlay the environment: LLMOPS_OCI_INSECURE (1/true/yes: plain HTTP, 0/false/no: HTTPS),
 * LLMOPS_OCI_USER, LLMOPS_OCI_PASSWORD, LLMOPS_OCI_CA_FILE, LLMOPS_OCI_CHUNK_SIZE (bytes).
 * The strings point into the environment.  LLM_ERR_USAGE for a value that does not parse. */
enum llm_err llm_oci_opts_env(struct llm_oci_opts *o, struct llm_diag *diag);

/* A parsed oci:// reference. */
struct llm_oci_url {
	char host[256];	     /* HOST[:PORT] as given (an IPv6 address in brackets) */
	char namespace[256]; /* the path, without slashes at either end; may be empty */
	bool loopback;
};
/* Parse `oci://HOST[:PORT][/NAMESPACE]`; the namespace must be a valid repository path
 * (lower-case components of letters, digits and single separators . _ __ -). */
enum llm_err llm_oci_url_parse(const char *url, struct llm_oci_url *out, struct llm_diag *diag);

/* Whether s is a valid repository name, and a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}). */
bool llm_oci_valid_repo(const char *s);
bool llm_oci_valid_tag(const char *s);
/* The tag for a version or alias: '+' (semver build metadata) becomes '_'.  LLM_ERR_USAGE
 * when the result is still not a valid tag. */
enum llm_err llm_oci_tag_for(const char *version, char *out, size_t outsz, struct llm_diag *diag);
/* Whether s is "sha256:" and 64 lower-case hex digits. */
bool llm_oci_valid_digest(const char *s);

struct llm_oci;

/* A client for the registry `url` names (no request is made).  o may be NULL (defaults). */
enum llm_err llm_oci_open(struct llm_oci **out, const char *url, const struct llm_oci_opts *o,
			  struct llm_diag *diag);
void llm_oci_close(struct llm_oci *c);
/* The namespace of the reference ("" when none), and the repository for artifact name:
 * NAMESPACE/NAME, or NAME.  LLM_ERR_USAGE when that is not a valid repository name. */
const char *llm_oci_namespace(const struct llm_oci *c);
enum llm_err llm_oci_repo_for(const struct llm_oci *c, const char *name, char *out, size_t outsz,
			      struct llm_diag *diag);

/* GET /v2/: the registry answers and, when it asks for a login, the credentials pass. */
enum llm_err llm_oci_ping(struct llm_oci *c, struct llm_diag *diag);

/* HEAD a blob.  *size (may be NULL) gets its Content-Length when it exists. */
enum llm_err llm_oci_blob_exists(struct llm_oci *c, const char *repo, const char *digest,
				 bool *exists, uint64_t *size, struct llm_diag *diag);
/* Upload bytes, or a file, as a blob unless the registry has it already; the digest
 * ("sha256:...") and size are computed here and returned. */
enum llm_err llm_oci_blob_push_mem(struct llm_oci *c, const char *repo, const void *p, size_t n,
				   char digest[LLM_OCI_DIGEST_MAX], struct llm_diag *diag);
enum llm_err llm_oci_blob_push_file(struct llm_oci *c, const char *repo, const char *path,
				    char digest[LLM_OCI_DIGEST_MAX], uint64_t *size,
				    struct llm_diag *diag);
/* Download a blob into memory (at most max bytes) or into path (atomically), verifying its
 * digest, and its size when size >= 0. */
enum llm_err llm_oci_blob_pull_mem(struct llm_oci *c, const char *repo, const char *digest,
				   int64_t size, size_t max, struct llm_buf *out,
				   struct llm_diag *diag);
enum llm_err llm_oci_blob_pull_file(struct llm_oci *c, const char *repo, const char *digest,
				    int64_t size, const char *path, struct llm_diag *diag);

/* PUT a manifest under ref (a tag or its digest); digest (may be NULL) gets its digest. */
enum llm_err llm_oci_manifest_put(struct llm_oci *c, const char *repo, const char *ref,
				  const char *media_type, const void *body, size_t n,
				  char digest[LLM_OCI_DIGEST_MAX], struct llm_diag *diag);
/* GET the manifest ref names (a tag or a digest) into body (cleared first); digest (may be
 * NULL) gets the digest of the bytes, which must equal ref when ref is a digest and the
 * Docker-Content-Digest header when the registry sends one.  A missing tag or repository is
 * LLM_ERR_NOT_FOUND. */
enum llm_err llm_oci_manifest_get(struct llm_oci *c, const char *repo, const char *ref,
				  struct llm_buf *body, char digest[LLM_OCI_DIGEST_MAX],
				  struct llm_diag *diag);
/* HEAD a manifest: whether it exists, and its digest (from Docker-Content-Digest; when the
 * registry sends none, from a GET). */
enum llm_err llm_oci_manifest_head(struct llm_oci *c, const char *repo, const char *ref,
				   bool *exists, char digest[LLM_OCI_DIGEST_MAX],
				   struct llm_diag *diag);
/* DELETE a manifest by digest (every tag on it goes); registries may refuse (405). */
enum llm_err llm_oci_manifest_delete(struct llm_oci *c, const char *repo, const char *digest,
				     struct llm_diag *diag);
/* DELETE one tag, leaving the manifest and its other tags (distribution-spec 1.1); many
 * registries refuse it (Docker's distribution 2.x answers UNSUPPORTED): LLM_ERR_REMOTE. */
enum llm_err llm_oci_tag_delete(struct llm_oci *c, const char *repo, const char *tag,
				struct llm_diag *diag);

/* A list of strings (tags, repositories), owned by the list. */
struct llm_oci_list {
	char **v;
	size_t n;
};
void llm_oci_list_free(struct llm_oci_list *l);
/* Every tag of repo, following the Link: rel="next" pages, in the registry's order (lexical
 * for distribution).  A repository that does not exist gives an empty list. */
enum llm_err llm_oci_tags(struct llm_oci *c, const char *repo, struct llm_oci_list *out,
			  struct llm_diag *diag);
/* Every repository under the namespace from GET /v2/_catalog (paged), with the namespace
 * and its slash removed.  Many hosted registries refuse the catalog: LLM_ERR_REMOTE. */
enum llm_err llm_oci_catalog(struct llm_oci *c, struct llm_oci_list *out, struct llm_diag *diag);

/* --- llmops artifacts ----------------------------------------------------------------- */

/* One descriptor of a manifest. */
struct llm_oci_desc {
	char media_type[128];
	char digest[LLM_OCI_DIGEST_MAX];
	uint64_t size;
};

/* What an artifact's manifest says. */
struct llm_oci_artifact {
	struct llm_oci_desc config; /* the MANIFEST.json */
	struct llm_oci_desc layer;  /* the tarball */
	struct llm_oci_desc sig;    /* the signature, when has_sig */
	bool has_sig;
	char title[256];     /* the tarball layer's file name, "" when not annotated */
	json_t *annotations; /* the manifest's annotations (an object, maybe empty); owned:
			      * llm_oci_artifact_clear releases it */
};
void llm_oci_artifact_clear(struct llm_oci_artifact *a);

/* An annotation to add; pairs with a NULL or empty value are left out. */
struct llm_oci_annotation {
	const char *key;
	const char *value;
};

/* What to push: the tarball's path, its signature's path (or NULL), its MANIFEST.json bytes
 * (the config blob), and what the manifest's annotations say (name, version, created are
 * required).  layer_title names the tarball layer (NULL: the tarball's base name); the
 * signature layer is named after it with ".sig". */
struct llm_oci_push {
	const char *tarball;
	const char *signature;
	const char *layer_title;
	const void *config;
	size_t config_len;
	const char *name;
	const char *version;
	const char *created; /* RFC 3339, from the MANIFEST.json */
	const struct llm_oci_annotation *annotations;
	size_t nannotations;
};

/* The manifest for an artifact whose blobs are described (sig NULL when unsigned; out
 * cleared first); the same inputs always give the same bytes. */
enum llm_err llm_oci_artifact_manifest(const struct llm_oci_push *p,
				       const struct llm_oci_desc *config,
				       const struct llm_oci_desc *layer,
				       const struct llm_oci_desc *sig, struct llm_buf *out,
				       struct llm_diag *diag);
/* Read an artifact's manifest; LLM_ERR_FORMAT when it is not one of ours (another
 * artifactType or config type, no tarball layer, a digest not sha256). */
enum llm_err llm_oci_artifact_parse(const char *body, size_t n, struct llm_oci_artifact *out,
				    struct llm_diag *diag);

/* Push an artifact to repo: both blobs (skipped when the registry has them), then the
 * manifest under each of tags (the first is normally the version tag).  digest (may be NULL)
 * gets the manifest's digest. */
enum llm_err llm_oci_artifact_push(struct llm_oci *c, const char *repo,
				   const struct llm_oci_push *p, const char *const *tags,
				   size_t ntags, char digest[LLM_OCI_DIGEST_MAX],
				   struct llm_diag *diag);
/* Pull the artifact ref names (a tag or a manifest digest): its config (the MANIFEST.json,
 * verified) into config when not NULL, its tarball (verified) into tarball when not NULL, its
 * signature (verified) into sig when it has one and sig is not NULL; what its manifest says
 * into a when not NULL (clear it after), its digest into digest when not NULL. */
enum llm_err llm_oci_artifact_pull(struct llm_oci *c, const char *repo, const char *ref,
				   struct llm_buf *config, const char *tarball, const char *sig,
				   struct llm_oci_artifact *a, char digest[LLM_OCI_DIGEST_MAX],
				   struct llm_diag *diag);
/* Point tag at the manifest from_ref names (a tag or digest), re-putting its exact bytes, so
 * the two resolve to one digest; digest (may be NULL) gets it. */
enum llm_err llm_oci_tag(struct llm_oci *c, const char *repo, const char *from_ref, const char *tag,
			 char digest[LLM_OCI_DIGEST_MAX], struct llm_diag *diag);

#endif
