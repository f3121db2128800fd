//! Names WeCom gives to things, each its own type so that one cannot be passed where another
//! is expected: a kf account (`open_kfid`), a shopper (`external_userid`) and a message
//! (`msgid`). They are plain strings on the wire and in the database; bind them with
//! `.as_str()`.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                $name(s.clone())
            }
        }

        impl From<&$name> for $name {
            fn from(s: &$name) -> Self {
                s.clone()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A WeCom Customer Service account (`open_kfid`, `wk…`).
    OpenKfId
);
string_id!(
    /// A shopper as WeCom Customer Service knows them (`external_userid`, `wm…`).
    ExternalUserId
);
string_id!(
    /// A kf message, WeCom's (pulled) or ours (sent, also the outbox row's id).
    MsgId
);
