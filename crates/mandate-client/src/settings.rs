//! The user's settings: which broker and provider to use (for an
//! organization that runs its own), whether the app starts at login,
//! whether it notifies, and the defaults offered when approving for a task
//! or with a rule. Kept as `settings.json` in the data directory, written
//! whole or not at all.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ClientError;
use crate::engine::{BrokerMode, Config};

/// The file's name in the data directory.
pub const FILE: &str = "settings.json";

/// The user's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The organization's broker (`https://`, or `http://` to this
    /// machine); `None`: the one the app was started with, or one hosted
    /// in the app.
    pub broker_url: Option<String>,
    /// The organization's OpenID provider (its issuer URL, under the same
    /// rule); `None`: the one the app was started with.
    pub issuer: Option<String>,
    /// Start Mandate when the user logs in.
    pub start_at_login: bool,
    /// From the AppImage: show Mandate in the applications menu (an entry
    /// for the AppImage's file, [`set_menu_entry`]). A package installs
    /// its own entry, so only the AppImage offers this.
    pub menu_entry: bool,
    /// Desktop notifications: new requests, approvals by a rule, keys
    /// enrolled elsewhere, grants about to lapse.
    pub notifications: bool,
    /// The lease's length offered first when approving "for this task",
    /// in minutes.
    pub lease_minutes: u32,
    /// The rule's length offered first when approving "always, within
    /// these bounds", in days.
    pub rule_days: u32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            broker_url: None,
            issuer: None,
            start_at_login: false,
            menu_entry: false,
            notifications: true,
            lease_minutes: 30,
            rule_days: 30,
        }
    }
}

/// The settings as the Settings screen shows them.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct SettingsView {
    /// As saved.
    pub settings: Settings,
    /// Why the saved settings could not be read, if they could not: the
    /// defaults hold until they are saved again.
    pub unread: Option<String>,
    /// The provider the app started with.
    pub issuer_in_use: Option<String>,
    /// The broker the app started with: its URL, or that it is hosted in
    /// the app.
    pub broker_in_use: Option<String>,
    /// Whether the provider or the broker saved differ from those in use:
    /// they take effect when the app starts again.
    pub restart_needed: bool,
    /// The AppImage's file, when the app runs from one: the screen then
    /// offers the menu entry.
    pub appimage: Option<String>,
}

/// The lease lengths the app offers, in minutes.
pub const LEASE_CHOICES: [u32; 6] = [15, 30, 60, 120, 240, 480];
/// The rule lengths the app offers, in days.
pub const RULE_CHOICES: [u32; 3] = [7, 30, 90];

impl Settings {
    /// The settings in `dir`, or the defaults if there are none. A file
    /// that cannot be read, or that holds settings that do not check, is
    /// an error, never silently replaced.
    pub fn load(dir: &Path) -> Result<Settings, ClientError> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => return Err(invalid(format!("{} cannot be read: {e}", path.display()))),
        };
        let unread = |why: String| {
            invalid(format!(
                "{} is not Mandate's settings: {why}",
                path.display()
            ))
        };
        // An object, member by member: serde would also take a list.
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| unread(e.to_string()))?;
        let settings: Settings = serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| unread(e.to_string()))?;
        settings.checked()
    }

    /// Checks the settings and writes them to `dir` (created if need be):
    /// to a file beside it, then renamed over it, so that a crash leaves
    /// the old settings or the new, never half of them. Returns them as
    /// kept (URLs without a trailing `/`, blanks as unset).
    pub fn save(self, dir: &Path) -> Result<Settings, ClientError> {
        let settings = self.checked()?;
        let io = |e: std::io::Error| invalid(format!("the settings cannot be written: {e}"));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!("{FILE}.tmp"));
        let text = serde_json::to_string_pretty(&settings).map_err(|e| invalid(e.to_string()))?;
        std::fs::write(&tmp, text + "\n").map_err(io)?;
        std::fs::rename(&tmp, dir.join(FILE)).map_err(io)?;
        Ok(settings)
    }

    /// The settings, checked: URLs a broker and a provider may have (and
    /// blanks as unset), lengths among those offered.
    pub fn checked(self) -> Result<Settings, ClientError> {
        let url = |value: Option<String>, what: &str| -> Result<Option<String>, ClientError> {
            match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => mandate_agent::client::broker_url(&v)
                    .map(Some)
                    .map_err(|e| invalid(format!("{what}: {e}"))),
            }
        };
        let broker_url = url(self.broker_url, "the broker")?;
        let issuer = url(self.issuer, "the provider")?;
        if !LEASE_CHOICES.contains(&self.lease_minutes) {
            return Err(invalid(format!(
                "a lease is offered for one of {LEASE_CHOICES:?} minutes"
            )));
        }
        if !RULE_CHOICES.contains(&self.rule_days) {
            return Err(invalid(format!(
                "a rule is offered for one of {RULE_CHOICES:?} days"
            )));
        }
        Ok(Settings {
            broker_url,
            issuer,
            ..self
        })
    }

    /// The engine's configuration with these settings over `config` (the
    /// environment's, if it gave one): the issuer and the broker they
    /// name. Without an issuer from either, there is none.
    pub fn over(&self, config: Option<Config>, data_dir: PathBuf) -> Option<Config> {
        let mut config = match (config, &self.issuer) {
            (Some(config), _) => config,
            (None, Some(issuer)) => Config::hosting(data_dir, issuer.clone()),
            (None, None) => return None,
        };
        if let Some(issuer) = &self.issuer {
            config.issuer = issuer.clone();
        }
        if let Some(url) = &self.broker_url {
            config.broker = BrokerMode::Remote { url: url.clone() };
        }
        Some(config)
    }
}

