// GSAM (FTD's flat experts) against FTD's own optimizer (buffer/gsam/gsam.py, SGD base with constant lr
// and rho as buffer_FTD.py wires it): the weights after each of two steps on a fixed batch, with the
// adaptive perturbation (FTD's effective setting) and without.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import { gsamGradients } from '../../src/eval/index.js';
import { createNetwork } from '../../src/models/index.js';
import { assertAllClose, referenceFixture, withWeights } from '../helpers.js';

test("GSAM: two steps equal FTD's GSAM optimizer (adaptive and plain)", () => {
  const fx = referenceFixture('gsam');
  const x = fx.get('x');
  const y = fx.get('y');
  for (const [key, adaptive] of [
    ['adaptive', true],
    ['plain', false],
  ] as const) {
    const net = createNetwork(fx.meta.model, [1, 28, 28], Number(fx.meta.classes));
    const state = withWeights(net, fx.get);
    const params = [...state.params.values()].map((p) => p.requiresGrad_());
    const [rho, alpha] = fx.get(`${key}.settings`).toNumbers();
    const opt = new E.SGD(params, { lr: 0.01 });
    let plainMoved = 0;
    for (let step = 0; step < 2; step++) {
      const pass = () => {
        const loss = E.nn.crossEntropy(net.forward(state, x, { train: true }), y);
        return { loss, grads: E.grad(loss, params) };
      };
      const plain = pass().grads;
      const { loss, grads } = gsamGradients(params, pass, { rho, alpha, adaptive });
      assertAllClose(loss, fx.get(`${key}.loss.${step}`), 1e-5, `${key} loss ${step}`);
      // Against the largest entry of the whole direction: a conv bias before instance norm gets ~0 gradient.
      const expected = grads.map((_, i) => fx.get(`${key}.direction${step}.${i}`));
      const scale = Math.max(...expected.map((t) => t.abs().max().item()));
      grads.forEach((g, i) => {
        const diff = g.sub(expected[i]).abs().max().item();
        assert.ok(diff <= 1e-4 * scale, `${key} direction ${step} param ${i}: ${diff} vs scale ${scale}`);
      });
      plainMoved = Math.max(plainMoved, ...grads.map((g, i) => g.sub(plain[i]).abs().max().item()));
      opt.step(grads);
      params.forEach((p, i) =>
        assertAllClose(p, fx.get(`${key}.step${step}.${i}`), 2e-5, `${key} step ${step} param ${i}`),
      );
    }
    // The fixture discriminates: GSAM's direction is not the plain gradient.
    assert.ok(plainMoved > 1e-4, `${key}: GSAM differs from SGD by ${plainMoved}`);
  }
});
