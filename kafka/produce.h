// Produce: publishes NDJSON events to Kafka the way a provider integration
// does, for `ledgerctl produce`, demos and tests.
//
// Each non-blank line is one message: value the line as is, key its org_id
// (read with a JSON parser; a line that is not a JSON object with a string
// org_id is still sent, without a key, so that the service can reject it
// visibly). The producer is idempotent (no duplicates from its own retries,
// per-partition order kept) and every delivery report is checked.
#pragma once

#include <cstdint>
#include <istream>
#include <string>

namespace billing::ops {

// How long the producer keeps retrying one message before it counts as
// failed: long enough to ride out a broker restart, short enough that an
// operator with a wrong --brokers is told within a minute.
inline constexpr int kProduceMessageTimeoutMs = 30000;

struct ProduceOptions {
  std::string brokers;
  std::string topic = "billing.events";
};

struct ProduceReport {
  uint64_t sent = 0;       // lines handed to the producer
  uint64_t delivered = 0;  // acknowledged by the broker
  uint64_t failed = 0;     // delivery reports with an error, or never acknowledged
  uint64_t unkeyed = 0;    // lines without a readable org_id, sent without a key
  std::string error;       // the first failure, or why nothing could be sent
};

// Publishes every line of `in` and waits for all delivery reports.
ProduceReport ProduceLines(const ProduceOptions& options, std::istream& in);

}  // namespace billing::ops
