/**
 * The sidebar in a real JupyterLab: models, an inserted %%generate cell run in the kernel, the new run
 * in History, search, Re-run into the notebook, the %%imagine thumbnails, a review decision. The server's GENMAGIC_HOME was filled by
 * tests/lab_history.py (text and image runs in story.ipynb / other.ipynb, one run held for review).
 * Screenshots go to GENMAGIC_SCREENSHOTS (docs/images/).
 */
import { Page, expect, test } from '@playwright/test';
import * as path from 'path';

const token = process.env.GENMAGIC_LAB_TOKEN ?? '';
const shots = process.env.GENMAGIC_SCREENSHOTS ?? '';

async function screenshot(page: Page, name: string): Promise<void> {
  if (shots) {
    await page.screenshot({ path: path.join(shots, `${name}.png`) });
  }
}

async function openNotebook(page: Page): Promise<void> {
  await page.goto(`lab/tree/story.ipynb?token=${token}`);
  await page.locator('.jp-Notebook').first().waitFor();
  // the sidebar may stay hidden after load even when restored: click its tab
  const tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="genmagic-sidebar"]');
  await tab.waitFor();
  if (!(await page.locator('#genmagic-sidebar').isVisible())) {
    await tab.click();
  }
  await expect(page.locator('#genmagic-sidebar')).toBeVisible();
  // a wider sidebar for the screenshots: drag the handle between it and the notebook
  const handle = page.locator('#jp-main-split-panel > .lm-SplitPanel-handle:visible').first();
  const box = await handle.boundingBox();
  if (box) {
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + 160, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
  }
}

async function tab(page: Page, label: RegExp): Promise<void> {
  await page.locator('.gm-Tabs .lm-TabBar-tab', { hasText: label }).click();
}

function cellSources(page: Page) {
  return page.locator('.jp-Notebook .jp-Cell .jp-InputArea-editor');
}

