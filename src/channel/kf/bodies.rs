//! The bodies of the messages kefu sends a shopper: a reply (with a menu of related
//! questions when the reply has one), a plain text, and the welcome menu.

use serde_json::{json, Value};

use crate::ids::{ExternalUserId, OpenKfId};
use crate::library::{Library, Reply};

/// The replies the welcome menu offers: the questions shoppers ask most.
pub(super) const POPULAR: [&str; 4] = [
    "tracking.where",
    "shipping_time.when",
    "return_request.how",
    "refund_status.how_long",
];

const MENU_TAIL: &str = "也可以直接输入您的问题";

/// Menu items for the replies named, in order; unknown ids are left out.
fn menu_items<'a>(library: &Library, ids: impl IntoIterator<Item = &'a String>) -> Vec<Value> {
    ids.into_iter()
        .filter_map(|id| library.get(id))
        .map(|r| json!({"type": "click", "click": {"id": r.id, "content": r.title}}))
        .collect()
}

/// The `send_msg` body for a reply: a menu of related questions when the reply has one.
pub(super) fn reply(
    library: &Library,
    reply: &Reply,
    text: &str,
    to: &ExternalUserId,
    open_kfid: &OpenKfId,
) -> Value {
    let items = menu_items(library, &reply.menu);
    if items.is_empty() {
        self::text(text, to, open_kfid)
    } else {
        json!({"touser": to, "open_kfid": open_kfid, "msgtype": "msgmenu",
               "msgmenu": {"head_content": text, "list": items, "tail_content": MENU_TAIL}})
    }
}

/// The `send_msg` body for plain text.
pub(super) fn text(text: &str, to: &ExternalUserId, open_kfid: &OpenKfId) -> Value {
    json!({"touser": to, "open_kfid": open_kfid, "msgtype": "text", "text": {"content": text}})
}

/// The welcome message (`send_msg_on_event` with the event's `code`): a greeting and a menu
/// of the [`POPULAR`] questions.
pub(super) fn welcome(library: &Library, code: &str) -> Value {
    let shop = library.shop().get("shop_name").cloned().unwrap_or_default();
    let popular: Vec<String> = POPULAR.iter().map(|s| s.to_string()).collect();
    let items = menu_items(library, &popular);
    json!({"code": code, "msgtype": "msgmenu",
           "msgmenu": {"head_content": format!("您好，欢迎来到{shop}！您可能想问："), "list": items, "tail_content": MENU_TAIL}})
}
