/* llm-serve: an OpenAI-compatible server for a local model, or a gateway to upstream servers.
 * The program has no verbs; its parts are in cmd/serve/ (serve.h). */
#include "config.h"

#include "cli.h"

extern const struct llm_verb llm_serve_verb;

static const struct llm_tool tool = {
    "llm-serve",
    "serve",
    "Serve a model over the OpenAI API, or front upstream OpenAI-compatible servers.",
    NULL,
    &llm_serve_verb,
};

int main(int argc, char **argv)
{
	return llm_cli_main(&tool, argc, argv);
}
