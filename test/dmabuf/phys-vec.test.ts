/**
 * The phys_vec -> sg_table helper (kernel-semantics §5) at the helper level: the P2P map type is
 * given as a value (the p2pdma layer decides it elsewhere), the importer is F's EPb (dma-direct,
 * BUS_ADDR peer of EPa) or EPc (behind the IOMMU, or dma-direct when a test says so).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { KernelBug, KernelError } from "../../src/core/errors.js";
import { FaultPlan } from "../../src/core/fault-inject.js";
import { u64 } from "../../src/core/hex.js";
import { DMA_DATA_DIRECTION, type DmaDataDirection } from "../../src/dma/index.js";
import {
  calcSgNents,
  dmaBufDmaOf,
  dmaBufFreeSgt,
  dmaBufPhysVecToSgt,
  type P2pdmaMapTypeName,
  type P2pdmaProvider,
  type PhysVec,
  type PhysVecOptions,
  type SgTable,
} from "../../src/dmabuf/index.js";
import type { PciDev } from "../../src/pci/device.js";
import { type DmaMachine, dmaMachine, GiB, S } from "../helpers/dma-machine.js";
import { fn } from "../helpers/spec-f.js";

const { BIDIRECTIONAL, TO_DEVICE, FROM_DEVICE, NONE } = DMA_DATA_DIRECTION;
const MAX = 0xffff_ffffn;
const PA = 0xffff_f000n;

function sizeOf(ranges: PhysVec[]): bigint {
  return ranges.reduce((s, r) => s + r.len, 0n);
}

function entries(sgt: SgTable): [bigint, bigint][] {
  return sgt.sgl.map((e) => [e.dmaAddress, e.dmaLen]);
}

/** Diagnostics other than the "Using 48-bit DMA addresses" notice of buffers too big for 32-bit IOVA. */
function notices(m: DmaMachine): string[] {
  return m.diag.names().filter((n) => !n.startsWith("notice:"));
}

function isErr(name: string) {
  return (e: unknown) => e instanceof KernelError && e.errnoName === name;
}

interface MapArgs {
  dev?: PciDev;
  provider?: P2pdmaProvider;
  dir?: DmaDataDirection;
  mapType?: P2pdmaMapTypeName;
  size?: bigint;
  opts?: Partial<PhysVecOptions>;
}

function mapper(m: DmaMachine) {
  const provider: P2pdmaProvider = { owner: m.dev.EPa, busOffset: 0n };
  const map = (ranges: PhysVec[], a: MapArgs = {}) =>
    dmaBufPhysVecToSgt(
      { dev: a.dev ?? m.dev.EPb, dmabuf: {} },
      a.provider ?? provider,
      ranges,
      a.size ?? sizeOf(ranges),
      a.dir ?? BIDIRECTIONAL,
      { dma: m.dma, mapType: a.mapType ?? "BUS_ADDR", ...a.opts },
    );
  const free = (sgt: SgTable, dev: PciDev = m.dev.EPb, dir: DmaDataDirection = BIDIRECTIONAL) =>
    dmaBufFreeSgt({ dev, dmabuf: {} }, sgt, dir, { dma: m.dma });
  return { provider, map, free };
}

const epcDirect = (m: Parameters<typeof fn>[0]) => {
  fn(m, "EPc").iommu = false;
};

/* 13.5 mapping */

test("K-73 BUS_ADDR {0,0x2000} of EPa BAR0 for EPb -> nents 1, orig_nents 0, entry (0x80_0000_0000, 0x2000), no page", () => {
  const m = dmaMachine();
  const { map, provider } = mapper(m);
  const calls: unknown[] = [];
  const sgt = map([{ paddr: S, len: 0x2000n }], {
    opts: {
      mapType: (p, d) => {
        calls.push([p, d]);
        return "BUS_ADDR";
      },
    },
  });
  assert.deepEqual(calls, [[provider, m.dev.EPb]]);
  assert.equal(sgt.nents, 1);
  assert.equal(sgt.origNents, 0);
  assert.deepEqual(sgt.sgl, [{ page: null, offset: 0, length: 0, dmaAddress: S, dmaLen: 0x2000n }]);
  const d = dmaBufDmaOf(sgt)!;
  assert.equal(d.mode, "bus");
  assert.equal(d.state, null);
  assert.equal(d.size, 0x2000n);
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
});

