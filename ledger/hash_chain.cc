#include "ledger/hash_chain.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <memory>

#include "ledger/format.h"

namespace billing::ledger {

std::string GenesisHash() { return std::string(format::kHashBytes, '\0'); }

std::string ChainHash(std::string_view prev_hash, uint64_t sequence, int64_t recorded_at_micros,
                      std::string_view event) {
  std::string header;
  header.reserve(16);
  format::PutBe64(&header, sequence);
  format::PutBe64(&header, static_cast<uint64_t>(recorded_at_micros));
  // EVP is OpenSSL 3's supported interface; the SHA256_* calls are deprecated.
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  bool ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx.get(), prev_hash.data(), prev_hash.size()) == 1 &&
            EVP_DigestUpdate(ctx.get(), header.data(), header.size()) == 1 &&
            EVP_DigestUpdate(ctx.get(), event.data(), event.size()) == 1 &&
            EVP_DigestFinal_ex(ctx.get(), out, &len) == 1;
  if (!ok) std::abort();  // only on allocation failure inside OpenSSL
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Digest(std::string_view bytes) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), out, &len, EVP_sha256(), nullptr) != 1) std::abort();
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
