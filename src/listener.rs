//! The HTTP/1.1 server of `stamp serve`: bounds what slow, idle and numerous clients can hold,
//! and hands every request to the ignited Rocket application.
//!
//! Rocket 0.5's own server reads request heads without a timeout and accepts connections without
//! limit (its hyper builder sets `header_read_timeout(None)`, and its listener API is private), so
//! 300 clients that dribble header bytes hold 300 connections forever. This server is hyper 1's
//! HTTP/1 connection driver (the same hyper Rocket uses) with those bounds:
//!
//! - at most `max_connections` connections at once: beyond them a new connection is answered
//!   `503` (with `Retry-After`) and closed at once, so the accept queue keeps moving;
//! - a request head (request line and headers) must arrive within `header_read_timeout` seconds,
//!   counted from the connection's start or the end of the previous response; the body must
//!   follow within as many seconds again (else `408`), and is at most the largest of Rocket's
//!   body limits (else `413`, before anything is read when `Content-Length` says so);
//! - a keep-alive connection with no request in flight is closed after Rocket's `keep_alive`
//!   seconds without traffic (`keep_alive = 0` turns keep-alive off).
//!
//! Each request then goes through Rocket's local dispatcher ([`Client`]), which runs the same
//! request fairings, routing, handlers, catchers and response fairings as Rocket's server. What
//! Rocket's server does around that is done here: the peer address (and through it
//! `ip_header`), cookies and `Host` from the headers, `HEAD` answered as `GET` without the body
//! but with its length, liftoff fairings at start, and on SIGTERM/SIGINT (Rocket's
//! `[shutdown]` settings) the graceful shutdown: Rocket's [`rocket::Shutdown`] is notified (the
//! background jobs stop), no new connection is accepted, idle connections close, requests in
//! flight get `grace` + `mercy` seconds, then the shutdown fairings run.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use rocket::http::uri::{Host, Origin};
use rocket::http::{Cookie, Header, Method, Status};
use rocket::local::asynchronous::Client;
use rocket::{Ignite, Rocket};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::error::ApiError;

/// The bounds on client connections: the settings `max_connections` and `header_read_timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time for a request head to arrive (and for its body after it).
    pub header_read_timeout: Duration,
}

/// The bodies Rocket reads with a size limit: the largest of their limits bounds every request
/// body here, so Rocket's own (smaller, per type) limits still answer first below it.
const BODY_LIMITS: &[&str] = &["form", "data-form", "file", "json", "string", "bytes"];

/// Serves `rocket` on `listener` within `limits` until a shutdown signal (or a
/// [`rocket::Shutdown::notify`]) ends it gracefully.
pub async fn serve(
    rocket: Rocket<Ignite>,
    listener: TcpListener,
    limits: ConnectionLimits,
) -> Result<(), rocket::Error> {
    let config = rocket.config().clone();
    let bounds = Bounds {
        header_read_timeout: limits.header_read_timeout,
        keep_alive: (config.keep_alive > 0).then(|| Duration::from_secs(config.keep_alive.into())),
        max_body: BODY_LIMITS
            .iter()
            .filter_map(|name| config.limits.get(name))
            .map(|limit| limit.as_u64())
            .max()
            .unwrap_or(0),
    };
    // Runs the liftoff fairings (the background jobs start).
    let client = Arc::new(Client::untracked(rocket).await?);
    let shutdown = client.rocket().shutdown();
    watch_signals(&config.shutdown, shutdown.clone());

    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(bounds.header_read_timeout)
        .keep_alive(bounds.keep_alive.is_some());
    let http = Arc::new(http);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let busy = busy_answer();
    let mut connections = JoinSet::new();
    let mut saturated = false;
    loop {
        tokio::select! {
            biased;
            () = shutdown.clone() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        saturated = false;
                        let connection = Connection {
                            client: client.clone(),
                            http: http.clone(),
                            bounds,
                            peer,
                            _permit: permit,
                        };
                        connections.spawn(connection.serve(stream, shutdown.clone()));
                    }
                    Err(_) => {
                        if !saturated {
                            rocket::warn!(
                                "{} connections are open (max_connections): new ones are \
                                 answered 503 until some close",
                                limits.max_connections
                            );
                            saturated = true;
                        }
                        // Best effort: a full socket buffer just means the client sees the close.
                        let _ = stream.try_write(&busy);
                    }
                },
                Err(e) => {
                    // Out of file descriptors or a connection reset before it was accepted:
                    // keep serving the connections there are, and try again shortly.
                    rocket::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }

    // Shutting down: no new connections; each open one closes once idle (its task saw the same
    // notification), within grace + mercy.
    drop(listener);
    rocket::warn!("shutdown requested: finishing the requests in flight");
    let grace = u64::from(config.shutdown.grace) + u64::from(config.shutdown.mercy);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(grace), drained)
        .await
        .is_err()
    {
        rocket::warn!(
            "{} connection(s) still open after grace + mercy: closed",
            connections.len()
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    match Arc::try_unwrap(client) {
        // Runs the shutdown fairings.
        Ok(client) => {
            let _ = client.terminate().await;
        }
        Err(_) => rocket::warn!("shutdown fairings skipped: a request is still running"),
    }
    rocket::info!("graceful shutdown complete");
    Ok(())
}

/// Notifies `shutdown` on the signals Rocket's `[shutdown]` settings name (`ctrlc`: SIGINT;
/// `signals`, by default SIGTERM), as Rocket's own server does.
fn watch_signals(settings: &rocket::config::Shutdown, shutdown: rocket::Shutdown) {
    #[cfg(unix)]
    {
        use rocket::config::Sig;
        use tokio::signal::unix::{SignalKind, signal};

        let mut wanted = settings.signals.clone();
        if settings.ctrlc {
            wanted.insert(Sig::Int);
        }
        for sig in wanted {
            let kind = match sig {
                Sig::Alrm => SignalKind::alarm(),
                Sig::Chld => SignalKind::child(),
                Sig::Hup => SignalKind::hangup(),
                Sig::Int => SignalKind::interrupt(),
                Sig::Io => SignalKind::io(),
                Sig::Pipe => SignalKind::pipe(),
                Sig::Quit => SignalKind::quit(),
                Sig::Term => SignalKind::terminate(),
                Sig::Usr1 => SignalKind::user_defined1(),
                Sig::Usr2 => SignalKind::user_defined2(),
            };
            let mut stream = match signal(kind) {
                Ok(stream) => stream,
                Err(e) => {
                    rocket::warn!("cannot watch {sig} for shutdown: {e}");
                    continue;
                }
            };
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    rocket::warn!("received {sig}: shutting down");
                    shutdown.clone().notify();
                }
            });
        }
    }
    #[cfg(not(unix))]
    if settings.ctrlc {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                shutdown.notify();
            }
        });
    }
}

