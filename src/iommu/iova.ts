/**
 * The IOVA allocator of a DMA-API domain (drivers/iommu/iova.c as dma-iommu drives it).
 *
 * Works in page frames of `granule` bytes (4 KiB). What is reproduced:
 * - `alloc_iova(size, limit, size_aligned)`: a top-down first-fit walk that starts below the
 *   *cached node* (the last allocation, kept separately for the space below 4 GiB and above it),
 *   and on failure retries once in the space above that node. With `size_aligned` the base is
 *   aligned to the power of two at or above the size. The size itself is not rounded here; the
 *   rounding of small sizes done by `alloc_iova_fast` (below 32 pages, up to a power of two) is
 *   the caller's job ({@link roundIovaLen}), as in the kernel.
 * - Freeing takes any page frame inside an allocation and releases the whole allocation
 *   (`free_iova(pfn)`), moving the cached nodes as the kernel does; an unknown frame is ignored.
 * - Reserved ranges (`reserve_iova`) are never handed out and are not counted as live.
 * Not reproduced: the per-CPU range caches (a freed range is free at once; the kernel may keep
 * it cached in its tree for a while) and the `max32_alloc_size` fast-fail, which changes no result.
 */

export interface IovaRange {
  /** First page frame. */
  pfnLo: bigint;
  /** Last page frame (inclusive). */
  pfnHi: bigint;
}

interface Node extends IovaRange {
  kind: "alloc" | "reserved" | "anchor";
}

/** `IOVA_RANGE_CACHE_MAX_SIZE`: sizes below 1 << (6 - 1) pages are rounded up to a power of two. */
export const IOVA_RANGE_CACHE_MAX_SIZE = 6n;

/** `IOVA_ANCHOR`: the sentinel node at the top of every tree. */
const IOVA_ANCHOR = (1n << 64n) - 1n;

