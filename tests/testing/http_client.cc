#include "tests/testing/http_client.h"

#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>

namespace billing::testing {

// Answers as large as a whole ledger stream of a test are read.
constexpr uint64_t kHttpResponseBodyBytesMax = 1ULL << 30;

namespace {

// With LEDGER_HTTP_RECORD_DIR set, appends one answer to <dir>/<pid>.ndjson
// as {"method","target","status","content_type","body"}, so that
// tests/contract/validate_responses.mjs can hold it to service/openapi.json.
void RecordHttpAnswer(const std::string& method, const std::string& target, const HttpResponse& r) {
  const char* dir = std::getenv("LEDGER_HTTP_RECORD_DIR");
  if (dir == nullptr || r.status == 0) return;
  auto type = r.headers.find("Content-Type");
  nlohmann::json line{{"method", method},
                      {"target", target},
                      {"status", r.status},
                      {"content_type", type == r.headers.end() ? "" : type->second},
                      {"body", r.body}};
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::string path = std::string(dir) + "/" + std::to_string(getpid()) + ".ndjson";
  if (FILE* f = std::fopen(path.c_str(), "a")) {
    std::fputs((line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n").c_str(),
               f);
    std::fclose(f);
  }
}

}  // namespace

HttpResponse Http(uint16_t port, const std::string& method, const std::string& target,
                  const std::string& body, const std::string& content_type,
                  const std::map<std::string, std::string>& headers) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  boost::asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code connect_ec;
  stream.socket().connect(
      boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port), connect_ec);
  if (connect_ec) return HttpResponse{};
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, "127.0.0.1");
  if (!body.empty() || method == "POST") {
    if (!content_type.empty()) req.set(http::field::content_type, content_type);
    req.body() = body;
    req.prepare_payload();
  }
  for (const auto& [k, v] : headers) req.set(k, v);
  beast::error_code ec;
  // A server may answer (413, 431) before it has read all we send: keep going
  // and read its answer.
  http::write(stream, req, ec);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kHttpResponseBodyBytesMax);
  http::read(stream, buffer, parser, ec);
  HttpResponse out;
  if (ec) return out;
  out.status = static_cast<int>(parser.get().result_int());
  out.body = parser.get().body();
  for (const auto& f : parser.get())
    out.headers[std::string(f.name_string())] = std::string(f.value());
  stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  RecordHttpAnswer(method, target, out);
  return out;
}

}  // namespace billing::testing
