import assert from "node:assert/strict";
import { test } from "node:test";
import { GenericDevice } from "../../src/core/device.js";
import { DiagnosticLog } from "../../src/core/diagnostics.js";
import { ERRNO } from "../../src/core/errno.js";
import { KernelBug } from "../../src/core/errors.js";
import { FaultPlan } from "../../src/core/fault-inject.js";
import {
  DMA_ATTR_MMIO,
  DMA_DATA_DIRECTION,
  DMA_IOVA_USE_SWIOTLB,
  DMA_MAPPING_ERROR,
  DmaApi,
  dmaBitMask,
  dmaInfoToProt,
  dmaUseIova,
  newDmaIovaState,
  validDmaDirection,
} from "../../src/dma/index.js";
import { dmaMachine, GiB, S } from "../helpers/dma-machine.js";

const { BIDIRECTIONAL, TO_DEVICE, FROM_DEVICE, NONE } = DMA_DATA_DIRECTION;
const MMIO = DMA_ATTR_MMIO;

test("K-6 dma_data_direction: BIDIRECTIONAL 0, TO_DEVICE 1, FROM_DEVICE 2, NONE 3; only the first three are valid", () => {
  assert.deepEqual(DMA_DATA_DIRECTION, { BIDIRECTIONAL: 0, TO_DEVICE: 1, FROM_DEVICE: 2, NONE: 3 });
  assert.deepEqual([0, 1, 2, 3, 4, -1].map(validDmaDirection), [true, true, true, false, false, false]);
  assert.equal(DMA_MAPPING_ERROR, 0xffff_ffff_ffff_ffffn);
});

/* dma-direct */

test("dma-direct: MMIO is mapped at its CPU physical address, no host-bridge bus offset, unmap is a no-op", () => {
  const m = dmaMachine();
  m.dev.EPb.hostBridge.windows.push({ cpuBase: S, size: 0x10_0000_0000n, busOffset: 0x10_0000_0000n });
  assert.equal(m.dma.usesDmaIommu(m.dev.EPb), false);
  const a = m.dma.dmaMapPhys(m.dev.EPb, S + 0x3000n, 0x2000n, BIDIRECTIONAL, MMIO);
  assert.equal(a, S + 0x3000n);
  assert.equal(m.dma.dmaMappingError(m.dev.EPb, a), 0);
  m.dma.dmaUnmapPhys(m.dev.EPb, a, 0x2000n, BIDIRECTIONAL, MMIO);
  assert.deepEqual(m.diag.names(), []);
});

test("dma-direct: beyond the DMA mask -> DMA_MAPPING_ERROR, dma_mapping_error -ENOMEM, warn:dma-direct-overflow once", () => {
  const m = dmaMachine();
  m.dev.EPb.dmaMask = dmaBitMask(32);
  const a = m.dma.dmaMapPhys(m.dev.EPb, S, 0x1000n, TO_DEVICE, MMIO);
  assert.equal(a, DMA_MAPPING_ERROR);
  assert.equal(m.dma.dmaMappingError(m.dev.EPb, a), -ERRNO.ENOMEM);
  assert.equal(
    m.dma.dmaMapPhys(m.dev.EPb, 0xffff_f000n, 0x2000n, TO_DEVICE, MMIO),
    DMA_MAPPING_ERROR,
    "last byte counts",
  );
  assert.equal(
    m.dma.dmaMapPhys(m.dev.EPb, 0xffff_f000n, 0x1000n, TO_DEVICE, MMIO),
    0xffff_f000n,
    "ends at the mask",
  );
  assert.equal(m.diag.count("warn:dma-direct-overflow"), 1, "dev_WARN_ONCE");
});

test("dma-direct for a plain (non-PCI) device: the platform default 32-bit mask applies", () => {
  const diag = new DiagnosticLog();
  const dma = new DmaApi(null, diag);
  const plat = new GenericDevice("plat0");
  assert.equal(dma.dmaMapPhys(plat, 0x1000n, 0x1000n, BIDIRECTIONAL, MMIO), 0x1000n);
  assert.equal(dma.dmaMapPhys(plat, S, 0x1000n, BIDIRECTIONAL, MMIO), DMA_MAPPING_ERROR);
  assert.equal(dma.dmaIovaTryAlloc(plat, newDmaIovaState(), 0n, 0x1000n), false);
});

