/* llm-tune train: full training or fine-tuning (or LoRA) of a model directory on JSONL records
 * or token files, with AdamW, warmup and cosine decay, clipping, gradient accumulation,
 * validation, early stopping, best and last checkpoints and --resume bit for bit.
 *
 * Data become pieces: each document (a record, a document of a token file's .idx, a segment of
 * a packed file's .seg) is cut into pieces of at most seq-len + 1 tokens.  By default each piece
 * is one row of a batch, padded to the longest row with weight 0.  With --pack, rows of seq-len
 * tokens are filled with whole pieces in order (next fit), and the model's packed forward keeps
 * attention inside each piece and restarts positions at each, so a piece's loss and gradient are
 * what it gives alone in a row, without the padding's compute.  The order of the pieces is a
 * permutation drawn per epoch from the seed, so a checkpoint needs only the step, the epoch and
 * the position in it. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli.h"
#include "core/atomic.h"
#include "core/buf.h"
#include "core/rand.h"
#include "engine/lora.h"
#include "engine/modeldir.h"
#include "engine/optim.h"
#include "engine/safetensors.h"
#include "text/bpe.h"
#include "text/template.h"
#include "text/tokfile.h"
#include "tune/run.h"
#include "tune/verbs.h"

static const struct llm_opt train_opts[] = {
    {"base", 'b', LLM_OPT_STRING, "DIR", "the model to start from (required)"},
    {"data", 'd', LLM_OPT_STRING, "FILE", "training data: JSONL or a token file (required)"},
    {"val", 0, LLM_OPT_STRING, "FILE", "validation data, in the same forms as --data"},
    {"out", 'o', LLM_OPT_STRING, "DIR", "where the model, checkpoints and metrics go (required)"},
    {"resume", 0, LLM_OPT_FLAG, NULL, "continue from DIR/checkpoints/last"},
    {"force", 'f', LLM_OPT_FLAG, NULL, "start over even when DIR holds a checkpoint"},
    {"text-field", 0, LLM_OPT_STRING, "FIELD", "the field of plain text (loss on every token)",
     "text"},
    {"prompt-field", 0, LLM_OPT_STRING, "FIELD", "the prompt of prompt/completion records",
     "prompt"},
    {"completion-field", 0, LLM_OPT_STRING, "FIELD",
     "the answer of prompt/completion records (the loss is on it only)", "completion"},
    {"spans-field", 0, LLM_OPT_STRING, "FIELD",
     "byte spans of the text to train on, as llm-prep template --mask writes", "loss_spans"},
    {"messages-field", 0, LLM_OPT_STRING, "FIELD", "chat messages (loss on the answers only)",
     "messages"},
    {"chat-format", 0, LLM_OPT_CHOICE, "NAME", "how messages are rendered", "chatml",
     "chatml|llama3|llama2"},
    {"on-error", 0, LLM_OPT_CHOICE, "MODE", "what to do with a bad record", "fail", "fail|skip"},
    {"batch-size", 'B', LLM_OPT_INT, "N", "sequences per micro-batch", "8", .min = 1,
     .max = 65536},
    {"pack", 0, LLM_OPT_FLAG, NULL,
     "fill each row with several documents (attention stays within each)"},
    {"seq-len", 'L', LLM_OPT_INT, "N",
     "the longest sequence (default: the model's context length)", NULL, .min = 2,
     .max = 1 << 20},
    {"grad-accum", 0, LLM_OPT_INT, "N", "micro-batches per optimizer step", "1", .min = 1,
     .max = 65536},
    {"lr", 0, LLM_OPT_DOUBLE, "X", "peak learning rate", "0.001", .min = 0, .max = 10},
    {"min-lr-ratio", 0, LLM_OPT_DOUBLE, "X", "the cosine's floor as a fraction of --lr", "0.1",
     .min = 0, .max = 1},
    {"schedule", 0, LLM_OPT_CHOICE, "KIND", "learning-rate schedule after warmup", "cosine",
     "cosine|linear|constant"},
    {"warmup", 0, LLM_OPT_INT, "N", "warmup steps", "0", .min = 0, .max = 1e12},
    {"steps", 0, LLM_OPT_INT, "N", "optimizer steps (default: from --epochs)", NULL, .min = 1,
     .max = 1e12},
    {"epochs", 0, LLM_OPT_DOUBLE, "X", "passes over the data when --steps is not given", "1",
     .min = 1e-9, .max = 1e6},
    {"weight-decay", 0, LLM_OPT_DOUBLE, "X",
     "AdamW weight decay (not on norms and embeddings)", "0.1", .min = 0, .max = 10},
    {"beta2", 0, LLM_OPT_DOUBLE, "X", "AdamW beta2", "0.95", .min = 0, .max = 0.999999},
    {"clip", 0, LLM_OPT_DOUBLE, "X", "clip the gradient's global norm to X (0: off)", "1",
     .min = 0, .max = 1e9},
    {"seed", 0, LLM_OPT_INT, "N", "seed of the data order (and of LoRA's initialisation)", "1234",
     .min = 0, .max = 9007199254740991.0},
    {"eval-every", 0, LLM_OPT_INT, "N",
     "validation loss every N steps (0: at the end only)", "0", .min = 0, .max = 1e12},
    {"patience", 0, LLM_OPT_INT, "N",
     "stop after N validations without a better loss (0: never)", "0", .min = 0, .max = 1e9},
    {"save-every", 0, LLM_OPT_INT, "N", "checkpoint every N steps (0: at the end only)", "100",
     .min = 0, .max = 1e12},
    {"lora", 0, LLM_OPT_STRING, "SPEC", "train LoRA adapters, e.g. r=16,alpha=32,targets=q,k,v,o"},
    {"merge", 0, LLM_OPT_FLAG, NULL, "with --lora, merge the adapters into the saved model"},
    {"runs-dir", 0, LLM_OPT_STRING, "DIR", "where the run folder goes (default $LLMOPS_HOME/runs)"},
    {"run-name", 0, LLM_OPT_STRING, "ID", "the run's id (default: time and a random suffix)"},
    {"threads", 'j', LLM_OPT_INT, "N", "threads (default: OpenMP's)", "0", .min = 0,
     .max = 4096},
    {"max-record-bytes", 0, LLM_OPT_SIZE, "SIZE", "the longest record accepted", "64M", .min = 2,
     .max = 4.0 * 1024 * 1024 * 1024 - 1},
    {0},
};

/* path = dir/name; false (and a diagnostic) when it does not fit. */
static bool pjoin(char *out, size_t n, const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	if (a + b + 2 > n)
		return false;
	memcpy(out, dir, a);
	out[a] = '/';
	memcpy(out + a + 1, name, b + 1);
	return true;
}

/* --- data ---------------------------------------------------------------------------------- */

struct piece {
	size_t off;   /* into tok / w */
	uint32_t len; /* tokens, 2 .. seq_len + 1 */
};

