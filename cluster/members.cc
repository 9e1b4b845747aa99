#include "cluster/members.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cluster/shard_map.h"
#include "kafka/client.h"

namespace billing::cluster {

namespace {

using Clock = std::chrono::steady_clock;

// The members' table is one partition (one order for every record).
constexpr int32_t kMembersPartition = 0;
// How long one poll of the reader may block; bounds how long Stop waits.
constexpr int kReaderPollMs = 100;
// fetch.wait.max.ms of the reader: how stale the table may be beyond the
// broker's own delay. A mock broker holds every empty fetch this long.
constexpr const char* kReaderFetchWaitMs = "50";
// What the reader may prefetch (KiB): the table is small; a flood of
// records must stay in Kafka.
constexpr const char* kReaderPrefetchKbytesMax = "4096";
// At Stop, how long the tombstone gets to reach the broker: without it the
// others drop this instance only at expiry, which is still correct.
constexpr int kTombstoneFlushMs = 5000;
// Deepest JSON nesting of a record: the schema needs 3 (record, heads, a
// head); refusing deeper text before parsing keeps a hostile `[[[[…` cheap.
constexpr int kRecordJsonDepthMax = 4;
// Longest head hash: a SHA-256 in hex is 64 characters.
constexpr size_t kHeadHashBytesMax = 128;

constexpr const char* kLogWho = "members";

int64_t WallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// True if `text` nests arrays and objects no deeper than `max` (strings,
// with their escapes, are skipped). Linear, no allocation.
bool DepthWithin(std::string_view text, int max) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); i++) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        i++;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max) return false;
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
  return true;
}

using Json = nlohmann::json;

Status Malformed(const std::string& why) {
  return Status(Code::kInvalidArgument, "member record: " + why);
}

// A list of shard numbers, each 0..kShardsMax-1, at most kShardsMax of them.
Result<std::vector<int>> ShardList(const Json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_array() || it->size() > static_cast<size_t>(kShardsMax)) {
    return Malformed(std::string(field) + " is not a list of shards");
  }
  std::vector<int> shards;
  for (const Json& v : *it) {
    if (!v.is_number_integer()) return Malformed(std::string(field) + " holds a non-integer");
    const int64_t shard = v.get<int64_t>();
    if (shard < 0 || shard >= kShardsMax) return Malformed(std::string(field) + ": bad shard");
    shards.push_back(static_cast<int>(shard));
  }
  return shards;
}

Result<std::string> String(const Json& j, const char* field, size_t bytes_max) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) return Malformed(std::string(field) + " is missing");
  std::string s = it->get<std::string>();
  if (s.size() > bytes_max) return Malformed(std::string(field) + " is too long");
  return s;
}

Result<int64_t> Integer(const Json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_number_integer() ||
      (it->is_number_unsigned() && it->get<uint64_t>() > INT64_MAX)) {
    return Malformed(std::string(field) + " is not an integer");
  }
  return it->get<int64_t>();
}

Result<ShardHead> Head(const Json& j) {
  if (!j.is_object()) return Malformed("a head is not an object");
  ShardHead head;
  ASSIGN_OR_RETURN(int64_t shard, Integer(j, "shard"));
  if (shard < 0 || shard >= kShardsMax) return Malformed("a head's shard is out of range");
  head.shard = static_cast<int>(shard);
  auto seq = j.find("sequence");
  if (seq == j.end() || !seq->is_number_unsigned()) return Malformed("a head's sequence");
  head.sequence = seq->get<uint64_t>();
  ASSIGN_OR_RETURN(head.hash_hex, String(j, "hash", kHeadHashBytesMax));
  ASSIGN_OR_RETURN(head.next_offset, Integer(j, "next_offset"));
  return head;
}

Result<MemberRecord> RecordFromJson(const Json& j) {
  if (!j.is_object()) return Malformed("not a JSON object");
  MemberRecord r;
  ASSIGN_OR_RETURN(r.instance_id, String(j, "instance_id", kInstanceIdBytesMax));
  ASSIGN_OR_RETURN(r.url, String(j, "url", kMemberUrlBytesMax));
  ASSIGN_OR_RETURN(r.owned, ShardList(j, "owned"));
  ASSIGN_OR_RETURN(r.serving, ShardList(j, "serving"));
  ASSIGN_OR_RETURN(r.standby, ShardList(j, "standby"));
  auto heads = j.find("heads");
  if (heads == j.end() || !heads->is_array() || heads->size() > static_cast<size_t>(kShardsMax)) {
    return Malformed("heads is not a list of heads");
  }
  for (const Json& h : *heads) {
    ASSIGN_OR_RETURN(ShardHead head, Head(h));
    r.heads.push_back(std::move(head));
  }
  ASSIGN_OR_RETURN(r.heartbeat_ms, Integer(j, "heartbeat_ms"));
  return r;
}

}  // namespace

