// Generated from the Rust types by src-tauri/src/bindings.rs (ts-rs).
// Do not edit: run `make bindings`. A test fails when this is stale.

export type CommandError = { 
/**
 * Stable, for the page to act on (`session.signed_out`, ...).
 */
code: string, 
/**
 * A sentence for the user.
 */
message: string, };

export type AppState = { 
/**
 * The signed-in user, if any.
 */
account: Account | null, 
/**
 * The OIDC provider the app signs in with.
 */
issuer: string, 
/**
 * The broker the app talks to.
 */
broker_url: string, };

export type Account = { 
/**
 * `issuer#subject`.
 */
principal: string, 
/**
 * The display name, if any.
 */
name: string | null, 
/**
 * The email address, if any.
 */
email: string | null, 
/**
 * The user key's fingerprint.
 */
key_fingerprint: string, 
/**
 * The broker's URL.
 */
broker_url: string, };

export type Update = { "type": "inbox", 
/**
 * How many.
 */
pending: number, 
/**
 * The requests that arrived with this change.
 */
new: Array<string>, } | { "type": "auto_approved", 
/**
 * The request approved.
 */
request_id: string, 
/**
 * The rule that approved it.
 */
rule_id: string, 
/**
 * The rule's label.
 */
label: string | null, } | { "type": "calls" } | { "type": "delivery", 
/**
 * The request decided.
 */
request_id: string, 
/**
 * Whether the broker accepted it.
 */
delivered: boolean, } | { "type": "revocation", 
/**
 * The revocation's token id.
 */
token_id: string, 
/**
 * Whether the broker accepted it.
 */
delivered: boolean, } | { "type": "reissue", 
/**
 * The new grant's id.
 */
token_id: string, 
/**
 * Whether the broker accepted it.
 */
delivered: boolean, } | { "type": "activity", 
/**
 * How many are new.
 */
new: number, 
/**
 * How many of those failed verification.
 */
failed: number, } | { "type": "connection", 
/**
 * Whether it is up.
 */
online: boolean, } | { "type": "key_enrolled", 
/**
 * The new key's thumbprint.
 */
jkt: string, 
/**
 * Its short fingerprint.
 */
fingerprint: string, 
/**
 * The name the device gave; `None` when the broker's list did not
 * have the key.
 */
device: string | null, 
/**
 * When it was enrolled (unix seconds).
 */
at: number, };

export type Risk = "low" | "medium" | "unknown" | "high";

export type InboxRow = { 
/**
 * The request's id.
 */
id: string, 
/**
 * The agent's self-asserted name.
 */
agent_name: string, 
/**
 * Its key's fingerprint.
 */
fingerprint: string, 
/**
 * The code the agent showed its user, to match with this request;
 * empty for a high-risk request, whose code the user types instead.
 */
binding_code: string, 
/**
 * What it says it will do.
 */
interpretation: string, 
/**
 * The highest risk among its scopes.
 */
risk: Risk, 
/**
 * How many agents stand between the user and the requester, the
 * requester included, counted on the verified chain only.
 */
hops: number, 
/**
 * Whether the request names a chain behind it that does not verify.
 */
chain_refused: boolean, 
/**
 * Whether its name raises warnings.
 */
suspicious_name: boolean, 
/**
 * When the broker received it.
 */
received_at: number, 
/**
 * When it lapses.
 */
expires_at: number, };

export type InboxChanges = { 
/**
 * The rows of pending requests the list did not hold, newest first
 * (by `received_at`, later first, then by `id`).
 */
added: Array<InboxRow>, 
/**
 * The ids the list held that are no longer pending.
 */
gone: Array<string>, 
/**
 * How many requests are pending now.
 */
pending: number, };

export type RequestState = "pending" | "approved" | "denied" | "expired";

