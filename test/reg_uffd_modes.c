// SPDX-License-Identifier: MIT
/*
 * reg_uffd_modes: the userfaultfd mode chosen with USVM_UFFD_MODE (read by
 * usvm_mm_create) decides whether the kernel's own accesses to
 * device-resident managed memory are served.
 *
 *   auto     the best mode available (as root: full fault handling)
 *   syscall  userfaultfd(2), faults from user and kernel mode handled
 *   dev      /dev/userfaultfd + USERFAULTFD_IOC_NEW, same handling
 *   user     UFFD_USER_MODE_ONLY: kernel-mode faults are not delivered
 *
 * For each mode: an mm, 1 MiB of managed memory holding a pattern,
 * populated into a simulated pagemap; then the kernel writes into it
 * (read(2) from a pipe into device-resident memory) and reads from it
 * (write(2) of device-resident memory to a pipe), 8 KiB at unaligned
 * offsets, the range populated again before each access.  In auto (as
 * root), syscall and dev modes both must work with the right bytes; in user
 * mode both must fail with EFAULT.  Afterwards every byte must be what the
 * program (or the kernel, where it succeeded) wrote, checked by CPU reads.
 * A mode whose userfaultfd cannot be opened here is skipped with the
 * reason.  USVM_UFFD_MODE does not exist yet: today every mode behaves as
 * auto, so the user-mode checks fail.
 *
 * Also: a child drops to an unprivileged user (setgroups, setgid and setuid
 * to 65534) with vm.unprivileged_userfaultfd as it is (read, never
 * changed): usvm_mm_create must succeed in some mode, and usvm_probe must
 * report which (caps.uffd_user_mode_only; with the sysctl at 0 and no
 * access to /dev/userfaultfd, only user mode is possible), and the same
 * kernel-access checks must give that mode's results.
 */
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>
#include "helpers.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#define LEN (1 * MiB)
#define XLEN (8 * KiB)
#define CHILD_TIMEOUT_NS 30000000000ull

static int nfail;
static const char *who = "root";

#define SOFT_CHECK(cond, ...)                                                   \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fflush(stdout);                                         \
			fprintf(stderr, "reg_uffd_modes: FAIL (%s) %s:%d: ", who, \
				__FILE__, __LINE__);                            \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			nfail++;                                                \
		}                                                               \
	} while (0)

/* Offsets of the kernel accesses: unaligned, crossing pages. */
static const size_t xoff[] = { 0, 200 * KiB + 123, 640 * KiB + 4000, LEN - XLEN };

