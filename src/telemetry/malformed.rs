//! Malformed HTTP from clients at WARN, not ERROR. actix-http logs every connection it
//! drops for a broken request ("stream error: …", a bad request line, oversized headers) as
//! an ERROR under its own target; that is a client's fault, not the service's, and an
//! internet-facing service sees it all day. The log layer drops those events
//! ([`is_stream_error`]) and [`Downgrade`] logs them again at WARN under `par_server::http`.

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

const TARGET: &str = "actix_http::h1::dispatcher";

/// An ERROR of actix-http's connection dispatcher.
pub(super) fn is_stream_error(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR && meta.target() == TARGET
}

/// Re-logs actix-http's dispatcher errors at WARN.
pub(super) struct Downgrade;

impl<S: Subscriber> Layer<S> for Downgrade {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if !is_stream_error(event.metadata()) {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        tracing::warn!(target: "par_server::http", error = %message.0, "malformed or broken HTTP request; connection closed");
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
