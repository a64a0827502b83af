#include "net/server.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "net/connection_table.h"
#include "net/deferred_state.h"
#include "net/worker_pool.h"

namespace icos::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

std::chrono::milliseconds Ms(int64_t ms) { return std::chrono::milliseconds(std::max<int64_t>(0, ms)); }

// Whether threads other than the I/O threads may still post onto the
// io_context: deferred completions and pool workers check it under its
// mutex, and Stop clears it before the io_context stops, so nothing is
// posted to an io_context that is gone.
struct Liveness {
  std::mutex mu;
  bool alive = true;
};

// Hands `fn` to `executor` (an I/O strand) unless the server has stopped.
template <class Executor, class Fn>
void PostIfAlive(Liveness& live, const Executor& executor, Fn&& fn) {
  std::lock_guard<std::mutex> lock(live.mu);
  if (live.alive) boost::asio::post(executor, std::forward<Fn>(fn));
}

const char* CodeFor(int status) {
  switch (status) {
    case 400:
      return "InvalidArgument";
    case 404:
      return "NotFound";
    case 413:
    case 431:
      return "ResourceExhausted";
    case 503:
      return "Unavailable";
    case 504:
      return "DeadlineExceeded";
    default:
      return "Internal";
  }
}

Response ErrorResponse(int status, std::string_view message) {
  Response r;
  r.status = status;
  r.Set(JsonError(message, CodeFor(status)), "application/json");
  return r;
}

// Raises the soft open-file limit to the hard one (each connection is a
// file) and returns the soft limit now in force.
size_t RaiseFileLimit() {
  rlimit rl = {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1'024;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max == RLIM_INFINITY ? rlim_t{1} << 20 : rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return rl.rlim_cur == RLIM_INFINITY ? size_t{1} << 20 : static_cast<size_t>(rl.rlim_cur);
}

// Connections the server may hold: the configured cap, kept below the
// open-file limit less a reserve for the store, logs, outgoing requests.
size_t ConnectionBudget(size_t configured, size_t file_limit) {
  const size_t reserve = std::max<size_t>(64, file_limit / 10);
  return std::max<size_t>(1, std::min(configured, file_limit > reserve ? file_limit - reserve : file_limit / 2));
}

enum class Phase { kHeader, kBody, kIdle, kWrite, kOther };

}  // namespace