/* direction assertion */

test("K-84 dma_map_phys / dma_unmap_phys with direction NONE (or any invalid value) is a kernel BUG, on both backends", () => {
  const m = dmaMachine();
  for (const dev of [m.dev.EPb, m.dev.EPc]) {
    assert.throws(() => m.dma.dmaMapPhys(dev, S, 0x1000n, NONE, MMIO), KernelBug);
    assert.throws(() => m.dma.dmaMapPhys(dev, S, 0x1000n, 9, MMIO), KernelBug);
    assert.throws(() => m.dma.dmaUnmapPhys(dev, S, 0x1000n, NONE, MMIO), KernelBug);
  }
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
});

/* dma-iommu per mapping */

test("dma-iommu dma_map_phys: a separate IOVA per call, below 4 GiB first, prot from the direction, unmap frees", () => {
  const m = dmaMachine();
  const dom = m.iommu.domainOf(m.dev.EPc)!;
  const a = m.dma.dmaMapPhys(m.dev.EPc, S, 0x2000n, TO_DEVICE, MMIO);
  const b = m.dma.dmaMapPhys(m.dev.EPc, S + 0x10_0123n, 0x1000n, FROM_DEVICE, MMIO);
  assert.equal(a, 0xffff_e000n, "2 pages, top of the 32-bit space");
  assert.equal(b & 0xfffn, 0x123n, "the page offset is kept");
  assert.ok(b < a);
  assert.deepEqual(dom.translate(a + 0x1004n, "read"), {
    ok: true,
    phys: S + 0x1004n,
    prot: { read: true, write: false, mmio: true },
  });
  assert.deepEqual(dom.translate(b, "read"), { ok: false, fault: "permission" });
  assert.equal(dom.iovaToPhys(b), S + 0x10_0123n);
  assert.equal(dom.iovad!.liveCount, 2);
  m.dma.dmaUnmapPhys(m.dev.EPc, a, 0x2000n, TO_DEVICE, MMIO);
  m.dma.dmaUnmapPhys(m.dev.EPc, b, 0x1000n, FROM_DEVICE, MMIO);
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
  assert.deepEqual(m.diag.names(), []);
});

test("dma-iommu: when the 32-bit IOVA space is full the device switches to its full mask for good (notice recorded)", () => {
  const m = dmaMachine();
  const big = m.dma.dmaMapPhys(m.dev.EPc, S, 8n * GiB, BIDIRECTIONAL, MMIO);
  assert.equal(big, (1n << 48n) - 8n * GiB, "8 GiB cannot fit below 4 GiB: top of the 48-bit aperture");
  assert.equal(m.diag.count("notice:dma-iommu-64bit"), 1);
  const small = m.dma.dmaMapPhys(m.dev.EPc, S, 0x1000n, BIDIRECTIONAL, MMIO);
  assert.ok(small > 0xffff_ffffn, "no more 32-bit attempts for this device");
  assert.equal(m.diag.count("notice:dma-iommu-64bit"), 1);
});

test("dma-iommu: injected IOVA exhaustion -> DMA_MAPPING_ERROR; a page-table failure frees the IOVA again", () => {
  const faults = new FaultPlan().failOn("iommu_map");
  const m = dmaMachine({ dmaFaults: new FaultPlan().failOn("iommu_dma_alloc_iova"), iommu: { faults } });
  assert.equal(m.dma.dmaMapPhys(m.dev.EPc, S, 0x1000n, BIDIRECTIONAL, MMIO), DMA_MAPPING_ERROR);
  assert.equal(m.dma.dmaMapPhys(m.dev.EPc, S, 0x1000n, BIDIRECTIONAL, MMIO), DMA_MAPPING_ERROR);
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
  assert.notEqual(m.dma.dmaMapPhys(m.dev.EPc, S, 0x1000n, BIDIRECTIONAL, MMIO), DMA_MAPPING_ERROR);
});

test("dma_unmap_phys of an entry (0, 0) is a harmless no-op through the IOMMU", () => {
  const m = dmaMachine();
  m.dma.dmaUnmapPhys(m.dev.EPc, 0n, 0n, BIDIRECTIONAL, MMIO);
  assert.deepEqual(m.diag.names(), []);
});

/* dma_iova_* */

