/** §13.10 with VFIO dma-bufs of fabric F: K-160 … K-168, K-172, K-173. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GenericDevice } from "../../src/core/device.js";
import { KernelError } from "../../src/core/errors.js";
import type { DmaBufOps } from "../../src/dmabuf/dma-buf.js";
import {
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  ioasAlloc,
} from "../../src/iommufd/index.js";
import { PCI_COMMAND } from "../../src/pci/regs.js";
import { BDF } from "../helpers/spec-f.js";
import { iommufdF, K16 } from "./setup.js";

const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
const BAR0 = 0x80_0000_0000n;
const MEM_OFF = 0x4;
const MEM_ON = 0x6;
const one = [{ offset: 0n, length: K16 }];

for (const moveNotify of [true, false]) {
  test(`K-160 one-range VFIO buffer, MAP_FILE(RW, 0, 0x4000) → 0; iova+k → 0x80_0000_0000+k with MMIO prot (MN=${moveNotify ? "y" : "n"}; no pin, no map_dma_buf)`, () => {
    const s = iommufdF({ kernel: { moveNotify } });
    s.attachEPa();
    const X = s.exportBuf(0, one);
    const seq = s.m.log.length;
    const r = s.mapFile({ fd: X.fd, length: K16, flags: RW });
    assert.equal(r.errno, null);
    const d = s.iopt().domains[0];
    assert.equal(d.pgsize, 4096n);
    for (const k of [0n, 0x7ffn, 0x1000n, 0x3fffn])
      assert.deepEqual(d.hw.translate(r.value! + k, "read"), {
        ok: true,
        phys: BAR0 + k,
        prot: { read: true, write: true, mmio: true },
      });
    assert.equal(d.hw.translate(r.value! + K16, "read").ok, false);
    const a = X.buf.attachments[0];
    assert.ok(a.dev instanceof GenericDevice && a.dev.name === "iommufd");
    assert.equal(a.peer2peer, true);
    assert.equal(a.dynamic, true);
    assert.equal(a.mappings.length, 0);
    assert.deepEqual(
      s.m.log.since(seq).filter((e) => e.event.kind === "map"),
      [],
    );
    assert.equal(s.m.diag.names().filter((n) => n.startsWith("warn:")).length, 0);
  });
}

test("K-161 VFIO buffer with two ranges → -EOPNOTSUPP; the attachment is detached and the buffer reference dropped", () => {
  const s = iommufdF();
  const X = s.exportBuf(0, [
    { offset: 0n, length: 0x1000n },
    { offset: 0x2000n, length: 0x1000n },
  ]);
  const seq = s.m.log.length;
  assert.equal(s.mapFile({ fd: X.fd, length: 0x2000n }).errno, "EOPNOTSUPP");
  assert.equal(X.buf.attachments.length, 0);
  assert.equal(X.buf.file.refs, 1);
  const kinds = s.m.log.since(seq).map((e) => e.event.kind);
  assert.deepEqual(
    kinds.filter((k) => k === "attach" || k === "detach"),
    ["attach", "detach"],
  );
});

test("K-162 VFIO buffer SUSPENDED → -ENODEV from the exporter's attach", () => {
  const s = iommufdF();
  const X = s.exportBuf(0, one);
  s.configWrite(PCI_COMMAND, 2, MEM_OFF);
  assert.equal(s.vdev.dmabufs[0].state, "SUSPENDED");
  const seq = s.m.log.length;
  assert.equal(s.mapFile({ fd: X.fd, length: K16 }).errno, "ENODEV");
  assert.equal(X.buf.attachments.length, 0);
  assert.equal(X.buf.file.refs, 1);
  assert.equal(s.m.log.since(seq).filter((e) => e.event.kind === "attach").length, 0);
});

test("K-163 MAP_FILE: flags 8 -EOPNOTSUPP; flags 0 -EINVAL; length 0 -EINVAL; bad ioas_id -ENOENT; start 0xFFFF_FFFF_FFFF_F000 + 0x2000 -EOVERFLOW; past the buffer -EINVAL", () => {
  const s = iommufdF();
  const X = s.exportBuf(0, one);
  assert.equal(s.mapFile({ fd: X.fd, length: K16, flags: 8 | RW }).errno, "EOPNOTSUPP");
  assert.equal(s.mapFile({ fd: X.fd, length: K16, flags: 8 }).errno, "EOPNOTSUPP");
  assert.equal(s.mapFile({ fd: X.fd, length: K16, flags: 0 }).errno, "EINVAL");
  assert.equal(s.mapFile({ fd: X.fd, length: 0n }).errno, "EINVAL");
  assert.equal(s.mapFile({ fd: X.fd, length: K16, ioasId: 999 }).errno, "ENOENT");
  assert.equal(s.mapFile({ fd: X.fd, start: 0xffff_ffff_ffff_f000n, length: 0x2000n }).errno, "EOVERFLOW");
  assert.equal(s.mapFile({ fd: X.fd, start: 0x1000n, length: 0x3001n }).errno, "EINVAL");
  assert.equal(s.mapFile({ fd: X.fd, start: 0n, length: K16 + 1n }).errno, "EINVAL");
  assert.equal(s.mapFile({ fd: 77, length: K16 }).errno, "EBADF");
  assert.equal(X.buf.attachments.length, 0);
  assert.equal(X.buf.file.refs, 1);
  assert.equal(s.mapFile({ fd: X.fd, start: 0x1000n, length: 0x3000n }).errno, null);
});

test("K-164 start 0x800, length 0x1000: with a 4 KiB domain -EINVAL; with no domain → 0 (sub-page IOVA)", () => {
  const s = iommufdF();
  const X = s.exportBuf(0, one);
  s.attachEPa();
  assert.equal(s.mapFile({ fd: X.fd, start: 0x800n, length: 0x1000n }).errno, "EINVAL");
  assert.equal(X.buf.attachments.length, 0);
  const bare = ioasAlloc(s.m, s.ifd);
  const r = s.mapFile({ fd: X.fd, start: 0x800n, length: 0x1000n, ioasId: bare });
  assert.equal(r.errno, null);
  assert.equal(r.value! % 0x1000n, 0x800n);
  assert.equal(s.areaAt(r.value!, bare)!.pageOffset, 0x800n);
});

test("K-165 FIXED_IOVA overlapping an existing area → -EEXIST", () => {
  const s = iommufdF();
  s.attachEPa();
  const X = s.exportBuf(0, one);
  const iova = s.mapFile({ fd: X.fd, length: K16 }).value!;
  const fixed = RW | IOMMU_IOAS_MAP_FIXED_IOVA;
  assert.equal(s.mapFile({ fd: X.fd, length: K16, iova: iova + 0x1000n, flags: fixed }).errno, "EEXIST");
  assert.equal(s.mapFile({ fd: X.fd, length: K16, iova: iova + K16, flags: fixed }).errno, null);
  // a reserved range is checked before the overlap (the MSI window EPa brought in)
  assert.equal(s.mapFile({ fd: X.fd, length: K16, iova: 0xfee0_0000n, flags: fixed }).errno, "EINVAL");
});

test("K-166 COMMAND MEMORY=0 → every domain loses the translation; MEMORY=1 → not restored; IOAS UNMAP → 0; new MAP_FILE → 0 and mapped", () => {
  const s = iommufdF();
  s.attachEPa();
  s.mockDomain();
  const X = s.exportBuf(0, one);
  const iova = s.mapFile({ fd: X.fd, length: K16 }).value!;
  const pages = s.areaAt(iova)!.pages!;
  assert.deepEqual(s.mapped(iova, K16), [K16, K16]);
  s.configWrite(PCI_COMMAND, 2, MEM_OFF);
  assert.deepEqual(s.mapped(iova, K16), [0n, 0n]);
  s.configWrite(PCI_COMMAND, 2, MEM_ON);
  assert.equal(s.vdev.dmabufs[0].state, "ACTIVE");
  assert.equal(pages.notifications, 2);
  assert.deepEqual(s.mapped(iova, K16), [0n, 0n]);
  assert.deepEqual(s.unmap(iova, K16), { errno: null, value: K16 });
  const r = s.mapFile({ fd: X.fd, length: K16 });
  assert.equal(r.errno, null);
  assert.deepEqual(s.mapped(r.value!, K16), [K16, K16]);
  // lock order resv → pages.mutex, learned without an inversion (§10.4)
  assert.ok(s.m.locks.order().includes("dma_resv>pages.mutex"));
  assert.ok(s.m.locks.order().includes("memory_lock>dma_resv"));
  assert.equal(s.m.diag.has("lockdep:inversion"), false);
});

test("K-167 VFIO device close → mapping removed; a new MAP_FILE on the same fd → -ENODEV", () => {
  const s = iommufdF();
  s.mockDomain();
  const X = s.exportBuf(0, one);
  const iova = s.mapFile({ fd: X.fd, length: K16 }).value!;
  s.m.vfio.close(s.fd);
  assert.equal(s.areaAt(iova)!.pages!.revoked, true);
  assert.equal(s.vdev.dmabufs.length, 0); // DEAD
  assert.deepEqual(s.mapped(iova, K16), [0n]);
  assert.equal(s.mapFile({ fd: X.fd, length: K16 }).errno, "ENODEV");
  assert.equal(X.buf.attachments.length, 1); // only the revoked area's
});

test("K-168 buffer of an unrelated exporter → -EOPNOTSUPP (attachment detached, reference dropped)", () => {
  const s = iommufdF();
  const ops: DmaBufOps = {
    mapDmaBuf() {
      throw new KernelError("EOPNOTSUPP", "test exporter");
    },
    unmapDmaBuf() {},
    release() {},
  };
  const buf = s.m.dmabuf.export({ ops, size: K16, flags: 2, priv: {}, expName: "other" });
  const fd = s.m.dmabuf.fd(buf, 0, s.m.fds);
  assert.equal(s.mapFile({ fd, length: K16 }).errno, "EOPNOTSUPP");
  assert.equal(buf.attachments.length, 0);
  assert.equal(buf.file.refs, 1);
  // with CONFIG_VFIO_PCI_DMABUF=n even a VFIO buffer is foreign to the interconnect
  const n = iommufdF();
  const X = n.exportBuf(0, one);
  n.m.kernel.vfioPciDmabuf = false;
  assert.equal(n.mapFile({ fd: X.fd, length: K16 }).errno, "EOPNOTSUPP");
});

test("K-172 VFIO buffer of EPc (no P2P path to anything) → MAP_FILE succeeds: iommufd does no P2P type check", () => {
  const s = iommufdF();
  s.mockDomain();
  const cfd = s.m.vfio.open(BDF.EPc);
  const X = s.exportBuf(0, one, cfd);
  const r = s.mapFile({ fd: X.fd, length: K16 });
  assert.equal(r.errno, null);
  const bar = s.m.device(BDF.EPc).resources[0].start;
  const t = s.iopt().domains[0].hw.translate(r.value! + 0x10n, "write");
  assert.deepEqual(t, { ok: true, phys: bar + 0x10n, prot: { read: true, write: true, mmio: true } });
});

test("K-173 unmapping the last area and closing the dma-buf fd → attachment detached, buffer released once, registration put", () => {
  for (const order of ["unmap-then-close", "close-then-unmap"] as const) {
    const s = iommufdF();
    s.mockDomain();
    const X = s.exportBuf(0, one);
    const copyIoas = ioasAlloc(s.m, s.ifd);
    const iova = s.mapFile({ fd: X.fd, length: K16 }).value!;
    const iova2 = s.mapFile({ fd: X.fd, length: K16, ioasId: copyIoas }).value!;
    assert.equal(s.vdev.registration, 2);
    const seq = s.m.log.length;
    const unmapAll = () => {
      s.unmap(iova, K16);
      assert.equal(X.buf.attachments.length, 1);
      s.unmap(iova2, K16, copyIoas);
    };
    if (order === "unmap-then-close") {
      unmapAll();
      assert.equal(X.buf.attachments.length, 0);
      assert.equal(X.buf.file.refs, 1);
      s.m.fds.close(X.fd);
    } else {
      s.m.fds.close(X.fd);
      assert.equal(s.m.dmabuf.buffers.has(X.buf), true);
      unmapAll();
    }
    const kinds = s.m.log.since(seq).map((e) => e.event.kind);
    assert.equal(kinds.filter((k) => k === "vfio-release").length, 1, order);
    assert.equal(kinds.filter((k) => k === "detach").length, 2);
    assert.equal(s.m.dmabuf.buffers.has(X.buf), false);
    assert.equal(s.vdev.registration, 1);
    assert.deepEqual(s.vdev.dmabufs, []);
    assert.equal(s.m.diag.has("leak:attachment-on-release"), false);
  }
});
