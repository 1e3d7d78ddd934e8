#!/usr/bin/env python3
"""The two ceilings of the issue-18 comparison on this machine: f32 matrix products at the shapes
that dominate a training step and a prefill (GFLOP/s), and the memory bandwidth that bounds a
decode step (GB/s).

`roofline.py sgemm` runs the products through the BLAS libraries the comparison is about:

- `torch`: PyTorch's CPU matmul (oneDNN / MKL in the PyPI wheel) — what `scripts/bench_pytorch.py`
  runs on;
- `numpy`: numpy's matmul (the OpenBLAS that its wheel bundles);
- `cblas:PATH`: `cblas_sgemm` of a shared library given with `--lib PATH` (for example Debian's
  OpenBLAS or BLIS), called through ctypes on numpy's buffers — the library a Rust BLAS feature
  would link.

The Rust side (the `gemm` crate behind Burn's Flex backend) is `cargo bench --bench kernels --
sgemm`, same shapes and names. Every library gets the same thread count (`--threads`, default 2):

    scripts/.venv/bin/python scripts/roofline.py sgemm [--threads 2] [--lib /usr/lib/.../libopenblas.so.0]
    scripts/.venv/bin/python scripts/roofline.py bandwidth [--threads 2]
    scripts/.venv/bin/python scripts/roofline.py decode [--threads 2]

`sgemm` prints one JSON line per (library, shape): `library`, `shape`, `m`, `k`, `n`, `seconds` (best of the
repeats), `gflops`. The shapes (`m × k · k × n`, with `ᵀ` where an operand is the transposed view the
backward pass multiplies with) are those of the 56M config (2,048 tokens, hidden 512, FFN 1,376,
vocab 32,000) and one SmolLM2 prefill projection.

`bandwidth` sums a 1 GiB f32 array (far beyond the caches) split over `--threads` threads (numpy
releases the GIL inside the sum) and prints the best read rate of `--repeats` passes, with 1 thread
and with `--threads`: a decode step reads every weight once, so tokens/s ≤ GB/s ÷ weight bytes.

`decode` times the 211 matrix-vector products of one SmolLM2-135M decode step alone (30 layers × q, k,
v, o, gate, up, down with `[d_in, d_out]` weights, then the tied head against the `[49152, 576]`
table's transpose; 538 MB of f32 weights) through numpy (OpenBLAS) and torch, best of `--repeats`.
"""
import argparse
import ctypes
import json
import os
import sys
import threading
import time

# (name, m, k, n, transpose a, transpose b): C[m, n] = op(A) · op(B)
SHAPES = [
    ("sgemm_1024", 1024, 1024, 1024, False, False),
    ("ffn_up_2048x512x1376", 2048, 512, 1376, False, False),
    ("ffn_dx_2048x1376x512t", 2048, 1376, 512, False, True),
    ("ffn_dw_512tx2048x1376", 512, 2048, 1376, True, False),
    ("head_2048x512x32000", 2048, 512, 32000, False, False),
    ("head_dx_2048x32000x512t", 2048, 32000, 512, False, True),
    ("prefill_gate_512x576x1536", 512, 576, 1536, False, False),
]


def best_seconds(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def operands(np, m, k, n, ta, tb):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    return a, b


def run_numpy(np, repeats):
    for name, m, k, n, ta, tb in SHAPES:
        a, b = operands(np, m, k, n, ta, tb)
        a, b = (a.T if ta else a), (b.T if tb else b)
        yield name, m, k, n, best_seconds(lambda: a @ b, repeats)


def run_torch(np, repeats):
    import torch

    for name, m, k, n, ta, tb in SHAPES:
        a, b = (torch.from_numpy(x) for x in operands(np, m, k, n, ta, tb))
        a, b = (a.T if ta else a), (b.T if tb else b)
        with torch.inference_mode():
            yield name, m, k, n, best_seconds(lambda: torch.mm(a, b), repeats)


def run_cblas(np, path, repeats):
    lib = ctypes.CDLL(path)
    sgemm = lib.cblas_sgemm
    f, i, p = ctypes.c_float, ctypes.c_int, ctypes.c_void_p
    sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
    row_major, no_trans, trans = 101, 111, 112
    for name, m, k, n, ta, tb in SHAPES:
        a, b = operands(np, m, k, n, ta, tb)
        c = np.empty((m, n), dtype=np.float32)
        args = (
            row_major, trans if ta else no_trans, trans if tb else no_trans, m, n, k, 1.0,
            a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1], 0.0, c.ctypes.data, n,
        )
        yield name, m, k, n, best_seconds(lambda: sgemm(*args), repeats)