struct Server::Impl {
  Impl(Router r, ServerOptions o)
      : router(std::move(r)),
        options(std::move(o)),
        table({.max_per_address = std::max<size_t>(1, options.limits.max_connections_per_address),
               .max_total = ConnectionBudget(options.limits.max_connections, RaiseFileLimit())}) {
    if (options.channels.empty()) options.channels.push_back({"default", 8, 1'024});
    rejected = std::make_unique<std::atomic<uint64_t>[]>(options.channels.size());
  }

  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  template <bool kTls>
  void StartSession(tcp::socket socket, std::string peer);
  void CountTimeout(Phase phase) {
    switch (phase) {
      case Phase::kHeader:
        ++header_timeouts;
        break;
      case Phase::kBody:
        ++body_timeouts;
        break;
      case Phase::kIdle:
        ++idle_timeouts;
        break;
      case Phase::kWrite:
        ++write_timeouts;
        break;
      case Phase::kOther:
        break;
    }
  }

  Router router;
  ServerOptions options;
  ConnectionTable table;  // before the io_context: sessions leave it when destroyed
  std::vector<std::unique_ptr<WorkerPool>> pools;
  std::shared_ptr<Liveness> live = std::make_shared<Liveness>();
  std::atomic<bool> stopping{false};
  bool started = false, stopped = false;
  std::atomic<uint64_t> accepted{0}, header_timeouts{0}, body_timeouts{0}, idle_timeouts{0}, write_timeouts{0};
  std::unique_ptr<std::atomic<uint64_t>[]> rejected;  // per channel
  std::optional<ssl::context> tls;                    // outlives the sessions' streams
  int port = 0;

  asio::io_context ioc;  // after everything its handlers' sessions use
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::steady_timer> accept_retry;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::mutex threads_mu;
  std::condition_variable threads_cv;
  int running_threads = 0;
};

namespace {

// One connection: reads requests, hands them to a pool (or answers on the
// I/O thread), writes responses. Everything but Work runs on the
// connection's strand; Work runs on a pool thread and only posts back.
template <bool kTls>
class Session : public std::enable_shared_from_this<Session<kTls>>, public ChunkSink {
 public:
  using Stream = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

  Session(Server::Impl* server, tcp::socket socket, std::string peer)
      : server_(server),
        live_(server->live),
        executor_(socket.get_executor()),
        stream_(MakeStream(server, std::move(socket))),
        peer_(std::move(peer)),
        timer_(executor_) {}
  ~Session() {
    if (id_ != 0) server_->table.Close(id_);
  }

  // Closes the connection from any thread (eviction, Stop).
  void Evict() {
    PostIfAlive(*live_, executor_, [self = this->shared_from_this()] { self->Close(); });
  }

  void Start(ConnectionTable::Id id) {
    id_ = id;
    Lowest().expires_after(Ms(limits().header_timeout_ms));
    if constexpr (kTls) {
      // Look at the first bytes before the handshake: a client speaking
      // plain HTTP here (an http:// URL) is told so, not just hung up on.
      beast::async_detect_ssl(Lowest(), buffer_, [self = this->shared_from_this()](beast::error_code ec, bool tls) {
        if (ec) return self->OnReadError(ec, Phase::kHeader);
        if (!tls) return self->RefusePlainText();
        // The default argument works around Boost 1.74's ssl_stream, whose
        // buffered async_handshake checks the handler against the
        // unbuffered signature; it is called with both arguments.
        self->stream_.async_handshake(ssl::stream_base::server, self->buffer_.data(),
                                      [self](beast::error_code ec, size_t used = 0) {
                                        if (ec) return self->OnReadError(ec, Phase::kHeader);
                                        self->buffer_.consume(used);
                                        self->ReadRequest(/*first=*/true);
                                      });
      });
    } else {
      ReadRequest(/*first=*/true);
    }
  }

 private:
  static Stream MakeStream(Server::Impl* server, tcp::socket socket) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *server->tls);
    } else {
      return Stream(std::move(socket));
    }
  }
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }
  const net::Limits& limits() const { return server_->options.limits; }

  // The first request's header deadline runs from accept (set in Start); a
  // later one's from its first byte, after an idle wait of its own.
  void ReadRequest(bool first) {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits().max_header_bytes));
    parser_->body_limit(limits().max_body_bytes);
    if (first) return ReadHeader(/*restart_deadline=*/false);
    if (buffer_.size() > 0) return ReadHeader(/*restart_deadline=*/true);  // pipelined
    Lowest().expires_after(Ms(limits().idle_timeout_ms));
    stream_.async_read_some(buffer_.prepare(4'096), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
      self->buffer_.commit(n);
      if (ec) return self->OnReadError(ec, Phase::kIdle);
      self->ReadHeader(/*restart_deadline=*/true);
    });
  }

  void ReadHeader(bool restart_deadline) {
    if (restart_deadline) Lowest().expires_after(Ms(limits().header_timeout_ms));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec, Phase::kHeader);
    if (parser_->is_done()) return OnRequest();
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      Lowest().expires_after(Ms(limits().write_timeout_ms));
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      return asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                               [self = this->shared_from_this()](beast::error_code ec, size_t) {
                                 if (ec) return self->OnReadError(ec, Phase::kWrite);
                                 self->ReadBody();
                               });
    }
    ReadBody();
  }

  void ReadBody() {
    Lowest().expires_after(Ms(limits().body_timeout_ms));
    http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->OnReadError(ec, Phase::kBody);
      self->OnRequest();
    });
  }

  void OnReadError(beast::error_code ec, Phase phase) {
    if (ec == beast::error::timeout) {
      server_->CountTimeout(phase);
      return Close();
    }
    if (ec == http::error::header_limit) return RejectEarly(431, "request header fields too large");
    if (ec == http::error::body_limit) {
      // Content-Length over the limit (found with the header) or a chunked
      // body that grew past it: answer, and drop what is still coming.
      drain_ = 16 << 20;
      return RejectEarly(413, "request body too large");
    }
    if (ec.category() == beast::error_code(http::error::bad_target).category() && ec != http::error::end_of_stream &&
        ec != http::error::partial_message) {
      return RejectEarly(400, "malformed HTTP request");
    }
    Close();  // the client closed or reset the connection
  }

  // Answers a request that cannot be served, then closes the connection.
  void RejectEarly(int status, std::string_view message) {
    keep_alive_ = false;
    if (drain_ == 0) drain_ = 1 << 20;  // whatever of the request is still coming
    if (parser_ && parser_->got_some()) {
      method_label_ = MethodLabel(std::string_view(parser_->get().method_string()));
    }
    route_label_ = "unmatched";
    started_ = SteadyClock::now();
    server_->table.Busy(id_);
    Respond(ErrorResponse(status, message));
  }

  void OnRequest() {
    server_->table.Busy(id_);
    started_ = SteadyClock::now();
    http::request<http::string_body> msg = parser_->release();
    parser_.reset();
    Request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    ParseTarget(req.target, &req.path, &req.params);
    for (const auto& field : msg) req.headers.emplace(std::string(field.name_string()), std::string(field.value()));
    req.body = std::move(msg.body());
    req.peer = peer_;
    req.keep_alive = msg.keep_alive();
    keep_alive_ = req.keep_alive;
    version_ = msg.version();
    head_ = req.method == "HEAD";
    method_label_ = MethodLabel(req.method);

    const Route* route = server_->router.Match(req.method, req.path, &req.matches);
    if (route == nullptr) {
      route_label_ = "unmatched";
      Response res = ErrorResponse(404, "no such route; see docs/api.md");
      if (server_->router.not_found()) Run(server_->router.not_found(), req, res);
      return Finish(std::move(res));
    }
    route_label_ = route->label;
    if (route->options.on_io_thread) {
      Response res;
      Run(route->handler, req, res);
      return Finish(std::move(res));
    }
    int channel = route->options.channel;
    if (server_->options.choose_channel) {
      const int chosen = server_->options.choose_channel(req, *route);
      if (chosen >= 0 && static_cast<size_t>(chosen) < server_->pools.size()) channel = chosen;
    }
    channel_ = std::clamp<int>(channel, 0, static_cast<int>(server_->pools.size()) - 1);
    WorkerPool& pool = *server_->pools[static_cast<size_t>(channel_)];
    if (!pool.TrySubmit([self = this->shared_from_this(), route, req = std::move(req)] { self->Work(*route, req); })) {
      ++server_->rejected[static_cast<size_t>(channel_)];
      Response busy = ErrorResponse(503, absl::StrCat("server busy: the ", pool.name(), " queue is full; retry after ",
                                                      server_->options.retry_after_s, " s"));
      busy.SetHeader("Retry-After", std::to_string(server_->options.retry_after_s));
      Respond(std::move(busy));
    }
  }

  static void Run(const Handler& handler, const Request& req, Response& res) {
    try {
      handler(req, res);
    } catch (const std::exception& e) {
      // Mid-stream, the status is long sent: cut the stream off instead.
      if (res.streaming()) return res.BreakStream();
      res = ErrorResponse(500, absl::StrCat("internal error: ", e.what()));
    } catch (...) {
      if (res.streaming()) return res.BreakStream();
      res = ErrorResponse(500, "internal error");
    }
  }

  // On a pool thread.
  void Work(const Route& route, const Request& req) {
    if (closed_ || server_->stopping) return;  // client gone or evicted, or shutting down
    Response res;
    res.set_chunk_sink(std::shared_ptr<ChunkSink>(this->shared_from_this(), static_cast<ChunkSink*>(this)));
    Run(route.handler, req, res);
    PostIfAlive(*live_, executor_,
                [self = this->shared_from_this(), res = std::move(res)]() mutable { self->Finish(std::move(res)); });
  }

  // --- streamed responses (Response::BeginStream): Head and Piece run on
  // the handler's pool thread and wait for the strand to write. --------------

  bool Head(const Response& head) override {
    // A HEAD request has no body to stream; HTTP/1.0 has no chunked encoding.
    if (head_ || version_ < 11) return false;
    return OnStrandAndWait([head](Session& self, std::function<void(bool)> done) {
      self.stream_head_ = {};
      self.stream_head_.version(self.version_);
      self.stream_head_.result(static_cast<unsigned>(head.status));
      for (const auto& [name, value] : head.headers) self.stream_head_.insert(name, value);
      if (!head.content_type.empty()) self.stream_head_.set(http::field::content_type, head.content_type);
      self.stream_head_.keep_alive(self.keep_alive_ && !self.server_->stopping);
      self.stream_head_.chunked(true);
      self.stream_status_ = head.status;
      self.authenticated_ = head.authenticated;
      if (!head.authenticated) self.server_->table.Idle(self.id_, false);  // as Respond
      self.stream_sr_.emplace(self.stream_head_);
      self.Lowest().expires_after(Ms(self.limits().write_timeout_ms));
      http::async_write_header(self.stream_, *self.stream_sr_,
                               [self = self.shared_from_this(), done](beast::error_code ec, size_t) {
                                 if (ec) self->OnStreamWriteError(ec);
                                 done(!ec);
                               });
    });
  }

  bool Piece(std::string_view data) override {
    return OnStrandAndWait([piece = std::string(data)](Session& self, std::function<void(bool)> done) mutable {
      self.piece_ = std::move(piece);
      self.Lowest().expires_after(Ms(self.limits().write_timeout_ms));
      asio::async_write(self.stream_, http::make_chunk(asio::buffer(self.piece_)),
                        [self = self.shared_from_this(), done](beast::error_code ec, size_t) {
                          if (ec) self->OnStreamWriteError(ec);
                          done(!ec);
                        });
    });
  }

  // Runs `write` on the strand (unless the connection closed) and waits for
  // the outcome it gives `done` (called exactly once). A server stopping
  // meanwhile may never run it: the wait ends with the write's deadline.
  bool OnStrandAndWait(std::function<void(Session&, std::function<void(bool)>)> write) {
    auto outcome = std::make_shared<std::promise<bool>>();
    std::future<bool> result = outcome->get_future();
    {
      std::lock_guard<std::mutex> lock(live_->mu);
      if (!live_->alive) return false;
      asio::post(executor_, [self = this->shared_from_this(), write = std::move(write), outcome] {
        if (self->closed_) return outcome->set_value(false);
        write(*self, [outcome](bool ok) { outcome->set_value(ok); });
      });
    }
    if (result.wait_for(Ms(limits().write_timeout_ms + 1'000)) != std::future_status::ready) return false;
    try {
      return result.get();
    } catch (const std::future_error&) {  // dropped unrun: the server stopped
      return false;
    }
  }

  void OnStreamWriteError(beast::error_code ec) {
    if (ec == beast::error::timeout) server_->CountTimeout(Phase::kWrite);
    Close();
  }

  // The handler of a streamed response returned: the last chunk, or a cut
  // when it broke off midway.
  void EndStream(bool broken) {
    if (closed_) return;
    if (server_->options.on_request) {
      server_->options.on_request({method_label_, route_label_, stream_status_,
                                   std::chrono::duration<double>(SteadyClock::now() - started_).count()});
    }
    if (broken) return Close();
    const bool keep = stream_head_.keep_alive();
    Lowest().expires_after(Ms(limits().write_timeout_ms));
    asio::async_write(stream_, http::make_chunk_last(),
                      [self = this->shared_from_this(), keep](beast::error_code ec, size_t) {
                        if (ec) return self->OnStreamWriteError(ec);
                        self->stream_sr_.reset();
                        if (!keep) return self->Shutdown();
                        self->server_->table.Idle(self->id_, self->authenticated_);
                        self->ReadRequest(/*first=*/false);
                      });
  }

  // A handler returned: send its response, or wait for the deferred one.
  void Finish(Response res) {
    if (res.streaming()) return EndStream(res.stream_broken());
    if (!res.deferred()) return Respond(std::move(res));
    std::shared_ptr<DeferredState> state = res.deferred_state();
    if (closed_) return Abandon(state);
    std::optional<Response> early;
    bool gone = false;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->early) {
        early = std::move(state->early);
        state->early.reset();
      } else if (state->done) {
        gone = true;
      } else {
        state->deliver = [weak = this->weak_from_this(), live = live_, executor = executor_](Response r) {
          PostIfAlive(*live, executor, [weak, r = std::move(r)]() mutable {
            if (auto self = weak.lock()) self->Deliver(std::move(r));
          });
        };
      }
    }
    if (early) return Respond(std::move(*early));
    if (gone) return Close();
    deferred_ = state;
    timer_.expires_after(state->timeout);
    timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) { self->OnDeferralTimer(ec, false); });
    if constexpr (!kTls) WatchForClose();
  }

  void Deliver(Response res) {
    if (closed_ || deferred_ == nullptr) return;
    deferred_.reset();
    timer_.cancel();
    if (watching_) {
      watching_ = false;
      beast::error_code ignored;
      Lowest().socket().cancel(ignored);  // the readability wait below
    }
    Respond(std::move(res));
  }

  void OnDeferralTimer(beast::error_code ec, bool grace) {
    if (ec || closed_ || deferred_ == nullptr) return;
    std::shared_ptr<DeferredState> state = deferred_;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->done) return;
    }
    if (grace || !state->on_timeout) {
      Deferred(state).Complete(ErrorResponse(504, "no answer in time"));
      return;
    }
    server_->pools[static_cast<size_t>(channel_)]->Submit([state] { state->on_timeout(Deferred(state)); });
    timer_.expires_after(Ms(limits().deferred_grace_ms));
    timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) { self->OnDeferralTimer(ec, true); });
  }

  // While a deferred response waits, notices the client closing (plain TCP
  // only: cancelling a read inside TLS is not safe), so the handler can drop
  // what it registered instead of waiting for the timeout.
  void WatchForClose() {
    watching_ = true;
    Lowest().socket().async_wait(tcp::socket::wait_read, [self = this->shared_from_this()](beast::error_code ec) {
      if (!self->watching_ || ec) return;
      // The reactor is edge-triggered: a wakeup may be stale (the request's
      // own bytes, already read). Only a peek that sees the end of the
      // stream means the client left.
      char byte;
      const ssize_t n = ::recv(self->Lowest().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return self->WatchForClose();
      self->watching_ = false;
      if (n <= 0) self->Close();  // end of stream or an error: the client left
      // Otherwise pipelined bytes: they wait in the socket for after the response.
    });
  }

  void Abandon(const std::shared_ptr<DeferredState>& state) {
    if (state->Abandon() && state->on_timeout && !server_->stopping) {
      server_->pools[static_cast<size_t>(channel_)]->Submit([state] { state->on_timeout(Deferred(state)); });
    }
  }

  void Respond(Response r) {
    if (closed_) return;
    const bool keep = keep_alive_ && !server_->stopping;
    res_ = {};
    res_.version(version_);
    res_.result(static_cast<unsigned>(r.status));
    for (const auto& [name, value] : r.headers) res_.insert(name, value);
    if (!r.content_type.empty()) res_.set(http::field::content_type, r.content_type);
    res_.keep_alive(keep);
    if (head_) {
      res_.content_length(r.body.size());
    } else {
      res_.body() = std::move(r.body);
      res_.prepare_payload();
    }
    authenticated_ = r.authenticated;
    // Writing to a client whose request was not authenticated protects the
    // connection no longer: one that does not read its answer (or the body
    // of a 413 still being drained) must not pin its place under the cap.
    if (!r.authenticated) server_->table.Idle(id_, false);
    if (server_->options.on_request) {
      server_->options.on_request({method_label_, route_label_, r.status,
                                   std::chrono::duration<double>(SteadyClock::now() - started_).count()});
    }
    Lowest().expires_after(Ms(limits().write_timeout_ms));
    http::async_write(stream_, res_, [self = this->shared_from_this(), keep](beast::error_code ec, size_t) {
      if (ec) {
        if (ec == beast::error::timeout) self->server_->CountTimeout(Phase::kWrite);
        return self->Close();
      }
      if (!keep) return self->Shutdown();
      self->server_->table.Idle(self->id_, self->authenticated_);
      self->head_ = false;
      self->ReadRequest(/*first=*/false);
    });
  }

  // After the last response. Plain TCP: send FIN, then read and drop what
  // the client still sends (a 413's body) until it closes, so it reads the
  // answer instead of a reset; TLS: close_notify. Then close.
  void Shutdown() {
    if (closed_) return;
    if constexpr (kTls) {
      Lowest().expires_after(std::chrono::seconds(1));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->Close(); });
    } else {
      beast::error_code ignored;
      Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
      Drain();
    }
  }

  // A TLS listener got something else, most likely a plain HTTP request:
  // answer 400 in plain HTTP (all that client can read) naming the fix,
  // then close. Whatever the request carried has already crossed the
  // network in clear text; the client has to be told to stop doing that.
  void RefusePlainText() {
    static const std::string kRefusal = [] {
      const std::string body =
          "{\"error\":\"this icos API speaks HTTPS only, and this request came as plain HTTP: use an https:// "
          "URL (--server, ICOS_SERVER) and the cluster's CA (--ca-cert, ICOS_CA_CERT)\"}\n";
      return absl::StrCat("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
                          "\r\nConnection: close\r\n\r\n", body);
    }();
    server_->table.Busy(id_);
    Lowest().expires_after(Ms(limits().write_timeout_ms));
    asio::async_write(Lowest(), asio::buffer(kRefusal),
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->Close();
                        beast::error_code ignored;
                        self->Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
                        self->drain_ = 1 << 20;  // the rest of the request, so the client reads the answer, not a reset
                        self->DrainPlainText();
                      });
  }

  void DrainPlainText() {
    if (closed_) return;
    if (drain_ == 0) return Close();
    Lowest().expires_after(Ms(limits().body_timeout_ms));
    buffer_.consume(buffer_.size());
    const size_t take = static_cast<size_t>(std::min<uint64_t>(drain_, 64 * 1024));
    Lowest().async_read_some(buffer_.prepare(take), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
      self->drain_ = ec ? 0 : self->drain_ - std::min<uint64_t>(n, self->drain_);
      self->DrainPlainText();
    });
  }

  void Drain() {
    if (closed_) return;
    if (drain_ == 0) return Close();
    Lowest().expires_after(Ms(limits().body_timeout_ms));
    buffer_.consume(buffer_.size());
    const size_t take = static_cast<size_t>(std::min<uint64_t>(drain_, 64 * 1024));
    stream_.async_read_some(buffer_.prepare(take), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
      self->drain_ = ec ? 0 : self->drain_ - std::min<uint64_t>(n, self->drain_);
      self->Drain();
    });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    watching_ = false;
    if (deferred_ != nullptr) {
      Abandon(deferred_);
      deferred_.reset();
    }
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Lowest().close();
    server_->table.Close(id_);
    id_ = 0;
  }

  Server::Impl* const server_;
  const std::shared_ptr<Liveness> live_;
  const tcp::socket::executor_type executor_;  // the connection's strand
  Stream stream_;
  const std::string peer_;
  asio::steady_timer timer_;  // deferred response timeout
  ConnectionTable::Id id_ = 0;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;  // being written
  // A streamed response (Head, Piece, EndStream): its header, the
  // serializer that wrote it, and the piece being written.
  http::response<http::empty_body> stream_head_;
  std::optional<http::response_serializer<http::empty_body>> stream_sr_;
  std::string piece_;
  int stream_status_ = 0;
  std::atomic<bool> closed_{false};  // read by pool threads (Work)
  bool keep_alive_ = true, head_ = false, authenticated_ = false, watching_ = false;
  unsigned version_ = 11;
  uint64_t drain_ = 0;  // body bytes still to read and drop before closing
  int channel_ = 0;
  std::string_view method_label_ = "other", route_label_ = "unmatched";
  SteadyClock::time_point started_;
  std::shared_ptr<DeferredState> deferred_;  // the response this connection waits for
};

}  // namespace

