//! `argon2_bound`: the ceiling of password logins on this machine — argon2id verifications
//! per second with par-server's parameters (m=19456 KiB, t=2, p=1, the argon2 crate's
//! defaults), on `threads` OS threads for `seconds`.
//!
//! `argon2_bound [threads] [seconds]` prints one JSON object.

use std::time::{Duration, Instant};

use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher};

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let phc = Argon2::default()
        .hash_password(b"bench-password")
        .expect("argon2 hashes")
        .to_string();
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
    println!(
        "{{\"phc_params\":\"{}\",\"threads\":{threads},\"seconds\":{secs:.2},\"verifications\":{n},\"per_sec\":{:.1},\"ms_per_verification\":{:.2}}}",
        phc.split('$').nth(3).unwrap_or(""),
        n as f64 / secs,
        busy.as_secs_f64() * 1000.0 / n.max(1) as f64
    );
}
