/**
 * The sidebar: Models, History and Review tabs (Lumino widgets with plain DOM; the logic they
 * use is in logic.ts). Cells are inserted through the `insertCell` callback (index.ts).
 */
import { Clipboard } from '@jupyterlab/apputils';
import { Panel, TabPanel, Widget } from '@lumino/widgets';

import { GenmagicAPI } from './api';
import {
  DEFAULT_SETTINGS,
  IHistoryPage,
  IHistoryQuery,
  IModel,
  IRun,
  ISettings,
  Kind,
  changed,
  copyText,
  historyParams,
  newCellParams,
  optionsLine,
  outputSummary,
  pageCount,
  verdictsLine,
  when
} from './logic';

export interface IHost {
  api: GenmagicAPI;
  /** Insert `source` as a code cell below the active one; false when no notebook is open. */
  insertCell(source: string): boolean;
  /** The current notebook's path (relative to the server root), or null. */
  notebookPath(): string | null;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') {
      node.className = value;
    } else {
      node.setAttribute(key, value);
    }
  }
  node.append(...children);
  return node;
}

function button(label: string, onClick: () => void, cls = ''): HTMLButtonElement {
  const b = el('button', { class: `jp-Button jp-mod-styled ${cls}`.trim(), type: 'button' }, label);
  b.addEventListener('click', onClick);
  return b;
}

class Tab extends Widget {
  constructor(
    protected host: IHost,
    title: string,
    id: string
  ) {
    super();
    this.id = id;
    this.title.label = title;
    this.addClass('gm-Tab');
    this.status = el('div', { class: 'gm-Status', role: 'status' });
  }

  protected say(message: string, error = false): void {
    this.status.textContent = message;
    this.status.classList.toggle('gm-mod-error', error);
  }

  protected insert(source: string): void {
    if (this.host.insertCell(source)) {
      this.say('Inserted a cell below the active one.');
    } else {
      this.say('Open a notebook first: the cell goes below its active cell.', true);
    }
  }

  protected status: HTMLDivElement;
}

export class ModelsTab extends Tab {
  settings: ISettings = DEFAULT_SETTINGS;

  constructor(host: IHost) {
    super(host, 'Models', 'genmagic-models');
    const actions = el(
      'div',
      { class: 'gm-Actions' },
      button('Insert %%generate cell', () => void this.newCell('text'), 'gm-insert-text'),
      button('Insert %%imagine cell', () => void this.newCell('image'), 'gm-insert-image'),
      button('Refresh', () => void this.refresh())
    );
    this.table = el('table', { class: 'gm-Models' });
    this.node.append(actions, this.status, this.table);
  }

  async newCell(kind: Kind, model?: string): Promise<void> {
    try {
      const { cell } = await this.host.api.get<{ cell: string }>('cell', newCellParams(kind, this.settings, model));
      this.insert(cell);
    } catch (err) {
      this.say(String(err), true);
    }
  }

  async refresh(): Promise<void> {
    try {
      const { models } = await this.host.api.get<{ models: IModel[] }>('models');
      this.render(models);
    } catch (err) {
      this.say(`Models: ${err}`, true);
    }
  }

  private render(models: IModel[]): void {
    const head = el('tr', {}, ...['alias · source', 'kind', 'backend', 'loaded', ''].map(h => el('th', {}, h)));
    const rows = models.map(m => {
      const alias = el('td', { class: 'gm-alias', title: m.description }, el('span', { class: 'gm-name' }, m.alias));
      if (m.default) {
        alias.append(el('span', { class: 'gm-Badge', title: `the default ${m.kind} model` }, 'default'));
      }
      alias.append(el('div', { class: 'gm-source', title: m.source }, m.source));
      return el(
        'tr',
        { 'data-alias': m.alias },
        alias,
        el('td', {}, m.kind),
        el('td', {}, m.backend),
        el('td', { class: 'gm-loaded', title: 'a running kernel has run it (history)' }, m.loaded ? '●' : '○'),
        el('td', {}, button('Insert', () => void this.newCell(m.kind, m.alias), 'gm-small'))
      );
    });
    this.table.replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
  }

  private table: HTMLTableElement;
}

