/**
 * The 6.19 phys_vec -> sg_table helper (drivers/dma-buf/dma-buf-mapping.c,
 * kernel-semantics §5): `dma_buf_phys_vec_to_sgt` and `dma_buf_free_sgt`.
 *
 * An exporter of MMIO hands over its physical ranges; the helper picks the address type from the
 * P2P map type between the provider and the importing device:
 * - BUS_ADDR ("bus mode"): PCI bus addresses, no IOMMU involvement, `dir` unused;
 * - THRU_HOST_BRIDGE: one contiguous IOVA range linked range by range ("iova mode"), or, when no
 *   IOVA can be had (dma-direct device, exhaustion), one `dma_map_phys` per range ("per-range mode");
 * - anything else: -EINVAL.
 * The table has no CPU list: entries carry only a DMA address and a 32-bit DMA length, split by the
 * chunking rule of §5.3. Variants: `sgChunk` ('uint_max' 6.19 / 'page_aligned') and
 * `iovaLinkOffset` ('zero' 6.19 / 'cumulative').
 *
 * Failures are thrown as {@link KernelError}; the unwind is the kernel's (§5.2), including what it
 * leaves behind: a failure at the first range in iova mode keeps the IOVA reserved (`leak:iova`).
 */
import { type Diagnostics, warnOnce } from "../core/diagnostics.js";
import { type ErrnoName, errnoName } from "../core/errno.js";
import { KernelBug, KernelError, type SpecId } from "../core/errors.js";
import { type FaultInjector, NO_FAULTS } from "../core/fault-inject.js";
import { hex, u64 } from "../core/hex.js";
import type { DmaDevice } from "../dma/device.js";
import { deviceName } from "../dma/device.js";
import { DMA_ATTR_MMIO, type DmaDataDirection } from "../dma/direction.js";
import { type DmaIovaState, dmaUseIova, newDmaIovaState } from "../dma/dma-iommu.js";
import type { DmaApi } from "../dma/mapping.js";
import type { PciDev } from "../pci/device.js";

/** `struct dma_buf_phys_vec`: one physical range. */
export interface PhysVec {
  paddr: bigint;
  len: bigint;
}

/** `struct p2pdma_provider`: the BAR's owner and its CPU->bus offset (added to a CPU address). */
export interface P2pdmaProvider {
  owner: PciDev;
  busOffset: bigint;
}

/** `enum pci_p2pdma_map_type` by name (numbers 0..4 are accepted too). */
export type P2pdmaMapTypeName = "UNKNOWN" | "NONE" | "NOT_SUPPORTED" | "BUS_ADDR" | "THRU_HOST_BRIDGE";

const MAP_TYPE_BY_NUMBER: readonly P2pdmaMapTypeName[] = [
  "UNKNOWN",
  "NONE",
  "NOT_SUPPORTED",
  "BUS_ADDR",
  "THRU_HOST_BRIDGE",
];

/** What the helper needs of a `dma_buf_attachment`: the importing device and its buffer. */
export interface PhysVecAttachment {
  dev: DmaDevice;
  dmabuf: unknown;
}

/**
 * `dma_resv_assert_held(attach->dmabuf->resv)`, asked of the caller: throws {@link KernelBug} when
 * the lock is not held. Given the attachment and the helper's name, so one function can serve
 * every call (no closure per map).
 */
export type AssertResvHeld<A extends PhysVecAttachment = PhysVecAttachment> = (
  attach: A,
  site: string,
) => void;

export type SgChunk = "uint_max" | "page_aligned";
export type IovaLinkOffset = "zero" | "cumulative";

/** `P` is the caller's provider type (p2pdma's carries more fields, e.g. the BAR). */
export interface PhysVecOptions<
  P extends P2pdmaProvider = P2pdmaProvider,
  A extends PhysVecAttachment = PhysVecAttachment,
> {
  /** The machine's DMA API. */
  dma: DmaApi;
  /**
   * `pci_p2pdma_map_type(provider, attach.dev)`: the value, or the function to ask (called exactly
   * once per map, after the argument checks, like the kernel).
   */
  mapType:
    | P2pdmaMapTypeName
    | number
    | ((provider: NoInfer<P>, dev: DmaDevice) => P2pdmaMapTypeName | number);
  /** Variant flag `sgChunk` (§0.3). Default 'uint_max' (6.19). */
  sgChunk?: SgChunk;
  /** Variant flag `iovaLinkOffset` (§0.3). Default 'zero' (6.19). */
  iovaLinkOffset?: IovaLinkOffset;
  /** Default: the DMA API's sink. */
  diag?: Diagnostics;
  /** Sites `kzalloc:dma_buf_dma`, `kzalloc:dma_iova_state`, `sg_alloc_table`. */
  faults?: FaultInjector;
  assertLockHeld?: AssertResvHeld<A>;
  /**
   * Largest table the model allocates; above it `sg_alloc_table` fails with -ENOMEM (a modelling
   * bound standing for the kernel running out of memory). Default 1 << 22 entries.
   */
  maxSgEntries?: number;
}

