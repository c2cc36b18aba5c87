/* llm-pack sign: a detached Ed25519 signature over an artifact's identity, written beside it;
 * the artifact is verified first, so a damaged one is never signed. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "artifact/sign.h"
#include "artifact/tarball.h"
#include "cli.h"
#include "core/atomic.h"
#include "pack/common.h"
#include "pack/verbs.h"

static int run_sign(struct llm_cli *c)
{
	struct llm_args *a = &c->args;
	const char *key = llm_args_str(a, "key");
	if (a->noperands != 1)
		return llm_cli_usage(c, "sign needs one artifact");
	if (!key)
		return llm_cli_usage(c, "--key is required (make one with llm-pack keygen)");
	const char *path = a->operands[0];
	char out[4200];
	snprintf(out, sizeof out, "%s.sig", path);
	if (llm_args_str(a, "out"))
		snprintf(out, sizeof out, "%s", llm_args_str(a, "out"));
	struct llm_tarball_opts o;
	struct llm_pack_progress p;
	struct llm_manifest m;
	struct llm_diag d;
	char id[LLM_DIGEST_SIZE];
	llm_pack_tar_opts(c, &o, &p, "verify");
	enum llm_err e = llm_tarball_verify(path, &o, &m, id, &d);
	llm_pack_progress_finish(&p);
	if (e)
		return llm_cli_fail(c, &d);
	llm_manifest_free(&m);
	struct llm_buf sig;
	llm_buf_init(&sig, 0);
	e = llm_sign(key, id, &sig, &d);
	if (!e)
		e = llm_atomic_write_file(out, sig.data, sig.len, &d);
	llm_buf_free(&sig);
	if (e)
		return llm_cli_fail(c, &d);
	llm_cli_write(c, out, strlen(out));
	llm_cli_write(c, "\n", 1);
	if (!c->quiet)
		llm_cli_error(c, "signed %s", id);
	return 0;
}

static const struct llm_opt sign_opts[] = {
    {"key", 'k', LLM_OPT_STRING, "KEY", "the Ed25519 private key (PEM) to sign with (required)"},
    {"out", 'o', LLM_OPT_STRING, "FILE", "where the signature goes (default: ARTIFACT.sig)"},
    {0},
};

const struct llm_verb llm_pack_verb_sign = {
    "sign",
    "sign an artifact with an Ed25519 key",
    "--key KEY [OPTIONS] ARTIFACT",
    "Verifies the artifact, then writes ARTIFACT.sig: a detached Ed25519 signature over its\n"
    "identity (the digest of its manifest).  The tarball is not touched, so its identity and\n"
    "bytes are the same signed or not.  Prints the signature file's path.",
    {sign_opts, llm_pack_opts_io, llm_cli_opts_base},
    run_sign,
};
