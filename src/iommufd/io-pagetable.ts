/**
 * `struct io_pagetable` (drivers/iommu/iommufd/io_pagetable.c): the IOVA space of one IOAS —
 * areas, reserved and allowed ranges, the attached domains, in-kernel accesses and the IOVA
 * alignment they impose (kernel-semantics §10.1, §10.3 steps 11–12, §10.5).
 *
 * Kernel rwsems are not modelled (the model is single-threaded); `pages.mutex` is, because the
 * order reservation lock → pages.mutex is part of the contract (§10.5).
 */
import { KernelError } from "../core/errors.js";
import { userMm } from "../core/mm.js";
import type { IommuAccess, IommuMapping, IommuProt, TranslateResult } from "../iommu/domain.js";
import { roundupPowOfTwo } from "../iommu/iova.js";
import { type IommufdEnv, type IoptPages, PAGE_SIZE } from "./pages.js";

export const ULONG_MAX = (1n << 64n) - 1n;
export const HPAGE_SIZE = 2n << 20n;

/** What iommufd needs from a paging domain (IommuDomain and the selftest's mock domain). */
export interface PagingDomainLike {
  readonly geometry: { start: bigint; end: bigint };
  map(iova: bigint, phys: bigint, len: bigint, prot: IommuProt): number;
  unmap(iova: bigint, len: bigint): bigint;
  translate(iova: bigint, access: IommuAccess): TranslateResult;
  mappedBytesIn(iova: bigint, len: bigint): bigint;
  mappings(): IommuMapping[];
}

/** An `iommu_domain` as the IOAS sees it: the page table and its smallest page size. */
export class IoDomain {
  constructor(
    readonly hw: PagingDomainLike,
    /** `1 << __ffs(pgsize_bitmap)`. */
    readonly pgsize: bigint,
    readonly label: string,
  ) {}
}

export interface IoProt {
  read: boolean;
  write: boolean;
}

/** `struct iopt_area`. */
export class Area {
  /** Null while being inserted or torn down (the kernel's "not fully initialised" state). */
  pages: IoptPages | null = null;
  storageDomain: IoDomain | null = null;
  numAccesses = 0;
  preventAccess = false;
  constructor(
    readonly iopt: IoPagetable,
    readonly iova: bigint,
    /** Inclusive. */
    readonly last: bigint,
    /** Byte offset of `iova` inside the pages (page index × PAGE_SIZE + page offset). */
    readonly pagesStartByte: bigint,
    readonly prot: IoProt,
  ) {}

  get length(): bigint {
    return this.last - this.iova + 1n;
  }

  /** `area->page_offset`. */
  get pageOffset(): bigint {
    return this.pagesStartByte % PAGE_SIZE;
  }

  /** `iopt_area_start_byte(area, iova)`. */
  startByteAt(iova: bigint): bigint {
    return this.pagesStartByte + (iova - this.iova);
  }
}

export interface Reserved {
  start: bigint;
  last: bigint;
  /** The device or domain that asked (null: the selftest's ADD_RESERVED). */
  owner: unknown;
}

export interface Span {
  start: bigint;
  last: bigint;
}

/** One element of a pages list (`struct iopt_pages_list`). */
export interface PagesListElm {
  pages: IoptPages | null;
  startByte: bigint;
  length: bigint;
  area: Area | null;
}

/** An in-kernel user of the IOAS (emulated device, mdev): `struct iommufd_access`. */
export interface AccessLike {
  iovaAlignment: bigint;
}

const bmin = (a: bigint, b: bigint) => (a < b ? a : b);
const bmax = (a: bigint, b: bigint) => (a > b ? a : b);
const lowBit = (x: bigint) => x & -x;

export class IoPagetable {
  /** Sorted by IOVA, never overlapping. */
  readonly areas: Area[] = [];
  readonly reserved: Reserved[] = [];
  allowed: Span[] = [];
  readonly domains: IoDomain[] = [];
  readonly accesses: AccessLike[] = [];
  /** 1 while nothing is attached (§10.1). */
  iovaAlignment = 1n;
  disableLargePages = false;