/** One scatterlist entry: no CPU page, only the DMA address and 32-bit DMA length (§5.1). */
export interface SgEntry {
  page: null;
  offset: 0;
  length: 0;
  dmaAddress: bigint;
  dmaLen: bigint;
}

/**
 * `container_of(sgt, struct dma_buf_dma, sgt)`: the mapping behind a table. A symbol key keeps it
 * out of JSON and of the table's printed form; a WeakMap cost a fifth of an export cycle in GC.
 */
const DMA_BUF_DMA: unique symbol = Symbol("dma_buf_dma");

export interface SgTable {
  sgl: SgEntry[];
  nents: number;
  /** Always 0: there is no CPU list. */
  origNents: number;
  [DMA_BUF_DMA]?: DmaBufDma;
}

export type DmaBufDmaMode = "bus" | "iova" | "per-range";

/** `struct dma_buf_dma`: the table, the IOVA state (null in bus mode) and the recorded size. */
export interface DmaBufDma {
  sgt: SgTable;
  state: DmaIovaState | null;
  size: bigint;
  mode: DmaBufDmaMode;
  freed: boolean;
}

export const UINT_MAX = 0xffff_ffffn;
const U32 = 1n << 32n;
const U32_NUMBER = 2 ** 32;

/** Chunk length of one entry under the variant (§5.3). */
export function sgChunkLen(variant: SgChunk): bigint {
  return variant === "page_aligned" ? 0xffff_f000n : UINT_MAX;
}

function divRoundUp(n: bigint, d: bigint): bigint {
  return u64(n + d - 1n) / d; // DIV_ROUND_UP in 64-bit arithmetic
}

/** The mapping object behind a table returned by {@link dmaBufPhysVecToSgt}. */
export function dmaBufDmaOf(sgt: SgTable): DmaBufDma | undefined {
  return sgt[DMA_BUF_DMA];
}

function fail(name: ErrnoName, check: string, spec?: SpecId, detail?: string): never {
  throw new KernelError(name, check, spec, detail);
}

function failErrno(ret: number, check: string): never {
  fail(errnoName(ret) ?? "EINVAL", check, undefined, ret ? `ret ${ret}` : undefined);
}

function normalizeMapType(t: P2pdmaMapTypeName | number): P2pdmaMapTypeName | number {
  return typeof t === "number" ? (MAP_TYPE_BY_NUMBER[t] ?? t) : t;
}

/**
 * Entry count (§5.2 step 4). Bus and per-range modes: the sum over ranges, a 32-bit counter that
 * wraps in 6.19 and reports 0 on overflow in the page-aligned variant. Iova mode: from `size`.
 */
export function calcSgNents(
  ranges: readonly PhysVec[],
  size: bigint,
  iovaMode: boolean,
  variant: SgChunk = "uint_max",
): number {
  const chunk = sgChunkLen(variant);
  if (iovaMode) return Number(divRoundUp(size, chunk) % U32);
  // A double holds the 32-bit counter exactly: each step adds below 2^32 and wraps at once.
  let n = 0;
  for (let i = 0; i < ranges.length; i++) {
    const len = ranges[i].len;
    // common case first: a range that fits one entry (no bigint division)
    n += len > 0n && len <= chunk ? 1 : Number(divRoundUp(len, chunk) % U32);
    if (n >= U32_NUMBER) {
      if (variant === "page_aligned") return 0;
      n %= U32_NUMBER;
    }
  }
  return n;
}

function zeroEntry(): SgEntry {
  return { page: null, offset: 0, length: 0, dmaAddress: 0n, dmaLen: 0n };
}

/** `fill_sg_entry` (§5.3): entries for (addr, length) from `cursor`; returns the new cursor. */
function fillSgEntry(sgt: SgTable, cursor: number, length: bigint, addr: bigint, chunk: bigint): number {
  if (length > 0n && length <= chunk) {
    // one entry: the common case, without the bigint division
    if (cursor >= sgt.nents)
      throw new KernelBug("fill_sg_entry", "scatterlist overrun (entry count too small)");
    const e = sgt.sgl[cursor];
    e.dmaAddress = u64(addr);
    e.dmaLen = length;
    return cursor + 1;
  }
  const n = Number(divRoundUp(length, chunk) % U32);
  let left = length;
  let c = cursor;
  for (let i = 0; i < n; i++) {
    if (c >= sgt.nents) throw new KernelBug("fill_sg_entry", "scatterlist overrun (entry count too small)");
    const len = left < chunk ? left : chunk;
    left -= len;
    const e = sgt.sgl[c];
    e.dmaAddress = u64(addr + BigInt(i) * chunk);
    e.dmaLen = len % U32;
    c++;
  }
  return c;
}

