//! `Verifier::verify` with a warm cache next to a bare `jsonwebtoken::decode` of the same token,
//! for ES256 and RS256, in the same run: the difference is the verifier's own overhead (header
//! rules, key lookup, claim checks) over signature verification.
//!
//! `cargo bench --bench verify -- --warm-up-time 1 --measurement-time 3`

// A benchmark that cannot set up must stop loudly; these lints guard library code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use jsonwebtoken::{DecodingKey, Header, Validation};
use serde_json::json;
use stamp::keys::{Alg, PrivateKey, thumbprint};
use stamp::tokens::AccessClaims;
use stamp::verify::{JwksClient, JwksConfig, Verifier, VerifierConfig, VerifyingKeys};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

const ISSUER: &str = "https://id.example.com";
const AUDIENCE: &str = "orders-api";

/// One algorithm's token, the verifier with a warm cache, and the bare jsonwebtoken inputs.
struct Case {
    alg: Alg,
    token: String,
    now: i64,
    verifier: Verifier,
    keys: VerifyingKeys,
    decoding: DecodingKey,
    validation: Validation,
}

fn case(runtime: &Runtime, alg: Alg) -> Case {
    let key = PrivateKey::generate(alg, 2048).unwrap();
    let public = key.public_jwk();
    let kid = thumbprint(&public);
    let jwks = serde_json::to_vec(&json!({ "keys": [public.to_json_value(&kid)] })).unwrap();
    let now = stamp::clock::now();
    let claims = json!({
        "iss": ISSUER, "sub": "user-1", "aud": AUDIENCE, "exp": now + 900, "iat": now,
        "nbf": now, "jti": "AAAAAAAAAAAAAAAAAAAAAA", "client_id": "stamp",
        "scope": "openid orders:read", "roles": ["admin"],
    });
    let mut header = Header::new(alg.jwt());
    header.kid = Some(kid.clone());
    header.typ = Some("at+jwt".into());
    let token = jsonwebtoken::encode(&header, &claims, &key.encoding_key().unwrap()).unwrap();

    // The verifier, its cache warmed from a JWKS served once on loopback.
    let verifier = runtime.block_on(async {
        let url = serve_once(jwks.clone()).await;
        let keys = JwksClient::new(url, JwksConfig::default()).unwrap();
        let verifier = Verifier::new(VerifierConfig::new(ISSUER, AUDIENCE), keys);
        verifier.keys().refresh(now).await.unwrap();
        verifier
    });
    runtime
        .block_on(verifier.verify(&token, now))
        .expect("the benchmark token verifies");

    // Bare jsonwebtoken with the same checks it can express, and the same decoding key.
    let decoding = public.decoding_key().unwrap();
    let mut validation = Validation::new(alg.jwt());
    validation.leeway = 5;
    validation.validate_nbf = true;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    jsonwebtoken::decode::<AccessClaims>(&token, &decoding, &validation).unwrap();
    let keys = VerifyingKeys::parse(&jwks).unwrap();
    Case {
        alg,
        token,
        now,
        verifier,
        keys,
        decoding,
        validation,
    }
}

impl Case {
    fn decode(&self) {
        jsonwebtoken::decode::<AccessClaims>(
            black_box(&self.token),
            &self.decoding,
            &self.validation,
        )
        .unwrap();
    }

    fn verify(&self, runtime: &Runtime) {
        runtime
            .block_on(self.verifier.verify(black_box(&self.token), self.now))
            .unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let runtime = runtime();
    for alg in Alg::ALL {
        let case = case(&runtime, alg);
        let mut group = c.benchmark_group(alg.as_str());
        group.bench_function("jsonwebtoken::decode", |b| b.iter(|| case.decode()));
        group.bench_function("Verifier::verify (warm cache)", |b| {
            b.iter(|| case.verify(&runtime))
        });
        group.bench_function("Verifier::verify_with (key set given)", |b| {
            b.iter(|| {
                case.verifier
                    .verify_with(&case.keys, black_box(&case.token), case.now)
                    .unwrap()
            })
        });
        group.finish();
    }
}

/// The ratio verify / decode measured in alternating batches (ABBA order), so that load from
/// other processes on a shared machine hits both sides alike. Criterion measures one function
/// after the other, which on a busy 2-core box moves each figure by tens of percent.
fn paired() {
    let runtime = runtime();
    const ROUNDS: usize = 200;
    const BATCH: u32 = 40;
    for alg in Alg::ALL {
        let case = case(&runtime, alg);
        let mut ratios = Vec::with_capacity(ROUNDS);
        let (mut best_decode, mut best_verify) = (f64::MAX, f64::MAX);
        for round in 0..ROUNDS {
            let time = |f: &dyn Fn()| {
                let start = stamp::clock::instant();
                for _ in 0..BATCH {
                    f();
                }
                start.elapsed().as_secs_f64() / f64::from(BATCH)
            };
            let (decode, verify) = if round % 2 == 0 {
                let d = time(&|| case.decode());
                (d, time(&|| case.verify(&runtime)))
            } else {
                let v = time(&|| case.verify(&runtime));
                (time(&|| case.decode()), v)
            };
            best_decode = best_decode.min(decode);
            best_verify = best_verify.min(verify);
            ratios.push(verify / decode);
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "paired {}: decode best {:.1} µs, verify best {:.1} µs; verify/decode median {:.3}, of bests {:.3}",
            case.alg,
            best_decode * 1e6,
            best_verify * 1e6,
            ratios[ROUNDS / 2],
            best_verify / best_decode
        );
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Serves `jwks` to one request on 127.0.0.1 and returns its URL.
async fn serve_once(jwks: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: max-age=3600\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            jwks.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&jwks).await.unwrap();
    });
    url
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    paired();
}