test("K-75 bus mode adds the provider's CPU->bus offset (u64 wrap): CPU 0x80_0000_0000 -> bus 0x70_0000_0000", () => {
  const m = dmaMachine();
  const { map } = mapper(m);
  const provider = { owner: m.dev.EPa, busOffset: u64(0x70_0000_0000n - S) };
  assert.equal(provider.busOffset, 0xffff_fff0_0000_0000n);
  const sgt = map([{ paddr: S, len: 0x1000n }], { provider });
  assert.deepEqual(entries(sgt), [[0x70_0000_0000n, 0x1000n]]);
});

test("K-76 ranges {0x3000,0x1000},{0,0x2000} -> entries (S+0x3000, 0x1000), (S, 0x2000) in range order", () => {
  const m = dmaMachine();
  const sgt = mapper(m).map([
    { paddr: S + 0x3000n, len: 0x1000n },
    { paddr: S, len: 0x2000n },
  ]);
  assert.deepEqual(entries(sgt), [
    [S + 0x3000n, 0x1000n],
    [S, 0x2000n],
  ]);
});

test("K-77 THRU_HOST_BRIDGE to a dma-direct EPc -> per-range mode, CPU physical address even with a bus offset", () => {
  const m = dmaMachine({ mutate: epcDirect });
  const { map } = mapper(m);
  const provider = { owner: m.dev.EPa, busOffset: u64(0x70_0000_0000n - S) };
  const sgt = map([{ paddr: S, len: 0x2000n }], { dev: m.dev.EPc, provider, mapType: "THRU_HOST_BRIDGE" });
  assert.deepEqual(entries(sgt), [[S, 0x2000n]]);
  const d = dmaBufDmaOf(sgt)!;
  assert.equal(d.mode, "per-range");
  assert.deepEqual(d.state, { addr: 0n, size: 0n });
});

test("K-78 THRU_HOST_BRIDGE to EPc behind the IOMMU -> iova mode: one entry (iovaBase, size); prot follows the direction", () => {
  for (const [dir, prot] of [
    [BIDIRECTIONAL, { read: true, write: true, mmio: true }],
    [TO_DEVICE, { read: true, write: false, mmio: true }],
    [FROM_DEVICE, { read: false, write: true, mmio: true }],
  ] as const) {
    const m = dmaMachine();
    const { map, free } = mapper(m);
    const sgt = map([{ paddr: S, len: 0x2000n }], { dev: m.dev.EPc, mapType: "THRU_HOST_BRIDGE", dir });
    const d = dmaBufDmaOf(sgt)!;
    assert.equal(d.mode, "iova");
    const B = d.state!.addr;
    assert.deepEqual(entries(sgt), [[B, 0x2000n]]);
    const dom = m.iommu.domainOf(m.dev.EPc)!;
    assert.deepEqual(dom.mappings(), [{ iova: B, len: 0x2000n, phys: S, prot }]);
    free(sgt, m.dev.EPc, dir);
    assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
    assert.deepEqual(m.diag.names(), []);
  }
});

test("K-79 iova mode, two ranges: 'zero' -> -EEXIST and nothing left; 'cumulative' -> one entry, pages in range order", () => {
  const ranges = [
    { paddr: S, len: 0x1000n },
    { paddr: S + 0x5000n, len: 0x2000n },
  ];
  const m = dmaMachine();
  const { map } = mapper(m);
  assert.throws(() => map(ranges, { dev: m.dev.EPc, mapType: "THRU_HOST_BRIDGE" }), isErr("EEXIST"));
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
  assert.deepEqual(m.diag.names(), []);

  const c = dmaMachine();
  const sgt = mapper(c).map(ranges, {
    dev: c.dev.EPc,
    mapType: "THRU_HOST_BRIDGE",
    opts: { iovaLinkOffset: "cumulative" },
  });
  const B = dmaBufDmaOf(sgt)!.state!.addr;
  assert.deepEqual(entries(sgt), [[B, 0x3000n]]);
  const dom = c.iommu.domainOf(c.dev.EPc)!;
  assert.deepEqual(
    [0n, 1n, 2n].map((k) => dom.iovaToPhys(B + 0x1000n * k)),
    [S, S + 0x5000n, S + 0x6000n],
  );
});