/// The per-connection bounds, resolved once.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    header_read_timeout: Duration,
    /// Idle time after which a keep-alive connection closes; `None`: no keep-alive.
    keep_alive: Option<Duration>,
    /// Largest request body, in bytes.
    max_body: u64,
}

/// One accepted connection and what serving it needs.
struct Connection {
    client: Arc<Client>,
    http: Arc<http1::Builder>,
    bounds: Bounds,
    peer: SocketAddr,
    /// Released (one more connection may be accepted) when the connection ends.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, stream: TcpStream, shutdown: rocket::Shutdown) {
        // Rocket's server does the same: responses are written whole, and small.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            stream,
            activity: activity.clone(),
        });
        let Connection {
            client,
            http,
            bounds,
            peer,
            _permit,
        } = self;
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |request| {
            let client = client.clone();
            let busy = requests.busy();
            async move {
                let response = respond(&client, peer, request, bounds).await;
                drop(busy);
                Ok::<_, Infallible>(response)
            }
        });
        let connection = http.serve_connection(io, service);
        tokio::pin!(connection);
        let result = tokio::select! {
            biased;
            () = shutdown => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
            () = idle(&activity, bounds.keep_alive) => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
            result = &mut connection => result,
        };
        // Timeouts and clients that leave are routine here: not worth a warning each.
        if let Err(e) = result {
            rocket::debug!("connection from {peer} closed: {e}");
        }
    }
}

/// Resolves once the connection has had no request in flight and no traffic for `keep_alive`;
/// never without keep-alive (hyper then closes after the one request).
async fn idle(activity: &Activity, keep_alive: Option<Duration>) {
    let Some(limit) = keep_alive else {
        return std::future::pending().await;
    };
    loop {
        let wait = match activity.idle_for() {
            Some(idle) if idle >= limit => return,
            Some(idle) => limit - idle,
            None => limit,
        };
        tokio::time::sleep(wait).await;
    }
}

