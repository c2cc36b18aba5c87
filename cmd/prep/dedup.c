/* llm-prep dedup: exact and MinHash-LSH near-duplicate removal in bounded memory.
 *
 * Three stages, each also a command of its own so the first can run sharded on many machines:
 *   signatures  one band record per (band, document): text lines that `sort` orders
 *   clusters    band records, sorted here in bounded memory (lib/data/spill.h), grouped by
 *               (band, key), joined by union-find into a cluster map: document -> first member
 *   filter      the input again, with the map merged in by ordinal: cluster_id added, every
 *               record but the first of each cluster dropped (or, under --tag, marked)
 * The default runs all three in one process, reading the input twice (standard input is first
 * copied to an unnamed file in --tmp-dir). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/atomic.h"
#include "core/hash.h"
#include "data/dedup.h"
#include "data/minhash.h"
#include "data/spill.h"
#include "prep/verbs.h"

#define TOP_CLUSTERS 10

enum method { M_MINHASH, M_EXACT };

struct dedup {
	struct llm_cli *c;
	enum method method;
	const char *text_field;
	const char *id_field;
	const char *cluster_field;
	const char *dup_field;
	char **fields; /* --fields, split */
	size_t nfields;
	bool tag;
	bool normalize;
	struct llm_minhash mh;
	bool mh_ready;
	unsigned bands, rows;
	double threshold;
	const char *tmp_dir;
	const char *spool_name; /* the /dev/fd name standard input was spooled to, or NULL */
	uint64_t memory;
	uint64_t slice_k, slice_n; /* --shard, 0-based k */
	struct llm_buf scratch;
	/* counts */
	uint64_t docs_signed, docs_empty, band_records, spill_runs, unions;
	bool resumed;
};

/* ----- what a record contributes ---------------------------------------------------------- */

/* The ordinal of the record just returned by the loop: every record counts, bad ones too, so
 * every pass and every shard agrees. */
static uint64_t current_ord(const struct dedup *dd, const struct llm_cli_in *in)
{
	return dd->slice_k + dd->slice_n * (in->records + in->bad - 1);
}

/* Check the fields a record needs; fills why when it is bad. */
static bool record_usable(const struct dedup *dd, const struct llm_record *rec,
			  struct llm_diag *why)
{
	if (dd->method == M_EXACT && dd->nfields) {
		for (size_t i = 0; i < dd->nfields; i++)
			if (!llm_json_get(&rec->fields, dd->fields[i])) {
				llm_diag_set(why, LLM_ERR_MISSING, rec->file, rec->line,
					     "missing field \"%s\"", dd->fields[i]);
				return false;
			}
		return true;
	}
	return llm_record_string_field(rec, dd->text_field, why) != NULL;
}

typedef enum llm_err (*band_sink)(void *ctx, const unsigned char rec[LLM_DEDUP_REC_LEN],
				  struct llm_diag *d);

/* Compute a usable record's band records and hand each to sink. */
static enum llm_err sign_record(struct dedup *dd, const struct llm_record *rec, uint64_t ord,
				band_sink sink, void *ctx, struct llm_diag *d)
{
	struct llm_buf *b = &dd->scratch;
	llm_buf_clear(b);
	enum llm_err e = LLM_OK;
	unsigned char key[LLM_MINHASH_KEY_LEN], brec[LLM_DEDUP_REC_LEN];
	if (dd->method == M_EXACT && dd->nfields) {
		/* Each field as name, NUL, value (decoded when a string, JSON text otherwise), NUL:
		 * no two different field lists give the same bytes. */
		for (size_t i = 0; i < dd->nfields && !e; i++) {
			const struct llm_json_member *m = llm_json_get(&rec->fields, dd->fields[i]);
			e = llm_buf_append(b, dd->fields[i], strlen(dd->fields[i]) + 1);
			if (!e)
				e = llm_buf_putc(b, m->type == LLM_JSON_STRING ? 's' : 'j');
			if (!e)
				e = m->type == LLM_JSON_STRING
					    ? llm_json_string_decode(m->val, m->val_len, b)
					    : llm_buf_append(b, m->val, m->val_len);
			if (!e)
				e = llm_buf_append(b, "", 1);
		}
	} else {
		const struct llm_json_member *m = llm_json_get(&rec->fields, dd->text_field);
		e = llm_json_string_decode(m->val, m->val_len, b);
	}
	if (e)
		return llm_diag_set(d, e, rec->file, rec->line, "out of memory");
	dd->docs_signed++;
	if (dd->method == M_EXACT) {
		const char *p = b->data;
		size_t n = b->len;
		struct llm_buf norm;
		llm_buf_init(&norm, 0);
		if (dd->normalize && !dd->nfields) {
			if ((e = llm_minhash_normalize(b->data, b->len, &norm))) {
				llm_buf_free(&norm);
				return llm_diag_set(d, e, rec->file, rec->line, "out of memory");
			}
			p = norm.data;
			n = norm.len;
		}
		unsigned char dg[LLM_SHA256_LEN];
		e = llm_sha256(p ? p : "", n, dg);
		llm_buf_free(&norm);
		if (e)
			return llm_diag_set(d, e, rec->file, rec->line, "cannot hash");
		llm_dedup_rec_pack(brec, 0, dg, ord);
		dd->band_records++;
		return sink(ctx, brec, d);
	}
	size_t shingles;
	if ((e = llm_minhash_sign(&dd->mh, b->data ? b->data : "", b->len, &shingles)))
		return llm_diag_set(d, e, rec->file, rec->line, "out of memory");
	if (!shingles) {
		/* No words: nothing to compare, the record stays alone. */
		dd->docs_empty++;
		return LLM_OK;
	}
	for (unsigned band = 0; band < dd->bands && !e; band++) {
		llm_minhash_band_key(&dd->mh, dd->mh.sig, band, key);
		llm_dedup_rec_pack(brec, band, key, ord);
		dd->band_records++;
		e = sink(ctx, brec, d);
	}
	return e;
}

