"""Benchmark trtnet's engines. On a machine without a CUDA GPU it builds every engine ahead of time and
reports layers, build seconds and engine size.

    python bench.py --all
"""
from __future__ import annotations

import argparse
import sys

import trtnet
from trtnet.zoo import REGISTRY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="every benchmark model of the zoo")
    parser.add_argument("--models", nargs="+", default=None, help="zoo names")
    parser.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "bf16"], help="default fp16")
    parser.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args(argv)
    names = args.models or [n for n, e in REGISTRY.items() if e.benchmark or args.all and e.benchmark]
    if not names:
        parser.error("name --models or pass --all")
    print(f"backend: {trtnet.backend.get_backend()}; precision {args.precision}, batch {args.batch_size}")
    for name in names:
        engine = trtnet.build(REGISTRY[name].fn(weights=None), args.batch_size, args.precision)
        print(engine.summary(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
