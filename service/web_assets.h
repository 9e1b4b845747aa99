// The web dashboard's files (service/web/), compiled into the binary so that
// ledgerd serves its page with nothing fetched from anywhere at run time.
#pragma once

#include <optional>
#include <string_view>

namespace billing::api {

struct WebAsset {
  std::string_view bytes;
  std::string_view content_type;
};

// The file called `name` (no directories), or nullopt.
std::optional<WebAsset> FindWebAsset(std::string_view name);

}  // namespace billing::api
