# Reference run for bench/dc.ts: DC outer iterations in the structure of the
# reference main.py (a fresh ConvNet per outer iteration; per outer-loop step and
# per class: the gradient of CE on a real batch, detached, and on the class's
# synthetic images with create_graph; the layer-wise distance summed over classes;
# one backward; SGD on the images lr 0.1 momentum 0.5; then inner_loop epochs of
# training the network on the synthetic set, SGD lr 0.01, batch 256). No
# augmentation. Written for this benchmark from the published algorithm.
# Prints JSON: seconds per outer iteration. The 7th argument, 'float32' (default) or 'bfloat16',
# is the precision of the real-batch gradients: bfloat16 takes them on a bfloat16 channels-last
# copy of the network (made at each image update, as the network changes between them) with
# bfloat16 channels-last inputs and casts them back to float32, as Distillery's realDtype does.
import copy, json, sys, time
import numpy as np
import torch
import torch.nn.functional as F

iterations, threads, ipc, batch_real, outer_loop, inner_loop = (int(a) for a in sys.argv[1:7])
precision = sys.argv[7] if len(sys.argv) > 7 else 'float32'
torch.set_num_threads(threads)

from reference_torch import ConvNet

def distance_wb(gwr, gws):
    shape = gwr.shape
    if len(shape) == 1:  # biases and norm parameters: nothing
        return torch.tensor(0.0)
    gwr = gwr.reshape(shape[0], -1)
    gws = gws.reshape(shape[0], -1)
    return torch.sum(1 - torch.sum(gwr * gws, dim=-1) / (torch.norm(gwr, dim=-1) * torch.norm(gws, dim=-1) + 0.000001))

def match_loss(gw_syn, gw_real):
    return sum(distance_wb(r, s) for r, s in zip(gw_real, gw_syn))

real = torch.rand(10 * 6000, 1, 28, 28)  # stands in for MNIST (same shapes and per-class sizes)
indices_class = [list(range(c * 6000, (c + 1) * 6000)) for c in range(10)]
image_syn = torch.randn(10 * ipc, 1, 28, 28, requires_grad=True)
label_syn = torch.arange(10).repeat_interleave(ipc)
optimizer_img = torch.optim.SGD([image_syn], lr=0.1, momentum=0.5)
out = []
for it in range(iterations + 1):
    t0 = time.perf_counter()
    net = ConvNet()
    net.train()
    params = list(net.parameters())
    optimizer_net = torch.optim.SGD(net.parameters(), lr=0.01)
    for ol in range(outer_loop):
        loss = torch.tensor(0.0)
        if precision == 'bfloat16':
            low = copy.deepcopy(net).to(torch.bfloat16).to(memory_format=torch.channels_last)
            low_params = list(low.parameters())
        for c in range(10):
            img_real = real[np.random.permutation(indices_class[c])[:batch_real]]
            lab_real = torch.ones((img_real.shape[0],), dtype=torch.long) * c
            img_syn = image_syn[c * ipc:(c + 1) * ipc]
            lab_syn = torch.ones((ipc,), dtype=torch.long) * c
            if precision == 'bfloat16':
                x = img_real.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
                gw_real = torch.autograd.grad(F.cross_entropy(low(x).float(), lab_real), low_params)
                gw_real = [g.float().contiguous() for g in gw_real]
            else:
                gw_real = torch.autograd.grad(F.cross_entropy(net(img_real), lab_real), params)
                gw_real = [g.detach().clone() for g in gw_real]
            gw_syn = torch.autograd.grad(F.cross_entropy(net(img_syn), lab_syn), params, create_graph=True)
            loss = loss + match_loss(gw_syn, gw_real)
        optimizer_img.zero_grad()
        loss.backward()
        optimizer_img.step()
        if ol == outer_loop - 1:
            break
        train = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(image_syn.detach().clone(), label_syn), batch_size=256, shuffle=True)
        for _ in range(inner_loop):
            for x, y in train:
                optimizer_net.zero_grad()
                F.cross_entropy(net(x), y).backward()
                optimizer_net.step()
    if it >= 1:  # one warm-up iteration
        out.append(time.perf_counter() - t0)
print(json.dumps(out))
