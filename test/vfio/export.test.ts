/** §13.3 DMA_BUF export input validation (EPa, memory enabled). */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KernelError } from "../../src/core/errors.js";
import { O_CLOEXEC, O_NONBLOCK, O_RDWR, UserBuffer } from "../../src/core/file.js";
import { encodeFeatureDmaBuf } from "../../src/vfio/index.js";
import { page, vfioF } from "../helpers/vfio-f.js";

const one = [{ offset: 0n, length: page(1) }];
const S = 0x80_0000_0000n;

test("K-25 argsz 23 (payload 15 bytes), valid payload → -EINVAL", () => {
  assert.equal(vfioF().exportRanges(0, one, { argsz: 23 }).errno, "EINVAL");
});

test("K-26 argsz 24, region 0, {0, 0x1000} → fd; size 0x1000; ACTIVE; registration +1", () => {
  const t = vfioF();
  const before = t.vdev.registration;
  const r = t.exportRanges(0, one, { argsz: 24 });
  assert.equal(r.errno, null);
  assert.ok(r.ret >= 0);
  const buf = t.buf(r.ret);
  assert.equal(buf.size, 0x1000n);
  assert.equal(t.vdev.dmabufs[0].state, "ACTIVE");
  assert.equal(t.vdev.registration, before + 1);
});

test("K-27 argsz 24 but nr_ranges 3 with the ranges present → success; size is the sum", () => {
  const t = vfioF();
  const r = t.exportRanges(
    0,
    [one[0], { offset: page(1), length: page(2) }, { offset: page(4), length: page(1) }],
    { argsz: 24 },
  );
  assert.equal(r.errno, null);
  assert.equal(t.buf(r.ret).size, page(4));
});

test("K-28 nr_ranges 0 → -EINVAL", () => {
  assert.equal(vfioF().exportRanges(0, [], {}).errno, "EINVAL");
});

test("K-29 payload flags = 1 → -EINVAL", () => {
  assert.equal(vfioF().exportRanges(0, one, { dmaBufFlags: 1 }).errno, "EINVAL");
});

test("K-30 nr_ranges 0 and region 9 → -EINVAL (count/flags before the region)", () => {
  assert.equal(vfioF().exportRanges(9, [], {}).errno, "EINVAL");
});

test("K-31 region 6, 7, 8, 9 and 0xFFFFFFFF → -ENODEV", () => {
  const t = vfioF();
  for (const r of [6, 7, 8, 9, 0xffffffff])
    assert.equal(t.exportRanges(r, one).errno, "ENODEV", `region ${r}`);
});

test("K-32 region 6 with an invalid range {0x800, 0} → -ENODEV (region before ranges)", () => {
  assert.equal(vfioF().exportRanges(6, [{ offset: 0x800n, length: 0n }]).errno, "ENODEV");
});

test("K-33 nr_ranges 262145 with only the 24-byte header readable → -ENOMEM", () => {
  const b = encodeFeatureDmaBuf({ regionIndex: 0, ranges: [], nrRanges: 262145, argsz: 24 });
  assert.equal(b.length, 24);
  assert.equal(vfioF().feature(b).errno, "ENOMEM");
});

test("K-34 nr_ranges 262144, every range {0, 0x1000} → success; size 1 GiB; nrRanges 262144", () => {
  const t = vfioF();
  const ranges = Array.from({ length: 262144 }, () => ({ offset: 0n, length: 0x1000n }));
  const r = t.exportRanges(0, ranges);
  assert.equal(r.errno, null);
  assert.equal(t.buf(r.ret).size, 0x4000_0000n);
  assert.equal(t.vdev.dmabufs[0].nrRanges, 262144);
});

test("K-35 nr_ranges 2 but the buffer ends after the first range → -EFAULT; no buffer created", () => {
  const t = vfioF();
  const b = encodeFeatureDmaBuf({ regionIndex: 0, ranges: one, nrRanges: 2 });
  assert.equal(t.feature(b).errno, "EFAULT");
  assert.equal(t.vdev.dmabufs.length, 0);
  assert.equal(t.m.dmabuf.buffers.size, 0);
});

