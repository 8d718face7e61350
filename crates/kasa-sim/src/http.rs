//! Serving a sandbox service on loopback, with faults and a record of every request.
//!
//! Each service gets its own listener on an ephemeral port. Instead of a stock server loop,
//! connections are served one by one through [`FaultyService`], which can delay a request,
//! answer it with a 5xx, drop the connection before the request is applied, or apply it and
//! drop the connection before the response (the case that makes idempotency keys necessary).
//! An outage closes the listening socket altogether, so clients see "connection refused"
//! exactly as they would with the network down.
//!
//! Once a request has arrived it is handled to the end in a task of its own, whatever becomes
//! of the client: a register killed while waiting for an answer leaves its request applied.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use kasa_core::signal::{Signal, Watcher};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Fault knobs of one service. Rates are probabilities per request, decided by a seeded random
/// generator so a run can be repeated exactly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Faults {
    /// Added before every request is handled.
    pub latency: Duration,
    /// Up to this much more, drawn per request, so requests sent together may be applied in
    /// another order than they were sent.
    pub jitter: Duration,
    /// Probability that the request is applied twice (as when a proxy repeats it); the client
    /// hears the answer to the first.
    pub duplicate_rate: f64,
    /// Probability of answering `503` without applying the request.
    pub error_rate: f64,
    /// Probability of closing the connection without applying the request.
    pub drop_rate: f64,
    /// Probability of applying the request and then closing the connection unanswered.
    pub lost_response_rate: f64,
    /// The status of an injected error (503 when not set); a 4xx makes a permanent failure.
    pub error_status: Option<u16>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            duplicate_rate: 0.0,
            error_rate: 0.0,
            drop_rate: 0.0,
            lost_response_rate: 0.0,
            error_status: None,
        }
    }
}

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Handled and answered.
    Answered,
    /// Answered 503 by fault injection; not applied.
    InjectedError,
    /// Connection dropped before the request was applied.
    Dropped,
    /// Applied, then the connection was dropped before the response.
    ResponseLost,
    /// A second copy of a request, applied by fault injection.
    Duplicated,
}

/// One request as a sandbox service received it.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// Which service (`tokenx`, `finix`).
    pub service: &'static str,
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
    /// Status answered, if an answer was sent.
    pub status: Option<u16>,
    /// What happened.
    pub fate: Fate,
    /// When the request arrived (the sandbox's clock, which a simulation makes virtual).
    #[serde(skip)]
    pub arrived: Option<time::OffsetDateTime>,
}

impl Recorded {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The shared record of requests across services.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    /// Every request so far, in arrival order.
    pub fn all(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Requests of one service.
    pub fn of(&self, service: &str) -> Vec<Recorded> {
        self.all().into_iter().filter(|r| r.service == service).collect()
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn push(&self, r: Recorded) {
        let mut v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded so a long demo or soak run does not grow without end.
        if v.len() >= 200_000 {
            v.drain(..100_000);
        }
        v.push(r);
    }
}

/// Fault knobs for the whole service plus overrides for single endpoints.
#[derive(Debug, Clone, Default)]
struct FaultPlan {
    service: Faults,
    /// (method, path prefix, faults); the longest matching prefix wins.
    endpoints: Vec<(String, String, Faults)>,
}

impl FaultPlan {
    fn for_request(&self, method: &str, path: &str) -> &Faults {
        self.endpoints
            .iter()
            .filter(|(m, p, _)| (m == "*" || m.eq_ignore_ascii_case(method)) && path.starts_with(p.as_str()))
            .max_by_key(|(_, p, _)| p.len())
            .map(|(_, _, f)| f)
            .unwrap_or(&self.service)
    }
}

/// Live controls of one service: faults, outage and the random generator behind them.
#[derive(Debug, Clone)]
pub struct Control {
    faults: Arc<Mutex<(FaultPlan, StdRng)>>,
    outage: Arc<Signal<bool>>,
    listening: Arc<Signal<bool>>,
    connections: Arc<Mutex<tokio::task::JoinSet<()>>>,
}

impl Control {
    fn new(seed: u64) -> Control {
        let outage = Arc::new(Signal::new(false));
        let listening = Arc::new(Signal::new(true));
        Control {
            faults: Arc::new(Mutex::new((FaultPlan::default(), StdRng::seed_from_u64(seed)))),
            outage,
            listening,
            connections: Arc::new(Mutex::new(tokio::task::JoinSet::new())),
        }
    }

    /// Sets the fault knobs of the whole service (endpoint overrides stay).
    pub fn set_faults(&self, faults: Faults) {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).0.service = faults;
    }

    /// Sets the fault knobs of one endpoint: requests with `method` (`*` for any) whose path
    /// starts with `path_prefix`.
    pub fn set_endpoint_faults(&self, method: &str, path_prefix: &str, faults: Faults) {
        let mut g = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        g.0.endpoints.retain(|(m, p, _)| !(m == method && p == path_prefix));
        g.0.endpoints.push((method.to_string(), path_prefix.to_string(), faults));
    }

    /// Removes every endpoint override and the service's faults.
    pub fn clear_faults(&self) {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).0 = FaultPlan::default();
    }

