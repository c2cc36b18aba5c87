/* llm-pack create: a model folder as NAME-VERSION.tar.gz, with its manifest (files and
 * digests, lineage, data, parameters, metrics, licence) as the first entry. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "artifact/manifest.h"
#include "artifact/registry.h"
#include "artifact/tarball.h"
#include "cli.h"
#include "core/atomic.h"
#include "pack/common.h"
#include "pack/verbs.h"

/* --created, else SOURCE_DATE_EPOCH, else now. */
static int creation_time(struct llm_cli *c, int64_t *t)
{
	const char *s = llm_args_str(&c->args, "created");
	if (s) {
		if (!llm_rfc3339_parse(s, t))
			return llm_cli_usage(
			    c,
			    "--created: expected YYYY-MM-DDTHH:MM:SSZ or @SECONDS, "
			    "not '%s'",
			    s);
		return 0;
	}
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	if (sde && *sde) {
		char at[64];
		snprintf(at, sizeof at, "@%s", sde);
		if (!llm_rfc3339_parse(at, t))
			return llm_cli_usage(c,
					     "SOURCE_DATE_EPOCH: expected seconds since 1970, not "
					     "'%s'",
					     sde);
		return 0;
	}
	*t = (int64_t)time(NULL);
	return 0;
}

/* The parent's fields from its manifest: name, version, identity; and its base model. */
static void from_manifest(const struct llm_manifest *pm, const char *id, json_t **out,
			  json_t **base)
{
	*out = json_pack("{s:s,s:s,s:s}", "name", pm->name, "version", pm->version, "digest", id);
	json_t *b = json_object_get(pm->doc, "base_model");
	if (b)
		*base = json_incref(b);
}

/* --parent [registry:]NAME[@VERSION|@ALIAS], looked up in the registry.  A plain NAME@VERSION
 * the registry does not hold is recorded without a digest; 1 when found, 0 when not (and
 * allowed), else the exit status. */
static int parent_from_registry(struct llm_cli *c, const char *ref, json_t **out, json_t **base)
{
	bool explicit_ref = !strncmp(ref, "registry:", 9);
	const char *spec = explicit_ref ? ref + 9 : ref;
	struct llm_diag d;
	char *copy, *name, *at;
	if (llm_registry_split_ref(spec, &name, &at, &d))
		return llm_cli_usage(c, "--parent: %s", d.msg);
	copy = name;
	char regref[4096];
	struct llm_registry *r = NULL;
	struct llm_registry_entry e = {0};
	char *version = NULL;
	int st = 0;
	enum llm_err err =
	    llm_registry_default_ref(llm_args_str(&c->args, "registry"), regref, sizeof regref, &d);
	if (!err)
		err = llm_registry_open(regref, &r, &d);
	if (!err)
		err = llm_registry_resolve(r, name, at, &version, &d);
	if (!err)
		err = llm_registry_show(r, name, version, &e, &d);
	if (!err) {
		struct llm_manifest pm;
		char id[LLM_DIGEST_SIZE];
		const char *text = e.manifest ? e.manifest : "";
		if (llm_manifest_parse(&pm, text, strlen(text), regref, false, &d)) {
			st = llm_cli_fail(c, &d);
		} else {
			snprintf(id, sizeof id, "%s", e.digest ? e.digest : "");
			from_manifest(&pm, id, out, base);
			llm_manifest_free(&pm);
			st = 1;
		}
	} else if (err == LLM_ERR_NOT_FOUND && !explicit_ref && at && !llm_semver_check(at, NULL)) {
		*out = json_pack("{s:s,s:s}", "name", name, "version", at);
		if (!c->quiet)
			llm_cli_error(c,
				      "note: --parent %s is not in %s: recorded without a digest "
				      "(give the parent's tarball to record one)",
				      ref, regref);
	} else {
		st = llm_cli_fail(c, &d);
	}
	llm_registry_entry_clear(&e);
	free(version);
	if (r)
		llm_registry_close(r);
	free(copy);
	return st;
}

