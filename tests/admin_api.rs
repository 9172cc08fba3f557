//! The admin API over real sockets: its routes and their JSON, its refusals, and the client
//! commands use. The `Console` here is a stand-in: the API is what is under test.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use codex_helper::admin::{
    self, AdminHandle, BALANCES, BALANCES_REFRESH, Console, UnknownProvider, client,
};
use codex_helper::balance::report::{EndpointBalance, RefreshReport};
use codex_helper::balance::snapshot::{Amounts, Reading, Snapshot, Status};
use futures_util::future::BoxFuture;
use serde_json::Value;
use support::bounded;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers fixed balances and records the refreshes asked for.
#[derive(Default)]
struct FakeConsole {
    asked: Mutex<Vec<Option<String>>>,
}

fn balance(provider: &str, remaining: &str) -> EndpointBalance {
    let reading = Reading {
        amounts: Amounts {
            total_balance: Some(remaining.parse().unwrap()),
            ..Amounts::default()
        },
        exhausted: Some(false),
        ..Reading::default()
    };
    EndpointBalance {
        provider: provider.into(),
        endpoint: format!("{provider}.default"),
        status: Status::Ok,
        routing_exhausted_until_ms: None,
        snapshot: Some(Snapshot::new(
            provider,
            "usage_provider:new_api",
            reading,
            true,
            (1_000, 181_000),
            None,
        )),
    }
}

impl Console for FakeConsole {
    fn balances(&self) -> Vec<EndpointBalance> {
        vec![
            balance("monthly", "12.345678901234567"),
            balance("paygo", "0.5"),
        ]
    }

    fn refresh_balances(
        &self,
        provider: Option<String>,
    ) -> BoxFuture<'static, anyhow::Result<RefreshReport>> {
        self.asked.lock().unwrap().push(provider.clone());
        Box::pin(async move {
            match provider.as_deref() {
                Some("nope") => Err(UnknownProvider {
                    id: "nope".into(),
                    known: vec!["monthly".into(), "paygo".into()],
                }
                .into()),
                Some("broken") => Err(anyhow::anyhow!("the balance store is locked")),
                _ => Ok(RefreshReport {
                    provider_filter: provider,
                    endpoints_matched: 1,
                    attempted: 1,
                    refreshed: 1,
                    balances: vec![balance("monthly", "7")],
                    ..RefreshReport::default()
                }),
            }
        })
    }
}

