#include "webhooks/signature.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "events/status.h"

namespace billing::webhooks {

std::string HmacSha256Hex(std::string_view key, std::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  const unsigned char* ok =
      HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &mac_len);
  // HMAC fails only without SHA-256 in the OpenSSL build: nothing could be signed.
  LEDGER_CHECK(ok != nullptr, "HMAC-SHA256 is unavailable");
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(mac_len * 2);
  for (unsigned int i = 0; i < mac_len; ++i) {
    hex.push_back(kDigits[mac[i] >> 4]);
    hex.push_back(kDigits[mac[i] & 0xf]);
  }
  return hex;
}

std::string SignatureHeader(std::string_view secret, int64_t unix_seconds, std::string_view body) {
  const std::string t = std::to_string(unix_seconds);
  std::string signed_bytes = t + ".";
  signed_bytes.append(body);
  return "t=" + t + ",v1=" + HmacSha256Hex(secret, signed_bytes);
}

}  // namespace billing::webhooks
