# Reference run for bench/eval.ts: evaluation training in the structure of the
# DC/DSA reference code (utils.py evaluate_synset / epoch / DiffAugment): a
# TensorDataset + DataLoader over the synthetic set, DSA per batch (mode 'S',
# not Siamese), ConvNet-3, SGD momentum 0.9, wd 5e-4. Written for this benchmark
# from the published algorithm. Prints JSON: seconds per trained network, per run.
import json, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

runs, epochs, threads, ipc = (int(a) for a in sys.argv[1:5])
torch.set_num_threads(threads)
torch.manual_seed(0)

class P:  # DSA parameters of the reference
    prob_flip, ratio_scale, ratio_rotate, ratio_crop_pad, ratio_cutout = 0.5, 1.2, 15.0, 0.125, 0.5
    brightness, saturation, contrast = 1.0, 2.0, 0.5

def scale(x):
    sx = torch.rand(x.shape[0]) * (P.ratio_scale - 1.0 / P.ratio_scale) + 1.0 / P.ratio_scale
    sy = torch.rand(x.shape[0]) * (P.ratio_scale - 1.0 / P.ratio_scale) + 1.0 / P.ratio_scale
    theta = torch.tensor([[[sx[i], 0, 0], [0, sy[i], 0]] for i in range(x.shape[0])], dtype=torch.float)
    return F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=False), align_corners=False)

def rotate(x):
    t = (torch.rand(x.shape[0]) - 0.5) * 2 * P.ratio_rotate / 180 * float(np.pi)
    theta = torch.tensor([[[torch.cos(t[i]), torch.sin(-t[i]), 0], [torch.sin(t[i]), torch.cos(t[i]), 0]] for i in range(x.shape[0])], dtype=torch.float)
    return F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=False), align_corners=False)

def color(x):
    x = x + (torch.rand(x.size(0), 1, 1, 1) - 0.5) * P.brightness
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * (torch.rand(x.size(0), 1, 1, 1) * P.saturation) + m
    m = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - m) * (torch.rand(x.size(0), 1, 1, 1) + P.contrast) + m

def crop(x):
    sx, sy = int(x.size(2) * P.ratio_crop_pad + 0.5), int(x.size(3) * P.ratio_crop_pad + 0.5)
    tx = torch.randint(-sx, sx + 1, size=[x.size(0), 1, 1])
    ty = torch.randint(-sy, sy + 1, size=[x.size(0), 1, 1])
    gb, gx, gy = torch.meshgrid(torch.arange(x.size(0)), torch.arange(x.size(2)), torch.arange(x.size(3)), indexing='ij')
    gx = torch.clamp(gx + tx + 1, 0, x.size(2) + 1)
    gy = torch.clamp(gy + ty + 1, 0, x.size(3) + 1)
    xp = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return xp.permute(0, 2, 3, 1).contiguous()[gb, gx, gy].permute(0, 3, 1, 2)

def cutout(x):
    cs = int(x.size(2) * P.ratio_cutout + 0.5), int(x.size(3) * P.ratio_cutout + 0.5)
    ox = torch.randint(0, x.size(2) + (1 - cs[0] % 2), size=[x.size(0), 1, 1])
    oy = torch.randint(0, x.size(3) + (1 - cs[1] % 2), size=[x.size(0), 1, 1])
    gb, gx, gy = torch.meshgrid(torch.arange(x.size(0)), torch.arange(cs[0]), torch.arange(cs[1]), indexing='ij')
    gx = torch.clamp(gx + ox - cs[0] // 2, min=0, max=x.size(2) - 1)
    gy = torch.clamp(gy + oy - cs[1] // 2, min=0, max=x.size(3) - 1)
    mask = torch.ones(x.size(0), x.size(2), x.size(3))
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)

GROUPS = [color, crop, cutout, scale, rotate]  # digits: no flip

def diff_augment(x):
    return GROUPS[torch.randint(0, len(GROUPS), size=(1,)).item()](x).contiguous()

class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        layers, c = [], 1
        for d in range(3):
            layers += [nn.Conv2d(c, 128, 3, padding=3 if d == 0 else 1), nn.GroupNorm(128, 128, affine=True), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2)]
            c = 128
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(128 * 4 * 4, 10)
    def forward(self, x):
        # reshape, not view: after the crop on 1-channel images the features come out channels-last
        return self.classifier(self.features(x).reshape(x.size(0), -1))

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
