// `distillery report DIR`: the page for whatever DIR holds: a study (study.json), an application's
// result (continual.json, nas.json, privacy.json, as those commands write them) or a run directory.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ContinualResult } from '../apps/continual.js';
import type { NasResult } from '../apps/nas.js';
import type { PrivacyResult } from '../apps/privacy.js';
import { renderContinualReport } from './continual.js';
import { renderReport } from './html.js';
import { renderNasReport } from './nas.js';
import { renderPrivacyReport } from './privacy.js';
import { renderStudyReport } from './study.js';

const APPLICATIONS: [string, (result: never) => string][] = [
  ['continual.json', (r: ContinualResult) => renderContinualReport(r)],
  ['nas.json', (r: NasResult) => renderNasReport(r)],
  ['privacy.json', (r: PrivacyResult) => renderPrivacyReport(r)],
];

function readResult(file: string): never {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as never;
  } catch (e) {
    throw new Error(`cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * The HTML page of a study, application or run directory.
 *
 * @example writeFileAtomic('report.html', renderDirectory('runs/nas'));
 */
export function renderDirectory(dir: string): string {
  if (existsSync(join(dir, 'study.json'))) return renderStudyReport(dir);
  for (const [file, render] of APPLICATIONS)
    if (existsSync(join(dir, file))) return render(readResult(join(dir, file)));
  return renderReport(dir);
}
