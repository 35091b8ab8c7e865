//! The Mandate desktop app: a thin Tauri v2 shell over the engine
//! (`mandate-client`). Each command is one engine call; errors reach the
//! page as `{ code, message }`. The user key and the sign-in tokens stay in
//! the engine (and the OS keyring): no command returns them.
//!
//! Configuration comes from the environment, so that `make run` and the
//! tests can point the app at their own provider and broker:
//! `MANDATE_ISSUER` (the OIDC provider), `MANDATE_CLIENT_ID`
//! (default `mandate-desktop`), `MANDATE_BROKER` (a shared broker; without
//! it a broker is hosted in-process on `MANDATE_BROKER_LISTEN`, default
//! 127.0.0.1:7700), `MANDATE_DATA_DIR` (default: the app's data directory),
//! `MANDATE_KEYRING_SERVICE`, `MANDATE_BROWSER` (a command that opens
//! the sign-in page instead of the system browser), and
//! `MANDATE_DEVICE_NAME` (this device's name on the user's other devices).

#![forbid(unsafe_code)]

pub mod bindings;

use std::path::PathBuf;

use mandate_client::activity::{ActivityFilter, ActivityRow, AttributionView};
use mandate_client::delegations::{AgentChoice, Delegations, RevokePreview};
use mandate_client::devices::Device;
use mandate_client::engine::{Account, BrokerMode, Config, Engine, Update};
use mandate_client::export::ExportFormat;
use mandate_client::history::StoredRevocation;
use mandate_client::narrow::{NarrowPreview, Narrowed};
use mandate_client::notices;
use mandate_client::view::{InboxRow, RequestDetail, ScopeChoice};
use mandate_client::{Browser, ClientError, CommandBrowser, Narrowing};
use serde::{Deserialize, Serialize};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Emitter as _, Manager as _, State};
use tauri_plugin_notification::NotificationExt as _;
use tauri_plugin_opener::OpenerExt as _;
use tokio::sync::OnceCell;

/// The event the page listens to for engine updates.
pub const UPDATE_EVENT: &str = "mandate://update";

/// The log target of every payload the page receives (at TRACE).
const IPC_LOG: &str = "mandate_app::ipc";

/// An error as the page sees it: a stable code and a sentence.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct CommandError {
    /// Stable, for the page to act on (`session.signed_out`, ...).
    code: String,
    /// A sentence for the user.
    message: String,
}

impl From<ClientError> for CommandError {
    fn from(e: ClientError) -> CommandError {
        CommandError {
            code: e.code().to_owned(),
            message: e.to_string(),
        }
    }
}

type Result<T> = std::result::Result<T, CommandError>;

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

/// What the app holds: the engine once started, and the task forwarding
/// its updates while someone is signed in.
pub struct App {
    config: Option<Config>,
    engine: OnceCell<Engine>,
    forwarding: std::sync::Mutex<Option<tauri::async_runtime::JoinHandle<()>>>,
}

impl App {
    async fn engine(&self) -> Result<&Engine> {
        let config = self.config.clone().ok_or_else(|| CommandError {
            code: "config.missing".into(),
            message: "no OIDC provider is configured: set MANDATE_ISSUER".into(),
        })?;
        self.engine
            .get_or_try_init(|| Engine::start(config))
            .await
            .map_err(CommandError::from)
    }
}

/// What the page needs first.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct AppState {
    /// The signed-in user, if any.
    account: Option<Account>,
    /// The OIDC provider the app signs in with.
    issuer: String,
    /// The broker the app talks to.
    broker_url: String,
}