test('models, history, re-run and review', async ({ page }) => {
  await openNotebook(page);

  // Models: the registry, with the embedded models
  await expect(page.locator('.gm-Models tr[data-alias="tiny-text"]')).toContainText('transformers');
  await expect(page.locator('.gm-Models tr[data-alias="tiny-image"]')).toContainText('diffusers');
  await expect(page.locator('.gm-Models tr[data-alias="tiny-text"] .gm-loaded')).toHaveText('○');
  await screenshot(page, 'lab-models');

  // Insert %%generate cell: a ready cell below the active one; run it in the real kernel
  const before = await cellSources(page).count();
  await page.locator('.gm-insert-text').click();
  await expect(cellSources(page)).toHaveCount(before + 1);
  // the settings (tests/test_lab_ui.py): default text model tiny-text, safety level warn
  await expect(cellSources(page).nth(1)).toContainText('%%generate -m tiny-text --safety warn');
  // run both cells once the kernel is up: Shift+Enter on the first, Ctrl+Enter (run in place) on the second
  await expect(page.locator('.jp-StatusBar-Widget', { hasText: /\| Idle/ }).first()).toBeVisible({ timeout: 120_000 });
  await page.locator('.jp-Notebook .jp-Cell').first().locator('.jp-InputPrompt').click();
  await page.keyboard.press('Shift+Enter');
  await expect(page.locator('.jp-Notebook .jp-Cell').first().locator('.jp-InputPrompt')).toHaveText(/\[1\]/, {
    timeout: 120_000
  });
  await page.keyboard.press('Control+Enter');
  await expect(page.locator('.jp-Notebook .jp-Cell').nth(1).locator('.jp-OutputArea-output').first()).toBeVisible({
    timeout: 150_000
  });

  // the kernel has run tiny-text now
  await expect(page.locator('.gm-Models tr[data-alias="tiny-text"] .gm-loaded')).toHaveText('●', { timeout: 30_000 });

  // History: the new run lands (polling), and Re-run puts its exact magic line in a cell
  await tab(page, /^History/);
  const newest = page.locator('#genmagic-history .gm-Entry').first();
  await expect(newest.locator('.gm-Prompt')).toHaveText('Write a haiku about the sea', { timeout: 60_000 });
  await newest.locator('.gm-rerun').click();
  await expect(cellSources(page)).toHaveCount(before + 2);
  await expect(cellSources(page).nth(2)).toContainText('%%generate -m tiny-text');
  await expect(cellSources(page).nth(2)).toContainText('Write a haiku about the sea');

  // search, then Re-run an older run: its seed and options come back
  await page.locator('.gm-Search').fill('lighthouse 3');
  await expect(page.locator('#genmagic-history .gm-Entry')).toHaveCount(1);
  await expect(page.locator('#genmagic-history .gm-Entry')).toContainText('Tell a story about lighthouse 3');
  await expect(page.locator('#genmagic-history .gm-Entry .gm-Options')).toContainText('seed 4');
  await page.locator('#genmagic-history .gm-Entry .gm-rerun').click();
  await expect(cellSources(page)).toHaveCount(before + 3);
  const rerun = cellSources(page).nth(3);
  await expect(rerun).toContainText('%%generate -m tiny-text');
  await expect(rerun).toContainText('--seed 4');
  await expect(rerun).toContainText('Tell a story about lighthouse 3');

  // this notebook only: other.ipynb's runs drop out
  await page.locator('.gm-Search').fill('');
  await page.locator('.gm-Mine').check();
  await expect(page.locator('#genmagic-history .gm-Pager')).toContainText('7 runs');
  await page.locator('.gm-Mine').uncheck();
  await expect(page.locator('#genmagic-history .gm-Pager')).toContainText('page 1 of 3 · 9 runs'); // 4 a page
  await screenshot(page, 'lab-history');

  // the %%imagine runs as a thumbnail gallery
  await page.locator('.gm-Kind').selectOption('image');
  const thumb = page.locator('#genmagic-history .gm-Gallery img').first();
  await expect(thumb).toBeVisible();
  await expect.poll(() => thumb.evaluate(img => (img as HTMLImageElement).naturalWidth)).toBeGreaterThan(0);
  await screenshot(page, 'lab-gallery');

  // The widget panel: a %%generate --widgets cell renders its controls (ipywidgets in JupyterLab) and runs once
  // (the run lands in History); a Generate click runs it again through the kernel, from the browser.
  const panelCell = cellSources(page).nth(3);
  await panelCell.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.type('%%generate --widgets -m tiny-text --max-new-tokens 6 --seed 11 --safety warn\nA panel story');
  await page.keyboard.press('Control+Enter');
  const panel = page.locator('.jp-Notebook .jp-Cell').nth(3).locator('.jp-Cell-outputArea');
  const generate = panel.locator('button', { hasText: 'Generate' });
  await expect(generate).toBeVisible({ timeout: 120_000 });
  await expect(panel).toContainText('seed 11', { timeout: 120_000 }); // the status line after the first run
  await page.locator('.gm-Kind').selectOption('text');
  const newestRun = page.locator('#genmagic-history .gm-Entry').first().locator('.gm-Prompt');
  await expect(newestRun).toHaveText('A panel story', { timeout: 60_000 });
  const runs = page.locator('#genmagic-history .gm-Pager');
  const counted = (await runs.textContent()) ?? '';
  await generate.click();
  await expect(generate).toBeEnabled({ timeout: 120_000 });
  await expect(runs).not.toHaveText(counted, { timeout: 60_000 }); // the click's run is in History too
  await screenshot(page, 'lab-panel');

  // Review: approve the held run; it leaves the queue and its output shows in History
  await tab(page, /^Review/);
  const held = page.locator('#genmagic-review .gm-Entry.gm-mod-held');
  await expect(held).toHaveCount(1);
  await expect(held).toContainText('Describe the harbour at night');
  await expect(held).toContainText('the withheld answer');
  await screenshot(page, 'lab-review');
  await held.locator('.gm-Note').fill('fine in context');
  await held.locator('.gm-approve').click();
  await expect(page.locator('#genmagic-review .gm-Entry.gm-mod-held')).toHaveCount(0);
  await expect(page.locator('.gm-Tabs .lm-TabBar-tab', { hasText: /^Review$/ })).toBeVisible();
  await tab(page, /^History/);
  await page.locator('.gm-Kind').selectOption('');
  await page.locator('.gm-Search').fill('harbour');
  await expect(page.locator('#genmagic-history .gm-Entry')).toHaveCount(1);
  await expect(page.locator('#genmagic-history .gm-Entry')).toContainText('approved: fine in context');
  await expect(page.locator('#genmagic-history .gm-Entry .gm-Output')).toContainText('the withheld answer');
});
