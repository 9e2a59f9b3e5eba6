#!/usr/bin/env python3
"""OPCM's SVD (merge/svd.h: LAPACK sgesdd via LAPACKE on OpenBLAS) against NumPy's
np.linalg.svd (LAPACK gesdd on NumPy's bundled OpenBLAS) on the same f32 matrices, in the same
run, both thin (full_matrices=False) and single precision. Goal: modelpress no slower.

    python3 bench/svd_vs_numpy.py [--bin build/bench/bench_svd] [--repeats 3] [--shapes 1024x1024,...]

The matrices are task-vector-like: Gaussian with a decaying spectrum (row i scaled by
1/sqrt(1 + i/64)), written once to a raw file that both sides read. Each side gets a warm-up
run, then the median of --repeats runs. Prints a Markdown table for docs/PERFORMANCE.md.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np

DEFAULT_SHAPES = "512x512,1024x1024,2048x2048,1024x2816,2048x5632,5632x2048"


def numpy_svd(a, repeats):
    np.linalg.svd(a, full_matrices=False)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _, s, _ = np.linalg.svd(a, full_matrices=False)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], float(s[0])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default="build/bench/bench_svd")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--shapes", default=DEFAULT_SHAPES)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    print(f"NumPy {np.__version__}; NumPy's LAPACK: "
          f"{np.show_config(mode='dicts')['Build Dependencies']['lapack'].get('name', '?')}")
    rows = []
    routine = "?"
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            m, n = map(int, shape.split("x"))
            a = (rng.standard_normal((m, n)) / np.sqrt(1 + np.arange(m) / 64)[:, None]).astype(np.float32)
            path = os.path.join(tmp, "a.f32")
            a.tofile(path)
            out = subprocess.run([args.bin, path, str(m), str(n), str(args.repeats)], check=True, capture_output=True,
                                 text=True).stdout
            ours = json.loads(out)
            routine = ours["routine"]
            t_np, s0_np = numpy_svd(a, args.repeats)
            assert abs(ours["s0"] - s0_np) <= 1e-4 * s0_np, (shape, ours["s0"], s0_np)
            rows.append((m, n, ours["median_s"], t_np))
    print(f"modelpress: {routine}\n")
    print("| matrix | modelpress sgesdd (s) | NumPy svd (s) | NumPy / modelpress |")
    print("|---|---:|---:|---:|")
    for m, n, t_ours, t_np in rows:
        print(f"| {m} x {n} | {t_ours:.3f} | {t_np:.3f} | {t_np / t_ours:.2f} |")


if __name__ == "__main__":
    main()
