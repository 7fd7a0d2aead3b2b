// SPDX-License-Identifier: MIT
/*
 * libusvm-dmirror.so: LD_PRELOAD it and a program written against the
 * kernel's HMM test driver (lib/test_hmm_uapi.h) runs on usvm's simulated
 * devices instead, without the module and without root (README: "Running
 * kernel HMM test programs (dmirror)").
 *
 * DOC: What is interposed
 *
 * open(), openat() (and their 64-bit and fortified variants) of
 * /dev/hmm_dmirrorN: N = 0, 1 return a new file (see DOC: Objects in
 * dmirror.h); N = 2, 3, the device-coherent nodes, fail with ENOENT, as
 * when the module was loaded without coherent memory (their /dev nodes do
 * not exist then).  ioctl() of type 'H' on such a file runs a command
 * (cmds.c); mmap() of it maps zeroed pages at once, as the driver's mmap
 * does; close() of the last descriptor of a file releases it.
 * Everything else goes to the next definition (dlsym(RTLD_NEXT)) untouched:
 * other paths, other descriptors, other ioctls.
 *
 * DOC: fork()
 *
 * As in the kernel, a file belongs to the process that opened it.  usvm
 * objects do not survive into a fork()ed child, so a child that wants the
 * device opens it again (hmm-tests' children do) and gets its own mm and
 * device memory; commands on a file inherited from the parent fail with
 * ENODEV there (the kernel would run them on the parent's address space).
 */
#include <dlfcn.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "dmirror.h"
#include "device/device.h"

#define DM_PATH "/dev/hmm_dmirror"
#define DM_DEFAULT_MEMORY (1ul << 30)

/* Descriptors handed out, for a cheap test in close() (fds below 4096). */
#define DM_FD_BITS 4096

/* The process's usvm objects and open files. */
static struct {
	pthread_mutex_t lock;       /* files; never held across a usvm call */
	pthread_mutex_t init_lock;  /* creating mm and pm */
	struct usvm_mm *mm;
	struct usvm_pagemap *pm[DM_NODES];
	struct dm_file **files;
	size_t nfiles, cap;
	_Atomic uint64_t fds[DM_FD_BITS / 64];
} dm = { .lock = PTHREAD_MUTEX_INITIALIZER, .init_lock = PTHREAD_MUTEX_INITIALIZER };

/* Bumped in every fork child: files of an older generation are the parent's. */
uint64_t dm_gen;

/* ---- the next definitions ------------------------------------------------ */

static struct {
	int (*open)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	int (*close)(int);
	void *(*mmap)(void *, size_t, int, int, int, off_t);
} next;

static void *next_sym(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (!p) {
		fprintf(stderr, "libusvm-dmirror: no %s after this library\n", name);
		abort();
	}
	return p;
}

static void dm_fork_prepare(void)
{
	pthread_mutex_lock(&dm.lock);
}

static void dm_fork_parent(void)
{
	pthread_mutex_unlock(&dm.lock);
}

/* The parent's mm and device memories are unusable here (DOC: fork()). */
static void dm_fork_child(void)
{
	dm_gen++;
	dm.mm = NULL;
	memset(dm.pm, 0, sizeof(dm.pm));
	pthread_mutex_init(&dm.init_lock, NULL);
	pthread_mutex_unlock(&dm.lock);
}

__attribute__((constructor)) static void dm_init(void)
{
	next.open = next_sym("open");
	next.openat = next_sym("openat");
	next.ioctl = next_sym("ioctl");
	next.close = next_sym("close");
	next.mmap = next_sym("mmap");
	pthread_atfork(dm_fork_prepare, dm_fork_parent, dm_fork_child);
}

/* ---- the process's objects ------------------------------------------------ */

/* Device memory per node: USVM_DMIRROR_MEMORY bytes (default 1 GiB). */
static size_t dm_memory_size(void)
{
	const char *s = getenv("USVM_DMIRROR_MEMORY");
	size_t size = DM_DEFAULT_MEMORY;

	if (s && (usvm_parse_size(s, &size) || !size || size % USVM_PAGE_SIZE)) {
		fprintf(stderr, "libusvm-dmirror: USVM_DMIRROR_MEMORY=%s is not a size in "
			"pages; using 1G\n", s);
		size = DM_DEFAULT_MEMORY;
	}
	return size;
}

