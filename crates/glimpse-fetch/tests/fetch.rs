//! Real HTTP against a local server: the guard refuses loopback by default (also through DNS and
//! redirects), and fetches once the allow-list admits it.

use std::net::SocketAddr;

use glimpse_fetch::{FetchConfig, Fetcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A one-route HTTP/1.1 server: `/img` answers 5 bytes, `/redirect` redirects to `to`.
async fn serve(to: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let to = to.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let reply = if req.starts_with("GET /redirect") {
                    format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".into()
                };
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn loopback_is_refused_by_default_and_admitted_by_the_allow_list() {
    let addr = serve("http://169.254.169.254/latest/meta-data".into()).await;
    let guarded = Fetcher::new(FetchConfig::default()).unwrap();
    for url in [format!("http://{addr}/img"), format!("http://localhost:{}/img", addr.port())] {
        let err = guarded.fetch(&url).await.err().expect("must be refused");
        assert!(err.to_string().contains("not publicly routable"), "{err}");
    }

    let allowed = Fetcher::new(FetchConfig { allow: vec!["127.0.0.0/8".parse().unwrap()], ..Default::default() }).unwrap();
    let got = allowed.fetch(&format!("http://{addr}/img")).await.unwrap();
    assert_eq!(got.bytes, b"hello");
    assert_eq!(got.content_type.as_deref(), Some("image/png"));

    // A redirect to the metadata address is refused even when the first hop is allowed.
    let err = allowed.fetch(&format!("http://{addr}/redirect")).await.err().expect("redirect must be refused");
    assert!(err.to_string().contains("169.254.169.254"), "{err}");

    let small = Fetcher::new(FetchConfig { allow: vec!["127.0.0.0/8".parse().unwrap()], max_bytes: 4, ..Default::default() }).unwrap();
    assert!(small.fetch(&format!("http://{addr}/img")).await.err().unwrap().to_string().contains("larger than 4 bytes"));
}