std::string MemberRecordJson(const MemberRecord& r) {
  Json heads = Json::array();
  for (const ShardHead& h : r.heads) {
    heads.push_back({{"shard", h.shard},
                     {"sequence", h.sequence},
                     {"hash", h.hash_hex},
                     {"next_offset", h.next_offset}});
  }
  Json j = {{"instance_id", r.instance_id},  {"url", r.url},         {"owned", r.owned},
            {"serving", r.serving},          {"standby", r.standby}, {"heads", std::move(heads)},
            {"heartbeat_ms", r.heartbeat_ms}};
  // Replaced, not thrown: an id or URL that is not UTF-8 must not stop a
  // heartbeat (Start checked their sizes; their bytes are the operator's).
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Result<MemberRecord> ParseMemberRecord(std::string_view text) {
  if (text.size() > kMemberRecordBytesMax) return Malformed("too large");
  if (!DepthWithin(text, kRecordJsonDepthMax)) return Malformed("nested too deeply");
  try {
    Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Malformed("not JSON");
    return RecordFromJson(j);
  } catch (const std::exception& e) {
    // nlohmann's accessors throw on a type we did not check for.
    return Malformed(e.what());
  }
}

struct Members::Impl {
  explicit Impl(const MembersOptions& o) : options(o), topic(MembersTopic(o.group)) {}
  ~Impl() {
    if (reader != nullptr) rd_kafka_destroy(reader);
    if (producer != nullptr) rd_kafka_destroy(producer);
  }

  Status CreateProducer();
  Status CreateReader();
  void Heartbeats();
  void Read();
  void Apply(const rd_kafka_message_t* m);
  void Send(const std::string* value);
  bool Live(const MemberRecord& r, int64_t now_ms) const;
  static void OnDelivery(rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque);

  const MembersOptions options;
  const std::string topic;
  rd_kafka_t* producer = nullptr;
  rd_kafka_t* reader = nullptr;
  std::thread heartbeat_thread;
  std::thread reader_thread;

  // Guards everything below it; held briefly (no I/O under it).
  mutable std::mutex mu;
  std::condition_variable wake;  // Publish or Stop
  bool publish_now = false;
  std::atomic<bool> stopping{false};
  std::map<std::string, MemberRecord> table;  // the topic's latest record per key
  std::optional<MemberRecord> self;           // what this instance publishes

  std::mutex stop_mu;  // serializes Stop
  bool stopped = false;

  api::KafkaErrorLog errors{kLogWho};  // by kind of failure

  std::atomic<uint64_t> records_read{0}, ignored{0}, sent{0}, send_failures{0};
};

Status Members::Impl::CreateProducer() {
  const api::KafkaSettings settings = {
      {"bootstrap.servers", options.brokers},
      {"client.id", "ledgerd-members"},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      // A heartbeat older than the expiry says nothing any more.
      {"message.timeout.ms", std::to_string(options.expiry_ms)},
      {"linger.ms", "0"},
      {"log.connection.close", "false"},
  };
  ASSIGN_OR_RETURN(producer, api::NewKafkaClient(
                                 RD_KAFKA_PRODUCER, settings,
                                 [this](rd_kafka_conf_t* conf) {
                                   rd_kafka_conf_set_dr_msg_cb(conf, &Impl::OnDelivery);
                                   rd_kafka_conf_set_opaque(conf, this);
                                 },
                                 "members producer"));
  return Status::Ok();
}

Status Members::Impl::CreateReader() {
  // No group membership: every instance reads the whole table (assign, not
  // subscribe), and nothing is committed. rd_kafka_consumer_poll still wants
  // a group id (else it reports "Unknown group"); this one is never joined.
  const api::KafkaSettings settings = {
      {"bootstrap.servers", options.brokers},
      {"group.id", topic + ".reader"},
      {"client.id", "ledgerd-members"},
      {"enable.auto.commit", "false"},
      {"fetch.wait.max.ms", kReaderFetchWaitMs},
      {"queued.max.messages.kbytes", kReaderPrefetchKbytesMax},
      {"log.connection.close", "false"},
  };
  ASSIGN_OR_RETURN(reader,
                   api::NewKafkaClient(RD_KAFKA_CONSUMER, settings, nullptr, "members reader"));
  rd_kafka_poll_set_consumer(reader);
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, topic.c_str(), kMembersPartition)->offset =
      RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_resp_err_t e = rd_kafka_assign(reader, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status(Code::kInvalidArgument,
                  "members reader: cannot read " + topic + ": " + rd_kafka_err2str(e));
  }
  return Status::Ok();
}