function runEntry(host: IHost, run: IRun, actions: HTMLElement[]): HTMLElement {
  const meta = [run.model, when(run.created), run.status !== 'ok' ? run.status : '', run.cached ? 'cached' : '']
    .filter(Boolean)
    .join(' · ');
  const entry = el(
    'div',
    { class: `gm-Entry gm-kind-${run.kind}`, 'data-run': String(run.id) },
    el('div', { class: 'gm-Prompt', title: run.prompt }, run.prompt),
    el('div', { class: 'gm-Meta' }, `#${run.id} · ${meta}`),
    el('div', { class: 'gm-Options' }, optionsLine(run.options))
  );
  const verdicts = verdictsLine(run.verdicts);
  if (verdicts) {
    entry.append(el('div', { class: 'gm-Verdicts' }, `safety: ${verdicts}`));
  }
  if (run.decision) {
    entry.append(el('div', { class: 'gm-Decision' }, `${run.decision.decision}${run.decision.note ? `: ${run.decision.note}` : ''}`));
  }
  if (run.kind === 'image') {
    const gallery = el('div', { class: 'gm-Gallery' });
    run.images.forEach((name, i) => {
      if (name === null) {
        gallery.append(el('div', { class: 'gm-Withheld', title: run.withheld[String(i)] ?? '' }, 'withheld'));
      } else {
        const img = el('img', { src: host.api.imageUrl(name, 128), alt: run.prompt, loading: 'lazy' });
        img.addEventListener('error', () =>
          img.parentElement?.replaceWith(el('div', { class: 'gm-Withheld', title: 'the image file is gone from the store' }, 'missing'))
        );
        gallery.append(el('a', { href: host.api.imageUrl(name), target: '_blank', rel: 'noopener' }, img));
      }
    });
    entry.append(gallery);
  } else {
    entry.append(el('div', { class: 'gm-Output' }, outputSummary(run)));
  }
  entry.append(el('div', { class: 'gm-Actions' }, ...actions));
  return entry;
}

export class HistoryTab extends Tab {
  constructor(host: IHost) {
    super(host, 'History', 'genmagic-history');
    this.search = el('input', { type: 'search', placeholder: 'Search prompts and outputs', class: 'gm-Search' });
    this.kind = el('select', { class: 'gm-Kind', title: 'kind' });
    for (const [value, label] of [['', 'all'], ['text', 'text'], ['image', 'images']]) {
      this.kind.append(el('option', { value }, label));
    }
    this.mine = el('input', { type: 'checkbox', class: 'gm-Mine' });
    let timer = 0;
    this.search.addEventListener('input', () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(() => this.go(1), 250);
    });
    this.kind.addEventListener('change', () => this.go(1));
    this.mine.addEventListener('change', () => this.go(1));
    this.list = el('div', { class: 'gm-List' });
    this.pager = el('div', { class: 'gm-Pager' });
    this.node.append(
      el('div', { class: 'gm-Filters' }, this.search, this.kind, el('label', {}, this.mine, 'this notebook only')),
      this.status,
      this.list,
      this.pager
    );
  }

  size = DEFAULT_SETTINGS.historyPageSize;

  query(): IHistoryQuery {
    return {
      search: this.search.value,
      kind: this.kind.value as IHistoryQuery['kind'],
      model: '',
      status: '',
      notebook: this.mine.checked ? this.host.notebookPath() : null,
      page: this.page,
      size: this.size
    };
  }

  go(page: number): void {
    this.page = page;
    void this.refresh(true);
  }

  /** Load the page; with `force` false (polling) the list is redrawn only when it changed. */
  async refresh(force = true): Promise<void> {
    if (this.mine.checked && this.host.notebookPath() === null) {
      this.shown = null;
      this.list.replaceChildren();
      this.pager.replaceChildren();
      this.say('Open a notebook to see its runs (or untick "this notebook only").');
      return;
    }
    try {
      const fresh = await this.host.api.get<IHistoryPage>('history', historyParams(this.query()));
      if (force || changed(this.shown, fresh)) {
        this.render(fresh);
      }
    } catch (err) {
      this.say(`History: ${err}`, true);
    }
  }

  private render(page: IHistoryPage): void {
    this.shown = page;
    const entries = page.items.map(run =>
      runEntry(this.host, run, [
        button('Re-run', () => void this.rerun(run), 'gm-rerun'),
        button('Copy', () => this.copy(run), 'gm-copy')
      ])
    );
    this.list.replaceChildren(...(entries.length ? entries : [el('div', { class: 'gm-Empty' }, 'No runs match.')]));
    this.list.classList.toggle('gm-mod-images', this.kind.value === 'image');
    const pages = pageCount(page.total, page.size);
    const prev = button('‹', () => this.go(this.page - 1));
    const next = button('›', () => this.go(this.page + 1));
    prev.disabled = this.page <= 1;
    next.disabled = this.page >= pages;
    this.pager.replaceChildren(prev, el('span', {}, `page ${this.page} of ${pages} · ${page.total} runs`), next);
    this.say('');
  }

  private async rerun(run: IRun): Promise<void> {
    try {
      const { cell, unreproducible } = await this.host.api.get<{ cell: string; unreproducible: string[] }>(
        `history/${run.id}/cell`
      );
      this.insert(cell);
      if (unreproducible.length) {
        this.say(`Inserted, without what a cell cannot carry: ${unreproducible.join(', ')}`, true);
      }
    } catch (err) {
      this.say(String(err), true);
    }
  }

  private copy(run: IRun): void {
    Clipboard.copyToSystem(copyText(run, name => new URL(this.host.api.imageUrl(name), location.href).href));
    this.say(`Copied the output of #${run.id}.`);
  }

  private search: HTMLInputElement;
  private kind: HTMLSelectElement;
  private mine: HTMLInputElement;
  private list: HTMLDivElement;
  private pager: HTMLDivElement;
  private page = 1;
  private shown: IHistoryPage | null = null;
}

