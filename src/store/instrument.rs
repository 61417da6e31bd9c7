//! A span and metrics around every Redis command: `db.system = redis`, the command name
//! (or the script's name) as `db.operation.name`, latency and errors by command. Keys and
//! values are never recorded: keys hold digests of live references, values hold requests.

use std::time::Instant;

use futures_util::FutureExt;
use tracing::Instrument;
use tracing::field::Empty;

use super::error::StoreError;
use crate::telemetry::metrics;

/// Command names as bounded, static labels.
const COMMANDS: &[&str] = &[
    "SET", "GET", "GETDEL", "DEL", "PTTL", "PING", "EXPIRE", "EVALSHA", "EVAL",
];

/// The static name of `cmd`'s command word (`OTHER` outside the known set).
pub(super) fn command_name(cmd: &redis::Cmd) -> &'static str {
    let word = match cmd.args_iter().next() {
        Some(redis::Arg::Simple(w)) => w,
        _ => return "OTHER",
    };
    COMMANDS
        .iter()
        .find(|c| c.as_bytes().eq_ignore_ascii_case(word))
        .copied()
        .unwrap_or("OTHER")
}

/// Runs one Redis call inside a client span, recording latency and failures.
///
/// A combinator, not an `async fn`: an `async fn` keeps its future argument and the
/// instrumented copy as two slots of its state, doubling the size of every store future
/// above it (they are moved, so copied, on every `Box::pin` on the way up — measured as a
/// quarter of an SSO login's instructions in `memcpy`, docs/benchmarks.md).
pub(super) fn command<T>(
    operation: &'static str,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> impl Future<Output = Result<T, StoreError>> {
    let span = tracing::info_span!(
        "redis",
        otel.name = operation,
        otel.kind = "client",
        otel.status_code = Empty,
        db.system = "redis",
        db.system.name = "redis",
        db.operation.name = operation,
        error.type = Empty,
    );
    let start = Instant::now();
    fut.instrument(span.clone()).map(move |result| {
        let error = match &result {
            Ok(_) => None,
            Err(StoreError::Unavailable(_)) => Some("unavailable"),
            Err(StoreError::Backend(_) | StoreError::TooLarge(..)) => Some("backend"),
        };
        if let Some(kind) = error {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", kind);
        }
        metrics::redis_command(operation, start.elapsed(), error);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_are_static_and_bounded() {
        assert_eq!(command_name(redis::cmd("GETDEL").arg("k")), "GETDEL");
        assert_eq!(command_name(redis::cmd("set").arg("k").arg("v")), "SET");
        assert_eq!(command_name(&redis::cmd("FLUSHALL")), "OTHER");
    }
}