export type RequestDetail = { 
/**
 * The request's id.
 */
id: string, 
/**
 * Where it stands.
 */
state: RequestState, 
/**
 * When the broker received it.
 */
received_at: number, 
/**
 * When it lapses.
 */
expires_at: number, 
/**
 * Who asks.
 */
agent: AgentView, 
/**
 * The code the agent shows its user, to compare; empty while the
 * user must type it instead (`needs_code`).
 */
binding_code: string, 
/**
 * The user's instruction, as the agent received it.
 */
intent: string | null, 
/**
 * The agent's interpretation of it.
 */
interpretation: string, 
/**
 * What it asks for.
 */
scopes: Array<ScopeView>, 
/**
 * The highest risk among the scopes.
 */
risk: Risk, 
/**
 * From the user to the agent asking, root first: every hop from
 * verified data. Empty when the chain behind the request does not
 * verify; `chain_warning` then says why.
 */
chain: Array<Hop>, 
/**
 * Why the chain behind the request is not shown, if it is not.
 */
chain_warning: string | null, 
/**
 * The grant's lifetime asked for, in seconds.
 */
lifetime: number, 
/**
 * The delegation depth asked for.
 */
max_depth: number, 
/**
 * The decision, once made.
 */
decision: StoredDecision | null, 
/**
 * The OAuth client behind the request, when the broker filed it for
 * one (its authorization code flow): who the broker checked it is.
 */
oauth_client: OAuthClientView | null, 
/**
 * When the user last denied this agent (within a day), if they did:
 * "you denied this agent 2 minutes ago".
 */
denied_before: number | null, 
/**
 * The user's standing rules about this agent, and how this request
 * goes past each (why it came as a prompt).
 */
rules: Array<RuleFit>, 
/**
 * Whether the user must type the agent's binding code before
 * approving: the request is high risk and the code was not typed yet.
 */
needs_code: boolean, 
/**
 * How many wrong codes were typed.
 */
code_misses: number, 
/**
 * Whether the request was flagged (wrong codes three times).
 */
flagged: boolean, };

export type AgentView = { 
/**
 * Its id: the thumbprint URI of its key.
 */
id: string, 
/**
 * A short form of the id, to compare by eye.
 */
fingerprint: string, 
/**
 * The name it gives itself. Self-asserted: anyone can claim any name.
 */
name: string, 
/**
 * Who it says publishes it.
 */
publisher: string | null, 
/**
 * Its version, as it says.
 */
version: string | null, 
/**
 * Whether this key asked before.
 */
known: boolean, 
/**
 * What is suspicious about the name.
 */
warnings: Array<string>, };

export type OAuthClientView = { 
/**
 * Its `client_id`.
 */
client_id: string, 
/**
 * How the broker knows it.
 */
verified_by: ClientCheck, 
/**
 * Where the browser goes back to, with the code.
 */
redirect_uri: string, 
/**
 * The resource its tokens are for.
 */
resource: string, };

export type ClientCheck = "metadata_document" | "registration";

export type ScopeView = { 
/**
 * The scope type, raw.
 */
kind: string, 
/**
 * The type's name, if the catalog knows it.
 */
label: string | null, 
/**
 * The actions.
 */
actions: Array<ActionView>, 
/**
 * Where.
 */
locations: Array<string>, 
/**
 * One resource, if named.
 */
identifier: string | null, 
/**
 * The most calls, if limited.
 */
max_calls: number | null, 
/**
 * The most money, if limited: amount and currency.
 */
max_amount: string | null, 
/**
 * Which calls the user confirms one by one: `each call`, or `calls
 * above AMOUNT CURRENCY`; `None` when none.
 */
confirm: string | null, 
/**
 * The highest risk among the actions.
 */
risk: Risk, 
/**
 * The scope as JSON, for "show raw".
 */
raw: string, };

export type ActionView = { 
/**
 * The action, raw.
 */
name: string, 
/**
 * What it means, if the catalog knows it.
 */
label: string | null, 
/**
 * Its risk.
 */
risk: Risk, 
/**
 * Whether its effects cannot be undone.
 */
irreversible: boolean, 
/**
 * For an MCP tool, what its server says of it (its annotations),
 * when the gateway in front of it relayed that: the server's claim,
 * which sets `risk` and `irreversible` and can lie.
 */
server_says: ServerClaim | null, };

