#include "http/worker_pool.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <exception>

namespace billing::api {

WorkerPool::WorkerPool(int threads, size_t queue_max) : queue_max_(queue_max) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

WorkerPool::~WorkerPool() { Stop(); }

void WorkerPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool WorkerPool::TrySubmit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || queue_.size() >= queue_max_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

size_t WorkerPool::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void WorkerPool::Run() {
  // On Linux a thread id names one thread here. Raising one's own nice value
  // needs no privilege; should it fail anyway, the work still runs, only at
  // the I/O threads' priority.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kHeavyWorkerNice);
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      // Queued tasks still run on stop: each owes a client its answer.
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    // Tasks answer their own errors (Service::OffIoThread); this is the last
    // guard, so that one broken task cannot end a worker and strand the queue.
    try {
      task();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ledgerd: internal error in a heavy task: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "ledgerd: internal error in a heavy task\n");
    }
  }
}

}  // namespace billing::api
