//! The comparison peer of `scripts/bench.sh`: the purchase path a user would deploy
//! instead of sluice, as the seed designs draw it, on the same stack. actix-web, the
//! same HS256 identity check sluice does (`sluice::domain::jwt`), then one Redis
//! `EVALSHA` per purchase whose Lua checks the user's limit, checks the stock,
//! decrements it, marks the user and `XADD`s the order to a stream; the answer goes
//! out only once Redis has answered (with `appendfsync always`, once it is on disk).
//!
//! Built only for benchmarking (`cargo bench --bench peer --no-run`), never by
//! `cargo build --release`. It takes the same requests as sluice's purchase
//! (`POST /api/activities/bench/purchase`, `Authorization: Bearer <jwt>`,
//! `{"token": "..."}`), so `scripts/wrk/purchase.lua` drives both with one token file.
//!
//! `peer --bind 127.0.0.1:PORT --redis redis://127.0.0.1:PORT/ [--workers 2]
//!  [--stock 100000000] [--jwt-secret S]`; prints `peer ready` once it listens.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use redis::aio::ConnectionManager;
use redis::Script;
use serde::Deserialize;
use serde_json::json;
use sluice::domain::clock::{Clock, SystemClock};
use sluice::domain::jwt::JwtKey;

/// KEYS: stock, the user -> order id hash, the order stream. ARGV: user, token.
/// Returns `{1, id}` for a new order, `{0, id}` for the user's earlier order (limit
/// 1: a replay answers it again, as sluice does), `{-1, ""}` when sold out.
const PURCHASE_LUA: &str = r#"
local prev = redis.call("HGET", KEYS[2], ARGV[1])
if prev then return {0, prev} end
local stock = tonumber(redis.call("GET", KEYS[1]) or "0")
if stock <= 0 then return {-1, ""} end
redis.call("DECRBY", KEYS[1], 1)
local id = redis.call("XADD", KEYS[3], "*", "user", ARGV[1], "token", ARGV[2], "quantity", "1")
redis.call("HSET", KEYS[2], ARGV[1], id)
return {1, id}
"#;
const STOCK: &str = "peer:stock";
const BUYERS: &str = "peer:buyers";
const ORDERS: &str = "peer:orders";

struct Peer {
    jwt: JwtKey,
    redis: ConnectionManager,
    script: Script,
}

#[derive(Deserialize)]
struct PurchaseBody {
    token: String,
}

fn error(status: u16, code: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).expect("a valid status");
    HttpResponse::build(status).json(json!({"error": {"code": code, "message": code}}))
}

async fn purchase(
    req: HttpRequest,
    peer: web::Data<Peer>,
    body: web::Json<PurchaseBody>,
) -> HttpResponse {
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(user) = bearer.and_then(|t| peer.jwt.verify(t, SystemClock.now_ms()).ok()) else {
        return error(401, "unauthorized");
    };
    let mut conn = peer.redis.clone();
    let answer: redis::RedisResult<(i64, String)> = peer
        .script
        .key(STOCK)
        .key(BUYERS)
        .key(ORDERS)
        .arg(user.as_str())
        .arg(&body.token)
        .invoke_async(&mut conn)
        .await;
    match answer {
        Ok((-1, _)) => error(409, "sold_out"),
        Ok((fresh, id)) => {
            let order = json!({"order": {"id": id, "activity_id": "bench", "user_id": user.as_str(),
                                         "quantity": 1, "status": "pending_payment"}});
            if fresh == 1 {
                HttpResponse::Created().json(order)
            } else {
                HttpResponse::Ok().json(order)
            }
        }
        Err(_) => error(503, "unavailable"),
    }
}

struct Args {
    bind: String,
    redis: String,
    workers: usize,
    stock: u64,
    jwt_secret: String,
}

fn args() -> Args {
    let mut a = Args {
        bind: "127.0.0.1:8090".into(),
        redis: "redis://127.0.0.1:6379/".into(),
        workers: 2,
        stock: 100_000_000,
        jwt_secret: sluice::config::DEV_JWT_SECRET.into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--bind" => a.bind = value(),
            "--redis" => a.redis = value(),
            "--workers" => a.workers = value().parse().expect("--workers N"),
            "--stock" => a.stock = value().parse().expect("--stock N"),
            "--jwt-secret" => a.jwt_secret = value(),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn main() -> std::io::Result<()> {
    // A plain `cargo bench` runs every bench target with `--bench`: this one is a
    // server that `scripts/bench.sh` starts and stops, so it does not run there.
    if std::env::args().any(|a| a == "--bench") {
        println!(
            "peer: a server for scripts/bench.sh (see docs/performance.md); not run by cargo bench"
        );
        return Ok(());
    }
    let a = args();
    actix_web::rt::System::new().block_on(async move {
        let client = redis::Client::open(a.redis.as_str()).expect("a Redis URL");
        let mut conn = ConnectionManager::new(client).await.expect("Redis answers");
        let script = Script::new(PURCHASE_LUA);
        redis::pipe()
            .del(&[STOCK, BUYERS, ORDERS])
            .set(STOCK, a.stock)
            .exec_async(&mut conn)
            .await
            .expect("the stock is set");
        script
            .prepare_invoke()
            .load_async(&mut conn)
            .await
            .expect("the script loads");
        let peer = web::Data::new(Peer {
            jwt: JwtKey::new(a.jwt_secret.as_bytes()),
            redis: conn,
            script,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(peer.clone())
                .route("/healthz", web::get().to(HttpResponse::Ok))
                .route("/api/activities/bench/purchase", web::post().to(purchase))
        })
        .workers(a.workers)
        .bind(&a.bind)?
        .run();
        println!("peer ready on {}", a.bind);
        server.await
    })
}
