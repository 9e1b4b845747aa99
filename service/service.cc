#include "service/service.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <variant>

#include "documents/invoice_pdf.h"
#include "http/request_gate.h"
#include "http/target.h"
#include "ledger/hash_chain.h"
#include "ledger/prepare.h"
#include "projections/answer_json.h"
#include "projections/export.h"
#include "projections/proof.h"
#include "service/openapi_document.h"
#include "service/web_assets.h"

namespace billing::api {

namespace {

using Json = nlohmann::ordered_json;
using projections::MonthRange;
using projections::OrgSnapshot;

constexpr int kDashboardMonthsDefault = 6;
constexpr int kHistoryMonthsDefault = 12;

std::string Dump(const Json& j) {
  // Raw bytes of a rejected binary message need not be UTF-8: replace, never throw.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

HttpReply JsonReply(int status, const Json& body) {
  HttpReply r;
  r.status = status;
  r.body = Dump(body);
  return r;
}

HttpReply Error(int status, std::string_view code, const std::string& message) {
  return JsonReply(status, Json{{"error", Json{{"code", code}, {"message", message}}}});
}

int HttpStatusOf(Code code) {
  switch (code) {
    case Code::kOk:
      return 200;
    case Code::kNotFound:
    case Code::kUnknownOrg:
    case Code::kUnknownCostCenter:
    case Code::kUnknownEvent:
      return 404;
    case Code::kConflict:
      return 409;
    case Code::kUnavailable:
    case Code::kOverloaded:
      return 503;
    case Code::kTooLarge:
      return 413;
    case Code::kCorruption:
    case Code::kInternal:
      return 500;
    default:
      return 400;
  }
}

HttpReply ErrorOf(const Status& s) {
  HttpReply r = Error(HttpStatusOf(s.code()), CodeName(s.code()), s.message());
  if (s.code() == Code::kOverloaded)
    r.headers.emplace_back("Retry-After", std::to_string(kHeavyRetryAfterSeconds));
  return r;
}

bool ParseUint(const std::string& s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

std::string Money(Sum v) { return FormatNanos(v); }

std::string SourceKind(const ledger::Source& s) {
  return s.kind() == ledger::Source::KAFKA ? "kafka" : "http";
}

Json SourceJson(const ledger::Source& s) {
  Json j{{"kind", SourceKind(s)}};
  if (s.kind() == ledger::Source::KAFKA) {
    j["topic"] = s.topic();
    j["partition"] = s.partition();
    j["offset"] = s.offset();
  } else {
    j["topic"] = nullptr;
    j["partition"] = nullptr;
    j["offset"] = nullptr;
  }
  if (!s.principal().empty()) j["principal"] = s.principal();
  return j;
}

std::string StatusWord(bool closed) { return closed ? "closed" : "open"; }

using projections::InvoiceSummaryJson;

}  // namespace

namespace {

// Route labels for metrics, index 0 for requests no route matched; Call::route
// holds one of these.
const std::vector<std::string>& RouteNames() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names{"unknown"};
    for (const RouteSpec& r : Service::RouteTable()) {
      if (std::find(names.begin(), names.end(), r.name) == names.end()) names.emplace_back(r.name);
    }
    return names;
  }();
  return kNames;
}

int RouteIndex(const std::string& route) {
  const auto& names = RouteNames();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == route) return static_cast<int>(i);
  }
  return 0;
}

}  // namespace

struct Service::Call {
  HttpRequest request;
  Respond respond;
  Metrics* metrics = nullptr;
  std::string route = "unknown";
  PathParams params;  // the matched pattern's {name} parts
  // The Billing this call reads or writes (PickLedger); nullptr on the
  // routes that read no ledger.
  projections::Billing* billing = nullptr;
  std::map<std::string, std::string> query;
  std::optional<Principal> principal;  // set when access control is on
  // The read models' view an org answer was computed from: its status() says
  // whether every read succeeded (projections/store.h).
  std::shared_ptr<const projections::View> view;
  // Where an org answer is cached, once computed (ServeOrgAnswer).
  struct CacheSlot {
    std::string key;
    uint64_t version = 0;
  };
  std::optional<CacheSlot> cache;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  void Reply(HttpReply reply) {
    metrics->Request(RouteIndex(route), reply.status,
                     std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count());
    respond(std::move(reply));
  }
  std::optional<std::string> Param(const std::string& name) const {
    auto it = query.find(name);
    if (it == query.end()) return std::nullopt;
    return it->second;
  }
  const std::string& Org() const { return params.Get("org"); }
};

namespace {

// The boundary between our code and a thread that is not ours to end (an I/O
// thread, a worker, the ledger's writer): an exception stops here, is logged
// once with the request it broke, and becomes a 500 (or the end of a stream).
// A template so that it takes the private Service::Call by deduction.
template <typename CallT>
void LogInternalError(const CallT& call, const char* what) noexcept {
  std::fprintf(stderr, "ledgerd: internal error on %s %s: %s\n", call.request.method.c_str(),
               call.request.target.c_str(), what);
}

// Runs `answer` (which replies to `call`) and turns an exception into a 500.
template <typename CallT, typename Answer>
void AnswerGuarded(CallT& call, Answer&& answer) noexcept {
  try {
    answer();
    return;
  } catch (const std::exception& e) {
    LogInternalError(call, e.what());
  } catch (...) {
    LogInternalError(call, "an exception that is not a std::exception");
  }
  try {
    call.Reply(Error(500, "internal", "internal error"));
  } catch (...) {
    // Nothing more can be said to this client; the log line above stands.
  }
}

// The last line of an NDJSON stream that an exception cut short: the status
// line is long gone, so the client learns from this why the stream ends here.
constexpr std::string_view kStreamInternalErrorLine =
    "{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}\n";

// Wraps a streamed body's producer (it runs on a worker or an I/O thread
// after the status line went out): an exception ends the stream with
// kStreamInternalErrorLine and one log line.
template <typename CallT>
std::function<bool(std::string*)> GuardedStream(const CallT& call,
                                                std::function<bool(std::string*)> produce) {
  return [method = call.request.method, target = call.request.target,
          produce = std::move(produce)](std::string* chunk) noexcept {
    auto log = [&](const char* what) {
      std::fprintf(stderr, "ledgerd: internal error streaming %s %s: %s\n", method.c_str(),
                   target.c_str(), what);
    };
    try {
      return produce(chunk);
    } catch (const std::exception& e) {
      log(e.what());
    } catch (...) {
      log("an exception that is not a std::exception");
    }
    try {
      chunk->append(kStreamInternalErrorLine);
    } catch (...) {
      // Out of memory: the stream just ends.
    }
    return false;
  };
}

}  // namespace

Service::Service(const Ledgers& ledgers, Metrics& metrics, ServiceOptions options)
    : ledgers_(&ledgers), metrics_(metrics), options_(std::move(options)) {
  Init();
}

Service::Service(projections::Billing& billing, Metrics& metrics, ServiceOptions options)
    : owned_ledgers_(std::make_unique<SingleLedger>(billing)),
      ledgers_(owned_ledgers_.get()),
      metrics_(metrics),
      options_(std::move(options)) {
  Init();
}

