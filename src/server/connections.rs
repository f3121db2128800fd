//! The accept loop and its connections: at most `[server] max_connections` at once (the
//! next waits in the listen backlog until one closes), each closed when a request's headers
//! do not arrive within `header_read_timeout`; on shutdown, no new connection is accepted,
//! each open one finishes the request in hand, and whatever is left is closed when the
//! shutdown's time is up.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::config::ServerLimits;
use crate::web::App;

/// Where the server is in its life; every connection watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Finish the request in hand, then close (an idle connection closes at once).
    Draining,
    /// Close now, whatever the client is doing.
    Closing,
}

/// The connections still open once the accept loop has stopped.
pub(super) struct Connections {
    permits: Arc<Semaphore>,
    max: u32,
    phase: watch::Sender<Phase>,
}

impl Connections {
    /// Resolve when every connection has closed.
    pub(super) async fn closed(&self) {
        // Each connection holds one permit until it ends.
        let _all = self.permits.acquire_many(self.max).await;
    }

    /// How many connections are open.
    pub(super) fn open(&self) -> usize {
        (self.max as usize).saturating_sub(self.permits.available_permits())
    }

    /// Close every connection now.
    pub(super) fn close_all(&self) {
        self.phase.send_replace(Phase::Closing);
    }
}

/// Accept and serve connections on `listener` until `shutdown` resolves; then stop
/// accepting (the listener is closed) and ask every connection to finish.
pub(super) async fn accept_until(
    listener: TcpListener,
    app: App,
    limits: &ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Connections {
    let max = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let permits = Arc::new(Semaphore::new(max as usize));
    let (phase, watching) = watch::channel(Phase::Serving);
    tokio::pin!(shutdown);
    loop {
        // A permit first: past the cap, connections stay in the kernel's backlog instead of
        // being accepted and left unserved.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            app.clone(),
            limits.header_read_timeout,
            watching.clone(),
            permit,
        ));
    }
    drop(listener);
    phase.send_replace(Phase::Draining);
    Connections {
        permits,
        max,
        phase,
    }
}

/// A client that gave up before we accepted it is nothing to wait for; anything else (out
/// of file descriptors) is waited out for a moment rather than retried in a hot loop.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serve HTTP/1.1 on one connection until it ends or the server closes it; the permit is
/// given back when it does.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: App,
    header_read_timeout: Duration,
    mut phase: watch::Receiver<Phase>,
    _permit: OwnedSemaphorePermit,
) {
    // The peer address is what the console's login rate limit counts per client (see App).
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.serve(req.map(Body::new), peer).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        match *phase.borrow_and_update() {
            Phase::Closing => return,
            Phase::Draining if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            _ => {}
        }
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection closed");
                }
                return;
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
