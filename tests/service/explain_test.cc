// The explanation routes on the real ledgerd over loopback: paging with
// after/limit gives every line of an item, drill-down node or invoice exactly
// once, the lines add up exactly to the figure shown (as of a past sequence
// too), a void and a late charge show with the right signs where the rules
// put them, and bad pages, unknown ids and other orgs' tokens are refused.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/testing/http_client.h"
#include "tests/testing/ledgerd.h"

namespace billing {
namespace {

using Json = nlohmann::json;
using testing::HttpResponse;
using testing::Ledgerd;

constexpr char kProducer[] = "p-acme-token-0123456789";
constexpr char kViewer[] = "v-acme-token-0123456789";
constexpr char kOtherViewer[] = "v-kaiju-token-0123456789";
constexpr char kTokens[] =
    "# token role org name\n"
    "p-acme-token-0123456789 producer acme acme-feed\n"
    "v-acme-token-0123456789 viewer acme acme-view\n"
    "v-kaiju-token-0123456789 viewer kaiju kaiju-view\n";

// Decimal strings (as the API writes them) -> nano-units, exactly.
__int128 Nanos(const std::string& s) {
  const bool negative = !s.empty() && s[0] == '-';
  const std::string digits = negative ? s.substr(1) : s;
  const size_t dot = digits.find('.');
  std::string frac = dot == std::string::npos ? "" : digits.substr(dot + 1);
  frac.resize(9, '0');
  __int128 v =
      static_cast<__int128>(std::stoll(digits.substr(0, dot))) * 1000000000 + std::stoll(frac);
  return negative ? -v : v;
}

Json Event(const std::string& id, const std::string& at, const std::string& kind, Json payload) {
  return Json{{"event_id", id}, {"org_id", "acme"}, {"occurred_at", at}, {kind, payload}};
}

Json Usage(const std::string& id, const std::string& start, const std::string& resource,
           const std::string& amount, const std::string& quantity) {
  return Event(id, start, "usage_recorded",
               {{"provider_id", "p1"},
                {"service", "EC2"},
                {"sku", "m5.large"},
                {"resource_id", resource},
                {"region", "eu-west-1"},
                {"quantity", quantity},
                {"unit", "hours"},
                {"amount", amount},
                {"usage_start", start},
                {"usage_end", start}});
}

// acme's history; event i (0-based) is ledger sequence i + 1.
std::vector<Json> History() {
  return {
      Event("org", "2026-01-01T00:00:00Z", "organization_created",
            {{"name", "Acme"}, {"currency", "USD"}, {"billing_account", "BA-1"}}),
      Event("cc", "2026-01-01T00:00:00Z", "cost_center_created",
            {{"cost_center_id", "cc1"}, {"name", "R&D"}}),
      Event("ws", "2026-01-01T00:00:00Z", "workspace_created",
            {{"workspace_id", "ws1"}, {"cost_center_id", "cc1"}, {"name", "main"}}),
      Event(
          "prov", "2026-01-01T00:00:00Z", "provider_registered",
          {{"provider_id", "p1"}, {"workspace_id", "ws1"}, {"name", "aws-prod"}, {"kind", "aws"}}),
      Usage("u1", "2026-01-10T00:00:00Z", "i-1", "10.5", "3"),         // 5
      Usage("u2", "2026-01-11T00:00:00Z", "i-1", "2.25", "1"),         // 6
      Usage("u3", "2026-01-12T00:00:00Z", "i-2", "1.000000001", "1"),  // 7
      Event("sup", "2026-01-13T00:00:00Z", "support_charged",
            {{"month", "2026-01"}, {"amount", "5"}, {"description", "premium support"}}),  // 8
      Event("cr", "2026-01-14T00:00:00Z", "credit_applied",
            {{"month", "2026-01"}, {"amount", "1.5"}, {"description", "goodwill"}}),  // 9
      // January is open: the void nets into u2's own item and nodes.
      Event("void-u2", "2026-01-15T00:00:00Z", "event_voided",
            {{"voided_event_id", "u2"}, {"reason", "duplicate feed"}}),  // 10
      Event("close-jan", "2026-02-01T00:00:00Z", "billing_period_closed",
            {{"month", "2026-01"}}),  // 11
      // January is closed: a late charge and a void of a January charge
      // become February's adjustment item labelled 2026-01.
      Usage("u4", "2026-01-20T00:00:00Z", "i-3", "4", "2"),  // 12
      Event("void-u1", "2026-02-03T00:00:00Z", "event_voided",
            {{"voided_event_id", "u1"}, {"reason", "refund"}}),  // 13
      Usage("u5", "2026-02-04T00:00:00Z", "i-1", "7", "1"),      // 14
  };
}

struct Server {
  Server() {
    std::string body;
    for (const Json& e : History()) body += e.dump() + "\n";
    HttpResponse r = ledgerd.Post("/v1/events", body, "application/x-ndjson",
                                  {{"Authorization", std::string("Bearer ") + kProducer}});
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(Json::parse(r.body)["accepted"], History().size()) << r.body;
  }
  HttpResponse Get(const std::string& target, const std::string& token = kViewer) {
    return ledgerd.Get(target, {{"Authorization", "Bearer " + token}});
  }
  Json GetJson(const std::string& target) {
    HttpResponse r = Get(target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    return r.status == 200 ? Json::parse(r.body) : Json();
  }
  // Every NDJSON line of one answer.
  std::vector<Json> Lines(const std::string& target) {
    HttpResponse r = Get(target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    EXPECT_EQ(r.headers["Content-Type"], "application/x-ndjson") << target;
    std::vector<Json> out;
    for (size_t at = 0; r.status == 200 && at < r.body.size();) {
      const size_t end = r.body.find('\n', at);
      EXPECT_NE(end, std::string::npos) << "a line without its newline";
      if (end == std::string::npos) break;
      out.push_back(Json::parse(r.body.substr(at, end - at)));
      at = end + 1;
    }
    return out;
  }
  // Every line, `limit` at a time, following the last line's sequence.
  std::vector<Json> Paged(const std::string& events_target, size_t limit) {
    std::vector<Json> all;
    uint64_t after = 0;
    for (int n = 0; n < 100; ++n) {
      std::vector<Json> page =
          Lines(events_target + (events_target.find('?') == std::string::npos ? "?" : "&") +
                "after=" + std::to_string(after) + "&limit=" + std::to_string(limit));
      EXPECT_LE(page.size(), limit);
      for (Json& line : page) {
        after = line["sequence"];
        all.push_back(std::move(line));
      }
      if (page.size() < limit) return all;
    }
    ADD_FAILURE() << "paging " << events_target << " does not end";
    return all;
  }

  Ledgerd ledgerd{{.tokens = kTokens}};
};

const std::string kOrg = "/v1/orgs/acme";

__int128 SumOf(const std::vector<Json>& lines) {
  __int128 sum = 0;
  for (const Json& l : lines) sum += Nanos(l["amount"]);
  return sum;
}

// Every node of a month (items and drill-down nodes at every level): id -> amount.
std::map<std::string, std::string> Nodes(Server& s, const std::string& month) {
  std::map<std::string, std::string> out;
  std::vector<std::string> stack;
  // Held: a range-for over a temporary's member would dangle.
  const Json items = s.GetJson(kOrg + "/usage-history/" + month)["items"];
  for (const Json& item : items) {
    out[item["id"]] = item["amount"];
    if (item["drillable"]) stack.push_back(item["id"]);
  }
  while (!stack.empty()) {
    const std::string id = stack.back();
    stack.pop_back();
    const Json children = s.GetJson(kOrg + "/usage-history/" + month + "/items/" + id)["children"];
    for (const Json& c : children) {
      out[c["id"]] = c["amount"];
      if (c["drillable"]) stack.push_back(c["id"]);
    }
  }
  return out;
}

std::string ItemIdOf(Server& s, const std::string& month, const std::string& label) {
  const Json items = s.GetJson(kOrg + "/usage-history/" + month)["items"];
  for (const Json& item : items) {
    if (item["label"] == label) return item["id"];
  }
  ADD_FAILURE() << "no item " << label << " in " << month;
  return "none";
}

std::vector<uint64_t> Sequences(const std::vector<Json>& lines) {
  std::vector<uint64_t> out;
  for (const Json& l : lines) out.push_back(l["sequence"]);
  return out;
}

TEST(Explain, PagingCoversEveryLineOnceAndTheLinesSumToEachNode) {
  Server s;
  for (const std::string month : {"2026-01", "2026-02"}) {
    const auto nodes = Nodes(s, month);
    ASSERT_GE(nodes.size(), 5u) << month;
    for (const auto& [id, amount] : nodes) {
      const std::string target = kOrg + "/usage-history/" + month + "/items/" + id + "/events";
      const std::vector<Json> whole = s.Lines(target);
      EXPECT_EQ(SumOf(whole), Nanos(amount)) << month << " " << id;
      for (size_t limit : {1, 2}) EXPECT_EQ(s.Paged(target, limit), whole) << id;
      const std::vector<uint64_t> seqs = Sequences(whole);
      EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()) &&
                  std::adjacent_find(seqs.begin(), seqs.end()) == seqs.end())
          << id;
    }
  }
  // The invoice: lines with their invoice line, summing to the exact total.
  const Json invoice = s.GetJson(kOrg + "/invoices/2026-01-org");
  __int128 exact = 0;
  std::map<std::pair<std::string, std::string>, __int128> by_line, explained;
  for (const Json& l : invoice["lines"]) {
    exact += Nanos(l["amount"]);
    by_line[{l["category"], l["description"]}] += Nanos(l["amount"]);
  }
  const std::string target = kOrg + "/invoices/2026-01-org/events";
  const std::vector<Json> lines = s.Lines(target);
  EXPECT_EQ(Sequences(lines), (std::vector<uint64_t>{5, 6, 7, 8, 9, 10}));
  for (const Json& l : lines) explained[{l["category"], l["description"]}] += Nanos(l["amount"]);
  EXPECT_EQ(SumOf(lines), exact);
  EXPECT_EQ(explained, by_line);
  EXPECT_EQ(s.Paged(target, 1), lines);
  EXPECT_EQ(SumOf(s.Lines(kOrg + "/invoices/2026-02-org/events")), Nanos("0.5"));  // 4 - 10.5 + 7
}

TEST(Explain, AVoidNetsIntoItsItemAndLateChargesIntoTheAdjustmentWithTheirSigns) {
  Server s;
  const std::vector<Json> ec2 =
      s.Lines(kOrg + "/usage-history/2026-01/items/" + ItemIdOf(s, "2026-01", "EC2") + "/events");
  ASSERT_EQ(Sequences(ec2), (std::vector<uint64_t>{5, 6, 7, 10}));
  EXPECT_EQ(ec2[0]["amount"], "10.500000000");
  EXPECT_EQ(ec2[0]["quantity"], "3.000000000");
  EXPECT_EQ(ec2[0]["event"]["event_id"], "u1");
  EXPECT_EQ(ec2[0]["event"]["usage_recorded"]["amount"], "10.5");
  // The void of u2, at its own sequence, negative in amount and quantity.
  EXPECT_EQ(ec2[3]["amount"], "-2.250000000");
  EXPECT_EQ(ec2[3]["quantity"], "-1.000000000");
  EXPECT_EQ(ec2[3]["event"]["event_voided"]["voided_event_id"], "u2");
  const std::vector<Json> credit = s.Lines(kOrg + "/usage-history/2026-01/items/" +
                                           ItemIdOf(s, "2026-01", "goodwill") + "/events");
  ASSERT_EQ(credit.size(), 1u);
  EXPECT_EQ(credit[0]["amount"], "-1.500000000");
  EXPECT_TRUE(credit[0]["quantity"].is_null());
  // Late: the charge of closed January and the void of u1 in February's adjustment item.
  const std::vector<Json> late = s.Lines(kOrg + "/usage-history/2026-02/items/" +
                                         ItemIdOf(s, "2026-02", "2026-01") + "/events");
  ASSERT_EQ(Sequences(late), (std::vector<uint64_t>{12, 13}));
  EXPECT_EQ(late[0]["amount"], "4.000000000");
  EXPECT_EQ(late[0]["quantity"], "2.000000000");
  EXPECT_EQ(late[1]["amount"], "-10.500000000");
  EXPECT_EQ(late[1]["quantity"], "-3.000000000");
  EXPECT_EQ(late[1]["event"]["event_id"], "void-u1");
  const std::vector<Json> feb = s.Lines(kOrg + "/invoices/2026-02-org/events");
  ASSERT_EQ(feb.size(), 3u);
  EXPECT_EQ(feb[1]["category"], "adjustment");
  EXPECT_EQ(feb[1]["description"], "2026-01");
  EXPECT_EQ(feb[1]["amount"], "-10.500000000");
  // January's own figures never moved: the void of u1 is not in them.
  EXPECT_EQ(SumOf(ec2), Nanos("11.500000001"));
}

TEST(Explain, AsOfReadsTheIndexUpToThatSequence) {
  Server s;
  const std::string ec2 = ItemIdOf(s, "2026-01", "EC2");
  const std::string target = kOrg + "/usage-history/2026-01/items/" + ec2;
  for (uint64_t as_of : {5, 6, 9, 10, 14}) {
    const std::string q = "?as_of=" + std::to_string(as_of);
    const Json item = s.GetJson(target + q);
    const std::vector<Json> lines = s.Lines(target + "/events" + q);
    EXPECT_EQ(SumOf(lines), Nanos(item["amount"])) << as_of;
    for (const Json& l : lines) EXPECT_LE(l["sequence"].get<uint64_t>(), as_of);
    EXPECT_EQ(s.Paged(target + "/events" + q, 1), lines) << as_of;
  }
  // Before any usage the item did not exist; before the org, nothing did.
  EXPECT_EQ(s.Get(target + "/events?as_of=4").status, 404);
  EXPECT_EQ(s.Get(kOrg + "/invoices/2026-01-org/events?as_of=4").status, 404);
  const std::vector<Json> inv = s.Lines(kOrg + "/invoices/2026-01-org/events?as_of=8");
  EXPECT_EQ(Sequences(inv), (std::vector<uint64_t>{5, 6, 7, 8}));
}

TEST(Explain, BadPagesUnknownIdsAndOtherOrgsAreRefused) {
  Server s;
  const std::string item =
      kOrg + "/usage-history/2026-01/items/" + ItemIdOf(s, "2026-01", "EC2") + "/events";
  const std::string invoice = kOrg + "/invoices/2026-01-org/events";
  for (const std::string& target : {item, invoice}) {
    for (const std::string bad :
         {"limit=0", "limit=10001", "limit=abc", "limit=", "after=-1", "after=x", "as_of=y"}) {
      HttpResponse r = s.Get(target + "?" + bad);
      EXPECT_EQ(r.status, 400) << target << "?" << bad << ": " << r.body;
      EXPECT_EQ(Json::parse(r.body)["error"]["code"], "invalid_argument") << bad;
    }
    EXPECT_EQ(s.Get(target + "?limit=10000").status, 200);
    EXPECT_EQ(s.Lines(target + "?after=14").size(), 0u);
    // Another org's viewer sees nothing of acme's.
    HttpResponse other = s.Get(target, kOtherViewer);
    EXPECT_EQ(other.status, 403) << other.body;
    EXPECT_EQ(s.Get(target, "no-such-token-0123456789").status, 401);
  }
  EXPECT_EQ(s.Get(kOrg + "/usage-history/2026-01/items/bm9uZQ/events").status, 404);
  EXPECT_EQ(s.Get(kOrg + "/usage-history/2026-01/items/!!/events").status, 404);
  EXPECT_EQ(
      s.Get(kOrg + "/usage-history/2026-03/items/" + ItemIdOf(s, "2026-01", "EC2") + "/events")
          .status,
      404);
  EXPECT_EQ(s.Get(kOrg + "/usage-history/2026-13/items/x/events").status, 400);
  EXPECT_EQ(s.Get(kOrg + "/invoices/2026-01-cc1/events").status, 404);  // SINGLE month
  EXPECT_EQ(s.Get(kOrg + "/invoices/2026-05-org/events").status, 404);
  EXPECT_EQ(s.Get(kOrg + "/invoices/nonsense/events").status, 404);
  EXPECT_EQ(s.Get("/v1/orgs/kaiju/invoices/2026-01-org/events", kOtherViewer).status, 404);
}

}  // namespace
}  // namespace billing
