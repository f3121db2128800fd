use super::*;

fn tiny() -> (Scenario, SlaSettings) {
    let scenario = Scenario {
        start: date(2026, 3, 2),
        days: 1,
        agents: vec![AgentShift::new("only", false, 0, 24 * 60)],
        capacity: 1,
        ..Scenario::small_shop(1)
    };
    (scenario, SlaSettings::always_open())
}

#[test]
fn priority_order_serves_urgent_before_low() {
    let (scenario, sla) = tiny();
    let table = PriorityTable::default();
    let t0 = local_midnight(&sla, scenario.start) + HOUR_MS;
    let work = 10 * MINUTE_MS;
    let ticket =
        |at: i64, tier, intent| SimTicket::new(at, tier, intent, false, work, &sla, &table);
    let tickets = vec![
        ticket(t0, CustomerTier::Normal, "tracking"),
        ticket(t0 + MINUTE_MS, CustomerTier::Normal, "greeting"),
        ticket(t0 + 2 * MINUTE_MS, CustomerTier::Vip, "complaint"),
    ];
    assert_eq!(tickets[1].priority, Priority::Low);
    assert_eq!(tickets[2].priority, Priority::Urgent);
    let fifo = run(&scenario, &sla, &tickets, Policy::Fifo);
    assert_eq!(
        fifo.first_response_ms,
        [Some(t0), Some(t0 + work), Some(t0 + 2 * work)]
    );
    let kefu = run(&scenario, &sla, &tickets, Policy::Kefu);
    assert_eq!(
        kefu.first_response_ms,
        [Some(t0), Some(t0 + 2 * work), Some(t0 + work)]
    );
    assert_eq!(kefu.max_queue, 2);
}

#[test]
fn nobody_is_served_outside_shifts_and_windows() {
    let (mut scenario, _) = tiny();
    scenario.agents = vec![AgentShift::new("late", false, 13 * 60 + 30, 21 * 60)];
    let sla = SlaSettings::default();
    let table = PriorityTable::default();
    let mon = local_midnight(&sla, scenario.start);
    // Monday 10:00: the shop is open but the only agent starts at 13:30.
    let t = SimTicket::new(
        mon + 10 * HOUR_MS,
        CustomerTier::New,
        "stock",
        false,
        MINUTE_MS,
        &sla,
        &table,
    );
    let served = run(&scenario, &sla, &[t], Policy::Kefu);
    assert_eq!(
        served.first_response_ms,
        [Some(mon + 13 * HOUR_MS + 30 * MINUTE_MS)]
    );
    // Monday 21:30 (closed): Tuesday 13:30.
    let t = SimTicket::new(
        mon + 21 * HOUR_MS + 30 * MINUTE_MS,
        CustomerTier::New,
        "stock",
        false,
        MINUTE_MS,
        &sla,
        &table,
    );
    let served = run(&scenario, &sla, &[t], Policy::Fifo);
    assert_eq!(
        served.first_response_ms,
        [Some(mon + DAY_MS + 13 * HOUR_MS + 30 * MINUTE_MS)]
    );
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let scenario = Scenario::small_shop(1);
    let sla = SlaSettings::default();
    let table = PriorityTable::default();
    let a = compare(&scenario, &sla, &table, &[7]).render(&scenario, &sla);
    let b = compare(&scenario, &sla, &table, &[7]).render(&scenario, &sla);
    assert_eq!(a, b);
    let c = compare(&scenario, &sla, &table, &[8]).render(&scenario, &sla);
    assert_ne!(a, c);
    assert!(a.contains("| vip |") && a.contains("| all |"), "{a}");
}

#[test]
fn generated_days_look_like_a_small_shop() {
    let scenario = Scenario::small_shop(1);
    let sla = SlaSettings::default();
    let tickets = generate(&scenario, &sla, &PriorityTable::default(), 1);
    assert!((300..=600).contains(&tickets.len()), "{}", tickets.len());
    assert!(tickets
        .windows(2)
        .all(|w| w[0].arrival_ms <= w[1].arrival_ms));
    let vip = tickets
        .iter()
        .filter(|t| t.tier == CustomerTier::Vip)
        .count();
    assert!(vip > 0 && vip < tickets.len() / 8, "{vip}");
    assert!(tickets
        .iter()
        .all(|t| t.first_response_due_ms > t.arrival_ms));
    let served = run(&scenario, &sla, &tickets, Policy::Kefu);
    assert!(served.first_response_ms.iter().all(Option::is_some));
}
