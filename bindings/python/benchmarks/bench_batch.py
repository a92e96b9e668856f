"""What calling from Python costs: `batch_decode` of 2,000 rows from Python against the crate's
own `batch_decode` of the same rows timed inside Rust (no Python objects made), same process,
same decoder, alternating, median of the repeats.

    python bindings/python/benchmarks/bench_batch.py [--rows 2000] [--repeats 7] [--json]

The pattern cache is off (`cache.capacity` 0) so every repeat searches FAISS; the rows are the
bundled `samples/validation` (float32, dequantized from int8 once, outside the timing).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import lightweight_decoder as ld

SAMPLES = Path(__file__).resolve().parents[3] / "samples"


def measure(decoder, rows, repeats):
    decoder.batch_decode(rows[:64])  # warm up threads and pages
    python_s, rust_s = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        decoded = decoder.batch_decode(rows)
        python_s.append(time.perf_counter() - started)
        assert len(decoded) == len(rows)
        rust_s.append(decoder._rust_batch_seconds(rows))
    py, rs = statistics.median(python_s), statistics.median(rust_s)
    return {"rows": len(rows), "python_s": py, "rust_s": rs, "ratio": py / rs,
            "python_rows_per_s": len(rows) / py, "rust_rows_per_s": len(rows) / rs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--hybrid", action="store_true", help="also the hybrid decoder")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    q = np.load(SAMPLES / "validation.i8.npy")[: args.rows]
    scale = np.load(SAMPLES / "validation.scale.npy")[: args.rows]
    rows = q.astype(np.float32) * scale[:, None]
    config = {"cache": {"capacity": 0}}
    report = {"phrase_bank": measure(ld.PhraseBankDecoder.default(config=config), rows,
                                     args.repeats)}
    if args.hybrid:
        report["hybrid"] = measure(ld.HybridDecoder.default(config=config), rows, args.repeats)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for name, r in report.items():
        print(f"{name}: {r['rows']} rows, Python {r['python_s'] * 1e3:.1f} ms "
              f"({r['python_rows_per_s']:.0f} rows/s), Rust {r['rust_s'] * 1e3:.1f} ms "
              f"({r['rust_rows_per_s']:.0f} rows/s): {r['ratio']:.3f}x")


if __name__ == "__main__":
    main()
