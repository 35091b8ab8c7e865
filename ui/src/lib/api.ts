// The app's commands and events. Every string an agent supplied arrives
// here as data and is rendered as text (Svelte's `{...}`), never as HTML.

import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';

export type Risk = 'low' | 'medium' | 'unknown' | 'high';

export interface Account {
  principal: string;
  name: string | null;
  email: string | null;
  key_fingerprint: string;
  broker_url: string;
}

export interface AppState {
  account: Account | null;
  issuer: string;
  broker_url: string;
}

export interface InboxRow {
  id: string;
  agent_name: string;
  fingerprint: string;
  interpretation: string;
  risk: Risk;
  hops: number;
  suspicious_name: boolean;
  received_at: number;
  expires_at: number;
}

export interface ActionView {
  name: string;
  label: string | null;
  risk: Risk;
  irreversible: boolean;
}

export interface ScopeView {
  kind: string;
  label: string | null;
  actions: ActionView[];
  locations: string[];
  identifier: string | null;
  max_calls: number | null;
  max_amount: string | null;
  risk: Risk;
  raw: string;
}

export interface Hop {
  role: 'user' | 'agent' | 'sub-agent';
  who: string;
  fingerprint: string | null;
  purpose: string | null;
  scopes: string[];
  adds: string[];
  loses: string[];
}

export interface StoredDecision {
  request_id: string;
  kind: 'grant' | 'denial';
  token: string;
  token_id: string;
  decided_at: number;
  attempts: number;
  delivered_at: number | null;
  refused_code: string | null;
}

export interface RequestDetail {
  id: string;
  state: 'pending' | 'approved' | 'denied' | 'expired';
  received_at: number;
  expires_at: number;
  agent: {
    id: string;
    fingerprint: string;
    name: string;
    publisher: string | null;
    version: string | null;
    known: boolean;
    warnings: string[];
  };
  binding_code: string;
  intent: string | null;
  interpretation: string;
  scopes: ScopeView[];
  risk: Risk;
  chain: Hop[];
  lifetime: number;
  max_depth: number;
  decision: StoredDecision | null;
}

export interface HistoryEvent {
  seq: number;
  at: number;
  kind: string;
  subject: string;
  token: string | null;
  prev: string;
  hash: string;
}

export interface HistoryView {
  decisions: StoredDecision[];
  events: HistoryEvent[];
  verified: { Ok: { events: number; head: string } } | { Err: CommandError };
}

export interface ScopeChoice {
  index: number;
  actions: string[];
}

export interface ApproveInput {
  scopes: ScopeChoice[] | null;
  lifetime: number | null;
  max_depth: number | null;
}

export type Update =
  | { type: 'inbox'; pending: number; new: string[] }
  | { type: 'delivery'; request_id: string; delivered: boolean }
  | { type: 'connection'; online: boolean };

export interface CommandError {
  code: string;
  message: string;
}

/** A command's failure, with the engine's stable code. */
export class AppError extends Error {
  code: string;
  constructor(e: CommandError) {
    super(e.message);
    this.code = e.code;
  }
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (e) {
    const err = e as Partial<CommandError>;
    throw new AppError({
      code: typeof err?.code === 'string' ? err.code : 'app.error',
      message: typeof err?.message === 'string' ? err.message : String(e),
    });
  }
}

export const api = {
  state: () => call<AppState>('app_state'),
  signIn: () => call<Account>('sign_in'),
  signOut: () => call<void>('sign_out'),
  inbox: () => call<InboxRow[]>('inbox'),
  detail: (id: string) => call<RequestDetail>('detail', { id }),
  approve: (id: string, input: ApproveInput) => call<RequestDetail>('approve', { id, input }),
  deny: (id: string, reason: string | null) => call<RequestDetail>('deny', { id, reason }),
  history: () => call<HistoryView>('history'),
  onUpdate: (f: (u: Update) => void): Promise<UnlistenFn> =>
    listen<Update>('mandate://update', (e) => f(e.payload)),
};

/** "in 5 min", "2 h ago": a time relative to now, in words. */
export function relative(unixSeconds: number, now = Date.now() / 1000): string {
  const d = Math.round(unixSeconds - now);
  const abs = Math.abs(d);
  const [n, unit] =
    abs < 60 ? [abs, 's'] : abs < 3600 ? [Math.round(abs / 60), 'min'] : abs < 86400 ? [Math.round(abs / 3600), 'h'] : [Math.round(abs / 86400), 'd'];
  return d >= 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
}

/** A lifetime in seconds, in words. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds} seconds`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} minutes`;
  if (seconds < 86400) return `${Math.round(seconds / 360) / 10} hours`;
  return `${Math.round(seconds / 8640) / 10} days`;
}
