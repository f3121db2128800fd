//! WXBizMsgCrypt: the message crypto shared by WeCom callbacks, WeCom Customer Service
//! and WeChat Official Accounts in safe mode.
//!
//! The envelope is `base64(AES-256-CBC(random[16] | len:u32be | message | receive_id))`,
//! padded with PKCS#7 to a 32-byte block, keyed by `base64(EncodingAESKey + "=")` with the
//! first 16 key bytes as IV. The signature is SHA-1 over the sorted
//! `[token, timestamp, nonce, encrypt]`. Every check the official SDK makes is made here,
//! and a few it skips (padding range, all padding bytes equal) are made strictly, because a
//! lenient decoder is an oracle for whoever can post to the callback URL.

use aes::cipher::{block_padding::NoPadding, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD as B64};
use base64::Engine;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// PKCS#7 block size used by WXBizMsgCrypt (not the AES block size of 16).
const PAD_BLOCK: usize = 32;
const RANDOM_LEN: usize = 16;
const HEADER_LEN: usize = RANDOM_LEN + 4;

/// Why a crypto operation failed. `code()` gives the official SDK's number and `reason()` a
/// short stable label used in responses, logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("signature mismatch")]
    Signature,
    #[error("EncodingAESKey must be 43 characters of base64")]
    IllegalAesKey,
    #[error("receive id mismatch")]
    ReceiveId,
    #[error("ciphertext is not base64")]
    Base64,
    #[error("ciphertext length is not a positive multiple of 16")]
    CiphertextLength,
    #[error("bad padding")]
    Padding,
    #[error("plaintext shorter than its header")]
    TooShort,
    #[error("length field points past the end")]
    LengthPastEnd,
    #[error("message is not UTF-8")]
    NotUtf8,
}

impl CryptoError {
    /// The error number the official WXBizMsgCrypt SDK uses for this failure.
    pub fn code(&self) -> i32 {
        match self {
            CryptoError::Signature => -40001,
            CryptoError::IllegalAesKey => -40004,
            CryptoError::ReceiveId => -40005,
            CryptoError::CiphertextLength | CryptoError::Padding => -40007,
            CryptoError::TooShort | CryptoError::LengthPastEnd | CryptoError::NotUtf8 => -40008,
            CryptoError::Base64 => -40010,
        }
    }

    /// Short snake_case label for metrics and client-facing error bodies.
    pub fn reason(&self) -> &'static str {
        match self {
            CryptoError::Signature => "bad_signature",
            CryptoError::IllegalAesKey => "illegal_aes_key",
            CryptoError::ReceiveId => "receive_id_mismatch",
            CryptoError::Base64 => "bad_base64",
            CryptoError::CiphertextLength => "bad_ciphertext_length",
            CryptoError::Padding => "bad_padding",
            CryptoError::TooShort => "plaintext_too_short",
            CryptoError::LengthPastEnd => "length_past_end",
            CryptoError::NotUtf8 => "not_utf8",
        }
    }
}

/// EncodingAESKeys are 43 random base64 characters, so the last one usually carries non-zero
/// trailing bits that a strict decoder refuses; the official SDKs ignore them.
const KEY_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Decode an EncodingAESKey into the 32-byte AES key.
pub fn decode_aes_key(encoding_aes_key: &str) -> Result<[u8; 32], CryptoError> {
    if encoding_aes_key.len() != 43 {
        return Err(CryptoError::IllegalAesKey);
    }
    let mut padded = String::with_capacity(44);
    padded.push_str(encoding_aes_key);
    padded.push('=');
    let bytes = KEY_B64
        .decode(padded)
        .map_err(|_| CryptoError::IllegalAesKey)?;
    bytes.try_into().map_err(|_| CryptoError::IllegalAesKey)
}

/// SHA-1 hex over the sorted, concatenated parts. With three parts
/// (`token, timestamp, nonce`) this is the Official Account `signature`; with four (adding
/// `encrypt`) it is `msg_signature`.
pub fn sha1_signature(parts: &[&str]) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    sorted.sort_unstable();
    let hex = sha1_hex(&sorted);
    // Lowercase hex digits are ASCII.
    String::from_utf8_lossy(&hex).into_owned()
}

