#include "documents/document_hash.h"

#include <openssl/evp.h>

#include "documents/canonical_json.h"

namespace billing::documents {

std::string Sha256Hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  LEDGER_CHECK(EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr) == 1,
               "SHA-256 failed");
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

Result<std::string> DocumentHash(const nlohmann::ordered_json& invoice_answer) {
  if (!invoice_answer.is_object())
    return Status(Code::kInvalidArgument, "an invoice answer is a JSON object");
  // The seal holds the hash itself, so the hash covers everything else.
  nlohmann::ordered_json unsealed = invoice_answer;
  unsealed.erase("seal");
  auto canonical = CanonicalJson(unsealed);
  if (!canonical.ok()) return canonical.status();
  return Sha256Hex(*canonical);
}

}  // namespace billing::documents