  constructor(readonly env: IommufdEnv) {}

  /* ---------- lookups ---------- */

  areaIterFirst(start: bigint, last: bigint): Area | undefined {
    return this.areas.find((a) => a.iova <= last && start <= a.last);
  }

  reservedIterFirst(start: bigint, last: bigint): Reserved | undefined {
    return this.reserved.find((r) => r.start <= last && start <= r.last);
  }

  /**
   * `iopt_for_each_contig_area`: the areas that cover [iova, last] without a gap, each with the
   * IOVA where its part starts; `done` says whether they reached `last`.
   */
  contigAreas(iova: bigint, last: bigint): { parts: { area: Area; cur: bigint }[]; done: boolean } {
    const parts: { area: Area; cur: bigint }[] = [];
    let cur = iova;
    let area = this.areaIterFirst(cur, cur);
    while (area?.pages) {
      parts.push({ area, cur });
      if (last <= area.last) return { parts, done: true };
      cur = area.last + 1n;
      const next = this.areaIterFirst(cur, last);
      if (!next || next.iova !== cur) break;
      area = next;
    }
    return { parts, done: false };
  }

  /* ---------- IOVA allocation (§10.3 step 11) ---------- */

  /** `iopt_alloc_iova`: the first free IOVA for `length` bytes whose hint address is `addr`. */
  allocIova(addr: bigint, length: bigint): bigint {
    const pageOffset = addr % PAGE_SIZE;
    if (length === 0n || length >= ULONG_MAX / 2n)
      throw new KernelError("EOVERFLOW", "automatic IOVA: length too large");
    let align = addr === 0n ? roundupPowOfTwo(length) : bmin(roundupPowOfTwo(length), lowBit(addr));
    const maxAlign = this.env.thp ? HPAGE_SIZE : PAGE_SIZE;
    if (align >= maxAlign) align = maxAlign;
    if (align < this.iovaAlignment)
      throw new KernelError("EINVAL", "hint alignment below the IOAS alignment", "K-164");
    const fit = (start: bigint, last: bigint): bigint | null => {
      const up = start + align - 1n;
      if (up > ULONG_MAX) return null;
      const aligned = (up & ~(align - 1n)) | pageOffset;
      if (aligned >= last || last - aligned < length - 1n) return null;
      return aligned;
    };
    const lo = PAGE_SIZE;
    const hi = ULONG_MAX - PAGE_SIZE;
    const allowed: Span[] = this.allowed.length
      ? this.allowed
          .filter((s) => s.start <= hi && lo <= s.last)
          .map((s) => ({ start: bmax(s.start, lo), last: bmin(s.last, hi) }))
          .sort((a, b) => (a.start < b.start ? -1 : 1))
      : [{ start: lo, last: hi }];
    for (const span of allowed) {
      if (fit(span.start, span.last) === null) continue;
      for (const hole of this.holes(span.start, span.last)) {
        const at = fit(hole.start, hole.last);
        if (at !== null) return at;
      }
    }
    throw new KernelError("ENOSPC", "no free IOVA range");
  }

  /** Gaps of [start, last] not covered by a reserved range or an area. */
  private holes(start: bigint, last: bigint): Span[] {
    const used = [
      ...this.reserved.map((r) => ({ start: r.start, last: r.last })),
      ...this.areas.map((a) => ({ start: a.iova, last: a.last })),
    ]
      .filter((u) => u.start <= last && start <= u.last)
      .sort((a, b) => (a.start < b.start ? -1 : 1));
    const out: Span[] = [];
    let pos = start;
    for (const u of used) {
      if (u.start > pos) out.push({ start: pos, last: u.start - 1n });
      if (u.last >= pos) {
        if (u.last >= last) return out;
        pos = u.last + 1n;
      }
    }
    if (pos <= last) out.push({ start: pos, last });
    return out;
  }

