/**
 * An emulated IOMMU domain (one per device group): its type, the IOVA allocator of a DMA-API
 * domain and a page table with map / unmap / translate (kernel-semantics §3, §5.2 model note).
 *
 * Modelled choices (the real behaviour is IOMMU-driver specific):
 * - Page size 4 KiB only; `iova`, `phys` and `len` of a map must be multiples of it (-EINVAL, as
 *   `iommu_map` checks against the smallest page size).
 * - A map over an IOVA that is already mapped, even partly, fails with -EEXIST and changes nothing
 *   (§5.2 model note).
 * - A map with neither read nor write permission: knob `iommuNoPermMap` (§3): 'einval' (default)
 *   refuses it, 'silent' installs nothing and returns 0.
 * - A map outside the aperture (`geometry`) fails with -EFAULT (as VT-d does for an IOVA above the
 *   domain's address width).
 * - Unmap removes pages from `iova` on and stops at the first page that is not mapped, returning
 *   the bytes unmapped (`__iommu_unmap`); an unaligned request unmaps nothing.
 * - Identity domains translate every IOVA to the same physical address and refuse maps; blocked
 *   domains fault every access and refuse maps (non-paging domains, -EINVAL).
 */
import { ERRNO } from "../core/errno.js";
import { type FaultInjector, NO_FAULTS } from "../core/fault-inject.js";
import { bigMax, bigMin, IovaAllocator } from "./iova.js";

/** 'DMA' = DMA-API domain with an IOVA allocator; 'unmanaged' = paging domain owned by a user (VFIO, iommufd). */
export type DomainType = "DMA" | "identity" | "blocked" | "unmanaged";

export interface IommuProt {
  read: boolean;
  write: boolean;
  /** IOMMU_MMIO: the target is device memory (uncached). */
  mmio: boolean;
}

export const PROT_NONE: IommuProt = Object.freeze({ read: false, write: false, mmio: false });

export type NoPermMapPolicy = "einval" | "silent";

export interface DomainOptions {
  /** Aperture (inclusive end). Default [0, 2^48 - 1] (4-level page table, 48-bit IOVA). */
  geometry?: { start: bigint; end: bigint };
  /** Lowest IOVA the DMA-API allocator hands out. Default 0x1000 (IOVA 0 is never used). */
  iovaStart?: bigint;
  /** Knob `iommuNoPermMap` (kernel-semantics §3). Default 'einval'. */
  iommuNoPermMap?: NoPermMapPolicy;
  /** Failure injection: sites `iommu_map` and `iommu_sync_map`. */
  faults?: FaultInjector;
  /** Identifier given by the owning {@link Iommu} (0 for a free-standing domain). */
  id?: number;
}

export interface IommuMapping {
  iova: bigint;
  len: bigint;
  phys: bigint;
  prot: IommuProt;
}

/** The direction of a device access as the IOMMU sees it: DMA read needs read permission. */
export type IommuAccess = "read" | "write";

export type IommuFault = "unmapped" | "permission" | "blocked";

export type TranslateResult = { ok: true; phys: bigint; prot: IommuProt } | { ok: false; fault: IommuFault };

export const IOMMU_PAGE_SIZE = 4096n;
const DEFAULT_GEOMETRY = { start: 0n, end: (1n << 48n) - 1n };

export class IommuDomain {
  readonly id: number;
  /** The DMA-API IOVA allocator (`iova_cookie`); only DMA domains have one. */
  readonly iovad: IovaAllocator | null;
  readonly geometry: { start: bigint; end: bigint };
  readonly noPermMap: NoPermMapPolicy;
  private readonly faults: FaultInjector;
  /** Mapped extents, sorted by iova, never overlapping. */
  private extents: IommuMapping[] = [];
  /** Successful map calls and unmapped bytes, for tests and reports. */
  readonly stats = { maps: 0, unmaps: 0, faults: 0 };

  constructor(
    readonly type: DomainType,
    opts: DomainOptions = {},
  ) {
    this.id = opts.id ?? 0;
    this.geometry = opts.geometry ?? DEFAULT_GEOMETRY;
    this.noPermMap = opts.iommuNoPermMap ?? "einval";
    this.faults = opts.faults ?? NO_FAULTS;
    const start = opts.iovaStart ?? IOMMU_PAGE_SIZE;
    this.iovad =
      type === "DMA"
        ? new IovaAllocator(start > this.geometry.start ? start : this.geometry.start, this.geometry.end)
        : null;
  }

  get isPaging(): boolean {
    return this.type === "DMA" || this.type === "unmanaged";
  }

  /** `iommu_map`: 0 or a negative errno. */
  map(iova: bigint, phys: bigint, len: bigint, prot: IommuProt): number {
    if (!this.isPaging) return -ERRNO.EINVAL;
    if ((iova | phys | len) % IOMMU_PAGE_SIZE !== 0n || iova < 0n || phys < 0n || len < 0n)
      return -ERRNO.EINVAL;
    if (len === 0n) return 0;
    if (!prot.read && !prot.write) {
      // §3: the page-table code receives an empty permission (dma_iova_link with DMA_NONE).
      if (this.noPermMap === "silent") return 0;
      return -ERRNO.EINVAL;
    }
    if (iova < this.geometry.start || iova + len - 1n > this.geometry.end) return -ERRNO.EFAULT;
    if (this.overlaps(iova, len)) return -ERRNO.EEXIST; // §5.2 model note
    const injected = this.faults.check("iommu_map");
    if (injected) return -ERRNO[injected];
    const m: IommuMapping = {
      iova,
      len,
      phys,
      prot: { read: prot.read, write: prot.write, mmio: prot.mmio },
    };
    this.extents.splice(this.upperIndex(iova), 0, m);
    this.stats.maps++;
    return 0;
  }

