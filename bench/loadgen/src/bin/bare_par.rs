//! `bare_par`: the reference ceiling for a PAR push on this machine — an actix-web handler
//! that does only HTTP Basic client authentication and `SET key body EX 60 NX` on Redis over
//! one multiplexed `ConnectionManager` (par-server's default), then answers `201` with a
//! `request_uri`. No form parsing, validation, tracing or JSON library. `GET /hello` is the
//! HTTP ceiling (no Redis at all).
//!
//! `bare_par <bind> <redis-url> <client_id> <client_secret>`

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use redis::aio::ConnectionManager;

struct State {
    redis: ConnectionManager,
    expected_basic: String,
}

async fn par(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let authorized = req
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == state.expected_basic.as_bytes());
    if !authorized {
        return HttpResponse::Unauthorized().finish();
    }
    let mut reference = [0u8; 32];
    rand::fill(&mut reference[..]);
    let reference = URL_SAFE_NO_PAD.encode(reference);
    let mut conn = state.redis.clone();
    let stored: redis::RedisResult<Option<String>> = redis::cmd("SET")
        .arg(format!("bare:{reference}"))
        .arg(body.as_ref())
        .arg("EX")
        .arg(60)
        .arg("NX")
        .query_async(&mut conn)
        .await;
    match stored {
        Ok(Some(_)) => HttpResponse::Created()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("application/json")
            .body(format!(
                "{{\"request_uri\":\"urn:ietf:params:oauth:request_uri:{reference}\",\"expires_in\":60}}"
            )),
        _ => HttpResponse::ServiceUnavailable().finish(),
    }
}

async fn hello() -> &'static str {
    "hello"
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: bare_par <bind> <redis-url> <client_id> <client_secret>");
        std::process::exit(2);
    }
    let client = redis::Client::open(args[2].as_str()).map_err(std::io::Error::other)?;
    let redis = ConnectionManager::new(client)
        .await
        .map_err(std::io::Error::other)?;
    let expected_basic = format!("Basic {}", STANDARD.encode(format!("{}:{}", args[3], args[4])));
    let state = web::Data::new(State {
        redis,
        expected_basic,
    });
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/par", web::post().to(par))
            .route("/hello", web::get().to(hello))
    })
    .bind(args[1].as_str())?
    .run()
    .await
}