  /** `iopt_check_iova` (FIXED_IOVA): alignment, overflow, reserved before overlap. */
  checkIova(iova: bigint, length: bigint): void {
    if (iova & (this.iovaAlignment - 1n)) throw new KernelError("EINVAL", "IOVA not aligned to the IOAS");
    const last = iova + length - 1n;
    if (last > ULONG_MAX) throw new KernelError("EOVERFLOW", "IOVA range wraps");
    if (this.reservedIterFirst(iova, last)) throw new KernelError("EINVAL", "IOVA range is reserved");
    if (this.areaIterFirst(iova, last)) throw new KernelError("EEXIST", "IOVA range already mapped", "K-165");
  }

  /** `iopt_insert_area`: the area is linked with no pages yet. */
  private insertArea(pages: IoptPages, iova: bigint, startByte: bigint, length: bigint, prot: IoProt): Area {
    if (prot.write && !pages.writable) throw new KernelError("EPERM", "writable mapping of read-only pages");
    if ((startByte % PAGE_SIZE) & (this.iovaAlignment - 1n))
      throw new KernelError("EINVAL", "sub-page offset not aligned to the IOAS", "K-164");
    const last = iova + length - 1n;
    if (last > ULONG_MAX) throw new KernelError("EOVERFLOW", "IOVA range wraps");
    if ((startByte + length - 1n) / PAGE_SIZE >= pages.npages) {
      this.env.m.diag.warn("iopt_insert_area", "area beyond its pages");
      throw new KernelError("EOVERFLOW", "area beyond its pages");
    }
    const area = new Area(this, iova, last, startByte, { ...prot });
    const i = this.areas.findIndex((a) => a.iova > iova);
    this.areas.splice(i < 0 ? this.areas.length : i, 0, area);
    return area;
  }

  private removeArea(area: Area): void {
    const i = this.areas.indexOf(area);
    if (i >= 0) this.areas.splice(i, 1);
  }

  /* ---------- map / unmap ---------- */

  /**
   * `iopt_map_pages`: reserve the IOVA (automatic when `iova` is null), link one area per list
   * element, fill every domain, then hand the pages references over to the areas. On failure the
   * areas are removed again; the list keeps its pages references (the caller drops them).
   */
  mapPages(list: PagesListElm[], length: bigint, iova: bigint | null, prot: IoProt): bigint {
    let dst: bigint;
    try {
      // 11a
      if (length & (this.iovaAlignment - 1n) || length === 0n)
        throw new KernelError("EINVAL", "length not a multiple of the IOAS alignment", "K-197");
      if (iova === null) {
        const first = list[0].pages!;
        dst = this.allocIova(list[0].startByte + first.start, length); // 11b
      } else {
        this.checkIova(iova, length); // 11c
        dst = iova;
      }
      let cur = dst;
      for (const elm of list) {
        elm.area = this.insertArea(elm.pages!, cur, elm.startByte, elm.length, prot); // 11d inside
        cur += elm.length;
      }
      // 12
      const filled: PagesListElm[] = [];
      try {
        for (const elm of list) {
          this.fillAreaDomains(elm.area!, elm.pages!);
          filled.push(elm);
        }
      } catch (e) {
        for (const elm of filled) this.unfillAreaDomains(elm.area!, elm.pages!);
        throw e;
      }
    } catch (e) {
      for (const elm of list) {
        if (elm.area) this.removeArea(elm.area);
        elm.area = null;
      }
      throw e;
    }
    for (const elm of list) {
      elm.area!.pages = elm.pages;
      elm.pages = null;
      elm.area = null;
    }
    return dst;
  }

  /** Map one area into one domain (`iopt_area_fill_domain`); revoked dma-bufs map nothing. */
  private mapArea(area: Area, pages: IoptPages, d: IoDomain): void {
    const prot: IommuProt = { read: area.prot.read, write: area.prot.write, mmio: pages.type === "dmabuf" };
    const fail = (rc: number, what: string) => {
      throw new KernelError(rc === -12 ? "ENOMEM" : "EINVAL", `iommu_map of ${what} failed (${rc})`);
    };
    if (pages.type === "dmabuf") {
      if (pages.revoked) return; // tracked but nothing mapped (K-157)
      const rc = d.hw.map(area.iova, pages.dmabufPhysAt(area.pagesStartByte), area.length, prot);
      if (rc < 0) fail(rc, "a dma-buf area");
      return;
    }
    if (pages.type === "file")
      throw new KernelError("EINVAL", "memfd_pin_folios: the file is not a memfd (memfds are not modelled)");
    // user memory: GUP refuses PFN maps (K-174)
    const runs = userMm(this.env.m).pinUserPages(pages.start + area.pagesStartByte, area.length);
    let done = 0n;
    for (const r of runs) {
      const rc = d.hw.map(area.iova + done, r.phys, r.len, prot);
      if (rc < 0) {
        if (done) d.hw.unmap(area.iova, done);
        fail(rc, "user pages");
      }
      done += r.len;
    }
  }

