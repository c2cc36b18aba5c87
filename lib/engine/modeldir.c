/* Model directories and llama GGUF files to and from an llm_model (see modeldir.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/atomic.h"
#include "engine/gguf.h"
#include "engine/modeldir.h"
#include "engine/safetensors.h"

#define PATH_MAX_LEN 4096

static enum llm_err join(char *out, const char *dir, const char *name, struct llm_diag *d)
{
	int n = snprintf(out, PATH_MAX_LEN, "%s/%s", dir, name);
	if (n < 0 || n >= PATH_MAX_LEN)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, dir, 0, "path too long");
	return LLM_OK;
}

/* out = a b c (any may be ""); false when it does not fit. */
static bool cat3(char *out, size_t n, const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	if (la + lb + lc + 1 > n)
		return false;
	memcpy(out, a, la);
	memcpy(out + la, b, lb);
	memcpy(out + la + lb, c, lc + 1);
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

/* --- weights ------------------------------------------------------------------------------- */

enum llm_err llm_modeldir_read_weights(struct llm_model *m, const char *path,
				       struct llm_diag *d)
{
	struct llm_safetensors *st;
	enum llm_err e = llm_safetensors_open(&st, path, d);
	if (e)
		return e;
	size_t np = llm_model_param_count(m);
	for (size_t i = 0; i < np && !e; i++) {
		struct llm_param p;
		llm_model_param(m, i, &p);
		e = llm_safetensors_read_f32(st, p.name, p.data, p.ndim, p.shape, d);
		if (e == LLM_ERR_NOT_FOUND)
			e = llm_diag_set(d, LLM_ERR_MISSING, path, 0, "no tensor %s", p.name);
	}
	for (size_t i = 0; i < st->n_tensors && !e; i++) {
		const char *name = st->tensors[i].name;
		if (llm_model_param_find(m, name) >= 0 || ends_with(name, ".rotary_emb.inv_freq"))
			continue;
		if (!strcmp(name, "lm_head.weight") && m->config.tie_word_embeddings)
			continue;
		e = llm_diag_set(d, LLM_ERR_CHECK, path, 0,
				 "unexpected tensor %s (not a parameter of a llama model of this "
				 "config)",
				 name);
	}
	llm_safetensors_close(st);
	return e;
}

enum llm_err llm_modeldir_write_weights(const struct llm_model *m, const char *path,
					struct llm_diag *d)
{
	size_t np = llm_model_param_count(m);
	struct llm_tensor_ref *t = calloc(np, sizeof *t);
	struct llm_param *p = calloc(np, sizeof *p);
	if (!t || !p) {
		free(t);
		free(p);
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	}
	for (size_t i = 0; i < np; i++) {
		llm_model_param(m, i, &p[i]);
		t[i].name = p[i].name;
		t[i].dtype = LLM_DTYPE_F32;
		t[i].ndim = p[i].ndim;
		t[i].shape[0] = p[i].shape[0];
		t[i].shape[1] = p[i].shape[1];
		t[i].data = p[i].data;
		t[i].nbytes = p[i].numel * sizeof(float);
	}
	const struct llm_kv_str meta[] = {{"format", "pt"}};
	enum llm_err e = llm_safetensors_write(path, t, np, meta, 1, d);
	free(t);
	free(p);
	return e;
}

/* --- loading a directory ------------------------------------------------------------------- */

enum llm_err llm_modeldir_load(struct llm_model **out, const char *dir, struct llm_diag *d)
{
	struct stat sb;
	*out = NULL;
	if (stat(dir, &sb) != 0)
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, dir, 0,
				    "cannot open model directory: %s", strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return llm_diag_set(d, LLM_ERR_USAGE, dir, 0, "not a model directory");
	char path[PATH_MAX_LEN];
	enum llm_err e = join(path, dir, "config.json", d);
	if (e)
		return e;
	if (access(path, F_OK) != 0)
		return llm_diag_set(d, LLM_ERR_NOT_FOUND, path, 0, "no config.json: not a model");
	struct llm_model_config c;
	if ((e = llm_model_config_load(&c, path, d)))
		return e;
	if ((e = join(path, dir, "model.safetensors", d)))
		return e;
	if (access(path, F_OK) != 0) {
		char idx[PATH_MAX_LEN];
		join(idx, dir, "model.safetensors.index.json", NULL);
		if (access(idx, F_OK) == 0)
			return llm_diag_set(d, LLM_ERR_CHECK, idx, 0,
					    "sharded checkpoints are not supported");
		return llm_diag_set(d, LLM_ERR_NOT_FOUND, path, 0, "no model.safetensors");
	}
	struct llm_model *m;
	if ((e = llm_model_new(&m, &c, d)))
		return e;
	if ((e = llm_modeldir_read_weights(m, path, d))) {
		llm_model_free(m);
		return e;
	}
	*out = m;
	return LLM_OK;
}

enum llm_err llm_modeldir_open(struct llm_model **out, const char *ref, struct llm_diag *d)
{
	if (ends_with(ref, ".gguf"))
		return llm_modeldir_load_gguf(out, ref, d);
	return llm_modeldir_load(out, ref, d);
}

/* --- writing a directory ------------------------------------------------------------------- */

static enum llm_err write_json(const char *path, json_t *o, struct llm_diag *d)
{
	char *s =
	    o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15)) : NULL;
	if (!s)
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	size_t n = strlen(s);
	char *t = realloc(s, n + 2);
	if (!t) {
		free(s);
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	}
	t[n] = '\n';
	enum llm_err e = llm_atomic_write_file(path, t, n + 1, d);
	free(t);
	return e;
}

