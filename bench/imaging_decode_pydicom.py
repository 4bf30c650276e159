#!/usr/bin/env python3
"""pydicom's side of bench/imaging_decode.sh: same file list, same rounds,
same JSON line as crates/imaging/examples/decode_bench.rs.

  imaging_decode_pydicom.py ROUNDS LIST [--decodable OUT]
--decodable writes the files pydicom decodes, so both sides time the same set.
"""
import json
import os
import sys
import time
import warnings

import pydicom

warnings.simplefilter("ignore")


def main():
    rounds, listing = int(sys.argv[1]), sys.argv[2]
    keep = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--decodable" else None
    paths = [p for p in open(listing).read().splitlines() if p]
    files = failures = in_bytes = out_bytes = 0
    ok = []
    start = time.perf_counter()
    for _ in range(rounds):
        for p in paths:
            in_bytes += os.path.getsize(p)
            try:
                arr = pydicom.dcmread(p).pixel_array
            except Exception:  # noqa: BLE001 - counted, like the Rust side
                failures += 1
                continue
            files += 1
            out_bytes += arr.nbytes
            ok.append(p)
    seconds = time.perf_counter() - start
    if keep:
        with open(keep, "w") as f:
            f.write("\n".join(dict.fromkeys(ok)) + "\n")
    print(json.dumps({"files": files, "failures": failures, "in_bytes": in_bytes,
                      "out_bytes": out_bytes, "seconds": round(seconds, 6)}))


if __name__ == "__main__":
    main()
