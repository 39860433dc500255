// The one place where internal absl::Status values become grpc::Status.
#ifndef OSSGATE_PROVENANCE_SERVICE_SERVER_GRPC_STATUS_H_
#define OSSGATE_PROVENANCE_SERVICE_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace ossgate::provenance {

// Codes map one to one (absl and gRPC share the canonical code space). The
// message is kept; INTERNAL and DATA_LOSS messages are kept too, since the
// callers are authenticated operators and workers that need them to act.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_SERVER_GRPC_STATUS_H_
