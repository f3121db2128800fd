//! Running the HTTP server: wire the services from the configuration (the one place that
//! does), bind, serve until a shutdown signal, finish in-flight requests, then close the
//! store, all within `[server] shutdown_timeout`. The connections themselves (the cap, the
//! header timeout, closing what is left) are in [`connections`].

mod connections;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::channel::kf::KfService;
use crate::channel::Intake;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{redact_url, Config};
use crate::intent::SharedClassifier;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tickets::TicketService;
use crate::web::{App, AppState, MpChannel, Services};
use crate::wecom::api::{RetryPolicy, WecomClient};

/// Load the reply library, connect the store and wire the services into the application
/// state.
pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<AppState> {
    let dir = config.replies_dir.clone();
    let thresholds = config.classifier;
    let (classifier, report) =
        tokio::task::spawn_blocking(move || SharedClassifier::load(&dir, thresholds))
            .await
            .context("building the classifier")?
            .with_context(|| {
                format!(
                    "loading the reply library from {}",
                    config.replies_dir.display()
                )
            })?;
    tracing::info!(
        replies = report.replies,
        questions = report.questions,
        build_ms = report.build_ms,
        "reply library loaded"
    );
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening the store at {}", redact_url(&config.database_url)))?
        .with_write_timeout(config.store_write_timeout);
    wire(config, store, clock, Arc::new(classifier))
}

/// Build every service from the configuration: the WeCom client and the kf loop (when
/// `[wecom] secret` is set), the intake, and each channel's callback crypto.
fn wire(
    config: Config,
    store: Store,
    clock: SharedClock,
    classifier: Arc<SharedClassifier>,
) -> anyhow::Result<AppState> {
    let metrics = Arc::new(Metrics::new());
    let tickets = Arc::new(TicketService::new(
        clock.clone(),
        config.ticket_settings(),
        metrics.clone(),
    ));
    let mut kf = None;
    if let Some((w, secret)) = config
        .wecom
        .as_ref()
        .and_then(|w| Some((w, w.secret.as_deref()?)))
    {
        let client = WecomClient::new(
            &w.api_base,
            &w.corp_id,
            secret,
            Some(store.clone()),
            metrics.clone(),
            clock.clone(),
            RetryPolicy::default(),
        )?;
        let kf_service = KfService::new(
            store.clone(),
            Arc::new(client),
            classifier.clone(),
            clock.clone(),
            config.acks.clone(),
            tickets.clone(),
            w.alert_webhook_key.clone(),
        );
        kf_service.set_outbox_lease(w.outbox_lease);
        kf = Some(kf_service);
    }
    let mut intake = Intake::new(
        store.clone(),
        metrics.clone(),
        clock.clone(),
        classifier.clone(),
        config.acks.ack_text.clone(),
    );
    if let Some(kf) = &kf {
        intake = intake.with_kf(kf.clone());
    }
    let wecom_crypt = config.wecom.as_ref().map(|w| Arc::new(w.crypt()));
    let login_limiter = crate::console::LoginLimiter::new(config.console.login_window_ms);
    let mp = config.mp.as_ref().map(|m| {
        Arc::new(MpChannel {
            token: m.token.clone(),
            replays: Default::default(),
            crypt: m.crypt(),
        })
    });
    let feed = crate::console::feed::Feed::new(store.pool().clone());
    Ok(AppState::new(Services {
        config: Arc::new(config),
        store,
        metrics,
        clock,
        classifier,
        intake,
        kf,
        tickets,
        wecom_crypt,
        mp,
        login_limiter,
        feed,
    }))
}

/// Reload the reply library on SIGHUP, for as long as the process runs.
pub fn reload_on_sighup(classifier: Arc<SharedClassifier>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            let c = classifier.clone();
            match tokio::task::spawn_blocking(move || c.reload()).await {
                Ok(Ok(r)) => tracing::info!(
                    replies = r.replies,
                    build_ms = r.build_ms,
                    "reply library reloaded (SIGHUP)"
                ),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reply library reload failed; keeping the previous one")
                }
                Err(e) => tracing::error!(error = %e, "reply library reload panicked"),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = classifier;
}

/// Serve on `listener` until `shutdown` resolves; requests in flight are completed within
/// `[server] shutdown_timeout`, then the store is closed.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_workers(state, listener, shutdown, Vec::new()).await
}

/// [`serve`], and on shutdown wait for `workers` too (they were told to stop by `shutdown`
/// itself) before the store is closed under them.
///
/// The shutdown has one deadline, `shutdown_timeout` after the signal: connections and
/// workers get all of it but a short reserve; then the connections still open (a client
/// that sends half a request and stops, a console event stream) are closed, workers still
/// running are aborted, and the store gets the reserve to flush and close.
async fn serve_with_workers(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mut workers: Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<()> {
    let limits = state.config.server;
    let store = state.store.clone();
    // Open console pages hold event streams: end them when shutdown begins, so that
    // draining the connections does not wait for them.
    let feed = state.feed.clone();
    let shutdown = async move {
        shutdown.await;
        feed.close();
    };
    let open = connections::accept_until(listener, App::new(state), &limits, shutdown).await;

    let deadline = tokio::time::Instant::now() + limits.shutdown_timeout;
    let reserve = (limits.shutdown_timeout / 5).min(Duration::from_secs(1));
    let drain_until = deadline - reserve;
    let (drained, stopped) = tokio::join!(
        tokio::time::timeout_at(drain_until, open.closed()),
        tokio::time::timeout_at(drain_until, join_workers(&mut workers)),
    );
    if drained.is_err() {
        tracing::warn!(
            connections = open.open(),
            "closing the connections still open at the shutdown deadline"
        );
        open.close_all();
        let _ = tokio::time::timeout_at(deadline, open.closed()).await;
    }
    if stopped.is_err() {
        tracing::warn!("background workers did not stop by the shutdown deadline; aborted");
        for w in &workers {
            w.abort();
        }
    }
    if tokio::time::timeout_at(deadline, store.close())
        .await
        .is_err()
    {
        tracing::warn!("the store did not close by the shutdown deadline");
    }
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
    let state = build(config, Arc::new(SystemClock)).await?;
    reload_on_sighup(state.classifier.clone());
    let (stop_workers, workers_stop) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    if let Some(kf) = &state.kf {
        workers = kf.spawn_workers(std::time::Duration::from_secs(30), workers_stop);
    } else {
        if state.config.wecom.is_some() {
            tracing::warn!(
                "[wecom] has no secret: kf callbacks are recorded but messages are not pulled"
            );
        }
        // Official Account tickets still need their watch and routing.
        workers.push(crate::tickets::worker::spawn(
            state.store.clone(),
            state.tickets.clone(),
            workers_stop,
        ));
    }
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, "kefu listening");
    // On a signal the background workers are told to stop (each finishes the item in hand)
    // while the server drains its requests; the store is closed once both are done or the
    // shutdown deadline has come, so a worker never finds the store closed under it.
    let shutdown = async move {
        shutdown_signal().await;
        let _ = stop_workers.send(true);
    };
    serve_with_workers(state, listener, shutdown, workers).await
}

/// Wait for every handle (a worker that panicked is already logged by its own task).
async fn join_workers(handles: &mut [tokio::task::JoinHandle<()>]) {
    for h in handles.iter_mut() {
        let _ = h.await;
    }
}
