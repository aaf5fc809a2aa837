#!/usr/bin/env python3
"""Writes small seed corpora for the fuzz harnesses: valid files of every kind the parsers accept
(each IDX element type and rank, raw and gzip; safetensors of each dtype, empty, scalar, several
tensors) and a few near-misses (truncated, trailing bytes, overlapping offsets), including the
hostile files of issue 14 (gzip members followed by garbage, repeated tensor names, deep nesting).

CSV seeds (OUT_DIR/csv) start with fuzz_csv's options byte; the .npy / .npz harnesses are seeded with
the files NumPy wrote in tests/datasets/fixtures (scripts/fuzz.sh passes that folder).

Usage: make_seeds.py OUT_DIR   (creates OUT_DIR/idx, OUT_DIR/safetensors and OUT_DIR/csv)
"""
import gzip
import json
import os
import struct
import sys

IDX_TYPES = {0x08: "B", 0x09: "b", 0x0B: ">h", 0x0C: ">i", 0x0D: ">f", 0x0E: ">d"}


def idx(type_code, dims):
    n = 1
    for d in dims:
        n *= d
    fmt = IDX_TYPES[type_code]
    body = b"".join(struct.pack(fmt, (i * 37) % 100) for i in range(n))
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + body


def safetensors(tensors, pad=True, header=None, metadata=None):
    """tensors: list of (name, dtype, shape); data is a ramp of bytes."""
    size = {"F32": 4, "F64": 8, "I64": 8}
    head, off, data = {"__metadata__": metadata or {"format": "pt"}}, 0, b""
    for name, dtype, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        nbytes = n * size[dtype]
        head[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + nbytes]}
        data += bytes((off + i) % 251 for i in range(nbytes))
        off += nbytes
    text = json.dumps(head if header is None else header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def main():
    out = sys.argv[1]
    os.makedirs(f"{out}/idx", exist_ok=True)
    os.makedirs(f"{out}/safetensors", exist_ok=True)
    seeds = {
        "u8_labels": idx(0x08, [10]),
        "u8_images": idx(0x08, [2, 4, 4]),
        "i8": idx(0x09, [3, 2]),
        "i16": idx(0x0B, [5]),
        "i32": idx(0x0C, [2, 2]),
        "f32": idx(0x0D, [3]),
        "f64": idx(0x0E, [1, 2, 1, 2]),
        "empty_dim": idx(0x08, [0, 5]),
        "rank8": idx(0x08, [1] * 8),
    }
    seeds["truncated"] = seeds["u8_images"][:-3]
    seeds["trailing"] = seeds["i16"] + b"\x00"
    for name, data in list(seeds.items()):
        if name in ("u8_images", "f32", "truncated"):
            seeds[name + ".gz"] = gzip.compress(data, mtime=0)
    # Several gzip members are one stream; bytes after the last member are garbage.
    seeds["gz_members.gz"] = gzip.compress(seeds["i16"][:7], mtime=0) + gzip.compress(seeds["i16"][7:], mtime=0)
    seeds["gz_trailing.gz"] = gzip.compress(seeds["u8_labels"], mtime=0) + b"garbage"
    # fuzz_idx reads a mode byte first: even = the file as is, odd = the harness gzips the rest.
    for name, data in seeds.items():
        with open(f"{out}/idx/{name}", "wb") as f:
            f.write(b"\x00" + data)
        if not name.endswith(".gz"):
            with open(f"{out}/idx/{name}.harness-gz", "wb") as f:
                f.write(b"\x01" + data)

    st = {
        "f32": safetensors([("weight", "F32", [2, 3])]),
        "f64": safetensors([("w", "F64", [4])]),
        "i64": safetensors([("steps", "I64", [])]),
        "multi": safetensors([("fc1.weight", "F32", [3, 2]), ("fc1.bias", "F32", [3]), ("n", "I64", [1])]),
        "empty_tensor": safetensors([("e", "F32", [0, 4])]),
        "no_tensors": safetensors([]),
        "unpadded": safetensors([("x", "F32", [1])], pad=False),
        "overlap": safetensors(
            [("a", "F32", [2])],
            header={
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
            },
        ),
    }
    st["truncated"] = st["multi"][:-5]
    # Hand-written headers: a repeated tensor name (json.dumps cannot write one) and deep nesting
    # within and beyond the reader's limit of 64.
    def raw_header(text, data=b""):
        return struct.pack("<Q", len(text)) + text.encode() + data
    entry = '{"dtype":"F32","shape":[1],"data_offsets":[%d,%d]}'
    st["duplicate_name"] = raw_header('{"w":%s,"w":%s}' % (entry % (0, 4), entry % (4, 8)), bytes(8))
    st["deep_shape_63"] = raw_header('{"w":{"dtype":"F32","shape":%s,"data_offsets":[0,0]}}' % ("[" * 62 + "]" * 62))
    st["deep_dtype_65"] = raw_header('{"w":{"dtype":%s,"shape":[1],"data_offsets":[0,4]}}' % ("[" * 65 + "]" * 65),
                                     bytes(4))
    history = {"epochs": [{"epoch": 1, "seconds": 0.5, "steps": 2, "loss": 0.25, "accuracy": None}],
               "steps": 2, "stop_reason": ""}
    metadata = {"tapegrad.run_state": "1", "epoch": "1", "global_step": "2", "rng.default": "5 0 0",
                "history": json.dumps(history)}
    st["run_state"] = safetensors([("model.w", "F32", [2]), ("optimizer.state.0.step", "F64", [])], metadata=metadata)
    for name, data in st.items():
        with open(f"{out}/safetensors/{name}", "wb") as f:
            f.write(data)
    # fuzz_csv: options byte (bits 0-1 delimiter , ; tab space; 2-3 header auto/present/absent;
    # bit 4 empty fields as NaN), then the file.
    os.makedirs(f"{out}/csv", exist_ok=True)
    csv = {
        "header": (0, b"a,b,label\n1,2.5,0\n-3e2,4,1\n"),
        "no_header": (0, b"1,2\n3,4\n"),
        "quoted": (0, b'"x, y","say ""hi"""\n"1.5", 2\n"3\n",4\r\n'),
        "semicolon_crlf_bom": (1, b"\xef\xbb\xbfa;b\r\n\r\n1;2\r\n"),
        "tabs_missing": (2 | 16, b"a\tb\tc\n1\t\t3\n\tnan\tinf\n"),
        "present": (4, b"1,2\n3,4\n"),
        "absent_bad": (8, b"x,y\n1,2\n"),
        "ragged": (0, b"a,b\n1,2\n3\n"),
        "unclosed": (0, b'a,b\n1,"2\n'),
    }
    for name, (mode, text) in csv.items():
        with open(f"{out}/csv/{name}", "wb") as f:
            f.write(bytes([mode]) + text)
    print(f"{len(seeds)} IDX seeds, {len(st)} safetensors seeds, {len(csv)} CSV seeds in {out}")


if __name__ == "__main__":
    main()
