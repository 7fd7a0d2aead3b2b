// SPDX-License-Identifier: MIT
/* usvm CLI: `usvm info` - what this machine offers, and what is missing. */
#include <errno.h>
#include <string.h>
#include "cli.h"

static const char info_help[] =
"Usage: usvm info [--json]\n"
"\n"
"Probe this machine (usvm_probe) and explain what usvm can do here: the\n"
"kernel, whether userfaultfd may be used and in which mode (and how to get\n"
"a better one), the userfaultfd features usvm relies on, the transparent\n"
"hugepage mode, which device backends are usable, and every option\n"
"(environment variable) with its value and where that value came from.\n"
"For every missing piece it says what that disables.\n"
"\n"
"Options:\n"
"  --json       one JSON object on stdout\n"
"  -h, --help   this help\n"
"\n"
"Exit status: 0 when usvm can run here, 1 when it cannot, 2 usage.\n";

struct feat {
	const char *name;
	int have;
	const char *use;       /* what usvm uses it for */
	const char *without;   /* what is lost without it */
};

static const char *thp_name(int m)
{
	switch (m) {
	case 0: return "never";
	case 1: return "madvise";
	case 2: return "always";
	default: return "unknown";
	}
}

static void fill_feats(const struct usvm_caps *c, struct feat *f)
{
	f[0] = (struct feat){ "UFFDIO_MOVE", c->feat_move,
		"migration: pages move between system and device memory",
		"nothing works: usvm needs UFFDIO_MOVE (Linux 6.8+)" };
	f[1] = (struct feat){ "EVENT_REMOVE", c->feat_event_remove,
		"madvise(MADV_DONTNEED) on registered ranges drops device copies",
		"usvm_register()ed ranges: MADV_DONTNEED/REMOVE is not seen, stale device copies stay" };
	f[2] = (struct feat){ "EVENT_UNMAP", c->feat_event_unmap,
		"munmap of registered ranges is noticed",
		"usvm_register()ed ranges: munmap is not seen; unregister before unmapping" };
	f[3] = (struct feat){ "EVENT_REMAP", c->feat_event_remap,
		"mremap of registered ranges is followed",
		"usvm_register()ed ranges: mremap is not followed; do not mremap them" };
	f[4] = (struct feat){ "SIGBUS", c->feat_sigbus,
		"guard of the simulated device pool (stray access = crash, not hang)",
		"the simulated device backend cannot be created" };
	f[5] = (struct feat){ "WP", c->feat_wp,
		"write-protect faults (not used by usvm yet)",
		"nothing today" };
}

static const char *mode_word(int mode)
{
	switch (mode) {
	case USVM_UFFD_SYSCALL: return "full (userfaultfd(2))";
	case USVM_UFFD_DEV: return "full (/dev/userfaultfd)";
	case USVM_UFFD_USER_ONLY: return "user-mode-only";
	default: return "unavailable";
	}
}

static void print_options(void)
{
	struct usvm_option o;
	unsigned int i;

	printf("\noptions (environment variables)\n");
	for (i = 0; usvm_option_info(i, &o) == 0; i++) {
		printf("  %-24s = %-10s (%s)\n", o.env, o.value[0] ? o.value : "\"\"", o.source);
		printf("  %-24s   %s\n", "", o.doc);
	}
}

/* How this process could get full fault handling, when it has less. */
static void print_mode_advice(const struct usvm_caps *c)
{
	if (!c->uffd_available || c->uffd_mode != USVM_UFFD_USER_ONLY)
		return;
	printf("  -> kernel-mode faults are not caught: system calls such as read(2)\n"
	       "     into managed pages that are in device memory (or never touched)\n"
	       "     fail with EFAULT instead of migrating; CPU loads and stores work.\n"
	       "     For full handling: %s, or run as root, or\n"
	       "     'sudo sysctl vm.unprivileged_userfaultfd=1'.\n",
	       c->dev_userfaultfd < 0 ? "a kernel with /dev/userfaultfd (6.1+)" :
	       "give this user read+write access to /dev/userfaultfd (e.g. a udev rule\n"
	       "     with GROUP=\"userfaultfd\", MODE=\"0660\")");
}

