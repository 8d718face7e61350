//! How a request reaches the wire, behind one small interface.
//!
//! Every client builds its requests with [`HttpClient`] and reads the answers it gives back;
//! what carries them is a [`Transport`]. The register uses [`ReqwestTransport`] (rustls, no
//! proxy lookups, no redirects, answers capped at [`MAX_BODY`]); the deterministic simulation
//! plugs in a transport that hands each request to the sandbox in-process, on virtual time.
//! Nothing above this module knows which one it talks through.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
pub use reqwest::{Method, StatusCode, Url};

use crate::ConnectError;

/// The largest answer Kasa reads. No API it calls answers with more; a larger body is refused
/// (and the request treated as possibly applied), so a broken or hostile server can't make the
/// register allocate without bound.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// When a call sets no timeout of its own.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One request as it goes on the wire. Its `Debug` leaves out the query and the body, which
/// may carry credentials (MobilePay's `accessToken`, Token X's `client_secret`); credential
/// headers are marked sensitive and print as such.
pub struct Request {
    /// The method.
    pub method: Method,
    /// The whole URL, query included.
    pub url: Url,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (empty for none).
    pub body: Vec<u8>,
    /// How long to wait for the whole answer.
    pub timeout: Duration,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut url = self.url.clone();
        url.set_query(None);
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &url.as_str())
            .field("headers", &self.headers)
            .field("body_bytes", &self.body.len())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Whether a header carries a credential (`Authorization`, or a name holding `token`, `secret`
/// or `key`, as fiskaltrust's `x-cashbox-accesstoken`).
fn is_credential(name: &HeaderName) -> bool {
    let n = name.as_str();
    *name == AUTHORIZATION || ["token", "secret", "key"].iter().any(|w| n.contains(w))
}

/// An answer as it came off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    status: StatusCode,
    body: Vec<u8>,
}

impl Response {
    /// An answer with this status and body.
    pub fn new(status: StatusCode, body: Vec<u8>) -> Response {
        Response { status, body }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body, taken.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// It never left: no connection could be made. Safe to treat as not applied.
    NotSent(String),
    /// It may have arrived, but no whole answer came back (timeout, connection cut).
    NoAnswer(String),
    /// The answer was larger than [`MAX_BODY`].
    TooLarge,
}

impl TransportError {
    /// The error of a call to `system` that failed this way.
    pub fn into_connect(self, system: &'static str) -> ConnectError {
        match self {
            TransportError::NotSent(detail) => ConnectError::NotSent { system, detail },
            TransportError::NoAnswer(detail) => ConnectError::NoAnswer { system, detail },
            TransportError::TooLarge => ConnectError::BadAnswer {
                system,
                detail: format!("the answer is larger than {} MiB; refused", MAX_BODY / (1024 * 1024)),
            },
        }
    }
}

/// What a transport's `send` returns.
pub type SendFuture = Pin<Box<dyn Future<Output = Result<Response, TransportError>> + Send + 'static>>;

/// Carries requests to their servers.
pub trait Transport: Send + Sync + fmt::Debug {
    /// Sends `request` and waits, at most its timeout, for the whole answer.
    fn send(&self, request: Request) -> SendFuture;
}

/// The production transport: reqwest over rustls.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A transport with Kasa's settings: connect timeout, idle pool timeout, no proxy lookups,
    /// no redirects (no API Kasa calls redirects, and a redirect must never carry credentials
    /// elsewhere).
    pub fn new() -> ReqwestTransport {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("kasa/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        ReqwestTransport { client }
    }
}

impl Default for ReqwestTransport {
    fn default() -> Self {
        ReqwestTransport::new()
    }
}

impl Transport for ReqwestTransport {
    fn send(&self, request: Request) -> SendFuture {
        let req = self
            .client
            .request(request.method, request.url)
            .headers(request.headers)
            .timeout(request.timeout)
            .body(request.body);
        Box::pin(async move {
            let mut resp = req.send().await.map_err(classify)?;
            let status = resp.status();
            if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
                return Err(TransportError::TooLarge);
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(classify)? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(TransportError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Response { status, body })
        })
    }
}

/// Classifies a reqwest failure. The URL's query string is left out of the text, since some
/// APIs carry credentials there.
fn classify(mut e: reqwest::Error) -> TransportError {
    if let Some(url) = e.url_mut() {
        url.set_query(None);
    }
    let detail = crate::error_chain(&e);
    if e.is_connect() { TransportError::NotSent(detail) } else { TransportError::NoAnswer(detail) }
}

/// The clients' handle on a transport. Cheap to clone; clones share the transport (and with
/// reqwest its connection pool).
#[derive(Clone)]
pub struct HttpClient {
    transport: Arc<dyn Transport>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").field("transport", &self.transport).finish()
    }
}

impl HttpClient {
    /// A client sending through `transport`.
    pub fn new(transport: Arc<dyn Transport>) -> HttpClient {
        HttpClient { transport }
    }

    /// Starts a request.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            request: Request { method, url, headers: HeaderMap::new(), body: Vec::new(), timeout: DEFAULT_TIMEOUT },
            error: None,
        }
    }

    /// Starts a GET.
    pub fn get(&self, url: Url) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// Starts a POST.
    pub fn post(&self, url: Url) -> RequestBuilder {
        self.request(Method::POST, url)
    }
}

