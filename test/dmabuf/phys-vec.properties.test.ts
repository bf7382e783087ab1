/** Properties of the phys_vec -> sg_table helper over random range lists (kernel-semantics §5). */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { KernelError } from "../../src/core/errors.js";
import { FaultPlan } from "../../src/core/fault-inject.js";
import { u64 } from "../../src/core/hex.js";
import { DMA_DATA_DIRECTION } from "../../src/dma/index.js";
import {
  calcSgNents,
  dmaBufDmaOf,
  dmaBufFreeSgt,
  dmaBufPhysVecToSgt,
  type PhysVec,
  type SgChunk,
  sgChunkLen,
} from "../../src/dmabuf/index.js";
import { dmaMachine, GiB } from "../helpers/dma-machine.js";
import { fn } from "../helpers/spec-f.js";

const PAGE = 0x1000n;
const chunkArb = fc.constantFrom<SgChunk>("uint_max", "page_aligned");
const dirArb = fc.constantFrom(
  DMA_DATA_DIRECTION.BIDIRECTIONAL,
  DMA_DATA_DIRECTION.TO_DEVICE,
  DMA_DATA_DIRECTION.FROM_DEVICE,
);

/** Any addresses and lengths (bus and per-range modes do not need alignment). */
const anyRanges = fc.array(
  fc.record({
    paddr: fc.bigInt(0n, 1n << 52n),
    len: fc.oneof(fc.bigInt(1n, 1n << 20n), fc.bigInt(1n, 1n << 34n)),
  }),
  { minLength: 1, maxLength: 8 },
);

/** Page-aligned ranges as VFIO exports them. */
function pageRanges(maxPages: bigint, maxLength: number) {
  return fc.array(
    fc.record({
      paddr: fc.bigInt(0x80_0000n, 0x11f_ffffn).map((p) => p * PAGE),
      len: fc.bigInt(1n, maxPages).map((p) => p * PAGE),
    }),
    { minLength: 1, maxLength },
  );
}

const sum = (rs: PhysVec[]) => rs.reduce((s, r) => s + r.len, 0n);

test("bus and per-range modes: entries cover exactly the input bytes in order and never leave their range", () => {
  fc.assert(
    fc.property(
      anyRanges,
      chunkArb,
      fc.constantFrom("bus", "per-range"),
      fc.bigInt(-(1n << 40n), 1n << 40n),
      (ranges, sgChunk, mode, off) => {
        const m = dmaMachine();
        const busOffset = mode === "bus" ? u64(off) : 0n;
        const size = sum(ranges);
        const attach = { dev: m.dev.EPb, dmabuf: {} };
        const sgt = dmaBufPhysVecToSgt(attach, { owner: m.dev.EPa, busOffset }, ranges, size, 0, {
          dma: m.dma,
          mapType: mode === "bus" ? "BUS_ADDR" : "THRU_HOST_BRIDGE",
          sgChunk,
        });
        assert.equal(dmaBufDmaOf(sgt)!.mode, mode);
        const chunk = sgChunkLen(sgChunk);
        let k = 0;
        for (const r of ranges) {
          const base = u64(r.paddr + busOffset);
          let covered = 0n;
          while (covered < r.len) {
            const e = sgt.sgl[k++];
            assert.ok(e, "table ended early");
            assert.equal(e.dmaAddress, u64(base + covered), "entries follow each other inside the range");
            assert.ok(e.dmaLen > 0n && e.dmaLen <= chunk);
            covered += e.dmaLen;
          }
          assert.equal(covered, r.len, "no entry crosses the end of its range");
        }
        assert.equal(k, sgt.nents, "no entries beyond the input");
        assert.equal(sgt.nents, calcSgNents(ranges, size, false, sgChunk));
        assert.equal(sgt.origNents, 0);
        assert.ok(sgt.sgl.every((e) => e.page === null && e.length === 0));
        dmaBufFreeSgt(attach, sgt, 0, { dma: m.dma });
        assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
        assert.deepEqual(m.diag.names(), []);
      },
    ),
    { numRuns: 150 },
  );
});

