# Reference run for bench/eval.ts: evaluation training in the structure of the
# DC/DSA reference code (utils.py evaluate_synset / epoch / DiffAugment): a
# TensorDataset + DataLoader over the synthetic set, DSA per batch (mode 'S',
# not Siamese), ConvNet-3, SGD momentum 0.9, wd 5e-4. Written for this benchmark
# from the published algorithm. Prints JSON: seconds per trained network, per run.
# The 5th argument, 'float32' (default) or 'bfloat16', selects mixed precision as Distillery's
# protocol.precision does: each step's forward and backward run on a bfloat16 channels-last copy of
# the float32 weights with bfloat16 channels-last inputs, the loss on float32 logits, and the
# gradients come back to the float32 weights that SGD updates (torch.autocast's recipe, written as
# manual casts because autocast fails on GroupNorm in PyTorch 1.13).
import copy, json, sys, time
import torch
import torch.nn.functional as F

runs, epochs, threads, ipc = (int(a) for a in sys.argv[1:5])
precision = sys.argv[5] if len(sys.argv) > 5 else 'float32'
torch.set_num_threads(threads)
torch.manual_seed(0)

from reference_torch import GROUPS, ConvNet

def diff_augment(x):
    return GROUPS[torch.randint(0, len(GROUPS), size=(1,)).item()](x).contiguous()

images = torch.randn(10 * ipc, 1, 28, 28)
labels = torch.arange(10).repeat_interleave(ipc)
out = []
for r in range(runs + 1):
    t0 = time.perf_counter()
    net = ConvNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=256, shuffle=True, num_workers=0)
    low = copy.deepcopy(net).to(torch.bfloat16).to(memory_format=torch.channels_last) if precision == 'bfloat16' else None
    for ep in range(epochs + 1):
        net.train()
        for x, y in loader:
            x = diff_augment(x)
            opt.zero_grad()
            if low is None:
                F.cross_entropy(net(x), y).backward()
            else:
                with torch.no_grad():
                    for pl, p in zip(low.parameters(), net.parameters()):
                        pl.copy_(p)
                low.zero_grad()
                xl = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
                F.cross_entropy(low(xl).float(), y).backward()
                for pl, p in zip(low.parameters(), net.parameters()):
                    p.grad = pl.grad.float()
            opt.step()
        if ep == epochs // 2 + 1:
            opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9, weight_decay=0.0005)
    if r > 0:  # the first network warms up
        out.append(time.perf_counter() - t0)
print(json.dumps(out))
