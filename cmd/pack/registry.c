/* llm-pack push, pull, list, show, alias, promote, lineage, history: the verbs of the model
 * registry (lib/artifact/registry.h), a directory by default or an OCI registry. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "artifact/registry.h"
#include "cli.h"
#include "core/opt.h"
#include "pack/verbs.h"

static const struct llm_opt registry_opts[] = {
    {"registry", 0, LLM_OPT_STRING, "REF",
     "the registry: a directory or oci://host[:port]/namespace (default $LLMOPS_HOME/registry)"},
    {0},
};

static const struct llm_opt reason_opts[] = {
    {"reason", 0, LLM_OPT_STRING, "TEXT", "why, for the audit log"},
    {0},
};

static const struct llm_opt json_opts[] = {
    {"json", 0, LLM_OPT_FLAG, NULL, "write JSON on standard output instead of text"},
    {0},
};

static const struct llm_opt pull_opts[] = {
    {"out", 'o', LLM_OPT_STRING, "PATH",
     "where to write: a directory (NAME-VERSION.tar.gz inside) or a file (default .)"},
    {0},
};

static const struct llm_opt promote_opts[] = {
    {"to", 0, LLM_OPT_STRING, "ALIAS", "the alias to move (production, staging, ...)"},
    {0},
};

static int fail(struct llm_cli *c, const struct llm_diag *d)
{
	return llm_cli_fail(c, d);
}

static int open_registry(struct llm_cli *c, struct llm_registry **r)
{
	struct llm_diag d = {0};
	if (llm_registry_open(llm_args_str(&c->args, "registry"), r, &d))
		return fail(c, &d);
	return LLM_EXIT_OK;
}

static bool out_str(struct llm_cli *c, const char *s)
{
	return llm_cli_write(c, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static bool out_printf(struct llm_cli *c, const char *fmt,
							     ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return false;
	if ((size_t)n >= sizeof buf) {
		char *big = malloc((size_t)n + 1);
		if (!big)
			return false;
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		bool ok = llm_cli_write(c, big, (size_t)n);
		free(big);
		return ok;
	}
	return llm_cli_write(c, buf, (size_t)n);
}

static int out_json(struct llm_cli *c, json_t *v)
{
	char *s = json_dumps(v, LLM_JSON_FLAGS);
	json_decref(v);
	if (!s) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	bool ok = out_str(c, s) && out_str(c, "\n");
	free(s);
	return ok ? LLM_EXIT_OK : LLM_EXIT_IO;
}

/* Message on stderr unless --quiet. */
__attribute__((format(printf, 2, 3))) static void note(struct llm_cli *c, const char *fmt, ...)
{
	if (c->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", c->tool->name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int need_operands(struct llm_cli *c, size_t lo, size_t hi, const char *what)
{
	if (c->args.noperands < lo || c->args.noperands > hi)
		return llm_cli_usage(c, "%s", what);
	return LLM_EXIT_OK;
}

/* NAME[@REF] resolved to a version. */
static int resolve_operand(struct llm_cli *c, struct llm_registry *r, const char *arg, char **name,
			   char **version, bool need_at)
{
	struct llm_diag d = {0};
	char *copy, *at;
	*name = *version = NULL;
	if (llm_registry_split_ref(arg, &copy, &at, &d))
		return llm_cli_usage(c, "%s", d.msg);
	if (need_at && !at) {
		free(copy);
		return llm_cli_usage(c, "%s: give NAME@VERSION (or NAME@ALIAS)", arg);
	}
	if (llm_registry_resolve(r, copy, at, version, &d)) {
		free(copy);
		return fail(c, &d);
	}
	*name = copy;
	return LLM_EXIT_OK;
}

/* The aliases pointing at version, comma-separated ("" for none); "latest" included when
 * latest is that version. */
static char *aliases_of(struct llm_registry *r, const char *name, const char *version,
			const char *latest, json_t *arr)
{
	char **al = NULL, **av = NULL;
	size_t n = 0;
	struct llm_buf b;
	llm_buf_init(&b, 1 << 20);
	llm_buf_puts(&b, "");
	if (latest && !strcmp(latest, version)) {
		llm_buf_puts(&b, "latest");
		if (arr)
			json_array_append_new(arr, json_string("latest"));
	}
	if (llm_registry_aliases(r, name, &al, &av, &n, NULL) == LLM_OK) {
		for (size_t i = 0; i < n; i++) {
			if (strcmp(av[i], version) != 0)
				continue;
			if (b.len)
				llm_buf_putc(&b, ',');
			llm_buf_puts(&b, al[i]);
			if (arr)
				json_array_append_new(arr, json_string(al[i]));
		}
	}
	llm_strv_free(al);
	llm_strv_free(av);
	return b.data;
}

/* --- push -------------------------------------------------------------------------------- */

static int run_push(struct llm_cli *c)
{
	if (c->args.noperands == 0)
		return llm_cli_usage(c,
				     "push: give one or more artifact files (NAME-VERSION.tar.gz)");
	struct llm_registry *r;
	int st = open_registry(c, &r);
	if (st)
		return st;
	const char *reason = llm_args_str(&c->args, "reason");
	for (size_t i = 0; i < c->args.noperands && st == LLM_EXIT_OK; i++) {
		struct llm_diag d = {0};
		struct llm_registry_entry e;
		bool existed;
		if (llm_registry_push(r, c->args.operands[i], reason, &e, &existed, &d)) {
			st = fail(c, &d);
			break;
		}
		if (existed)
			note(c, "%s@%s is already in %s with the same digest: nothing to do",
			     e.name, e.version, r->ref);
		else
			note(c, "pushed %s@%s to %s%s", e.name, e.version, r->ref,
			     e.is_signed ? " (signed)" : "");
		if (!out_printf(c, "%s@%s %s\n", e.name, e.version, e.digest))
			st = LLM_EXIT_IO;
		llm_registry_entry_clear(&e);
	}
	llm_registry_close(r);
	return st;
}

const struct llm_verb llm_pack_verb_push = {
    "push",
    "store artifacts in the registry",
    "FILE... [OPTIONS]",
    "Verify each artifact, then store it under its name and version, with FILE.sig when there\n"
    "is one.  Versions never change: pushing one that is there with the same identity does\n"
    "nothing, with another identity is refused (status 1).  Prints NAME@VERSION and the\n"
    "identity of each on standard output.",
    {registry_opts, reason_opts, llm_cli_opts_base},
    run_push,
};

/* --- pull -------------------------------------------------------------------------------- */

static int run_pull(struct llm_cli *c)
{
	int st = need_operands(c, 1, 1, "pull: give NAME[@VERSION|@ALIAS]");
	if (st)
		return st;
	struct llm_registry *r;
	if ((st = open_registry(c, &r)))
		return st;
	char *name = NULL, *version = NULL, *path = NULL;
	if ((st = resolve_operand(c, r, c->args.operands[0], &name, &version, false)))
		goto out;
	const char *out = llm_args_str(&c->args, "out");
	if (!out || !*out)
		out = ".";
	struct stat sb;
	size_t n = strlen(out) + strlen(name) + strlen(version) + 16;
	path = malloc(n);
	if (!path) {
		llm_cli_error(c, "out of memory");
		st = LLM_EXIT_IO;
		goto out;
	}
	if (stat(out, &sb) == 0 && S_ISDIR(sb.st_mode))
		snprintf(path, n, "%s/%s-%s.tar.gz", out, name, version);
	else
		snprintf(path, n, "%s", out);
	struct llm_diag d = {0};
	bool has_sig;
	if (llm_registry_pull(r, name, version, path, &has_sig, &d)) {
		st = fail(c, &d);
		goto out;
	}
	note(c, "pulled %s@%s (verified%s)", name, version, has_sig ? ", with its signature" : "");
	if (!out_printf(c, "%s\n", path))
		st = LLM_EXIT_IO;
out:
	free(path);
	free(name);
	free(version);
	llm_registry_close(r);
	return st;
}

const struct llm_verb llm_pack_verb_pull = {
    "pull",
    "fetch an artifact from the registry, verified",
    "NAME[@VERSION|@ALIAS] [OPTIONS]",
    "Fetch the version (the highest when none is given, or the one an alias names), verify\n"
    "every file against its manifest and its identity against the registry's record, and only\n"
    "then write it (and its .sig when signed).  Prints the path written.",
    {registry_opts, pull_opts, llm_cli_opts_base},
    run_pull,
};

/* --- list -------------------------------------------------------------------------------- */

static int list_name(struct llm_cli *c, struct llm_registry *r, const char *name, bool json)
{
	struct llm_diag d = {0};
	char **v;
	size_t n;
	if (llm_registry_versions(r, name, &v, &n, &d))
		return fail(c, &d);
	int st = LLM_EXIT_OK;
	json_t *arr = json ? json_array() : NULL;
	if (!json &&
	    !out_printf(c, "%-24s %-8s %-71s %s\n", "VERSION", "SIGNED", "DIGEST", "ALIASES"))
		st = LLM_EXIT_IO;
	for (size_t i = n; i-- > 0 && !st;) {
		struct llm_registry_entry e;
		if (llm_registry_show(r, name, v[i], &e, &d)) {
			st = fail(c, &d);
			break;
		}
		json_t *aj = json ? json_array() : NULL;
		char *al = aliases_of(r, name, v[i], v[n - 1], aj);
		if (json)
			json_array_append_new(
			    arr, json_pack("{s:s, s:s, s:I, s:b, s:s?, s:o}", "version", v[i],
					   "digest", e.digest, "size", (json_int_t)e.size, "signed",
					   e.is_signed, "pushed", e.pushed, "aliases", aj));
		else if (!out_printf(c, "%-24s %-8s %-71s %s\n", v[i], e.is_signed ? "yes" : "no",
				     e.digest, al && *al ? al : "-"))
			st = LLM_EXIT_IO;
		free(al);
		llm_registry_entry_clear(&e);
	}
	llm_strv_free(v);
	if (json && !st)
		return out_json(c, json_pack("{s:s, s:o}", "name", name, "versions", arr));
	json_decref(arr);
	return st;
}

static int run_list(struct llm_cli *c)
{
	int st = need_operands(c, 0, 1, "list: give at most one NAME");
	if (st)
		return st;
	struct llm_registry *r;
	if ((st = open_registry(c, &r)))
		return st;
	bool json = llm_args_flag(&c->args, "json");
	if (c->args.noperands == 1) {
		if (!llm_registry_name_ok(c->args.operands[0]))
			st = llm_cli_usage(c, "%s: not a model name", c->args.operands[0]);
		else
			st = list_name(c, r, c->args.operands[0], json);
		llm_registry_close(r);
		return st;
	}
	struct llm_diag d = {0};
	char **names;
	size_t nn;
	if (llm_registry_names(r, &names, &nn, &d)) {
		llm_registry_close(r);
		return fail(c, &d);
	}
	json_t *arr = json ? json_array() : NULL;
	if (!json && nn &&
	    !out_printf(c, "%-32s %-8s %-24s %s\n", "NAME", "VERSIONS", "LATEST", "ALIASES"))
		st = LLM_EXIT_IO;
	size_t shown = 0;
	for (size_t i = 0; i < nn && !st; i++) {
		char **v;
		size_t n;
		enum llm_err e = llm_registry_versions(r, names[i], &v, &n, &d);
		if (e == LLM_ERR_NOT_FOUND)
			continue; /* a name whose first push was cut short */
		if (e) {
			st = fail(c, &d);
			break;
		}
		char **al = NULL, **av = NULL;
		size_t na = 0;
		if (llm_registry_aliases(r, names[i], &al, &av, &na, &d)) {
			llm_strv_free(v);
			st = fail(c, &d);
			break;
		}
		shown++;
		if (json) {
			json_t *vj = json_array(), *aj = json_object();
			for (size_t k = 0; k < n; k++)
				json_array_append_new(vj, json_string(v[k]));
			for (size_t k = 0; k < na; k++)
				json_object_set_new(aj, al[k], json_string(av[k]));
			json_array_append_new(arr, json_pack("{s:s, s:s, s:o, s:o}", "name",
							     names[i], "latest", v[n - 1],
							     "versions", vj, "aliases", aj));
		} else {
			struct llm_buf b;
			llm_buf_init(&b, 1 << 20);
			llm_buf_puts(&b, "");
			for (size_t k = 0; k < na; k++)
				llm_buf_printf(&b, "%s%s=%s", k ? " " : "", al[k], av[k]);
			if (!out_printf(c, "%-32s %-8zu %-24s %s\n", names[i], n, v[n - 1],
					b.len ? b.data : "-"))
				st = LLM_EXIT_IO;
			llm_buf_free(&b);
		}
		llm_strv_free(al);
		llm_strv_free(av);
		llm_strv_free(v);
	}
	llm_strv_free(names);
	if (!st && !json && shown == 0)
		note(c, "%s holds no artifacts", r->ref);
	llm_registry_close(r);
	if (json && !st)
		return out_json(c, arr);
	json_decref(arr);
	return st;
}

const struct llm_verb llm_pack_verb_list = {
    "list",
    "list the names, versions and aliases in the registry",
    "[NAME] [OPTIONS]",
    "With no NAME: one line per name with its number of versions, the latest and its aliases.\n"
    "With NAME: its versions, highest first, each with whether it is signed, its identity and\n"
    "the aliases that point at it.",
    {registry_opts, json_opts, llm_cli_opts_base},
    run_list,
};

/* --- show -------------------------------------------------------------------------------- */

static int run_show(struct llm_cli *c)
{
	int st = need_operands(c, 1, 1, "show: give NAME[@VERSION|@ALIAS]");
	if (st)
		return st;
	struct llm_registry *r;
	if ((st = open_registry(c, &r)))
		return st;
	char *name = NULL, *version = NULL, *latest = NULL;
	struct llm_registry_entry e = {0};
	struct llm_diag d = {0};
	if ((st = resolve_operand(c, r, c->args.operands[0], &name, &version, false)))
		goto out;
	if (llm_registry_show(r, name, version, &e, &d) ||
	    llm_registry_resolve(r, name, NULL, &latest, &d)) {
		st = fail(c, &d);
		goto out;
	}
	json_t *manifest = json_loads(e.manifest, 0, NULL);
	json_t *aj = json_array();
	char *al = aliases_of(r, name, version, latest, aj);
	if (llm_args_flag(&c->args, "json")) {
		json_t *o =
		    json_pack("{s:s, s:s, s:s, s:I, s:b, s:s?, s:s?, s:o, s:o}", "name", name,
			      "version", version, "digest", e.digest, "size", (json_int_t)e.size,
			      "signed", e.is_signed, "pushed", e.pushed, "pushed_by", e.pushed_by,
			      "aliases", aj, "manifest", manifest ? manifest : json_null());
		st = o ? out_json(c, o) : LLM_EXIT_IO;
	} else {
		json_t *files = json_object_get(manifest, "files");
		json_t *parent = json_object_get(manifest, "parent");
		char *ps = parent && !json_is_null(parent)
			       ? (json_is_string(parent) ? strdup(json_string_value(parent))
							 : json_dumps(parent, JSON_COMPACT))
			       : NULL;
		const char *created = json_string_value(json_object_get(manifest, "created"));
		bool ok = out_printf(c, "name:      %s\n", name) &&
			  out_printf(c, "version:   %s\n", version) &&
			  out_printf(c, "digest:    %s\n", e.digest) &&
			  out_printf(c, "size:      %llu bytes\n", (unsigned long long)e.size) &&
			  out_printf(c, "signed:    %s\n", e.is_signed ? "yes" : "no") &&
			  out_printf(c, "aliases:   %s\n", al && *al ? al : "-") &&
			  out_printf(c, "pushed:    %s by %s\n", e.pushed ? e.pushed : "-",
				     e.pushed_by ? e.pushed_by : "-") &&
			  out_printf(c, "created:   %s\n", created ? created : "-") &&
			  out_printf(c, "parent:    %s\n", ps ? ps : "-") &&
			  out_printf(c, "files:     %zu\n", json_array_size(files));
		free(ps);
		json_decref(manifest);
		json_decref(aj);
		st = ok ? LLM_EXIT_OK : LLM_EXIT_IO;
	}
	free(al);
out:
	llm_registry_entry_clear(&e);
	free(name);
	free(version);
	free(latest);
	llm_registry_close(r);
	return st;
}

const struct llm_verb llm_pack_verb_show = {
    "show",
    "describe one version in the registry",
    "NAME[@VERSION|@ALIAS] [OPTIONS]",
    "The version's identity, size, signature, aliases, when and by whom it was pushed, and a\n"
    "summary of its manifest; with --json, the whole manifest too.  Without @, the latest.",
    {registry_opts, json_opts, llm_cli_opts_base},
    run_show,
};

/* --- alias ------------------------------------------------------------------------------- */

static int run_alias(struct llm_cli *c)
{
	const char *sub = c->args.noperands ? c->args.operands[0] : "";
	struct llm_registry *r;
	int st;
	struct llm_diag d = {0};
	if (!strcmp(sub, "set")) {
		if ((st = need_operands(c, 4, 4, "alias set: give NAME ALIAS VERSION")))
			return st;
	} else if (!strcmp(sub, "rm")) {
		if ((st = need_operands(c, 3, 3, "alias rm: give NAME ALIAS")))
			return st;
	} else if (!strcmp(sub, "list")) {
		if ((st = need_operands(c, 2, 2, "alias list: give NAME")))
			return st;
	} else {
		return llm_cli_usage(c, "alias: give set, rm or list");
	}
	const char *name = c->args.operands[1];
	if (!llm_registry_name_ok(name))
		return llm_cli_usage(c, "%s: not a model name", name);
	if ((st = open_registry(c, &r)))
		return st;
	if (!strcmp(sub, "list")) {
		char **al, **av;
		size_t n;
		char *latest = NULL;
		if (llm_registry_resolve(r, name, NULL, &latest, &d) ||
		    llm_registry_aliases(r, name, &al, &av, &n, &d)) {
			free(latest);
			llm_registry_close(r);
			return fail(c, &d);
		}
		bool ok = true;
		if (llm_args_flag(&c->args, "json")) {
			json_t *o = json_object();
			json_object_set_new(o, "latest", json_string(latest));
			for (size_t i = 0; i < n; i++)
				json_object_set_new(o, al[i], json_string(av[i]));
			st = out_json(c, o);
		} else {
			ok = out_printf(c, "%-24s %s\n", "latest", latest);
			for (size_t i = 0; ok && i < n; i++)
				ok = out_printf(c, "%-24s %s\n", al[i], av[i]);
			st = ok ? LLM_EXIT_OK : LLM_EXIT_IO;
		}
		free(latest);
		llm_strv_free(al);
		llm_strv_free(av);
		llm_registry_close(r);
		return st;
	}
	const char *alias = c->args.operands[2];
	const char *version = !strcmp(sub, "set") ? c->args.operands[3] : NULL;
	char *prev = NULL;
	if (llm_registry_alias_set(r, name, alias, version, "alias",
				   llm_args_str(&c->args, "reason"), &prev, &d)) {
		st = fail(c, &d);
	} else if (version) {
		if (prev && !strcmp(prev, version))
			note(c, "%s@%s already names %s", name, alias, version);
		else
			note(c, "%s@%s: %s -> %s", name, alias, prev ? prev : "(none)", version);
	} else {
		note(c, "%s@%s removed (was %s)", name, alias, prev);
	}
	free(prev);
	llm_registry_close(r);
	return st;
}

const struct llm_verb llm_pack_verb_alias = {
    "alias",
    "set, remove or list a name's aliases",
    "set NAME ALIAS VERSION | rm NAME ALIAS | list NAME [OPTIONS]",
    "set: point ALIAS (production, staging, ...) at an existing VERSION, atomically, and log\n"
    "it.  rm: remove ALIAS.  list: the aliases and the versions they name, with latest (the\n"
    "highest version, derived, never set).",
    {registry_opts, reason_opts, json_opts, llm_cli_opts_base},
    run_alias,
};

/* --- promote ----------------------------------------------------------------------------- */

static int run_promote(struct llm_cli *c)
{
	int st = need_operands(c, 1, 1, "promote: give NAME@VERSION and --to ALIAS");
	if (st)
		return st;
	const char *to = llm_args_str(&c->args, "to");
	if (!to || !*to)
		return llm_cli_usage(c, "promote: --to ALIAS is required");
	struct llm_registry *r;
	if ((st = open_registry(c, &r)))
		return st;
	char *name = NULL, *version = NULL, *prev = NULL;
	struct llm_diag d = {0};
	if ((st = resolve_operand(c, r, c->args.operands[0], &name, &version, true)))
		goto out;
	if (llm_registry_promote(r, name, version, to, llm_args_str(&c->args, "reason"), &prev,
				 &d)) {
		st = fail(c, &d);
		goto out;
	}
	if (prev && !strcmp(prev, version))
		note(c, "%s@%s already names %s", name, to, version);
	else
		note(c, "promoted %s@%s to %s (was %s)", name, version, to, prev ? prev : "unset");
out:
	free(prev);
	free(name);
	free(version);
	llm_registry_close(r);
	return st;
}

const struct llm_verb llm_pack_verb_promote = {
    "promote",
    "move an alias to a version that verifies",
    "NAME@VERSION --to ALIAS [OPTIONS]",
    "Fetch the version, verify it, and when the registry requires signatures (registry.json)\n"
    "check its signature against the registry's keys; only then move ALIAS to it and log the\n"
    "change with --reason.  NAME@ALIAS promotes what another alias names (staging to\n"
    "production).",
    {registry_opts, promote_opts, reason_opts, llm_cli_opts_base},
    run_promote,
};

/* --- lineage ----------------------------------------------------------------------------- */

static int run_lineage(struct llm_cli *c)
{
	int st = need_operands(c, 1, 1, "lineage: give NAME[@VERSION|@ALIAS]");
	if (st)
		return st;
	struct llm_registry *r;
	if ((st = open_registry(c, &r)))
		return st;
	char *name = NULL, *version = NULL;
	json_t *chain = NULL;
	struct llm_diag d = {0};
	if ((st = resolve_operand(c, r, c->args.operands[0], &name, &version, false)))
		goto out;
	if (llm_registry_lineage(r, name, version, &chain, &d)) {
		st = fail(c, &d);
		goto out;
	}
	if (llm_args_flag(&c->args, "json")) {
		st = out_json(c, chain);
		chain = NULL;
		goto out;
	}
	size_t i;
	json_t *it;
	json_array_foreach(chain, i, it)
	{
		const char *n = json_string_value(json_object_get(it, "name"));
		bool ok;
		const char *want = json_string_value(json_object_get(it, "expected_digest"));
		if (n)
			ok = out_printf(c, "%s%s@%s %s%s%s%s\n", i ? "<- " : "", n,
					json_string_value(json_object_get(it, "version")),
					json_string_value(json_object_get(it, "digest")),
					want ? " (the child's manifest records " : "",
					want ? want : "", want ? ")" : "");
		else
			ok = out_printf(c, "<- %s (not in the registry)\n",
					json_string_value(json_object_get(it, "ref")));
		if (!ok) {
			st = LLM_EXIT_IO;
			break;
		}
	}
out:
	json_decref(chain);
	free(name);
	free(version);
	llm_registry_close(r);
	return st;
}

const struct llm_verb llm_pack_verb_lineage = {
    "lineage",
    "the parent chain of a version, with digests",
    "NAME[@VERSION|@ALIAS] [OPTIONS]",
    "Follow each manifest's parent through the registry: one line per ancestor with its\n"
    "identity, ending with the first parent that is not in the registry.",
    {registry_opts, json_opts, llm_cli_opts_base},
    run_lineage,
};

/* --- history ----------------------------------------------------------------------------- */

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static int run_history(struct llm_cli *c)
{
	int st = need_operands(c, 0, 1, "history: give at most one NAME");
	if (st)
		return st;
	const char *name = c->args.noperands ? c->args.operands[0] : NULL;
	if (name && !llm_registry_name_ok(name))
		return llm_cli_usage(c, "%s: not a model name", name);
	struct llm_registry *r;
	if ((st = open_registry(c, &r)))
		return st;
	json_t *recs = NULL;
	struct llm_diag d = {0};
	if (llm_registry_history(r, name, &recs, &d)) {
		llm_registry_close(r);
		return fail(c, &d);
	}
	llm_registry_close(r);
	if (llm_args_flag(&c->args, "json"))
		return out_json(c, recs);
	size_t i;
	json_t *it;
	json_array_foreach(recs, i, it)
	{
		const char *action = jstr(it, "action");
		char what[600];
		if (json_object_get(it, "alias")) {
			json_t *from = json_object_get(it, "from"), *to = json_object_get(it, "to");
			snprintf(what, sizeof what, "%s@%s %s -> %s", jstr(it, "name"),
				 jstr(it, "alias"),
				 json_is_string(from) ? jstr(it, "from") : "(none)",
				 json_is_string(to) ? jstr(it, "to") : "(none)");
		} else {
			snprintf(what, sizeof what, "%s@%s %.19s", jstr(it, "name"),
				 jstr(it, "version"), jstr(it, "digest"));
		}
		const char *why = jstr(it, "why");
		if (!out_printf(c, "%s  %-20s %-8s %s%s%s\n", jstr(it, "ts"), jstr(it, "who"),
				action, what, *why ? "  # " : "", why)) {
			st = LLM_EXIT_IO;
			break;
		}
	}
	json_decref(recs);
	return st;
}

const struct llm_verb llm_pack_verb_history = {
    "history",
    "the registry's audit log: who changed what, when and why",
    "[NAME] [OPTIONS]",
    "Every push and alias change, oldest first (of NAME only when given): the time, who, the\n"
    "action, the version or the alias's move from one version to another, and the reason.",
    {registry_opts, json_opts, llm_cli_opts_base},
    run_history,
};