/* --parent: an artifact (tarball, MANIFEST.json, unpacked folder) gives its name, version and
 * identity; otherwise a registry reference. */
static int parent_field(struct llm_cli *c, const char *ref, json_t **out, json_t **base)
{
	struct stat st;
	*out = NULL;
	*base = NULL;
	if (stat(ref, &st) && !strchr(ref, '/')) {
		int found = parent_from_registry(c, ref, out, base);
		return found == 1 ? 0 : found;
	}
	struct llm_manifest pm;
	char id[LLM_DIGEST_SIZE];
	int st2 = llm_pack_load(c, ref, &pm, id);
	if (st2)
		return st2;
	from_manifest(&pm, id, out, base);
	llm_manifest_free(&pm);
	return 0;
}

/* --base: an artifact gives its identity too; anything else is recorded as written. */
static json_t *base_field(const char *ref)
{
	struct stat st;
	size_t n = strlen(ref);
	if (!stat(ref, &st) && S_ISREG(st.st_mode) && n > 7 && !strcmp(ref + n - 7, ".tar.gz")) {
		struct llm_manifest bm;
		char id[LLM_DIGEST_SIZE];
		struct llm_diag d;
		if (!llm_tarball_manifest(ref, &bm, id, &d)) {
			char r[LLM_MANIFEST_NAME_MAX + LLM_MANIFEST_VERSION_MAX + 2];
			snprintf(r, sizeof r, "%s@%s", bm.name, bm.version);
			llm_manifest_free(&bm);
			return json_pack("{s:s,s:s}", "ref", r, "digest", id);
		}
	}
	return json_pack("{s:s}", "ref", ref);
}

static int set_field(struct llm_cli *c, struct llm_manifest *m, const char *key, json_t *v)
{
	struct llm_diag d;
	if (llm_manifest_set(m, key, v, &d))
		return llm_cli_fail(c, &d);
	return 0;
}

/* --data FILE or NAME=FILE, each a dataset entry with its digest. */
static int datasets_field(struct llm_cli *c, json_t **out)
{
	size_t n;
	char *const *v = llm_args_strs(&c->args, "data", &n);
	*out = NULL;
	if (!n)
		return 0;
	json_t *list = json_array();
	for (size_t i = 0; i < n; i++) {
		const char *file = v[i], *eq = strchr(v[i], '=');
		char name[256] = "";
		struct stat st;
		if (eq && stat(v[i], &st)) {
			snprintf(name, sizeof name, "%.*s", (int)(eq - v[i]), v[i]);
			file = eq + 1;
		}
		json_t *ds;
		struct llm_diag d;
		if (llm_manifest_dataset_from(file, *name ? name : NULL, &ds, &d)) {
			json_decref(list);
			return llm_cli_fail(c, &d);
		}
		json_array_append_new(list, ds);
	}
	*out = list;
	return 0;
}

