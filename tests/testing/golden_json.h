// Comparing answers with a golden example's expected files: keys whose values
// are the service's choice (ids) are dropped, and lists whose order the SPEC
// leaves open are sorted, so that only what the contract fixes is compared.
#pragma once

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace billing::testing {

// `j` without the keys named in `dropped` (at any depth), with every list
// sorted except month lists (key "months"), which keep their order.
inline nlohmann::json NormalizeGolden(const nlohmann::json& j, const std::set<std::string>& dropped,
                                      const std::string& key = "") {
  using Json = nlohmann::json;
  if (j.is_object()) {
    Json out = Json::object();
    for (auto& [k, v] : j.items()) {
      if (!dropped.count(k)) out[k] = NormalizeGolden(v, dropped, k);
    }
    return out;
  }
  if (j.is_array()) {
    std::vector<Json> items;
    for (auto& v : j) items.push_back(NormalizeGolden(v, dropped));
    if (key != "months") {
      std::sort(items.begin(), items.end(),
                [](const Json& a, const Json& b) { return a.dump() < b.dump(); });
    }
    return Json(items);
  }
  return j;
}

}  // namespace billing::testing