  /** `iommu_unmap`: bytes unmapped from `iova` on, stopping at the first hole. */
  unmap(iova: bigint, len: bigint): bigint {
    if (!this.isPaging || (iova | len) % IOMMU_PAGE_SIZE !== 0n || len <= 0n) return 0n;
    const unmapped = unmapExtents(this.extents, iova, len);
    if (unmapped > 0n) this.stats.unmaps++;
    return unmapped;
  }

  /** `iommu_sync_map` (IOTLB flush after map): 0 or a negative errno (only by injection). */
  syncMap(_iova: bigint, _len: bigint): number {
    const injected = this.faults.check("iommu_sync_map");
    return injected ? -ERRNO[injected] : 0;
  }

  /** What a device access at `iova` reaches: a physical address, or a fault (never a throw). */
  translate(iova: bigint, access: IommuAccess): TranslateResult {
    if (this.type === "identity")
      return { ok: true, phys: iova, prot: { read: true, write: true, mmio: false } };
    if (this.type === "blocked") {
      this.stats.faults++;
      return { ok: false, fault: "blocked" };
    }
    const i = this.indexContaining(iova);
    if (i < 0) {
      this.stats.faults++;
      return { ok: false, fault: "unmapped" };
    }
    const e = this.extents[i];
    if ((access === "read" && !e.prot.read) || (access === "write" && !e.prot.write)) {
      this.stats.faults++;
      return { ok: false, fault: "permission" };
    }
    return { ok: true, phys: e.phys + (iova - e.iova), prot: e.prot };
  }

  /** `iommu_iova_to_phys`: 0 when not mapped. */
  iovaToPhys(iova: bigint): bigint {
    if (this.type === "identity") return iova;
    const i = this.indexContaining(iova);
    return i < 0 ? 0n : this.extents[i].phys + (iova - this.extents[i].iova);
  }

  /** Live mapped extents in IOVA order (copies). */
  mappings(): IommuMapping[] {
    return this.extents.map((e) => ({ ...e, prot: { ...e.prot } }));
  }

  /** Number of live mapped extents (a partly unmapped extent counts as its remaining pieces). */
  get liveMappings(): number {
    return this.extents.length;
  }

  get mappedBytes(): bigint {
    return this.extents.reduce((s, e) => s + e.len, 0n);
  }

  /** Bytes mapped inside [iova, iova + len). */
  mappedBytesIn(iova: bigint, len: bigint): bigint {
    return extentBytesIn(this.extents, iova, len);
  }

  private overlaps(iova: bigint, len: bigint): boolean {
    const i = this.upperIndex(iova) - 1;
    if (i >= 0 && this.extents[i].iova + this.extents[i].len > iova) return true;
    const next = this.extents[i + 1];
    return next !== undefined && next.iova < iova + len;
  }

  private upperIndex(iova: bigint): number {
    return extentUpperIndex(this.extents, iova);
  }

  private indexContaining(iova: bigint): number {
    return extentIndexContaining(this.extents, iova);
  }
}

/* Sorted, non-overlapping extents: shared by the IOMMU domain and iommufd's selftest mock. */

/** Index of the first extent whose iova is greater than `iova`. */
export function extentUpperIndex(extents: readonly IommuMapping[], iova: bigint): number {
  let lo = 0;
  let hi = extents.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (extents[mid].iova <= iova) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the extent holding `iova`; -1 in a hole. */
export function extentIndexContaining(extents: readonly IommuMapping[], iova: bigint): number {
  const i = extentUpperIndex(extents, iova) - 1;
  return i >= 0 && iova < extents[i].iova + extents[i].len ? i : -1;
}

/** Bytes of the extents inside [iova, iova + len). */
export function extentBytesIn(extents: readonly IommuMapping[], iova: bigint, len: bigint): bigint {
  const end = iova + len;
  let sum = 0n;
  for (const e of extents) {
    const lo = bigMax(e.iova, iova);
    const hi = bigMin(e.iova + e.len, end);
    if (hi > lo) sum += hi - lo;
  }
  return sum;
}

/**
 * `iommu_unmap`'s walk: unmaps [iova, iova+len) from `iova` on, splitting the extents it cuts
 * through, and stops at the first hole. Returns the bytes unmapped.
 */
export function unmapExtents(extents: IommuMapping[], iova: bigint, len: bigint): bigint {
  const end = iova + len;
  let pos = iova;
  while (pos < end) {
    const i = extentIndexContaining(extents, pos);
    if (i < 0) break;
    const e = extents[i];
    const eEnd = e.iova + e.len;
    const cut = bigMin(eEnd, end);
    const pieces: IommuMapping[] = [];
    if (e.iova < pos) pieces.push({ ...e, len: pos - e.iova });
    if (cut < eEnd) pieces.push({ ...e, iova: cut, len: eEnd - cut, phys: e.phys + (cut - e.iova) });
    extents.splice(i, 1, ...pieces);
    pos = cut;
  }
  return pos - iova;
}
