// The cache of CUDA graphs that decode passes replay, part of
// CudaBackendImpl (cuda_backend_impl.h).
//
// A step in which every sequence feeds one token and none asks for all its
// logits runs as a graph: the launches of EnqueueLayers and EnqueueLogits
// (cuda_backend_forward.cc), captured once per pass shape and replayed after
// RunPass has copied the pass's metadata to its fixed device address. Shapes
// are bucketed (rows and attention splits rounded up to powers of two), so a
// few graphs serve every batch; the padding rows are token 0 of no sequence
// and no kernel writes them back. Graphs live until the backend is destroyed
// or the skipped phases change (SetSkipPhases); profiling and the routing
// trace run eagerly.
#include <cuda_runtime_api.h>

#include <span>

#include "inference_worker/cuda/cuda_backend_impl.h"

namespace ossgate::gpu::internal {

bool CudaBackendImpl::IsGraphStep(std::span<const SequenceStep> steps) const {
  if (!use_graphs_ || profiling_ || tracing_ || steps.empty() || static_cast<int>(steps.size()) > max_seqs_) return false;
  for (const SequenceStep& s : steps) {
    if (s.tokens.size() != 1 || s.logits == Logits::kAll) return false;
  }
  return true;
}

// Decode graph: bucket the batch and the split count; padding rows are
// token 0 of no sequence, and every row gets logits.
void CudaBackendImpl::PadForGraph(PassShape* shape) {
  const MetaLayout& m = meta_;
  int32_t* h = meta_host_;
  const int row = shape->valid;
  const int bucket = NextPow2(row);
  for (int r = row; r < bucket; ++r) {
    h[m.tokens + r] = 0;
    h[m.pos + r] = 0;
    h[m.tok_seq + r] = -1;
    h[m.decode_items + r] = -1;
    h[m.split_off + r] = 0;
  }
  for (int r = 0; r < bucket; ++r) h[m.out_rows + r] = r;
  shape->rows = bucket;
  shape->decode_items = bucket;
  shape->out_rows = bucket;
  shape->splits_full = NextPow2(shape->splits_full);
  shape->splits_sliding = NextPow2(shape->splits_sliding);
}

void CudaBackendImpl::LaunchGraph(const PassShape& shape) {
  auto it = graphs_.find(shape);
  if (it == graphs_.end()) {
    Graph gr;
    CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    EnqueueLayers(shape);
    EnqueueLogits(0, shape.out_rows);
    CUDA_CHECK(cudaStreamEndCapture(stream_, &gr.graph));
    CUDA_CHECK(cudaGraphInstantiate(&gr.exec, gr.graph, 0));
    it = graphs_.emplace(shape, gr).first;
  }
  CUDA_CHECK(cudaGraphLaunch(it->second.exec, stream_));
}

void CudaBackendImpl::DropGraphs() {
  if (stream_) cudaStreamSynchronize(stream_);
  for (auto& [shape, g] : graphs_) {
    if (g.exec) cudaGraphExecDestroy(g.exec);
    if (g.graph) cudaGraphDestroy(g.graph);
  }
  graphs_.clear();
}

}  // namespace ossgate::gpu::internal
