// `distillery study FILE|quick|survey [--out DIR]`: runs a study grid (resumable cell by cell) and
// prints where its results, summary and report are.
import { existsSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../engine/files.js';
import { renderStudyReport } from '../../report/study.js';
import { runStudy } from '../../study/runner.js';
import { loadStudyFile } from '../../study/spec.js';
import { summarizeStudy, summaryMarkdown } from '../../study/summary.js';
import { UsageError } from '../output.js';

const BUNDLED = fileURLToPath(new URL('../../../../studies/', import.meta.url));

/** A study file path, or the name of a bundled study (studies/<name>.yaml). */
export function resolveStudyFile(nameOrPath: string): string {
  if (existsSync(nameOrPath)) return nameOrPath;
  const bundled = join(BUNDLED, `${nameOrPath}.yaml`);
  if (/^[\w-]+$/.test(nameOrPath) && existsSync(bundled)) return bundled;
  throw new UsageError(
    `no study file '${nameOrPath}' (bundled studies: quick, survey; or give a .yaml / .json path)`,
  );
}

export async function studyCommand(nameOrPath: string, o: { out?: string }): Promise<void> {
  const file = resolveStudyFile(nameOrPath);
  const spec = loadStudyFile(file);
  const out = o.out ?? join('studies-out', basename(file, extname(file)));
  console.log(
    `Study '${spec.name}' from ${file} into ${out} (resumable: run the same command again to continue)`,
  );
  const results = await runStudy(spec, out, { log: (line) => console.log(line) });
  const summary = summarizeStudy(spec, results);
  console.log('');
  console.log(summaryMarkdown(summary));
  const report = join(out, 'report.html');
  writeFileAtomic(report, renderStudyReport(out));
  console.log(
    `Results: ${join(out, 'results.jsonl')}; summary: ${join(out, 'summary.md')}; report: ${report}`,
  );
}