    /// Reseeds the fault generator.
    pub fn reseed(&self, seed: u64) {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).1 = StdRng::seed_from_u64(seed);
    }

    /// The current fault knobs of the whole service.
    pub fn faults(&self) -> Faults {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).0.service.clone()
    }

    /// Starts (`true`) or ends an outage. While it lasts the port refuses connections and
    /// open connections are cut, as when the network goes down. Returns once in effect.
    pub async fn set_outage(&self, down: bool) {
        self.outage.send_replace(down);
        if down {
            self.connections.lock().unwrap_or_else(|e| e.into_inner()).abort_all();
        }
        let mut listening = self.listening.subscribe();
        let _ = listening.wait_for(|l| *l != down).await;
        if down {
            // Let the cut connections' closes reach their clients.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether an outage is on.
    pub fn is_down(&self) -> bool {
        self.outage.get()
    }

    fn decide(&self, method: &str, path: &str) -> Decision {
        let mut g = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let (plan, rng) = &mut *g;
        let faults = plan.for_request(method, path);
        let roll: f64 = rng.random();
        let extra = if faults.jitter.is_zero() { Duration::ZERO } else { faults.jitter.mul_f64(rng.random::<f64>()) };
        let duplicate = faults.duplicate_rate > 0.0 && rng.random::<f64>() < faults.duplicate_rate;
        let fate = if roll < faults.drop_rate {
            Fate::Dropped
        } else if roll < faults.drop_rate + faults.error_rate {
            Fate::InjectedError
        } else if roll < faults.drop_rate + faults.error_rate + faults.lost_response_rate {
            Fate::ResponseLost
        } else {
            Fate::Answered
        };
        Decision { latency: faults.latency + extra, fate, error_status: faults.error_status.unwrap_or(503), duplicate }
    }
}

/// What the fault plan decided for one request.
#[derive(Debug, Clone, Copy)]
struct Decision {
    latency: Duration,
    fate: Fate,
    error_status: u16,
    duplicate: bool,
}

/// Why an in-process request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// The service is down (an outage): the request never arrived.
    Refused,
    /// The request arrived but no answer came back: dropped, its answer lost, or cut by an
    /// outage that began while it was handled.
    Cut,
}

/// A running service.
#[derive(Debug)]
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its controls.
    pub control: Control,
    task: tokio::task::JoinHandle<()>,
    svc: FaultyService,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Served {
    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Hands one request to the service in-process, exactly as one arriving over the port is
    /// handled (faults, the record, the outage), for a deterministic simulation that runs the
    /// whole store on one thread. Once accepted the request is carried through to the end in a
    /// task of its own, whatever becomes of the caller.
    pub async fn call(&self, req: Request<axum::body::Bytes>) -> Result<Response<axum::body::Bytes>, Unanswered> {
        if self.control.is_down() {
            return Err(Unanswered::Refused);
        }
        let mut outage = self.control.outage.subscribe();
        let (parts, body) = req.into_parts();
        let handled = tokio::spawn(self.svc.clone().handle(parts, body));
        let resp = tokio::select! {
            biased;
            done = handled => match done {
                Ok(Ok(resp)) => resp,
                _ => return Err(Unanswered::Cut),
            },
            _ = outage.wait_for(|down| *down) => return Err(Unanswered::Cut),
        };
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.map_err(|_| Unanswered::Cut)?.to_bytes();
        Ok(Response::from_parts(parts, bytes))
    }
}

