// The chain hash covers every input: changing any one changes the hash.
#include "ledger/hash_chain.h"

#include <gtest/gtest.h>

namespace billing::ledger {
namespace {

TEST(HashChain, EveryInputChangesTheHash) {
  std::string base = ChainHash(GenesisHash(), 1, 100, "event");
  EXPECT_EQ(base.size(), 32u);
  EXPECT_EQ(base, ChainHash(GenesisHash(), 1, 100, "event"));
  EXPECT_NE(base, ChainHash(Digest("x"), 1, 100, "event"));
  EXPECT_NE(base, ChainHash(GenesisHash(), 2, 100, "event"));
  EXPECT_NE(base, ChainHash(GenesisHash(), 1, 101, "event"));
  EXPECT_NE(base, ChainHash(GenesisHash(), 1, 100, "Event"));
}

TEST(HashChain, DigestIsSha256) {
  EXPECT_EQ(Hex(Digest("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace billing::ledger
