#include "ops/generator.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "events/calendar.h"

namespace billing::ops {

namespace {

using Json = nlohmann::ordered_json;

struct Service {
  const char* name;
  const char* kind;
  std::vector<const char*> skus;
  const char* unit;
};

const std::vector<Service>& Services() {
  static const std::vector<Service> kServices = {
      {"AmazonEC2",
       "aws",
       {"BoxUsage:m5.large", "EBS:VolumeUsage.gp3", "DataTransfer-Out-Bytes"},
       "Hrs"},
      {"AmazonS3", "aws", {"TimedStorage-ByteHrs", "Requests-Tier1"}, "GB-Mo"},
      {"AWSLambda", "aws", {"Request", "Lambda-GB-Second"}, "Requests"},
      {"Compute Engine",
       "gcp",
       {"N2 Instance Core running in Americas", "N2 Instance Ram running in Americas"},
       "hour"},
      {"BigQuery", "gcp", {"Analysis"}, "tebibyte"},
      {"Cloud Storage", "gcp", {"Standard Storage US Multi-region"}, "gibibyte month"},
      {"Virtual Machines", "azure", {"D2s v5", "E4s v5"}, "1 Hour"},
  };
  return kServices;
}

std::string Decimal(uint64_t nanos, int max_fraction_digits) {
  // Trim to the requested precision, then drop trailing zeros, as real
  // exports vary in how many digits they print.
  uint64_t scale = 1;
  for (int i = 0; i < 9 - max_fraction_digits; ++i) scale *= 10;
  nanos = nanos / scale * scale;
  std::string whole = std::to_string(nanos / 1000000000ULL);
  char frac[16];
  std::snprintf(frac, sizeof(frac), "%09llu",
                static_cast<unsigned long long>(nanos % 1000000000ULL));
  std::string f(frac);
  while (!f.empty() && f.back() == '0') f.pop_back();
  return f.empty() ? whole : whole + "." + f;
}

std::string MonthText(int index) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04d-%02d", index / 12, index % 12 + 1);
  return buf;
}

std::string Time(int month_index, int day, int hour, int minute, int second) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", month_index / 12,
                month_index % 12 + 1, day, hour, minute, second);
  return buf;
}

struct Org {
  std::string id;
  std::string currency;
  std::vector<std::string> cost_centers;
  std::vector<std::string> workspaces;
  std::vector<std::string> providers;
  std::vector<int> provider_service;  // index into Services()
  std::vector<std::string> charges;   // voidable event ids
  int64_t seq = 0;
};

// One history being written: the random stream, the orgs so far and the
// sink. Each step below draws from the stream in a fixed order, so the same
// options give the same bytes.
class History {
 public:
  History(const GeneratorOptions& o, int start, const std::function<void(const std::string&)>& emit)
      : o_(o), start_(start), emit_(emit), rng_(o.seed), orgs_(static_cast<size_t>(o.orgs)) {}

  void Write() {
    for (int i = 0; i < o_.orgs; ++i) CreateOrg(i, orgs_[static_cast<size_t>(i)]);
    const int64_t per_month = o_.usage_events / std::max(1, o_.orgs * o_.months);
    for (int mi = 0; mi < o_.months; ++mi) {
      const int month = start_ + mi;
      for (Org& org : orgs_) {
        for (int64_t k = 0; k < per_month; ++k) Usage(org, month);
        MonthEvents(org, month, /*first=*/mi == 0);
      }
    }
  }

 private:
  int64_t Uniform(int64_t lo, int64_t hi) {  // inclusive
    return lo + static_cast<int64_t>(rng_() % static_cast<uint64_t>(hi - lo + 1));
  }
  template <typename T>
  const T& Pick(const std::vector<T>& from) {
    return from[static_cast<size_t>(Uniform(0, static_cast<int64_t>(from.size()) - 1))];
  }

  // Emits one event (sometimes twice, with faults: a duplicate); its id.
  std::string Send(Org& org, const std::string& kind, Json payload, const std::string& occurred) {
    Json e;
    e["event_id"] = org.id + ":" + kind + ":" + std::to_string(++org.seq);
    e["org_id"] = org.id;
    e["occurred_at"] = occurred;
    e["source"] = "generator";
    e[kind] = std::move(payload);
    std::string line = e.dump();
    emit_(line);
    if (o_.faults && Uniform(0, 99) < 2) emit_(line);  // an exact re-send: a duplicate
    return e["event_id"].get<std::string>();
  }

