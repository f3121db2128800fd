//! Running the HTTP server: bind, serve until a shutdown signal, finish in-flight requests,
//! then close the store.

use std::future::Future;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{redact_url, Config};
use crate::store::Store;
use crate::web::{router, AppState};

/// Connect the store and build the application state.
pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<AppState> {
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening the store at {}", redact_url(&config.database_url)))?;
    Ok(AppState::new(config, store, clock))
}

/// Serve on `listener` until `shutdown` resolves; requests in flight are completed.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = state.store.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
    store.close().await;
    Ok(())
}

/// Resolve on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}

/// `kefu serve`: load everything, bind, serve.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let state = build(config, std::sync::Arc::new(SystemClock)).await?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, "kefu listening");
    serve(state, listener, shutdown_signal()).await
}
