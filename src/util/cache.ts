// The user-level cache of results that are expensive and fully determined by their inputs
// (baseline accuracies, coreset selection networks): $DISTILLERY_CACHE, else
// $XDG_CACHE_HOME/distillery, else ~/.cache/distillery. Entries are named by a hash of
// everything that determines them and hold that key, so a collision is detected.
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function cacheDir(): string {
  return (
    process.env.DISTILLERY_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'distillery')
  );
}

/** A file name (without extension) for the entry determined by `key`. */
export function cacheName(key: unknown): string {
  return createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 24);
}
