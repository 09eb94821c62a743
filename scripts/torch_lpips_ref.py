"""PyTorch CPU reference for Distillery's `lpips` benchmark workload (docs/benchmarks.md),
timed as ../shared/bench/torch_ref.py times its workloads, which has no LPIPS workload.

lpips: the `lpips` package's LPIPS alex (v0.1 heads; random trunk via pnet_rand=True, since
the torchvision weights need a download and do not change the time), forward and backward
with respect to the first images on 16 pairs of 3 x 64 x 64 in [-1, 1].

Usage: python scripts/torch_lpips_ref.py [lpips]   (scripts/bench-side-by-side.sh takes it)
Prints one JSON object: median seconds per step with 2 threads, and the peak resident memory.
Needs torch and lpips (pip install torch lpips).
"""
import json, resource, statistics, sys, time, warnings

import torch

torch.set_num_threads(2)
torch.manual_seed(0)


def timeit(fn, warm=3, reps=15):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def lpips_alex():
    import lpips
    warnings.filterwarnings("ignore")  # torchvision's `pretrained=` deprecation
    m = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    a = torch.rand(16, 3, 64, 64) * 2 - 1
    b = torch.rand(16, 3, 64, 64) * 2 - 1

    def step():
        x = a.clone().requires_grad_()
        m(x, b).sum().backward()
        assert x.grad is not None

    return timeit(step)


if __name__ == "__main__":
    names = sys.argv[1:] or ["lpips"]
    res = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for n in names:
        res[{"lpips": "lpips_alex_fwd_bwd_16x64_s"}[n]] = {"lpips": lpips_alex}[n]()
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))