static enum llm_err slurp(const char *path, char **buf, size_t *len, struct llm_diag *d)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "cannot open: %s", strerror(errno));
	size_t cap = 1 << 16, n = 0;
	char *p = malloc(cap);
	while (p) {
		if (n == cap) {
			char *q = realloc(p, cap * 2);
			if (!q) {
				free(p);
				p = NULL;
				break;
			}
			p = q;
			cap *= 2;
		}
		size_t k = fread(p + n, 1, cap - n, f);
		n += k;
		if (k == 0)
			break;
	}
	bool bad = ferror(f);
	fclose(f);
	if (!p)
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	if (bad) {
		free(p);
		return llm_diag_set(d, LLM_ERR_IO, path, 0, "read error");
	}
	*buf = p;
	*len = n;
	return LLM_OK;
}

/* The text of token id in a tokenizer.json's added tokens, or NULL. */
static const char *added_token(json_t *tok, int id)
{
	json_t *a = json_object_get(tok, "added_tokens"), *v;
	size_t i;
	json_array_foreach(a, i, v)
	{
		if (json_integer_value(json_object_get(v, "id")) == id)
			return json_string_value(json_object_get(v, "content"));
	}
	return NULL;
}

static enum llm_err write_tokenizer(const struct llm_model *m, const char *src, const char *dir,
				    struct llm_diag *d)
{
	char *buf;
	size_t len;
	char path[PATH_MAX_LEN];
	enum llm_err e = slurp(src, &buf, &len, d);
	if (e)
		return e;
	if (!(e = join(path, dir, "tokenizer.json", d)))
		e = llm_atomic_write_file(path, buf, len, d);
	json_t *tok = e ? NULL : json_loadb(buf, len, 0, NULL);
	free(buf);
	if (e)
		return e;
	json_t *o = json_object();
	json_object_set_new(o, "tokenizer_class", json_string("PreTrainedTokenizerFast"));
	json_object_set_new(o, "model_max_length",
			    json_integer(m->config.max_position_embeddings));
	json_object_set_new(o, "clean_up_tokenization_spaces", json_false());
	const char *bos = m->config.bos_token_id >= 0 ? added_token(tok, m->config.bos_token_id)
						       : NULL;
	const char *eos = m->config.eos_token_id >= 0 ? added_token(tok, m->config.eos_token_id)
						       : NULL;
	json_object_set_new(o, "bos_token", bos ? json_string(bos) : json_null());
	json_object_set_new(o, "eos_token", eos ? json_string(eos) : json_null());
	json_object_set_new(o, "add_bos_token", json_false());
	json_object_set_new(o, "add_eos_token", json_false());
	if (!(e = join(path, dir, "tokenizer_config.json", d)))
		e = write_json(path, o, d);
	json_decref(o);
	json_decref(tok);
	return e;
}

