//! One integration-test binary (faster to build than one per file). Every test starts its own
//! `redis-server` and `Application`; nothing is shared and nothing needs starting by hand.

mod authorize;
mod binary;
mod discovery_health;
mod helpers;
mod observability;
mod par;
mod store_contract;
