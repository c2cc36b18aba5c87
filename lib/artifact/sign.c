/* Detached Ed25519 signatures over an artifact's identity (see sign.h). */
#include "config.h"

#include "artifact/sign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define ED25519_SIG_LEN 64
#define ED25519_KEY_LEN 32

static enum llm_err ssl_fail(struct llm_diag *d, enum llm_err code, const char *file,
			     const char *what)
{
	char why[256] = "";
	unsigned long err = ERR_get_error();
	if (err)
		ERR_error_string_n(err, why, sizeof why);
	ERR_clear_error();
	return llm_diag_set(d, code, file, 0, "%s%s%s", what, *why ? ": " : "", why);
}

static enum llm_err key_id_of(EVP_PKEY *k, char out[LLM_DIGEST_SIZE])
{
	unsigned char raw[ED25519_KEY_LEN];
	size_t n = sizeof raw;
	if (EVP_PKEY_get_raw_public_key(k, raw, &n) != 1 || n != sizeof raw)
		return LLM_ERR_FORMAT;
	return llm_digest(raw, n, out);
}

/* A key from a PEM file: a private key when want_private, else a public key (or the public
 * half of a private key). */
static enum llm_err load_key(const char *path, bool want_private, EVP_PKEY **out,
			     struct llm_diag *d)
{
	*out = NULL;
	FILE *f = fopen(path, "r");
	if (!f)
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "cannot open the key: %s", strerror(errno));
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	if (!k && !want_private) {
		ERR_clear_error();
		rewind(f);
		k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	}
	fclose(f);
	if (!k)
		return ssl_fail(d, LLM_ERR_FORMAT, path,
				want_private ? "not a PEM private key" : "not a PEM key");
	if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		return llm_diag_set(d, LLM_ERR_FORMAT, path, 0, "not an Ed25519 key");
	}
	*out = k;
	return LLM_OK;
}

static enum llm_err write_pem(const char *path, EVP_PKEY *k, bool private_key, struct llm_diag *d)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, private_key ? 0600 : 0644);
	if (fd < 0)
		return llm_diag_set(d, errno == EEXIST ? LLM_ERR_USAGE : LLM_ERR_IO, path, 0,
				    errno == EEXIST ? "exists already: keys are never overwritten"
						    : "cannot create: %s",
				    strerror(errno));
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(path);
		return llm_diag_set(d, LLM_ERR_IO, path, 0, "%s", strerror(errno));
	}
	int ok = private_key ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL)
			     : PEM_write_PUBKEY(f, k);
	ok = fflush(f) == 0 && fsync(fd) == 0 && ok;
	ok = fclose(f) == 0 && ok;
	if (!ok) {
		unlink(path);
		return ssl_fail(d, LLM_ERR_IO, path, "cannot write the key");
	}
	return LLM_OK;
}

enum llm_err llm_sign_keygen(const char *prefix, char key_id[LLM_DIGEST_SIZE], struct llm_diag *d)
{
	char priv[4096], pub[4096];
	if ((size_t)snprintf(priv, sizeof priv, "%s.pem", prefix) >= sizeof priv ||
	    (size_t)snprintf(pub, sizeof pub, "%s.pub", prefix) >= sizeof pub)
		return llm_diag_set(d, LLM_ERR_USAGE, prefix, 0, "path too long");
	if (!access(pub, F_OK))
		return llm_diag_set(d, LLM_ERR_USAGE, pub, 0,
				    "exists already: keys are never overwritten");
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!k)
		return ssl_fail(d, LLM_ERR_NOMEM, NULL, "cannot make a key");
	enum llm_err e = write_pem(priv, k, true, d);
	if (!e && (e = write_pem(pub, k, false, d)))
		unlink(priv);
	if (!e && key_id_of(k, key_id))
		e = llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0, "cannot read the new public key");
	EVP_PKEY_free(k);
	return e;
}

enum llm_err llm_sign_key_id(const char *key_path, char key_id[LLM_DIGEST_SIZE], struct llm_diag *d)
{
	EVP_PKEY *k;
	enum llm_err e = load_key(key_path, false, &k, d);
	if (e)
		return e;
	if (key_id_of(k, key_id))
		e = llm_diag_set(d, LLM_ERR_FORMAT, key_path, 0, "cannot read the public key");
	EVP_PKEY_free(k);
	return e;
}

static bool message(const char *identity, char *out, size_t outsz)
{
	return llm_digest_valid(identity) &&
	       (size_t)snprintf(out, outsz, "%s%s", LLM_SIGN_CONTEXT, identity) < outsz;
}

