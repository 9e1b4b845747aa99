// The two ways ParseJson reads an event, exposed so tests and the fuzzer can
// run each on its own and demand the same answers. Not part of the events
// API: everyone else calls ParseJson, which tries the fast path and falls
// back to the slow one.
#pragma once

#include <optional>
#include <string_view>

#include "events/event.h"

namespace billing::events::internal {

// The reference reader (nlohmann: a SAX pass for shape, then a tree read by
// reflection). Every answer ParseJson gives is this function's answer,
// rejection messages included. Thread-safe.
Result<Envelope> ParseJsonSlow(std::string_view json, Names* names);

// Inputs past this size are left to the slow path: the largest event the
// schema allows is ~16 KiB (about a dozen fields of kTextBytesMax), so a
// bigger one is rejected anyway, and the bound caps the memory each I/O
// thread's parser keeps between events.
inline constexpr size_t kFastJsonBytesMax = 64 * 1024;

// The fast reader (simdjson, one pass). Only ever accepts: returns the
// envelope, and fills `names` as the slow path would, when the slow path
// would accept `json` with exactly this envelope; returns nullopt (and
// leaves `names` alone) for anything unusual, which the caller then hands to
// ParseJsonSlow for its answer. `json` must hold no NUL byte. Thread-safe:
// each thread has its own parser.
std::optional<Envelope> ParseJsonFast(std::string_view json, Names* names);

}  // namespace billing::events::internal
