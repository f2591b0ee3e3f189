#!/usr/bin/env node
// The `distillery` command line. Usage errors exit with status 2, runtime failures with 1.
import { Command, InvalidArgumentError } from 'commander';
import { expertsCommand } from './commands/experts.js';
import { coresetCommand } from './commands/coreset.js';
import { datasetsCommand } from './commands/datasets.js';
import { distillCommand } from './commands/distill.js';
import { methodCommand, methodsCommand } from './commands/methods.js';
import { showCommand } from './commands/show.js';
import { renderDirectory } from '../report/directory.js';
import { studyCommand } from './commands/study.js';
import { launch } from './commands/launch.js';
import { continualCommand } from './commands/continual.js';
import { nasCommand } from './commands/nas.js';
import { privacyCommand } from './commands/privacy.js';
import { writeFileAtomic } from '../engine/files.js';
import { join } from 'node:path';
import { evalCommand } from './commands/evaluate.js';
import { exportCommand } from './commands/export.js';
import { runDemo } from './demo.js';
import { UsageError } from './output.js';
import '../distill/methods/index.js';
import { METHODS } from '../distill/registry.js';
import { versions } from '../util/version.js';

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

function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError(`expected a non-negative number, got '${value}'`);
  return n;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`expected a positive number, got '${value}'`);
  return n;
}

const program = new Command()
  .name('distillery')
  .description('Dataset distillation on libtorch, from TypeScript')
  .version(
    (() => {
      const v = versions();
      return `distillery ${v.distillery} (libtorch ${v.libtorch}, node ${v.node})`;
    })(),
    '-V, --version',
  )
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
  .showHelpAfterError();

program
  .command('distill')
  .description('distill a dataset (default: MNIST, DM, 10 images per class, quick preset)')
  .option('--dataset <name>', 'dataset name or path (see `distillery datasets`)', 'mnist')
  .option(
    '--method <m>',
    `distillation method: ${METHODS.map((m) => m.name).join(', ')} (see \`distillery methods <name>\`)`,
    'dm',
  )
  .option('--ipc <n>', 'images per class', positiveInt, 10)
  .option('--preset <p>', "'quick' (minutes on a CPU) or 'paper' (the published settings)", 'quick')
  .option('--iterations <n>', 'outer iterations', nonNegativeInt)
  .option('--lr <x>', 'learning rate of the synthetic images', positiveNumber)
  .option('--model <spec>', 'network spec, e.g. ConvNet, ConvNetBN')
  .option('--init <kind>', 'noise | real | herding | kcenter | forgetting')
  .option('--eval-runs <n>', 'networks trained to evaluate the result (0: skip evaluation)', nonNegativeInt)
  .option('--eval-epochs <e>', 'epochs of each evaluation network', positiveInt)
  .option(
    '--eval-precision <p>',
    "evaluation training: 'float32', 'bfloat16' (mixed precision) or 'auto' (default)",
  )
  .option(
    '--eval-target-loss <l>',
    "sets with learned regression targets (kip, rfad, frepo): 'softmax' (default: soft cross-entropy), 'argmax' or 'mse' (the papers' evaluation loss; unstable under SGD)",
  )
  .option('--checkpoint-every <n>', 'iterations between checkpoints', positiveInt)
  .option('--set <key=value...>', 'any config value, e.g. methodConfig.batchReal=64 optimizer.momentum=0.9')
  .option('--seed <s>', 'random seed', nonNegativeInt, 0)
  .option('--out <dir>', 'run directory (default runs/<method>-<dataset>-ipc<n>-seed<s>)')
  .option('--resume <run-dir>', 'continue an interrupted run from its last checkpoint')
  .option('--config <file>', 'JSON or YAML file of config values (over the preset, under the flags)')
  .option('--dry-run', 'print the resolved config and a time estimate measured on this machine; run nothing')
  .option('--data-dir <dir>', 'directory holding the dataset, for datasets read from local copies')
  .option(
    '--experts <dir>',
    "expert trajectories for the methods that read them: mtt/tesla/ftd/datm/haba, ncfm's pool (from `distillery experts`)",
  )
  .option('--json', 'one JSON object per line')
  .action(async (o, cmd: Command) => {
    if (o.preset !== 'quick' && o.preset !== 'paper')
      throw new UsageError(`unknown preset '${o.preset}' (expected quick or paper)`);
    // Which options the user typed (not defaults): --resume compares them with the run's settings.
    const given = Object.keys(o).filter((k) => cmd.getOptionValueSource(k) === 'cli');
    await distillCommand({ ...o, given });
  });

