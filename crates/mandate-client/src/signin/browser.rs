//! Where the provider's page is shown: the system browser, or a command
//! (tests, `MANDATE_BROWSER`).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};

/// Opens a URL for the person signing in. The app opens the system
/// browser; tests complete the provider's login over HTTP.
pub trait Browser: Send + Sync {
    /// Starts showing `url`; returns once it is handed over.
    fn open(&self, url: &str) -> Result<(), String>;
}

/// Opens URLs by running a command with the URL as its last argument.
#[derive(Debug, Clone)]
pub struct CommandBrowser {
    program: String,
    args: Vec<String>,
}

impl CommandBrowser {
    /// `command`, split on whitespace (no quoting), then the URL.
    pub fn new(command: &str) -> Option<CommandBrowser> {
        let mut words = command.split_whitespace().map(str::to_owned);
        Some(CommandBrowser {
            program: words.next()?,
            args: words.collect(),
        })
    }

    /// `MANDATE_BROWSER` when set (a test's or a user's own opener), else
    /// the platform's: `xdg-open`, `open` on macOS, `explorer` on Windows.
    pub fn from_env() -> CommandBrowser {
        std::env::var("MANDATE_BROWSER")
            .ok()
            .and_then(|c| CommandBrowser::new(&c))
            .unwrap_or_else(|| CommandBrowser {
                program: if cfg!(target_os = "macos") {
                    "open"
                } else if cfg!(windows) {
                    "explorer"
                } else {
                    "xdg-open"
                }
                .to_owned(),
                args: Vec::new(),
            })
    }
}

impl Browser for CommandBrowser {
    fn open(&self, url: &str) -> Result<(), String> {
        let mut command = tokio::process::Command::new(&self.program);
        let changes = host_environment(std::env::vars_os());
        if !changes.is_empty()
            && let Some(owd) = std::env::var_os("OWD").filter(|d| std::path::Path::new(d).is_dir())
        {
            command.current_dir(owd);
        }
        for (name, value) in changes {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let mut child = command
            .args(&self.args)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program))?;
        // Reap it whenever it ends; the sign-in does not wait for it.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(())
    }
}

const APPIMAGE_SET: &str = "MANDATE_APPIMAGE_SET";
const APPIMAGE_ORIGINAL: &str = "MANDATE_APPIMAGE_ORIGINAL_";

/// What a program the app starts for the user, such as the browser, must
/// change in the app's environment to have the user's. Run from the
/// AppImage, AppRun has pointed GTK and GIO at the AppImage's own loaders
/// and modules, which are not the browser's to load. It names the
/// variables it set in `MANDATE_APPIMAGE_SET`, and keeps the value each
/// had before, where it had one, in `MANDATE_APPIMAGE_ORIGINAL_<NAME>`.
/// Returns each variable to set again (`Some`) or to remove (`None`),
/// AppRun's own among them; nothing outside the AppImage. Only names of
/// capitals, digits and `_` are taken from the list.
pub fn host_environment<K, V>(
    env: impl IntoIterator<Item = (K, V)>,
) -> Vec<(OsString, Option<OsString>)>
where
    K: Into<OsString>,
    V: Into<OsString>,
{
    let env: HashMap<OsString, OsString> =
        env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
    let Some(set) = env.get(OsStr::new(APPIMAGE_SET)) else {
        return Vec::new();
    };
    let mut changes: Vec<(OsString, Option<OsString>)> = set
        .to_string_lossy()
        .split_whitespace()
        .filter(|name| {
            name.bytes().next().is_some_and(|b| !b.is_ascii_digit())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
        .map(|name| {
            let original = env
                .get(OsStr::new(&format!("{APPIMAGE_ORIGINAL}{name}")))
                .cloned();
            (OsString::from(name), original)
        })
        .collect();
    let mut own: Vec<&OsString> = env
        .keys()
        .filter(|k| k.to_string_lossy().starts_with("MANDATE_APPIMAGE"))
        .collect();
    own.sort();
    changes.extend(own.into_iter().map(|k| (k.clone(), None)));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(env: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        host_environment(env.iter().copied())
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn outside_the_appimage_nothing_changes() {
        assert!(changes(&[("XDG_DATA_DIRS", "/x"), ("GIO_EXTRA_MODULES", "/y")]).is_empty());
    }

    #[test]
    fn from_the_appimage_what_apprun_set_goes_back() {
        let env = [
            (
                "MANDATE_APPIMAGE_SET",
                "XDG_DATA_DIRS GIO_EXTRA_MODULES lower 1BAD PATH=x",
            ),
            ("MANDATE_APPIMAGE_ORIGINAL_XDG_DATA_DIRS", "/usr/share"),
            ("MANDATE_APPIMAGE", "/home/u/Mandate.AppImage"),
            ("XDG_DATA_DIRS", "/tmp/app/usr/share:/usr/share"),
            ("GIO_EXTRA_MODULES", "/tmp/app/usr/lib/gio/modules"),
            ("lower", "kept"),
            ("HOME", "/home/u"),
        ];
        let set = |k: &str, v: Option<&str>| (k.to_owned(), v.map(str::to_owned));
        assert_eq!(
            changes(&env),
            vec![
                set("XDG_DATA_DIRS", Some("/usr/share")),
                set("GIO_EXTRA_MODULES", None),
                set("MANDATE_APPIMAGE", None),
                set("MANDATE_APPIMAGE_ORIGINAL_XDG_DATA_DIRS", None),
                set("MANDATE_APPIMAGE_SET", None),
            ]
        );
    }
}
