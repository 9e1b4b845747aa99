// RocksDB's Status in our terms: the one place that decides what a storage
// error means to a caller.
//
// Every module that calls RocksDB (the ledger, the read models, backups)
// turns its rocksdb::Status into a billing::Status here, so the same disk
// trouble gets the same code everywhere (STYLE.md, "Errors"):
//  - kUnavailable: a retry may cure it. I/O errors (a full disk, a failed
//    read or sync, a vanished file), Busy, TimedOut, TryAgain, Incomplete,
//    Aborted (e.g. a memory limit), ShutdownInProgress, CompactionTooLarge.
//    The HTTP API answers 503.
//  - kCorruption: the stored bytes are damaged; retrying reads the same bytes.
//  - kNotFound: the key or file asked for does not exist.
//  - kInternal: RocksDB refused how we called it (InvalidArgument,
//    NotSupported, a dropped column family...): a bug or a foreign database,
//    which no retry cures.
#pragma once

#include <rocksdb/status.h>

#include <string_view>

#include "events/status.h"

namespace billing::ledger {

// The code for `s` as above; the message is `what` (what we were doing, e.g.
// "reading the ledger head"), ": " and RocksDB's own text. Ok for an ok `s`.
Status FromRocks(const rocksdb::Status& s, std::string_view what);

// The code alone, for callers that only need to know what to do next.
Code RocksCode(const rocksdb::Status& s);

}  // namespace billing::ledger
