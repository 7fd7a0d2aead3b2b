// SPDX-License-Identifier: MIT
/* userfaultfd syscalls and ioctls, with the errno convention of usvm. */
#include <errno.h>
#include <fcntl.h>
#include <strings.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include "usvm.h"
#include "uffd.h"
#include "util.h"
#include "inject.h"

#define UFFD_FLAGS (O_CLOEXEC | O_NONBLOCK)

int usvm_uffd_mode_requested(void)
{
	const char *m = usvm_option_string(USVM_OPT_UFFD_MODE);

	if (!m || !strcasecmp(m, "auto"))
		return USVM_UFFD_AUTO;
	if (!strcasecmp(m, "syscall"))
		return USVM_UFFD_SYSCALL;
	if (!strcasecmp(m, "dev"))
		return USVM_UFFD_DEV;
	return USVM_UFFD_USER_ONLY;
}

const char *usvm_uffd_mode_name(int mode)
{
	switch (mode) {
	case USVM_UFFD_SYSCALL: return "userfaultfd(2), full fault handling";
	case USVM_UFFD_DEV: return "/dev/userfaultfd, full fault handling";
	case USVM_UFFD_USER_ONLY: return "user-mode-only (kernel accesses to device-resident "
					 "memory fail with EFAULT)";
	default: return "none";
	}
}

static int try_syscall(int flags)
{
	int fd = (int)syscall(SYS_userfaultfd, flags);

	return fd < 0 ? -errno : fd;
}

/* /dev/userfaultfd (Linux 6.1+): full handling for whoever may open it. */
static int try_dev(void)
{
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC), fd;

	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, UFFD_FLAGS);
	fd = fd < 0 ? -errno : fd;
	close(dev);
	return fd;
}

static int open_mode(int *mode)
{
	int fd;

	switch (*mode) {
	case USVM_UFFD_SYSCALL:
		return try_syscall(UFFD_FLAGS);
	case USVM_UFFD_DEV:
		return try_dev();
	case USVM_UFFD_USER_ONLY:
		return try_syscall(UFFD_FLAGS | UFFD_USER_MODE_ONLY);
	default:
		break;
	}
	/* auto: the best mode this caller is allowed. */
	fd = try_syscall(UFFD_FLAGS);
	if (fd >= 0) {
		*mode = USVM_UFFD_SYSCALL;
		return fd;
	}
	if (fd != -EPERM)
		return fd;
	fd = try_dev();
	if (fd >= 0) {
		*mode = USVM_UFFD_DEV;
		return fd;
	}
	*mode = USVM_UFFD_USER_ONLY;
	return try_syscall(UFFD_FLAGS | UFFD_USER_MODE_ONLY);
}

int uffd_open(uint64_t features, uint64_t *got, int *mode)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = open_mode(mode);

	if (fd < 0)
		return fd;
	/* Ask for what we need; the kernel refuses unknown bits with EINVAL. */
	api.features = features;
	if (ioctl(fd, UFFDIO_API, &api)) {
		int err = -errno;

		close(fd);
		return err;
	}
	if (got)
		*got = api.features;
	return fd;
}

int uffd_register(int uffd, uintptr_t start, size_t len)
{
	struct uffdio_register r = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	return ioctl(uffd, UFFDIO_REGISTER, &r) ? -errno : 0;
}

int uffd_register_wp(int uffd, uintptr_t start, size_t len)
{
	struct uffdio_register r = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};

	return ioctl(uffd, UFFDIO_REGISTER, &r) ? -errno : 0;
}

int uffd_writeprotect(int uffd, uintptr_t start, size_t len, int protect)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = start, .len = len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

int uffd_unregister(int uffd, uintptr_t start, size_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return ioctl(uffd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

/* The ioctl's result: bytes done if any, else -errno (errno still set). */
static long result(int ret, long long done)
{
	if (done > 0)
		return (long)done;
	if (ret == 0)
		return 0;
	return -errno;
}

long uffd_move(int uffd, uintptr_t dst, uintptr_t src, size_t len, uint64_t mode)
{
	struct uffdio_move m = { .dst = dst, .src = src, .len = len, .mode = mode };
	int ret;

	if (usvm_inject_fail(USVM_INJECT_UFFD))
		return -EAGAIN;
	ret = ioctl(uffd, UFFDIO_MOVE, &m);

	return result(ret, m.move);
}

long uffd_zeropage(int uffd, uintptr_t dst, size_t len, int wake)
{
	struct uffdio_zeropage z = {
		.range = { .start = dst, .len = len },
		.mode = wake ? 0 : UFFDIO_ZEROPAGE_MODE_DONTWAKE,
	};
	int ret;

	if (usvm_inject_fail(USVM_INJECT_UFFD))
		return -EAGAIN;
	ret = ioctl(uffd, UFFDIO_ZEROPAGE, &z);

	return result(ret, z.zeropage);
}

long uffd_copy(int uffd, uintptr_t dst, uintptr_t src, size_t len, int wake)
{
	struct uffdio_copy c = {
		.dst = dst, .src = src, .len = len,
		.mode = wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE,
	};
	int ret;

	if (usvm_inject_fail(USVM_INJECT_UFFD))
		return -EAGAIN;
	ret = ioctl(uffd, UFFDIO_COPY, &c);

	return result(ret, c.copy);
}

int uffd_changing(int uffd)
{
	/* UFFDIO_WRITEPROTECT checks mmap_changing before anything else; an
	 * empty range then fails with EINVAL and changes nothing. */
	struct uffdio_writeprotect wp = { .range = { .start = 0, .len = 0 } };

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) && errno == EAGAIN;
}

int uffd_wake(int uffd, uintptr_t start, size_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return ioctl(uffd, UFFDIO_WAKE, &r) ? -errno : 0;
}