  // The organization and its structure: cost centers with two workspaces
  // each (some with their own billing account), providers placed in them.
  void CreateOrg(int i, Org& org) {
    static const char* kCurrencies[] = {"USD", "EUR", "JPY", "KWD"};
    org.id = "org-" + std::to_string(i + 1);
    org.currency = kCurrencies[i % 4];
    std::string t0 = Time(start_, 1, 0, 0, i % 60);
    Send(org, "organization_created",
         Json{{"name", "Org " + std::to_string(i + 1)},
              {"currency", org.currency},
              {"billing_account", "BA-" + std::to_string(1000 + i)}},
         t0);
    int ccs = static_cast<int>(Uniform(2, 4));
    for (int c = 0; c < ccs; ++c) {
      std::string cc = "cc-" + std::to_string(c + 1);
      org.cost_centers.push_back(cc);
      Send(org, "cost_center_created",
           Json{{"cost_center_id", cc}, {"name", "Cost center " + std::to_string(c + 1)}}, t0);
      for (int w = 0; w < 2; ++w) {
        std::string ws = "ws-" + std::to_string(c + 1) + "-" + std::to_string(w + 1);
        org.workspaces.push_back(ws);
        Send(org, "workspace_created",
             Json{{"workspace_id", ws}, {"cost_center_id", cc}, {"name", "Workspace " + ws}}, t0);
      }
      if (Uniform(0, 1) == 0) {
        Send(org, "billing_account_assigned",
             Json{{"cost_center_id", cc},
                  {"billing_account",
                   "BA-" + std::to_string(1000 + i) + "-" + std::to_string(c + 1)}},
             t0);
      }
    }
    int providers = static_cast<int>(Uniform(2, 5));
    for (int p = 0; p < providers; ++p) {
      int service = static_cast<int>(Uniform(0, static_cast<int64_t>(Services().size()) - 1));
      std::string id =
          std::string(Services()[static_cast<size_t>(service)].kind) + "-" + std::to_string(p + 1);
      org.providers.push_back(id);
      org.provider_service.push_back(service);
      const std::string& ws = Pick(org.workspaces);
      Send(org, "provider_registered",
           Json{{"provider_id", id},
                {"workspace_id", ws},
                {"name", "Provider " + id},
                {"kind", Services()[static_cast<size_t>(service)].kind}},
           Time(start_, static_cast<int>(Uniform(1, 5)), 0, 0, 0));
    }
  }