/// SHA-1 of the parts as given, concatenated, as 40 lowercase hex digits.
fn sha1_hex(parts: &[&str]) -> [u8; 40] {
    let mut hasher = Sha1::new();
    for p in parts {
        hasher.update(p.as_bytes());
    }
    let mut hex = [0u8; 40];
    // 20 bytes always fit 40 digits.
    let _ = hex::encode_to_slice(hasher.finalize(), &mut hex);
    hex
}

/// Whether `received` is the signature over `parts` (sorted first, as [`sha1_signature`]
/// does), compared in constant time; nothing is allocated, as every callback checks one or two.
pub fn signature_of_matches<const N: usize>(mut parts: [&str; N], received: &str) -> bool {
    parts.sort_unstable();
    bytes_match(&sha1_hex(&parts), received.as_bytes())
}

/// Compare a received signature with the expected one without leaking, through timing, how
/// many leading characters matched.
pub fn signature_matches(expected: &str, received: &str) -> bool {
    bytes_match(expected.as_bytes(), received.as_bytes())
}

fn bytes_match(expected: &[u8], received: &[u8]) -> bool {
    expected.len() == received.len() && bool::from(expected.ct_eq(received))
}

/// One configured channel's crypto: its token, AES key and receive id (CorpID or AppID).
#[derive(Clone)]
pub struct MsgCrypt {
    token: String,
    key: [u8; 32],
    receive_id: String,
}

impl std::fmt::Debug for MsgCrypt {
    // Token and key are secrets: never print them, even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgCrypt")
            .field("receive_id", &self.receive_id)
            .finish_non_exhaustive()
    }
}

impl MsgCrypt {
    pub fn new(token: &str, encoding_aes_key: &str, receive_id: &str) -> Result<Self, CryptoError> {
        Ok(MsgCrypt {
            token: token.to_owned(),
            key: decode_aes_key(encoding_aes_key)?,
            receive_id: receive_id.to_owned(),
        })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn receive_id(&self) -> &str {
        &self.receive_id
    }

    /// `msg_signature` over `[token, timestamp, nonce, encrypt]`.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        sha1_signature(&[&self.token, timestamp, nonce, encrypt])
    }

