// Ledgers: which Billing answers a request. A single ledgerd has one; a
// cluster instance (docs/CLUSTER.md, "The unit of ownership") has one per
// shard it serves, and the shards it serves change as the group rebalances.
//
// api::Service asks for a Billing on every request: org routes by the path's
// {org}, whole-ledger routes by their `shard` query parameter (default 0).
// A nullptr answer is not an error of the request but a shard that moved
// between the front's decision and the handler: the Service answers 503 with
// `Retry-After`.
//
// WARNING: the Service keeps no ownership. A Billing returned here must stay
// alive until every request that received it has answered, a streamed
// `/v1/ledger/events` body included (it reads the ledger chunk by chunk after
// the handler returned). The Service caches org answers under the Billing's
// address and its OrgVersion (which restarts at 0 when a Billing opens), so a
// Billing that replaces another for the same shard should not reuse a freed
// one's address while the Service runs, or a cached answer of the old one may
// be served until the org next changes.
#pragma once

#include <string_view>

#include "projections/billing.h"

namespace billing::api {

class Ledgers {
 public:
  virtual ~Ledgers() = default;
  // The Billing holding `org`'s data; nullptr when this instance does not
  // serve it now. Thread-safe: called from I/O and worker threads.
  virtual projections::Billing* ForOrg(std::string_view org) const = 0;
  // Shard `shard`'s Billing (0 <= shard < shards()), for the whole-ledger
  // routes; nullptr when not served here. Thread-safe.
  virtual projections::Billing* ForShard(int shard) const = 0;
  // How many shards there are (the cluster's fixed S): 1 for a single
  // ledgerd. Constant for the Service's lifetime.
  virtual int shards() const = 0;
};

// The single ledgerd's: one Billing, shard 0, serving every org.
class SingleLedger final : public Ledgers {
 public:
  // `billing` must outlive this.
  explicit SingleLedger(projections::Billing& billing) : billing_(billing) {}
  projections::Billing* ForOrg(std::string_view) const override { return &billing_; }
  projections::Billing* ForShard(int shard) const override {
    return shard == 0 ? &billing_ : nullptr;
  }
  int shards() const override { return 1; }

 private:
  projections::Billing& billing_;
};

}  // namespace billing::api
