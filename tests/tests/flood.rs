//! A flood: 200 000 events from 4 senders. Every event ends either processed or counted as
//! dropped — by its sender, whose queue is bounded and never blocks, or by the Manager — and
//! the Manager still answers afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use reflex_core::Event;
use reflex_core::Value;
use reflex_core::wire::{self, Envelope, MAX_ENVELOPE_LEN};
use reflex_tests::{Manager, Scratch, metric_in, metric_sum, wait_until};

const SENDERS: u64 = 4;
const PER_SENDER: u64 = 50_000;

#[test]
fn a_flood_is_processed_or_counted_and_the_manager_still_answers() {
    let dir = Scratch::new("flood");
    let rules = dir.write(
        "rules.yml",
        r#"
/flood/*:
  rules:
    - level:
        rule: rules.simple.gt
        register: register.aggregate.avg
        threshold: 1000000
        period: 10
        reactions:
          - reactions.log.print:
              message: never
"#,
    );
    let mut m = Manager::start(&dir, &rules, &["--queue", "1000"]);
    let before = m.metric("reflex_events_received_total").unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (endpoint, sent, refused) = (m.events.clone(), sent.clone(), refused.clone());
            std::thread::spawn(move || {
                let ctx = zmq::Context::new();
                let push = ctx.socket(zmq::PUSH).unwrap();
                push.set_sndhwm(1000).unwrap();
                // Whatever the socket accepted leaves before it closes.
                push.set_linger(-1).unwrap();
                push.connect(&endpoint).unwrap();
                let source = format!("sender-{s}");
                let mut buf = [0u8; MAX_ENVELOPE_LEN];
                for seq in 0..PER_SENDER {
                    let mut e = Event::new(&format!("/flood/{source}"), &source).unwrap();
                    e.seq = seq;
                    e.push("level", Value::Int(seq as i64)).unwrap();
                    let n = wire::encode(&Envelope::new(e), &mut buf).unwrap();
                    // Never block: a full queue is a drop, counted here.
                    match push.send(&buf[..n], zmq::DONTWAIT) {
                        Ok(()) => sent.fetch_add(1, Relaxed),
                        Err(zmq::Error::EAGAIN) => refused.fetch_add(1, Relaxed),
                        Err(e) => panic!("send: {e}"),
                    };
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let (sent, refused) = (sent.load(Relaxed), refused.load(Relaxed));
    assert_eq!(sent + refused, SENDERS * PER_SENDER);
    assert!(sent > 0);

    // Everything the senders' sockets accepted reaches the Manager, and each message it
    // received decoded or was counted as dropped.
    let mut text = String::new();
    wait_until("the Manager to receive every accepted event", || {
        text = m.scrape().unwrap_or_default();
        metric_in(&text, "reflex_events_received_total").unwrap_or(0.0) >= before + sent as f64
    });
    let received = metric_in(&text, "reflex_events_received_total").unwrap();
    let decoded = metric_in(&text, "reflex_events_decoded_total").unwrap();
    let dropped = metric_sum(&text, "reflex_events_dropped_total");
    assert_eq!(received, before + sent as f64, "{text}");
    assert_eq!(decoded + dropped, received, "{text}");
    println!(
        "flood: {sent} accepted and {refused} refused by the senders; \
         Manager received {received}, decoded {decoded}, dropped {dropped}"
    );

    // Still answering: a new event is seen on watch and counted.
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(1000).unwrap();
    push.connect(&m.events).unwrap();
    let mut buf = [0u8; MAX_ENVELOPE_LEN];
    let mut e = Event::new("/after/flood", "late").unwrap();
    e.push("x", Value::Int(1)).unwrap();
    let n = wire::encode(&Envelope::new(e), &mut buf).unwrap();
    push.send(&buf[..n], 0).unwrap();
    m.watch.wait_for("/after/flood", |_| true);
    assert!(!m.proc_exited());
}
