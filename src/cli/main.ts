#!/usr/bin/env node
// The `distillery` command line.
import { Command, InvalidArgumentError } from 'commander';
import { runDemo } from './demo.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  return n;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError(`expected a non-negative integer, got '${value}'`);
  return n;
}

const program = new Command()
  .name('distillery')
  .description('Dataset distillation on libtorch, from TypeScript')
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
  .showHelpAfterError();

program
  .command('demo')
  .description('a short tour of the tensor engine on this machine')
  .option('--steps <n>', 'training steps', positiveInt, 100)
  .option('--seed <s>', 'random seed', nonNegativeInt, 0)
  .action((o: { steps: number; seed: number }) => {
    runDemo({ ...o, log: (line) => console.log(line) });
  });

try {
  await program.parseAsync();
} catch (e) {
  console.error(`distillery: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
