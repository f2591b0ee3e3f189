// Loading the HTML reports in Debian's headless chromium (puppeteer-core): console errors, network
// requests beyond file/data URLs, and the charts each page registers in window.distilleryCharts.
import { statSync } from 'node:fs';
import type { Browser, Page } from 'puppeteer-core';

export interface ChartInfo {
  type: string;
  series: { label: string; points: number }[];
}

function chromiumPath(): string {
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser', process.env.CHROMIUM_PATH ?? ''])
    if (p && isFile(p)) return p;
  throw new Error('the report tests need chromium: `apt-get install chromium` (install.sh does this)');
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Runs `fn` with a fresh headless chromium page whose errors (console, page, network) are collected. */
export async function withPage<T>(fn: (tab: Page, errors: string[]) => Promise<T>): Promise<T> {
  const { launch } = await import('puppeteer-core');
  const browser: Browser = await launch({
    executablePath: chromiumPath(),
    headless: true,
    // Containers (CI) often have a small /dev/shm and no user namespaces: neither is needed here.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--allow-file-access-from-files'],
  });
  try {
    const tab = await browser.newPage();
    const errors: string[] = [];
    tab.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    tab.on('pageerror', (e) => errors.push(String(e)));
    tab.on('request', (r) => {
      if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) errors.push(`fetched ${r.url()}`);
    });
    await tab.setViewport({ width: 1280, height: 900 });
    return await fn(tab, errors);
  } finally {
    await browser.close();
  }
}

/** Opens `file` and returns the charts it registered. */
export async function openReport(tab: Page, file: string): Promise<Record<string, ChartInfo>> {
  await tab.goto(`file://${file}`, { waitUntil: 'load' });
  return (await tab.evaluate('window.distilleryCharts')) as Record<string, ChartInfo>;
}

/**
 * Points of the page's charts that fall outside their axes' ranges (a scale computed from part of the
 * data, e.g. Chart.js taking unsorted points as sorted), as "chart dataset: (x, y)" lines.
 */
export async function pointsOffScale(tab: Page): Promise<string[]> {
  return (await tab.evaluate(`(() => {
    const out = [];
    for (const c of Object.values(Chart.instances)) {
      const { x, y } = c.scales;
      if (!x || !y || x.type === 'category' || y.type === 'category') continue;
      c.data.datasets.forEach((d) => {
        for (const p of d.data)
          if (p && typeof p === 'object' && (p.x < x.min || p.x > x.max || p.y < y.min || p.y > y.max))
            out.push(c.canvas.id + ' ' + d.label + ': (' + p.x + ', ' + p.y + ')');
      });
    }
    return out;
  })()`)) as string[];
}
