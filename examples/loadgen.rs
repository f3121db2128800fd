//! Writes N distinct, validly signed and encrypted Official Account callbacks, one per line
//! as `query<TAB>body`, for `bench/load.sh` to replay with wrk. KIND `text` (the default)
//! makes shopper questions, which are classified and answered; `image` makes image messages,
//! which are only recorded (the intake path without the classifier).
//! `cargo run --release --example loadgen -- N OUT_FILE [KIND]`

use std::io::Write;

use kefu::crypto::{sha1_signature, MsgCrypt};

// The sample kefu.toml's [mp] section.
const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const APP_ID: &str = "wx5823bf96d3bd56c7";

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let out = args
        .next()
        .unwrap_or_else(|| "bench/out/requests.tsv".into());
    let image = match args.next().as_deref() {
        None | Some("text") => false,
        Some("image") => true,
        Some(other) => {
            eprintln!("unknown KIND {other:?}: expected text or image");
            std::process::exit(2);
        }
    };
    let crypt = MsgCrypt::new(TOKEN, KEY, APP_ID).expect("sample key");
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    let questions = [
        "在吗？这件衣服什么时候发货",
        "我的快递到哪了",
        "可以开发票吗",
        "退款多久到账",
        "有优惠券吗",
    ];
    let mut w = std::io::BufWriter::new(std::fs::File::create(&out)?);
    for i in 0..n {
        let q = questions[(i % questions.len() as u64) as usize];
        let body = if image {
            format!("<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://mmbiz.qpic.cn/load/{i}.jpg]]></PicUrl><MediaId><![CDATA[media_{i}]]></MediaId>")
        } else {
            format!("<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{q}]]></Content>")
        };
        let xml = format!(
            "<xml><ToUserName><![CDATA[gh_loadtest]]></ToUserName><FromUserName><![CDATA[oShopper{}]]></FromUserName><CreateTime>{ts}</CreateTime>{body}<MsgId>{}</MsgId></xml>",
            i % 5000,
            9_000_000_000_000_000u64 + i
        );
        let nonce = format!("{}", 100_000 + i);
        let encrypt = crypt.encrypt(&xml);
        let msg_sig = crypt.signature(&ts, &nonce, &encrypt);
        let sig = sha1_signature(&[TOKEN, &ts, &nonce]);
        writeln!(
            w,
            "signature={sig}&timestamp={ts}&nonce={nonce}&openid=oShopper&encrypt_type=aes&msg_signature={msg_sig}\t<xml><ToUserName><![CDATA[gh_loadtest]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        )?;
    }
    w.flush()
}
