//! The engine: one signed-in user, their key in the OS keyring, their
//! history in SQLite, and a broker (hosted in-process on 127.0.0.1 by
//! default, or remote). The desktop app's commands are thin calls into it.
//!
//! A decision is signed, then recorded locally with its event and signed
//! head in one transaction (the outbox), then delivered to the broker. The
//! signed token is the delivery's idempotency key: the broker accepts the
//! same decision again without change. Undelivered decisions are retried
//! with backoff, and on every start, until the broker accepts or refuses
//! them for good.

use std::path::Path;
use std::sync::{Arc, Mutex as StdMutex};

use mandate_agent::BrokerError;
use mandate_broker::host::{HostConfig, HostKey, Hosted};
use mandate_broker::oidc::TrustedIssuer;
use mandate_core::PublicKey;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::activity::{ActivityFilter, ActivityRow, AttributionView, Ingested};
use crate::broker::{BlockItem, GrantItem, KeyItem, ReceiptItem};
use crate::calls::CallView;
use crate::decision::Narrowing;
use crate::delegations::{AgentChoice, Delegations, GrantView, RevokePreview};
use crate::devices::Device;
use crate::export::ExportFormat;
use crate::history::{History, StoredDecision, StoredRequest, StoredRevocation, Verified};
use crate::narrow::{NarrowPreview, Narrowed};
use crate::tiers::RuleView;
use crate::vault::Vault;
use crate::view::{InboxChanges, InboxRow, RequestDetail};
use crate::{BrokerClient, Browser, ClientError};

mod config;
mod follow;
mod grants;
mod inbox;
mod keys;
mod outbox;
mod receipts;
mod session;
mod update;

pub use config::{BrokerMode, CLIENT_ID, Config, DEFAULT_LISTEN, device_name};
pub use inbox::CodeCheck;
pub use session::SCOPES;
pub use update::Update;

/// The signed-in user, as the UI shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
pub struct Account {
    /// `issuer#subject`.
    pub principal: String,
    /// The display name, if any.
    pub name: Option<String>,
    /// The email address, if any.
    pub email: Option<String>,
    /// The user key's fingerprint.
    pub key_fingerprint: String,
    /// The broker's URL.
    pub broker_url: String,
}

/// The engine. Cheap to clone; clones share everything.
///
/// It is a facade over its parts, each with one job and its own state:
/// the sign-in (`session`), the inbox and its decisions (`inbox`),
/// the outbox's delivery (`outbox`), the grants after the decision
/// (`grants`), the receipts (`receipts`), the user's other devices
/// (`keys`), and what runs in the background (`follow`). The parts do
/// not call each other: where one step leads to another (a decision
/// recorded, then delivered), the engine takes both.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("broker", &self.inner.broker.url())
            .finish_non_exhaustive()
    }
}

struct Inner {
    issuer: String,
    history: History,
    broker: BrokerClient,
    hosted: StdMutex<Option<Hosted>>,
    updates: broadcast::Sender<Update>,
    session: session::SignedIn,
    inbox: inbox::Inbox,
    outbox: outbox::Outbox,
    grants: grants::Grants,
    receipts: receipts::Receipts,
    keys: keys::Keys,
    tasks: StdMutex<Vec<JoinHandle<()>>>,
}

fn now() -> i64 {
    mandate_broker::host::now()
}

