"""torch_ref.py's workloads on one thread, each step timed in process CPU time.

Usage: python scripts/torch_ref_cpu_time.py PATH/TO/torch_ref.py WORKLOAD [...]
As torch_ref.py (same warm-up and repetitions, same JSON keys), with torch.set_num_threads(1)
and time.process_time() instead of time.perf_counter(): on a shared machine the CPU time of
one thread is what compares with `DISTILL_NUM_THREADS=1 DISTILL_BENCH_CLOCK=cpu pipeline bench`
(docs/benchmarks.md). Run one workload per process to read its own peak memory.
"""
import importlib.util, json, resource, statistics, sys, time

spec = importlib.util.spec_from_file_location("torch_ref", sys.argv[1])
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
torch = ref.torch
torch.set_num_threads(1)


def timeit(fn, warm=3, reps=15):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.process_time(); fn(); ts.append(time.process_time() - t0)
    return statistics.median(ts)


ref.timeit = timeit
keys = {"gemm": "sgemm_1024_gflops", "w1": "w1_toy2d_dmd_step_s", "w2": "w2_unet32_train_step_s",
        "w3": "w3_dmd_unet32_step_s", "w5": "w5_unet35m_train_step_s", "w5bf16": "w5_unet35m_train_step_bf16_s"}
runs = {"gemm": ref.gemm, "w1": ref.w1, "w2": ref.w2, "w3": ref.w3, "w4": ref.w4, "w5": ref.w5,
        "w5bf16": lambda: ref.w5(torch.bfloat16)}
res = {"torch": torch.__version__, "threads": torch.get_num_threads(), "clock": "process_time"}
for name in sys.argv[2:]:
    r = runs[name]()
    if isinstance(r, dict): res.update(r)
    else: res[keys[name]] = r
res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(res))
