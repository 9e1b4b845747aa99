// The real ledgerd binary for one test: started on a free loopback port with
// the flags the test asks for, its `listening on` line awaited with a
// deadline, and stopped with SIGTERM (SIGKILL if it will not stop) when the
// test is done with it. Every real-binary suite starts ledgerd through this.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace billing::testing {

// How long ledgerd may take from exec to `listening on`. It opens the ledger
// first, which can mean replaying a WAL after a SIGKILL or rebuilding read
// models; the rest is margin for a sanitizer build on a loaded 2-core machine.
inline constexpr std::chrono::seconds kLedgerdStartTimeout{60};
// How long ledgerd may take to stop after SIGTERM: it answers in-flight
// requests and writes its queued appends first. Then it gets SIGKILL, so a
// hung shutdown fails the test (a nonzero exit) instead of hanging it.
inline constexpr std::chrono::seconds kLedgerdStopTimeout{30};

// ledgerd's own path in the build tree.
std::string LedgerdPath();
// ledgerctl's own path in the build tree.
std::string LedgerctlPath();

// Whether ledgerd writes its JSON line per request to stderr.
enum class AccessLog { kOn, kOff };
// Where ledgerd consumes Kafka from, if anywhere.
enum class KafkaSource { kNone, kEmbedded, kBrokers };

// The flags of one ledgerd. The defaults start one on a fresh data directory
// with neither tokens nor Kafka, and without the access log: a test that
// reads the log asks for it. Every member has an initializer, so that a test
// names only the ones it sets ({.tokens = ...}) without a GCC warning.
struct LedgerdOptions {
  // --data-dir; empty: "data" in a directory the Ledgerd owns and removes.
  std::string data_dir{};
  // Lines of a tokens file ("TOKEN ROLE ORG NAME"): written, owner-only, to
  // the Ledgerd's directory and passed as --tokens. Empty: no tokens.
  std::string tokens{};
  // --tokens FILE as given (for files a test made with its own mode).
  std::string tokens_file{};
  AccessLog access_log = AccessLog::kOff;
  KafkaSource kafka = KafkaSource::kNone;
  // --kafka-brokers, with KafkaSource::kBrokers.
  std::string kafka_brokers{};
  // --topic and --group; empty: ledgerd's defaults.
  std::string kafka_topic{};
  std::string kafka_group{};
  // --kafka-session-timeout-ms; zero: ledgerd's default.
  std::chrono::milliseconds kafka_session_timeout{0};
  // Appended after every flag above.
  std::vector<std::string> extra_args{};
  // Set in ledgerd's environment on top of the test's own.
  std::map<std::string, std::string> env{};
  // Where stderr is appended; empty: "ledgerd.log" in the Ledgerd's directory.
  std::string stderr_file{};
  std::chrono::milliseconds start_timeout = kLedgerdStartTimeout;
};

// Not thread-safe, except that port() and the HTTP calls may be used from
// many threads once the constructor has returned.
class Ledgerd {
 public:
  // Starts ledgerd and waits for `listening on` (and, with an embedded
  // broker, `kafka bootstrap:` before it). If it does not come in time, the
  // test fails (ADD_FAILURE, with ledgerd's stderr) and started() is false.
  explicit Ledgerd(LedgerdOptions options = {});
  // Stop(), unless the test already stopped or killed it.
  ~Ledgerd();
  Ledgerd(const Ledgerd&) = delete;
  Ledgerd& operator=(const Ledgerd&) = delete;

  bool started() const { return port_ != 0; }
  // 0 when it did not start.
  uint16_t port() const { return port_; }
  // "HOST:PORT" of the embedded broker; empty without one.
  const std::string& kafka_bootstrap() const { return kafka_bootstrap_; }
  const std::string& data_dir() const { return options_.data_dir; }
  const std::string& stderr_file() const { return options_.stderr_file; }
  // Everything ledgerd wrote to stderr so far.
  std::string StderrText() const;
  pid_t pid() const { return child_->pid(); }

  // One request on a new connection (see Http): status 0 when unanswered.
  HttpResponse Get(const std::string& target,
                   const std::map<std::string, std::string>& headers = {}) const;
  HttpResponse Post(const std::string& target, const std::string& body,
                    const std::string& content_type = "application/json",
                    const std::map<std::string, std::string>& headers = {}) const;
  // The /metrics text; empty unless answered 200.
  std::string Metrics() const;

  void Signal(int sig) { child_->Signal(sig); }
  // Waits for the exit; the exit code, or 128 + the signal that ended it.
  int Wait() { return child_->Wait(); }
  // SIGTERM, then SIGKILL after kLedgerdStopTimeout; the exit code as Wait.
  int Stop();
  // SIGKILL (a crash); 128 + SIGKILL as Wait.
  int Kill();

 private:
  TempDir dir_;
  LedgerdOptions options_;
  std::unique_ptr<Child> child_;
  uint16_t port_ = 0;
  std::string kafka_bootstrap_;
};

// One counter or gauge from /metrics text; 0 when absent (a counter never
// incremented is not listed).
int64_t MetricValue(const std::string& metrics_text, const std::string& series);

}  // namespace billing::testing