export type ServerClaim = { 
/**
 * The tool's title, as the server gives it.
 */
title: string | null, 
/**
 * It says the tool only reads.
 */
read_only: boolean, 
/**
 * It says the tool may destroy or overwrite.
 */
destructive: boolean, 
/**
 * It says calling the tool twice does no more than once.
 */
idempotent: boolean, 
/**
 * It says the tool reaches beyond the server (the web, other
 * systems).
 */
open_world: boolean, 
/**
 * The fingerprint of the gateway's key that relayed it.
 */
relayed_by: string, };

export type Role = "user" | "agent" | "sub-agent";

export type Hop = { 
/**
 * Who it is.
 */
role: Role, 
/**
 * The user's principal, or the agent's self-asserted name (or its
 * fingerprint when the name is not known).
 */
who: string, 
/**
 * The agent's fingerprint; `None` for the user.
 */
fingerprint: string | null, 
/**
 * What this hop is for, as its delegator put it.
 */
purpose: string | null, 
/**
 * What this hop holds (or asks for, at the last hop), one line each.
 */
scopes: Array<string>, 
/**
 * What it holds that the hop before did not.
 */
adds: Array<string>, 
/**
 * What the hop before held that it does not.
 */
loses: Array<string>, };

export type DecisionKind = "grant" | "denial";

export type StoredDecision = { 
/**
 * The request it answers.
 */
request_id: string, 
/**
 * What was signed.
 */
kind: DecisionKind, 
/**
 * The signed token.
 */
token: string, 
/**
 * The token's id: the idempotency key of its delivery.
 */
token_id: string, 
/**
 * When it was signed.
 */
decided_at: number, 
/**
 * How many deliveries were tried.
 */
attempts: number, 
/**
 * When the broker accepted it.
 */
delivered_at: number | null, 
/**
 * The broker's code, if it refused the decision for good.
 */
refused_code: string | null, 
/**
 * The tier it was signed for: `standard`, `once`, `lease`, `rule`
 * (the user made a rule with it), `auto` (a rule approved it) or
 * `block` (a denial, with "deny always").
 */
tier: string, 
/**
 * The rule that approved it, for `auto`.
 */
rule_id: string | null, };

export type ScopeChoice = { 
/**
 * The scope's index in the request.
 */
index: number, 
/**
 * The actions kept; at least one.
 */
actions: Array<string>, 
/**
 * Whether the user confirms each call under this scope, one by one
 * (`limits.confirm`, docs/protocol.md 5.8). Never drops a `confirm`
 * the agent asked for itself.
 */
confirm: boolean, 
/**
 * Or: confirm only the calls that commit more than this amount (a
 * decimal, in the currency of the scope's money limit, which it must
 * have), and those that state none. Keeps a stricter `confirm` the
 * agent asked for.
 */
confirm_above: string | null, };

export type ApproveInput = { 
/**
 * The scopes kept, each with the actions kept.
 */
scopes: Array<ScopeChoice> | null, 
/**
 * A shorter lifetime, in seconds.
 */
lifetime: number | null, 
/**
 * A lower delegation depth.
 */
max_depth: number | null, 
/**
 * The tier: just this once, for this task (a lease), always within
 * these bounds (a rule), or as narrowed. The page offers "just this
 * once" first.
 */
tier: Tier | null, };

export type HistoryCheck = { "status": "intact", 
/**
 * How many events the chain holds.
 */
events: number, 
/**
 * The head's hash.
 */
head: string, 
/**
 * How many receipts their own chain holds.
 */
receipts: number, } | { "status": "broken", 
/**
 * Why, with the engine's code (`history.tampered`).
 */
error: CommandError, };