template <bool kTls>
void Server::Impl::StartSession(tcp::socket socket, std::string peer) {
  auto session = std::make_shared<Session<kTls>>(this, std::move(socket), peer);
  ConnectionTable::Admission admission = table.Open(peer, [weak = std::weak_ptr<Session<kTls>>(session)] {
    if (auto s = weak.lock()) s->Evict();
  });
  for (auto& evict : admission.evict) evict();
  if (admission.id == 0) return;  // refused: the socket closes with the session
  session->Start(admission.id);
}

void Server::Impl::DoAccept() {
  acceptor->async_accept(asio::make_strand(ioc),
                         [this](beast::error_code ec, tcp::socket socket) { OnAccept(ec, std::move(socket)); });
}

void Server::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopping || !acceptor->is_open()) return;
  if (ec) {
    // Out of files (EMFILE) or the like: accepting at once would spin.
    accept_retry->expires_after(std::chrono::milliseconds(50));
    accept_retry->async_wait([this](beast::error_code e) {
      if (!e && !stopping) DoAccept();
    });
    return;
  }
  ++accepted;
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // small JSON replies must not wait for delayed ACKs
  const tcp::endpoint remote = socket.remote_endpoint(ignored);
  if (!ignored) {
    std::string peer = remote.address().to_string();
    if (tls) {
      StartSession<true>(std::move(socket), std::move(peer));
    } else {
      StartSession<false>(std::move(socket), std::move(peer));
    }
  }
  DoAccept();
}