impl Engine {
    /// Opens the history and, in the default mode, starts the in-process
    /// broker. Nobody is signed in yet: see [`Engine::resume`] and
    /// [`Engine::sign_in`].
    pub async fn start(config: Config) -> Result<Engine, ClientError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ClientError::History(format!("creating the data directory: {e}")))?;
        let history = History::open(&config.data_dir.join("history.sqlite")).await?;
        let vault = Vault::new(&config.keyring_service);
        let (hosted, url) = match &config.broker {
            BrokerMode::Remote { url } => (None, url.clone()),
            BrokerMode::InProcess { listen } => {
                let issuer = TrustedIssuer {
                    issuer: config.issuer.trim_end_matches('/').to_owned(),
                    audiences: vec![config.client_id.clone()],
                };
                let data_dir = config.data_dir.join("broker");
                // Its key signs bindings: it lives in the keyring, like the
                // user's key, never in a file.
                let key = vault.broker_key(&data_dir.join("broker-key")).await?;
                let mut host = HostConfig::new(*listen, data_dir, vec![issuer]);
                host.key = Some(HostKey::new(key));
                for r in &config.oauth_resources {
                    host.oauth_resources
                        .push(mandate_broker::oauth::Resource::parse(r).map_err(|e| {
                            ClientError::unreachable(format!(
                                "starting the broker: the OAuth resource {r:?}: {e}"
                            ))
                        })?);
                }
                for w in &config.witnesses {
                    host.witnesses.push(
                        mandate_broker::witness_service::Witness::parse(w).map_err(|e| {
                            ClientError::unreachable(format!(
                                "starting the broker: the witness {w:?}: {e}"
                            ))
                        })?,
                    );
                }
                let hosted = Hosted::start(host)
                    .await
                    .map_err(|e| ClientError::unreachable(format!("starting the broker: {e:#}")))?;
                let url = hosted.url().to_owned();
                (Some(hosted), url)
            }
        };
        let broker = BrokerClient::new(&url)?;
        let (updates, _) = broadcast::channel(256);
        let (h, b, u) = (&history, &broker, &updates);
        Ok(Engine {
            inner: Arc::new(Inner {
                session: session::SignedIn::new(&config, vault, h.clone(), b.clone()),
                inbox: inbox::Inbox::new(h.clone(), b.clone(), u.clone()),
                outbox: outbox::Outbox::new(h.clone(), b.clone(), u.clone()),
                grants: grants::Grants::new(h.clone(), b.clone()),
                receipts: receipts::Receipts::new(h.clone(), b.clone(), u.clone()),
                keys: keys::Keys::new(h.clone(), b.clone(), u.clone()),
                issuer: config.issuer,
                history,
                broker,
                hosted: StdMutex::new(hosted),
                updates,
                tasks: StdMutex::new(Vec::new()),
            }),
        })
    }

    /// The broker's URL.
    pub fn broker_url(&self) -> &str {
        self.inner.broker.url()
    }

    /// The local history.
    pub fn history(&self) -> &History {
        &self.inner.history
    }

    /// Changes for the UI, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.inner.updates.subscribe()
    }

    /// The issuer the engine signs in with.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    async fn active(&self) -> Result<Arc<session::Active>, ClientError> {
        self.inner.session.current().await
    }

    /// Picks up the last sign-in from the keyring, refreshing it if it has
    /// expired. `None` when nobody is signed in (or the sign-in can no
    /// longer be refreshed).
    pub async fn resume(&self) -> Result<Option<Account>, ClientError> {
        self.inner.session.resume().await
    }

    /// Signs in through `browser`: the provider's page, then back to a
    /// loopback listener. Generates the user key on first sign-in (it goes
    /// straight to the keyring), and enrolls it with the broker.
    pub async fn sign_in(&self, browser: &dyn Browser) -> Result<Account, ClientError> {
        self.inner.session.sign_in(browser).await
    }

    /// Forgets the sign-in (the keyring's tokens) and stops syncing. The
    /// user key and the history stay.
    pub async fn sign_out(&self) -> Result<(), ClientError> {
        self.stop_tasks();
        self.inner.session.sign_out().await
    }

    /// The signed-in user, if any.
    pub async fn account(&self) -> Option<Account> {
        self.inner.session.account().await
    }

    /// Renews the user key's binding at the broker once half its life has
    /// passed; returns whether it did. The broker binds a key for a short
    /// time (7 days by default), so a device nobody signs in on stops
    /// vouching for new chains by itself.
    pub async fn renew_binding(&self) -> Result<bool, ClientError> {
        self.inner.session.renew_binding().await
    }

    /// Removes one of the user's other keys (a lost device's): signs a key
    /// revocation with this device's key, has the broker publish it on the
    /// revocation feed, and records it in the history. Every chain rooted
    /// in that key then falls at every verifier that follows the feed. This
    /// computer's own key is refused: sign out here, or remove it from
    /// another device.
    pub async fn remove_key(&self, jkt: &str) -> Result<(), ClientError> {
        let active = self.active().await?;
        self.inner.keys.remove(&active, jkt).await
    }

    /// The signed-in user's keys at the broker, one per device.
    pub async fn keys(&self) -> Result<Vec<KeyItem>, ClientError> {
        let active = self.active().await?;
        self.inner.keys.list(&active).await
    }

    /// The devices screen: the user's keys at the broker, oldest first,
    /// with this computer's marked.
    pub async fn devices(&self) -> Result<Vec<Device>, ClientError> {
        let active = self.active().await?;
        self.inner.keys.devices(&active).await
    }

    /// Reads the broker's inbox into the history, and returns the pending
    /// requests, newest first. Offline, it returns what the history holds.
    pub async fn inbox(&self) -> Result<Vec<StoredRequest>, ClientError> {
        let active = self.active().await?;
        match self.fetch_inbox(&active).await {
            Ok(_) => {}
            Err(ClientError::Broker(BrokerError::Unreachable(e))) => {
                tracing::info!(error = %e, "the broker is unreachable; showing the local inbox");
            }
            Err(e) => return Err(e),
        }
        self.inner.inbox.pending(&active).await
    }

    /// The inbox as the list shows it: the pending requests the history
    /// holds, newest first. It reads nothing from the broker: while the
    /// engine follows the broker ([`Engine::follow`]), the history is
    /// current.
    pub async fn inbox_rows(&self) -> Result<Vec<InboxRow>, ClientError> {
        let active = self.active().await?;
        self.inner.inbox.rows(&active).await
    }

    /// What the inbox list must change, when it shows the requests `held`
    /// ([`InboxChanges`]). Like [`Engine::inbox_rows`], it reads nothing
    /// from the broker.
    pub async fn inbox_changes(&self, held: &[String]) -> Result<InboxChanges, ClientError> {
        let active = self.active().await?;
        self.inner.inbox.changes(&active, held).await
    }

    /// One request of the signed-in user, ready to show: the agent, the
    /// scopes in plain language, the chain behind it, the decision.
    pub async fn detail(&self, id: &str) -> Result<RequestDetail, ClientError> {
        let active = self.active().await?;
        self.inner.inbox.detail(&active, id).await
    }

    /// One request of the signed-in user, as recorded.
    pub async fn request(&self, id: &str) -> Result<StoredRequest, ClientError> {
        let active = self.active().await?;
        self.inner.inbox.request(&active, id).await
    }

    /// Approves the request `id`, narrowed as the user chose: signs the
    /// grant, records it, and delivers it.
    pub async fn approve(
        &self,
        id: &str,
        narrowing: &Narrowing,
    ) -> Result<StoredDecision, ClientError> {
        let active = self.active().await?;
        self.inner.inbox.approve(&active, id, narrowing).await?;
        self.deliver_now().await;
        self.inner.inbox.decision(id).await
    }

    /// Denies the request `id`, with an optional reason: signs the
    /// denial, records it, and delivers it. With `always`, the broker
    /// first blocks the agent for this user ("deny always").
    pub async fn deny(
        &self,
        id: &str,
        reason: Option<&str>,
        always: bool,
    ) -> Result<StoredDecision, ClientError> {
        let active = self.active().await?;
        self.inner.inbox.deny(&active, id, reason, always).await?;
        self.deliver_now().await;
        self.inner.inbox.decision(id).await
    }

    /// Checks the binding code the user typed for the high-risk request
    /// `id`; three wrong codes deny it (and flag it), and deliver that.
    pub async fn match_code(&self, id: &str, typed: &str) -> Result<CodeCheck, ClientError> {
        let active = self.active().await?;
        let check = self.inner.inbox.match_code(&active, id, typed).await?;
        if check.denied {
            self.deliver_now().await;
        }
        Ok(check)
    }

    /// The calls agents ask the user to confirm, each checked (its chain
    /// rooted in this user's key), oldest first. A call that does not
    /// check is not shown.
    pub async fn calls(&self) -> Result<Vec<CallView>, ClientError> {
        let active = self.active().await?;
        let items = self
            .inner
            .broker
            .confirmations(active.bearer.expose())
            .await?;
        let principal = active.principal()?;
        let names = self
            .inner
            .history
            .agent_names(&active.profile.principal)
            .await?;
        let at = now();
        Ok(items
            .iter()
            .filter_map(|item| {
                match crate::calls::check(item, &principal, active.key.public(), &names, at) {
                    Ok(checked) => Some(checked.view),
                    Err(e) => {
                        tracing::warn!(call = %item.id, code = e.code(), "skipping a call to confirm that does not check");
                        None
                    }
                }
            })
            .collect())
    }

    /// Confirms the call `id`, as checked now: signs a confirmation of
    /// exactly that call with the user's key, logs it, and delivers it.
    pub async fn confirm_call(&self, id: &str) -> Result<(), ClientError> {
        let active = self.active().await?;
        let items = self
            .inner
            .broker
            .confirmations(active.bearer.expose())
            .await?;
        let item = items
            .iter()
            .find(|i| i.id == id)
            .ok_or(ClientError::NotFound)?;
        let principal = active.principal()?;
        let names = self
            .inner
            .history
            .agent_names(&active.profile.principal)
            .await?;
        let at = now();
        let checked = crate::calls::check(item, &principal, active.key.public(), &names, at)?;
        let token = checked.confirm(&principal, &active.key, at, &mut rand_core::OsRng);
        self.inner
            .history
            .log(
                &active.key,
                &active.profile.principal,
                "confirmation.signed",
                id,
                Some(&token),
                at,
            )
            .await?;
        self.inner
            .broker
            .answer_call(active.bearer.expose(), id, Some(&token), None)
            .await?;
        tracing::info!(call = %id, "call confirmed");
        Ok(())
    }

    /// Refuses the call `id`, with the user's reason for the agent.
    pub async fn refuse_call(&self, id: &str, reason: Option<&str>) -> Result<(), ClientError> {
        let active = self.active().await?;
        self.inner
            .history
            .log(
                &active.key,
                &active.profile.principal,
                "confirmation.refused",
                id,
                None,
                now(),
            )
            .await?;
        self.inner
            .broker
            .answer_call(active.bearer.expose(), id, None, reason)
            .await
    }

    /// The user's standing rules, newest first, ended ones included.
    pub async fn rules(&self) -> Result<Vec<RuleView>, ClientError> {
        let active = self.active().await?;
        let principal = &active.profile.principal;
        let history = &self.inner.history;
        let mut views = Vec::new();
        for rule in history.rules(principal).await? {
            let matches = history
                .rule_matches(principal, &rule.id, crate::tiers::RULE_MATCHES_SHOWN)
                .await?;
            views.extend(RuleView::of(&rule, &matches));
        }
        Ok(views)
    }

    /// Ends the standing rule `id`: it approves nothing more. The grants it
    /// approved stand until they end or are revoked.
    pub async fn end_rule(&self, id: &str) -> Result<(), ClientError> {
        let active = self.active().await?;
        self.inner
            .history
            .end_rule(&active.key, &active.profile.principal, id, now())
            .await
    }

    /// The agents the user denies always, as the broker holds them, with
    /// how many requests each block refused.
    pub async fn blocks(&self) -> Result<Vec<BlockItem>, ClientError> {
        let active = self.active().await?;
        self.inner.broker.blocks(active.bearer.expose()).await
    }

    /// Lifts the block of the agent key `agent`: its requests reach the
    /// user again.
    pub async fn lift_block(&self, agent: &str) -> Result<(), ClientError> {
        let active = self.active().await?;
        self.inner
            .broker
            .lift_block(active.bearer.expose(), agent)
            .await
    }

    /// Delivers every decision in the outbox. Returns how many are still
    /// waiting (the broker unreachable, or busy).
    pub async fn deliver(&self) -> Result<usize, ClientError> {
        let active = self.active().await?;
        self.inner.outbox.deliver(&active).await
    }

    /// Delivers what was just recorded. A failure leaves it in the outbox;
    /// the caller reads how delivery went from the recorded row.
    /// Reads the broker's inbox into the history; delivers at once the
    /// grants rules approved in it.
    async fn fetch_inbox(&self, active: &session::Active) -> Result<(), ClientError> {
        if self.inner.inbox.fetch(active).await? > 0 {
            self.deliver_now().await;
        }
        Ok(())
    }

    /// Reads only the requests `ids` the inbox stream announced into the
    /// history; delivers at once the grants rules approved among them.
    async fn fetch_new_requests(
        &self,
        active: &session::Active,
        ids: &[String],
    ) -> Result<(), ClientError> {
        if self.inner.inbox.fetch_new(active, ids).await? > 0 {
            self.deliver_now().await;
        }
        Ok(())
    }

    async fn deliver_now(&self) {
        if let Err(e) = self.deliver().await {
            tracing::info!(code = e.code(), "delivery deferred");
        }
    }

    /// What narrowing grant `id` to what was used would keep, drop, and
    /// take down with it.
    pub async fn narrow_preview(&self, id: &str) -> Result<NarrowPreview, ClientError> {
        let active = self.active().await?;
        self.inner.grants.refresh(&active).await?;
        self.inner.grants.narrow_preview(&active, id).await
    }

    /// Narrows grant `id` to what was used: signs its revocation and a new
    /// grant with only the actions used, to the same agent for the same
    /// request; records both, then delivers them (see [`crate::narrow`]).
    pub async fn narrow_to_used(&self, id: &str) -> Result<Narrowed, ClientError> {
        let active = self.active().await?;
        self.inner.grants.refresh(&active).await?;
        let narrowed = self.inner.grants.narrow(&active, id).await?;
        self.deliver_now().await;
        self.inner.grants.reread(&narrowed).await
    }

    /// Revokes `grants` (and, with them, every sub-delegation beneath
    /// them): signs a revocation with the user key, records it, and
    /// delivers it. Delivery failures leave it in the outbox; the row says
    /// how delivery went.
    pub async fn revoke(
        &self,
        grants: &[String],
        reason: Option<&str>,
    ) -> Result<StoredRevocation, ClientError> {
        let active = self.active().await?;
        let stored = self.inner.grants.revoke(&active, grants, reason).await?;
        self.deliver_now().await;
        self.inner.grants.revocation(&stored.token_id).await
    }

    /// The kill switch: one signed revocation of every grant the broker
    /// holds for the user that is neither revoked nor expired. `None` when
    /// there was none.
    pub async fn revoke_all(&self) -> Result<Option<StoredRevocation>, ClientError> {
        let at = now();
        let active: Vec<String> = self
            .grants()
            .await?
            .into_iter()
            .filter(|g| !g.revoked && g.expires_at > at)
            .map(|g| g.id)
            .collect();
        if active.is_empty() {
            return Ok(None);
        }
        self.revoke(&active, Some("revoke all")).await.map(Some)
    }

    /// The grants the broker holds for the signed-in user, oldest first,
    /// with their revocation state.
    pub async fn grants(&self) -> Result<Vec<GrantItem>, ClientError> {
        let active = self.active().await?;
        self.inner.grants.listed(&active).await
    }

    /// The delegations screen: the user's grants in force by agent (with
    /// the sub-delegations beneath them, and what each was used for), and
    /// those that ended. Reads the broker's list first when it can.
    pub async fn delegations(&self) -> Result<Delegations, ClientError> {
        let active = self.active().await?;
        self.inner.grants.refresh(&active).await?;
        self.inner.grants.delegations(&active).await
    }

    /// The delegations screen from the history alone (no broker call):
    /// for a view that shows grants beside something else, and reloads
    /// often, such as Activity's ended leases.
    pub async fn recorded_delegations(&self) -> Result<Delegations, ClientError> {
        let active = self.active().await?;
        self.inner.grants.delegations(&active).await
    }

    /// The grants in force that lapse within `within` seconds, read from
    /// the history alone (no broker call), soonest first.
    pub async fn expiring(&self, within: i64) -> Result<Vec<GrantView>, ClientError> {
        let active = self.active().await?;
        self.inner.grants.expiring(&active, within).await
    }

    /// Every agent that holds or held one of the user's grants.
    pub async fn agents(&self) -> Result<Vec<AgentChoice>, ClientError> {
        let active = self.active().await?;
        self.inner.grants.agents(&active).await
    }

    /// What revoking grant `id` takes down: its sub-delegations in force
    /// and the requests waiting under it.
    pub async fn revoke_preview(&self, id: &str) -> Result<RevokePreview, ClientError> {
        let active = self.active().await?;
        self.inner.grants.refresh(&active).await?;
        self.inner.grants.revoke_preview(&active, id).await
    }

    /// Reads the user's grants and every receipt not yet seen from the
    /// broker, checks each receipt, and records them all. Announces
    /// [`Update::Activity`] when any is new.
    pub async fn sync_activity(&self) -> Result<Ingested, ClientError> {
        let active = self.active().await?;
        self.inner.receipts.sync(&active).await
    }

    /// Checks one page of receipts and records it, as
    /// [`Engine::sync_activity`] does with each page the broker serves.
    pub async fn ingest(&self, page: &[ReceiptItem]) -> Result<Ingested, ClientError> {
        let active = self.active().await?;
        self.inner.receipts.ingest(&active, page).await
    }

    /// A page of the user's activity, newest first.
    pub async fn activity(&self, filter: &ActivityFilter) -> Result<Vec<ActivityRow>, ClientError> {
        let active = self.active().await?;
        self.inner.receipts.activity(&active, filter).await
    }

    /// Why receipt `id` happened, from the user's intent down to it, each
    /// step verified again.
    pub async fn attribution(&self, id: &str) -> Result<AttributionView, ClientError> {
        let active = self.active().await?;
        self.inner.receipts.attribution(&active, id).await
    }

    /// Reports receipt `id` ("this was not expected"): marks it, records
    /// the report in the signed history, and, when `revoke` is set, revokes
    /// the grant it was made under (and everything beneath it).
    pub async fn report(
        &self,
        id: &str,
        note: Option<&str>,
        revoke: bool,
    ) -> Result<Option<StoredRevocation>, ClientError> {
        let active = self.active().await?;
        let grant = self.inner.receipts.report(&active, id, note).await?;
        if !revoke {
            return Ok(None);
        }
        let reason = format!("reported action {id}");
        self.revoke(&[grant], Some(&reason)).await.map(Some)
    }

    /// Writes the activity that `filter` selects (every page of it) to
    /// `path`, as JSON Lines or CSV, each record with the signed receipt
    /// and what it takes to verify it elsewhere. The file appears whole or
    /// not at all. Returns how many records it holds.
    pub async fn export(
        &self,
        filter: &ActivityFilter,
        format: ExportFormat,
        path: &Path,
    ) -> Result<usize, ClientError> {
        let active = self.active().await?;
        self.inner
            .receipts
            .export(&active, filter, format, path)
            .await
    }

    /// Checks the signed-in user's history: every link, and the head's
    /// signature.
    pub async fn verify_history(&self) -> Result<Verified, ClientError> {
        let active = self.active().await?;
        let key = PublicKey::from_jwk_json(&active.profile.user_jwk)?;
        self.inner
            .history
            .verify(&active.profile.principal, &key)
            .await
    }

    /// The signed-in user's decisions, newest first.
    pub async fn decisions(&self) -> Result<Vec<StoredDecision>, ClientError> {
        let active = self.active().await?;
        self.inner
            .history
            .decisions(&active.profile.principal)
            .await
    }

    /// The signed-in user's event log, oldest first.
    pub async fn events(&self) -> Result<Vec<crate::history::Event>, ClientError> {
        let active = self.active().await?;
        self.inner.history.events(&active.profile.principal).await
    }

    /// Stops syncing and the in-process broker, and closes the history.
    pub async fn shutdown(&self) {
        self.stop_tasks();
        let hosted = self.inner.hosted.lock().ok().and_then(|mut h| h.take());
        if let Some(hosted) = hosted
            && let Err(e) = hosted.stop().await
        {
            tracing::warn!(error = %e, "stopping the broker");
        }
        self.inner.history.close().await;
    }
}

#[cfg(test)]
mod tests {
    /// The agents' default broker is where a broker listens by default.
    #[test]
    fn agents_default_to_where_the_broker_listens() {
        assert_eq!(
            mandate_agent::client::DEFAULT_BROKER_URL,
            format!("http://{}", super::DEFAULT_LISTEN)
        );
    }
}
