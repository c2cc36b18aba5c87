/* llm-pack: versioned, reproducible, signed model artifacts and the registries that hold them.
 * Each verb lives in cmd/pack/VERB.c; this file lists them.  The artifact itself (manifest,
 * tarball, signature) is lib/artifact/. */
#include "config.h"

#include <stddef.h>

#include "cli.h"
#include "pack/verbs.h"

static const struct llm_verb *const verbs[] = {
    &llm_pack_verb_create,
    &llm_pack_verb_verify,
    &llm_pack_verb_inspect,
    &llm_pack_verb_diff,
    &llm_pack_verb_unpack,
    &llm_pack_verb_sign,
    &llm_pack_verb_keygen,
    &llm_pack_verb_card,
    &llm_pack_verb_push,
    &llm_pack_verb_pull,
    &llm_pack_verb_list,
    &llm_pack_verb_show,
    &llm_pack_verb_alias,
    &llm_pack_verb_promote,
    &llm_pack_verb_lineage,
    &llm_pack_verb_history,
    NULL,
};

static const struct llm_tool tool = {
    "llm-pack",
    "pack",
    "Pack models as versioned, reproducible, signed artifacts; keep them in registries.",
    verbs,
};

int main(int argc, char **argv)
{
	return llm_cli_main(&tool, argc, argv);
}