/* Run the record loop over the input, signing every usable record. */
static int sign_input(struct dedup *dd, band_sink sink, void *ctx)
{
	struct llm_cli *c = dd->c;
	struct llm_cli_in in;
	int st = llm_cli_in_open(c, &in, false);
	if (st)
		return st;
	struct llm_record *rec;
	struct llm_diag d;
	int r;
	while ((r = llm_cli_in_next(c, &in, &rec)) > 0) {
		uint64_t ord = current_ord(dd, &in);
		if (!record_usable(dd, rec, &d)) {
			if (!llm_cli_in_reject(c, &in, rec, &d)) {
				r = -1;
				break;
			}
			continue;
		}
		if (sign_record(dd, rec, ord, sink, ctx, &d)) {
			in.status = llm_cli_fail(c, &d);
			r = -1;
			break;
		}
	}
	st = r < 0 ? in.status : 0;
	llm_cli_in_close(&in);
	return st;
}

static enum llm_err sink_line(void *ctx, const unsigned char rec[LLM_DEDUP_REC_LEN],
			      struct llm_diag *d)
{
	char line[LLM_DEDUP_LINE_LEN];
	llm_dedup_rec_format(rec, line);
	if (!llm_cli_write(ctx, line, sizeof line))
		return llm_diag_set(d, LLM_ERR_IO, NULL, 0, "write error on standard output");
	return LLM_OK;
}

static enum llm_err sink_spill(void *ctx, const unsigned char rec[LLM_DEDUP_REC_LEN],
			       struct llm_diag *d)
{
	return llm_spill_add(ctx, rec, d);
}

/* ----- clusters -------------------------------------------------------------------------- */

/* Sorted band records from the spill into union-find. */
static enum llm_err group_spill(struct dedup *dd, struct llm_spill *sp, struct llm_uf *uf,
				struct llm_diag *d)
{
	enum llm_err e = llm_spill_finish(sp, d);
	if (e)
		return e;
	dd->spill_runs = llm_spill_runs(sp);
	struct llm_dedup_grouper g = {0};
	const void *rec;
	while (!(e = llm_spill_next(sp, &rec, d)) && rec)
		if ((e = llm_dedup_group_add(&g, uf, rec)))
			return llm_diag_set(d, e, NULL, 0,
					    e == LLM_ERR_NOMEM ? "out of memory"
							       : "too many documents in clusters");
	dd->unions = g.unions;
	return e;
}

/* Read text lines of at most max bytes from fp; *n is the length without the newline; 0 at the
 * end; -1 when a line is too long. */