void Members::Impl::Heartbeats() {
  std::unique_lock<std::mutex> lock(mu);
  while (!stopping.load()) {
    wake.wait_for(lock, std::chrono::milliseconds(options.heartbeat_ms),
                  [this] { return stopping.load() || publish_now; });
    if (stopping.load()) break;
    publish_now = false;
    if (!self.has_value()) continue;
    self->heartbeat_ms = WallClockMs();
    const std::string value = MemberRecordJson(*self);
    lock.unlock();
    // Nothing may escape this thread; a failed send is retried by the next
    // heartbeat.
    try {
      Send(&value);
    } catch (const std::exception& e) {
      errors.Log("send", std::string("heartbeat: ") + e.what());
    } catch (...) {
      errors.Log("send", "heartbeat failed");
    }
    lock.lock();
  }
}

void Members::Impl::Send(const std::string* value) {
  const std::string& key = options.instance_id;
  // A null value is a tombstone.
  void* bytes = value != nullptr ? const_cast<char*>(value->data()) : nullptr;
  const size_t size = value != nullptr ? value->size() : 0;
  rd_kafka_resp_err_t e = rd_kafka_producev(
      producer, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(kMembersPartition),
      RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_VALUE(bytes, size),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    send_failures++;
    errors.Log("send", std::string("publish: ") + rd_kafka_err2str(e));
  }
  rd_kafka_poll(producer, 0);  // delivery reports
}

void Members::Impl::Read() {
  while (!stopping.load()) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(reader, kReaderPollMs);
    if (m == nullptr) continue;
    try {
      Apply(m);
    } catch (const std::exception& e) {
      ignored++;
      errors.Log("read", std::string("a record could not be applied: ") + e.what());
    } catch (...) {
      ignored++;
      errors.Log("read", "a record could not be applied");
    }
    rd_kafka_message_destroy(m);
  }
}

void Members::Impl::Apply(const rd_kafka_message_t* m) {
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      errors.Log("read", std::string("reader: ") + rd_kafka_message_errstr(m));
    }
    return;
  }
  if (m->key == nullptr || m->key_len == 0 || m->key_len > kInstanceIdBytesMax) {
    ignored++;
    return;
  }
  std::string key(static_cast<const char*>(m->key), m->key_len);
  if (m->payload == nullptr) {
    std::lock_guard<std::mutex> lock(mu);
    table.erase(key);
    records_read++;
    return;
  }
  auto record = ParseMemberRecord(std::string_view(static_cast<const char*>(m->payload), m->len));
  if (!record.ok() || record->instance_id != key) {
    ignored++;
    errors.Log("parse",
               "ignored the record of " + key + ": " +
                   (record.ok() ? "its instance_id is not its key" : record.status().message()));
    return;
  }
  std::lock_guard<std::mutex> lock(mu);
  if (table.find(key) == table.end() && table.size() >= kMembersMax) {
    ignored++;
    return;
  }
  table[key] = std::move(record).value();
  records_read++;
}

bool Members::Impl::Live(const MemberRecord& r, int64_t now_ms) const {
  // A heartbeat far in the future (a broken clock, a forged record) is not
  // live either: it would otherwise never expire.
  return r.heartbeat_ms >= now_ms - options.expiry_ms &&
         r.heartbeat_ms <= now_ms + options.expiry_ms;
}

void Members::Impl::OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* impl = static_cast<Impl*>(opaque);
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    impl->sent++;
    return;
  }
  impl->send_failures++;
  // A C callback: exceptions must not unwind through librdkafka.
  try {
    impl->errors.Log("send", std::string("delivery: ") + rd_kafka_err2str(m->err));
  } catch (...) {
  }
}