test("K-80 dma-direct EPc with a 32-bit DMA mask -> -ENOMEM (address above the mask), one dma-direct WARN", () => {
  const m = dmaMachine({
    mutate: (x) => {
      epcDirect(x);
      fn(x, "EPc").dmaMaskBits = 32;
    },
  });
  assert.throws(
    () => mapper(m).map([{ paddr: S, len: 0x1000n }], { dev: m.dev.EPc, mapType: "THRU_HOST_BRIDGE" }),
    isErr("ENOMEM"),
  );
  assert.deepEqual(m.diag.names(), ["warn:dma-direct-overflow"]);
});

test("K-84 direction NONE: per-range -> KernelBug; iova -> -EINVAL + leak:iova ('einval') or (B,size) without translation ('silent'); bus -> ok", () => {
  const ranges = [{ paddr: S, len: 0x2000n }];
  const pr = dmaMachine({ mutate: epcDirect });
  assert.throws(
    () => mapper(pr).map(ranges, { dev: pr.dev.EPc, mapType: "THRU_HOST_BRIDGE", dir: NONE }),
    KernelBug,
  );

  const io = dmaMachine();
  assert.throws(
    () => mapper(io).map(ranges, { dev: io.dev.EPc, mapType: "THRU_HOST_BRIDGE", dir: NONE }),
    isErr("EINVAL"),
  );
  assert.deepEqual(io.diag.names(), ["leak:iova"]);
  assert.deepEqual(io.iommu.liveCounts(), { iovaAllocations: 1, mappings: 0 }, "the IOVA stays reserved");

  const si = dmaMachine({ iommu: { iommuNoPermMap: "silent" } });
  const sgt = mapper(si).map(ranges, { dev: si.dev.EPc, mapType: "THRU_HOST_BRIDGE", dir: NONE });
  const B = dmaBufDmaOf(sgt)!.state!.addr;
  assert.deepEqual(entries(sgt), [[B, 0x2000n]]);
  assert.deepEqual(si.iommu.translate(si.dev.EPc, B, "read"), { ok: false, fault: "unmapped" });

  const bus = dmaMachine();
  assert.deepEqual(entries(mapper(bus).map(ranges, { dir: NONE })), [[S, 0x2000n]]);
});

test("K-85 mapping twice -> two independent tables, each freed by its own unmap", () => {
  const m = dmaMachine();
  const { map, free } = mapper(m);
  const args = { dev: m.dev.EPc, mapType: "THRU_HOST_BRIDGE" as const };
  const a = map([{ paddr: S, len: 0x2000n }], args);
  const b = map([{ paddr: S, len: 0x2000n }], args);
  assert.notEqual(a, b);
  assert.notEqual(a.sgl[0].dmaAddress, b.sgl[0].dmaAddress);
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 2, mappings: 2 });
  free(a, m.dev.EPc);
  const dom = m.iommu.domainOf(m.dev.EPc)!;
  assert.equal(dom.iovaToPhys(b.sgl[0].dmaAddress), S, "the second table is untouched");
  free(b, m.dev.EPc);
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
});

test("K-86 (helper part) map type NOT_SUPPORTED, NONE or UNKNOWN -> -EINVAL, nothing allocated", () => {
  const m = dmaMachine();
  const { map } = mapper(m);
  for (const t of ["NOT_SUPPORTED", "NONE", "UNKNOWN"] as const)
    assert.throws(() => map([{ paddr: S, len: 0x1000n }], { dev: m.dev.EPc, mapType: t }), isErr("EINVAL"));
  assert.throws(
    () => map([{ paddr: S, len: 0x1000n }], { dev: m.dev.EPc, opts: { mapType: 2 } }),
    isErr("EINVAL"),
    "numeric enum value 2 = NOT_SUPPORTED",
  );
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
  assert.deepEqual(entries(map([{ paddr: S, len: 0x1000n }], { opts: { mapType: 3 } })), [[S, 0x1000n]]);
});

/* 13.7 SG chunking */

test("K-105 'uint_max', bus mode, one 4 GiB range -> (S, 0xFFFFFFFF), (S+0xFFFFFFFF, 1)", () => {
  const sgt = mapper(dmaMachine()).map([{ paddr: S, len: 4n * GiB }]);
  assert.deepEqual(entries(sgt), [
    [S, MAX],
    [S + MAX, 1n],
  ]);
});

