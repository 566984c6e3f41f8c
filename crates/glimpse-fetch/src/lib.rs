//! Fetches images named by http(s) URL (`fileData.fileUri`, Interactions `uri`).
//!
//! A server that fetches URLs for its callers must not become their way into its own network. Every address
//! a request would connect to is checked after DNS resolution (a custom resolver drops forbidden addresses)
//! and every redirect target with a literal IP is checked by the redirect policy, so neither a DNS name
//! pointing at 127.0.0.1 nor a redirect to 169.254.169.254 gets through. Loopback, private, link-local,
//! carrier-grade NAT, multicast, unspecified and documentation ranges are refused, and so is every IPv6 form
//! that embeds such an IPv4 address, unless an allow-list (CIDRs) admits them.
//!
//! Proxy variables in the environment are ignored; an explicit `--fetch-proxy` is used only for addresses
//! Glimpse resolved and checked itself ([`proxy`]).

mod guard;
mod proxy;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use glimpse_core::GlimpseError;
use ipnet::IpNet;
use reqwest::header::HeaderMap;
use reqwest::redirect;

pub use guard::AddressPolicy;
use proxy::ProxyRoute;

#[derive(Debug, Clone)]
pub struct FetchConfig {
    pub max_bytes: u64,
    pub timeout: Duration,
    pub max_redirects: usize,
    /// Networks admitted despite the SSRF guard (e.g. `127.0.0.0/8` for a local image server).
    pub allow: Vec<IpNet>,
    /// An http:// forward proxy to fetch through (`--fetch-proxy`). `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY`
    /// in the environment are never used: a proxy resolves names out of the guard's sight.
    pub proxy: Option<String>,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            max_bytes: 20 * 1024 * 1024,
            timeout: Duration::from_secs(20),
            max_redirects: 5,
            allow: Vec::new(),
            proxy: None,
        }
    }
}

pub struct Fetched {
    pub bytes: Vec<u8>,
    /// The response's `Content-Type`, if any.
    pub content_type: Option<String>,
}

/// One HTTP answer, whichever way it came.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>,
}

/// How requests leave this server.
enum Route {
    /// Straight to the origin: names resolve through [`guard::GuardedResolver`], which drops forbidden addresses.
    Direct(reqwest::Client),
    /// Through `--fetch-proxy`, tunnelled to an address checked beforehand.
    Proxy(ProxyRoute),
}

pub struct Fetcher {
    route: Route,
    policy: Arc<AddressPolicy>,
    config: FetchConfig,
}

const USER_AGENT: &str = concat!("glimpse/", env!("CARGO_PKG_VERSION"));

fn refused(url: &str, why: impl std::fmt::Display) -> GlimpseError {
    GlimpseError::invalid(format!("Cannot fetch {url}: {why}"))
}

impl Fetcher {
    pub fn new(config: FetchConfig) -> Result<Fetcher, GlimpseError> {
        let policy = Arc::new(AddressPolicy::new(config.allow.clone()));
        let connect_timeout = Duration::from_secs(10).min(config.timeout);
        let route = match &config.proxy {
            Some(proxy) => Route::Proxy(ProxyRoute::new(proxy, connect_timeout).map_err(GlimpseError::invalid)?),
            None => Route::Direct(
                reqwest::Client::builder()
                    .no_proxy()
                    // Redirects are followed by `fetch`, which checks every hop the same way as the first.
                    .redirect(redirect::Policy::none())
                    .dns_resolver(Arc::new(guard::GuardedResolver::new(policy.clone())))
                    .connect_timeout(connect_timeout)
                    .user_agent(USER_AGENT)
                    .build()
                    .map_err(|e| GlimpseError::Engine(format!("building the HTTP client: {e}")))?,
            ),
        };
        Ok(Fetcher { route, policy, config })
    }

    /// Fetches an image, following at most `max_redirects` redirects; every hop's address is checked.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, GlimpseError> {
        tokio::time::timeout(self.config.timeout, self.fetch_unbounded(url))
            .await
            .unwrap_or_else(|_| Err(refused(url, format!("timed out after {} s", self.config.timeout.as_secs()))))
    }

    async fn fetch_unbounded(&self, url: &str) -> Result<Fetched, GlimpseError> {
        let mut current = url::Url::parse(url).map_err(|e| refused(url, e))?;
        let mut redirects = 0;
        let answer = loop {
            if !matches!(current.scheme(), "http" | "https") {
                return Err(refused(url, format!("only http and https URLs are supported ({current})")));
            }
            self.policy.check_url(&current).map_err(|why| refused(url, why))?;
            let answer = self.get(&current).await.map_err(|why| refused(url, why))?;
            if !(300..400).contains(&answer.status) || answer.status == 304 {
                break answer;
            }
            let location = answer.headers.get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
            let Some(location) = location else { break answer };
            redirects += 1;
            if redirects > self.config.max_redirects {
                return Err(refused(url, format!("more than {} redirects", self.config.max_redirects)));
            }
            current = current.join(location).map_err(|e| refused(url, format!("bad redirect to {location}: {e}")))?;
        };
        if !(200..300).contains(&answer.status) {
            return Err(refused(url, format!("the server answered HTTP {}", answer.status)));
        }
        let max = self.config.max_bytes;
        let too_large = || refused(url, format!("the image is larger than {max} bytes"));
        let length = answer.headers.get(reqwest::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if length.is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let content_type =
            answer.headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut bytes = Vec::new();
        let mut body = answer.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| refused(url, e))?;
            if bytes.len() as u64 + chunk.len() as u64 > max {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched { bytes, content_type })
    }

    /// One GET, no redirects followed.
    async fn get(&self, url: &url::Url) -> Result<Answer, String> {
        match &self.route {
            Route::Direct(client) => {
                let response = client.get(url.clone()).send().await.map_err(|e| describe(&e))?;
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                let body = response.bytes_stream().map(|chunk| chunk.map_err(|e| describe(&e)));
                Ok(Answer { status, headers, body: Box::pin(body) })
            }
            Route::Proxy(proxy) => proxy.get(url, &self.policy, USER_AGENT).await,
        }
    }
}

/// reqwest's top-level message hides the cause ("error sending request"); the guard's refusal is in the chain.
fn describe(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    if e.is_timeout() {
        message = format!("timed out ({message})");
    }
    message
}
