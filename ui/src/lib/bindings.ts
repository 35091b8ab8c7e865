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
new: Array<string>, } | { "type": "delivery", 
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
delivered: boolean, } | { "type": "connection", 
/**
 * Whether it is up.
 */
online: boolean, };

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
 * What it says it will do.
 */
interpretation: string, 
/**
 * The highest risk among its scopes.
 */
risk: Risk, 
/**
 * How many agents stand between the user and the requester.
 */
hops: number, 
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
 * The code the agent shows its user, to compare.
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
 * From the user to the agent asking, root first.
 */
chain: Array<Hop>, 
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
decision: StoredDecision | null, };

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
irreversible: boolean, };

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
refused_code: string | null, };

export type ScopeChoice = { 
/**
 * The scope's index in the request.
 */
index: number, 
/**
 * The actions kept; at least one.
 */
actions: Array<string>, };

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
max_depth: number | null, };

export type HistoryCheck = { "status": "intact", 
/**
 * How many events the chain holds.
 */
events: number, 
/**
 * The head's hash.
 */
head: string, } | { "status": "broken", 
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
 * `revocation.signed`, `revocation.delivered`, `revocation.refused`.
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