fn invalid(why: String) -> ClientError {
    ClientError::Invalid(why)
}

/// `exe` as a desktop entry's `Exec` names it: in double quotes, with
/// `"`, `` ` ``, `$` and `\` escaped (the Desktop Entry spec's quoting).
fn exec_quoted(exe: &Path) -> String {
    let mut quoted = String::from("\"");
    for c in exe.to_string_lossy().chars() {
        if matches!(c, '"' | '`' | '$' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// The XDG autostart entry that starts `exe` at login
/// (`~/.config/autostart/mandate.desktop`).
pub fn autostart_entry(exe: &Path) -> String {
    format!(
        "[Desktop Entry]\nType=Application\nName=Mandate\n\
         Comment=Approve what AI agents may do for you\nExec={}\nIcon=mandate-app\n\
         Terminal=false\nX-GNOME-Autostart-enabled=true\n",
        exec_quoted(exe)
    )
}

/// Writes `content` to `path` whole or not at all (a file beside it,
/// renamed over it), making its directory.
fn write_whole(path: &Path, content: &[u8]) -> Result<(), ClientError> {
    let io = |e: std::io::Error| invalid(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, content).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn remove_if_there(path: &Path) -> Result<(), ClientError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(invalid(format!("{}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

/// Turns starting at login on (writing the XDG autostart entry for `exe`
/// under `config_home`, such as `~/.config`) or off (removing it).
pub fn set_autostart(config_home: &Path, exe: &Path, on: bool) -> Result<(), ClientError> {
    let path = config_home.join("autostart").join("mandate.desktop");
    if on {
        write_whole(&path, autostart_entry(exe).as_bytes())
    } else {
        remove_if_there(&path)
    }
}

/// The AppImage's file, when the app runs from one: AppRun hands it on as
/// `MANDATE_APPIMAGE` (packaging/appimage/AppRun).
pub fn running_appimage() -> Option<PathBuf> {
    std::env::var_os("MANDATE_APPIMAGE")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_file())
}

/// The applications-menu entry of the AppImage `appimage`.
pub fn menu_entry(appimage: &Path) -> String {
    format!(
        "[Desktop Entry]\nType=Application\nName=Mandate\n\
         Comment=Approve what AI agents may do for you\nExec={}\nIcon={MENU_ICON}\n\
         Terminal=false\nCategories=Utility;\n",
        exec_quoted(appimage)
    )
}

/// The name of the AppImage's menu entry and of its icon: not the
/// package's (`Mandate.desktop`, `mandate-app`), which may be installed
/// beside it.
const MENU_ICON: &str = "mandate-appimage";

/// Turns the AppImage's applications-menu entry on or off, under
/// `data_home` (such as `~/.local/share`): the entry
/// (`applications/mandate-appimage.desktop`, starting `appimage`), and its
/// icon (`icons/hicolor/128x128/apps/mandate-appimage.png`, `icon_png`).
/// Off removes both; `appimage` and `icon_png` are then not read.
pub fn set_menu_entry(
    data_home: &Path,
    appimage: &Path,
    icon_png: &[u8],
    on: bool,
) -> Result<(), ClientError> {
    let entry = data_home
        .join("applications")
        .join(format!("{MENU_ICON}.desktop"));
    let icon = data_home
        .join("icons/hicolor/128x128/apps")
        .join(format!("{MENU_ICON}.png"));
    if on {
        write_whole(&icon, icon_png)?;
        write_whole(&entry, menu_entry(appimage).as_bytes())
    } else {
        remove_if_there(&entry)?;
        remove_if_there(&icon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_saved_is_the_defaults_and_a_saved_one_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Settings::load(dir.path()).unwrap(), Settings::default());
        let mine = Settings {
            broker_url: Some(" https://mandate.example.com/ ".into()),
            issuer: Some("http://127.0.0.1:8080".into()),
            start_at_login: true,
            menu_entry: true,
            notifications: false,
            lease_minutes: 60,
            rule_days: 7,
        };
        let kept = mine.save(dir.path()).unwrap();
        assert_eq!(
            kept.broker_url.as_deref(),
            Some("https://mandate.example.com")
        );
        assert_eq!(Settings::load(dir.path()).unwrap(), kept);
        assert!(!dir.path().join("settings.json.tmp").exists());
    }

    #[test]
    fn bad_settings_are_refused_and_the_old_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let good = Settings {
            lease_minutes: 120,
            ..Settings::default()
        }
        .save(dir.path())
        .unwrap();
        for bad in [
            Settings {
                broker_url: Some("http://mandate.example.com".into()),
                ..Settings::default()
            },
            Settings {
                issuer: Some("https://user:pw@idp.example.com".into()),
                ..Settings::default()
            },
            Settings {
                issuer: Some("idp.example.com".into()),
                ..Settings::default()
            },
            Settings {
                lease_minutes: 0,
                ..Settings::default()
            },
            Settings {
                rule_days: 365,
                ..Settings::default()
            },
        ] {
            let e = bad.clone().save(dir.path()).unwrap_err();
            assert_eq!(e.code(), "input.invalid", "{bad:?}");
        }
        assert_eq!(Settings::load(dir.path()).unwrap(), good);
        // Blanks are unset.
        let blank = Settings {
            broker_url: Some("  ".into()),
            ..Settings::default()
        };
        assert_eq!(blank.checked().unwrap().broker_url, None);
    }

    #[test]
    fn every_length_offered_is_one_a_tier_allows() {
        use crate::decision::{MAX_LEASE_MINUTES, MAX_RULE_DAYS};
        assert!(
            LEASE_CHOICES
                .iter()
                .all(|m| (1..=MAX_LEASE_MINUTES).contains(m))
        );
        assert!(RULE_CHOICES.iter().all(|d| (1..=MAX_RULE_DAYS).contains(d)));
    }

    #[test]
    fn a_damaged_file_is_an_error_not_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["{", "{\"surprise\":1}", "{\"lease_minutes\":-1}", "[]"] {
            std::fs::write(dir.path().join(FILE), text).unwrap();
            assert!(Settings::load(dir.path()).is_err(), "{text}");
        }
    }

    #[test]
    fn the_settings_name_the_provider_and_broker_over_the_environment() {
        let data = PathBuf::from("/data");
        assert!(Settings::default().over(None, data.clone()).is_none());
        let mine = Settings {
            issuer: Some("https://idp.example.com".into()),
            broker_url: Some("https://mandate.example.com".into()),
            ..Settings::default()
        };
        let c = mine.over(None, data.clone()).unwrap();
        assert_eq!(c.issuer, "https://idp.example.com");
        assert_eq!(c.data_dir, data);
        assert!(
            matches!(c.broker, BrokerMode::Remote { ref url } if url == "https://mandate.example.com")
        );
        let env = Config::hosting(PathBuf::from("/env"), "http://127.0.0.1:9".into());
        let c = Settings::default()
            .over(Some(env.clone()), data.clone())
            .unwrap();
        assert_eq!(
            (c.issuer.as_str(), c.data_dir),
            ("http://127.0.0.1:9", PathBuf::from("/env"))
        );
        assert!(matches!(c.broker, BrokerMode::InProcess { .. }));
        let c = mine.over(Some(env), data).unwrap();
        assert_eq!(c.issuer, "https://idp.example.com");
    }

    #[test]
    fn the_autostart_entry_quotes_the_path_and_comes_and_goes() {
        let entry = autostart_entry(Path::new("/opt/Mandate $HOME/\"mandate\""));
        assert!(
            entry.contains("Exec=\"/opt/Mandate \\$HOME/\\\"mandate\\\"\"\n"),
            "{entry}"
        );
        let home = tempfile::tempdir().unwrap();
        let exe = Path::new("/usr/bin/mandate-app");
        set_autostart(home.path(), exe, true).unwrap();
        let path = home.path().join("autostart/mandate.desktop");
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("Exec=\"/usr/bin/mandate-app\"")
        );
        set_autostart(home.path(), exe, false).unwrap();
        assert!(!path.exists());
        set_autostart(home.path(), exe, false).expect("off twice is fine");
    }

    #[test]
    fn the_appimage_menu_entry_names_the_file_and_its_icon_and_comes_and_goes() {
        let home = tempfile::tempdir().unwrap();
        let appimage = Path::new("/home/u/Apps/Mandate $1.AppImage");
        set_menu_entry(home.path(), appimage, b"\x89PNG icon", true).unwrap();
        let entry = home.path().join("applications/mandate-appimage.desktop");
        let icon = home
            .path()
            .join("icons/hicolor/128x128/apps/mandate-appimage.png");
        let text = std::fs::read_to_string(&entry).unwrap();
        assert!(
            text.contains("Exec=\"/home/u/Apps/Mandate \\$1.AppImage\"\n"),
            "{text}"
        );
        assert!(
            text.contains("Icon=mandate-appimage\n") && text.contains("Categories=Utility;\n"),
            "{text}"
        );
        assert_eq!(std::fs::read(&icon).unwrap(), b"\x89PNG icon");
        set_menu_entry(home.path(), appimage, b"", false).unwrap();
        assert!(!entry.exists() && !icon.exists());
        set_menu_entry(home.path(), appimage, b"", false).expect("off twice is fine");
    }
}