enum llm_err llm_sign(const char *key_path, const char *identity, struct llm_buf *out,
		      struct llm_diag *d)
{
	char msg[128];
	if (!message(identity, msg, sizeof msg))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "not an artifact identity: %s",
				    identity);
	EVP_PKEY *k;
	enum llm_err e = load_key(key_path, true, &k, d);
	if (e)
		return e;
	unsigned char sig[ED25519_SIG_LEN];
	size_t siglen = sizeof sig;
	char kid[LLM_DIGEST_SIZE];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c || EVP_DigestSignInit(c, NULL, NULL, NULL, k) != 1 ||
	    EVP_DigestSign(c, sig, &siglen, (const unsigned char *)msg, strlen(msg)) != 1 ||
	    siglen != sizeof sig || key_id_of(k, kid))
		e = ssl_fail(d, LLM_ERR_FORMAT, key_path, "signing failed");
	EVP_MD_CTX_free(c);
	EVP_PKEY_free(k);
	if (e)
		return e;
	struct llm_buf b64;
	llm_buf_init(&b64, 0);
	json_t *o = NULL;
	if (!(e = llm_buf_base64(&b64, sig, siglen)))
		o = json_pack("{s:s,s:s,s:i,s:s,s:s}", "alg", "ed25519", "digest", identity,
			      "format", LLM_SIGN_FORMAT, "key_id", kid, "sig", b64.data);
	if (!o || llm_json_canonical(o, out) || llm_buf_putc(out, '\n'))
		e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	json_decref(o);
	llm_buf_free(&b64);
	return e;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Padded base64 of exactly want bytes. */
static bool b64_decode(const char *s, unsigned char *out, size_t want)
{
	size_t n = strlen(s), o = 0;
	if (n != (want + 2) / 3 * 4)
		return false;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		for (int j = 0; j < 4; j++) {
			v[j] = s[i + j] == '=' && i + 4 == n && j >= 2 ? 0 : b64_value(s[i + j]);
			if (v[j] < 0)
				return false;
		}
		unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 |
			     (unsigned)v[3];
		unsigned char bytes[3] = {(unsigned char)(x >> 16), (unsigned char)(x >> 8),
					  (unsigned char)x};
		for (int j = 0; j < 3 && o < want; j++)
			out[o++] = bytes[j];
	}
	return o == want;
}

enum llm_err llm_sign_verify(const char *pub_path, const char *identity, const char *sig, size_t n,
			     const char *sig_file, char key_id[LLM_DIGEST_SIZE], struct llm_diag *d)
{
	char msg[128];
	if (!message(identity, msg, sizeof msg))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "not an artifact identity: %s",
				    identity);
	if (n > LLM_SIGN_MAX_BYTES)
		return llm_diag_set(d, LLM_ERR_FORMAT, sig_file, 0, "too large for a signature");
	json_error_t je;
	json_t *o = json_loadb(sig, n, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return llm_diag_set(d, LLM_ERR_FORMAT, sig_file, je.line > 0 ? je.line : 0,
				    "not a signature file: %s", je.text);
	const char *alg = json_string_value(json_object_get(o, "alg"));
	const char *digest = json_string_value(json_object_get(o, "digest"));
	const char *kid = json_string_value(json_object_get(o, "key_id"));
	const char *b64 = json_string_value(json_object_get(o, "sig"));
	json_t *fmt = json_object_get(o, "format");
	unsigned char raw[ED25519_SIG_LEN];
	enum llm_err e = LLM_OK;
	if (!json_is_integer(fmt) || json_integer_value(fmt) != LLM_SIGN_FORMAT)
		e = llm_diag_set(d, LLM_ERR_FORMAT, sig_file, 0, "not a format 1 signature file");
	else if (!alg || strcmp(alg, "ed25519"))
		e = llm_diag_set(d, LLM_ERR_FORMAT, sig_file, 0, "algorithm '%s' is not ed25519",
				 alg ? alg : "?");
	else if (!llm_digest_valid(digest) || !llm_digest_valid(kid) || !b64 ||
		 !b64_decode(b64, raw, sizeof raw))
		e = llm_diag_set(d, LLM_ERR_FORMAT, sig_file, 0,
				 "needs digest, key_id and a 64-byte base64 sig");
	else if (strcmp(digest, identity))
		e = llm_diag_set(d, LLM_ERR_CHECK, sig_file, 0,
				 "signs another artifact (%s), not this one (%s)", digest,
				 identity);
	if (!e && key_id)
		snprintf(key_id, LLM_DIGEST_SIZE, "%s", kid);
	EVP_PKEY *k = NULL;
	char have[LLM_DIGEST_SIZE];
	if (!e && !(e = load_key(pub_path, false, &k, d)) && !key_id_of(k, have) &&
	    strcmp(have, kid))
		e = llm_diag_set(d, LLM_ERR_CHECK, sig_file, 0,
				 "signed with key %s, not with %s (%s)", kid, pub_path, have);
	if (!e) {
		EVP_MD_CTX *c = EVP_MD_CTX_new();
		int ok = c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, k) == 1;
		int r = ok ? EVP_DigestVerify(c, raw, sizeof raw, (const unsigned char *)msg,
					      strlen(msg))
			   : -1;
		EVP_MD_CTX_free(c);
		ERR_clear_error();
		if (r != 1)
			e = llm_diag_set(d, LLM_ERR_CHECK, sig_file, 0,
					 "bad signature: it does not match %s with this key",
					 identity);
	}
	EVP_PKEY_free(k);
	json_decref(o);
	return e;
}
