// The HTTP API of the SPEC: routes, access control, JSON shapes and status
// codes, on top of the projections::Billing that Ledgers (service/ledgers.h)
// picks for each request: the org's for an org route, `?shard=N`'s (default 0)
// for a whole-ledger route.
//
// Every handler answers with the SPEC's shapes; errors are
// {"error": {"code", "message"}} with 400/401/403/404/405/409/413/415/503.
// Ingest answers once the events are durable (the callback of the ledger's
// group commit). Exceptions never leave a handler: anything unexpected
// becomes a 500 with a logged reason.
#pragma once

#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "http/http_server.h"
#include "http/worker_pool.h"
#include "metrics/metrics.h"
#include "projections/billing.h"
#include "projections/explain.h"
#include "projections/seal.h"
#include "service/auth.h"
#include "service/ledgers.h"
#include "service/routes.h"
#include "webhooks/outbox.h"

namespace billing::api {

// Cached read answers (dashboard, usage history, invoices): the oldest are
// dropped past either bound. Typical answers are a few KiB, so 4096 of them
// fit the byte bound; the byte bound is what holds against big answers.
inline constexpr size_t kResponseCacheEntriesMax = 4096;
inline constexpr size_t kResponseCacheBytesMax = 64 * 1024 * 1024;
// A bigger answer (a whole month's CSV export, say) is computed each time
// rather than cached: a few of them would otherwise evict everything else.
inline constexpr size_t kResponseCacheEntryBytesMax = 1024 * 1024;
// Rejected messages listed per page (`limit` may ask for fewer).
inline constexpr size_t kRejectedPageMax = 1000;
// Ledger records read from RocksDB per streamed chunk: bounds the memory of a
// stream of any length to a few hundred KiB.
inline constexpr size_t kStreamChunkRecords = 512;
// An ingest body larger than this is split and parsed on the worker pool:
// about 200 events, under a millisecond of parsing; bigger bodies (up to
// 10 000 events, ~50 ms) would hold their I/O thread's other connections.
inline constexpr size_t kInlineBodyBytesMax = 64 * 1024;
// A request whose shard this instance stopped serving (it moved between the
// front's decision and the handler) is answered 503 with this Retry-After:
// the front's table catches up within about a second (docs/CLUSTER.md, "Serving").
inline constexpr int kShardMovedRetryAfterSeconds = 1;

struct ServiceOptions {
  std::optional<Tokens> tokens;  // nullopt: no access control (loopback only)
  // The webhook outbox behind /v1/webhooks/...; must outlive the Service.
  // nullptr: those routes answer 503.
  webhooks::Outbox* outbox = nullptr;
  // A cluster instance (docs/CLUSTER.md): ingest hands the body's events, in
  // order, parsed and admitted for the caller, to this instead of a ledger,
  // and answers what it responds; and GET /v1/cluster answers its JSON.
  // Unset: a single ledgerd, whose /v1/cluster shows its one shard.
  std::function<void(std::vector<ledger::Entry>, const HttpRequest&, Respond)> ingest;
  std::function<std::string()> cluster;
  // A cluster's re-drive: the entry re-judging a rejection of `shard` (its
  // redrive_of set), sent through the shard's log like ingest; answered as
  // ingest. Unset in a cluster: the retry route answers 501.
  std::function<void(int shard, ledger::Entry, Respond)> redrive;
};

// The ledger a request reads (docs/CLUSTER.md, "Serving"), by one rule that
// both a cluster's front (which instance answers) and the Service (which
// Billing answers) follow, so that they never disagree.
struct RequestLedger {
  enum class Kind {
    // About no one ledger: probes, the page, metrics, webhooks, ingest
    // (split by event), a malformed target (answered 400 where it arrives).
    kNone,
    kOrg,       // `org`'s, on whichever shard holds it
    kShard,     // shard `shard`'s
    kBadShard,  // `?shard=` names no shard: 400 wherever it arrives
  };
  Kind kind = Kind::kNone;
  std::string org;  // kOrg only
  int shard = 0;    // kShard only
};

// An org route (/v1/orgs/{org}/...) reads its org's ledger. A whole-ledger
// route (/v1/ledger/...) filtered to one org reads that org's: `scoped_org`
// (the caller's token's org scope, if any) on every such route but verify,
// else a non-empty `?org=` on the events stream; otherwise `?shard=`'s (0 by
// default, kBadShard unless 0 <= shard < `shards`). Everything else is kNone.
// Pure: thread-safe.
RequestLedger LedgerOfRequest(std::span<const std::string> segments,
                              const std::map<std::string, std::string>& query,
                              const std::optional<std::string>& scoped_org, int shards);

class Service {
 public:
  // Serves the Billings `ledgers` picks; `ledgers` must outlive the Service.
  Service(const Ledgers& ledgers, Metrics& metrics, ServiceOptions options);
  // A single ledgerd: serves `billing` (which must outlive the Service) as shard 0.
  Service(projections::Billing& billing, Metrics& metrics, ServiceOptions options);
  void Handle(HttpRequest&& request, Respond respond);
  // The server's HeaderCheck (http_server.h): judges a request from its head
  // before its body is read. 401 without a valid token, 403 for a POST by a
  // role that may not post, 415 for a POST whose Content-Type is not
  // application/json or application/x-ndjson (so that a browser's form or
  // no-cors fetch cannot post); nullopt otherwise. Thread-safe.
  std::optional<HttpReply> CheckHeaders(const HttpRequest& head) const;

