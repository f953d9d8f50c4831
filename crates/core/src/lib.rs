//! tollgate's core: everything the hooks, the admin CLI and gen-ovpn share.
//! Pure policy lives in `policy` and `quota`; I/O lives in `store`, `auth`
//! and `openvpn`.

pub mod accounting;
pub mod auth;
pub mod config;
pub mod db;
pub mod devices;
pub mod directory;
pub mod events;
pub mod groups;
pub mod http;
pub mod method;
pub mod mgmt;
pub mod names;
pub mod oidc;
pub mod openvpn;
pub mod ovpn_conf;
pub mod password;
pub mod pg;
pub mod plans;
pub mod policy;
pub mod post_auth;
pub mod profile;
pub mod quota;
pub mod radius;
pub mod safefs;
pub mod selfservice;
pub mod servers;
pub mod sessions;
pub mod standing;
pub mod store;
pub mod store_copy;
pub mod sweep;
pub mod totp;
pub mod units;
pub mod usage;
pub mod users;

pub use config::Config;
pub use store::Store;
