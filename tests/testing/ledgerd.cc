#include "tests/testing/ledgerd.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "tests/testing/files.h"

namespace billing::testing {
namespace {

constexpr char kListeningPrefix[] = "listening on http://127.0.0.1:";
constexpr char kKafkaBootstrapPrefix[] = "kafka bootstrap: ";

// ledgerd refuses a tokens file that others may read or anyone else write.
void WriteOwnerOnly(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

std::vector<std::string> Arguments(const LedgerdOptions& o) {
  std::vector<std::string> args{LedgerdPath(), "--data-dir", o.data_dir, "--http", "127.0.0.1:0"};
  if (!o.tokens_file.empty()) args.insert(args.end(), {"--tokens", o.tokens_file});
  if (o.access_log == AccessLog::kOff) args.push_back("--no-access-log");
  if (o.kafka == KafkaSource::kEmbedded) args.push_back("--kafka-embedded");
  if (o.kafka == KafkaSource::kBrokers)
    args.insert(args.end(), {"--kafka-brokers", o.kafka_brokers});
  if (!o.kafka_topic.empty()) args.insert(args.end(), {"--topic", o.kafka_topic});
  if (!o.kafka_group.empty()) args.insert(args.end(), {"--group", o.kafka_group});
  if (o.kafka_session_timeout.count() > 0) {
    args.insert(args.end(),
                {"--kafka-session-timeout-ms", std::to_string(o.kafka_session_timeout.count())});
  }
  args.insert(args.end(), o.extra_args.begin(), o.extra_args.end());
  return args;
}

}  // namespace

std::string LedgerdPath() { return BuildDir() + "/ledgerd"; }
std::string LedgerctlPath() { return BuildDir() + "/ledgerctl"; }

Ledgerd::Ledgerd(LedgerdOptions options) : options_(std::move(options)) {
  if (options_.data_dir.empty()) options_.data_dir = dir_.sub("data");
  if (options_.stderr_file.empty()) options_.stderr_file = dir_.sub("ledgerd.log");
  if (!options_.tokens.empty()) {
    options_.tokens_file = dir_.sub("tokens");
    WriteOwnerOnly(options_.tokens_file, options_.tokens);
  }
  child_ = std::make_unique<Child>(
      Arguments(options_), ChildOptions{.stderr_file = options_.stderr_file, .env = options_.env});
  // Each line is awaited with the whole start timeout: the broker's line
  // comes first and is quick, the ledger's open is what takes time.
  if (options_.kafka == KafkaSource::kEmbedded) {
    kafka_bootstrap_ = child_->WaitForLine(kKafkaBootstrapPrefix, options_.start_timeout);
  }
  const std::string port = child_->WaitForLine(kListeningPrefix, options_.start_timeout);
  if (!port.empty()) port_ = static_cast<uint16_t>(std::stoi(port));
  if (port_ == 0 || (options_.kafka == KafkaSource::kEmbedded && kafka_bootstrap_.empty())) {
    port_ = 0;
    ADD_FAILURE() << "ledgerd did not start within " << options_.start_timeout.count()
                  << " ms; its stderr:\n"
                  << StderrText();
  }
}

Ledgerd::~Ledgerd() { Stop(); }

std::string Ledgerd::StderrText() const { return ReadFile(options_.stderr_file); }

HttpResponse Ledgerd::Get(const std::string& target,
                          const std::map<std::string, std::string>& headers) const {
  return Http(port_, "GET", target, "", "", headers);
}

HttpResponse Ledgerd::Post(const std::string& target, const std::string& body,
                           const std::string& content_type,
                           const std::map<std::string, std::string>& headers) const {
  return Http(port_, "POST", target, body, content_type, headers);
}

std::string Ledgerd::Metrics() const {
  HttpResponse r = Get("/metrics");
  return r.status == 200 ? r.body : "";
}

int Ledgerd::Stop() {
  child_->Signal(SIGTERM);
  if (auto code = child_->WaitFor(kLedgerdStopTimeout)) return *code;
  ADD_FAILURE() << "ledgerd did not stop within " << kLedgerdStopTimeout.count() << " s of SIGTERM";
  return Kill();
}

int Ledgerd::Kill() {
  child_->Signal(SIGKILL);
  return child_->Wait();
}

int64_t MetricValue(const std::string& metrics_text, const std::string& series) {
  const std::string key = "\n" + series + " ";
  size_t at = metrics_text.find(key);
  if (at == std::string::npos) return 0;
  return std::stoll(metrics_text.substr(at + key.size()));
}

}  // namespace billing::testing
