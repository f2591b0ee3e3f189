// Versions recorded in run directories and artifacts.
import { readFileSync } from 'node:fs';
import { torchVersion } from '../engine/index.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export function versions(): { distillery: string; libtorch: string; node: string } {
  return { distillery: pkg.version, libtorch: torchVersion(), node: process.versions.node };
}