program
  .command('methods [name]')
  .description(
    "the taxonomy of distillation methods and what each needs; with a name, that method's settings",
  )
  .option('--json', 'one JSON object per line')
  .action((name: string | undefined, o: { json?: boolean }) =>
    name ? methodCommand(name, o) : methodsCommand(o),
  );

program
  .command('show')
  .description("write (if needed) and print the path of an artifact's image grid; --open opens it")
  .argument('<artifact>', 'artifact directory')
  .option('--open', 'open the PNG with the desktop viewer (xdg-open)')
  .action((artifact: string, o: { open?: boolean }) => showCommand(artifact, o));

program
  .command('report')
  .description(
    'write a self-contained HTML report of a run (config, loss, accuracy, images), a study (dashboard) or an application (continual, nas, privacy)',
  )
  .argument('<dir>', 'run directory, study directory, or the --out directory of continual / nas / privacy')
  .option('--out <file>', 'HTML file (default <dir>/report.html)')
  .action((dir: string, o: { out?: string }) => {
    const path = o.out ?? join(dir, 'report.html');
    writeFileAtomic(path, renderDirectory(dir));
    console.log(path);
  });

program
  .command('study')
  .description(
    'run a study grid (datasets x methods x IPCs x seeds, baselines, cross-architecture, honest scores); resumable',
  )
  .argument('<file>', "study file (.yaml / .json), or a bundled study: 'quick' (minutes) or 'survey' (days)")
  .option('--out <dir>', 'study directory (default studies-out/<name>)')
  .action(async (file: string, o: { out?: string }) => studyCommand(file, o));

program
  .command('launch')
  .description(
    "run a command as N processes of one data-parallel job (torchrun's variables: RANK, WORLD_SIZE, MASTER_ADDR, ...)",
  )
  .requiredOption('--nproc <n>', 'processes (ranks) on this machine', positiveInt)
  .option('--master-addr <host>', 'address of rank 0 (default 127.0.0.1)')
  .option('--master-port <port>', 'port of the rendezvous store (default: a free one)', positiveInt)
  .option('--threads <n>', 'threads per process (default: cores / nproc)', positiveInt)
  .argument('<command...>', 'after --: a distillery subcommand (distill ...) or any program')
  .action(
    async (
      command: string[],
      o: { nproc: number; masterAddr?: string; masterPort?: number; threads?: number },
    ) => {
      process.exitCode = await launch(command, o);
    },
  );

program
  .command('continual')
  .description(
    'class-incremental learning (GDumb-style, as the DC/DSA/DM papers): random, herding or distilled memory per stage',
  )
  .option('--dataset <name>', 'dataset', 'mnist')
  .option('--stages <n>', 'stages the classes arrive in', positiveInt, 5)
  .option('--ipc <n>', 'memory images per class', positiveInt, 10)
  .option('--memories <list>', 'random, herding and/or method names, comma-separated', 'random,herding,dm')
  .option('--runs <n>', 'runs (class orders) to average', positiveInt, 3)
  .option('--epochs <n>', 'epochs of each network trained on the memory', positiveInt, 300)
  .option('--iterations <n>', "distillation iterations (default: the method's quick preset)", positiveInt)
  .option('--precision <p>', 'float32 or bfloat16 training of the networks on the memory', 'float32')
  .option('--seed <s>', 'random seed', nonNegativeInt, 0)
  .option('--quick', 'one run, at most 50 epochs and 50 distillation iterations (minutes)')
  .option('--out <dir>', 'output directory', 'runs/continual')
  .action(async (o) => continualCommand(o));