/* The mm and @node's device memory, created on first use.  0 or -errno. */
static int dm_objects(int node, struct usvm_mm **mm, struct usvm_pagemap **pm)
{
	int err = 0;

	pthread_mutex_lock(&dm.init_lock);
	if (!dm.mm)
		err = usvm_mm_create(NULL, &dm.mm);
	if (!err && !dm.pm[node]) {
		char name[32];

		snprintf(name, sizeof(name), "hmm_dmirror%d", node);
		err = usvm_sim_pagemap_create(name, dm_memory_size(), &dm.pm[node]);
		if (err == -ENOMEM) /* more than this machine's RAM + swap */
			err = usvm_sim_pagemap_create(name, 256ul << 20, &dm.pm[node]);
	}
	*mm = dm.mm;
	*pm = dm.pm[node];
	pthread_mutex_unlock(&dm.init_lock);
	return err;
}

/* ---- files ------------------------------------------------------------------ */

static void fd_mark(int fd, int on)
{
	if (fd < 0 || fd >= DM_FD_BITS)
		return;
	if (on)
		atomic_fetch_or(&dm.fds[fd / 64], 1ull << (fd % 64));
	else
		atomic_fetch_and(&dm.fds[fd / 64], ~(1ull << (fd % 64)));
}

static int fd_marked(int fd)
{
	return fd >= DM_FD_BITS || (fd >= 0 && (atomic_load(&dm.fds[fd / 64]) >> (fd % 64)) & 1);
}

/* The file with memfd identity @st, with a reference, or NULL; dm.lock held. */
static struct dm_file *file_find_locked(const struct stat *st)
{
	size_t i;

	for (i = 0; i < dm.nfiles; i++) {
		struct dm_file *f = dm.files[i];

		if (f->st_ino == st->st_ino && f->st_dev == st->st_dev) {
			atomic_fetch_add(&f->refs, 1);
			return f;
		}
	}
	return NULL;
}

/* The file behind descriptor @fd, with a reference, or NULL. */
static struct dm_file *file_get(int fd)
{
	struct dm_file *f;
	struct stat st;

	if (fstat(fd, &st))
		return NULL;
	pthread_mutex_lock(&dm.lock);
	f = file_find_locked(&st);
	pthread_mutex_unlock(&dm.lock);
	if (f)
		fd_mark(fd, 1); /* a dup()ed descriptor: close() must look */
	return f;
}

