// SPDX-License-Identifier: MIT
/* What this machine offers (usvm info), and errors a person understands. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/utsname.h>
#include "usvm.h"
#include "uffd.h"

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

int usvm_probe(struct usvm_caps *c)
{
	struct utsname u;
	uint64_t got = 0;
	int fd;

	memset(c, 0, sizeof(*c));
	c->is_root = geteuid() == 0;
	c->unprivileged_sysctl = read_int_file("/proc/sys/vm/unprivileged_userfaultfd");
	c->thp_mode = thp_mode();
	if (uname(&u) == 0)
		snprintf(c->kernel, sizeof(c->kernel), "%s", u.release);
	fd = uffd_open(0, &got, &c->uffd_user_mode_only);
	if (fd < 0) {
		c->uffd_errno = -fd;
		return fd == -ENOSYS ? -ENOSYS : fd;
	}
	close(fd);
	c->uffd_available = 1;
	/* The API handshake with no features reports everything supported. */
	c->feat_move = !!(got & UFFD_FEATURE_MOVE);
	c->feat_event_remove = !!(got & UFFD_FEATURE_EVENT_REMOVE);
	c->feat_event_unmap = !!(got & UFFD_FEATURE_EVENT_UNMAP);
	c->feat_event_remap = !!(got & UFFD_FEATURE_EVENT_REMAP);
	c->feat_sigbus = !!(got & UFFD_FEATURE_SIGBUS);
#ifdef UFFD_FEATURE_PAGEFAULT_FLAG_WP
	c->feat_wp = !!(got & UFFD_FEATURE_PAGEFAULT_FLAG_WP);
#endif
	return c->feat_move ? 0 : -ENOSYS;
}

const char *usvm_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case -EINVAL: return "invalid argument (unaligned, empty, or not a managed range start)";
	case -EFAULT: return "memory not managed by this address space";
	case -ENOMEM: return "out of memory (device memory exhausted even after eviction)";
	case -ENODEV: return "device unbound";
	case -EBUSY: return "some pages could not be migrated (busy or shared)";
	case -EEXIST: return "range overlaps memory that is already managed";
	case -EPERM: return "userfaultfd not permitted: run as root, or set "
			    "vm.unprivileged_userfaultfd=1, or use a kernel with "
			    "UFFD_USER_MODE_ONLY (5.11+)";
	case -ENOSYS: return "kernel lacks userfaultfd with UFFDIO_MOVE (Linux 6.8+ needed)";
	case -ENOENT: return "no such device allocation";
	case -EAGAIN: return "try again";
	default: return strerror(-err);
	}
}
