// Access control: bearer tokens with a role and an organization scope.
//
// The tokens file has one token a line, `#` starts a comment:
//
//     <token> <role> <org-id or *> [name]
//
// Roles: viewer (reads an org's dashboard, usage history and invoices),
// producer (posts events, re-drives rejected ones), auditor (reads, plus the
// ledger stream, verify, rejected list and metrics), admin (everything). A
// token scoped to one org never sees or writes another org's data. The name
// (default: the role) is recorded with every event the token posts.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "events/status.h"

namespace billing::api {

enum class Role { kViewer, kProducer, kAuditor, kAdmin };

struct Principal {
  std::string name;
  Role role = Role::kAdmin;
  std::optional<std::string> org;  // nullopt: every org

  bool CanSeeOrg(const std::string& org_id) const { return !org || *org == org_id; }
};

class Tokens {
 public:
  // Reads a tokens file; kInvalidArgument with the line number on a bad line.
  static Result<Tokens> Load(const std::string& path);
  // The principal of an `Authorization` header value, or nullopt.
  std::optional<Principal> Authenticate(std::string_view authorization) const;
  size_t size() const { return by_digest_.size(); }

 private:
  // Keyed by the token's SHA-256 so a lookup's timing reveals nothing of the token.
  std::unordered_map<std::string, Principal> by_digest_;
};

}  // namespace billing::api
