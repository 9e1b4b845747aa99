#include "service/auth.h"

#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "ledger/hash_chain.h"

namespace billing::api {

namespace {

// Refuses a tokens file that others may write (they could give themselves a
// token, of any role) or that every user may read (each token is a whole
// secret). Group read stays allowed, as PostgreSQL allows for its key files:
// a deployment may let a group of operators read it.
Status CheckPermissions(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    return Status(Code::kInvalidArgument, "cannot read tokens file " + path);
  char mode[8];
  std::snprintf(mode, sizeof(mode), "%03o", static_cast<unsigned>(st.st_mode & 0777));
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status(Code::kInvalidArgument, "tokens file " + path + " is writable by others (mode " +
                                              mode + "); make it private: chmod 600 " + path);
  }
  if ((st.st_mode & S_IROTH) != 0) {
    return Status(Code::kInvalidArgument,
                  "tokens file " + path + " is readable by every user (mode " + mode +
                      "), and its tokens are secrets; make it private: chmod 600 " + path);
  }
  return Status::Ok();
}

}  // namespace

Result<Tokens> Tokens::Load(const std::string& path) {
  if (Status s = CheckPermissions(path); !s.ok()) return s;
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
    if (token.size() < kTokenCharsMin) {
      return bad("token shorter than " + std::to_string(kTokenCharsMin) +
                 " characters (use e.g. `openssl rand -hex 16`)");
    }
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
  // credentials = auth-scheme 1*SP token68; the scheme is case-insensitive.
  constexpr std::string_view kBearer = "bearer";
  if (authorization.size() <= kBearer.size() + 1 || authorization[kBearer.size()] != ' ')
    return std::nullopt;
  for (size_t i = 0; i < kBearer.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kBearer[i])
      return std::nullopt;
  }
  std::string_view token = authorization.substr(kBearer.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  auto it = by_digest_.find(ledger::Digest(token));
  if (it == by_digest_.end()) return std::nullopt;
  return it->second;
}

}  // namespace billing::api
