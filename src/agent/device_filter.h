// The cgroup v2 device controller: an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE, generated from an allow-list and attached to a
// task's group (the kernel's include/uapi/linux/bpf.h, struct
// bpf_cgroup_dev_ctx, and Documentation/admin-guide/cgroup-v2.rst "Device
// controller"). Cgroup v2 has
// no devices.allow file; this is how runc (libcontainer/cgroups/devices/
// devicefilter.go), systemd (bpf-devices.c) and Slurm (cgroup v2 plugin,
// ebpf.c) enforce device access there, and the program below follows runc's
// layout: load the request into registers once, then one block per rule that
// falls through to the next rule on any mismatch and returns 1 (allow) when
// every field matched; 0 (deny, open() fails with EPERM) after the last one.
//
// The kernel keeps an attached program alive by its attachment, not by the
// loader's file descriptor: AttachDeviceFilter closes its fds before it
// returns and the program stays in force until it is detached or the group is
// removed (tested in device_filter_test.cc). Nothing needs to be kept open by
// the agent, so an agent restart leaves running tasks confined.
//
// Needs CAP_BPF + CAP_NET_ADMIN or CAP_SYS_ADMIN (root), a kernel >= 4.15
// with CONFIG_CGROUP_BPF, and a cgroup v2 directory.
//
// Thread-safety: every function is safe to call from any thread; two calls on
// the same group at once may leave either program attached.
#ifndef ICOS_AGENT_DEVICE_FILTER_H_
#define ICOS_AGENT_DEVICE_FILTER_H_

#include <linux/bpf.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/device_access.h"

namespace icos::agent {

// Pure: the instructions of a program that allows exactly what
// DeviceRulesAllow(rules, ...) allows. REQUIRES: every rule is valid
// (ValidateDeviceRule). An empty list gives a program that denies everything.
std::vector<bpf_insn> DeviceFilterProgram(const std::vector<DeviceRule>& rules);

// Loads the program for `rules` and attaches it to the cgroup v2 directory
// `group_dir` (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI), then detaches the device
// programs that were attached there before, so a reused group has exactly one
// and never none in between.
// Errors: InvalidArgument for an invalid rule; Unavailable when this host
// cannot filter devices here (not a cgroup v2 directory, no CAP_BPF, a kernel
// without cgroup BPF), with the reason; Internal when the kernel's verifier
// rejects the program (a bug here), with its log.
absl::Status AttachDeviceFilter(const std::string& group_dir, const std::vector<DeviceRule>& rules);

// Detaches every device program attached directly to `group_dir`. OK when
// there are none or the directory is gone; Unavailable as above.
absl::Status DetachDeviceFilters(const std::string& group_dir);

// Kernel ids of the device programs attached directly to `group_dir`.
absl::StatusOr<std::vector<uint32_t>> AttachedDeviceFilters(const std::string& group_dir);

}  // namespace icos::agent

#endif  // ICOS_AGENT_DEVICE_FILTER_H_