void Service::Init() {
  metrics_.SetRoutes(RouteNames());
  metrics_.AddCollector([this](Metrics& m) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    m.Set("ledger_answer_cache_entries", "", static_cast<int64_t>(cache_.size()));
    m.Set("ledger_answer_cache_bytes", "", static_cast<int64_t>(cache_bytes_));
  });
  // Rejections dropped from an org's full quota (ledger::kRejectedPerOrgMax),
  // oldest first, summed over the shards served here, each since its ledger
  // was opened: a shard that moves away takes its count along, as it takes
  // its rejected store (a single ledgerd has one shard, so nothing changes).
  metrics_.AddCollector([this](Metrics& m) {
    m.Set("ledger_heavy_queued", "", static_cast<int64_t>(heavy_.queued()));
    uint64_t dropped = 0;
    for (int shard = 0; shard < ledgers_->shards(); ++shard) {
      if (const projections::Billing* b = ledgers_->ForShard(shard))
        dropped += b->ledger().rejected_dropped();
    }
    m.Set("ledger_rejected_dropped", "", static_cast<int64_t>(dropped));
  });
}

void Service::set_kafka_bootstrap(std::string bootstrap) {
  std::atomic_store(&kafka_bootstrap_, std::make_shared<const std::string>(std::move(bootstrap)));
}

void Service::Handle(HttpRequest&& request, Respond respond) {
  auto call = std::make_shared<Call>();
  call->request = std::move(request);
  call->respond = std::move(respond);
  call->metrics = &metrics_;
  // Nothing may escape into the server; the call may not have answered yet.
  AnswerGuarded(*call, [&] { Serve(*call); });
}

void Service::OffIoThread(Call& call, std::function<void(Call&)> work) {
  auto shared = std::make_shared<Call>(std::move(call));
  bool queued = heavy_.TrySubmit(
      [shared, work = std::move(work)] { AnswerGuarded(*shared, [&] { work(*shared); }); });
  if (!queued) {
    shared->Reply(ErrorOf(
        Status(Code::kOverloaded, "the service is busy with heavy requests; retry shortly")));
  }
}

// ---- The router: the table decides 404, 405, 401 and 403; then the route's
// Cost decides the thread its handler runs on.

void Service::Serve(Call& call) {
  auto parsed = ParseTarget(call.request.target);
  if (!parsed.ok()) return call.Reply(Error(400, "invalid_argument", parsed.status().message()));
  call.query = std::move(parsed->query);
  RouteMatch match = FindRoute(RouteTable(), call.request.method, parsed->segments);
  if (match.path_index) call.route = std::string(RouteTable()[*match.path_index].name);
  // The token is checked before 404 and 405, so that without one nothing
  // tells which paths exist beyond the public ones.
  if (auto refused = Authorize(match, call.request.authorization, &call.principal)) {
    return call.Reply(std::move(*refused));
  }
  if (!match.index) {
    if (match.allow.empty())
      return call.Reply(Error(404, "not_found", "no route for " + std::string(parsed->path)));
    HttpReply r = Error(405, "method_not_allowed",
                        call.request.method + " is not allowed here; use " + match.allow);
    r.headers.emplace_back("Allow", match.allow);
    return call.Reply(std::move(r));
  }
  call.params = std::move(match.params);
  const Route& route = Routes()[*match.index];
  if (auto refused = PickLedger(route.spec, parsed->segments, call)) {
    return call.Reply(std::move(*refused));
  }
  if (route.spec.access == Access::kOrgReader) return ServeOrgAnswer(route, call);
  Run(route, call);
}