static int gather_fields(struct llm_cli *c, struct llm_manifest *m)
{
	const char *params = llm_args_str(&c->args, "params");
	const char *metrics = llm_args_str(&c->args, "metrics");
	const char *parent = llm_args_str(&c->args, "parent");
	const char *base = llm_args_str(&c->args, "base");
	const char *licence = llm_args_str(&c->args, "licence");
	struct llm_diag d;
	json_t *run_data = NULL, *parent_base = NULL, *v;
	int st = 0;
	if (params) {
		json_t *p, *run;
		if (llm_manifest_params_from(params, &p, &run, &run_data, &d))
			return llm_cli_fail(c, &d);
		if ((st = set_field(c, m, "params", p)) ||
		    (run && (st = set_field(c, m, "run", run))))
			goto out;
		json_t *pb = json_object_get(p, "base");
		if (!base && json_is_string(pb) && json_string_length(pb))
			base = json_string_value(pb);
	}
	if (parent) {
		if ((st = parent_field(c, parent, &v, &parent_base)) ||
		    (st = set_field(c, m, "parent", v)))
			goto out;
	}
	if (base)
		st = set_field(c, m, "base_model", base_field(base));
	else if (parent_base)
		st = set_field(c, m, "base_model", json_incref(parent_base));
	if (st)
		goto out;
	if ((st = datasets_field(c, &v)))
		goto out;
	if (v)
		st = set_field(c, m, "datasets", v);
	else if (run_data && json_array_size(run_data))
		st = set_field(c, m, "datasets", json_incref(run_data));
	if (st)
		goto out;
	if (metrics) {
		if (llm_manifest_metrics_from(metrics, &v, &d)) {
			st = llm_cli_fail(c, &d);
			goto out;
		}
		if ((st = set_field(c, m, "metrics", v)))
			goto out;
	}
	if (licence && (st = set_field(c, m, "licence", json_string(licence))))
		goto out;
	size_t ntags;
	char **tags = NULL;
	if (llm_args_list(&c->args, "tag", &tags, &ntags)) {
		st = LLM_EXIT_IO;
		goto out;
	}
	if (ntags) {
		json_t *t = json_array();
		for (size_t i = 0; i < ntags; i++)
			json_array_append_new(t, json_string(tags[i]));
		st = set_field(c, m, "tags", t);
	}
	llm_strv_free(tags);
out:
	json_decref(run_data);
	json_decref(parent_base);
	return st;
}

static int run_create(struct llm_cli *c)
{
	struct llm_args *a = &c->args;
	const char *name = llm_args_str(a, "name"), *version = llm_args_str(a, "version");
	if (a->noperands != 1)
		return llm_cli_usage(c, "create needs exactly one model folder");
	if (!name)
		return llm_cli_usage(c, "--name is required");
	if (!version)
		return llm_cli_usage(c, "--version is required (a SemVer version such as 1.0.0)");
	if (!*version)
		return llm_cli_usage(c, "option '--version' needs an argument (SEMVER)");
	const char *dir = a->operands[0];
	int64_t created;
	int st = creation_time(c, &created);
	if (st)
		return st;
	struct llm_manifest m;
	struct llm_diag d;
	if (llm_manifest_init(&m, name, version, created, &d))
		return llm_cli_usage(c, "%s", d.msg);
	size_t nex;
	char *const *ex = llm_args_strs(a, "exclude", &nex);
	bool skipped;
	char out[4200];
	const char *out_dir = llm_args_str(a, "out");
	if (!strcmp(out_dir, "."))
		snprintf(out, sizeof out, "%s-%s.tar.gz", name, version);
	else
		snprintf(out, sizeof out, "%s/%s-%s.tar.gz", out_dir, name, version);
	if ((st = gather_fields(c, &m)))
		goto done;
	if (llm_tarball_scan(&m, dir, ex, nex, &skipped, &d)) {
		st = llm_cli_fail(c, &d);
		goto done;
	}
	if (skipped && !c->quiet)
		llm_cli_error(
		    c, "note: %s/MANIFEST.json left out: create writes the artifact's own", dir);
	if (!m.nfiles) {
		st = llm_cli_usage(c, "%s: no files to pack", dir);
		goto done;
	}
	if (strcmp(out_dir, ".") && llm_mkdirs(out_dir, &d)) {
		st = llm_cli_fail(c, &d);
		goto done;
	}
	struct llm_tarball_opts o;
	struct llm_pack_progress p;
	llm_pack_tar_opts(c, &o, &p, "create");
	o.level = (int)llm_args_int(a, "level");
	enum llm_err e = llm_tarball_write(&m, dir, out, &o, &d);
	llm_pack_progress_finish(&p);
	if (e) {
		st = llm_cli_fail(c, &d);
		goto done;
	}
	char id[LLM_DIGEST_SIZE];
	if (llm_manifest_identity(&m, id)) {
		llm_cli_error(c, "out of memory");
		st = LLM_EXIT_IO;
		goto done;
	}
	struct stat sst;
	uint64_t packed = stat(out, &sst) ? 0 : (uint64_t)sst.st_size;
	if (llm_args_flag(a, "json")) {
		json_t *j =
		    json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "path", out, "name", name, "version",
			      version, "identity", id, "files", (json_int_t)m.nfiles, "size",
			      (json_int_t)m.total_size, "compressed_size", (json_int_t)packed);
		if (llm_cli_write_json(c, "-", j, &d))
			st = llm_cli_fail(c, &d);
		json_decref(j);
	} else {
		llm_cli_write(c, out, strlen(out));
		llm_cli_write(c, "\n", 1);
		if (!c->quiet) {
			char hs[32], hp[32];
			llm_pack_human_size(m.total_size, hs, sizeof hs);
			llm_pack_human_size(packed, hp, sizeof hp);
			llm_cli_error(c, "%zu files, %s (%s packed), identity %s", m.nfiles, hs, hp,
				      id);
		}
	}
