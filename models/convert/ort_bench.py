"""onnxruntime latency of the four shipped models, single-threaded (run in .venv-ort).

Usage: python ort_bench.py [--models DIR] [--runs N] [--warmup N] [--json]

One session per model with intra_op_num_threads=1, inter_op_num_threads=1, sequential execution,
all graph optimisations (the default). Input: the reference input from tests/fixtures/ort/ when it
exists (so tract and onnxruntime time the same tensor), otherwise a fixed pseudo-random tensor.
Prints one line per model: `ort <stem> median_ms=<x>` (with --json: one JSON object).
"""

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import onnxruntime as ort

STEMS = ["blazeface-front-128", "blazeface-back-256", "mobilefacenet", "mobilefacenet-int8"]
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def bench(path: str, fixture: str, runs: int, warmup: int) -> dict:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    if os.path.exists(fixture):
        x = np.fromfile(fixture, dtype="<f4").reshape(shape)
    else:
        x = np.random.RandomState(0).uniform(-1, 1, size=shape).astype(np.float32)
    feed = {inp.name: x}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1000.0)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 4),
        "p10_ms": round(times[len(times) // 10], 4),
        "p90_ms": round(times[(len(times) * 9) // 10], 4),
        "runs": runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=os.path.join(REPO, "models"))
    ap.add_argument("--fixtures", default=os.path.join(REPO, "tests", "fixtures", "ort"))
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text lines")
    args = ap.parse_args()

    results = {}
    for stem in STEMS:
        r = bench(
            os.path.join(args.models, stem + ".onnx"),
            os.path.join(args.fixtures, stem + ".input.f32"),
            args.runs,
            args.warmup,
        )
        results[stem] = r
        if not args.json:
            print(f"ort {stem} median_ms={r['median_ms']:.3f}", flush=True)
    if args.json:
        print(
            json.dumps(
                {
                    "runtime": "onnxruntime",
                    "version": ort.__version__,
                    "threads": 1,
                    "machine": platform.machine(),
                    "processor": platform.processor(),
                    "models": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
