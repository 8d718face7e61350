//! The transport's promises over real HTTP, against a bare loopback server that answers what a
//! hostile or broken one would: redirects, oversized bodies (declared and streamed), and paths
//! read back exactly as they arrived.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kasa_connect::finix::{FinixClient, FinixSettings};
use kasa_connect::settle::{SettleClient, SettleSettings};
use kasa_connect::transport::MAX_BODY;
use kasa_connect::{ConnectError, Secret, base_url, http_client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that records each request's head and answers every one with `answer`.
struct Bare {
    url: String,
    heads: Arc<Mutex<Vec<String>>>,
}

async fn bare(answer: impl Fn() -> Vec<Vec<u8>> + Send + Sync + 'static) -> Bare {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                for part in answer() {
                    if sock.write_all(&part).await.is_err() {
                        return;
                    }
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    Bare { url, heads }
}

fn finix(url: &str) -> FinixClient {
    FinixClient::new(
        http_client(),
        FinixSettings {
            base_url: base_url(url).unwrap(),
            username: "US-user".into(),
            password: Secret::from("finix-password-never-elsewhere"),
            timeout: Duration::from_secs(5),
            sale_timeout: Duration::from_secs(5),
        },
    )
}

fn ok(body: &str) -> Vec<Vec<u8>> {
    vec![
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .into_bytes(),
    ]
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_credentials_go_nowhere_else() {
    let elsewhere = bare(|| ok("{}")).await;
    let target = format!("{}steal", elsewhere.url);
    let server = bare(move || {
        vec![format!("HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n").into_bytes()]
    })
    .await;
    let err = finix(&server.url).transfer("TR1").await.unwrap_err();
    assert_eq!(err.status(), Some(302), "{err}");
    assert_eq!(server.heads.lock().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(elsewhere.heads.lock().unwrap().is_empty(), "the redirect target was called");
}

#[tokio::test]
async fn an_oversized_answer_is_refused_whether_declared_or_streamed() {
    let declared = bare(|| {
        vec![b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5242880\r\n\r\n{".to_vec()]
    })
    .await;
    let streamed = bare(|| {
        // Chunked, no length: 5 chunks of 1 MiB.
        let mut parts =
            vec![b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()];
        for _ in 0..5 {
            let mut chunk = format!("{:x}\r\n", 1 << 20).into_bytes();
            chunk.extend(std::iter::repeat_n(b' ', 1 << 20));
            chunk.extend_from_slice(b"\r\n");
            parts.push(chunk);
        }
        parts.push(b"0\r\n\r\n".to_vec());
        parts
    })
    .await;
    for server in [&declared, &streamed] {
        let err = finix(&server.url).transfer("TR1").await.unwrap_err();
        assert!(matches!(err, ConnectError::BadAnswer { .. }), "{err:?}");
        assert!(err.to_string().contains("larger than 4 MiB"), "{err}");
    }
}

#[tokio::test]
async fn the_cap_is_exact() {
    // A Settle action reads any JSON: `{}` padded to exactly the cap is read, one byte more is not.
    for (size, read) in [(MAX_BODY, true), (MAX_BODY + 1, false)] {
        let body = format!("{}{{}}", " ".repeat(size - 2));
        let server = bare(move || ok(&body)).await;
        let got = settle(&server.url).capture("T1").await;
        match (got, read) {
            (Ok(()), true) => {}
            (Err(e), false) => assert!(e.to_string().contains("larger than 4 MiB"), "{e}"),
            (got, _) => panic!("{size} bytes: {got:?}"),
        }
    }
}

fn settle(url: &str) -> SettleClient {
    SettleClient::new(
        http_client(),
        SettleSettings {
            base_url: base_url(url).unwrap(),
            merchant_id: "m".into(),
            api_user: "u".into(),
            secret: Secret::from("settle-secret"),
            pos_id: "p".into(),
            shortlink_id: "s".into(),
            timeout: Duration::from_secs(5),
        },
    )
}

#[tokio::test]
async fn an_id_cannot_leave_its_path_segment() {
    let server = bare(|| ok("{}")).await;
    let _ = finix(&server.url).transfer("TR1/../../devices/DV1?x=1#f").await;
    let first = server.heads.lock().unwrap()[0].clone();
    let line = first.lines().next().unwrap();
    assert_eq!(line, "GET /transfers/TR1%2F..%2F..%2Fdevices%2FDV1%3Fx=1%23f HTTP/1.1");
    for id in ["..", "."] {
        let err = finix(&server.url).transfer(id).await.unwrap_err();
        assert!(matches!(err, ConnectError::Config(_)), "{err:?}");
    }
    // An empty id would read the list of transfers.
    assert!(matches!(finix(&server.url).transfer("").await, Err(ConnectError::Config(_))));
    assert_eq!(server.heads.lock().unwrap().len(), 1, "an id that is no id was sent");
}
