#include "agent/device_filter.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/sys_util.h"

namespace icos::agent {
namespace {

// From linux/magic.h; spelled out as in cgroups.cc.
constexpr int64_t kCgroup2SuperMagic = 0x63677270;

// Registers of the program (eBPF has r0..r10; r1 holds the context on entry).
constexpr uint8_t kR0 = 0, kR1 = 1, kType = 2, kAccess = 3, kMajor = 4, kMinor = 5;

bpf_insn Insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn insn;
  std::memset(&insn, 0, sizeof(insn));
  insn.code = code;
  insn.dst_reg = dst & 0xf;
  insn.src_reg = src & 0xf;
  insn.off = off;
  insn.imm = imm;
  return insn;
}

// dst = *(u32 *)(r1 + off)
bpf_insn LoadCtxWord(uint8_t dst, int16_t off) { return Insn(BPF_LDX | BPF_MEM | BPF_W, dst, kR1, off, 0); }
// Jumps, offsets patched once the rule's block is complete.
bpf_insn JumpIfNotImm(uint8_t reg, int32_t imm) { return Insn(BPF_JMP | BPF_JNE | BPF_K, reg, 0, 0, imm); }
bpf_insn JumpIfNotReg(uint8_t dst, uint8_t src) { return Insn(BPF_JMP | BPF_JNE | BPF_X, dst, src, 0, 0); }
bpf_insn Return(int32_t value) { return Insn(BPF_ALU64 | BPF_MOV | BPF_K, kR0, 0, 0, value); }
bpf_insn Exit() { return Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

int32_t KernelAccessBits(uint8_t access) {
  int32_t bits = 0;
  if (access & kDeviceMknod) bits |= BPF_DEVCG_ACC_MKNOD;
  if (access & kDeviceRead) bits |= BPF_DEVCG_ACC_READ;
  if (access & kDeviceWrite) bits |= BPF_DEVCG_ACC_WRITE;
  return bits;
}

long Bpf(int cmd, union bpf_attr* attr) { return syscall(__NR_bpf, cmd, attr, sizeof(*attr)); }

uint64_t Ptr(const void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The group's directory, opened for the bpf() target_fd, after checking it is
// on cgroup2 (a fake tree in tests, or a v1 hierarchy, cannot hold programs).
absl::StatusOr<int> OpenCgroup2Dir(const std::string& group_dir) {
  int fd = open(group_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("open ", group_dir));
  struct statfs fs;
  if (fstatfs(fd, &fs) != 0 || static_cast<int64_t>(fs.f_type) != kCgroup2SuperMagic) {
    close(fd);
    return absl::UnavailableError(absl::StrCat(group_dir, " is not a cgroup v2 directory"));
  }
  return fd;
}

absl::Status BpfError(int err, absl::string_view what) {
  if (err == EPERM || err == EACCES) {
    return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(err), " (needs root, or CAP_BPF)"));
  }
  if (err == ENOSYS) return absl::UnavailableError(absl::StrCat(what, ": the kernel has no bpf() system call"));
  return ErrnoError(err, what);
}

absl::StatusOr<std::vector<uint32_t>> QueryIds(int cgroup_fd) {
  std::vector<uint32_t> ids(16);
  while (true) {
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof(attr));
    attr.query.target_fd = static_cast<uint32_t>(cgroup_fd);
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = Ptr(ids.data());
    attr.query.prog_cnt = static_cast<uint32_t>(ids.size());
    if (Bpf(BPF_PROG_QUERY, &attr) == 0) {
      ids.resize(attr.query.prog_cnt);
      return ids;
    }
    // ENOSPC: more programs than room; prog_cnt says how many there are.
    if (errno == ENOSPC && attr.query.prog_cnt > ids.size()) {
      ids.resize(attr.query.prog_cnt);
      continue;
    }
    return BpfError(errno, "BPF_PROG_QUERY");
  }
}

// Detaches program `id` from the group. OK when it is already gone.
absl::Status DetachId(int cgroup_fd, uint32_t id) {
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.prog_id = id;
  Fd prog(static_cast<int>(Bpf(BPF_PROG_GET_FD_BY_ID, &attr)));
  if (prog.get() < 0) return errno == ENOENT ? absl::OkStatus() : BpfError(errno, "BPF_PROG_GET_FD_BY_ID");
  std::memset(&attr, 0, sizeof(attr));
  attr.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.attach_bpf_fd = static_cast<uint32_t>(prog.get());
  attr.attach_type = BPF_CGROUP_DEVICE;
  if (Bpf(BPF_PROG_DETACH, &attr) != 0 && errno != ENOENT) return BpfError(errno, "BPF_PROG_DETACH");
  return absl::OkStatus();
}

absl::StatusOr<int> LoadProgram(const std::vector<bpf_insn>& insns) {
  // The kernel reads the license only to gate GPL-only helpers, which this
  // program does not call.
  static const char kLicense[] = "icos";
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = Ptr(insns.data());
  attr.insn_cnt = static_cast<uint32_t>(insns.size());
  attr.license = Ptr(kLicense);
  int fd = static_cast<int>(Bpf(BPF_PROG_LOAD, &attr));
  if (fd >= 0) return fd;
  const int err = errno;
  if (err == EPERM || err == ENOSYS) return BpfError(err, "loading the device filter");
  // Load again with the verifier's log to say why.
  std::string log(64 * 1024, '\0');
  attr.log_level = 1;
  attr.log_buf = Ptr(log.data());
  attr.log_size = static_cast<uint32_t>(log.size());
  fd = static_cast<int>(Bpf(BPF_PROG_LOAD, &attr));
  if (fd >= 0) return fd;  // passed this time; keep it
  log.resize(strnlen(log.data(), log.size()));
  if (log.empty()) {
    // No verdict from the verifier: the kernel does not know the program type.
    return absl::UnavailableError(
        absl::StrCat("loading the device filter: ", std::strerror(err), " (kernel without CONFIG_CGROUP_BPF?)"));
  }
  return absl::InternalError(absl::StrCat("the kernel's verifier rejected the device filter: ", log));
}

}  // namespace

