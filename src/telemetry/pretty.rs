//! Field formatting of the pretty (terminal) log format: tracing-subscriber's default, minus
//! the `otel.*` fields. Those only steer the OpenTelemetry layer (span name, kind, status);
//! skipping them keeps an untraced request from formatting its span name for the log.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

pub(super) struct PrettyFields;

impl<'w> FormatFields<'w> for PrettyFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = SkipOtel(DefaultVisitor::new(writer, true));
        fields.record(&mut visitor);
        visitor.0.finish()
    }
}

struct SkipOtel<'w>(DefaultVisitor<'w>);

fn shown(field: &Field) -> bool {
    !field.name().starts_with("otel.")
}

impl Visit for SkipOtel<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if shown(field) {
            self.0.record_str(field, value);
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if shown(field) {
            self.0.record_error(field, value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if shown(field) {
            self.0.record_debug(field, value);
        }
    }
}
