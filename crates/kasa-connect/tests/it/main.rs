//! Client-versus-sandbox tests: every call Kasa makes, against kasa-sim on loopback.

mod finix;
mod fiskaltrust;
mod mobilepay;
mod settle;
mod tokenx;
mod transport;

use std::time::Duration;

use kasa_connect::finix::{FinixClient, FinixSettings};
use kasa_connect::tokenx::{TokenxClient, TokenxSettings};
use kasa_connect::{Secret, base_url, http_client};
use kasa_sim::{Sandbox, SandboxConfig};

pub async fn sandbox() -> Sandbox {
    let mut c = SandboxConfig::default();
    c.tokenx.completion_delay = Duration::from_millis(50);
    Sandbox::start(c).await.expect("sandbox starts")
}

pub fn tokenx(sb: &Sandbox, terminal: &str) -> TokenxClient {
    TokenxClient::new(
        http_client(),
        TokenxSettings {
            base_url: base_url(&sb.tokenx_url()).unwrap(),
            terminal_id: terminal.into(),
            client_id: sb.config.tokenx.client_id.clone(),
            client_secret: Secret::from(sb.config.tokenx.client_secret.clone()),
            timeout: Duration::from_secs(5),
        },
    )
}

pub fn finix(sb: &Sandbox) -> FinixClient {
    FinixClient::new(
        http_client(),
        FinixSettings {
            base_url: base_url(&sb.finix_url()).unwrap(),
            username: sb.config.finix.username.clone(),
            password: Secret::from(sb.config.finix.password.clone()),
            timeout: Duration::from_secs(5),
            sale_timeout: Duration::from_secs(30),
        },
    )
}

#[test]
fn plain_http_is_refused_for_remote_hosts() {
    assert!(base_url("http://127.0.0.1:9/").is_ok());
    assert!(base_url("http://localhost:9").is_ok());
    assert!(base_url("https://test-api.devtokeninc.com").is_ok());
    let err = base_url("http://test-api.devtokeninc.com").unwrap_err();
    assert!(err.to_string().contains("use https://"), "{err}");
    assert!(base_url("not a url").is_err());
    assert_eq!(base_url("https://x.example/api").unwrap().as_str(), "https://x.example/api/");
}
