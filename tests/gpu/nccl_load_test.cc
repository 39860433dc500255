// The NCCL loader of the tensor-parallel ranks (device_collective.h) without
// a GPU: a library that cannot be opened is named in an Unavailable error
// that says how to provide one.
#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "inference_worker/cuda/device_collective.h"

namespace ossgate::testing {
namespace {

TEST(NcclLoadTest, AMissingLibraryIsNamedWithWhatToDo) {
  ::setenv("OSSGATE_NCCL_LIBRARY", "/nonexistent/libnccl.so.2", 1);
  auto v = gpu::LoadNccl();
  ::unsetenv("OSSGATE_NCCL_LIBRARY");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(v.status().message().find("/nonexistent/libnccl.so.2"), std::string::npos) << v.status();
  EXPECT_NE(v.status().message().find("OSSGATE_NCCL_LIBRARY"), std::string::npos) << v.status();
  EXPECT_NE(v.status().message().find("nvidia-nccl-cu13"), std::string::npos) << v.status();
}

TEST(NcclLoadTest, ALibraryWithoutNcclsFunctionsIsRefused) {
  // libm is on every Linux and has no ncclGetVersion.
  ::setenv("OSSGATE_NCCL_LIBRARY", "libm.so.6", 1);
  auto v = gpu::LoadNccl();
  ::unsetenv("OSSGATE_NCCL_LIBRARY");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(v.status().message().find("lacks a function"), std::string::npos) << v.status();
}

}  // namespace
}  // namespace ossgate::testing
