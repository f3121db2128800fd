//! WeCom / WeChat wire types: the callback XML (envelope and decrypted messages).
//! The API client for `qyapi.weixin.qq.com` will live beside it.

pub mod xml;

pub use xml::{parse_envelope, parse_message, Envelope, InboundMessage, MsgBody, XmlError};
