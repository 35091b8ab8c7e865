//! The tray: how many requests wait, and a menu to open the inbox, to
//! stop each live lease, to revoke every grant (behind a confirmation),
//! and to quit.

use tauri::tray::TrayIcon;
use tauri::{AppHandle, Manager as _};

use mandate_client::commands::CommandError;
use mandate_client::notices;

use crate::App;

/// The tray shows how many requests wait.
pub(crate) fn set_pending(app: &AppHandle, pending: usize) {
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

/// The tray's menu: open the inbox, the live leases (each line stops
/// its lease), the kill switch (behind a confirmation), quit.
pub(crate) fn menu(
    app: &AppHandle,
    leases: &[(String, String)],
) -> tauri::Result<tauri::menu::Menu<tauri::Wry>> {
    use tauri::menu::{MenuBuilder, MenuItemBuilder};
    let mut menu = MenuBuilder::new(app)
        .item(&MenuItemBuilder::with_id(TRAY_OPEN, "Open the inbox").build(app)?)
        .separator();
    if !leases.is_empty() {
        menu = menu.item(
            &MenuItemBuilder::with_id("leases", "Running for a task")
                .enabled(false)
                .build(app)?,
        );
        for (grant, line) in leases {
            menu = menu
                .item(&MenuItemBuilder::with_id(format!("{TRAY_STOP}{grant}"), line).build(app)?);
        }
        menu = menu.separator();
    }
    menu.item(&MenuItemBuilder::with_id(TRAY_REVOKE_ALL, "Revoke all…").build(app)?)
        .separator()
        .item(&MenuItemBuilder::with_id(TRAY_QUIT, "Quit Mandate").build(app)?)
        .build()
}

/// Lists the live leases in the tray's menu again, with the time each
/// has left.
pub(crate) async fn show_leases(app: &AppHandle, engine: &mandate_client::engine::Engine) {
    let Some(tray) = app.try_state::<TrayIcon>() else {
        return;
    };
    let leases = notices::tray_leases(engine).await;
    match menu(app, &leases) {
        Ok(menu) => {
            let _ = tray.set_menu(Some(menu));
        }
        Err(e) => tracing::warn!(error = %e, "the tray's menu"),
    }
}

const TRAY_OPEN: &str = "open";
const TRAY_REVOKE_ALL: &str = "revoke-all";
const TRAY_QUIT: &str = "quit";
/// The prefix of a lease's line: the rest is its grant's id.
const TRAY_STOP: &str = "stop:";

pub(crate) fn on_menu(app: &AppHandle, id: &str) {
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
        _ => {
            if let Some(grant) = id.strip_prefix(TRAY_STOP) {
                stop(app, grant.to_owned());
            }
        }
    }
}

/// Stops a lease, as its Stop button in the app does: one revocation,
/// signed with the user's key, that cascades like any other.
fn stop(app: &AppHandle, grant: String) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let Some(state) = app.try_state::<App>() else {
            return;
        };
        let engine = match state.engine().await {
            Ok(engine) => engine,
            Err(e) => return tracing::warn!(code = %e.code, "stop a lease, from the tray"),
        };
        match engine.revoke(&[grant], Some("Stopped by the user")).await {
            Ok(_) => tracing::info!("a lease stopped, from the tray"),
            Err(e) => {
                tracing::warn!(code = %CommandError::from(e).code, "stop a lease, from the tray, failed")
            }
        }
        show_leases(&app, engine).await;
    });
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