struct dataset {
	uint32_t *tok;
	uint8_t *w; /* w[i]: whether predicting tok[i] counts */
	size_t n, cap;
	struct piece *p;
	size_t np, pcap;
	uint64_t docs, empty; /* documents read, and those with nothing to learn */
	double targets;	      /* targets that count */
};

struct trainer; /* below */

static void dataset_free(struct dataset *ds)
{
	free(ds->tok);
	free(ds->w);
	free(ds->p);
	memset(ds, 0, sizeof *ds);
}

static bool dataset_add(struct dataset *ds, const uint32_t *ids, const uint8_t *w, size_t n,
			int seq_len)
{
	ds->docs++;
	bool any = false;
	for (size_t i = 1; i < n; i++)
		if (w[i])
			any = true;
	if (!any) {
		ds->empty++;
		return true;
	}
	if (ds->n + n > ds->cap) {
		size_t cap = ds->cap ? ds->cap : 1 << 16;
		while (cap < ds->n + n)
			cap *= 2;
		uint32_t *t = realloc(ds->tok, cap * sizeof *t);
		if (!t)
			return false;
		ds->tok = t;
		uint8_t *ww = realloc(ds->w, cap);
		if (!ww)
			return false;
		ds->w = ww;
		ds->cap = cap;
	}
	size_t base = ds->n;
	memcpy(ds->tok + base, ids, n * sizeof *ids);
	memcpy(ds->w + base, w, n);
	ds->n += n;
	for (size_t s = 0; s + 1 < n; s += (size_t)seq_len) {
		size_t len = n - s < (size_t)seq_len + 1 ? n - s : (size_t)seq_len + 1;
		bool counts = false;
		for (size_t i = s + 1; i < s + len; i++)
			if (w[i]) {
				counts = true;
				ds->targets++;
			}
		if (!counts)
			continue;
		if (ds->np == ds->pcap) {
			size_t cap = ds->pcap ? ds->pcap * 2 : 1024;
			struct piece *p = realloc(ds->p, cap * sizeof *p);
			if (!p)
				return false;
			ds->p = p;
			ds->pcap = cap;
		}
		ds->p[ds->np++] = (struct piece){base + s, (uint32_t)len};
	}
	return true;
}

struct loader {
	struct llm_cli *c;
	struct llm_bpe *tok;
	uint32_t *toklen; /* bytes of each token id */
	uint32_t vocab;
	int bos, eos;
	int seq_len;
	enum llm_chat_format chat;
	struct llm_bpe_ids ids;
	uint8_t *w;
	size_t wcap;
};

static bool ensure_w(struct loader *L, size_t n)
{
	if (n <= L->wcap)
		return true;
	size_t cap = L->wcap ? L->wcap : 4096;
	while (cap < n)
		cap *= 2;
	uint8_t *w = realloc(L->w, cap);
	if (!w)
		return false;
	L->w = w;
	L->wcap = cap;
	return true;
}

/* Append the ids of s to L->ids with weight on (and record their weights). */
static enum llm_err encode_part(struct loader *L, const char *s, size_t n, uint8_t on,
				struct llm_diag *d)
{
	size_t before = L->ids.n;
	enum llm_err e = llm_bpe_encode(L->tok, s, n, &L->ids, d);
	if (e)
		return e;
	if (!ensure_w(L, L->ids.n + 1))
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	memset(L->w + before, on, L->ids.n - before);
	return LLM_OK;
}

static enum llm_err push_id(struct loader *L, uint32_t id, uint8_t on, struct llm_diag *d)
{
	if (L->ids.n == L->ids.cap) {
		size_t cap = L->ids.cap ? L->ids.cap * 2 : 256;
		uint32_t *v = realloc(L->ids.v, cap * sizeof *v);
		if (!v)
			return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		L->ids.v = v;
		L->ids.cap = cap;
	}
	if (!ensure_w(L, L->ids.n + 1))
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	L->w[L->ids.n] = on;
	L->ids.v[L->ids.n++] = id;
	return LLM_OK;
}

/* Text whose bytes inside spans (sorted [start, end) pairs) count: a token counts when its
 * bytes overlap a span. */
static enum llm_err encode_spans(struct loader *L, const char *s, size_t n, const size_t *sp,
				 size_t nsp, struct llm_diag *d)
{
	size_t before = L->ids.n;
	enum llm_err e = encode_part(L, s, n, 0, d);
	if (e)
		return e;
	size_t pos = 0, k = 0;
	for (size_t i = before; i < L->ids.n; i++) {
		size_t len = L->ids.v[i] < L->vocab ? L->toklen[L->ids.v[i]] : 0;
		size_t a = pos, b = pos + len;
		while (k < nsp && sp[2 * k + 1] <= a)
			k++;
		L->w[i] = k < nsp && sp[2 * k] < b && a < sp[2 * k + 1];
		pos = b;
	}
	return LLM_OK;
}

static enum llm_err record_ids(struct loader *L, json_t *o, const char *file, long line,
			       struct llm_diag *d)
{
	struct llm_args *a = &L->c->args;
	const char *tf = llm_args_str(a, "text-field"), *pf = llm_args_str(a, "prompt-field");
	const char *cf = llm_args_str(a, "completion-field"), *sf = llm_args_str(a, "spans-field");
	const char *mf = llm_args_str(a, "messages-field");
	json_t *text = json_object_get(o, tf), *spans = json_object_get(o, sf);
	json_t *prompt = json_object_get(o, pf), *comp = json_object_get(o, cf);
	json_t *msgs = json_object_get(o, mf);
	enum llm_err e = LLM_OK;
	L->ids.n = 0;
	if (L->bos >= 0 && (e = push_id(L, (uint32_t)L->bos, 0, d)))
		return e;
	if (json_is_string(text) && spans) {
		if (!json_is_array(spans))
			return llm_diag_set(d, LLM_ERR_TYPE, file, line, "field '%s' is not an array",
					    sf);
		size_t nsp = json_array_size(spans);
		size_t *sp = malloc((2 * nsp + 1) * sizeof *sp);
		if (!sp)
			return llm_diag_set(d, LLM_ERR_NOMEM, file, line, "out of memory");
		size_t tl = json_string_length(text), prev = 0;
		for (size_t i = 0; i < nsp && !e; i++) {
			json_t *p = json_array_get(spans, i);
			json_int_t s0 = json_integer_value(json_array_get(p, 0));
			json_int_t s1 = json_integer_value(json_array_get(p, 1));
			if (json_array_size(p) != 2 || s0 < (json_int_t)prev || s1 < s0 ||
			    (size_t)s1 > tl)
				e = llm_diag_set(d, LLM_ERR_RANGE, file, line,
						 "%s[%zu] is not a [start, end] byte range in order "
						 "within the text",
						 sf, i);
			sp[2 * i] = (size_t)s0;
			sp[2 * i + 1] = (size_t)s1;
			prev = (size_t)s1;
		}
		if (!e)
			e = encode_spans(L, json_string_value(text), tl, sp, nsp, d);
		free(sp);
		return e;
	}
	if (json_is_array(msgs)) {
		struct llm_buf b;
		struct llm_spans s = {0};
		llm_buf_init(&b, 0);
		e = llm_chat_render(L->chat, msgs, false, &b, &s, d);
		if (e) {
			snprintf(d->file, sizeof d->file, "%s", file);
			d->line = line;
		}
		size_t *sp = e ? NULL : malloc((2 * s.n + 1) * sizeof *sp);
		if (!e && !sp)
			e = llm_diag_set(d, LLM_ERR_NOMEM, file, line, "out of memory");
		for (size_t i = 0; !e && i < s.n; i++) {
			sp[2 * i] = s.v[i].start;
			sp[2 * i + 1] = s.v[i].end;
		}
		if (!e)
			e = encode_spans(L, (const char *)b.data, b.len, sp, s.n, d);
		free(sp);
		llm_spans_free(&s);
		llm_buf_free(&b);
		return e;
	}
	if (json_is_string(prompt) && json_is_string(comp)) {
		if ((e = encode_part(L, json_string_value(prompt), json_string_length(prompt), 0,
				     d)) ||
		    (e = encode_part(L, json_string_value(comp), json_string_length(comp), 1, d)))
			return e;
		if (L->eos >= 0)
			e = push_id(L, (uint32_t)L->eos, 1, d);
		return e;
	}
	if (json_is_string(text)) {
		if ((e = encode_part(L, json_string_value(text), json_string_length(text), 1, d)))
			return e;
		if (L->eos >= 0)
			e = push_id(L, (uint32_t)L->eos, 1, d);
		return e;
	}
	if (text)
		return llm_diag_set(d, LLM_ERR_TYPE, file, line, "field '%s' is not a string", tf);
	return llm_diag_set(d, LLM_ERR_MISSING, file, line,
			    "no field '%s' (nor '%s' and '%s', nor '%s')", tf, pf, cf, mf);
}

