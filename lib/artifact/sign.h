/* Detached Ed25519 signatures over an artifact's identity (OpenSSL 3).
 *
 * Keys are PEM files: the private key PKCS#8 ("BEGIN PRIVATE KEY", written mode 0600), the
 * public key SubjectPublicKeyInfo ("BEGIN PUBLIC KEY"), as `openssl genpkey -algorithm ed25519`
 * and `openssl pkey -pubout` write them.  A key's id is "sha256:" and the hex SHA-256 of its
 * 32 raw public-key bytes.
 *
 * The signed message is the ASCII text LLM_SIGN_CONTEXT followed by the identity, with nothing
 * after it: "llmops-artifact-v1 sha256:<64 hex>" (90 bytes).  The prefix keeps a signature made
 * for an artifact from meaning anything anywhere else.  Ed25519 is deterministic, so signing
 * again with the same key gives the same bytes.
 *
 * The signature file (NAME-VERSION.tar.gz.sig) is one canonical JSON object and a newline:
 *     {"alg":"ed25519","digest":"sha256:...","format":1,"key_id":"sha256:...","sig":"BASE64"}
 * with the 64-byte signature in padded base64.  It sits beside the tarball and never changes
 * it: the artifact's identity is the same signed or not. */
#ifndef LLM_ARTIFACT_SIGN_H
#define LLM_ARTIFACT_SIGN_H

#include <stddef.h>

#include "artifact/manifest.h"
#include "core/buf.h"
#include "core/err.h"

#define LLM_SIGN_CONTEXT   "llmops-artifact-v1 "
#define LLM_SIGN_FORMAT	   1
#define LLM_SIGN_MAX_BYTES 65536

/* A new key pair: PREFIX.pem (private, 0600) and PREFIX.pub (public).  Neither may exist. */
enum llm_err llm_sign_keygen(const char *prefix, char key_id[LLM_DIGEST_SIZE], struct llm_diag *d);

/* The id of the key in a PEM file (public or private). */
enum llm_err llm_sign_key_id(const char *key_path, char key_id[LLM_DIGEST_SIZE],
			     struct llm_diag *d);

/* Sign identity with the private key in key_path: the signature file's text, appended to out. */
enum llm_err llm_sign(const char *key_path, const char *identity, struct llm_buf *out,
		      struct llm_diag *d);

/* Check the signature file text sig[0..n) (sig_file names it in messages) against identity and
 * the public key in pub_path (a private key file works too).  A signature that does not match
 * (another artifact, another key, altered bytes) is LLM_ERR_CHECK; a malformed file
 * LLM_ERR_FORMAT.  key_id (may be NULL) gets the file's key id. */
enum llm_err llm_sign_verify(const char *pub_path, const char *identity, const char *sig, size_t n,
			     const char *sig_file, char key_id[LLM_DIGEST_SIZE],
			     struct llm_diag *d);

#endif
