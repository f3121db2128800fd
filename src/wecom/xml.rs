//! Callback XML: the encrypted envelope and the decrypted message, parsed with quick-xml
//! into typed values. WeCom's messages are one flat `<xml>` element of leaf fields (a few
//! events nest extra detail, which is kept in the raw XML); unknown `MsgType`s are parsed as
//! [`MsgBody::Unknown`] and stored, never rejected.

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::Reader;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("XML root element must be <xml>")]
    NoRoot,
    #[error("DOCTYPE declarations are not accepted")]
    Doctype,
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {0} is not a valid number")]
    NotNumber(&'static str),
    #[error("XML nests too deeply")]
    TooDeep,
}

impl XmlError {
    pub fn reason(&self) -> &'static str {
        match self {
            XmlError::Malformed(_) | XmlError::NoRoot | XmlError::Doctype | XmlError::TooDeep => {
                "malformed_xml"
            }
            XmlError::Missing(_) => "missing_field",
            XmlError::NotNumber(_) => "bad_field",
        }
    }
}

const MAX_DEPTH: usize = 8;

/// The direct children of `<xml>` that hold text, in document order: each name and text is
/// borrowed from the parsed input where it appears there as it is (a CDATA section, or a run
/// of text with no entity reference), and owned only where it had to be put together.
#[derive(Debug, Default, Clone)]
pub struct Fields<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Fields<'a> {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    /// The field's text, still borrowed from the input where it was.
    fn cow(&self, name: &str) -> Option<Cow<'a, str>> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn take(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    fn require(&self, name: &'static str) -> Result<String, XmlError> {
        self.take(name).ok_or(XmlError::Missing(name))
    }
}

/// `part` (a slice the reader handed out of `input`) as a slice of `input` itself, so that it
/// outlives the reader's event; a copy if it is not one.
fn from_input<'a>(input: &'a str, part: &str) -> Cow<'a, str> {
    let start = (part.as_ptr() as usize).wrapping_sub(input.as_ptr() as usize);
    match start
        .checked_add(part.len())
        .and_then(|end| input.get(start..end))
    {
        Some(s) if std::ptr::eq(s.as_ptr(), part.as_ptr()) => Cow::Borrowed(s),
        _ => Cow::Owned(part.to_owned()),
    }
}

/// Add `piece` to the end of `to`, copying only when both hold something.
fn append<'a>(to: &mut Cow<'a, str>, piece: Cow<'a, str>) {
    if piece.is_empty() {
    } else if to.is_empty() {
        *to = piece;
    } else {
        to.to_mut().push_str(&piece);
    }
}

/// `text` without leading and trailing whitespace, still borrowed if it was.
fn trimmed(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) if s.trim().len() == s.len() => Cow::Owned(s),
        Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
    }
}

/// End the run of escaped text: trimmed, it joins the field's text.
fn flush<'a>(run: &mut Cow<'a, str>, text: &mut Cow<'a, str>) {
    append(text, trimmed(std::mem::take(run)));
}