static int load_jsonl(struct loader *L, const char *path, struct dataset *ds)
{
	struct llm_cli *c = L->c;
	struct llm_diag d;
	struct llm_jsonl_reader *r;
	char *paths[] = {(char *)path};
	bool skip = !strcmp(llm_args_str(&c->args, "on-error"), "skip");
	if (llm_jsonl_open(&r, paths, 1, llm_args_size(&c->args, "max-record-bytes"), &d))
		return llm_cli_fail(c, &d);
	struct llm_record rec = {0};
	int status = 0;
	uint64_t bad = 0;
	for (;;) {
		if (llm_jsonl_next(r, &rec, &d)) {
			status = llm_cli_fail(c, &d);
			break;
		}
		if (!rec.text)
			break;
		enum llm_err e = rec.status;
		if (e)
			d = rec.diag;
		json_t *o = NULL;
		if (!e) {
			json_error_t je;
			o = json_loadb(rec.text, rec.len, 0, &je);
			if (!o || !json_is_object(o))
				e = llm_diag_set(&d, LLM_ERR_JSON, rec.file, rec.line,
						 "not a JSON object");
		}
		if (!e)
			e = record_ids(L, o, rec.file, rec.line, &d);
		json_decref(o);
		if (!e) {
			for (size_t i = 0; i < L->ids.n && !e; i++)
				if (L->ids.v[i] >= L->vocab)
					e = llm_diag_set(&d, LLM_ERR_RANGE, rec.file, rec.line,
							 "token %u is outside the model's "
							 "vocabulary",
							 L->ids.v[i]);
		}
		if (!e && !dataset_add(ds, L->ids.v, L->w, L->ids.n, L->seq_len))
			e = llm_diag_set(&d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		if (e == LLM_ERR_NOMEM || (e && !skip)) {
			status = e == LLM_ERR_NOMEM ? llm_cli_fail(c, &d)
						    : (llm_cli_fail(c, &d), LLM_EXIT_NEGATIVE);
			break;
		}
		if (e) {
			bad++;
			if (!c->quiet) {
				char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32];
				llm_diag_format(&d, msg, sizeof msg);
				llm_cli_error(c, "%s (record skipped)", msg);
			}
		}
	}
	llm_record_free(&rec);
	llm_jsonl_close(r);
	if (!status && bad && !c->quiet)
		llm_cli_error(c, "%s: %llu bad records skipped", path, (unsigned long long)bad);
	return status;
}

static bool is_tokfile(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	unsigned char h[4];
	bool yes = fread(h, 1, 4, f) == 4 &&
		   ((uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
		    (uint32_t)h[3] << 24) == LLM_TOKFILE_MAGIC;
	fclose(f);
	return yes;
}

static int load_tokfile(struct loader *L, const char *path, struct dataset *ds)
{
	struct llm_cli *c = L->c;
	struct llm_diag d;
	struct llm_tokfile tf, sf;
	char segpath[4096];
	if (llm_tokfile_open(&tf, path, &d))
		return llm_cli_fail(c, &d);
	snprintf(segpath, sizeof segpath, "%s.seg", path);
	bool seg = access(segpath, F_OK) == 0;
	if (seg && llm_tokfile_open(&sf, segpath, &d)) {
		llm_tokfile_close(&tf);
		return llm_cli_fail(c, &d);
	}
	if (seg && sf.ntokens != tf.ntokens) {
		llm_tokfile_close(&tf);
		llm_tokfile_close(&sf);
		llm_cli_error(c, "%s: %llu segment numbers for %llu tokens", segpath,
			      (unsigned long long)sf.ntokens, (unsigned long long)tf.ntokens);
		return LLM_EXIT_NEGATIVE;
	}
	int status = 0;
	for (uint64_t doc = 0; doc < tf.ndocs && !status; doc++) {
		uint64_t a = tf.offsets[doc], b = tf.offsets[doc + 1];
		uint64_t s = a;
		while (s < b && !status) {
			uint64_t e = b;
			uint32_t sv = 0;
			if (seg) {
				sv = llm_tokfile_get(&sf, s);
				e = s + 1;
				while (e < b && llm_tokfile_get(&sf, e) == sv)
					e++;
				if (sv == 0) { /* padding */
					s = e;
					continue;
				}
			}
			L->ids.n = 0;
			for (uint64_t i = s; i < e && !status; i++) {
				uint32_t id = llm_tokfile_get(&tf, i);
				if (id >= L->vocab) {
					llm_cli_error(c,
						      "%s: token %u at %llu is outside the model's "
						      "vocabulary",
						      path, id, (unsigned long long)i);
					status = LLM_EXIT_NEGATIVE;
				} else if (push_id(L, id, 1, &d))
					status = llm_cli_fail(c, &d);
			}
			if (!status && !dataset_add(ds, L->ids.v, L->w, L->ids.n, L->seq_len)) {
				llm_cli_error(c, "out of memory");
				status = LLM_EXIT_IO;
			}
			s = e;
		}
	}
	llm_tokfile_close(&tf);
	if (seg)
		llm_tokfile_close(&sf);
	return status;
}

static int load_data(struct loader *L, const char *path, struct dataset *ds)
{
	if (access(path, R_OK) != 0) {
		llm_cli_error(L->c, "%s: cannot open: %s", path, strerror(errno));
		return LLM_EXIT_IO;
	}
	int s = is_tokfile(path) ? load_tokfile(L, path, ds) : load_jsonl(L, path, ds);
	if (!s && ds->np == 0) {
		llm_cli_error(L->c, "%s: no tokens to train on", path);
		return LLM_EXIT_NEGATIVE;
	}
	return s;
}

/* --- training state ------------------------------------------------------------------------ */

struct trainer {
	struct llm_cli *c;
	struct llm_model *m;
	float *params, *grads; /* what the optimizer updates: the model's, or LoRA's */
	size_t nparams;
	struct llm_adamw opt;
	struct llm_lr_schedule sched;
	struct dataset train, val;
	int B, T, accum;
	uint64_t seed;
	int64_t total_steps;
	/* the position: everything a checkpoint holds besides the weights and the optimizer */
	int64_t step;
	int64_t epoch;
	size_t pos;
	double tokens;
	double best_val;
	int64_t best_step;
	int64_t bad_evals;
	double elapsed;
	size_t *perm;
	/* batch buffers */
	uint32_t *btok, *btgt, *bpos;
	float *bw;
	bool pack;
	json_t *params_json;
	const char *out;
	const char *tokenizer; /* base/tokenizer.json when present */
	bool lora;
	char *run_id;
};

static void shuffle(struct trainer *t)
{
	size_t n = t->train.np;
	for (size_t i = 0; i < n; i++)
		t->perm[i] = i;
	struct llm_rand r;
	llm_rand_seed(&r, t->seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(t->epoch + 1)));
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)llm_rand_below(&r, i);
		size_t x = t->perm[i - 1];
		t->perm[i - 1] = t->perm[j];
		t->perm[j] = x;
	}
}