test("K-106 'uint_max', 8 GiB -> (S, 0xFFFFFFFF), (S+0xFFFFFFFF, 0xFFFFFFFF), (S+0x1FFFFFFFE, 2)", () => {
  const sgt = mapper(dmaMachine()).map([{ paddr: S, len: 8n * GiB }]);
  assert.deepEqual(entries(sgt), [
    [S, MAX],
    [S + MAX, MAX],
    [S + 0x1_ffff_fffen, 2n],
  ]);
});

test("K-107 'page_aligned', 4 GiB -> (S, 0xFFFFF000), (S+0xFFFFF000, 0x1000)", () => {
  const sgt = mapper(dmaMachine()).map([{ paddr: S, len: 4n * GiB }], { opts: { sgChunk: "page_aligned" } });
  assert.deepEqual(entries(sgt), [
    [S, PA],
    [S + PA, 0x1000n],
  ]);
});

test("K-108 'page_aligned', 8 GiB -> (S, 0xFFFFF000), (S+0xFFFFF000, 0xFFFFF000), (S+0x1FFFFE000, 0x2000)", () => {
  const sgt = mapper(dmaMachine()).map([{ paddr: S, len: 8n * GiB }], { opts: { sgChunk: "page_aligned" } });
  assert.deepEqual(entries(sgt), [
    [S, PA],
    [S + PA, PA],
    [S + 0x1_ffff_e000n, 0x2000n],
  ]);
});

test("K-109 two 4 GiB ranges, bus mode, 'uint_max' -> 4 entries, 2 per range, each range restarting at its address", () => {
  const T = S + 0x100_0000_0000n;
  const sgt = mapper(dmaMachine()).map([
    { paddr: S, len: 4n * GiB },
    { paddr: T, len: 4n * GiB },
  ]);
  assert.deepEqual(entries(sgt), [
    [S, MAX],
    [S + MAX, 1n],
    [T, MAX],
    [T + MAX, 1n],
  ]);
});

test("K-110 iova mode, one 8 GiB range: 'page_aligned' -> 3 entries from B; 'uint_max' -> succeeds with 3 zero entries and two WARNs", () => {
  const pa = dmaMachine();
  const { map } = mapper(pa);
  const sgt = map([{ paddr: S, len: 8n * GiB }], {
    dev: pa.dev.EPc,
    mapType: "THRU_HOST_BRIDGE",
    opts: { sgChunk: "page_aligned" },
  });
  const B = dmaBufDmaOf(sgt)!.state!.addr;
  assert.deepEqual(entries(sgt), [
    [B, PA],
    [B + PA, PA],
    [B + 0x1_ffff_e000n, 0x2000n],
  ]);
  assert.deepEqual(
    pa.diag.names().filter((n) => n.startsWith("warn:")),
    [],
  );

  const um = dmaMachine();
  const sgt2 = mapper(um).map([{ paddr: S, len: 8n * GiB }], {
    dev: um.dev.EPc,
    mapType: "THRU_HOST_BRIDGE",
  });
  assert.deepEqual(entries(sgt2), [
    [0n, 0n],
    [0n, 0n],
    [0n, 0n],
  ]);
  assert.deepEqual(
    um.diag.names().filter((n) => n.startsWith("warn:")),
    ["warn:dma-buf-phys-vec-to-sgt-mapped-len", "warn:dma-buf-phys-vec-to-sgt-nents"],
  );
  assert.equal(um.iommu.domainOf(um.dev.EPc)!.mappedBytes, 8n * GiB, "the IOMMU maps the full range");
});

test("K-111 a range of exactly 0xFFFFF000 bytes -> 1 entry in both variants", () => {
  for (const sgChunk of ["uint_max", "page_aligned"] as const) {
    const sgt = mapper(dmaMachine()).map([{ paddr: S, len: PA }], { opts: { sgChunk } });
    assert.deepEqual(entries(sgt), [[S, PA]]);
  }
});

test("K-112 iova mode, 'uint_max', 4 GiB + 4 KiB -> (B, 0x1000), (0, 0); the IOMMU maps everything; unmap destroys the full size", () => {
  const m = dmaMachine();
  const { map, free } = mapper(m);
  const size = 4n * GiB + 0x1000n;
  const sgt = map([{ paddr: S, len: size }], { dev: m.dev.EPc, mapType: "THRU_HOST_BRIDGE" });
  const d = dmaBufDmaOf(sgt)!;
  assert.deepEqual(entries(sgt), [
    [d.state!.addr, 0x1000n],
    [0n, 0n],
  ]);
  assert.equal(d.size, size);
  const dom = m.iommu.domainOf(m.dev.EPc)!;
  assert.equal(dom.mappedBytes, size);
  assert.equal(dom.iovaToPhys(d.state!.addr + 4n * GiB), S + 4n * GiB);
  free(sgt, m.dev.EPc);
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
  assert.equal(m.diag.count("warn:iommu-dma-iova-unlink-size"), 0);
});

