// Values of the nn functional ops against hand computations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { assertClose, assertShape } from '../helpers.js';

test('conv2d, pooling and linear compute what their definitions say', () => {
  const x = E.arange(16, undefined, 1, { dtype: 'float32' }).reshape(1, 1, 4, 4);
  const w = E.ones([1, 1, 2, 2]);
  assert.deepEqual(E.nn.conv2d(x, w, E.tensor([1]), { stride: 2 }).toList(), [
    [
      [
        [11, 19],
        [43, 51],
      ],
    ],
  ]);
  assertShape(
    E.nn.conv2d(E.ones([2, 1, 28, 28]), E.ones([8, 1, 3, 3]), null, { padding: 3 }),
    [2, 8, 32, 32],
  );
  assert.deepEqual(E.nn.avgPool2d(x, 2).toList(), [
    [
      [
        [2.5, 4.5],
        [10.5, 12.5],
      ],
    ],
  ]);
  // The non-overlapping fast path agrees with the generic kernel (reached here through ceilMode).
  const big = E.randn([3, 5, 8, 6], { dtype: 'float64', generator: new E.Generator(4) });
  assertClose(E.nn.avgPool2d(big, 2), E.nn.avgPool2d(big, 2, { ceilMode: true }).toNumbers(), 1e-12);
  assertClose(E.nn.avgPool2d(x, 2, { stride: 1 }).select(3, 0).flatten(), [2.5, 6.5, 10.5]);
  assert.deepEqual(E.nn.maxPool2d(x, 2).toList(), [
    [
      [
        [5, 7],
        [13, 15],
      ],
    ],
  ]);
  assert.deepEqual(E.nn.adaptiveAvgPool2d(x, 1).toList(), [[[[7.5]]]]);
  assert.deepEqual(
    E.nn
      .linear(
        E.tensor([[1, 2]]),
        E.tensor([
          [1, 1],
          [2, -1],
        ]),
        E.tensor([0, 10]),
      )
      .toList(),
    [[3, 10]],
  );
  assertShape(
    E.nn.convTranspose2d(E.ones([1, 2, 3, 3]), E.ones([2, 4, 2, 2]), null, { stride: 2 }),
    [1, 4, 6, 6],
  );
  assert.throws(
    () => E.nn.conv2d(E.ones([3, 28, 28]), E.ones([8, 1, 3, 3])),
    /conv2d: expected input of 4 dimensions \[N, C, H, W\], got shape \[3, 28, 28\]/,
  );
  assert.throws(
    () => E.nn.linear(E.ones([2, 3]), E.ones([4, 5])),
    /linear: input has 3 features but weight expects 5/,
  );
});

test('a one-channel input made channels-last keeps the next convolution (and its output) channels-last', () => {
  const x = E.randn([2, 1, 6, 5], { generator: new E.Generator(14) });
  const w = E.randn([4, 1, 3, 3], { generator: new E.Generator(15) });
  const xl = x.contiguous('channelsLast');
  assert.deepEqual(xl.toNumbers(), x.toNumbers(), 'same values');
  const y = E.nn.conv2d(xl, w, null, { padding: 1 });
  // libtorch alone keeps NCHW strides for one channel, and the convolution then writes NCHW.
  assert.ok(y.isChannelsLast() && !y.isContiguous(), 'channels-last output');
  assert.ok(
    y
      .sub(E.nn.conv2d(x, w, null, { padding: 1 }))
      .abs()
      .max()
      .item() < 1e-5,
    'same result',
  );
});

test('first-layer weight gradients in float32 (NCHW, channels-last) and bfloat16 match float64', () => {
  const gen = new E.Generator(16);
  // One and three input channels (oneDNN has no direct kernel for these and uses im2col + gemm).
  for (const cin of [1, 3]) {
    const x = E.randn([5, cin, 13, 11], { dtype: 'float64', generator: gen });
    const w = E.randn([16, cin, 3, 3], { dtype: 'float64', generator: gen });
    const upstream = E.randn([5, 16, 9, 8], { dtype: 'float64', generator: gen });
    const weightGrad = (dtype: E.DType, layout: E.MemoryFormat) => {
      const wd = w.to(dtype).requiresGrad_();
      const y = E.nn.conv2d(x.to(dtype).contiguous(layout), wd, null, { stride: 2, padding: 3 });
      return E.grad(y.mul(upstream.to(dtype).contiguous(layout)).sum(), [wd])[0].to('float64');
    };
    const exact = weightGrad('float64', 'contiguous');
    const scale = exact.abs().max().item();
    for (const [dtype, layout, tol] of [
      ['float32', 'contiguous', 1e-5],
      ['float32', 'channelsLast', 1e-5],
      ['bfloat16', 'channelsLast', 2e-2],
    ] as const) {
      const err = weightGrad(dtype, layout).sub(exact).abs().max().item() / scale;
      assert.ok(err < tol, `${cin} channel(s), ${dtype} ${layout}: relative error ${err}`);
    }
  }
});