/* Fill the batch buffers with pieces idx[0..b); returns T used and adds the weight sum. */
static int fill_batch(struct trainer *t, const struct dataset *ds, const size_t *idx, int b,
		      double *wsum, double *ntok)
{
	int T = 1;
	for (int i = 0; i < b; i++)
		if ((int)ds->p[idx[i]].len - 1 > T)
			T = (int)ds->p[idx[i]].len - 1;
	for (int i = 0; i < b; i++) {
		const struct piece *p = &ds->p[idx[i]];
		int n = (int)p->len - 1;
		for (int j = 0; j < T; j++) {
			size_t k = (size_t)i * (size_t)T + (size_t)j;
			if (j < n) {
				t->btok[k] = ds->tok[p->off + (size_t)j];
				t->btgt[k] = ds->tok[p->off + (size_t)j + 1];
				t->bw[k] = ds->w[p->off + (size_t)j + 1];
				*wsum += t->bw[k];
				*ntok += 1;
			} else {
				t->btok[k] = t->btgt[k] = 0;
				t->bw[k] = 0;
			}
		}
	}
	return T;
}

/* Next fit of pieces cand[0..n) (indices into ds, or first, first + 1, ... when cand is NULL)
 * into B rows of t->T slots, a piece of len tokens taking len − 1; fill the batch buffers,
 * *rows rows *T_used long, with each token's position in its piece.  Returns the pieces used (at
 * least one when n > 0: a piece never needs more than a row). */
static size_t fill_packed(struct trainer *t, const struct dataset *ds, const size_t *cand,
			  size_t first, size_t n, int *rows, int *T_used, double *wsum,
			  double *ntok)
{
	size_t used = 0;
	int row = 0, fill = 0, T = 1;
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			size_t cells = (size_t)t->B * (size_t)T;
			memset(t->btok, 0, cells * sizeof *t->btok);
			memset(t->btgt, 0, cells * sizeof *t->btgt);
			memset(t->bpos, 0, cells * sizeof *t->bpos);
			memset(t->bw, 0, cells * sizeof *t->bw);
		}
		row = fill = 0;
		size_t i;
		for (i = 0; i < n; i++) {
			const struct piece *p = &ds->p[cand ? cand[i] : first + i];
			int len = (int)p->len - 1;
			if (fill + len > t->T) {
				if (row + 1 == t->B)
					break;
				row++;
				fill = 0;
			}
			if (pass == 1)
				for (int j = 0; j < len; j++) {
					size_t k = (size_t)row * (size_t)T + (size_t)(fill + j);
					t->btok[k] = ds->tok[p->off + (size_t)j];
					t->btgt[k] = ds->tok[p->off + (size_t)j + 1];
					t->bpos[k] = (uint32_t)j;
					t->bw[k] = ds->w[p->off + (size_t)j + 1];
					*wsum += t->bw[k];
					*ntok += 1;
				}
			fill += len;
			if (fill > T)
				T = fill;
		}
		used = i;
	}
	*T_used = T;
	*rows = row + 1;
	return used;
}

/* One micro-batch's forward pass on pieces from cand (as fill_packed takes them) with --pack,
 * else on b = min(n, B) of them, one per row.  Returns the pieces used, 0 on failure. */
static size_t forward_batch(struct trainer *t, const struct dataset *ds, const size_t *cand,
			    size_t first, size_t n, double *wsum, double *ntok, float *loss,
			    struct llm_diag *d)
{
	int T, b = t->B;
	size_t used;
	if (t->pack) {
		used = fill_packed(t, ds, cand, first, n, &b, &T, wsum, ntok);
	} else {
		size_t idx[65536];
		used = n < (size_t)t->B ? n : (size_t)t->B;
		for (size_t i = 0; i < used; i++)
			idx[i] = cand ? cand[i] : first + i;
		b = (int)used;
		T = fill_batch(t, ds, idx, b, wsum, ntok);
	}
	if (llm_model_forward_packed(t->m, t->btok, t->btgt, t->bw, t->pack ? t->bpos : NULL, b,
				     T, loss, d))
		return 0;
	return used;
}

static int evaluate(struct trainer *t, double *out)
{
	struct llm_diag d;
	double num = 0, den = 0;
	for (size_t s = 0; s < t->val.np;) {
		double w = 0, nt = 0;
		float loss;
		size_t used = forward_batch(t, &t->val, NULL, s, t->val.np - s, &w, &nt, &loss, &d);
		if (!used)
			return llm_cli_fail(t->c, &d);
		s += used;
		num += (double)loss * w;
		den += w;
	}
	*out = den > 0 ? num / den : NAN;
	return 0;
}

/* Entropy (nats) of the unigram distribution of the targets that count. */
static double unigram_entropy(const struct dataset *ds, uint32_t vocab)
{
	double *cnt = calloc(vocab, sizeof *cnt), n = 0, h = 0;
	if (!cnt)
		return NAN;
	for (size_t p = 0; p < ds->np; p++)
		for (uint32_t j = 1; j < ds->p[p].len; j++) {
			size_t k = ds->p[p].off + j;
			if (ds->w[k]) {
				cnt[ds->tok[k]]++;
				n++;
			}
		}
	for (uint32_t i = 0; i < vocab; i++)
		if (cnt[i] > 0)
			h -= cnt[i] / n * log(cnt[i] / n);
	free(cnt);
	return h;
}

