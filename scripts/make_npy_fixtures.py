#!/usr/bin/env python3
"""Writes the small .npy / .npz files that tests/datasets/test_npy.cpp reads: files made by NumPy
itself (numpy.save, numpy.savez, numpy.savez_compressed), so the reader is checked against the real
writer and not only against tapegrad's own. Every array holds known values that the test recomputes:
ramp(n) = [0, 1, ..., n-1] (x 0.5 - 1 for floating types), shaped as named.

Usage: python3 scripts/make_npy_fixtures.py [OUT_DIR]    (default tests/datasets/fixtures; needs
NumPy: Debian's python3-numpy; made with NumPy 1.24.2 from Debian 12)
"""
import io
import os
import sys
import zipfile

import numpy as np


def ramp(shape, dtype):
    n = int(np.prod(shape)) if len(shape) else 1
    a = np.arange(n, dtype=np.float64)
    if np.dtype(dtype).kind == "f":
        a = a * 0.5 - 1
    elif np.dtype(dtype).kind == "b":
        a = a % 3 == 1
    return a.astype(dtype).reshape(shape)


def save_v(path, array, version):
    """numpy.save with an explicit format version (2.0 or 3.0; numpy.save picks 1.0 when it fits)."""
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=version)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "datasets", "fixtures")
    os.makedirs(out, exist_ok=True)
    # One file per dtype, version 1.0 as numpy.save writes it.
    np.save(f"{out}/f4_2x3.npy", ramp((2, 3), "<f4"))
    np.save(f"{out}/f8_4.npy", ramp((4,), "<f8"))
    np.save(f"{out}/i8_2x2x2.npy", ramp((2, 2, 2), "<i8"))
    np.save(f"{out}/u1_3x4.npy", ramp((3, 4), "|u1"))
    np.save(f"{out}/b1_5.npy", ramp((5,), "|b1"))
    np.save(f"{out}/f8_scalar.npy", np.float64(2.5))              # 0-d, shape ()
    np.save(f"{out}/f4_empty_0x3.npy", np.zeros((0, 3), "<f4"))
    # Layouts and versions NumPy writes on request.
    np.save(f"{out}/f4_2x3x4_fortran.npy", np.asfortranarray(ramp((2, 3, 4), "<f4")))
    np.save(f"{out}/f8_3x2_bigendian.npy", ramp((3, 2), ">f8"))
    np.save(f"{out}/i8_3_bigendian.npy", ramp((3,), ">i8"))
    save_v(f"{out}/f4_2x3_v2.npy", ramp((2, 3), "<f4"), (2, 0))
    save_v(f"{out}/i8_4_v3.npy", ramp((4,), "<i8"), (3, 0))
    # A dtype tapegrad refuses (int32) and a structured one.
    np.save(f"{out}/i4_3.npy", ramp((3,), "<i4"))
    np.save(f"{out}/structured.npy", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i8")]))
    # .npz: stored and deflate-compressed, several members in order, all dtypes.
    members = dict(x=ramp((4, 2), "<f4"), y=ramp((4,), "<i8"), w=ramp((2, 2), "<f8"),
                   pixels=ramp((2, 3), "|u1"), mask=ramp((3,), "|b1"), s=np.float32(7.0))
    np.savez(f"{out}/savez.npz", **members)
    np.savez_compressed(f"{out}/savez_compressed.npz", **members)
    np.savez(f"{out}/savez_positional.npz", ramp((2,), "<f4"), ramp((3,), "<f8"))  # arr_0, arr_1
    # zip64 records everywhere (end record, locator, central directory extra fields), as zipfile
    # writes them past 4 GiB: the limits are lowered so that a small file gets them.
    saved = zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT
    zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = 0, 0
    try:
        np.savez_compressed(f"{out}/zip64_all.npz", x=ramp((4, 2), "<f4"), y=ramp((4,), "<i8"))
    finally:
        zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = saved
    # A zip whose member is not an .npy file.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes.txt", "not an array")
    with open(f"{out}/not_npy_member.npz", "wb") as f:
        f.write(buf.getvalue())
    for name in sorted(os.listdir(out)):
        print(f"{os.path.getsize(os.path.join(out, name)):6d}  {name}")


if __name__ == "__main__":
    main()
