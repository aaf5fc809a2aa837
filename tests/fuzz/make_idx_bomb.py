#!/usr/bin/env python3
"""Writes an MNIST-format directory whose training images are a gzip bomb: an honest IDX header
for N 28x28 ubyte images, all zero, which gzip shrinks about 1000 times (N = 5,478,000 is 4.29 GB
decompressed from a 4 MB file, just under read_idx's 4 GiB limit). The other three files are
small and consistent, so load_mnist(DIR, Split::train) reads the whole bomb. For measuring the
loader's peak memory (issue 14): build a program that calls load_mnist("/tmp/bomb", Split::train)
and run it under /usr/bin/time -v ("Maximum resident set size"):

    python3 tests/fuzz/make_idx_bomb.py /tmp/bomb 5478000

Usage: make_idx_bomb.py OUT_DIR [N]
"""
import gzip
import os
import struct
import sys
import zlib


def gzip_stream(path, header, zero_bytes):
    """header followed by zero_bytes zeros, gzip-compressed without holding them in memory."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 24)
    with open(path, "wb") as f:
        f.write(z.compress(header))
        left = zero_bytes
        while left > 0:
            n = min(left, len(chunk))
            f.write(z.compress(chunk[:n]))
            left -= n
        f.write(z.flush())


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5478000
    os.makedirs(out, exist_ok=True)
    gzip_stream(f"{out}/train-images-idx3-ubyte.gz", bytes([0, 0, 8, 3]) + struct.pack(">III", n, 28, 28), n * 784)
    gzip_stream(f"{out}/train-labels-idx1-ubyte.gz", bytes([0, 0, 8, 1]) + struct.pack(">I", n), n)
    with open(f"{out}/t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">III", 1, 28, 28) + bytes(784), mtime=0))
    with open(f"{out}/t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", 1) + bytes(1), mtime=0))
    size = os.path.getsize(f"{out}/train-images-idx3-ubyte.gz")
    print(f"{out}: {n} images, {n * 784} bytes decompressed from {size} bytes")


if __name__ == "__main__":
    main()
