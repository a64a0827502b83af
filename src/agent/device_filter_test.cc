#include "agent/device_filter.h"

#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/containment_test_util.h"
#include "agent/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::agent {
namespace {

using ::icos::agent::testing::OpenErrno;
using ::icos::agent::testing::RealCgroup2Mount;
using ::icos::agent::testing::RunInGroup;
using ::icos::agent::testing::TempDir;
using ::testing::IsEmpty;
using ::testing::SizeIs;

DeviceRule C(int64_t major, int64_t minor, uint8_t access = kDeviceReadWrite) {
  return {.type = DeviceType::kChar, .major = major, .minor = minor, .access = access};
}

// ---------------------------------------------------------------------------
// The program, run by a small interpreter of the instructions it may use, so
// its semantics are tested without root or a kernel.
// ---------------------------------------------------------------------------

// What the kernel passes: struct bpf_cgroup_dev_ctx.
struct DevCtx {
  uint32_t access_type;  // (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*
  uint32_t major;
  uint32_t minor;
};

// The program's return value, or nullopt (with a test failure) for an
// instruction outside the subset DeviceFilterProgram may emit, a jump out of
// the program, or a register read before it was written.
std::optional<uint64_t> Interpret(const std::vector<bpf_insn>& prog, const DevCtx& ctx) {
  uint64_t reg[11] = {};
  bool written[11] = {};
  written[1] = true;  // r1 = ctx
  auto read = [&](int r) -> std::optional<uint64_t> {
    if (!written[r]) {
      ADD_FAILURE() << "r" << r << " read before written";
      return std::nullopt;
    }
    return reg[r];
  };
  auto ctx_word = [&](int16_t off) -> uint32_t {
    uint32_t v = 0;
    std::memcpy(&v, reinterpret_cast<const char*>(&ctx) + off, sizeof(v));
    return v;
  };
  for (size_t pc = 0, steps = 0; pc < prog.size() && steps < 100'000; ++pc, ++steps) {
    const bpf_insn& in = prog[pc];
    const int dst = in.dst_reg, src = in.src_reg;
    switch (in.code) {
      case BPF_LDX | BPF_MEM | BPF_W:
        if (src != 1 || in.off < 0 || in.off > 8 || in.off % 4 != 0) {
          ADD_FAILURE() << "bad context load at " << pc;
          return std::nullopt;
        }
        reg[dst] = ctx_word(in.off);
        break;
      case BPF_ALU | BPF_AND | BPF_K: {
        auto v = read(dst);
        if (!v) return std::nullopt;
        reg[dst] = static_cast<uint32_t>(*v & static_cast<uint32_t>(in.imm));
        break;
      }
      case BPF_ALU | BPF_RSH | BPF_K: {
        auto v = read(dst);
        if (!v) return std::nullopt;
        reg[dst] = static_cast<uint32_t>(*v) >> in.imm;
        break;
      }
      case BPF_ALU | BPF_MOV | BPF_X: {
        auto v = read(src);
        if (!v) return std::nullopt;
        reg[dst] = static_cast<uint32_t>(*v);
        break;
      }
      case BPF_ALU64 | BPF_MOV | BPF_K:
        reg[dst] = static_cast<uint64_t>(static_cast<int64_t>(in.imm));
        break;
      case BPF_JMP | BPF_JNE | BPF_K:
      case BPF_JMP | BPF_JNE | BPF_X: {
        auto a = read(dst);
        std::optional<uint64_t> b = static_cast<uint64_t>(static_cast<int64_t>(in.imm));
        if (BPF_SRC(in.code) == BPF_X) b = read(src);
        if (!a || !b) return std::nullopt;
        if (*a != *b) {
          if (in.off < 0 || pc + 1 + in.off > prog.size() - 1) {
            ADD_FAILURE() << "jump out of the program at " << pc;
            return std::nullopt;
          }
          pc += in.off;
        }
        break;
      }
      case BPF_JMP | BPF_EXIT:
        return read(0);
      default:
        ADD_FAILURE() << "unexpected opcode 0x" << std::hex << int{in.code} << " at " << std::dec << pc;
        return std::nullopt;
    }
    if (BPF_CLASS(in.code) != BPF_JMP) written[dst] = true;
  }
  ADD_FAILURE() << "fell off the end of the program";
  return std::nullopt;
}

uint32_t AccessType(DeviceType type, uint8_t access) {
  uint32_t acc = 0;
  if (access & kDeviceMknod) acc |= BPF_DEVCG_ACC_MKNOD;
  if (access & kDeviceRead) acc |= BPF_DEVCG_ACC_READ;
  if (access & kDeviceWrite) acc |= BPF_DEVCG_ACC_WRITE;
  return (acc << 16) | (type == DeviceType::kBlock ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
}

bool Allows(const std::vector<DeviceRule>& rules, DeviceType type, uint32_t major, uint32_t minor, uint8_t access) {
  std::optional<uint64_t> r = Interpret(DeviceFilterProgram(rules), {AccessType(type, access), major, minor});
  EXPECT_TRUE(r.has_value());
  EXPECT_TRUE(!r || *r == 0 || *r == 1);
  return r.value_or(0) == 1;
}

TEST(DeviceFilterProgramTest, EmptyListDeniesEverything) {
  EXPECT_FALSE(Allows({}, DeviceType::kChar, 1, 3, kDeviceRead));
  EXPECT_THAT(DeviceFilterProgram({}), SizeIs(8));  // 6 loads + return 0 + exit
}

TEST(DeviceFilterProgramTest, AllowsNullButNotFull) {
  const std::vector<DeviceRule> rules = {C(1, 3)};
  EXPECT_TRUE(Allows(rules, DeviceType::kChar, 1, 3, kDeviceReadWrite));
  EXPECT_FALSE(Allows(rules, DeviceType::kChar, 1, 7, kDeviceRead));
  EXPECT_FALSE(Allows(rules, DeviceType::kBlock, 1, 3, kDeviceRead));
  EXPECT_FALSE(Allows(rules, DeviceType::kChar, 1, 3, kDeviceMknod));  // "rw" only
}

TEST(DeviceFilterProgramTest, WildcardsMatchAnyNumber) {
  const std::vector<DeviceRule> rules = {C(136, kAnyDeviceNumber, kDeviceAllAccess),
                                         {.type = DeviceType::kBlock, .access = kDeviceMknod}};
  EXPECT_TRUE(Allows(rules, DeviceType::kChar, 136, 12345, kDeviceAllAccess));
  EXPECT_FALSE(Allows(rules, DeviceType::kChar, 137, 0, kDeviceRead));
  EXPECT_TRUE(Allows(rules, DeviceType::kBlock, 8, 0, kDeviceMknod));
  EXPECT_FALSE(Allows(rules, DeviceType::kBlock, 8, 0, kDeviceRead));
}

TEST(DeviceFilterProgramTest, LargestNumbersCompareExactly) {
  // 20-bit minors and 12-bit majors fit the signed 32-bit immediate.
  const std::vector<DeviceRule> rules = {C(kMaxDeviceMajor, kMaxDeviceMinor)};
  EXPECT_TRUE(Allows(rules, DeviceType::kChar, kMaxDeviceMajor, kMaxDeviceMinor, kDeviceRead));
  EXPECT_FALSE(Allows(rules, DeviceType::kChar, kMaxDeviceMajor, kMaxDeviceMinor - 1, kDeviceRead));
}

TEST(DeviceFilterProgramTest, MatchesTheReferenceOnRandomRulesAndRequests) {
  // Numbers drawn from a small set so rules and requests collide often.
  const int64_t majors[] = {1, 5, 136, 195, 226, kAnyDeviceNumber};
  const int64_t minors[] = {0, 1, 3, 7, 255, kAnyDeviceNumber};
  std::mt19937 rng(20261127);
  auto pick = [&](const auto& values) { return values[rng() % std::size(values)]; };
  auto type = [&] { return rng() % 4 == 0 ? DeviceType::kBlock : DeviceType::kChar; };
  auto access = [&] { return static_cast<uint8_t>(1 + rng() % 7); };
  int allowed = 0, checked = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<DeviceRule> rules(rng() % 9);
    for (DeviceRule& r : rules) r = {.type = type(), .major = pick(majors), .minor = pick(minors), .access = access()};
    const std::vector<bpf_insn> prog = DeviceFilterProgram(rules);
    for (int q = 0; q < 100; ++q) {
      const DeviceType t = type();
      int64_t major = pick(majors), minor = pick(minors);
      if (major == kAnyDeviceNumber) major = 999;  // requests name real numbers
      if (minor == kAnyDeviceNumber) minor = 4242;
      const uint8_t a = access();
      const bool expected = DeviceRulesAllow(rules, t, major, minor, a);
      std::optional<uint64_t> got =
          Interpret(prog, {AccessType(t, a), static_cast<uint32_t>(major), static_cast<uint32_t>(minor)});
      ASSERT_TRUE(got.has_value());
      ASSERT_EQ(*got == 1, expected) << "trial " << trial << " query " << q;
      allowed += expected;
      ++checked;
    }
  }
  // Both outcomes were exercised (30,000 requests).
  EXPECT_GT(allowed, 1000);
  EXPECT_LT(allowed, checked - 1000);
}

// ---------------------------------------------------------------------------
// The kernel: load, attach, persistence after the fds are closed, replace,
// detach. Needs root and a cgroup2 mount (this machine: the empty v2 tree at
// /sys/fs/cgroup/unified; production: /sys/fs/cgroup).
// ---------------------------------------------------------------------------

bool ProgramExists(uint32_t id) {
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.prog_id = id;
  long fd = syscall(__NR_bpf, BPF_PROG_GET_FD_BY_ID, &attr, sizeof(attr));
  if (fd < 0) return false;
  close(static_cast<int>(fd));
  return true;
}

class DeviceFilterKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "loading BPF programs and making device nodes need root";
    const std::string mount = RealCgroup2Mount();
    if (mount.empty()) GTEST_SKIP() << "no cgroup2 filesystem is mounted on this host";
    group_ = absl::StrCat(mount, "/icos-test-", getpid(), "-bpf");
    ASSERT_EQ(mkdir(group_.c_str(), 0755), 0) << group_ << ": " << std::strerror(errno);
    null_ = tmp_.Sub("null");
    full_ = tmp_.Sub("full");
    ASSERT_EQ(mknod(null_.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    ASSERT_EQ(mknod(full_.c_str(), S_IFCHR | 0666, makedev(1, 7)), 0);
  }
  void TearDown() override {
    if (group_.empty()) return;
    // Children have exited (RunInGroup waits), so the group is empty.
    DetachDeviceFilters(group_).IgnoreError();
    rmdir(group_.c_str());
  }
  // The errno of opening `path` from a process in the group (0: opened).
  int OpenInGroup(const std::string& path) {
    return RunInGroup({group_ + "/cgroup.procs"}, [&] { return OpenErrno(path, O_RDWR); });
  }

  TempDir tmp_;
  std::string group_, null_, full_;
};

TEST_F(DeviceFilterKernelTest, AttachedProgramIsEnforcedAfterItsFdsAreClosed) {
  ASSERT_EQ(OpenInGroup(full_), 0);  // nothing attached yet
  absl::Status s = AttachDeviceFilter(group_, {C(1, 3)});
  ASSERT_TRUE(s.ok()) << s;
  // AttachDeviceFilter has closed every fd it opened: the attachment alone
  // keeps the program alive and in force.
  absl::StatusOr<std::vector<uint32_t>> ids = AttachedDeviceFilters(group_);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, SizeIs(1));
  EXPECT_EQ(OpenInGroup(null_), 0);
  EXPECT_EQ(OpenInGroup(full_), EPERM);
}

