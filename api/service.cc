#include "api/service.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>

#include <nlohmann/json.hpp>

#include "api/request_gate.h"
#include "api/target.h"
#include "api/web_assets.h"
#include "ledger/hash_chain.h"
#include "projections/answer_json.h"
#include "projections/export.h"

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
    case Code::kOk: return 200;
    case Code::kNotFound:
    case Code::kUnknownOrg:
    case Code::kUnknownCostCenter:
    case Code::kUnknownEvent: return 404;
    case Code::kConflict: return 409;
    case Code::kUnavailable:
    case Code::kOverloaded: return 503;
    case Code::kTooLarge: return 413;
    case Code::kCorruption:
    case Code::kInternal: return 500;
    default: return 400;
  }
}

HttpReply ErrorOf(const Status& s) {
  HttpReply r = Error(HttpStatusOf(s.code()), CodeName(s.code()), s.message());
  if (s.code() == Code::kOverloaded) r.headers.emplace_back("Retry-After", std::to_string(kHeavyRetryAfterSeconds));
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

}  // namespace

namespace {

// Route labels for metrics; Call::route holds one of these.
const std::vector<std::string>& RouteNames() {
  static const std::vector<std::string> kNames = {
      "unknown",       "healthz",      "readyz",      "web",        "metrics",       "post_events",
      "dashboard",     "usage_history", "usage_month", "usage_item", "invoices",      "invoice",
      "ledger_events", "ledger_verify", "ledger_rejected", "ledger_retry", "usage_month_csv", "invoice_csv",
      "org"};
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
  std::vector<std::string> segments;
  std::map<std::string, std::string> query;
  std::optional<Principal> principal;  // set when access control is on
  // The read models' view an org answer was computed from: its status() says
  // whether every read succeeded (projections/store.h).
  std::shared_ptr<const projections::View> view;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  void Reply(HttpReply reply) {
    metrics->Request(RouteIndex(route), reply.status,
                     std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started)
                         .count());
    respond(std::move(reply));
  }
  std::optional<std::string> Param(const std::string& name) const {
    auto it = query.find(name);
    if (it == query.end()) return std::nullopt;
    return it->second;
  }
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
std::function<bool(std::string*)> GuardedStream(const CallT& call, std::function<bool(std::string*)> produce) {
  return [method = call.request.method, target = call.request.target,
          produce = std::move(produce)](std::string* chunk) noexcept {
    auto log = [&](const char* what) {
      std::fprintf(stderr, "ledgerd: internal error streaming %s %s: %s\n", method.c_str(), target.c_str(), what);
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

Service::Service(projections::Billing& billing, Metrics& metrics, ServiceOptions options)
    : billing_(billing), metrics_(metrics), options_(std::move(options)) {
  metrics_.SetRoutes(RouteNames());
  metrics_.AddCollector([this](Metrics& m) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    m.Set("ledger_answer_cache_entries", "", static_cast<int64_t>(cache_.size()));
    m.Set("ledger_answer_cache_bytes", "", static_cast<int64_t>(cache_bytes_));
  });
  // Rejections dropped from an org's full quota (ledger::kRejectedPerOrgMax),
  // oldest first, since the ledger was opened.
  metrics_.AddCollector([this](Metrics& m) {
    m.Set("ledger_heavy_queued", "", static_cast<int64_t>(heavy_.queued()));
    m.Set("ledger_rejected_dropped", "", static_cast<int64_t>(billing_.ledger().rejected_dropped()));
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
  AnswerGuarded(*call, [&] { Route(*call); });
}

void Service::OffIoThread(Call& call, std::function<void(Call&)> work) {
  auto shared = std::make_shared<Call>(std::move(call));
  bool queued = heavy_.TrySubmit([shared, work = std::move(work)] { AnswerGuarded(*shared, [&] { work(*shared); }); });
  if (!queued) {
    shared->Reply(ErrorOf(Status(Code::kOverloaded, "the service is busy with heavy requests; retry shortly")));
  }
}

namespace {

// Roles allowed on a route. Viewers read org data; producers write events;
// auditors read everything including the ledger; admins do anything.
bool Allowed(Role role, std::initializer_list<Role> roles) {
  return role == Role::kAdmin || std::find(roles.begin(), roles.end(), role) != roles.end();
}

}  // namespace

void Service::Route(Call& call) {
  auto parsed = ParseTarget(call.request.target);
  if (!parsed.ok()) return call.Reply(Error(400, "invalid_argument", parsed.status().message()));
  const std::string_view path = parsed->path;
  call.segments = std::move(parsed->segments);
  call.query = std::move(parsed->query);
  const auto& s = call.segments;
  const std::string& method = call.request.method;
  auto method_not_allowed = [&](std::string allow) {
    HttpReply r = Error(405, "method_not_allowed", method + " is not allowed here; use " + allow);
    r.headers.emplace_back("Allow", allow);
    call.Reply(std::move(r));
  };

  // Routes open to everyone: probes and the web page's static files.
  if (s.size() == 1 && (s[0] == "healthz" || s[0] == "readyz")) {
    call.route = s[0];
    if (method != "GET") return method_not_allowed("GET");
    if (s[0] == "readyz") {
      if (!ready_) return call.Reply(Error(503, "unavailable", "read models are not caught up yet"));
      return call.Reply(JsonReply(200, Json{{"status", "ready"}}));
    }
    auto bootstrap = std::atomic_load(&kafka_bootstrap_);
    Json j{{"status", "ok"}, {"kafka_bootstrap", nullptr}};
    if (bootstrap) j["kafka_bootstrap"] = *bootstrap;
    return call.Reply(JsonReply(200, j));
  }
  if ((s.size() == 1 && s[0].empty()) || (s.size() == 2 && s[0] == "web")) {
    call.route = "web";
    if (method != "GET") return method_not_allowed("GET");
    auto asset = FindWebAsset(s.size() == 1 ? "index.html" : s[1]);
    if (!asset) return call.Reply(Error(404, "not_found", "no such file"));
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
    return call.Reply(std::move(r));
  }

  if (options_.tokens) {
    call.principal = options_.tokens->Authenticate(call.request.authorization);
    if (!call.principal) {
      HttpReply r = Error(401, "unauthenticated", "a valid `Authorization: Bearer <token>` is required");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return call.Reply(std::move(r));
    }
  }
  auto deny = [&](std::initializer_list<Role> roles) {
    if (call.principal && !Allowed(call.principal->role, roles)) {
      call.Reply(Error(403, "permission_denied", "this token's role may not do that"));
      return true;
    }
    return false;
  };

  if (s.size() == 1 && s[0] == "metrics") {
    call.route = "metrics";
    if (method != "GET") return method_not_allowed("GET");
    if (deny({Role::kAuditor})) return;
    HttpReply r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = metrics_.Render();
    return call.Reply(std::move(r));
  }
  if (s.size() >= 2 && s[0] == "v1") {
    if (s.size() == 2 && s[1] == "events") {
      call.route = "post_events";
      if (method != "POST") return method_not_allowed("POST");
      if (deny({Role::kProducer})) return;
      return PostEvents(call);
    }
    if (s[1] == "orgs" && s.size() >= 3) {
      if (method != "GET") return method_not_allowed("GET");
      if (deny({Role::kViewer, Role::kAuditor})) return;
      if (call.principal && !call.principal->CanSeeOrg(s[2])) {
        return call.Reply(Error(403, "permission_denied", "this token may not see that organization"));
      }
      return OrgRoute(call, s[2], std::vector<std::string>(s.begin() + 3, s.end()));
    }
    if (s[1] == "ledger" && s.size() >= 3) {
      if (s.size() == 3 && s[2] == "events") {
        call.route = "ledger_events";
        if (method != "GET") return method_not_allowed("GET");
        if (deny({Role::kAuditor})) return;
        return LedgerEvents(call);
      }
      if (s.size() == 3 && s[2] == "verify") {
        call.route = "ledger_verify";
        if (method != "GET") return method_not_allowed("GET");
        if (deny({Role::kAuditor})) return;
        return OffIoThread(call, [this](Call& c) { Verify(c); });
      }
      if (s.size() == 3 && s[2] == "rejected") {
        call.route = "ledger_rejected";
        if (method != "GET") return method_not_allowed("GET");
        if (deny({Role::kAuditor})) return;
        return Rejected(call);
      }
      if (s.size() == 5 && s[2] == "rejected" && s[4] == "retry") {
        call.route = "ledger_retry";
        if (method != "POST") return method_not_allowed("POST");
        if (deny({Role::kProducer})) return;
        uint64_t id = 0;
        if (!ParseUint(s[3], &id)) return call.Reply(Error(404, "not_found", "no such rejected message"));
        return Retry(call, id);
      }
    }
  }
  call.Reply(Error(404, "not_found", "no route for " + std::string(path)));
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
    metrics.Count("ledger_ingest_failures_total", "code=\"" + std::string(CodeName(result.status.code())) + "\"");
    if (!failing.exchange(true)) {
      std::fprintf(stderr,
                   "ledgerd: cannot write to the ledger, answering 503 to ingest until a write "
                   "succeeds: %s\n",
                   result.status.ToString().c_str());
    }
    return Error(503, "unavailable", "nothing was recorded: " + result.status.message());
  }
  if (failing.exchange(false)) std::fprintf(stderr, "ledgerd: writes to the ledger succeed again\n");
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
      rejected.push_back(Json{{"index", i},
                              {"event_id", event_ids[i].empty() ? Json(nullptr) : Json(event_ids[i])},
                              {"code", CodeName(o.code)},
                              {"message", o.message}});
    }
  }
  metrics.Count("ledger_events_accepted_total", "", accepted);
  metrics.Count("ledger_events_duplicate_total", "", duplicates);
  for (const auto& [code, n] : by_code) metrics.Count("ledger_events_rejected_total", "code=\"" + code + "\"", n);
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

// ---- Header-time checks (issue 13): the same rules Route applies, taken
// from the head alone so that a refused request's body is never read.
std::optional<HttpReply> Service::CheckHeaders(const HttpRequest& head) const {
  // Route would answer the same 400, but only after reading the body.
  auto parsed = ParseTarget(head.target);
  if (!parsed.ok()) return Error(400, "invalid_argument", parsed.status().message());
  const auto& s = parsed->segments;
  const bool post = head.method == "POST";
  // Only POST /v1/events reads a body (a retry re-drives a stored message).
  // Any other body would be read for nothing, and on the routes open without
  // a token it would let anyone hold the shared body budget.
  const bool takes_body = post && s.size() == 2 && s[0] == "v1" && s[1] == "events";
  if (head.has_body && !takes_body) {
    return Error(400, "invalid_argument", "this route takes no request body with " + head.method);
  }
  const bool open_route = (s.size() == 1 && (s[0] == "healthz" || s[0] == "readyz" || s[0].empty())) ||
                          (s.size() == 2 && s[0] == "web");
  if (open_route) return std::nullopt;
  if (options_.tokens) {
    auto principal = options_.tokens->Authenticate(head.authorization);
    if (!principal) {
      HttpReply r = Error(401, "unauthenticated", "a valid `Authorization: Bearer <token>` is required");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
    if (post && !Allowed(principal->role, {Role::kProducer})) {
      return Error(403, "permission_denied", "this token's role may not post");
    }
  }
  if (post && !IsJsonMediaType(head.content_type)) {
    return Error(415, "unsupported_media_type",
                 "a POST needs Content-Type application/json (one event or an array) or application/x-ndjson");
  }
  return std::nullopt;
}
// ---- end header-time checks

void Service::PostEvents(Call& call) {
  auto format = BodyFormatOf(call.request.content_type);
  if (!format) {
    return call.Reply(Error(415, "unsupported_media_type",
                            "send application/json (one event or an array) or application/x-ndjson"));
  }
  if (call.request.body.size() <= kInlineBodyBytesMax) return IngestBody(call, *format);
  OffIoThread(call, [this, format = *format](Call& c) { IngestBody(c, format); });
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
    ledger::Entry entry = projections::Billing::Prepare(std::move(raw.bytes), source);
    if (call.principal && !entry.org_id.empty() && !call.principal->CanSeeOrg(entry.org_id)) {
      return call.Reply(Error(403, "permission_denied",
                              "this token may not write events of organization " + entry.org_id));
    }
    event_ids.push_back(entry.event_id);
    request.entries.push_back(std::move(entry));
  }
  auto shared = std::make_shared<Call>(std::move(call));
  billing_.SubmitAsync(
      std::move(request),
      // Runs on the ledger's writer thread, which an exception would end.
      [shared, ids = std::move(event_ids), this](ledger::AppendResult r) {
        AnswerGuarded(*shared, [&] { shared->Reply(IngestReply(r, ids, metrics_, ingest_failing_)); });
      },
      ledger::Ledger::WhenQueueFull::kRefuse);
}

void Service::Retry(Call& call, uint64_t id) {
  auto rec = billing_.ledger().GetRejected(id);
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
  ledger::Entry entry = projections::Billing::Prepare((*rec)->raw(), (*rec)->source());
  entry.redrive_of = id;
  std::vector<std::string> ids{entry.event_id};
  ledger::AppendRequest request;
  request.entries.push_back(std::move(entry));
  auto shared = std::make_shared<Call>(std::move(call));
  billing_.SubmitAsync(
      std::move(request),
      // Runs on the ledger's writer thread, which an exception would end.
      [shared, ids, this](ledger::AppendResult r) {
        AnswerGuarded(*shared, [&] { shared->Reply(IngestReply(r, ids, metrics_, ingest_failing_)); });
      },
      ledger::Ledger::WhenQueueFull::kRefuse);
}

namespace {

std::string StatusWord(bool closed) { return closed ? "closed" : "open"; }

using projections::InvoiceSummaryJson;

}  // namespace

namespace {

// The query parameters any org route reads; others cannot change an answer.
constexpr std::array<std::string_view, 6> kAnswerParams = {"as_of", "cost_center", "end",
                                                           "format", "month", "months"};

std::string CacheKey(const std::string& org_id, const std::vector<std::string>& rest,
                     const std::map<std::string, std::string>& query) {
  // Segments and values may hold any byte once decoded; a NUL cannot occur
  // in a target's decoded text without %00, so length-prefix them instead.
  std::string key;
  auto add = [&key](std::string_view part) {
    key += std::to_string(part.size());
    key += ':';
    key += part;
  };
  add(org_id);
  for (const auto& segment : rest) add(segment);
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

void Service::OrgRoute(Call& call, const std::string& org_id, const std::vector<std::string>& rest) {
  // Answers are cached per normalized request and served while the org's
  // version is unchanged; the version is read before computing, so an event
  // committed meanwhile can only make the stored entry unusable, never wrong.
  uint64_t version = billing_.OrgVersion(org_id);
  std::string key = CacheKey(org_id, rest, call.query);
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.version == version && it->second.org == org_id) {
      call.route = it->second.route;
      HttpReply r;
      r.body = it->second.body;
      r.content_type = it->second.content_type;
      return call.Reply(std::move(r));
    }
  }
  // Replays of the past and line-level exports read the org's whole history.
  const bool heavy = call.query.count("as_of") > 0 || (!rest.empty() && rest.back().ends_with(".csv"));
  if (!heavy) return AnswerAndCache(call, org_id, rest, std::move(key), version);
  OffIoThread(call, [this, org_id, rest, key = std::move(key), version](Call& c) mutable {
    AnswerAndCache(c, org_id, rest, std::move(key), version);
  });
}

void Service::AnswerAndCache(Call& call, const std::string& org_id, const std::vector<std::string>& rest,
                             std::string key, uint64_t version) {
  HttpReply reply = OrgAnswer(call, org_id, rest);
  if (call.view) {
    // A failed read computes an answer with something missing (a 200 with a
    // smaller bill, or a 404): never serve or cache it.
    if (Status read = call.view->status(); !read.ok()) reply = ErrorOf(read);
  }
  if (reply.status == 200 && reply.body.size() <= kResponseCacheEntryBytesMax) {
    CacheAnswer(std::move(key), CachedAnswer{org_id, version, call.route, reply.body, reply.content_type, {}});
  }
  call.Reply(std::move(reply));
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
  while (!cache_order_.empty() &&
         (cache_.size() >= kResponseCacheEntriesMax || cache_bytes_ + bytes > kResponseCacheBytesMax)) {
    drop(cache_.find(cache_order_.front()));
  }
  cache_order_.push_back(key);
  answer.age = std::prev(cache_order_.end());
  cache_bytes_ += bytes;
  cache_.emplace(std::move(key), std::move(answer));
}

HttpReply Service::OrgAnswer(Call& call, const std::string& org_id, const std::vector<std::string>& rest) {
  if (rest.empty()) return StructureAnswer(call, org_id);
  const std::string& kind = rest[0];
  // Shared query parameters, validated before any lookup.
  std::optional<uint64_t> as_of;
  if (auto v = call.Param("as_of")) {
    uint64_t seq = 0;
    if (!ParseUint(*v, &seq)) return Error(400, "invalid_argument", "as_of must be a ledger sequence number");
    as_of = seq;
  }
  auto months_param = [&](int def) -> Result<int> {
    auto v = call.Param("months");
    if (!v) return def;
    uint64_t n = 0;
    if (!ParseUint(*v, &n) || n < 1 || n > static_cast<uint64_t>(projections::kMonthsMax)) {
      return Status(Code::kInvalidArgument,
                    "months must be a whole number from 1 to " + std::to_string(projections::kMonthsMax));
    }
    return static_cast<int>(n);
  };
  std::optional<Month> end;
  if (auto v = call.Param("end")) {
    auto m = ParseMonth(*v, "end");
    if (!m.ok()) return ErrorOf(m.status());
    end = *m;
  }
  // An answer as of a past sequence replays the org; the scope keeps in
  // memory only the aggregates the route reads (projections/keys.h kinds).
  auto open = [&](const projections::ReplayScope& scope) -> Result<OrgSnapshot> {
    auto snap = billing_.Snapshot(org_id, as_of, scope);
    if (snap.ok()) call.view = snap->view;
    return snap;
  };
  auto unknown_org = [&]() { return Error(404, "unknown_org", "organization " + org_id + " is unknown"); };

  if (kind == "dashboard" && rest.size() == 1) {
    call.route = "dashboard";
    auto months = months_param(kDashboardMonthsDefault);
    if (!months.ok()) return ErrorOf(months.status());
    auto snap = open({.kinds = "B", .month = std::nullopt});
    if (!snap.ok()) return snap.status().code() == Code::kNotFound ? unknown_org() : ErrorOf(snap.status());
    const auto& org = *snap->org;
    auto cc = call.Param("cost_center");
    if (cc && cc->empty()) cc.reset();
    if (auto first = FirstMonthOfRange(end.value_or(org.LatestMonth()), *months, "end"); !first.ok()) return ErrorOf(first.status());
    auto rows = projections::Dashboard(org, *snap->view, MonthRange{end.value_or(org.LatestMonth()), *months}, cc);
    if (!rows.ok()) return Error(404, "unknown_cost_center", rows.status().message());
    Json list = Json::array();
    for (const auto& r : *rows) {
      list.push_back(Json{{"month", FormatMonth(r.month)}, {"billed", FormatNanos(r.billed, org.minor_digits)}});
    }
    return JsonReply(200, Json{{"org_id", org.org_id}, {"currency", org.currency}, {"months", std::move(list)}});
  }
  if (kind == "usage-history" && rest.size() == 1) {
    call.route = "usage_history";
    auto months = months_param(kHistoryMonthsDefault);
    if (!months.ok()) return ErrorOf(months.status());
    auto snap = open({.kinds = "BC", .month = std::nullopt});
    if (!snap.ok()) return snap.status().code() == Code::kNotFound ? unknown_org() : ErrorOf(snap.status());
    const auto& org = *snap->org;
    if (auto first = FirstMonthOfRange(end.value_or(org.LatestMonth()), *months, "end"); !first.ok()) return ErrorOf(first.status());
    Json list = Json::array();
    for (const auto& h : projections::UsageHistory(org, *snap->view, MonthRange{end.value_or(org.LatestMonth()), *months})) {
      list.push_back(Json{{"month", FormatMonth(h.month)},
                          {"status", StatusWord(h.closed)},
                          {"total", FormatNanos(h.total, org.minor_digits)},
                          {"usage", Money(h.usage)},
                          {"support", Money(h.support)},
                          {"credits", Money(h.credits)},
                          {"adjustments", Money(h.adjustments)}});
    }
    return JsonReply(200, Json{{"org_id", org.org_id}, {"currency", org.currency}, {"months", std::move(list)}});
  }
  // Line-level CSV: `usage-history/{month}.csv` and `invoices/{invoice_id}.csv`.
  // A month never ends in ".csv"; an invoice id might (cost center ids allow
  // dots), so an existing invoice of that exact id keeps its JSON answer.
  constexpr std::string_view kCsvSuffix = ".csv";
  if (kind == "usage-history" && rest.size() == 2 && rest[1].ends_with(kCsvSuffix)) {
    call.route = "usage_month_csv";
    auto month = ParseMonth(std::string_view(rest[1]).substr(0, rest[1].size() - kCsvSuffix.size()), "month");
    if (!month.ok()) return ErrorOf(month.status());
    return CsvAnswer(call, org_id, *month, as_of, std::nullopt);
  }
  if (kind == "invoices" && rest.size() == 2 && rest[1].ends_with(kCsvSuffix)) {
    auto snap = open({.kinds = "BL", .month = std::nullopt});
    if (!snap.ok()) return snap.status().code() == Code::kNotFound ? unknown_org() : ErrorOf(snap.status());
    if (!projections::GetInvoice(*snap->org, *snap->view, rest[1]).ok()) {
      call.route = "invoice_csv";
      std::string invoice_id = rest[1].substr(0, rest[1].size() - kCsvSuffix.size());
      auto month = ParseMonth(std::string_view(invoice_id).substr(0, 7), "invoice month");
      if (invoice_id.size() < 9 || invoice_id[7] != '-' || !month.ok()) {
        return Error(404, "not_found", "invoice " + invoice_id + " does not exist");
      }
      return CsvAnswer(call, org_id, *month, as_of, invoice_id);
    }
  }
  if (kind == "usage-history" && (rest.size() == 2 || (rest.size() == 4 && rest[2] == "items"))) {
    call.route = rest.size() == 2 ? "usage_month" : "usage_item";
    auto month = ParseMonth(rest[1], "month");
    if (!month.ok()) return ErrorOf(month.status());
    auto snap = open({.kinds = rest.size() == 2 ? "BI" : "ID", .month = *month});
    if (!snap.ok()) return snap.status().code() == Code::kNotFound ? unknown_org() : ErrorOf(snap.status());
    const auto& org = *snap->org;
    if (rest.size() == 2) {
      auto d = projections::MonthItems(org, *snap->view, *month);
      Json items = Json::array();
      for (const auto& it : d.items) {
        items.push_back(Json{{"id", it.id}, {"category", it.category}, {"label", it.label},
                             {"amount", Money(it.amount)}, {"drillable", it.drillable}});
      }
      return (JsonReply(200, Json{{"month", FormatMonth(d.month)},
                                            {"status", StatusWord(d.closed)},
                                            {"total", FormatNanos(d.total, org.minor_digits)},
                                            {"items", std::move(items)}}));
    }
    auto d = projections::ItemChildren(org, *snap->view, *month, rest[3]);
    if (!d.ok()) return Error(404, "not_found", d.status().message());
    Json children = Json::array();
    for (const auto& c : d->children) {
      children.push_back(Json{{"id", c.id}, {"label", c.label}, {"amount", Money(c.amount)},
                              {"quantity", c.quantity ? Json(Money(*c.quantity)) : Json(nullptr)},
                              {"unit", c.unit ? Json(*c.unit) : Json(nullptr)},
                              {"drillable", c.drillable}});
    }
    return (JsonReply(200, Json{{"id", d->id}, {"label", d->label}, {"amount", Money(d->amount)},
                                          {"children", std::move(children)}}));
  }
  if (kind == "invoices" && rest.size() == 1) {
    call.route = "invoices";
    auto month_text = call.Param("month");
    if (!month_text) return Error(400, "invalid_argument", "month=YYYY-MM is required");
    auto month = ParseMonth(*month_text, "month");
    if (!month.ok()) return ErrorOf(month.status());
    auto snap = open({.kinds = "B", .month = *month});
    if (!snap.ok()) return snap.status().code() == Code::kNotFound ? unknown_org() : ErrorOf(snap.status());
    const auto& org = *snap->org;
    auto list = projections::Invoices(org, *snap->view, *month);
    Json invoices = Json::array();
    for (const auto& inv : list.invoices) invoices.push_back(InvoiceSummaryJson(inv, org));
    return (JsonReply(200, Json{{"month", FormatMonth(list.month)},
                                          {"mode", events::InvoicingModeName(list.mode)},
                                          {"invoices", std::move(invoices)}}));
  }
  if (kind == "invoices" && rest.size() == 2) {
    call.route = "invoice";
    auto snap = open({.kinds = "BL", .month = std::nullopt});
    if (!snap.ok()) return snap.status().code() == Code::kNotFound ? unknown_org() : ErrorOf(snap.status());
    const auto& org = *snap->org;
    auto inv = projections::GetInvoice(org, *snap->view, rest[1]);
    if (!inv.ok()) return Error(404, "not_found", inv.status().message());
    Json j = InvoiceSummaryJson(inv->summary, org);
    Json lines = Json::array();
    for (const auto& l : inv->lines) {
      lines.push_back(Json{{"category", l.category}, {"description", l.description}, {"amount", Money(l.amount)}});
    }
    j["lines"] = std::move(lines);
    return JsonReply(200, j);
  }
  return Error(404, "not_found", "no route for " + call.request.target);
}

// GET /v1/orgs/{org}: the structure with names, for pickers and documents.
HttpReply Service::StructureAnswer(Call& call, const std::string& org_id) {
  call.route = "org";
  std::optional<uint64_t> as_of;
  if (auto v = call.Param("as_of")) {
    uint64_t seq = 0;
    if (!ParseUint(*v, &seq)) return Error(400, "invalid_argument", "as_of must be a ledger sequence number");
    as_of = seq;
  }
  // The answer reads the structure only: a replay as of a past sequence keeps
  // no aggregate ('-' names no aggregate kind, projections/keys.h).
  auto snap = billing_.Snapshot(org_id, as_of, {.kinds = "-", .month = std::nullopt});
  if (!snap.ok()) {
    if (snap.status().code() == Code::kNotFound) return Error(404, "unknown_org", "organization " + org_id + " is unknown");
    return ErrorOf(snap.status());
  }
  call.view = snap->view;
  const auto& org = *snap->org;
  Json cost_centers = Json::array();
  for (const auto& cc : projections::Structure(org)) {
    Json workspaces = Json::array();
    for (const auto& w : cc.workspaces) {
      Json providers = Json::array();
      for (const auto& p : w.providers) {
        providers.push_back(Json{{"provider_id", p.provider_id}, {"name", p.name}, {"kind", p.kind}});
      }
      workspaces.push_back(Json{{"workspace_id", w.workspace_id}, {"name", w.name}, {"providers", std::move(providers)}});
    }
    cost_centers.push_back(Json{{"cost_center_id", cc.cost_center_id},
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

HttpReply Service::CsvAnswer(Call& call, const std::string& org_id, Month month, std::optional<uint64_t> as_of,
                             const std::optional<std::string>& invoice_id) {
  auto format = projections::ParseExportFormat(call.Param("format").value_or("csv"));
  if (!format.ok() || *format == projections::ExportFormat::kNdjson) {
    return Error(400, "invalid_argument", "format must be csv or focus");
  }
  auto rows = projections::ExportMonth(billing_.ledger(), org_id, month, as_of.value_or(UINT64_MAX));
  if (!rows.ok()) {
    if (rows.status().code() == Code::kNotFound) {
      return Error(404, "unknown_org", "organization " + org_id + " is unknown");
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

void Service::LedgerEvents(Call& call) {
  uint64_t after = 0, limit = 0;
  if (auto v = call.Param("after"); v && !ParseUint(*v, &after)) {
    return call.Reply(Error(400, "invalid_argument", "after must be a ledger sequence number"));
  }
  if (auto v = call.Param("limit"); v && (!ParseUint(*v, &limit) || limit == 0)) {
    return call.Reply(Error(400, "invalid_argument", "limit must be a positive whole number"));
  }
  std::optional<std::string> org = call.Param("org");
  if (org && org->empty()) org.reset();
  if (call.principal && call.principal->org) {
    if (org && *org != *call.principal->org) {
      return call.Reply(Error(403, "permission_denied", "this token may not see that organization"));
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
  const ledger::Ledger* led = &billing_.ledger();
  HttpReply r;
  r.content_type = "application/x-ndjson";
  r.stream = GuardedStream(call, [cursor, led, limit](std::string* chunk) {
    size_t want = kStreamChunkRecords;
    if (cursor->remaining != 0) want = std::min<uint64_t>(want, cursor->remaining);
    size_t got = 0;
    auto visit = [&](const ledger::Record& rec) {
      auto env = ledger::DecodeEvent(rec);
      chunk->append("{\"sequence\":" + std::to_string(rec.sequence()) + ",\"recorded_at\":\"" +
                    FormatTimestamp(Timestamp::FromMicros(rec.recorded_at_micros())) + "\",\"hash\":\"" +
                    ledger::Hex(rec.hash()) + "\",\"prev_hash\":\"" + ledger::Hex(rec.prev_hash()) +
                    "\",\"event\":" + (env.ok() ? events::ToJson(*env) : std::string("null")) +
                    ",\"source\":" + Dump(SourceJson(rec.source())) + "}\n");
      cursor->after = rec.sequence();
      ++got;
      return true;
    };
    Status s = cursor->org ? led->ScanOrg(*cursor->org, ledger::Sequence{cursor->after},
                                          ledger::Sequence{UINT64_MAX}, want, visit)
                           : led->Scan(ledger::Sequence{cursor->after}, want, visit);
    if (cursor->remaining != 0) cursor->remaining -= got;
    // The status line is already sent; a failure mid-stream can only end the
    // stream early, so say so in a final line the client can see.
    if (!s.ok()) {
      chunk->append(Dump(Json{{"error", Json{{"code", CodeName(s.code())}, {"message", s.message()}}}}) + "\n");
      return false;
    }
    bool more = got == want && (limit == 0 || cursor->remaining > 0);
    return more;
  });
  r.offload = [this](std::function<void()> task) { return heavy_.TrySubmit(std::move(task)); };
  call.Reply(std::move(r));
}

void Service::Verify(Call& call) {
  auto report = billing_.ledger().Verify();
  if (!report.ok()) return call.Reply(ErrorOf(report.status()));
  call.Reply(JsonReply(200, projections::VerifyJson(*report)));
}

void Service::Rejected(Call& call) {
  uint64_t after = 0, limit = kRejectedPageMax;
  if (auto v = call.Param("after"); v && !ParseUint(*v, &after)) {
    return call.Reply(Error(400, "invalid_argument", "after must be a rejected id"));
  }
  if (auto v = call.Param("limit"); v && (!ParseUint(*v, &limit) || limit == 0 || limit > kRejectedPageMax)) {
    return call.Reply(Error(400, "invalid_argument",
                            "limit must be from 1 to " + std::to_string(kRejectedPageMax)));
  }
  // A page is bounded by count and by stored bytes (ledger::kRejectedPageBytesMax);
  // a scoped token's page reads only its org's rejections.
  ledger::RejectedQuery query{.after_id = after, .limit = limit, .org = std::nullopt};
  if (call.principal) query.org = call.principal->org;
  auto page = billing_.ledger().ListRejected(query);
  if (!page.ok()) return call.Reply(ErrorOf(page.status()));
  Json list = Json::array();
  for (const auto& rec : page->records) {
    list.push_back(Json{{"id", rec.id()},
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
  call.Reply(JsonReply(200, Json{{"rejected", std::move(list)}, {"next_after", std::move(next)}}));
}

}  // namespace billing::api