/// The config from the environment; `None` without an issuer.
pub fn config_from_env(default_data_dir: PathBuf) -> Option<Config> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let issuer = var("MANDATE_ISSUER")?;
    let broker = match var("MANDATE_BROKER") {
        Some(url) => BrokerMode::Remote { url },
        None => BrokerMode::InProcess {
            listen: var("MANDATE_BROKER_LISTEN")
                .and_then(|l| l.parse().ok())
                .or_else(|| mandate_client::engine::DEFAULT_LISTEN.parse().ok())?,
        },
    };
    Some(Config {
        data_dir: var("MANDATE_DATA_DIR").map_or(default_data_dir, PathBuf::from),
        issuer,
        client_id: var("MANDATE_CLIENT_ID")
            .unwrap_or_else(|| mandate_client::engine::CLIENT_ID.into()),
        broker,
        keyring_service: var("MANDATE_KEYRING_SERVICE")
            .unwrap_or_else(|| mandate_client::vault::SERVICE.into()),
        device: mandate_client::engine::device_name(),
    })
}

#[tauri::command]
async fn app_state(app: AppHandle, state: State<'_, App>) -> Result<AppState> {
    let reply = async {
        let engine = state.engine().await?;
        let account = match engine.account().await {
            Some(account) => Some(account),
            None => engine.resume().await?,
        };
        if account.is_some() {
            start_following(&app, engine);
        }
        Ok::<_, CommandError>(AppState {
            account,
            issuer: engine.issuer().to_owned(),
            broker_url: engine.broker_url().to_owned(),
        })
    };
    sent("app_state", reply.await)
}

/// Opens the sign-in page: in `MANDATE_BROWSER` if set (tests), else in
/// the system browser through the opener plugin.
struct AppBrowser(AppHandle);

impl Browser for AppBrowser {
    fn open(&self, url: &str) -> std::result::Result<(), String> {
        if std::env::var_os("MANDATE_BROWSER").is_some() {
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
        set_pending(&app, 0);
        Ok::<_, CommandError>(())
    };
    sent("sign_out", reply.await)
}

#[tauri::command]
async fn inbox(app: AppHandle, state: State<'_, App>) -> Result<Vec<InboxRow>> {
    let reply = async {
        let rows = state.engine().await?.inbox_rows().await?;
        set_pending(&app, rows.len());
        Ok::<_, CommandError>(rows)
    };
    sent("inbox", reply.await)
}

#[tauri::command]
async fn detail(state: State<'_, App>, id: String) -> Result<RequestDetail> {
    let reply = async { Ok::<_, CommandError>(state.engine().await?.detail(&id).await?) };
    sent("detail", reply.await)
}

/// How the user narrowed a request: `None` keeps what was asked.
#[derive(Debug, Deserialize, ts_rs::TS)]
pub struct ApproveInput {
    /// The scopes kept, each with the actions kept.
    scopes: Option<Vec<ScopeChoice>>,
    /// A shorter lifetime, in seconds.
    lifetime: Option<u32>,
    /// A lower delegation depth.
    max_depth: Option<u8>,
}

#[tauri::command]
async fn approve(state: State<'_, App>, id: String, input: ApproveInput) -> Result<RequestDetail> {
    let reply = async {
        let engine = state.engine().await?;
        let scopes = match &input.scopes {
            Some(choices) => {
                let request = engine.request(&id).await?;
                Some(mandate_client::view::narrowed(&request.request, choices)?)
            }
            None => None,
        };
        let narrowing = Narrowing {
            scopes,
            lifetime: input.lifetime,
            max_depth: input.max_depth,
        };
        engine.approve(&id, &narrowing).await?;
        Ok::<_, CommandError>(engine.detail(&id).await?)
    };
    sent("approve", reply.await)
}

#[tauri::command]
async fn deny(state: State<'_, App>, id: String, reason: Option<String>) -> Result<RequestDetail> {
    let reply = async {
        let engine = state.engine().await?;
        let reason = reason.filter(|r| !r.trim().is_empty());
        engine.deny(&id, reason.as_deref()).await?;
        Ok::<_, CommandError>(engine.detail(&id).await?)
    };
    sent("deny", reply.await)
}

/// Whether the history verifies.
#[derive(Debug, Serialize, ts_rs::TS)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HistoryCheck {
    /// Every event is chained to the one before, and the head is signed.
    Intact {
        /// How many events the chain holds.
        events: i64,
        /// The head's hash.
        head: String,
        /// How many receipts their own chain holds.
        receipts: i64,
    },
    /// It was altered: the error names the first broken event.
    Broken {
        /// Why, with the engine's code (`history.tampered`).
        error: CommandError,
    },
}