test("iova mode ('cumulative' links): one contiguous run of entries from the IOVA base; each page translates to its range", () => {
  fc.assert(
    fc.property(pageRanges(1n << 20n, 4), chunkArb, dirArb, (ranges0, sgChunk, dir) => {
      // 'uint_max' keeps mapped_len in 32 bits (the 6.19 quirk, tested separately): stay below 4 GiB.
      const ranges =
        sgChunk === "uint_max" ? ranges0.filter((_, i) => sum(ranges0.slice(0, i + 1)) < 4n * GiB) : ranges0;
      fc.pre(ranges.length > 0);
      const m = dmaMachine();
      const size = sum(ranges);
      const attach = { dev: m.dev.EPc, dmabuf: {} };
      const sgt = dmaBufPhysVecToSgt(attach, { owner: m.dev.EPa, busOffset: 0n }, ranges, size, dir, {
        dma: m.dma,
        mapType: "THRU_HOST_BRIDGE",
        sgChunk,
        iovaLinkOffset: "cumulative",
      });
      const d = dmaBufDmaOf(sgt)!;
      assert.equal(d.mode, "iova");
      const B = d.state!.addr;
      let at = B;
      for (const e of sgt.sgl) {
        assert.equal(e.dmaAddress, at);
        at += e.dmaLen;
      }
      assert.equal(at, B + size);
      assert.equal(sgt.nents, calcSgNents(ranges, size, true, sgChunk));
      const access = dir === DMA_DATA_DIRECTION.FROM_DEVICE ? "write" : "read";
      let off = 0n;
      for (const r of ranges) {
        for (const k of [0n, r.len - 1n]) {
          const t = m.iommu.translate(m.dev.EPc, B + off + k, access);
          assert.deepEqual(t.ok && t.phys, r.paddr + k);
        }
        off += r.len;
      }
      dmaBufFreeSgt(attach, sgt, dir, { dma: m.dma });
      assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
      assert.equal(m.diag.names().filter((n) => !n.startsWith("notice:")).length, 0);
    }),
    { numRuns: 100 },
  );
});

test("failures leave no mapping and no IOVA, except the IOVA of an iova-mode failure at the first range (leak:iova)", () => {
  const scenario = fc.record({
    ranges: pageRanges(1n << 16n, 5),
    backend: fc.constantFrom("iova", "iommu-per-range", "direct"),
    linkOffset: fc.constantFrom("zero", "cumulative"),
    site: fc.constantFrom("iommu_map", "iommu_sync_map", "iommu_dma_alloc_iova", "sg_alloc_table", "none"),
    nth: fc.integer({ min: 1, max: 6 }),
    chunk: chunkArb,
    maskBits: fc.constantFrom(64, 36),
  });
  fc.assert(
    fc.property(scenario, (s) => {
      const iommuFaults = new FaultPlan();
      const dmaFaults = new FaultPlan();
      const helperFaults = new FaultPlan();
      if (s.backend === "iommu-per-range") dmaFaults.failOn("iommu_dma_alloc_iova", { nth: 1 }); // no IOVA for the whole buffer
      if (s.site === "iommu_map" || s.site === "iommu_sync_map") iommuFaults.failOn(s.site, { nth: s.nth });
      if (s.site === "iommu_dma_alloc_iova") dmaFaults.failOn(s.site, { nth: s.nth + 1 });
      if (s.site === "sg_alloc_table") helperFaults.failOn(s.site);
      const m = dmaMachine({
        iommu: { faults: iommuFaults },
        dmaFaults,
        mutate: (x) => {
          if (s.backend === "direct") fn(x, "EPc").iommu = false;
          fn(x, "EPc").dmaMaskBits = s.maskBits; // 36 bits: ranges at 0x8_0000_0000+ may exceed it
        },
      });
      const attach = { dev: m.dev.EPc, dmabuf: {} };
      const size = sum(s.ranges);
      let sgt: ReturnType<typeof dmaBufPhysVecToSgt> | null = null;
      try {
        sgt = dmaBufPhysVecToSgt(attach, { owner: m.dev.EPa, busOffset: 0n }, s.ranges, size, 0, {
          dma: m.dma,
          mapType: "THRU_HOST_BRIDGE",
          sgChunk: s.chunk,
          iovaLinkOffset: s.linkOffset,
          faults: helperFaults,
        });
      } catch (e) {
        assert.ok(e instanceof KernelError, String(e));
        const live = m.iommu.liveCounts();
        assert.equal(live.mappings, 0);
        assert.equal(live.iovaAllocations, m.diag.count("leak:iova"));
        assert.equal(m.diag.count("leak:iommu-mapping"), 0);
        return;
      }
      assert.equal(
        sgt.sgl.reduce((a, e) => a + e.dmaLen, 0n),
        size,
      );
      dmaBufFreeSgt(attach, sgt, 0, { dma: m.dma });
      assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
      assert.equal(m.diag.count("leak:iova") + m.diag.count("leak:iommu-mapping"), 0);
    }),
    { numRuns: 300 },
  );
});