  private unmapArea(area: Area, pages: IoptPages, d: IoDomain): void {
    if (pages.type === "dmabuf" && pages.revoked) return; // already unmapped by the revoke
    d.hw.unmap(area.iova, area.length);
  }

  /** `iopt_area_fill_domains`: a new area into every attached domain. */
  private fillAreaDomains(area: Area, pages: IoptPages): void {
    if (!this.domains.length) return;
    pages.mutex.with(() => {
      const isDmabuf = pages.type === "dmabuf";
      if (isDmabuf) for (const d of this.domains) pages.tracker.push({ area, domain: d });
      const done: IoDomain[] = [];
      try {
        for (const d of this.domains) {
          this.mapArea(area, pages, d);
          done.push(d);
        }
      } catch (e) {
        for (const d of done) this.unmapArea(area, pages, d);
        if (isDmabuf) untrack(pages, area);
        throw e;
      }
      area.storageDomain = this.domains[0];
    });
  }

  /** `iopt_area_unfill_domains`. */
  private unfillAreaDomains(area: Area, pages: IoptPages): void {
    if (!this.domains.length) return;
    pages.mutex.with(() => {
      for (const d of this.domains) this.unmapArea(area, pages, d);
      if (pages.type === "dmabuf") untrack(pages, area);
      area.storageDomain = null;
    });
  }

  /**
   * `iopt_unmap_iova_range`: every area inside [start, last] goes; an area sticking out of the range
   * fails with -ENOENT (no splitting), one being set up with -EBUSY. Returns the bytes unmapped.
   */
  unmapIovaRange(start: bigint, last: bigint): bigint {
    let unmapped = 0n;
    for (;;) {
      const area = this.areaIterFirst(start, last);
      if (!area) return unmapped;
      if (!area.pages) throw new KernelError("EBUSY", "area is being mapped or unmapped");
      if (area.iova < start || area.last > last)
        throw new KernelError("ENOENT", "range does not cover whole areas", "K-171");
      const pages = area.pages;
      area.pages = null;
      this.unfillAreaDomains(area, pages);
      this.removeArea(area);
      pages.put(); // the last area of a dma-buf detaches and drops the buffer (K-173)
      unmapped += area.length;
    }
  }

  /** `iopt_unmap_iova`. */
  unmapIova(iova: bigint, length: bigint): bigint {
    if (length === 0n) throw new KernelError("EINVAL", "unmap of length 0");
    const last = iova + length - 1n;
    if (last > ULONG_MAX) throw new KernelError("EOVERFLOW", "unmap range wraps");
    return this.unmapIovaRange(iova, last);
  }

  unmapAll(): bigint {
    return this.unmapIovaRange(0n, ULONG_MAX);
  }

  /**
   * `iopt_get_pages` (IOAS_COPY source): the pages behind [iova, iova + length) with a reference
   * each; the range must be covered by areas without a gap (-ENOENT).
   */
  getPages(iova: bigint, length: bigint): PagesListElm[] {
    if (length === 0n) throw new KernelError("EINVAL", "copy of length 0");
    const last = iova + length - 1n;
    if (last > ULONG_MAX) throw new KernelError("EOVERFLOW", "copy range wraps");
    const { parts, done } = this.contigAreas(iova, last);
    if (!done) throw new KernelError("ENOENT", "source range not fully mapped");
    return parts.map(({ area, cur }) => {
      area.pages!.get();
      return {
        pages: area.pages,
        startByte: area.startByteAt(cur),
        length: bmin(last, area.last) - cur + 1n,
        area: null,
      };
    });
  }

