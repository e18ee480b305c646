#!/usr/bin/python3
"""torchvision side of bench/bench_detectors.cpp: RetinaNet and Faster R-CNN R50-FPN (7 classes,
3 trainable backbone stages, frozen BatchNorm), a training step (forward, losses, backward, SGD with
momentum) and inference (eval-mode forward + post-processing), at 1024 px, batch 4, on CUDA.

GPU machine (its PyTorch):  python3 scripts/bench_torch_detectors.py [--size 1024 --batch 4]
TF32 convolutions and cudnn.benchmark, as bench_detectors sets them. The models' transform keeps
the input size (min_size = max_size = size), so both sides see the same tensors' shapes. Random
input and 4 random boxes per image, like bench_detectors (not the same values).
Prints one line per case: median ms per step and images/s (CUDA events around each step)."""
import argparse
import statistics

import torch
import torchvision
from torchvision.models import resnet50
from torchvision.models.detection import FasterRCNN, RetinaNet
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d


def make(name, size):
    """The detector as bench_detectors builds ours: ResNet-50 with FrozenBatchNorm2d, FPN, 3 trainable
    backbone stages (layer2-4), 7 classes. Built from torchvision's parts because its
    retinanet_resnet50_fpn / fasterrcnn_resnet50_fpn, without pretrained weights, silently fall back
    to 5 trainable stages and plain (trained) BatchNorm2d, which is not this configuration."""
    backbone = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    kw = dict(min_size=size, max_size=size)
    if name == "retinanet":  # P3-P7 (LastLevelP6P7 from P5's FPN output, as ours), as retinanet_resnet50_fpn
        fpn = _resnet_fpn_extractor(backbone, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
        return RetinaNet(fpn, num_classes=7, **kw)
    fpn = _resnet_fpn_extractor(backbone, 3)  # P2-P6, as fasterrcnn_resnet50_fpn
    return FasterRCNN(fpn, num_classes=8, **kw)  # + background, as torchvision counts


def timed(fn, steps):
    times = []
    for _ in range(steps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--models", nargs="+", default=["retinanet", "faster_rcnn"])
    a = ap.parse_args()
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    g = torch.Generator().manual_seed(1)
    for name in a.models:
        torch.manual_seed(0)
        m = make(name, a.size).cuda()
        imgs = [torch.rand(3, a.size, a.size, generator=g).cuda() for _ in range(a.batch)]
        targets = []
        for _ in range(a.batch):
            xy = torch.rand(4, 2, generator=g) * a.size * 0.7
            wh = a.size * (0.05 + 0.2 * torch.rand(4, 2, generator=g))
            targets.append({"boxes": torch.cat([xy, xy + wh], 1).cuda(),
                            "labels": torch.tensor([1, 2, 5, 7] if name == "faster_rcnn" else [0, 1, 4, 6]).cuda()})
        opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

        def train_step():
            losses = m(imgs, targets)
            total = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()

        m.train()
        for _ in range(3):
            train_step()
        ms = timed(train_step, a.steps)
        print(f"torchvision {torchvision.__version__} {name} train step {a.size}px batch {a.batch}: "
              f"{ms:.1f} ms, {a.batch / ms * 1e3:.1f} images/s", flush=True)
        m.eval()

        def infer():
            with torch.no_grad():
                m(imgs)

        for _ in range(3):
            infer()
        ms = timed(infer, a.steps)
        print(f"torchvision {torchvision.__version__} {name} inference {a.size}px batch {a.batch}: "
              f"{ms:.1f} ms, {a.batch / ms * 1e3:.1f} images/s", flush=True)
        del m, opt
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