test('normalizations: statistics, affine parameters, running stats', () => {
  const x = E.tensor(
    [
      [[[1, 3]], [[2, 6]]],
      [[[5, 7]], [[0, 2]]],
    ],
    { dtype: 'float64' },
  ); // [2, 2, 1, 2]
  const inorm = E.nn.instanceNorm(x, { eps: 0 });
  assertClose(inorm, [-1, 1, -1, 1, -1, 1, -1, 1]);
  assertClose(E.nn.groupNorm(x, 2, { eps: 0 }), inorm.toNumbers());
  const rm = E.zeros([2], { dtype: 'float64' });
  const rv = E.ones([2], { dtype: 'float64' });
  const bn = E.nn.batchNorm(x, { runningMean: rm, runningVar: rv, training: true, momentum: 0.5, eps: 0 });
  // channel 0 values 1,3,5,7: mean 4, biased var 5, unbiased var 20/3
  assertClose(
    bn.select(1, 0).flatten(),
    [-3, -1, 1, 3].map((v) => v / Math.sqrt(5)),
  );
  assertClose(rm, [0.5 * 4, 0.5 * 2.5]);
  assertClose(rv.select(0, 0), [0.5 + 0.5 * (20 / 3)]);
  const evalOut = E.nn.batchNorm(x, { runningMean: rm, runningVar: rv, training: false, eps: 0 });
  assertClose(
    evalOut.select(1, 0).flatten(),
    [1, 3, 5, 7].map((v) => (v - 2) / Math.sqrt(0.5 + 0.5 * (20 / 3))),
  );
  assert.throws(() => E.nn.batchNorm(x, { training: false }), /eval mode needs runningMean and runningVar/);
  const ln = E.nn.layerNorm(E.tensor([[1, 2, 3]], { dtype: 'float64' }), [3], {
    weight: E.tensor([1, 1, 2], { dtype: 'float64' }),
    eps: 0,
  });
  const s = Math.sqrt(2 / 3);
  assertClose(ln, [-1 / s, 0, 2 / s]);
  assert.throws(
    () => E.nn.groupNorm(E.ones([1, 3, 2, 2]), 2),
    /channels \(3\) must be divisible by groups \(2\)/,
  );
});

test('normReluPool equals avgPool2d(relu(groupNorm)) and so does its gradient: NCHW and channels-last, float32, float64, bfloat16', () => {
  const gen = new E.Generator(11);
  for (const dtype of ['float32', 'float64', 'bfloat16'] as const) {
    for (const layout of ['contiguous', 'channelsLast'] as const) {
      for (const [shape, groups] of [
        [[3, 8, 32, 32], 8],
        [[2, 8, 7, 9], 4],
      ] as [number[], number][]) {
        const what = `${dtype} ${layout} ${shape}`;
        const [x, weight, bias] = [shape, [shape[1]], [shape[1]]].map((s) =>
          E.randn(s, { dtype: 'float64', generator: gen }).to(dtype).requiresGrad_(),
        );
        const fused = E.nn.normReluPool(x.contiguous(layout), groups, { weight, bias });
        assert.equal(fused.dtype, dtype);
        // The reference: the separate ops in float64 on the same (rounded) values.
        const [x64, w64, b64] = [x, weight, bias].map((t) => t.detach().double().requiresGrad_());
        const separate = E.nn.avgPool2d(E.nn.groupNorm(x64, groups, { weight: w64, bias: b64 }).relu(), 2, {
          stride: 2,
        });
        // bfloat16 keeps 8 bits of mantissa: outputs and gradients are rounded to ~2^-8 relative.
        const tol = dtype === 'bfloat16' ? 1e-2 : dtype === 'float32' ? 1e-5 : 1e-12;
        assert.deepEqual(fused.shape, separate.shape);
        const scale = (t: E.Tensor) => 1 + t.abs().max().item();
        assert.ok(
          fused.double().sub(separate).abs().max().item() < tol * scale(separate),
          `${what}: forward`,
        );
        const g = E.randn(fused.shape, { dtype: 'float64', generator: gen });
        const a = E.grad(fused, [x, weight, bias], { gradOutputs: [g.to(dtype)] });
        const b = E.grad(separate, [x64, w64, b64], { gradOutputs: [g] });
        a.forEach((t, i) => {
          assert.equal(t.dtype, dtype);
          const err = t.double().sub(b[i]).abs().max().item();
          // Gradients are sums over many rounded terms: more slack than the forward.
          const slack = dtype === 'bfloat16' ? 4 : 50;
          assert.ok(err < slack * tol * scale(b[i]), `${what}: grad ${i} error ${err}`);
        });
      }
    }
  }
});