static int read_line(FILE *fp, char *buf, size_t max, size_t *n)
{
	if (!fgets(buf, (int)max, fp))
		return 0;
	size_t len = strlen(buf);
	if (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
	else if (!feof(fp)) {
		int ch;
		while ((ch = getc(fp)) != EOF && ch != '\n')
			;
		*n = len;
		return -1;
	}
	*n = len;
	return 1;
}

static FILE *open_operand(struct llm_cli *c, const char *path, int *st)
{
	if (!strcmp(path, "-"))
		return stdin;
	struct stat sb;
	FILE *fp = NULL;
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		errno = EISDIR;
	else
		fp = fopen(path, "r");
	if (!fp) {
		llm_cli_error(c, "%s: cannot open: %s", path, strerror(errno));
		*st = LLM_EXIT_IO;
	}
	return fp;
}

static int run_clusters(struct dedup *dd)
{
	struct llm_cli *c = dd->c;
	struct llm_diag d;
	struct llm_spill *sp;
	if (llm_spill_open(&sp, LLM_DEDUP_REC_LEN, dd->memory, dd->tmp_dir, &d))
		return llm_cli_fail(c, &d);
	static char *const dash[] = {"-"};
	char *const *paths = c->args.noperands ? c->args.operands : dash;
	size_t npaths = c->args.noperands ? c->args.noperands : 1;
	int st = 0;
	for (size_t i = 0; i < npaths && !st; i++) {
		FILE *fp = open_operand(c, paths[i], &st);
		if (!fp)
			break;
		const char *name = fp == stdin ? LLM_STDIN_NAME : paths[i];
		char line[128];
		size_t n;
		long lineno = 0;
		int r;
		while (!st && (r = read_line(fp, line, sizeof line, &n)) != 0) {
			lineno++;
			unsigned char rec[LLM_DEDUP_REC_LEN];
			if (r < 0 || !llm_dedup_rec_parse(line, n, rec)) {
				llm_cli_error(c, "%s:%ld: not a band record (BAND<TAB>KEY<TAB>ORD)",
					      name, lineno);
				st = LLM_EXIT_NEGATIVE;
			} else if (llm_spill_add(sp, rec, &d)) {
				st = llm_cli_fail(c, &d);
			}
		}
		if (!st && ferror(fp)) {
			llm_cli_error(c, "%s: read error: %s", name, strerror(errno));
			st = LLM_EXIT_IO;
		}
		if (fp != stdin)
			fclose(fp);
	}
	struct llm_uf uf;
	llm_uf_init(&uf);
	if (!st && group_spill(dd, sp, &uf, &d))
		st = llm_cli_fail(c, &d);
	uint64_t band_records = llm_spill_count(sp);
	llm_spill_close(sp);
	uint64_t *pairs = NULL;
	size_t np = 0, clusters = 0;
	if (!st && llm_uf_pairs(&uf, &pairs, &np)) {
		llm_cli_error(c, "out of memory");
		st = LLM_EXIT_IO;
	}
	for (size_t i = 0; i < np && !st; i++) {
		char line[LLM_DEDUP_MAP_LINE_LEN];
		llm_dedup_map_format(pairs[2 * i], pairs[2 * i + 1], line);
		clusters += pairs[2 * i] == pairs[2 * i + 1];
		if (!llm_cli_write(c, line, sizeof line))
			st = LLM_EXIT_IO;
	}
	free(pairs);
	llm_uf_free(&uf);
	const char *report = llm_args_str(&c->args, "report");
	if (!st && report) {
		json_t *j = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "stage", "clusters",
				      "band_records", (json_int_t)band_records, "spill_runs",
				      (json_int_t)dd->spill_runs, "candidate_pairs",
				      (json_int_t)dd->unions, "clustered_records", (json_int_t)np,
				      "clusters", (json_int_t)clusters);
		if (llm_cli_write_json(c, report, j, &d))
			st = llm_cli_fail(c, &d);
		json_decref(j);
	}
	return st;
}

/* ----- filter ---------------------------------------------------------------------------- */

/* The cluster map, from memory (one process) or from a file (--stage filter), read in
 * ordinal order alongside the input. */
struct map_src {
	const uint64_t *pairs;
	size_t n, pos;
	FILE *fp;
	const char *path;
	long line;
	bool have;
	uint64_t ord, rep;
};

/* Load the next entry; -1 (after a message) on a malformed or out-of-order map. */
static int map_next(struct llm_cli *c, struct map_src *m)
{
	uint64_t prev = m->ord;
	bool had = m->have;
	m->have = false;
	if (m->pairs) {
		if (m->pos == m->n)
			return 0;
		m->ord = m->pairs[2 * m->pos];
		m->rep = m->pairs[2 * m->pos + 1];
		m->pos++;
	} else {
		if (!m->fp)
			return 0;
		char line[128];
		size_t n;
		int r = read_line(m->fp, line, sizeof line, &n);
		if (r == 0) {
			if (ferror(m->fp)) {
				llm_cli_error(c, "%s: read error: %s", m->path, strerror(errno));
				return -1;
			}
			return 0;
		}
		m->line++;
		if (r < 0 || !llm_dedup_map_parse(line, n, &m->ord, &m->rep) || m->rep > m->ord) {
			llm_cli_error(c, "%s:%ld: not a cluster map line (ORD<TAB>REP)", m->path,
				      m->line);
			return -1;
		}
		if (had && m->ord <= prev) {
			llm_cli_error(c, "%s:%ld: the cluster map is not sorted by ordinal", m->path,
				      m->line);
			return -1;
		}
	}
	m->have = true;
	return 1;
}

/* A cluster seen so far: its first record's ordinal and id (JSON text), and its size.  Reps
 * arrive in ordinal order, so the array stays sorted and members find theirs by bisection. */
