/**
 * Browser tests of the sidebar against a real `jupyter lab` (tests/test_lab_ui.py starts it and
 * passes GENMAGIC_LAB_URL, GENMAGIC_LAB_TOKEN). The browser is the system's Chromium
 * (CHROMIUM or `command -v chromium`): Playwright downloads none.
 */
import { defineConfig } from '@playwright/test';
import { execSync } from 'child_process';

function chromium(): string {
  if (process.env.CHROMIUM) {
    return process.env.CHROMIUM;
  }
  return execSync('command -v chromium || command -v chromium-browser', { shell: '/bin/sh' }).toString().trim();
}

export default defineConfig({
  testDir: './ui-tests',
  timeout: 180_000,
  expect: { timeout: 30_000 },
  retries: 0,
  workers: 1,
  reporter: [['list']],
  outputDir: process.env.GENMAGIC_UI_OUT || 'test-results',
  use: {
    baseURL: process.env.GENMAGIC_LAB_URL,
    viewport: { width: 1400, height: 860 },
    launchOptions: {
      executablePath: chromium(),
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-dev-shm-usage']
    },
    trace: 'off'
  }
});
