#!/usr/bin/python3
"""Times torchvision's detection ops at the sizes of bench/bench_detection.cpp, on the CPU or CUDA.

CPU, Debian's python3 (torch + torchvision):  /usr/bin/python3 scripts/bench_torchvision_ops.py [threads]
GPU machine (its PyTorch):                    python3 scripts/bench_torchvision_ops.py cuda
  On CUDA each repetition is timed with CUDA events on the current stream (as bench_detection's
  CUDA cases are), after a warm-up; the "cpu" column is then the host wall time of the call.
Same data distributions as the C++ benchmark (not the same random values):
  RoIAlign: MultiScaleRoIAlign(7x7, sampling 2) over 4 FPN levels (2 x 256 x 256^2 .. 32^2) of a
            1024 x 1024 batch of 2, 512 RoIs (sizes log-uniform in [32, 512)), forward and backward;
  NMS: boxes with centres uniform in [0, 1024)^2 and sides uniform in [16, 128), uniform scores,
       IoU 0.5: nms for 1 class, batched_nms for 7 classes, on 1k, 10k, 50k boxes;
  focal loss: sigmoid_focal_loss on [100000, 7] logits (one-hot targets), sum, forward + backward;
  IoU matrix: box_iou 1000 x 10000.
Prints one line per op: median wall and process-CPU milliseconds over the repetitions.
"""
import statistics
import sys
import time

import numpy as np
import torch
from torchvision.ops import MultiScaleRoIAlign, batched_nms, box_iou, nms, sigmoid_focal_loss

arg = sys.argv[1] if len(sys.argv) > 1 else "2"
DEV = "cuda" if arg == "cuda" else "cpu"
threads = 2 if DEV == "cuda" else int(arg)
torch.set_num_threads(threads)
rng = np.random.default_rng(0)


def timeit(fn, reps=5, min_time=1.0):
    """(median wall ms, median process-CPU ms) over the repetitions; on CUDA (median event ms,
    median host wall ms)."""
    fn()  # warm-up
    if DEV == "cuda":
        torch.cuda.synchronize()
        times, host = [], []
        t_end = time.perf_counter() + min_time
        while len(times) < max(reps, 10) or time.perf_counter() < t_end:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            a.record()
            fn()
            b.record()
            b.synchronize()
            host.append(time.perf_counter() - t0)
            times.append(a.elapsed_time(b) / 1e3)
            if len(times) >= 200:
                break
        return statistics.median(times) * 1e3, statistics.median(host) * 1e3
    times, cpu = [], []
    t_end = time.perf_counter() + min_time
    while len(times) < reps or time.perf_counter() < t_end:
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if len(times) >= 50:
            break
    return statistics.median(times) * 1e3, statistics.median(cpu) * 1e3


def boxes(n):
    c = rng.uniform(0, 1024, (n, 2))
    wh = rng.uniform(16, 128, (n, 2))
    return torch.tensor(np.concatenate([c - wh / 2, c + wh / 2], 1), dtype=torch.float32, device=DEV)


results = []

# RoIAlign over FPN levels.
feats = {f"p{l}": torch.tensor(rng.uniform(-1, 1, (2, 256, 1024 >> l, 1024 >> l)), dtype=torch.float32, device=DEV)
         for l in range(2, 6)}
pool = MultiScaleRoIAlign(list(feats.keys()), 7, 2)
bl = []
for img in range(2):
    size = 32 * 16 ** rng.uniform(0, 1, 256)
    ar = 2 ** rng.uniform(-1, 1, 256)
    w = np.minimum(1024, size * np.sqrt(ar))
    h = np.minimum(1024, size / np.sqrt(ar))
    x = rng.uniform(0, 1, 256) * (1024 - w)
    y = rng.uniform(0, 1, 256) * (1024 - h)
    bl.append(torch.tensor(np.stack([x, y, x + w, y + h], 1), dtype=torch.float32, device=DEV))
shapes = [(1024, 1024), (1024, 1024)]
with torch.no_grad():
    results.append(("roi_align_fpn_forward", timeit(lambda: pool(feats, bl, shapes))))
fg = {k: v.clone().requires_grad_(True) for k, v in feats.items()}
out = pool(fg, bl, shapes)
gout = torch.rand_like(out)


def roi_backward():
    for v in fg.values():
        v.grad = None
    o = pool(fg, bl, shapes)
    o.backward(gout)


def roi_forward_only():
    pool(fg, bl, shapes)


fb = timeit(roi_backward, reps=3)
ff = timeit(roi_forward_only, reps=3)
results.append(("roi_align_fpn_backward (fwd+bwd minus fwd)", (fb[0] - ff[0], fb[1] - ff[1])))

# NMS.
for n in (1000, 10000, 50000):
    b = boxes(n)
    s = torch.rand(n, device=DEV)
    idx = torch.randint(0, 7, (n,), device=DEV)
    results.append((f"nms_1class_{n}", timeit(lambda: nms(b, s, 0.5), reps=3)))
    results.append((f"batched_nms_7class_{n}", timeit(lambda: batched_nms(b, s, idx, 0.5), reps=3)))

# Focal loss.
x = torch.tensor(rng.uniform(-4, 4, (100000, 7)), dtype=torch.float32, device=DEV)
t = torch.nn.functional.one_hot(torch.randint(0, 8, (100000,), device=DEV), 8)[:, :7].float()


def focal():
    xi = x.detach().requires_grad_(True)
    loss = sigmoid_focal_loss(xi, t, reduction="sum") / 100.0
    loss.backward()


results.append(("focal_loss_fwd_bwd_100kx7", timeit(focal)))

a1, a2 = boxes(1000), boxes(10000)
results.append(("box_iou_1k_x_10k", timeit(lambda: box_iou(a1, a2))))

if DEV == "cuda":
    print(f"# torch {torch.__version__}, torchvision CUDA on {torch.cuda.get_device_name()}; median event ms, median host wall ms")
    for name, (ms, host_ms) in results:
        print(f"{name:45s} {ms:10.3f} ms event {host_ms:10.3f} ms host")
else:
    print(f"# torch {torch.__version__}, threads {threads}; median wall ms, median process CPU ms")
    for name, (ms, cpu_ms) in results:
        print(f"{name:45s} {ms:10.3f} ms wall {cpu_ms:10.3f} ms cpu")
