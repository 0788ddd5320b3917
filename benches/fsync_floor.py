#!/usr/bin/env python3
"""The fsync's floor on a disk: one thread writes 1.1 KB and calls fdatasync every 100 us, and prints the write +
fdatasync latency, for each way the write can find the file (docs/benchmarks.md, "Durable acks: zeros written
ahead").

usage: fsync_floor.py DIR MODE [FILL_KIB]
  grow            every write past the file's end (it grows: every fdatasync writes the inode too)
  zeros_buf       into zeros written through the page cache and fsynced before
  fallocate       into a posix_fallocate'd file
  fallocate_keep  past the end of a FALLOC_FL_KEEP_SIZE allocation
  inline          into zeros written FILL_KIB ahead at a time through the page cache, by the writer
  dfill           into zeros written FILL_KIB ahead at a time with O_DIRECT, each write padded to its page's end
"""
import ctypes, mmap, os, sys, time

directory, mode = sys.argv[1], sys.argv[2]
fill = int(sys.argv[3] if len(sys.argv) > 3 else 256) << 10
path = os.path.join(directory, "fsync-floor.data")
N, PAGE = 20000, 4096
rec = b"x" * 1100
if os.path.exists(path):
    os.unlink(path)
fd = os.open(path, os.O_RDWR | os.O_CREAT)
span = N * len(rec) + (1 << 20)
if mode == "zeros_buf":
    for at in range(0, span, 1 << 20):
        os.pwrite(fd, b"\0" * (1 << 20), at)
    os.fsync(fd)
elif mode == "fallocate":
    os.posix_fallocate(fd, 0, span)
    os.fsync(fd)
elif mode == "fallocate_keep":
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    assert libc.fallocate(fd, 1, ctypes.c_long(0), ctypes.c_long(span)) == 0
    os.fsync(fd)
direct = os.open(path, os.O_RDWR | os.O_DIRECT) if mode == "dfill" else None
direct_zeros = mmap.mmap(-1, fill) if mode == "dfill" else None
zeros = b"\0" * fill
filled, pos, lat = 0, 0, []
t0 = time.perf_counter()
for i in range(N):
    while time.perf_counter() < t0 + i * 100e-6:
        pass
    start = time.perf_counter()
    if mode == "inline" and pos + len(rec) > filled:
        os.pwrite(fd, zeros, filled)
        filled += fill
    if mode == "dfill":
        end = pos + len(rec)
        if end > filled:
            at = -(-filled // PAGE) * PAGE
            os.pwritev(direct, [direct_zeros], at)
            filled = at + fill
        os.pwrite(fd, rec + bytes(-end % PAGE), pos)
    else:
        os.pwrite(fd, rec, pos)
    pos += len(rec)
    os.fdatasync(fd)
    lat.append(time.perf_counter() - start)
os.unlink(path)
lat.sort()
q = lambda p: lat[int(p * (len(lat) - 1))] * 1e6
print(f"{mode:15s} write+fdatasync p50 {q(.5):.0f} p99 {q(.99):.0f} p99.9 {q(.999):.0f} max {q(1):.0f} us")
