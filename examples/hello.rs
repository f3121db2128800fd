//! The load-test baseline: an axum "hello world" on the same runtime settings as kefu.
//! `cargo run --release --example hello -- 127.0.0.1:18081`

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".into());
    let app = axum::Router::new().route(
        "/wechat/callback",
        axum::routing::post(|| async { "success" }).get(|| async { "success" }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
