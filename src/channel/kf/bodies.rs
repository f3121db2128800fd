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

/// Menu ids of the satisfaction survey: `csat_<rating>_<ticket id>`.
pub(super) const CSAT_PREFIX: &str = "csat_";
pub(super) const CSAT_RATINGS: [(&str, &str); 3] =
    [("good", "满意"), ("ok", "一般"), ("bad", "不满意")];

/// The satisfaction survey for a ticket: a menu of three ratings. `code` (the event's
/// msg_code) makes it a `send_msg_on_event` body; without it, a `send_msg` body.
pub(super) fn csat(
    ticket_id: &str,
    to: &ExternalUserId,
    open_kfid: &OpenKfId,
    code: Option<&str>,
) -> Value {
    let items: Vec<Value> = CSAT_RATINGS
        .iter()
        .map(|(id, label)| json!({"type": "click", "click": {"id": format!("{CSAT_PREFIX}{id}_{ticket_id}"), "content": label}}))
        .collect();
    let menu = json!({"head_content": "请为本次服务评价：", "list": items, "tail_content": "感谢您的反馈"});
    match code {
        Some(code) => json!({"code": code, "msgtype": "msgmenu", "msgmenu": menu}),
        None => {
            json!({"touser": to, "open_kfid": open_kfid, "msgtype": "msgmenu", "msgmenu": menu})
        }
    }
}

/// The rating and ticket of a survey click (`csat_good_<ticket id>`).
pub(super) fn csat_click(menu_id: &str) -> Option<(&'static str, &str)> {
    let rest = menu_id.strip_prefix(CSAT_PREFIX)?;
    let (rating, ticket) = rest.split_once('_')?;
    let rating = CSAT_RATINGS.iter().find(|(id, _)| *id == rating)?.0;
    (!ticket.is_empty()).then_some((rating, ticket))
}
