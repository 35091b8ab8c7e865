//! Where the provider's page is shown: the system browser, or a command
//! (tests, `MANDATE_BROWSER`).

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
        let mut child = tokio::process::Command::new(&self.program)
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