/* --- checkpoints --------------------------------------------------------------------------- */

static json_t *state_json(const struct trainer *t)
{
	json_t *o = json_object();
	json_object_set_new(o, "format", json_integer(1));
	json_object_set_new(o, "step", json_integer(t->step));
	json_object_set_new(o, "epoch", json_integer(t->epoch));
	json_object_set_new(o, "pos", json_integer((json_int_t)t->pos));
	json_object_set_new(o, "tokens", json_real(t->tokens));
	json_object_set_new(o, "best_val_loss", isnan(t->best_val) ? json_null()
								    : json_real(t->best_val));
	json_object_set_new(o, "best_step", json_integer(t->best_step));
	json_object_set_new(o, "bad_evals", json_integer(t->bad_evals));
	json_object_set_new(o, "elapsed_s", json_real(t->elapsed));
	json_object_set_new(o, "adam_step", json_integer(t->opt.step));
	json_object_set_new(o, "run_id", t->run_id ? json_string(t->run_id) : json_null());
	json_object_set(o, "params", t->params_json);
	return o;
}

static enum llm_err write_checkpoint_extra(const char *dir, void *arg, struct llm_diag *d)
{
	struct trainer *t = arg;
	char path[4096];
	pjoin(path, sizeof path, dir, "optimizer.safetensors");
	struct llm_tensor_ref ts[2] = {
	    {"exp_avg", LLM_DTYPE_F32, 1, {(int64_t)t->opt.n}, t->opt.m, t->opt.n * 4},
	    {"exp_avg_sq", LLM_DTYPE_F32, 1, {(int64_t)t->opt.n}, t->opt.v, t->opt.n * 4},
	};
	enum llm_err e = llm_safetensors_write(path, ts, 2, NULL, 0, d);
	if (!e && t->lora)
		e = llm_lora_save_peft(t->m, dir, NULL, d);
	if (e)
		return e;
	json_t *o = state_json(t);
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
	json_decref(o);
	if (!s)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	pjoin(path, sizeof path, dir, "trainer_state.json");
	e = llm_atomic_write_file(path, s, strlen(s), d);
	free(s);
	return e;
}

static int save_checkpoint(struct trainer *t)
{
	struct llm_diag d;
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/checkpoints/last", t->out);
	struct llm_modeldir_save_opts so = {
	    .tokenizer = t->tokenizer, .extra = write_checkpoint_extra, .extra_arg = t};
	if (llm_modeldir_save(t->m, dir, &so, &d))
		return llm_cli_fail(t->c, &d);
	return 0;
}

/* The model as it would be saved: LoRA merged into a copy when --merge. */
static int save_model(struct trainer *t, const char *dir, bool whole)
{
	struct llm_diag d;
	struct llm_modeldir_save_opts so = {.tokenizer = t->tokenizer};
	enum llm_err e;
	if (whole)
		e = llm_modeldir_save(t->m, dir, &so, &d);
	else
		e = llm_modeldir_write_files(t->m, dir, &so, &d);
	if (!e && t->lora) {
		/* The adapters beside the base, in PEFT's layout. */
		e = llm_lora_save_peft(t->m, dir, NULL, &d);
	}
	if (e)
		return llm_cli_fail(t->c, &d);
	return 0;
}

static int restore(struct trainer *t, const char *dir)
{
	struct llm_diag d;
	char path[4096];
	pjoin(path, sizeof path, dir, "optimizer.safetensors");
	struct llm_safetensors *st;
	if (llm_safetensors_open(&st, path, &d))
		return llm_cli_fail(t->c, &d);
	int64_t shape[1] = {(int64_t)t->opt.n};
	enum llm_err e = llm_safetensors_read_f32(st, "exp_avg", t->opt.m, 1, shape, &d);
	if (!e)
		e = llm_safetensors_read_f32(st, "exp_avg_sq", t->opt.v, 1, shape, &d);
	llm_safetensors_close(st);
	if (e)
		return llm_cli_fail(t->c, &d);
	pjoin(path, sizeof path, dir, "trainer_state.json");
	json_error_t je;
	json_t *o = json_load_file(path, 0, &je);
	if (!o) {
		llm_cli_error(t->c, "%s:%d: %s", path, je.line, je.text);
		return LLM_EXIT_NEGATIVE;
	}
	json_t *p = json_object_get(o, "params");
	const char *k;
	json_t *v;
	int status = 0;
	json_object_foreach(t->params_json, k, v)
	{
		if (!json_equal(v, json_object_get(p, k))) {
			char *a = json_dumps(json_object_get(p, k), JSON_ENCODE_ANY);
			status = llm_cli_usage(t->c,
					       "--resume: %s was %s in the checkpoint; resume with "
					       "the same options",
					       k, a ? a : "null");
			free(a);
			break;
		}
	}
	if (!status) {
		t->step = json_integer_value(json_object_get(o, "step"));
		t->epoch = json_integer_value(json_object_get(o, "epoch"));
		t->pos = (size_t)json_integer_value(json_object_get(o, "pos"));
		t->tokens = json_number_value(json_object_get(o, "tokens"));
		json_t *b = json_object_get(o, "best_val_loss");
		t->best_val = json_is_number(b) ? json_number_value(b) : NAN;
		t->best_step = json_integer_value(json_object_get(o, "best_step"));
		t->bad_evals = json_integer_value(json_object_get(o, "bad_evals"));
		t->elapsed = json_number_value(json_object_get(o, "elapsed_s"));
		t->opt.step = json_integer_value(json_object_get(o, "adam_step"));
		const char *rid = json_string_value(json_object_get(o, "run_id"));
		t->run_id = rid ? strdup(rid) : NULL;
	}
	json_decref(o);
	return status;
}

/* --- metrics and progress ------------------------------------------------------------------ */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fmt_eta(double s, char *out, size_t n)
{
	if (!(s >= 0) || s > 1e7)
		snprintf(out, n, "-");
	else if (s < 60)
		snprintf(out, n, "%.0fs", s);
	else if (s < 3600)
		snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
	else
		snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

/* Rewrite OUT/metrics.jsonl without the lines past step (a resumed run logs them again). */
static void cut_metrics(const char *path, int64_t step)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	struct llm_buf keep;
	llm_buf_init(&keep, 0);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) > 0) {
		json_t *o = json_loadb(line, (size_t)n, 0, NULL);
		json_int_t s = o ? json_integer_value(json_object_get(o, "step")) : INT64_MAX;
		json_decref(o);
		if (o && s <= step && line[n - 1] == '\n')
			llm_buf_append(&keep, line, (size_t)n);
	}
	free(line);
	fclose(f);
	llm_atomic_write_file(path, keep.data ? (const char *)keep.data : "", keep.len, NULL);
	llm_buf_free(&keep);
}

/* --- the verb ------------------------------------------------------------------------------ */

static int mkdir_p(struct llm_cli *c, const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
			goto fail;
		*p = '/';
	}
	if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
		goto fail;
	return 0;
fail:
	llm_cli_error(c, "%s: cannot create: %s", tmp, strerror(errno));
	return LLM_EXIT_IO;
}

