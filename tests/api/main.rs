//! One integration-test binary (faster to build than one per file). Every test starts its own
//! `redis-server` and `Application`; nothing is shared and nothing needs starting by hand.

mod authorize;
mod binary;
#[path = "../support/config_file.rs"]
mod config_file;
#[path = "../support/demo.rs"]
mod demo;
mod discovery_health;
mod dpop;
mod flow;
mod helpers;
#[path = "../support/html.rs"]
mod html;
mod jar;
mod jwks;
mod observability;
mod par;
mod rar;
mod redis_topologies;
mod refresh;
mod store_contract;
mod token;
#[path = "../support/topology.rs"]
mod topology;
mod userinfo;
