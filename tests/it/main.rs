//! The integration tests, one binary: kefu run in-process against SQLite and PostgreSQL
//! ([`common`] is the harness), the real `kefu` binary, and interop with independent peers.

#[macro_use]
mod common;

mod binary;
mod callbacks;
mod classifier;
mod console;
mod crm;
mod dashboard;
mod fault;
mod fuzz_http;
mod interop;
mod kf;
mod limits;
mod reply_stats;
mod secrets;
mod tickets;
mod wecom_api;
