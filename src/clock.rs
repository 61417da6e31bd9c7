//! The one place that reads the wall clock, as seconds since the Unix epoch. Protocol code
//! takes `now` as a parameter instead.

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
