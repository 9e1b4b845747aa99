#include "ops/generator.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <random>
#include <vector>

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
      {"AmazonEC2", "aws", {"BoxUsage:m5.large", "EBS:VolumeUsage.gp3", "DataTransfer-Out-Bytes"}, "Hrs"},
      {"AmazonS3", "aws", {"TimedStorage-ByteHrs", "Requests-Tier1"}, "GB-Mo"},
      {"AWSLambda", "aws", {"Request", "Lambda-GB-Second"}, "Requests"},
      {"Compute Engine", "gcp", {"N2 Instance Core running in Americas", "N2 Instance Ram running in Americas"}, "hour"},
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
  std::snprintf(frac, sizeof(frac), "%09llu", static_cast<unsigned long long>(nanos % 1000000000ULL));
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
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", month_index / 12, month_index % 12 + 1,
                day, hour, minute, second);
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

}  // namespace

void Generate(const GeneratorOptions& o, const std::function<void(const std::string&)>& emit) {
  std::mt19937_64 rng(o.seed);
  auto uniform = [&](int64_t lo, int64_t hi) {  // inclusive
    return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
  };
  int start = 2025 * 12;
  if (o.start_month.size() == 7) {
    start = std::stoi(o.start_month.substr(0, 4)) * 12 + std::stoi(o.start_month.substr(5, 2)) - 1;
  }
  static const char* kCurrencies[] = {"USD", "EUR", "JPY", "KWD"};
  std::vector<Org> orgs(static_cast<size_t>(o.orgs));
  std::string last_line;
  auto send = [&](Org& org, const std::string& kind, int month, Json payload, const std::string& occurred) {
    Json e;
    e["event_id"] = org.id + ":" + kind + ":" + std::to_string(++org.seq);
    e["org_id"] = org.id;
    e["occurred_at"] = occurred;
    e["source"] = "generator";
    e[kind] = std::move(payload);
    std::string line = e.dump();
    emit(line);
    if (o.faults && uniform(0, 99) < 2) emit(line);  // an exact re-send: a duplicate
    last_line = line;
    (void)month;
    return e["event_id"].get<std::string>();
  };

  for (int i = 0; i < o.orgs; ++i) {
    Org& org = orgs[static_cast<size_t>(i)];
    org.id = "org-" + std::to_string(i + 1);
    org.currency = kCurrencies[i % 4];
    std::string t0 = Time(start, 1, 0, 0, i % 60);
    send(org, "organization_created", start,
         Json{{"name", "Org " + std::to_string(i + 1)}, {"currency", org.currency},
              {"billing_account", "BA-" + std::to_string(1000 + i)}},
         t0);
    int ccs = static_cast<int>(uniform(2, 4));
    for (int c = 0; c < ccs; ++c) {
      std::string cc = "cc-" + std::to_string(c + 1);
      org.cost_centers.push_back(cc);
      send(org, "cost_center_created", start, Json{{"cost_center_id", cc}, {"name", "Cost center " + std::to_string(c + 1)}}, t0);
      for (int w = 0; w < 2; ++w) {
        std::string ws = "ws-" + std::to_string(c + 1) + "-" + std::to_string(w + 1);
        org.workspaces.push_back(ws);
        send(org, "workspace_created", start, Json{{"workspace_id", ws}, {"cost_center_id", cc}, {"name", "Workspace " + ws}}, t0);
      }
      if (uniform(0, 1) == 0) {
        send(org, "billing_account_assigned", start,
             Json{{"cost_center_id", cc}, {"billing_account", "BA-" + std::to_string(1000 + i) + "-" + std::to_string(c + 1)}}, t0);
      }
    }
    int providers = static_cast<int>(uniform(2, 5));
    for (int p = 0; p < providers; ++p) {
      int service = static_cast<int>(uniform(0, static_cast<int64_t>(Services().size()) - 1));
      std::string id = std::string(Services()[static_cast<size_t>(service)].kind) + "-" + std::to_string(p + 1);
      org.providers.push_back(id);
      org.provider_service.push_back(service);
      const std::string& ws = org.workspaces[static_cast<size_t>(uniform(0, static_cast<int64_t>(org.workspaces.size()) - 1))];
      send(org, "provider_registered", start,
           Json{{"provider_id", id}, {"workspace_id", ws}, {"name", "Provider " + id}, {"kind", Services()[static_cast<size_t>(service)].kind}},
           Time(start, static_cast<int>(uniform(1, 5)), 0, 0, 0));
    }
  }

  int64_t per_month = o.usage_events / std::max(1, o.orgs * o.months);
  for (int mi = 0; mi < o.months; ++mi) {
    int month = start + mi;
    for (Org& org : orgs) {
      for (int64_t k = 0; k < per_month; ++k) {
        size_t p = static_cast<size_t>(uniform(0, static_cast<int64_t>(org.providers.size()) - 1));
        const Service& svc = Services()[static_cast<size_t>(org.provider_service[p])];
        int day = static_cast<int>(uniform(1, 28));
        int hour = static_cast<int>(uniform(0, 22));
        std::string start_t = Time(month, day, hour, static_cast<int>(uniform(0, 59)), static_cast<int>(uniform(0, 59)));
        std::string end_t = Time(month, day, hour + 1, 0, 0);
        Json u{{"provider_id", org.providers[p]},
               {"service", svc.name},
               {"sku", svc.skus[static_cast<size_t>(uniform(0, static_cast<int64_t>(svc.skus.size()) - 1))]},
               {"resource_id", org.providers[p] + "/res-" + std::to_string(uniform(1, o.resources_per_provider))},
               {"region", uniform(0, 1) ? "us-east-1" : "eu-west-1"},
               {"quantity", Decimal(static_cast<uint64_t>(uniform(0, 5'000'000'000'000LL)), static_cast<int>(uniform(0, 9)))},
               {"unit", uniform(0, 9) == 0 ? "GB" : svc.unit},
               {"amount", Decimal(static_cast<uint64_t>(uniform(0, 90'000'000'000LL)), static_cast<int>(uniform(0, 9)))},
               {"usage_start", start_t},
               {"usage_end", end_t}};
        if (uniform(0, 3) == 0) u["currency"] = org.currency;
        std::string id = send(org, "usage_recorded", month, u, end_t);
        org.charges.push_back(id);
        if (o.faults) {
          int f = static_cast<int>(uniform(0, 999));
          Json bad{{"event_id", id}, {"org_id", org.id}, {"occurred_at", end_t}, {"usage_recorded", u}};
          if (f < 5) {  // conflict: same id, other amount
            bad["usage_recorded"]["amount"] = "1.5";
            emit(bad.dump());
          } else if (f < 10) {  // unknown provider
            bad["event_id"] = id + "-x";
            bad["usage_recorded"]["provider_id"] = "nope";
            emit(bad.dump());
          } else if (f < 15) {  // currency mismatch
            bad["event_id"] = id + "-c";
            bad["usage_recorded"]["currency"] = org.currency == "USD" ? "EUR" : "USD";
            emit(bad.dump());
          } else if (f < 20) {  // JSON number for money
            bad["event_id"] = id + "-n";
            bad["usage_recorded"]["amount"] = 12.5;
            emit(bad.dump());
          } else if (f < 22) {  // unknown org
            bad["event_id"] = id + "-o";
            bad["org_id"] = "ghost";
            emit(bad.dump());
          }
        }
      }
      std::string mid = Time(month, 15, 12, 0, 0);
      if (uniform(0, 2) == 0) {
        Json s{{"month", MonthText(month)}, {"amount", Decimal(static_cast<uint64_t>(uniform(1, 500'000'000'000LL)), 3)},
               {"description", uniform(0, 1) ? "Enterprise support" : "Premium support"}};
        if (uniform(0, 1)) s["cost_center_id"] = org.cost_centers[static_cast<size_t>(uniform(0, static_cast<int64_t>(org.cost_centers.size()) - 1))];
        org.charges.push_back(send(org, "support_charged", month, s, mid));
      }
      if (uniform(0, 2) == 0) {
        Json c{{"month", MonthText(month)}, {"amount", Decimal(static_cast<uint64_t>(uniform(1'000'000, 50'000'000'000LL)), 2)},
               {"description", "Promotional credit"}};
        if (uniform(0, 1)) c["cost_center_id"] = org.cost_centers[0];
        org.charges.push_back(send(org, "credit_applied", month, c, mid));
      }
      if (uniform(0, 2) == 0 && org.providers.size() > 0) {
        send(org, "provider_moved",
             month, Json{{"provider_id", org.providers[static_cast<size_t>(uniform(0, static_cast<int64_t>(org.providers.size()) - 1))]},
                  {"workspace_id", org.workspaces[static_cast<size_t>(uniform(0, static_cast<int64_t>(org.workspaces.size()) - 1))]}},
             Time(month, static_cast<int>(uniform(1, 28)), 6, 0, 0));
      }
      if (uniform(0, 3) == 0) {
        send(org, "invoicing_mode_changed", month, Json{{"mode", uniform(0, 1) ? "PER_COST_CENTER" : "SINGLE"}},
             Time(month, static_cast<int>(uniform(1, 28)), 9, 0, 0));
      }
      for (int v = 0; v < 2 && !org.charges.empty(); ++v) {
        if (uniform(0, 1)) continue;
        // Sometimes the same event twice: the second is already_voided.
        const std::string& target = org.charges[static_cast<size_t>(uniform(0, static_cast<int64_t>(org.charges.size()) - 1))];
        send(org, "event_voided", month, Json{{"voided_event_id", target}, {"reason", "correction"}}, mid);
      }
      // Close the previous month early in this one; then a late charge for it.
      if (mi >= 1 && uniform(0, 3) != 0) {
        send(org, "billing_period_closed", month, Json{{"month", MonthText(month - 1)}}, Time(month, 5, 6, 0, 0));
        size_t p = static_cast<size_t>(uniform(0, static_cast<int64_t>(org.providers.size()) - 1));
        const Service& svc = Services()[static_cast<size_t>(org.provider_service[p])];
        Json late{{"provider_id", org.providers[p]}, {"service", svc.name}, {"sku", svc.skus[0]},
                  {"resource_id", org.providers[p] + "/late"}, {"region", "us-east-1"}, {"quantity", "1"},
                  {"unit", svc.unit}, {"amount", Decimal(static_cast<uint64_t>(uniform(0, 9'000'000'000LL)), 4)},
                  {"usage_start", Time(month - 1, 20, 0, 0, 0)}, {"usage_end", Time(month - 1, 20, 1, 0, 0)}};
        org.charges.push_back(send(org, "usage_recorded", month - 1, late, Time(month, 6, 0, 0, 0)));
        if (o.faults && uniform(0, 4) == 0) {  // closing twice: period_closed
          send(org, "billing_period_closed", month, Json{{"month", MonthText(month - 1)}}, Time(month, 7, 0, 0, 0));
        }
      }
    }
  }
}

}  // namespace billing::ops