export type HistoryView = { 
/**
 * Every decision signed, newest first.
 */
decisions: Array<StoredDecision>, 
/**
 * The event log, oldest first.
 */
events: Array<HistoryEvent>, 
/**
 * Whether the log verifies.
 */
check: HistoryCheck, };

export type HistoryEvent = { 
/**
 * Its position in the database.
 */
seq: number, 
/**
 * When (unix seconds).
 */
at: number, 
/**
 * What happened: `key.enrolled`, `request.seen`, `grant.signed`,
 * `denial.signed`, `decision.delivered`, `decision.refused`,
 * `revocation.signed`, `revocation.delivered`, `revocation.refused`,
 * `grant.reissued`, `reissue.delivered`, `reissue.refused`,
 * `receipt.reported`, `rule.created`, `rule.matched`, `rule.ended`,
 * `block.stored`, `request.flagged`.
 */
kind: string, 
/**
 * What it is about: a request or token id.
 */
subject: string, 
/**
 * The signed token, if the event carries one.
 */
token: string | null, 
/**
 * The base64url hash of the event before, or of 32 zero bytes.
 */
prev: string, 
/**
 * The base64url hash of this event.
 */
hash: string, };

export type StoredRevocation = { 
/**
 * The token's id: the idempotency key of its delivery.
 */
token_id: string, 
/**
 * The signed revocation.
 */
token: string, 
/**
 * The grants it revokes (their sub-delegations fall with them).
 */
grants: Array<string>, 
/**
 * When it was signed.
 */
revoked_at: number, 
/**
 * How many deliveries were tried.
 */
attempts: number, 
/**
 * When the broker accepted it.
 */
delivered_at: number | null, 
/**
 * The broker's code, if it refused the revocation for good.
 */
refused_code: string | null, };

export type GrantState = "active" | "revoked" | "expired";

export type ScopeUse = { 
/**
 * The scope in plain language.
 */
scope: ScopeView, 
/**
 * The actions agents took under it (through this grant or beneath it,
 * or through the grant it replaced when that was narrowed to what was
 * used).
 */
used: Array<string>, 
/**
 * The actions never used.
 */
unused: Array<string>, };

export type GrantView = { 
/**
 * The grant's id.
 */
id: string, 
/**
 * The grant it was delegated from; `None` for the user's own.
 */
parent: string | null, 
/**
 * Hops from the user: 0 for the user's grant to an agent.
 */
depth: number, 
/**
 * The agent it was given to (its id).
 */
agent: string, 
/**
 * That agent's fingerprint.
 */
agent_fingerprint: string, 
/**
 * The name the agent gave itself, if it ever asked the user.
 */
agent_name: string | null, 
/**
 * Who gave it: `you`, or the delegating agent's name or fingerprint.
 */
issued_by: string, 
/**
 * The purpose signed into it.
 */
purpose: string, 
/**
 * Its scopes, granted against used.
 */
scopes: Array<ScopeUse>, 
/**
 * How many more hops it allows.
 */
max_depth: number, 
/**
 * When it was issued.
 */
issued_at: number, 
/**
 * When it expires.
 */
expires_at: number, 
/**
 * When it (or a grant above it) was revoked.
 */
revoked_at: number | null, 
/**
 * Where it stands.
 */
state: GrantState, 
/**
 * For the user's own grants, the tier it was approved for: `once`,
 * `lease` (a countdown and Stop), `rule`, `auto` (a rule approved it)
 * or `standard`. `None` for sub-delegations.
 */
tier: string | null, 
/**
 * Verified actions taken under it and beneath it (and under the grant
 * it replaced, when that was narrowed to what was used).
 */
actions: number, 
/**
 * The last of them.
 */
last_used: number | null, };

export type AgentGrants = { 
/**
 * The agent's id.
 */
agent: string, 
/**
 * Its fingerprint.
 */
agent_fingerprint: string, 
/**
 * Its self-asserted name, if it ever asked the user.
 */
agent_name: string | null, 
/**
 * Its grants, oldest first.
 */
grants: Array<GrantView>, };

