#include "webhooks/endpoints.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "ledger/hash_chain.h"

namespace billing::webhooks {

namespace {

// As for the tokens file (service/auth.cc): others may not write it (they
// could redirect every tenant's invoices), every user may not read it (each
// secret signs deliveries); a group of operators may read it.
Status CheckPermissions(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    return Status(Code::kInvalidArgument, "cannot read webhooks file " + path);
  char mode[8];
  std::snprintf(mode, sizeof(mode), "%03o", static_cast<unsigned>(st.st_mode & 0777));
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status(Code::kInvalidArgument, "webhooks file " + path +
                                              " is writable by others (mode " + mode +
                                              "); make it private: chmod 600 " + path);
  }
  if ((st.st_mode & S_IROTH) != 0) {
    return Status(Code::kInvalidArgument,
                  "webhooks file " + path + " is readable by every user (mode " + mode +
                      "), and its secrets sign deliveries; make it private: chmod 600 " + path);
  }
  return Status::Ok();
}

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

bool ValidOrgId(const std::string& org) {
  if (org.empty() || org.size() > 64) return false;
  for (char c : org) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Visible ASCII only: the URL goes on a request line and into JSON answers.
bool PrintableAscii(const std::string& s) {
  for (char c : s) {
    if (c <= ' ' || c >= 0x7f) return false;
  }
  return true;
}

Status ParseKinds(const std::string& text, Endpoint* e) {
  std::stringstream list(text);
  std::string kind;
  while (std::getline(list, kind, ',')) {
    if (kind == "budget_alert") {
      e->budget_alert = true;
    } else if (kind == "invoice_finalized") {
      e->invoice_finalized = true;
    } else {
      return Status(Code::kInvalidArgument,
                    "unknown kind `" + kind + "` (budget_alert, invoice_finalized)");
    }
  }
  if (!e->budget_alert && !e->invoice_finalized)
    return Status(Code::kInvalidArgument, "no kind given (budget_alert, invoice_finalized)");
  return Status::Ok();
}

}  // namespace

bool Endpoint::Takes(projections::DeliveryKind kind, const std::string& org_id) const {
  if (org && *org != org_id) return false;
  return kind == projections::DeliveryKind::kBudgetAlert ? budget_alert : invoice_finalized;
}

Result<Endpoint> ParseUrl(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return Status(Code::kInvalidArgument, "URL " + url.substr(0, 200) + ": " + why);
  };
  if (url.size() > kUrlBytesMax)
    return bad("longer than " + std::to_string(kUrlBytesMax) + " bytes");
  if (!PrintableAscii(url)) return bad("holds a space, a control or a non-ASCII character");
  Endpoint e;
  e.url = url;
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    e.scheme = Scheme::kHttps;
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    e.scheme = Scheme::kHttp;
    rest = url.substr(7);
  } else {
    return bad("must start with https:// (or http:// to a loopback host)");
  }
  if (url.find('#') != std::string::npos) return bad("a fragment is never sent; remove it");
  const size_t slash = rest.find_first_of("/?");
  std::string authority = rest.substr(0, slash);
  e.target = slash == std::string::npos ? "/" : rest.substr(slash);
  if (e.target.front() == '?') e.target = "/" + e.target;
  if (authority.find('@') != std::string::npos)
    return bad("user:password@ is not allowed; the secret authenticates deliveries");
  std::string port_text;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) return bad("an IPv6 host needs its closing ]");
    e.host = authority.substr(1, close - 1);
    std::string after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return bad("unexpected text after ]");
    if (!after.empty()) port_text = after.substr(1);
  } else {
    const size_t colon = authority.rfind(':');
    e.host = authority.substr(0, colon);
    if (colon != std::string::npos) port_text = authority.substr(colon + 1);
  }
  if (e.host.empty()) return bad("no host");
  if (port_text.empty()) {
    port_text = e.scheme == Scheme::kHttps ? "443" : "80";
  } else if (port_text.size() > 5 ||
             port_text.find_first_not_of("0123456789") != std::string::npos ||
             std::stoul(port_text) == 0 || std::stoul(port_text) > 65535) {
    return bad("the port must be a number from 1 to 65535");
  }
  e.port = port_text;
  if (e.scheme == Scheme::kHttp && !IsLoopbackHost(e.host)) {
    return bad(
        "plain http:// is allowed only to a loopback host; use https:// so that "
        "invoices cross the network encrypted and to the verified host");
  }
  e.key = ledger::Hex(ledger::Digest(url)).substr(0, 16);
  return e;
}

Result<std::vector<Endpoint>> LoadEndpoints(const std::string& path) {
  if (Status s = CheckPermissions(path); !s.ok()) return s;
  std::ifstream in(path);
  if (!in) return Status(Code::kInvalidArgument, "cannot read webhooks file " + path);
  std::vector<Endpoint> endpoints;
  std::set<std::string> urls;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    auto bad = [&](const std::string& why) {
      return Status(Code::kInvalidArgument, path + ":" + std::to_string(number) + ": " + why);
    };
    if (line.size() > kLineBytesMax)
      return bad("line longer than " + std::to_string(kLineBytesMax) + " bytes");
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream fields(line);
    std::string url, secret, org, kinds, extra;
    if (!(fields >> url)) continue;
    if (!(fields >> secret >> org >> kinds) || (fields >> extra))
      return bad("expected `<URL> <SECRET> <org-id or *> <kind>[,<kind>]`");
    auto endpoint = ParseUrl(url);
    if (!endpoint.ok()) return bad(endpoint.status().message());
    // The secret is never quoted back: only its length is wrong.
    if (secret.size() < kSecretCharsMin || secret.size() > kSecretCharsMax) {
      return bad("the secret must be " + std::to_string(kSecretCharsMin) + " to " +
                 std::to_string(kSecretCharsMax) + " characters (e.g. `openssl rand -hex 16`)");
    }
    endpoint->secret = secret;
    if (org != "*") {
      if (!ValidOrgId(org)) return bad("`" + org + "` is not an org id (or *)");
      endpoint->org = org;
    }
    if (Status k = ParseKinds(kinds, &*endpoint); !k.ok()) return bad(k.message());
    if (!urls.insert(url).second)
      return bad("URL " + url + " is listed twice; give it once, with every kind it takes");
    if (endpoints.size() == kEndpointsMax)
      return bad("more than " + std::to_string(kEndpointsMax) + " endpoints");
    endpoints.push_back(std::move(endpoint).value());
  }
  if (in.bad()) return Status(Code::kInvalidArgument, "cannot read webhooks file " + path);
  return endpoints;
}

}  // namespace billing::webhooks
