#!/usr/bin/python3
"""torchvision's side of bench/bench_memory.cpp: the peak resident memory of one training step of
retinanet_resnet50_fpn or fasterrcnn_resnet50_fpn (7 classes, 3 trainable backbone stages, frozen
BatchNorm, 3-channel input; built by scripts/bench_torch_detectors.py make()) on the CPU, one
configuration per process, so the process's peak resident set (VmHWM) is that step's peak.

    /usr/bin/python3 scripts/memory_torch_detectors.py --model retinanet --size 1024 --batch 2

The step: forward with losses, their sum, backward, SGD with momentum (lr 1e-4), zero_grad; one
warm-up step, then the measured one, as bench_memory does. The transform keeps the input size
(min_size = max_size = size), so both sides see tensors of the same shapes. Random images and 4
random boxes per image (the same shapes as bench_memory's, not the same values). Threads: 2
(torch.set_num_threads), as OMP_NUM_THREADS=2 for ours. Prints one line in bench_memory's format."""
import argparse
import time

import torch
import torchvision

from bench_torch_detectors import make  # the model as bench_detectors' comparison builds it


def status_gb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1e3 / 1e9
    return -1.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["retinanet", "faster_rcnn"], default="retinanet")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = make(a.model, a.size)
    labels = [0, 1, 4, 6] if a.model == "retinanet" else [1, 2, 5, 7]  # torchvision's 0 is background
    g = torch.Generator().manual_seed(1)
    imgs = [torch.rand(3, a.size, a.size, generator=g) for _ in range(a.batch)]
    targets = []
    for _ in range(a.batch):
        xy = torch.rand(4, 2, generator=g) * a.size * 0.7
        wh = a.size * (0.05 + 0.2 * torch.rand(4, 2, generator=g))
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.tensor(labels)})
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    m.train()
    rss_setup = status_gb("VmRSS")

    def step():
        losses = m(imgs, targets)
        total = sum(losses.values())
        total.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up
    t = time.perf_counter()
    step()
    secs = time.perf_counter() - t
    print(f"torchvision-{torchvision.__version__} {a.model} size={a.size} batch={a.batch} "
          f"peak_rss_gb={status_gb('VmHWM'):.3f} rss_setup_gb={rss_setup:.3f} step_s={secs:.1f} "
          f"trainable_params={sum(p.numel() for p in params)}", flush=True)


if __name__ == "__main__":
    main()