test("K-113 iova mode: first link fails (-ENOMEM injected) -> -ENOMEM, IOVA left reserved (leak:iova)", () => {
  const m = dmaMachine({ iommu: { faults: new FaultPlan().failOn("iommu_map") } });
  assert.throws(
    () => mapper(m).map([{ paddr: S, len: 0x2000n }], { dev: m.dev.EPc, mapType: "THRU_HOST_BRIDGE" }),
    isErr("ENOMEM"),
  );
  assert.deepEqual(m.diag.names(), ["leak:iova"]);
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 1, mappings: 0 });
});

test("K-113 per-range mode: the second range's mapping fails -> -ENOMEM, every table entry unmapped (zero entries as no-ops)", () => {
  // No IOVA for the whole buffer (try_alloc fails), so dma_map_phys maps each range.
  const m = dmaMachine({
    dmaFaults: new FaultPlan().failOn("iommu_dma_alloc_iova", { nth: 1 }),
    iommu: { faults: new FaultPlan().failOn("iommu_map", { nth: 2 }) },
  });
  const ranges = [
    { paddr: S, len: 0x2000n },
    { paddr: S + 0x8000n, len: 0x1000n },
    { paddr: S + 0xa000n, len: 0x1000n },
  ];
  assert.throws(
    () => mapper(m).map(ranges, { dev: m.dev.EPc, mapType: "THRU_HOST_BRIDGE" }),
    isErr("ENOMEM"),
  );
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
  assert.deepEqual(m.diag.names(), []);

  // Same through dma-direct: the second range lies above a 40-bit mask.
  const d = dmaMachine({
    mutate: (x) => {
      epcDirect(x);
      fn(x, "EPc").dmaMaskBits = 40;
    },
  });
  assert.throws(
    () =>
      mapper(d).map(
        [
          { paddr: S, len: 0x1000n },
          { paddr: 1n << 40n, len: 0x1000n },
        ],
        { dev: d.dev.EPc, mapType: "THRU_HOST_BRIDGE" },
      ),
    isErr("ENOMEM"),
  );
});

test("K-114 every table (bus, per-range, iova): sum of lengths = size, nents = computed count, no CPU pages", () => {
  const ranges = [
    { paddr: S, len: 5n * GiB },
    { paddr: S + 0x2000_0000_0000n, len: 0x3000n },
    { paddr: S + 0x3000_0000_0000n, len: 9n * GiB + 0x1000n },
  ];
  const size = sizeOf(ranges);
  for (const sgChunk of ["uint_max", "page_aligned"] as const) {
    const bus = dmaMachine();
    const pr = dmaMachine({ mutate: epcDirect });
    const io = dmaMachine();
    const cases = [
      { m: bus, dev: bus.dev.EPb, mapType: "BUS_ADDR", iova: false, ranges },
      { m: pr, dev: pr.dev.EPc, mapType: "THRU_HOST_BRIDGE", iova: false, ranges },
      // one range in iova mode (6.19 links every range at offset 0); below 4 GiB for 'uint_max'
      {
        m: io,
        dev: io.dev.EPc,
        mapType: "THRU_HOST_BRIDGE",
        iova: true,
        ranges: [{ paddr: S, len: sgChunk === "uint_max" ? 3n * GiB : 9n * GiB }],
      },
    ] as const;
    for (const c of cases) {
      const sz = sizeOf([...c.ranges]);
      const sgt = mapper(c.m).map([...c.ranges], { dev: c.dev, mapType: c.mapType, opts: { sgChunk } });
      assert.equal(dmaBufDmaOf(sgt)!.mode, c.iova ? "iova" : c.mapType === "BUS_ADDR" ? "bus" : "per-range");
      assert.equal(
        sgt.sgl.reduce((s, e) => s + e.dmaLen, 0n),
        sz,
      );
      assert.equal(sgt.nents, calcSgNents([...c.ranges], sz, c.iova, sgChunk));
      assert.equal(sgt.nents, sgt.sgl.length);
      assert.ok(sgt.sgl.every((e) => e.page === null && e.offset === 0 && e.length === 0));
      assert.equal(sgt.origNents, 0);
    }
  }
  assert.equal(size, 14n * GiB + 0x4000n);
});

