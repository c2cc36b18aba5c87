/* A test helper that drives lib/artifact/oci.h against a registry, so the shell tests check the
 * client with any bytes (tests/cli/pack-oci.sh runs it against Debian's docker-registry):
 *
 *     oci-cli [--chunk N] [--user U --password P] [--no-auth-files] [--ca FILE]
 *             [--transport auto|http|https] oci://HOST[:PORT][/NAMESPACE] VERB ARGS...
 *
 *     ping
 *     blob-push REPO FILE               prints the digest
 *     blob-exists REPO DIGEST           prints "yes SIZE" or "no"
 *     blob-pull REPO DIGEST SIZE OUT    SIZE -1 when unknown
 *     push REPO TARBALL CONFIG NAME VERSION CREATED TAG... [--sig FILE]
 *                                       prints the manifest digest
 *     pull REPO REF TARBALL [CONFIG [SIG]]   prints what the manifest says as JSON
 *     manifest REPO REF                 prints the manifest's bytes
 *     manifest-put REPO REF FILE TYPE   prints the digest
 *     head REPO REF                     prints the digest, or "absent"
 *     tag REPO FROM TO                  prints the digest
 *     untag REPO TAG
 *     tags REPO                         one per line
 *     catalog                           repositories under the namespace, one per line
 *     repo NAME                         the repository for an artifact name
 *
 * The environment (LLMOPS_OCI_*) applies first, then the options.  A failure prints
 * "oci-cli: ERRNAME: message" and exits with the library's exit status for the code. */
#include "config.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifact/oci.h"
#include "core/mapfile.h"

static int fail(const struct llm_diag *d)
{
	fprintf(stderr, "oci-cli: %s: %s\n", llm_err_name(d->code), d->msg);
	return llm_err_exit_status(d->code);
}

static int usage(const char *why)
{
	fprintf(stderr, "oci-cli: %s\n", why);
	return 2;
}

