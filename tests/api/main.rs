//! One integration-test binary (faster to build than one per file). Every test starts its own
//! `redis-server` and `Application`; nothing is shared and nothing needs starting by hand.

mod authorize;
mod binary;
#[path = "../support/demo.rs"]
mod demo;
mod discovery_health;
mod flow;
mod helpers;
mod jwks;
mod observability;
mod par;
mod redis_topologies;
mod store_contract;
mod token;
#[path = "../support/topology.rs"]
mod topology;
mod userinfo;