static json_t *make_params(struct llm_cli *c, const struct trainer *t)
{
	struct llm_args *a = &c->args;
	json_t *o = json_object();
	json_object_set_new(o, "base", json_string(llm_args_str(a, "base")));
	json_object_set_new(o, "data", json_string(llm_args_str(a, "data")));
	const char *val = llm_args_str(a, "val");
	json_object_set_new(o, "val", val ? json_string(val) : json_null());
	json_object_set_new(o, "batch_size", json_integer(t->B));
	json_object_set_new(o, "seq_len", json_integer(t->T));
	json_object_set_new(o, "pack", json_boolean(t->pack));
	json_object_set_new(o, "grad_accum", json_integer(t->accum));
	json_object_set_new(o, "lr", json_real(llm_args_double(a, "lr")));
	json_object_set_new(o, "min_lr_ratio", json_real(llm_args_double(a, "min-lr-ratio")));
	json_object_set_new(o, "schedule", json_string(llm_args_str(a, "schedule")));
	json_object_set_new(o, "warmup", json_integer(llm_args_int(a, "warmup")));
	json_object_set_new(o, "steps", json_integer(t->total_steps));
	json_object_set_new(o, "weight_decay", json_real(llm_args_double(a, "weight-decay")));
	json_object_set_new(o, "beta2", json_real(llm_args_double(a, "beta2")));
	json_object_set_new(o, "clip", json_real(llm_args_double(a, "clip")));
	json_object_set_new(o, "seed", json_integer((json_int_t)t->seed));
	json_object_set_new(o, "eval_every", json_integer(llm_args_int(a, "eval-every")));
	json_object_set_new(o, "patience", json_integer(llm_args_int(a, "patience")));
	const char *lora = llm_args_str(a, "lora");
	json_object_set_new(o, "lora", lora ? json_string(lora) : json_null());
	return o;
}

static void trainer_free(struct trainer *t)
{
	dataset_free(&t->train);
	dataset_free(&t->val);
	llm_adamw_free(&t->opt);
	free(t->perm);
	free(t->btok);
	free(t->bpos);
	free(t->btgt);
	free(t->bw);
	json_decref(t->params_json);
	free(t->run_id);
	if (t->m)
		llm_model_free(t->m);
}

static int train_loop(struct trainer *t, struct llm_run *run, FILE *mf);

