//! Property tests over every input parser with arbitrary input: nothing panics, and every
//! rejection says why. `KEFU_FUZZ_CASES` sets the cases per target (default 2,000 so the test
//! suite stays quick; the long run uses 100,000:
//! `KEFU_FUZZ_CASES=100000 cargo nextest run --release fuzz`).
//!
//! Targets: the callback envelope and message XML (arbitrary bytes, and XML built from the
//! real field names with arbitrary contents), the decrypted payload (arbitrary ciphertext,
//! and arbitrary plaintext framed and encrypted with the right key, so the framing checks
//! run), and the purchase-history CSV import (arbitrary bytes through encoding detection
//! and parsing). `sync_msg` pages are covered in `channel::kf::pull`, query strings over
//! HTTP in the integration tests.

use proptest::prelude::*;

use crate::crypto::MsgCrypt;
use crate::wecom::{parse_envelope, parse_message};

pub(crate) fn cases() -> u32 {
    std::env::var("KEFU_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// Field names of WeCom and Official Account callbacks, and a few others.
const FIELDS: &[&str] = &[
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Content",
    "MsgId",
    "Event",
    "EventKey",
    "Encrypt",
    "AgentID",
    "Token",
    "OpenKfId",
    "PicUrl",
    "MediaId",
    "Format",
    "Recognition",
    "Location_X",
    "Location_Y",
    "Scale",
    "Label",
    "Title",
    "Description",
    "Url",
    "xml",
    "x",
];

fn xml_like() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<String>(),
        "[0-9]{0,25}".prop_map(|s| s),
        "[\\PC]{0,40}".prop_map(|s| s),
        Just("]]>".to_string()),
        Just("<![CDATA[".to_string()),
    ];
    let field = (
        prop::sample::select(FIELDS),
        value,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, v, cdata, close)| {
            let body = if cdata { format!("<![CDATA[{v}]]>") } else { v };
            if close {
                format!("<{name}>{body}</{name}>")
            } else {
                format!("<{name}>{body}")
            }
        });
    (
        prop::collection::vec(field, 0..12),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(fields, open, close)| {
            let mut s = String::new();
            if open {
                s.push_str("<xml>");
            }
            s.push_str(&fields.concat());
            if close {
                s.push_str("</xml>");
            }
            s
        })
}

fn crypt() -> MsgCrypt {
    MsgCrypt::new(
        "QDG6eK",
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        "wx5823bf96d3bd56c7",
    )
    .expect("the published test key")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn envelope_and_message_xml_from_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = parse_envelope(&text) {
            prop_assert!(!e.reason().is_empty());
        }
        if let Err(e) = parse_message(&text) {
            prop_assert!(!e.reason().is_empty());
        }
    }

    #[test]
    fn envelope_and_message_xml_from_real_field_names(text in xml_like()) {
        if let Err(e) = parse_envelope(&text) {
            prop_assert!(!e.reason().is_empty());
        }
        match parse_message(&text) {
            Ok(m) => {
                // Whatever was read can be keyed and described without panicking.
                let _ = m.dedup_key(&text);
                let _ = m.text();
                let _ = m.event_name();
            }
            Err(e) => prop_assert!(!e.reason().is_empty()),
        }
    }

    #[test]
    fn decrypting_arbitrary_ciphertext_is_refused_with_a_reason(s in any::<String>(), raw in prop::collection::vec(any::<u8>(), 0..400)) {
        let c = crypt();
        if let Err(e) = c.decrypt(&s) {
            prop_assert!(!e.reason().is_empty());
        }
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        if let Err(e) = c.decrypt(&b64) {
            prop_assert!(!e.reason().is_empty());
        }
    }

    #[test]
    fn decrypting_arbitrary_framed_plaintext_never_panics(plain in prop::collection::vec(any::<u8>(), 0..300)) {
        // The right key over arbitrary bytes: padding, length prefix and receive id are
        // what is checked.
        let c = crypt();
        let enc = c.encrypt_raw_for_tests(&plain);
        if let Err(e) = c.decrypt(&enc) {
            prop_assert!(!e.reason().is_empty());
        }
    }

    #[test]
    fn purchase_history_csv_from_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..800)) {
        if let Ok((text, _)) = crate::crm::import::decode(&bytes) {
            if let Err(e) = crate::crm::import::parse(&text, 1_700_000_000_000) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn purchase_history_csv_from_plausible_rows(rows in prop::collection::vec(
        prop::collection::vec(prop_oneof![any::<String>(), "[0-9.,¥-]{0,12}", "20[0-9]{2}-[0-9]{2}-[0-9]{2}"], 0..8), 0..20)) {
        let mut text = String::from("external_userid,name,tags,orders,total_spent,last_order_at\n");
        for row in rows {
            let cells: Vec<String> = row.iter().map(|c| format!("\"{}\"", c.replace('"', "\"\""))).collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        if let Err(e) = crate::crm::import::parse(&text, 1_700_000_000_000) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
