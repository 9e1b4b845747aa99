// Front: how a cluster instance answers any request (docs/CLUSTER.md,
// "Serving").
//
// A request is about one shard: an org route's shard is its org's, a
// whole-ledger route names one with `?shard=N` (0 by default), ingest is
// split by the shard of each event. What this instance serves goes to its
// api::Service; what another instance serves is forwarded to that owner, at
// most once (a forwarded request is answered or refused, never forwarded
// again); a shard nobody serves right now (it is moving) is 503 with
// Retry-After, never a stale or partial answer. Everything that is about no
// shard (probes, the web page, metrics) is answered here.
//
// Ingest in a cluster goes through the shards' log (ShardSet::Ingest); an
// answer is sent only when every part of the body has its outcome, and then
// in body order, as one ledgerd would give it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/members.h"
#include "cluster/shard_set.h"
#include "http/forward_client.h"
#include "http/http_server.h"
#include "http/worker_pool.h"
#include "ledger/ledger.h"
#include "metrics/metrics.h"
#include "service/service.h"

namespace billing::cluster {

// How long a forwarded request may take, connect to last byte: longer than
// the slowest answer we forward (a whole-ledger verify of a big shard) would
// need a streamed forward; past it the client gets 503 and retries.
inline constexpr std::chrono::milliseconds kForwardDeadline{60000};
// Threads that wait on forwarded requests (blocking client): forwarding is
// waiting, not computing, so more than the cores.
inline constexpr int kForwardThreads = 8;
// Forwards queued beyond the busy threads; past it, 503 with Retry-After.
inline constexpr size_t kForwardQueueMax = 256;
// How often this instance's record (owned shards and their heads) is
// refreshed in the members' table: how stale /v1/cluster's heads may be, and
// how soon the others forward to a shard that started serving here.
inline constexpr int kPublishIntervalMs = 250;

class Front {
 public:
  // All must outlive the Front; `service` answers this instance's shards.
  // Publishes this instance in `members` with what it owns and serves, every
  // kPublishIntervalMs once its URL is known (SetAdvertise), and tells
  // `shards` which `standby_replicas` shards' copies to keep warm.
  Front(ShardSet& shards, Members& members, api::Service& service, api::Metrics& metrics,
        std::string instance_id, int standby_replicas = 0);
  ~Front();  // Stop()
  // Stops publishing and finishes the forwards under way: call it before the
  // HTTP server whose answers they send is destroyed. Idempotent.
  void Stop();

  // The HTTP server's handler.
  void Handle(api::HttpRequest&& request, api::Respond respond);
  // The Service's ingest (api::ServiceOptions::ingest): the body's events in
  // order, already parsed and admitted for the caller.
  void Ingest(std::vector<ledger::Entry> entries, const api::HttpRequest& request,
              api::Respond respond);
  // The Service's re-drive (api::ServiceOptions::redrive): `entry` re-judges
  // a rejection of `shard`, which this instance serves; answered as ingest.
  void Redrive(int shard, ledger::Entry entry, api::Respond respond);
  // The base URL the other instances reach this one at.
  void SetAdvertise(std::string url);
  // GET /v1/cluster's answer.
  std::string ClusterJson() const;

 private:
  void Forward(int shard, api::HttpRequest&& request, api::Respond respond);
  void VerifyAll(const api::HttpRequest& request, api::Respond respond);
  struct Join;
  void IngestPart(const std::shared_ptr<Join>& join, int shard, std::vector<size_t> indices,
                  std::vector<IngestEvent> events, const std::string& principal);
  void ForwardPart(const std::shared_ptr<Join>& join, int shard, std::vector<size_t> indices,
                   std::vector<IngestEvent> events, const std::string& authorization, bool ndjson);
  MemberRecord Self(std::string url) const;
  void PublishLoop();

  ShardSet& shards_;
  Members& members_;
  api::Service& service_;
  api::Metrics& metrics_;
  api::ForwardClient client_;
  const std::string instance_id_;
  const int standby_replicas_;
  std::mutex publish_mu_;
  std::string advertise_;  // guarded by publish_mu_
  std::condition_variable publish_cv_;
  bool stopping_ = false;
  std::atomic<bool> forwards_stopped_{false};
  std::thread publisher_;
  // Declared last, so stopped first: its tasks use everything above.
  api::WorkerPool pool_{kForwardThreads, kForwardQueueMax};
};

}  // namespace billing::cluster