Server::Server(Router router, ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(router), std::move(options))) {}

Server::~Server() { Stop(); }

absl::Status Server::Start() {
  Impl& s = *impl_;
  if (s.started) return absl::FailedPreconditionError("server already started");
  const ServerOptions& o = s.options;
  if (!o.tls_cert_file.empty() || !o.tls_key_file.empty()) {
    if (o.tls_cert_file.empty() || o.tls_key_file.empty()) {
      return absl::InvalidArgumentError("TLS needs both a certificate and a private key file");
    }
    s.tls.emplace(ssl::context::tls_server);
    s.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    beast::error_code ec;
    s.tls->use_certificate_chain_file(o.tls_cert_file, ec);
    if (ec)
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load TLS certificate ", o.tls_cert_file, ": ", ec.message()));
    s.tls->use_private_key_file(o.tls_key_file, ssl::context::pem, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("cannot load TLS key ", o.tls_key_file, ": ", ec.message()));
  }

  beast::error_code ec;
  tcp::resolver resolver(s.ioc);
  auto endpoints = resolver.resolve(o.host, std::to_string(o.port), tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve host '", o.host, "': ", ec.message()));
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  s.acceptor.emplace(asio::make_strand(s.ioc));
  s.acceptor->open(endpoint.protocol(), ec);
  if (!ec) s.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor->bind(endpoint, ec);
  if (!ec) s.acceptor->listen(o.listen_backlog, ec);
  if (ec) {
    s.acceptor.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.host, ":", o.port, ": ", ec.message(),
                                               o.port != 0 ? " (in use? pick another with --port)" : ""));
  }
  s.port = s.acceptor->local_endpoint().port();
  s.accept_retry.emplace(s.acceptor->get_executor());
  for (const ChannelOptions& c : o.channels) {
    s.pools.push_back(std::make_unique<WorkerPool>(c.name, std::max(1, c.threads), c.max_queued));
  }
  s.work.emplace(s.ioc.get_executor());
  s.started = true;
  asio::post(s.acceptor->get_executor(), [&s] { s.DoAccept(); });
  const int threads = std::max(1, o.io_threads);
  s.running_threads = threads;
  for (int i = 0; i < threads; ++i) {
    s.threads.emplace_back([&s] {
      s.ioc.run();
      std::lock_guard<std::mutex> lock(s.threads_mu);
      --s.running_threads;
      s.threads_cv.notify_all();
    });
  }
  return absl::OkStatus();
}

