// The streaming verified load of the CUDA backend (issue 14): the file read
// once into device memory (DeviceModelImage), the matrices repacked and
// their scales checked there. The device repack is byte-identical to the
// host repacker on random rows of every format and every row source (plain,
// q/k/v stacked, gate/up interleaved, padding); the device scan finds the
// first non-finite block as the host scan does; and a backend made from the
// device image computes bitwise the logits of one made from host bytes,
// refuses a non-finite scale with the host's message, and releases the
// file's device copy.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/cuda/cuda_backend.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/model_file.h"
#include "inference_worker/model/weights.h"
#include "kernels/ops.h"
#include "kernels/repack.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

using kernels::RepackSource;
using kernels::WFormat;

struct Case {
  const char* name;
  int64_t part_rows[3];
  int n_parts;
  bool gate_up;
  int64_t n_mats;
};

// The ggml encoding of each part of a source: a tile format's own blocks, or
// (Q8_0 tiles) the k-quants, which the repack re-quantizes.
struct Encoding {
  WFormat fmt;
  kernels::RowEncoding part_enc[3];
};

// Bytes of a row of k_blocks blocks (of 32) in encoding `enc` of `fmt`.
int64_t RowBytesOf(WFormat fmt, kernels::RowEncoding enc, int64_t k_blocks) {
  switch (enc) {
    case kernels::RowEncoding::kQ4_K: return k_blocks / 8 * kernels::kQ4_KBlockBytes;
    case kernels::RowEncoding::kQ6_K: return k_blocks / 8 * kernels::kQ6_KBlockBytes;
    case kernels::RowEncoding::kQ5_K: return k_blocks / 8 * kernels::kQ5_KBlockBytes;
    case kernels::RowEncoding::kQ5_0: return k_blocks * kernels::kQ5_0BlockBytes;
    case kernels::RowEncoding::kQ5_1: return k_blocks * kernels::kQ5_1BlockBytes;
    case kernels::RowEncoding::kTileFormat: break;
  }
  return fmt == WFormat::kQ8_0    ? k_blocks * kernels::kQ8_0BlockBytes
         : fmt == WFormat::kMxfp4 ? k_blocks * kernels::kMxfp4BlockBytes
                                  : k_blocks * 32 * 2;
}

// Random row bytes with finite fp16 super-block scales where the encoding
// has them (as the load's scan guarantees before the repack runs).
void RandomRows(std::mt19937& rng, kernels::RowEncoding enc, std::vector<uint8_t>* bytes) {
  for (uint8_t& b : *bytes) b = static_cast<uint8_t>(rng());
  const int block = enc == kernels::RowEncoding::kQ4_K   ? kernels::kQ4_KBlockBytes
                    : enc == kernels::RowEncoding::kQ6_K ? kernels::kQ6_KBlockBytes
                    : enc == kernels::RowEncoding::kQ5_K ? kernels::kQ5_KBlockBytes
                    : enc == kernels::RowEncoding::kQ5_0 ? kernels::kQ5_0BlockBytes
                    : enc == kernels::RowEncoding::kQ5_1 ? kernels::kQ5_1BlockBytes
                                                         : 0;
  if (block == 0) return;
  const std::vector<int> scale_at = enc == kernels::RowEncoding::kQ6_K   ? std::vector<int>{208}
                                    : enc == kernels::RowEncoding::kQ5_0 ? std::vector<int>{0}
                                                                         : std::vector<int>{0, 2};
  for (size_t b = 0; b + block <= bytes->size(); b += block) {
    for (int at : scale_at) (*bytes)[b + at + 1] &= 0xBF;  // fp16 exponent below 31
  }
}