test("normReluPool without autograd: channels-last and bfloat16 inputs give the separate ops' values in channels-last layout", () => {
  const gen = new E.Generator(12);
  for (const [shape, groups] of [
    [[3, 8, 32, 32], 8],
    [[2, 8, 7, 9], 4],
  ] as [number[], number][]) {
    const x64 = E.randn(shape, { dtype: 'float64', generator: gen }).mul(2).add(0.3);
    const w64 = E.randn([shape[1]], { dtype: 'float64', generator: gen });
    const b64 = E.randn([shape[1]], { dtype: 'float64', generator: gen });
    for (const dtype of ['float32', 'float64', 'bfloat16'] as const) {
      for (const layout of ['contiguous', 'channelsLast'] as const) {
        // The reference sees the same (rounded) values the kernel sees.
        const [x, w, b] = [x64, w64, b64].map((t) => t.to(dtype));
        const separate = E.nn.avgPool2d(
          E.nn.groupNorm(x.double(), groups, { weight: w.double(), bias: b.double() }).relu(),
          2,
          { stride: 2 },
        );
        const fused = E.noGrad(() => E.nn.normReluPool(x.contiguous(layout), groups, { weight: w, bias: b }));
        assert.equal(fused.dtype, dtype);
        assert.deepEqual(fused.shape, separate.shape);
        // NCHW float32/float64 inputs stay NCHW; channels-last or bfloat16 inputs give channels-last output.
        const expectChannelsLast = layout === 'channelsLast' || dtype === 'bfloat16';
        assert.equal(
          fused.isChannelsLast() && !fused.isContiguous(),
          expectChannelsLast,
          `${dtype} ${layout} layout`,
        );
        // bfloat16 rounds the output (8 bits of mantissa): relative 2^-8.
        const tol =
          dtype === 'bfloat16' ? 4e-3 * separate.abs().max().item() : dtype === 'float32' ? 1e-5 : 1e-12;
        const err = fused.double().sub(separate).abs().max().item();
        assert.ok(err < tol, `${dtype} ${layout} ${shape}: error ${err} >= ${tol}`);
      }
    }
  }
});

test('normReluPool lets NaN and overflow show, as the separate ops do (divergence must stay visible)', () => {
  const w = E.ones([2]);
  const b = E.zeros([2]);
  const x = E.randn([1, 2, 4, 4], { generator: new E.Generator(3) });
  const withNaN = x.clone();
  withNaN.narrow(1, 0, 1).narrow(2, 0, 1).narrow(3, 0, 1).fill_(NaN);
  // The autograd kernel (NCHW) and the inference kernel (channels-last) alike.
  for (const layout of ['contiguous', 'channelsLast'] as const) {
    const out = E.noGrad(() => E.nn.normReluPool(withNaN.contiguous(layout), 2, { weight: w, bias: b }));
    assert.ok(out.narrow(1, 0, 1).isnan().all().item(), `${layout}: the NaN plane is NaN`);
    assert.ok(out.narrow(1, 1, 1).isfinite().all().item(), `${layout}: the other plane is untouched`);
    const huge = E.noGrad(() => E.nn.normReluPool(x.mul(1e30).contiguous(layout), 2, { weight: w, bias: b }));
    assert.ok(
      huge.isnan().all().item(),
      `${layout}: an overflowing variance gives NaN, not a silently constant map`,
    );
  }
});

