# Reference run for bench/mtt.ts: MTT iterations in the structure of the reference
# distill.py (a flat parameter vector for the student, syn_steps SGD steps on
# minibatches of the synthetic set with DiffAugment per batch and a learnable lr,
# create_graph at every step, the normalised parameter distance, one backward to
# the images and the lr). MNIST-shaped data, ConvNet-3 as functional ops on slices
# of the flat vector. Written for this benchmark from the published algorithm.
# Prints JSON: {"seconds": [...], "maxRssKiB": n}.
import json, resource, sys, time
import torch
import torch.nn.functional as F

iterations, threads, ipc, syn_steps = (int(a) for a in sys.argv[1:5])
torch.set_num_threads(threads)
torch.manual_seed(0)

from reference_torch import GROUPS

W = 128
shapes = []
c = 1
for d in range(3):
    shapes += [(W, c, 3, 3), (W,), (W,), (W,)]  # conv weight, conv bias, norm weight, norm bias
    c = W
shapes += [(10, W * 4 * 4), (10,)]
sizes = [int(torch.tensor(s).prod()) for s in shapes]

def forward(flat, x):
    ps = [p.view(s) for p, s in zip(torch.split(flat, sizes), shapes)]
    h = x
    for d in range(3):
        w, b, gw, gb = ps[4 * d:4 * d + 4]
        h = F.conv2d(h, w, b, padding=3 if d == 0 else 1)
        h = F.avg_pool2d(F.relu(F.group_norm(h, W, gw, gb)), 2)
    return F.linear(h.flatten(1), ps[12], ps[13])

def diff_augment(x):
    return GROUPS[torch.randint(0, len(GROUPS), size=(1,)).item()](x).contiguous()

P = sum(sizes)
start = torch.randn(P) * 0.05
target = start + torch.randn(P) * 0.01
image_syn = torch.randn(10 * ipc, 1, 28, 28, requires_grad=True)
label_syn = torch.arange(10).repeat_interleave(ipc)
syn_lr = torch.tensor(0.01, requires_grad=True)
opt_img = torch.optim.SGD([image_syn], lr=100, momentum=0.5)
opt_lr = torch.optim.SGD([syn_lr], lr=1e-5, momentum=0.5)
out = []
for it in range(iterations + 1):
    t0 = time.perf_counter()
    student = [start.clone().requires_grad_(True)]
    for step in range(syn_steps):
        idx = torch.randperm(len(image_syn))
        x = diff_augment(image_syn[idx])
        ce = F.cross_entropy(forward(student[-1], x), label_syn[idx])
        grad = torch.autograd.grad(ce, student[-1], create_graph=True)[0]
        student.append(student[-1] - syn_lr * grad)
    loss = F.mse_loss(student[-1], target, reduction='sum') / F.mse_loss(start, target, reduction='sum')
    opt_img.zero_grad(); opt_lr.zero_grad()
    loss.backward()
    opt_img.step(); opt_lr.step()
    del student
    if it >= 1:
        out.append(time.perf_counter() - t0)
print(json.dumps({'seconds': out, 'maxRssKiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