TEST(DeviceRepackTest, EqualsTheHostRepackerForEveryFormatAndSource) {
  std::mt19937 rng(FreshSeed());
  using kernels::RowEncoding;
  constexpr RowEncoding kTile = RowEncoding::kTileFormat, kQ4 = RowEncoding::kQ4_K, kQ6 = RowEncoding::kQ6_K;
  const Encoding encodings[] = {
      {WFormat::kQ8_0, {kTile, kTile, kTile}}, {WFormat::kMxfp4, {kTile, kTile, kTile}},
      {WFormat::kF16, {kTile, kTile, kTile}},  {WFormat::kBf16, {kTile, kTile, kTile}},
      {WFormat::kQ8_0, {kQ4, kQ4, kQ4}},       {WFormat::kQ8_0, {kQ6, kQ6, kQ6}},
      {WFormat::kQ4K, {kQ4, kQ4, kQ4}},  // Q4_K rows moved into Q4_K tiles
      {WFormat::kQ8_0, {kQ4, kQ6, kTile}},  // a Q4_K_M layer: Q4_K q, Q6_K k (or v), Q8_0 v
      // Qwen2.5-0.5B's Q4_K_M layers: Q5_0 q and k, a Q8_0 v; Q5_K, Q5_1 and Q4_K parts.
      {WFormat::kQ8_0, {RowEncoding::kQ5_0, RowEncoding::kQ5_0, kTile}},
      {WFormat::kQ8_0, {RowEncoding::kQ5_K, RowEncoding::kQ5_1, kQ4}},
  };
  for (const Encoding& e : encodings) {
    const WFormat fmt = e.fmt;
    // k-quant rows hold whole super-blocks of 8 blocks.
    const bool k_quant = e.part_enc[0] != kTile || e.part_enc[1] != kTile;
    const int64_t k_blocks = k_quant ? 16 : 3;
    for (const Case& c : {Case{"plain", {37, 0, 0}, 1, false, 2}, Case{"qkv", {40, 8, 8}, 3, false, 1},
                          Case{"gate_up", {21, 21, 0}, 2, true, 3}}) {
      SCOPED_TRACE(::testing::Message() << "format " << static_cast<int>(fmt) << ", encodings "
                                        << static_cast<int>(e.part_enc[0]) << static_cast<int>(e.part_enc[1])
                                        << static_cast<int>(e.part_enc[2]) << ", " << c.name);
      std::vector<std::vector<uint8_t>> host(c.n_parts);
      std::vector<DevBuf<uint8_t>> dev;
      RepackSource hs, ds;
      int64_t rows = 0;
      for (int p = 0; p < c.n_parts; ++p) {
        const int64_t row_bytes = RowBytesOf(fmt, e.part_enc[p], k_blocks);
        host[p].resize(c.n_mats * c.part_rows[p] * row_bytes);
        RandomRows(rng, e.part_enc[p], &host[p]);
        dev.emplace_back(host[p]);
        hs.part[p] = host[p].data();
        ds.part[p] = dev.back().get();
        hs.part_rows[p] = ds.part_rows[p] = c.part_rows[p];
        hs.part_row_bytes[p] = ds.part_row_bytes[p] = row_bytes;
        hs.part_enc[p] = ds.part_enc[p] = e.part_enc[p];
        rows += c.part_rows[p];
      }
      hs.n_parts = ds.n_parts = c.n_parts;
      hs.gate_up = ds.gate_up = c.gate_up;
      if (c.gate_up) rows = c.part_rows[0];
      const int64_t row_tiles = kernels::RowTilesFor(rows, c.gate_up);
      const kernels::TiledBytes size = kernels::TiledSize(fmt, rows, k_blocks * 32, c.gate_up);
      std::vector<uint8_t> want_codes(size.codes * c.n_mats), want_scales(size.scales * c.n_mats);
      for (int64_t mat = 0; mat < c.n_mats; ++mat) {
        kernels::RepackTiles(
            fmt, k_blocks, [&](int64_t r) { return kernels::SourceRow(hs, mat, r); }, 0, row_tiles,
            want_codes.data() + mat * size.codes, size.scales ? want_scales.data() + mat * size.scales : nullptr);
      }
      DevBuf<uint8_t> codes(want_codes.size()), scales(std::max<size_t>(1, want_scales.size()));
      codes.Poison();
      scales.Poison();
      kernels::RepackParams p;
      p.fmt = fmt;
      p.src = ds;
      p.n_mats = c.n_mats;
      p.row_tiles = row_tiles;
      p.k_blocks = k_blocks;
      p.codes = codes.get();
      p.scales = size.scales ? scales.get() : nullptr;
      kernels::LaunchRepackTiles(p, nullptr);
      EXPECT_EQ(codes.Download(), want_codes);
      if (size.scales) {
        EXPECT_EQ(scales.Download(), want_scales);
      }
    }
  }
}

