//! Proxies and the SSRF guard, over real sockets on loopback. This file is its own test binary because it sets
//! proxy variables in the process environment.
//!
//! - Proxy variables in the environment are never used: a canary listener standing in for the proxy gets no
//!   connection, whatever the URL (a name for 127.0.0.1, a name that does not resolve, an allowed address).
//! - With an explicit proxy, names are resolved and checked by Glimpse first, and the tunnel is opened to the
//!   checked address (the proxy's `CONNECT` names an IP, never the host name), with `Host: name` inside.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use glimpse_fetch::{FetchConfig, Fetcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An origin: `/img` answers 5 bytes, `/host` the request's Host header, `/redirect` a redirect to the cloud
/// metadata address.
async fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let request = read_head(&mut sock).await;
                let host = request.lines().find_map(|l| l.strip_prefix("host: ").or_else(|| l.strip_prefix("Host: ")));
                let body = if request.starts_with("GET /host") { host.unwrap_or("-").to_string() } else { "hello".into() };
                let reply = if request.starts_with("GET /redirect") {
                    "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

async fn read_head(sock: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match sock.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A forward proxy that records every request line it gets. For `CONNECT` it answers 200 and relays to
/// `origin` (whatever the target: the test checks the target it was asked for, not the proxy's routing).
async fn proxy(origin: Option<SocketAddr>) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            let log = log.clone();
            tokio::spawn(async move {
                let head = read_head(&mut client).await;
                log.lock().unwrap().push(head.lines().next().unwrap_or_default().to_string());
                let Some(origin) = origin.filter(|_| head.starts_with("CONNECT ")) else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n").await;
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(origin).await else { return };
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn proxy_variables_in_the_environment_are_never_used() {
    let (canary, seen) = proxy(None).await;
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        std::env::set_var(var, format!("http://{canary}"));
    }
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("no_proxy");
    let origin = origin().await;

    let guarded = Fetcher::new(FetchConfig::default()).unwrap();
    for url in [
        format!("http://localhost:{}/img", origin.port()),
        "http://glimpse-no-such-host.invalid/img".to_string(),
        "https://glimpse-no-such-host.invalid/img".to_string(),
    ] {
        assert!(guarded.fetch(&url).await.is_err(), "{url} must be refused");
    }
    let allowed = Fetcher::new(FetchConfig { allow: vec!["127.0.0.0/8".parse().unwrap()], ..Default::default() }).unwrap();
    let got = allowed.fetch(&format!("http://127.0.0.1:{}/img", origin.port())).await.unwrap();
    assert_eq!(got.bytes, b"hello");
    assert!(seen.lock().unwrap().is_empty(), "the environment's proxy was used: {:?}", seen.lock().unwrap());
}

#[tokio::test]
async fn an_explicit_proxy_gets_only_checked_addresses() {
    let origin = origin().await;
    let (proxy_addr, seen) = proxy(Some(origin)).await;
    let proxy_url = Some(format!("http://{proxy_addr}"));

    let guarded = Fetcher::new(FetchConfig { proxy: proxy_url.clone(), ..Default::default() }).unwrap();
    let refusals = [
        (format!("http://localhost:{}/img", origin.port()), "not publicly routable"),
        ("http://glimpse-no-such-host.invalid/img".to_string(), "could not be resolved"),
        ("https://glimpse-no-such-host.invalid/img".to_string(), "could not be resolved"),
        ("http://[::ffff:127.0.0.1]/img".to_string(), "not publicly routable"),
        ("http://[::127.0.0.1]/img".to_string(), "not publicly routable"),
        ("http://[2002:7f00:1::1]/img".to_string(), "not publicly routable"),
    ];
    for (url, why) in refusals {
        let err = guarded.fetch(&url).await.err().unwrap_or_else(|| panic!("{url} must be refused"));
        assert!(err.to_string().contains(why), "{url}: {err}");
    }
    assert!(seen.lock().unwrap().is_empty(), "refused URLs reached the proxy: {:?}", seen.lock().unwrap());

    // Admitted: the tunnel goes to the address Glimpse resolved, and the origin still sees its name.
    let allowed = Fetcher::new(FetchConfig {
        proxy: proxy_url.clone(),
        allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        // The https case below waits on an origin that speaks no TLS.
        timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap();
    let got = allowed.fetch(&format!("http://localhost:{}/img", origin.port())).await.unwrap();
    assert_eq!(got.bytes, b"hello");
    let connects = seen.lock().unwrap().clone();
    let expected = [format!("CONNECT 127.0.0.1:{} HTTP/1.1", origin.port()), format!("CONNECT [::1]:{} HTTP/1.1", origin.port())];
    assert_eq!(connects.len(), 1, "{connects:?}");
    assert!(expected.contains(&connects[0]), "the proxy was asked for {:?}, not a checked address", connects[0]);

    // https is tunnelled to the checked address too (the origin speaks no TLS, so the handshake then fails).
    seen.lock().unwrap().clear();
    assert!(allowed.fetch(&format!("https://localhost:{}/img", origin.port())).await.is_err());
    let connects = seen.lock().unwrap().clone();
    assert!(connects.len() == 1 && expected.contains(&connects[0]), "{connects:?}");

    // Every redirect hop is checked: the origin's redirect to 169.254.169.254 never reaches the proxy.
    seen.lock().unwrap().clear();
    let err = allowed.fetch(&format!("http://127.0.0.1:{}/redirect", origin.port())).await.err().expect("refused");
    assert!(err.to_string().contains("169.254.169.254"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 1, "only the first hop may reach the proxy");
}

#[tokio::test]
async fn the_origin_sees_the_name_it_was_asked_for() {
    let origin = origin().await;
    let (proxy_addr, _) = proxy(Some(origin)).await;
    let fetcher = Fetcher::new(FetchConfig {
        proxy: Some(format!("http://{proxy_addr}")),
        allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        ..Default::default()
    })
    .unwrap();
    let got = fetcher.fetch(&format!("http://localhost:{}/host?size=1", origin.port())).await.unwrap();
    assert_eq!(got.content_type.as_deref(), Some("image/png"));
    assert_eq!(String::from_utf8_lossy(&got.bytes), format!("localhost:{}", origin.port()));
}
