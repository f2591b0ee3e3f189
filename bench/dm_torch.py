# Reference run for bench/dm.ts: one DM iteration in the structure of the
# reference main_DM.py (per class: a real batch of 256, Siamese DiffAugment of the
# real and synthetic batch with one seed, embed, mean matching; a fresh random
# ConvNet each iteration; SGD on the images, lr 1, momentum 0.5). Written for this
# benchmark from the published algorithm. Prints JSON: seconds per iteration.
# The 5th argument, 'float32' (default) or 'bfloat16', is the real pass's precision: bfloat16
# runs the real embedding on a bfloat16 channels-last copy of the network with bfloat16
# channels-last inputs (the manual casts torch.autocast would make; autocast itself fails on
# GroupNorm in PyTorch 1.13), as Distillery's realDtype bfloat16 does.
import copy, json, sys, time
import numpy as np
import torch

iterations, threads, ipc, batch_real = (int(a) for a in sys.argv[1:5])
precision = sys.argv[5] if len(sys.argv) > 5 else 'float32'
torch.set_num_threads(threads)

from reference_torch import GROUPS, ConvNet

def diff_augment(x, seed):
    # Siamese as in the reference: the same seed gives the real and the synthetic batch the
    # same group. (The reference also copies the first image's parameters to the whole batch;
    # that does not change the cost, which is what this script measures.)
    torch.random.manual_seed(seed)
    group = GROUPS[torch.randint(0, len(GROUPS), size=(1,)).item()]
    torch.random.manual_seed(seed + 1)
    return group(x).contiguous()


real = torch.rand(10 * 6000, 1, 28, 28)  # stands in for MNIST (same shapes and per-class sizes)
indices_class = [list(range(c * 6000, (c + 1) * 6000)) for c in range(10)]
image_syn = torch.randn(10 * ipc, 1, 28, 28, requires_grad=True)
optimizer_img = torch.optim.SGD([image_syn], lr=1.0, momentum=0.5)
out = []
for it in range(iterations + 2):
    t0 = time.perf_counter()
    net = ConvNet()
    for p in net.parameters():
        p.requires_grad = False
    if precision == 'bfloat16':
        low = copy.deepcopy(net).to(torch.bfloat16).to(memory_format=torch.channels_last)
        embed_real = lambda x: low.embed(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)).float()
    else:
        embed_real = net.embed
    loss = torch.tensor(0.0)
    for c in range(10):
        img_real = real[np.random.permutation(indices_class[c])[:batch_real]]
        img_syn = image_syn[c * ipc:(c + 1) * ipc]
        seed = it * 100 + c
        img_real = diff_augment(img_real, seed)
        img_syn = diff_augment(img_syn, seed)
        with torch.no_grad():
            output_real = embed_real(img_real).detach()
        output_syn = net.embed(img_syn)
        loss = loss + torch.sum((torch.mean(output_real, dim=0) - torch.mean(output_syn, dim=0)) ** 2)
    optimizer_img.zero_grad()
    loss.backward()
    optimizer_img.step()
    if it >= 2:  # two warm-up iterations
        out.append(time.perf_counter() - t0)
print(json.dumps(out))
