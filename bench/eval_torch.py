# Reference run for bench/eval.ts: evaluation training in the structure of the
# DC/DSA reference code (utils.py evaluate_synset / epoch / DiffAugment): a
# TensorDataset + DataLoader over the synthetic set, DSA per batch (mode 'S',
# not Siamese), ConvNet-3, SGD momentum 0.9, wd 5e-4. Written for this benchmark
# from the published algorithm. Prints JSON: seconds per trained network, per run.
import json, sys, time
import torch
import torch.nn.functional as F

runs, epochs, threads, ipc = (int(a) for a in sys.argv[1:5])
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
    for ep in range(epochs + 1):
        net.train()
        for x, y in loader:
            loss = F.cross_entropy(net(diff_augment(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if ep == epochs // 2 + 1:
            opt = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9, weight_decay=0.0005)
    if r > 0:  # the first network warms up
        out.append(time.perf_counter() - t0)
print(json.dumps(out))