std::optional<HttpReply> Service::Authorize(const RouteMatch& match, std::string_view authorization,
                                            std::optional<Principal>* principal) const {
  const auto& table = RouteTable();
  if (!options_.tokens) return std::nullopt;
  if (match.path_index && table[*match.path_index].access == Access::kPublic) return std::nullopt;
  *principal = options_.tokens->Authenticate(authorization);
  if (!*principal) {
    HttpReply r =
        Error(401, "unauthenticated", "a valid `Authorization: Bearer <token>` is required");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  if (!match.index) return std::nullopt;  // 404 or 405 follows
  const RouteSpec& spec = table[*match.index];
  if (!RoleMay(spec.access, (*principal)->role)) {
    return Error(403, "permission_denied", "this token's role may not do that");
  }
  if (spec.access == Access::kOrgReader && !(*principal)->CanSeeOrg(match.params.Get("org"))) {
    return Error(403, "permission_denied", "this token may not see that organization");
  }
  return std::nullopt;
}

std::optional<std::string> Service::ScopedOrg(const HttpRequest& head) const {
  if (!options_.tokens) return std::nullopt;
  std::optional<Principal> principal = options_.tokens->Authenticate(head.authorization);
  return principal ? principal->org : std::nullopt;
}

// Header-time checks (issue 13): the table's rules, judged from the head
// alone so that a refused request's body is never read.
std::optional<HttpReply> Service::CheckHeaders(const HttpRequest& head) const {
  // Serve would answer the same 400, but only after reading the body.
  auto parsed = ParseTarget(head.target);
  if (!parsed.ok()) return Error(400, "invalid_argument", parsed.status().message());
  RouteMatch match = FindRoute(RouteTable(), head.method, parsed->segments);
  const RouteSpec* route = match.index ? &RouteTable()[*match.index] : nullptr;
  // Only ingest reads a body (a retry re-drives a stored message). Any other
  // body would be read for nothing, and on the public routes it would let
  // anyone hold the shared body budget.
  if (head.has_body && (!route || route->body == Body::kNone)) {
    return Error(400, "invalid_argument", "this route takes no request body with " + head.method);
  }
  std::optional<Principal> principal;
  if (auto refused = Authorize(match, head.authorization, &principal)) return refused;
  // So that a browser's form or no-cors fetch cannot post.
  if (route && route->method == "POST" && !IsJsonMediaType(head.content_type)) {
    return Error(415, "unsupported_media_type",
                 "a POST needs Content-Type application/json (one event or an array) or "
                 "application/x-ndjson");
  }
  return std::nullopt;
}

RequestLedger LedgerOfRequest(std::span<const std::string> segments,
                              const std::map<std::string, std::string>& query,
                              const std::optional<std::string>& scoped_org, int shards) {
  RequestLedger which;
  auto org = [&which](std::string name) {
    which.kind = RequestLedger::Kind::kOrg;
    which.org = std::move(name);
    return which;
  };
  if (segments.size() < 2 || segments[0] != "v1") return which;
  if (segments[1] == "orgs") return segments.size() >= 3 ? org(segments[2]) : which;
  if (segments[1] != "ledger") return which;
  // An answer filtered to one org reads that org's shard whatever `shard`
  // says: no other shard holds a record of it. Verify reads a whole chain
  // whoever asks; the stream's empty `org` filters nothing.
  const bool verify = segments.size() == 3 && segments[2] == "verify";
  if (scoped_org && !verify) return org(*scoped_org);
  const bool stream = segments.size() == 3 && segments[2] == "events";
  if (auto param = query.find("org"); stream && param != query.end() && !param->second.empty()) {
    return org(param->second);
  }
  which.kind = RequestLedger::Kind::kShard;
  if (auto text = query.find("shard"); text != query.end()) {
    uint64_t n = 0;
    if (!ParseUint(text->second, &n) || n >= static_cast<uint64_t>(shards)) {
      which.kind = RequestLedger::Kind::kBadShard;
      return which;
    }
    which.shard = static_cast<int>(n);
  }
  return which;
}

namespace {

// A shard that moved away between the front's decision and the handler: the
// client retries and the front, its table caught up, sends it to the new owner.
HttpReply NotServedHere(const std::string& what) {
  HttpReply r =
      Error(503, "unavailable", what + " is not served by this instance now; retry shortly");
  r.headers.emplace_back("Retry-After", std::to_string(kShardMovedRetryAfterSeconds));
  return r;
}

}  // namespace

std::optional<HttpReply> Service::PickLedger(const RouteSpec& spec,
                                             std::span<const std::string> segments,
                                             Call& call) const {
  if (spec.body == Body::kEvents) {
    // A single ledgerd's one ledger is shard 0. In a cluster the events go to
    // options_.ingest, which splits them by shard (docs/CLUSTER.md, "Serving").
    if (options_.ingest) return std::nullopt;
    call.billing = ledgers_->ForShard(0);
    if (call.billing == nullptr) return NotServedHere("shard 0");
    return std::nullopt;
  }
  std::optional<std::string> scoped_org;
  if (call.principal) scoped_org = call.principal->org;
  RequestLedger which = LedgerOfRequest(segments, call.query, scoped_org, ledgers_->shards());
  switch (which.kind) {
    case RequestLedger::Kind::kNone:
      return std::nullopt;
    case RequestLedger::Kind::kOrg:
      call.billing = ledgers_->ForOrg(which.org);
      if (call.billing == nullptr) return NotServedHere("organization " + which.org);
      return std::nullopt;
    case RequestLedger::Kind::kShard:
      call.billing = ledgers_->ForShard(which.shard);
      if (call.billing == nullptr) return NotServedHere("shard " + std::to_string(which.shard));
      return std::nullopt;
    case RequestLedger::Kind::kBadShard:
      break;
  }
  return Error(400, "invalid_argument",
               "shard must be a whole number from 0 to " + std::to_string(ledgers_->shards() - 1));
}

namespace {

// Whether this call's work belongs on the worker pool (routes.h, Cost).
bool IsHeavy(Cost cost, const HttpRequest& request,
             const std::map<std::string, std::string>& query) {
  switch (cost) {
    case Cost::kHeavy:
      return true;
    case Cost::kHeavyAsOf:
      return query.count("as_of") > 0;
    case Cost::kHeavyBody:
      return request.body.size() > kInlineBodyBytesMax;
    case Cost::kInline:
    case Cost::kStreamed:
      return false;
  }
  return false;
}

// The query parameters any org route reads; others cannot change an answer.
constexpr std::array<std::string_view, 8> kAnswerParams = {
    "after", "as_of", "cost_center", "end", "format", "limit", "month", "months"};

std::string CacheKey(std::string_view route, const std::string& org_id, const std::string& path,
                     const std::map<std::string, std::string>& query) {
  // Values may hold any byte once decoded; a NUL cannot occur in a target's
  // decoded text without %00, so length-prefix them instead.
  std::string key;
  auto add = [&key](std::string_view part) {
    key += std::to_string(part.size());
    key += ':';
    key += part;
  };
  add(org_id);
  add(route);
  add(path);
  key += '?';
  for (std::string_view name : kAnswerParams) {
    if (auto it = query.find(std::string(name)); it != query.end()) {
      add(name);
      add(it->second);
    }
  }
  return key;
}

}  // namespace

void Service::Run(const Route& route, Call& call) {
  if (!IsHeavy(route.spec.cost, call.request, call.query)) return Invoke(route, call);
  OffIoThread(call, [this, &route](Call& c) { Invoke(route, c); });
}

void Service::Invoke(const Route& route, Call& call) {
  if (const HandleFn* handle = std::get_if<HandleFn>(&route.handler)) return (this->**handle)(call);
  HttpReply reply = (this->*std::get<AnswerFn>(route.handler))(call);
  if (call.view) {
    // A failed read computes an answer with something missing (a 200 with a
    // smaller bill, or a 404): never serve or cache it.
    if (Status read = call.view->status(); !read.ok()) reply = ErrorOf(read);
  }
  if (route.spec.cost == Cost::kStreamed && reply.stream) {
    reply.offload = [this](std::function<void()> task) {
      return heavy_.TrySubmit(std::move(task));
    };
  }
  if (call.cache && reply.status == 200 && reply.body.size() <= kResponseCacheEntryBytesMax) {
    CachedAnswer answer{call.billing,       call.Org(), call.cache->version, call.route, reply.body,
                        reply.content_type, {}};
    CacheAnswer(std::move(call.cache->key), std::move(answer));
  }
  call.Reply(std::move(reply));
}

void Service::ServeOrgAnswer(const Route& route, Call& call) {
  // Answers are cached per normalized request and served while the org's
  // version is unchanged; the version is read before computing, so an event
  // committed meanwhile can only make the stored entry unusable, never wrong.
  const std::string& org_id = call.Org();
  uint64_t version = call.billing->OrgVersion(org_id);
  std::string key =
      CacheKey(route.spec.name, org_id,
               call.request.target.substr(0, call.request.target.find('?')), call.query);
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.billing == call.billing && it->second.version == version &&
        it->second.org == org_id) {
      call.route = it->second.route;
      HttpReply r;
      r.body = it->second.body;
      r.content_type = it->second.content_type;
      return call.Reply(std::move(r));
    }
  }
  call.cache = Call::CacheSlot{std::move(key), version};
  Run(route, call);
}

void Service::CacheAnswer(std::string key, CachedAnswer answer) {
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto drop = [this](std::unordered_map<std::string, CachedAnswer>::iterator it) {
    cache_bytes_ -= it->first.size() + it->second.body.size();
    cache_order_.erase(it->second.age);
    cache_.erase(it);
  };
  if (auto it = cache_.find(key); it != cache_.end()) drop(it);
  const size_t bytes = key.size() + answer.body.size();
  while (!cache_order_.empty() && (cache_.size() >= kResponseCacheEntriesMax ||
                                   cache_bytes_ + bytes > kResponseCacheBytesMax)) {
    drop(cache_.find(cache_order_.front()));
  }
  cache_order_.push_back(key);
  answer.age = std::prev(cache_order_.end());
  cache_bytes_ += bytes;
  cache_.emplace(std::move(key), std::move(answer));
}

// ---- Probes, the web page and the contract: public.

HttpReply Service::Healthz(Call& call) {
  auto bootstrap = std::atomic_load(&kafka_bootstrap_);
  Json j{{"status", "ok"}, {"kafka_bootstrap", nullptr}};
  if (bootstrap) j["kafka_bootstrap"] = *bootstrap;
  return JsonReply(200, j);
}

HttpReply Service::Readyz(Call& call) {
  if (!ready_) return Error(503, "unavailable", "read models are not caught up yet");
  return JsonReply(200, Json{{"status", "ready"}});
}

HttpReply Service::WebPage(Call& call) {
  call.params.Add("file", "index.html");
  return WebFile(call);
}

HttpReply Service::WebFile(Call& call) {
  auto asset = FindWebAsset(call.params.Get("file"));
  if (!asset) return Error(404, "not_found", "no such file");
  HttpReply r;
  r.content_type = std::string(asset->content_type);
  r.body = std::string(asset->bytes);
  r.headers.emplace_back("Cache-Control", "no-cache");
  // The page loads only its own files and is never framed (clickjacking);
  // its script builds the DOM without inline code or styles.
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                         "base-uri 'none'; form-action 'none'");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  return r;
}

