// What the HTML reports share: Chart.js inlined (the pages work offline and fetch nothing) and data
// embedded as JSON that a <script> element cannot be broken out of.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** Chart.js's UMD bundle (defines `Chart`), to inline in a <script> element. */
export function chartLibrary(): string {
  const main = createRequire(import.meta.url).resolve('chart.js');
  return readFileSync(join(dirname(main), 'chart.umd.min.js'), 'utf8');
}

/** JSON safe inside a <script> element ('<' escaped, so no '</script>' can end it early). */
export const scriptJson = (v: unknown): string => JSON.stringify(v).replace(/</g, '\\u003c');

export const esc = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
