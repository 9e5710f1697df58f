//! Slow and idle clients against the real binary (issue 14 §5): a request head that dribbles in
//! is cut off after `header_read_timeout`, idle keep-alive connections close after `keep_alive`,
//! connections beyond `max_connections` are refused while the others hold, and ordinary traffic
//! is served as before. Every loop is bounded by a count and a deadline; loopback only.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::helpers::{ServedStamp, wire_exchange};

/// What the server did to a connection that was waiting for it.
#[derive(Debug, PartialEq)]
enum Seen {
    /// Nothing yet.
    Open,
    /// Closed (EOF or reset), possibly after an answer such as `408`: the text read, if any.
    Closed(String),
}

/// Reads what is there without blocking for long: `Closed` once the server has closed.
fn look(stream: &mut TcpStream, wait: Duration) -> Seen {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Seen::Closed(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                assert!(
                    got.is_empty(),
                    "an answer without a close: {:?}",
                    String::from_utf8_lossy(&got)
                );
                return Seen::Open;
            }
            Err(_) => return Seen::Closed(String::from_utf8_lossy(&got).into_owned()),
        }
    }
}

/// The part of a request head a slow client sends a byte at a time (never complete).
const ENDLESS_HEAD: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: \
    aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn served(settings: &[(&str, &str)]) -> ServedStamp {
    ServedStamp::start(|cmd| {
        cmd.envs(settings.iter().copied());
    })
}

fn elapsed_since(start: Instant) -> Duration {
    stamp::clock::instant().saturating_duration_since(start)
}

/// A complete HTTP/1.1 keep-alive exchange on `stream`: the status and the body (read by its
/// `Content-Length`).
fn keep_alive_get(stream: &mut TcpStream, path: &str) -> (u16, String) {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..1_000 {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                let body = String::from_utf8_lossy(&got[end + 4..end + 4 + length]).into_owned();
                return (status, body);
            }
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed mid-answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    panic!("no complete answer");
}

#[test]
fn a_head_dribbled_a_byte_every_half_second_is_cut_off_after_the_header_read_timeout() {
    let server = served(&[("ROCKET_HEADER_READ_TIMEOUT", "2")]);
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let start = stamp::clock::instant();
    let mut seen = Seen::Open;
    for byte in ENDLESS_HEAD {
        if slow.write_all(&[*byte]).is_err() {
            seen = Seen::Closed(String::new());
            break;
        }
        seen = look(&mut slow, Duration::from_millis(500));
        if seen != Seen::Open {
            break;
        }
    }
    let after = elapsed_since(start);
    let Seen::Closed(answer) = seen else {
        panic!("still open after {after:?} of dribbling");
    };
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert!(
        after >= Duration::from_millis(1_500) && after < Duration::from_secs(6),
        "closed after {after:?}, header_read_timeout is 2 s"
    );
    // The server itself is fine.
    assert_eq!(
        server.exchange("GET /health/live HTTP/1.0\r\n", "").status,
        200
    );
}

