import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ERRNO } from "../../src/core/errno.js";
import { FaultPlan } from "../../src/core/fault-inject.js";
import { IommuDomain, type IommuProt } from "../../src/iommu/domain.js";
import { IovaAllocator, roundIovaLen, roundupPowOfTwo } from "../../src/iommu/iova.js";

const RW: IommuProt = { read: true, write: true, mmio: true };
const RO: IommuProt = { read: true, write: false, mmio: true };
const WO: IommuProt = { read: false, write: true, mmio: true };
const NONE: IommuProt = { read: false, write: false, mmio: false };
const PAGE = 0x1000n;

/* IOVA allocator */

test("IOVA allocator: top-down below the limit, aligned to the power of two at or above the length", () => {
  const a = new IovaAllocator(0x1000n, (1n << 48n) - 1n);
  // 3 pages below pfn 0xFFFFF: highest base aligned to 4 pages
  assert.equal(a.alloc(3n, 0xfffffn), 0xffffcn);
  // next one goes below it
  assert.equal(a.alloc(1n, 0xfffffn), 0xffffbn);
  // 5 pages: aligned to 8 -> 0xFFFF0
  assert.equal(a.alloc(5n, 0xfffffn), 0xffff0n);
  // without size alignment only the page granule counts
  assert.equal(a.alloc(3n, 0xfffffn, false), 0xfffedn);
  assert.equal(a.liveCount, 4);
});

test("IOVA length rounding: below 32 pages up to a power of two (alloc_iova_fast), 32 pages and more kept", () => {
  assert.equal(roundIovaLen(1n), 1n);
  assert.equal(roundIovaLen(3n), 4n);
  assert.equal(roundIovaLen(17n), 32n);
  assert.equal(roundIovaLen(31n), 32n);
  assert.equal(roundIovaLen(32n), 32n);
  assert.equal(roundIovaLen(33n), 33n);
  assert.equal(roundIovaLen(0x100001n), 0x100001n);
  assert.equal(roundupPowOfTwo(0x100001n), 0x200000n);
});

test("IOVA allocator never hands out page 0 and honours the configured start", () => {
  const a = new IovaAllocator(0n, 0x7fffn); // pfns 0..7
  const got: bigint[] = [];
  for (let p = a.alloc(1n, 100n); p !== null; p = a.alloc(1n, 100n)) got.push(p);
  assert.deepEqual(got, [7n, 6n, 5n, 4n, 3n, 2n, 1n]);
  const b = new IovaAllocator(0x4000n, 0x7fffn);
  assert.equal(b.alloc(8n, 100n), null, "8 aligned pages do not fit in pfns 4..7");
  assert.equal(b.alloc(4n, 100n), 4n);
});

test("IOVA exhaustion returns null; free releases the whole allocation from any page inside it", () => {
  const a = new IovaAllocator(0x1000n, 0xfffffn); // pfns 1..0xFF
  const x = a.alloc(0x80n, 0xffn);
  assert.equal(x, 0x80n);
  assert.equal(
    a.alloc(0x80n, 0xffn),
    null,
    "the lower half holds page 0, so 128 aligned pages no longer fit",
  );
  assert.equal(a.alloc(0x40n, 0xffn), 0x40n);
  assert.deepEqual(a.free(0x9fn), { pfnLo: 0x80n, pfnHi: 0xffn });
  assert.equal(a.free(0x9fn), null, "second free finds nothing");
  assert.equal(a.free(0x7n), null, "page never allocated");
  assert.equal(a.liveCount, 1);
  assert.equal(a.alloc(0x80n, 0xffn), 0x80n);
});

test("IOVA reserved ranges are never handed out and are not live allocations", () => {
  const a = new IovaAllocator(0x1000n, 0xffff_ffffn);
  a.reserveBytes(0xfee0_0000n, 0xfeef_ffffn);
  a.reserveBytes(0xfef0_0000n, 0xffff_ffffn); // touching: merged
  assert.equal(a.reserved().length, 1);
  assert.equal(a.alloc(0x100n, 0xfffffn), 0xfed00n);
  assert.equal(a.liveCount, 1);
  assert.deepEqual(a.live(), [{ pfnLo: 0xfed00n, pfnHi: 0xfedffn }]);
});

/** True when some aligned slot of `len` pages lies free in [start, limit]. */
function slotExists(a: IovaAllocator, len: bigint, limit: bigint): boolean {
  const align = roundupPowOfTwo(len);
  const hiLimit = limit < a.endPfn ? limit : a.endPfn;
  const busy = [...a.live(), ...a.reserved()].sort((x, y) => (x.pfnLo < y.pfnLo ? -1 : 1));
  const fits = (lo: bigint, hi: bigint) => {
    const base = ((lo + align - 1n) / align) * align;
    return base + len - 1n <= (hi < hiLimit ? hi : hiLimit);
  };
  let lo = a.startPfn;
  for (const b of busy) {
    if (b.pfnLo > lo && fits(lo, b.pfnLo - 1n)) return true;
    if (b.pfnHi + 1n > lo) lo = b.pfnHi + 1n;
  }
  return fits(lo, hiLimit);
}