void Server::Stop() {
  Impl& s = *impl_;
  if (!s.started || s.stopped) return;
  s.stopped = true;
  s.stopping = true;
  // Stop accepting (on the acceptor's strand: it is not thread-safe).
  std::promise<void> closed;
  asio::post(s.acceptor->get_executor(), [&s, &closed] {
    beast::error_code ignored;
    s.acceptor->close(ignored);
    s.accept_retry->cancel();
    closed.set_value();
  });
  closed.get_future().wait();
  // Close every connection; handlers already running finish, queued ones
  // see the server stopping and return at once.
  for (auto& evict : s.table.All()) evict();
  for (auto& pool : s.pools) pool->Stop();
  {
    std::lock_guard<std::mutex> lock(s.live->mu);
    s.live->alive = false;  // nothing more is posted from outside the I/O threads
  }
  s.work.reset();
  {
    // The I/O threads return once the closes above have run; a TLS close
    // may take up to a second. Whatever is left then is dropped.
    std::unique_lock<std::mutex> lock(s.threads_mu);
    s.threads_cv.wait_for(lock, std::chrono::seconds(2), [&s] { return s.running_threads == 0; });
  }
  s.ioc.stop();
  for (auto& t : s.threads) t.join();
}

int Server::port() const { return impl_->port; }

void Server::Run(int channel, std::function<void()> task) {
  impl_->pools.at(static_cast<size_t>(channel))->Submit(std::move(task));
}

ServerStats Server::Stats() const {
  const Impl& s = *impl_;
  ServerStats out;
  out.open = s.table.open();
  out.accepted = s.accepted;
  out.evicted = s.table.evicted();
  out.refused = s.table.refused();
  out.header_timeouts = s.header_timeouts;
  out.body_timeouts = s.body_timeouts;
  out.idle_timeouts = s.idle_timeouts;
  out.write_timeouts = s.write_timeouts;
  for (size_t i = 0; i < s.options.channels.size(); ++i) {
    out.channels.push_back(
        {s.options.channels[i].name, s.rejected[i].load(), i < s.pools.size() ? s.pools[i]->queued() : 0});
  }
  return out;
}

}  // namespace icos::net
