// The ledger's on-disk key layout, in one place (see FORMAT.md).
//
// One RocksDB database, one column family, keys partitioned by a one-byte
// prefix. Big-endian integers keep numeric order equal to byte order, so a
// forward iterator walks sequences in order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace billing::ledger::format {

// Bumped on any incompatible change. Open refuses a directory with another
// value, except kFormatVersion1, which a read-write open upgrades (FORMAT.md).
inline constexpr std::string_view kFormatVersion = "billing-ledger/2";
// Event ids were global: `i` event_id. Version 2 keys them by org.
inline constexpr std::string_view kFormatVersion1 = "billing-ledger/1";

inline constexpr char kRecordPrefix = 'e';  // e | be64 sequence          -> Record
inline constexpr char kEventIdPrefix =
    'i';  // i | org_id | 0 | event_id  -> be64 seq | sha256 digest
inline constexpr char kRejectedOrgPrefix = 'j';  // j | org_id | 0 | be64 id -> (empty)
inline constexpr char kOrgPrefix = 'o';          // o | org_id | 0 | be64 seq  -> (empty)
inline constexpr char kRejectedPrefix = 'r';     // r | be64 id                -> Rejected
inline constexpr char kOffsetPrefix = 'k';       // k | topic | 0 | be32 part  -> be64 next offset
inline constexpr char kMetaPrefix = 'm';         // m | name                   -> value
// Keys starting with 'p' belong to the projections (read models), which are
// derived from the records and may be deleted and rebuilt at any time.
inline constexpr char kProjectionPrefix = 'p';
// Keys starting with 'w' belong to the webhook outbox (webhooks/delivery.h):
// written with the events that cause deliveries, never rebuilt (they depend
// on the operator's endpoints, not on the records alone).
inline constexpr char kOutboxPrefix = 'w';

inline constexpr std::string_view kMetaFormat = "mformat";
// Sequence and hash of the last record, written in every batch, so that
// deleting records from the tail is caught by verify, not just gaps.
inline constexpr std::string_view kMetaHead = "mhead";

inline constexpr size_t kHashBytes = 32;

inline void PutBe64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}
inline void PutBe32(std::string* out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out->push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}
inline uint64_t GetBe64(std::string_view in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

inline std::string RecordKey(uint64_t seq) {
  std::string k(1, kRecordPrefix);
  PutBe64(&k, seq);
  return k;
}
// The idempotency key (SPEC: org_id, event_id). Ids never hold a 0 byte
// (their charset is [A-Za-z0-9._:-]), so the separator keeps one org's keys
// apart from another's and key order is (org, event_id) order.
inline std::string EventIdKey(std::string_view org_id, std::string_view event_id) {
  std::string k(1, kEventIdPrefix);
  k.append(org_id);
  k.push_back('\0');
  k.append(event_id);
  return k;
}
// Format 1's key, global across orgs; only the upgrade and read-only opens of
// a format-1 directory read it.
inline std::string EventIdKeyV1(std::string_view event_id) {
  std::string k(1, kEventIdPrefix);
  k.append(event_id);
  return k;
}
// The rejected messages of one org (`org` empty: those that name no valid
// org), oldest first: their quota and their listing by scoped tokens.
inline std::string RejectedOrgPrefix(std::string_view org) {
  std::string k(1, kRejectedOrgPrefix);
  k.append(org);
  k.push_back('\0');
  return k;
}
inline std::string RejectedOrgKey(std::string_view org, uint64_t id) {
  std::string k = RejectedOrgPrefix(org);
  PutBe64(&k, id);
  return k;
}
inline std::string OrgKey(std::string_view org, uint64_t seq) {
  std::string k(1, kOrgPrefix);
  k.append(org);
  k.push_back('\0');
  PutBe64(&k, seq);
  return k;
}
inline std::string RejectedKey(uint64_t id) {
  std::string k(1, kRejectedPrefix);
  PutBe64(&k, id);
  return k;
}
inline std::string OffsetKey(std::string_view topic, int32_t partition) {
  std::string k(1, kOffsetPrefix);
  k.append(topic);
  k.push_back('\0');
  PutBe32(&k, static_cast<uint32_t>(partition));
  return k;
}

}  // namespace billing::ledger::format