struct rep {
	uint64_t ord;
	char *id;
	uint64_t size;
};

struct reps {
	struct rep *v;
	size_t n, cap;
};

static struct rep *rep_find(struct reps *r, uint64_t ord)
{
	size_t lo = 0, hi = r->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->v[mid].ord < ord)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < r->n && r->v[lo].ord == ord ? &r->v[lo] : NULL;
}

/* The JSON text that names a record: its --id-field value, else "FILE:LINE". */
static enum llm_err record_id(const struct dedup *dd, const struct llm_record *rec,
			      struct llm_buf *out)
{
	llm_buf_clear(out);
	const struct llm_json_member *m = llm_json_get(&rec->fields, dd->id_field);
	if (m)
		return llm_buf_append(out, m->val, m->val_len);
	char name[LLM_DIAG_FILE_MAX + 32];
	const char *file = rec->file;
	if (dd->spool_name && !strcmp(file, dd->spool_name))
		file = LLM_STDIN_NAME; /* the same name the stages give standard input */
	int n = snprintf(name, sizeof name, "%s:%ld", file, rec->line);
	return llm_buf_json_string(out, name, (size_t)n < sizeof name ? (size_t)n : sizeof name - 1);
}

static int cmp_size(const void *a, const void *b)
{
	const struct rep *x = a, *y = b;
	if (x->size != y->size)
		return x->size > y->size ? -1 : 1;
	return x->ord < y->ord ? -1 : x->ord > y->ord;
}

static int filter_input(struct dedup *dd, struct map_src *map, json_t *extra)
{
	struct llm_cli *c = dd->c;
	struct llm_cli_in in;
	int st = llm_cli_in_open(c, &in, true);
	if (st)
		return st;
	struct reps reps = {0};
	struct llm_buf id;
	llm_buf_init(&id, 0);
	uint64_t written = 0, duplicates = 0;
	struct llm_record *rec;
	struct llm_diag d;
	int r = map_next(c, map);
	if (r < 0)
		in.status = LLM_EXIT_NEGATIVE;
	while (r >= 0 && (r = llm_cli_in_next(c, &in, &rec)) > 0) {
		uint64_t ord = current_ord(dd, &in);
		if (!record_usable(dd, rec, &d)) {
			if (!llm_cli_in_reject(c, &in, rec, &d)) {
				r = -1;
				break;
			}
			continue;
		}
		while (map->have && map->ord < ord)
			if ((r = map_next(c, map)) < 0)
				break;
		if (r < 0) {
			in.status = LLM_EXIT_NEGATIVE;
			break;
		}
		if (record_id(dd, rec, &id)) {
			llm_cli_error(c, "out of memory");
			in.status = LLM_EXIT_IO;
			r = -1;
			break;
		}
		struct llm_edit edits[2] = {{dd->cluster_field, id.data}, {NULL, NULL}};
		size_t nedits = 1;
		if (map->have && map->ord == ord && map->rep != ord) {
			/* A later member of a cluster. */
			struct rep *rp = rep_find(&reps, map->rep);
			if (rp) {
				rp->size++;
				edits[0].value = rp->id;
			}
			duplicates++;
			if (!dd->tag)
				continue;
			edits[1] = (struct llm_edit){dd->dup_field, "true"};
			nedits = 2;
		} else if (map->have && map->ord == ord) {
			/* The first record of a cluster: remember its id for the others. */
			if (reps.n == reps.cap) {
				size_t cap = reps.cap ? 2 * reps.cap : 64;
				struct rep *v = realloc(reps.v, cap * sizeof *v);
				if (!v) {
					llm_cli_error(c, "out of memory");
					in.status = LLM_EXIT_IO;
					r = -1;
					break;
				}
				reps.v = v;
				reps.cap = cap;
			}
			char *copy = strdup(id.data);
			if (!copy) {
				llm_cli_error(c, "out of memory");
				in.status = LLM_EXIT_IO;
				r = -1;
				break;
			}
			reps.v[reps.n++] = (struct rep){ord, copy, 1};
		}
		if (!llm_cli_emit(c, rec, edits, nedits)) {
			in.status = LLM_EXIT_IO;
			r = -1;
			break;
		}
		written++;
	}
	st = r < 0 ? in.status : 0;
	llm_cli_in_close(&in);
	llm_buf_free(&id);

	uint64_t clusters = 0;
	for (size_t i = 0; i < reps.n; i++)
		clusters += reps.v[i].size > 1;
	if (!st && !c->quiet)
		fprintf(stderr, "%s: dedup: %llu records, %llu duplicates in %llu clusters, %s\n",
			c->tool->name, (unsigned long long)(in.records + in.bad),
			(unsigned long long)duplicates, (unsigned long long)clusters,
			dd->tag ? "all kept" : "duplicates dropped");
	const char *report = llm_args_str(&c->args, "report");
	if (!st && report) {
		qsort(reps.v, reps.n, sizeof *reps.v, cmp_size);
		json_t *top = json_array();
		for (size_t i = 0; i < reps.n && i < TOP_CLUSTERS && reps.v[i].size > 1; i++) {
			json_t *idv = json_loads(reps.v[i].id, JSON_DECODE_ANY, NULL);
			json_array_append_new(top, json_pack("{s:o,s:I}", "cluster_id",
							     idv ? idv : json_null(), "size",
							     (json_int_t)reps.v[i].size));
		}
		json_t *j = llm_cli_in_report(&in);
		json_object_set_new(j, "written", json_integer((json_int_t)(written + in.kept)));
		json_object_set_new(j, "dropped",
				    json_integer((json_int_t)((dd->tag ? 0 : duplicates) + in.dropped)));
		json_object_set_new(j, "duplicates", json_integer((json_int_t)duplicates));
		json_object_set_new(j, "clusters", json_integer((json_int_t)clusters));
		json_object_set_new(j, "largest_clusters", top);
		json_object_set_new(j, "mode", json_string(dd->tag ? "tag" : "drop"));
		json_object_update(j, extra);
		if (llm_cli_write_json(c, report, j, &d))
			st = llm_cli_fail(c, &d);
		json_decref(j);
	}
	for (size_t i = 0; i < reps.n; i++)
		free(reps.v[i].id);
	free(reps.v);
	return st;
}