TEST(DeviceFiniteScanTest, FindsTheFirstNonFiniteBlockOfEachFormat) {
  std::mt19937 rng(FreshSeed());
  using kernels::RowEncoding;
  struct Scan {
    WFormat fmt;
    RowEncoding enc;
    int block_bytes;
    std::vector<int64_t> bad;     // blocks made non-finite
    int poison_at;                // where in a bad block the poison goes
    std::vector<uint8_t> poison;  // the bytes written there
  };
  const int64_t blocks = 100000;
  constexpr RowEncoding kTile = RowEncoding::kTileFormat;
  for (const Scan& s : {Scan{WFormat::kMxfp4, kTile, 17, {77777, 333, 99999}, 0, {0xFF}},
                        Scan{WFormat::kQ8_0, kTile, 34, {5}, 0, {0x00, 0x7C}},          // fp16 +inf
                        Scan{WFormat::kF16, kTile, 2, {}, 0, {}},                          // all finite
                        Scan{WFormat::kBf16, kTile, 2, {4096, 100}, 0, {0xC1, 0x7F}},     // bf16 NaN
                        Scan{WFormat::kF32, kTile, 4, {blocks - 1}, 0, {0, 0, 0x80, 0xFF}},  // -inf
                        Scan{WFormat::kQ8_0, RowEncoding::kQ4_K, 144, {9000, 70}, 0, {0x01, 0x7E}},  // d NaN
                        Scan{WFormat::kQ8_0, RowEncoding::kQ4_K, 144, {blocks - 2}, 2, {0x00, 0xFC}},  // dmin -inf
                        Scan{WFormat::kQ8_0, RowEncoding::kQ4_K, 144, {}, 0, {}},
                        Scan{WFormat::kQ8_0, RowEncoding::kQ6_K, 210, {31337}, 208, {0x00, 0x7C}},  // d +inf
                        Scan{WFormat::kQ8_0, RowEncoding::kQ5_K, 176, {4242}, 0, {0x01, 0x7E}},     // d NaN
                        Scan{WFormat::kQ8_0, RowEncoding::kQ5_K, 176, {12}, 2, {0x00, 0xFC}},       // dmin -inf
                        Scan{WFormat::kQ8_0, RowEncoding::kQ5_0, 22, {blocks - 1}, 0, {0x00, 0x7C}},  // d +inf
                        Scan{WFormat::kQ8_0, RowEncoding::kQ5_1, 24, {777}, 2, {0x00, 0xFE}},       // m NaN
                        Scan{WFormat::kQ8_0, RowEncoding::kQ5_1, 24, {}, 0, {}}}) {
    SCOPED_TRACE(::testing::Message() << static_cast<int>(s.fmt) << " " << static_cast<int>(s.enc));
    std::vector<uint8_t> data(blocks * s.block_bytes);
    for (int64_t b = 0; b < blocks; ++b) {
      uint8_t* p = &data[b * s.block_bytes];
      for (int i = 0; i < s.block_bytes; ++i) p[i] = static_cast<uint8_t>(rng());
      // Finite: a small exponent in the scale/value bytes.
      if (s.enc == RowEncoding::kQ4_K || s.enc == RowEncoding::kQ5_K || s.enc == RowEncoding::kQ5_1) {
        p[1] &= 0x3F;  // d
        p[3] &= 0x3F;  // dmin, m
        continue;
      }
      if (s.enc == RowEncoding::kQ5_0) {
        p[1] &= 0x3F;
        continue;
      }
      if (s.enc == RowEncoding::kQ6_K) {
        p[209] &= 0x3F;
        continue;
      }
      switch (s.fmt) {
        case WFormat::kMxfp4: p[0] = static_cast<uint8_t>(100 + rng() % 50); break;
        case WFormat::kQ8_0:
        case WFormat::kF16: p[1] &= 0x3F; break;
        case WFormat::kBf16: p[1] &= 0x3F; break;
        case WFormat::kF32: p[3] &= 0x3F; break;
        case WFormat::kQ4K: break;  // (its rows are Q4_K: handled above)
      }
    }
    for (int64_t b : s.bad) {
      std::copy(s.poison.begin(), s.poison.end(), data.begin() + b * s.block_bytes + s.poison_at);
    }
    DevBuf<uint8_t> d(data);
    DevBuf<unsigned long long> first(1);
    first.Poison();
    kernels::LaunchFirstBadBlock(s.fmt, s.enc, d.get(), blocks, first.get(), nullptr);
    const unsigned long long got = first.Download()[0];
    const unsigned long long want =
        s.bad.empty() ? ~0ull : static_cast<unsigned long long>(*std::min_element(s.bad.begin(), s.bad.end()));
    EXPECT_EQ(got, want);
  }
}

class StreamingLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = WriteTestModel("streaming_load", [](tools::RandomModelSpec& s) {
      s.config.sliding_window = 8;
      s.config.n_layers = 3;
      s.residual_scale = 1.0f / std::sqrt(6.0f);
    }, 200);
    model_ = LoadModel(path_);
    ASSERT_NE(model_, nullptr);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  gpu::CudaBackendOptions Options() const {
    gpu::CudaBackendOptions o;
    o.kv.max_sequences = 2;
    o.max_context = 512;
    o.upload_threads = 4;
    return o;
  }

  // The file streamed into a device image, as the worker reads it.
  std::unique_ptr<gpu::DeviceModelImage> Stream(const std::string& path, model::FileDigest* digest = nullptr) {
    auto image = gpu::CreateDeviceModelImage(0);
    EXPECT_TRUE(image.ok()) << image.status();
    if (!image.ok()) return nullptr;
    auto d = model::StreamModelFile(path, uint64_t{1} << 40, **image, nullptr, /*chunk_bytes=*/1 << 20);
    EXPECT_TRUE(d.ok()) << d.status();
    if (!d.ok()) return nullptr;
    if (digest) *digest = *d;
    return *std::move(image);
  }

  static std::vector<float> PromptLogits(model::Backend& b, const std::vector<int32_t>& tokens) {
    EXPECT_TRUE(b.kv().AddSequence(1).ok());
    std::vector<float> logits;
    model::SequenceStep s{1, tokens, model::Logits::kAll};
    EXPECT_TRUE(b.Forward({&s, 1}, &logits).ok());
    return logits;
  }

  // A backend made from the file streamed into a device image computes
  // bitwise the logits of one made from the host bytes.
  void ExpectTheDeviceImageGivesTheHostsLogits();
  // `bad` (the model with a non-finite scale) is refused on the device with
  // the message BindWeights gives on the host, before the repack.
  void ExpectRefusedOnTheDeviceLikeOnTheHost(const std::vector<uint8_t>& bad);

  std::string path_;
  std::unique_ptr<LoadedModel> model_;
};

TEST_F(StreamingLoad, TheDeviceImageHoldsTheFileAndItsHeaderParsesAlike) {
  model::FileDigest digest;
  auto image = Stream(path_, &digest);
  ASSERT_NE(image, nullptr);
  EXPECT_EQ(image->size(), model_->bytes.size());
  EXPECT_EQ(digest.size, model_->bytes.size());
  std::vector<uint8_t> back(image->size());
  ASSERT_TRUE(image->CopyToHost(0, back.size(), back.data()).ok());
  EXPECT_EQ(back, model_->bytes);
  EXPECT_FALSE(image->CopyToHost(back.size() - 4, 8, back.data()).ok());
  auto file = image->ParseHeader();
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->tensors().size(), model_->file->tensors().size());
  EXPECT_EQ(file->data_offset(), model_->file->data_offset());
  for (size_t i = 0; i < file->tensors().size(); ++i) {
    EXPECT_EQ(file->tensors()[i].name, model_->file->tensors()[i].name);
    EXPECT_EQ(file->tensors()[i].data - file->tensors()[0].data,
              model_->file->tensors()[i].data - model_->file->tensors()[0].data);
    cudaPointerAttributes attr{};
    ASSERT_EQ(cudaPointerGetAttributes(&attr, file->tensors()[i].data), cudaSuccess);
    EXPECT_EQ(attr.type, cudaMemoryTypeDevice) << file->tensors()[i].name;
  }
}

// The worker retries a rejected model with the same image: a second read
// replaces the first without keeping its device memory.
TEST_F(StreamingLoad, ASecondReadIntoTheSameImageReplacesTheFirst) {
  auto image = Stream(path_);
  ASSERT_NE(image, nullptr);
  const std::string other = TempPath("streaming_load_other");
  std::string content(64 << 20, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 7 + 1);
  std::ofstream(other, std::ios::binary) << content;
  size_t free_before[2] = {0, 0}, total = 0;
  for (int round = 0; round < 2; ++round) {
    auto d = model::StreamModelFile(other, uint64_t{1} << 40, *image);
    ASSERT_TRUE(d.ok()) << d.status();
    CUDA_CHECK(cudaMemGetInfo(&free_before[round], &total));
  }
  std::remove(other.c_str());
  // Kept, the first copy would take another 64 MiB.
  EXPECT_EQ(free_before[1], free_before[0]);
  EXPECT_EQ(image->size(), content.size());
  std::string back(content.size(), '\0');
  ASSERT_TRUE(image->CopyToHost(0, back.size(), reinterpret_cast<uint8_t*>(back.data())).ok());
  EXPECT_EQ(back, content);
  EXPECT_FALSE(image->ParseHeader().ok());  // not a GGUF file
}