export type Delegations = { 
/**
 * Grants in force, by agent.
 */
active: Array<AgentGrants>, 
/**
 * Grants that ended (revoked or expired), newest first.
 */
ended: Array<GrantView>, };

export type Device = { 
/**
 * The key's thumbprint.
 */
jkt: string, 
/**
 * Its short fingerprint, as the other screens show keys.
 */
fingerprint: string, 
/**
 * The device's name, as it gave it at enrollment.
 */
device: string, 
/**
 * When the key was first enrolled (unix seconds).
 */
enrolled_at: number, 
/**
 * When the broker last accepted something the key signed; `None`
 * when never.
 */
last_used_at: number | null, 
/**
 * When its current binding lapses (unix seconds).
 */
expires_at: number, 
/**
 * Whether it is the key of the user signed in on this computer.
 */
this_device: boolean, };

export type RevokePreview = { 
/**
 * The grant.
 */
grant: GrantView, 
/**
 * The sub-delegations beneath it still in force, which fall with it.
 */
falls: Array<GrantView>, 
/**
 * Requests waiting in the inbox from sub-agents under it.
 */
pending_requests: Array<string>, };

export type NarrowPreview = { 
/**
 * The grant, and what falls with it (its sub-delegations) once it is
 * revoked.
 */
revoke: RevokePreview, 
/**
 * The scopes the new grant keeps: each with only its used actions.
 */
keeps: Array<ScopeView>, 
/**
 * The actions dropped, in the catalog's words (else `type: action`).
 */
drops: Array<string>, };

export type StoredReissue = { 
/**
 * The new grant's id.
 */
token_id: string, 
/**
 * The request it answers.
 */
request_id: string, 
/**
 * The grant it replaces.
 */
replaces: string, 
/**
 * The revocation of that grant.
 */
revocation_id: string, 
/**
 * The new grant.
 */
token: string, 
/**
 * When it was signed.
 */
reissued_at: number, 
/**
 * How many deliveries were tried.
 */
attempts: number, 
/**
 * When the broker accepted it.
 */
delivered_at: number | null, 
/**
 * The broker's code, if it refused the grant (or its revocation) for
 * good.
 */
refused_code: string | null, };

export type Narrowed = { 
/**
 * The revocation of the old grant.
 */
revocation: StoredRevocation, 
/**
 * The new grant.
 */
reissue: StoredReissue, };

export type AgentChoice = { 
/**
 * Its id.
 */
agent: string, 
/**
 * Its fingerprint.
 */
fingerprint: string, 
/**
 * Its self-asserted name, if it ever asked the user.
 */
name: string | null, };

export type ReceiptStatus = "verified" | "failed";

export type ActivityRow = { 
/**
 * Its place in the history.
 */
seq: number, 
/**
 * The receipt's token id.
 */
id: string, 
/**
 * The grant it names.
 */
grant_id: string, 
/**
 * The agent that signed it: its id (a thumbprint URI).
 */
agent: string, 
/**
 * The agent's fingerprint, for people.
 */
agent_fingerprint: string, 
/**
 * The name the agent gave itself when it asked, if it ever asked.
 */
agent_name: string | null, 
/**
 * For an agent that holds its grant from another agent: the name that
 * agent gave itself when it asked, if it ever asked.
 */
delegated_by: string | null, 
/**
 * The action's type.
 */
kind: string, 
/**
 * What it was done to.
 */
target: string, 
/**
 * The agent's one-line summary.
 */
summary: string, 
/**
 * Why it decided to.
 */
rationale: string | null, 
/**
 * `succeeded`, `failed` or `refused`.
 */
outcome: string, 
/**
 * When it acted (the agent's clock).
 */
at: number, 
/**
 * When the broker accepted it: the time it was checked at.
 */
received_at: number, 
/**
 * Whether it verified.
 */
status: ReceiptStatus, 
/**
 * The rule it broke, if it failed.
 */
error: string | null, 
/**
 * When the user reported it.
 */
reported_at: number | null, 
/**
 * For a witness receipt, the thumbprint of the resource server's key
 * that signed it (the broker trusts it as that resource's witness);
 * the agent is then the one whose call it saw.
 */
witness: string | null, 
/**
 * The W3C trace id the call carried, for a witness receipt.
 */
trace: string | null, };