/* ----- the whole run --------------------------------------------------------------------- */

static json_t *params_json(const struct dedup *dd)
{
	if (dd->method == M_EXACT)
		return json_pack("{s:s,s:b}", "method", "exact", "normalize", dd->normalize);
	return json_pack("{s:s,s:f,s:i,s:i,s:i,s:i,s:b}", "method", "minhash", "threshold",
			 dd->threshold, "num_perm", (int)dd->mh.p.num_perm, "bands", (int)dd->bands,
			 "rows", (int)dd->rows, "ngram", (int)dd->mh.p.ngram, "normalize",
			 dd->normalize);
}

/* Where a --resume run keeps its cluster map: a name that changes with anything that changes
 * the clusters (parameters, input names, sizes and modification times). */
static char *resume_path(struct dedup *dd)
{
	struct llm_cli *c = dd->c;
	struct llm_buf b;
	llm_buf_init(&b, 0);
	json_t *p = params_json(dd);
	char *ps = json_dumps(p, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(p);
	llm_buf_printf(&b, "%s|%s|%s|%llu|%llu|%llu|", ps ? ps : "", dd->text_field,
		       llm_args_str(&c->args, "fields") ? llm_args_str(&c->args, "fields") : "",
		       (unsigned long long)dd->mh.p.seed, (unsigned long long)dd->slice_k,
		       (unsigned long long)dd->slice_n);
	free(ps);
	for (size_t i = 0; i < c->args.noperands; i++) {
		struct stat sb = {0};
		stat(c->args.operands[i], &sb);
		llm_buf_printf(&b, "%s|%lld|%lld.%09ld|", c->args.operands[i], (long long)sb.st_size,
			       (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
	}
	unsigned char dg[LLM_SHA256_LEN];
	char hex[LLM_SHA256_HEX_LEN + 1];
	enum llm_err e = llm_sha256(b.data, b.len, dg);
	llm_buf_free(&b);
	if (e)
		return NULL;
	llm_hex(dg, 8, hex);
	size_t len = strlen(dd->tmp_dir) + 64;
	char *path = malloc(len);
	if (path)
		snprintf(path, len, "%s/llmops-dedup-%s.map", dd->tmp_dir, hex);
	return path;
}

static enum llm_err save_map(const char *path, const uint64_t *pairs, size_t n,
			     struct llm_diag *d)
{
	struct llm_atomic a;
	enum llm_err e = llm_atomic_open(&a, path, d);
	if (e)
		return e;
	for (size_t i = 0; i < n; i++) {
		char line[LLM_DEDUP_MAP_LINE_LEN];
		llm_dedup_map_format(pairs[2 * i], pairs[2 * i + 1], line);
		if (fwrite(line, 1, sizeof line, a.fp) != sizeof line) {
			llm_atomic_abort(&a);
			return llm_diag_set(d, LLM_ERR_IO, path, 0, "write error: %s",
					    strerror(errno));
		}
	}
	return llm_atomic_commit(&a, d);
}

static int run_all(struct dedup *dd, struct map_src *map, uint64_t **pairs_out)
{
	struct llm_cli *c = dd->c;
	struct llm_diag d;
	char *rpath = NULL;
	if (llm_args_flag(&c->args, "resume")) {
		rpath = resume_path(dd);
		FILE *fp = rpath ? fopen(rpath, "r") : NULL;
		if (fp) {
			map->fp = fp;
			map->path = rpath;
			dd->resumed = true;
			return 0;
		}
	}
	struct llm_spill *sp;
	if (llm_spill_open(&sp, LLM_DEDUP_REC_LEN, dd->memory, dd->tmp_dir, &d)) {
		free(rpath);
		return llm_cli_fail(c, &d);
	}
	int st = sign_input(dd, sink_spill, sp);
	struct llm_uf uf;
	llm_uf_init(&uf);
	if (!st && group_spill(dd, sp, &uf, &d))
		st = llm_cli_fail(c, &d);
	llm_spill_close(sp);
	size_t np = 0;
	if (!st && llm_uf_pairs(&uf, pairs_out, &np)) {
		llm_cli_error(c, "out of memory");
		st = LLM_EXIT_IO;
	}
	llm_uf_free(&uf);
	if (!st && rpath && save_map(rpath, *pairs_out, np, &d))
		st = llm_cli_fail(c, &d);
	free(rpath);
	map->pairs = *pairs_out;
	map->n = np;
	return st;
}

/* Copy standard input to an unnamed file in dir; the second pass reads it as /dev/fd/N. */
static int spool_stdin(struct dedup *dd, int *fd_out)
{
	struct llm_cli *c = dd->c;
	size_t len = strlen(dd->tmp_dir) + 40;
	char *path = malloc(len);
	if (!path)
		return LLM_EXIT_IO;
	snprintf(path, len, "%s/llmops-dedup-stdin-XXXXXX", dd->tmp_dir);
	int fd = mkstemp(path);
	if (fd < 0) {
		llm_cli_error(c, "%s: cannot create a temporary file: %s", dd->tmp_dir,
			      strerror(errno));
		free(path);
		return LLM_EXIT_IO;
	}
	unlink(path);
	free(path);
	static char buf[1 << 16];
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			llm_cli_error(c, "%s: read error: %s", LLM_STDIN_NAME, strerror(errno));
			close(fd);
			return LLM_EXIT_IO;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				llm_cli_error(c, "%s: cannot spool standard input: %s", dd->tmp_dir,
					      w < 0 ? strerror(errno) : "short write");
				close(fd);
				return LLM_EXIT_IO;
			}
			off += w;
		}
	}
	*fd_out = fd;
	return 0;
}

