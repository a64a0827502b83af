#include "agent/log_tail.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace icos::agent {
namespace {

class LogTailTest : public ::testing::Test {
 protected:
  void TearDown() override { std::filesystem::remove(path_); }
  std::string Write(const std::string& text) {
    std::ofstream(path_, std::ios::binary) << text;
    return path_;
  }
  std::string path_ = (std::filesystem::temp_directory_path() / absl::StrCat("icos-log-tail-", getpid())).string();
};

TEST_F(LogTailTest, LastNonBlankLinesJoined) {
  EXPECT_EQ(LogTail(Write("starting\nepoch 1\n\nTraceback (most recent call last):\n  File \"train.py\"\n"
                          "ValueError: bad lr\n\n")),
            "Traceback (most recent call last): | File \"train.py\" | ValueError: bad lr");
  EXPECT_EQ(LogTail(Write("one line, no newline")), "one line, no newline");
}

TEST_F(LogTailTest, MissingOrBlankGivesNothing) {
  EXPECT_EQ(LogTail(path_ + ".missing"), "");
  EXPECT_EQ(LogTail(Write("")), "");
  EXPECT_EQ(LogTail(Write("\n \n\t\n")), "");
}

TEST_F(LogTailTest, ControlCharactersAndLengthAreBounded) {
  EXPECT_EQ(LogTail(Write("\x1b[31mred\x1b[0m\n")), "?[31mred?[0m");
  // A long last line keeps its end, cut before a whole UTF-8 character.
  const std::string tail = LogTail(Write(std::string(1000, 'a') + "\xc3\xa9" + "end\n"), 3, 4);
  EXPECT_EQ(tail, "...end");
  EXPECT_EQ(LogTail(Write(std::string(1000, 'a') + "\xc3\xa9" + "end\n"), 3, 5),
            "...\xc3\xa9"
            "end");
  // Only the last 8 KiB are read: a 100 KiB line still gives a bounded answer.
  EXPECT_EQ(LogTail(Write(std::string(100'000, 'x') + "\nlast\n")), "last");
  EXPECT_EQ(LogTail(Write(std::string(100'000, 'x')), 3, 10), "...xxxxxxxxxx");
}

}  // namespace
}  // namespace icos::agent
