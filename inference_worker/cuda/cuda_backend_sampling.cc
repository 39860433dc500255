// Sampling on the GPU, part of CudaBackendImpl (cuda_backend_impl.h).
//
// ForwardSample runs a step's passes as Forward does (cuda_backend_forward.cc;
// decode steps as graphs, cuda_backend_graphs.cc), then samples the logits
// rows of its Logits::kLast steps on the device: one SampleRow of parameters
// per row, one LaunchSample over the rows (kernels/sampling.cu: the host
// sampler's algorithm and arithmetic, so the same token) and one copy of the
// chosen ids to the host.
#include <cuda_runtime_api.h>

#include <span>
#include <vector>

#include "inference_worker/cuda/cuda_backend_impl.h"
#include "inference_worker/model/sampler.h"

namespace ossgate::gpu::internal {

absl::Status CudaBackendImpl::ForwardSample(std::span<const SequenceStep> steps,
                                            std::span<const model::StepSampling> sampling,
                                            std::vector<int32_t>* tokens) {
  if (absl::Status s = model::ValidateSampling(steps, sampling); !s.ok()) return s;
  if (absl::Status s = Validate(steps); !s.ok()) return s;
  const int V = config_.vocab_size;
  // Index in `tokens` of each kLast step (step order); kNone steps get none.
  std::vector<int> out_index(steps.size(), -1);
  int n_tokens = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].logits == Logits::kLast) out_index[i] = n_tokens++;
  }
  tokens->assign(n_tokens, -1);
  const bool graph = IsGraphStep(steps);
  for (const std::vector<PassSeq>& pass : PlanPasses(steps)) {
    const PassShape shape = FillMeta(steps, pass, graph);
    RunPass(shape, graph);
    // The step of each logits row to sample (-1: sampled but dropped). Eager
    // passes compute logits only for their out_rows: the kLast steps whose
    // last token is in the pass, in pass order. A graph pass computes every
    // row, and pass entry k (one token each) is row k; the rows of kNone
    // steps (one-token prompt chunks) between them are sampled greedily and
    // dropped, which keeps the rows to sample contiguous for one launch.
    std::vector<int> row_step;
    for (const PassSeq& ps : pass) {
      const bool samples =
          steps[ps.step].logits == Logits::kLast && ps.end == static_cast<int>(steps[ps.step].tokens.size());
      if (samples) {
        row_step.push_back(ps.step);
      } else if (graph) {
        row_step.push_back(-1);
      }
    }
    while (!row_step.empty() && row_step.back() < 0) row_step.pop_back();
    if (!row_step.empty()) {
      const int n = static_cast<int>(row_step.size());  // <= max_seqs_ <= logit_rows_
      if (!graph) EnqueueLogits(0, n);
      for (int j = 0; j < n; ++j) {
        kernels::SampleRow& r = sample_rows_host_[j];
        r = kernels::SampleRow();  // greedy: a dropped row
        if (row_step[j] < 0) continue;
        const model::StepSampling& ss = sampling[row_step[j]];
        r.temperature = ss.params.temperature;
        r.top_k = ss.params.top_k;
        r.top_p = ss.params.top_p;
        r.min_p = ss.params.min_p;
        r.seed = ss.params.seed;
        r.step = ss.step;
      }
      CUDA_CHECK(cudaMemcpyAsync(sample_rows_dev_, sample_rows_host_, n * sizeof(kernels::SampleRow),
                                 cudaMemcpyHostToDevice, stream_));
      kernels::SampleParams sp;
      sp.logits = logits_dev_;
      sp.vocab = V;
      sp.n_rows = n;
      sp.rows = sample_rows_dev_;
      sp.rows_host = sample_rows_host_;
      sp.unsampled = unsampled_dev_;
      sp.workspace = sample_ws_;
      sp.out = sampled_dev_;
      kernels::LaunchSample(sp, stream_);
      CUDA_CHECK(cudaMemcpyAsync(sampled_host_, sampled_dev_, n * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      for (int j = 0; j < n; ++j) {
        if (row_step[j] < 0) continue;
        (*tokens)[out_index[row_step[j]]] = sampled_host_[j];
      }
    } else {
      CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    if (!graph) CollectEager(shape);
    for (const PassSeq& ps : pass) kv_->Commit(steps[ps.step].seq, ps.end - ps.begin);
  }
  return absl::OkStatus();
}

}  // namespace ossgate::gpu::internal
