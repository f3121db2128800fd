//! Customers and tiers: the real `kefu crm import` on UTF-8 and GBK files, its report, a
//! second import that changes nothing, and the tier a kf shopper gets afterwards — on SQLite
//! and PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;
use kefu::clock::Clock;
use kefu::crm::{customer_card, CustomerKey, CustomerTier};
use kefu::ids::ExternalUserId;
use kefu::simulate::Simulator;

const BIN: &str = env!("CARGO_BIN_EXE_kefu");

/// The China date `days` before now, as the shop's export writes it.
fn days_ago(days: i64) -> String {
    let ts = jiff::Timestamp::from_second(now_secs() - days * 86_400).unwrap();
    jiff::tz::Offset::constant(8)
        .to_datetime(ts)
        .date()
        .to_string()
}

fn write_config(dir: &Path, db_url: &str) -> PathBuf {
    let path = dir.join("kefu.toml");
    std::fs::write(&path, config_toml("127.0.0.1:0", db_url, &replies_dir())).unwrap();
    path
}

fn import(config: &Path, file: &Path) -> Output {
    Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "crm", "import"])
        .arg(file)
        .env("KEFU_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Five buyers whose R, F and M all rank alike (scores 5, 4, 3, 2, 1), a customer with no
/// orders, and one bad row on line 5.
fn shop_csv() -> String {
    format!(
        "external_userid,unionid,name,tags,orders,total_spent,last_order_at\n\
         wmVip,,王女士,老客户;VIP,14,8600,{}\n\
         ,ouUnion,李四,,6,3000.50,{}\n\
         wmC,,,,3,500,{}\n\
         wmBad,,,,abc,100,{}\n\
         wmE,,,,2,200,{}\n\
         wmD,,,,1,99,{}\n\
         wmRisk,,赵先生,投诉风险,0,,\n",
        days_ago(3),
        days_ago(10),
        days_ago(40),
        days_ago(40),
        days_ago(90),
        days_ago(200),
    )
}

type Snapshot = Vec<(String, String, Option<String>, String, i64, i64, i64)>;

async fn snapshot(store: &kefu::store::Store) -> Snapshot {
    sqlx::query_as(
        "SELECT id_kind, id_value, name, tags, orders, spent_fen, updated_at FROM crm_purchases \
         ORDER BY id_kind, id_value",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
}

async fn import_reports_bad_rows_and_a_second_import_changes_nothing(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(db, dir.path()).await;
    let cfg = write_config(dir.path(), &url);
    let file = dir.path().join("customers.csv");
    // As Excel saves "CSV UTF-8": with a byte-order mark.
    std::fs::write(&file, format!("\u{feff}{}", shop_csv())).unwrap();

    let first = import(&cfg, &file);
    assert!(first.status.success(), "{first:?}");
    let out = stdout(&first);
    assert!(
        out.contains("line 5: orders \"abc\" is not a whole number of 0 or more"),
        "{out}"
    );
    assert!(
        out.contains("(UTF-8): imported 6 (6 new, 0 updated), unchanged 0, rejected 1"),
        "{out}"
    );

    let store = kefu::store::Store::connect(&url).await.unwrap();
    let before = snapshot(&store).await;
    assert_eq!(before.len(), 6);
    let vip = before.iter().find(|r| r.1 == "wmVip").unwrap();
    assert_eq!(vip.2.as_deref(), Some("王女士"));
    assert_eq!(vip.3, r#"["老客户","VIP"]"#);
    assert_eq!((vip.4, vip.5), (14, 860_000));
    let union = before.iter().find(|r| r.1 == "ouUnion").unwrap();
    assert_eq!((union.0.as_str(), union.5), ("unionid", 300_050));

    // The clock moves on; a second import of the same file must not touch a row.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let again = import(&cfg, &file);
    assert!(again.status.success(), "{again:?}");
    assert!(
        stdout(&again).contains("imported 0 (0 new, 0 updated), unchanged 6, rejected 1"),
        "{}",
        stdout(&again)
    );
    assert_eq!(
        snapshot(&store).await,
        before,
        "contents and updated_at kept"
    );

    // A changed row is an update, and only that row's updated_at moves.
    std::fs::write(&file, shop_csv().replace("14,8600", "15,8800")).unwrap();
    let changed = import(&cfg, &file);
    assert!(
        stdout(&changed).contains("imported 1 (0 new, 1 updated), unchanged 5, rejected 1"),
        "{}",
        stdout(&changed)
    );
    let after = snapshot(&store).await;
    for (b, a) in before.iter().zip(&after) {
        if a.1 == "wmVip" {
            assert_eq!((a.4, a.5), (15, 880_000));
            assert!(a.6 > b.6, "updated_at moves on a change");
        } else {
            assert_eq!(a, b);
        }
    }
    store.close().await;
}

async fn a_gbk_export_is_detected_and_decoded(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(db, dir.path()).await;
    let cfg = write_config(dir.path(), &url);
    let file = dir.path().join("导出.csv");
    let text = format!(
        "external_userid,unionid,name,tags,orders,total_spent,last_order_at,备注\r\n\
         wmGbk,,张三丰,金卡VIP、复购,2,1288.00,{},老客户\r\n\
         wmLate,,,,1,10,2099-01-01,\r\n\
         wmPair,ouPair,,,1,10,{},\r\n",
        days_ago(1),
        days_ago(5)
    );
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&gbk).is_err(), "really not UTF-8");
    std::fs::write(&file, &gbk).unwrap();

    let out = import(&cfg, &file);
    assert!(out.status.success(), "{out:?}");
    let shown = stdout(&out);
    assert!(
        shown.contains("line 3: last_order_at \"2099-01-01\" is in the future"),
        "{shown}"
    );
    assert!(shown.contains("ignored columns: 备注"), "{shown}");
    assert!(
        shown.contains("(GB18030): imported 2 (2 new, 0 updated), unchanged 0, rejected 1"),
        "{shown}"
    );

    let store = kefu::store::Store::connect(&url).await.unwrap();
    let rules = kefu::crm::TierRules::default();
    let card = customer_card(
        &store,
        &rules,
        now_secs() * 1000,
        &CustomerKey::Any("wmGbk".into()),
    )
    .await
    .unwrap()
    .expect("imported customer");
    assert_eq!(card.name.as_deref(), Some("张三丰"));
    assert_eq!(card.tags, ["金卡VIP", "复购"]);
    assert_eq!(card.total_spent, "¥1,288");
    assert_eq!(card.tier, CustomerTier::Vip);
    assert_eq!(card.reasons[0], "tag 金卡VIP");
    assert_eq!(card.reasons[2], "last order yesterday");
    // A row with both ids links them: the unionid finds the kf shopper.
    let pair = customer_card(
        &store,
        &rules,
        now_secs() * 1000,
        &CustomerKey::UnionId("ouPair".into()),
    )
    .await
    .unwrap()
    .expect("linked customer");
    assert_eq!(pair.external_userid.as_deref(), Some("wmPair"));
    assert_eq!(pair.orders, 1);
    store.close().await;
}

async fn a_file_that_cannot_be_read_fails_the_command(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_db(db, dir.path()).await;
    let cfg = write_config(dir.path(), &url);
    let missing = import(&cfg, &dir.path().join("nope.csv"));
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("nope.csv"),
        "{missing:?}"
    );
    let binary = dir.path().join("photo.csv");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0xd8, 0xff, 0xff]).unwrap();
    let out = import(&cfg, &binary);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("neither UTF-8 nor GBK"),
        "{out:?}"
    );
    let headless = dir.path().join("headless.csv");
    std::fs::write(&headless, "wm1,14,8600\n").unwrap();
    let out = import(&cfg, &headless);
    assert!(!out.status.success(), "{out:?}");
}