test("IOVA allocator property: never overlapping, in range, aligned; null only when no slot exists", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({
            op: fc.constant("alloc" as const),
            pages: fc.oneof(fc.bigInt(1n, 40n), fc.bigInt(1n, 1n << 19n)),
            limit: fc.oneof(fc.bigInt(0n, 0x10_0000n), fc.bigInt(0xf_0000n, 0x1f_ffffn)),
          }),
          fc.record({ op: fc.constant("free" as const), pick: fc.nat() }),
        ),
        { maxLength: 60 },
      ),
      (ops) => {
        const a = new IovaAllocator(0x1000n, (1n << 33n) - 1n); // 2^21 pages, 4 GiB boundary inside
        a.reserve(0xfee00n, 0xfeeffn);
        for (const o of ops) {
          if (o.op === "alloc") {
            const len = roundIovaLen(o.pages);
            const p = a.alloc(len, o.limit);
            if (p !== null) {
              assert.ok(p >= 1n && p + len - 1n <= o.limit);
              assert.equal(p % roundupPowOfTwo(len), 0n);
            } else assert.equal(slotExists(a, len, o.limit), false, "null although a slot is free");
          } else {
            const live = a.live();
            if (live.length) a.free(live[o.pick % live.length].pfnLo);
          }
          const all = [...a.live(), ...a.reserved()].sort((x, y) => (x.pfnLo < y.pfnLo ? -1 : 1));
          for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].pfnHi < all[i].pfnLo, "overlap");
        }
        for (const r of a.live()) a.free(r.pfnLo);
        assert.equal(a.liveCount, 0);
      },
    ),
    { numRuns: 300 },
  );
});

/* page table */

test("IOMMU map then translate: phys of each page, a fault value (not a throw) for unmapped and denied accesses", () => {
  const d = new IommuDomain("DMA");
  assert.equal(d.map(0x10000n, 0x80_0000_0000n, 0x2000n, RO), 0);
  assert.deepEqual(d.translate(0x11234n, "read"), { ok: true, phys: 0x80_0000_1234n, prot: RO });
  assert.deepEqual(d.translate(0x11234n, "write"), { ok: false, fault: "permission" });
  assert.deepEqual(d.translate(0x12000n, "read"), { ok: false, fault: "unmapped" });
  assert.equal(d.map(0x20000n, 0x1000n, 0x1000n, WO), 0);
  assert.equal(d.translate(0x20000n, "write").ok, true);
  assert.deepEqual(d.translate(0x20000n, "read"), { ok: false, fault: "permission" });
  assert.equal(d.liveMappings, 2);
  assert.equal(d.mappedBytes, 0x3000n);
  assert.equal(d.stats.faults, 3);
});

test("IOMMU overlapping map (spec §5.2 model note) -> -EEXIST and nothing changes, partial overlap too", () => {
  const d = new IommuDomain("DMA");
  assert.equal(d.map(0x10000n, 0x1000_0000n, 0x4000n, RW), 0);
  assert.equal(d.map(0x10000n, 0x2000_0000n, 0x1000n, RW), -ERRNO.EEXIST);
  assert.equal(d.map(0xf000n, 0x2000_0000n, 0x2000n, RW), -ERRNO.EEXIST, "tail overlaps");
  assert.equal(d.map(0x13000n, 0x2000_0000n, 0x2000n, RW), -ERRNO.EEXIST, "head overlaps");
  assert.equal(d.map(0x8000n, 0x2000_0000n, 0x10000n, RW), -ERRNO.EEXIST, "covers it");
  assert.deepEqual(d.mappings(), [{ iova: 0x10000n, len: 0x4000n, phys: 0x1000_0000n, prot: RW }]);
  assert.equal(d.map(0x14000n, 0x2000_0000n, 0x1000n, RW), 0, "adjacent is fine");
});

test("iommuNoPermMap: a map with neither read nor write -> -EINVAL ('einval', default) or 0 with nothing installed ('silent')", () => {
  const d = new IommuDomain("DMA");
  assert.equal(d.map(0x10000n, 0x1000n, 0x1000n, NONE), -ERRNO.EINVAL);
  assert.equal(d.liveMappings, 0);
  const s = new IommuDomain("DMA", { iommuNoPermMap: "silent" });
  assert.equal(s.map(0x10000n, 0x1000n, 0x1000n, { read: false, write: false, mmio: true }), 0);
  assert.equal(s.liveMappings, 0);
  assert.deepEqual(s.translate(0x10000n, "read"), { ok: false, fault: "unmapped" });
});