void dm_file_put(struct dm_file *f)
{
	if (atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	/* A file of the parent, in a fork child: its objects are unusable. */
	if (f->gen == dm_gen)
		dm_file_teardown(f);
	free(f);
}

static int file_insert(struct dm_file *f)
{
	struct dm_file **v;
	int err = 0;

	pthread_mutex_lock(&dm.lock);
	if (dm.nfiles == dm.cap) {
		size_t cap = dm.cap ? dm.cap * 2 : 8;

		v = realloc(dm.files, cap * sizeof(*v));
		if (v) {
			dm.files = v;
			dm.cap = cap;
		} else {
			err = -ENOMEM;
		}
	}
	if (!err)
		dm.files[dm.nfiles++] = f;
	pthread_mutex_unlock(&dm.lock);
	return err;
}

/* Take @f out of the table (its last descriptor was closed), once. */
static void file_remove(struct dm_file *f)
{
	size_t i;
	int found = 0;

	pthread_mutex_lock(&dm.lock);
	for (i = 0; i < dm.nfiles && !found; i++) {
		if (dm.files[i] == f) {
			dm.files[i] = dm.files[--dm.nfiles];
			found = 1;
		}
	}
	pthread_mutex_unlock(&dm.lock);
	if (found)
		dm_file_put(f); /* the table's reference */
}

/* Open node @node: a new file and its descriptor, or -errno. */
static int dm_open(int node, int flags)
{
	struct dm_file *f = calloc(1, sizeof(*f));
	struct usvm_mm *mm;
	struct usvm_pagemap *pm;
	struct stat st;
	int fd = -1, err;

	if (!f)
		return -ENOMEM;
	err = dm_objects(node, &mm, &pm);
	if (!err) {
		char name[32];

		snprintf(name, sizeof(name), "hmm_dmirror%d", node);
		fd = memfd_create(name, (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
		err = fd < 0 || fstat(fd, &st) ? -errno : 0;
	}
	if (!err) {
		f->st_dev = st.st_dev;
		f->st_ino = st.st_ino;
		f->gen = dm_gen;
		atomic_init(&f->refs, 1);
		err = dm_file_setup(f, mm, pm, node);
		if (!err && file_insert(f)) {
			dm_file_teardown(f);
			err = -ENOMEM;
		}
	}
	if (err) {
		if (fd >= 0)
			next.close(fd);
		free(f);
		return err;
	}
	fd_mark(fd, 1);
	return fd;
}

/* The node of a dmirror path (0..3), or -1 for any other path. */
static int dm_node(const char *path)
{
	char *end;
	long n;

	if (!path || strncmp(path, DM_PATH, sizeof(DM_PATH) - 1))
		return -1;
	path += sizeof(DM_PATH) - 1;
	if (*path < '0' || *path > '9')
		return -1;
	n = strtol(path, &end, 10);
	return *end || n > 3 ? -1 : (int)n;
}

/* open/openat of @path: -1 when it is not ours, else the result to return. */
static int dm_try_open(const char *path, int flags, int *ret)
{
	int node = dm_node(path);

	if (node < 0)
		return -1;
	*ret = node < DM_NODES ? dm_open(node, flags) : -ENOENT;
	if (*ret < 0) {
		errno = -*ret;
		*ret = -1;
	}
	return 0;
}

/* ---- the interposed functions ------------------------------------------------ */

static mode_t open_mode(int flags, va_list ap)
{
	return (flags & (O_CREAT | __O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
}

static int dm_sys_open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;
	int ret;

	va_start(ap, flags);
	mode = open_mode(flags, ap);
	va_end(ap);
	if (!dm_try_open(path, flags, &ret))
		return ret;
	return next.open(path, flags, mode);
}

static int dm_sys_openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;
	int ret;

	va_start(ap, flags);
	mode = open_mode(flags, ap);
	va_end(ap);
	if (!dm_try_open(path, flags, &ret))
		return ret;
	return next.openat(dirfd, path, flags, mode);
}


static int dm_sys_open_2(const char *path, int flags)
{
	return dm_sys_open(path, flags);
}


static int dm_sys_openat_2(int dirfd, const char *path, int flags)
{
	return dm_sys_openat(dirfd, path, flags);
}


/*
 * mmap() of a dmirror descriptor (the driver's mmap, hmm-tests mixedmap):
 * the driver maps fresh zeroed pages into the whole mapping at once, not
 * anonymous memory.  Here the memfd grows to cover the mapping, whose pages
 * are mapped at once read-only (MAP_POPULATE) and then given the protection
 * asked for: a private mapping holds page cache pages until written (READ
 * in a snapshot), as the driver's inserted pages are.
 *
 * Return: the mapping, or MAP_FAILED with errno set.
 */
static void *dm_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	size_t end = ALIGN_UP_UL(len, USVM_PAGE_SIZE);
	int ro = (prot | PROT_READ) & ~PROT_WRITE;
	struct stat st;
	void *p;

	if (off < 0 || end < len || end > (size_t)INT64_MAX - (size_t)off) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	end += (size_t)off;
	if (fstat(fd, &st) || ((size_t)st.st_size < end && ftruncate(fd, (off_t)end)))
		return MAP_FAILED;
	p = next.mmap(addr, len, ro, flags | MAP_POPULATE, fd, off);
	if (p != MAP_FAILED && prot != ro && mprotect(p, len, prot)) {
		int err = errno;

		munmap(p, len);
		errno = err;
		return MAP_FAILED;
	}
	return p;
}

/* mmap() of descriptor @fd: a dmirror file's (dm_mmap), or passed on. */
static void *dm_mmap_fd(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct dm_file *f = file_get(fd);

	if (!f)
		return next.mmap(addr, len, prot, flags, fd, off);
	dm_file_put(f);
	return dm_mmap(addr, len, prot, flags, fd, off);
}

/*
 * Sanitizer runtimes call mmap() while they start, before this library's
 * constructor and before they can run instrumented code: the path they take
 * (anonymous memory, or a descriptor not ours) stays uninstrumented.
 */
__attribute__((no_sanitize_thread, no_sanitize_address))
static void *dm_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (!next.mmap)
		next.mmap = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
	if (fd < 0 || (flags & MAP_ANONYMOUS) ||
	    (fd < DM_FD_BITS && !((atomic_load(&dm.fds[fd / 64]) >> (fd % 64)) & 1)))
		return next.mmap(addr, len, prot, flags, fd, off);
	return dm_mmap_fd(addr, len, prot, flags, fd, off);
}


static int dm_sys_ioctl(int fd, unsigned long req, ...)
{
	struct dm_file *f;
	va_list ap;
	void *arg;
	int err;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (_IOC_TYPE(req) != HMM_DMIRROR_IOC_TYPE || !(f = file_get(fd)))
		return next.ioctl(fd, req, arg);
	err = f->gen == dm_gen ? dm_ioctl(f, req, arg) : -ENODEV;
	dm_file_put(f);
	if (err) {
		errno = -err;
		return -1;
	}
	return 0;
}

/*
 * Does any descriptor still refer to memfd @st?  Each entry is stat()ed
 * through its /proc/self/fd link, never by number: other threads may be
 * opening and closing those numbers meanwhile (a number closed under us is
 * just not found).
 *
 * Return: 1 if one does (or /proc cannot tell), else 0.
 */
static int still_open(const struct stat *st)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int found = 0;

	if (!d)
		return 1; /* cannot tell: keep the file */
	while (!found && (e = readdir(d))) {
		struct stat s;

		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d) &&
		    !fstatat(dirfd(d), e->d_name, &s, 0))
			found = s.st_ino == st->st_ino && s.st_dev == st->st_dev;
	}
	closedir(d);
	return found;
}