#[test]
fn three_hundred_dribbling_clients_neither_block_a_normal_request_nor_stay_open() {
    let server = served(&[("ROCKET_HEADER_READ_TIMEOUT", "2")]);
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    let opened = stamp::clock::instant();
    let mut open = vec![true; slow.len()];
    let mut served_in = None;
    for (round, byte) in ENDLESS_HEAD.iter().enumerate() {
        for (stream, open) in slow.iter_mut().zip(open.iter_mut()) {
            if *open
                && (stream.write_all(&[*byte]).is_err()
                    || look(stream, Duration::from_millis(1)) != Seen::Open)
            {
                *open = false;
            }
        }
        if round == 1 {
            // A normal client, while all 300 are dribbling.
            let start = stamp::clock::instant();
            let answer = wire_exchange(server.port, "GET /health/live HTTP/1.0\r\n", b"").unwrap();
            assert_eq!(answer.status, 200);
            served_in = Some(elapsed_since(start));
        }
        if !open.contains(&true) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let all_closed_after = elapsed_since(opened);
    let still_open = open.iter().filter(|o| **o).count();
    assert_eq!(
        still_open, 0,
        "{still_open} of 300 still open after {all_closed_after:?}"
    );
    assert!(
        all_closed_after < Duration::from_secs(10),
        "the last closed after {all_closed_after:?}"
    );
    let served_in = served_in.unwrap();
    assert!(
        served_in < Duration::from_secs(3),
        "served after {served_in:?}"
    );
}

#[test]
fn connections_over_max_connections_are_refused_while_the_others_hold_and_served_after() {
    let server = served(&[
        ("ROCKET_MAX_CONNECTIONS", "50"),
        ("ROCKET_HEADER_READ_TIMEOUT", "10"),
        ("ROCKET_KEEP_ALIVE", "30"),
    ]);
    // The start-up probes' connections are closed: give the server a moment to see it.
    std::thread::sleep(Duration::from_millis(300));
    // 50 keep-alive connections, each proven accepted by an answer, stay open.
    let mut held: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            assert_eq!(keep_alive_get(&mut stream, "/health/live").0, 200);
            stream
        })
        .collect();
    for _ in 0..3 {
        let answer = wire_exchange(server.port, "GET /health/live HTTP/1.0\r\n", b"");
        match answer {
            Ok(answer) => {
                assert_eq!(answer.status, 503, "{}", answer.head);
                assert!(answer.head.to_lowercase().contains("retry-after: 1"));
                assert!(
                    answer.body.contains("temporarily_unavailable"),
                    "{}",
                    answer.body
                );
            }
            // Refused before the request was read: a reset is as good as a 503.
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
                "{e}"
            ),
        }
    }
    // The held connections still work.
    assert_eq!(keep_alive_get(&mut held[0], "/health/live").0, 200);
    held.clear();
    // Once they close, new connections are served again.
    let deadline = stamp::clock::instant() + Duration::from_secs(10);
    loop {
        if let Ok(answer) = wire_exchange(server.port, "GET /health/live HTTP/1.0\r\n", b"")
            && answer.status == 200
        {
            break;
        }
        assert!(
            stamp::clock::instant() < deadline,
            "not served 10 s after the close"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_keep_alive_and_a_silent_one_too() {
    let server = served(&[
        ("ROCKET_KEEP_ALIVE", "1"),
        ("ROCKET_HEADER_READ_TIMEOUT", "20"),
    ]);
    let mut idle = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    assert_eq!(keep_alive_get(&mut idle, "/health/live").0, 200);
    let start = stamp::clock::instant();
    let seen = look(&mut idle, Duration::from_secs(15));
    let after = elapsed_since(start);
    assert_eq!(seen, Seen::Closed(String::new()));
    assert!(
        after >= Duration::from_millis(700) && after < Duration::from_secs(5),
        "closed after {after:?}, keep_alive is 1 s"
    );

    // A connection that never sends a byte is idle from the start.
    let mut silent = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let start = stamp::clock::instant();
    assert_eq!(
        look(&mut silent, Duration::from_secs(15)),
        Seen::Closed(String::new())
    );
    assert!(elapsed_since(start) < Duration::from_secs(5));
}

#[test]
fn ordinary_traffic_is_served_as_before() {
    let server = served(&[]);
    // Keep-alive: three requests on one connection.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    for _ in 0..3 {
        let (status, body) = keep_alive_get(&mut stream, "/.well-known/jwks.json");
        assert_eq!(status, 200);
        assert!(body.contains("\"keys\""), "{body}");
    }
    drop(stream);

    // HEAD: GET's headers and length, no body.
    let get = server.exchange("GET /.well-known/jwks.json HTTP/1.0\r\n", "");
    let head = server.exchange("HEAD /.well-known/jwks.json HTTP/1.0\r\n", "");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "{}", head.body);
    assert!(
        head.head
            .to_lowercase()
            .contains(&format!("content-length: {}", get.body.len())),
        "{}",
        head.head
    );
    assert!(head.head.to_lowercase().contains("cache-control: public"));

    // Bodies up to the limit (16 KiB) get the application's answer; the padding changes nothing.
    let small = server.post_form("/oauth/token", "", "grant_type=nonsense");
    let padded = format!("grant_type=nonsense&pad={}", "x".repeat(15 * 1024));
    let large = server.post_form("/oauth/token", "", &padded);
    assert_eq!(small.status, 400, "{}", small.body);
    assert_eq!((large.status, large.body), (small.status, small.body));

    // Beyond it: 413 with the JSON error, whether the body is sent or only announced.
    let over = format!("grant_type=nonsense&pad={}", "x".repeat(20 * 1024));
    let too_large = server.post_form("/oauth/token", "", &over);
    assert_eq!(too_large.status, 413, "{}", too_large.head);
    assert!(too_large.body.contains("\"error\""), "{}", too_large.body);
    let mut announced = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    announced
        .write_all(
            b"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1073741824\r\n\r\n",
        )
        .unwrap();
    let Seen::Closed(answer) = look(&mut announced, Duration::from_secs(10)) else {
        panic!("no answer to a 1 GiB Content-Length");
    };
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\":\"invalid_request\""), "{answer}");

    // A shut-down request stays possible: the server still answers afterwards.
    assert_eq!(
        server.exchange("GET /health/live HTTP/1.0\r\n", "").status,
        200
    );
}
