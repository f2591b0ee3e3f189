import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { castState, countParams, createNetwork, evaluationModel } from '../../src/models/index.js';

// Parameter counts computed by hand from the reference architectures (see comments);
// 320,010 (ConvNet, CIFAR-10) and 11,173,962 (ResNet18, CIFAR-10) are also the
// commonly quoted PyTorch counts.
const cases: [string, [number, number, number], number][] = [
  // conv 1*128*9+128, 3 x GroupNorm(128) affine, 2 x conv 128*128*9+128, linear 2048*10+10
  ['ConvNet', [1, 28, 28], 317706],
  ['ConvNet', [3, 32, 32], 320010],
  ['ConvNetBN', [1, 28, 28], 317706],
  ['ConvNetW64', [1, 28, 28], 85130],
  ['ConvNetD4', [1, 28, 28], 450186],
  ['ConvNetNP', [1, 28, 28], 1607946],
  ['ConvNetLN', [1, 28, 28], 661002],
  ['MLP', [1, 28, 28], 118282],
  ['LeNet', [1, 28, 28], 61706],
  ['AlexNet', [1, 28, 28], 1865802],
  ['VGG11', [3, 32, 32], 9231114],
  ['ResNet18BN', [3, 32, 32], 11173962],
  ['ResNet18', [3, 32, 32], 11173962],
  ['ResNet18BN_AP', [1, 28, 28], 11213770],
];

for (const [spec, shape, expected] of cases) {
  test(`${spec} on [${shape.join(', ')}] has ${expected} parameters and classifies`, () => {
    const net = createNetwork(spec, shape, 10);
    const state = net.init(new E.Generator(0));
    assert.equal(countParams(state), expected);
    E.tidy(() => {
      const x = E.randn([2, ...shape], { generator: new E.Generator(1) });
      assert.deepEqual(net.forward(state, x).shape, [2, 10]);
      assert.deepEqual(net.embed(state, x).shape, [2, net.featureDim]);
    });
  });
}

test('ConvNet depth follows the image size; PyTorch default init bounds', () => {
  assert.equal(createNetwork('ConvNet', [3, 64, 64], 200).featureDim, 128 * 4 * 4);
  assert.equal(createNetwork('ConvNet', [3, 128, 128], 10).featureDim, 128 * 4 * 4);
  const state = createNetwork('ConvNet', [1, 28, 28], 10).init(new E.Generator(0));
  const w = state.params.get('features.1.conv.weight') as E.Tensor;
  const bound = 1 / Math.sqrt(128 * 9);
  assert.ok(w.abs().max().item() <= bound);
  assert.ok(w.abs().max().item() > 0.95 * bound);
  assert.deepEqual(
    (state.params.get('features.0.norm.weight') as E.Tensor).toNumbers().slice(0, 3),
    [1, 1, 1],
  );
});

test('batch norm: running statistics update in training mode only', () => {
  const net = createNetwork('ConvNetBN', [1, 28, 28], 10);
  const state = net.init(new E.Generator(0));
  const x = E.randn([4, 1, 28, 28], { generator: new E.Generator(2) });
  const mean = state.buffers.get('features.0.norm.runningMean') as E.Tensor;
  net.forward(state, x, { train: false });
  assert.deepEqual(mean.toNumbers().slice(0, 2), [0, 0]);
  E.noGrad(() => net.forward(state, x, { train: true }));
  assert.notDeepEqual(mean.toNumbers().slice(0, 2), [0, 0]);
});

test('same seed, same network; unknown specs list the valid ones', () => {
  const a = createNetwork('ConvNet', [1, 28, 28], 10).init(new E.Generator(5));
  const b = createNetwork('ConvNet', [1, 28, 28], 10).init(new E.Generator(5));
  assert.deepEqual(
    (a.params.get('classifier.weight') as E.Tensor).toNumbers(),
    (b.params.get('classifier.weight') as E.Tensor).toNumbers(),
  );
  assert.throws(
    () => createNetwork('ResNet50', [3, 32, 32], 10),
    /unknown model 'ResNet50'. Valid model specs: ConvNet, .*ResNet18BN_AP/,
  );
  assert.throws(
    () => createNetwork('ConvNetXY', [3, 32, 32], 10),
    /cannot parse 'XY' in model spec 'ConvNetXY'/,
  );
  assert.throws(() => createNetwork('ConvNetD6', [1, 28, 28], 10), /reduces the input to nothing/);
  const net = createNetwork('ConvNet', [1, 28, 28], 10);
  assert.throws(
    () => net.forward(a, E.zeros([1, 3, 32, 32])),
    /ConvNet expects input \[N, 1, 28, 28\], got \[1, 3, 32, 32\]/,
  );
});

test('castState: a bfloat16 channels-last ConvNet matches float32, with and without autograd', () => {
  E.tidy(() => {
    const net = createNetwork('ConvNet', [1, 28, 28], 10);
    const state = net.init(new E.Generator(0));
    const half = castState(state, 'bfloat16');
    assert.ok(half.params.get('features.0.conv.weight')?.isChannelsLast(), '4-D weights are channels-last');
    assert.equal(half.params.get('classifier.bias')?.dtype, 'bfloat16');
    const x = E.randn([2, 1, 28, 28], { generator: new E.Generator(1) });
    const reference = net.forward(state, x);
    const xLow = x.to('bfloat16').contiguous('channelsLast');
    for (const [mode, low] of [
      ['no grad', E.noGrad(() => net.forward(half, xLow))],
      ['grad', net.forward(half, xLow.clone().requiresGrad_())],
    ] as const) {
      assert.equal(low.dtype, 'bfloat16');
      const err = low.float().sub(reference).abs().max().item() / reference.abs().max().item();
      assert.ok(err < 0.05, `${mode}: bfloat16 vs float32: relative error ${err}`);
    }
  });
});

test("the references' evaluation model (eval mode 'S'): batch norm replaced by instance norm", () => {
  assert.equal(evaluationModel('ConvNetBN'), 'ConvNet');
  assert.equal(evaluationModel('ConvNetW64BN'), 'ConvNetW64');
  assert.equal(evaluationModel('ConvNetBND4'), 'ConvNetD4');
  assert.equal(evaluationModel('VGG11BN'), 'VGG11');
  assert.equal(evaluationModel('ResNet18BN_AP'), 'ResNet18');
  assert.equal(evaluationModel('ConvNet'), 'ConvNet');
  assert.equal(evaluationModel('MLP'), 'MLP');
  assert.equal(createNetwork('ConvNetBN', [1, 28, 28], 10).hasBatchNorm, true);
  assert.equal(createNetwork('ResNet18BN', [3, 32, 32], 10).hasBatchNorm, true, 'inside residual blocks');
  assert.equal(createNetwork('ResNet18', [3, 32, 32], 10).hasBatchNorm, false);
});
