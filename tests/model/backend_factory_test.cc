// Backend choice for the streaming load (backend_factory.h) without a GPU:
// a model streamed into a DeviceModelImage (here a fake one in host memory
// behind the same interface) whose CUDA backend cannot be made falls back,
// with kind "auto", to the CPU backend over the verified bytes copied back,
// and fails with kind "cuda"; "cpu" never asks for a device image. The CUDA
// backend runs every family (qwen2 and phi3 since issue 15; their GPU tests
// are tests/gpu/dense_families_test.cc): without a GPU a qwen2 or phi3 file
// meets exactly the gpt-oss file's answers.
#include "inference_worker/backend_factory.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "inference_worker/model/model_file.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

// The device image's contract over host memory: the file's bytes, a header
// parsed from them, copies back, and a record of what was asked of it.
class HostImage : public gpu::DeviceModelImage {
 public:
  absl::Status Begin(uint64_t size) override {
    bytes_.assign(size, 0);
    return absl::OkStatus();
  }
  absl::StatusOr<std::span<uint8_t>> Next(uint64_t offset, uint64_t max) override {
    return std::span<uint8_t>(bytes_.data() + offset, max);
  }
  absl::Status Commit(uint64_t, uint64_t) override { return absl::OkStatus(); }
  absl::Status Finish() override { return absl::OkStatus(); }
  absl::StatusOr<gguf::GgufFile> ParseHeader() override {
    return gguf::GgufFile::ParseHeader(std::span<const uint8_t>(bytes_).first(64), bytes_.size(), bytes_.data());
  }
  uint64_t size() const override { return bytes_.size(); }
  absl::Status CopyToHost(uint64_t offset, uint64_t n, uint8_t* out) const override {
    ++copies;
    std::copy(bytes_.begin() + offset, bytes_.begin() + offset + n, out);
    return absl::OkStatus();
  }
  void Consumed(const gguf::TensorInfo&, uint64_t) override {}
  bool ReleasesProgressively() const override { return false; }
  uint64_t ResidentBytes() const override { return bytes_.size(); }
  void ReleaseDeviceMemory() override { bytes_.clear(); }

  mutable int copies = 0;

 private:
  std::vector<uint8_t> bytes_;
};

// These tests are about machines without a GPU (CI): where one is visible
// the fake image would be handed to the real CUDA backend.
bool GpuVisible() {
  BackendChoice choice;
  std::string note;
  return DeviceImageFor(choice, &note) != nullptr;
}

TEST(BackendFactoryTest, AutoFallsBackToTheCpuOverTheVerifiedBytesCopiedBack) {
  if (GpuVisible()) GTEST_SKIP() << "a GPU is visible; the GPU tests cover this machine";
  const std::string path = WriteTestModel("factory", [](tools::RandomModelSpec& s) { s.config.n_layers = 2; });
  HostImage image;
  auto digest = model::StreamModelFile(path, uint64_t{1} << 40, image);
  ASSERT_TRUE(digest.ok()) << digest.status();
  auto loaded = LoadModel(path);
  std::remove(path.c_str());
  ASSERT_NE(loaded, nullptr);
  // A 64-byte prefix is too short for the header: ParseHeader says so.
  auto short_header = image.ParseHeader();
  ASSERT_FALSE(short_header.ok());
  EXPECT_EQ(short_header.status().code(), absl::StatusCode::kOutOfRange);
  auto file = gguf::GgufFile::ParseHeader(loaded->bytes, loaded->bytes.size(), loaded->bytes.data());
  ASSERT_TRUE(file.ok()) << file.status();

  BackendChoice choice;
  choice.kind = "auto";
  choice.max_sequences = 2;
  choice.max_context = 128;
  model::ModelBytes host_bytes;
  std::optional<gguf::GgufFile> host_file;
  // No GPU here: the CUDA backend cannot be made (no device, or a build
  // without CUDA), so "auto" copies the bytes back for the CPU backend.
  auto created = CreateBackendFromImage(image, *file, choice, *digest, &host_bytes, &host_file);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->kind, "cpu");
  EXPECT_TRUE(absl::StrContains(created->note, "CUDA backend unavailable")) << created->note;
  EXPECT_EQ(image.copies, 1);
  EXPECT_EQ(host_bytes.sha256(), digest->sha256);
  ASSERT_EQ(host_bytes.size(), loaded->bytes.size());
  EXPECT_TRUE(std::equal(loaded->bytes.begin(), loaded->bytes.end(), host_bytes.bytes().begin()));
  ASSERT_TRUE(host_file.has_value());
  // The CPU backend reads the host copy, not the image.
  const uint8_t* embd = host_file->FindTensor("token_embd.weight")->data;
  EXPECT_GE(embd, host_bytes.bytes().data());
  EXPECT_LT(embd, host_bytes.bytes().data() + host_bytes.size());
  ASSERT_TRUE(created->backend->kv().AddSequence(1).ok());
  std::vector<int32_t> prompt = {1, 2, 3};
  std::vector<float> logits;
  model::SequenceStep step{1, prompt, model::Logits::kLast};
  EXPECT_TRUE(created->backend->Forward({&step, 1}, &logits).ok());

  choice.kind = "cuda";
  auto refused = CreateBackendFromImage(image, *file, choice, *digest, &host_bytes, &host_file);
  EXPECT_FALSE(refused.ok());
  choice.kind = "tpu";
  EXPECT_EQ(CreateBackendFromImage(image, *file, choice, *digest, &host_bytes, &host_file).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BackendFactoryTest, TheCpuBackendNeverAsksForADeviceImage) {
  BackendChoice choice;
  choice.kind = "cpu";
  std::string note;
  EXPECT_EQ(DeviceImageFor(choice, &note), nullptr);
  EXPECT_TRUE(note.empty());
  // Without a GPU, "auto" reads into host memory and says why.
  if (GpuVisible()) GTEST_SKIP() << "a GPU is visible";
  choice.kind = "auto";
  EXPECT_EQ(DeviceImageFor(choice, &note), nullptr);
  EXPECT_TRUE(absl::StrContains(note, "host memory")) << note;
}