export function bigMin(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
export function bigMax(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** Smallest power of two >= n; 1 for n <= 1 (x86's `roundup_pow_of_two(0)` also gives 1). */
export function roundupPowOfTwo(n: bigint): bigint {
  if (n <= 1n) return 1n;
  return 1n << BigInt((n - 1n).toString(2).length);
}

/**
 * `alloc_iova_fast`'s size adjustment: lengths below 32 pages become a power of two so that the
 * range caches stay consistent. Larger lengths are kept (only their alignment is a power of two).
 */
export function roundIovaLen(pages: bigint): bigint {
  return pages < 1n << (IOVA_RANGE_CACHE_MAX_SIZE - 1n) ? roundupPowOfTwo(pages) : pages;
}

export class IovaAllocator {
  /** Allocations, reservations and the anchor, sorted by pfnLo, never overlapping. */
  private nodes: Node[];
  private readonly anchor: Node = { pfnLo: IOVA_ANCHOR, pfnHi: IOVA_ANCHOR, kind: "anchor" };
  /** `cached32_node` / `cached_node`: where the next walk below / above 4 GiB starts. */
  private cached32: Node;
  private cached: Node;
  readonly startPfn: bigint;
  readonly endPfn: bigint;
  readonly shift: bigint;
  /** `dma_32bit_pfn`: first frame at 4 GiB. */
  readonly dma32bitPfn: bigint;

  /**
   * @param start lowest IOVA handed out (bytes; rounded up to a page, never below page 1 — the
   *   kernel keeps IOVA 0 unused so that 0 can mean failure)
   * @param end highest IOVA (bytes, inclusive)
   */
  constructor(
    start: bigint,
    end: bigint,
    readonly granule = 4096n,
  ) {
    this.shift = BigInt((granule - 1n).toString(2).length);
    const s = (start + granule - 1n) / granule;
    this.startPfn = s < 1n ? 1n : s;
    this.endPfn = end / granule;
    this.dma32bitPfn = 1n << (32n - this.shift);
    this.nodes = [this.anchor];
    this.cached32 = this.anchor;
    this.cached = this.anchor;
  }

  pfnOf(iova: bigint): bigint {
    return iova >> this.shift;
  }

  /** Reserves [loPfn, hiPfn] (inclusive), merging with reservations it touches (`reserve_iova`). */
  reserve(loPfn: bigint, hiPfn: bigint): void {
    if (hiPfn < loPfn) return;
    let lo = loPfn;
    let hi = hiPfn;
    const keep: Node[] = [];
    for (const n of this.nodes) {
      if (n.kind === "reserved" && !(n.pfnHi + 1n < lo || n.pfnLo > hi + 1n)) {
        lo = bigMin(n.pfnLo, lo);
        hi = bigMax(n.pfnHi, hi);
      } else keep.push(n);
    }
    // Live allocations inside the range stay; the reservation covers only the gaps around them.
    let cur = lo;
    for (const n of [...keep]) {
      if (n.kind === "reserved" || n.pfnHi < cur || n.pfnLo > hi) continue;
      if (n.pfnLo > cur) keep.push({ pfnLo: cur, pfnHi: n.pfnLo - 1n, kind: "reserved" });
      cur = n.pfnHi + 1n;
    }
    if (cur <= hi) keep.push({ pfnLo: cur, pfnHi: hi, kind: "reserved" });
    this.nodes = keep.sort((a, b) => (a.pfnLo < b.pfnLo ? -1 : a.pfnLo > b.pfnLo ? 1 : 0));
    // A cached node merged into a new reservation is gone: restart walks from the top.
    if (!this.nodes.includes(this.cached32)) this.cached32 = this.anchor;
    if (!this.nodes.includes(this.cached)) this.cached = this.anchor;
  }

  /** Reserves the byte range [start, end] (inclusive). */
  reserveBytes(start: bigint, end: bigint): void {
    this.reserve(start >> this.shift, end >> this.shift);
  }

  /**
   * `alloc_iova(size, limit_pfn, size_aligned)`: `pages` page frames at or below `limitPfn`
   * (inclusive). Returns the first frame, or null when nothing fits (exhaustion).
   */
  alloc(pages: bigint, limitPfn: bigint, sizeAligned = true): bigint | null {
    if (pages <= 0n) return null;
    const align = sizeAligned ? roundupPowOfTwo(pages) : 1n;
    const limit = bigMin(limitPfn, this.endPfn) + 1n; // exclusive, as __alloc_and_insert_iova_range gets it
    let low = this.startPfn;
    let high = limit;
    let curr: Node | null = limit <= this.dma32bitPfn ? this.cached32 : this.cached;
    const retryPfn = curr.pfnHi;
    let newPfn = -1n;
    for (;;) {
      // Walk down from `curr`, taking the highest aligned slot below each node until it clears
      // the node underneath.
      do {
        high = bigMin(high, curr.pfnLo);
        newPfn = high >= pages ? ((high - pages) / align) * align : -1n;
        curr = this.prevOf(curr);
      } while (curr && newPfn <= curr.pfnHi && newPfn >= low);
      if (high >= pages && newPfn >= low) break;
      if (low === this.startPfn && retryPfn < limit) {
        // Second pass: the space above the cached node.
        high = limit;
        low = retryPfn + 1n;
        curr = this.findLimit(limit);
        continue;
      }
      return null;
    }
    const node: Node = { pfnLo: newPfn, pfnHi: newPfn + pages - 1n, kind: "alloc" };
    this.nodes.splice(this.upperIndex(newPfn), 0, node);
    if (node.pfnHi < this.dma32bitPfn) this.cached32 = node;
    else this.cached = node;
    return newPfn;
  }

  /** The live allocation containing `pfn`, if any (`find_iova`). */
  find(pfn: bigint): IovaRange | null {
    const i = this.indexContaining(pfn);
    return i < 0 ? null : { pfnLo: this.nodes[i].pfnLo, pfnHi: this.nodes[i].pfnHi };
  }

  /** `free_iova(pfn)`: releases the whole allocation containing `pfn`; null when there is none. */
  free(pfn: bigint): IovaRange | null {
    const i = this.indexContaining(pfn);
    if (i < 0) return null;
    const n = this.nodes[i];
    const next = this.nodes[i + 1]; // the anchor at least
    // __cached_rbnode_delete_update
    if (n === this.cached32 || (n.pfnHi < this.dma32bitPfn && n.pfnLo >= this.cached32.pfnLo))
      this.cached32 = next;
    if (n.pfnLo >= this.cached.pfnLo) this.cached = next;
    this.nodes.splice(i, 1);
    return { pfnLo: n.pfnLo, pfnHi: n.pfnHi };
  }

  /** Live allocations in address order (reservations excluded). */
  live(): IovaRange[] {
    return this.nodes.filter((n) => n.kind === "alloc").map((n) => ({ pfnLo: n.pfnLo, pfnHi: n.pfnHi }));
  }

  get liveCount(): number {
    return this.nodes.reduce((c, n) => c + (n.kind === "alloc" ? 1 : 0), 0);
  }

  reserved(): IovaRange[] {
    return this.nodes.filter((n) => n.kind === "reserved").map((n) => ({ pfnLo: n.pfnLo, pfnHi: n.pfnHi }));
  }

  private prevOf(n: Node): Node | null {
    const i = this.upperIndex(n.pfnLo) - 1; // nodes never share a pfnLo
    return i > 0 && this.nodes[i] === n ? this.nodes[i - 1] : null;
  }

  /** `iova_find_limit`: where the retry walk starts — the anchor above 4 GiB, else the lowest node reaching `limit`. */
  private findLimit(limit: bigint): Node {
    if (limit > this.dma32bitPfn) return this.anchor;
    return this.nodes.find((n) => n.pfnHi >= limit) ?? this.anchor;
  }

  /** Index of the first node whose pfnLo is greater than `pfn`. */
  private upperIndex(pfn: bigint): number {
    let lo = 0;
    let hi = this.nodes.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.nodes[mid].pfnLo <= pfn) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private indexContaining(pfn: bigint): number {
    const i = this.upperIndex(pfn) - 1;
    return i >= 0 && this.nodes[i].kind === "alloc" && pfn <= this.nodes[i].pfnHi ? i : -1;
  }
}
