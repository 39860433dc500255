#include "inference_worker/client/health_check.h"

#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/generic/generic_stub.h"

namespace ossgate::client {

const char* HealthStatusName(HealthStatus s) {
  switch (s) {
    case HealthStatus::kServing: return "SERVING";
    case HealthStatus::kNotServing: return "NOT_SERVING";
    case HealthStatus::kServiceUnknown: return "SERVICE_UNKNOWN";
    default: return "UNKNOWN";
  }
}

absl::StatusOr<HealthStatus> CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                                         absl::Duration timeout) {
  if (service.size() > 127) return absl::InvalidArgumentError("service name too long");
  std::string req;
  if (!service.empty()) {
    req.push_back('\x0a');  // field 1, length-delimited
    req.push_back(static_cast<char>(service.size()));
    req += service;
  }
  grpc::Slice slice(req);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status s = done.get_future().get();
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) return HealthStatus::kServiceUnknown;
  if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::InternalError("cannot read health response");
  std::string bytes;
  for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  if (bytes.empty()) return HealthStatus::kUnknown;  // status 0 is encoded as nothing
  if (bytes.size() != 2 || bytes[0] != '\x08' || bytes[1] < 0 || bytes[1] > 3) {
    return absl::InternalError("malformed health response");
  }
  return static_cast<HealthStatus>(bytes[1]);
}

absl::Status WaitUntilServing(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                              absl::Duration deadline) {
  const absl::Time end = absl::Now() + deadline;
  std::string last = "no answer";
  while (absl::Now() < end) {
    auto s = CheckHealth(channel, service);
    if (s.ok() && *s == HealthStatus::kServing) return absl::OkStatus();
    last = s.ok() ? HealthStatusName(*s) : std::string(s.status().message());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("'", service, "' not SERVING after ", absl::FormatDuration(deadline),
                                                  " (last: ", last, ")"));
}

}  // namespace ossgate::client