/// The signed history: every decision, the event log, and whether it
/// verifies.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct HistoryView {
    /// Every decision signed, newest first.
    decisions: Vec<mandate_client::history::StoredDecision>,
    /// The event log, oldest first.
    events: Vec<mandate_client::history::Event>,
    /// Whether the log verifies.
    check: HistoryCheck,
}

#[tauri::command]
async fn history(state: State<'_, App>) -> Result<HistoryView> {
    let reply = async {
        let engine = state.engine().await?;
        let account = engine.account().await.ok_or(ClientError::SignedOut)?;
        let check = match engine.verify_history().await {
            Ok(verified) => HistoryCheck::Intact {
                events: verified.events,
                head: verified.head,
                receipts: verified.receipts,
            },
            Err(e) => HistoryCheck::Broken { error: e.into() },
        };
        Ok::<_, CommandError>(HistoryView {
            decisions: engine.decisions().await?,
            events: engine.history().events(&account.principal).await?,
            check,
        })
    };
    sent("history", reply.await)
}

#[tauri::command]
async fn delegations(state: State<'_, App>) -> Result<Delegations> {
    let reply = async { Ok::<_, CommandError>(state.engine().await?.delegations().await?) };
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
    let reply = async {
        let reason = reason.filter(|r| !r.trim().is_empty());
        Ok::<_, CommandError>(
            state
                .engine()
                .await?
                .revoke(&grants, reason.as_deref())
                .await?,
        )
    };
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

/// The user's report of an action they did not expect.
#[derive(Debug, Deserialize, ts_rs::TS)]
pub struct ReportInput {
    /// What was wrong, in the user's words.
    note: Option<String>,
    /// Also revoke the grant the action was taken under.
    revoke: bool,
}

#[tauri::command]
async fn report(
    state: State<'_, App>,
    id: String,
    input: ReportInput,
) -> Result<Option<StoredRevocation>> {
    let reply = async {
        Ok::<_, CommandError>(
            state
                .engine()
                .await?
                .report(&id, input.note.as_deref(), input.revoke)
                .await?,
        )
    };
    sent("report", reply.await)
}

/// Where an export went.
#[derive(Debug, Serialize, ts_rs::TS)]
pub struct Exported {
    /// The file chosen in the save dialog.
    path: String,
    /// How many records it holds.
    records: usize,
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
        let (name, label, ext) = match format {
            ExportFormat::Jsonl => ("mandate-activity.jsonl", "JSON Lines", "jsonl"),
            ExportFormat::Csv => ("mandate-activity.csv", "CSV", "csv"),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        app.dialog()
            .file()
            .set_title("Export the activity")
            .set_file_name(name)
            .add_filter(label, &[ext])
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
        let records = engine.export(&filter, format, &path).await?;
        Ok::<_, CommandError>(Some(Exported {
            path: path.display().to_string(),
            records,
        }))
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
    let reminders = expiry_reminders_on();
    *forwarding = Some(tauri::async_runtime::spawn(async move {
        let mut due = notices::Reminders::default();
        let mut tick = tokio::time::interval(notices::REMINDER_EVERY);
        loop {
            let received = tokio::select! {
                received = updates.recv() => received,
                _ = tick.tick(), if reminders => {
                    for text in due.due(&engine).await {
                        show(&app, &text);
                    }
                    continue;
                }
            };
            let update = match received {
                Ok(update) => update,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            match &update {
                Update::Inbox { pending, new } => {
                    set_pending(&app, *pending);
                    if !new.is_empty() {
                        notify(&app, new.len());
                    }
                }
                Update::KeyEnrolled { device, at, .. } => {
                    show(&app, &notices::key_enrolled(device.as_deref(), *at));
                }
                _ => {}
            }
            trace_sent(UPDATE_EVENT, &update);
            let _ = app.emit(UPDATE_EVENT, &update);
        }
    }));
}

/// Expiry reminders are on unless `MANDATE_EXPIRY_REMINDERS` is `off`.
fn expiry_reminders_on() -> bool {
    std::env::var("MANDATE_EXPIRY_REMINDERS").map_or(true, |v| v != "off")
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

fn notify(app: &AppHandle, new: usize) {
    show(app, &notices::requests_waiting(new));
}

/// A desktop notification from Mandate.
fn show(app: &AppHandle, text: &str) {
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

/// The tray shows how many requests wait.
fn set_pending(app: &AppHandle, pending: usize) {
    let Some(tray) = app.try_state::<TrayIcon>() else {
        return;
    };
    let _ = tray.set_tooltip(Some(&notices::tray_tooltip(pending)));
    let _ = tray.set_title(if pending == 0 {
        None
    } else {
        Some(pending.to_string())
    });
}

/// The tray's menu: open the inbox, the kill switch (behind a
/// confirmation), quit.
fn tray_menu(app: &AppHandle) -> tauri::Result<tauri::menu::Menu<tauri::Wry>> {
    use tauri::menu::{MenuBuilder, MenuItemBuilder};
    MenuBuilder::new(app)
        .item(&MenuItemBuilder::with_id(TRAY_OPEN, "Open the inbox").build(app)?)
        .separator()
        .item(&MenuItemBuilder::with_id(TRAY_REVOKE_ALL, "Revoke all…").build(app)?)
        .separator()
        .item(&MenuItemBuilder::with_id(TRAY_QUIT, "Quit Mandate").build(app)?)
        .build()
}

const TRAY_OPEN: &str = "open";
const TRAY_REVOKE_ALL: &str = "revoke-all";
const TRAY_QUIT: &str = "quit";

fn on_tray_menu(app: &AppHandle, id: &str) {
    match id {
        TRAY_OPEN => {
            if let Some(window) = app.get_webview_window("main") {
                let _ = window.show();
                let _ = window.unminimize();
                let _ = window.set_focus();
            }
        }
        TRAY_REVOKE_ALL => confirm_revoke_all(app),
        TRAY_QUIT => app.exit(0),
        _ => {}
    }
}

/// Asks, then signs one revocation of every active grant.
fn confirm_revoke_all(app: &AppHandle) {
    use tauri_plugin_dialog::{DialogExt as _, MessageDialogButtons, MessageDialogKind};
    let app = app.clone();
    app.dialog()
        .message(
            "Every agent loses the authority you gave it, and every sub-agent beneath it. \
             This cannot be undone.",
        )
        .title("Revoke every grant?")
        .kind(MessageDialogKind::Warning)
        .buttons(MessageDialogButtons::OkCancelCustom(
            "Revoke all".into(),
            "Cancel".into(),
        ))
        .show(move |confirmed| {
            if !confirmed {
                return;
            }
            tauri::async_runtime::spawn(async move {
                let Some(state) = app.try_state::<App>() else {
                    return;
                };
                let done = match state.engine().await {
                    Ok(engine) => engine.revoke_all().await.map_err(CommandError::from),
                    Err(e) => Err(e),
                };
                match done {
                    Ok(r) => tracing::info!(revoked = r.is_some(), "revoke all, from the tray"),
                    Err(e) => tracing::warn!(code = %e.code, "revoke all, from the tray, failed"),
                }
            });
        });
}

/// Builds and runs the app.
pub fn run() {
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
            let data_dir = app
                .path()
                .app_data_dir()
                .unwrap_or_else(|_| PathBuf::from("mandate-data"));
            app.manage(App {
                config: config_from_env(data_dir),
                engine: OnceCell::new(),
                forwarding: std::sync::Mutex::new(None),
            });
            let mut tray = TrayIconBuilder::with_id("main")
                .tooltip("Mandate")
                .menu(&tray_menu(app.handle())?)
                .on_menu_event(|app, event| on_tray_menu(app, event.id().as_ref()));
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
            sign_in,
            sign_out,
            inbox,
            detail,
            approve,
            deny,
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
