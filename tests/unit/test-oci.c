/* Unit tests for lib/artifact/oci: oci:// references, the distribution spec's grammar for
 * repository names, tags and digests, and the OCI manifest of an llmops artifact (its exact
 * bytes, and what a reader refuses).  The client itself is tested against a real registry by
 * tests/cli/pack-oci.sh. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "artifact/oci.h"

static void references_parse_into_host_and_namespace(void **state)
{
	(void)state;
	struct llm_oci_url u;
	assert_int_equal(llm_oci_url_parse("oci://127.0.0.1:5000/team/models", &u, NULL), LLM_OK);
	assert_string_equal(u.host, "127.0.0.1:5000");
	assert_string_equal(u.namespace, "team/models");
	assert_true(u.loopback);
	assert_int_equal(llm_oci_url_parse("oci://ghcr.io/acme/", &u, NULL), LLM_OK);
	assert_string_equal(u.host, "ghcr.io");
	assert_string_equal(u.namespace, "acme");
	assert_false(u.loopback);
	assert_int_equal(llm_oci_url_parse("oci://localhost", &u, NULL), LLM_OK);
	assert_string_equal(u.namespace, "");
	assert_true(u.loopback);
	assert_int_equal(llm_oci_url_parse("oci://[::1]:5000/m", &u, NULL), LLM_OK);
	assert_string_equal(u.host, "[::1]:5000");
	assert_true(u.loopback);
	/* 127.evil.com is a name, not the loopback network. */
	assert_int_equal(llm_oci_url_parse("oci://127.evil.com/m", &u, NULL), LLM_OK);
	assert_false(u.loopback);
}

static void bad_references_are_usage_errors(void **state)
{
	(void)state;
	const char *bad[] = {
	    "https://ghcr.io/acme", "oci://",	       "oci:///models", "oci://host:0/m",
	    "oci://host:65536/m",   "oci://host:5x/m", "oci://ho st/m", "oci://host/Models",
	    "oci://host/a//b",	    "oci://host/-a",   "oci://[::1/m",	"oci://host/a..b",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct llm_oci_url u;
		struct llm_diag d = {0};
		assert_int_equal(llm_oci_url_parse(bad[i], &u, &d), LLM_ERR_USAGE);
		assert_true(d.msg[0] != '\0');
	}
}