static bool parse_slice(const char *s, uint64_t *k, uint64_t *n)
{
	char *end;
	unsigned long long a = strtoull(s, &end, 10);
	if (end == s || *end != '/')
		return false;
	unsigned long long b = strtoull(end + 1, &end, 10);
	if (*end || a < 1 || a > b)
		return false;
	*k = a - 1;
	*n = b;
	return true;
}

static char **split_fields(const char *s, size_t *n)
{
	*n = 0;
	size_t count = 1;
	for (const char *p = s; *p; p++)
		count += *p == ',';
	char **v = calloc(count, sizeof *v);
	if (!v)
		return NULL;
	const char *p = s;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len) {
			if (!(v[*n] = strndup(p, len))) {
				for (size_t i = 0; i < *n; i++)
					free(v[i]);
				free(v);
				return NULL;
			}
			(*n)++;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	return v;
}

static int setup(struct dedup *dd)
{
	struct llm_cli *c = dd->c;
	const struct llm_args *a = &c->args;
	dd->method = !strcmp(llm_args_str(a, "method"), "exact") ? M_EXACT : M_MINHASH;
	dd->text_field = llm_args_str(a, "text-field");
	dd->id_field = llm_args_str(a, "id-field");
	dd->cluster_field = llm_args_str(a, "cluster-field");
	dd->dup_field = llm_args_str(a, "duplicate-field");
	dd->normalize = !llm_args_flag(a, "no-normalize");
	dd->memory = llm_args_size(a, "memory");
	dd->threshold = llm_args_double(a, "threshold");
	dd->slice_n = 1;
	const char *slice = llm_args_str(a, "shard");
	if (slice && !parse_slice(slice, &dd->slice_k, &dd->slice_n))
		return llm_cli_usage(c, "--shard: expected K/N with 1 <= K <= N, not '%s'", slice);
	if (llm_args_flag(a, "tag") && llm_args_flag(a, "drop"))
		return llm_cli_usage(c, "give --tag or --drop, not both");
	dd->tag = llm_args_flag(a, "tag");
	const char *tmp = llm_args_str(a, "tmp-dir");
	if (!tmp || !*tmp)
		tmp = getenv("TMPDIR");
	dd->tmp_dir = tmp && *tmp ? tmp : "/tmp";
	const char *fields = llm_args_str(a, "fields");
	if (fields) {
		if (dd->method != M_EXACT)
			return llm_cli_usage(c, "--fields goes with --method exact");
		if (!(dd->fields = split_fields(fields, &dd->nfields))) {
			llm_cli_error(c, "out of memory");
			return LLM_EXIT_IO;
		}
		if (!dd->nfields)
			return llm_cli_usage(c, "--fields: name at least one field");
	}
	if (dd->method == M_EXACT)
		return 0;
	unsigned num_perm = (unsigned)llm_args_int(a, "num-perm");
	bool gb = llm_args_given(a, "bands"), gr = llm_args_given(a, "rows");
	if (gb && gr) {
		dd->bands = (unsigned)llm_args_int(a, "bands");
		dd->rows = (unsigned)llm_args_int(a, "rows");
	} else if (gb || gr) {
		unsigned given = (unsigned)llm_args_int(a, gb ? "bands" : "rows");
		if (given > num_perm)
			return llm_cli_usage(c, "--%s %u: more than --num-perm %u", gb ? "bands" : "rows",
					     given, num_perm);
		dd->bands = gb ? given : num_perm / given;
		dd->rows = gb ? num_perm / given : given;
	} else {
		llm_minhash_optimal_param(dd->threshold, num_perm, 0.5, 0.5, &dd->bands, &dd->rows);
	}
	if ((uint64_t)dd->bands * dd->rows > num_perm)
		return llm_cli_usage(c, "--bands %u times --rows %u is more than --num-perm %u",
				     dd->bands, dd->rows, num_perm);
	struct llm_minhash_params p = {
		.num_perm = num_perm,
		.ngram = (unsigned)llm_args_int(a, "ngram"),
		.bands = dd->bands,
		.rows = dd->rows,
		.seed = (uint64_t)llm_args_int(a, "seed"),
		.normalize = dd->normalize,
	};
	struct llm_diag d;
	if (llm_minhash_init(&dd->mh, &p, &d))
		return d.code == LLM_ERR_NOMEM ? llm_cli_fail(c, &d) : llm_cli_usage(c, "%s", d.msg);
	dd->mh_ready = true;
	return 0;
}

