//! The Mandate desktop app: a thin Tauri v2 shell over the engine
//! (`mandate-client`). Each command is one call into the engine or its
//! [`commands`]; errors reach the page as `{ code, message }`. The user
//! key and the sign-in tokens stay in the engine (and the OS keyring): no
//! command returns them. What is left here needs a window: the save
//! dialog, the tray, desktop notifications.
//!
//! Configuration comes from the environment, so that `make run` and the
//! tests can point the app at their own provider and broker (see
//! `Config::from_env` in mandate-client): `MANDATE_ISSUER`,
//! `MANDATE_CLIENT_ID`, `MANDATE_BROKER`, `MANDATE_BROKER_LISTEN`,
//! `MANDATE_DATA_DIR` (default: the app's data directory),
//! `MANDATE_KEYRING_SERVICE`, `MANDATE_DEVICE_NAME`, and here
//! `MANDATE_BROWSER` (a command that opens the sign-in page instead of the
//! system browser) and `MANDATE_EXPIRY_REMINDERS` (`off` silences them).

#![forbid(unsafe_code)]

pub mod bindings;
mod tray;

use std::path::PathBuf;

use mandate_client::activity::{ActivityFilter, ActivityRow, AttributionView};
use mandate_client::calls::CallView;
use mandate_client::commands::{
    self, AppState, ApproveInput, CommandError, ExportFile, Exported, HistoryView, ReportInput,
    Result, RulesView,
};
use mandate_client::delegations::{AgentChoice, Delegations, RevokePreview};
use mandate_client::devices::Device;
use mandate_client::engine::{Account, CodeCheck, Config, Engine, Update};
use mandate_client::export::ExportFormat;
use mandate_client::history::StoredRevocation;
use mandate_client::narrow::{NarrowPreview, Narrowed};
use mandate_client::notices;
use mandate_client::settings::{Settings, SettingsView, running_appimage};
use mandate_client::view::{InboxChanges, RequestDetail};
use mandate_client::{Browser, CommandBrowser};
use serde::Serialize;
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter as _, Manager as _, State};
use tauri_plugin_notification::NotificationExt as _;
use tauri_plugin_opener::OpenerExt as _;
use tokio::sync::OnceCell;

/// The event the page listens to for engine updates.
pub const UPDATE_EVENT: &str = "mandate://update";

/// The log target of every payload the page receives (at TRACE).
const IPC_LOG: &str = "mandate_app::ipc";

/// Every reply and event the page receives passes through here. At TRACE
/// (target `mandate_app::ipc`) each is logged exactly as it is serialized
/// for the page, so that a test can search everything the page was ever
/// given for secrets.
fn sent<T: Serialize>(what: &str, reply: Result<T>) -> Result<T> {
    match &reply {
        Ok(value) => trace_sent(what, value),
        Err(error) => trace_sent(what, error),
    }
    reply
}

fn trace_sent(what: &str, payload: &impl Serialize) {
    if tracing::enabled!(target: IPC_LOG, tracing::Level::TRACE) {
        let payload = serde_json::to_string(payload).unwrap_or_default();
        tracing::trace!(target: IPC_LOG, what, payload = %payload);
    }
}

/// What the app holds: the engine once started, the task forwarding its
/// updates while someone is signed in, and the user's settings.
pub struct App {
    config: Option<Config>,
    engine: OnceCell<Engine>,
    forwarding: std::sync::Mutex<Option<tauri::async_runtime::JoinHandle<()>>>,
    /// Where the settings are kept (the data directory).
    data_dir: PathBuf,
    /// The settings as saved, and why they could not be read, if they
    /// could not (then the defaults hold until they are saved again).
    settings: std::sync::Mutex<(Settings, Option<String>)>,
    /// The settings the engine started with: a change to the provider or
    /// the broker takes effect at the next start.
    started_with: Settings,
}

impl App {
    /// The settings as they stand.
    fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .clone()
    }

    async fn engine(&self) -> Result<&Engine> {
        let config = self
            .config
            .clone()
            .ok_or_else(CommandError::config_missing)?;
        self.engine
            .get_or_try_init(|| Engine::start(config))
            .await
            .map_err(CommandError::from)
    }
}

