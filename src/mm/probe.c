// SPDX-License-Identifier: MIT
/*
 * What this machine offers (usvm info), whether memory can be adopted, and
 * errors a person understands.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include "usvm.h"
#include "mm.h"
#include "uffd.h"

#include "procmap.h"

/* Special anonymous mappings that are not the program's data. */
static int special_name(const char *name)
{
	return name[0] == '[' && strcmp(name, "[heap]") && strncmp(name, "[anon", 5);
}

/*
 * One PROCMAP_QUERY per VMA of [start, end): O(log n) each, whatever the
 * size of the process.  Returns 0, -EINVAL, -EFAULT, or -ENOTTY (no ioctl:
 * the caller falls back to parsing the maps file).
 */
static int check_procmap(int fd, uintptr_t start, uintptr_t end)
{
	uintptr_t a = start;

	while (a < end) {
		char name[64] = "";
		struct procmap_query q = {
			.size = sizeof(q), .query_addr = a,
			.vma_name_size = sizeof(name), .vma_name_addr = (uintptr_t)name,
		};

		if (ioctl(fd, PROCMAP_QUERY, &q)) {
			if (errno == ENOENT)
				return -EFAULT; /* a hole */
			if (errno == E2BIG) /* a long name: a file, or a named mapping */
				return -EINVAL;
			return errno == ENOTTY || errno == EINVAL ? -ENOTTY : -errno;
		}
		if ((q.vma_flags & (PROCMAP_QUERY_VMA_READABLE | PROCMAP_QUERY_VMA_WRITABLE)) !=
		    (PROCMAP_QUERY_VMA_READABLE | PROCMAP_QUERY_VMA_WRITABLE) ||
		    (q.vma_flags & PROCMAP_QUERY_VMA_SHARED) || q.inode || q.dev_major ||
		    q.dev_minor || special_name(name))
			return -EINVAL;
		a = (uintptr_t)q.vma_end;
	}
	return 0;
}

/* The fallback: read /proc/self/maps from the start (older kernels). */
static int check_maps_file(uintptr_t start, uintptr_t end)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	uintptr_t covered = start;

	if (!f)
		return 0; /* cannot tell: let UFFDIO_REGISTER decide */
	while (covered < end && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, off, inode;
		char perms[8], dev[16], path[256] = "";
		int n = sscanf(line, "%lx-%lx %7s %lx %15s %lu %255s", &lo, &hi, perms,
			       &off, dev, &inode, path);

		if (n < 6 || hi <= covered || lo > covered)
			continue;
		if (perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p' || inode != 0 ||
		    (path[0] && path[0] != '[') || special_name(path)) {
			fclose(f);
			return -EINVAL;
		}
		covered = hi;
	}
	fclose(f);
	return covered >= end ? 0 : -EFAULT;
}

int mm_vma_uffd_registered(uintptr_t addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0, ret = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) { /* a mapping's first line */
			in = lo <= addr && addr < hi;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			ret = strstr(line, " um") != NULL;
			break;
		}
	}
	fclose(f);
	return ret;
}

int mm_check_anon_private(struct usvm_mm *mm, uintptr_t start, uintptr_t end)
{
	if (mm->maps_fd >= 0) {
		int err = check_procmap(mm->maps_fd, start, end);

		if (err != -ENOTTY)
			return err;
		close(mm->maps_fd); /* the kernel predates PROCMAP_QUERY */
		mm->maps_fd = -1;
	}
	return check_maps_file(start, end);
}

static int read_int_file(const char *path)
{
	FILE *f = fopen(path, "r");
	int v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static int thp_mode(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char buf[128] = "";
	int mode = -1;

	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f)) {
		if (strstr(buf, "[always]"))
			mode = 2;
		else if (strstr(buf, "[madvise]"))
			mode = 1;
		else if (strstr(buf, "[never]"))
			mode = 0;
	}
	fclose(f);
	return mode;
}

static int procmap_query_works(void)
{
	struct procmap_query q = { .size = sizeof(q), .query_addr = (uintptr_t)&q };
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return 0;
	ok = ioctl(fd, PROCMAP_QUERY, &q) == 0;
	close(fd);
	return ok;
}

int usvm_probe(struct usvm_caps *c)
{
	struct utsname u;
	uint64_t got = 0;
	int fd, mode = usvm_uffd_mode_requested();

	memset(c, 0, sizeof(*c));
	c->is_root = geteuid() == 0;
	c->unprivileged_sysctl = read_int_file("/proc/sys/vm/unprivileged_userfaultfd");
	c->dev_userfaultfd = access("/dev/userfaultfd", F_OK) ? -1 :
			     access("/dev/userfaultfd", R_OK | W_OK) ? 0 : 1;
	c->thp_mode = thp_mode();
	c->procmap_query = procmap_query_works();
	if (uname(&u) == 0)
		snprintf(c->kernel, sizeof(c->kernel), "%s", u.release);
	fd = uffd_open(0, &got, &mode);
	if (fd < 0) {
		c->uffd_errno = -fd;
		return fd == -ENOSYS ? -ENOSYS : fd;
	}
	close(fd);
	c->uffd_available = 1;
	c->uffd_mode = mode;
	c->uffd_user_mode_only = mode == USVM_UFFD_USER_ONLY;
	/* The API handshake with no features reports everything supported. */
	c->feat_move = !!(got & UFFD_FEATURE_MOVE);
	c->feat_event_remove = !!(got & UFFD_FEATURE_EVENT_REMOVE);
	c->feat_event_unmap = !!(got & UFFD_FEATURE_EVENT_UNMAP);
	c->feat_event_remap = !!(got & UFFD_FEATURE_EVENT_REMAP);
	c->feat_sigbus = !!(got & UFFD_FEATURE_SIGBUS);
#ifdef UFFD_FEATURE_PAGEFAULT_FLAG_WP
	c->feat_wp = !!(got & UFFD_FEATURE_PAGEFAULT_FLAG_WP);
#endif
	if (!c->feat_move || !c->feat_event_remove || !c->feat_event_unmap || !c->feat_event_remap)
		return -ENOSYS;
	return 0;
}

const char *usvm_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case -EINVAL: return "invalid argument (unaligned, empty, or not a managed range start)";
	case -EFAULT: return "memory not managed by this address space";
	case -ENOMEM: return "out of memory (device memory exhausted even after eviction, "
			     "or more than the machine can back)";
	case -ENODEV: return "device unbound, or address space gone (destroyed, or the "
			     "parent's after fork)";
	case -EBUSY: return "some pages could not be migrated (pinned or busy)";
	case -EIO: return "a device copy failed; the data stayed where it was";
	case -EEXIST: return "range overlaps memory that is already managed";
	case -EPERM: return "userfaultfd not permitted: run as root, set "
			    "vm.unprivileged_userfaultfd=1, or make /dev/userfaultfd "
			    "readable and writable for this user";
	case -ENOSYS: return "kernel lacks userfaultfd with UFFDIO_MOVE and events (Linux 6.8+ needed)";
	case -ENOENT: return "no such device allocation";
	case -EAGAIN: return "try again";
	default: return strerror(-err);
	}
}