Result<std::unique_ptr<Members>> Members::Start(const MembersOptions& options) {
  if (options.brokers.empty() || options.group.empty()) {
    return Status(Code::kInvalidArgument, "members: brokers and group are required");
  }
  if (options.instance_id.empty() || options.instance_id.size() > kInstanceIdBytesMax) {
    return Status(Code::kInvalidArgument, "members: the instance id must be 1.." +
                                              std::to_string(kInstanceIdBytesMax) + " bytes");
  }
  if (options.heartbeat_ms < 1 || options.expiry_ms <= options.heartbeat_ms) {
    return Status(Code::kInvalidArgument,
                  "members: the expiry must exceed the heartbeat interval, which must be positive");
  }
  auto impl = std::make_unique<Impl>(options);
  RETURN_IF_ERROR(impl->CreateProducer());
  RETURN_IF_ERROR(impl->CreateReader());
  Impl* raw = impl.get();
  impl->reader_thread = std::thread([raw] { raw->Read(); });
  impl->heartbeat_thread = std::thread([raw] { raw->Heartbeats(); });
  return std::unique_ptr<Members>(new Members(std::move(impl)));
}

Members::Members(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Members::~Members() { Stop(); }

void Members::Publish(MemberRecord record) {
  record.instance_id = impl_->options.instance_id;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopping.load()) return;
    record.heartbeat_ms = WallClockMs();
    impl_->self = std::move(record);
    impl_->publish_now = true;
  }
  impl_->wake.notify_all();
}

std::vector<MemberRecord> Members::Table() const {
  const int64_t now = WallClockMs();
  std::vector<MemberRecord> live;
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (const auto& [id, record] : impl_->table) {
    // This instance's own entry is what it publishes, not its echo.
    if (id == impl_->options.instance_id) continue;
    if (impl_->Live(record, now)) live.push_back(record);
  }
  if (impl_->self.has_value()) {
    auto at = std::lower_bound(
        live.begin(), live.end(), impl_->self->instance_id,
        [](const MemberRecord& r, const std::string& id) { return r.instance_id < id; });
    live.insert(at, *impl_->self);
  }
  return live;
}

std::optional<MemberRecord> Members::OwnerOf(int shard) const {
  const int64_t now = WallClockMs();
  const MemberRecord* best = nullptr;
  auto consider = [&](const MemberRecord& r) {
    if (std::find(r.serving.begin(), r.serving.end(), shard) == r.serving.end()) return;
    if (best == nullptr || r.heartbeat_ms > best->heartbeat_ms) best = &r;
  };
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (const auto& [id, record] : impl_->table) {
    if (id == impl_->options.instance_id || !impl_->Live(record, now)) continue;
    consider(record);
  }
  if (impl_->self.has_value()) consider(*impl_->self);
  if (best == nullptr) return std::nullopt;
  return *best;
}

std::vector<int> StandbyFor(const std::vector<MemberRecord>& table, std::string_view self,
                            int replicas, int shards) {
  std::vector<int> out;
  const int n = static_cast<int>(table.size());
  auto me = std::find_if(table.begin(), table.end(),
                         [self](const MemberRecord& m) { return m.instance_id == self; });
  if (replicas <= 0 || me == table.end()) return out;
  const int my_index = static_cast<int>(me - table.begin());
  std::vector<int> owner(shards, -1);
  for (int i = 0; i < n; i++) {
    for (int shard : table[i].owned) {
      if (shard < 0 || shard >= shards) continue;
      int& o = owner[shard];
      if (o < 0 || table[i].heartbeat_ms > table[o].heartbeat_ms) o = i;
    }
  }
  for (int shard = 0; shard < shards; shard++) {
    if (owner[shard] < 0 || owner[shard] == my_index) continue;
    // My distance after the owner, wrapping: 1..n-1.
    const int after = (my_index - owner[shard] + n) % n;
    if (after <= replicas) out.push_back(shard);
  }
  return out;
}

void Members::Stop() {
  std::lock_guard<std::mutex> stop_lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  bool published = false;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
    published = impl_->self.has_value();
    impl_->self.reset();
  }
  impl_->wake.notify_all();
  if (impl_->heartbeat_thread.joinable()) impl_->heartbeat_thread.join();
  if (published) {
    // The tombstone goes after the last heartbeat (one producer, one
    // partition: in order), so it is what compaction keeps.
    impl_->Send(nullptr);
    if (rd_kafka_flush(impl_->producer, kTombstoneFlushMs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      impl_->errors.Log("send",
                        "the tombstone was not acknowledged; others drop this "
                        "instance at expiry");
    }
  }
  if (impl_->reader_thread.joinable()) impl_->reader_thread.join();
}

MembersStats Members::stats() const {
  MembersStats s;
  s.records_read = impl_->records_read.load();
  s.ignored = impl_->ignored.load();
  s.sent = impl_->sent.load();
  s.send_failures = impl_->send_failures.load();
  return s;
}

}  // namespace billing::cluster