static void info_json(const struct usvm_caps *c, int rc, const struct feat *f, int sim_ok)
{
	struct usvm_option o;
	struct json j;
	int i;

	json_init(&j, stdout, 1);
	json_obj_begin(&j, NULL);
	json_str(&j, "usvm_version", USVM_VERSION_STRING);
	json_str(&j, "kernel", c->kernel);
	json_bool(&j, "usable", rc == 0);
	json_i64(&j, "probe_error", rc);
	json_str(&j, "probe_message", rc ? usvm_strerror(rc) : "");
	json_obj_begin(&j, "userfaultfd");
	json_bool(&j, "available", c->uffd_available);
	json_i64(&j, "errno", c->uffd_errno);
	json_str(&j, "mode", !c->uffd_available ? "unavailable" : mode_word(c->uffd_mode));
	json_str(&j, "mode_description", usvm_uffd_mode_name(c->uffd_mode));
	json_bool(&j, "user_mode_only", c->uffd_user_mode_only);
	json_i64(&j, "unprivileged_sysctl", c->unprivileged_sysctl);
	json_i64(&j, "dev_userfaultfd", c->dev_userfaultfd);
	json_bool(&j, "is_root", c->is_root);
	json_obj_end(&j);
	json_bool(&j, "procmap_query", c->procmap_query);
	json_obj_begin(&j, "options");
	for (i = 0; usvm_option_info((unsigned)i, &o) == 0; i++) {
		json_obj_begin(&j, o.env);
		json_str(&j, "value", o.value);
		json_str(&j, "default", o.def);
		json_str(&j, "source", o.source);
		json_str(&j, "doc", o.doc);
		json_obj_end(&j);
	}
	json_obj_end(&j);
	json_obj_begin(&j, "features");
	for (i = 0; i < 6; i++)
		json_bool(&j, f[i].name, f[i].have);
	json_obj_end(&j);
	json_str(&j, "thp_mode", thp_name(c->thp_mode));
	json_obj_begin(&j, "backends");
	json_str(&j, "simulated", sim_ok ? "usable" : "unusable");
	json_str(&j, "cuda", "not built");
	json_obj_end(&j);
	json_obj_end(&j);
	json_finish(&j);
}

int cmd_info(int argc, char **argv)
{
	struct usvm_caps c;
	struct feat f[6];
	int json = 0, rc, i, sim_ok;

	for (i = 0; i < argc; i++) {
		if (is_help(argv[i])) {
			fputs(info_help, stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else {
			return usage_error("info", "unknown option '%s' (see 'usvm info --help')",
					   argv[i]);
		}
	}
	rc = usvm_probe(&c);
	fill_feats(&c, f);
	sim_ok = c.uffd_available && c.feat_move && c.feat_sigbus;
	if (json) {
		info_json(&c, rc, f, sim_ok);
		return rc ? EXIT_FAIL : EXIT_OK;
	}

	printf("usvm %s\n\n", USVM_VERSION_STRING);
	printf("kernel                 %s\n", c.kernel[0] ? c.kernel : "unknown");
	if (c.uffd_available) {
		printf("userfaultfd            available, %s\n", usvm_uffd_mode_name(c.uffd_mode));
	} else {
		printf("userfaultfd            NOT available: %s\n",
		       usvm_strerror(-(c.uffd_errno ? c.uffd_errno : ENOSYS)));
	}
	printf("  privileges           %s", c.is_root ? "root" : "unprivileged user");
	if (c.unprivileged_sysctl >= 0)
		printf(", vm.unprivileged_userfaultfd = %d", c.unprivileged_sysctl);
	printf(", /dev/userfaultfd %s\n", c.dev_userfaultfd < 0 ? "absent" :
	       c.dev_userfaultfd ? "usable" : "not accessible");
	print_mode_advice(&c);
	printf("  register check       %s\n", c.procmap_query ?
	       "PROCMAP_QUERY (O(log n) per usvm_register)" :
	       "reads /proc/self/maps (Linux 6.11+ has PROCMAP_QUERY)");
	printf("\nuserfaultfd features\n");
	for (i = 0; i < 6; i++) {
		if (!c.uffd_available)
			printf("  %-20s -\n", f[i].name);
		else if (f[i].have)
			printf("  %-20s yes  %s\n", f[i].name, f[i].use);
		else
			printf("  %-20s NO   disables: %s\n", f[i].name, f[i].without);
	}
	printf("\ntransparent hugepages  %s%s\n", thp_name(c.thp_mode),
	       c.thp_mode < 0 ? "" : " (informational: usvm migrates 4 KiB pages)");
	printf("\ndevice backends\n");
	printf("  %-20s %s\n", "simulated", sim_ok ? "usable (userfaultfd + UFFDIO_MOVE)"
		: "unusable (needs userfaultfd with UFFDIO_MOVE and SIGBUS)");
	printf("  %-20s %s\n", "CUDA", "not built (there is no CUDA backend yet)");
	print_options();
	printf("\n");
	if (rc == 0) {
		printf("usvm can run here: try 'usvm run stream'.\n");
		return EXIT_OK;
	}
	printf("usvm cannot run here: %s\n", usvm_strerror(rc));
	if (rc == -EPERM)
		printf("  fix: run as root, 'sudo sysctl vm.unprivileged_userfaultfd=1', or give\n"
		       "  this user read+write access to /dev/userfaultfd\n");
	return EXIT_FAIL;
}
