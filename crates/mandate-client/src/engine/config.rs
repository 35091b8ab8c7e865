//! How the engine starts: where its files are, the provider, the broker,
//! the keyring service, and this device's name, with the app's defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

pub use mandate_broker::host::DEFAULT_LISTEN;

/// This device's name, as the user's other devices show it: the
/// `MANDATE_DEVICE_NAME` variable, or the host's name, with the system.
/// The app and `mandate-engine` put it in [`Config::device`].
pub fn device_name() -> String {
    let name = std::env::var("MANDATE_DEVICE_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "this computer".to_owned());
    let shown: String = format!("{name} ({})", std::env::consts::OS)
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    shown
}

/// The app's client id at the organization's provider, unless told
/// otherwise.
pub const CLIENT_ID: &str = "mandate-desktop";

/// Where the broker is.
#[derive(Debug, Clone)]
pub enum BrokerMode {
    /// Host one in this process, listening on `listen` (127.0.0.1), with
    /// its files under the engine's data directory.
    InProcess {
        /// The address to listen on; port 0 picks a free one.
        listen: SocketAddr,
    },
    /// A shared broker.
    Remote {
        /// Its base URL.
        url: String,
    },
}

/// How to start the engine.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the history (and an in-process broker's files) live.
    pub data_dir: PathBuf,
    /// The organization's OIDC issuer.
    pub issuer: String,
    /// The app's client id at the provider.
    pub client_id: String,
    /// The broker.
    pub broker: BrokerMode,
    /// The OS keyring service the secrets are kept under.
    pub keyring_service: String,
    /// This device's name, sent when its key is enrolled and shown on the
    /// user's other devices ([`device_name`] in the app).
    pub device: String,
    /// The resources an in-process broker issues OAuth access tokens for,
    /// each `URI[=ALG]` as `mandate-broker --oauth-resource` takes it: an
    /// MCP gateway's URL, say (docs/mcp.md).
    pub oauth_resources: Vec<String>,
    /// The resource servers an in-process broker trusts to report calls
    /// made to them, each `URI=THUMBPRINT` as `mandate-broker --witness`
    /// takes it: an MCP gateway's URL and its witness key (docs/mcp.md).
    pub witnesses: Vec<String>,
}

impl Config {
    /// The app's configuration from its environment, `None` without an
    /// issuer: `MANDATE_ISSUER` (the OIDC provider), `MANDATE_CLIENT_ID`
    /// (default [`CLIENT_ID`]), `MANDATE_BROKER` (a shared broker; without
    /// it a broker is hosted in-process on `MANDATE_BROKER_LISTEN`, default
    /// [`DEFAULT_LISTEN`]), `MANDATE_DATA_DIR` (default
    /// `default_data_dir`), `MANDATE_KEYRING_SERVICE`,
    /// `MANDATE_BROKER_OAUTH_RESOURCES` and `MANDATE_BROKER_WITNESS`
    /// (space- or comma-separated, for an in-process broker), and the
    /// device's name ([`device_name`]). An empty variable
    /// counts as unset.
    pub fn from_env(default_data_dir: PathBuf) -> Option<Config> {
        let mut config = Config::from_vars(default_data_dir, |name| std::env::var(name).ok())?;
        config.device = device_name();
        Some(config)
    }