#[tauri::command]
async fn app_state(app: AppHandle, state: State<'_, App>) -> Result<AppState> {
    let reply = async {
        let engine = state.engine().await?;
        let app_state = commands::app_state(engine).await?;
        if app_state.account.is_some() {
            start_following(&app, engine);
        }
        Ok::<_, CommandError>(app_state)
    };
    sent("app_state", reply.await)
}

/// Opens the sign-in page: in `MANDATE_BROWSER` if set (tests), else in
/// the system browser through the opener plugin. From the AppImage, the
/// browser is started with `xdg-open` in the environment the user
/// started the app in (`signin::host_environment`), which the opener
/// plugin would not restore.
struct AppBrowser(AppHandle);

impl Browser for AppBrowser {
    fn open(&self, url: &str) -> std::result::Result<(), String> {
        if std::env::var_os("MANDATE_BROWSER").is_some() || running_appimage().is_some() {
            return CommandBrowser::from_env().open(url);
        }
        self.0
            .opener()
            .open_url(url, None::<&str>)
            .map_err(|e| e.to_string())
    }
}

#[tauri::command]
async fn sign_in(app: AppHandle, state: State<'_, App>) -> Result<Account> {
    let reply = async {
        let engine = state.engine().await?;
        let account = engine.sign_in(&AppBrowser(app.clone())).await?;
        start_following(&app, engine);
        if let Some(window) = app.get_webview_window("main") {
            let _ = window.set_focus();
        }
        Ok::<_, CommandError>(account)
    };
    sent("sign_in", reply.await)
}

#[tauri::command]
async fn sign_out(app: AppHandle, state: State<'_, App>) -> Result<()> {
    let reply = async {
        state.engine().await?.sign_out().await?;
        stop_following(&app);
        tray::set_pending(&app, 0);
        Ok::<_, CommandError>(())
    };
    sent("sign_out", reply.await)
}

/// The inbox as changes to the list the page holds (`held`, the ids of
/// its rows): the page keeps its rows, and a request that arrives costs
/// one row over IPC, not the whole inbox again.
#[tauri::command]
async fn inbox(app: AppHandle, state: State<'_, App>, held: Vec<String>) -> Result<InboxChanges> {
    let reply = async {
        let changes = state.engine().await?.inbox_changes(&held).await?;
        tray::set_pending(&app, changes.pending);
        Ok::<_, CommandError>(changes)
    };
    sent("inbox", reply.await)
}

#[tauri::command]
async fn detail(state: State<'_, App>, id: String) -> Result<RequestDetail> {
    let reply = async { Ok::<_, CommandError>(state.engine().await?.detail(&id).await?) };
    sent("detail", reply.await)
}

#[tauri::command]
async fn approve(state: State<'_, App>, id: String, input: ApproveInput) -> Result<RequestDetail> {
    let reply = async { commands::approve(state.engine().await?, &id, &input).await };
    sent("approve", reply.await)
}

#[tauri::command]
async fn deny(
    state: State<'_, App>,
    id: String,
    reason: Option<String>,
    always: Option<bool>,
) -> Result<RequestDetail> {
    let reply = async {
        let always = always.unwrap_or(false);
        commands::deny(state.engine().await?, &id, reason.as_deref(), always).await
    };
    sent("deny", reply.await)
}

#[tauri::command]
async fn match_code(state: State<'_, App>, id: String, code: String) -> Result<CodeCheck> {
    let reply = async { commands::match_code(state.engine().await?, &id, &code).await };
    sent("match_code", reply.await)
}

#[tauri::command]
async fn calls(state: State<'_, App>) -> Result<Vec<CallView>> {
    let reply = async { commands::calls(state.engine().await?).await };
    sent("calls", reply.await)
}

#[tauri::command]
async fn confirm_call(state: State<'_, App>, id: String) -> Result<Vec<CallView>> {
    let reply = async { commands::confirm_call(state.engine().await?, &id).await };
    sent("confirm_call", reply.await)
}

#[tauri::command]
async fn refuse_call(
    state: State<'_, App>,
    id: String,
    reason: Option<String>,
) -> Result<Vec<CallView>> {
    let reply =
        async { commands::refuse_call(state.engine().await?, &id, reason.as_deref()).await };
    sent("refuse_call", reply.await)
}

