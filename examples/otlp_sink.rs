//! A local OTLP/HTTP sink for the tracing benchmark (`bench/tracing.sh`): accepts
//! `POST /v1/traces`, decodes each export with `opentelemetry-proto` (so the exporter does
//! the real work), counts spans and prints the totals every 5 s.
//!
//! `cargo run --release --example otlp_sink -- 127.0.0.1:4318`

#[path = "../tests/observability/receiver.rs"]
mod receiver;

use std::sync::atomic::Ordering;

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:4318".into());
    let r = receiver::Receiver::start_on(&addr, false);
    println!("otlp sink on {}", r.url());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(5));
        println!(
            "exports {} spans {}",
            r.requests.load(Ordering::Relaxed),
            r.received.load(Ordering::Relaxed)
        );
    }
}