/* §5.2 steps and unwind, unnumbered */

test("step 1: missing attachment, dma-buf or provider -> WARN and -EINVAL", () => {
  const m = dmaMachine();
  const opts = { dma: m.dma, mapType: "BUS_ADDR" as const };
  const r = [{ paddr: S, len: 0x1000n }];
  const p = { owner: m.dev.EPa, busOffset: 0n };
  assert.throws(() => dmaBufPhysVecToSgt(null, p, r, 0x1000n, 0, opts), isErr("EINVAL"));
  assert.throws(
    () => dmaBufPhysVecToSgt({ dev: m.dev.EPb, dmabuf: null }, p, r, 0x1000n, 0, opts),
    isErr("EINVAL"),
  );
  assert.throws(
    () => dmaBufPhysVecToSgt({ dev: m.dev.EPb, dmabuf: {} }, null, r, 0x1000n, 0, opts),
    isErr("EINVAL"),
  );
  assert.equal(m.diag.count("warn:dma-buf-phys-vec-to-sgt-args"), 3, "WARN_ON, not once");
});

test("the reservation-lock assertion runs first: a caller without the lock gets a KernelBug and nothing happens", () => {
  const m = dmaMachine();
  const { map } = mapper(m);
  const notHeld = () => {
    throw new KernelBug("dma_resv_assert_held", "reservation lock not held");
  };
  assert.throws(
    () =>
      map([{ paddr: S, len: 0x1000n }], {
        dev: m.dev.EPc,
        mapType: "THRU_HOST_BRIDGE",
        opts: { assertLockHeld: notHeld },
      }),
    KernelBug,
  );
  const sgt = map([{ paddr: S, len: 0x1000n }]);
  assert.throws(
    () => dmaBufFreeSgt({ dev: m.dev.EPb, dmabuf: {} }, sgt, 0, { dma: m.dma, assertLockHeld: notHeld }),
    KernelBug,
  );
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
  assert.deepEqual(m.diag.names(), []);
});

test("allocation failures: result or IOVA state -> -ENOMEM with nothing left; table allocation in iova mode leaks the IOVA (kernel err_free_state path)", () => {
  const one = [{ paddr: S, len: 0x1000n }];
  for (const site of ["kzalloc:dma_buf_dma", "kzalloc:dma_iova_state"]) {
    const m = dmaMachine();
    assert.throws(
      () =>
        mapper(m).map(one, {
          dev: m.dev.EPc,
          mapType: "THRU_HOST_BRIDGE",
          opts: { faults: new FaultPlan().failOn(site) },
        }),
      isErr("ENOMEM"),
    );
    assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
  }
  const m = dmaMachine();
  assert.throws(
    () =>
      mapper(m).map(one, {
        dev: m.dev.EPc,
        mapType: "THRU_HOST_BRIDGE",
        opts: { faults: new FaultPlan().failOn("sg_alloc_table") },
      }),
    isErr("ENOMEM"),
  );
  assert.deepEqual(m.diag.names(), ["leak:iova"]);
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 1, mappings: 0 });
});

test("step 5: zero entries (no ranges) -> -EINVAL; a table beyond the model's memory bound -> -ENOMEM", () => {
  const m = dmaMachine();
  const { map } = mapper(m);
  assert.throws(() => map([]), isErr("EINVAL"));
  assert.throws(() => map([{ paddr: S, len: 64n * GiB }], { opts: { maxSgEntries: 8 } }), isErr("ENOMEM"));
});

test("step 7: dma_iova_sync failure after the links -> unwind destroys the mapped length, nothing left", () => {
  const m = dmaMachine({ iommu: { faults: new FaultPlan().failOn("iommu_sync_map", { errno: "EIO" }) } });
  assert.throws(
    () => mapper(m).map([{ paddr: S, len: 0x3000n }], { dev: m.dev.EPc, mapType: "THRU_HOST_BRIDGE" }),
    isErr("EIO"),
  );
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
  assert.deepEqual(m.diag.names(), []);
});