/** What a failed map leaves to undo (§5.2 unwind): the ranges done so far and how. */
interface MapProgress {
  dev: DmaDevice;
  state: DmaIovaState | null;
  iovaMode: boolean;
  size: bigint;
  dir: DmaDataDirection;
  /** Ranges handled before the failure. */
  done: number;
  mappedLen: bigint;
}

/** An IOVA reservation dropped without dma_iova_free stays allocated for good. */
function recordIovaLeak(diag: Diagnostics, p: MapProgress, why: string): void {
  if (p.iovaMode && p.state)
    diag.record(
      "leak:iova",
      `${deviceName(p.dev)}: IOVA ${hex(p.state.addr)}+${hex(p.size)} left reserved (${why})`,
    );
}

/** The kernel's unwind after a failed range (§5.2), then the error. */
function unwindAndFail(
  dma: DmaApi,
  diag: Diagnostics,
  sgt: SgTable,
  p: MapProgress,
  ret: number,
  check: string,
): never {
  if (p.done === 0 || p.state === null) {
    recordIovaLeak(diag, p, "failure at the first range");
  } else if (p.iovaMode) {
    dma.dmaIovaDestroy(p.dev, p.state, p.mappedLen, p.dir, DMA_ATTR_MMIO);
  } else {
    // Every entry, including the ones never filled (0, 0): harmless no-ops.
    for (const e of sgt.sgl) dma.dmaUnmapPhys(p.dev, e.dmaAddress, e.dmaLen, p.dir, DMA_ATTR_MMIO);
  }
  return failErrno(ret, check);
}

/**
 * `dma_buf_phys_vec_to_sgt(attach, provider, ranges, nr, size, dir)` (§5.2). Returns the table;
 * {@link dmaBufDmaOf} gives the mode, IOVA state and size behind it.
 */
