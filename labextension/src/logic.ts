/**
 * The sidebar's logic as plain functions (no DOM, no JupyterLab), unit-tested with jest:
 * query strings for the server's API, what an entry shows, paging, settings.
 */

export type Kind = 'text' | 'image';

export interface IModel {
  alias: string;
  kind: Kind;
  backend: string;
  source: string;
  origin: string;
  description: string;
  adapters: number;
  default: boolean;
  loaded: boolean;
}

export interface IVerdict {
  check: string;
  category: string;
  score: number | null;
  action: string;
  stage?: string;
  target?: string;
  reason?: string;
}

export interface IRun {
  id: number;
  created: number;
  kind: Kind;
  model: string;
  prompt: string;
  options: Record<string, unknown>;
  seed: number | null;
  status: string;
  error: string | null;
  cached: boolean;
  texts: (string | null)[];
  images: (string | null)[];
  withheld: Record<string, string>;
  verdicts: IVerdict[];
  decision: { decision: string; created: number; note: string | null } | null;
  notebook: string | null;
}

export interface IHistoryPage {
  items: IRun[];
  total: number;
  page: number;
  size: number;
}

export interface IHistoryQuery {
  search: string;
  kind: '' | Kind;
  model: string;
  status: string;
  notebook: string | null; // the current notebook's path when "this notebook only" is on
  page: number;
  size: number;
}

export interface ISettings {
  defaultTextModel: string;
  defaultImageModel: string;
  safetyLevel: '' | 'off' | 'warn' | 'standard' | 'strict';
  historyPageSize: number;
  refreshSeconds: number;
}

export const DEFAULT_SETTINGS: ISettings = {
  defaultTextModel: '',
  defaultImageModel: '',
  safetyLevel: '',
  historyPageSize: 20,
  refreshSeconds: 5
};

const LEVELS = ['', 'off', 'warn', 'standard', 'strict'];

/** Settings as the Settings Editor gives them, bounded (a hand-edited file may hold anything). */
export function readSettings(raw: Partial<Record<keyof ISettings, unknown>>): ISettings {
  const text = (v: unknown, d: string) => (typeof v === 'string' ? v.trim() : d);
  const int = (v: unknown, d: number, lo: number, hi: number) =>
    typeof v === 'number' && Number.isFinite(v) ? Math.min(hi, Math.max(lo, Math.round(v))) : d;
  const level = text(raw.safetyLevel, '');
  return {
    defaultTextModel: text(raw.defaultTextModel, ''),
    defaultImageModel: text(raw.defaultImageModel, ''),
    safetyLevel: (LEVELS.includes(level) ? level : '') as ISettings['safetyLevel'],
    historyPageSize: int(raw.historyPageSize, DEFAULT_SETTINGS.historyPageSize, 1, 200),
    refreshSeconds: int(raw.refreshSeconds, DEFAULT_SETTINGS.refreshSeconds, 0, 3600)
  };
}

/** The query string of `history` for a query (empty values left out). */
export function historyParams(query: IHistoryQuery): string {
  const params = new URLSearchParams();
  params.set('page', String(Math.max(1, Math.floor(query.page))));
  params.set('size', String(query.size));
  const optional: [string, string | null][] = [
    ['q', query.search.trim()],
    ['kind', query.kind],
    ['model', query.model],
    ['status', query.status],
    ['notebook', query.notebook]
  ];
  for (const [name, value] of optional) {
    if (value) {
      params.set(name, value);
    }
  }
  return params.toString();
}

/** The query string of `cell` for a new cell of `kind`, with the settings' model and safety level. */
export function newCellParams(kind: Kind, settings: ISettings, model?: string): string {
  const params = new URLSearchParams({ kind });
  const chosen = model ?? (kind === 'text' ? settings.defaultTextModel : settings.defaultImageModel);
  if (chosen) {
    params.set('model', chosen);
  }
  if (settings.safetyLevel) {
    params.set('safety', settings.safetyLevel);
  }
  return params.toString();
}

export function pageCount(total: number, size: number): number {
  return Math.max(1, Math.ceil(total / Math.max(1, size)));
}

/** Options as one short line, seed first, unset and false ones left out: "seed 3 · max_new_tokens 20 · temperature 0.5". */
export function optionsLine(options: Record<string, unknown>, skip: string[] = []): string {
  const keys = Object.keys(options).filter(
    k => !skip.includes(k) && ![null, undefined, false].includes(options[k] as any) && !(Array.isArray(options[k]) && (options[k] as unknown[]).length === 0)
  );
  keys.sort((a, b) => (a === 'seed' ? -1 : b === 'seed' ? 1 : a.localeCompare(b)));
  return keys.map(k => `${k} ${formatValue(options[k])}`).join(' · ');
}

function formatValue(value: unknown): string {
  if (Array.isArray(value)) {
    return value.map(v => JSON.stringify(v)).join(', ');
  }
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** The safety verdicts in one line ("violent_crimes: review (0.71)"), or "" when none flagged anything. */
export function verdictsLine(verdicts: IVerdict[]): string {
  return verdicts
    .filter(v => v.action !== 'allow')
    .map(v => `${v.category || v.check}: ${v.action}${typeof v.score === 'number' ? ` (${v.score.toFixed(2)})` : ''}`)
    .join('; ');
}

/** When a run was made: "14:03:27" today, else "2026-11-28 14:03". */
export function when(created: number, now: Date = new Date()): string {
  const date = new Date(created * 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  if (date.toDateString() === now.toDateString()) {
    return `${time}:${pad(date.getSeconds())}`;
  }
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time}`;
}

/** What "Copy" puts on the clipboard: the texts (withheld ones left out), or the image URLs. */
export function copyText(run: IRun, imageUrl: (name: string) => string): string {
  if (run.kind === 'image') {
    return run.images.filter((n): n is string => n !== null).map(imageUrl).join('\n');
  }
  return run.texts.filter((t): t is string => t !== null).join('\n\n');
}

/** A one-line summary of what a run produced, for the list. */
export function outputSummary(run: IRun, max = 200): string {
  if (run.status === 'error' || run.error) {
    return `error: ${run.error ?? run.status}`;
  }
  if (Object.keys(run.withheld).length > 0) {
    return `withheld: ${Object.values(run.withheld).join('; ')}`;
  }
  const text = run.texts.filter((t): t is string => t !== null).join(' ⏐ ');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Whether a fresh first page differs from the one shown (a new run landed, or a decision). */
export function changed(shown: IHistoryPage | null, fresh: IHistoryPage): boolean {
  if (shown === null || shown.total !== fresh.total || shown.items.length !== fresh.items.length) {
    return true;
  }
  return shown.items.some((item, i) => {
    const other = fresh.items[i];
    return other.id !== item.id || JSON.stringify(other.decision) !== JSON.stringify(item.decision);
  });
}
