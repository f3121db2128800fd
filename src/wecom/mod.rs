//! WeCom / WeChat wire types: the callback XML (envelope and decrypted messages).
//! [`api`] is the client for `qyapi.weixin.qq.com`.

pub mod api;
pub mod xml;

pub use xml::{parse_envelope, parse_message, Envelope, InboundMessage, MsgBody, XmlError};