test("K-36 one range with length 0 → -EINVAL", () => {
  assert.equal(vfioF().exportRanges(0, [{ offset: 0n, length: 0n }]).errno, "EINVAL");
});

test("K-37 offset 0x800 → -EINVAL; length 0x1800 → -EINVAL", () => {
  const t = vfioF();
  assert.equal(t.exportRanges(0, [{ offset: 0x800n, length: 0x1000n }]).errno, "EINVAL");
  assert.equal(t.exportRanges(0, [{ offset: 0n, length: 0x1800n }]).errno, "EINVAL");
});

test("K-38 {0,0x1000},{0x2000,0} → -EINVAL (the second decides); nothing remains allocated", () => {
  const t = vfioF();
  const reg = t.vdev.registration;
  assert.equal(t.exportRanges(0, [one[0], { offset: 0x2000n, length: 0n }]).errno, "EINVAL");
  assert.equal(t.m.dmabuf.buffers.size, 0);
  assert.equal(t.vdev.registration, reg);
});

test("K-39 {0, 2^63} twice → -EINVAL (u64 sum overflow)", () => {
  const r = { offset: 0n, length: 0x8000_0000_0000_0000n };
  assert.equal(vfioF().exportRanges(0, [r, r]).errno, "EINVAL");
});

test("K-40 one range {0, 2^63} → -EINVAL from the bit-63 check, before the BAR bound", () => {
  const t = vfioF();
  const bytes = encodeFeatureDmaBuf({
    regionIndex: 0,
    ranges: [{ offset: 0n, length: 0x8000_0000_0000_0000n }],
  });
  assert.throws(
    () => t.m.vfio.ioctl(t.fd, 0x3b75, new UserBuffer(bytes)),
    (e: KernelError) => e.errnoName === "EINVAL" && /bit 63/.test(e.check),
  );
});

test("K-41 {0, 0x200_0000} on the 16 MiB BAR0 → -EINVAL", () => {
  assert.equal(vfioF().exportRanges(0, [{ offset: 0n, length: 0x200_0000n }]).errno, "EINVAL");
});

test("K-42 {0xFF_F000, 0x1000} ends exactly at the BAR end → success; {0x100_0000, 0x1000} → -EINVAL", () => {
  const t = vfioF();
  assert.equal(t.exportRanges(0, [{ offset: 0xff_f000n, length: 0x1000n }]).errno, null);
  assert.equal(t.exportRanges(0, [{ offset: 0x100_0000n, length: 0x1000n }]).errno, "EINVAL");
});

test("K-43 {0xFFFF_FFFF_FFFF_F000, 0x1000} on BAR0 → -EOVERFLOW (start + offset wraps)", () => {
  assert.equal(
    vfioF().exportRanges(0, [{ offset: 0xffff_ffff_ffff_f000n, length: 0x1000n }]).errno,
    "EOVERFLOW",
  );
});

test("K-44 offset 2^64 − 0x80_0000_0000 − 0x1000, length 0x2000 → -EOVERFLOW (the end wraps)", () => {
  const off = (1n << 64n) - S - 0x1000n;
  assert.equal(vfioF().exportRanges(0, [{ offset: off, length: 0x2000n }]).errno, "EOVERFLOW");
});

test("K-45 region 1 (upper half of the 64-bit BAR0) → -EINVAL", () => {
  assert.equal(vfioF().exportRanges(1, one).errno, "EINVAL");
});

test("K-46 region 3 (IO BAR) → -EINVAL, also with a wrapping range (provider lookup first)", () => {
  const t = vfioF();
  assert.equal(t.exportRanges(3, one).errno, "EINVAL");
  assert.equal(t.exportRanges(3, [{ offset: 0xffff_ffff_ffff_f000n, length: 0x1000n }]).errno, "EINVAL");
});