test("dma_buf_free_sgt: bus mode touches nothing, per-range unmaps each entry; a second free or a foreign table is a KernelBug", () => {
  const m = dmaMachine({ dmaFaults: new FaultPlan().failOn("iommu_dma_alloc_iova") });
  const { map, free } = mapper(m);
  const pr = map(
    [
      { paddr: S, len: 0x1000n },
      { paddr: S + 0x4000n, len: 0x3000n },
    ],
    { dev: m.dev.EPc, mapType: "THRU_HOST_BRIDGE" },
  );
  assert.equal(dmaBufDmaOf(pr)!.mode, "per-range");
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 2, mappings: 2 });
  free(pr, m.dev.EPc);
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 0 });
  assert.throws(() => free(pr, m.dev.EPc), KernelBug);
  const bus = map([{ paddr: S, len: 0x1000n }]);
  free(bus);
  assert.throws(() => free({ sgl: [], nents: 0, origNents: 0 }), KernelBug);
  assert.deepEqual(m.diag.names(), []);
});

test("sg entry count overflow: 'page_aligned' -> count 0 -> -EINVAL; 6.19 wraps silently and would overrun the table (KernelBug)", () => {
  const big = 0x7fff_ffff_ffff_f000n;
  const ranges = [
    { paddr: 0n, len: big },
    { paddr: 0n, len: big },
  ];
  assert.equal(calcSgNents(ranges, 0n, false, "page_aligned"), 0);
  assert.equal(calcSgNents(ranges, 0n, false, "uint_max"), 2);
  const m = dmaMachine();
  const { map } = mapper(m);
  assert.throws(() => map(ranges, { opts: { sgChunk: "page_aligned" } }), isErr("EINVAL"));
  assert.throws(() => map(ranges), KernelBug);
});

/* 6.19 consequences found by the model (see the report) */

test("6.19 width quirk + offset 0: two ranges, the first 4 GiB, iova mode -> -EEXIST, but the unwind destroys mapped_len 0 and leaves 4 GiB mapped", () => {
  const ranges = [
    { paddr: S, len: 4n * GiB },
    { paddr: S + 8n * GiB, len: 0x1000n },
  ];
  const m = dmaMachine();
  assert.throws(
    () => mapper(m).map(ranges, { dev: m.dev.EPc, mapType: "THRU_HOST_BRIDGE" }),
    isErr("EEXIST"),
  );
  assert.deepEqual(notices(m), ["leak:iommu-mapping"]);
  assert.deepEqual(m.iommu.liveCounts(), { iovaAllocations: 0, mappings: 1 }, "IOVA freed, translation kept");

  const pa = dmaMachine();
  assert.throws(
    () =>
      mapper(pa).map(ranges, {
        dev: pa.dev.EPc,
        mapType: "THRU_HOST_BRIDGE",
        opts: { sgChunk: "page_aligned" },
      }),
    isErr("EEXIST"),
  );
  assert.deepEqual(
    pa.iommu.liveCounts(),
    { iovaAllocations: 0, mappings: 0 },
    "64-bit mapped_len: clean unwind",
  );
});

test("per-range mode through an IOMMU with a range above 4 GiB: freeing entry by entry leaves pages mapped (dma-iommu page rounding)", () => {
  const m = dmaMachine({ dmaFaults: new FaultPlan().failOn("iommu_dma_alloc_iova") });
  const { map, free } = mapper(m);
  const sgt = map([{ paddr: S, len: 8n * GiB }], { dev: m.dev.EPc, mapType: "THRU_HOST_BRIDGE" });
  const I = sgt.sgl[0].dmaAddress;
  assert.deepEqual(entries(sgt), [
    [I, MAX],
    [I + MAX, MAX],
    [I + 0x1_ffff_fffen, 2n],
  ]);
  free(sgt, m.dev.EPc);
  // Entry 1 unmaps its rounded 4 GiB and frees the whole IOVA; entry 2 starts on a page entry 1
  // already unmapped (WARN, nothing unmapped); entry 3 unmaps the last page.
  assert.deepEqual(notices(m), ["leak:iommu-mapping", "warn:iommu-dma-unmap-size"]);
  assert.equal(m.iommu.domainOf(m.dev.EPc)!.mappedBytes, 4n * GiB - 0x1000n);
  assert.equal(m.iommu.liveCounts().iovaAllocations, 0);
});
