# Reference run for bench/bound.ts: a float32 GEMM and the ConvNet-3 work of DM's real pass and of
# one evaluation step in PyTorch on the same machine. Prints JSON: median seconds of each.
import json, sys, time
import torch
import torch.nn.functional as F

runs, threads = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
from reference_torch import ConvNet

def timed(fn, n):
    fn(); fn()
    t = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); t.append(time.perf_counter() - t0)
    return sorted(t)[len(t) // 2]

a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
cx, cw = torch.randn(64, 256, 32, 32), torch.randn(256, 256, 3, 3)

def big_conv():
    with torch.no_grad():
        F.conv2d(cx, cw, padding=1).sum().item()
net = ConvNet()
real = torch.randn(2560, 1, 28, 28)
batch, labels = torch.randn(100, 1, 28, 28), torch.randint(0, 10, (100,))
params = list(net.parameters())

def forward():
    with torch.no_grad():
        net.embed(real).sum().item()

def per_class():
    with torch.no_grad():
        for c in range(10):
            net.embed(real[c * 256:(c + 1) * 256]).sum().item()

def step():
    torch.autograd.grad(F.cross_entropy(net(batch), labels), params)

print(json.dumps({'gemm': timed(lambda: (a @ b).sum().item(), runs), 'bigConv': timed(big_conv, runs),
                  'forward': timed(forward, runs),
                  'forwardPerClass': timed(per_class, runs), 'step': timed(step, runs * 4)}))
