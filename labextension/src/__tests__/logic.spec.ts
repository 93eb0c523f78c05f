import {
  DEFAULT_SETTINGS,
  IHistoryPage,
  IRun,
  changed,
  copyText,
  historyParams,
  newCellParams,
  optionsLine,
  outputSummary,
  pageCount,
  readSettings,
  verdictsLine,
  when
} from '../logic';

function run(overrides: Partial<IRun> = {}): IRun {
  return {
    id: 1,
    created: 1_700_000_000,
    kind: 'text',
    model: 'tiny-text',
    prompt: 'Tell a story',
    options: { seed: 3, temperature: 0.5, stop: [] },
    seed: 3,
    status: 'ok',
    error: null,
    cached: false,
    texts: ['Once upon a time'],
    images: [],
    withheld: {},
    verdicts: [],
    decision: null,
    notebook: 'story.ipynb',
    ...overrides
  };
}

describe('historyParams', () => {
  const base = { search: '', kind: '' as const, model: '', status: '', notebook: null, page: 1, size: 20 };

  it('leaves empty filters out', () => {
    expect(historyParams(base)).toBe('page=1&size=20');
  });

  it('encodes search, filters and the notebook', () => {
    const params = new URLSearchParams(
      historyParams({ ...base, search: '  a&b=c ', kind: 'image', model: 'my model', notebook: 'dir/é x.ipynb', page: 3 })
    );
    expect(params.get('q')).toBe('a&b=c');
    expect(params.get('kind')).toBe('image');
    expect(params.get('model')).toBe('my model');
    expect(params.get('notebook')).toBe('dir/é x.ipynb');
    expect(params.get('page')).toBe('3');
  });

  it('never asks for page 0', () => {
    expect(historyParams({ ...base, page: 0 })).toContain('page=1');
  });
});

describe('settings', () => {
  it('bounds what a hand-edited file holds', () => {
    const s = readSettings({ historyPageSize: 10_000, safetyLevel: 'lax', defaultTextModel: ' mine ', refreshSeconds: -3 });
    expect(s.historyPageSize).toBe(200);
    expect(s.safetyLevel).toBe('');
    expect(s.defaultTextModel).toBe('mine');
    expect(s.refreshSeconds).toBe(0);
    expect(readSettings({})).toEqual(DEFAULT_SETTINGS);
  });

  it('puts the default model and safety level on new cells', () => {
    const s = readSettings({ defaultImageModel: 'sd-mini', safetyLevel: 'strict' });
    expect(newCellParams('image', s)).toBe('kind=image&model=sd-mini&safety=strict');
    expect(newCellParams('text', s)).toBe('kind=text&safety=strict');
    expect(newCellParams('text', s, 'other')).toBe('kind=text&model=other&safety=strict');
  });
});

describe('entries', () => {
  it('writes options seed first and skips empty ones', () => {
    expect(optionsLine({ temperature: 0.5, seed: 3, stop: [], top_p: null, chat: false, style: 'x' })).toBe(
      'seed 3 · style "x" · temperature 0.5'
    );
  });

  it('summarises verdicts that did something', () => {
    expect(
      verdictsLine([
        { check: 'pii', category: 'privacy', score: null, action: 'allow' },
        { check: 'moderation', category: 'violent_crimes', score: 0.712, action: 'review' }
      ])
    ).toBe('violent_crimes: review (0.71)');
  });

  it('never shows a withheld text', () => {
    const held = run({ texts: [null], withheld: { '0': 'violent crimes' } });
    expect(outputSummary(held)).toBe('withheld: violent crimes');
    expect(copyText(held, n => n)).toBe('');
    expect(outputSummary(run({ texts: ['x'.repeat(300)] }), 10)).toBe('xxxxxxxxx…');
  });

  it('copies image URLs for image runs', () => {
    const image = run({ kind: 'image', texts: [], images: ['a.png', null, 'b.png'] });
    expect(copyText(image, n => `/img/${n}`)).toBe('/img/a.png\n/img/b.png');
  });

  it('dates older runs, times today’s', () => {
    const now = new Date(2026, 10, 29, 15, 0, 0);
    expect(when(new Date(2026, 10, 29, 9, 5, 7).getTime() / 1000, now)).toBe('09:05:07');
    expect(when(new Date(2026, 10, 2, 9, 5, 7).getTime() / 1000, now)).toBe('2026-11-02 09:05');
  });

  it('counts pages', () => {
    expect(pageCount(0, 20)).toBe(1);
    expect(pageCount(41, 20)).toBe(3);
  });
});

describe('changed', () => {
  const page = (items: IRun[], total = items.length): IHistoryPage => ({ items, total, page: 1, size: 20 });

  it('notices a new run and a decision, not an identical page', () => {
    const shown = page([run({ id: 2 }), run({ id: 1 })]);
    expect(changed(shown, page([run({ id: 2 }), run({ id: 1 })]))).toBe(false);
    expect(changed(shown, page([run({ id: 3 }), run({ id: 2 })], 3))).toBe(true);
    expect(
      changed(shown, page([run({ id: 2, decision: { decision: 'approved', created: 1, note: null } }), run({ id: 1 })]))
    ).toBe(true);
    expect(changed(null, shown)).toBe(true);
  });
});
