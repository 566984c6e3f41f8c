//! Fetches images named by http(s) URL (`fileData.fileUri`, Interactions `uri`).
//!
//! A server that fetches URLs for its callers must not become their way into its own network. Every address
//! a request would connect to is checked after DNS resolution (a custom resolver drops forbidden addresses)
//! and every redirect target with a literal IP is checked by the redirect policy, so neither a DNS name
//! pointing at 127.0.0.1 nor a redirect to 169.254.169.254 gets through. Loopback, private, link-local,
//! carrier-grade NAT, multicast, unspecified and documentation ranges are refused unless an allow-list
//! (CIDRs) admits them.

mod guard;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use glimpse_core::GlimpseError;
use ipnet::IpNet;
use reqwest::redirect;

pub use guard::AddressPolicy;

#[derive(Debug, Clone)]
pub struct FetchConfig {
    pub max_bytes: u64,
    pub timeout: Duration,
    pub max_redirects: usize,
    /// Networks admitted despite the SSRF guard (e.g. `127.0.0.0/8` for a local image server).
    pub allow: Vec<IpNet>,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig { max_bytes: 20 * 1024 * 1024, timeout: Duration::from_secs(20), max_redirects: 5, allow: Vec::new() }
    }
}

pub struct Fetched {
    pub bytes: Vec<u8>,
    /// The response's `Content-Type`, if any.
    pub content_type: Option<String>,
}

pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    config: FetchConfig,
}

fn refused(url: &str, why: impl std::fmt::Display) -> GlimpseError {
    GlimpseError::invalid(format!("Cannot fetch {url}: {why}"))
}

impl Fetcher {
    pub fn new(config: FetchConfig) -> Result<Fetcher, GlimpseError> {
        let policy = Arc::new(AddressPolicy::new(config.allow.clone()));
        let redirect_policy = {
            let policy = policy.clone();
            let max = config.max_redirects;
            redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > max {
                    return attempt.error(format!("more than {max} redirects"));
                }
                match policy.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(why) => attempt.error(why),
                }
            })
        };
        let client = reqwest::Client::builder()
            .redirect(redirect_policy)
            .dns_resolver(Arc::new(guard::GuardedResolver::new(policy.clone())))
            .connect_timeout(Duration::from_secs(10).min(config.timeout))
            .timeout(config.timeout)
            .user_agent(concat!("glimpse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GlimpseError::Engine(format!("building the HTTP client: {e}")))?;
        Ok(Fetcher { client, policy, config })
    }

    pub async fn fetch(&self, url: &str) -> Result<Fetched, GlimpseError> {
        let parsed = url::Url::parse(url).map_err(|e| refused(url, e))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(refused(url, "only http and https URLs are supported"));
        }
        self.policy.check_url(&parsed).map_err(|why| refused(url, why))?;
        let response = self.client.get(parsed).send().await.map_err(|e| refused(url, describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(refused(url, format!("the server answered HTTP {}", status.as_u16())));
        }
        let max = self.config.max_bytes;
        if response.content_length().is_some_and(|n| n > max) {
            return Err(refused(url, format!("the image is larger than {max} bytes")));
        }
        let content_type =
            response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut bytes = Vec::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| refused(url, describe(&e)))?;
            if bytes.len() as u64 + chunk.len() as u64 > max {
                return Err(refused(url, format!("the image is larger than {max} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched { bytes, content_type })
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
