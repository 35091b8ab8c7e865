// The app's commands and events. Every string an agent supplied arrives
// here as data and is rendered as text (Svelte's `{...}`), never as HTML.

import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';

import type {
  Account,
  ActivityFilter,
  ActivityRow,
  AgentChoice,
  AppState,
  ApproveInput,
  AttributionView,
  CallView,
  CodeCheck,
  CommandError,
  NarrowPreview,
  Narrowed,
  Delegations,
  Settings,
  SettingsView,
  Device,
  ExportFormat,
  Exported,
  HistoryView,
  InboxChanges,
  ReportInput,
  RequestDetail,
  RevokePreview,
  RulesView,
  StoredRevocation,
  Update,
} from './bindings';

// The types of everything the commands return are generated from the Rust
// types (src-tauri/src/bindings.rs).
export type * from './bindings';

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
  inbox: (held: string[]) => call<InboxChanges>('inbox', { held }),
  detail: (id: string) => call<RequestDetail>('detail', { id }),
  approve: (id: string, input: ApproveInput) => call<RequestDetail>('approve', { id, input }),
  deny: (id: string, reason: string | null, always = false) => call<RequestDetail>('deny', { id, reason, always }),
  matchCode: (id: string, code: string) => call<CodeCheck>('match_code', { id, code }),
  calls: () => call<CallView[]>('calls'),
  confirmCall: (id: string) => call<CallView[]>('confirm_call', { id }),
  refuseCall: (id: string, reason: string | null) => call<CallView[]>('refuse_call', { id, reason }),
  rules: () => call<RulesView>('rules'),
  settings: () => call<SettingsView>('settings'),
  saveSettings: (settings: Settings) => call<SettingsView>('save_settings', { settings }),
  restart: () => call<null>('restart'),
  endRule: (id: string) => call<RulesView>('end_rule', { id }),
  liftBlock: (agent: string) => call<RulesView>('lift_block', { agent }),
  history: () => call<HistoryView>('history'),
  /** `refresh`: read the broker's list of grants first (else the history's alone). */
  delegations: (refresh = true) => call<Delegations>('delegations', { refresh }),
  keys: () => call<Device[]>('keys'),
  removeKey: (jkt: string) => call<null>('remove_key', { jkt }),
  revokePreview: (id: string) => call<RevokePreview>('revoke_preview', { id }),
  narrowPreview: (id: string) => call<NarrowPreview>('narrow_preview', { id }),
  narrow: (id: string) => call<Narrowed>('narrow', { id }),
  revoke: (grants: string[], reason: string | null) => call<StoredRevocation>('revoke', { grants, reason }),
  revokeAll: () => call<StoredRevocation | null>('revoke_all'),
  activity: (filter: ActivityFilter) => call<ActivityRow[]>('activity', { filter }),
  activityAgents: () => call<AgentChoice[]>('activity_agents'),
  attribution: (id: string) => call<AttributionView>('attribution', { id }),
  report: (id: string, input: ReportInput) => call<StoredRevocation | null>('report', { id, input }),
  export: (filter: ActivityFilter, format: ExportFormat) => call<Exported | null>('export', { filter, format }),
  onUpdate: (f: (u: Update) => void): Promise<UnlistenFn> =>
    listen<Update>('mandate://update', (e) => f(e.payload)),
};

/** "in 5 min", "2 h ago": a time relative to now, in words. */
/** The lease lengths the app offers, in minutes (settings::LEASE_CHOICES). */
export const LEASE_CHOICES = [15, 30, 60, 120, 240, 480];
/** The rule lengths the app offers, in days (settings::RULE_CHOICES). */
export const RULE_CHOICES = [7, 30, 90];

export function relative(unixSeconds: number, now = Date.now() / 1000): string {
  const d = Math.round(unixSeconds - now);
  const abs = Math.abs(d);
  if (abs < 1) return 'just now';
  const [n, unit] =
    abs < 60 ? [abs, 's'] : abs < 3600 ? [Math.round(abs / 60), 'min'] : abs < 86400 ? [Math.round(abs / 3600), 'h'] : [Math.round(abs / 86400), 'd'];
  return d >= 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
}

/** A lifetime in seconds, in words. */
export function duration(seconds: number): string {
  const count = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (seconds < 60) return count(seconds, 'second');
  if (seconds < 3600) return count(Math.round(seconds / 60), 'minute');
  if (seconds < 86400) return count(Math.round(seconds / 360) / 10, 'hour');
  return count(Math.round(seconds / 8640) / 10, 'day');
}