  // The one org the request's token is scoped to, if any: what a cluster's
  // front passes to LedgerOfRequest, as PickLedger does. Thread-safe.
  std::optional<std::string> ScopedOrg(const HttpRequest& head) const;

  void set_ready(bool ready) { ready_ = ready; }
  // Finishes the heavy requests under way and stops the worker pool. Call it
  // after the HTTP server has stopped and before it is destroyed: a worker
  // that still held a request would otherwise drop its connection after the
  // server's io_context was gone.
  void StopHeavyWork() { heavy_.Stop(); }
  void set_kafka_bootstrap(std::string bootstrap);

  // The route table (service/routes.cc) without its handlers, in match order:
  // what tests and tools compare with service/openapi.json. Thread-safe.
  static std::span<const RouteSpec> RouteTable();

 private:
  struct Call;
  // A handler computes its reply (`AnswerFn`), or replies by itself, maybe
  // later from another thread (`HandleFn`: ingest answers once durable).
  using AnswerFn = HttpReply (Service::*)(Call&);
  using HandleFn = void (Service::*)(Call&);
  struct Route {
    RouteSpec spec;
    std::variant<AnswerFn, HandleFn> handler;
  };
  // The table: one row per route, first match wins (service/routes.cc).
  static const std::vector<Route>& Routes();

  // Installs the metrics collectors; both constructors end here.
  void Init();
  void Serve(Call& call);
  // Sets call.billing for a route that reads a ledger (org routes, the
  // whole-ledger routes, ingest); the refusal otherwise: 400 for a bad
  // `shard`, 503 with Retry-After when this instance does not serve it now.
  // The rule is LedgerOfRequest's, on the target's `segments`.
  std::optional<HttpReply> PickLedger(const RouteSpec& spec, std::span<const std::string> segments,
                                      Call& call) const;
  // 401 without a valid token where the path needs one, 403 when the
  // matched route's access does not admit the token (or its org scope does
  // not hold the path's {org}); nullopt to go on. Sets *principal.
  std::optional<HttpReply> Authorize(const RouteMatch& match, std::string_view authorization,
                                     std::optional<Principal>* principal) const;
  // Serves a cached org answer when the org has not changed, else runs it.
  void ServeOrgAnswer(const Route& route, Call& call);
  // Runs the route's handler where its Cost says, and replies.
  void Run(const Route& route, Call& call);
  void Invoke(const Route& route, Call& call);
  // Runs `work` on the worker pool (http/worker_pool.h), never on an I/O
  // thread; answers 503 with Retry-After when the pool's queue is full.
  // `call` is moved from: the caller returns at once.
  void OffIoThread(Call& call, std::function<void(Call&)> work);