static enum llm_err write_generation_config(const struct llm_model *m, const char *path,
					    struct llm_diag *d)
{
	json_t *o = json_object();
	if (m->config.bos_token_id >= 0)
		json_object_set_new(o, "bos_token_id", json_integer(m->config.bos_token_id));
	if (m->config.eos_token_id >= 0)
		json_object_set_new(o, "eos_token_id", json_integer(m->config.eos_token_id));
	json_object_set_new(o, "do_sample", json_true());
	json_object_set_new(o, "temperature", json_real(0.7));
	json_object_set_new(o, "top_p", json_real(0.9));
	json_object_set_new(o, "max_new_tokens", json_integer(256));
	json_object_set_new(o, "_from_model_config", json_true());
	enum llm_err e = write_json(path, o, d);
	json_decref(o);
	return e;
}

enum llm_err llm_modeldir_write_files(const struct llm_model *m, const char *dir,
				      const struct llm_modeldir_save_opts *o, struct llm_diag *d)
{
	char path[PATH_MAX_LEN];
	enum llm_err e;
	if ((e = join(path, dir, "config.json", d)) ||
	    (e = llm_model_config_save(&m->config, path, d)))
		return e;
	if ((e = join(path, dir, "model.safetensors", d)) ||
	    (e = llm_modeldir_write_weights(m, path, d)))
		return e;
	if ((e = join(path, dir, "generation_config.json", d)) ||
	    (e = write_generation_config(m, path, d)))
		return e;
	if (o && o->tokenizer && (e = write_tokenizer(m, o->tokenizer, dir, d)))
		return e;
	return LLM_OK;
}

/* Remove a directory of plain files (what a save's temporary holds). */
static void remove_flat_dir(const char *dir)
{
	DIR *dp = opendir(dir);
	if (dp) {
		struct dirent *de;
		char path[PATH_MAX_LEN];
		while ((de = readdir(dp))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (join(path, dir, de->d_name, NULL) == LLM_OK)
				unlink(path);
		}
		closedir(dp);
	}
	rmdir(dir);
}

static void split_path(const char *dir, char *parent, char *base)
{
	char tmp[PATH_MAX_LEN];
	snprintf(tmp, sizeof tmp, "%s", dir);
	size_t n = strlen(tmp);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = '\0';
	char *slash = strrchr(tmp, '/');
	if (!slash) {
		snprintf(parent, PATH_MAX_LEN, ".");
		snprintf(base, PATH_MAX_LEN, "%s", tmp);
	} else {
		snprintf(base, PATH_MAX_LEN, "%s", slash + 1);
		if (slash == tmp)
			snprintf(parent, PATH_MAX_LEN, "/");
		else {
			*slash = '\0';
			snprintf(parent, PATH_MAX_LEN, "%s", tmp);
		}
	}
}

static enum llm_err sync_dir(const char *dir, struct llm_diag *d)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return llm_diag_set(d, LLM_ERR_IO, dir, 0, "cannot open: %s", strerror(errno));
	int r = fsync(fd);
	int err = errno;
	close(fd);
	if (r != 0 && err != EINVAL)
		return llm_diag_set(d, LLM_ERR_IO, dir, 0, "cannot sync: %s", strerror(err));
	return LLM_OK;
}