// The file's device copy is freed piece by piece (64 MiB) as the backend
// reports tensors done: a piece goes when every tensor overlapping it is.
TEST(DeviceImageReleaseTest, PiecesAreFreedOnceAllTheirTensorsAreConsumed) {
  const std::string path = TempPath("image_release");
  constexpr int64_t kFloats = 10 << 20;  // 40 MiB per tensor
  {
    gguf::GgufWriter w;
    w.SetString("general.architecture", "test");
    for (const char* name : {"a", "b", "c", "d"}) ASSERT_TRUE(w.AddTensor(name, gguf::GgmlType::kF32, {kFloats}).ok());
    ASSERT_TRUE(w.Begin(path).ok());
    std::vector<float> chunk(1 << 20);
    for (int t = 0; t < 4; ++t) {
      for (int64_t i = 0; i < kFloats; i += chunk.size()) {
        for (size_t j = 0; j < chunk.size(); ++j) chunk[j] = static_cast<float>(t * kFloats + i + j);
        ASSERT_TRUE(w.WriteTensorData({reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size() * 4}).ok());
      }
    }
    ASSERT_TRUE(w.Finish().ok());
  }
  auto image = gpu::CreateDeviceModelImage(0);
  ASSERT_TRUE(image.ok()) << image.status();
  auto d = model::StreamModelFile(path, uint64_t{1} << 40, **image);
  std::remove(path.c_str());
  ASSERT_TRUE(d.ok()) << d.status();
  auto file = (*image)->ParseHeader();
  ASSERT_TRUE(file.ok()) << file.status();
  if (!(*image)->ReleasesProgressively()) GTEST_SKIP() << "the driver has no virtual memory management";
  const uint64_t piece = uint64_t{64} << 20;
  // Data at ~0, 40, 80, 120 MiB (+ the small header): three pieces, the
  // last one cut to the file's end (rounded to the driver's granularity).
  const uint64_t all = (*image)->ResidentBytes();
  EXPECT_GE(all, (*image)->size());
  EXPECT_LE(all, (*image)->size() + (uint64_t{2} << 20));
  EXPECT_GT(all, 2 * piece);
  auto consume = [&](const char* name) { (*image)->Consumed(*file->FindTensor(name), file->data_offset()); };
  float probe = 0;
  auto read = [&](const char* name, int64_t i) {
    const gguf::TensorInfo* t = file->FindTensor(name);
    return (*image)->CopyToHost(file->data_offset() + t->offset + i * 4, 4, reinterpret_cast<uint8_t*>(&probe));
  };
  consume("a");
  EXPECT_EQ((*image)->ResidentBytes(), all);  // b shares the first piece
  consume("a");                               // reported twice: counted once
  EXPECT_EQ((*image)->ResidentBytes(), all);
  consume("b");
  EXPECT_EQ((*image)->ResidentBytes(), all - piece);
  EXPECT_FALSE(read("a", 5).ok());
  ASSERT_TRUE(read("c", 5).ok());
  EXPECT_EQ(probe, static_cast<float>(2 * kFloats + 5));
  consume("d");  // the last piece holds only d; the middle one still c
  EXPECT_EQ((*image)->ResidentBytes(), piece);
  ASSERT_TRUE(read("c", kFloats - 1).ok());
  EXPECT_EQ(probe, static_cast<float>(3 * kFloats - 1));
  consume("c");
  EXPECT_EQ((*image)->ResidentBytes(), 0u);
}

void StreamingLoad::ExpectTheDeviceImageGivesTheHostsLogits() {
  auto host = gpu::CreateCudaBackendImpl(*model_->file, Options());
  ASSERT_TRUE(host.ok()) << host.status();
  auto image = Stream(path_);
  ASSERT_NE(image, nullptr);
  auto file = image->ParseHeader();
  ASSERT_TRUE(file.ok()) << file.status();
  auto streamed = gpu::CreateCudaBackendFromImage(*image, *file, Options());
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  // The file's device copy is gone once the weights are in place.
  uint8_t byte;
  EXPECT_FALSE(image->CopyToHost(0, 1, &byte).ok());
  EXPECT_EQ((*streamed)->Vram().weights(), (*host)->Vram().weights());
  std::mt19937 rng(3);
  std::vector<int32_t> tokens(300);
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % 200);
  const std::vector<float> a = PromptLogits(**host, tokens), b = PromptLogits(**streamed, tokens);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "logits differ";
}