/* Can this process open a userfaultfd the way @mode does?  0, or -errno and @why. */
static int mode_available(const char *mode, char *why, size_t n)
{
	int fd = -1, dfd;

	if (!strcmp(mode, "auto"))
		return 0;
	if (!strcmp(mode, "syscall")) {
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			snprintf(why, n, "userfaultfd(2) without UFFD_USER_MODE_ONLY: %s",
				 strerror(errno));
	} else if (!strcmp(mode, "dev")) {
		dfd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dfd < 0) {
			snprintf(why, n, "/dev/userfaultfd: %s", strerror(errno));
		} else {
			fd = ioctl(dfd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
			if (fd < 0)
				snprintf(why, n, "USERFAULTFD_IOC_NEW: %s", strerror(errno));
			close(dfd);
		}
	} else {
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
		if (fd < 0)
			snprintf(why, n, "userfaultfd(2) with UFFD_USER_MODE_ONLY: %s",
				 strerror(errno));
	}
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/*
 * Kernel accesses to device-resident memory of an mm created in @mode;
 * @kernel_ok: whether they must succeed (else they must fail with EFAULT).
 */
static void kernel_access(struct usvm_mm *mm, struct usvm_pagemap *pm, const char *mode,
			  int kernel_ok, uint64_t seed)
{
	uint8_t *p = test_alloc(mm, LEN), *want = malloc(LEN), *buf = malloc(XLEN);
	int fds[2], i, e;
	size_t bad;
	ssize_t n;

	CHECK(want && buf, "malloc");
	CHECK(pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0, "pipe2: %s", strerror(errno));
	pattern_fill(p, LEN, seed);
	pattern_fill(want, LEN, seed);
	for (i = 0; i < (int)(sizeof(xoff) / sizeof(xoff[0])); i++) {
		size_t off = xoff[i];

		/* The kernel writes into device-resident memory. */
		CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 0));
		CHECK(resident(mm, p, LEN, pm) == (long)LEN, "mode %s: not populated (premise)",
		      mode);
		pattern_fill_at(buf, XLEN, seed + 1, off);
		CHECK(write(fds[1], buf, XLEN) == (ssize_t)XLEN, "pipe write: %s", strerror(errno));
		n = read(fds[0], p + off, XLEN);
		e = n < 0 ? errno : 0;
		if (kernel_ok)
			SOFT_CHECK(n == (ssize_t)XLEN, "mode %s: read(2) from a pipe into "
				   "device-resident memory at offset %zu: %zd (%s), expected %lu",
				   mode, off, n, e ? strerror(e) : "short", XLEN);
		else
			SOFT_CHECK(e == EFAULT, "mode %s: read(2) from a pipe into device-resident "
				   "memory at offset %zu: %zd (%s), expected EFAULT (kernel "
				   "accesses are not served in user-mode-only mode)", mode, off, n,
				   e ? strerror(e) : "success");
		if (n > 0)
			memcpy(want + off, buf, (size_t)n);
		/* Whatever the kernel did not take stays in the pipe: drain it. */
		while (read(fds[0], buf, XLEN) > 0)
			;

		/* The kernel reads device-resident memory. */
		CHECK_OK(usvm_pagemap_populate_mm(pm, p, p + LEN, mm, 0));
		CHECK(resident(mm, p, LEN, pm) == (long)LEN, "mode %s: not populated (premise)",
		      mode);
		n = write(fds[1], p + off, XLEN);
		e = n < 0 ? errno : 0;
		if (kernel_ok)
			SOFT_CHECK(n == (ssize_t)XLEN, "mode %s: write(2) of device-resident "
				   "memory at offset %zu to a pipe: %zd (%s), expected %lu", mode,
				   off, n, e ? strerror(e) : "short", XLEN);
		else
			SOFT_CHECK(e == EFAULT, "mode %s: write(2) of device-resident memory at "
				   "offset %zu to a pipe: %zd (%s), expected EFAULT (kernel "
				   "accesses are not served in user-mode-only mode)", mode, off, n,
				   e ? strerror(e) : "success");
		if (n > 0) {
			memset(buf, 0xa5, XLEN);
			CHECK(read(fds[0], buf, (size_t)n) == n, "pipe read: %s", strerror(errno));
			for (bad = 0; bad < (size_t)n && buf[bad] == want[off + bad]; bad++)
				;
			SOFT_CHECK(bad == (size_t)n, "mode %s: write(2) of device-resident memory "
				   "at offset %zu: byte %zu is 0x%02x, expected 0x%02x", mode, off,
				   off + bad, buf[bad], want[off + bad]);
		}
	}
	/* Every byte, by the CPU. */
	for (bad = 0; bad < LEN && p[bad] == want[bad]; bad++)
		;
	SOFT_CHECK(bad == LEN, "mode %s: after the kernel accesses, CPU reads byte %zu as 0x%02x, "
		   "expected 0x%02x", mode, bad, p[bad], want[bad]);
	close(fds[0]);
	close(fds[1]);
	CHECK_OK(usvm_free(mm, p));
	free(want);
	free(buf);
}

static void one_mode(const char *mode, int kernel_ok, uint64_t seed)
{
	struct usvm_mm *mm = NULL;
	struct usvm_pagemap *pm;
	char why[160] = "";
	int err;

	if (mode_available(mode, why, sizeof(why))) {
		printf("mode %s: skip: %s\n", mode, why);
		return;
	}
	printf("mode %s: kernel accesses must %s\n", mode, kernel_ok ? "work" : "fail (EFAULT)");
	CHECK(setenv("USVM_UFFD_MODE", mode, 1) == 0, "setenv");
	err = usvm_mm_create(NULL, &mm);
	SOFT_CHECK(err == 0, "mode %s: usvm_mm_create: %d (%s)", mode, err, usvm_strerror(err));
	if (!err) {
		pm = test_sim_create("sim0", 8 * MiB);
		kernel_access(mm, pm, mode, kernel_ok, seed);
		usvm_mm_destroy(mm);
		usvm_pagemap_destroy(pm);
	}
	CHECK(unsetenv("USVM_UFFD_MODE") == 0, "unsetenv");
}