#[tauri::command]
async fn rules(state: State<'_, App>) -> Result<RulesView> {
    let reply = async { commands::rules(state.engine().await?).await };
    sent("rules", reply.await)
}

#[tauri::command]
async fn end_rule(state: State<'_, App>, id: String) -> Result<RulesView> {
    let reply = async { commands::end_rule(state.engine().await?, &id).await };
    sent("end_rule", reply.await)
}

#[tauri::command]
async fn lift_block(state: State<'_, App>, agent: String) -> Result<RulesView> {
    let reply = async { commands::lift_block(state.engine().await?, &agent).await };
    sent("lift_block", reply.await)
}

#[tauri::command]
async fn history(state: State<'_, App>) -> Result<HistoryView> {
    let reply = async { commands::history(state.engine().await?).await };
    sent("history", reply.await)
}

/// The delegations screen; with `refresh` false, from the history alone,
/// without asking the broker first.
#[tauri::command]
async fn delegations(state: State<'_, App>, refresh: bool) -> Result<Delegations> {
    let reply = async {
        let engine = state.engine().await?;
        Ok::<_, CommandError>(if refresh {
            engine.delegations().await?
        } else {
            engine.recorded_delegations().await?
        })
    };
    sent("delegations", reply.await)
}

#[tauri::command]
async fn keys(state: State<'_, App>) -> Result<Vec<Device>> {
    let reply = async { Ok::<_, CommandError>(state.engine().await?.devices().await?) };
    sent("keys", reply.await)
}

/// Removes another device's key (a signed key revocation on the feed).
#[tauri::command]
async fn remove_key(state: State<'_, App>, jkt: String) -> Result<()> {
    let reply = async { Ok::<_, CommandError>(state.engine().await?.remove_key(&jkt).await?) };
    sent("remove_key", reply.await)
}

#[tauri::command]
async fn revoke_preview(state: State<'_, App>, id: String) -> Result<RevokePreview> {
    let reply = async { Ok::<_, CommandError>(state.engine().await?.revoke_preview(&id).await?) };
    sent("revoke_preview", reply.await)
}

#[tauri::command]
async fn narrow_preview(state: State<'_, App>, id: String) -> Result<NarrowPreview> {
    let reply = async { Ok::<_, CommandError>(state.engine().await?.narrow_preview(&id).await?) };
    sent("narrow_preview", reply.await)
}

#[tauri::command]
async fn narrow(state: State<'_, App>, id: String) -> Result<Narrowed> {
    let reply = async { Ok::<_, CommandError>(state.engine().await?.narrow_to_used(&id).await?) };
    sent("narrow", reply.await)
}

#[tauri::command]
async fn revoke(
    state: State<'_, App>,
    grants: Vec<String>,
    reason: Option<String>,
) -> Result<StoredRevocation> {
    let reply = async { commands::revoke(state.engine().await?, &grants, reason.as_deref()).await };
    sent("revoke", reply.await)
}

#[tauri::command]
async fn revoke_all(state: State<'_, App>) -> Result<Option<StoredRevocation>> {
    let reply = async { Ok::<_, CommandError>(state.engine().await?.revoke_all().await?) };
    sent("revoke_all", reply.await)
}

#[tauri::command]
async fn activity(state: State<'_, App>, filter: ActivityFilter) -> Result<Vec<ActivityRow>> {
    let reply = async { Ok::<_, CommandError>(state.engine().await?.activity(&filter).await?) };
    sent("activity", reply.await)
}

#[tauri::command]
async fn activity_agents(state: State<'_, App>) -> Result<Vec<AgentChoice>> {
    let reply = async { Ok::<_, CommandError>(state.engine().await?.agents().await?) };
    sent("activity_agents", reply.await)
}

#[tauri::command]
async fn attribution(state: State<'_, App>, id: String) -> Result<AttributionView> {
    let reply = async { Ok::<_, CommandError>(state.engine().await?.attribution(&id).await?) };
    sent("attribution", reply.await)
}

#[tauri::command]
async fn report(
    state: State<'_, App>,
    id: String,
    input: ReportInput,
) -> Result<Option<StoredRevocation>> {
    let reply = async { commands::report(state.engine().await?, &id, &input).await };
    sent("report", reply.await)
}