    /// Check `msg_signature` in constant time.
    pub fn verify_signature(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CryptoError> {
        if signature_of_matches([&self.token, timestamp, nonce, encrypt], msg_signature) {
            Ok(())
        } else {
            Err(CryptoError::Signature)
        }
    }

    /// Verify the signature, then decrypt. This is the only order a caller should use.
    pub fn verify_and_decrypt(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<String, CryptoError> {
        self.verify_signature(msg_signature, timestamp, nonce, encrypt)?;
        self.decrypt(encrypt)
    }

    /// Decrypt an `Encrypt` value and check its layout and receive id.
    pub fn decrypt(&self, encrypt: &str) -> Result<String, CryptoError> {
        let mut buf = B64
            .decode(encrypt.trim())
            .map_err(|_| CryptoError::Base64)?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(CryptoError::CiphertextLength);
        }
        let iv: [u8; 16] = self.iv();
        let msg_end = {
            let plain = Aes256CbcDec::new(&self.key.into(), &iv.into())
                .decrypt_padded::<NoPadding>(&mut buf)
                .map_err(|_| CryptoError::CiphertextLength)?;
            let plain = strip_pkcs7_32(plain)?;
            if plain.len() < HEADER_LEN {
                return Err(CryptoError::TooShort);
            }
            let mut len_bytes = [0u8; 4];
            len_bytes.copy_from_slice(&plain[RANDOM_LEN..HEADER_LEN]);
            let msg_len = u32::from_be_bytes(len_bytes) as usize;
            let msg_end = HEADER_LEN
                .checked_add(msg_len)
                .filter(|end| *end <= plain.len())
                .ok_or(CryptoError::LengthPastEnd)?;
            if &plain[msg_end..] != self.receive_id.as_bytes() {
                return Err(CryptoError::ReceiveId);
            }
            msg_end
        };
        // The message is a prefix of the decrypted buffer once its header is dropped: the
        // buffer becomes the string.
        buf.truncate(msg_end);
        buf.drain(..HEADER_LEN);
        String::from_utf8(buf).map_err(|_| CryptoError::NotUtf8)
    }

    /// Encrypt with a fresh random 16-byte prefix.
    pub fn encrypt(&self, message: &str) -> String {
        let mut random = [0u8; RANDOM_LEN];
        rand::fill(&mut random);
        self.encrypt_with_random(message, &random)
    }

    /// Encrypt with a given prefix; deterministic, so published vectors can be reproduced.
    pub fn encrypt_with_random(&self, message: &str, random: &[u8; RANDOM_LEN]) -> String {
        let body_len = HEADER_LEN + message.len() + self.receive_id.len();
        let pad = PAD_BLOCK - body_len % PAD_BLOCK;
        let mut buf = Vec::with_capacity(body_len + pad);
        buf.extend_from_slice(random);
        buf.extend_from_slice(&(message.len() as u32).to_be_bytes());
        buf.extend_from_slice(message.as_bytes());
        buf.extend_from_slice(self.receive_id.as_bytes());
        buf.resize(body_len + pad, pad as u8);
        let len = buf.len();
        let iv = self.iv();
        let cipher = Aes256CbcEnc::new(&self.key.into(), &iv.into())
            .encrypt_padded::<NoPadding>(&mut buf, len)
            // The buffer is a multiple of 32 bytes by construction.
            .expect("buffer is block aligned");
        B64.encode(cipher)
    }

    /// Build the encrypted passive-reply envelope for `reply_xml`.
    pub fn encrypt_reply(&self, reply_xml: &str, timestamp: &str, nonce: &str) -> String {
        let encrypt = self.encrypt(reply_xml);
        let signature = self.signature(timestamp, nonce, &encrypt);
        format!(
            "<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><MsgSignature><![CDATA[{signature}]]></MsgSignature><TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )
    }

    /// Encrypt arbitrary bytes with the key, PKCS#7-padded to 32 but without the message
    /// framing: what a decrypt of a well-signed but malformed payload meets.
    #[cfg(test)]
    pub(crate) fn encrypt_raw_for_tests(&self, plain: &[u8]) -> String {
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        let mut buf = plain.to_vec();
        buf.resize(plain.len() + pad, pad as u8);
        let len = buf.len();
        let iv = self.iv();
        let cipher = Aes256CbcEnc::new(&self.key.into(), &iv.into())
            .encrypt_padded::<NoPadding>(&mut buf, len)
            .expect("buffer is block aligned");
        B64.encode(cipher)
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }
}

fn strip_pkcs7_32(plain: &[u8]) -> Result<&[u8], CryptoError> {
    let pad = *plain.last().ok_or(CryptoError::Padding)? as usize;
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return Err(CryptoError::Padding);
    }
    let (body, padding) = plain.split_at(plain.len() - pad);
    if padding.iter().any(|b| *b as usize != pad) {
        return Err(CryptoError::Padding);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "QDG6eK";
    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const RID: &str = "wx5823bf96d3bd56c7";
    const TS: &str = "1700000000";
    const NONCE: &str = "1234567890";

    fn crypt() -> MsgCrypt {
        MsgCrypt::new(TOKEN, KEY, RID).unwrap()
    }

    #[test]
    fn official_url_verification_sample() {
        let echostr =
            "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
        let out = crypt()
            .verify_and_decrypt(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
                "1409659589",
                "263014780",
                echostr,
            )
            .unwrap();
        assert_eq!(out, "1616140317555161061");
    }

    const V2_MSG: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[我的快递到哪了？]]></Content><MsgId>7300000000000000001</MsgId><AgentID>1000002</AgentID></xml>";
    const V2_ENC: &str = "2JaQ0H0H/TuqGM/rDRTvaz3Kj8S2Bi/wtXS+8XORA8VFh8GfMl2t6LTWgnncE3P6UBguaaJ+lqOE2iQH96DUtYovfF4IuaqzdWj8Uqyfqr4HNMeZ+U8M57eAqjO6gKsia9q+LBMnN63qDrx+NDPJGu62SeQCnrepuS3A/colOaTMRiOc3UInkVdTfEZeEBzjD+Mhn/1XA30oMq7dwsfCnmeMX6iSnztrVtE4rp5FAsrmqKPpA0tNHdbCPxLGx4RlOZM9Ln7rI17fIBo+w/guN5OgDjgoT5/MeFeGa3jU9UOUCflmtEuZojd4PdtT7d1ddQGOdzHD6OFQoG1MhXJ1D4tYMOkRW6AkF+FOciO25xla962Y9f7sWW4pG2c3kjBYfrVGDQcApUGSQibGFNQyFfeWAlaJMXWiEqQMbLxOjxWb+7/4ESU+N3Ifs/g2/Q5BZUjo3wCiMumf4ghbvlVrPw==";

    fn positive_vectors() -> Vec<(&'static str, [u8; 16], String, &'static str, &'static str)> {
        vec![
            (
                "V1",
                *b"0123456789abcdef",
                "hello".to_string(),
                "sKqRbbiSUnDhFHOvPjtUMd2aKGsnO1wGUhhgmucZyOooAmp9WiC5uDkjoOv6eP1l5uh45DeEw9aco5AR3vyVtA==",
                "c4862e864cf63bb7a72f1306ad027e6c6dae467a",
            ),
            ("V2", *b"aaaaaaaaaaaaaaaa", V2_MSG.to_string(), V2_ENC, "5a95806ca8a591f55e949661e49f4e058230ea86"),
            (
                "V3",
                *b"ZZZZZZZZZZZZZZZZ",
                String::new(),
                "o78FN2H2t3O3ttdDXMpRQkHvOFBWKrCB4HyuQEuRIZaF1watGsVxqH/AJaJCwiUyyWAbLY1K1nRIbqD42rdgKA==",
                "c07b3365c6a197ea5b43ac50e907ae4e0914b2bd",
            ),
            (
                "V4",
                *b"0000000000000000",
                "x".repeat(26),
                "PzGmUgWk50kxC6Ee1E5Yx3dEJlglFNfN+56kBeqpK6kzMM8moe5EGb3wcYUIqQPzqLWR4O6GVdYlETfO8xEijb744kW7Tu5IXiIdFrIp+Zq1Xvq/Gxw5cc01T7vmRDea",
                "c5bffe4c8d868da5090ca863ebc7847831d5cb21",
            ),
        ]
    }

    #[test]
    fn positive_vectors_encrypt_sign_and_decrypt() {
        let c = crypt();
        for (name, random, msg, enc, sig) in positive_vectors() {
            assert_eq!(c.encrypt_with_random(&msg, &random), enc, "{name} encrypt");
            assert_eq!(c.signature(TS, NONCE, enc), sig, "{name} signature");
            assert_eq!(
                c.verify_and_decrypt(sig, TS, NONCE, enc).unwrap(),
                msg,
                "{name} decrypt"
            );
        }
    }

    #[test]
    fn negative_vectors_fail_for_the_stated_reason() {
        let c = crypt();
        let cases = [
            ("N1", "sKqRbbiSUnDhFHOvPjtUMd2aKGsnO1wGUhhgmucZyOoIM2G+JuTcG3m932brsR3vHRQv3eZH9pw7FaFrXlEnfw==", "65b3ff845799004c8a7fd276dfc93d8736f4d93c", CryptoError::Padding),
            ("N2", "sKqRbbiSUnDhFHOvPjtUMd2aKGsnO1wGUhhgmucZyOoHHBtcYZhtbSUhE9jrNG28ire9HzG8Ul/yamXZcMm0Vg==", "f25db5b5b3a4d160f7384de7774ce6e00bcd50cb", CryptoError::Padding),
            ("N3", "sKqRbbiSUnDhFHOvPjtUMd3wpnMxu6Hw8Fbs9OHMo9fnQOmxIfI+S07V1aNvYHF7lgAHXmZUUYcL/zkQvCTJBg==", "aa28298468863544de26c3062cb5bd74d1dc452a", CryptoError::LengthPastEnd),
            ("N4", "sKqRbbiSUnDhFHOvPjtUMXpetsoCvsaT4eFI89MmDwD7DXobFg6st5aLC50gwDzS0Yu1YccLdUKwDu8wn6aJtg==", "3a837772c32ceeaa59ab6058ba2374cea0bdc28c", CryptoError::ReceiveId),
            ("N5", "sKqRbbiSUnDhFHOvPjtUMXpetsoCvsaT4eFI89MmDwD7DXobFg6st5aLC50gwDzS0Yu1YccLdUKwDu8=", "95c9dd0cd6898121f7cfff301f55c2117396381a", CryptoError::CiphertextLength),
        ];
        for (name, enc, sig, want) in cases {
            // The signature is valid, so each must fail after it, for its own reason.
            c.verify_signature(sig, TS, NONCE, enc).unwrap();
            assert_eq!(
                c.verify_and_decrypt(sig, TS, NONCE, enc),
                Err(want),
                "{name}"
            );
        }
    }

    #[test]
    fn any_changed_signature_character_is_rejected() {
        let c = crypt();
        for (name, _, _, enc, sig) in positive_vectors() {
            for i in 0..sig.len() {
                let mut bad = sig.as_bytes().to_vec();
                bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
                let bad = String::from_utf8(bad).unwrap();
                assert_eq!(
                    c.verify_and_decrypt(&bad, TS, NONCE, enc),
                    Err(CryptoError::Signature),
                    "{name} char {i}"
                );
            }
            assert_eq!(
                c.verify_and_decrypt("", TS, NONCE, enc),
                Err(CryptoError::Signature)
            );
            assert_eq!(
                c.verify_and_decrypt(sig, "1700000001", NONCE, enc),
                Err(CryptoError::Signature)
            );
        }
    }

    #[test]
    fn non_base64_ciphertext_is_rejected() {
        let c = crypt();
        for enc in [
            "not*base64!",
            "sKqR bbiS",
            "====",
            "sKqRbbiSUnDhFHOvPjtUMd2a%%",
        ] {
            assert_eq!(c.decrypt(enc), Err(CryptoError::Base64), "{enc}");
        }
        assert_eq!(c.decrypt(""), Err(CryptoError::CiphertextLength));
    }

    #[test]
    fn wrong_key_is_bad_padding_or_layout_never_a_panic() {
        let other =
            MsgCrypt::new(TOKEN, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", RID).unwrap();
        for (_, _, _, enc, _) in positive_vectors() {
            assert!(other.decrypt(enc).is_err());
        }
    }

    #[test]
    fn illegal_aes_keys_are_refused() {
        for key in [
            "",
            "short",
            &KEY[..42],
            &format!("{KEY}A"),
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2*",
        ] {
            assert_eq!(
                MsgCrypt::new(TOKEN, key, RID).err(),
                Some(CryptoError::IllegalAesKey),
                "{key}"
            );
        }
    }

    #[test]
    fn official_account_plain_signature() {
        // sha1 of the sorted concatenation, computed independently of the 4-part path.
        let sig = sha1_signature(&["QDG6eK", "1409659589", "263014780"]);
        let mut parts = ["QDG6eK", "1409659589", "263014780"];
        parts.sort();
        let mut h = Sha1::new();
        h.update(parts.concat().as_bytes());
        assert_eq!(sig, hex::encode(h.finalize()));
        assert_eq!(sig.len(), 40);
    }

    #[test]
    fn passive_reply_envelope_verifies_and_decrypts() {
        let c = crypt();
        let env = c.encrypt_reply("<xml><Content>好的</Content></xml>", TS, NONCE);
        let enc = env
            .split("<Encrypt><![CDATA[")
            .nth(1)
            .unwrap()
            .split("]]>")
            .next()
            .unwrap();
        let sig = env
            .split("<MsgSignature><![CDATA[")
            .nth(1)
            .unwrap()
            .split("]]>")
            .next()
            .unwrap();
        assert_eq!(
            c.verify_and_decrypt(sig, TS, NONCE, enc).unwrap(),
            "<xml><Content>好的</Content></xml>"
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn round_trip_any_text(msg in "[\\PC\u{4e00}-\u{9fa5}]{0,3000}", random in any::<[u8; 16]>()) {
                let c = crypt();
                let enc = c.encrypt_with_random(&msg, &random);
                let raw = B64.decode(&enc).unwrap();
                prop_assert_eq!(raw.len() % 32, 0);
                let sig = c.signature(TS, NONCE, &enc);
                prop_assert_eq!(c.verify_and_decrypt(&sig, TS, NONCE, &enc).unwrap(), msg);
            }

            #[test]
            fn round_trip_up_to_10k(len in 0usize..10_240, seed in any::<u32>()) {
                // Chinese characters are 3 bytes; mix them with ASCII to hit every pad length.
                let pool: Vec<char> = "你好快递退款尺码abcXYZ<>&]]".chars().collect();
                let mut msg = String::new();
                let mut s = seed as usize;
                while msg.len() < len {
                    s = s.wrapping_mul(1103515245).wrapping_add(12345);
                    msg.push(pool[(s >> 8) % pool.len()]);
                }
                let c = crypt();
                let enc = c.encrypt(&msg);
                prop_assert_eq!(c.decrypt(&enc).unwrap(), msg);
            }

            #[test]
            fn garbage_never_panics(s in "[A-Za-z0-9+/=]{0,200}") {
                let _ = crypt().decrypt(&s);
            }
        }
    }
}
