#!/usr/bin/env python3
"""Writes the seed corpus of the .npz reader's fuzz target into this folder.

Run once with NumPy (python3 generate.py); the files are kept in the
repository, and tests/unit/npz_test.cpp checks the values of the numpy_*
files and the errors of the hostile_* ones, so change both together. Each
file is at most a few KB.
"""
import io
import pathlib
import struct
import zipfile
import zlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent


def grid(dtype, shape):
    """0, 0.125, 0.25, ... : exact in float32 and float64, either byte order."""
    return (np.arange(int(np.prod(shape)), dtype=np.float64) / 8).astype(dtype).reshape(shape)


def npy(array, version=None):
    out = io.BytesIO()
    np.lib.format.write_array(out, array, version=version)
    return out.getvalue()


def zip64_archive(members):
    """A stored archive whose directory uses ZIP64 fields and end records."""
    body, directory = b"", b""
    for name, data in members:
        name = name.encode()
        crc = zlib.crc32(data)
        local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45, 0, 0, 0, 0x21, crc,
                            0xFFFFFFFF, 0xFFFFFFFF, len(name), 20)
        local += name + struct.pack("<HHQQ", 1, 16, len(data), len(data))
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), len(body))
        directory += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0, 0, 0, 0x21, crc,
                                 0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0,
                                 0xFFFFFFFF) + name + extra
        body += local + data
    end64_at = len(body) + len(directory)
    end64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, len(members), len(members),
                        len(directory), len(body))
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, end64_at, 1)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return body + directory + end64 + locator + end


def raw_zip(members):
    """A ZIP archive of (name, stored bytes, method, crc, size, local offset or
    None) members: fields may lie; with an offset the member is not written."""
    body, directory = b"", b""
    for name, data, method, crc, size, local in members:
        name = name.encode()
        fields = struct.pack("<HHHHHIIIHH", 20, 0, method, 0, 0x21, crc, len(data), size, len(name), 0)
        offset = len(body) if local is None else local
        if local is None:
            body += b"PK\x03\x04" + fields + name + data
        directory += b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack("<HHHII", 0, 0, 0, 0, offset) + name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(body), 0)
    return body + directory + end


def hostile():
    """The hostile inputs of docs/npz.md, each refused by the reader."""
    header = npy(np.zeros(2))[:-16]  # declares (2,) of float64
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = bomb.compress(header + bytes(1_000_000)) + bomb.flush()
    declared = header + bytes(16)
    (HERE / "hostile_bomb.npz").write_bytes(raw_zip([("x.npy", bomb, 8, zlib.crc32(declared), len(declared), None)]))
    dup = npy(np.zeros(2)).replace(b"'shape': (2,), ", b"'shape': (2,), 'descr': '<i8',", 1)
    (HERE / "hostile_duplicate_key.npz").write_bytes(raw_zip([("x.npy", dup, 0, zlib.crc32(dup), len(dup), None)]))
    one = npy(np.ones(2))
    (HERE / "hostile_duplicate_member.npz").write_bytes(
        raw_zip([(n, one, 0, zlib.crc32(one), len(one), None) for n in ("a.npy", "a.npy")]))
    inner = raw_zip([("b.npy", one, 0, zlib.crc32(one), len(one), None)])
    inner = inner[:inner.index(b"PK\x01\x02")]
    inner += bytes(-len(inner) % 8)
    outer = npy(np.frombuffer(inner, dtype=np.float64))
    at = 30 + 5 + len(outer) - len(inner)
    (HERE / "hostile_overlap.npz").write_bytes(raw_zip([("a.npy", outer, 0, zlib.crc32(outer), len(outer), None),
                                                        ("b.npy", one, 0, zlib.crc32(one), len(one), at)]))


def main():
    f32, f64 = np.float32, np.float64
    np.savez(HERE / "numpy_savez_f32.npz", a=grid(f32, (2, 3)))
    np.savez(HERE / "numpy_savez_f64.npz", W=grid(f64, (3, 2)), b=grid(f64, (3,)))
    np.savez_compressed(HERE / "numpy_compressed_f32.npz", x=grid(f32, (4, 5)))
    np.savez_compressed(HERE / "numpy_compressed_mixed.npz", a=grid(f32, (3, 4)), d=grid(f64, (2, 2, 2)),
                        s=np.float64(2.5), e=np.zeros((0, 3), f32))
    np.savez(HERE / "numpy_bigendian.npz", b4=grid(">f4", (2, 3)), b8=grid(">f8", (5,)))
    np.savez(HERE / "numpy_scalar.npz", loss=np.float64(-0.75), lr=np.float32(0.125))
    np.savez(HERE / "numpy_empty.npz", z=np.zeros((0,), f64), w=np.zeros((2, 0, 3), f32))
    np.savez(HERE / "numpy_many.npz", **{f"m{i}": grid(f32, (i + 1,)) for i in range(8)})
    np.savez(HERE / "numpy_special.npz", v=np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324], f64))
    np.savez(HERE / "numpy_int64.npz", n=np.arange(3))
    np.savez(HERE / "numpy_fortran.npz", f=np.asfortranarray(grid(f64, (2, 3))))
    with zipfile.ZipFile(HERE / "numpy_versions.npz", "w") as z:
        z.writestr("v2.npy", npy(grid(f32, (2, 2)), (2, 0)))
        z.writestr("v3.npy", npy(grid(f64, (3,)), (3, 0)))
    (HERE / "zip64_directory.npz").write_bytes(
        zip64_archive([("p.npy", npy(grid(f64, (2, 2)))), ("q.npy", npy(grid(f32, (3,))))]))
    (HERE / "plain_f32.npy").write_bytes(npy(grid(f32, (3, 2))))
    (HERE / "plain_bigendian.npy").write_bytes(npy(grid(">f8", (4,))))
    hostile()


if __name__ == "__main__":
    main()