static int run_dedup(struct llm_cli *c)
{
	struct dedup dd = {.c = c};
	llm_buf_init(&dd.scratch, 0);
	const char *stage = llm_args_str(&c->args, "stage");
	int st = setup(&dd);
	struct map_src map = {0};
	uint64_t *pairs = NULL;
	int spool_fd = -1;
	char **saved_ops = c->args.operands;
	size_t saved_nops = c->args.noperands;
	char *spool_ops[1];
	char spool_name[32];
	if (st)
		goto out;
	if (!strcmp(stage, "signatures")) {
		st = sign_input(&dd, sink_line, c);
		goto out;
	}
	if (!strcmp(stage, "clusters")) {
		st = run_clusters(&dd);
		goto out;
	}
	json_t *extra = params_json(&dd);
	if (!strcmp(stage, "filter")) {
		const char *path = llm_args_str(&c->args, "clusters");
		if (!path) {
			json_decref(extra);
			st = llm_cli_usage(c, "--stage filter needs --clusters FILE");
			goto out;
		}
		map.path = path;
		if (!(map.fp = open_operand(c, path, &st))) {
			json_decref(extra);
			goto out;
		}
		json_object_set_new(extra, "stage", json_string("filter"));
		st = filter_input(&dd, &map, extra);
		json_decref(extra);
		goto out;
	}
	/* All stages: the input is read twice, so standard input goes to a file first. */
	bool uses_stdin = !c->args.noperands;
	for (size_t i = 0; i < c->args.noperands; i++)
		uses_stdin |= !strcmp(c->args.operands[i], "-");
	if (uses_stdin) {
		if (llm_args_flag(&c->args, "resume")) {
			json_decref(extra);
			st = llm_cli_usage(c, "--resume needs input files, not standard input");
			goto out;
		}
		if ((st = spool_stdin(&dd, &spool_fd))) {
			json_decref(extra);
			goto out;
		}
		snprintf(spool_name, sizeof spool_name, "/dev/fd/%d", spool_fd);
		spool_ops[0] = spool_name;
		dd.spool_name = spool_name;
		c->args.operands = spool_ops;
		c->args.noperands = 1;
	}
	st = run_all(&dd, &map, &pairs);
	if (!st) {
		/* The first pass already reported every bad record. */
		bool quiet = c->quiet;
		c->quiet = true;
		json_object_set_new(extra, "resumed", json_boolean(dd.resumed));
		if (!dd.resumed) {
			json_object_set_new(extra, "band_records", json_integer((json_int_t)dd.band_records));
			json_object_set_new(extra, "spill_runs", json_integer((json_int_t)dd.spill_runs));
			json_object_set_new(extra, "candidate_pairs", json_integer((json_int_t)dd.unions));
			json_object_set_new(extra, "empty_texts", json_integer((json_int_t)dd.docs_empty));
		}
		st = filter_input(&dd, &map, extra);
		c->quiet = quiet;
	}
	json_decref(extra);
out:
	c->args.operands = saved_ops;
	c->args.noperands = saved_nops;
	if (spool_fd >= 0)
		close(spool_fd);
	if (map.fp && map.fp != stdin)
		fclose(map.fp);
	if (dd.resumed)
		free((char *)map.path);
	free(pairs);
	for (size_t i = 0; i < dd.nfields; i++)
		free(dd.fields[i]);
	free(dd.fields);
	if (dd.mh_ready)
		llm_minhash_free(&dd.mh);
	llm_buf_free(&dd.scratch);
	return st;
}

