//! A small WebDriver client over reqwest, enough to drive the Kasa window: sessions, finding
//! and clicking elements, reading text and attributes, screenshots.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Two distinct free ports (both held while choosing, so they can't coincide).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
}

/// A running tauri-driver in its own process group (with its WebKitWebDriver child).
pub struct Driver {
    child: Child,
    url: String,
    app: String,
}

impl Driver {
    /// Starts tauri-driver for `app`, whose demo data goes to `data_dir`.
    pub async fn start(app: &str, data_dir: &Path) -> Driver {
        use std::os::unix::process::CommandExt;
        let (port, native) = free_ports();
        let child = Command::new("tauri-driver")
            .args(["--port", &port.to_string(), "--native-port", &native.to_string()])
            .env("KASA_DATA_DIR", data_dir)
            .env("NO_AT_BRIDGE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("tauri-driver on PATH (cargo install tauri-driver --locked)");
        let url = format!("http://127.0.0.1:{port}");
        // Both tauri-driver and the WebKitWebDriver it starts must be listening before a
        // session can be made.
        let started = Instant::now();
        for p in [port, native] {
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(started.elapsed() < Duration::from_secs(30), "the WebDriver servers did not start listening");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Driver { child, url, app: app.to_string() }
    }

    /// Opens a session: tauri-driver starts the app in a window.
    pub async fn session(&self) -> Session {
        let http = reqwest::Client::new();
        let caps = json!({ "capabilities": { "alwaysMatch": { "tauri:options": { "application": self.app } } } });
        // A driver that is still settling may drop the first request: try a few times.
        let mut last_error = String::new();
        for attempt in 0..5 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let sent =
                http.post(format!("{}/session", self.url)).json(&caps).timeout(Duration::from_secs(90)).send().await;
            let v: Value = match sent {
                Ok(resp) => resp.json().await.expect("session JSON"),
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            let id = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
            return Session { http, base: format!("{}/session/{id}", self.url) };
        }
        panic!("no WebDriver session after 5 attempts: {last_error}");
    }
}

impl Drop for Driver {
    /// Ends the driver, its WebKitWebDriver child and the app (the whole process group), also
    /// when a test fails half-way.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-s", "TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-s", "KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// An element reference.
pub struct Element(String);

/// A WebDriver session.
pub struct Session {
    http: reqwest::Client,
    base: String,
}

impl Session {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).timeout(Duration::from_secs(30));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.expect("WebDriver request").json().await.expect("WebDriver JSON");
        v["value"].clone()
    }

    async fn try_find(&self, css: &str) -> Option<Element> {
        let v =
            self.send(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v.get(ELEMENT_KEY).and_then(Value::as_str).map(|id| Element(id.to_string()))
    }

    /// The first element matching `css` now, if any.
    pub async fn try_find_pub(&self, css: &str) -> Option<Element> {
        self.try_find(css).await
    }

    /// Whether an element matches now.
    pub async fn exists(&self, css: &str) -> bool {
        self.try_find(css).await.is_some()
    }

    /// The first element matching `css`; fails if there is none.
    pub async fn find(&self, css: &str) -> Element {
        self.try_find(css).await.unwrap_or_else(|| panic!("no element matches {css}"))
    }

    /// The first element matching `css` inside `parent`.
    pub async fn find_within(&self, parent: &Element, css: &str) -> Element {
        let v = self
            .send(
                reqwest::Method::POST,
                &format!("/element/{}/element", parent.0),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        Element(v[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("no {css} inside: {v}")).to_string())
    }

    /// Waits for an element to appear.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let started = Instant::now();
        loop {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            if started.elapsed() > timeout {
                let text = self.send(reqwest::Method::GET, "/source", None).await;
                panic!("{css} did not appear within {timeout:?}; page: {}", text.as_str().unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks an element.
    pub async fn click(&self, e: &Element) {
        self.send(reqwest::Method::POST, &format!("/element/{}/click", e.0), Some(json!({}))).await;
    }

    /// Runs `script` in the page as WebDriver's asynchronous script (it ends by calling its last
    /// argument with the result), allowing it `timeout`; the result.
    pub async fn execute_async(&self, script: &str, timeout: Duration) -> Value {
        let ms = timeout.as_millis() as u64;
        self.send(reqwest::Method::POST, "/timeouts", Some(json!({ "script": ms }))).await;
        let v: Value = self
            .http
            .post(format!("{}/execute/async", self.base))
            .timeout(timeout + Duration::from_secs(10))
            .json(&json!({ "script": script, "args": [] }))
            .send()
            .await
            .expect("WebDriver request")
            .json()
            .await
            .expect("WebDriver JSON");
        v["value"].clone()
    }

    /// Types `text` into an input (WebDriver's element send keys).
    pub async fn type_text(&self, e: &Element, text: &str) {
        self.send(reqwest::Method::POST, &format!("/element/{}/value", e.0), Some(json!({ "text": text }))).await;
    }

    /// An element's rendered text.
    pub async fn text(&self, e: &Element) -> String {
        self.send(reqwest::Method::GET, &format!("/element/{}/text", e.0), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// An element's attribute.
    pub async fn attribute(&self, e: &Element, name: &str) -> String {
        self.send(reqwest::Method::GET, &format!("/element/{}/attribute/{name}", e.0), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The handles of the app's open windows.
    pub async fn window_handles(&self) -> Vec<String> {
        let v = self.send(reqwest::Method::GET, "/window/handles", None).await;
        v.as_array().map(|a| a.iter().filter_map(|h| h.as_str().map(String::from)).collect()).unwrap_or_default()
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.send(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default()).expect("base64 PNG")
    }

    /// Ends the session (closes the app).
    pub async fn close(self) {
        let _ = self.http.delete(&self.base).timeout(Duration::from_secs(10)).send().await;
    }
}
