//! HTTP plumbing shared by the PingOne and AIC clients: one connection pool on the one
//! TLS/crypto stack (rustls on ring, as kube uses), base-URL checks, `Retry-After` parsing and
//! the backoff schedule for transient failures.

use std::sync::Once;
use std::time::Duration;

use http::HeaderMap;
use url::Url;

/// Why a base URL cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BaseUrlError {
    /// The text is not a URL.
    #[error("{url:?} is not a valid URL: {reason}")]
    Invalid {
        /// The URL as given.
        url: String,
        /// What the parser said.
        reason: String,
    },
    /// Plain http to a host other than a loopback address.
    #[error("{url:?} uses plain http; only https is allowed, except for loopback addresses")]
    InsecureScheme {
        /// The URL as given.
        url: String,
    },
    /// A scheme other than http(s), or user info, query or fragment in a base URL.
    #[error("{url:?} is not a base URL: {reason}")]
    NotABaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Parses a base URL and refuses plain `http://` unless the host is a loopback address (where
/// the simulators listen). The result has no trailing slash in its path.
pub fn parse_base_url(text: &str) -> Result<Url, BaseUrlError> {
    let mut url = Url::parse(text).map_err(|err| BaseUrlError::Invalid {
        url: text.to_owned(),
        reason: err.to_string(),
    })?;
    let not_base = |reason| BaseUrlError::NotABaseUrl {
        url: text.to_owned(),
        reason,
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(not_base("user info is not allowed"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(not_base("query and fragment are not allowed"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(BaseUrlError::InsecureScheme {
                url: text.to_owned(),
            });
        }
        _ => return Err(not_base("the scheme must be https")),
    }
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

/// Whether the URL's host is a loopback address (`127.0.0.0/8`, `::1` or `localhost`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Joins a base URL and a path made of segments already percent-encoded where needed.
pub fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url
}

/// Installs ring as the process's rustls crypto provider, once. kube uses ring too, so the
/// process carries a single crypto stack.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only when a provider is already installed, which is what we want anyway.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Builds the HTTP client for a SaaS API: one pool, bounded timeouts, no redirects (an API
/// that redirects is misconfigured, and following it could send credentials elsewhere).
pub fn client(user_agent: &str) -> reqwest::Result<reqwest::Client> {
    builder(user_agent).build()
}

/// How long a connection to one AIC tenant stays open unused: the calls of one reconcile of a
/// tenant, and the reconciles its own status changes cause, follow each other within it.
const TENANT_IDLE: Duration = Duration::from_secs(2);

/// The HTTP client for AIC, where every tenant is a host of its own: at most one idle
/// connection per tenant, closed after two seconds unused. A connection costs tens of KiB of
/// buffers (more with TLS), so keeping one open to each of thousands of tenants would cost the
/// operator more memory than everything it knows of them (it did: 60 % of its heap at 1,500
/// tenants); opening one again for a tenant's next reconcile costs a handshake.
pub fn tenant_client(user_agent: &str) -> reqwest::Result<reqwest::Client> {
    builder(user_agent)
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(TENANT_IDLE)
        .build()
}

fn builder(user_agent: &str) -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
}

/// Reads `Retry-After` as seconds or as an HTTP date, relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = date.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// Exponential backoff with full jitter, capped; attempt numbers start at 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay bound of the first retry.
    pub base: Duration,
    /// Largest delay bound.
    pub cap: Duration,
    /// Retries after the first attempt before giving up.
    pub max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(30),
            max_retries: 5,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based), or `None` when retries are used up.
    /// A server's `Retry-After` wins when it asks for longer than the jittered delay.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_retries {
            return None;
        }
        let bound = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.cap);
        let jittered = bound.mul_f64(fastrand::f64());
        Some(retry_after.map_or(jittered, |server| server.max(jittered)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_loopback_http_are_accepted() {
        assert_eq!(
            parse_base_url("https://api.pingone.eu/v1/")
                .unwrap()
                .as_str(),
            "https://api.pingone.eu/v1"
        );
        assert!(parse_base_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_base_url("http://[::1]:8080/x").is_ok());
        assert!(parse_base_url("http://localhost:1").is_ok());
    }

    #[test]
    fn plain_http_elsewhere_and_odd_urls_are_refused() {
        assert!(matches!(
            parse_base_url("http://api.pingone.com/v1"),
            Err(BaseUrlError::InsecureScheme { .. })
        ));
        assert!(matches!(
            parse_base_url("http://10.0.0.1"),
            Err(BaseUrlError::InsecureScheme { .. })
        ));
        assert!(matches!(
            parse_base_url("ftp://example.com"),
            Err(BaseUrlError::NotABaseUrl { .. })
        ));
        assert!(matches!(
            parse_base_url("https://user:pw@example.com"),
            Err(BaseUrlError::NotABaseUrl { .. })
        ));
        assert!(matches!(
            parse_base_url("not a url"),
            Err(BaseUrlError::Invalid { .. })
        ));
    }

    #[test]
    fn join_keeps_the_base_path() {
        let base = parse_base_url("https://api.pingone.com/v1").unwrap();
        assert_eq!(
            join(&base, "/environments/abc").as_str(),
            "https://api.pingone.com/v1/environments/abc"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(
            http::header::RETRY_AFTER,
            "Thu, 01 Jan 2026 00:00:30 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        headers.insert(
            http::header::RETRY_AFTER,
            "Wed, 31 Dec 2025 23:00:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(http::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(400),
            max_retries: 4,
        };
        for attempt in 0..4 {
            let bound = Duration::from_millis(100 * 2u64.pow(attempt)).min(backoff.cap);
            let delay = backoff.delay(attempt, None).unwrap();
            assert!(delay <= bound, "attempt {attempt}: {delay:?} > {bound:?}");
        }
        assert_eq!(backoff.delay(4, None), None);
        let server = Duration::from_secs(5);
        assert_eq!(backoff.delay(0, Some(server)), Some(server));
    }
}
