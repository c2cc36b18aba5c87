#include "config.h"

#include "engine/peft.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/atomic.h"

#define PREFIX "base_model.model."

enum llm_err llm_peft_tensor_name(const char *module, char which, char *out, size_t outsz)
{
	if (which != 'A' && which != 'B')
		return LLM_ERR_USAGE;
	int n = snprintf(out, outsz, PREFIX "%s.lora_%c.weight", module, which);
	return n >= 0 && (size_t)n < outsz ? LLM_OK : LLM_ERR_TOO_BIG;
}

enum llm_err llm_peft_parse_name(const char *name, char *module, size_t modsz, char *which)
{
	size_t pl = strlen(PREFIX), n = strlen(name);
	const size_t sl = strlen(".lora_A.weight");
	if (n <= pl + sl || strncmp(name, PREFIX, pl) != 0)
		return LLM_ERR_NOT_FOUND;
	const char *suffix = name + n - sl;
	if (strcmp(suffix, ".lora_A.weight") != 0 && strcmp(suffix, ".lora_B.weight") != 0)
		return LLM_ERR_NOT_FOUND;
	size_t ml = n - pl - sl;
	if (ml >= modsz)
		return LLM_ERR_TOO_BIG;
	memcpy(module, name + pl, ml);
	module[ml] = '\0';
	*which = suffix[6];
	return LLM_OK;
}

/* An integral alpha is written as an integer, as PEFT configs usually carry it. */
static json_t *number(double v)
{
	if (v == floor(v) && fabs(v) < 1e15)
		return json_integer((json_int_t)v);
	return json_real(v);
}

enum llm_err llm_peft_config_write(const char *path, const struct llm_peft_config *c,
				   struct llm_diag *d)
{
	json_t *o = json_object(), *mods = json_array();
	enum llm_err e = LLM_OK;
	if (!o || !mods)
		goto nomem;
	for (size_t i = 0; i < c->n_target_modules; i++)
		if (json_array_append_new(mods, json_string(c->target_modules[i])))
			goto nomem;
	/* Every LoraConfig field the engine has an opinion on; PEFT fills the rest with its
	 * defaults when it loads the file. */
	int bad = 0;
	bad |= json_object_set_new(
	    o, "base_model_name_or_path",
	    c->base_model_name_or_path ? json_string(c->base_model_name_or_path) : json_null());
	bad |= json_object_set_new(o, "bias", json_string("none"));
	bad |= json_object_set_new(o, "fan_in_fan_out", json_false());
	bad |= json_object_set_new(o, "inference_mode", json_true());
	bad |= json_object_set_new(o, "init_lora_weights", json_true());
	bad |= json_object_set_new(o, "lora_alpha", number(c->lora_alpha));
	bad |= json_object_set_new(o, "lora_dropout", json_real(c->lora_dropout));
	bad |= json_object_set_new(o, "modules_to_save", json_null());
	bad |= json_object_set_new(o, "peft_type", json_string("LORA"));
	bad |= json_object_set_new(o, "r", json_integer(c->r));
	bad |= json_object_set_new(o, "target_modules", mods);
	mods = NULL;
	bad |= json_object_set_new(o, "task_type", json_string("CAUSAL_LM"));
	bad |= json_object_set_new(o, "use_dora", json_false());
	bad |= json_object_set_new(o, "use_rslora", json_false());
	if (bad)
		goto nomem;
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
	if (!text)
		goto nomem;
	size_t len = strlen(text);
	char *withnl = realloc(text, len + 2);
	if (!withnl) {
		free(text);
		goto nomem;
	}
	withnl[len] = '\n';
	withnl[len + 1] = '\0';
	e = llm_atomic_write_file(path, withnl, len + 1, d);
	free(withnl);
	json_decref(o);
	return e;
nomem:
	json_decref(mods);
	json_decref(o);
	return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
}

void llm_peft_config_free(struct llm_peft_config *c)
{
	for (size_t i = 0; i < c->n_target_modules; i++)
		free(c->target_modules[i]);
	free(c->target_modules);
	free(c->base_model_name_or_path);
	memset(c, 0, sizeof *c);
}

