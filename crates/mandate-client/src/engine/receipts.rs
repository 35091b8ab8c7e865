//! What the agents did: the broker's receipt feed read into the history
//! (each receipt checked against the chain it claims), and the activity
//! views over it: the list, one action's attribution, a report, an
//! export.

use std::path::Path;

use tokio::sync::{Mutex, broadcast};

use super::session::Active;
use super::{Update, now};
use crate::activity::{ActivityFilter, ActivityRow, AttributionView, Ingest, Ingested};
use crate::broker::ReceiptItem;
use crate::export::ExportFormat;
use crate::history::History;
use crate::{BrokerClient, ClientError};

/// The broker's receipt feed page: a shorter page is the last.
const RECEIPT_PAGE: usize = 500;

/// The receipts.
pub(super) struct Receipts {
    history: History,
    broker: BrokerClient,
    updates: broadcast::Sender<Update>,
    syncing: Mutex<()>,
}

impl Receipts {
    pub(super) fn new(
        history: History,
        broker: BrokerClient,
        updates: broadcast::Sender<Update>,
    ) -> Receipts {
        Receipts {
            history,
            broker,
            updates,
            syncing: Mutex::new(()),
        }
    }

    /// Reads the user's grants and every receipt not yet seen from the
    /// broker, one sync at a time, checks each receipt, and records them
    /// all. Announces [`Update::Activity`] when any is new.
    pub(super) async fn sync(&self, active: &Active) -> Result<Ingested, ClientError> {
        let _one_at_a_time = self.syncing.lock().await;
        let principal = &active.profile.principal;
        let bearer = active.bearer.expose();
        let history = &self.history;
        let grants = self.broker.grants(bearer).await?;
        history.save_grants(principal, &grants).await?;
        let checker = history.checker(principal, active.key.public()).await?;
        let mut ingest = Ingest::new(history, principal, &active.key, checker);
        let mut since = history.receipts_cursor(principal).await?;
        loop {
            // Up to ten of the broker's pages to a transaction: a large
            // backlog is written several times faster than page by page.
            let mut batch = Vec::new();
            let mut last_page = false;
            while batch.len() < 10 * RECEIPT_PAGE {
                let page = self.broker.receipts(bearer, since).await?;
                last_page = page.len() < RECEIPT_PAGE;
                if let Some(last) = page.last() {
                    since = last.seq;
                }
                batch.extend(page);
                if last_page {
                    break;
                }
            }
            // Checked while the batch before it is written.
            ingest.push(batch).await?;
            if last_page {
                break;
            }
        }
        let total = ingest.finish().await?;
        if total.new > 0 {
            tracing::info!(new = total.new, failed = total.failed, "receipts recorded");
            let _ = self.updates.send(Update::Activity {
                new: total.new,
                failed: total.failed,
            });
        }
        Ok(total)
    }

    /// Checks one page of receipts and records it.
    pub(super) async fn ingest(
        &self,
        active: &Active,
        page: &[ReceiptItem],
    ) -> Result<Ingested, ClientError> {
        let principal = &active.profile.principal;
        let mut checker = self.history.checker(principal, active.key.public()).await?;
        self.history
            .ingest(principal, &active.key, &mut checker, page)
            .await
    }

    /// A page of the user's activity, newest first.
    pub(super) async fn activity(
        &self,
        active: &Active,
        filter: &ActivityFilter,
    ) -> Result<Vec<ActivityRow>, ClientError> {
        self.history
            .activity(&active.profile.principal, filter)
            .await
    }

    /// Why receipt `id` happened, each step verified again.
    pub(super) async fn attribution(
        &self,
        active: &Active,
        id: &str,
    ) -> Result<AttributionView, ClientError> {
        self.history
            .attribution(&active.profile.principal, active.key.public(), id)
            .await
    }

    /// Marks receipt `id` as reported and records the report in the
    /// signed history. Returns the grant it was made under.
    pub(super) async fn report(
        &self,
        active: &Active,
        id: &str,
        note: Option<&str>,
    ) -> Result<String, ClientError> {
        let principal = &active.profile.principal;
        let (row, _) = self
            .history
            .receipt_row(principal, id)
            .await?
            .ok_or(ClientError::NotFound)?;
        self.history
            .report_receipt(&active.key, principal, id, note, now())
            .await?;
        Ok(row.grant_id)
    }

    /// Writes the activity `filter` selects to `path`, whole or not at
    /// all (see [`crate::export`]).
    pub(super) async fn export(
        &self,
        active: &Active,
        filter: &ActivityFilter,
        format: ExportFormat,
        path: &Path,
    ) -> Result<usize, ClientError> {
        crate::export::write(
            &self.history,
            &active.profile.principal,
            &active.profile.binding,
            active.key.public(),
            filter,
            format,
            path,
        )
        .await
    }
}
