//! The TypeScript types of everything that crosses IPC, generated from
//! the Rust types (ts-rs) into `ui/src/lib/bindings.ts`, which the page
//! imports. A test fails when the file is stale; `make bindings` rewrites
//! it.

use mandate_client::activity::{
    ActivityFilter, ActivityRow, AttributionView, ReceiptStatus, StepView,
};
use mandate_client::broker::BlockItem;
use mandate_client::calls::CallView;
use mandate_client::decision::Tier;
use mandate_client::delegations::{
    AgentChoice, AgentGrants, Delegations, GrantState, GrantView, RevokePreview, ScopeUse,
};
use mandate_client::devices::Device;
use mandate_client::engine::{Account, CodeCheck, Update};
use mandate_client::export::ExportFormat;
use mandate_client::history::{
    DecisionKind, Event, RequestState, StoredDecision, StoredRevocation,
};
use mandate_client::narrow::{NarrowPreview, Narrowed, StoredReissue};
use mandate_client::settings::{Settings, SettingsView};
use mandate_client::tiers::{RuleFit, RuleMatch, RuleView};
use mandate_client::tool_claims::ServerClaim;
use mandate_client::view::{
    ActionView, AgentView, ClientCheck, Hop, InboxChanges, InboxRow, OAuthClientView,
    RequestDetail, Risk, Role, ScopeChoice, ScopeView,
};
use ts_rs::{Config, TS};

use mandate_client::commands::{
    AppState, ApproveInput, CommandError, Exported, HistoryCheck, HistoryView, ReportInput,
    RulesView,
};

/// Where the bindings live, from the repository root.
pub const PATH: &str = "ui/src/lib/bindings.ts";

/// The bindings file's text.
pub fn typescript() -> String {
    // Unix seconds and counts fit a JavaScript number.
    let cfg = Config::new().with_large_int("number");
    let decls = [
        CommandError::decl(&cfg),
        AppState::decl(&cfg),
        Account::decl(&cfg),
        Update::decl(&cfg),
        Risk::decl(&cfg),
        InboxRow::decl(&cfg),
        InboxChanges::decl(&cfg),
        RequestState::decl(&cfg),
        RequestDetail::decl(&cfg),
        AgentView::decl(&cfg),
        OAuthClientView::decl(&cfg),
        ClientCheck::decl(&cfg),
        ScopeView::decl(&cfg),
        ActionView::decl(&cfg),
        ServerClaim::decl(&cfg),
        Role::decl(&cfg),
        Hop::decl(&cfg),
        DecisionKind::decl(&cfg),
        StoredDecision::decl(&cfg),
        ScopeChoice::decl(&cfg),
        ApproveInput::decl(&cfg),
        HistoryCheck::decl(&cfg),
        HistoryView::decl(&cfg),
        Event::decl(&cfg),
        StoredRevocation::decl(&cfg),
        GrantState::decl(&cfg),
        ScopeUse::decl(&cfg),
        GrantView::decl(&cfg),
        AgentGrants::decl(&cfg),
        Delegations::decl(&cfg),
        Device::decl(&cfg),
        RevokePreview::decl(&cfg),
        NarrowPreview::decl(&cfg),
        StoredReissue::decl(&cfg),
        Narrowed::decl(&cfg),
        AgentChoice::decl(&cfg),
        ReceiptStatus::decl(&cfg),
        ActivityRow::decl(&cfg),
        ActivityFilter::decl(&cfg),
        StepView::decl(&cfg),
        AttributionView::decl(&cfg),
        ReportInput::decl(&cfg),
        ExportFormat::decl(&cfg),
        Exported::decl(&cfg),
        Tier::decl(&cfg),
        CallView::decl(&cfg),
        CodeCheck::decl(&cfg),
        RulesView::decl(&cfg),
        Settings::decl(&cfg),
        SettingsView::decl(&cfg),
        RuleView::decl(&cfg),
        RuleMatch::decl(&cfg),
        RuleFit::decl(&cfg),
        BlockItem::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from the Rust types by src-tauri/src/bindings.rs (ts-rs).\n\
         // Do not edit: run `make bindings`. A test fails when this is stale.\n",
    );
    for decl in decls {
        out.push_str("\nexport ");
        out.push_str(&decl);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn the_typescript_bindings_are_fresh() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(super::PATH);
        let fresh = super::typescript();
        if std::env::var_os("MANDATE_WRITE_BINDINGS").is_some() {
            std::fs::write(&path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "{} is stale: run `make bindings` and commit it",
            super::PATH
        );
    }
}
