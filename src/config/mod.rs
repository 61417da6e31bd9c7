//! Configuration: the settings tree and its loading (`settings`; the `dpop` and limits keys in
//! `dpop_settings`, `limit_settings`), start-up validation that
//! names the offending key and builds what the service runs on, once (`validate`, with the
//! sections `clients`, `dpop`, `keys`, `redis`), the FAPI 2.0 profile's rules and report
//! (`fapi2`), and the zero-config demo (`demo`).

mod clients;
pub mod demo;
mod dpop;
mod dpop_settings;
mod error;
pub mod fapi2;
mod keys;
mod limit_settings;
mod limits;
mod net;
mod redis;
mod settings;
mod validate;

pub use self::error::ConfigError;
pub use self::net::is_loopback_bind;
pub use self::settings::{
    ClientSettings, DpopSettings, HttpSettings, KeySettings, LogFormat, LogSettings, OtlpProtocol,
    ParSettings, PlaygroundSettings, Profile, RedisConnection, RedisMode, RedisSettings, SessionSettings,
    Settings, Source, TelemetrySettings, TokenSettings, UserSettings,
};
pub use self::validate::ValidSettings;