/* Leftovers of saves that died before their swap: .BASE.tmp-* and .BASE.old-* beside dir. */
static void remove_stale(const char *parent, const char *base)
{
	DIR *dp = opendir(parent);
	if (!dp)
		return;
	char tmp_prefix[PATH_MAX_LEN], old_prefix[PATH_MAX_LEN], path[PATH_MAX_LEN];
	if (!cat3(tmp_prefix, sizeof tmp_prefix, ".", base, ".tmp-") ||
	    !cat3(old_prefix, sizeof old_prefix, ".", base, ".old-")) {
		closedir(dp);
		return;
	}
	struct dirent *de;
	while ((de = readdir(dp))) {
		if (strncmp(de->d_name, tmp_prefix, strlen(tmp_prefix)) &&
		    strncmp(de->d_name, old_prefix, strlen(old_prefix)))
			continue;
		if (join(path, parent, de->d_name, NULL) == LLM_OK)
			remove_flat_dir(path);
	}
	closedir(dp);
}

enum llm_err llm_modeldir_save(const struct llm_model *m, const char *dir,
			       const struct llm_modeldir_save_opts *o, struct llm_diag *d)
{
	char parent[PATH_MAX_LEN], base[PATH_MAX_LEN], tmp[PATH_MAX_LEN], old[PATH_MAX_LEN];
	split_path(dir, parent, base);
	struct stat sb;
	bool exists = stat(dir, &sb) == 0;
	if (exists && !S_ISDIR(sb.st_mode))
		return llm_diag_set(d, LLM_ERR_USAGE, dir, 0, "exists and is not a directory");
	if (stat(parent, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return llm_diag_set(d, LLM_ERR_NOT_FOUND, parent, 0, "no such directory");
	remove_stale(parent, base);
	char pid[32], name[PATH_MAX_LEN];
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	if (!cat3(name, sizeof name, base, ".tmp-", pid) ||
	    !cat3(tmp, sizeof tmp, parent, "/.", name) ||
	    !cat3(name, sizeof name, base, ".old-", pid) ||
	    !cat3(old, sizeof old, parent, "/.", name))
		return llm_diag_set(d, LLM_ERR_TOO_BIG, dir, 0, "path too long");
	if (mkdir(tmp, 0777) != 0)
		return llm_diag_set(d, LLM_ERR_IO, tmp, 0, "cannot create: %s", strerror(errno));
	enum llm_err e = llm_modeldir_write_files(m, tmp, o, d);
	if (!e && o && o->extra)
		e = o->extra(tmp, o->extra_arg, d);
	if (!e)
		e = sync_dir(tmp, d);
	if (e) {
		remove_flat_dir(tmp);
		return e;
	}
	if (exists) {
		bool swapped = false;
#ifdef RENAME_EXCHANGE
		/* One step: dir is the old directory or the new one at every moment. */
		swapped = renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0;
		if (swapped)
			remove_flat_dir(tmp);
#endif
		if (!swapped) {
			/* Two steps: between them dir is missing and its old content is in old. */
			if (rename(dir, old) != 0) {
				e = llm_diag_set(d, LLM_ERR_IO, dir, 0, "cannot rename: %s",
						 strerror(errno));
				remove_flat_dir(tmp);
				return e;
			}
			if (rename(tmp, dir) != 0) {
				e = llm_diag_set(d, LLM_ERR_IO, dir, 0, "cannot rename: %s",
						 strerror(errno));
				rename(old, dir);
				remove_flat_dir(tmp);
				return e;
			}
			remove_flat_dir(old);
		}
	} else if (rename(tmp, dir) != 0) {
		e = llm_diag_set(d, LLM_ERR_IO, dir, 0, "cannot rename: %s", strerror(errno));
		remove_flat_dir(tmp);
		return e;
	}
	return sync_dir(parent, d);
}

/* --- GGUF ---------------------------------------------------------------------------------- */

static enum llm_err gguf_u32_or(const struct llm_gguf *g, const char *key, uint32_t def,
				uint32_t *out, struct llm_diag *d)
{
	if (!llm_gguf_find_kv(g, key)) {
		*out = def;
		return LLM_OK;
	}
	return llm_gguf_get_u32(g, key, out, d);
}

enum llm_err llm_modeldir_load_gguf(struct llm_model **out, const char *path, struct llm_diag *d)
{
	struct llm_gguf *g;
	*out = NULL;
	enum llm_err e = llm_gguf_open(&g, path, d);
	if (e)
		return e;
	const char *arch = NULL;
	if ((e = llm_gguf_get_str(g, "general.architecture", &arch, d)))
		goto done;
	if (strcmp(arch, "llama")) {
		e = llm_diag_set(d, LLM_ERR_CHECK, path, 0,
				 "architecture '%s' is not supported (llama only)", arch);
		goto done;
	}
	struct llm_model_config c = {0};
	uint32_t u[7];
	float eps, theta = 10000;
	if ((e = llm_gguf_get_u32(g, "llama.embedding_length", &u[0], d)) ||
	    (e = llm_gguf_get_u32(g, "llama.block_count", &u[1], d)) ||
	    (e = llm_gguf_get_u32(g, "llama.feed_forward_length", &u[2], d)) ||
	    (e = llm_gguf_get_u32(g, "llama.attention.head_count", &u[3], d)) ||
	    (e = gguf_u32_or(g, "llama.attention.head_count_kv", u[3], &u[4], d)) ||
	    (e = gguf_u32_or(g, "llama.context_length", 2048, &u[5], d)) ||
	    (e = llm_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps, d)))
		goto done;
	if (llm_gguf_find_kv(g, "llama.rope.freq_base") &&
	    (e = llm_gguf_get_f32(g, "llama.rope.freq_base", &theta, d)))
		goto done;
	const struct llm_tensor_ref *emb = llm_gguf_find_tensor(g, "token_embd.weight");
	if (!emb || emb->ndim != 2) {
		e = llm_diag_set(d, LLM_ERR_MISSING, path, 0, "no 2-D tensor token_embd.weight");
		goto done;
	}
	u[6] = (uint32_t)emb->shape[0];
	c.vocab_size = (int)u[6];
	c.hidden_size = (int)u[0];
	c.num_hidden_layers = (int)u[1];
	c.intermediate_size = (int)u[2];
	c.num_attention_heads = (int)u[3];
	c.num_key_value_heads = (int)u[4];
	c.max_position_embeddings = (int)u[5];
	c.rms_norm_eps = eps;
	c.rope_theta = theta;
	c.tie_word_embeddings = llm_gguf_find_tensor(g, "output.weight") == NULL;
	uint32_t bos = UINT32_MAX, eos = UINT32_MAX;
	if ((e = gguf_u32_or(g, "tokenizer.ggml.bos_token_id", UINT32_MAX, &bos, d)) ||
	    (e = gguf_u32_or(g, "tokenizer.ggml.eos_token_id", UINT32_MAX, &eos, d)))
		goto done;
	c.bos_token_id = bos == UINT32_MAX ? -1 : (int)bos;
	c.eos_token_id = eos == UINT32_MAX ? -1 : (int)eos;
	if ((e = llm_model_config_check(&c, path, d)))
		goto done;
	struct llm_model *m;
	if ((e = llm_model_new(&m, &c, d)))
		goto done;
	size_t np = llm_model_param_count(m);
	for (size_t i = 0; i < np && !e; i++) {
		struct llm_param p;
		llm_model_param(m, i, &p);
		e = llm_gguf_llama_read_hf(g, p.name, p.data, p.ndim, p.shape,
					   (uint32_t)c.num_attention_heads,
					   (uint32_t)c.num_key_value_heads, d);
		if (e == LLM_ERR_NOT_FOUND)
			e = llm_diag_set(d, LLM_ERR_MISSING, path, 0, "no tensor for %s", p.name);
	}
	if (e)
		llm_model_free(m);
	else
		*out = m;
done:
	llm_gguf_close(g);
	return e;
}

/* The pre-tokenizer name llama.cpp gives the pattern of a tokenizer.json. */
static const char *pre_name(json_t *tok)
{
	char *s = json_dumps(json_object_get(tok, "pre_tokenizer"), JSON_ENCODE_ANY);
	const char *name = "default";
	if (s) {
		if (strstr(s, "\\\\p{Lu}"))
			name = "gpt-4o";
		else if (strstr(s, "\\\\p{N}{1,3}"))
			name = "llama-bpe";
		else if (strstr(s, "'s|'t|'re|'ve|'m|'ll|'d| ?\\\\p{L}+| ?\\\\p{N}+"))
			name = "gpt-2";
		else if (strstr(s, "\"ByteLevel\"") && strstr(s, "\"use_regex\": true"))
			name = "gpt-2";
	}
	free(s);
	return name;
}

static enum llm_err add_tokenizer(struct llm_gguf_writer *w, const struct llm_model *m,
				  const char *path, struct llm_diag *d)
{
	char *buf;
	size_t len;
	enum llm_err e = slurp(path, &buf, &len, d);
	if (e)
		return e;
	json_error_t je;
	json_t *tok = json_loadb(buf, len, 0, &je);
	free(buf);
	if (!tok)
		return llm_diag_set(d, LLM_ERR_JSON, path, je.line, "%s", je.text);
	json_t *model = json_object_get(tok, "model");
	json_t *vocab = json_object_get(model, "vocab");
	json_t *merges = json_object_get(model, "merges");
	const char *type = json_string_value(json_object_get(model, "type"));
	size_t nv = (size_t)m->config.vocab_size;
	char **toks = calloc(nv, sizeof *toks);
	int32_t *types = calloc(nv, sizeof *types);
	float *scores = calloc(nv, sizeof *scores);
	char **mv = NULL;
	size_t nm = 0;
	if (!toks || !types || !scores) {
		e = llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
		goto done;
	}
	if (!type || strcmp(type, "BPE") || !json_is_object(vocab) || !json_is_array(merges)) {
		e = llm_diag_set(d, LLM_ERR_CHECK, path, 0,
				 "not a byte-level BPE tokenizer.json (model.type BPE with vocab "
				 "and merges)");
		goto done;
	}
	const char *k;
	json_t *v;
	json_object_foreach(vocab, k, v)
	{
		json_int_t id = json_integer_value(v);
		if (id < 0 || (size_t)id >= nv) {
			e = llm_diag_set(d, LLM_ERR_CHECK, path, 0,
					 "token id %lld is outside the model's vocabulary of %zu",
					 (long long)id, nv);
			goto done;
		}
		free(toks[id]);
		toks[id] = strdup(k);
		types[id] = 1;
	}
	size_t i;
	json_array_foreach(json_object_get(tok, "added_tokens"), i, v)
	{
		json_int_t id = json_integer_value(json_object_get(v, "id"));
		const char *content = json_string_value(json_object_get(v, "content"));
		if (!content || id < 0 || (size_t)id >= nv) {
			e = llm_diag_set(d, LLM_ERR_CHECK, path, 0,
					 "added token %lld is outside the model's vocabulary of "
					 "%zu",
					 (long long)id, nv);
			goto done;
		}
		free(toks[id]);
		toks[id] = strdup(content);
		types[id] = json_is_true(json_object_get(v, "special")) ? 3 : 4;
	}
	for (size_t j = 0; j < nv; j++) {
		if (toks[j])
			continue;
		char pad[32];
		snprintf(pad, sizeof pad, "[PAD%zu]", j);
		toks[j] = strdup(pad);
		types[j] = 5;
	}
	for (size_t j = 0; j < nv; j++)
		if (!toks[j]) {
			e = llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
			goto done;
		}
	nm = json_array_size(merges);
	mv = calloc(nm ? nm : 1, sizeof *mv);
	if (!mv) {
		e = llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
		goto done;
	}
	json_array_foreach(merges, i, v)
	{
		if (json_is_string(v)) {
			mv[i] = strdup(json_string_value(v));
		} else if (json_is_array(v) && json_array_size(v) == 2) {
			const char *a = json_string_value(json_array_get(v, 0));
			const char *b = json_string_value(json_array_get(v, 1));
			size_t n = (a ? strlen(a) : 0) + (b ? strlen(b) : 0) + 2;
			if (a && b && (mv[i] = malloc(n)))
				snprintf(mv[i], n, "%s %s", a, b);
		}
		if (!mv[i]) {
			e = llm_diag_set(d, LLM_ERR_CHECK, path, 0, "merge %zu is malformed", i);
			goto done;
		}
	}
	if ((e = llm_gguf_add_str(w, "tokenizer.ggml.model", "gpt2")) ||
	    (e = llm_gguf_add_str(w, "tokenizer.ggml.pre", pre_name(tok))) ||
	    (e = llm_gguf_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, nv)) ||
	    (e = llm_gguf_add_arr_i32(w, "tokenizer.ggml.token_type", types, nv)) ||
	    (e = llm_gguf_add_arr_str(w, "tokenizer.ggml.merges", (const char *const *)mv, nm)))
		goto gguf_fail;
	if (m->config.bos_token_id >= 0 &&
	    (e = llm_gguf_add_u32(w, "tokenizer.ggml.bos_token_id",
				  (uint32_t)m->config.bos_token_id)))
		goto gguf_fail;
	if (m->config.eos_token_id >= 0 &&
	    (e = llm_gguf_add_u32(w, "tokenizer.ggml.eos_token_id",
				  (uint32_t)m->config.eos_token_id)))
		goto gguf_fail;
	if ((e = llm_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", false)))
		goto gguf_fail;
	goto done;
gguf_fail:
	llm_diag_set(d, e, path, 0, "cannot add tokenizer metadata");
done:
	if (toks)
		for (size_t j = 0; j < nv; j++)
			free(toks[j]);
	if (mv)
		for (size_t j = 0; j < nm; j++)
			free(mv[j]);
	free(toks);
	free(types);
	free(scores);
	free(mv);
	json_decref(tok);
	return e;
}

enum llm_err llm_modeldir_export_gguf(const struct llm_model *m, const char *path,
				      const struct llm_gguf_export_opts *o, struct llm_diag *d)
{
	struct llm_gguf_writer *w;
	enum llm_err e = llm_gguf_writer_new(&w, d);
	if (e)
		return e;
	const struct llm_model_config *c = &m->config;
	struct llm_gguf_llama_hparams hp = {
	    .name = o ? o->name : NULL,
	    .vocab_size = (uint32_t)c->vocab_size,
	    .context_length = (uint32_t)c->max_position_embeddings,
	    .embedding_length = (uint32_t)c->hidden_size,
	    .block_count = (uint32_t)c->num_hidden_layers,
	    .feed_forward_length = (uint32_t)c->intermediate_size,
	    .head_count = (uint32_t)c->num_attention_heads,
	    .head_count_kv = (uint32_t)c->num_key_value_heads,
	    .rms_norm_eps = (float)c->rms_norm_eps,
	    .rope_freq_base = (float)c->rope_theta,
	    .file_type = o && o->f16 ? 1 : 0,
	};
	if ((e = llm_gguf_llama_add_hparams(w, &hp))) {
		llm_diag_set(d, e, path, 0, "cannot add the llama metadata");
		goto done;
	}
	if (o && o->tokenizer && (e = add_tokenizer(w, m, o->tokenizer, d)))
		goto done;
	size_t np = llm_model_param_count(m);
	for (size_t i = 0; i < np && !e; i++) {
		struct llm_param p;
		llm_model_param(m, i, &p);
		uint32_t type = o && o->f16 && p.ndim == 2 ? LLM_GGML_TYPE_F16 : LLM_GGML_TYPE_F32;
		e = llm_gguf_llama_add_hf_tensor(w, p.name, p.ndim, p.shape, p.data, type,
						 (uint32_t)c->num_attention_heads,
						 (uint32_t)c->num_key_value_heads, d);
	}
	if (!e)
		e = llm_gguf_writer_write(w, path, d);
done:
	llm_gguf_writer_free(w);
	return e;
}
