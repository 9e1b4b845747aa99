// ledgerd: the billing ledger service. Opens (or creates) the ledger in
// --data-dir, rebuilds read models if needed, serves the HTTP API and
// optionally consumes Kafka. SIGTERM/SIGINT/SIGHUP stop it cleanly: the
// listener closes, in-flight requests are answered, queued appends are
// written, the ledger is closed.
#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <optional>

#include "api/http_server.h"
#include "api/kafka_consumer.h"
#include "api/metrics.h"
#include "api/service.h"
#include "projections/billing.h"

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
  if (std::filesystem::exists(dir, ec)) return true;
  std::filesystem::create_directories(dir, ec);
  if (!ec) std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  if (ec) {
    std::fprintf(stderr, "ledgerd: cannot create --data-dir %s: %s\n", dir.c_str(), ec.message().c_str());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // The ledger holds every tenant's bills: whatever RocksDB creates (tables,
  // WAL, logs) is readable by ledgerd's user alone.
  umask(077);
  CLI::App app{"ledgerd: event-sourced billing ledger service"};
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
  app.add_option("--data-dir", data_dir, "where the ledger lives (created when missing)");
  app.add_option("--http", http, "listen address HOST:PORT (port 0 picks a free port)");
  app.add_option("--kafka-brokers", kafka_brokers, "consume from these Kafka brokers");
  app.add_flag("--kafka-embedded", kafka_embedded, "start an embedded Kafka broker and consume from it");
  app.add_option("--topic", topic, "Kafka topic");
  app.add_option("--group", group, "Kafka consumer group");
  app.add_option("--dlq-topic", dlq_topic, "also publish rejected Kafka messages to this topic");
  app.add_option("--kafka-session-timeout-ms", kafka_session_timeout_ms,
                 "how long the group waits for a silent member (a killed ledgerd)");
  app.add_option("--tokens", tokens_file, "tokens file: enables access control (see api/auth.h)");
  app.add_flag("!--no-access-log", access_log, "do not write an access log line per request");
  CLI11_PARSE(app, argc, argv);

  size_t colon = http.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "ledgerd: --http must be HOST:PORT, got %s\n", http.c_str());
    return 2;
  }
  api::ServerOptions server_options;
  server_options.host = http.substr(0, colon);
  if (server_options.host.size() >= 2 && server_options.host.front() == '[') {
    server_options.host = server_options.host.substr(1, server_options.host.size() - 2);
  }
  if (server_options.host == "localhost") server_options.host = "127.0.0.1";
  auto port = ParsePort(http.substr(colon + 1));
  if (!port) {
    std::fprintf(stderr, "ledgerd: bad port in --http %s: give a number from 0 to 65535\n", http.c_str());
    return 2;
  }
  server_options.port = *port;

  api::ServiceOptions service_options;
  if (!tokens_file.empty()) {
    auto tokens = api::Tokens::Load(tokens_file);
    if (!tokens.ok()) {
      std::fprintf(stderr, "ledgerd: %s\n", tokens.status().message().c_str());
      return 2;
    }
    service_options.tokens = std::move(tokens).value();
  } else if (!IsLoopback(server_options.host)) {
    std::fprintf(stderr,
                 "ledgerd: refusing to listen on %s without access control; pass --tokens FILE "
                 "or listen on a loopback address\n",
                 server_options.host.c_str());
    return 2;
  } else {
    // Nothing else controls access: answer only requests addressed to
    // loopback names, which a web page on a rebound DNS name cannot send.
    server_options.hosts = api::HostPolicy::kLoopbackOnly;
  }

  // Signals are taken by sigwait in this thread only; every thread started
  // from here on inherits the mask. SIGHUP (the terminal went away) stops
  // like SIGTERM, as there is no configuration to reload; under nohup it
  // stays ignored.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  struct sigaction hup {};
  if (sigaction(SIGHUP, nullptr, &hup) == 0 && hup.sa_handler != SIG_IGN) sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  RaiseFileLimit();
  if (!PrepareDataDir(data_dir)) return 1;

  projections::BillingOptions billing_options;
  billing_options.dir = data_dir;
  billing_options.on_unrecoverable = [](const Status& why) {
    std::fprintf(stderr, "ledgerd: %s; exiting (status %d) so that a supervisor restarts it\n",
                 why.message().c_str(), kExitStorageFailure);
    std::fflush(stderr);
    // Like a crash, which every acknowledged event survives: nothing to flush.
    std::_Exit(kExitStorageFailure);
  };
  auto billing = projections::Billing::Open(billing_options);
  if (!billing.ok()) {
    // A storage failure that a retry may cure (a read error during the
    // rebuild, a busy disk) is not a damaged ledger: exit as after a failed
    // fsync, so that the supervisor starts ledgerd again.
    const bool retry = billing.status().code() == Code::kUnavailable;
    std::fprintf(stderr, "ledgerd: cannot open ledger: %s%s\n", billing.status().ToString().c_str(),
                 retry ? "; exiting so that a supervisor restarts it" : "");
    return retry ? kExitStorageFailure : 1;
  }

  api::Metrics metrics;
  ledger::Ledger* led = &(*billing)->ledger();
  metrics.AddCollector([led](api::Metrics& m) {
    m.Set("ledger_head_sequence", "", static_cast<int64_t>(led->head().sequence.value));
  });
  api::Service service(**billing, metrics, std::move(service_options));

  std::mutex log_mu;
  api::AccessLog log;
  if (access_log) {
    log = [&log_mu](const api::HttpRequest& req, int status, size_t bytes, int64_t micros) {
      std::string line = "{\"method\":\"" + JsonEscape(req.method) + "\",\"path\":\"" +
                         JsonEscape(req.target) + "\",\"status\":" + std::to_string(status) +
                         ",\"bytes\":" + std::to_string(bytes) + ",\"us\":" + std::to_string(micros) +
                         "}\n";
      std::lock_guard<std::mutex> lock(log_mu);
      std::fwrite(line.data(), 1, line.size(), stderr);
    };
  }

  // Declared after the Billing so that it is destroyed first on every path.
  std::unique_ptr<api::KafkaConsumer> consumer;
  if (kafka_embedded && !kafka_brokers.empty()) {
    std::fprintf(stderr, "ledgerd: give --kafka-brokers or --kafka-embedded, not both\n");
    return 2;
  }
  if (kafka_embedded || !kafka_brokers.empty()) {
    api::KafkaOptions kafka_options;
    kafka_options.brokers = kafka_brokers;
    kafka_options.embedded = kafka_embedded;
    kafka_options.topic = topic;
    kafka_options.group = group;
    kafka_options.dlq_topic = dlq_topic;
    kafka_options.session_timeout_ms = kafka_session_timeout_ms;
    auto started = api::KafkaConsumer::Start(kafka_options, **billing, metrics);
    if (!started.ok()) {
      std::fprintf(stderr, "ledgerd: %s\n", started.status().ToString().c_str());
      return 2;
    }
    consumer = std::move(started).value();
    if (kafka_embedded) {
      service.set_kafka_bootstrap(consumer->bootstrap());
      std::printf("kafka bootstrap: %s\n", consumer->bootstrap().c_str());
      std::fflush(stdout);
    }
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
              static_cast<unsigned long long>(led->head().sequence.value), data_dir.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "ledgerd: signal %d, stopping\n", sig);
  service.set_ready(false);
  (*server)->Stop();
  // The consumer writes its last batch while the ledger is still open.
  if (consumer) consumer->Stop();
  consumer.reset();
  billing->reset();  // drains queued appends and closes RocksDB
  std::fprintf(stderr, "ledgerd: stopped cleanly\n");
  return 0;
}
