//! Bare argon2id verification rate: the reference the login rate is compared with (bench/load.sh).
//!
//! Verifies one PHC hash in a loop with the parameters `stamp::auth` uses (OWASP: argon2id,
//! 19 MiB, 2 iterations, 1 lane), on `--threads` threads for `--seconds`, and prints
//! `verifications/s: N`. Pin it with `taskset` to the cores the server gets, so both sides of the
//! ratio run on the same cores.
//!
//! `--reuse-memory` verifies into one 19 MiB block buffer per thread, allocated once, instead of
//! argon2's `verify_password`, which allocates and fills a fresh buffer on every call: the
//! difference is what a login path with a pool of pre-allocated buffers would gain.
//!
//! `cargo run --release --example argon2_rate -- --seconds 5 --threads 1 [--reuse-memory]`

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

/// The parameters of `stamp::auth::password` (kept in step by hand: they are private there).
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

fn main() -> ExitCode {
    let mut seconds = 5.0f64;
    let mut threads = 1usize;
    let mut reuse_memory = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--reuse-memory" {
            reuse_memory = true;
            continue;
        }
        let value = args.next().and_then(|v| v.parse::<f64>().ok());
        match (arg.as_str(), value) {
            ("--seconds", Some(v)) if v > 0.0 => seconds = v,
            ("--threads", Some(v)) if v >= 1.0 => threads = v as usize,
            _ => {
                eprintln!("usage: argon2_rate [--seconds S] [--threads N] [--reuse-memory]");
                return ExitCode::from(2);
            }
        }
    }
    let Ok(params) = Params::new(MEMORY_KIB, ITERATIONS, LANES, None) else {
        eprintln!("invalid argon2 parameters");
        return ExitCode::FAILURE;
    };
    let block_count = params.block_count();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let password = b"correct horse battery staple";
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let hash = match argon2.hash_password(password, &salt) {
        Ok(hash) => hash.to_string(),
        Err(e) => {
            eprintln!("hashing failed: {e}");
            return ExitCode::FAILURE;
        }
    };

    let done = AtomicBool::new(false);
    let verified = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let start = stamp::clock::instant();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut memory = if reuse_memory {
                    vec![Block::default(); block_count]
                } else {
                    Vec::new()
                };
                while !done.load(Ordering::Relaxed) {
                    // Parse the stored hash each time, as a login does.
                    let ok = PasswordHash::new(&hash).is_ok_and(|parsed| {
                        if reuse_memory {
                            verify_into(&argon2, password, &parsed, &mut memory)
                        } else {
                            argon2.verify_password(password, &parsed).is_ok()
                        }
                    });
                    let counter = if ok { &verified } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        done.store(true, Ordering::Relaxed);
    });
    let elapsed = start.elapsed().as_secs_f64();
    let verified = verified.load(Ordering::Relaxed);
    if failed.load(Ordering::Relaxed) > 0 {
        eprintln!("some verifications failed");
        return ExitCode::FAILURE;
    }
    println!("threads: {threads}");
    println!("reuse memory: {reuse_memory}");
    println!("verifications: {verified}");
    println!("seconds: {elapsed:.3}");
    println!("verifications/s: {:.1}", verified as f64 / elapsed);
    ExitCode::SUCCESS
}

/// Verifies `password` against a parsed PHC hash using `memory` as argon2's working memory.
fn verify_into(
    argon2: &Argon2<'_>,
    password: &[u8],
    parsed: &PasswordHash<'_>,
    memory: &mut [Block],
) -> bool {
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    argon2
        .hash_password_into_with_memory(password, salt, out, memory)
        .is_ok()
        && bool::from(out.ct_eq(expected.as_bytes()))
}
