#!/usr/bin/python3
"""PyTorch side of bench/bench_layers.cpp: the same ResNet (or DenseNet: --arch densenet121) training step (forward, cross-entropy,
backward, plain SGD update p -= 0.01 * grad) on the same shapes, timed the same way.

CPU (Debian's python3-torch, 2 threads to match OMP_NUM_THREADS=2 for bench_layers):
    /usr/bin/python3 scripts/bench_torch_resnet.py --device cpu --threads 2 --batch 8
GPU machine (its PyTorch):
    python3 scripts/bench_torch_resnet.py --device cuda --batch 64
Prints one line per model: ms per step and images/s (median of the timed steps), and on the CPU the
process's peak resident memory (getrusage) before the model was built and after the timed steps
(run one model per process to read the second as that model's peak)."""
import argparse
import resource
import statistics
import time

import torch
import torchvision


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def bench(arch, device, batch, steps, warmup):
    rss0 = peak_rss_mib()
    torch.manual_seed(0)
    m = getattr(torchvision.models, arch)(weights=None, num_classes=1000).to(device).train()
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    params = [p for p in m.parameters() if p.requires_grad]

    def step():
        for p in params:
            p.grad = None
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-0.01)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    mem = f", peak RSS {peak_rss_mib():.0f} MiB (before the model {rss0:.0f} MiB)" if device == "cpu" else ""
    print(f"torch {torch.__version__} {arch} {device} batch {batch}: {med * 1000:.1f} ms/step, "
          f"{batch / med:.1f} images/s (median of {steps}, threads {torch.get_num_threads()}){mem}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--arch", nargs="+", default=["resnet18", "resnet50"])
    ap.add_argument("--no-tf32", action="store_true")
    a = ap.parse_args()
    if a.device == "cpu":
        torch.set_num_threads(a.threads)
    else:
        # Same precision as bench_layers' CUDA runs (TF32 convolutions/matmuls, PyTorch's cuDNN
        # default) unless --no-tf32; cudnn.benchmark because bench_layers times algorithms too.
        torch.backends.cudnn.allow_tf32 = not a.no_tf32
        torch.backends.cuda.matmul.allow_tf32 = not a.no_tf32
        torch.backends.cudnn.benchmark = True
    for arch in a.arch:
        bench(arch, a.device, a.batch, a.steps, a.warmup)


if __name__ == "__main__":
    main()
