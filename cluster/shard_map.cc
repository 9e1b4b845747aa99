#include "cluster/shard_map.h"

#include <openssl/evp.h>

namespace billing::cluster {

int ShardOf(std::string_view org_id, int shards) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  // One-shot EVP: the whole digest of a short string, no context to manage.
  EVP_Digest(org_id.data(), org_id.size(), digest, &size, EVP_sha256(), nullptr);
  uint64_t prefix = 0;
  for (int i = 0; i < 8; i++) prefix = (prefix << 8) | digest[i];
  return static_cast<int>(prefix % static_cast<uint64_t>(shards));
}

std::string ShardsTopic(const std::string& group) { return group + ".shards"; }
std::string MembersTopic(const std::string& group) { return group + ".members"; }

}  // namespace billing::cluster
