# Reference run for bench/mtt.ts: MTT iterations in the structure of the reference
# distill.py (a flat parameter vector for the student, syn_steps SGD steps on
# minibatches of the synthetic set with DiffAugment per batch and a learnable lr,
# create_graph at every step, the normalised parameter distance, one backward to
# the images and the lr). MNIST-shaped data, ConvNet-3 as functional ops on slices
# of the flat vector. Written for this benchmark from the published algorithm.
# The 5th argument 'tesla' runs TESLA's iteration instead (tesla distill.py: a forward pass
# that keeps only detached parameters and the summed step gradients, then one recomputed step
# graph at a time for the image gradient, and the lr gradient with the step gradients as constants).
# Prints JSON: {"seconds": [...], "maxRssKiB": n}.
import json, resource, sys, time
import torch
import torch.nn.functional as F

iterations, threads, ipc, syn_steps = (int(a) for a in sys.argv[1:5])
method = sys.argv[5] if len(sys.argv) > 5 else 'mtt'
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
def mtt_iteration():
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

def tesla_iteration():
    param_dist = F.mse_loss(start, target, reduction='sum')
    student = [start.clone().requires_grad_(True)]
    xs, ys, originals, chunks = [], [], [], []
    gradient_sum = torch.zeros_like(start)
    for step in range(syn_steps):
        idx = torch.randperm(len(image_syn))
        x = image_syn[idx]
        originals.append(x)
        chunks.append(idx)
        x = diff_augment(x)
        xs.append(x.clone()); ys.append(label_syn[idx])
        ce = F.cross_entropy(forward(student[-1], x), label_syn[idx])
        grad = torch.autograd.grad(ce, student[-1], create_graph=True, retain_graph=True)[0]
        detached = grad.detach().clone()
        student.append(student[-1] - syn_lr.item() * detached)
        gradient_sum += detached
        del grad
    image_grad = torch.zeros_like(image_syn)
    for i in range(syn_steps):
        w = student[i]
        ce = F.cross_entropy(forward(w, xs[i]), ys[i])
        g = torch.autograd.grad(ce, w, create_graph=True, retain_graph=True)[0]
        pair = syn_lr.item() * (target - start) + syn_lr.item() ** 2 * gradient_sum
        gi = torch.autograd.grad(pair @ g / param_dist, originals[i])[0]
        with torch.no_grad():
            image_grad[chunks[i]] += gi
    image_syn.grad = image_grad
    loss = start - syn_lr * gradient_sum - target
    loss = loss.dot(loss) / param_dist
    syn_lr.grad = torch.autograd.grad(loss, syn_lr)[0]
    opt_img.step(); opt_lr.step()

out = []
for it in range(iterations + 1):
    t0 = time.perf_counter()
    (tesla_iteration if method == 'tesla' else mtt_iteration)()
    if it >= 1:
        out.append(time.perf_counter() - t0)
print(json.dumps({'seconds': out, 'maxRssKiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