def bandwidth(np, threads, repeats):
    data = np.ones(1 << 28, dtype=np.float32)  # 1 GiB
    for count in sorted({1, threads}):
        parts = np.array_split(data, count)

        def read_all():
            workers = [threading.Thread(target=np.sum, args=(part,)) for part in parts]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()

        seconds = best_seconds(read_all, repeats)
        print(json.dumps({"measure": "read_bandwidth", "threads": count, "bytes": data.nbytes,
                          "seconds": round(seconds, 6), "gb_per_s": round(data.nbytes / seconds / 1e9, 2)}),
              flush=True)


def decode(np, repeats):
    import torch

    rng = np.random.default_rng(0)
    shapes = [(576, 576), (576, 192), (576, 192), (576, 576), (576, 1536), (576, 1536), (1536, 576)]
    layers = [[rng.standard_normal(s, dtype=np.float32) for s in shapes] for _ in range(30)]
    table = rng.standard_normal((49152, 576), dtype=np.float32)
    nbytes = sum(w.nbytes for layer in layers for w in layer) + table.nbytes
    inputs = {d: rng.standard_normal((1, d), dtype=np.float32) for d in (576, 1536)}

    def step(weights, head, x):
        for layer in weights:
            for w in layer:
                x[w.shape[0]] @ w
        x[576] @ head.T

    torch_layers = [[torch.from_numpy(w) for w in layer] for layer in layers]
    torch_table = torch.from_numpy(table)
    torch_inputs = {d: torch.from_numpy(x) for d, x in inputs.items()}
    runs = {
        f"numpy {np.__version__}": lambda: step(layers, table, inputs),
        f"torch {torch.__version__}": lambda: step(torch_layers, torch_table, torch_inputs),
    }
    with torch.inference_mode():
        for library, run in runs.items():
            seconds = best_seconds(run, repeats)
            print(json.dumps({"measure": "decode_step_products", "library": library, "products": 211,
                              "bytes": nbytes, "seconds": round(seconds, 6),
                              "gb_per_s": round(nbytes / seconds / 1e9, 2)}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("measure", choices=["sgemm", "bandwidth", "decode"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lib", action="append", default=[], help="a shared library with cblas_sgemm")
    parser.add_argument("--only", choices=["torch", "numpy", "cblas"], action="append")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np  # after the thread variables, which the BLAS reads when it loads

    if args.measure == "bandwidth":
        bandwidth(np, args.threads, args.repeats)
        return 0
    if args.measure == "decode":
        import torch

        torch.set_num_threads(args.threads)
        decode(np, args.repeats)
        return 0
    runs = []
    only = set(args.only or ["torch", "numpy", "cblas"])
    if "torch" in only:
        import torch

        torch.set_num_threads(args.threads)
        runs.append((f"torch {torch.__version__}", run_torch(np, args.repeats)))
    if "numpy" in only:
        runs.append((f"numpy {np.__version__}", run_numpy(np, args.repeats)))
    if "cblas" in only:
        runs += [(f"cblas:{path}", run_cblas(np, path, args.repeats)) for path in args.lib]
    for library, results in runs:
        for name, m, k, n, seconds in results:
            row = {"library": library, "shape": name, "m": m, "k": k, "n": n, "threads": args.threads,
                   "seconds": round(seconds, 6), "gflops": round(2 * m * k * n / seconds / 1e9, 1)}
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
