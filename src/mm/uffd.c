// SPDX-License-Identifier: MIT
/* userfaultfd syscalls and ioctls, with the errno convention of usvm. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include "uffd.h"

static int uffd_try_open(int flags)
{
	int fd = (int)syscall(SYS_userfaultfd, flags);

	return fd < 0 ? -errno : fd;
}

int uffd_open(uint64_t features, uint64_t *got, int *user_mode_only)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd;

	*user_mode_only = 0;
	fd = uffd_try_open(O_CLOEXEC | O_NONBLOCK);
	if (fd == -EPERM) {
		/* Unprivileged callers may only catch faults from user mode. */
		fd = uffd_try_open(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
		if (fd >= 0)
			*user_mode_only = 1;
	}
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

int uffd_unregister(int uffd, uintptr_t start, size_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return ioctl(uffd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

long uffd_move(int uffd, uintptr_t dst, uintptr_t src, size_t len, int wake)
{
	struct uffdio_move m = {
		.dst = dst, .src = src, .len = len,
		.mode = wake ? 0 : UFFDIO_MOVE_MODE_DONTWAKE,
	};

	if (ioctl(uffd, UFFDIO_MOVE, &m) == 0)
		return (long)m.move;
	if (m.move > 0)
		return (long)m.move;
	return -errno;
}

long uffd_zeropage(int uffd, uintptr_t dst, size_t len)
{
	struct uffdio_zeropage z = { .range = { .start = dst, .len = len } };

	if (ioctl(uffd, UFFDIO_ZEROPAGE, &z) == 0)
		return (long)z.zeropage;
	if (z.zeropage > 0)
		return (long)z.zeropage;
	return -errno;
}

long uffd_copy(int uffd, uintptr_t dst, uintptr_t src, size_t len)
{
	struct uffdio_copy c = { .dst = dst, .src = src, .len = len };

	if (ioctl(uffd, UFFDIO_COPY, &c) == 0)
		return (long)c.copy;
	if (c.copy > 0)
		return (long)c.copy;
	return -errno;
}

int uffd_wake(int uffd, uintptr_t start, size_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return ioctl(uffd, UFFDIO_WAKE, &r) ? -errno : 0;
}
