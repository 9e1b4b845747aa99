#include "ledger/hash_chain.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <memory>

#include "events/status.h"
#include "ledger/format.h"

namespace billing::ledger {

namespace {

// OpenSSL 3 looks the algorithm up on every EVP_sha256() use (~0.2 µs, as
// much as hashing a 300-byte event); fetching it once and keeping one context
// per thread halves the cost of the two hashes the writer makes per event.
const EVP_MD* Sha256() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  LEDGER_CHECK(md != nullptr, "OpenSSL has no SHA-256 (no default provider loaded)");
  return md;
}

EVP_MD_CTX* ThreadContext() {
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                           &EVP_MD_CTX_free);
  LEDGER_CHECK(ctx != nullptr, "EVP_MD_CTX_new failed (out of memory)");
  return ctx.get();
}

}  // namespace

std::string GenesisHash() { return std::string(format::kHashBytes, '\0'); }

std::string ChainHash(std::string_view prev_hash, uint64_t sequence, int64_t recorded_at_micros,
                      std::string_view event) {
  std::string header;
  header.reserve(16);
  format::PutBe64(&header, sequence);
  format::PutBe64(&header, static_cast<uint64_t>(recorded_at_micros));
  // EVP is OpenSSL 3's supported interface; the SHA256_* calls are deprecated.
  EVP_MD_CTX* ctx = ThreadContext();
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  bool ok = EVP_DigestInit_ex(ctx, Sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, prev_hash.data(), prev_hash.size()) == 1 &&
            EVP_DigestUpdate(ctx, header.data(), header.size()) == 1 &&
            EVP_DigestUpdate(ctx, event.data(), event.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, out, &len) == 1;
  LEDGER_CHECK(ok, "SHA-256 failed inside OpenSSL (out of memory)");
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Digest(std::string_view bytes) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = ThreadContext();
  bool ok = EVP_DigestInit_ex(ctx, Sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx, bytes.data(), bytes.size()) == 1 &&
            EVP_DigestFinal_ex(ctx, out, &len) == 1;
  LEDGER_CHECK(ok, "SHA-256 failed inside OpenSSL (out of memory)");
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Hex(std::string_view raw) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

}  // namespace billing::ledger
