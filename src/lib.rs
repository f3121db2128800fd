//! kefu: the callback server and assistant behind a WeChat shop's customer service.
//!
//! Flow: WeCom / Official Account callback -> [`web`] (verify, decrypt with [`crypto`], parse
//! with [`wecom`]) -> [`channel`] (record once in [`store`], decide the answer) -> reply.

pub mod channel;
pub mod clock;
pub mod config;
pub mod console;
pub mod crm;
pub mod crypto;
pub mod demo;
pub mod ids;
pub mod intent;
pub mod library;
pub mod metrics;
pub mod server;
pub mod simulate;
pub mod store;
pub mod taxonomy;
pub mod tickets;
pub mod web;
pub mod wecom;

#[cfg(test)]
mod fuzz;
