//! Slow and idle clients cannot hold the server: header-read and idle timeouts, a connection cap.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp, spawn_with};

async fn app_with_limits(timeout_secs: u64, max_connections: usize) -> TestApp {
    spawn_with(Backend::Sqlite, |c| {
        c.http.header_read_timeout_secs = timeout_secs;
        c.http.max_connections = max_connections;
    })
    .await
    .unwrap()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the server closes the connection; returns what it sent and how long it took
/// (fails the test after `limit`).
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&seen).into_owned(), started.elapsed()),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {
                panic!("the connection is still open after {limit:?}; it sent {:?}", String::from_utf8_lossy(&seen))
            }
        }
    }
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_dropped() {
    let app = app_with_limits(1, 100).await;
    // Connects and sends nothing.
    let mut silent = connect(&app).await;
    // Sends part of its headers and stalls (slowloris).
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: dermis\r\nX-Slow: ").await.unwrap();
    // A complete request, answered; then the connection stays idle.
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: dermis\r\n\r\n").await.unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    for (name, stream) in [("silent", &mut silent), ("slow", &mut slow), ("idle", &mut idle)] {
        let (_, took) = until_closed(stream, Duration::from_secs(10)).await;
        assert!(took < Duration::from_secs(5), "{name} held for {took:?}");
    }
    // The server still answers.
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    // Idle connections live 5 s: closed "at once" is told from closed by that timeout with room
    // to spare for a loaded machine.
    let app = app_with_limits(5, 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&app).await);
    }
    // Give the server a moment to accept them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = connect(&app).await;
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: dermis\r\n\r\n").await;
    let (sent, took) = until_closed(&mut extra, Duration::from_secs(10)).await;
    assert!(sent.is_empty() && took < Duration::from_secs(3), "over the cap: {sent:?} after {took:?}");
    // Once the idle ones time out, there is room again.
    for mut h in held {
        until_closed(&mut h, Duration::from_secs(10)).await;
    }
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(app.url("/healthz")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no room after the held connections closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