  /* ---------- reserved and allowed ranges ---------- */

  /** `iopt_reserve_iova`: -EADDRINUSE over an area or an allowed range. */
  reserveIova(start: bigint, last: bigint, owner: unknown): void {
    if (this.areaIterFirst(start, last) || this.allowed.some((s) => s.start <= last && start <= s.last))
      throw new KernelError("EADDRINUSE", "reserved range overlaps a mapping or an allowed range");
    this.reserved.push({ start, last, owner });
  }

  removeReserved(owner: unknown): void {
    for (let i = this.reserved.length - 1; i >= 0; i--)
      if (this.reserved[i].owner === owner) this.reserved.splice(i, 1);
  }

  /** `iopt_set_allow_iova` (IOMMU_IOAS_ALLOW_IOVAS): all or nothing. */
  setAllowIova(ranges: Span[]): void {
    for (const [i, r] of ranges.entries()) {
      if (r.start >= r.last) throw new KernelError("EINVAL", "allowed range start >= last");
      if (ranges.some((o, j) => j < i && o.start <= r.last && r.start <= o.last))
        throw new KernelError("EINVAL", "allowed ranges overlap");
    }
    if (ranges.some((r) => this.reservedIterFirst(r.start, r.last)))
      throw new KernelError("EADDRINUSE", "allowed range overlaps a reserved range");
    this.allowed = ranges.map((r) => ({ ...r }));
  }

  /* ---------- domains ---------- */

  /** `iopt_check_iova_alignment`: every area must conform to a raised alignment. */
  private checkIovaAlignment(align: bigint): void {
    const mask = align - 1n;
    for (const a of this.areas)
      if (a.iova & mask || a.length & mask || a.pageOffset & mask)
        throw new KernelError("EADDRINUSE", "an existing area does not fit the new IOVA alignment", "K-197");
  }

  /** `iopt_table_add_domain`: fill a new domain with every area (§10.1). */
  addDomain(d: IoDomain): void {
    if (this.domains.includes(d)) {
      this.env.m.diag.warn("iopt_table_add_domain", "domain added twice");
      throw new KernelError("EEXIST", "domain already attached");
    }
    const align = bmax(d.pgsize, this.iovaAlignment);
    if (align > PAGE_SIZE) throw new KernelError("EINVAL", "domain's smallest page is larger than PAGE_SIZE");
    if (align !== this.iovaAlignment) this.checkIovaAlignment(align);
    try {
      if (d.hw.geometry.start !== 0n) this.reserveIova(0n, d.hw.geometry.start - 1n, d);
      if (d.hw.geometry.end !== ULONG_MAX) this.reserveIova(d.hw.geometry.end + 1n, ULONG_MAX, d);
      this.fillDomain(d);
    } catch (e) {
      this.removeReserved(d);
      throw e;
    }
    this.iovaAlignment = align;
    this.domains.push(d);
  }

  /** `iopt_fill_domain`: every existing area into one new domain. */
  private fillDomain(d: IoDomain): void {
    const done: Area[] = [];
    try {
      for (const area of this.areas) {
        const pages = area.pages;
        if (!pages) continue;
        pages.mutex.with(() => {
          if (pages.type === "dmabuf") pages.tracker.push({ area, domain: d });
          try {
            this.mapArea(area, pages, d); // a revoked dma-buf is tracked, nothing mapped (K-157)
          } catch (e) {
            if (pages.type === "dmabuf") untrackDomain(pages, area, d);
            throw e;
          }
          area.storageDomain ??= d;
        });
        done.push(area);
      }
    } catch (e) {
      for (const area of done) {
        const pages = area.pages!;
        pages.mutex.with(() => {
          this.unmapArea(area, pages, d);
          if (pages.type === "dmabuf") untrackDomain(pages, area, d);
          if (area.storageDomain === d) area.storageDomain = null;
        });
      }
      throw e;
    }
  }