test('cross-entropy: hard, soft and label-smoothed targets agree with the formulas', () => {
  const logits = E.tensor(
    [
      [2, 0, -1],
      [0.5, 0.5, 3],
    ],
    { dtype: 'float64' },
  );
  const logp = E.nn.logSoftmax(logits, 1).toList() as number[][];
  const hard = E.tensor([0, 2], { dtype: 'int64' });
  assertClose(E.nn.crossEntropy(logits, hard), [-(logp[0][0] + logp[1][2]) / 2]);
  assertClose(E.nn.crossEntropy(logits, hard, { reduction: 'sum' }), [-(logp[0][0] + logp[1][2])]);
  assertClose(E.nn.crossEntropy(logits, hard, { reduction: 'none' }), [-logp[0][0], -logp[1][2]]);
  const onehot = E.nn.oneHot(hard, 3).double();
  assertClose(E.nn.crossEntropy(logits, onehot), E.nn.crossEntropy(logits, hard).toNumbers());
  // label smoothing eps: target (1-eps) onehot + eps/C
  const eps = 0.1;
  const smoothed = onehot.mul(1 - eps).add(eps / 3);
  assertClose(
    E.nn.crossEntropy(logits, hard, { labelSmoothing: eps }),
    E.nn.crossEntropy(logits, smoothed).toNumbers(),
    1e-12,
  );
  assertClose(E.nn.nllLoss(E.nn.logSoftmax(logits, 1), hard), E.nn.crossEntropy(logits, hard).toNumbers());
  assert.throws(
    () => E.nn.crossEntropy(logits, E.tensor([0, 1, 2], { dtype: 'int64' })),
    /class-index targets must have shape \[2\], got \[3\]/,
  );
  assert.throws(
    () => E.nn.crossEntropy(logits, E.tensor([0, 1])),
    /soft targets must have the logits' shape/,
  );
  assert.throws(
    () => E.nn.crossEntropy(logits, E.tensor([0, 5], { dtype: 'int64' })),
    /crossEntropy: Target 5 is out of bounds/,
  );
});

test('regression losses, KL divergence, softmax', () => {
  const a = E.tensor([1, 2, 3], { dtype: 'float64' });
  const b = E.tensor([1, 0, 0], { dtype: 'float64' });
  assertClose(E.nn.mseLoss(a, b), [(0 + 4 + 9) / 3]);
  assertClose(E.nn.mseLoss(a, b, 'sum'), [13]);
  assertClose(E.nn.l1Loss(a, b), [5 / 3]);
  const p = E.tensor([[0.2, 0.8]], { dtype: 'float64' });
  const q = E.tensor([[0.5, 0.5]], { dtype: 'float64' });
  assertClose(E.nn.klDiv(q.log(), p), [0.2 * Math.log(0.2 / 0.5) + 0.8 * Math.log(0.8 / 0.5)]);
  assertClose(E.nn.softmax(E.tensor([0, Math.log(3)], { dtype: 'float64' })), [0.25, 0.75]);
  assert.throws(
    () => E.nn.mseLoss(a, E.ones([2], { dtype: 'float64' })),
    /mseLoss: input and target shapes differ: \[3\] vs \[2\]/,
  );
});

test('resampling: interpolate, affineGrid + gridSample identity, pixelShuffle', () => {
  const x = E.arange(4, undefined, 1, { dtype: 'float64' }).reshape(1, 1, 2, 2);
  assert.deepEqual(E.nn.interpolate(x, { scaleFactor: 2 }).toList(), [
    [
      [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [2, 2, 3, 3],
        [2, 2, 3, 3],
      ],
    ],
  ]);
  assertClose(
    E.nn.interpolate(x, { size: 3, mode: 'bilinear', alignCorners: true }),
    [0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3],
  );
  assertShape(E.nn.interpolate(x, { size: [4, 6], mode: 'bicubic' }), [1, 1, 4, 6]);
  const identity = E.tensor(
    [
      [
        [1, 0, 0],
        [0, 1, 0],
      ],
    ],
    { dtype: 'float64' },
  );
  const img = E.randn([1, 2, 5, 5], { dtype: 'float64', generator: new E.Generator(3) });
  const grid = E.nn.affineGrid(identity, [1, 2, 5, 5], false);
  assertClose(E.nn.gridSample(img, grid, { alignCorners: false }), img.toNumbers(), 1e-12);
  const ps = E.nn.pixelShuffle(E.arange(8, undefined, 1, { dtype: 'float32' }).reshape(1, 4, 1, 2), 2);
  assertShape(ps, [1, 1, 2, 4]);
  assert.deepEqual(
    E.nn.pixelUnshuffle(ps, 2).toList(),
    E.arange(8, undefined, 1, { dtype: 'float32' }).reshape(1, 4, 1, 2).toList(),
  );
  assert.throws(() => E.nn.interpolate(x, {}), /give exactly one of size and scaleFactor/);
});
