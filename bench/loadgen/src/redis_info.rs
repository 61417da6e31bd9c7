//! Redis' own counters (`INFO commandstats cpu stats`), sampled before and after a
//! measurement: shared by `loadgen` and `redis_login`.

use std::collections::BTreeMap;

/// Redis' counters at one moment (`INFO commandstats cpu stats`).
#[derive(Default)]
pub struct RedisSample {
    /// command → (calls, µs spent executing it)
    pub commands: BTreeMap<String, (u64, u64)>,
    /// `used_cpu_sys` + `used_cpu_user`, seconds.
    pub cpu_secs: f64,
    pub net_in: u64,
    pub net_out: u64,
}

impl RedisSample {
    /// (calls, µs) of each command run since `before`, without the `INFO` calls themselves.
    pub fn commands_since(&self, before: &RedisSample) -> BTreeMap<String, (u64, u64)> {
        self.commands
            .iter()
            .filter(|(cmd, _)| *cmd != "info")
            .filter_map(|(cmd, (calls, usec))| {
                let (c0, u0) = before.commands.get(cmd).copied().unwrap_or_default();
                (*calls > c0).then(|| (cmd.clone(), (calls - c0, usec - u0)))
            })
            .collect()
    }
}

pub async fn redis_sample(url: &str) -> Option<RedisSample> {
    let client = redis::Client::open(url).ok()?;
    let mut c = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .arg("cpu")
        .arg("stats")
        .query_async(&mut c)
        .await
        .ok()?;
    let mut out = RedisSample::default();
    for line in info.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key {
            "used_cpu_sys" | "used_cpu_user" => out.cpu_secs += value.trim().parse::<f64>().unwrap_or(0.0),
            "total_net_input_bytes" => out.net_in = value.trim().parse().unwrap_or(0),
            "total_net_output_bytes" => out.net_out = value.trim().parse().unwrap_or(0),
            _ => {
                let Some(name) = key.strip_prefix("cmdstat_") else {
                    continue;
                };
                let field = |f: &str| {
                    value
                        .split(',')
                        .find_map(|kv| kv.strip_prefix(f))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                out.commands
                    .insert(name.to_owned(), (field("calls="), field("usec=")));
            }
        }
    }
    Some(out)
}
