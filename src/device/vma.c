// SPDX-License-Identifier: MIT
/*
 * The process's mappings as devices see them: where one starts and ends, and
 * what the CPU may do there.  userfaultfd reports munmap, madvise and mremap
 * but not mprotect, so devices look protections up themselves (see DOC:
 * Devices and CPU protections in device.h): one PROCMAP_QUERY ioctl (Linux
 * 6.11+, O(log n) in the number of mappings), else a walk of
 * /proc/self/maps.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "device.h"
#include "mm/mm.h"

#include "mm/procmap.h"

/*
 * The /proc/self/maps file PROCMAP_QUERY is asked through.  /proc/self is
 * resolved when the file is opened, so a fork()ed child must open its own:
 * @gen says for which usvm_fork_gen the descriptor was opened.  The
 * program may close or dup2() over any descriptor number, ours included:
 * @st_dev/@st_ino say which file is ours, so that a descriptor that is no
 * longer ours is never used again, let alone closed.
 */
static struct {
	pthread_mutex_t lock;
	int fd;                 /* -1: not opened; -2: no PROCMAP_QUERY here */
	uint64_t gen;
	dev_t st_dev;
	ino_t st_ino;
} maps = { PTHREAD_MUTEX_INITIALIZER, -1, 0, 0, 0 };

/* Is @fd still the maps file we opened?  maps.lock held. */
static int maps_fd_ours(int fd)
{
	struct stat st;

	return !fstat(fd, &st) && st.st_dev == maps.st_dev && st.st_ino == maps.st_ino;
}

/* The descriptor to query, or -1 when only the maps file can tell. */
static int maps_fd(void)
{
	uint64_t gen = atomic_load(&usvm_fork_gen);
	struct stat st;
	int fd;

	pthread_mutex_lock(&maps.lock);
	if (maps.fd >= 0 && maps.gen != gen) {
		if (maps_fd_ours(maps.fd))
			close(maps.fd); /* the parent's: it describes the parent */
		maps.fd = -1;
	}
	if (maps.fd == -1) {
		maps.fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
		maps.gen = gen;
		if (maps.fd >= 0 && fstat(maps.fd, &st)) {
			close(maps.fd);
			maps.fd = -1;
		} else if (maps.fd >= 0) {
			maps.st_dev = st.st_dev;
			maps.st_ino = st.st_ino;
		}
	}
	fd = maps.fd;
	pthread_mutex_unlock(&maps.lock);
	return fd;
}

/*
 * PROCMAP_QUERY failed on @fd with @err.  If @fd is no longer ours (the
 * program closed or replaced it), forget it: return 1 to try again with a
 * new one.  Else the kernel predates PROCMAP_QUERY: stop trying it.
 */
static int maps_fd_failed(int fd, int err)
{
	int again = 0;

	pthread_mutex_lock(&maps.lock);
	if (maps.fd == fd && !maps_fd_ours(fd)) {
		maps.fd = -1;
		again = 1;
	} else if (maps.fd == fd && err == -ENOTTY) {
		close(fd);
		maps.fd = -2;
	} else {
		again = maps.fd != fd; /* another thread replaced it already */
	}
	pthread_mutex_unlock(&maps.lock);
	return again;
}

/* Return 0, -ENOENT (a hole), -ENOTTY (no PROCMAP_QUERY) or -errno. */
static int query_procmap(int fd, uintptr_t addr, struct dev_vma *out)
{
	struct procmap_query q = { .size = sizeof(q), .query_addr = addr };

	if (ioctl(fd, PROCMAP_QUERY, &q)) {
		if (errno == ENOENT)
			return -ENOENT;
		return errno == ENOTTY || errno == EINVAL ? -ENOTTY : -errno;
	}
	out->start = (uintptr_t)q.vma_start;
	out->end = (uintptr_t)q.vma_end;
	out->prot = (q.vma_flags & PROCMAP_QUERY_VMA_READABLE ? PROT_READ : 0) |
		    (q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE ? PROT_WRITE : 0) |
		    (q.vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE ? PROT_EXEC : 0);
	out->shared = !!(q.vma_flags & PROCMAP_QUERY_VMA_SHARED);
	out->file = q.inode || q.dev_major || q.dev_minor;
	out->page_size = q.vma_page_size ? q.vma_page_size : USVM_PAGE_SIZE;
	return 0;
}

/* Fill @out from one line of the maps file if it holds @addr; 1 if so. */
static int parse_maps_line(const char *line, uintptr_t addr, struct dev_vma *out)
{
	unsigned long lo, hi, off, inode;
	char perms[8], dev[16];

	if (sscanf(line, "%lx-%lx %7s %lx %15s %lu", &lo, &hi, perms, &off, dev, &inode) < 6)
		return 0;
	if (addr < lo || addr >= hi)
		return 0;
	out->start = lo;
	out->end = hi;
	out->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
		    (perms[2] == 'x' ? PROT_EXEC : 0);
	out->shared = perms[3] == 's';
	out->file = inode != 0 || strcmp(dev, "00:00") != 0;
	out->page_size = USVM_PAGE_SIZE; /* the maps file does not say */
	return 1;
}

/* The fallback: read /proc/self/maps up to the mapping of @addr. */
static int query_maps_file(uintptr_t addr, struct dev_vma *out)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int found = 0;

	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof(line), f)) {
		found = parse_maps_line(line, addr, out);
		/* Skip the rest of an overlong line (a long path). */
		while (!strchr(line, '\n') && fgets(line, sizeof(line), f))
			;
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

int dev_vma_query(uintptr_t addr, struct dev_vma *out)
{
	int tries, fd, err;

	for (tries = 0; tries < 3; tries++) {
		fd = maps_fd();
		if (fd < 0)
			break;
		err = query_procmap(fd, addr, out);
		if (err == 0 || err == -ENOENT)
			return err;
		if (!maps_fd_failed(fd, err))
			break;
	}
	return query_maps_file(addr, out);
}
