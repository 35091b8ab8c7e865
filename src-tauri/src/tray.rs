//! The tray: how many requests wait, and a menu to open the inbox, to
//! revoke every grant (behind a confirmation), and to quit.

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

/// The tray's menu: open the inbox, the kill switch (behind a
/// confirmation), quit.
pub(crate) fn menu(app: &AppHandle) -> tauri::Result<tauri::menu::Menu<tauri::Wry>> {
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
