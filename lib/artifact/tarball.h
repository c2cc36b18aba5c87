/* The artifact tarball: NAME-VERSION.tar.gz, reproducible to the byte, and read back only
 * after every check passed.
 *
 * Layout.  A POSIX tar stream (libarchive's pax_restricted: ustar headers, with a pax extended
 * header only where ustar cannot hold a value: long or non-ASCII paths, sizes from 8 GiB),
 * padded with zeros to a multiple of 10240 bytes as GNU tar does, in two gzip members:
 *   1. MANIFEST.json, the first entry, in stored (uncompressed) deflate blocks, so that its
 *      length is known before the files are read (see below) and a reader finds the manifest
 *      in the first kilobytes of the file;
 *   2. the files, in manifest order (bytewise by path), then the end-of-archive blocks and the
 *      padding: one deflate stream made of 1 MiB blocks compressed independently on every core,
 *      each block primed with the 32 KiB before it and ended with a sync flush (as pigz does),
 *      so the bytes depend on the level and the block size, never on the thread count.
 * Both gzip headers hold no name, mtime 0, XFL 0 and OS 3 (Unix) whatever the host.  Entries are
 * regular files only (no folders: tar makes them), mode 0644, or 0755 when the manifest marks
 * the file executable, uid and gid 0, no user or group names, mtime the manifest's created.
 * The tarball is thus a function of the manifest, the files' bytes, the compression level and
 * the zlib deflate implementation (zlib 1.2.x and 1.3.x agree; zlib-ng differs).
 *
 * Writing reads each file once: its header (size known from the scan) goes out, then its bytes
 * are hashed and compressed together; the manifest, complete only at the end, has a length
 * known from the start (digests are fixed-length hex), so the first member is written last
 * into the room left for it.
 *
 * Reading (verify, unpack) refuses anything but this layout: the first entry must be a
 * canonical MANIFEST.json; then exactly the manifest's files in its order, regular files with
 * the listed sizes and digests; no links, devices, folders, absolute or '..' paths, duplicates,
 * extra or missing entries; a gzip stream that is truncated, corrupt (CRC, length), followed by
 * garbage, or that expands past what the manifest accounts for (a bomb); a manifest that
 * claims more bytes than deflate can expand the file to.  Inflation runs on its own thread
 * beside the hashing. */
#ifndef LLM_ARTIFACT_TARBALL_H
#define LLM_ARTIFACT_TARBALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "artifact/manifest.h"
#include "core/err.h"

#define LLM_TARBALL_LEVEL     6		 /* gzip's default */
#define LLM_TARBALL_BLOCK     (1u << 20) /* compression block */
#define LLM_TARBALL_RECORD    10240	 /* the tar stream is padded to a multiple */
#define LLM_TARBALL_MAX_RATIO 1040	 /* deflate expands at most 1032:1 */

struct llm_tarball_opts {
	int level;	  /* 1..9; 0 means LLM_TARBALL_LEVEL */
	unsigned threads; /* compression threads; 0: the online CPUs (the bytes are the same) */
	/* called now and then with the bytes of file data done so far, of total */
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *progress_arg;
	/* reading */
	uint64_t max_total; /* refuse a manifest listing more bytes in all; 0: no limit */
};

/* Fill m's files from the regular files under dir (sizes and executable bits; digests come
 * when packing).  Symbolic links to regular files are followed and packed as the file they
 * point to; links to folders, dangling links, FIFOs, sockets and devices are refused.  A path
 * matching one of exclude (fnmatch on the relative path, or on the base name, of a file or a
 * folder) is left out, and so is a top-level MANIFEST.json (an unpacked artifact's own), which
 * *manifest_skipped reports.  The files are sorted. */
enum llm_err llm_tarball_scan(struct llm_manifest *m, const char *dir, char *const *exclude,
			      size_t nexclude, bool *manifest_skipped, struct llm_diag *d);

/* Pack the files of m (as scanned from dir) into out_path, atomically, filling in their
 * digests and syncing m.  A file that changed size since the scan, or is not a regular file
 * any more, stops the run. */
enum llm_err llm_tarball_write(struct llm_manifest *m, const char *dir, const char *out_path,
			       const struct llm_tarball_opts *o, struct llm_diag *d);

/* Read only the manifest (the first entry) and its identity; nothing else is checked. */
enum llm_err llm_tarball_manifest(const char *path, struct llm_manifest *m,
				  char identity[LLM_DIGEST_SIZE], struct llm_diag *d);

/* Check everything (see above); fill m and identity.  A failed check is LLM_ERR_CHECK (a
 * digest or size differs) or LLM_ERR_FORMAT (anything else about the archive); a file that
 * cannot be read is LLM_ERR_IO or LLM_ERR_NOT_FOUND. */
enum llm_err llm_tarball_verify(const char *path, const struct llm_tarball_opts *o,
				struct llm_manifest *m, char identity[LLM_DIGEST_SIZE],
				struct llm_diag *d);

/* Verify and unpack into target, which must be absent or an empty folder.  The files go to a
 * hidden temporary folder beside target, which is renamed into place only when every check
 * passed; on any failure it is removed and target is as it was.  MANIFEST.json is unpacked
 * too, as tar would.  Modes 0644 and 0755 (less the umask). */
enum llm_err llm_tarball_unpack(const char *path, const char *target,
				const struct llm_tarball_opts *o, struct llm_manifest *m,
				char identity[LLM_DIGEST_SIZE], struct llm_diag *d);

#endif