export class ReviewTab extends Tab {
  constructor(host: IHost) {
    super(host, 'Review', 'genmagic-review');
    this.list = el('div', { class: 'gm-List' });
    this.node.append(
      el('div', { class: 'gm-Hint' }, 'Outputs the safety checks held back. Your decision is written to history; the kernel holding the result sees it.'),
      this.status,
      this.list
    );
  }

  /** The number of runs waiting (for the tab's title). */
  count = 0;

  async refresh(): Promise<void> {
    try {
      const { items } = await this.host.api.get<{ items: IRun[] }>('review');
      this.count = items.length;
      this.title.label = items.length ? `Review (${items.length})` : 'Review';
      if (JSON.stringify(items.map(i => i.id)) !== this.shownIds) {
        this.shownIds = JSON.stringify(items.map(i => i.id));
        this.render(items);
      }
    } catch (err) {
      this.say(`Review: ${err}`, true);
    }
  }

  private render(items: IRun[]): void {
    const entries = items.map(run => {
      const reasons = Object.values(run.withheld).join('; ');
      const note = el('input', { type: 'text', placeholder: 'note (optional)', class: 'gm-Note' });
      const entry = runEntry(this.host, { ...run, withheld: {} }, [
        button('Approve', () => void this.decide(run, 'approve', note.value), 'gm-approve jp-mod-accept'),
        button('Reject', () => void this.decide(run, 'reject', note.value), 'gm-reject jp-mod-warn'),
        note
      ]);
      entry.classList.add('gm-mod-held');
      entry.insertBefore(el('div', { class: 'gm-Reason' }, `held: ${reasons}`), entry.children[2]);
      return entry;
    });
    this.list.replaceChildren(...(entries.length ? entries : [el('div', { class: 'gm-Empty' }, 'Nothing waits for review.')]));
  }

  private async decide(run: IRun, decision: 'approve' | 'reject', note: string): Promise<void> {
    try {
      await this.host.api.post(`review/${run.id}`, { decision, note: note || null });
      this.say(`#${run.id} ${decision === 'approve' ? 'approved' : 'rejected'}.`);
      this.shownIds = '';
      await this.refresh();
    } catch (err) {
      this.say(String(err), true);
    }
  }

  private list: HTMLDivElement;
  private shownIds = '';
}

/** The sidebar: three tabs, refreshed while visible (every `refreshSeconds`, 0: only on demand). */
export class GenmagicSidebar extends Panel {
  constructor(host: IHost) {
    super();
    this.id = 'genmagic-sidebar';
    this.addClass('gm-Sidebar');
    this.models = new ModelsTab(host);
    this.history = new HistoryTab(host);
    this.review = new ReviewTab(host);
    this.tabs = new TabPanel();
    this.tabs.addClass('gm-Tabs');
    this.tabs.addWidget(this.models);
    this.tabs.addWidget(this.history);
    this.tabs.addWidget(this.review);
    this.tabs.currentChanged.connect(() => void this.refresh());
    this.addWidget(this.tabs);
  }

  readonly models: ModelsTab;
  readonly history: HistoryTab;
  readonly review: ReviewTab;

  applySettings(settings: ISettings): void {
    this.settings = settings;
    this.models.settings = settings;
    this.history.size = settings.historyPageSize;
    this.schedule();
    if (this.isVisible) {
      void this.refresh();
    }
  }

  async refresh(force = true): Promise<void> {
    const current = this.tabs.currentWidget;
    if (current === this.models) {
      await this.models.refresh();
    } else if (current === this.history) {
      await this.history.refresh(force);
    }
    await this.review.refresh();
  }

  protected onAfterShow(): void {
    void this.refresh();
    this.schedule();
  }

  protected onAfterHide(): void {
    window.clearInterval(this.timer);
  }

  private schedule(): void {
    window.clearInterval(this.timer);
    if (this.settings.refreshSeconds > 0 && this.isVisible) {
      this.timer = window.setInterval(() => void this.refresh(false), this.settings.refreshSeconds * 1000);
    }
  }

  private tabs: TabPanel;
  private settings: ISettings = DEFAULT_SETTINGS;
  private timer = 0;
}
