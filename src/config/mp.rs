//! `[mp]`: the WeChat Official Account.

use serde::Deserialize;

use super::{required, valid_aes_key, ConfigError, Env};
use crate::crypto::MsgCrypt;

/// WeChat Official Account settings.
#[derive(Clone)]
pub struct MpConfig {
    pub app_id: String,
    pub token: String,
    /// Set for safe mode; without it the account runs in plaintext mode.
    pub encoding_aes_key: Option<String>,
}

impl MpConfig {
    pub fn crypt(&self) -> Option<MsgCrypt> {
        self.encoding_aes_key.as_ref().map(|k| {
            MsgCrypt::new(&self.token, k, &self.app_id)
                .expect("EncodingAESKey validated at config load")
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMp {
    app_id: Option<String>,
    token: Option<String>,
    encoding_aes_key: Option<String>,
}

impl RawMp {
    /// Overlay `KEFU_MP_*`; any of them creates the section.
    pub(super) fn apply_env(section: &mut Option<RawMp>, env: &Env) {
        let keys = ["mp.app_id", "mp.token", "mp.encoding_aes_key"];
        if env.any(&keys) {
            section.get_or_insert_with(Default::default);
        }
        let Some(m) = section.as_mut() else { return };
        let [app_id, token, aes_key] = keys;
        env.set(&mut m.app_id, app_id);
        env.set(&mut m.token, token);
        env.set(&mut m.encoding_aes_key, aes_key);
    }

    pub(super) fn validate(self) -> Result<MpConfig, ConfigError> {
        Ok(MpConfig {
            app_id: required(self.app_id, "mp.app_id")?,
            token: required(self.token, "mp.token")?,
            encoding_aes_key: match self.encoding_aes_key {
                Some(k) if !k.trim().is_empty() => {
                    Some(valid_aes_key(k.trim().to_string(), "mp.encoding_aes_key")?)
                }
                _ => None,
            },
        })
    }
}