std::vector<bpf_insn> DeviceFilterProgram(const std::vector<DeviceRule>& rules) {
  // bpf_cgroup_dev_ctx: u32 access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*,
  // u32 major, u32 minor.
  std::vector<bpf_insn> prog = {
      LoadCtxWord(kType, 0),   Insn(BPF_ALU | BPF_AND | BPF_K, kType, 0, 0, 0xffff),
      LoadCtxWord(kAccess, 0), Insn(BPF_ALU | BPF_RSH | BPF_K, kAccess, 0, 0, 16),
      LoadCtxWord(kMajor, 4),  LoadCtxWord(kMinor, 8),
  };
  for (const DeviceRule& rule : rules) {
    std::vector<bpf_insn> block;
    block.push_back(JumpIfNotImm(kType, rule.type == DeviceType::kBlock ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR));
    if ((rule.access & kDeviceAllAccess) != kDeviceAllAccess) {
      // Every requested bit must be granted: (requested & granted) == requested.
      block.push_back(Insn(BPF_ALU | BPF_MOV | BPF_X, kR1, kAccess, 0, 0));
      block.push_back(Insn(BPF_ALU | BPF_AND | BPF_K, kR1, 0, 0, KernelAccessBits(rule.access)));
      block.push_back(JumpIfNotReg(kR1, kAccess));
    }
    // Majors and minors fit in 20 bits (ValidateDeviceRule), so the
    // sign-extended 32-bit immediate equals the zero-extended register.
    if (rule.major != kAnyDeviceNumber) block.push_back(JumpIfNotImm(kMajor, static_cast<int32_t>(rule.major)));
    if (rule.minor != kAnyDeviceNumber) block.push_back(JumpIfNotImm(kMinor, static_cast<int32_t>(rule.minor)));
    block.push_back(Return(1));
    block.push_back(Exit());
    // A mismatch skips to the first instruction after this block.
    for (size_t i = 0; i < block.size(); ++i) {
      if (BPF_CLASS(block[i].code) == BPF_JMP && BPF_OP(block[i].code) == BPF_JNE) {
        block[i].off = static_cast<int16_t>(block.size() - i - 1);
      }
    }
    prog.insert(prog.end(), block.begin(), block.end());
  }
  prog.push_back(Return(0));
  prog.push_back(Exit());
  return prog;
}

absl::Status AttachDeviceFilter(const std::string& group_dir, const std::vector<DeviceRule>& rules) {
  for (const DeviceRule& rule : rules) {
    if (absl::Status s = ValidateDeviceRule(rule); !s.ok()) return s;
  }
  absl::StatusOr<int> cgroup_fd = OpenCgroup2Dir(group_dir);
  if (!cgroup_fd.ok()) return cgroup_fd.status();
  Fd cgroup(*cgroup_fd);
  absl::StatusOr<std::vector<uint32_t>> old_ids = QueryIds(cgroup.get());
  if (!old_ids.ok()) return old_ids.status();

  absl::StatusOr<int> prog_fd = LoadProgram(DeviceFilterProgram(rules));
  if (!prog_fd.ok()) return prog_fd.status();
  Fd prog(*prog_fd);
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.target_fd = static_cast<uint32_t>(cgroup.get());
  attr.attach_bpf_fd = static_cast<uint32_t>(prog.get());
  attr.attach_type = BPF_CGROUP_DEVICE;
  // ALLOW_MULTI as runc and systemd do: programs of the ancestors (systemd's
  // DevicePolicy for the agent's unit) keep running too, and all must allow.
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (Bpf(BPF_PROG_ATTACH, &attr) != 0) {
    const int err = errno;
    if (err == EPERM) {
      // Also what an ancestor's program attached without ALLOW_MULTI answers.
      return absl::UnavailableError(absl::StrCat("attaching the device filter to ", group_dir,
                                                 ": not permitted (no CAP_BPF/CAP_NET_ADMIN, or an ancestor "
                                                 "group's device program does not allow others)"));
    }
    return BpfError(err, absl::StrCat("attaching the device filter to ", group_dir));
  }
  // The new program is in force; now drop the ones it replaces. The attachment
  // holds a reference to the program, so closing `prog` does not detach it.
  for (uint32_t id : *old_ids) {
    if (absl::Status s = DetachId(cgroup.get(), id); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status DetachDeviceFilters(const std::string& group_dir) {
  absl::StatusOr<int> cgroup_fd = OpenCgroup2Dir(group_dir);
  if (!cgroup_fd.ok()) return absl::IsNotFound(cgroup_fd.status()) ? absl::OkStatus() : cgroup_fd.status();
  Fd cgroup(*cgroup_fd);
  absl::StatusOr<std::vector<uint32_t>> ids = QueryIds(cgroup.get());
  if (!ids.ok()) return ids.status();
  for (uint32_t id : *ids) {
    if (absl::Status s = DetachId(cgroup.get(), id); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint32_t>> AttachedDeviceFilters(const std::string& group_dir) {
  absl::StatusOr<int> cgroup_fd = OpenCgroup2Dir(group_dir);
  if (!cgroup_fd.ok()) return cgroup_fd.status();
  Fd cgroup(*cgroup_fd);
  return QueryIds(cgroup.get());
}

}  // namespace icos::agent
