/** §10.4 / §10.5: access, copy, unmap/split rules, locking and the revocable_wait variant (K-169 … K-171). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { KernelError } from "../../src/core/errors.js";
import type { DmaBufOps } from "../../src/dmabuf/dma-buf.js";
import {
  copy,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_VFIO_IOAS_SET,
  ioasAlloc,
  revokeNotify,
  testDmabufGet,
  vfioIoas,
  vfioSetIommu,
  vfioUnmapDma,
} from "../../src/iommufd/index.js";
import { PCI_COMMAND } from "../../src/pci/regs.js";
import { VFIO_TYPE1_IOMMU } from "../../src/vfio/type1.js";
import { isBug } from "../helpers/vfio-f.js";
import { attempt, iommufdF, K16 } from "./setup.js";

const R = IOMMU_IOAS_MAP_READABLE;
const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
const one = [{ offset: 0n, length: K16 }];

test("K-169 access read/write of a dma-buf area -EINVAL (a write to a read-only area -EPERM first); pin: domain-held → 0 + bug:dmabuf-access-pin, no domain → -EFAULT", () => {
  const s = iommufdF();
  s.mockDomain();
  const X = s.exportBuf(0, one);
  const rw = s.mapFile({ fd: X.fd, length: K16, flags: RW }).value!;
  const ro = s.mapFile({ fd: X.fd, length: K16, flags: R }).value!;
  const acc = s.ctx.createAccess(s.ioasId, { needsPinPages: true });
  assert.equal(attempt(() => s.ctx.accessRw(acc, rw, 16n, false)).errno, "EINVAL");
  assert.equal(attempt(() => s.ctx.accessRw(acc, rw, 16n, true)).errno, "EINVAL");
  assert.equal(attempt(() => s.ctx.accessRw(acc, ro, 16n, false)).errno, "EINVAL");
  assert.equal(attempt(() => s.ctx.accessRw(acc, ro, 16n, true)).errno, "EPERM");
  assert.equal(attempt(() => s.ctx.accessRw(acc, 0x10_0000_0000n, 16n, false)).errno, "ENOENT");
  // pin (6.19: no dma-buf check on this path)
  assert.equal(attempt(() => s.ctx.accessPin(acc, rw, 0x1000n, true)).errno, null);
  assert.equal(s.m.diag.count("bug:dmabuf-access-pin"), 1);
  assert.equal(attempt(() => s.ctx.accessPin(acc, ro, 0x1000n, true)).errno, "EPERM");
  // an IOAS without any domain: the area is not held, the user-page path faults
  const bare = ioasAlloc(s.m, s.ifd);
  const iova = s.mapFile({ fd: X.fd, length: K16, ioasId: bare }).value!;
  const acc2 = s.ctx.createAccess(bare, { needsPinPages: true });
  assert.equal(attempt(() => s.ctx.accessPin(acc2, iova, 0x1000n, false)).errno, "EFAULT");
  assert.equal(s.m.diag.count("bug:dmabuf-access-pin"), 1);
});

test("K-170 IOAS_COPY of the area → 0 (pages shared); a later revoke unmaps the original and both copies", () => {
  const s = iommufdF();
  s.attachEPa();
  const other = ioasAlloc(s.m, s.ifd);
  s.mockDomain(other);
  const X = s.exportBuf(0, one);
  const iova = s.mapFile({ fd: X.fd, length: K16 }).value!;
  const same = copy(s.m, s.ifd, { srcIoasId: s.ioasId, dstIoasId: s.ioasId, srcIova: iova, length: K16 });
  const far = copy(s.m, s.ifd, { srcIoasId: s.ioasId, dstIoasId: other, srcIova: iova, length: K16 });
  const pages = s.areaAt(iova)!.pages!;
  assert.equal(s.areaAt(same)!.pages, pages);
  assert.equal(s.areaAt(far, other)!.pages, pages);
  assert.equal(pages.refs, 3);
  assert.equal(pages.tracker.length, 3);
  assert.equal(X.buf.attachments.length, 1); // one attachment for all three areas
  assert.deepEqual(
    [...s.mapped(iova, K16), ...s.mapped(same, K16), ...s.mapped(far, K16, other)],
    [K16, K16, K16],
  );
  const d = s.iopt(other).domains[0].hw.translate(far + 0x20n, "read");
  assert.deepEqual(d, { ok: true, phys: 0x80_0000_0020n, prot: { read: true, write: true, mmio: true } });
  s.configWrite(PCI_COMMAND, 2, 0x4);
  assert.deepEqual(
    [...s.mapped(iova, K16), ...s.mapped(same, K16), ...s.mapped(far, K16, other)],
    [0n, 0n, 0n],
  );
  // a copy from a revoked area is still allowed and maps nothing
  const late = copy(s.m, s.ifd, { srcIoasId: s.ioasId, dstIoasId: other, srcIova: iova, length: K16 });
  assert.deepEqual(s.mapped(late, K16, other), [0n]);
});

test("K-171 UNMAP of half the area -ENOENT, of nothing -ENOENT; a split the VFIO-compat TYPE1 unmap needs → -EOPNOTSUPP; empty compat unmap → 0 with size 0", () => {
  const s = iommufdF();
  const X = s.exportBuf(0, one);
  // compat IOAS in TYPE1 mode: unmaps may cut areas
  vfioIoas(s.m, s.ifd, IOMMU_VFIO_IOAS_SET, s.ioasId);
  assert.equal(vfioSetIommu(s.m, s.ifd, VFIO_TYPE1_IOMMU), 0);
  assert.equal(s.iopt().iovaAlignment, 4096n);
  const iova = s.mapFile({ fd: X.fd, length: K16 }).value!;
  assert.equal(s.unmap(iova, K16 / 2n).errno, "ENOENT");
  assert.equal(s.unmap(iova + 0x1000n, K16).errno, "ENOENT");
  assert.equal(s.unmap(0x10_0000_0000n, K16).errno, "ENOENT");
  assert.equal(attempt(() => vfioUnmapDma(s.m, s.ifd, { iova, size: K16 / 2n })).errno, "EOPNOTSUPP");
  // cuts at the first or last IOVA are no-ops
  assert.equal(attempt(() => s.iopt().cutIova([iova, iova + K16 - 1n])).errno, null);
  assert.equal(s.iopt().areas.length, 1);
  assert.deepEqual(
    attempt(() => vfioUnmapDma(s.m, s.ifd, { iova: 0x10_0000_0000n, size: K16 })),
    {
      errno: null,
      value: 0n,
    },
  );
  assert.deepEqual(
    attempt(() => vfioUnmapDma(s.m, s.ifd, { iova, size: K16 })),
    { errno: null, value: K16 },
  );
  assert.equal(X.buf.attachments.length, 0);
});

test("K-166 (§10.4 lock contract) revokeNotify runs under the reservation lock; called without it → KernelBug", () => {
  const s = iommufdF();
  const dfd = testDmabufGet(s.m, s.ifd, 4096);
  s.mapFile({ fd: dfd, length: 0x1000n });
  const a = s.buf(dfd).attachments[0];
  assert.equal(
    isBug(() => revokeNotify(a)),
    true,
  );
});

test("K-187 (iommufd part) revokeSemantics='revocable_wait': iommufd pins after attach and unpins at release; a pin failure detaches and fails", () => {
  const s = iommufdF({ kernel: { revokeSemantics: "revocable_wait" } });
  const dfd = testDmabufGet(s.m, s.ifd, Number(K16));
  const iova = s.mapFile({ fd: dfd, length: K16 }).value!;
  const pages = s.areaAt(iova)!.pages!;
  assert.equal(pages.pinned, true); // the selftest exporter has no pin op: dma_buf_pin is a no-op success
  s.unmap(iova, K16);
  assert.equal(pages.pinned, false);
  // a VFIO buffer (no pin op in this variant): pinned but still revocable
  s.mockDomain();
  const X = s.exportBuf(0, one);
  const v = s.mapFile({ fd: X.fd, length: K16 }).value!;
  const vp = s.areaAt(v)!.pages!;
  assert.equal(vp.pinned, true);
  assert.deepEqual(s.mapped(v, K16), [K16]);
  s.configWrite(PCI_COMMAND, 2, 0x4);
  assert.deepEqual(s.mapped(v, K16), [0n]); // iommufd holds no map_dma_buf mapping: nothing to wait for
  assert.equal(
    s.m.diag.names().some((n) => n.startsWith("deadlock")),
    false,
  );
  s.unmap(v, K16);
  assert.equal(vp.pinned, false);
  assert.equal(X.buf.attachments.length, 0);
  // an exporter whose pin fails
  const calls: string[] = [];
  const ops: DmaBufOps = {
    pin() {
      calls.push("pin");
      throw new KernelError("EBUSY", "test: cannot pin");
    },
    unpin() {
      calls.push("unpin");
    },
    mapDmaBuf() {
      throw new KernelError("EOPNOTSUPP", "test");
    },
    unmapDmaBuf() {},
    release() {},
  };
  const buf = s.m.dmabuf.export({ ops, size: K16, flags: 2, priv: {}, expName: "pin-test" });
  const fd = s.m.dmabuf.fd(buf, 0, s.m.fds);
  assert.equal(s.mapFile({ fd, length: K16 }).errno, "EBUSY");
  assert.deepEqual(calls, ["pin"]);
  assert.equal(buf.attachments.length, 0);
  assert.equal(buf.file.refs, 1);
  // a pin that succeeds on a foreign exporter is undone when the interconnect refuses
  ops.pin = () => {
    calls.push("pin");
  };
  assert.equal(s.mapFile({ fd, length: K16 }).errno, "EOPNOTSUPP");
  assert.deepEqual(calls, ["pin", "pin", "unpin"]);
  assert.equal(buf.attachments.length, 0);
});
