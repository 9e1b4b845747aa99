#include "ops/csv_reader.h"

#include <csv.h>

namespace billing::ops {

struct CsvReader::Parser {
  csv_parser p;
};

CsvReader::CsvReader(std::istream& in) : in_(in), parser_(std::make_unique<Parser>()) {
  // Strict: a stray quote in an unquoted field, or a quoted field still open
  // at the end of input, is an error rather than a guess.
  LEDGER_CHECK(csv_init(&parser_->p, CSV_STRICT | CSV_STRICT_FINI | CSV_EMPTY_IS_NULL) == 0,
               "csv_init failed");
}

CsvReader::~CsvReader() { csv_free(&parser_->p); }

void CsvReader::OnField(void* data, size_t len, void* self) {
  auto* r = static_cast<CsvReader*>(self);
  if (data == nullptr) {
    r->current_.emplace_back(std::nullopt);
  } else {
    r->current_.emplace_back(std::string(static_cast<const char*>(data), len));
  }
}

void CsvReader::OnRecord(int, void* self) {
  auto* r = static_cast<CsvReader*>(self);
  r->ready_.push_back(std::move(r->current_));
  r->current_.clear();
  ++r->completed_;
}

Result<bool> CsvReader::Next(CsvRecord* record) {
  std::string& chunk = buffer_;
  chunk.resize(kCsvReadChunkBytes);
  while (ready_.empty() && !eof_ && error_.ok()) {
    in_.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    size_t got = static_cast<size_t>(in_.gcount());
    if (in_.bad()) return Status(Code::kUnavailable, "reading the CSV input failed");
    std::string_view data(chunk.data(), got);
    if (first_chunk_) {
      first_chunk_ = false;
      if (data.substr(0, 3) == "\xEF\xBB\xBF") data.remove_prefix(3);
    }
    if (!data.empty() &&
        csv_parse(&parser_->p, data.data(), data.size(), OnField, OnRecord, this) != data.size()) {
      error_ = Status(Code::kInvalidArgument, "malformed CSV in record " +
                                                  std::to_string(completed_ + 1) + ": " +
                                                  csv_strerror(csv_error(&parser_->p)));
      break;
    }
    if (csv_get_buffer_size(&parser_->p) > kCsvFieldBytesMax) {
      error_ = Status(Code::kInvalidArgument,
                      "a field of record " + std::to_string(completed_ + 1) + " is longer than " +
                          std::to_string(kCsvFieldBytesMax) + " bytes");
      break;
    }
    if (got < chunk.size()) {
      eof_ = true;
      if (csv_fini(&parser_->p, OnField, OnRecord, this) != 0) {
        error_ = Status(Code::kInvalidArgument, "malformed CSV at the end of input (record " +
                                                    std::to_string(completed_ + 1) +
                                                    "): " + csv_strerror(csv_error(&parser_->p)));
      }
    }
  }
  if (ready_.empty()) {
    if (!error_.ok()) return error_;
    return false;
  }
  *record = std::move(ready_.front());
  ready_.pop_front();
  ++returned_;
  return true;
}

}  // namespace billing::ops