/// After the import, kf shoppers get their tier from WeCom tags, imported tags and history,
/// whether the file keyed them by external_userid or by the unionid WeCom reports.
async fn kf_shoppers_get_their_tier_and_reasons(db: Db) {
    let sim = Simulator::new(wecom_crypt(), "kf-secret");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = sim.spawn(listener).await.unwrap();
    sim.add_customer("wmVip", "王女士", &[("客户等级", "金卡VIP")]);
    sim.add_customer("wmUnion", "李四", &[]);
    sim.set_unionid("wmUnion", "ouUnion");
    sim.add_customer("wmC", "小陈", &[]);
    sim.add_customer("wmRisk", "赵先生", &[]);
    sim.add_customer("wmNew", "新朋友", &[]);
    let app = TestApp::start_with(db, move |c| {
        let wecom = c.wecom.as_mut().expect("[wecom] configured");
        wecom.secret = Some("kf-secret".into());
        wecom.api_base = base.trim_end_matches('/').to_owned();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &app.state.config.database_url);
    let file = dir.path().join("customers.csv");
    std::fs::write(&file, shop_csv()).unwrap();
    assert!(import(&cfg, &file).status.success());

    let kf = app.state.kf.as_ref().expect("kf configured");
    let standing = |id: &str| {
        let id = ExternalUserId::from(id);
        async move { kf.profile(&id).await.standing }
    };

    let vip = standing("wmVip").await;
    assert_eq!(vip.tier, CustomerTier::Vip);
    assert_eq!(
        vip.reasons,
        [
            "tag 金卡VIP",
            "14 orders, ¥8,600 in total",
            "last order 3 days ago",
            "RFM 5+5+5 = 15"
        ]
    );
    assert!(!vip.raise_priority);

    // History keyed by unionid only: found through the unionid WeCom gives this shopper.
    let union = standing("wmUnion").await;
    assert_eq!(union.tier, CustomerTier::High);
    assert_eq!(
        union.reasons,
        [
            "RFM 4+4+4 = 12, high from 10",
            "6 orders, ¥3,000.50 in total",
            "last order 10 days ago"
        ]
    );

    let c = standing("wmC").await;
    assert_eq!(c.tier, CustomerTier::Normal);
    assert_eq!(c.reasons.last().map(String::as_str), Some("RFM 3+3+3 = 9"));

    let risk = standing("wmRisk").await;
    assert_eq!(risk.tier, CustomerTier::New);
    assert!(risk.raise_priority);
    assert_eq!(
        risk.reasons,
        ["no orders on record", "tag 投诉风险 raises priority"]
    );

    let new = standing("wmNew").await;
    assert_eq!(new.tier, CustomerTier::New);
    assert_eq!(new.reasons, ["no orders on record"]);

    // The reply library's wording tier still comes from the corp tags.
    assert_eq!(
        kf.profile(&ExternalUserId::from("wmVip")).await.tier_name(),
        Some("vip")
    );

    // What a console shows, by any of the customer's ids.
    let rules = &app.state.config.tiers;
    let now = app.clock.now_ms();
    for key in [
        CustomerKey::Any("wmUnion".into()),
        CustomerKey::UnionId("ouUnion".into()),
    ] {
        let card = customer_card(&app.state.store, rules, now, &key)
            .await
            .unwrap()
            .expect("known customer");
        assert_eq!(card.external_userid.as_deref(), Some("wmUnion"));
        assert_eq!(card.unionid.as_deref(), Some("ouUnion"));
        assert_eq!(card.name.as_deref(), Some("李四"));
        assert_eq!(card.nickname.as_deref(), Some("李四"));
        assert_eq!((card.orders, card.total_spent_fen), (6, 300_050));
        assert_eq!(card.tier, CustomerTier::High);
        let json = serde_json::to_value(&card).unwrap();
        assert_eq!(json["tier"], "high");
        assert_eq!(json["rfm"]["frequency"], 4);
    }
    assert!(customer_card(
        &app.state.store,
        rules,
        now,
        &CustomerKey::Any("wmNobody".into())
    )
    .await
    .unwrap()
    .is_none());
}

on_both_stores!(
    import_reports_bad_rows_and_a_second_import_changes_nothing,
    a_gbk_export_is_detected_and_decoded,
    a_file_that_cannot_be_read_fails_the_command,
    kf_shoppers_get_their_tier_and_reasons,
);
