"""PyTorch eager side of bench/inference.sh: the same architectures, inputs
and timing rule (best of REPS after one warm-up), one JSON line per case."""
import json
import os
import time

import torch
from monai.networks.nets import SegResNet
from torchvision.models import densenet121, efficientnet_b0

torch.set_grad_enabled(False)
reps = int(os.environ.get("REPS", "3"))
batches = [int(b) for b in os.environ.get("BATCHES", "1,16").split(",")]
models = {
    "densenet121": densenet121(num_classes=14).eval(),
    "efficientnet_b0": efficientnet_b0(num_classes=6).eval(),
}
seg = SegResNet(spatial_dims=3, init_filters=16, in_channels=4, out_channels=3, blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1)).eval()


def best(f):
    f()
    t = float("inf")
    for _ in range(reps):
        s = time.perf_counter()
        f()
        t = min(t, time.perf_counter() - s)
    return t * 1000


for b in batches:
    for name, m in models.items():
        x = torch.randn(b, 3, 224, 224)
        ms = best(lambda: m(x).sum().item())
        print(json.dumps({"arch": name, "batch": b, "size": 224, "ms_per_batch": round(ms, 2), "images_per_s": round(b * 1000 / ms, 2)}))
    if b <= 2:
        x = torch.randn(b, 4, 64, 64, 64)
        ms = best(lambda: seg(x).sum().item())
        print(json.dumps({"arch": "segresnet", "batch": b, "size": 64, "ms_per_batch": round(ms, 2), "images_per_s": round(b * 1000 / ms, 2)}))