// The contract is public like the web page that follows it: it names routes
// and shapes, never data, and a client needs it before it has a token.
HttpReply Service::OpenApi(Call& call) {
  HttpReply r;
  r.body = std::string(OpenApiDocument());
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

HttpReply Service::MetricsText(Call& call) {
  HttpReply r;
  r.content_type = "text/plain; version=0.0.4";
  r.body = metrics_.Render();
  return r;
}

namespace {

// Renders an append's outcomes as the SPEC's POST /v1/events answer.
// `failing` remembers whether the last write failed, so that the log says
// once when writes start failing (a full disk, an I/O error) and once when
// they work again, not once for each of thousands of refused requests.
HttpReply IngestReply(const ledger::AppendResult& result, const std::vector<std::string>& event_ids,
                      Metrics& metrics, std::atomic<bool>& failing) {
  if (result.status.code() == Code::kOverloaded) {
    metrics.Count("ledger_ingest_failures_total", "code=\"overloaded\"");
    return ErrorOf(result.status);
  }
  if (!result.status.ok()) {
    metrics.Count("ledger_ingest_failures_total",
                  "code=\"" + std::string(CodeName(result.status.code())) + "\"");
    if (!failing.exchange(true)) {
      std::fprintf(stderr,
                   "ledgerd: cannot write to the ledger, answering 503 to ingest until a write "
                   "succeeds: %s\n",
                   result.status.ToString().c_str());
    }
    return Error(503, "unavailable", "nothing was recorded: " + result.status.message());
  }
  if (failing.exchange(false))
    std::fprintf(stderr, "ledgerd: writes to the ledger succeed again\n");
  uint64_t accepted = 0, duplicates = 0;
  Json rejected = Json::array();
  std::map<std::string, uint64_t> by_code;
  for (size_t i = 0; i < result.outcomes.size(); ++i) {
    const ledger::Outcome& o = result.outcomes[i];
    if (o.kind == ledger::Outcome::Kind::kAccepted) {
      ++accepted;
    } else if (o.kind == ledger::Outcome::Kind::kDuplicate) {
      ++duplicates;
    } else {
      by_code[std::string(CodeName(o.code))]++;
      rejected.push_back(
          Json{{"index", i},
               {"event_id", event_ids[i].empty() ? Json(nullptr) : Json(event_ids[i])},
               {"code", CodeName(o.code)},
               {"message", o.message}});
    }
  }
  metrics.Count("ledger_events_accepted_total", "", accepted);
  metrics.Count("ledger_events_duplicate_total", "", duplicates);
  for (const auto& [code, n] : by_code)
    metrics.Count("ledger_events_rejected_total", "code=\"" + code + "\"", n);
  return JsonReply(200, Json{{"accepted", accepted},
                             {"duplicates", duplicates},
                             {"rejected", std::move(rejected)},
                             {"last_sequence", result.last_sequence.value}});
}

std::optional<events::BodyFormat> BodyFormatOf(std::string content_type) {
  if (auto semi = content_type.find(';'); semi != std::string::npos) content_type.resize(semi);
  while (!content_type.empty() && content_type.back() == ' ') content_type.pop_back();
  std::transform(content_type.begin(), content_type.end(), content_type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // No Content-Type is refused: a browser's cross-site `no-cors` POST can send
  // a body without one (or as text/plain), and must not be able to post events.
  if (content_type == "application/json") return events::BodyFormat::kJson;
  if (content_type == "application/x-ndjson" || content_type == "application/ndjson" ||
      content_type == "application/jsonl" || content_type == "application/x-jsonlines") {
    return events::BodyFormat::kNdjson;
  }
  return std::nullopt;
}

}  // namespace

void Service::PostEvents(Call& call) {
  auto format = BodyFormatOf(call.request.content_type);
  if (!format) {
    return call.Reply(
        Error(415, "unsupported_media_type",
              "send application/json (one event or an array) or application/x-ndjson"));
  }
  IngestBody(call, *format);
}

// Splits and parses a body, then queues it for the ledger's writer; the
// answer comes from the writer once the events are durable. A full append
// queue is 503 with Retry-After, never a blocked thread.
void Service::IngestBody(Call& call, events::BodyFormat format) {
  auto raws = events::SplitBody(call.request.body, format);
  if (!raws.ok()) {
    if (raws.status().code() == Code::kTooLarge) {
      return call.Reply(Error(413, "payload_too_large", raws.status().message()));
    }
    return call.Reply(Error(400, "invalid_argument", raws.status().message()));
  }
  ledger::Source source;
  source.set_kind(ledger::Source::HTTP);
  if (call.principal) source.set_principal(call.principal->name);
  ledger::AppendRequest request;
  request.entries.reserve(raws->size());
  std::vector<std::string> event_ids;
  event_ids.reserve(raws->size());
  for (events::RawEvent& raw : *raws) {
    ledger::Entry entry = ledger::PrepareEntry(std::move(raw.bytes), source);
    if (call.principal && !entry.org_id.empty() && !call.principal->CanSeeOrg(entry.org_id)) {
      return call.Reply(Error(403, "permission_denied",
                              "this token may not write events of organization " + entry.org_id));
    }
    event_ids.push_back(entry.event_id);
    request.entries.push_back(std::move(entry));
  }
  auto shared = std::make_shared<Call>(std::move(call));
  if (options_.ingest) {
    const HttpRequest& head = shared->request;
    return options_.ingest(std::move(request.entries), head, [shared, this](HttpReply reply) {
      AnswerGuarded(*shared, [&] { shared->Reply(std::move(reply)); });
    });
  }
  shared->billing->SubmitAsync(
      std::move(request),
      // Runs on the ledger's writer thread, which an exception would end.
      [shared, ids = std::move(event_ids), this](ledger::AppendResult r) {
        AnswerGuarded(*shared,
                      [&] { shared->Reply(IngestReply(r, ids, metrics_, ingest_failing_)); });
      },
      ledger::Ledger::WhenQueueFull::kRefuse);
}

void Service::Retry(Call& call) {
  if (options_.ingest && !options_.redrive) {
    // A re-drive appended here would be in this copy of the shard only, not
    // in its log: another instance rebuilding the shard would lack it. (A
    // cluster instance always sets both; this guards a wiring mistake.)
    return call.Reply(Error(500, "internal", "re-driving is not wired in this instance"));
  }
  uint64_t id = 0;
  if (!ParseUint(call.params.Get("id"), &id))
    return call.Reply(Error(404, "not_found", "no such rejected message"));
  auto rec = call.billing->ledger().GetRejected(id);
  if (!rec.ok()) return call.Reply(ErrorOf(rec.status()));
  if (!rec->has_value() || (call.principal && !call.principal->CanSeeOrg((*rec)->org_id()))) {
    return call.Reply(Error(404, "not_found", "no rejected message " + std::to_string(id)));
  }
  if ((*rec)->raw_truncated()) {
    // Only a prefix of the message was kept: parsing it would judge another message.
    return call.Reply(Error(409, "raw_truncated",
                            "rejected message " + std::to_string(id) + " kept only " +
                                std::to_string((*rec)->raw().size()) + " of its " +
                                std::to_string((*rec)->raw_bytes()) +
                                " bytes, so it cannot be re-driven; send the event again"));
  }
  ledger::Entry entry = ledger::PrepareEntry((*rec)->raw(), (*rec)->source());
  entry.redrive_of = id;
  if (options_.redrive) {
    // A cluster: the shard's log carries the re-drive, so that every copy of
    // the shard re-judges the same rejection at the same point.
    int shard = 0;
    while (shard < ledgers_->shards() && ledgers_->ForShard(shard) != call.billing) shard++;
    if (shard == ledgers_->shards()) return call.Reply(NotServedHere("the shard"));
    auto shared = std::make_shared<Call>(std::move(call));
    return options_.redrive(shard, std::move(entry),
                            [shared](HttpReply reply) { shared->Reply(std::move(reply)); });
  }
  std::vector<std::string> ids{entry.event_id};
  ledger::AppendRequest request;
  request.entries.push_back(std::move(entry));
  auto shared = std::make_shared<Call>(std::move(call));
  shared->billing->SubmitAsync(
      std::move(request),
      // Runs on the ledger's writer thread, which an exception would end.
      [shared, ids, this](ledger::AppendResult r) {
        AnswerGuarded(*shared,
                      [&] { shared->Reply(IngestReply(r, ids, metrics_, ingest_failing_)); });
      },
      ledger::Ledger::WhenQueueFull::kRefuse);
}

// ---- Org answers: one org's read models, cached per org version.

namespace {

Result<std::optional<ledger::Sequence>> AsOfParam(const std::map<std::string, std::string>& query) {
  auto it = query.find("as_of");
  if (it == query.end()) return std::optional<ledger::Sequence>();
  uint64_t seq = 0;
  if (!ParseUint(it->second, &seq))
    return Status(Code::kInvalidArgument, "as_of must be a ledger sequence number");
  return std::optional<ledger::Sequence>(ledger::Sequence{seq});
}

Result<int> MonthsParam(const std::map<std::string, std::string>& query, int def) {
  auto it = query.find("months");
  if (it == query.end()) return def;
  uint64_t n = 0;
  if (!ParseUint(it->second, &n) || n < 1 || n > static_cast<uint64_t>(projections::kMonthsMax)) {
    return Status(Code::kInvalidArgument, "months must be a whole number from 1 to " +
                                              std::to_string(projections::kMonthsMax));
  }
  return static_cast<int>(n);
}

// The months a list covers: `months` of them, ending at `end` or at the org's
// latest month.
Result<MonthRange> RangeParams(const std::map<std::string, std::string>& query, int months_default,
                               const projections::OrgState& org) {
  Month end = org.LatestMonth();
  if (auto it = query.find("end"); it != query.end()) {
    auto m = ParseMonth(it->second, "end");
    if (!m.ok()) return m.status();
    end = *m;
  }
  auto months = MonthsParam(query, months_default);
  if (!months.ok()) return months.status();
  if (auto first = FirstMonthOfRange(end, *months, "end"); !first.ok()) return first.status();
  return MonthRange{end, *months};
}

}  // namespace

Result<OrgSnapshot> Service::OpenOrg(Call& call, const projections::ReplayScope& scope) {
  auto as_of = AsOfParam(call.query);
  if (!as_of.ok()) return as_of.status();
  // An answer as of a past sequence replays the org; the scope keeps in
  // memory only the aggregates the route reads (projections/keys.h kinds).
  auto snap = call.billing->Snapshot(call.Org(), *as_of, scope);
  if (snap.ok()) call.view = snap->view;
  if (!snap.ok() && snap.status().code() == Code::kNotFound) {
    return Status(Code::kUnknownOrg, "organization " + call.Org() + " is unknown");
  }
  return snap;
}

Result<OrgSnapshot> Service::OpenOrgAtHead(Call& call) {
  auto snap = call.billing->Snapshot(call.Org(), std::nullopt);
  if (snap.ok()) call.view = snap->view;
  if (!snap.ok() && snap.status().code() == Code::kNotFound) {
    return Status(Code::kUnknownOrg, "organization " + call.Org() + " is unknown");
  }
  return snap;
}

// GET /v1/orgs/{org}: the structure with names, for pickers and documents.
HttpReply Service::Structure(Call& call) {
  // The answer reads the structure only: a replay as of a past sequence keeps
  // no aggregate ('-' names no aggregate kind, projections/keys.h).
  auto snap = OpenOrg(call, {.kinds = "-", .month = std::nullopt});
  if (!snap.ok()) return ErrorOf(snap.status());
  const auto& org = *snap->org;
  Json cost_centers = Json::array();
  for (const auto& cc : projections::Structure(org)) {
    Json workspaces = Json::array();
    for (const auto& w : cc.workspaces) {
      Json providers = Json::array();
      for (const auto& p : w.providers) {
        providers.push_back(
            Json{{"provider_id", p.provider_id}, {"name", p.name}, {"kind", p.kind}});
      }
      workspaces.push_back(Json{
          {"workspace_id", w.workspace_id}, {"name", w.name}, {"providers", std::move(providers)}});
    }
    cost_centers.push_back(
        Json{{"cost_center_id", cc.cost_center_id},
             {"name", cc.name},
             {"billing_account", cc.billing_account ? Json(*cc.billing_account) : Json(nullptr)},
             {"workspaces", std::move(workspaces)}});
  }
  return JsonReply(200, Json{{"org_id", org.org_id},
                             {"name", org.name},
                             {"currency", org.currency},
                             {"billing_account", org.billing_account},
                             {"cost_centers", std::move(cost_centers)}});
}

HttpReply Service::Dashboard(Call& call) {
  auto snap = OpenOrg(call, {.kinds = "B", .month = std::nullopt});
  if (!snap.ok()) return ErrorOf(snap.status());
  const auto& org = *snap->org;
  auto range = RangeParams(call.query, kDashboardMonthsDefault, org);
  if (!range.ok()) return ErrorOf(range.status());
  auto cc = call.Param("cost_center");
  if (cc && cc->empty()) cc.reset();
  auto rows = projections::Dashboard(org, *snap->view, *range, cc);
  if (!rows.ok()) return Error(404, "unknown_cost_center", rows.status().message());
  auto minor = [&org](const std::optional<Sum>& v) {
    return v ? Json(FormatNanos(*v, org.minor_digits)) : Json(nullptr);
  };
  Json list = Json::array();
  for (const auto& r : *rows) {
    list.push_back(Json{{"month", FormatMonth(r.month)},
                        {"billed", FormatNanos(r.billed, org.minor_digits)},
                        {"budget", minor(r.budget)},
                        {"forecast", minor(r.forecast)}});
  }
  return JsonReply(
      200, Json{{"org_id", org.org_id}, {"currency", org.currency}, {"months", std::move(list)}});
}

// GET /v1/orgs/{org}/alerts?month=YYYY-MM: budget alerts in the order they
// were raised; every month without `month`.
HttpReply Service::Alerts(Call& call) {
  std::optional<Month> month;
  if (auto text = call.Param("month")) {
    auto parsed = ParseMonth(*text, "month");
    if (!parsed.ok()) return ErrorOf(parsed.status());
    month = *parsed;
  }
  // Alerts are no aggregate: '-' keeps none of them in an as_of replay.
  auto snap = OpenOrg(call, {.kinds = "-", .month = std::nullopt});
  if (!snap.ok()) return ErrorOf(snap.status());
  const auto& org = *snap->org;
  Json alerts = Json::array();
  for (const auto& a : projections::Alerts(org, *snap->view, month)) {
    alerts.push_back(projections::AlertJson(a, org));
  }
  return JsonReply(200, Json{{"alerts", std::move(alerts)}});
}

HttpReply Service::UsageHistory(Call& call) {
  auto snap = OpenOrg(call, {.kinds = "BC", .month = std::nullopt});
  if (!snap.ok()) return ErrorOf(snap.status());
  const auto& org = *snap->org;
  auto range = RangeParams(call.query, kHistoryMonthsDefault, org);
  if (!range.ok()) return ErrorOf(range.status());
  Json list = Json::array();
  for (const auto& h : projections::UsageHistory(org, *snap->view, *range)) {
    list.push_back(Json{{"month", FormatMonth(h.month)},
                        {"status", StatusWord(h.closed)},
                        {"total", FormatNanos(h.total, org.minor_digits)},
                        {"usage", Money(h.usage)},
                        {"support", Money(h.support)},
                        {"credits", Money(h.credits)},
                        {"adjustments", Money(h.adjustments)}});
  }
  return JsonReply(
      200, Json{{"org_id", org.org_id}, {"currency", org.currency}, {"months", std::move(list)}});
}

HttpReply Service::UsageMonth(Call& call) {
  auto month = ParseMonth(call.params.Get("month"), "month");
  if (!month.ok()) return ErrorOf(month.status());
  auto snap = OpenOrg(call, {.kinds = "BI", .month = *month});
  if (!snap.ok()) return ErrorOf(snap.status());
  const auto& org = *snap->org;
  auto d = projections::MonthItems(org, *snap->view, *month);
  Json items = Json::array();
  for (const auto& it : d.items) {
    items.push_back(Json{{"id", it.id},
                         {"category", it.category},
                         {"label", it.label},
                         {"amount", Money(it.amount)},
                         {"drillable", it.drillable}});
  }
  return JsonReply(200, Json{{"month", FormatMonth(d.month)},
                             {"status", StatusWord(d.closed)},
                             {"total", FormatNanos(d.total, org.minor_digits)},
                             {"items", std::move(items)}});
}

// The proof reads the stored read models at one snapshot and replays the
// org's ledger up to the sequence they stand at (projections/proof.h); it
// takes no Billing snapshot, so call.view stays unset and read failures come
// back as its status.
HttpReply Service::UsageMonthProof(Call& call) {
  auto month = ParseMonth(call.params.Get("month"), "month");
  if (!month.ok()) return ErrorOf(month.status());
  auto as_of = AsOfParam(call.query);
  if (!as_of.ok()) return ErrorOf(as_of.status());
  auto proof = projections::ProveMonthOf(call.billing->ledger(), call.Org(), *month, *as_of);
  if (proof.status().code() == Code::kNotFound) {
    return ErrorOf(Status(Code::kUnknownOrg, "organization " + call.Org() + " is unknown"));
  }
  if (!proof.ok()) return ErrorOf(proof.status());
  return JsonReply(200, projections::ProofJson(*proof));
}

HttpReply Service::UsageItem(Call& call) {
  auto month = ParseMonth(call.params.Get("month"), "month");
  if (!month.ok()) return ErrorOf(month.status());
  auto snap = OpenOrg(call, {.kinds = "ID", .month = *month});
  if (!snap.ok()) return ErrorOf(snap.status());
  auto d = projections::ItemChildren(*snap->org, *snap->view, *month, call.params.Get("item_id"));
  if (!d.ok()) return Error(404, "not_found", d.status().message());
  Json children = Json::array();
  for (const auto& c : d->children) {
    children.push_back(Json{{"id", c.id},
                            {"label", c.label},
                            {"amount", Money(c.amount)},
                            {"quantity", c.quantity ? Json(Money(*c.quantity)) : Json(nullptr)},
                            {"unit", c.unit ? Json(*c.unit) : Json(nullptr)},
                            {"drillable", c.drillable}});
  }
  return JsonReply(200, Json{{"id", d->id},
                             {"label", d->label},
                             {"amount", Money(d->amount)},
                             {"children", std::move(children)}});
}

namespace {

// The page an explanation route asks for: `after` (a sequence, default 0),
// `limit` (1..kExplainPageLinesMax, default kExplainPageLinesDefault) and
// `as_of`; kInvalidArgument naming the bad one.
Result<projections::ExplainPage> ExplainPageParams(
    const std::map<std::string, std::string>& query) {
  projections::ExplainPage page;
  if (auto it = query.find("after"); it != query.end()) {
    if (!ParseUint(it->second, &page.after.value))
      return Status(Code::kInvalidArgument, "after must be a ledger sequence number");
  }
  if (auto it = query.find("limit"); it != query.end()) {
    uint64_t limit = 0;
    if (!ParseUint(it->second, &limit) || limit == 0 || limit > projections::kExplainPageLinesMax) {
      return Status(Code::kInvalidArgument, "limit must be a whole number from 1 to " +
                                                std::to_string(projections::kExplainPageLinesMax));
    }
    page.limit = static_cast<size_t>(limit);
  }
  auto as_of = AsOfParam(query);
  if (!as_of.ok()) return as_of.status();
  if (*as_of) page.upto = **as_of;
  return page;
}

}  // namespace

HttpReply Service::UsageItemEvents(Call& call) {
  auto month = ParseMonth(call.params.Get("month"), "month");
  if (!month.ok()) return ErrorOf(month.status());
  auto page = ExplainPageParams(call.query);
  if (!page.ok()) return ErrorOf(page.status());
  // The head's state and view: the index answers any as_of without a replay.
  auto snap = OpenOrgAtHead(call);
  if (!snap.ok()) return ErrorOf(snap.status());
  auto lines = projections::ItemContributions(*snap->org, *snap->view, *month,
                                              call.params.Get("item_id"), *page);
  return ExplainAnswer(call, *snap->view, lines, projections::LineKind::kNode);
}

HttpReply Service::InvoiceEvents(Call& call) {
  auto page = ExplainPageParams(call.query);
  if (!page.ok()) return ErrorOf(page.status());
  auto snap = OpenOrgAtHead(call);
  if (!snap.ok()) return ErrorOf(snap.status());
  auto lines = projections::InvoiceContributions(*snap->org, *snap->view,
                                                 call.params.Get("invoice_id"), *page);
  return ExplainAnswer(call, *snap->view, lines, projections::LineKind::kInvoice);
}

HttpReply Service::ExplainAnswer(Call& call, const projections::View& view,
                                 const Result<std::vector<projections::Contribution>>& lines,
                                 projections::LineKind kind) {
  if (lines.status().code() == Code::kNotFound)
    return Error(404, "not_found", lines.status().message());
  if (!lines.ok()) return ErrorOf(lines.status());
  HttpReply r;
  r.content_type = "application/x-ndjson";
  for (const projections::Contribution& c : *lines) {
    auto record = projections::RecordAt(view, ledger::Sequence{c.sequence});
    if (!record.ok()) return ErrorOf(record.status());
    // The index names only recorded events: a missing one is a read that
    // failed (Invoke answers the view's status) or a damaged store.
    if (!*record) {
      if (!view.status().ok()) return ErrorOf(view.status());
      return ErrorOf(Status(Code::kCorruption, "the explain index names ledger sequence " +
                                                   std::to_string(c.sequence) +
                                                   ", which the ledger does not hold"));
    }
    auto event = ledger::DecodeEvent(**record);
    if (!event.ok()) return ErrorOf(event.status());
    r.body += projections::ContributionLine(c, kind, events::ToJson(*event));
    r.body += '\n';
  }
  return r;
}

HttpReply Service::Invoices(Call& call) {
  auto month_text = call.Param("month");
  if (!month_text) return Error(400, "invalid_argument", "month=YYYY-MM is required");
  auto month = ParseMonth(*month_text, "month");
  if (!month.ok()) return ErrorOf(month.status());
  auto snap = OpenOrg(call, {.kinds = "B", .month = *month});
  if (!snap.ok()) return ErrorOf(snap.status());
  const auto& org = *snap->org;
  auto list = projections::Invoices(org, *snap->view, *month);
  Json invoices = Json::array();
  for (const auto& inv : list.invoices) {
    auto seal = SealOf(call, inv);
    if (!seal.ok()) return ErrorOf(seal.status());
    invoices.push_back(projections::WithSeal(InvoiceSummaryJson(inv, org), *seal));
  }
  return JsonReply(
      200, Json{{"month", FormatMonth(list.month)},
                {"mode",
                 list.mode == projections::InvoicingMode::kSingle ? "SINGLE" : "PER_COST_CENTER"},
                {"invoices", std::move(invoices)}});
}

Result<std::optional<projections::InvoiceSeal>> Service::SealOf(
    const Call& call, const projections::InvoiceSummary& invoice) const {
  if (!invoice.final) return std::optional<projections::InvoiceSeal>();
  auto seal = call.billing->StoredSeal(call.Org(), invoice.invoice_id);
  if (!seal.ok()) return seal.status();
  // Seals are stored before a close is published (projections/billing.h):
  // only a failed write, retried with the next group, leaves one missing.
  if (!*seal)
    return Status(Code::kUnavailable,
                  "the seal of invoice " + invoice.invoice_id + " is not stored yet");
  return seal;
}

Result<Json> Service::InvoiceAnswer(Call& call, const std::string& invoice_id) {
  auto snap = OpenOrg(call, {.kinds = "BL", .month = std::nullopt});
  if (!snap.ok()) return snap.status();
  auto inv = projections::GetInvoice(*snap->org, *snap->view, invoice_id);
  if (!inv.ok()) return inv.status();
  auto seal = SealOf(call, inv->summary);
  if (!seal.ok()) return seal.status();
  return projections::WithSeal(projections::InvoiceJson(*inv, *snap->org), *seal);
}

HttpReply Service::Invoice(Call& call) {
  auto answer = InvoiceAnswer(call, call.params.Get("invoice_id"));
  if (answer.status().code() == Code::kNotFound)
    return Error(404, "not_found", answer.status().message());
  if (!answer.ok()) return ErrorOf(answer.status());
  return JsonReply(200, *answer);
}

// Line-level CSV of one invoice. An invoice id may itself end in ".csv"
// (cost-center ids allow dots): an existing invoice of that exact id keeps
// its JSON answer.
HttpReply Service::InvoiceCsv(Call& call) {
  const std::string& invoice_id = call.params.Get("invoice_id");
  if (auto answer = InvoiceAnswer(call, invoice_id + ".csv");
      answer.status().code() != Code::kNotFound) {
    if (!answer.ok()) return ErrorOf(answer.status());
    call.route = "invoice";
    return JsonReply(200, *answer);
  }
  auto month = ParseMonth(std::string_view(invoice_id).substr(0, 7), "invoice month");
  if (invoice_id.size() < 9 || invoice_id[7] != '-' || !month.ok()) {
    return Error(404, "not_found", "invoice " + invoice_id + " does not exist");
  }
  return CsvAnswer(call, *month, invoice_id);
}

// The invoice as the PDF document a customer receives, rendered from the
// JSON answer itself so the two cannot disagree. As for ".csv", an existing
// invoice whose id ends in ".pdf" keeps its JSON answer.
HttpReply Service::InvoicePdf(Call& call) {
  const std::string& invoice_id = call.params.Get("invoice_id");
  if (auto answer = InvoiceAnswer(call, invoice_id + ".pdf");
      answer.status().code() != Code::kNotFound) {
    if (!answer.ok()) return ErrorOf(answer.status());
    call.route = "invoice";
    return JsonReply(200, *answer);
  }
  auto answer = InvoiceAnswer(call, invoice_id);
  if (answer.status().code() == Code::kNotFound)
    return Error(404, "not_found", answer.status().message());
  if (!answer.ok()) return ErrorOf(answer.status());
  auto snap = OpenOrg(call, {.kinds = "-", .month = std::nullopt});
  if (!snap.ok()) return ErrorOf(snap.status());
  auto pdf =
      documents::RenderInvoicePdf(*answer, documents::InvoiceIssuer{call.Org(), snap->org->name});
  if (!pdf.ok()) return ErrorOf(pdf.status());
  HttpReply r;
  r.content_type = "application/pdf";
  r.body = std::move(pdf).value();
  return r;
}

HttpReply Service::UsageMonthCsv(Call& call) {
  auto month = ParseMonth(call.params.Get("month"), "month");
  if (!month.ok()) return ErrorOf(month.status());
  return CsvAnswer(call, *month, std::nullopt);
}

HttpReply Service::CsvAnswer(Call& call, Month month,
                             const std::optional<std::string>& invoice_id) {
  auto as_of = AsOfParam(call.query);
  if (!as_of.ok()) return ErrorOf(as_of.status());
  auto format = projections::ParseExportFormat(call.Param("format").value_or("csv"));
  if (!format.ok() || *format == projections::ExportFormat::kNdjson) {
    return Error(400, "invalid_argument", "format must be csv or focus");
  }
  auto rows = projections::ExportMonth(call.billing->ledger(), call.Org(), month,
                                       as_of->value_or(ledger::kSequenceMax));
  if (!rows.ok()) {
    if (rows.status().code() == Code::kNotFound) {
      return Error(404, "unknown_org", "organization " + call.Org() + " is unknown");
    }
    return ErrorOf(rows.status());
  }
  if (invoice_id && projections::KeepInvoice(&*rows, *invoice_id) == 0) {
    return Error(404, "not_found", "invoice " + *invoice_id + " does not exist");
  }
  HttpReply r;
  r.content_type = "text/csv; charset=utf-8";
  r.body = projections::RenderExport(*rows, *format);
  return r;
}

HttpReply Service::LedgerEvents(Call& call) {
  uint64_t after = 0, limit = 0;
  if (auto v = call.Param("after"); v && !ParseUint(*v, &after)) {
    return (Error(400, "invalid_argument", "after must be a ledger sequence number"));
  }
  if (auto v = call.Param("limit"); v && (!ParseUint(*v, &limit) || limit == 0)) {
    return (Error(400, "invalid_argument", "limit must be a positive whole number"));
  }
  std::optional<std::string> org = call.Param("org");
  if (org && org->empty()) org.reset();
  if (call.principal && call.principal->org) {
    if (org && *org != *call.principal->org) {
      return (Error(403, "permission_denied", "this token may not see that organization"));
    }
    org = call.principal->org;
  }
  // The stream reads the ledger in bounded chunks as the client takes them,
  // so its memory does not grow with the ledger.
  struct Cursor {
    uint64_t after;
    uint64_t remaining;  // 0: unlimited
    std::optional<std::string> org;
    bool done = false;
  };
  auto cursor = std::make_shared<Cursor>(Cursor{after, limit, org});
  // PickLedger chose the org's shard when the stream is filtered, else `shard`'s.
  const ledger::Ledger* led = &call.billing->ledger();
  HttpReply r;
  r.content_type = "application/x-ndjson";
  r.stream = GuardedStream(call, [cursor, led, limit](std::string* chunk) {
    size_t want = kStreamChunkRecords;
    if (cursor->remaining != 0) want = std::min<uint64_t>(want, cursor->remaining);
    size_t got = 0;
    auto visit = [&](const ledger::Record& rec) {
      auto env = ledger::DecodeEvent(rec);
      chunk->append("{\"sequence\":" + std::to_string(rec.sequence()) + ",\"recorded_at\":\"" +
                    FormatTimestamp(Timestamp::FromMicros(rec.recorded_at_micros())) +
                    "\",\"hash\":\"" + ledger::Hex(rec.hash()) + "\",\"prev_hash\":\"" +
                    ledger::Hex(rec.prev_hash()) +
                    "\",\"event\":" + (env.ok() ? events::ToJson(*env) : std::string("null")) +
                    ",\"source\":" + Dump(SourceJson(rec.source())) + "}\n");
      cursor->after = rec.sequence();
      ++got;
      return true;
    };
    Status s = cursor->org ? led->ScanOrg(*cursor->org, ledger::Sequence{cursor->after},
                                          ledger::kSequenceMax, want, visit)
                           : led->Scan(ledger::Sequence{cursor->after}, want, visit);
    if (cursor->remaining != 0) cursor->remaining -= got;
    // The status line is already sent; a failure mid-stream can only end the
    // stream early, so say so in a final line the client can see.
    if (!s.ok()) {
      chunk->append(
          Dump(Json{{"error", Json{{"code", CodeName(s.code())}, {"message", s.message()}}}}) +
          "\n");
      return false;
    }
    bool more = got == want && (limit == 0 || cursor->remaining > 0);
    return more;
  });
  // Cost::kStreamed: Invoke makes each chunk on the worker pool.
  return r;
}

HttpReply Service::Verify(Call& call) {
  auto report = call.billing->ledger().Verify();
  if (!report.ok()) return (ErrorOf(report.status()));
  return JsonReply(200, projections::VerifyJson(*report));
}

HttpReply Service::Cluster(Call& call) {
  if (options_.cluster) {
    HttpReply reply;
    reply.body = options_.cluster();
    return reply;
  }
  // A single ledgerd is a cluster of one instance holding its one shard.
  Json shard{{"shard", 0}, {"owner", nullptr}};
  if (const projections::Billing* billing = ledgers_->ForShard(0)) {
    const ledger::Head head = billing->ledger().head();
    shard["head_sequence"] = head.sequence.value;
    shard["head_hash"] = ledger::Hex(head.hash);
  }
  return JsonReply(200, Json{{"instance_id", nullptr},
                             {"shard_count", 1},
                             {"instances", Json::array()},
                             {"shards", Json::array({std::move(shard)})}});
}

HttpReply Service::Rejected(Call& call) {
  uint64_t after = 0, limit = kRejectedPageMax;
  if (auto v = call.Param("after"); v && !ParseUint(*v, &after)) {
    return (Error(400, "invalid_argument", "after must be a rejected id"));
  }
  if (auto v = call.Param("limit");
      v && (!ParseUint(*v, &limit) || limit == 0 || limit > kRejectedPageMax)) {
    return (Error(400, "invalid_argument",
                  "limit must be from 1 to " + std::to_string(kRejectedPageMax)));
  }
  // A page is bounded by count and by stored bytes (ledger::kRejectedPageBytesMax);
  // a scoped token's page reads only its org's rejections.
  ledger::RejectedQuery query{.after_id = after, .limit = limit, .org = std::nullopt};
  if (call.principal) query.org = call.principal->org;
  auto page = call.billing->ledger().ListRejected(query);
  if (!page.ok()) return (ErrorOf(page.status()));
  Json list = Json::array();
  for (const auto& rec : page->records) {
    list.push_back(
        Json{{"id", rec.id()},
             {"event_id", rec.event_id().empty() ? Json(nullptr) : Json(rec.event_id())},
             {"org_id", rec.org_id().empty() ? Json(nullptr) : Json(rec.org_id())},
             {"code", rec.code()},
             {"message", rec.message()},
             {"received_at", FormatTimestamp(Timestamp::FromMicros(rec.received_at_micros()))},
             {"source", SourceJson(rec.source())},
             {"raw", rec.raw()},
             {"raw_truncated", rec.raw_truncated()},
             {"raw_bytes", std::max<uint64_t>(rec.raw_bytes(), rec.raw().size())}});
  }
  Json next = page->next_after ? Json(*page->next_after) : Json(nullptr);
  return JsonReply(200, Json{{"rejected", std::move(list)}, {"next_after", std::move(next)}});
}

namespace {

Json TimeOrNull(std::optional<int64_t> unix_ms) {
  if (!unix_ms) return Json(nullptr);
  return FormatTimestamp(Timestamp::FromMicros(*unix_ms * 1000));
}

// A delivery as the webhook routes show it: never its body or its endpoint's secret.
Json DeliveryJson(const webhooks::Delivery& d) {
  const bool pending = d.status == webhooks::DeliveryStatus::kPending;
  return Json{
      {"delivery_id", d.id},
      {"kind", projections::DeliveryKindName(d.kind)},
      {"org_id", d.org_id},
      {"sequence", d.sequence},
      {"ref", d.ref},
      {"endpoint", d.endpoint_url},
      {"status", webhooks::StatusName(d.status)},
      {"attempts", d.attempts},
      {"last_error", d.last_error ? Json(*d.last_error) : Json(nullptr)},
      {"created_at", TimeOrNull(d.created_ms)},
      {"next_attempt_at", TimeOrNull(pending ? std::optional(d.next_attempt_ms) : std::nullopt)},
      {"delivered_at", TimeOrNull(d.delivered_ms)}};
}

}  // namespace

HttpReply Service::WebhookDeliveries(Call& call) {
  if (options_.outbox == nullptr)
    return Error(503, "unavailable", "ledgerd runs without its webhook outbox");
  webhooks::DeliveryQuery query;
  if (auto v = call.Param("status")) {
    query.status = webhooks::ParseStatus(*v);
    if (!query.status)
      return Error(400, "invalid_argument", "status must be pending, delivered or failed");
  }
  if (auto v = call.Param("after")) {
    if (!webhooks::SplitDeliveryId(*v))
      return Error(400, "invalid_argument", "after must be a delivery id");
    query.after = *v;
  }
  uint64_t limit = webhooks::kListPageMax;
  if (auto v = call.Param("limit");
      v && (!ParseUint(*v, &limit) || limit == 0 || limit > webhooks::kListPageMax)) {
    return Error(400, "invalid_argument",
                 "limit must be from 1 to " + std::to_string(webhooks::kListPageMax));
  }
  query.limit = limit;
  if (call.principal) query.org = call.principal->org;
  auto page = options_.outbox->List(query);
  if (!page.ok()) return ErrorOf(page.status());
  Json list = Json::array();
  for (const webhooks::Delivery& d : page->deliveries) list.push_back(DeliveryJson(d));
  Json next = page->next_after ? Json(*page->next_after) : Json(nullptr);
  return JsonReply(200, Json{{"deliveries", std::move(list)}, {"next_after", std::move(next)}});
}

HttpReply Service::WebhookRetry(Call& call) {
  if (options_.outbox == nullptr)
    return Error(503, "unavailable", "ledgerd runs without its webhook outbox");
  std::optional<std::string> org;
  if (call.principal) org = call.principal->org;
  auto retried = options_.outbox->Retry(call.params.Get("id"), org);
  if (retried.status().code() == Code::kNotFound)
    return Error(404, "not_found", retried.status().message());
  if (retried.status().code() == Code::kConflict)
    return Error(409, "conflict", retried.status().message());
  if (!retried.ok()) return ErrorOf(retried.status());
  return JsonReply(200, DeliveryJson(*retried));
}

}  // namespace billing::api