async fn start() -> (AdminHandle, Arc<FakeConsole>) {
    let console = Arc::new(FakeConsole::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = admin::serve_admin(listener, console.clone(), admin::Access::default())
        .await
        .unwrap();
    (handle, console)
}

/// One raw HTTP/1.1 exchange, so every header is exactly as written: status, headers, JSON body.
async fn raw(addr: SocketAddr, head: &str, body: &str) -> (u16, String, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (headers, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = headers.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        headers.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn host(addr: SocketAddr) -> String {
    format!("Host: {addr}")
}

#[tokio::test]
async fn balances_and_refresh_answer_their_report_shapes() {
    bounded(async {
        let (handle, console) = start().await;
        let addr = handle.addr;
        let (status, headers, body) = raw(
            addr,
            &format!("GET {BALANCES} HTTP/1.1\r\n{}", host(addr)),
            "",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(
            headers.contains("content-type: application/json"),
            "{headers}"
        );
        let balances = body["balances"].as_array().unwrap();
        assert_eq!(balances.len(), 2);
        assert_eq!(balances[0]["endpoint"], "monthly.default");
        assert_eq!(balances[0]["status"], "ok");
        assert_eq!(
            balances[0]["snapshot"]["total_balance"], "12.345678901234567",
            "amounts stay exact decimal strings"
        );

        let (status, _, body) = raw(
            addr,
            &format!(
                "POST {BALANCES_REFRESH}?provider_id=monthly HTTP/1.1\r\n{}",
                host(addr)
            ),
            "",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["provider_filter"], "monthly");
        assert_eq!(body["refreshed"], 1);
        assert_eq!(body["balances"][0]["snapshot"]["total_balance"], "7");

        let (status, _, _) = raw(
            addr,
            &format!(
                "POST {BALANCES_REFRESH} HTTP/1.1\r\n{}\r\nContent-Type: application/json",
                host(addr)
            ),
            r#"{"provider_id":"paygo"}"#,
        )
        .await;
        assert_eq!(status, 200);
        let (status, _, _) = raw(
            addr,
            &format!("POST {BALANCES_REFRESH} HTTP/1.1\r\n{}", host(addr)),
            "",
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            *console.asked.lock().unwrap(),
            [Some("monthly".to_string()), Some("paygo".to_string()), None]
        );
        handle.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn mistakes_get_404_405_400_in_one_error_shape() {
    bounded(async {
        let (handle, console) = start().await;
        let addr = handle.addr;
        let h = host(addr);
        let cases = [
            (
                format!("GET /__codex_helper/api/v1/nothing HTTP/1.1\r\n{h}"),
                "",
                404,
                "not_found",
            ),
            (
                format!("GET /v1/responses HTTP/1.1\r\n{h}"),
                "",
                404,
                "not_found",
            ),
            (
                format!("POST {BALANCES} HTTP/1.1\r\n{h}"),
                "",
                405,
                "method_not_allowed",
            ),
            (
                format!("GET {BALANCES_REFRESH} HTTP/1.1\r\n{h}"),
                "",
                405,
                "method_not_allowed",
            ),
            (
                format!("POST {BALANCES_REFRESH} HTTP/1.1\r\n{h}"),
                "{not json",
                400,
                "bad_request",
            ),
            (
                format!("POST {BALANCES_REFRESH}?who=x HTTP/1.1\r\n{h}"),
                "",
                400,
                "bad_request",
            ),
            (
                format!("GET {BALANCES}?x=1 HTTP/1.1\r\n{h}"),
                "",
                400,
                "bad_request",
            ),
            (
                format!("POST {BALANCES_REFRESH}?provider_id=a HTTP/1.1\r\n{h}"),
                r#"{"provider_id":"b"}"#,
                400,
                "bad_request",
            ),
            (
                format!("POST {BALANCES_REFRESH}?provider_id=nope HTTP/1.1\r\n{h}"),
                "",
                404,
                "unknown_provider",
            ),
            (
                format!("POST {BALANCES_REFRESH}?provider_id=broken HTTP/1.1\r\n{h}"),
                "",
                500,
                "refresh_failed",
            ),
        ];
        for (head, body, status, code) in cases {
            let (got, headers, answer) = raw(addr, &head, body).await;
            assert_eq!(
                (got, answer["error"]["code"].as_str()),
                (status, Some(code)),
                "{head}: {answer}"
            );
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
            if status == 405 {
                assert!(headers.contains("\r\nallow: "), "{headers}");
            }
        }
        let (_, _, answer) = raw(
            addr,
            &format!("POST {BALANCES_REFRESH}?provider_id=nope HTTP/1.1\r\n{h}"),
            "",
        )
        .await;
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("monthly, paygo"),
            "{answer}"
        );
        let big = "x".repeat(admin::BODY_MAX + 1);
        let (status, _, answer) = raw(
            addr,
            &format!("POST {BALANCES_REFRESH} HTTP/1.1\r\n{h}"),
            &big,
        )
        .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (413, Some("body_too_large"))
        );
        assert_eq!(
            console.asked.lock().unwrap().len(),
            3,
            "only `nope` (twice) and `broken` reached the console"
        );
        handle.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn web_pages_and_foreign_names_are_refused_before_anything_runs() {
    bounded(async {
        let (handle, console) = start().await;
        let addr = handle.addr;
        let h = host(addr);
        let cases = [
            (
                format!("POST {BALANCES_REFRESH} HTTP/1.1\r\n{h}\r\nOrigin: https://evil.example"),
                "browser_request_refused",
            ),
            (
                format!("POST {BALANCES_REFRESH} HTTP/1.1\r\n{h}\r\nOrigin: null"),
                "browser_request_refused",
            ),
            (
                format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\nSec-Fetch-Site: same-origin"),
                "browser_request_refused",
            ),
            (
                format!("POST {BALANCES_REFRESH} HTTP/1.1\r\n{h}\r\nSec-Fetch-Mode: no-cors"),
                "browser_request_refused",
            ),
            (
                format!(
                    "POST {BALANCES_REFRESH} HTTP/1.1\r\nHost: evil.example:{}",
                    addr.port()
                ),
                "host_not_allowed",
            ),
            (
                format!("GET {BALANCES} HTTP/1.1\r\nHost: localhost.evil.example"),
                "host_not_allowed",
            ),
            (
                format!("GET http://evil.example{BALANCES} HTTP/1.1\r\n{h}"),
                "host_not_allowed",
            ),
        ];
        for (head, code) in cases {
            let (status, _, answer) = raw(addr, &head, "").await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (403, Some(code)),
                "{head}"
            );
        }
        assert!(
            console.asked.lock().unwrap().is_empty(),
            "no refused request reached the console"
        );
        let (status, _, _) = raw(
            addr,
            &format!("GET {BALANCES} HTTP/1.1\r\nHost: localhost:{}", addr.port()),
            "",
        )
        .await;
        assert_eq!(status, 200);
        handle.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_console_page_is_served_and_only_its_own_browser_requests_are_admitted() {
    bounded(async {
        let console = Arc::new(FakeConsole::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let token = "console-token-0123456789";
        let access = admin::Access {
            token: Some(codex_helper::routing::Secret::new(token)),
        };
        let handle = admin::serve_admin(listener, console.clone(), access)
            .await
            .unwrap();
        let addr = handle.addr;
        let h = host(addr);

        // The page: to anyone, browser headers or not, with a policy that keeps it to itself.
        let page =
            "GET / HTTP/1.1\r\nHost: elsewhere.example\r\nSec-Fetch-Site: none\r\nX-Forwarded-For: 203.0.113.9";
        let (status, headers, _) = raw(addr, page, "").await;
        assert_eq!(status, 200);
        assert!(headers.contains("content-type: text/html"), "{headers}");
        assert!(headers.contains("content-security-policy: default-src 'none'; script-src 'self'"), "{headers}");
        assert!(headers.contains("x-frame-options: deny"), "{headers}");
        let (status, _, _) = raw(addr, &format!("POST / HTTP/1.1\r\n{h}"), "").await;
        assert_eq!(status, 404, "only GET and HEAD serve the page");

        let console_header = "X-Codex-Helper-Console: 1";
        let origin = format!("Origin: http://{addr}");
        let admitted = [
            format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\n{console_header}\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors"),
            format!("POST {BALANCES_REFRESH} HTTP/1.1\r\n{h}\r\n{console_header}\r\n{origin}\r\nSec-Fetch-Site: same-origin"),
            // Plain HTTP to another machine: no Sec-Fetch-*, the Origin names the host asked.
            format!("POST {BALANCES_REFRESH} HTTP/1.1\r\n{h}\r\n{console_header}\r\n{origin}"),
            // Through a reverse proxy, with the token: the Origin names the forwarded host.
            format!("POST {BALANCES_REFRESH} HTTP/1.1\r\nHost: 127.0.0.1:1\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: box.example\r\nOrigin: https://box.example\r\nAuthorization: Bearer {token}\r\n{console_header}"),
            // The console says where its page was loaded from: here, this machine.
            format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\nX-Codex-Helper-Console: {addr}\r\nSec-Fetch-Site: same-origin"),
            format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\nX-Codex-Helper-Console: localhost:{}\r\nSec-Fetch-Site: same-origin", addr.port()),
            // Plain HTTP through a proxy that names no forwarded host, with the token: admitted
            // (the token, not the Origin, is what lets it in).
            format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\nX-Forwarded-For: 203.0.113.9\r\nOrigin: http://box.example\r\nAuthorization: Bearer {token}\r\nX-Codex-Helper-Console: box.example"),
        ];
        for head in admitted {
            let (status, _, answer) = raw(addr, &head, "").await;
            assert_eq!(status, 200, "{head}\n{answer}");
        }
        let refused = [
            (format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\nSec-Fetch-Site: same-origin"), 403, "browser_request_refused"),
            (format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\n{console_header}\r\nSec-Fetch-Site: cross-site"), 403, "browser_request_refused"),
            (format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\n{console_header}\r\nSec-Fetch-Site: same-site"), 403, "browser_request_refused"),
            (format!("POST {BALANCES_REFRESH} HTTP/1.1\r\n{h}\r\n{console_header}\r\nOrigin: http://evil.example"), 403, "browser_request_refused"),
            (format!("POST {BALANCES_REFRESH} HTTP/1.1\r\n{h}\r\n{console_header}\r\nOrigin: null"), 403, "browser_request_refused"),
            // A reverse proxy on this machine connects from loopback for anyone.
            (format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\nX-Forwarded-For: 203.0.113.9"), 403, "token_required"),
            (format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\nForwarded: for=203.0.113.9"), 403, "token_required"),
            (format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\nX-Real-IP: 203.0.113.9"), 403, "token_required"),
            // A reverse proxy that says nothing (nginx's default keeps no X-Forwarded-For and
            // rewrites Host): the console's page was loaded as another host, so the token is asked.
            (format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\nX-Codex-Helper-Console: box.example:8080\r\nSec-Fetch-Site: same-origin"), 403, "token_required"),
            (format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\nX-Codex-Helper-Console: 203.0.113.9\r\nSec-Fetch-Site: same-origin"), 403, "token_required"),
            (format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\nX-Forwarded-For: 203.0.113.9\r\nAuthorization: Bearer wrong-token-0123456789"), 401, "bad_token"),
        ];
        for (head, want_status, code) in refused {
            let (status, _, answer) = raw(addr, &head, "").await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (want_status, Some(code)),
                "{head}"
            );
        }
        let (status, _, _) = raw(
            addr,
            &format!("GET {BALANCES} HTTP/1.1\r\n{h}\r\nX-Forwarded-For: 203.0.113.9\r\nAuthorization: Bearer {token}"),
            "",
        )
        .await;
        assert_eq!(status, 200, "a forwarded request with the token");
        assert_eq!(
            console.asked.lock().unwrap().len(),
            3,
            "only the admitted refreshes reached the console"
        );
        handle.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_client_round_trips_and_says_when_nothing_listens() {
    bounded(async {
        let (handle, _console) = start().await;
        let addr = handle.addr;
        let balances = client::balances(addr).await.unwrap();
        assert_eq!(balances, FakeConsole::default().balances());
        let report = client::refresh(addr, Some("monthly")).await.unwrap();
        assert_eq!(report.provider_filter.as_deref(), Some("monthly"));
        assert_eq!(report.balances, vec![balance("monthly", "7")]);
        let all = client::refresh(addr, None).await.unwrap();
        assert_eq!(all.provider_filter, None);

        let refused = client::refresh(addr, Some("nope")).await.unwrap_err();
        assert!(refused.downcast_ref::<client::Unreachable>().is_none());
        let text = format!("{refused:#}");
        assert!(
            text.contains("unknown_provider") && text.contains("monthly, paygo"),
            "{text}"
        );

        handle.shutdown().await;
        let gone = client::balances(addr).await.unwrap_err();
        assert!(
            gone.downcast_ref::<client::Unreachable>().is_some(),
            "{gone:#}"
        );
        assert!(
            format!("{gone:#}").contains("codex-helper serve"),
            "{gone:#}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_admin_api_will_not_listen_beyond_loopback() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let refused = admin::serve_admin(
        listener,
        Arc::new(FakeConsole::default()),
        admin::Access::default(),
    )
    .await;
    assert!(refused.is_err());
}
