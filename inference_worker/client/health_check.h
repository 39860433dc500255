// grpc.health.v1.Health/Check over a generic stub (Debian's gRPC packages
// ship neither health.proto nor its generated code). The messages are tiny:
// HealthCheckRequest{service = 1: string}, HealthCheckResponse{status = 1:
// enum UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3}.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace ossgate::client {

enum class HealthStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };
const char* HealthStatusName(HealthStatus s);

// One Check call. NotFound is returned as kServiceUnknown.
absl::StatusOr<HealthStatus> CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                                         absl::Duration timeout = absl::Seconds(2));

// Polls until `service` is SERVING or the deadline passes.
absl::Status WaitUntilServing(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                              absl::Duration deadline);

}  // namespace ossgate::client
