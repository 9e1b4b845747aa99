#include "api/auth.h"

#include <fstream>
#include <sstream>

#include "ledger/hash_chain.h"

namespace billing::api {

Result<Tokens> Tokens::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status(Code::kInvalidArgument, "cannot read tokens file " + path);
  Tokens tokens;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream fields(line);
    std::string token, role, org, name;
    if (!(fields >> token)) continue;
    auto bad = [&](const std::string& why) {
      return Status(Code::kInvalidArgument, path + ":" + std::to_string(number) + ": " + why);
    };
    if (!(fields >> role >> org)) return bad("expected `<token> <role> <org or *> [name]`");
    fields >> name;
    Principal p;
    if (role == "viewer") {
      p.role = Role::kViewer;
    } else if (role == "producer") {
      p.role = Role::kProducer;
    } else if (role == "auditor") {
      p.role = Role::kAuditor;
    } else if (role == "admin") {
      p.role = Role::kAdmin;
    } else {
      return bad("unknown role " + role + " (viewer, producer, auditor, admin)");
    }
    if (org != "*") p.org = org;
    p.name = name.empty() ? role : name;
    if (!tokens.by_digest_.emplace(ledger::Digest(token), p).second) return bad("duplicate token");
  }
  return tokens;
}

std::optional<Principal> Tokens::Authenticate(std::string_view authorization) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() || authorization.substr(0, kBearer.size()) != kBearer) {
    return std::nullopt;
  }
  auto it = by_digest_.find(ledger::Digest(authorization.substr(kBearer.size())));
  if (it == by_digest_.end()) return std::nullopt;
  return it->second;
}

}  // namespace billing::api