static enum llm_err read_fields(json_t *o, struct llm_peft_config *c, const char *path,
				struct llm_diag *d)
{
	json_t *v = json_object_get(o, "peft_type");
	if (!v)
		return llm_diag_set(d, LLM_ERR_MISSING, path, 0, "no peft_type");
	if (!json_is_string(v) || strcmp(json_string_value(v), "LORA") != 0)
		return llm_diag_set(d, LLM_ERR_CHECK, path, 0,
				    "peft_type is not \"LORA\": only LoRA adapters load");
	v = json_object_get(o, "r");
	if (!v)
		return llm_diag_set(d, LLM_ERR_MISSING, path, 0, "no r");
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536)
		return llm_diag_set(d, LLM_ERR_RANGE, path, 0, "r is not an integer in 1..65536");
	c->r = (uint32_t)json_integer_value(v);
	v = json_object_get(o, "lora_alpha");
	if (!v)
		return llm_diag_set(d, LLM_ERR_MISSING, path, 0, "no lora_alpha");
	if (!json_is_number(v))
		return llm_diag_set(d, LLM_ERR_TYPE, path, 0, "lora_alpha is not a number");
	c->lora_alpha = json_number_value(v);
	v = json_object_get(o, "lora_dropout");
	c->lora_dropout = json_is_number(v) ? json_number_value(v) : 0;
	v = json_object_get(o, "base_model_name_or_path");
	if (json_is_string(v) && !(c->base_model_name_or_path = strdup(json_string_value(v))))
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	v = json_object_get(o, "target_modules");
	if (!v)
		return llm_diag_set(d, LLM_ERR_MISSING, path, 0, "no target_modules");
	/* PEFT also accepts one string (a regular expression over module names), which the
	 * engine does not match; it needs the list of names. */
	if (!json_is_array(v))
		return llm_diag_set(d, LLM_ERR_TYPE, path, 0,
				    "target_modules is not a list of module names");
	c->target_modules = calloc(json_array_size(v) + 1, sizeof *c->target_modules);
	if (!c->target_modules)
		return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *m = json_array_get(v, i);
		if (!json_is_string(m))
			return llm_diag_set(d, LLM_ERR_TYPE, path, 0,
					    "target_modules holds something other than strings");
		if (!(c->target_modules[i] = strdup(json_string_value(m))))
			return llm_diag_set(d, LLM_ERR_NOMEM, path, 0, "out of memory");
		c->n_target_modules++;
	}
	v = json_object_get(o, "bias");
	if (json_is_string(v) && strcmp(json_string_value(v), "none") != 0)
		return llm_diag_set(d, LLM_ERR_CHECK, path, 0,
				    "bias is \"%s\": only \"none\" is supported",
				    json_string_value(v));
	return LLM_OK;
}

enum llm_err llm_peft_config_read(const char *path, struct llm_peft_config *c, struct llm_diag *d)
{
	memset(c, 0, sizeof *c);
	json_error_t jerr;
	json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		struct stat sb;
		if (stat(path, &sb) != 0)
			return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO,
					    path, 0, "cannot open: %s", strerror(errno));
		return llm_diag_set(d, LLM_ERR_JSON, path, jerr.line, "%s", jerr.text);
	}
	enum llm_err e = json_is_object(o)
			     ? read_fields(o, c, path, d)
			     : llm_diag_set(d, LLM_ERR_JSON, path, 0, "not a JSON object");
	json_decref(o);
	if (e)
		llm_peft_config_free(c);
	return e;
}

enum llm_err llm_peft_write(const char *dir, const struct llm_peft_config *c,
			    const struct llm_lora_pair *pairs, size_t n, struct llm_diag *d)
{
	char path[4096];
	struct llm_tensor_ref *ts = calloc(2 * n + 1, sizeof *ts);
	char *names = calloc(2 * n + 1, 512);
	enum llm_err e = LLM_OK;
	if (!ts || !names) {
		e = llm_diag_set(d, LLM_ERR_NOMEM, dir, 0, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct llm_lora_pair *p = &pairs[i];
		for (int k = 0; k < 2; k++) {
			struct llm_tensor_ref *t = &ts[2 * i + (size_t)k];
			char *name = names + (2 * i + (size_t)k) * 512;
			if (llm_peft_tensor_name(p->module, k ? 'B' : 'A', name, 512)) {
				e = llm_diag_set(d, LLM_ERR_TOO_BIG, dir, 0,
						 "module name '%s' is too long", p->module);
				goto out;
			}
			t->name = name;
			t->dtype = LLM_DTYPE_F32;
			t->ndim = 2;
			t->shape[0] = k ? p->out : p->r;
			t->shape[1] = k ? p->r : p->in;
			t->data = k ? p->b : p->a;
		}
	}
	snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
	const struct llm_kv_str meta[] = {{"format", "pt"}};
	e = llm_safetensors_write(path, ts, 2 * n, meta, 1, d);
	if (!e) {
		snprintf(path, sizeof path, "%s/adapter_config.json", dir);
		e = llm_peft_config_write(path, c, d);
	}
out:
	free(ts);
	free(names);
	return e;
}

enum llm_err llm_peft_read_pair(const struct llm_safetensors *st, const char *module, uint32_t r,
				uint32_t in, uint32_t out, float *a, float *b, struct llm_diag *d)
{
	char name[512];
	const int64_t sa[2] = {r, in}, sb[2] = {out, r};
	if (llm_peft_tensor_name(module, 'A', name, sizeof name))
		return llm_diag_set(d, LLM_ERR_TOO_BIG, st->path, 0, "module name too long");
	enum llm_err e = llm_safetensors_read_f32(st, name, a, 2, sa, d);
	if (e)
		return e;
	llm_peft_tensor_name(module, 'B', name, sizeof name);
	return llm_safetensors_read_f32(st, name, b, 2, sb, d);
}
