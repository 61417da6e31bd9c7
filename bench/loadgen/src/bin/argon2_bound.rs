//! `argon2_bound`: the ceiling of password logins on this machine — argon2id verifications
//! per second with par-server's parameters (m=19456 KiB, t=2, p=1, the argon2 crate's
//! defaults), on `threads` OS threads for `seconds`.
//!
//! `argon2_bound [threads] [seconds]` prints one JSON object. `cpu_ms_per_verification`
//! (process CPU time / verifications) does not depend on what else runs on the machine;
//! `bound_per_sec_all_cores` = CPUs / that is what password logins could reach if argon2
//! had every core to itself.
//!
//! `argon2_bound cheap-hash PASSWORD` prints an argon2id PHC string with tiny parameters
//! (m=1024 KiB, t=1, p=1): for the capacity run's user whose 100,000 logins measure Redis
//! memory per SSO session, not the hash.

use std::time::{Duration, Instant};

use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher};

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("cheap-hash") {
        let password = args.nth(1).expect("cheap-hash PASSWORD");
        let params = argon2::Params::new(1024, 1, 1, None).expect("argon2 parameters");
        let hasher = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        println!(
            "{}",
            hasher.hash_password(password.as_bytes()).expect("argon2 hashes")
        );
        return;
    }
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let phc = Argon2::default()
        .hash_password(b"bench-password")
        .expect("argon2 hashes")
        .to_string();
    let cpu_before = process_cpu_secs();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let phc = phc.clone();
            std::thread::spawn(move || {
                let parsed = PasswordHash::new(&phc).expect("valid PHC");
                let mut n = 0u64;
                let mut busy = Duration::ZERO;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    assert!(
                        Argon2::default()
                            .verify_password(b"bench-password", &parsed)
                            .is_ok()
                    );
                    busy += t.elapsed();
                    n += 1;
                }
                (n, busy)
            })
        })
        .collect();
    let (mut n, mut busy) = (0u64, Duration::ZERO);
    for h in handles {
        let (k, b) = h.join().expect("thread");
        n += k;
        busy += b;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu_ms = (process_cpu_secs() - cpu_before) * 1000.0 / n.max(1) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!(
        "{{\"phc_params\":\"{}\",\"threads\":{threads},\"seconds\":{secs:.2},\"verifications\":{n},\"per_sec\":{:.1},\"ms_per_verification\":{:.2},\"cpu_ms_per_verification\":{cpu_ms:.2},\"bound_per_sec_all_cores\":{:.1}}}",
        phc.split('$').nth(3).unwrap_or(""),
        n as f64 / secs,
        busy.as_secs_f64() * 1000.0 / n.max(1) as f64,
        cores as f64 * 1000.0 / cpu_ms.max(f64::MIN_POSITIVE),
    );
}

/// User + system CPU time of this process, from `/proc/self/stat` (Linux; clock ticks of
/// 1/100 s).
fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}
