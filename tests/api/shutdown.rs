//! Graceful shutdown of the real binary (issue 13 §5): on SIGTERM the issuer stops accepting
//! connections, finishes the request in flight within `shutdown.grace` seconds, and exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::interop::{Issuer, PASSWORD};

#[test]
fn sigterm_finishes_the_request_in_flight_serves_no_new_one_and_exits_0() {
    let mut issuer = Issuer::new("ES256");
    issuer.add_user("ann");
    issuer.serve();
    issuer.wait_ready();
    let port = issuer.port;
    // The start-up summary names where it listens, the issuer, its state and its key.
    let summary = issuer.stderr();
    for line in [
        format!("listening on  http://127.0.0.1:{port}"),
        format!("issuer        http://127.0.0.1:{port}"),
        "database      sqlite://".to_string(),
        "key store     file key store at".to_string(),
        "signing with  ES256, kid ".to_string(),
    ] {
        assert!(summary.contains(&line), "{line:?} not in {summary}");
    }
    assert!(!summary.contains("warning"), "{summary}");

    // A login whose body is still arriving when the signal comes: it is in flight.
    let body = format!(
        "grant_type=password&username=ann&password={}",
        PASSWORD.replace(' ', "+")
    );
    let (head, tail) = body.split_at(body.len() - 4);
    let mut in_flight = TcpStream::connect(("127.0.0.1", port)).unwrap();
    in_flight
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        in_flight,
        "POST /oauth/token HTTP/1.0\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{head}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let pid = issuer.child.as_ref().unwrap().id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(300));

    // No new request is served once the shutdown has begun: the connection is refused, or
    // accepted by the kernel's backlog and never answered.
    if let Ok(mut late) = TcpStream::connect(("127.0.0.1", port)) {
        late.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = late.write_all(b"GET /health/live HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        let mut answer = String::new();
        let _ = late.read_to_string(&mut answer);
        assert!(
            !answer.starts_with("HTTP/1.0 200") && !answer.starts_with("HTTP/1.1 200"),
            "a request after SIGTERM was served: {answer:?}"
        );
    }

    // The request in flight completes.
    in_flight.write_all(tail.as_bytes()).unwrap();
    let mut response = String::new();
    in_flight.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.contains("\"access_token\""), "{response}");

    // And the process exits 0 within grace + mercy (Rocket.toml: 5 + 2 s).
    let child = issuer.child.as_mut().unwrap();
    let deadline = stamp::clock::instant() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stamp::clock::instant() < deadline,
            "still running 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status}");
    issuer.child = None;
}