export type ActivityFilter = { 
/**
 * Only this agent's (its id).
 */
agent?: string, 
/**
 * Only those made under this grant.
 */
grant?: string, 
/**
 * Only this action type.
 */
kind?: string, 
/**
 * Only this outcome.
 */
outcome?: string, 
/**
 * Only verified or only failed ones.
 */
status?: ReceiptStatus, 
/**
 * Acted at or after (unix seconds).
 */
from?: number, 
/**
 * Acted before (unix seconds).
 */
to?: number, 
/**
 * Words in the summary or the rationale (all of them, as prefixes).
 */
text?: string, 
/**
 * The page after this row: the last row's `seq`.
 */
after?: number, 
/**
 * How many rows, at most 1000; 200 when unset.
 */
limit?: number, };

export type StepView = { 
/**
 * `intent`, `interpretation`, `decision`, `action` or `missing`.
 */
step: string, 
/**
 * Who: the user, or the agent's name or fingerprint.
 */
who: string, 
/**
 * The agent's fingerprint, for agents.
 */
fingerprint: string | null, 
/**
 * What: the intent, the purpose, or the action's summary.
 */
text: string, 
/**
 * More: the rationale, who delegated, the outcome.
 */
detail: string | null, 
/**
 * The token behind the step (a grant or a receipt), if known.
 */
token_id: string | null, 
/**
 * Whether that token's signature verified here.
 */
signature: ReceiptStatus, };

export type AttributionView = { 
/**
 * The receipt explained.
 */
receipt: ActivityRow, 
/**
 * The steps, intent first.
 */
steps: Array<StepView>, 
/**
 * Whether every grant and receipt referred to was known.
 */
complete: boolean, };

export type ReportInput = { 
/**
 * What was wrong, in the user's words.
 */
note: string | null, 
/**
 * Also revoke the grant the action was taken under.
 */
revoke: boolean, };

export type ExportFormat = "jsonl" | "csv";

export type Exported = { 
/**
 * The file chosen in the save dialog.
 */
path: string, 
/**
 * How many records it holds.
 */
records: number, };

export type Tier = { "tier": "standard" } | { "tier": "once" } | { "tier": "lease", 
/**
 * How long, 1 to [`MAX_LEASE_MINUTES`] (and at most what was asked).
 */
minutes: number, } | { "tier": "rule", 
/**
 * How long the rule stands, 1 to [`MAX_RULE_DAYS`].
 */
days: number, };

export type CallView = { 
/**
 * Its id at the broker.
 */
id: string, 
/**
 * The agent's name, as it gave it when it asked the user before.
 */
agent_name: string | null, 
/**
 * The agent key's fingerprint.
 */
agent_fingerprint: string, 
/**
 * The method.
 */
method: string, 
/**
 * The URI, with its query.
 */
uri: string, 
/**
 * The body as text: JSON pretty-printed from the very bytes that are
 * hashed, other UTF-8 as it is; `None` for a body that is not text.
 */
body_text: string | null, 
/**
 * The body's length in bytes.
 */
body_bytes: number, 
/**
 * base64url SHA-256 of the body: what the confirmation signs.
 */
body_hash: string, 
/**
 * The agent's own account of the call.
 */
summary: string, 
/**
 * What the agent's grant allows, the scopes that ask for confirmation
 * among them.
 */
scopes: Array<ScopeView>, 
/**
 * When it arrived.
 */
received_at: number, 
/**
 * When it lapses.
 */
expires_at: number, };

export type CodeCheck = { 
/**
 * Whether it was the agent's code: approving is now possible.
 */
matched: boolean, 
/**
 * How many more wrong codes deny the request.
 */
misses_left: number, 
/**
 * Whether this miss denied (and flagged) the request.
 */
denied: boolean, };