    /// A configuration for `issuer` with the app's defaults: a broker
    /// hosted in-process on [`DEFAULT_LISTEN`], its files and the history
    /// in `data_dir`, this device's name.
    pub fn hosting(data_dir: PathBuf, issuer: String) -> Config {
        Config {
            data_dir,
            issuer,
            client_id: CLIENT_ID.into(),
            broker: BrokerMode::InProcess {
                listen: DEFAULT_LISTEN
                    .parse()
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7700))),
            },
            keyring_service: crate::vault::SERVICE.into(),
            device: device_name(),
            oauth_resources: Vec::new(),
            witnesses: Vec::new(),
        }
    }

    /// [`Config::from_env`], reading variables from `var`, with the
    /// device name left empty.
    fn from_vars(
        default_data_dir: PathBuf,
        var: impl Fn(&str) -> Option<String>,
    ) -> Option<Config> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let issuer = var("MANDATE_ISSUER")?;
        let broker = match var("MANDATE_BROKER") {
            Some(url) => BrokerMode::Remote { url },
            None => BrokerMode::InProcess {
                listen: var("MANDATE_BROKER_LISTEN")
                    .and_then(|l| l.parse().ok())
                    .or_else(|| DEFAULT_LISTEN.parse().ok())?,
            },
        };
        Some(Config {
            data_dir: var("MANDATE_DATA_DIR").map_or(default_data_dir, PathBuf::from),
            issuer,
            client_id: var("MANDATE_CLIENT_ID").unwrap_or_else(|| CLIENT_ID.into()),
            broker,
            keyring_service: var("MANDATE_KEYRING_SERVICE")
                .unwrap_or_else(|| crate::vault::SERVICE.into()),
            device: String::new(),
            oauth_resources: var("MANDATE_BROKER_OAUTH_RESOURCES")
                .map(|r| r.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            witnesses: var("MANDATE_BROKER_WITNESS")
                .map(|w| {
                    w.split(|c: char| c == ',' || c.is_whitespace())
                        .filter(|w| !w.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::{BrokerMode, CLIENT_ID, Config, DEFAULT_LISTEN};

    fn config(vars: &[(&str, &str)]) -> Option<Config> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_vars(PathBuf::from("default"), |name| vars.get(name).cloned())
    }

    #[test]
    fn without_an_issuer_there_is_no_config() {
        assert!(config(&[]).is_none());
        assert!(config(&[("MANDATE_ISSUER", "")]).is_none());
    }

    #[test]
    fn the_defaults_are_the_engine_s_own() {
        let c = config(&[("MANDATE_ISSUER", "http://127.0.0.1:9/")]).unwrap();
        assert_eq!(c.issuer, "http://127.0.0.1:9/");
        assert_eq!(c.client_id, CLIENT_ID);
        assert_eq!(c.keyring_service, crate::vault::SERVICE);
        assert_eq!(c.data_dir, PathBuf::from("default"));
        let BrokerMode::InProcess { listen } = c.broker else {
            panic!("the broker is hosted in-process by default");
        };
        assert_eq!(listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn the_environment_overrides_each_default() {
        let c = config(&[
            ("MANDATE_ISSUER", "http://127.0.0.1:9"),
            ("MANDATE_CLIENT_ID", "other"),
            ("MANDATE_BROKER", "http://127.0.0.1:8"),
            ("MANDATE_DATA_DIR", "/data"),
            ("MANDATE_KEYRING_SERVICE", "svc"),
            (
                "MANDATE_BROKER_OAUTH_RESOURCES",
                "http://127.0.0.1:7900/mcp  https://x.example/=ES256",
            ),
            (
                "MANDATE_BROKER_WITNESS",
                "http://127.0.0.1:7900/mcp=kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k,https://y.example/=Ye0onk80RdXAIQxV7_zJ6dZm0qJ0zLTSChlXCwLCXow",
            ),
        ])
        .unwrap();
        assert_eq!(
            c.witnesses,
            [
                "http://127.0.0.1:7900/mcp=kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
                "https://y.example/=Ye0onk80RdXAIQxV7_zJ6dZm0qJ0zLTSChlXCwLCXow"
            ]
        );
        assert_eq!(
            c.oauth_resources,
            ["http://127.0.0.1:7900/mcp", "https://x.example/=ES256"]
        );
        assert_eq!(c.client_id, "other");
        assert_eq!(c.data_dir, PathBuf::from("/data"));
        assert_eq!(c.keyring_service, "svc");
        assert!(matches!(c.broker, BrokerMode::Remote { url } if url == "http://127.0.0.1:8"));
        let c = config(&[
            ("MANDATE_ISSUER", "http://127.0.0.1:9"),
            ("MANDATE_BROKER", ""),
            ("MANDATE_BROKER_LISTEN", "127.0.0.1:0"),
        ])
        .unwrap();
        assert!(matches!(c.broker, BrokerMode::InProcess { listen } if listen.port() == 0));
    }
}
