// A small synchronous HTTP/1.1 client (Boost.Beast) for tests over loopback.
// Compiled once in the test_support library: a test that includes this does
// not compile Beast.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace billing::testing {

struct HttpResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
};

// One request on a new connection to 127.0.0.1:port, read to the end of the
// answer. A body (and `content_type`, unless empty) is sent with any POST.
// status 0 when there is no complete answer: refused, reset, or cut short.
HttpResponse Http(uint16_t port, const std::string& method, const std::string& target,
                  const std::string& body = "",
                  const std::string& content_type = "application/json",
                  const std::map<std::string, std::string>& headers = {});

}  // namespace billing::testing
