#include "cluster/front.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>

#include "cluster/shard_map.h"
#include "http/target.h"
#include "ledger/hash_chain.h"

namespace billing::cluster {

namespace {

using Json = nlohmann::ordered_json;

// What a client is told to wait before retrying a request whose shard is
// moving: a rebalance and a restore take seconds, not minutes.
constexpr const char* kRetryAfterSeconds = "1";

api::HttpReply Unavailable(const std::string& message) {
  api::HttpReply reply;
  reply.status = 503;
  reply.body = Json{{"error", Json{{"code", "unavailable"}, {"message", message}}}}.dump();
  reply.headers.emplace_back("Retry-After", kRetryAfterSeconds);
  return reply;
}

// The shard a request is about, or nullopt when it is about none (answered
// here: probes, the page, metrics, ingest, which splits by event, and a
// target the Service refuses with 400). api::LedgerOfRequest is the rule, the
// one the Service's PickLedger then answers by.
std::optional<int> ShardOfRequest(const api::HttpRequest& request, int shards,
                                  const std::optional<std::string>& scoped_org) {
  auto target = api::ParseTarget(request.target);
  if (!target.ok()) return std::nullopt;
  api::RequestLedger which =
      api::LedgerOfRequest(target->segments, target->query, scoped_org, shards);
  switch (which.kind) {
    case api::RequestLedger::Kind::kOrg:
      return ShardOf(which.org, shards);
    case api::RequestLedger::Kind::kShard:
      return which.shard;
    case api::RequestLedger::Kind::kNone:
    case api::RequestLedger::Kind::kBadShard:
      break;
  }
  return std::nullopt;
}

std::string ShardName(int shard) { return "shard " + std::to_string(shard); }

// The shards' verify answers as one: ok when every chain is, with each
// shard's answer; the first shard that could not answer decides otherwise.
api::HttpReply VerifyAnswer(std::vector<api::HttpReply>& replies) {
  Json shards = Json::array();
  bool ok = true;
  uint64_t events = 0;
  for (size_t shard = 0; shard < replies.size(); shard++) {
    if (replies[shard].status != 200) return std::move(replies[shard]);
    Json one = Json::parse(replies[shard].body, nullptr, /*allow_exceptions=*/false);
    if (!one.is_object())
      return Unavailable(ShardName(static_cast<int>(shard)) + " answered no JSON");
    ok = ok && one.value("ok", false);
    events += one.value("events", uint64_t{0});
    Json row{{"shard", shard}};
    row.update(one);
    shards.push_back(std::move(row));
  }
  api::HttpReply reply;
  reply.body = Json{{"ok", ok}, {"events", events}, {"shards", std::move(shards)}}.dump();
  return reply;
}

// A whole-cluster verify: `GET /v1/ledger/verify` naming no shard.
bool IsVerifyAll(const api::HttpRequest& request) {
  if (request.method != "GET" || request.forwarded) return false;
  auto target = api::ParseTarget(request.target);
  return target.ok() && target->segments == std::vector<std::string>{"v1", "ledger", "verify"} &&
         target->query.empty();
}

}  // namespace

Front::Front(ShardSet& shards, Members& members, api::Service& service, api::Metrics& metrics,
             std::string instance_id, int standby_replicas)
    : shards_(shards),
      members_(members),
      service_(service),
      metrics_(metrics),
      instance_id_(std::move(instance_id)),
      standby_replicas_(standby_replicas) {
  publisher_ = std::thread([this] { PublishLoop(); });
}

Front::~Front() { Stop(); }

void Front::Stop() {
  forwards_stopped_ = true;
  {
    std::lock_guard<std::mutex> lock(publish_mu_);
    stopping_ = true;
  }
  publish_cv_.notify_all();
  if (publisher_.joinable()) publisher_.join();
  pool_.Stop();
}

// Every shard's verify, gathered: each asked where it is served (here, or
// its owner), answered together once all are in.
void Front::VerifyAll(const api::HttpRequest& request, api::Respond respond) {
  struct Gather {
    std::mutex mu;
    int left = 0;
    std::vector<api::HttpReply> replies;
    api::Respond respond;
  };
  auto gather = std::make_shared<Gather>();
  gather->left = shards_.shards();
  gather->replies.resize(shards_.shards());
  gather->respond = std::move(respond);
  for (int shard = 0; shard < shards_.shards(); shard++) {
    api::HttpRequest one = request;
    one.target = "/v1/ledger/verify?shard=" + std::to_string(shard);
    auto done = [gather, shard](api::HttpReply reply) {
      {
        std::lock_guard<std::mutex> lock(gather->mu);
        gather->replies[shard] = std::move(reply);
        if (--gather->left > 0) return;
      }
      gather->respond(VerifyAnswer(gather->replies));
    };
    if (shards_.Serving(shard) != nullptr) {
      service_.Handle(std::move(one), std::move(done));
    } else {
      Forward(shard, std::move(one), std::move(done));
    }
  }
}

void Front::Handle(api::HttpRequest&& request, api::Respond respond) {
  if (IsVerifyAll(request)) return VerifyAll(request, std::move(respond));
  std::optional<int> shard = ShardOfRequest(request, shards_.shards(), service_.ScopedOrg(request));
  if (!shard || shards_.Serving(*shard) != nullptr) {
    return service_.Handle(std::move(request), std::move(respond));
  }
  if (request.forwarded) {
    // Forwarded here by an instance whose table said we serve it: we do not
    // (any more, or not yet). Never forward twice.
    return respond(Unavailable(ShardName(*shard) + " is not served by this instance; retry"));
  }
  Forward(*shard, std::move(request), std::move(respond));
}

void Front::Forward(int shard, api::HttpRequest&& request, api::Respond respond) {
  std::optional<MemberRecord> owner = members_.OwnerOf(shard);
  if (!owner || owner->instance_id == instance_id_) {
    return respond(Unavailable(ShardName(shard) + " is moving between instances; retry"));
  }
  auto peer = api::PeerUrl::Parse(owner->url);
  if (!peer.ok()) {
    return respond(Unavailable("the owner of " + ShardName(shard) +
                               " advertises an unusable URL: " + peer.status().message()));
  }
  metrics_.Count("ledger_cluster_forwarded_total", "");
  auto shared = std::make_shared<api::HttpRequest>(std::move(request));
  bool queued = pool_.TrySubmit([this, shard, peer = *peer, shared, respond]() {
    // Queued behind others when the instance began to stop: not sent.
    if (forwards_stopped_.load()) return respond(Unavailable("the instance is stopping; retry"));
    try {
      auto reply = client_.Send(peer, *shared, {{api::kForwardedHeader, "1"}}, kForwardDeadline);
      if (reply.ok()) return respond(std::move(reply).value());
      respond(Unavailable("the owner of " + ShardName(shard) +
                          " did not answer: " + reply.status().message()));
    } catch (const std::exception& e) {
      respond(Unavailable(std::string("forwarding failed: ") + e.what()));
    }
  });
  if (!queued) respond(Unavailable("too many requests are being forwarded; retry"));
}

// One ingest body's parts, answered together once the last one is in.
struct Front::Join {
  std::mutex mu;
  size_t parts_left = 0;
  uint64_t accepted = 0;
  uint64_t duplicates = 0;
  uint64_t last_sequence = 0;
  std::vector<std::pair<size_t, Json>> rejected;  // by body index
  std::optional<api::HttpReply> failure;          // the first part that failed
  std::vector<std::string> event_ids;
  api::Respond respond;