/* The unprivileged child: no USVM_UFFD_MODE, whatever the library can do. */
static void __attribute__((noreturn)) unprivileged(int sysctl)
{
	struct usvm_caps caps;
	struct usvm_mm *mm = NULL;
	struct usvm_pagemap *pm = NULL;
	int err, dev_ok;

	who = "unprivileged child";
	nfail = 0; /* the parent's count came along with fork() */
	CHECK(setgroups(0, NULL) == 0, "setgroups: %s", strerror(errno));
	CHECK(setgid(65534) == 0, "setgid: %s", strerror(errno));
	CHECK(setuid(65534) == 0, "setuid: %s", strerror(errno));
	CHECK(geteuid() == 65534, "still root");
	unsetenv("USVM_UFFD_MODE");
	dev_ok = access("/dev/userfaultfd", R_OK | W_OK) == 0;
	err = usvm_probe(&caps);
	printf("unprivileged (vm.unprivileged_userfaultfd = %d, /dev/userfaultfd %s): "
	       "usvm_probe %d (%s), uffd_available %d, uffd_user_mode_only %d\n", sysctl,
	       dev_ok ? "usable" : "not usable", err, usvm_strerror(err), caps.uffd_available,
	       caps.uffd_user_mode_only);
	SOFT_CHECK(err == 0 && caps.uffd_available, "usvm_probe: %d (%s), uffd_available %d, "
		   "uffd_errno %d", err, usvm_strerror(err), caps.uffd_available, caps.uffd_errno);
	if (sysctl == 0 && !dev_ok)
		SOFT_CHECK(caps.uffd_user_mode_only == 1, "only user mode is possible, but "
			   "caps.uffd_user_mode_only is %d", caps.uffd_user_mode_only);
	if (sysctl == 1)
		SOFT_CHECK(caps.uffd_user_mode_only == 0, "vm.unprivileged_userfaultfd = 1 allows "
			   "full handling, but caps.uffd_user_mode_only is 1");
	err = usvm_mm_create(NULL, &mm);
	SOFT_CHECK(err == 0, "usvm_mm_create as an unprivileged user: %d (%s)", err,
		   usvm_strerror(err));
	if (!err) {
		err = usvm_sim_pagemap_create("sim0", 8 * MiB, &pm);
		SOFT_CHECK(err == 0, "usvm_sim_pagemap_create as an unprivileged user: %d (%s)",
			   err, usvm_strerror(err));
		if (!err) {
			kernel_access(mm, pm, caps.uffd_user_mode_only ? "unprivileged, user-only"
				      : "unprivileged, full", !caps.uffd_user_mode_only, 77);
			usvm_pagemap_destroy(pm);
		}
		usvm_mm_destroy(mm);
	}
	fflush(stdout);
	/* _exit: no LeakSanitizer pass in a process that is not dumpable any more. */
	_exit(nfail ? 1 : 0);
}

static int read_sysctl(void)
{
	FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "r");
	int v = -1;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

int main(void)
{
	int sysctl, status = 0;
	uint64_t t0;
	pid_t pid, w;

	test_init("reg_uffd_modes", 120);
	if (geteuid() != 0)
		test_skip("needs root (to compare modes and to drop privileges)");
	one_mode("auto", 1, 1);
	one_mode("syscall", 1, 2);
	one_mode("dev", 1, 3);
	one_mode("user", 0, 4);

	sysctl = read_sysctl();
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		unprivileged(sysctl);
	t0 = now_ns();
	while ((w = waitpid(pid, &status, WNOHANG)) == 0 && now_ns() - t0 < CHILD_TIMEOUT_NS)
		sleep_ms(10);
	CHECK(w >= 0, "waitpid: %s", strerror(errno));
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		SOFT_CHECK(0, "unprivileged child hung: killed");
	} else if (WIFSIGNALED(status)) {
		SOFT_CHECK(0, "unprivileged child killed by signal %d", WTERMSIG(status));
	} else {
		SOFT_CHECK(WEXITSTATUS(status) == 0, "unprivileged child failed (exit %d, see "
			   "above)", WEXITSTATUS(status));
	}
	CHECK(nfail == 0, "%d checks failed (see above)", nfail);
	printf("ok\n");
	return 0;
}
