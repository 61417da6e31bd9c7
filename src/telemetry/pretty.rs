//! Field formatting of the pretty (terminal) log format: tracing-subscriber's default, minus
//! the `otel.*` fields. Those only steer the OpenTelemetry layer (span name, kind, status);
//! skipping them keeps an untraced request from formatting its span name for the log.
//!
//! Without colours (any log that is not a terminal: compose, Kubernetes) a plain string
//! field — printable ASCII without `"` or `\`, which `Debug` would print unchanged between
//! quotes — is written directly: the same text without `Debug`'s character-by-character
//! escaping, which was most of the request line's formatting. Everything else goes to
//! tracing-subscriber's own visitor, so the output is the same byte for byte.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

pub(super) struct PrettyFields;

impl<'w> FormatFields<'w> for PrettyFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            let mut visitor = SkipOtel(DefaultVisitor::new(writer, true));
            fields.record(&mut visitor);
            return visitor.0.finish();
        }
        let mut visitor = Plain {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Neither `otel.*` (read by the OpenTelemetry layer only) nor `log.*` (metadata of events
/// from the `log` crate, which tracing-subscriber prints elsewhere).
fn shown(field: &Field) -> bool {
    !field.name().starts_with("otel.") && !field.name().starts_with("log.")
}

struct SkipOtel<'w>(DefaultVisitor<'w>);

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

/// The colourless visitor: plain strings directly, the rest through [`DefaultVisitor`].
struct Plain<'w> {
    writer: Writer<'w>,
    /// No field written yet (no separating space).
    first: bool,
    result: fmt::Result,
}

impl Plain<'_> {
    /// Formats one field with tracing-subscriber's visitor.
    fn default(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.first);
        record(&mut visitor);
        self.result = visitor.finish();
        self.first = false;
    }
}

/// `Debug` prints such a string unchanged between quotes.
fn plain(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for Plain<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() || !shown(field) {
            return;
        }
        let name = field.name();
        if name == "message" || !plain(value) {
            return self.default(|v| v.record_str(field, value));
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        let w = &mut self.writer;
        let pad = if self.first { "" } else { " " };
        self.first = false;
        self.result = w
            .write_str(pad)
            .and_then(|()| w.write_str(name))
            .and_then(|()| w.write_str("=\""))
            .and_then(|()| w.write_str(value))
            .and_then(|()| w.write_char('"'));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_ok() && shown(field) {
            self.default(|v| v.record_error(field, value));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() && shown(field) {
            self.default(|v| v.record_debug(field, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line tracing-subscriber's own visitor writes for `fields` (colourless).
    fn reference(record: impl Fn(&mut dyn Visit)) -> String {
        let mut out = String::new();
        let mut v = SkipOtel(DefaultVisitor::new(Writer::new(&mut out), true));
        record(&mut v);
        v.0.finish().unwrap();
        out
    }

    fn ours(record: impl Fn(&mut dyn Visit)) -> String {
        let mut out = String::new();
        let mut v = Plain {
            writer: Writer::new(&mut out),
            first: true,
            result: Ok(()),
        };
        record(&mut v);
        v.result.unwrap();
        out
    }

    #[test]
    fn plain_strings_are_written_as_the_default_visitor_writes_them() {
        static CALLSITE: tracing::callsite::DefaultCallsite = tracing::callsite::DefaultCallsite::new(&META);
        static META: tracing::Metadata<'static> = tracing::metadata!(
            name: "test",
            target: "test",
            level: tracing::Level::INFO,
            fields: &["message", "client_id", "r#type", "otel.name", "log.target", "path", "status"],
            callsite: &CALLSITE,
            kind: tracing::metadata::Kind::EVENT,
        );
        let f = |name: &str| META.fields().field(name).unwrap();
        let values: [(&str, &str); 8] = [
            ("message", "request"),
            ("client_id", "app"),
            ("r#type", "code"),
            ("otel.name", "POST /oauth2/par"),
            ("log.target", "x"),
            ("path", "/a \"quoted\" \\ path"),
            ("client_id", "caf\u{e9}\n\u{1b}[31m"),
            ("path", ""),
        ];
        let record = |v: &mut dyn Visit| {
            for (name, value) in values {
                v.record_str(&f(name), value);
            }
            v.record_u64(&f("status"), 201);
            v.record_debug(&f("path"), &format_args!("x{}", 1));
        };
        let expected = reference(record);
        assert_eq!(ours(record), expected);
        assert!(expected.contains("client_id=\"app\" type=\"code\""), "{expected}");
    }
}