test("K-47 region 5 (not implemented) → -EINVAL", () => {
  assert.equal(vfioF().exportRanges(5, one).errno, "EINVAL");
});

test("K-48 region 2 (256-byte BAR), {0, 0x1000} → -EINVAL", () => {
  assert.equal(vfioF().exportRanges(2, one).errno, "EINVAL");
});

test("K-49 region 4, {0, 0x10000} → success", () => {
  assert.equal(vfioF().exportRanges(4, [{ offset: 0n, length: 0x10000n }]).errno, null);
});

test("K-50 overlapping {0,0x2000},{0x1000,0x2000} → success, size 0x4000; physVec as given", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, [
    { offset: 0n, length: 0x2000n },
    { offset: 0x1000n, length: 0x2000n },
  ]);
  assert.equal(buf.size, 0x4000n);
  assert.deepEqual(t.vdev.dmabufs[0].physVec, [
    { paddr: S, len: 0x2000n },
    { paddr: S + 0x1000n, len: 0x2000n },
  ]);
});

test("K-51 {0x3000,0x1000},{0,0x1000} → success; physVec keeps the given order", () => {
  const t = vfioF();
  t.exportBuf(0, [
    { offset: 0x3000n, length: 0x1000n },
    { offset: 0n, length: 0x1000n },
  ]);
  assert.deepEqual(t.vdev.dmabufs[0].physVec, [
    { paddr: S + 0x3000n, len: 0x1000n },
    { paddr: S, len: 0x1000n },
  ]);
});

test("K-52 open_flags O_CLOEXEC → close-on-exec fd; O_RDWR|0x4000_0000 → success, file flags O_RDWR only", () => {
  const t = vfioF();
  const a = t.exportRanges(0, one, { openFlags: O_CLOEXEC });
  assert.equal(t.m.fds.cloexec(a.ret), true);
  const b = t.exportRanges(0, one, { openFlags: O_RDWR | 0x4000_0000 });
  assert.equal(b.errno, null);
  assert.equal(t.m.fds.cloexec(b.ret), false);
  assert.equal(t.m.fds.peek(b.ret)!.flags, O_RDWR);
});

test("K-53 open_flags O_NONBLOCK → the dma-buf file has O_NONBLOCK", () => {
  const t = vfioF();
  const r = t.exportRanges(0, one, { openFlags: O_NONBLOCK });
  assert.equal(t.m.fds.peek(r.ret)!.flags & O_NONBLOCK, O_NONBLOCK);
});

test("K-54 descriptor table full → -EMFILE; list empty, registration back, release ran once", () => {
  const t = vfioF({ maxFds: 4 });
  while (t.m.fds.size < 4) t.m.vfio.open("0000:04:00.0");
  const reg = t.vdev.registration;
  const releases = () => t.m.log.all().filter((e) => e.event.kind === "dmabuf-release").length;
  assert.equal(t.exportRanges(0, one).errno, "EMFILE");
  assert.equal(t.vdev.dmabufs.length, 0);
  assert.equal(t.vdev.registration, reg);
  assert.equal(releases(), 1);
  assert.equal(t.m.dmabuf.buffers.size, 0);
});

test("K-55 device unregistration in progress (registration count 0) → -ENODEV", () => {
  const t = vfioF();
  t.vdev.registration = 0;
  assert.equal(t.exportRanges(0, one).errno, "ENODEV");
});

test("K-56 exports X then Y → dmabufs [X, Y], registration +2; closing Y's fd → [X], +1", () => {
  const t = vfioF();
  const base = t.vdev.registration;
  const x = t.exportBuf(0, one);
  const y = t.exportBuf(0, one);
  assert.deepEqual(
    t.vdev.dmabufs.map((p) => p.dmabuf),
    [x.buf, y.buf],
  );
  assert.equal(t.vdev.registration, base + 2);
  t.m.fds.close(y.fd);
  assert.deepEqual(
    t.vdev.dmabufs.map((p) => p.dmabuf),
    [x.buf],
  );
  assert.equal(t.vdev.registration, base + 1);
});