program
  .command('nas')
  .description(
    'small sets as architecture-search proxies (DC paper): rank a ConvNet search space on each set against real training',
  )
  .option('--dataset <name>', 'dataset', 'mnist')
  .option(
    '--proxies <list>',
    'random, herding, early-stopping, method names (distilled from the training part) or artifact directories',
    'random,herding,dm',
  )
  .option('--ipc <n>', 'images per class of each proxy set', positiveInt, 10)
  .option(
    '--architectures <n>',
    'architectures drawn from the space (default 32; the DC space has 720)',
    positiveInt,
  )
  .option('--depths <list>', "search space: depths; default 1,2,3,4 (the DC paper's)")
  .option('--widths <list>', "search space: widths; default 32,64,128,256 (the DC paper's) (--quick: 32,64)")
  .option(
    '--activations <list>',
    "search space: AS (sigmoid), AR (ReLU), AL (leaky ReLU), ASW (swish); default AS,AR,AL (the DC paper's)",
  )
  .option('--norms <list>', "search space: NN, BN, LN, IN, GN; default NN,BN,LN,IN,GN (the DC paper's)")
  .option('--pools <list>', "search space: NP, MP, AP; default NP,MP,AP (the DC paper's)")
  .option('--proxy-epochs <n>', 'epochs on a proxy set (trains epochs 0..n)', nonNegativeInt, 199)
  .option(
    '--real-epochs <n>',
    'epochs on real data for the ground truth (trains epochs 0..n; cached)',
    nonNegativeInt,
    1,
  )
  .option(
    '--real-per-class <n>',
    'real images per class of the ground truth (default: the whole training part)',
    positiveInt,
  )
  .option('--val-per-class <n>', 'training images per class held out for validation', positiveInt, 100)
  .option('--iterations <n>', "distillation iterations (default: the method's quick preset)", positiveInt)
  .option('--precision <p>', 'float32 or bfloat16 training', 'float32')
  .option('--seed <s>', 'random seed', nonNegativeInt, 0)
  .option(
    '--quick',
    '8 architectures of widths 32 and 64, 51 proxy epochs, 2 real epochs on 200 images per class (minutes)',
  )
  .option('--out <dir>', 'output directory', 'runs/nas')
  .action(async (o) => nasCommand(o));

program
  .command('privacy')
  .description(
    'membership inference (loss threshold, offline LiRA) against networks trained on real members, a random member subset and sets distilled from the members',
  )
  .option('--dataset <name>', 'dataset', 'mnist')
  .option('--targets <list>', 'real, random, herding and/or method names, comma-separated', 'real,random,dm')
  .option('--ipc <n>', 'images per class of the random and distilled sets', positiveInt, 10)
  .option(
    '--pool-per-class <n>',
    "real training images per class in the pool (half of them the target's members)",
    positiveInt,
    200,
  )
  .option('--shadows <n>', 'shadow pipelines per target for LiRA', positiveInt, 4)
  .option('--epochs <n>', 'epochs of every network (trains epochs 0..n)', nonNegativeInt, 99)
  .option('--no-augment', "train the networks without the dataset's DSA augmentation")
  .option('--model <spec>', 'the network of every target and shadow', 'ConvNet')
  .option('--iterations <n>', "distillation iterations (default: the method's quick preset)", positiveInt)
  .option('--precision <p>', 'float32 or bfloat16 training', 'float32')
  .option('--seed <s>', 'random seed', nonNegativeInt, 0)
  .option(
    '--quick',
    '100 images per class in the pool, 2 shadows, 31 epochs, 50 distillation iterations (minutes)',
  )
  .option('--out <dir>', 'output directory', 'runs/privacy')
  .action(async (o) => privacyCommand(o));

program
  .command('demo')
  .description('a short tour of the tensor engine on this machine')
  .option('--steps <n>', 'training steps', positiveInt, 100)
  .option('--seed <s>', 'random seed', nonNegativeInt, 0)
  .action((o: { steps: number; seed: number }) => {
    runDemo({ ...o, log: (line) => console.log(line) });
  });

program
  .command('datasets')
  .description('list the datasets available here, and how to get the missing ones')
  .option('--data-dir <dir>', 'directory holding local copies (cifar10, cifar100, svhn, tinyimagenet)')
  .option('--json', 'one JSON object per line')
  .action((o: { dataDir?: string; json?: boolean }) => datasetsCommand(o));

program
  .command('eval')
  .description('evaluate a distilled set (or coreset) with the standard protocol')
  .argument('<artifact>', 'artifact directory (synthetic.safetensors + meta.json)')
  .option(
    '--models <list>',
    "comma-separated model specs (default: the method's reference choice: the distillation model with batch norm replaced by instance norm, DM: that model itself), e.g. ConvNet,ResNet18BN",
  )
  .option(
    '--runs <n>',
    'networks trained per model (the random-subset baseline draws a subset per network)',
    positiveInt,
    5,
  )
  .option('--epochs <e>', 'training epochs (default 1000 with augmentation, 300 without)', positiveInt)
  .option(
    '--augment <a>',
    "training augmentation (default: the producing method's reference protocol: DC 'dc', else 'dsa'): 'dsa' (or 'true'), 'dc' (DC's rule: crop/scale/rotate on MNIST), 'none', or e.g. 'dc:crop_noise'",
  )
  .option('--no-augment', 'train without augmentation')
  .option(
    '--precision <p>',
    "'float32', 'bfloat16' (mixed precision: bfloat16 steps, float32 weights) or 'auto' (bfloat16 where the CPU has it)",
    'auto',
  )
  .option(
    '--target-loss <l>',
    "artifacts with learned regression targets (kip, rfad, frepo): 'softmax' (default: soft cross-entropy), 'argmax' or 'mse' (the papers' evaluation loss; unstable under SGD)",
  )
  .option('--no-baselines', 'skip the random-subset and full-data baselines')
  .option('--no-full-data', 'skip only the full-data baseline (one network on the whole training set)')
  .option('--full-epochs <e>', 'epochs of the full-data baseline (one network; cached)', positiveInt, 2)
  .option('--seed <s>', "random seed (default: the artifact's, as distill evaluated it)", nonNegativeInt)
  .option('--data-dir <dir>', 'directory holding the dataset, for datasets read from local copies')
  .option('--json', 'one JSON object per line')
  .action((artifact: string, o) => evalCommand(artifact, o));

