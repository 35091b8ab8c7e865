//! Tauri's build step: the config, the capabilities, and the app's own
//! commands, each of which a capability must allow by name.

fn main() {
    let commands = tauri_build::AppManifest::new().commands(mandate_commands());
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(commands))
        .unwrap_or_else(|e| panic!("tauri build step: {e:#}"));
}

/// The commands `src/lib.rs` registers; keep the two lists in step.
fn mandate_commands() -> &'static [&'static str] {
    &[
        "app_state",
        "settings",
        "save_settings",
        "restart",
        "sign_in",
        "sign_out",
        "inbox",
        "detail",
        "approve",
        "deny",
        "match_code",
        "calls",
        "confirm_call",
        "refuse_call",
        "rules",
        "end_rule",
        "lift_block",
        "history",
        "delegations",
        "keys",
        "remove_key",
        "revoke_preview",
        "narrow_preview",
        "narrow",
        "revoke",
        "revoke_all",
        "activity",
        "activity_agents",
        "attribution",
        "report",
        "export",
    ]
}