static int dm_sys_close(int fd)
{
	struct dm_file *f;
	struct stat st;
	int ret;

	if (!fd_marked(fd) || fstat(fd, &st))
		return next.close(fd);
	fd_mark(fd, 0);
	pthread_mutex_lock(&dm.lock);
	f = file_find_locked(&st);
	pthread_mutex_unlock(&dm.lock);
	ret = next.close(fd);
	if (f) {
		if (!still_open(&st))
			file_remove(f);
		dm_file_put(f);
	}
	return ret;
}

/*
 * The C library's names, bound to the functions above: entry points the
 * dynamic linker finds before libc's (src/dmirror/dmirror.map exports just
 * these), never functions usvm calls.  The large-file and fortified
 * variants are the same functions: open() is 64-bit here already.
 */
#define DM_ALIAS(f) __attribute__((alias(#f)))
int open(const char *path, int flags, ...) DM_ALIAS(dm_sys_open);
int open64(const char *path, int flags, ...) DM_ALIAS(dm_sys_open);
int openat(int dirfd, const char *path, int flags, ...) DM_ALIAS(dm_sys_openat);
int openat64(int dirfd, const char *path, int flags, ...) DM_ALIAS(dm_sys_openat);
int __open_2(const char *path, int flags) DM_ALIAS(dm_sys_open_2);
int __open64_2(const char *path, int flags) DM_ALIAS(dm_sys_open_2);
int __openat_2(int dirfd, const char *path, int flags) DM_ALIAS(dm_sys_openat_2);
int __openat64_2(int dirfd, const char *path, int flags) DM_ALIAS(dm_sys_openat_2);
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) DM_ALIAS(dm_sys_mmap);
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) DM_ALIAS(dm_sys_mmap);
int ioctl(int fd, unsigned long req, ...) DM_ALIAS(dm_sys_ioctl);
int close(int fd) DM_ALIAS(dm_sys_close);
