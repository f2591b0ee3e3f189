# Reference run for bench/engine.ts: the same ConvNet-3 in PyTorch (Debian's python3-torch),
# timed the same way. Prints one JSON object: the milliseconds of each run per column.
import json, sys, time
import torch
import torch.nn.functional as F

runs, threads = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
g = torch.Generator().manual_seed(0)
W = 128

def param(*shape):
    return (torch.rand(*shape, generator=g) - 0.5).mul_(0.1).requires_grad_()

params = []
cin = 1
for _ in range(3):
    params += [param(W, cin, 3, 3), param(W), param(W).detach().add_(1).requires_grad_(), param(W)]
    cin = W
params += [param(10, W * 4 * 4), param(10)]

def forward(x):
    h = x
    for d in range(3):
        w, b, gw, gb = params[4 * d: 4 * d + 4]
        h = F.conv2d(h, w, b, padding=3 if d == 0 else 1)
        h = F.group_norm(h, W, gw, gb)
        h = F.avg_pool2d(F.relu(h), 2)
    return F.linear(h.flatten(1), params[12], params[13])

x = torch.randn(256, 1, 28, 28, generator=g)
y = torch.randint(0, 10, (256,), generator=g)
targets = [torch.randn(p.shape, generator=g) for p in params]

def fwd():
    with torch.no_grad():
        forward(x)

def fwd_bwd():
    loss = F.cross_entropy(forward(x), y)
    torch.autograd.grad(loss, params)

def double_bwd():
    xs = x.clone().requires_grad_()
    loss = F.cross_entropy(forward(xs), y)
    gw = torch.autograd.grad(loss, params, create_graph=True)
    d = sum(((a - t) ** 2).sum() for a, t in zip(gw, targets))
    torch.autograd.grad(d, [xs])

out = {}
for name, fn in [('forward', fwd), ('forwardBackward', fwd_bwd), ('doubleBackward', double_bwd)]:
    fn(); fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter(); fn(); times.append((time.perf_counter() - t0) * 1000)
    out[name] = times
print(json.dumps(out))
