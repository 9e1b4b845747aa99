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
//
// The file holds secrets that grant access, so it is refused when anyone but
// its owner may write it (anyone could add a token of their own) or when
// every user may read it (0640 is allowed: a group of operators may read it),
// and so are tokens shorter than kTokenCharsMin.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "events/status.h"

namespace billing::api {

// The shortest token accepted. A token is the whole secret: 16 random hex
// characters are 64 bits, which online guessing (each guess one HTTP request)
// cannot exhaust, while a short one like `x` falls to the first guesses.
inline constexpr size_t kTokenCharsMin = 16;

enum class Role { kViewer, kProducer, kAuditor, kAdmin };

struct Principal {
  std::string name;
  Role role = Role::kAdmin;
  std::optional<std::string> org;  // nullopt: every org

  bool CanSeeOrg(const std::string& org_id) const { return !org || *org == org_id; }
};

class Tokens {
 public:
  // Reads a tokens file; kInvalidArgument with the line number on a bad line
  // or a token shorter than kTokenCharsMin, and kInvalidArgument when the
  // file is writable by its group or others, or readable by others.
  static Result<Tokens> Load(const std::string& path);
  // The principal of an `Authorization` header value (`Bearer <token>`, the
  // scheme in any case, RFC 7235 §2.1), or nullopt.
  std::optional<Principal> Authenticate(std::string_view authorization) const;
  size_t size() const { return by_digest_.size(); }

 private:
  // Keyed by the token's SHA-256 so a lookup's timing reveals nothing of the token.
  std::unordered_map<std::string, Principal> by_digest_;
};

}  // namespace billing::api