done:
	llm_manifest_free(&m);
	return st;
}

static const struct llm_opt create_opts[] = {
    {"name", 'n', LLM_OPT_STRING, "NAME", "the artifact's name: a-z, 0-9 and . _ - (required)"},
    {"version", 0, LLM_OPT_STRING, "SEMVER", "the artifact's version, SemVer 2.0.0 (required)",
     .no_env = true},
    {"out", 'o', LLM_OPT_STRING, "DIR", "where NAME-VERSION.tar.gz goes", "."},
    {"parent", 0, LLM_OPT_STRING, "REF",
     "the artifact it derives from: a tarball, or [registry:]NAME@VERSION"},
    {"registry", 0, LLM_OPT_STRING, "REF", "where a --parent NAME@VERSION is looked up"},
    {"base", 0, LLM_OPT_STRING, "MODEL", "the base model it was trained from"},
    {"data", 'd', LLM_OPT_STRING, "[NAME=]FILE",
     "a dataset it was trained or evaluated on (digest recorded)", .repeat = true},
    {"params", 0, LLM_OPT_STRING, "FILE|RUN",
     "hyperparameters: a params.json or an llm-tune run folder"},
    {"metrics", 0, LLM_OPT_STRING, "REPORT", "eval metrics from an llm-eval --report file"},
    {"licence", 0, LLM_OPT_STRING, "SPDX", "the licence, as an SPDX expression (Apache-2.0)"},
    {"tag", 0, LLM_OPT_STRING, "TAG", "a tag for the model card (repeat or comma-separate)",
     .repeat = true},
    {"created", 0, LLM_OPT_STRING, "TIME",
     "the creation time: YYYY-MM-DDTHH:MM:SSZ or @SECONDS (default SOURCE_DATE_EPOCH, or now)"},
    {"exclude", 'x', LLM_OPT_STRING, "PATTERN",
     "leave out files or folders matching a glob (path or base name)", .repeat = true},
    {"level", 0, LLM_OPT_INT, "N", "gzip compression level", "6", .min = 1, .max = 9},
    {"json", 0, LLM_OPT_FLAG, NULL, "print path, identity and sizes as JSON"},
    {0},
};

const struct llm_verb llm_pack_verb_create = {
    "create",
    "pack a model folder as a reproducible NAME-VERSION.tar.gz",
    "DIR --name NAME --version SEMVER [OPTIONS]",
    "Packs every regular file under DIR (links to files followed) into OUT/NAME-VERSION.tar.gz\n"
    "with MANIFEST.json first: sizes and sha256 digests, parent, base model, datasets,\n"
    "parameters, metrics and licence.  The same files, manifest fields and level give the same\n"
    "bytes on any machine.  Prints the tarball's path.",
    {create_opts, llm_pack_opts_threads, llm_pack_opts_base_create},
    run_create,
};