/// Exports the activity `filter` selects: asks where in a save dialog,
/// then writes the file whole. `None` when the user cancels.
#[tauri::command]
async fn export(
    app: AppHandle,
    state: State<'_, App>,
    filter: ActivityFilter,
    format: ExportFormat,
) -> Result<Option<Exported>> {
    use tauri_plugin_dialog::DialogExt as _;
    let reply = async {
        let engine = state.engine().await?;
        let file = ExportFile::of(format);
        let (tx, rx) = tokio::sync::oneshot::channel();
        app.dialog()
            .file()
            .set_title("Export the activity")
            .set_file_name(file.name)
            .add_filter(file.label, &[file.extension])
            .save_file(move |path| {
                let _ = tx.send(path);
            });
        let Some(path) = rx.await.ok().flatten() else {
            return Ok(None);
        };
        let path = path.into_path().map_err(|e| CommandError {
            code: "input.invalid".into(),
            message: format!("the chosen file cannot be written: {e}"),
        })?;
        Ok::<_, CommandError>(Some(
            commands::export(engine, &filter, format, &path).await?,
        ))
    };
    sent("export", reply.await)
}

/// Follows the broker and forwards each update to the page, the tray and,
/// for new requests, a desktop notification. Once per sign-in: a second
/// call while it runs does nothing (the page asks for the state more than
/// once, and each forwarder would notify again).
fn start_following(app: &AppHandle, engine: &Engine) {
    let Some(state) = app.try_state::<App>() else {
        return;
    };
    let Ok(mut forwarding) = state.forwarding.lock() else {
        return;
    };
    if forwarding.is_some() {
        return;
    }
    let mut updates = engine.subscribe();
    engine.follow();
    let app = app.clone();
    let engine = engine.clone();
    let reminders = notices::reminders_on();
    *forwarding = Some(tauri::async_runtime::spawn(async move {
        let mut due = notices::Reminders::default();
        let mut tick = tokio::time::interval(notices::REMINDER_EVERY);
        // The tray's leases, with the minutes each has left.
        let mut leases = tokio::time::interval(notices::TRAY_LEASES_EVERY);
        loop {
            let received = tokio::select! {
                received = updates.recv() => received,
                _ = tick.tick(), if reminders => {
                    for text in due.due(&engine).await {
                        show(&app, &text);
                    }
                    continue;
                }
                _ = leases.tick() => {
                    tray::show_leases(&app, &engine).await;
                    continue;
                }
            };
            let update = match received {
                Ok(update) => update,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if let Update::Inbox { pending, .. } = &update {
                tray::set_pending(&app, *pending);
            }
            if !matches!(
                update,
                Update::Activity { .. } | Update::Connection { .. } | Update::Calls
            ) {
                tray::show_leases(&app, &engine).await;
            }
            if let Some(text) = notices::of(&update) {
                show(&app, &text);
            }
            trace_sent(UPDATE_EVENT, &update);
            let _ = app.emit(UPDATE_EVENT, &update);
        }
    }));
}

/// Stops forwarding (at sign-out).
fn stop_following(app: &AppHandle) {
    if let Some(state) = app.try_state::<App>()
        && let Ok(mut forwarding) = state.forwarding.lock()
        && let Some(task) = forwarding.take()
    {
        task.abort();
    }
}

/// A desktop notification from Mandate.
fn show(app: &AppHandle, text: &str) {
    if app
        .try_state::<App>()
        .is_some_and(|s| !s.settings().notifications)
    {
        return;
    }
    // No notification server (a bare session) is not an error worth more
    // than a log line.
    if let Err(e) = app
        .notification()
        .builder()
        .title("Mandate")
        .body(notices::body(text))
        .show()
    {
        tracing::debug!(error = %e, "no desktop notification");
    }
}

#[tauri::command]
fn settings(state: State<'_, App>) -> Result<SettingsView> {
    let (settings, unread) = state
        .settings
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    sent("settings", Ok(settings_view(&state, settings, unread)))
}

/// Checks and saves the settings; turns starting at login on or off.
#[tauri::command]
fn save_settings(
    app: AppHandle,
    state: State<'_, App>,
    settings: Settings,
) -> Result<SettingsView> {
    let reply = (|| {
        let before = state.settings();
        let settings = settings.checked()?;
        // Starting at login first, then the file: if the file cannot be
        // written, the entry goes back as it was.
        let autostart = |on: bool| {
            let config_home = app.path().config_dir().map_err(|e| CommandError {
                code: "input.invalid".into(),
                message: format!("no configuration directory to start from at login: {e}"),
            })?;
            // From the AppImage, the AppImage's file, not the copy it
            // unpacked and runs.
            let exe = match running_appimage() {
                Some(file) => file,
                None => std::env::current_exe().map_err(|e| CommandError {
                    code: "input.invalid".into(),
                    message: format!("the app's own path is unknown: {e}"),
                })?,
            };
            mandate_client::settings::set_autostart(&config_home, &exe, on)
                .map_err(CommandError::from)
        };
        // The applications-menu entry, for the AppImage only: a package
        // installs its own.
        let menu = |on: bool| {
            let data_home = app.path().data_dir().map_err(|e| CommandError {
                code: "input.invalid".into(),
                message: format!("no data directory for a menu entry: {e}"),
            })?;
            let appimage = running_appimage();
            if on && appimage.is_none() {
                return Err(CommandError {
                    code: "input.invalid".into(),
                    message: "only the AppImage adds itself to the applications menu: a package \
                              installs its entry with it"
                        .into(),
                });
            }
            let appimage = appimage.unwrap_or_default();
            mandate_client::settings::set_menu_entry(&data_home, &appimage, MENU_ICON_PNG, on)
                .map_err(CommandError::from)
        };
        let login_changed = settings.start_at_login != before.start_at_login;
        let menu_changed = settings.menu_entry != before.menu_entry;
        if menu_changed {
            menu(settings.menu_entry)?;
        }
        if login_changed && let Err(e) = autostart(settings.start_at_login) {
            if menu_changed && let Err(undo) = menu(before.menu_entry) {
                tracing::warn!(code = %undo.code, "the menu entry could not be set back");
            }
            return Err(e);
        }
        let saved = match settings.save(&state.data_dir) {
            Ok(saved) => saved,
            Err(e) => {
                if login_changed && let Err(undo) = autostart(before.start_at_login) {
                    tracing::warn!(code = %undo.code, "starting at login could not be set back");
                }
                if menu_changed && let Err(undo) = menu(before.menu_entry) {
                    tracing::warn!(code = %undo.code, "the menu entry could not be set back");
                }
                return Err(e.into());
            }
        };
        *state
            .settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (saved.clone(), None);
        Ok::<_, CommandError>(settings_view(&state, saved, None))
    })();
    sent("save_settings", reply)
}

/// The icon of the AppImage's menu entry.
const MENU_ICON_PNG: &[u8] = include_bytes!("../../icons/128x128.png");

/// Starts the app again, for settings that take effect at start.
#[tauri::command]
fn restart(app: AppHandle) {
    app.restart();
}

fn settings_view(state: &App, settings: Settings, unread: Option<String>) -> SettingsView {
    SettingsView {
        restart_needed: settings.issuer != state.started_with.issuer
            || settings.broker_url != state.started_with.broker_url,
        issuer_in_use: state.config.as_ref().map(|c| c.issuer.clone()),
        broker_in_use: state.config.as_ref().map(|c| match &c.broker {
            mandate_client::BrokerMode::Remote { url } => url.clone(),
            mandate_client::BrokerMode::InProcess { .. } => "hosted in this app".to_owned(),
        }),
        unread,
        settings,
        appimage: running_appimage().map(|p| p.to_string_lossy().into_owned()),
    }
}

/// The variables of WebKitGTK's own that the app sets for itself, on
/// Linux, where the user has not: each is measured on a machine without a
/// GPU (docs/benchmarks.md, the app's memory against the floor), where
/// WebKitGTK's GL is Mesa's software renderer (llvmpipe) and using it
/// costs memory and gains nothing.
///
/// - `WEBKIT_SKIA_GPU_PAINTING_THREADS=0`: WebKitGTK paints a page that is
///   not trivial with a pool of threads, each with a GL context of its
///   own. The pool costs the web process some 35 MiB at rest and doubles
///   what it keeps as requests arrive, and an interface this small gains
///   nothing from painting in parallel.
/// - `WEBKIT_DISABLE_COMPOSITING_MODE=1`, only where the machine has no GPU
///   to render with (no DRM render node, `/dev/dri/renderD*`): the page is
///   then painted in memory and shown, as browsers do without a GPU,
///   rather than composited in software GL. That saves the web process
///   some 50 MiB at rest, and half of what it keeps as requests arrive.
///
/// The web process takes the app's environment when it starts, and a
/// running program cannot safely set its own, so the app starts itself
/// again with them, at once.
#[cfg(target_os = "linux")]
fn webkit_environment() {
    use std::os::unix::process::CommandExt as _;
    const PAINTING_THREADS: &str = "WEBKIT_SKIA_GPU_PAINTING_THREADS";
    const NO_COMPOSITING: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";
    let mut wanted = Vec::new();
    if std::env::var_os(PAINTING_THREADS).is_none() {
        wanted.push((PAINTING_THREADS, "0"));
    }
    if std::env::var_os(NO_COMPOSITING).is_none() && !has_render_node() {
        wanted.push((NO_COMPOSITING, "1"));
    }
    if wanted.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut again = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        again.arg0(arg0);
    }
    // `exec` returns only if it failed; the app then runs as it is.
    let error = again.args(args).envs(wanted.iter().copied()).exec();
    eprintln!("mandate-app: could not start again with WebKit's settings {wanted:?}: {error}");
}