TEST_F(DeviceFilterKernelTest, ReattachingReplacesTheProgram) {
  ASSERT_TRUE(AttachDeviceFilter(group_, {C(1, 3)}).ok());
  absl::StatusOr<std::vector<uint32_t>> first = AttachedDeviceFilters(group_);
  ASSERT_TRUE(first.ok() && first->size() == 1);
  ASSERT_TRUE(AttachDeviceFilter(group_, {C(1, 7)}).ok());
  absl::StatusOr<std::vector<uint32_t>> second = AttachedDeviceFilters(group_);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_THAT(*second, SizeIs(1));
  EXPECT_NE((*second)[0], (*first)[0]);
  EXPECT_FALSE(ProgramExists((*first)[0]));  // freed, not leaked
  EXPECT_EQ(OpenInGroup(null_), EPERM);
  EXPECT_EQ(OpenInGroup(full_), 0);
}

TEST_F(DeviceFilterKernelTest, DetachRemovesEveryProgram) {
  ASSERT_TRUE(AttachDeviceFilter(group_, {C(1, 3)}).ok());
  absl::StatusOr<std::vector<uint32_t>> ids = AttachedDeviceFilters(group_);
  ASSERT_TRUE(ids.ok() && ids->size() == 1);
  ASSERT_TRUE(DetachDeviceFilters(group_).ok());
  absl::StatusOr<std::vector<uint32_t>> after = AttachedDeviceFilters(group_);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_THAT(*after, IsEmpty());
  EXPECT_FALSE(ProgramExists((*ids)[0]));
  EXPECT_EQ(OpenInGroup(full_), 0);
}

TEST_F(DeviceFilterKernelTest, DefaultsLetATaskUseTheUsualNodes) {
  ASSERT_TRUE(AttachDeviceFilter(group_, DefaultDeviceRules()).ok());
  EXPECT_EQ(OpenInGroup("/dev/null"), 0);
  EXPECT_EQ(OpenInGroup("/dev/urandom"), 0);
  EXPECT_EQ(OpenInGroup(full_), 0);  // /dev/full is in the defaults too
}

TEST(DeviceFilterUnavailableTest, PlainDirectoryIsNotACgroup) {
  TempDir tmp;
  absl::Status s = AttachDeviceFilter(tmp.path(), {C(1, 3)});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST(DeviceFilterUnavailableTest, InvalidRuleIsRejectedFirst) {
  TempDir tmp;
  EXPECT_EQ(AttachDeviceFilter(tmp.path(), {C(1, 3, 0)}).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace icos::agent