static int train_run(struct llm_cli *c)
{
	struct llm_args *a = &c->args;
	struct llm_diag d;
	const char *base = llm_args_str(a, "base"), *data = llm_args_str(a, "data");
	const char *out = llm_args_str(a, "out"), *val = llm_args_str(a, "val");
	if (!base || !data || !out)
		return llm_cli_usage(c, "--base, --data and --out are required");
	if (c->args.noperands)
		return llm_cli_usage(c, "unexpected operand '%s'", c->args.operands[0]);
	if (llm_args_flag(a, "merge") && !llm_args_given(a, "lora"))
		return llm_cli_usage(c, "--merge needs --lora");
	bool resume = llm_args_flag(a, "resume");
	char last[4096], path[4096];
	snprintf(last, sizeof last, "%s/checkpoints/last", out);
	bool have_ckpt = access(last, F_OK) == 0;
	if (resume && !have_ckpt)
		return llm_cli_usage(c, "--resume: %s has no checkpoint", last);
	if (!resume && have_ckpt && !llm_args_flag(a, "force"))
		return llm_cli_usage(c,
				     "%s holds a checkpoint: --resume continues it, --force starts "
				     "over",
				     out);
#ifdef _OPENMP
	if (llm_args_int(a, "threads") > 0)
		omp_set_num_threads((int)llm_args_int(a, "threads"));
#endif

	struct trainer t = {.c = c, .out = out, .best_val = NAN, .best_step = -1};
	int status = 0;
	if (llm_modeldir_load(&t.m, resume ? last : base, &d))
		return llm_cli_fail(c, &d);
	const struct llm_model_config *mc = &t.m->config;
	pjoin(path, sizeof path, resume ? last : base, "tokenizer.json");
	char tokpath[4096];
	snprintf(tokpath, sizeof tokpath, "%s", path);
	t.tokenizer = access(tokpath, F_OK) == 0 ? tokpath : NULL;
	t.B = (int)llm_args_int(a, "batch-size");
	t.pack = llm_args_flag(a, "pack");
	t.T = llm_args_given(a, "seq-len") ? (int)llm_args_int(a, "seq-len")
					    : mc->max_position_embeddings;
	if (t.T > mc->max_position_embeddings) {
		trainer_free(&t);
		return llm_cli_usage(c, "--seq-len %d is beyond the model's context of %d", t.T,
				     mc->max_position_embeddings);
	}
	t.accum = (int)llm_args_int(a, "grad-accum");
	t.seed = (uint64_t)llm_args_int(a, "seed");

	/* The data, tokenized with the model's tokenizer when it is JSONL. */
	struct loader L = {.c = c, .vocab = (uint32_t)mc->vocab_size, .bos = mc->bos_token_id,
			   .eos = mc->eos_token_id, .seq_len = t.T};
	llm_chat_format_parse(llm_args_str(a, "chat-format"), &L.chat);
	bool need_tok = !is_tokfile(data) || (val && !is_tokfile(val));
	if (need_tok) {
		if (!t.tokenizer) {
			trainer_free(&t);
			llm_cli_error(c, "%s: no tokenizer.json to tokenize JSONL with", base);
			return LLM_EXIT_NEGATIVE;
		}
		if (llm_bpe_open_file(&L.tok, t.tokenizer, &d)) {
			trainer_free(&t);
			return llm_cli_fail(c, &d);
		}
		uint32_t nv = llm_bpe_vocab_size(L.tok);
		L.toklen = calloc(nv, sizeof *L.toklen);
		struct llm_buf b;
		llm_buf_init(&b, 0);
		for (uint32_t i = 0; L.toklen && i < nv; i++) {
			llm_buf_clear(&b);
			if (llm_bpe_decode(L.tok, &i, 1, &b, NULL) == LLM_OK)
				L.toklen[i] = (uint32_t)b.len;
		}
		llm_buf_free(&b);
		if (nv < L.vocab)
			L.vocab = nv;
	}
	status = load_data(&L, data, &t.train);
	if (!status && val)
		status = load_data(&L, val, &t.val);
	llm_bpe_ids_free(&L.ids);
	free(L.w);
	free(L.toklen);
	if (L.tok)
		llm_bpe_free(L.tok);
	if (status) {
		trainer_free(&t);
		return status;
	}
	if (t.train.empty && !c->quiet)
		llm_cli_error(c, "%s: %llu documents with nothing to learn (no answer) left out", data,
			      (unsigned long long)t.train.empty);

	/* Steps, schedule, optimizer. */
	/* An epoch's steps: pieces over pieces per step, or packed, token slots over slots per
	 * step (a little under, as rows are not filled to the last slot). */
	double per_epoch = (double)t.train.np / ((double)t.B * t.accum);
	if (t.pack) {
		double slots = 0;
		for (size_t i = 0; i < t.train.np; i++)
			slots += t.train.p[i].len - 1;
		per_epoch = slots / ((double)t.B * t.T * t.accum);
	}
	t.total_steps = llm_args_given(a, "steps")
			    ? llm_args_int(a, "steps")
			    : (int64_t)ceil(llm_args_double(a, "epochs") * per_epoch);
	if (t.total_steps < 1)
		t.total_steps = 1;
	const char *sk = llm_args_str(a, "schedule");
	t.sched = (struct llm_lr_schedule){
	    .kind = !strcmp(sk, "cosine")   ? LLM_LR_COSINE
		    : !strcmp(sk, "linear") ? LLM_LR_LINEAR
					    : LLM_LR_CONSTANT,
	    .lr = llm_args_double(a, "lr"),
	    .warmup_steps = llm_args_int(a, "warmup"),
	    .total_steps = t.total_steps,
	    .min_lr_ratio = llm_args_double(a, "min-lr-ratio"),
	};
	t.params_json = make_params(c, &t);

	const char *lspec = llm_args_str(a, "lora");
	if (lspec) {
		struct llm_lora_config lc;
		if (llm_lora_parse(lspec, &lc, &d)) {
			trainer_free(&t);
			return llm_cli_usage(c, "--lora: %s", d.msg);
		}
		bool loaded = false;
		if (resume) {
			if (llm_lora_load_peft(t.m, last, &d)) {
				trainer_free(&t);
				return llm_cli_fail(c, &d);
			}
			loaded = true;
		}
		if (!loaded && llm_lora_attach(t.m, &lc, t.seed, &d)) {
			trainer_free(&t);
			return llm_cli_fail(c, &d);
		}
		t.lora = true;
		t.params = llm_lora_params(t.m, &t.nparams);
		if (llm_model_zero_grad(t.m, &d)) {
			trainer_free(&t);
			return llm_cli_fail(c, &d);
		}
		t.grads = llm_lora_grads(t.m, &t.nparams);
	} else {
		if (llm_model_zero_grad(t.m, &d)) {
			trainer_free(&t);
			return llm_cli_fail(c, &d);
		}
		t.params = t.m->params;
		t.grads = t.m->grads;
		t.nparams = t.m->num_params;
	}
	struct llm_adamw_params ap;
	llm_adamw_params_default(&ap);
	ap.weight_decay = llm_args_double(a, "weight-decay");
	ap.beta2 = llm_args_double(a, "beta2");
	if (llm_adamw_init(&t.opt, t.nparams, &ap, &d)) {
		trainer_free(&t);
		return llm_cli_fail(c, &d);
	}
	if (!t.lora) {
		size_t np = llm_model_param_count(t.m);
		for (size_t i = 0; i < np; i++) {
			struct llm_param p;
			llm_model_param(t.m, i, &p);
			if (p.ndim == 1 || !strcmp(p.name, "model.embed_tokens.weight"))
				llm_adamw_no_decay(&t.opt, (size_t)(p.data - t.m->params), p.numel,
						   NULL);
		}
	}
	size_t maxrows = (size_t)t.B * (size_t)t.T;
	t.perm = malloc((t.train.np + 1) * sizeof *t.perm);
	t.btok = malloc(maxrows * sizeof *t.btok);
	t.btgt = malloc(maxrows * sizeof *t.btgt);
	t.bpos = malloc(maxrows * sizeof *t.bpos);
	t.bw = malloc(maxrows * sizeof *t.bw);
	if (!t.perm || !t.btok || !t.btgt || !t.bpos || !t.bw) {
		trainer_free(&t);
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	if (resume && (status = restore(&t, last))) {
		trainer_free(&t);
		return status;
	}
	pjoin(path, sizeof path, out, "checkpoints");
	if ((status = mkdir_p(c, path))) {
		trainer_free(&t);
		return status;
	}

	/* The run folder, and OUT/metrics.jsonl. */
	char *runs_dir = llm_args_str(a, "runs-dir") ? strdup(llm_args_str(a, "runs-dir"))
						     : llm_run_default_dir();
	struct llm_run *run = NULL;
	if (resume && t.run_id && llm_run_resume(&run, runs_dir, t.run_id, &d) && !c->quiet)
		llm_cli_error(c, "warning: cannot reopen run %s (%s); starting a new one", t.run_id,
			      d.msg);
	if (!run) {
		char *files[2] = {(char *)data, (char *)val};
		struct llm_run_spec spec = {.runs_dir = runs_dir,
					    .name = llm_args_str(a, "run-name"),
					    .data = files,
					    .ndata = val ? 2 : 1,
					    .command = "llm-tune train"};
		if (llm_run_create(&run, &spec, &d) ||
		    llm_run_set_params(run, t.params_json, &d)) {
			free(runs_dir);
			if (run)
				llm_run_close(run);
			trainer_free(&t);
			return llm_cli_fail(c, &d);
		}
		free(t.run_id);
		t.run_id = strdup(run->id);
	}
	free(runs_dir);
	pjoin(path, sizeof path, out, "metrics.jsonl");
	if (resume)
		cut_metrics(path, t.step);
	else
		unlink(path);
	FILE *mf = fopen(path, "a");
	if (!mf) {
		llm_cli_error(c, "%s: cannot open: %s", path, strerror(errno));
		llm_run_finish(run, LLM_RUN_FAILED, NULL);
		llm_run_close(run);
		trainer_free(&t);
		return LLM_EXIT_IO;
	}
	struct sigaction sa = {0}, old_int, old_term;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);

	status = train_loop(&t, run, mf);

	if (fclose(mf) != 0 && !status) {
		llm_cli_error(c, "%s: write error", path);
		status = LLM_EXIT_IO;
	}
	enum llm_run_status rs = stop_signal ? LLM_RUN_INTERRUPTED
				 : status    ? LLM_RUN_FAILED
					     : LLM_RUN_FINISHED;
	if (llm_run_finish(run, rs, &d) && !status)
		status = llm_cli_fail(c, &d);
	llm_run_close(run);
	trainer_free(&t);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (stop_signal) {
		signal(stop_signal, SIG_DFL);
		raise(stop_signal);
	}
	return status;
}

static int log_line(struct trainer *t, struct llm_run *run, FILE *mf, json_t *o)
{
	struct llm_diag d;
	char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(8));
	if (s) {
		fprintf(mf, "%s\n", s);
		fflush(mf);
		free(s);
	}
	enum llm_err e = llm_run_log_metrics(run, o, &d);
	json_decref(o);
	return e ? llm_cli_fail(t->c, &d) : 0;
}