// The dense families take the gpt-oss path: "cuda" answers with the CUDA
// backend's own error (here: no device, or no CUDA in the build), not a
// refusal of the family, and "auto" runs them on the CPU with that note.
TEST(BackendFactoryTest, Qwen2AndPhi3MeetTheCudaBackendLikeGptOss) {
  const std::string gpt_oss_path = WritePresetModel("factory_gpt_oss", "tiny", [](tools::RandomModelSpec&) {});
  auto gpt_oss = LoadModel(gpt_oss_path);
  ASSERT_NE(gpt_oss, nullptr);
  BackendChoice cuda_choice;
  cuda_choice.max_sequences = 1;
  cuda_choice.max_context = 64;
  cuda_choice.kind = "cuda";
  auto gpt_oss_cuda = CreateBackend(*gpt_oss->file, cuda_choice);
  if (gpt_oss_cuda.ok()) GTEST_SKIP() << "a GPU is visible: tests/gpu/dense_families_test.cc covers this machine";
  for (const std::string family : {"qwen2", "phi3"}) {
    SCOPED_TRACE(family);
    const std::string path = WritePresetModel("factory_" + family, family + "-tiny", [](tools::RandomModelSpec&) {});
    auto loaded = LoadModel(path);
    ASSERT_NE(loaded, nullptr);

    BackendChoice choice = cuda_choice;
    auto refused = CreateBackend(*loaded->file, choice);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status(), gpt_oss_cuda.status());
    EXPECT_FALSE(absl::StrContains(refused.status().message(), "does not run")) << refused.status();
    choice.kind = "auto";
    auto created = CreateBackend(*loaded->file, choice);
    ASSERT_TRUE(created.ok()) << created.status();
    EXPECT_EQ(created->kind, "cpu");
    EXPECT_EQ(model::FamilyName(created->backend->config().family), family);
    EXPECT_EQ(created->note, absl::StrCat("CUDA backend unavailable (", gpt_oss_cuda.status().message(),
                                          "); using the CPU backend"));

    // The streaming load: the same answers from a device image, whose bytes
    // come back to the host for "auto" and stay put for "cuda".
    HostImage image;
    auto digest = model::StreamModelFile(path, uint64_t{1} << 40, image);
    ASSERT_TRUE(digest.ok()) << digest.status();
    auto header = gguf::GgufFile::ParseHeader(loaded->bytes, loaded->bytes.size(), loaded->bytes.data());
    ASSERT_TRUE(header.ok()) << header.status();
    model::ModelBytes host_bytes;
    std::optional<gguf::GgufFile> host_file;
    choice.kind = "cuda";
    auto refused_image = CreateBackendFromImage(image, *header, choice, *digest, &host_bytes, &host_file);
    ASSERT_FALSE(refused_image.ok());
    EXPECT_FALSE(absl::StrContains(refused_image.status().message(), "does not run")) << refused_image.status();
    EXPECT_EQ(image.copies, 0);
    choice.kind = "auto";
    auto from_image = CreateBackendFromImage(image, *header, choice, *digest, &host_bytes, &host_file);
    ASSERT_TRUE(from_image.ok()) << from_image.status();
    EXPECT_EQ(from_image->kind, "cpu");
    EXPECT_EQ(image.copies, 1);
    EXPECT_EQ(from_image->note,
              absl::StrCat("CUDA backend unavailable (", refused_image.status().message(), "); using the CPU backend"));
    ASSERT_TRUE(from_image->backend->kv().AddSequence(1).ok());
    std::vector<int32_t> prompt = {1, 2, 3};
    std::vector<float> logits;
    model::SequenceStep step{1, prompt, model::Logits::kLast};
    EXPECT_TRUE(from_image->backend->Forward({&step, 1}, &logits).ok());
    std::remove(path.c_str());
  }
  std::remove(gpt_oss_path.c_str());
}

}  // namespace
}  // namespace ossgate::testing