/// A request being built, in the manner of reqwest's builder.
#[derive(Debug)]
pub struct RequestBuilder {
    client: HttpClient,
    request: Request,
    /// The first thing that went wrong while building, reported by [`RequestBuilder::send`].
    error: Option<String>,
}

impl RequestBuilder {
    /// How long to wait for the whole answer.
    pub fn timeout(mut self, timeout: Duration) -> RequestBuilder {
        self.request.timeout = timeout;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl AsRef<str>) -> RequestBuilder {
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value.as_ref())) {
            (Ok(n), Ok(mut v)) => {
                if is_credential(&n) {
                    v.set_sensitive(true);
                }
                self.request.headers.append(n, v);
            }
            _ => self.fail(format!("header {name} has characters a header can't carry")),
        }
        self
    }

    /// HTTP Basic authentication.
    pub fn basic_auth(self, user: &str, password: &str) -> RequestBuilder {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.authorization(format!("Basic {token}"))
    }

    /// A bearer token.
    pub fn bearer_auth(self, token: &str) -> RequestBuilder {
        self.authorization(format!("Bearer {token}"))
    }

    fn authorization(mut self, value: String) -> RequestBuilder {
        match HeaderValue::from_str(&value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                self.request.headers.insert(AUTHORIZATION, v);
            }
            Err(_) => self.fail("the credentials have characters a header can't carry".into()),
        }
        self
    }

    /// Appends query parameters (encoded by the `url` crate).
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> RequestBuilder {
        if !pairs.is_empty() {
            let mut q = self.request.url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k.as_ref(), v.as_ref());
            }
        }
        self
    }

    /// A JSON body.
    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> RequestBuilder {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.request.body = bytes;
                self.request.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Err(e) => self.fail(format!("the request body could not be written: {e}")),
        }
        self
    }

    /// A form body (`application/x-www-form-urlencoded`).
    pub fn form<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> RequestBuilder {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            form.append_pair(k.as_ref(), v.as_ref());
        }
        self.request.body = form.finish().into_bytes();
        self.request.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        self
    }

    fn fail(&mut self, why: String) {
        self.error.get_or_insert(why);
    }

    /// Sends it; an error names `system`.
    pub async fn send(self, system: &'static str) -> Result<Response, ConnectError> {
        if let Some(why) = self.error {
            return Err(ConnectError::Config(format!("{system}: {why}")));
        }
        self.client.transport.send(self.request).await.map_err(|e| e.into_connect(system))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Echo;

    impl Transport for Echo {
        fn send(&self, r: Request) -> SendFuture {
            let headers: Vec<String> =
                r.headers.iter().map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?"))).collect();
            let text = format!("{} {}\n{}\n{}", r.method, r.url, headers.join("\n"), String::from_utf8_lossy(&r.body));
            Box::pin(async move { Ok(Response::new(StatusCode::OK, text.into_bytes())) })
        }
    }

    fn client() -> HttpClient {
        HttpClient::new(Arc::new(Echo))
    }

    #[tokio::test]
    async fn builds_the_request_the_server_reads() {
        let url = Url::parse("http://127.0.0.1:1/v1/orders/a b").unwrap();
        let r = client()
            .post(url)
            .query(&[("terminalId", "VT 1&2")])
            .basic_auth("user", "pass")
            .header("finix-version", "2022-02-01")
            .json(&serde_json::json!({"amount": 100}))
            .send("test")
            .await
            .unwrap();
        let text = String::from_utf8(r.into_body()).unwrap();
        assert_eq!(
            text,
            "POST http://127.0.0.1:1/v1/orders/a%20b?terminalId=VT+1%262\n\
             authorization: Basic dXNlcjpwYXNz\nfinix-version: 2022-02-01\ncontent-type: application/json\n\
             {\"amount\":100}"
        );
        let form = client().post(Url::parse("http://127.0.0.1:1/t").unwrap()).form(&[("a", "x y"), ("b", "=")]);
        let text = String::from_utf8(form.send("test").await.unwrap().into_body()).unwrap();
        assert!(text.ends_with("content-type: application/x-www-form-urlencoded\na=x+y&b=%3D"), "{text}");
    }

    #[test]
    fn debug_output_leaves_out_credentials_query_and_body() {
        let b = client()
            .post(Url::parse("http://127.0.0.1:1/pos?accessToken=tok-in-query").unwrap())
            .bearer_auth("tok-in-bearer")
            .header("x-cashbox-accesstoken", "tok-in-header")
            .form(&[("client_secret", "tok-in-body")]);
        let debug = format!("{b:?}");
        for secret in ["tok-in-query", "tok-in-bearer", "tok-in-header", "tok-in-body"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("http://127.0.0.1:1/pos"), "{debug}");
    }

    #[tokio::test]
    async fn a_header_that_cannot_be_sent_is_a_configuration_error() {
        let err = client()
            .get(Url::parse("http://127.0.0.1:1/").unwrap())
            .header("x-settle-user", "line\nbreak")
            .send("Settle")
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectError::Config(ref m) if m.contains("Settle")), "{err:?}");
    }

    #[test]
    fn failures_keep_their_meaning() {
        assert!(!TransportError::NotSent("refused".into()).into_connect("x").maybe_applied());
        assert!(TransportError::NoAnswer("timeout".into()).into_connect("x").maybe_applied());
        let big = TransportError::TooLarge.into_connect("x");
        assert!(big.maybe_applied() && !big.is_transient(), "{big:?}");
    }
}
