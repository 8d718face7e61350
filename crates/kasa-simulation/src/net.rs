//! The simulated network between the registers and the sandbox.
//!
//! A register's clients send through [`Uplink`], a [`Transport`] that hands each request to the
//! sandbox service its URL names, in-process, through the same fault plan a request over the
//! service's port meets ([`kasa_sim::Served::call`]). The register's own endpoint (the Settle
//! scan callback) is served through [`Listeners`], which the Settle sandbox posts to in-process.
//! Each register's uplink can go down (the store's network lost): its requests then fail
//! unsent, requests in flight lose their answers (though the sandbox may still apply them), and
//! callbacks to it are refused.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use axum::body::Bytes;
use http_body_util::BodyExt;
use kasa_connect::Transport;
use kasa_connect::transport::{Request, Response, SendFuture, StatusCode, TransportError};
use kasa_core::signal::Signal;
use kasa_engine::env::Listener;
use kasa_sim::Sandbox;
use kasa_sim::http::Unanswered;
use tower::ServiceExt;

/// The sandbox's services by the `host:port` of their URLs.
#[derive(Debug)]
pub(crate) struct Net {
    sandbox: Arc<Sandbox>,
    hosts: BTreeMap<String, &'static str>,
    listeners: Listeners,
}

impl Net {
    pub(crate) fn new(sandbox: Arc<Sandbox>) -> Arc<Net> {
        let mut hosts = BTreeMap::new();
        for name in ["tokenx", "finix", "mobilepay", "settle", "fiskaltrust"] {
            if let Some(url) = sandbox.url(name) {
                hosts.insert(authority(&url).to_string(), name);
            }
        }
        let net = Arc::new(Net { sandbox: sandbox.clone(), hosts, listeners: Listeners::default() });
        let poster_net = Arc::downgrade(&net);
        sandbox.settle.set_poster(Arc::new(move |uri, body| {
            let net = poster_net.clone();
            Box::pin(async move {
                match net.upgrade() {
                    Some(net) => net.listeners.post(&uri, body).await,
                    None => Err("the network is gone".into()),
                }
            })
        }));
        net
    }

    fn served(&self, name: &str) -> &kasa_sim::Served {
        match name {
            "tokenx" => &self.sandbox.tokenx_http,
            "finix" => &self.sandbox.finix_http,
            "mobilepay" => &self.sandbox.mobilepay_http,
            "fiskaltrust" => &self.sandbox.fiskaltrust_http,
            _ => &self.sandbox.settle_http,
        }
    }

    /// The uplink of one register, up at first.
    pub(crate) fn uplink(self: &Arc<Net>) -> Uplink {
        Uplink { net: self.clone(), down: Arc::new(Signal::new(false)) }
    }
}

fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// One register's connection to the world.
#[derive(Debug, Clone)]
pub(crate) struct Uplink {
    net: Arc<Net>,
    down: Arc<Signal<bool>>,
}

impl Uplink {
    /// Takes the store's network down or brings it back.
    pub(crate) fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }

    /// Serves this register's own endpoints.
    pub(crate) fn listener(&self) -> Arc<dyn Listener> {
        Arc::new(RegisterListener { uplink: self.clone() })
    }
}

impl Transport for Uplink {
    fn send(&self, request: Request) -> SendFuture {
        let net = self.net.clone();
        let mut down = self.down.subscribe();
        Box::pin(async move {
            if down.get_and_update() {
                return Err(TransportError::NotSent("the store's network is down".into()));
            }
            let host = request.url.authority().to_string();
            let Some(name) = net.hosts.get(&host).copied() else {
                return Err(TransportError::NotSent(format!("no route to {host}")));
            };
            let mut path = request.url.path().to_string();
            if let Some(q) = request.url.query() {
                path.push('?');
                path.push_str(q);
            }
            let mut req = axum::http::Request::builder().method(request.method.as_str()).uri(path);
            for (n, v) in &request.headers {
                req = req.header(n.as_str(), v.as_bytes());
            }
            let req = req
                .header("host", host)
                .body(Bytes::from(request.body))
                .map_err(|e| TransportError::NotSent(format!("the request could not be written: {e}")))?;
            let call = net.served(name).call(req);
            let answered = tokio::select! {
                biased;
                _ = down.wait_for(|d| *d) => return Err(TransportError::NoAnswer("the store's network went down".into())),
                answered = tokio::time::timeout(request.timeout, call) => answered,
            };
            match answered {
                Err(_) => Err(TransportError::NoAnswer("timed out".into())),
                Ok(Err(Unanswered::Refused)) => Err(TransportError::NotSent("connection refused".into())),
                Ok(Err(Unanswered::Cut)) => Err(TransportError::NoAnswer("connection closed before the answer".into())),
                Ok(Ok(resp)) => {
                    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                    Ok(Response::new(status, resp.into_body().to_vec()))
                }
            }
        })
    }
}

/// The registers' own servers, by the address each was given.
#[derive(Debug, Default, Clone)]
pub(crate) struct Listeners {
    inner: Arc<Mutex<ListenerTable>>,
}

#[derive(Debug, Default)]
struct ListenerTable {
    next_port: u16,
    routes: BTreeMap<String, (axum::Router, Uplink)>,
}

impl Listeners {
    async fn post(&self, uri: &str, body: String) -> Result<(), String> {
        let host = authority(uri).to_string();
        let path = uri.split_once(&host).map_or("/", |(_, p)| p).to_string();
        let route = self.inner.lock().unwrap_or_else(|e| e.into_inner()).routes.get(&host).cloned();
        let Some((router, uplink)) = route else { return Err(format!("callback to {uri}: connection refused")) };
        if uplink.down.get() {
            return Err(format!("callback to {uri}: the store's network is down"));
        }
        let req = axum::http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .map_err(|e| e.to_string())?;
        let Ok(resp) = router.oneshot(req).await;
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        if status.is_success() { Ok(()) } else { Err(format!("callback answered {status}")) }
    }
}

#[derive(Debug)]
struct RegisterListener {
    uplink: Uplink,
}

impl Listener for RegisterListener {
    fn serve(&self, _listen: &str, router: axum::Router) -> std::io::Result<(SocketAddr, Box<dyn Send + Sync>)> {
        let listeners = self.uplink.net.listeners.clone();
        let key = {
            let mut t = listeners.inner.lock().unwrap_or_else(|e| e.into_inner());
            t.next_port += 1;
            let key = format!("127.0.0.1:{}", 40_000 + t.next_port);
            t.routes.insert(key.clone(), (router, self.uplink.clone()));
            key
        };
        let addr: SocketAddr = key.parse().map_err(std::io::Error::other)?;
        Ok((addr, Box::new(Serving { listeners: Arc::downgrade(&listeners.inner), key })))
    }
}

/// Keeps a register's endpoint served until dropped (the register stopped).
struct Serving {
    listeners: Weak<Mutex<ListenerTable>>,
    key: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(t) = self.listeners.upgrade() {
            t.lock().unwrap_or_else(|e| e.into_inner()).routes.remove(&self.key);
        }
    }
}
