/** §13.4 Export properties and attach, §13.5 mapping through VFIO (MN=y unless stated). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GenericDevice } from "../../src/core/device.js";
import { SEEK_CUR, SEEK_END, SEEK_SET } from "../../src/core/file.js";
import { DMA_BUF_IOCTL_SYNC, DMA_BUF_SET_NAME_B } from "../../src/dmabuf/dma-buf.js";
import { dmaBufDmaOf } from "../../src/dmabuf/phys-vec.js";
import { PCI_COMMAND } from "../../src/pci/regs.js";
import { compose, fn, identity } from "../helpers/spec-f.js";
import { call, isBug, page, vfioF } from "../helpers/vfio-f.js";

const S = 0x80_0000_0000n;
const one = [{ offset: 0n, length: page(1) }];
const two = [{ offset: 0n, length: page(2) }];
const MEM_OFF = 0x4; // COMMAND = MASTER only
const MEM_ON = 0x6; // MEMORY | MASTER
const BIDI = 0;
const TO_DEVICE = 1;
const FROM_DEVICE = 2;
const NONE = 3;

test("K-57 export while COMMAND.MEMORY=0 → fd; attach -ENODEV; after MEMORY=1 attach works", () => {
  const t = vfioF();
  t.configWrite(PCI_COMMAND, 2, MEM_OFF);
  const { buf } = t.exportBuf(0, one);
  assert.equal(t.vdev.dmabufs[0].state, "SUSPENDED");
  const a = t.importer("EPb", "A");
  assert.equal(call(() => a.attach(buf)).errno, "ENODEV");
  t.configWrite(PCI_COMMAND, 2, MEM_ON);
  assert.equal(call(() => a.attach(buf)).errno, null);
});

test("K-58 a VF bound to vfio-pci with COMMAND.MEMORY cleared exports an ACTIVE buffer", () => {
  const t = vfioF({
    mutate: (m) => {
      fn(m, "EPb").sriov = {
        totalVfs: 8,
        numVfs: 1,
        vfOffset: 1,
        vfStride: 1,
        vfDevice: 0x101e,
        vfBars: [{ index: 0, type: "mem64", prefetch: true, size: "1MiB" }],
      };
    },
  });
  const vf = t.m.vfio.open("0000:04:00.1");
  t.configWrite(PCI_COMMAND, 2, MEM_OFF, vf);
  const r = t.exportRanges(0, one, {}, vf);
  assert.equal(r.errno, null);
  assert.equal(t.m.vfio.deviceOf(vf).dmabufs[0].state, "ACTIVE");
});

test("K-59 static attach to a VFIO buffer → -EOPNOTSUPP", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, one);
  assert.equal(call(() => t.m.dmabuf.attach(buf, t.dev.EPb)).errno, "EOPNOTSUPP");
});

test("K-60 I(false) → -EOPNOTSUPP, on a SUSPENDED buffer too (peer2peer checked first)", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, one);
  assert.equal(call(() => t.importer("EPb", "A", { peer2peer: false }).attach(buf)).errno, "EOPNOTSUPP");
  t.configWrite(PCI_COMMAND, 2, MEM_OFF);
  assert.equal(call(() => t.importer("EPb", "B", { peer2peer: false }).attach(buf)).errno, "EOPNOTSUPP");
});

test("K-61 importer ops without move_notify → -EINVAL from the core; the exporter's attach is not called", () => {
  const t = vfioF();
  t.configWrite(PCI_COMMAND, 2, MEM_OFF); // exporter attach would say -ENODEV
  const { buf } = t.exportBuf(0, one);
  assert.equal(call(() => t.importer("EPb", "A", { withMoveNotify: false }).attach(buf)).errno, "EINVAL");
  assert.ok(t.m.diag.has("warn:dma_buf_dynamic_attach"));
});

test("K-62 I(true) attach to an ACTIVE buffer → 0; the newest attachment comes first", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, one);
  const a = t.importer("EPb", "A");
  const b = t.importer("EPb", "B");
  a.attach(buf);
  b.attach(buf);
  assert.deepEqual(
    buf.attachments.map((x) => x.label),
    ["B", "A"],
  );
});

test("K-63 EPc (never reachable) attaches → 0: no topology check at attach", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, one);
  assert.equal(call(() => t.importer("EPc", "C").attach(buf)).errno, null);
});

test("K-64 explicit dma_buf_pin on a VFIO attachment (lock held) → -EOPNOTSUPP", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, one);
  const a = t.importer("EPb", "A").attach(buf);
  assert.equal(call(() => buf.resv.with(() => t.m.dmabuf.pin(a))).errno, "EOPNOTSUPP");
});

test("K-65 dma_buf_map_attachment without the reservation lock → KernelBug", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, one);
  const a = t.importer("EPb", "A").attach(buf);
  assert.ok(isBug(() => t.m.dmabuf.mapAttachment(a, BIDI)));
});

test("K-66 detach with a mapping outstanding completes and records leak:mapping-on-detach", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, one);
  const a = t.importer("EPb", "A");
  a.attach(buf);
  a.map();
  a.detach();
  assert.equal(buf.attachments.length, 0);
  assert.ok(t.m.diag.has("leak:mapping-on-detach"));
});

test("K-67 SET_NAME_B: 0 with or without attachments; > 31 characters -EINVAL; unreadable -EFAULT", () => {
  const t = vfioF();
  const { fd, buf } = t.exportBuf(0, one);
  const name = (s: string) => new TextEncoder().encode(`${s}\0`);
  assert.equal(t.ioctl(DMA_BUF_SET_NAME_B, name("spdk-cmb"), fd).errno, null);
  assert.equal(buf.name, "spdk-cmb");
  t.importer("EPb", "A").attach(buf);
  assert.equal(t.ioctl(DMA_BUF_SET_NAME_B, name("renamed"), fd).errno, null);
  assert.equal(buf.name, "renamed");
  assert.equal(t.ioctl(DMA_BUF_SET_NAME_B, name("x".repeat(31)), fd).errno, null);
  assert.equal(t.ioctl(DMA_BUF_SET_NAME_B, name("x".repeat(32)), fd).errno, "EINVAL");
  assert.equal(t.ioctl(DMA_BUF_SET_NAME_B, null, fd).errno, "EFAULT");
});

test("K-68 mmap of a VFIO dma-buf fd → -EINVAL", () => {
  const t = vfioF();
  const { fd } = t.exportBuf(0, one);
  const f = t.m.fds.peek(fd)!;
  assert.equal(call(() => f.ops.mmap!(f, { pgoff: 0n, pages: 1n, shared: true })).errno, "EINVAL");
});

test("K-69 llseek: (0, SEEK_END) → size; (0, SEEK_SET) → 0; SEEK_CUR and offset 4096 → -EINVAL", () => {
  const t = vfioF();
  const { fd } = t.exportBuf(0, two);
  const f = t.m.fds.peek(fd)!;
  assert.equal(f.ops.llseek!(f, 0n, SEEK_END), 0x2000n);
  assert.equal(f.ops.llseek!(f, 0n, SEEK_SET), 0n);
  assert.equal(call(() => f.ops.llseek!(f, 0n, SEEK_CUR)).errno, "EINVAL");
  assert.equal(call(() => f.ops.llseek!(f, 4096n, SEEK_SET)).errno, "EINVAL");
});

test("K-70 DMA_BUF_IOCTL_SYNC READ → 0; flags 0 → -EINVAL; flags 8 → -EINVAL; unknown ioctl → -ENOTTY", () => {
  const t = vfioF();
  const { fd } = t.exportBuf(0, one);
  const sync = (flags: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(flags), true);
    return t.ioctl(DMA_BUF_IOCTL_SYNC, b, fd).errno;
  };
  assert.equal(sync(1), null);
  assert.equal(sync(0), "EINVAL");
  assert.equal(sync(8), "EINVAL");
  assert.equal(t.ioctl(0x1234, new Uint8Array(8), fd).errno, "ENOTTY");
});

test("K-71 dma_buf_get on a non-dma-buf fd → -EINVAL; on a closed fd → -EBADF", () => {
  const t = vfioF();
  assert.equal(call(() => t.m.dmabuf.get(t.m.fds, t.fd)).errno, "EINVAL");
  assert.equal(call(() => t.m.dmabuf.get(t.m.fds, 999)).errno, "EBADF");
});

test("K-72 dma_buf_export with pin but no unpin → -EINVAL; without release → -EINVAL", () => {
  const t = vfioF();
  const ops = { mapDmaBuf: () => null, unmapDmaBuf: () => {}, release: () => {} };
  assert.equal(
    call(() =>
      t.m.dmabuf.export({ ops: { ...ops, pin: () => {} }, size: 4096n, flags: 0, priv: {}, expName: "t" }),
    ).errno,
    "EINVAL",
  );
  const { release: _r, ...noRelease } = ops;
  assert.equal(
    call(() => t.m.dmabuf.export({ ops: noRelease as never, size: 4096n, flags: 0, priv: {}, expName: "t" }))
      .errno,
    "EINVAL",
  );
});

test("K-73 EPb maps {0,0x2000} BIDIRECTIONAL → BUS_ADDR, one entry (S, 0x2000), no pages; cache key(EPb) = BUS_ADDR", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, two);
  const a = t.importer("EPb", "A");
  a.attach(buf);
  const { sgt } = a.map(BIDI);
  assert.deepEqual([sgt.nents, sgt.origNents], [1, 0]);
  assert.equal(sgt.sgl[0].dmaAddress, S);
  assert.equal(sgt.sgl[0].dmaLen, 0x2000n);
  assert.equal(sgt.sgl[0].page, null);
  assert.equal(t.m.p2pdma.state(t.dev.EPa)!.mapTypes.get(t.dev.EPb.cacheKey), 3);
});

test("K-74 EPc maps → -EINVAL; cache NOT_SUPPORTED; only the 'cannot be used' warning is logged", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, one);
  const c = t.importer("EPc", "C");
  c.attach(buf);
  assert.equal(call(() => c.map()).errno, "EINVAL");
  assert.equal(t.m.p2pdma.state(t.dev.EPa)!.mapTypes.get(t.dev.EPc.cacheKey), 2);
  const lines = t.m.log.all().flatMap((e) => (e.event.kind === "kernel-log" ? [e.event.line] : []));
  assert.ok(lines.some((l) => /cannot be used for peer-to-peer DMA/.test(l)));
  assert.ok(!lines.some((l) => /Host bridge not in P2PDMA whitelist/.test(l)));
});

const busOffset = (m: Parameters<typeof fn>[0]) => {
  m.hostBridges[0].windows = [{ cpuBase: "0x80_0000_0000", size: "64GiB", busOffset: "0x10_0000_0000" }];
};

test("K-75 host bridge offset: BAR0 at CPU 0x80_0000_0000 maps to bus 0x70_0000_0000", () => {
  const t = vfioF({ mutate: busOffset });
  const { buf } = t.exportBuf(0, one);
  const a = t.importer("EPb", "A");
  a.attach(buf);
  assert.equal(a.map().sgt.sgl[0].dmaAddress, 0x70_0000_0000n);
});

test("K-76 ranges {0x3000,0x1000},{0,0x2000} mapped by EPb → 2 entries in range order", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, [
    { offset: 0x3000n, length: 0x1000n },
    { offset: 0n, length: 0x2000n },
  ]);
  const a = t.importer("EPb", "A");
  a.attach(buf);
  const { sgt } = a.map();
  assert.deepEqual(
    sgt.sgl.map((e) => [e.dmaAddress, e.dmaLen]),
    [
      [S + 0x3000n, 0x1000n],
      [S, 0x2000n],
    ],
  );
});

const epcNoIommu = (m: Parameters<typeof fn>[0]) => {
  fn(m, "EPc").iommu = false;
};

test("K-77 identity 8086:2020, EPc dma-direct → THRU_HOST_BRIDGE per-range: the CPU physical address, offset or not", () => {
  const t = vfioF({ mutate: compose(identity("8086:2020"), epcNoIommu, busOffset) });
  const { buf } = t.exportBuf(0, one);
  const c = t.importer("EPc", "C");
  c.attach(buf);
  const { sgt } = c.map();
  assert.equal(dmaBufDmaOf(sgt)?.mode, "per-range");
  assert.equal(sgt.sgl[0].dmaAddress, S);
});

test("K-78 EPc behind an IOMMU → iova mode: one entry (iovaBase, size); prot follows the direction", () => {
  for (const [dir, read, write] of [
    [BIDI, true, true],
    [TO_DEVICE, true, false],
    [FROM_DEVICE, false, true],
  ] as const) {
    const t = vfioF({ mutate: identity("8086:2020") });
    const { buf } = t.exportBuf(0, two);
    const c = t.importer("EPc", "C");
    c.attach(buf);
    const { sgt } = c.map(dir);
    assert.equal(dmaBufDmaOf(sgt)?.mode, "iova");
    assert.equal(sgt.nents, 1);
    assert.equal(sgt.sgl[0].dmaLen, 0x2000n);
    const base = sgt.sgl[0].dmaAddress;
    const r = t.m.iommu.translate(t.dev.EPc, base + 0x1234n, read ? "read" : "write");
    assert.ok(r.ok);
    assert.equal(r.phys, S + 0x1234n);
    assert.deepEqual(
      { read: r.prot.read, write: r.prot.write, mmio: r.prot.mmio },
      { read, write, mmio: true },
    );
  }
});

test("K-79 iova mode with two ranges: 'zero' → -EEXIST and nothing left; 'cumulative' → one entry, pages in order", () => {
  const ranges = [
    { offset: 0x3000n, length: 0x1000n },
    { offset: 0n, length: 0x1000n },
  ];
  const t = vfioF({ mutate: identity("8086:2020") });
  const { buf } = t.exportBuf(0, ranges);
  const c = t.importer("EPc", "C");
  c.attach(buf);
  const before = t.m.iommu.liveCounts();
  assert.equal(call(() => c.map()).errno, "EEXIST");
  assert.deepEqual(t.m.iommu.liveCounts(), before);
  const u = vfioF({ mutate: identity("8086:2020"), kernel: { iovaLinkOffset: "cumulative" } });
  const ub = u.exportBuf(0, ranges);
  const uc = u.importer("EPc", "C");
  uc.attach(ub.buf);
  const { sgt } = uc.map();
  assert.deepEqual([sgt.nents, sgt.sgl[0].dmaLen], [1, 0x2000n]);
  const base = sgt.sgl[0].dmaAddress;
  const p0 = u.m.iommu.translate(u.dev.EPc, base, "read");
  const p1 = u.m.iommu.translate(u.dev.EPc, base + 0x1000n, "read");
  assert.ok(p0.ok && p1.ok);
  assert.deepEqual([p0.phys, p1.phys], [S + 0x3000n, S]);
});

test("K-80 EPc dma-direct with a 32-bit DMA mask → -ENOMEM (BAR above the mask)", () => {
  const t = vfioF({
    mutate: compose(identity("8086:2020"), (m) => {
      fn(m, "EPc").iommu = false;
      fn(m, "EPc").dmaMaskBits = 32;
    }),
  });
  const { buf } = t.exportBuf(0, one);
  const c = t.importer("EPc", "C");
  c.attach(buf);
  assert.equal(call(() => c.map()).errno, "ENOMEM");
});

test("K-81 identity 8086:3C00 (same host bridge only): EPc → THRU_HOST_BRIDGE; EPd on H1 → NOT_SUPPORTED, map -EINVAL", () => {
  const t = vfioF({
    mutate: (m) => {
      m.hostBridges[0].functions[0].id = "8086:3c00";
      m.hostBridges[1].functions[0].id = "8086:3c00";
    },
  });
  const { buf } = t.exportBuf(0, one);
  const c = t.importer("EPc", "C");
  c.attach(buf);
  assert.equal(call(() => c.map()).errno, null);
  const d = t.importer(t.m.device("0001:01:00.0"), "D");
  d.attach(buf);
  assert.equal(call(() => d.map()).errno, "EINVAL");
});

test("K-82 AMD family 0x19 with the default identity → EPc maps THRU_HOST_BRIDGE", () => {
  const t = vfioF({ cpu: { vendor: "AuthenticAMD", family: 0x19, source: "test" } });
  const { buf } = t.exportBuf(0, one);
  const c = t.importer("EPc", "C");
  c.attach(buf);
  assert.equal(dmaBufDmaOf(c.map().sgt)?.mode, "iova");
});

test("K-83 MN=n: attach succeeds, map → -EOPNOTSUPP, map_dma_buf never runs, no cache entry", () => {
  const t = vfioF({ kernel: { moveNotify: false } });
  const { buf } = t.exportBuf(0, one);
  const a = t.importer("EPb", "A");
  assert.equal(call(() => a.attach(buf)).errno, null);
  assert.equal(call(() => a.map()).errno, "EOPNOTSUPP");
  assert.equal(t.m.p2pdma.state(t.dev.EPa)!.mapTypes.size, 0);
});

test("K-84 direction NONE: per-range → KernelBug; iova → -EINVAL + leak:iova ('silent' → one entry, no translation); bus → success", () => {
  const pr = vfioF({ mutate: compose(identity("8086:2020"), epcNoIommu) });
  const prb = pr.exportBuf(0, one);
  const c1 = pr.importer("EPc", "C");
  c1.attach(prb.buf);
  assert.ok(isBug(() => c1.map(NONE)));

  const io = vfioF({ mutate: identity("8086:2020") });
  const iob = io.exportBuf(0, one);
  const c2 = io.importer("EPc", "C");
  c2.attach(iob.buf);
  assert.equal(call(() => c2.map(NONE)).errno, "EINVAL");
  assert.ok(io.m.diag.has("leak:iova"));

  const si = vfioF({ mutate: identity("8086:2020"), kernel: { iommuNoPermMap: "silent" } });
  const sib = si.exportBuf(0, one);
  const c3 = si.importer("EPc", "C");
  c3.attach(sib.buf);
  const { sgt } = c3.map(NONE);
  assert.equal(sgt.nents, 1);
  assert.equal(si.m.iommu.translate(si.dev.EPc, sgt.sgl[0].dmaAddress, "read").ok, false);

  const bus = vfioF();
  const bb = bus.exportBuf(0, one);
  const b = bus.importer("EPb", "B");
  b.attach(bb.buf);
  assert.equal(call(() => b.map(NONE)).errno, null);
});

test("K-85 mapping twice on one attachment → two tables, each freed by its own unmap", () => {
  const t = vfioF({ mutate: identity("8086:2020") });
  const { buf } = t.exportBuf(0, one);
  const c = t.importer("EPc", "C");
  c.attach(buf);
  const m1 = c.map();
  const m2 = c.map();
  assert.notEqual(m1.sgt, m2.sgt);
  assert.notEqual(m1.sgt.sgl[0].dmaAddress, m2.sgt.sgl[0].dmaAddress);
  c.unmap(m1);
  c.unmap(m2);
  assert.deepEqual(t.m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
});

test("K-86 non-PCI importer plat0 attaches → 0; map → -EINVAL", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, one);
  const p = t.importer(new GenericDevice("plat0"), "P");
  assert.equal(call(() => p.attach(buf)).errno, null);
  assert.equal(call(() => p.map()).errno, "EINVAL");
});

test("K-87 importer EPbVF → BUS_ADDR, distance 4 (the VF's path is its PF's)", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, one);
  const v = t.importer("EPbVF", "V");
  v.attach(buf);
  assert.equal(dmaBufDmaOf(v.map().sgt)?.mode, "bus");
  assert.equal(t.m.p2pdma.distance(t.dev.EPa, t.dev.EPbVF, false), 4);
});

test("K-88 a provider whose owner lost its p2pdma state → NOT_SUPPORTED (map -EINVAL)", () => {
  const t = vfioF();
  const { buf } = t.exportBuf(0, one);
  const a = t.importer("EPb", "A");
  a.attach(buf);
  t.m.p2pdma.release(t.dev.EPa);
  assert.equal(call(() => a.map()).errno, "EINVAL");
});

test("K-89 unmapping a table after the buffer was revoked succeeds and removes the IOVA and IOMMU mapping", () => {
  const t = vfioF({ mutate: identity("8086:2020") });
  const { buf } = t.exportBuf(0, one);
  const c = t.importer("EPc", "C");
  c.attach(buf);
  c.map();
  t.configWrite(PCI_COMMAND, 2, MEM_OFF);
  assert.equal(t.vdev.dmabufs[0].state, "SUSPENDED");
  assert.equal(call(() => c.unmap()).errno, null);
  assert.deepEqual(t.m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
});