program
  .command('export')
  .description('write an artifact as NumPy .npy files or one PNG per image (de-normalised)')
  .argument('<artifact>', 'artifact directory')
  .option('--format <f>', "'npy' (images.npy in model-input space, pixels.npy, labels.npy) or 'png'", 'npy')
  .option('--out <dir>', 'output directory (default ARTIFACT/<format>)')
  .option('--json', 'one JSON object per line')
  .action((artifact: string, o) => exportCommand(artifact, o));

program
  .command('experts')
  .description('train expert trajectories for MTT/TESLA/FTD/HaBa (resumes an interrupted run)')
  .requiredOption('--dataset <name>', 'dataset name or path (see `distillery datasets`)')
  .option('--model <spec>', 'network spec', 'ConvNet')
  .option('--experts <n>', 'number of expert networks', positiveInt, 10)
  .option('--epochs <e>', 'training epochs of each expert (one checkpoint per epoch)', positiveInt, 50)
  .option('--lr <x>', 'SGD learning rate (no momentum, as the reference)', positiveNumber, 0.01)
  .option(
    '--optimizer <kind>',
    "'sgd' (MTT's experts) or 'gsam' (FTD's flat experts: SGD along GSAM's direction, two passes per batch)",
    'sgd',
  )
  .option('--rho <x>', "GSAM's perturbation radius (FTD: 0.01)", positiveNumber, 0.01)
  .option('--gsam-alpha <x>', "GSAM's alpha (FTD's default 0.4)", nonNegativeNumber, 0.4)
  .option('--batch <n>', 'batch size', positiveInt, 256)
  .option('--no-augment', 'train without DSA augmentation')
  .option('--seed <s>', 'random seed', nonNegativeInt, 0)
  .option('--zca <eps>', 'ZCA-whiten the data (e.g. 0.1, as MTT does for CIFAR)', positiveNumber)
  .option(
    '--precision <p>',
    "'float32' (the reference), 'bfloat16' (mixed precision, about 2x faster where native) or 'auto'",
    'float32',
  )
  .option('--out <dir>', 'trajectory directory (default experts/<dataset>-<model>[-zca])')
  .option('--data-dir <dir>', 'directory holding the dataset')
  .option('--json', 'one JSON object per line')
  .action((o) => {
    expertsCommand(o);
  });

program
  .command('coreset')
  .description('select a coreset baseline and save it as an artifact')
  .requiredOption('--dataset <name>', 'dataset name or path (see `distillery datasets`)')
  .requiredOption('--method <m>', 'random | herding | kcenter | forgetting')
  .requiredOption('--ipc <n>', 'images per class', positiveInt)
  .option('--out <dir>', 'artifact directory (default runs/coreset-<method>-<dataset>-ipc<n>-seed<s>)')
  .option(
    '--feature-epochs <e>',
    'epochs of the selection network herding/k-center/forgetting use (DeepCore: 40; cached)',
    positiveInt,
    40,
  )
  .option(
    '--precision <p>',
    "selection network training: 'float32' (DeepCore), 'bfloat16' (mixed precision) or 'auto'",
    'float32',
  )
  .option('--seed <s>', 'random seed', nonNegativeInt, 0)
  .option('--data-dir <dir>', 'directory holding the dataset')
  .option('--json', 'one JSON object per line')
  .action((o) => {
    coresetCommand(o);
  });

try {
  await program.parseAsync();
} catch (e) {
  const message = e instanceof Error ? e.message : String(e);
  console.error(`distillery: ${message}`);
  process.exit(e instanceof UsageError ? 2 : 1);
}
