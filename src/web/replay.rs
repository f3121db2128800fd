//! Replay protection for Official Account plaintext mode, where the signature covers only
//! the token, timestamp and nonce, never the body: a captured query string would otherwise
//! carry any body for the whole timestamp window. Each signed (timestamp, nonce) is bound to
//! the digest of the first body it came with. The same body again is a retry (WeChat
//! retries when it gets no answer within 5 s; the store answers it as a duplicate); another
//! body is a replay and is refused. Entries are kept for the timestamp window, then dropped.
//!
//! The memory is this process's: replicas behind a load balancer each keep their own, so a
//! replay that reaches another replica within the window is not caught by this alone (the
//! timestamp window still bounds it). Safe mode (an EncodingAESKey) binds the body to the
//! signature and needs none of this.

use std::collections::HashMap;
use std::sync::Mutex;

use sha1::{Digest, Sha1};

/// At most this many signed queries are remembered; past it the oldest half is dropped
/// first (a flood of distinct valid signatures needs the token).
const MAX_ENTRIES: usize = 100_000;

/// (timestamp, nonce) -> (SHA-1 of the first body, remembered until).
type Seen = HashMap<(String, String), ([u8; 20], i64)>;

#[derive(Default)]
pub struct ReplayGuard {
    seen: Mutex<Seen>,
}

impl ReplayGuard {
    /// True when `body` may be taken with this (timestamp, nonce) at `now_secs`: first seen,
    /// or seen with the same body. Remembered until `now_secs + window_secs`.
    pub fn admit(
        &self,
        timestamp: &str,
        nonce: &str,
        body: &str,
        now_secs: i64,
        window_secs: i64,
    ) -> bool {
        let digest: [u8; 20] = Sha1::digest(body.as_bytes()).into();
        let Ok(mut seen) = self.seen.lock() else {
            return true; // a poisoned map protects nothing; the timestamp window still holds
        };
        if seen.len() >= MAX_ENTRIES {
            seen.retain(|_, (_, until)| *until > now_secs);
            if seen.len() >= MAX_ENTRIES {
                let mut untils: Vec<i64> = seen.values().map(|(_, u)| *u).collect();
                untils.sort_unstable();
                let cut = untils[untils.len() / 2];
                seen.retain(|_, (_, until)| *until > cut);
            }
        }
        let key = (timestamp.to_owned(), nonce.to_owned());
        match seen.get(&key) {
            Some((d, until)) if *until > now_secs => *d == digest,
            _ => {
                seen.insert(key, (digest, now_secs + window_secs));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_passes_and_a_replay_with_another_body_does_not() {
        let g = ReplayGuard::default();
        assert!(g.admit("100", "n1", "<xml>a</xml>", 100, 300));
        assert!(
            g.admit("100", "n1", "<xml>a</xml>", 101, 300),
            "WeChat's retry"
        );
        assert!(!g.admit("100", "n1", "<xml>forged</xml>", 102, 300));
        assert!(
            g.admit("100", "n2", "<xml>forged</xml>", 102, 300),
            "another nonce"
        );
        // Past the window the entry is gone (and the timestamp check refuses it anyway).
        assert!(g.admit("100", "n1", "<xml>forged</xml>", 401, 300));
    }
}