  // Records one part's end; the last one answers, exactly once, whatever
  // a part's merge throws.
  void Finish(const std::function<void()>& merge) noexcept {
    bool last = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      try {
        merge();
      } catch (const std::exception& e) {
        if (!failure) failure = Unavailable(std::string("merging an answer failed: ") + e.what());
      }
      last = parts_left > 0 && --parts_left == 0;
    }
    if (!last) return;
    try {
      Answer();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ledgerd: cluster: an ingest answer failed: %s\n", e.what());
    }
  }

  void Answer() {
    if (failure) return respond(std::move(*failure));
    std::sort(rejected.begin(), rejected.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    Json list = Json::array();
    for (auto& [index, item] : rejected) list.push_back(std::move(item));
    api::HttpReply reply;
    reply.body = Json{{"accepted", accepted},
                      {"duplicates", duplicates},
                      {"rejected", std::move(list)},
                      {"last_sequence", last_sequence}}
                     .dump(-1, ' ', false, Json::error_handler_t::replace);
    respond(std::move(reply));
  }
};

void Front::Ingest(std::vector<ledger::Entry> entries, const api::HttpRequest& request,
                   api::Respond respond) {
  auto join = std::make_shared<Join>();
  join->respond = std::move(respond);
  // The Service recorded the caller on every entry; the shard records it too.
  const std::string principal = entries.empty() ? "" : entries.front().source.principal();
  std::map<int, std::pair<std::vector<size_t>, std::vector<IngestEvent>>> parts;
  for (size_t i = 0; i < entries.size(); i++) {
    ledger::Entry& e = entries[i];
    join->event_ids.push_back(e.event_id);
    // An event whose org cannot be read goes to shard 0, whose owner
    // rejects it with its precise error and keeps it, as one ledgerd would.
    auto& part = parts[e.org_id.empty() ? 0 : ShardOf(e.org_id, shards_.shards())];
    part.first.push_back(i);
    part.second.push_back(IngestEvent{std::move(e.raw), std::move(e.org_id), std::nullopt});
  }
  // An empty body still gets its answer: one part with nothing in it.
  join->parts_left = std::max<size_t>(parts.size(), 1);
  if (parts.empty()) return join->Finish([] {});
  // The Service admitted only JSON and NDJSON types; anything but plain JSON
  // is one of the NDJSON names.
  std::string type = request.content_type.substr(0, request.content_type.find(';'));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const bool ndjson = type != "application/json";
  for (auto& [shard, part] : parts) {
    if (shards_.Serving(shard) != nullptr) {
      IngestPart(join, shard, std::move(part.first), std::move(part.second), principal);
    } else if (request.forwarded) {
      join->Finish([&] {
        if (!join->failure) join->failure = Unavailable(ShardName(shard) + " moved; retry");
      });
    } else {
      ForwardPart(join, shard, std::move(part.first), std::move(part.second), request.authorization,
                  ndjson);
    }
  }
}

void Front::Redrive(int shard, ledger::Entry entry, api::Respond respond) {
  auto join = std::make_shared<Join>();
  join->respond = std::move(respond);
  join->event_ids.push_back(entry.event_id);
  join->parts_left = 1;
  // The shard's consumer judges the stored rejection itself (its bytes and
  // source); the message carries the bytes only for a rejection gone by then.
  std::vector<IngestEvent> events;
  events.push_back(IngestEvent{
      std::move(entry.raw), std::move(entry.org_id),
      IngestEvent::Redrive{entry.redrive_of.value_or(0), entry.source.SerializeAsString()}});
  IngestPart(join, shard, {0}, std::move(events), entry.source.principal());
}

void Front::IngestPart(const std::shared_ptr<Join>& join, int shard, std::vector<size_t> indices,
                       std::vector<IngestEvent> events, const std::string& principal) {
  shards_.Ingest(
      shard, std::move(events), principal,
      [join, indices = std::move(indices)](Result<std::vector<ledger::Outcome>> r) {
        join->Finish([&] {
          if (!r.ok()) {
            if (!join->failure) join->failure = Unavailable(r.status().message());
            return;
          }
          for (size_t k = 0; k < r->size(); k++) {
            const ledger::Outcome& o = (*r)[k];
            const size_t index = indices[k];
            if (o.kind == ledger::Outcome::Kind::kRejected) {
              const std::string& id = join->event_ids[index];
              join->rejected.emplace_back(index,
                                          Json{{"index", index},
                                               {"event_id", id.empty() ? Json(nullptr) : Json(id)},
                                               {"code", CodeName(o.code)},
                                               {"message", o.message}});
              continue;
            }
            (o.kind == ledger::Outcome::Kind::kAccepted ? join->accepted : join->duplicates)++;
            join->last_sequence = std::max(join->last_sequence, o.sequence.value);
          }
        });
      });
}

void Front::ForwardPart(const std::shared_ptr<Join>& join, int shard, std::vector<size_t> indices,
                        std::vector<IngestEvent> events, const std::string& authorization,
                        bool ndjson) {
  // The part travels as the body it came in: NDJSON lines, or a JSON array
  // of the events (each is a JSON value, or the body would not have parsed).
  api::HttpRequest part;
  part.method = "POST";
  part.target = "/v1/events";
  part.content_type = ndjson ? "application/x-ndjson" : "application/json";
  part.authorization = authorization;
  part.body = ndjson ? "" : "[";
  for (size_t k = 0; k < events.size(); k++) {
    if (k > 0) part.body += ndjson ? "\n" : ",";
    part.body += events[k].raw;
  }
  if (!ndjson) part.body += "]";
  Forward(shard, std::move(part), [join, indices = std::move(indices)](api::HttpReply reply) {
    join->Finish([&] {
      if (reply.status != 200) {
        if (!join->failure) join->failure = std::move(reply);
        return;
      }
      Json answer = Json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
      if (!answer.is_object() || !answer["rejected"].is_array()) {
        if (!join->failure) join->failure = Unavailable("an owner's answer did not parse");
        return;
      }
      join->accepted += answer.value("accepted", uint64_t{0});
      join->duplicates += answer.value("duplicates", uint64_t{0});
      join->last_sequence =
          std::max(join->last_sequence, answer.value("last_sequence", uint64_t{0}));
      for (Json& item : answer["rejected"]) {
        if (!item.is_object()) continue;
        const size_t k = item.value("index", size_t{0});
        if (k >= indices.size()) continue;
        item["index"] = indices[k];
        join->rejected.emplace_back(indices[k], std::move(item));
      }
    });
  });
}

void Front::SetAdvertise(std::string url) {
  {
    std::lock_guard<std::mutex> lock(publish_mu_);
    advertise_ = std::move(url);
  }
  publish_cv_.notify_all();
}

MemberRecord Front::Self(std::string url) const {
  MemberRecord self;
  self.instance_id = instance_id_;
  self.url = std::move(url);
  for (const ShardStatus& s : shards_.Describe()) {
    if (s.owned) self.owned.push_back(s.shard);
    if (s.serving) self.serving.push_back(s.shard);
    if (s.standby) self.standby.push_back(s.shard);
    if (s.owned) self.heads.push_back(ShardHead{s.shard, s.sequence, s.hash_hex, s.next_offset});
  }
  return self;
}

void Front::PublishLoop() {
  std::unique_lock<std::mutex> lock(publish_mu_);
  for (;;) {
    if (!advertise_.empty()) {
      std::string url = advertise_;
      lock.unlock();
      try {
        if (standby_replicas_ > 0) {
          shards_.SetStandby(
              StandbyFor(members_.Table(), instance_id_, standby_replicas_, shards_.shards()));
        }
        members_.Publish(Self(std::move(url)));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "ledgerd: cluster: publishing this instance failed: %s\n", e.what());
      }
      lock.lock();
    }
    publish_cv_.wait_for(lock, std::chrono::milliseconds(kPublishIntervalMs),
                         [this] { return stopping_; });
    if (stopping_) return;
  }
}

std::string Front::ClusterJson() const {
  const std::vector<MemberRecord> table = members_.Table();
  Json instances = Json::array();
  for (const MemberRecord& m : table) {
    instances.push_back(Json{{"instance_id", m.instance_id},
                             {"url", m.url},
                             {"owned", m.owned},
                             {"serving", m.serving},
                             {"standby", m.standby}});
  }
  Json shards = Json::array();
  for (int shard = 0; shard < shards_.shards(); shard++) {
    Json row{{"shard", shard}, {"owner", nullptr}};
    if (std::optional<MemberRecord> owner = members_.OwnerOf(shard)) {
      row["owner"] = owner->instance_id;
      for (const ShardHead& h : owner->heads) {
        if (h.shard != shard) continue;
        row["head_sequence"] = h.sequence;
        row["head_hash"] = h.hash_hex;
        row["next_offset"] = h.next_offset;
      }
    }
    shards.push_back(std::move(row));
  }
  return Json{{"instance_id", instance_id_},
              {"shard_count", shards_.shards()},
              {"instances", std::move(instances)},
              {"shards", std::move(shards)}}
      .dump();
}

}  // namespace billing::cluster
