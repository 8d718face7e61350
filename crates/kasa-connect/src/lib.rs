//! HTTP clients for the systems Kasa talks to.
//!
//! One module per system, each with its own wire types (serde structs shaped exactly like the
//! remote API) and explicit conversions to Kasa's domain types. Every failure is classified
//! ([`ConnectError`]): whether a retry may succeed, and whether the remote side may have
//! applied the request, which decides if a retry must reuse the idempotency key or a lookup
//! is needed before anything else is done.

pub mod finix;
pub mod fiskaltrust;
pub mod mobilepay;
pub mod settle;
pub mod tokenx;
pub mod transport;

use std::sync::Arc;

pub use transport::{HttpClient, ReqwestTransport, Transport, Url};

/// A secret value (password, client secret, access token): `secrecy`'s string, which prints
/// as `[REDACTED]` in debug output and is zeroed when dropped. Read it with
/// [`ExposeSecret::expose_secret`], only where it is sent.
pub type Secret = secrecy::SecretString;
pub use secrecy::ExposeSecret;

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The request never reached the server (connection refused, name not found). Safe to
    /// treat as not applied.
    #[error("{system} unreachable: {detail}")]
    NotSent {
        /// Which system.
        system: &'static str,
        /// What failed.
        detail: String,
    },
    /// The request may have reached the server but no answer came (timeout, dropped
    /// connection). The outcome is unknown: retry with the same idempotency key or look it up.
    #[error("{system} did not answer: {detail}")]
    NoAnswer {
        /// Which system.
        system: &'static str,
        /// What failed.
        detail: String,
    },
    /// The server answered with an error status.
    #[error("{system} answered {status} {code}: {message}")]
    Status {
        /// Which system.
        system: &'static str,
        /// HTTP status.
        status: u16,
        /// The API's error code.
        code: String,
        /// The API's message.
        message: String,
    },
    /// The answer could not be understood.
    #[error("{system} sent an answer Kasa cannot read: {detail}")]
    BadAnswer {
        /// Which system.
        system: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The configuration is unusable (bad URL, plain HTTP to a remote host).
    #[error("{0}")]
    Config(String),
}

impl ConnectError {
    /// Whether retrying later, with the same idempotency key, may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::NotSent { .. } | ConnectError::NoAnswer { .. } => true,
            ConnectError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            ConnectError::BadAnswer { .. } | ConnectError::Config(_) => false,
        }
    }

    /// Whether the remote side may have applied the request.
    pub fn maybe_applied(&self) -> bool {
        match self {
            ConnectError::NotSent { .. } | ConnectError::Config(_) => false,
            ConnectError::NoAnswer { .. } | ConnectError::BadAnswer { .. } => true,
            // A 5xx may come after partial work; 4xx answers refuse the request.
            ConnectError::Status { status, .. } => *status >= 500,
        }
    }

    /// The API's error code, for answered errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            ConnectError::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, for answered errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ConnectError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// Reads an answer: the body of a success, or a [`ConnectError::Status`] with the API's error
/// code and message as `error` reads them from the body (or the start of the body when it
/// reads nothing).
pub(crate) fn answer(
    system: &'static str,
    resp: transport::Response,
    error: fn(&[u8]) -> Option<(String, String)>,
) -> Result<Vec<u8>, ConnectError> {
    let status = resp.status();
    let bytes = resp.into_body();
    if status.is_success() {
        return Ok(bytes);
    }
    let (code, message) = error(&bytes)
        .unwrap_or_else(|| ("HTTP_ERROR".to_string(), String::from_utf8_lossy(&bytes).chars().take(200).collect()));
    Err(ConnectError::Status { system, status: status.as_u16(), code, message })
}

/// Reads a JSON body.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(system: &'static str, bytes: &[u8]) -> Result<T, ConnectError> {
    serde_json::from_slice(bytes).map_err(|e| ConnectError::BadAnswer { system, detail: e.to_string() })
}

/// Writes a request body.
pub(crate) fn to_json<T: serde::Serialize>(system: &'static str, v: &T) -> Result<serde_json::Value, ConnectError> {
    serde_json::to_value(v).map_err(|e| ConnectError::BadAnswer { system, detail: e.to_string() })
}

/// Parses a base URL, refusing plain HTTP to anything but loopback.
pub fn base_url(text: &str) -> Result<Url, ConnectError> {
    let mut url = Url::parse(text).map_err(|e| ConnectError::Config(format!("'{text}' is not a valid URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(ConnectError::Config(format!(
                "'{text}' uses plain HTTP to a remote host; use https:// (only loopback may use http://)"
            )));
        }
        other => return Err(ConnectError::Config(format!("'{text}': unsupported scheme '{other}'"))),
    }
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// `base` followed by `segments`, each percent-encoded by the `url` crate as exactly one path
/// segment, so an id holding `/`, `?`, `#` or `%` cannot name another resource. An empty, `.` or
/// `..` segment is refused, since it would collapse into a neighbour (`transfers/` is the list,
/// not a transfer).
pub(crate) fn endpoint(system: &'static str, base: &Url, segments: &[&str]) -> Result<Url, ConnectError> {
    let mut url = base.clone();
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|()| ConnectError::Config(format!("{system}: '{base}' cannot carry a path")))?;
        path.pop_if_empty();
        for segment in segments {
            if matches!(*segment, "" | "." | "..") {
                return Err(ConnectError::Config(format!(
                    "{system}: '{segment}' cannot be an id in a URL path; check the id the request was made for"
                )));
            }
            path.push(segment);
        }
    }
    Ok(url)
}

/// [`endpoint`] with the trailing slash some APIs want (`payment_request/{tid}/`).
pub(crate) fn endpoint_dir(system: &'static str, base: &Url, segments: &[&str]) -> Result<Url, ConnectError> {
    let mut url = endpoint(system, base, segments)?;
    if let Ok(mut path) = url.path_segments_mut() {
        path.push("");
    }
    Ok(url)
}

/// The register's HTTP client: reqwest over rustls (see [`ReqwestTransport`]).
pub fn http_client() -> HttpClient {
    HttpClient::new(Arc::new(ReqwestTransport::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(base: &str, segments: &[&str]) -> Result<String, ConnectError> {
        endpoint("Test", &base_url(base).unwrap(), segments).map(|u| u.to_string())
    }

    fn dir(base: &str, segments: &[&str]) -> Result<String, ConnectError> {
        endpoint_dir("Test", &base_url(base).unwrap(), segments).map(|u| u.to_string())
    }

    #[test]
    fn ids_stay_inside_their_segment() {
        assert_eq!(url("https://x.example/api", &["devices", "DV1"]).unwrap(), "https://x.example/api/devices/DV1");
        assert_eq!(
            url("https://x.example/", &["transfers", "a/../b?c=d#e f%"]).unwrap(),
            "https://x.example/transfers/a%2F..%2Fb%3Fc=d%23e%20f%25"
        );
        assert_eq!(
            dir("https://x.example/v1/", &["payment_request", "T1"]).unwrap(),
            "https://x.example/v1/payment_request/T1/"
        );
        for bad in ["..", ".", ""] {
            for segments in [&["transfers", bad, "reversals"][..], &["transfers", bad]] {
                let err = url("https://x.example/", segments).unwrap_err();
                assert!(matches!(err, ConnectError::Config(_)), "{segments:?}: {err}");
                assert!(dir("https://x.example/", segments).is_err(), "{segments:?}");
            }
        }
    }
}
