// ledger::PrepareEntry on its own, without the read models: valid messages
// become events, bad ones entries carrying their rejection and the ids they
// named, and binary protobuf is taken from Kafka only.
#include "ledger/prepare.h"

#include <gtest/gtest.h>

#include <string>

#include "events/event.h"

namespace billing::ledger {
namespace {

const std::string kOrgCreated =
    R"({"event_id":"acme:org:00001","org_id":"acme","occurred_at":"2025-11-01T00:00:07Z",)"
    R"("source":"admin-console","organization_created":{"name":"Acme Corp","currency":"USD",)"
    R"("billing_account":"ACME-0001"}})";

Source KafkaSource() {
  Source s;
  s.set_kind(Source::KAFKA);
  return s;
}

TEST(Prepare, ValidJsonBecomesAnEventEntryThatKeepsItsBytes) {
  Entry e = PrepareEntry(kOrgCreated, Source());
  ASSERT_TRUE(e.event.has_value()) << e.rejection.message();
  EXPECT_TRUE(e.rejection.ok());
  EXPECT_EQ(e.event_id, "acme:org:00001");
  EXPECT_EQ(e.org_id, "acme");
  EXPECT_EQ(e.raw, kOrgCreated);
  EXPECT_EQ(e.source.kind(), Source::HTTP);
}

TEST(Prepare, InvalidEventIsAnEntryCarryingItsRejectionAndTheIdsItNamed) {
  std::string bad = kOrgCreated;
  bad.replace(bad.find("USD"), 3, "usd");
  Entry e = PrepareEntry(bad, Source());
  EXPECT_FALSE(e.event.has_value());
  EXPECT_FALSE(e.rejection.ok());
  EXPECT_EQ(e.event_id, "acme:org:00001");
  EXPECT_EQ(e.org_id, "acme");
  EXPECT_EQ(e.raw, bad);
}

TEST(Prepare, BinaryProtobufIsAcceptedFromKafkaOnly) {
  auto envelope = events::ParseJson(kOrgCreated);
  ASSERT_TRUE(envelope.ok());
  const std::string binary = events::CanonicalBytes(*envelope);
  Entry from_kafka = PrepareEntry(binary, KafkaSource());
  EXPECT_TRUE(from_kafka.event.has_value()) << from_kafka.rejection.message();
  Entry from_http = PrepareEntry(binary, Source());
  EXPECT_FALSE(from_http.event.has_value());
  EXPECT_FALSE(from_http.rejection.ok());
}

}  // namespace
}  // namespace billing::ledger
