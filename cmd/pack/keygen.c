/* llm-pack keygen: an Ed25519 key pair for sign and verify. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "artifact/sign.h"
#include "cli.h"
#include "pack/verbs.h"

static int run_keygen(struct llm_cli *c)
{
	const char *prefix = llm_args_str(&c->args, "out");
	if (c->args.noperands)
		return llm_cli_usage(c, "keygen takes no operands");
	if (!prefix)
		return llm_cli_usage(c, "--out PREFIX is required");
	struct llm_diag d;
	char id[LLM_DIGEST_SIZE];
	if (llm_sign_keygen(prefix, id, &d))
		return llm_cli_fail(c, &d);
	llm_cli_write(c, id, strlen(id));
	llm_cli_write(c, "\n", 1);
	if (!c->quiet)
		llm_cli_error(c, "wrote %s.pem (private, keep it secret) and %s.pub (public)",
			      prefix, prefix);
	return 0;
}

static const struct llm_opt keygen_opts[] = {
    {"out", 'o', LLM_OPT_STRING, "PREFIX",
     "write PREFIX.pem (private, mode 0600) and PREFIX.pub (required)"},
    {0},
};

const struct llm_verb llm_pack_verb_keygen = {
    "keygen",
    "make an Ed25519 key pair for signing",
    "--out PREFIX",
    "Writes a new Ed25519 private key to PREFIX.pem (mode 0600) and its public key to\n"
    "PREFIX.pub, both PEM as OpenSSL writes them; existing files are never overwritten.\n"
    "Prints the key id (sha256 of the raw public key).",
    {keygen_opts, llm_cli_opts_base},
    run_keygen,
};
