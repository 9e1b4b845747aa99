// Worker pool: where the service's heavy work runs, so that no request ever
// waits behind another on an HTTP I/O thread.
//
// An I/O thread serves many connections; a verify of the whole chain, an
// `as_of` replay, a month's export or the parse of a large ingest body takes
// milliseconds to seconds, and while it runs on an I/O thread every other
// connection of that thread waits. Such work is handed to this pool instead: a
// fixed number of threads and a bounded queue. When the queue is full,
// TrySubmit refuses at once and the caller answers 503 with Retry-After:
// overload becomes a visible, retryable refusal instead of an ever-growing
// queue. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace billing::api {

// Threads for heavy work. The machine this runs on has few cores, and the
// ledger's writer and the I/O threads need theirs: two workers let a verify
// and an export run side by side without taking every core.
inline constexpr int kHeavyWorkerThreads = 2;
// Heavy requests waiting for a worker before new ones are refused with 503.
// Each holds its request (bodies are bounded by the HTTP server's budget), so
// this bounds memory; at ~0.1-5 s a task, a deeper queue would only turn into
// client timeouts.
inline constexpr size_t kHeavyQueueTasksMax = 64;
// What Retry-After says when the pool refuses: long enough for a task or two
// to finish.
inline constexpr int kHeavyRetryAfterSeconds = 1;
// The workers' nice value. When heavy work and the I/O threads want the same
// cores, the scheduler should favour the I/O threads: a dashboard answer is a
// few microseconds of CPU that a user waits on, a verify is seconds that an
// auditor expects to take seconds. Nice 10 weighs a worker at about a tenth of
// an I/O thread under contention and costs nothing when cores are idle.
inline constexpr int kHeavyWorkerNice = 10;

class WorkerPool {
 public:
  WorkerPool(int threads, size_t queue_max);
  // Runs what is queued, then joins the threads.
  ~WorkerPool();
  // Refuses new tasks, runs what is queued, and joins the threads; every
  // task object is destroyed when it returns. A task owns what its answer
  // needs (a connection, whose socket belongs to the HTTP server's
  // io_context), so whoever owns those stops the pool before destroying
  // them. Idempotent; not concurrently with itself.
  void Stop();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`; false, leaving `task` unrun, when queue_max tasks already
  // wait. The task must not throw.
  [[nodiscard]] bool TrySubmit(std::function<void()> task);
  // Tasks waiting (for metrics).
  size_t queued() const;

 private:
  void Run();

  const size_t queue_max_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace billing::api