export function dmaBufPhysVecToSgt<P extends P2pdmaProvider, A extends PhysVecAttachment>(
  attach: A | null | undefined,
  provider: P | null | undefined,
  ranges: readonly PhysVec[],
  size: bigint,
  dir: DmaDataDirection,
  opts: PhysVecOptions<P, A>,
): SgTable {
  const diag = opts.diag ?? opts.dma.diag;
  const faults = opts.faults ?? NO_FAULTS;
  const variant = opts.sgChunk ?? "uint_max";
  const chunk = sgChunkLen(variant);
  const dma = opts.dma;
  if (attach) opts.assertLockHeld?.(attach, "dma_buf_phys_vec_to_sgt");

  // 1. This function works on MMIO of a provider only.
  if (!attach?.dmabuf || !provider) {
    diag.warn(
      "dma-buf-phys-vec-to-sgt-args",
      !attach ? "no attachment" : !attach.dmabuf ? "no dmabuf" : "no provider",
    );
    fail("EINVAL", "dma_buf_phys_vec_to_sgt: missing attachment, dma-buf or provider");
  }
  const dev = attach.dev;

  // 2. The result object.
  const e2 = faults.check("kzalloc:dma_buf_dma");
  if (e2) fail(e2, "dma_buf_phys_vec_to_sgt: allocation of the result");

  // 3. Address type.
  const raw = typeof opts.mapType === "function" ? opts.mapType(provider, dev) : opts.mapType;
  const mapType = normalizeMapType(raw);
  let state: DmaIovaState | null = null;
  if (mapType === "BUS_ADDR") {
    // bus mode: no IOVA at all
  } else if (mapType === "THRU_HOST_BRIDGE") {
    const e3 = faults.check("kzalloc:dma_iova_state");
    if (e3) fail(e3, "dma_buf_phys_vec_to_sgt: allocation of the IOVA state");
    state = newDmaIovaState();
    dma.dmaIovaTryAlloc(dev, state, 0n, size);
  } else {
    fail(
      "EINVAL",
      "dma_buf_phys_vec_to_sgt: map type",
      undefined,
      `${String(mapType)} for ${deviceName(dev)}`,
    );
  }
  const iovaMode = state !== null && dmaUseIova(state);
  const mode: DmaBufDmaMode = state === null ? "bus" : iovaMode ? "iova" : "per-range";
  const progress: MapProgress = { dev, state, iovaMode, size, dir, done: 0, mappedLen: 0n };

  // 4-5. The table.
  const nents = calcSgNents(ranges, size, iovaMode, variant);
  if (nents === 0) {
    recordIovaLeak(diag, progress, "sg_alloc_table failed");
    fail("EINVAL", "sg_alloc_table: zero entries");
  }
  const e5 = nents > (opts.maxSgEntries ?? 1 << 22) ? "ENOMEM" : faults.check("sg_alloc_table");
  if (e5) {
    recordIovaLeak(diag, progress, "sg_alloc_table failed");
    fail(e5, "sg_alloc_table", undefined, `${nents} entries`);
  }
  const sgl: SgEntry[] = new Array(nents);
  for (let k = 0; k < nents; k++) sgl[k] = zeroEntry();
  const sgt: SgTable = { sgl, nents, origNents: 0, [DMA_BUF_DMA]: undefined };

  // 6. Map every range in order.
  const wrap32 = variant === "uint_max"; // 6.19 keeps mapped_len in an unsigned int
  const cumulative = opts.iovaLinkOffset === "cumulative";
  let linkOffset = 0n;
  let cursor = 0;
  for (let i = 0; i < ranges.length; i++) {
    progress.done = i;
    const r = ranges[i];
    let addr = 0n;
    if (state === null) {
      addr = u64(r.paddr + provider.busOffset); // pci_p2pdma_bus_addr_map
    } else if (iovaMode) {
      // 6.19 links every range at IOVA offset 0 (§5.2 model note); 'cumulative' packs them.
      const ret = dma.dmaIovaLink(
        dev,
        state,
        r.paddr,
        cumulative ? linkOffset : 0n,
        r.len,
        dir,
        DMA_ATTR_MMIO,
      );
      if (ret) unwindAndFail(dma, diag, sgt, progress, ret, "dma_iova_link");
      linkOffset += r.len;
      const mapped = progress.mappedLen + r.len;
      progress.mappedLen = wrap32 ? mapped % U32 : mapped;
    } else {
      addr = dma.dmaMapPhys(dev, r.paddr, r.len, dir, DMA_ATTR_MMIO);
      const ret = dma.dmaMappingError(dev, addr);
      if (ret) unwindAndFail(dma, diag, sgt, progress, ret, "dma_map_phys");
    }
    if (!iovaMode) cursor = fillSgEntry(sgt, cursor, r.len, addr, chunk);
  }
  progress.done = ranges.length;

  // 7. One entry run for the whole IOVA range.
  if (iovaMode && state) {
    const mappedLen = progress.mappedLen;
    if (mappedLen !== size)
      warnOnce(diag, "dma-buf-phys-vec-to-sgt-mapped-len", `mapped ${hex(mappedLen)} of ${hex(size)}`);
    const ret = dma.dmaIovaSync(dev, state, 0n, mappedLen);
    if (ret) unwindAndFail(dma, diag, sgt, progress, ret, "dma_iova_sync");
    cursor = fillSgEntry(sgt, cursor, mappedLen, state.addr, chunk);
  }

  // 8. The table must be exactly full.
  if (cursor !== nents)
    warnOnce(diag, "dma-buf-phys-vec-to-sgt-nents", `filled ${cursor} of ${nents} entries`);
  sgt[DMA_BUF_DMA] = { sgt, state, size, mode, freed: false };
  return sgt;
}

/** `dma_buf_free_sgt(attach, sgt, dir)` (§5.4): undoes the mapping by mode, using the recorded size. */
export function dmaBufFreeSgt<A extends PhysVecAttachment>(
  attach: A,
  sgt: SgTable,
  dir: DmaDataDirection,
  opts: { dma: DmaApi; assertLockHeld?: AssertResvHeld<A> },
): void {
  opts.assertLockHeld?.(attach, "dma_buf_free_sgt");
  const d = sgt[DMA_BUF_DMA];
  if (!d) throw new KernelBug("dma_buf_free_sgt", "table not made by dma_buf_phys_vec_to_sgt");
  if (d.freed) throw new KernelBug("dma_buf_free_sgt", "table freed twice");
  const dev = attach.dev;
  if (d.state === null) {
    // bus mode: nothing was mapped
  } else if (dmaUseIova(d.state)) {
    opts.dma.dmaIovaDestroy(dev, d.state, d.size, dir, DMA_ATTR_MMIO);
  } else {
    for (const e of sgt.sgl) opts.dma.dmaUnmapPhys(dev, e.dmaAddress, e.dmaLen, dir, DMA_ATTR_MMIO);
  }
  d.freed = true;
}
