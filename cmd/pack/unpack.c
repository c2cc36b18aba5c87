/* llm-pack unpack: an artifact into an empty or new folder, verified before the folder
 * appears. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "artifact/tarball.h"
#include "cli.h"
#include "pack/common.h"
#include "pack/verbs.h"

static int run_unpack(struct llm_cli *c)
{
	struct llm_args *a = &c->args;
	if (a->noperands != 2)
		return llm_cli_usage(c, "unpack needs an artifact and a folder");
	const char *path = a->operands[0], *dir = a->operands[1];
	const char *pub = llm_args_str(a, "pubkey");
	struct llm_manifest m;
	struct llm_diag d;
	char id[LLM_DIGEST_SIZE], key_id[LLM_DIGEST_SIZE];
	int st;
	if (pub) {
		/* The signature covers the manifest, which the unpack then holds every byte to. */
		if ((st = llm_pack_load(c, path, &m, id)))
			return st;
		llm_manifest_free(&m);
		if ((st = llm_pack_check_signature(c, path, llm_args_str(a, "sig"), pub, id,
						   key_id)))
			return st;
	}
	struct llm_tarball_opts o;
	struct llm_pack_progress p;
	llm_pack_tar_opts(c, &o, &p, "unpack");
	enum llm_err e = llm_tarball_unpack(path, dir, &o, &m, id, &d);
	llm_pack_progress_finish(&p);
	if (e)
		return llm_cli_fail(c, &d);
	llm_cli_write(c, dir, strlen(dir));
	llm_cli_write(c, "\n", 1);
	if (!c->quiet) {
		char hs[32];
		llm_pack_human_size(m.total_size, hs, sizeof hs);
		llm_cli_error(c, "%s %s: %zu files, %s, verified and unpacked (%s)", m.name,
			      m.version, m.nfiles, hs, id);
	}
	llm_manifest_free(&m);
	return 0;
}

static const struct llm_opt unpack_opts[] = {
    {"pubkey", 'k', LLM_OPT_STRING, "KEY",
     "unpack only when the signature is good with this public key"},
    {"sig", 0, LLM_OPT_STRING, "FILE", "the signature file (default: ARTIFACT.sig)"},
    {0},
};

const struct llm_verb llm_pack_verb_unpack = {
    "unpack",
    "unpack a verified artifact into an empty or new folder",
    "[OPTIONS] ARTIFACT DIR",
    "Verifies everything verify does while unpacking into a hidden folder beside DIR, and\n"
    "renames it to DIR only when every check passed: DIR never holds half an artifact.  DIR\n"
    "must be absent or empty.  MANIFEST.json is unpacked too.",
    {unpack_opts, llm_pack_opts_io, llm_cli_opts_base},
    run_unpack,
};
