//! The HTTP ceiling: what a minimal handler of `/me`'s shape answers on this machine, served and driven as
//! the service is, so that `/me` can be stated as a share of what HTTP alone allows.

use serde_json::json;

/// A stop handle for the ceiling server: dropping it shuts the server down and joins its thread.
pub(crate) struct CeilingServer {
    pub(crate) url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for CeilingServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The HTTP ceiling: a minimal handler answering `GET /api/auth/me` with 200 and a small JSON body (the
/// shape of `/me`'s), served by axum on a runtime of its own with `workers` threads (as the service's), so
/// that driving it the same way as the service measures what HTTP alone costs on this machine.
pub(crate) fn ceiling_server(workers: usize) -> anyhow::Result<CeilingServer> {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = addr_tx.send(Err(anyhow::anyhow!("cannot start the ceiling's runtime: {e}")));
                return;
            }
        };
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(listener) => listener,
                Err(e) => {
                    let _ = addr_tx.send(Err(anyhow::anyhow!("cannot bind the ceiling server: {e}")));
                    return;
                }
            };
            let _ = addr_tx.send(listener.local_addr().map_err(anyhow::Error::from));
            let app = axum::Router::new().route(
                "/api/auth/me",
                axum::routing::get(|| async {
                    axum::Json(json!({ "id": "00000000-0000-0000-0000-000000000000", "email": "ceiling@example.com" }))
                }),
            );
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
    });
    let addr = addr_rx.recv()??;
    Ok(CeilingServer {
        url: format!("http://{addr}"),
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}