/// Serves `router` on a fresh loopback port.
pub async fn serve(service: &'static str, router: Router, recorder: Recorder, seed: u64) -> std::io::Result<Served> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let control = Control::new(seed);
    let svc = FaultyService { service, router, recorder, control: control.clone() };
    // Subscribed before the loop runs, so an outage set at once is not missed.
    let outage = control.outage.subscribe();
    let task = tokio::spawn(accept_loop(listener, addr, svc.clone(), control.clone(), outage));
    Ok(Served { addr, control, task, svc })
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    svc: FaultyService,
    control: Control,
    mut outage: Watcher<bool>,
) {
    let mut listener = Some(listener);
    if outage.get_and_update() {
        listener = None;
        control.listening.send_replace(false);
    }
    loop {
        match listener.take() {
            Some(l) => {
                tokio::select! {
                    biased;
                    accepted = l.accept() => {
                        listener = Some(l);
                        if let Ok((stream, _)) = accepted {
                            let svc = svc.clone();
                            let mut conns = control.connections.lock().unwrap_or_else(|e| e.into_inner());
                            while conns.try_join_next().is_some() {}
                            conns.spawn(async move {
                                let conn = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc);
                                let _ = conn.await;
                            });
                        }
                    }
                    changed = outage.changed() => {
                        if changed.is_err() { return; }
                        if outage.get() {
                            drop(l); // close the port: connections are refused
                            control.listening.send_replace(false);
                        } else {
                            listener = Some(l);
                        }
                    }
                }
            }
            None => {
                if outage.changed().await.is_err() {
                    return;
                }
                if !outage.get() {
                    // Rebind the same port; retry briefly in case the OS holds it a moment.
                    let started = Instant::now();
                    while listener.is_none() && started.elapsed() < Duration::from_secs(5) {
                        match TcpListener::bind(addr).await {
                            Ok(l) => listener = Some(l),
                            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                    if listener.is_none() {
                        tracing::error!(%addr, "sandbox could not listen again after an outage");
                        return;
                    }
                    control.listening.send_replace(true);
                }
            }
        }
    }
}

#[derive(Clone)]
struct FaultyService {
    service: &'static str,
    router: Router,
    recorder: Recorder,
    control: Control,
}

impl std::fmt::Debug for FaultyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyService").field("service", &self.service).finish()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl hyper::service::Service<Request<Incoming>> for FaultyService {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect().await?.to_bytes();
            // A request that has arrived is carried through to the end in its own task, as a
            // real server does: a client that goes away (or dies) meanwhile does not undo it.
            tokio::spawn(this.handle(parts, bytes)).await?
        })
    }
}

impl FaultyService {
    async fn handle(
        self,
        parts: axum::http::request::Parts,
        bytes: axum::body::Bytes,
    ) -> Result<Response<Body>, BoxError> {
        let this = self;
        let arrived = Some(crate::clock::now());
        {
            let Decision { latency, fate, error_status, duplicate } =
                this.control.decide(parts.method.as_str(), parts.uri.path());
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            if duplicate && fate != Fate::Dropped && !parts.uri.path().starts_with("/_sim/") {
                // The copy is applied first and its answer thrown away; the client hears the
                // original's.
                let copy = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
                let _ = route(this.router.clone(), copy).await;
                this.recorder.push(Recorded {
                    service: this.service,
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().map(str::to_string),
                    headers: headers_of(&parts),
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                    status: None,
                    fate: Fate::Duplicated,
                    arrived,
                });
            }
            let mut rec = Recorded {
                service: this.service,
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().map(str::to_string),
                headers: headers_of(&parts),
                body: String::from_utf8_lossy(&bytes).into_owned(),
                status: None,
                fate,
                arrived,
            };
            // Control endpoints of the sandbox itself are never faulted nor recorded.
            if parts.uri.path().starts_with("/_sim/") {
                let req = Request::from_parts(parts, Body::from(bytes));
                return Ok(route(this.router, req).await);
            }
            match fate {
                Fate::Dropped => {
                    this.recorder.push(rec);
                    Err("connection dropped by fault injection".into())
                }
                Fate::InjectedError => {
                    rec.status = Some(error_status);
                    this.recorder.push(rec);
                    let code = if error_status >= 500 { "SERVICE_UNAVAILABLE" } else { "INJECTED_REFUSAL" };
                    let body = serde_json::json!({"code": code, "message": "injected fault"});
                    Ok(Response::builder()
                        .status(StatusCode::from_u16(error_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE))
                        .header("content-type", "application/json")
                        .body(Body::from(body.to_string()))?)
                }
                Fate::ResponseLost => {
                    let req = Request::from_parts(parts, Body::from(bytes));
                    let _applied = route(this.router, req).await;
                    this.recorder.push(rec);
                    Err("response lost by fault injection".into())
                }
                Fate::Answered | Fate::Duplicated => {
                    let req = Request::from_parts(parts, Body::from(bytes));
                    let resp = route(this.router, req).await;
                    rec.status = Some(resp.status().as_u16());
                    this.recorder.push(rec);
                    Ok(resp)
                }
            }
        }
    }
}

fn headers_of(parts: &axum::http::request::Parts) -> Vec<(String, String)> {
    parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect()
}

async fn route(router: Router, req: Request<Body>) -> Response<Body> {
    let Ok(resp) = router.oneshot(req).await;
    resp
}