/// Parse `<xml>…</xml>` into its top-level leaf fields.
///
/// A field's text is its runs of escaped text, each trimmed, and its CDATA sections, kept as
/// they are, in document order. The reader delivers an entity reference (`&amp;`, `&#x4E2D;`)
/// as an event of its own between two pieces of text, so the pieces of one run are joined
/// first and trimmed as a whole: trimming each piece would eat the spaces around `&amp;`.
pub fn parse_fields(input: &str) -> Result<Fields<'_>, XmlError> {
    let mut reader = Reader::from_str(input);
    let mut fields = Fields::default();
    // How deep the reader is: 1 inside <xml>, 2 inside one of its fields; and that field's
    // name (quick-xml checks that each end tag closes the element it should).
    let mut depth = 0usize;
    let mut field: Cow<'_, str> = Cow::Borrowed("");
    // The current field's text so far, and the run of escaped text not yet added to it.
    let mut text: Cow<'_, str> = Cow::Borrowed("");
    let mut run: Cow<'_, str> = Cow::Borrowed("");
    let mut saw_root = false;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        match ev {
            Event::Start(e) => {
                let name = e.name();
                let name: &str = name.as_ref();
                if depth == 0 {
                    if saw_root || name != "xml" {
                        return Err(XmlError::NoRoot);
                    }
                    saw_root = true;
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                if depth == 2 {
                    field = from_input(input, name);
                }
                text = Cow::Borrowed("");
                run = Cow::Borrowed("");
            }
            Event::Empty(e) => {
                if depth == 0 {
                    return Err(XmlError::NoRoot);
                }
                if depth == 1 {
                    let name = e.name();
                    fields
                        .0
                        .push((from_input(input, name.as_ref()), Cow::Borrowed("")));
                }
            }
            Event::Text(t) => {
                if depth == 2 {
                    append(&mut run, t.xml10_content());
                } else if depth == 0 && !t.trim().is_empty() {
                    return Err(XmlError::Malformed("text outside the root element".into()));
                }
            }
            Event::GeneralRef(r) => {
                if depth == 0 {
                    return Err(XmlError::Malformed("text outside the root element".into()));
                }
                // Resolved even where unused, so an undefined entity is refused anywhere.
                let resolved = match r
                    .resolve_char_ref()
                    .map_err(|e| XmlError::Malformed(e.to_string()))?
                {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| XmlError::Malformed(format!("undefined entity &{};", &*r)))?
                        .to_string(),
                };
                if depth == 2 {
                    append(&mut run, Cow::Owned(resolved));
                }
            }
            Event::CData(c) => {
                if depth == 2 {
                    flush(&mut run, &mut text);
                    append(&mut text, c.into_inner());
                }
            }
            Event::End(_) => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
                if depth == 1 {
                    flush(&mut run, &mut text);
                    fields
                        .0
                        .push((std::mem::take(&mut field), std::mem::take(&mut text)));
                }
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
        }
    }
    if !saw_root {
        return Err(XmlError::NoRoot);
    }
    if depth != 0 {
        return Err(XmlError::Malformed("unclosed element".into()));
    }
    Ok(fields)
}

/// The outer XML of an encrypted callback, borrowed from the body it was read from.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub to_user: Option<Cow<'a, str>>,
    pub encrypt: Cow<'a, str>,
    pub agent_id: Option<Cow<'a, str>>,
    /// All fields, for compatible mode where plain fields sit beside `Encrypt`.
    pub fields: Fields<'a>,
}

pub fn parse_envelope(input: &str) -> Result<Envelope<'_>, XmlError> {
    let fields = parse_fields(input)?;
    Ok(Envelope {
        to_user: fields.cow("ToUserName"),
        encrypt: fields.cow("Encrypt").ok_or(XmlError::Missing("Encrypt"))?,
        agent_id: fields.cow("AgentID"),
        fields,
    })
}

/// What a message carries, by `MsgType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsgBody {
    Text {
        content: String,
    },
    Image {
        pic_url: Option<String>,
        media_id: Option<String>,
    },
    Voice {
        media_id: Option<String>,
        format: Option<String>,
    },
    Video {
        media_id: Option<String>,
        thumb_media_id: Option<String>,
    },
    Location {
        x: Option<String>,
        y: Option<String>,
        scale: Option<String>,
        label: Option<String>,
    },
    Link {
        title: Option<String>,
        description: Option<String>,
        url: Option<String>,
    },
    /// WeCom Customer Service: messages are waiting to be pulled with `kf/sync_msg`.
    KfMsgOrEvent {
        token: String,
        open_kfid: String,
    },
    Event {
        event: String,
        event_key: Option<String>,
    },
    Unknown {
        msg_type: String,
    },
}

/// A decrypted callback message.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub to_user: String,
    pub from_user: Option<String>,
    pub create_time: i64,
    pub msg_id: Option<String>,
    pub agent_id: Option<String>,
    pub msg_type: String,
    pub body: MsgBody,
}

