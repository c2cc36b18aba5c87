#include "config.h"

#include "core/mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum llm_err llm_map_file(const char *path, void **data, size_t *len, struct llm_diag *d)
{
	*data = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "cannot open: %s", strerror(errno));
	struct stat st;
	enum llm_err e = LLM_OK;
	if (fstat(fd, &st) != 0)
		e = llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot stat: %s", strerror(errno));
	else if (S_ISDIR(st.st_mode))
		e = llm_diag_set(d, LLM_ERR_IS_DIR, path, 0, "is a directory");
	else if (!S_ISREG(st.st_mode))
		e = llm_diag_set(d, LLM_ERR_IO, path, 0, "not a regular file");
	else if (st.st_size > 0) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED)
			e = llm_diag_set(d, LLM_ERR_IO, path, 0, "cannot map: %s", strerror(errno));
		else {
			*data = p;
			*len = (size_t)st.st_size;
		}
	}
	close(fd);
	return e;
}

void llm_unmap_file(void *data, size_t len)
{
	if (data)
		munmap(data, len);
}
