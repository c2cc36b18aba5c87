#include "config.h"

#include "artifact/resolve.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifact/manifest.h"
#include "artifact/registry.h"
#include "artifact/tarball.h"
#include "core/hash.h"

bool llm_artifact_is_ref(const char *ref)
{
	size_t n = strlen(ref);
	return strncmp(ref, "registry:", 9) == 0 || (n > 7 && strcmp(ref + n - 7, ".tar.gz") == 0);
}

static enum llm_err cache_root(char *out, size_t outsz, struct llm_diag *d)
{
	const char *home = getenv("LLMOPS_HOME");
	int n;
	if (home && *home) {
		n = snprintf(out, outsz, "%s/cache/artifacts", home);
	} else {
		const char *user = getenv("HOME");
		if (!user || !*user) {
			struct passwd *pw = getpwuid(getuid());
			user = pw && pw->pw_dir ? pw->pw_dir : ".";
		}
		n = snprintf(out, outsz, "%s/.llmops/cache/artifacts", user);
	}
	if (n < 0 || (size_t)n >= outsz)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "cache path too long");
	return LLM_OK;
}

static enum llm_err mkdir_p(const char *path, struct llm_diag *d)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, path, 0, "path too long");
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0777) != 0 && errno != EEXIST)
			return llm_diag_set(d, LLM_ERR_IO, p, 0, "cannot create directory: %s",
					    strerror(errno));
		*s = c;
		if (!c)
			break;
	}
	return LLM_OK;
}

static bool is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void remove_tree(const char *path)
{
	DIR *dir = opendir(path);
	if (dir) {
		struct dirent *de;
		while ((de = readdir(dir))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char p[PATH_MAX];
			if (snprintf(p, sizeof p, "%s/%s", path, de->d_name) >= (int)sizeof p)
				continue;
			struct stat st;
			if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
				remove_tree(p);
			else
				unlink(p);
		}
		closedir(dir);
	}
	rmdir(path);
}

/* Unpack the tarball (verified) into root/hex, unless a finished folder is there already.
 * llm_tarball_unpack renames the folder into place only once everything verified. */
static enum llm_err unpack_into_cache(const char *tarball, const char *root, const char *hex,
				      char *dir_out, size_t dir_outsz, struct llm_diag *d)
{
	if (snprintf(dir_out, dir_outsz, "%s/%s", root, hex) >= (int)dir_outsz)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "cache path too long");
	if (is_dir(dir_out))
		return LLM_OK;
	enum llm_err e = mkdir_p(root, d);
	if (e)
		return e;
	struct llm_manifest m = {0};
	char identity[LLM_DIGEST_SIZE];
	e = llm_tarball_unpack(tarball, dir_out, NULL, &m, identity, d);
	llm_manifest_free(&m);
	if (!e && strcmp(identity + 7, hex) != 0) {
		/* Cannot happen unless the tarball changed under us; do not keep a folder under
		 * another artifact's name. */
		remove_tree(dir_out);
		return llm_diag_set(d, LLM_ERR_CHECK, tarball, 0,
				    "the artifact changed while it was read (identity %s, expected "
				    "sha256:%s)",
				    identity, hex);
	}
	/* Lost a race with another process unpacking the same artifact: theirs is as good. */
	if (e && is_dir(dir_out) && e != LLM_ERR_CHECK && e != LLM_ERR_FORMAT)
		return LLM_OK;
	return e;
}

static enum llm_err resolve_tarball(const char *path, char *dir_out, size_t dir_outsz,
				    struct llm_diag *d)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "cannot open: %s", strerror(errno));
	struct llm_manifest m = {0};
	char identity[LLM_DIGEST_SIZE];
	enum llm_err e = llm_tarball_manifest(path, &m, identity, d);
	llm_manifest_free(&m);
	if (e)
		return e;
	const char *hex = identity + 7; /* after "sha256:" */
	char root[PATH_MAX];
	if ((e = cache_root(root, sizeof root, d)))
		return e;
	return unpack_into_cache(path, root, hex, dir_out, dir_outsz, d);
}

static enum llm_err resolve_registry(const char *ref, const char *registry_ref, char *dir_out,
				     size_t dir_outsz, struct llm_diag *d)
{
	char *name = NULL, *at = NULL, *version = NULL;
	struct llm_registry *r = NULL;
	struct llm_registry_entry ent = {0};
	enum llm_err e = llm_registry_split_ref(ref + 9, &name, &at, d);
	if (e)
		return e;
	if ((e = llm_registry_open(registry_ref, &r, d)) ||
	    (e = llm_registry_resolve(r, name, at, &version, d)) ||
	    (e = llm_registry_show(r, name, version, &ent, d)))
		goto out;
	const char *hex = strncmp(ent.digest, "sha256:", 7) == 0 ? ent.digest + 7 : ent.digest;
	if (strlen(hex) != LLM_SHA256_HEX_LEN || strspn(hex, "0123456789abcdef") != strlen(hex)) {
		e = llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0, "%s: the registry records digest %s",
				 ref, ent.digest);
		goto out;
	}
	char root[PATH_MAX];
	if ((e = cache_root(root, sizeof root, d)))
		goto out;
	if (snprintf(dir_out, dir_outsz, "%s/%s", root, hex) >= (int)dir_outsz) {
		e = llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "cache path too long");
		goto out;
	}
	if (is_dir(dir_out))
		goto out; /* fetched and verified before */
	if ((e = mkdir_p(root, d)))
		goto out;
	char tmpdir[PATH_MAX], file[PATH_MAX];
	if (snprintf(tmpdir, sizeof tmpdir, "%s/.pull-XXXXXX", root) >= (int)sizeof tmpdir) {
		e = llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "cache path too long");
		goto out;
	}
	if (!mkdtemp(tmpdir)) {
		e = llm_diag_set(d, LLM_ERR_IO, root, 0, "cannot create a temporary directory: %s",
				 strerror(errno));
		goto out;
	}
	if (snprintf(file, sizeof file, "%s/artifact.tar.gz", tmpdir) >= (int)sizeof file) {
		e = llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "cache path too long");
		remove_tree(tmpdir);
		goto out;
	}
	bool has_sig;
	e = llm_registry_pull(r, name, version, file, &has_sig, d);
	if (!e)
		e = unpack_into_cache(file, root, hex, dir_out, dir_outsz, d);
	remove_tree(tmpdir);
out:
	llm_registry_entry_clear(&ent);
	llm_registry_close(r);
	free(version);
	free(name);
	return e;
}

enum llm_err llm_artifact_resolve(const char *ref, const char *registry_ref, char *dir_out,
				  size_t dir_outsz, struct llm_diag *d)
{
	if (strncmp(ref, "registry:", 9) == 0)
		return resolve_registry(ref, registry_ref, dir_out, dir_outsz, d);
	return resolve_tarball(ref, dir_out, dir_outsz, d);
}