static int run(struct llm_oci *c, int argc, char **argv)
{
	struct llm_diag d = {0};
	const char *verb = argv[0];
	enum llm_err e = LLM_OK;
	char digest[LLM_OCI_DIGEST_MAX];
	if (!strcmp(verb, "ping") && argc == 1) {
		e = llm_oci_ping(c, &d);
	} else if (!strcmp(verb, "blob-push") && argc == 3) {
		uint64_t size;
		e = llm_oci_blob_push_file(c, argv[1], argv[2], digest, &size, &d);
		if (!e)
			printf("%s\n", digest);
	} else if (!strcmp(verb, "blob-exists") && argc == 3) {
		bool have;
		uint64_t size = 0;
		e = llm_oci_blob_exists(c, argv[1], argv[2], &have, &size, &d);
		if (!e && have)
			printf("yes %" PRIu64 "\n", size);
		else if (!e)
			printf("no\n");
	} else if (!strcmp(verb, "blob-pull") && argc == 5) {
		e = llm_oci_blob_pull_file(c, argv[1], argv[2], strtoll(argv[3], NULL, 10), argv[4],
					   &d);
	} else if (!strcmp(verb, "push") && argc >= 8) {
		const char *sig = NULL;
		int ntags = argc - 7;
		if (argc >= 10 && !strcmp(argv[argc - 2], "--sig")) {
			sig = argv[argc - 1];
			ntags -= 2;
		}
		if (ntags < 1)
			return usage("push needs a tag");
		void *cfg = NULL;
		size_t cfg_len = 0;
		e = llm_map_file(argv[3], &cfg, &cfg_len, &d);
		if (e)
			return fail(&d);
		struct llm_oci_push p = {.tarball = argv[2],
					 .signature = sig,
					 .config = cfg,
					 .config_len = cfg_len,
					 .name = argv[4],
					 .version = argv[5],
					 .created = argv[6]};
		e = llm_oci_artifact_push(c, argv[1], &p, (const char *const *)argv + 7,
					  (size_t)ntags, digest, &d);
		llm_unmap_file(cfg, cfg_len);
		if (!e)
			printf("%s\n", digest);
	} else if (!strcmp(verb, "pull") && argc >= 4 && argc <= 6) {
		struct llm_buf cfg;
		llm_buf_init(&cfg, 0);
		struct llm_oci_artifact a;
		e = llm_oci_artifact_pull(c, argv[1], argv[2], argc >= 5 ? &cfg : NULL, argv[3],
					  argc >= 6 ? argv[5] : NULL, &a, digest, &d);
		if (!e && argc >= 5) {
			FILE *f = fopen(argv[4], "wb");
			if (!f || fwrite(cfg.data, 1, cfg.len, f) != cfg.len || fclose(f) != 0)
				e = llm_diag_set(&d, LLM_ERR_IO, argv[4], 0, "cannot write");
		}
		if (!e) {
			json_t *o = json_pack(
			    "{s:s, s:s, s:I, s:s, s:I, s:s, s:b, s:O}", "digest", digest, "config",
			    a.config.digest, "config_size", (json_int_t)a.config.size, "layer",
			    a.layer.digest, "layer_size", (json_int_t)a.layer.size, "title",
			    a.title, "signed", a.has_sig, "annotations", a.annotations);
			char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
			printf("%s\n", s);
			free(s);
			json_decref(o);
			llm_oci_artifact_clear(&a);
		}
		llm_buf_free(&cfg);
	} else if (!strcmp(verb, "manifest") && argc == 3) {
		struct llm_buf b;
		llm_buf_init(&b, 0);
		e = llm_oci_manifest_get(c, argv[1], argv[2], &b, digest, &d);
		if (!e)
			fwrite(b.data, 1, b.len, stdout);
		llm_buf_free(&b);
	} else if (!strcmp(verb, "manifest-put") && argc == 5) {
		void *body = NULL;
		size_t n = 0;
		e = llm_map_file(argv[3], &body, &n, &d);
		if (!e)
			e = llm_oci_manifest_put(c, argv[1], argv[2], argv[4], body, n, digest, &d);
		llm_unmap_file(body, n);
		if (!e)
			printf("%s\n", digest);
	} else if (!strcmp(verb, "head") && argc == 3) {
		bool have;
		e = llm_oci_manifest_head(c, argv[1], argv[2], &have, digest, &d);
		if (!e)
			printf("%s\n", have ? digest : "absent");
	} else if (!strcmp(verb, "tag") && argc == 4) {
		e = llm_oci_tag(c, argv[1], argv[2], argv[3], digest, &d);
		if (!e)
			printf("%s\n", digest);
	} else if (!strcmp(verb, "untag") && argc == 3) {
		e = llm_oci_tag_delete(c, argv[1], argv[2], &d);
	} else if ((!strcmp(verb, "tags") && argc == 2) ||
		   (!strcmp(verb, "catalog") && argc == 1)) {
		struct llm_oci_list l;
		e = argc == 2 ? llm_oci_tags(c, argv[1], &l, &d) : llm_oci_catalog(c, &l, &d);
		for (size_t i = 0; !e && i < l.n; i++)
			printf("%s\n", l.v[i]);
		if (!e)
			llm_oci_list_free(&l);
	} else if (!strcmp(verb, "repo") && argc == 2) {
		char repo[512];
		e = llm_oci_repo_for(c, argv[1], repo, sizeof repo, &d);
		if (!e)
			printf("%s\n", repo);
	} else {
		return usage("unknown verb or wrong number of operands");
	}
	if (fflush(stdout) != 0)
		return 3;
	return e ? fail(&d) : 0;
}

int main(int argc, char **argv)
{
	struct llm_oci_opts o;
	llm_oci_opts_default(&o);
	struct llm_diag d = {0};
	if (llm_oci_opts_env(&o, &d))
		return fail(&d);
	int i = 1;
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		const char *opt = argv[i];
		if (!strcmp(opt, "--no-auth-files")) {
			o.no_auth_files = true;
			continue;
		}
		if (i + 1 >= argc)
			return usage("an option without its value");
		const char *v = argv[++i];
		if (!strcmp(opt, "--chunk"))
			o.chunk_size = strtoull(v, NULL, 10);
		else if (!strcmp(opt, "--user"))
			o.user = v;
		else if (!strcmp(opt, "--password"))
			o.password = v;
		else if (!strcmp(opt, "--ca"))
			o.ca_file = v;
		else if (!strcmp(opt, "--transport"))
			o.transport = !strcmp(v, "http")    ? LLM_OCI_HTTP
				      : !strcmp(v, "https") ? LLM_OCI_HTTPS
							    : LLM_OCI_AUTO;
		else
			return usage("unknown option");
	}
	if (argc - i < 2)
		return usage("usage: oci-cli [OPTIONS] oci://HOST[:PORT][/NAMESPACE] VERB ARGS...");
	struct llm_oci *c;
	if (llm_oci_open(&c, argv[i], &o, &d))
		return fail(&d);
	int rc = run(c, argc - i - 1, argv + i + 1);
	llm_oci_close(c);
	return rc;
}
