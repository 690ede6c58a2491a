//! Times generating a stream: `cargo run --release -p stigmergy-testkit --example
//! generate_million [events] [organisations]` (default one million events, 200 organisations).

use std::collections::BTreeMap;
use std::time::Instant;

use stigmergy_testkit::{Mix, generate};

fn main() {
    let mut args = std::env::args().skip(1);
    let events = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let organizations = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let mix = Mix {
        organizations,
        ..Mix::with_events(events)
    };
    let started = Instant::now();
    let scenario = generate(42, &mix);
    let elapsed = started.elapsed();
    println!(
        "{} events by {} organisations in {:.2} s",
        scenario.events.len(),
        scenario.organizations.len(),
        elapsed.as_secs_f64()
    );
    let mut types = BTreeMap::new();
    for event in &scenario.events {
        *types.entry(event.event_type().name()).or_insert(0usize) += 1;
    }
    for (name, count) in types {
        println!(
            "{name:>22} {:>6.2} %",
            count as f64 * 100.0 / scenario.events.len() as f64
        );
    }
}