export type RulesView = { 
/**
 * The rules, newest first, ended ones included.
 */
rules: Array<RuleView>, 
/**
 * The blocks, newest first, with how many requests each refused.
 */
blocks: Array<BlockItem>, };

export type Settings = { 
/**
 * The organization's broker (`https://`, or `http://` to this
 * machine); `None`: the one the app was started with, or one hosted
 * in the app.
 */
broker_url: string | null, 
/**
 * The organization's OpenID provider (its issuer URL, under the same
 * rule); `None`: the one the app was started with.
 */
issuer: string | null, 
/**
 * Start Mandate when the user logs in.
 */
start_at_login: boolean, 
/**
 * From the AppImage: show Mandate in the applications menu (an entry
 * for the AppImage's file, [`set_menu_entry`]). A package installs
 * its own entry, so only the AppImage offers this.
 */
menu_entry: boolean, 
/**
 * Desktop notifications: new requests, approvals by a rule, keys
 * enrolled elsewhere, grants about to lapse.
 */
notifications: boolean, 
/**
 * The lease's length offered first when approving "for this task",
 * in minutes.
 */
lease_minutes: number, 
/**
 * The rule's length offered first when approving "always, within
 * these bounds", in days.
 */
rule_days: number, };

export type SettingsView = { 
/**
 * As saved.
 */
settings: Settings, 
/**
 * Why the saved settings could not be read, if they could not: the
 * defaults hold until they are saved again.
 */
unread: string | null, 
/**
 * The provider the app started with.
 */
issuer_in_use: string | null, 
/**
 * The broker the app started with: its URL, or that it is hosted in
 * the app.
 */
broker_in_use: string | null, 
/**
 * Whether the provider or the broker saved differ from those in use:
 * they take effect when the app starts again.
 */
restart_needed: boolean, 
/**
 * The AppImage's file, when the app runs from one: the screen then
 * offers the menu entry.
 */
appimage: string | null, };

export type RuleView = { 
/**
 * The rule's id (its policy token's).
 */
id: string, 
/**
 * Its label: the name the agent gave itself when the rule was made.
 */
label: string | null, 
/**
 * The agent key it is about, as a fingerprint to compare by eye.
 */
agent_fingerprint: string, 
/**
 * The most a request may ask for.
 */
scopes: Array<ScopeView>, 
/**
 * The longest grant it approves, in seconds.
 */
max_lifetime: number, 
/**
 * The deepest delegation it approves.
 */
max_depth: number, 
/**
 * When it was made.
 */
created_at: number, 
/**
 * When it ends by itself.
 */
expires_at: number, 
/**
 * When the user ended it.
 */
ended_at: number | null, 
/**
 * How many requests it approved.
 */
matched: number, 
/**
 * When it last approved one.
 */
last_matched_at: number | null, 
/**
 * The latest requests it approved (at most [`RULE_MATCHES_SHOWN`]),
 * newest first.
 */
recent: Array<RuleMatch>, };

export type RuleMatch = { 
/**
 * Its purpose, as the agent stated it.
 */
purpose: string, 
/**
 * When the rule approved it.
 */
at: number, };

export type RuleFit = { 
/**
 * The rule's id.
 */
rule_id: string, 
/**
 * Its label.
 */
label: string | null, 
/**
 * Each way the request goes past it, in plain language.
 */
differences: Array<string>, };

export type BlockItem = { 
/**
 * The agent key's thumbprint.
 */
agent: string, 
/**
 * The id of the user's signed policy.
 */
policy_id: string, 
/**
 * The signed policy (`mandate-policy+jwt`, effect `deny`).
 */
policy: string, 
/**
 * The user's name for it.
 */
label: string | null, 
/**
 * When the broker stored it.
 */
created_at: number, 
/**
 * When it ends.
 */
expires_at: number, 
/**
 * How many requests it refused.
 */
refusals: number, };