static void repository_names_follow_the_distribution_grammar(void **state)
{
	(void)state;
	const char *good[] = {"a", "support-bot", "a.b_c__d---e", "team/models/bot", "x9"};
	const char *bad[] = {"", "A", "a_", "_a", "a___b", "a/", "/a", "a//b", "a..b", "a._b"};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_true(llm_oci_valid_repo(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_false(llm_oci_valid_repo(bad[i]));
}

static void tags_digests_and_the_semver_plus(void **state)
{
	(void)state;
	assert_true(llm_oci_valid_tag("1.4.0"));
	assert_true(llm_oci_valid_tag("production"));
	assert_true(llm_oci_valid_tag("_x"));
	assert_false(llm_oci_valid_tag(".x"));
	assert_false(llm_oci_valid_tag("-x"));
	assert_false(llm_oci_valid_tag("1.0.0+b"));
	char t129[130];
	memset(t129, 'a', 129);
	t129[129] = '\0';
	assert_false(llm_oci_valid_tag(t129));
	t129[128] = '\0';
	assert_true(llm_oci_valid_tag(t129));

	char tag[200];
	assert_int_equal(llm_oci_tag_for("2.0.0-rc.1+build.5", tag, sizeof tag, NULL), LLM_OK);
	assert_string_equal(tag, "2.0.0-rc.1_build.5");
	assert_int_equal(llm_oci_tag_for("-x", tag, sizeof tag, NULL), LLM_ERR_USAGE);

	const char *d64 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	assert_true(llm_oci_valid_digest(d64));
	assert_false(llm_oci_valid_digest("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934C"
					  "A495991B7852B855"));
	assert_false(llm_oci_valid_digest("sha512:e3b0"));
	assert_false(
	    llm_oci_valid_digest("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934c"));
}

#define DCFG "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define DTAR "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define DSIG "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static const struct llm_oci_desc cfg = {LLM_OCI_CONFIG_TYPE, DCFG, 321};
static const struct llm_oci_desc tar = {LLM_OCI_LAYER_TYPE, DTAR, 123456};
static const struct llm_oci_desc sig = {LLM_OCI_SIG_TYPE, DSIG, 64};

static void the_manifest_bytes_are_fixed_by_the_artifact(void **state)
{
	(void)state;
	struct llm_oci_annotation ann[] = {{"org.llmops.pushed-by", "ci@build"},
					   {"org.llmops.reason", NULL}};
	struct llm_oci_push p = {.tarball = "out/support-bot-1.4.0.tar.gz",
				 .name = "support-bot",
				 .version = "1.4.0",
				 .created = "2026-11-27T00:00:00Z",
				 .annotations = ann,
				 .nannotations = 2};
	struct llm_buf m;
	llm_buf_init(&m, 0);
	assert_int_equal(llm_oci_artifact_manifest(&p, &cfg, &tar, NULL, &m, NULL), LLM_OK);
	const char *want =
	    "{\"annotations\":{\"org.llmops.pushed-by\":\"ci@build\","
	    "\"org.opencontainers.image.created\":\"2026-11-27T00:00:00Z\","
	    "\"org.opencontainers.image.title\":\"support-bot\","
	    "\"org.opencontainers.image.version\":\"1.4.0\"},"
	    "\"artifactType\":\"application/vnd.llmops.model.v1\","
	    "\"config\":{\"digest\":\"" DCFG "\","
	    "\"mediaType\":\"application/vnd.llmops.model.config.v1+json\",\"size\":321},"
	    "\"layers\":[{\"annotations\":{\"org.opencontainers.image.title\":"
	    "\"support-bot-1.4.0.tar.gz\"},\"digest\":\"" DTAR "\","
	    "\"mediaType\":\"application/vnd.llmops.model.layer.v1.tar+gzip\",\"size\":123456}],"
	    "\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"schemaVersion\":2}";
	assert_string_equal(m.data, want);

	/* Read back: what the writer put in. */
	struct llm_oci_artifact a;
	assert_int_equal(llm_oci_artifact_parse(m.data, m.len, &a, NULL), LLM_OK);
	assert_string_equal(a.config.digest, DCFG);
	assert_int_equal(a.config.size, 321);
	assert_string_equal(a.layer.digest, DTAR);
	assert_int_equal(a.layer.size, 123456);
	assert_string_equal(a.title, "support-bot-1.4.0.tar.gz");
	assert_false(a.has_sig);
	assert_string_equal(
	    json_string_value(json_object_get(a.annotations, "org.opencontainers.image.version")),
	    "1.4.0");
	llm_oci_artifact_clear(&a);
	llm_buf_free(&m);
}

static void a_signature_is_a_second_layer_named_after_the_tarball(void **state)
{
	(void)state;
	struct llm_oci_push p = {.tarball = "/tmp/x.tar.gz",
				 .layer_title = "bot-1.0.0.tar.gz",
				 .name = "bot",
				 .version = "1.0.0",
				 .created = "2026-01-01T00:00:00Z"};
	struct llm_buf m;
	llm_buf_init(&m, 0);
	assert_int_equal(llm_oci_artifact_manifest(&p, &cfg, &tar, &sig, &m, NULL), LLM_OK);
	assert_non_null(strstr(m.data, "\"bot-1.0.0.tar.gz.sig\""));
	struct llm_oci_artifact a;
	assert_int_equal(llm_oci_artifact_parse(m.data, m.len, &a, NULL), LLM_OK);
	assert_true(a.has_sig);
	assert_string_equal(a.sig.digest, DSIG);
	assert_int_equal(a.sig.size, 64);
	assert_string_equal(a.title, "bot-1.0.0.tar.gz");
	llm_oci_artifact_clear(&a);
	llm_buf_free(&m);
}

static void manifests_that_are_not_ours_are_refused(void **state)
{
	(void)state;
	const char *bad[] = {
	    "[]",
	    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+"
	    "json\",\"config\":{\"mediaType\":\"application/vnd.llmops.model.config.v1+json\","
	    "\"digest\":\"" DCFG "\",\"size\":1},\"layers\":[]}",
	    /* A container image. */
	    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+"
	    "json\",\"digest\":\"" DCFG "\",\"size\":1},\"layers\":[{\"mediaType\":\"application/"
	    "vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" DTAR "\",\"size\":2}]}",
	    /* Another artifact type. */
	    "{\"schemaVersion\":2,\"artifactType\":\"application/"
	    "x-other\",\"config\":{\"mediaType\":"
	    "\"application/vnd.llmops.model.config.v1+json\",\"digest\":\"" DCFG "\",\"size\":1},"
	    "\"layers\":[{\"mediaType\":\"application/vnd.llmops.model.layer.v1.tar+gzip\","
	    "\"digest\":\"" DTAR "\",\"size\":2}]}",
	    /* No tarball layer; two tarball layers; a negative size; another digest algorithm. */
	    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.llmops.model.config."
	    "v1+json\",\"digest\":\"" DCFG "\",\"size\":1},\"layers\":[]}",
	    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.llmops.model.config."
	    "v1+json\",\"digest\":\"" DCFG
	    "\",\"size\":1},\"layers\":[{\"mediaType\":\"application/"
	    "vnd.llmops.model.layer.v1.tar+gzip\",\"digest\":\"" DTAR
	    "\",\"size\":2},{\"mediaType\""
	    ":\"application/vnd.llmops.model.layer.v1.tar+gzip\",\"digest\":\"" DTAR
	    "\",\"size\":2}"
	    "]}",
	    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.llmops.model.config."
	    "v1+json\",\"digest\":\"" DCFG
	    "\",\"size\":-1},\"layers\":[{\"mediaType\":\"application/"
	    "vnd.llmops.model.layer.v1.tar+gzip\",\"digest\":\"" DTAR "\",\"size\":2}]}",
	    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.llmops.model.config."
	    "v1+json\",\"digest\":\"" DCFG
	    "\",\"size\":1},\"layers\":[{\"mediaType\":\"application/"
	    "vnd.llmops.model.layer.v1.tar+gzip\",\"digest\":\"sha512:ab\",\"size\":2}]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct llm_oci_artifact a;
		struct llm_diag d = {0};
		assert_int_equal(llm_oci_artifact_parse(bad[i], strlen(bad[i]), &a, &d),
				 LLM_ERR_FORMAT);
		assert_null(a.annotations);
	}
	/* Without artifactType (an older writer) it is still ours by its config type. */
	const char *ok = "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.llmops."
			 "model.config.v1+json\",\"digest\":\"" DCFG "\",\"size\":1},\"layers\":["
			 "{\"mediaType\":\"application/vnd.llmops.model.layer.v1.tar+gzip\","
			 "\"digest\":\"" DTAR "\",\"size\":2}]}";
	struct llm_oci_artifact a;
	assert_int_equal(llm_oci_artifact_parse(ok, strlen(ok), &a, NULL), LLM_OK);
	llm_oci_artifact_clear(&a);
}

static void a_manifest_needs_name_version_and_created(void **state)
{
	(void)state;
	struct llm_oci_push p = {.tarball = "x.tar.gz", .name = "bot", .version = "1.0.0"};
	struct llm_buf m;
	llm_buf_init(&m, 0);
	assert_int_equal(llm_oci_artifact_manifest(&p, &cfg, &tar, NULL, &m, NULL), LLM_ERR_USAGE);
	llm_buf_free(&m);
}

static void the_environment_sets_transport_and_chunks(void **state)
{
	(void)state;
	struct llm_oci_opts o;
	llm_oci_opts_default(&o);
	setenv("LLMOPS_OCI_INSECURE", "1", 1);
	setenv("LLMOPS_OCI_CHUNK_SIZE", "1000", 1);
	setenv("LLMOPS_OCI_USER", "u", 1);
	setenv("LLMOPS_OCI_PASSWORD", "p", 1);
	assert_int_equal(llm_oci_opts_env(&o, NULL), LLM_OK);
	assert_int_equal(o.transport, LLM_OCI_HTTP);
	assert_int_equal(o.chunk_size, 1000);
	assert_string_equal(o.user, "u");
	assert_string_equal(o.password, "p");
	setenv("LLMOPS_OCI_INSECURE", "no", 1);
	assert_int_equal(llm_oci_opts_env(&o, NULL), LLM_OK);
	assert_int_equal(o.transport, LLM_OCI_HTTPS);
	setenv("LLMOPS_OCI_INSECURE", "maybe", 1);
	assert_int_equal(llm_oci_opts_env(&o, NULL), LLM_ERR_USAGE);
	unsetenv("LLMOPS_OCI_INSECURE");
	setenv("LLMOPS_OCI_CHUNK_SIZE", "1k", 1);
	assert_int_equal(llm_oci_opts_env(&o, NULL), LLM_ERR_USAGE);
	unsetenv("LLMOPS_OCI_CHUNK_SIZE");
	unsetenv("LLMOPS_OCI_USER");
	unsetenv("LLMOPS_OCI_PASSWORD");
}

static void a_name_maps_to_a_repository_under_the_namespace(void **state)
{
	(void)state;
	struct llm_oci *c;
	assert_int_equal(llm_oci_open(&c, "oci://registry.example:5000/team/models", NULL, NULL),
			 LLM_OK);
	char repo[300];
	assert_int_equal(llm_oci_repo_for(c, "support-bot", repo, sizeof repo, NULL), LLM_OK);
	assert_string_equal(repo, "team/models/support-bot");
	assert_int_equal(llm_oci_repo_for(c, "Bad", repo, sizeof repo, NULL), LLM_ERR_USAGE);
	llm_oci_close(c);
	assert_int_equal(llm_oci_open(&c, "oci://localhost:5000", NULL, NULL), LLM_OK);
	assert_int_equal(llm_oci_repo_for(c, "bot", repo, sizeof repo, NULL), LLM_OK);
	assert_string_equal(repo, "bot");
	llm_oci_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(references_parse_into_host_and_namespace),
	    cmocka_unit_test(bad_references_are_usage_errors),
	    cmocka_unit_test(repository_names_follow_the_distribution_grammar),
	    cmocka_unit_test(tags_digests_and_the_semver_plus),
	    cmocka_unit_test(the_manifest_bytes_are_fixed_by_the_artifact),
	    cmocka_unit_test(a_signature_is_a_second_layer_named_after_the_tarball),
	    cmocka_unit_test(manifests_that_are_not_ours_are_refused),
	    cmocka_unit_test(a_manifest_needs_name_version_and_created),
	    cmocka_unit_test(the_environment_sets_transport_and_chunks),
	    cmocka_unit_test(a_name_maps_to_a_repository_under_the_namespace),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