  // One usage_recorded in `month`, and with faults sometimes a bad copy.
  void Usage(Org& org, int month) {
    size_t p = static_cast<size_t>(Uniform(0, static_cast<int64_t>(org.providers.size()) - 1));
    const Service& svc = Services()[static_cast<size_t>(org.provider_service[p])];
    int day = static_cast<int>(Uniform(1, 28));
    int hour = static_cast<int>(Uniform(0, 22));
    std::string start_t =
        Time(month, day, hour, static_cast<int>(Uniform(0, 59)), static_cast<int>(Uniform(0, 59)));
    std::string end_t = Time(month, day, hour + 1, 0, 0);
    Json u{{"provider_id", org.providers[p]},
           {"service", svc.name},
           {"sku", Pick(svc.skus)},
           {"resource_id",
            org.providers[p] + "/res-" + std::to_string(Uniform(1, o_.resources_per_provider))},
           {"region", Uniform(0, 1) ? "us-east-1" : "eu-west-1"},
           {"quantity", Decimal(static_cast<uint64_t>(Uniform(0, 5'000'000'000'000LL)),
                                static_cast<int>(Uniform(0, 9)))},
           {"unit", Uniform(0, 9) == 0 ? "GB" : svc.unit},
           {"amount", Decimal(static_cast<uint64_t>(Uniform(0, 90'000'000'000LL)),
                              static_cast<int>(Uniform(0, 9)))},
           {"usage_start", start_t},
           {"usage_end", end_t}};
    if (Uniform(0, 3) == 0) u["currency"] = org.currency;
    std::string id = Send(org, "usage_recorded", u, end_t);
    org.charges.push_back(id);
    if (o_.faults) BadCopy(org, id, u, end_t);
  }

  // What producers get wrong, about 2 % of the time.
  void BadCopy(const Org& org, const std::string& id, const Json& u, const std::string& end_t) {
    int f = static_cast<int>(Uniform(0, 999));
    Json bad{{"event_id", id}, {"org_id", org.id}, {"occurred_at", end_t}, {"usage_recorded", u}};
    if (f < 5) {  // conflict: same id, other amount
      bad["usage_recorded"]["amount"] = "1.5";
    } else if (f < 10) {  // unknown provider
      bad["event_id"] = id + "-x";
      bad["usage_recorded"]["provider_id"] = "nope";
    } else if (f < 15) {  // currency mismatch
      bad["event_id"] = id + "-c";
      bad["usage_recorded"]["currency"] = org.currency == "USD" ? "EUR" : "USD";
    } else if (f < 20) {  // JSON number for money
      bad["event_id"] = id + "-n";
      bad["usage_recorded"]["amount"] = 12.5;
    } else if (f < 22) {  // unknown org
      bad["event_id"] = id + "-o";
      bad["org_id"] = "ghost";
    } else {
      return;
    }
    emit_(bad.dump());
  }

  // The rest of an org's month: support, credits, moves, mode changes,
  // voids, and closing the month before with a late charge for it.
  void MonthEvents(Org& org, int month, bool first) {
    std::string mid = Time(month, 15, 12, 0, 0);
    if (Uniform(0, 2) == 0) {
      Json s{{"month", MonthText(month)},
             {"amount", Decimal(static_cast<uint64_t>(Uniform(1, 500'000'000'000LL)), 3)},
             {"description", Uniform(0, 1) ? "Enterprise support" : "Premium support"}};
      if (Uniform(0, 1)) s["cost_center_id"] = Pick(org.cost_centers);
      org.charges.push_back(Send(org, "support_charged", s, mid));
    }
    if (Uniform(0, 2) == 0) {
      Json c{{"month", MonthText(month)},
             {"amount", Decimal(static_cast<uint64_t>(Uniform(1'000'000, 50'000'000'000LL)), 2)},
             {"description", "Promotional credit"}};
      if (Uniform(0, 1)) c["cost_center_id"] = org.cost_centers[0];
      org.charges.push_back(Send(org, "credit_applied", c, mid));
    }
    // The draws are spelled out in the order the history has always made
    // them (the time of the event first), so a seed keeps its bytes.
    if (Uniform(0, 2) == 0 && !org.providers.empty()) {
      std::string at = Time(month, static_cast<int>(Uniform(1, 28)), 6, 0, 0);
      const std::string& provider = Pick(org.providers);
      const std::string& workspace = Pick(org.workspaces);
      Send(org, "provider_moved", Json{{"provider_id", provider}, {"workspace_id", workspace}}, at);
    }
    if (Uniform(0, 3) == 0) {
      std::string at = Time(month, static_cast<int>(Uniform(1, 28)), 9, 0, 0);
      Send(org, "invoicing_mode_changed",
           Json{{"mode", Uniform(0, 1) ? "PER_COST_CENTER" : "SINGLE"}}, at);
    }
    for (int v = 0; v < 2 && !org.charges.empty(); ++v) {
      if (Uniform(0, 1)) continue;
      // Sometimes the same event twice: the second is already_voided.
      const std::string& target = Pick(org.charges);
      Send(org, "event_voided", Json{{"voided_event_id", target}, {"reason", "correction"}}, mid);
    }
    if (!first && Uniform(0, 3) != 0) ClosePrevious(org, month);
  }

  // Closes the previous month early in this one; then a late charge for it.
  void ClosePrevious(Org& org, int month) {
    Send(org, "billing_period_closed", Json{{"month", MonthText(month - 1)}},
         Time(month, 5, 6, 0, 0));
    size_t p = static_cast<size_t>(Uniform(0, static_cast<int64_t>(org.providers.size()) - 1));
    const Service& svc = Services()[static_cast<size_t>(org.provider_service[p])];
    Json late{{"provider_id", org.providers[p]},
              {"service", svc.name},
              {"sku", svc.skus[0]},
              {"resource_id", org.providers[p] + "/late"},
              {"region", "us-east-1"},
              {"quantity", "1"},
              {"unit", svc.unit},
              {"amount", Decimal(static_cast<uint64_t>(Uniform(0, 9'000'000'000LL)), 4)},
              {"usage_start", Time(month - 1, 20, 0, 0, 0)},
              {"usage_end", Time(month - 1, 20, 1, 0, 0)}};
    org.charges.push_back(Send(org, "usage_recorded", late, Time(month, 6, 0, 0, 0)));
    if (o_.faults && Uniform(0, 4) == 0) {  // closing twice: period_closed
      Send(org, "billing_period_closed", Json{{"month", MonthText(month - 1)}},
           Time(month, 7, 0, 0, 0));
    }
  }

  const GeneratorOptions& o_;
  const int start_;
  const std::function<void(const std::string&)>& emit_;
  std::mt19937_64 rng_;
  std::vector<Org> orgs_;
};

}  // namespace

Status CheckGeneratorOptions(const GeneratorOptions& o) {
  auto month = ParseMonth(o.start_month, "--start-month");
  if (!month.ok()) return month.status();
  if (o.orgs < 1 || o.orgs > kGeneratorOrgsMax) {
    return Status(Code::kInvalidArgument,
                  "--orgs must be from 1 to " + std::to_string(kGeneratorOrgsMax));
  }
  if (o.months < 1 || o.months > kGeneratorMonthsMax) {
    return Status(Code::kInvalidArgument,
                  "--months must be from 1 to " + std::to_string(kGeneratorMonthsMax));
  }
  if (month->index + o.months - 1 > kMonthLast.index) {
    return Status(Code::kInvalidArgument, "--start-month plus --months runs past 9999-12");
  }
  if (o.usage_events < 0)
    return Status(Code::kInvalidArgument, "--usage-events must not be negative");
  if (o.resources_per_provider < 1)
    return Status(Code::kInvalidArgument, "--resources must be at least 1");
  return Status::Ok();
}

void Generate(const GeneratorOptions& o, const std::function<void(const std::string&)>& emit) {
  Status checked = CheckGeneratorOptions(o);
  LEDGER_CHECK(checked.ok(),
               "Generate with options CheckGeneratorOptions refuses: " + checked.ToString());
  History(o, ParseMonth(o.start_month, "start_month")->index, emit).Write();
}

std::vector<std::string> GenerateLines(const GeneratorOptions& options) {
  std::vector<std::string> lines;
  Generate(options, [&](const std::string& line) { lines.push_back(line); });
  return lines;
}

}  // namespace billing::ops