static int train_loop(struct trainer *t, struct llm_run *run, FILE *mf)
{
	struct llm_cli *c = t->c;
	struct llm_args *a = &c->args;
	struct llm_diag d;
	int64_t eval_every = llm_args_int(a, "eval-every");
	int64_t patience = llm_args_int(a, "patience");
	int64_t save_every = llm_args_int(a, "save-every");
	double clip = llm_args_double(a, "clip");
	bool tty = !c->quiet && isatty(2);
	double t0 = now(), base_elapsed = t->elapsed, last_draw = 0;
	double tok0 = t->tokens, last_loss = NAN;
	bool early = false;
	int status = 0;
	shuffle(t);
	size_t idx[65536];
	while (t->step < t->total_steps && !status) {
		if ((status = llm_model_zero_grad(t->m, &d) ? llm_cli_fail(c, &d) : 0))
			break;
		double num = 0, den = 0;
		for (int k = 0; k < t->accum && !status; k++) {
			/* One per row: B pieces, the next epoch's when this one runs out.  Packed:
			 * what fits of this epoch's, then the next epoch's from the next step. */
			size_t n = t->B;
			if (t->pack) {
				if (t->pos == t->train.np) {
					t->epoch++;
					t->pos = 0;
					shuffle(t);
				}
				n = t->train.np - t->pos;
			} else {
				for (int i = 0; i < t->B; i++) {
					if (t->pos == t->train.np) {
						t->epoch++;
						t->pos = 0;
						shuffle(t);
					}
					idx[i] = t->perm[t->pos++];
				}
			}
			double w = 0, nt = 0;
			float loss;
			size_t used = forward_batch(t, &t->train, t->pack ? t->perm + t->pos : idx, 0,
						    n, &w, &nt, &loss, &d);
			if (!used || llm_model_backward(t->m, &d)) {
				status = llm_cli_fail(c, &d);
				break;
			}
			if (t->pack)
				t->pos += used;
			num += (double)loss * w;
			den += w;
			t->tokens += nt;
		}
		if (status)
			break;
		if (t->accum > 1) {
			float s = 1.0f / (float)t->accum;
			for (size_t i = 0; i < t->nparams; i++)
				t->grads[i] *= s;
		}
		float norm = llm_clip_grad_norm(t->grads, t->nparams, clip > 0 ? (float)clip
									       : INFINITY);
		double lr = llm_lr_at(&t->sched, t->step);
		if (isfinite(norm))
			llm_adamw_step(&t->opt, t->params, t->grads, lr);
		else if (!c->quiet)
			llm_cli_error(c, "warning: step %lld: gradient norm is not finite; update "
					 "skipped",
				      (long long)t->step + 1);
		t->step++;
		last_loss = den > 0 ? num / den : 0;
		double el = now() - t0;
		t->elapsed = base_elapsed + el;
		double tps = el > 0 ? (t->tokens - tok0) / el : 0;
		json_t *o = json_object();
		json_object_set_new(o, "step", json_integer(t->step));
		json_object_set_new(o, "epoch", json_real((double)t->epoch +
							  (double)t->pos / (double)t->train.np));
		json_object_set_new(o, "tokens", json_integer((json_int_t)t->tokens));
		json_object_set_new(o, "train_loss", json_real(last_loss));
		json_object_set_new(o, "lr", json_real(lr));
		json_object_set_new(o, "grad_norm", isfinite(norm) ? json_real(norm) : json_null());
		json_object_set_new(o, "tokens_per_s", json_real(tps));
		json_object_set_new(o, "elapsed_s", json_real(t->elapsed));
		if ((status = log_line(t, run, mf, o)))
			break;
		bool last_step = t->step == t->total_steps;
		if (t->val.np && ((eval_every && t->step % eval_every == 0) || last_step)) {
			double vl = NAN; /* set by evaluate on success */
			if ((status = evaluate(t, &vl)))
				break;
			bool better = isnan(t->best_val) || vl < t->best_val;
			o = json_object();
			json_object_set_new(o, "step", json_integer(t->step));
			json_object_set_new(o, "val_loss", json_real(vl));
			if ((status = log_line(t, run, mf, o)))
				break;
			if (better) {
				t->best_val = vl;
				t->best_step = t->step;
				t->bad_evals = 0;
				char best[4096];
				pjoin(best, sizeof best, t->out, "best");
				if ((status = save_model(t, best, true)))
					break;
			} else if (patience && ++t->bad_evals >= patience) {
				early = true;
			}
			if (tty)
				fprintf(stderr, "\r\033[Kstep %lld: val loss %.4f%s\n",
					(long long)t->step, vl, better ? " (best)" : "");
		}
		if ((save_every && t->step % save_every == 0) || last_step || early ||
		    stop_signal) {
			if ((status = save_checkpoint(t)))
				break;
			fsync(fileno(mf));
			if (llm_run_sync(run, &d)) {
				status = llm_cli_fail(c, &d);
				break;
			}
		}
		if (tty && (now() - last_draw > 0.2 || last_step)) {
			char eta[32];
			double per = el / (double)(t->tokens - tok0 > 0 ? 1 : 1);
			(void)per;
			double left = (double)(t->total_steps - t->step) * el /
				      (double)(t->step - (int64_t)0 > 0 ? t->step : 1);
			fmt_eta(left, eta, sizeof eta);
			fprintf(stderr, "\r\033[Kstep %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s",
				(long long)t->step, (long long)t->total_steps, last_loss, lr, tps,
				eta);
			last_draw = now();
		}
		if (early || stop_signal)
			break;
	}
	if (tty)
		fprintf(stderr, "\r\033[K");
	if (status)
		return status;
	if (stop_signal) {
		if (!c->quiet)
			llm_cli_error(c, "interrupted at step %lld; checkpoint in %s/checkpoints/last "
					 "(--resume continues)",
				      (long long)t->step, t->out);
		return LLM_EXIT_NEGATIVE;
	}
	/* The final model in OUT (adapters merged with --merge). */
	if (t->lora && llm_args_flag(a, "merge")) {
		if (llm_lora_merge(t->m, &d))
			return llm_cli_fail(c, &d);
		t->lora = false;
	}
	if ((status = save_model(t, t->out, false)))
		return status;
	if (!c->quiet) {
		char msg[512];
		int n = snprintf(msg, sizeof msg, "%s: %lld steps, %.0f tokens, train loss %.4f",
				 t->out, (long long)t->step, t->tokens, last_loss);
		if (t->val.np)
			snprintf(msg + n, sizeof msg - (size_t)n,
				 "; best val loss %.4f at step %lld (unigram baseline %.4f)%s",
				 t->best_val, (long long)t->best_step,
				 unigram_entropy(&t->val, (uint32_t)t->m->config.vocab_size),
				 early ? "; stopped early" : "");
		llm_cli_error(c, "%s", msg);
	}
	return 0;
}

const struct llm_verb llm_tune_verb_train = {
    "train",
    "train or fine-tune a model (full or LoRA), with checkpoints and resume",
    "--base DIR --data FILE --out DIR [OPTIONS]",
    "Train the model in --base on --data (JSONL records or a token file) with AdamW, and\n"
    "write the result to --out as a model directory, with OUT/checkpoints/last (for --resume),\n"
    "OUT/best (the best validation loss) and OUT/metrics.jsonl, and a run folder for\n"
    "llm-tune runs.",
    {train_opts, llm_cli_opts_base, NULL},
    train_run,
};
