// Waiting in tests: on a condition, with a deadline, never for a fixed time.
#pragma once

#include <chrono>
#include <functional>

namespace billing::testing {

// The longest pause between two checks: short enough that a test waiting on
// a fast event loses little, long enough that a condition which makes an
// HTTP request (a metric) does not load the server it watches.
inline constexpr std::chrono::milliseconds kWaitRecheckIntervalMax{20};

// Checks `condition` until it holds or `timeout` has passed; true if it
// held. It is checked at once, then again after pauses that grow from 1 ms
// to kWaitRecheckIntervalMax: the pauses only bound how late a change is
// noticed, they are not the synchronization.
bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

}  // namespace billing::testing
