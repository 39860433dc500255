// Injected time source, so tests can drive expiry and record times.
#ifndef OSSGATE_PROVENANCE_SERVICE_CORE_CLOCK_H_
#define OSSGATE_PROVENANCE_SERVICE_CORE_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ossgate::provenance {

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  // Process-wide instance; never destroyed.
  static const Clock* Get() {
    static const SystemClock* clock = new SystemClock();
    return clock;
  }
};

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_CORE_CLOCK_H_
