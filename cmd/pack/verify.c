/* llm-pack verify: every file's size and digest against the manifest, nothing extra, nothing
 * missing, the archive itself sound; and the signature when a public key is given. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "artifact/sign.h"
#include "artifact/tarball.h"
#include "cli.h"
#include "pack/common.h"
#include "pack/verbs.h"

static int verify_one(struct llm_cli *c, const char *path, json_t *out)
{
	struct llm_args *a = &c->args;
	struct llm_tarball_opts o;
	struct llm_pack_progress p;
	struct llm_manifest m;
	struct llm_diag d;
	char id[LLM_DIGEST_SIZE], key_id[LLM_DIGEST_SIZE] = "";
	llm_pack_tar_opts(c, &o, &p, "verify");
	enum llm_err e = llm_tarball_verify(path, &o, &m, id, &d);
	llm_pack_progress_finish(&p);
	if (e) {
		if (out)
			json_array_append_new(
			    out, json_pack("{s:s,s:b,s:s}", "path", path, "ok", 0, "error", d.msg));
		return llm_cli_fail(c, &d);
	}
	const char *pub = llm_args_str(a, "pubkey");
	int st =
	    pub ? llm_pack_check_signature(c, path, llm_args_str(a, "sig"), pub, id, key_id) : 0;
	if (out) {
		json_t *o2 =
		    json_pack("{s:s,s:b,s:s,s:s,s:s,s:I,s:I}", "path", path, "ok", st == 0,
			      "identity", id, "name", m.name, "version", m.version, "files",
			      (json_int_t)m.nfiles, "size", (json_int_t)m.total_size);
		if (pub)
			json_object_set_new(
			    o2, "signature",
			    json_pack("{s:b,s:s}", "ok", st == 0, "key_id", key_id));
		json_array_append_new(out, o2);
	} else if (!st) {
		char hs[32], line[1024];
		llm_pack_human_size(m.total_size, hs, sizeof hs);
		int k = snprintf(line, sizeof line, "%s: ok, %s %s, %zu files, %s, %s%s%s\n", path,
				 m.name, m.version, m.nfiles, hs, id, pub ? ", signed by " : "",
				 pub ? key_id : "");
		llm_cli_write(c, line, (size_t)k < sizeof line ? (size_t)k : sizeof line - 1);
	}
	llm_manifest_free(&m);
	return st;
}

static int run_verify(struct llm_cli *c)
{
	struct llm_args *a = &c->args;
	if (!a->noperands)
		return llm_cli_usage(c, "verify needs at least one artifact");
	if (llm_args_given(a, "sig") && !llm_args_given(a, "pubkey"))
		return llm_cli_usage(c, "--sig needs --pubkey");
	if (llm_args_given(a, "sig") && a->noperands > 1)
		return llm_cli_usage(c, "--sig goes with one artifact");
	json_t *out = llm_args_flag(a, "json") ? json_array() : NULL;
	int worst = 0;
	for (size_t i = 0; i < a->noperands; i++) {
		int st = verify_one(c, a->operands[i], out);
		if (st > worst)
			worst = st;
	}
	if (out) {
		struct llm_diag d;
		if (llm_cli_write_json(c, "-", out, &d) && !worst)
			worst = llm_cli_fail(c, &d);
		json_decref(out);
	}
	return worst;
}

static const struct llm_opt verify_opts[] = {
    {"pubkey", 'k', LLM_OPT_STRING, "KEY",
     "also check the signature with this Ed25519 public key (PEM)"},
    {"sig", 0, LLM_OPT_STRING, "FILE", "the signature file (default: ARTIFACT.sig)"},
    {"json", 0, LLM_OPT_FLAG, NULL, "print the results as a JSON array"},
    {0},
};

const struct llm_verb llm_pack_verb_verify = {
    "verify",
    "check an artifact's files, digests and signature",
    "[OPTIONS] ARTIFACT...",
    "Reads each artifact through: the manifest first, then every file's size and sha256, no\n"
    "entry missing or extra, no link, device or unsafe path, a sound gzip stream.  With\n"
    "--pubkey the detached signature (ARTIFACT.sig) must be good too.  Status 1 when a check\n"
    "fails.",
    {verify_opts, llm_pack_opts_io, llm_cli_opts_base},
    run_verify,
};