impl InboundMessage {
    /// The key that makes WeCom's retries and replays of one message collide: `MsgId` for
    /// messages; the kf `Token` for `kf_msg_or_event`; for other events, who, when and which
    /// event, with a digest of the whole (decrypted) XML. A retry repeats the XML exactly,
    /// while two different events of one shopper in one second (two scans, two locations)
    /// differ in some field and are both kept.
    pub fn dedup_key(&self, raw: &str) -> String {
        use sha1::{Digest, Sha1};
        if let Some(id) = &self.msg_id {
            return format!("msg:{id}");
        }
        let digest = || hex::encode(Sha1::digest(raw.as_bytes()));
        match &self.body {
            MsgBody::KfMsgOrEvent { token, .. } => format!("kf:{token}"),
            MsgBody::Event { event, .. } => format!(
                "evt:{}|{}|{}|{}",
                self.from_user.as_deref().unwrap_or(""),
                self.create_time,
                event,
                digest()
            ),
            // No id at all: the whole message is its own identity.
            _ => format!("raw:{}", digest()),
        }
    }

    pub fn text(&self) -> Option<&str> {
        match &self.body {
            MsgBody::Text { content } => Some(content),
            _ => None,
        }
    }

    pub fn event_name(&self) -> Option<&str> {
        match &self.body {
            MsgBody::Event { event, .. } => Some(event),
            MsgBody::KfMsgOrEvent { .. } => Some("kf_msg_or_event"),
            _ => None,
        }
    }
}

pub fn parse_message(input: &str) -> Result<InboundMessage, XmlError> {
    let f = parse_fields(input)?;
    let msg_type = f.require("MsgType")?;
    let create_time = f
        .require("CreateTime")?
        .trim()
        .parse::<i64>()
        .map_err(|_| XmlError::NotNumber("CreateTime"))?;
    let msg_id = match f.get("MsgId").map(str::trim) {
        None | Some("") => None,
        Some(id) if id.bytes().all(|b| b.is_ascii_digit()) && id.len() <= 20 => Some(id.to_owned()),
        Some(_) => return Err(XmlError::NotNumber("MsgId")),
    };
    let body = match msg_type.as_str() {
        "text" => MsgBody::Text {
            content: f.require("Content")?,
        },
        "image" => MsgBody::Image {
            pic_url: f.take("PicUrl"),
            media_id: f.take("MediaId"),
        },
        "voice" => MsgBody::Voice {
            media_id: f.take("MediaId"),
            format: f.take("Format"),
        },
        "video" | "shortvideo" => MsgBody::Video {
            media_id: f.take("MediaId"),
            thumb_media_id: f.take("ThumbMediaId"),
        },
        "location" => MsgBody::Location {
            x: f.take("Location_X"),
            y: f.take("Location_Y"),
            scale: f.take("Scale"),
            label: f.take("Label"),
        },
        "link" => MsgBody::Link {
            title: f.take("Title"),
            description: f.take("Description"),
            url: f.take("Url"),
        },
        "event" => {
            let event = f.require("Event")?;
            if event == "kf_msg_or_event" {
                MsgBody::KfMsgOrEvent {
                    token: f.require("Token")?,
                    open_kfid: f.require("OpenKfId")?,
                }
            } else {
                MsgBody::Event {
                    event,
                    event_key: f.take("EventKey"),
                }
            }
        }
        other => MsgBody::Unknown {
            msg_type: other.to_owned(),
        },
    };
    Ok(InboundMessage {
        to_user: f.take("ToUserName").unwrap_or_default(),
        from_user: f.take("FromUserName"),
        create_time,
        msg_id,
        agent_id: f.take("AgentID"),
        msg_type,
        body,
    })
}

/// Escape text for an XML CDATA section: `]]>` cannot appear inside one, so it is split.
pub fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