  // ---- Handlers, one per row of the table.
  HttpReply Healthz(Call& call);
  HttpReply Readyz(Call& call);
  HttpReply WebPage(Call& call);
  HttpReply WebFile(Call& call);
  HttpReply OpenApi(Call& call);
  HttpReply MetricsText(Call& call);
  void PostEvents(Call& call);
  void Retry(Call& call);
  // GET /v1/orgs/{org}: cost centers, workspaces and providers with names.
  HttpReply Structure(Call& call);
  HttpReply Dashboard(Call& call);
  HttpReply Alerts(Call& call);
  HttpReply UsageHistory(Call& call);
  HttpReply UsageMonth(Call& call);
  // The month's conservation proof (projections/proof.h).
  HttpReply UsageMonthProof(Call& call);
  HttpReply UsageMonthCsv(Call& call);
  HttpReply UsageItem(Call& call);
  // GET .../items/{item_id}/events and .../invoices/{invoice_id}/events: the
  // explain index's page (projections/explain.h) as NDJSON.
  HttpReply UsageItemEvents(Call& call);
  HttpReply InvoiceEvents(Call& call);
  HttpReply Invoices(Call& call);
  HttpReply Invoice(Call& call);
  HttpReply InvoiceCsv(Call& call);
  HttpReply InvoicePdf(Call& call);
  HttpReply LedgerEvents(Call& call);
  HttpReply Verify(Call& call);
  // GET /v1/cluster: the instances and each shard's owner and head.
  HttpReply Cluster(Call& call);
  HttpReply Rejected(Call& call);
  HttpReply WebhookDeliveries(Call& call);
  HttpReply WebhookRetry(Call& call);

  void IngestBody(Call& call, events::BodyFormat format);
  // The org's snapshot (as of `as_of` when given) for an org answer, with
  // only the aggregates `scope` names; kUnknownOrg when there is no such org.
  Result<projections::OrgSnapshot> OpenOrg(Call& call, const projections::ReplayScope& scope);
  // The same at the head, whatever `as_of` says (routes that read the past
  // from the head's explain index).
  Result<projections::OrgSnapshot> OpenOrgAtHead(Call& call);
  // Renders an explanation's lines, each with its ledger event, from the
  // head's view (an as_of page is the index read up to that sequence).
  HttpReply ExplainAnswer(Call& call, const projections::View& view,
                          const Result<std::vector<projections::Contribution>>& lines,
                          projections::LineKind kind);
  // A month's line-level rows (projections/export.h) as CSV, optionally one invoice's.
  HttpReply CsvAnswer(Call& call, Month month, const std::optional<std::string>& invoice_id);
  // The invoice's JSON answer, seal included; kNotFound when there is none.
  Result<nlohmann::ordered_json> InvoiceAnswer(Call& call, const std::string& invoice_id);
  // A final invoice's stored seal (kUnavailable while it is missing); nullopt for a draft.
  Result<std::optional<projections::InvoiceSeal>> SealOf(
      const Call& call, const projections::InvoiceSummary& invoice) const;

  // Set by the single-ledger constructor only; ledgers_ points at it then.
  std::unique_ptr<const SingleLedger> owned_ledgers_;
  const Ledgers* ledgers_;
  Metrics& metrics_;
  ServiceOptions options_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> ingest_failing_{false};  // the last ingest write failed
  std::shared_ptr<const std::string> kafka_bootstrap_;

  struct CachedAnswer {
    // The Billing the answer came from: an org's version counts in one
    // Billing only (a cluster may open another for the same shard).
    const projections::Billing* billing = nullptr;
    std::string org;
    uint64_t version = 0;
    std::string route;
    std::string body;
    std::string content_type;              // JSON, or text/csv for the export routes
    std::list<std::string>::iterator age;  // its place in cache_order_
  };
  void CacheAnswer(std::string key, CachedAnswer answer);
  std::mutex cache_mu_;
  // Keyed by the org, the path below it and only the query parameters that
  // change an answer (CacheKey), so `?r=1`, `?r=2`... share one entry.
  std::unordered_map<std::string, CachedAnswer> cache_;
  std::list<std::string> cache_order_;  // keys, oldest first
  size_t cache_bytes_ = 0;
  // Declared last, so destroyed first: its queued tasks still run and need
  // everything above.
  WorkerPool heavy_{kHeavyWorkerThreads, kHeavyQueueTasksMax};
};

}  // namespace billing::api
