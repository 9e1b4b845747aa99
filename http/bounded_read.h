// Reading an HTTP message with a body_limit that holds: a workaround for a
// Boost 1.74 Beast bug, shared by every client that reads an answer it bounds
// (http/forward_client.cc, webhooks/sender.cc).
//
// WARNING: Boost 1.74's parser, reading eagerly (as http::async_read does),
// loses the body_limit error of a Content-Length over the limit when the body
// arrived in the same read as the head, and then reads the whole body: a peer
// answering more than the limit is read in full, into memory. Reading the
// head on its own first (http::async_read_header stops at the head) and the
// body after keeps the error: the body read fails with
// http::error::body_limit before any byte past the limit is taken.
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <cstddef>
#include <utility>

namespace billing::api {

// http::async_read of `parser`'s whole message on `stream`, head first, so
// that the parser's body_limit holds (above). Calls `handler(error_code,
// bytes)` once, as http::async_read would. `stream`, `buffer` and `parser`
// must outlive the operation, as for http::async_read.
template <typename Stream, typename DynamicBuffer, bool isRequest, typename Body, typename Handler>
void AsyncReadBounded(Stream& stream, DynamicBuffer& buffer,
                      boost::beast::http::parser<isRequest, Body>& parser, Handler&& handler) {
  namespace http = boost::beast::http;
  http::async_read_header(
      stream, buffer, parser,
      [&stream, &buffer, &parser, handler = std::forward<Handler>(handler)](
          boost::beast::error_code ec, std::size_t head_bytes) mutable {
        if (ec || parser.is_done()) return handler(ec, head_bytes);
        http::async_read(stream, buffer, parser,
                         [head_bytes, handler = std::move(handler)](
                             boost::beast::error_code body_ec, std::size_t body_bytes) mutable {
                           handler(body_ec, head_bytes + body_bytes);
                         });
      });
}

}  // namespace billing::api