test("IOMMU map checks: unaligned -> -EINVAL, beyond the aperture -> -EFAULT, length 0 -> 0, non-paging domains -> -EINVAL", () => {
  const d = new IommuDomain("DMA");
  assert.equal(d.map(0x10800n, 0x1000n, 0x1000n, RW), -ERRNO.EINVAL);
  assert.equal(d.map(0x10000n, 0x1800n, 0x1000n, RW), -ERRNO.EINVAL);
  assert.equal(d.map(0x10000n, 0x1000n, 0x1800n, RW), -ERRNO.EINVAL);
  assert.equal(d.map((1n << 48n) - PAGE, 0x1000n, 0x2000n, RW), -ERRNO.EFAULT);
  assert.equal(d.map((1n << 48n) - PAGE, 0x1000n, 0x1000n, RW), 0);
  assert.equal(d.map(0x20000n, 0x1000n, 0n, RW), 0);
  assert.equal(d.liveMappings, 1);
  assert.equal(new IommuDomain("identity").map(0x10000n, 0x1000n, 0x1000n, RW), -ERRNO.EINVAL);
  assert.equal(new IommuDomain("blocked").map(0x10000n, 0x1000n, 0x1000n, RW), -ERRNO.EINVAL);
  assert.equal(new IommuDomain("unmanaged").map(0x0n, 0x1000n, 0x1000n, RW), 0, "IOVA 0 is mappable");
});

test("IOMMU unmap returns the bytes unmapped, splits extents and stops at the first hole", () => {
  const d = new IommuDomain("DMA");
  d.map(0x10000n, 0x100000n, 0x4000n, RW);
  d.map(0x14000n, 0x200000n, 0x1000n, RW);
  d.map(0x16000n, 0x300000n, 0x1000n, RW);
  assert.equal(d.unmap(0x11000n, 0x1000n), 0x1000n, "middle page of the first extent");
  assert.equal(d.liveMappings, 4);
  assert.equal(
    d.translate(0x12000n, "read").ok && d.iovaToPhys(0x12000n),
    0x102000n,
    "right piece keeps its phys",
  );
  assert.equal(d.unmap(0x12000n, 0x10000n), 0x3000n, "0x12000..0x15000 then the hole at 0x15000");
  assert.equal(d.translate(0x16000n, "read").ok, true);
  assert.equal(d.unmap(0x11000n, 0x1000n), 0n, "already a hole");
  assert.equal(d.unmap(0x10800n, 0x1000n), 0n, "unaligned unmaps nothing");
  assert.equal(d.mappedBytes, 0x2000n);
});

test("identity domain translates 1:1; blocked domain faults every access", () => {
  assert.deepEqual(new IommuDomain("identity").translate(0x1234n, "write"), {
    ok: true,
    phys: 0x1234n,
    prot: { read: true, write: true, mmio: false },
  });
  assert.deepEqual(new IommuDomain("blocked").translate(0x1234n, "read"), { ok: false, fault: "blocked" });
  assert.equal(new IommuDomain("identity").iovad, null);
  assert.ok(new IommuDomain("DMA").iovad);
});

test("injected page-table failure: map returns the errno and installs nothing; sync failure is reported", () => {
  const faults = new FaultPlan().failOn("iommu_map", { nth: 2, errno: "ENOMEM" }).failOn("iommu_sync_map");
  const d = new IommuDomain("DMA", { faults });
  assert.equal(d.map(0x10000n, 0x1000n, 0x1000n, RW), 0);
  assert.equal(d.map(0x20000n, 0x1000n, 0x1000n, RW), -ERRNO.ENOMEM);
  assert.equal(d.liveMappings, 1);
  assert.equal(d.syncMap(0x10000n, 0x1000n), -ERRNO.ENOMEM);
  assert.equal(d.syncMap(0x10000n, 0x1000n), 0);
});

test("IOMMU page table property: random maps/unmaps agree with a page-by-page reference", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          op: fc.constantFrom("map", "unmap"),
          page: fc.bigInt(0n, 63n),
          pages: fc.bigInt(1n, 8n),
          phys: fc.bigInt(0n, 1000n),
        }),
        { maxLength: 40 },
      ),
      (ops) => {
        const d = new IommuDomain("DMA");
        const ref = new Map<bigint, bigint>();
        for (const o of ops) {
          const iova = o.page * PAGE;
          const len = o.pages * PAGE;
          if (o.op === "map") {
            let clash = false;
            for (let p = o.page; p < o.page + o.pages; p++) if (ref.has(p)) clash = true;
            const ret = d.map(iova, o.phys * PAGE, len, RW);
            assert.equal(ret, clash ? -ERRNO.EEXIST : 0);
            if (!clash) for (let k = 0n; k < o.pages; k++) ref.set(o.page + k, (o.phys + k) * PAGE);
          } else {
            let expect = 0n;
            for (let p = o.page; p < o.page + o.pages && ref.has(p); p++) {
              ref.delete(p);
              expect += PAGE;
            }
            assert.equal(d.unmap(iova, len), expect);
          }
        }
        for (let p = 0n; p < 72n; p++) {
          const t = d.translate(p * PAGE + 0x10n, "read");
          if (ref.has(p)) assert.deepEqual(t.ok && t.phys, ref.get(p)! + 0x10n);
          else assert.equal(t.ok, false);
        }
        assert.equal(d.mappedBytes, BigInt(ref.size) * PAGE);
      },
    ),
  );
});