  /** `iopt_table_remove_domain`. */
  removeDomain(d: IoDomain): void {
    const i = this.domains.indexOf(d);
    if (i < 0) {
      this.env.m.diag.warn("iopt_table_remove_domain", "domain not attached");
      return;
    }
    this.domains.splice(i, 1);
    for (const area of this.areas) {
      const pages = area.pages;
      if (!pages) continue;
      pages.mutex.with(() => {
        this.unmapArea(area, pages, d);
        if (pages.type === "dmabuf") untrackDomain(pages, area, d);
        if (area.storageDomain === d) area.storageDomain = this.domains[0] ?? null;
      });
    }
    this.removeReserved(d);
    this.calculateIovaAlignment();
  }

  /** `iopt_calculate_iova_alignment`. */
  calculateIovaAlignment(): void {
    let align = this.disableLargePages ? PAGE_SIZE : 1n;
    for (const d of this.domains) align = bmax(align, d.pgsize);
    for (const a of this.accesses) align = bmax(align, a.iovaAlignment);
    if (align > this.iovaAlignment) this.checkIovaAlignment(align);
    this.iovaAlignment = align;
  }

  /** `iopt_disable_large_pages` (VFIO_TYPE1_IOMMU in compat mode). */
  disableLarge(): void {
    if (this.disableLargePages) return;
    if (this.domains.length && this.areas.length)
      throw new KernelError("EINVAL", "domains already hold mappings");
    this.disableLargePages = true;
    try {
      this.calculateIovaAlignment();
    } catch (e) {
      this.disableLargePages = false;
      throw e;
    }
  }

  addAccess(a: AccessLike): void {
    this.accesses.push(a);
    try {
      this.calculateIovaAlignment();
    } catch (e) {
      this.accesses.splice(this.accesses.indexOf(a), 1);
      throw e;
    }
  }

  removeAccess(a: AccessLike): void {
    const i = this.accesses.indexOf(a);
    if (i >= 0) this.accesses.splice(i, 1);
    this.calculateIovaAlignment();
  }

  /* ---------- split (VFIO compat) ---------- */

  /** `iopt_area_split`: `iova` becomes the last byte of the left part. */
  private splitArea(area: Area, iova: bigint): void {
    if (iova === area.iova || iova === area.last) return;
    const pages = area.pages;
    if (!pages || area.preventAccess) throw new KernelError("EBUSY", "area is busy");
    if (pages.type === "dmabuf")
      throw new KernelError("EOPNOTSUPP", "a dma-buf area cannot be split", "K-171");
    const newStart = iova + 1n;
    const mask = this.iovaAlignment - 1n;
    if (newStart & mask || area.startByteAt(newStart) & mask)
      throw new KernelError("EINVAL", "split point not aligned");
    if (area.numAccesses) throw new KernelError("EINVAL", "area has accesses");
    if (area.storageDomain && !this.disableLargePages)
      throw new KernelError("EINVAL", "area may be mapped with huge pages");
    const lhs = new Area(this, area.iova, iova, area.pagesStartByte, area.prot);
    const rhs = new Area(this, newStart, area.last, area.startByteAt(newStart), area.prot);
    for (const [n, s] of [
      [lhs, area],
      [rhs, area],
    ] as const) {
      n.pages = pages;
      n.storageDomain = s.storageDomain;
    }
    pages.get();
    this.areas.splice(this.areas.indexOf(area), 1, lhs, rhs);
  }

  /** `iopt_cut_iova`. */
  cutIova(iovas: bigint[]): void {
    for (const iova of iovas) {
      const area = this.areaIterFirst(iova, iova);
      if (area) this.splitArea(area, iova);
    }
  }
}

function untrack(pages: IoptPages, area: Area): void {
  for (let i = pages.tracker.length - 1; i >= 0; i--)
    if (pages.tracker[i].area === area) pages.tracker.splice(i, 1);
}

function untrackDomain(pages: IoptPages, area: Area, d: IoDomain): void {
  const i = pages.tracker.findIndex((t) => t.area === area && t.domain === d);
  if (i >= 0) pages.tracker.splice(i, 1);
}