/// One request: its body read within the bounds, then dispatched into Rocket.
async fn respond(
    client: &Client,
    peer: SocketAddr,
    request: hyper::Request<Incoming>,
    bounds: Bounds,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    if declared_length(&parts.headers).is_some_and(|length| length > bounds.max_body) {
        return failure(Status::PayloadTooLarge, None);
    }
    let limit = usize::try_from(bounds.max_body).unwrap_or(usize::MAX);
    let read = Limited::new(body, limit).collect();
    let body = match tokio::time::timeout(bounds.header_read_timeout, read).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            return failure(Status::PayloadTooLarge, None);
        }
        // The client went away or sent a broken chunked body.
        Ok(Err(_)) => return failure(Status::BadRequest, None),
        Err(_) => {
            return failure(
                Status::RequestTimeout,
                Some("the request body did not arrive in time"),
            );
        }
    };
    // Unknown methods and targets without a path are 400 in Rocket's server too.
    let (Ok(method), Some(target)) = (
        parts.method.as_str().parse::<Method>(),
        parts.uri.path_and_query(),
    ) else {
        return failure(Status::BadRequest, None);
    };
    // hyper has checked the target; Rocket's server builds its origin the same way.
    let origin = Origin::new(target.path().to_owned(), target.query().map(str::to_owned));
    // Rocket answers HEAD with GET's headers and length and no body; its local dispatcher drops
    // the length with the body, so the request is dispatched as GET (as Rocket does when no HEAD
    // route matches, and this application has none).
    let head = method == Method::Head;
    let mut local = client
        .req(if head { Method::Get } else { method }, origin)
        .remote(peer)
        .body(body);
    for (name, value) in &parts.headers {
        // Rocket drops header values that are not UTF-8, too.
        let Ok(value) = std::str::from_utf8(value.as_bytes()) else {
            continue;
        };
        if *name == header::COOKIE {
            for pair in value.split(';') {
                if let Ok(cookie) = Cookie::parse_encoded(pair.trim().to_owned()) {
                    local = local.cookie(cookie);
                }
            }
        } else if *name == header::HOST
            && let Ok(host) = Host::parse_owned(value.to_owned())
        {
            local.set_host(host);
        }
        local.add_header(Header::new(name.as_str().to_owned(), value.to_owned()));
    }
    let response = local.dispatch().await;

    let mut answer = hyper::Response::builder().status(response.status().code);
    for header in response.headers().iter() {
        // The body is sent whole: hyper frames it.
        let name = header.name().as_str();
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            continue;
        }
        answer = answer.header(name, header.value());
    }
    let mut body = response.into_bytes().await.unwrap_or_default();
    if head {
        answer = answer.header(header::CONTENT_LENGTH, body.len());
        body.clear();
    }
    answer
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|e| {
            rocket::error!("the application's response cannot be sent: {e}");
            failure(Status::InternalServerError, None)
        })
}

/// `Content-Length` of a request, when it has a valid one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A JSON error answered by the listener itself (the body is not, or not wholly, read: the
/// connection closes after it).
fn failure(status: Status, description: Option<&str>) -> hyper::Response<Full<Bytes>> {
    let mut error = ApiError::for_status(status);
    if let Some(description) = description {
        error.description = description.to_string();
    }
    error_response(&error)
}

/// `error` as the application's catchers answer it, with `Connection: close`.
fn error_response(error: &ApiError) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(error.json())));
    *response.status_mut() = hyper::StatusCode::from_u16(error.status.code)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Some(seconds) = error.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The whole `503` written to a connection over `max_connections`, built once.
fn busy_answer() -> Vec<u8> {
    let mut error = ApiError::new(
        Status::ServiceUnavailable,
        "temporarily_unavailable",
        "too many connections; retry shortly",
    );
    error.retry_after = Some(1);
    let body = error.json();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         cache-control: no-store\r\nretry-after: 1\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// When a connection last moved bytes, and how many of its requests are being answered.
struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: crate::clock::instant(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// How long the connection has been quiet; `None` while a request is being answered.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        Some(self.start.elapsed().saturating_sub(last))
    }

    fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }
}

/// A request being answered; the connection counts as active until it is dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client socket that records when bytes move (for the keep-alive idle timeout).
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_declares_its_length_or_has_none() {
        let mut headers = HeaderMap::new();
        assert_eq!(declared_length(&headers), None);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("16384"));
        assert_eq!(declared_length(&headers), Some(16_384));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("many"));
        assert_eq!(declared_length(&headers), None);
    }

    #[test]
    fn the_busy_answer_is_a_complete_json_503() {
        let answer = String::from_utf8(busy_answer()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "temporarily_unavailable");
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_without_a_request_in_flight() {
        let activity = Arc::new(Activity::new());
        assert!(activity.idle_for().is_some());
        let busy = activity.busy();
        assert_eq!(activity.idle_for(), None);
        drop(busy);
        assert!(activity.idle_for().unwrap() < Duration::from_secs(1));
        // Without keep-alive the idle timer never fires (hyper closes after one request).
        let never = tokio::time::timeout(Duration::from_millis(50), idle(&activity, None));
        assert!(never.await.is_err());
        let soon = tokio::time::timeout(
            Duration::from_secs(5),
            idle(&activity, Some(Duration::from_millis(20))),
        );
        assert!(soon.await.is_ok());
    }
}