/// The plaintext passive text reply to `msg` (before encryption).
pub fn text_reply(to_user: &str, from_user: &str, create_time: i64, content: &str) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>{}</Content></xml>",
        cdata(to_user),
        cdata(from_user),
        create_time,
        cdata(content)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[我的快递到哪了？]]></Content><MsgId>7300000000000000001</MsgId><AgentID>1000002</AgentID></xml>";

    #[test]
    fn parses_text_message() {
        let m = parse_message(V2).unwrap();
        assert_eq!(m.text(), Some("我的快递到哪了？"));
        assert_eq!(m.from_user.as_deref(), Some("zhangsan"));
        assert_eq!(m.create_time, 1700000000);
        assert_eq!(m.dedup_key(V2), "msg:7300000000000000001");
    }

    #[test]
    fn parses_kf_event_and_keys_on_token() {
        let x = "<xml><ToUserName><![CDATA[ww_corp]]></ToUserName><CreateTime>1348831860</CreateTime>\n<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>\n<Token><![CDATA[ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR]]></Token>\n<OpenKfId><![CDATA[wkxxxxxx]]></OpenKfId></xml>";
        let m = parse_message(x).unwrap();
        assert_eq!(
            m.body,
            MsgBody::KfMsgOrEvent {
                token: "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR".into(),
                open_kfid: "wkxxxxxx".into()
            }
        );
        assert_eq!(
            m.dedup_key(x),
            "kf:ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR"
        );
    }

    #[test]
    fn other_events_key_on_sender_time_and_event() {
        let x = "<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>5</CreateTime><MsgType>event</MsgType><Event>subscribe</Event></xml>";
        let m = parse_message(x).unwrap();
        let key = m.dedup_key(x);
        assert!(key.starts_with("evt:o1|5|subscribe|"), "{key}");
        assert_eq!(key, m.dedup_key(x), "a retry of the same event collides");
        // Two different scans by one shopper in the same second are two events.
        let scan = |result: &str| {
            format!("<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>5</CreateTime><MsgType>event</MsgType><Event>scancode_waitmsg</Event><EventKey>k</EventKey><ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>{result}</ScanResult></ScanCodeInfo></xml>")
        };
        let (a, b) = (scan("A1"), scan("B2"));
        let key_a = parse_message(&a).unwrap().dedup_key(&a);
        let key_b = parse_message(&b).unwrap().dedup_key(&b);
        assert_ne!(key_a, key_b);
    }

    #[test]
    fn each_media_type_is_typed_and_unknown_types_are_kept() {
        let wrap = |t: &str, extra: &str| {
            format!("<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>{t}</MsgType>{extra}<MsgId>9</MsgId></xml>")
        };
        assert!(matches!(
            parse_message(&wrap(
                "image",
                "<PicUrl>http://p</PicUrl><MediaId>m</MediaId>"
            ))
            .unwrap()
            .body,
            MsgBody::Image {
                media_id: Some(_),
                ..
            }
        ));
        assert!(matches!(
            parse_message(&wrap("voice", "<MediaId>m</MediaId><Format>amr</Format>"))
                .unwrap()
                .body,
            MsgBody::Voice {
                format: Some(_),
                ..
            }
        ));
        assert!(matches!(
            parse_message(&wrap(
                "video",
                "<MediaId>m</MediaId><ThumbMediaId>t</ThumbMediaId>"
            ))
            .unwrap()
            .body,
            MsgBody::Video { .. }
        ));
        assert!(matches!(parse_message(&wrap("location", "<Location_X>23.1</Location_X><Location_Y>113.3</Location_Y><Scale>20</Scale><Label>广州</Label>")).unwrap().body, MsgBody::Location { label: Some(_), .. }));
        assert!(matches!(
            parse_message(&wrap("link", "<Title>t</Title><Url>http://u</Url>"))
                .unwrap()
                .body,
            MsgBody::Link { .. }
        ));
        assert_eq!(
            parse_message(&wrap("miniprogrampage", "")).unwrap().body,
            MsgBody::Unknown {
                msg_type: "miniprogrampage".into()
            }
        );
    }

    #[test]
    fn entities_and_nested_detail_are_handled() {
        let x = "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>scancode_push</Event><EventKey>k&amp;1</EventKey><ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo></xml>";
        let m = parse_message(x).unwrap();
        assert_eq!(
            m.body,
            MsgBody::Event {
                event: "scancode_push".into(),
                event_key: Some("k&1".into())
            }
        );
    }

    /// Escaped text reads back exactly, in every field, whether written as escaped text, as
    /// CDATA or as both side by side; spaces next to an entity are kept.
    #[test]
    fn entities_read_back_exactly_in_every_text_field() {
        let cases = [
            ("a &amp; b", "a & b"),
            (
                "&lt;script&gt;alert(1)&lt;/script&gt;",
                "<script>alert(1)</script>",
            ),
            ("&quot;引号&quot; &apos;单&apos;", "\"引号\" '单'"),
            ("&#x4E2D;&#25991; ok", "中文 ok"),
            ("<![CDATA[a &amp; b]]>", "a &amp; b"),
            ("<![CDATA[<b>]]>&amp;<![CDATA[ x ]]>", "<b>& x "),
            ("  padded &amp; text  ", "padded & text"),
            ("¥&#x31;99 &amp;&amp; 包邮", "¥199 && 包邮"),
        ];
        for (written, read) in cases {
            let link = format!(
                "<xml><ToUserName>{written}</ToUserName><FromUserName>{written}</FromUserName><CreateTime>1</CreateTime><MsgType>link</MsgType><Title>{written}</Title><Description>{written}</Description><Url>{written}</Url></xml>"
            );
            let m = parse_message(&link).unwrap();
            assert_eq!(m.to_user, read, "{written}");
            assert_eq!(m.from_user.as_deref(), Some(read), "{written}");
            assert_eq!(
                m.body,
                MsgBody::Link {
                    title: Some(read.into()),
                    description: Some(read.into()),
                    url: Some(read.into()),
                },
                "{written}"
            );
            let text = format!(
                "<xml><ToUserName>t</ToUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>{written}</Content></xml>"
            );
            assert_eq!(
                parse_message(&text).unwrap().text(),
                Some(read),
                "{written}"
            );
            let event = format!(
                "<xml><ToUserName>t</ToUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>CLICK</Event><EventKey>{written}</EventKey><Label>{written}</Label></xml>"
            );
            let m = parse_message(&event).unwrap();
            assert_eq!(
                m.body,
                MsgBody::Event {
                    event: "CLICK".into(),
                    event_key: Some(read.into())
                },
                "{written}"
            );
        }
        // An entity XML does not define is refused, not dropped.
        let unknown = "<xml><ToUserName>t</ToUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>a &nbsp; b</Content></xml>";
        assert!(matches!(
            parse_message(unknown),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_xml_is_refused() {
        for bad in [
            "",
            "not xml",
            "<xml><MsgType>text</MsgType>",
            "<root><MsgType>text</MsgType></root>",
            "<xml></xml><xml></xml>",
            "<!DOCTYPE x [<!ENTITY a \"b\">]><xml><MsgType>text</MsgType></xml>",
            "<xml><MsgType>text</MsgType><CreateTime>1</CreateTime></xml>",
            "<xml><MsgType>text</MsgType><CreateTime>soon</CreateTime><Content>x</Content></xml>",
            "<xml><MsgType>text</MsgType><CreateTime>1</CreateTime><Content>x</Content><MsgId>12a</MsgId></xml>",
            "<xml><a><b><c><d><e><f><g><h><i>x</i></h></g></f></e></d></c></b></a></xml>",
        ] {
            assert!(parse_message(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reply_xml_survives_cdata_terminators() {
        let r = text_reply("o1", "gh", 1, "a]]>b");
        let f = parse_fields(&r).unwrap();
        assert_eq!(f.get("Content"), Some("a]]>b"));
    }
}
