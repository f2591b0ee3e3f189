# The pieces both reference scripts share: the DSA operations of the reference
# utils.py (written from the published algorithm) and ConvNet-3 for 1x28x28 inputs.
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

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

class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        layers, c = [], 1
        for d in range(3):
            layers += [nn.Conv2d(c, 128, 3, padding=3 if d == 0 else 1), nn.GroupNorm(128, 128, affine=True), nn.ReLU(inplace=True), nn.AvgPool2d(2, 2)]
            c = 128
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(128 * 4 * 4, 10)
    def embed(self, x):
        # reshape, not view: after the crop on 1-channel images the features come out channels-last
        return self.features(x).reshape(x.size(0), -1)

    def forward(self, x):
        return self.classifier(self.embed(x))