static const struct llm_opt dedup_opts[] = {
	{"method", 'm', LLM_OPT_CHOICE, "METHOD",
	 "minhash: near duplicates (MinHash-LSH); exact: equal normalized texts or --fields",
	 "minhash", "minhash|exact"},
	{"tag", 0, LLM_OPT_FLAG, NULL, "keep every record; mark duplicates with --duplicate-field"},
	{"drop", 0, LLM_OPT_FLAG, NULL,
	 "drop duplicates, keeping the first record of each cluster (the default)"},
	{"threshold", 't', LLM_OPT_DOUBLE, "S", "the Jaccard similarity that bands and rows aim at",
	 "0.7", NULL, 0.01, 0.99},
	{"num-perm", 0, LLM_OPT_INT, "N", "permutations in a MinHash signature", "128", NULL, 1,
	 LLM_MINHASH_MAX_PERM},
	{"bands", 'b', LLM_OPT_INT, "B", "LSH bands (default: chosen from --threshold)", NULL, NULL,
	 1, LLM_MINHASH_MAX_PERM},
	{"rows", 'r', LLM_OPT_INT, "R", "rows per band (default: chosen from --threshold)", NULL,
	 NULL, 1, LLM_MINHASH_MAX_PERM},
	{"ngram", 0, LLM_OPT_INT, "N", "words per shingle", "5", NULL, 1, 1000},
	{"seed", 0, LLM_OPT_INT, "N", "draws the permutations", "1", NULL, 0, 9e18},
	{"no-normalize", 0, LLM_OPT_FLAG, NULL,
	 "compare the text as it is (no case folding, punctuation or digit removal)"},
	{"text-field", 0, LLM_OPT_STRING, "FIELD", "the field holding the text", "text"},
	{"fields", 0, LLM_OPT_STRING, "F1,F2,...",
	 "with --method exact: compare these fields' values instead of the text"},
	{"id-field", 0, LLM_OPT_STRING, "FIELD",
	 "the field that names a record in cluster ids (else FILE:LINE)", "id"},
	{"cluster-field", 0, LLM_OPT_STRING, "FIELD",
	 "the field written with the id of the cluster's first record", "cluster_id"},
	{"duplicate-field", 0, LLM_OPT_STRING, "FIELD", "the field set to true on duplicates under --tag",
	 "duplicate"},
	{"stage", 0, LLM_OPT_CHOICE, "STAGE",
	 "run one stage: signatures, clusters (reads band lines) or filter (needs --clusters)",
	 "all", "all|signatures|clusters|filter"},
	{"clusters", 0, LLM_OPT_STRING, "FILE",
	 "with --stage filter: the cluster map that --stage clusters wrote"},
	{"memory", 0, LLM_OPT_SIZE, "SIZE", "memory for sorting band records; the rest spills to disk",
	 "256M", NULL, 1024, 1e15},
	{"tmp-dir", 0, LLM_OPT_STRING, "DIR",
	 "where sorted runs, spooled standard input and --resume maps go (default $TMPDIR or /tmp)"},
	{"resume", 0, LLM_OPT_FLAG, NULL,
	 "reuse the cluster map an earlier run with the same input and options left in --tmp-dir"},
	{"report", 0, LLM_OPT_STRING, "FILE",
	 "write counts, parameters and the largest clusters as JSON to FILE"},
	{0},
};

const struct llm_verb llm_prep_verb_dedup = {
	"dedup", "remove exact and near-duplicate records (MinHash-LSH)", "[OPTIONS] [FILE...]",
	"Finds records whose texts are equal (--method exact) or similar (MinHash-LSH over word\n"
	"5-grams), groups them into clusters, adds cluster_id to every record and keeps the first\n"
	"of each cluster.  Memory stays within --memory whatever the input size.  The stages also\n"
	"run one at a time (--stage), joined by sort, for inputs spread over many machines.",
	{dedup_opts, llm_cli_opts_on_error, llm_cli_opts_input, llm_cli_opts_base}, run_dedup,
};