test("dma_iova_try_alloc 'not used' cases: dma-direct device (no WARN), size 0 (WARN once), bit 63 (WARN), exhaustion", () => {
  const m = dmaMachine();
  const st = newDmaIovaState();
  assert.equal(m.dma.dmaIovaTryAlloc(m.dev.EPb, st, 0n, 0n), false);
  assert.deepEqual(m.diag.names(), [], "use_dma_iommu is checked before the size");
  assert.equal(m.dma.dmaIovaTryAlloc(m.dev.EPc, st, 0n, 0n), false);
  assert.equal(m.dma.dmaIovaTryAlloc(m.dev.EPc, st, 0n, 0n), false);
  assert.equal(m.diag.count("warn:dma-iova-try-alloc-size-zero"), 1, "WARN_ON_ONCE");
  assert.equal(m.dma.dmaIovaTryAlloc(m.dev.EPc, st, 0n, DMA_IOVA_USE_SWIOTLB | 0x1000n), false);
  assert.equal(m.diag.count("warn:dma-iova-try-alloc-swiotlb-bit"), 1);
  assert.equal(m.dma.dmaIovaTryAlloc(m.dev.EPc, st, 0n, 1n << 62n), false, "larger than the aperture");
  assert.equal(dmaUseIova(st), false);
  assert.deepEqual(st, { addr: 0n, size: 0n });
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
});

test("dma_iova_try_alloc success: one contiguous IOVA range, the phys page offset carried into state.addr", () => {
  const m = dmaMachine();
  const st = newDmaIovaState();
  assert.equal(m.dma.dmaIovaTryAlloc(m.dev.EPc, st, 0x234n, 0x3000n), true);
  assert.equal(st.size, 0x3000n);
  assert.equal(st.addr, 0xffff_c234n, "0x3234 bytes -> 4 pages, aligned to 4 pages, at the top below 4 GiB");
  assert.deepEqual(m.iommu.domainOf(m.dev.EPc)!.iovad!.live(), [{ pfnLo: 0xffffcn, pfnHi: 0xfffffn }]);
  m.dma.dmaIovaFree(m.dev.EPc, st);
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
});

test("dma_iova_link: prot from the direction plus MMIO; NONE gives an empty permission (no BUG) -> -EINVAL or silently nothing", () => {
  assert.deepEqual(dmaInfoToProt(BIDIRECTIONAL, MMIO), { read: true, write: true, mmio: true });
  assert.deepEqual(dmaInfoToProt(TO_DEVICE, MMIO), { read: true, write: false, mmio: true });
  assert.deepEqual(dmaInfoToProt(FROM_DEVICE, MMIO), { read: false, write: true, mmio: true });
  assert.deepEqual(dmaInfoToProt(NONE, MMIO), { read: false, write: false, mmio: false });
  assert.deepEqual(dmaInfoToProt(TO_DEVICE, 0), { read: true, write: false, mmio: false });
  for (const [knob, ret] of [
    ["einval", -ERRNO.EINVAL],
    ["silent", 0],
  ] as const) {
    const m = dmaMachine({ iommu: { iommuNoPermMap: knob } });
    const st = newDmaIovaState();
    assert.ok(m.dma.dmaIovaTryAlloc(m.dev.EPc, st, 0n, 0x1000n));
    assert.equal(m.dma.dmaIovaLink(m.dev.EPc, st, S, 0n, 0x1000n, NONE, MMIO), ret);
    assert.equal(m.iommu.domainOf(m.dev.EPc)!.liveMappings, 0);
  }
});

test("dma_iova_link over an IOVA already linked -> -EEXIST (strict page table); at its own offset -> 0", () => {
  const m = dmaMachine();
  const st = newDmaIovaState();
  assert.ok(m.dma.dmaIovaTryAlloc(m.dev.EPc, st, 0n, 0x3000n));
  assert.equal(m.dma.dmaIovaLink(m.dev.EPc, st, S + 0x5000n, 0n, 0x1000n, BIDIRECTIONAL, MMIO), 0);
  assert.equal(m.dma.dmaIovaLink(m.dev.EPc, st, S, 0n, 0x2000n, BIDIRECTIONAL, MMIO), -ERRNO.EEXIST);
  assert.equal(m.dma.dmaIovaLink(m.dev.EPc, st, S, 0x1000n, 0x2000n, BIDIRECTIONAL, MMIO), 0);
  const dom = m.iommu.domainOf(m.dev.EPc)!;
  assert.equal(dom.iovaToPhys(st.addr), S + 0x5000n);
  assert.equal(dom.iovaToPhys(st.addr + 0x2000n), S + 0x1000n);
  assert.equal(m.dma.dmaIovaSync(m.dev.EPc, st, 0n, 0x3000n), 0);
  m.dma.dmaIovaDestroy(m.dev.EPc, st, 0x3000n, BIDIRECTIONAL, MMIO);
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
  assert.deepEqual(m.diag.names(), []);
});

