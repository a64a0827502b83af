// Helpers for the device tests: scratch directories and files.
#ifndef ICOS_DEVICES_TEST_UTIL_H_
#define ICOS_DEVICES_TEST_UTIL_H_

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace icos::devices::testing {

// A fresh directory <temp>/icos_devices/<test>/<sub>; only <sub> is wiped, so
// one test may hold several.
inline std::filesystem::path ScratchDir(const std::string& sub) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "icos_devices" /
                              (std::string(info->test_suite_name()) + "." + info->name()) / sub;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

}  // namespace icos::devices::testing

#endif  // ICOS_DEVICES_TEST_UTIL_H_
