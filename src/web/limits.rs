//! Per-request time limits: the body must arrive within `[server] body_read_timeout` of the
//! headers (else 408 and the connection is closed), and the response must start within
//! `request_timeout` (else 503). The header timeout, the connection cap and the shutdown
//! bound belong to the connections, in `crate::server`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::AppState;

/// Wrap the body in its deadline, run the request (`run`) within its own, both counted from
/// `started`, when [`super::measure`] took the request in; `route` names it in the warnings.
/// Called by `measure`, so that a request passes one layer, not two.
pub(super) async fn limit<F, Fut>(
    state: &AppState,
    route: &str,
    started: std::time::Instant,
    req: Request,
    run: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let limits = state.config.server;
    let started = Instant::from_std(started);
    let cut = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| {
        if body.is_end_stream() {
            body
        } else {
            Body::new(DeadlineBody {
                inner: body,
                due: started + limits.body_read_timeout,
                deadline: None,
                cut: cut.clone(),
            })
        }
    });
    match tokio::time::timeout_at(started + limits.request_timeout, run(req)).await {
        // Whatever the handler made of a body that stopped short (a 400, a 413), the client
        // was too slow: say so, and do not read what it may still send.
        Ok(_) if cut.load(Ordering::Relaxed) => {
            tracing::warn!(
                route,
                "request body not received in time; connection closed"
            );
            (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                "body_timeout",
            )
                .into_response()
        }
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(route, "request not answered in time");
            (StatusCode::SERVICE_UNAVAILABLE, "request_timeout").into_response()
        }
    }
}

/// The client did not send the whole body in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within the body read timeout")]
struct BodyTimeout;

/// A request body that fails once its deadline passes, and says so through `cut`.
struct DeadlineBody {
    inner: Body,
    /// When the body must have arrived.
    due: Instant,
    /// The timer for `due`, set the first time the body is not there yet: a body that came
    /// with its headers (a callback's, as a rule) never needs one.
    deadline: Option<Pin<Box<Sleep>>>,
    cut: Arc<AtomicBool>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let due = this.due;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if deadline.as_mut().poll(cx).is_ready() {
            this.cut.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
