//! Fetching through an operator's forward proxy (`--fetch-proxy`), pinned to an address Glimpse checked.
//!
//! A proxy given a host name resolves it itself, out of the guard's sight: a name that points at 127.0.0.1,
//! or one that answers a public address to Glimpse and a private one to the proxy a moment later (DNS
//! rebinding), would reach the proxy's network. So Glimpse resolves the name, refuses it unless every address
//! is permitted, and opens an HTTP `CONNECT` tunnel to the checked *address* (hyper-util's `Tunnel`). Inside
//! the tunnel it speaks TLS with the URL's name (SNI and certificate checked against it, webpki roots) for
//! https, and HTTP/1.1 with `Host: name` for both schemes, so virtual hosts see the request they expect. The
//! proxy must therefore allow `CONNECT` to the ports images are fetched from (80 as well as 443 for plain-http
//! URLs).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::http::{header, HeaderValue, Request, Uri};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls;
use tower_service::Service;

use crate::guard::AddressPolicy;
use crate::Answer;

/// A forward proxy and the TLS settings of the connections tunnelled through it.
pub struct ProxyRoute {
    proxy: Uri,
    /// `Proxy-Authorization` for a proxy URL with `user:password@`.
    auth: Option<HeaderValue>,
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
}

impl ProxyRoute {
    pub fn new(proxy_url: &str, connect_timeout: Duration) -> Result<ProxyRoute, String> {
        let parsed = url::Url::parse(proxy_url).map_err(|e| format!("--fetch-proxy {proxy_url}: {e}"))?;
        if parsed.scheme() != "http" {
            return Err(format!("--fetch-proxy {proxy_url}: only http:// proxies (HTTP CONNECT) are supported"));
        }
        let host = parsed.host_str().ok_or_else(|| format!("--fetch-proxy {proxy_url} has no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let proxy: Uri = format!("http://{host}:{port}").parse().map_err(|e| format!("--fetch-proxy {proxy_url}: {e}"))?;
        let auth = (!parsed.username().is_empty()).then(|| {
            let user = percent_decode(parsed.username());
            let password = percent_decode(parsed.password().unwrap_or_default());
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            HeaderValue::from_str(&format!("Basic {token}")).map_err(|e| e.to_string())
        });
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ProxyRoute {
            proxy,
            auth: auth.transpose()?,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            connect_timeout,
        })
    }

    /// GET `url` through the proxy, tunnelled to an address of its host that `policy` permits.
    pub async fn get(&self, url: &url::Url, policy: &AddressPolicy, user_agent: &str) -> Result<Answer, String> {
        let host = url.host_str().ok_or("the URL has no host")?;
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        let address = checked_address(url, port, policy).await?;

        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(self.connect_timeout));
        let mut tunnel = Tunnel::new(self.proxy.clone(), connector);
        if let Some(auth) = &self.auth {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let target: Uri = format!("http://{address}").parse().map_err(|e| format!("{e}"))?;
        futures::future::poll_fn(|cx| tunnel.poll_ready(cx)).await.map_err(|e| format!("the proxy: {e}"))?;
        let tunnelled = tunnel.call(target).await.map_err(|e| format!("the proxy refused a tunnel to {address}: {e}"))?;

        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        let request = Request::get(path)
            .header(header::HOST, authority)
            .header(header::USER_AGENT, user_agent)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        if url.scheme() == "https" {
            let name = rustls::pki_types::ServerName::try_from(url_host_for_tls(url)?)
                .map_err(|e| format!("invalid TLS server name {host}: {e}"))?;
            let tls = self.tls.connect(name, tunnelled.into_inner()).await.map_err(|e| format!("TLS with {host}: {e}"))?;
            send(TokioIo::new(tls), request).await
        } else {
            send(tunnelled, request).await
        }
    }
}

/// The address to tunnel to: the URL's literal IP, or the first address of its name when every address the
/// name resolves to is permitted (the proxy gets no say in which one is used).
async fn checked_address(url: &url::Url, port: u16, policy: &AddressPolicy) -> Result<SocketAddr, String> {
    let addresses: Vec<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(url::Host::Domain(name)) => match tokio::net::lookup_host((name, port)).await {
            Ok(found) => found.map(|a| a.ip()).collect(),
            Err(e) => return Err(format!("{name} could not be resolved ({e}), and a proxy is only used for names Glimpse can check")),
        },
        None => return Err("the URL has no host".into()),
    };
    let first = *addresses.first().ok_or("the host resolves to no address")?;
    if let Some(refused) = addresses.iter().find(|ip| !policy.permits(**ip)) {
        return Err(format!("the host resolves to {refused}, which is not publicly routable; fetching from it is not allowed{}", crate::guard::ADMIT_HINT));
    }
    Ok(SocketAddr::new(first, port))
}

/// The name TLS checks the certificate against: the host without IPv6 brackets.
fn url_host_for_tls(url: &url::Url) -> Result<String, String> {
    Ok(match url.host() {
        Some(url::Host::Domain(name)) => name.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err("the URL has no host".into()),
    })
}

async fn send<T>(io: T, request: Request<Empty<Bytes>>) -> Result<Answer, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(|chunk| chunk.map_err(|e| e.to_string()));
    Ok(Answer { status: parts.status.as_u16(), headers: parts.headers, body: Box::pin(body) })
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}
