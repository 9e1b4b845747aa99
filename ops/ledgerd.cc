// ledgerd: the billing ledger service. Opens (or creates) the ledger in
// --data-dir, rebuilds read models if needed, serves the HTTP API and
// optionally consumes Kafka. SIGTERM/SIGINT/SIGHUP stop it cleanly: the
// listener closes, in-flight requests are answered, queued appends are
// written, the ledger is closed.
#include <sys/resource.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <optional>

#include "cluster/members.h"
#include "cluster/shard_map.h"
#include "http/http_server.h"
#include "kafka/kafka_consumer.h"
#include "metrics/metrics.h"
#include "ops/command_line.h"
#include "ops/ledgerd_cluster.h"
#include "projections/billing.h"
#include "service/service.h"
#include "webhooks/outbox.h"

using namespace billing;

namespace {

// The exit status after a storage failure RocksDB cannot recover from in
// process (EX_TEMPFAIL): a supervisor restarts ledgerd, and reopening replays
// the WAL, which holds every acknowledged event. Serving on would only
// answer 503 to every write until someone restarts it by hand.
constexpr int kExitStorageFailure = 75;

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// For the access log: a request target is client bytes, not necessarily
// UTF-8, and each log line must stay valid JSON. Bytes above 0x7F (never
// legal raw in a target, RFC 3986) are percent-encoded as a URL would carry
// them; control characters are JSON-escaped.
std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    const auto byte = static_cast<unsigned char>(c);
    char buf[8];
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20 || byte == 0x7f) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", byte);
      out += buf;
    } else if (byte > 0x7f) {
      std::snprintf(buf, sizeof(buf), "%%%02X", byte);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// The port of --http: a decimal number 0..65535 (0 picks a free port), or
// nullopt. Stricter than stoi, which would take `70001` and truncate it.
std::optional<uint16_t> ParsePort(const std::string& text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

// Lets the process hold as many sockets as the server admits
// (api::kHttpConnectionsMax) besides RocksDB's files, as far as the hard
// limit allows; a lower soft limit would refuse connections early.
void RaiseFileLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

// Creates a missing data directory for its owner alone (0700); an existing
// one keeps the mode its operator gave it.
bool PrepareDataDir(const std::string& dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return true;
  if (std::filesystem::exists(dir, ec)) {
    std::fprintf(stderr, "ledgerd: --data-dir %s exists and is not a directory\n", dir.c_str());
    return false;
  }
  std::filesystem::create_directories(dir, ec);
  if (!ec) std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  if (ec) {
    std::fprintf(stderr, "ledgerd: cannot create --data-dir %s: %s\n", dir.c_str(),
                 ec.message().c_str());
    return false;
  }
  return true;
}

// Everything the command line sets.
struct Config {
  std::string data_dir = "./data";
  std::string http = "127.0.0.1:8080";
  std::string kafka_brokers;
  bool kafka_embedded = false;
  std::string topic = "billing.events";
  std::string group = "billing-ledger";
  std::string dlq_topic;
  int kafka_session_timeout_ms = api::kKafkaSessionTimeoutMsDefault;
  std::string tokens_file;
  bool access_log = true;
  std::string webhooks_file;
  uint32_t webhook_attempts_max = webhooks::kAttemptsMax;
  int64_t webhook_backoff_ms = webhooks::kBackoffBase.count();
  int64_t webhook_timeout_ms = webhooks::kResponseTimeout.count();
  // Cluster mode (docs/CLUSTER.md): set by --instance-id.
  std::string instance_id;
  std::string advertise;
  int shards = cluster::kShardsDefault;
  int standby_replicas = 0;
};

void AddOptions(CLI::App& app, Config& c) {
  app.add_option("--data-dir", c.data_dir, "where the ledger lives (created when missing)");
  app.add_option("--http", c.http, "listen address HOST:PORT (port 0 picks a free port)");
  app.add_option("--kafka-brokers", c.kafka_brokers, "consume from these Kafka brokers");
  app.add_flag("--kafka-embedded", c.kafka_embedded,
               "start an embedded Kafka broker and consume from it");
  app.add_option("--topic", c.topic, "Kafka topic");
  app.add_option("--group", c.group, "Kafka consumer group");
  app.add_option("--dlq-topic", c.dlq_topic, "also publish rejected Kafka messages to this topic");
  app.add_option("--kafka-session-timeout-ms", c.kafka_session_timeout_ms,
                 "how long the group waits for a silent member (a killed ledgerd)");
  app.add_option("--tokens", c.tokens_file,
                 "tokens file: enables access control (see service/auth.h)");
  app.add_flag("!--no-access-log", c.access_log, "do not write an access log line per request");
  app.add_option("--webhooks", c.webhooks_file,
                 "webhook endpoints file: `URL SECRET ORG-or-* KIND[,KIND]` a line");
  app.add_option("--webhook-attempts-max", c.webhook_attempts_max,
                 "attempts before a webhook delivery is failed")
      ->check(CLI::Range(1u, 100u));
  app.add_option("--webhook-backoff-ms", c.webhook_backoff_ms,
                 "wait after a webhook delivery's first failed attempt (doubles after each)")
      ->check(CLI::Range(int64_t{1}, webhooks::kBackoffMax.count()));
  app.add_option("--webhook-timeout-ms", c.webhook_timeout_ms,
                 "deadline of a webhook endpoint's answer (connecting has at most its own 5 s)")
      ->check(CLI::Range(int64_t{1}, webhooks::kResponseTimeout.count() * 6));
  app.add_option("--instance-id", c.instance_id,
                 "join the cluster of --group on --kafka-brokers as this instance "
                 "(docs/CLUSTER.md); its shards live in --data-dir/shard-N");
  app.add_option(
      "--advertise", c.advertise,
      "cluster: the URL other instances reach this one at (default: the --http address)");
  app.add_option("--shards", c.shards,
                 "cluster: shards (the partitions of GROUP.shards), fixed for the cluster's life")
      ->check(CLI::Range(1, cluster::kShardsMax));
  app.add_option("--standby-replicas", c.standby_replicas,
                 "cluster: keep warm copies of the shards of the N instances before this one "
                 "(docs/CLUSTER.md), so that a move to this instance replays only the tail")
      ->check(CLI::Range(0, cluster::kStandbyReplicasMax));
}

// The cluster instance the command line asks for, or kInvalidArgument.
Result<ops::ClusterConfig> ClusterOptions(const Config& c) {
  if (c.kafka_brokers.empty() || c.kafka_embedded) {
    return Status(Code::kInvalidArgument,
                  "--instance-id needs --kafka-brokers: a cluster's instances share real "
                  "brokers (`ledgerctl kafka-mock` runs one on this machine)");
  }
  if (!c.dlq_topic.empty() || !c.webhooks_file.empty()) {
    return Status(Code::kInvalidArgument,
                  "--dlq-topic and --webhooks are not available in a cluster yet");
  }
  if (c.instance_id.size() > cluster::kInstanceIdBytesMax) {
    return Status(Code::kInvalidArgument, "--instance-id is too long");
  }
  ops::ClusterConfig out;
  out.data_dir = c.data_dir;
  out.brokers = c.kafka_brokers;
  out.input_topic = c.topic;
  out.group = c.group;
  out.instance_id = c.instance_id;
  out.advertise = c.advertise;
  out.shards = c.shards;
  out.standby_replicas = c.standby_replicas;
  out.session_timeout_ms = c.kafka_session_timeout_ms;
  return out;
}

// The webhook outbox's options from the command line; kInvalidArgument
// naming the file and line of a bad endpoints file (ledgerd exits 2).
Result<webhooks::OutboxOptions> WebhookOptions(const Config& c) {
  webhooks::OutboxOptions options;
  options.attempts_max = c.webhook_attempts_max;
  options.backoff_base = std::chrono::milliseconds(c.webhook_backoff_ms);
  options.timeouts.response = std::chrono::milliseconds(c.webhook_timeout_ms);
  options.timeouts.connect = std::min(options.timeouts.connect, options.timeouts.response);
  if (c.webhooks_file.empty()) return options;
  auto endpoints = webhooks::LoadEndpoints(c.webhooks_file);
  if (!endpoints.ok()) return endpoints.status();
  options.endpoints = std::move(endpoints).value();
  return options;
}

// The listener and access control the command line asks for, or
// kInvalidArgument saying what is wrong with it (ledgerd exits 2).
Result<std::pair<api::ServerOptions, api::ServiceOptions>> ListenOptions(const Config& c) {
  size_t colon = c.http.rfind(':');
  if (colon == std::string::npos) {
    return Status(Code::kInvalidArgument, "--http must be HOST:PORT, got " + c.http);
  }
  api::ServerOptions server;
  server.host = c.http.substr(0, colon);
  if (server.host.size() >= 2 && server.host.front() == '[')
    server.host = server.host.substr(1, server.host.size() - 2);
  if (server.host == "localhost") server.host = "127.0.0.1";
  auto port = ParsePort(c.http.substr(colon + 1));
  if (!port) {
    return Status(Code::kInvalidArgument,
                  "bad port in --http " + c.http + ": give a number from 0 to 65535");
  }
  server.port = *port;
  api::ServiceOptions service;
  if (!c.tokens_file.empty()) {
    auto tokens = api::Tokens::Load(c.tokens_file);
    if (!tokens.ok()) return Status(Code::kInvalidArgument, tokens.status().message());
    service.tokens = std::move(tokens).value();
  } else if (!IsLoopback(server.host)) {
    return Status(Code::kInvalidArgument,
                  "refusing to listen on " + server.host +
                      " without access control; pass --tokens FILE or listen on a "
                      "loopback address");
  } else {
    // Nothing else controls access: answer only requests addressed to
    // loopback names, which a web page on a rebound DNS name cannot send.
    server.hosts = api::HostPolicy::kLoopbackOnly;
  }
  if (c.kafka_embedded && !c.kafka_brokers.empty()) {
    return Status(Code::kInvalidArgument, "give --kafka-brokers or --kafka-embedded, not both");
  }
  return std::make_pair(std::move(server), std::move(service));
}

// Signals are taken by sigwait in the main thread only; every thread started
// after this inherits the mask. SIGHUP (the terminal went away) stops like
// SIGTERM, as there is no configuration to reload; under nohup it stays
// ignored.
sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  struct sigaction hup {};
  if (sigaction(SIGHUP, nullptr, &hup) == 0 && hup.sa_handler != SIG_IGN)
    sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Opens the ledger and its read models (rebuilding them if needed); on
// failure, the exit status: 75 when a retry may cure it, else 1.
Result<std::unique_ptr<projections::Billing>> OpenBilling(const std::string& data_dir,
                                                          int* exit_status) {
  projections::BillingOptions options;
  options.dir = data_dir;
  options.on_unrecoverable = [](const Status& why) {
    std::fprintf(stderr, "ledgerd: %s; exiting (status %d) so that a supervisor restarts it\n",
                 why.message().c_str(), kExitStorageFailure);
    std::fflush(stderr);
    // Like a crash, which every acknowledged event survives: nothing to flush.
    std::_Exit(kExitStorageFailure);
  };
  auto billing = projections::Billing::Open(options);
  if (!billing.ok()) {
    // A storage failure that a retry may cure (a read error during the
    // rebuild, a busy disk) is not a damaged ledger: exit as after a failed
    // fsync, so that the supervisor starts ledgerd again.
    const bool retry = billing.status().code() == Code::kUnavailable;
    std::fprintf(stderr, "ledgerd: cannot open ledger: %s%s\n", billing.status().ToString().c_str(),
                 retry ? "; exiting so that a supervisor restarts it" : "");
    *exit_status = retry ? kExitStorageFailure : 1;
  }
  return billing;
}

// One JSON line per request on stderr, or none.
api::AccessLog MakeAccessLog(bool enabled, std::mutex& mu) {
  if (!enabled) return nullptr;
  return [&mu](const api::HttpRequest& req, int status, size_t bytes, int64_t micros) {
    std::string line = "{\"method\":\"" + JsonEscape(req.method) + "\",\"path\":\"" +
                       JsonEscape(req.target) + "\",\"status\":" + std::to_string(status) +
                       ",\"bytes\":" + std::to_string(bytes) + ",\"us\":" + std::to_string(micros) +
                       "}\n";
    std::lock_guard<std::mutex> lock(mu);
    std::fwrite(line.data(), 1, line.size(), stderr);
  };
}

// The Kafka consumer the command line asks for: nullptr for none.
Result<std::unique_ptr<api::KafkaConsumer>> StartKafka(const Config& c,
                                                       projections::Billing& billing,
                                                       api::Metrics& metrics,
                                                       api::Service& service) {
  if (!c.kafka_embedded && c.kafka_brokers.empty()) return std::unique_ptr<api::KafkaConsumer>();
  api::KafkaOptions options;
  options.brokers = c.kafka_brokers;
  options.embedded = c.kafka_embedded;
  options.topic = c.topic;
  options.group = c.group;
  options.dlq_topic = c.dlq_topic;
  options.session_timeout_ms = c.kafka_session_timeout_ms;
  auto started = api::KafkaConsumer::Start(options, billing, metrics);
  if (!started.ok()) return started.status();
  if (c.kafka_embedded) {
    service.set_kafka_bootstrap((*started)->bootstrap());
    std::printf("kafka bootstrap: %s\n", (*started)->bootstrap().c_str());
    std::fflush(stdout);
  }
  return started;
}

}  // namespace

int main(int argc, char** argv) {
  // The ledger holds every tenant's bills: whatever RocksDB creates (tables,
  // WAL, logs) is readable by ledgerd's user alone.
  umask(077);
  CLI::App app{"ledgerd: event-sourced billing ledger service"};
  Config config;
  AddOptions(app, config);
  if (auto exit = ops::ParseCommandLine(app, argc, argv)) return *exit;
  auto listen = ListenOptions(config);
  if (!listen.ok()) {
    std::fprintf(stderr, "ledgerd: %s\n", listen.status().message().c_str());
    return ops::kExitUsage;
  }
  auto& [server_options, service_options] = *listen;
  auto webhook_options = WebhookOptions(config);
  if (!webhook_options.ok()) {
    std::fprintf(stderr, "ledgerd: --webhooks: %s\n", webhook_options.status().message().c_str());
    return ops::kExitUsage;
  }

  sigset_t signals = BlockStopSignals();
  RaiseFileLimit();
  if (!PrepareDataDir(config.data_dir)) return ops::kExitUsage;
  if (!config.instance_id.empty()) {
    auto cluster_config = ClusterOptions(config);
    if (!cluster_config.ok()) {
      std::fprintf(stderr, "ledgerd: %s\n", cluster_config.status().message().c_str());
      return ops::kExitUsage;
    }
    std::mutex cluster_log_mu;
    return ops::RunCluster(*cluster_config, server_options, std::move(service_options),
                           MakeAccessLog(config.access_log, cluster_log_mu), signals);
  }
  int open_failed = 0;
  auto billing = OpenBilling(config.data_dir, &open_failed);
  if (!billing.ok()) return open_failed;

  api::Metrics metrics;
  ledger::Ledger* led = &(*billing)->ledger();
  metrics.AddCollector([led](api::Metrics& m) {
    m.Set("ledger_head_sequence", "", static_cast<int64_t>(led->head().sequence.value));
  });
  // The outbox is installed before anything can append, so that no close
  // accepted from here on goes without its deliveries.
  auto outbox = webhooks::Outbox::Open(**billing, metrics, std::move(webhook_options).value());
  if (!outbox.ok()) {
    std::fprintf(stderr, "ledgerd: cannot open the webhook outbox: %s\n",
                 outbox.status().ToString().c_str());
    return outbox.status().code() == Code::kUnavailable ? kExitStorageFailure : 1;
  }
  (*billing)->SetDeliveryQueue(outbox->get());
  (*outbox)->Start();
  if ((*outbox)->endpoints() > 0)
    std::fprintf(stderr, "ledgerd: webhooks: %zu endpoints\n", (*outbox)->endpoints());
  service_options.outbox = outbox->get();
  api::Service service(**billing, metrics, std::move(service_options));
  std::mutex log_mu;
  api::AccessLog log = MakeAccessLog(config.access_log, log_mu);

  // Declared after the Billing so that it is destroyed first on every path.
  auto consumer = StartKafka(config, **billing, metrics, service);
  if (!consumer.ok()) {
    std::fprintf(stderr, "ledgerd: %s\n", consumer.status().ToString().c_str());
    return ops::kExitUsage;
  }

  auto server = api::HttpServer::Start(
      server_options,
      [&service](api::HttpRequest&& req, api::Respond respond) {
        service.Handle(std::move(req), std::move(respond));
      },
      log, [&service](const api::HttpRequest& head) { return service.CheckHeaders(head); });
  if (!server.ok()) {
    std::fprintf(stderr, "ledgerd: %s\n", server.status().ToString().c_str());
    return 1;
  }
  service.set_ready(true);
  std::string shown_host = server_options.host.find(':') != std::string::npos
                               ? "[" + server_options.host + "]"
                               : server_options.host;
  std::printf("listening on http://%s:%u\n", shown_host.c_str(), (*server)->port());
  std::printf("ledger head: %llu events in %s\n",
              static_cast<unsigned long long>(led->head().sequence.value), config.data_dir.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "ledgerd: signal %d, stopping\n", sig);
  service.set_ready(false);
  (*server)->Stop();
  service.StopHeavyWork();
  // The consumer writes its last batch while the ledger is still open.
  if (*consumer) (*consumer)->Stop();
  consumer->reset();
  // The delivery threads read the ledger's database; the writer still
  // queues to the outbox while it drains, so the outbox outlives it.
  (*outbox)->Stop();
  billing->reset();  // drains queued appends and closes RocksDB
  outbox->reset();
  std::fprintf(stderr, "ledgerd: stopped cleanly\n");
  return 0;
}