TEST_F(StreamingLoad, ABackendFromTheDeviceImageComputesTheSameLogitsAsFromHostBytes) {
  ExpectTheDeviceImageGivesTheHostsLogits();
}

void StreamingLoad::ExpectRefusedOnTheDeviceLikeOnTheHost(const std::vector<uint8_t>& bad) {
  const std::string bad_path = TempPath("streaming_load_bad");
  std::ofstream(bad_path, std::ios::binary).write(reinterpret_cast<const char*>(bad.data()), bad.size());
  auto host_file = gguf::GgufFile::Parse(bad);
  ASSERT_TRUE(host_file.ok());
  auto config = model::ReadModelConfig(*host_file);
  ASSERT_TRUE(config.ok());
  auto host_refusal = model::BindWeights(*host_file, *config);
  ASSERT_FALSE(host_refusal.ok());

  auto image = Stream(bad_path);
  std::remove(bad_path.c_str());
  ASSERT_NE(image, nullptr);
  auto file = image->ParseHeader();
  ASSERT_TRUE(file.ok()) << file.status();
  auto streamed = gpu::CreateCudaBackendFromImage(*image, *file, Options());
  ASSERT_FALSE(streamed.ok());
  EXPECT_EQ(streamed.status(), host_refusal.status());
  // Refused before the repack: the image still holds the file (the worker's
  // "auto" fallback could copy it back).
  std::vector<uint8_t> back(image->size());
  ASSERT_TRUE(image->CopyToHost(0, back.size(), back.data()).ok());
  EXPECT_EQ(back, bad);
}

TEST_F(StreamingLoad, ANonFiniteScaleIsRefusedOnTheDeviceWithTheHostsMessage) {
  const gguf::TensorInfo* t = model_->file->FindTensor("blk.1.ffn_down_exps.weight");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->type, gguf::GgmlType::kMXFP4);
  const int64_t block = t->nbytes / 17 - 40;  // near the end of the last expert
  std::vector<uint8_t> bad = model_->bytes;
  bad[model_->file->data_offset() + t->offset + block * 17] = 0xFF;
  ExpectRefusedOnTheDeviceLikeOnTheHost(bad);
}

// A k-quant model (Q4_K attention, embedding and unembedding, Q6_K experts;
// d_model 256, the narrowest whose rows hold whole super-blocks): the device
// re-quantizes its matrices into Q8_0 tiles exactly as the host does, and
// scans the super-blocks' fp16 scales.
class StreamingLoadKQuant : public StreamingLoad {
 protected:
  void SetUp() override {
    path_ = WriteTestModel("streaming_load_kquant", [](tools::RandomModelSpec& s) {
      s.config.sliding_window = 8;
      s.config.n_layers = 2;
      SetKQuantShape(&s.config);
      s.residual_scale = 0.5f;
      s.dense_type = gguf::GgmlType::kQ4_K;
      s.expert_type = gguf::GgmlType::kQ6_K;
    }, 200);
    model_ = LoadModel(path_);
    ASSERT_NE(model_, nullptr);
  }
};

TEST_F(StreamingLoadKQuant, ABackendFromTheDeviceImageComputesTheSameLogitsAsFromHostBytes) {
  ExpectTheDeviceImageGivesTheHostsLogits();
}

TEST_F(StreamingLoadKQuant, ANonFiniteSuperBlockScaleIsRefusedOnTheDeviceWithTheHostsMessage) {
  struct Poison {
    const char* tensor;
    int at;  // byte of the fp16 scale in the super-block
  };
  for (const Poison& p : {Poison{"blk.1.attn_v.weight", 2}, Poison{"blk.0.ffn_up_exps.weight", 208}}) {
    SCOPED_TRACE(p.tensor);
    const gguf::TensorInfo* t = model_->file->FindTensor(p.tensor);
    ASSERT_NE(t, nullptr);
    const int block_bytes = t->type == gguf::GgmlType::kQ4_K ? 144 : 210;
    const int64_t block = static_cast<int64_t>(t->nbytes) / block_bytes - 3;
    std::vector<uint8_t> bad = model_->bytes;
    bad[model_->file->data_offset() + t->offset + block * block_bytes + p.at + 1] = 0x7E;  // fp16 NaN
    ExpectRefusedOnTheDeviceLikeOnTheHost(bad);
  }
}

}  // namespace
}  // namespace ossgate::testing
