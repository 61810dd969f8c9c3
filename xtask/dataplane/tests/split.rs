//! The proxy against two real upstreams on loopback: requests split by the weights, a change of weights
//! takes effect, and weight 0 everywhere answers 503.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use dataplane::proxy::{Proxy, Upstream, UPSTREAM_HEADER};

/// A tiny upstream answering its own name on every path.
async fn upstream(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/version", get(move || async move { name }))
        .fallback(move |uri: axum::http::Uri| async move { format!("{name} {uri}") });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn start_proxy(weights: Vec<u32>) -> (Arc<Proxy>, SocketAddr) {
    let stable = upstream("stable").await;
    let canary = upstream("canary").await;
    let proxy = Proxy::new(
        vec![
            Upstream::parse(&format!(
                "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/stable/1=http://{stable}"
            ))
            .unwrap(),
            Upstream::parse(&format!(
                "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/canary/2=http://{canary}"
            ))
            .unwrap(),
        ],
        weights,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = proxy.clone();
    tokio::spawn(async move { serving.serve(listener).await.unwrap() });
    (proxy, addr)
}

/// Sends `n` requests, 8 at a time, and counts the answers by body.
async fn split(addr: SocketAddr, n: usize) -> HashMap<String, usize> {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut counts = HashMap::new();
    for _ in 0..n / 8 {
        let batch = (0..8).map(|_| {
            let client = client.clone();
            async move {
                let r = client.get(format!("http://{addr}/version")).send().await.unwrap();
                assert!(r.status().is_success());
                r.text().await.unwrap()
            }
        });
        for body in futures_join(batch).await {
            *counts.entry(body).or_insert(0) += 1;
        }
    }
    counts
}

async fn futures_join<F: std::future::Future<Output = String> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<String> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_split_by_the_weights() {
    let (proxy, addr) = start_proxy(vec![80, 20]).await;
    let n = 1000;
    let counts = split(addr, n).await;
    let canary = counts.get("canary").copied().unwrap_or(0) as f64 / n as f64;
    let stable = counts.get("stable").copied().unwrap_or(0) as f64 / n as f64;
    assert!((canary - 0.20).abs() <= 0.02, "{counts:?}");
    assert!((stable - 0.80).abs() <= 0.02, "{counts:?}");

    // The watcher's job in the sandbox: a change of weights applies to the next requests.
    assert!(proxy.set_weights(vec![50, 50]));
    let counts = split(addr, 400).await;
    assert_eq!(counts.get("canary"), Some(&200), "{counts:?}");
    assert!(proxy.set_weights(vec![0, 100]));
    let counts = split(addr, 80).await;
    assert_eq!(counts.get("canary"), Some(&80), "{counts:?}");

    let served: u64 = proxy.counters().iter().map(|(f, _)| f).sum();
    assert_eq!(served, 1480);
}

#[tokio::test]
async fn path_query_method_and_headers_reach_the_upstream_and_the_upstream_is_named() {
    let (_proxy, addr) = start_proxy(vec![1, 0]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client
        .get(format!("http://{addr}/api/auth/me?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[UPSTREAM_HEADER], "stable");
    assert_eq!(r.text().await.unwrap(), "stable /api/auth/me?x=1");
}

#[tokio::test]
async fn no_weight_anywhere_answers_503_and_a_dead_upstream_502() {
    let (proxy, addr) = start_proxy(vec![0, 0]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(r.status(), 503);

    let dead = Proxy::new(
        vec![Upstream::parse("arn:tg/dead=http://127.0.0.1:9").unwrap()],
        vec![1],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { dead.serve(listener).await.unwrap() });
    let r = client.get(format!("http://{dead_addr}/")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    drop(proxy);
}
