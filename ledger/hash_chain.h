// The hash chain: each record's SHA-256 covers the previous record's hash, its
// own sequence and time and the event's canonical bytes, so editing, inserting
// or deleting any record changes every hash after it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace billing::ledger {

// The previous hash of record 1: 32 zero bytes.
std::string GenesisHash();

// SHA-256(prev_hash || be64(sequence) || be64(recorded_at_micros) || event), raw 32 bytes.
std::string ChainHash(std::string_view prev_hash, uint64_t sequence, int64_t recorded_at_micros,
                      std::string_view event);

// SHA-256 of `bytes`, raw 32 bytes: the idempotency digest of an event's content.
std::string Digest(std::string_view bytes);

// Lower-case hex, as hashes appear in the API.
std::string Hex(std::string_view raw);

}  // namespace billing::ledger
