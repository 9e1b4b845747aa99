// CSV reading: RFC 4180 records from a stream, through libcsv.
//
// Fields may be quoted and then hold delimiters, doubled quotes and line
// breaks; a record may end in LF or CRLF; blank lines are skipped; a UTF-8 byte
// order mark at the start is dropped. Unquoted empty fields are reported as
// absent (nullopt), quoted empty fields as "". Like most readers (and unlike
// the letter of RFC 4180), spaces and tabs around an unquoted field are
// trimmed. Malformed quoting is an error, never a silent repair. Not
// thread-safe; one reader per stream.
#pragma once

#include <cstdint>
#include <deque>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "events/status.h"

namespace billing::ops {

// Bytes read from the stream per parse call: bounds the records buffered at once.
inline constexpr size_t kCsvReadChunkBytes = 64 * 1024;
// Longest field we accept: a cost export's longest cell (tags, resource
// names) is a few KiB; a runaway unterminated quote must not eat memory.
inline constexpr size_t kCsvFieldBytesMax = 1024 * 1024;

using CsvRecord = std::vector<std::optional<std::string>>;

class CsvReader {
 public:
  explicit CsvReader(std::istream& in);
  ~CsvReader();
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  // The next record: true and `*record` filled, or false at the end of input.
  // kInvalidArgument for malformed CSV (naming the record), kUnavailable when
  // the stream fails.
  Result<bool> Next(CsvRecord* record);
  // 1-based number of the record last returned (the header is record 1).
  uint64_t record_number() const { return returned_; }

 private:
  struct Parser;
  std::istream& in_;
  std::unique_ptr<Parser> parser_;
  std::deque<CsvRecord> ready_;
  CsvRecord current_;
  std::string buffer_;  // one chunk of input
  bool eof_ = false;
  Status error_;  // malformed input, reported once the records before it are taken
  bool first_chunk_ = true;
  uint64_t returned_ = 0;
  uint64_t completed_ = 0;

  static void OnField(void* data, size_t len, void* self);
  static void OnRecord(int terminator, void* self);
};

}  // namespace billing::ops