test("dma_iova_link with an unaligned phys at a non-zero offset -> WARN and -EIO", () => {
  const m = dmaMachine();
  const st = newDmaIovaState();
  assert.ok(m.dma.dmaIovaTryAlloc(m.dev.EPc, st, S + 0x10n, 0x3000n), "state.addr carries the 0x10 offset");
  assert.equal(m.dma.dmaIovaLink(m.dev.EPc, st, S + 0x10n, 0x1000n, 0x100n, TO_DEVICE, MMIO), -ERRNO.EIO);
  assert.equal(m.diag.count("warn:dma-iova-link-unaligned"), 1);
  assert.equal(
    m.dma.dmaIovaLink(m.dev.EPc, st, S + 0x10n, 0n, 0x100n, TO_DEVICE, MMIO),
    0,
    "offset 0 is fine",
  );
  assert.equal(m.iommu.domainOf(m.dev.EPc)!.iovaToPhys(st.addr), S + 0x10n);
});

test("dma_iova_sync reports an injected IOTLB failure; dma_iova_destroy(0) only frees; less than mapped -> leak:iommu-mapping", () => {
  const m = dmaMachine({ iommu: { faults: new FaultPlan().failOn("iommu_sync_map", { errno: "EIO" }) } });
  const st = newDmaIovaState();
  assert.ok(m.dma.dmaIovaTryAlloc(m.dev.EPc, st, 0n, 0x2000n));
  assert.equal(m.dma.dmaIovaLink(m.dev.EPc, st, S, 0n, 0x2000n, BIDIRECTIONAL, MMIO), 0);
  assert.equal(m.dma.dmaIovaSync(m.dev.EPc, st, 0n, 0x2000n), -ERRNO.EIO);
  m.dma.dmaIovaDestroy(m.dev.EPc, st, 0x1000n, BIDIRECTIONAL, MMIO);
  assert.equal(m.diag.count("leak:iommu-mapping"), 1, "IOVA freed while its second page is still mapped");
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 1 });

  const m2 = dmaMachine();
  const st2 = newDmaIovaState();
  assert.ok(m2.dma.dmaIovaTryAlloc(m2.dev.EPc, st2, 0n, 0x2000n));
  m2.dma.dmaIovaDestroy(m2.dev.EPc, st2, 0n, BIDIRECTIONAL, MMIO);
  assert.deepEqual(m2.diag.names(), [], "nothing to unlink, no WARN");
  assert.deepEqual(m2.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
});

test("dma_iova_unlink of pages that are not mapped WARNs (unmapped != size) and keeps the IOVA", () => {
  const m = dmaMachine();
  const st = newDmaIovaState();
  assert.ok(m.dma.dmaIovaTryAlloc(m.dev.EPc, st, 0n, 0x2000n));
  m.dma.dmaIovaUnlink(m.dev.EPc, st, 0n, 0x2000n, BIDIRECTIONAL, MMIO);
  assert.equal(m.diag.count("warn:iommu-dma-iova-unlink-size"), 1);
  assert.equal(m.iommu.liveCounts().iovaAllocations, 1);
});

test("IOVA-state calls on a machine without an IOMMU are caller bugs", () => {
  const dma = new DmaApi(null, new DiagnosticLog());
  const m = dmaMachine();
  assert.throws(() => dma.dmaIovaLink(m.dev.EPc, newDmaIovaState(), S, 0n, 0x1000n, 0, MMIO), KernelBug);
  assert.throws(() => m.dma.dmaIovaLink(m.dev.EPb, newDmaIovaState(), S, 0n, 0x1000n, 0, MMIO), KernelBug);
});
