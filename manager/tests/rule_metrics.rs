//! The Manager's per-rule and evaluation counters, scraped from the real binary.

use reflex_tests::standalone::{Manager, wait_until};

#[test]
fn unmatched_events_and_unusable_values_are_counted() {
    let m = Manager::start(
        "rule-metrics",
        r#"
/client/load/*:
  rules:
    - load_avg:
        rule: rules.simple.gt
        threshold: 20
        reactions:
          - reactions.log.print:
              message: high
        chain:
          - OR: io_avg
    - io_avg:
        rule: rules.simple.gt
        threshold: 20
"#,
    );
    m.send("/nothing/matches/this", &["x=1"], "web-1");
    m.send("/client/load/web-1", &["load_avg=degraded"], "web-1");
    // io alone: io_avg takes the sample, and load_avg is evaluated again for its chain.
    m.send("/client/load/web-1", &["io_avg=50"], "web-1");
    wait_until("the chained firing to be counted", || {
        m.metric(r#"reflex_rules_fired_total{rule="load_avg"}"#) == Some(1.0)
    });
    assert_eq!(m.metric("reflex_events_unmatched_total"), Some(1.0));
    assert_eq!(m.metric("reflex_values_not_numeric_total"), Some(1.0));
    assert_eq!(
        m.metric(r#"reflex_rules_fired_total{rule="io_avg"}"#),
        Some(1.0)
    );
    assert_eq!(
        m.metric(r#"reflex_rules_evaluated_total{rule="load_avg"}"#),
        Some(1.0)
    );
    assert_eq!(
        m.metric(r#"reflex_rules_evaluated_total{rule="io_avg"}"#),
        Some(1.0)
    );
}