/// Whether this machine has a GPU that GL can render with: a DRM render
/// node, which Mesa's hardware drivers open and its software one does not.
#[cfg(target_os = "linux")]
fn has_render_node() -> bool {
    std::fs::read_dir("/dev/dri").is_ok_and(|nodes| {
        nodes
            .flatten()
            .any(|node| node.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// Builds and runs the app.
pub fn run() {
    #[cfg(target_os = "linux")]
    webkit_environment();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = tauri::Builder::default()
        // A second start focuses the first window instead.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            if let Some(window) = app.get_webview_window("main") {
                let _ = window.unminimize();
                let _ = window.set_focus();
            }
        }))
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_dialog::init())
        .setup(|app| {
            let default_dir = app
                .path()
                .app_data_dir()
                .unwrap_or_else(|_| PathBuf::from("mandate-data"));
            let data_dir = std::env::var_os("MANDATE_DATA_DIR")
                .filter(|d| !d.is_empty())
                .map_or(default_dir.clone(), PathBuf::from);
            let (settings, unread) = match Settings::load(&data_dir) {
                Ok(settings) => (settings, None),
                Err(e) => {
                    tracing::warn!(error = %e, "the settings cannot be read; the defaults hold");
                    (Settings::default(), Some(e.to_string()))
                }
            };
            app.manage(App {
                config: settings.over(Config::from_env(default_dir), data_dir.clone()),
                engine: OnceCell::new(),
                forwarding: std::sync::Mutex::new(None),
                data_dir,
                started_with: settings.clone(),
                settings: std::sync::Mutex::new((settings, unread)),
            });
            let mut tray = TrayIconBuilder::with_id("main")
                .tooltip("Mandate")
                .menu(&tray::menu(app.handle(), &[])?)
                .on_menu_event(|app, event| tray::on_menu(app, event.id().as_ref()));
            if let Some(icon) = app.default_window_icon() {
                tray = tray.icon(icon.clone());
            }
            match tray.build(app) {
                Ok(tray) => {
                    app.manage(tray);
                }
                // No tray host (a bare X server): the app works without.
                Err(e) => tracing::info!(error = %e, "no tray icon"),
            }
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            app_state,
            settings,
            save_settings,
            restart,
            sign_in,
            sign_out,
            inbox,
            detail,
            approve,
            deny,
            match_code,
            calls,
            confirm_call,
            refuse_call,
            rules,
            end_rule,
            lift_block,
            history,
            delegations,
            keys,
            remove_key,
            revoke_preview,
            narrow_preview,
            narrow,
            revoke,
            revoke_all,
            activity,
            activity_agents,
            attribution,
            report,
            export
        ])
        .build(tauri::generate_context!());
    match result {
        Ok(app) => app.run(|app, event| {
            if let tauri::RunEvent::Exit = event
                && let Some(state) = app.try_state::<App>()
                && let Some(engine) = state.engine.get()
            {
                tauri::async_runtime::block_on(engine.shutdown());
            }
        }),
        Err(e) => {
            tracing::error!(error = %e, "the app could not start");
            std::process::exit(1);
        }
    }
}
