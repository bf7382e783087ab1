/**
 * mlx5 steering-tag index allocator (`mlx5/core/lib/st.c`, tph-and-tlp.md §5.3).
 *
 * An mkey names its steering tag by an index into the function's ST table; the allocator hands
 * out indexes in [1, N−1] (index 0 means "no tag") and shares one index between every user of
 * the same tag, with a reference count. With no table (location "none") it runs in direct mode:
 * the index field carries the tag itself.
 *
 * {@link Mlx5St} is pure and per device: it talks to the PCI side only through
 * {@link StTableWriter}. {@link mlx5StCreate} wires it to a {@link TphCore} with the kernel's
 * creation checks.
 */
import { type Diagnostics, warnOnce } from "../../core/diagnostics.js";
import { KernelBug, KernelError } from "../../core/errors.js";
import type { PciDev } from "../../pci/device.js";
import { PCI_TPH_LOC_NONE, PCI_TPH_ST_DS_MODE, type TphCore, type TphMemType } from "../../pci/tph.js";

/** Index 0 of the ST table is reserved for "no steering tag" (`MLX5_MKC_PCIE_TPH_NO_STEERING_TAG_INDEX`). */
export const MLX5_MKC_PCIE_TPH_NO_STEERING_TAG_INDEX = 0;

/** The PCI operations the allocator uses; both throw {@link KernelError} on failure. */
export interface StTableWriter {
  /** `pcie_tph_set_st_entry(pdev, index, tag)`. */
  setStEntry(index: number, tag: number): void;
  /** `pcie_tph_get_cpu_st(pdev, mem_type, cpu_uid)`. */
  getCpuSt(memType: TphMemType, cpuUid: number): number;
}

export interface Mlx5StOptions {
  /** Table location "none": index = tag, nothing is written. */
  directMode?: boolean;
  /** Linux ST table size (≥ 2) when not in direct mode. */
  numEntries?: number;
  /**
   * Reproduce mainline before the series' first patch (v7 patch 1): when an index's last
   * reference goes, the index is erased but its bookkeeping record is never freed. The model
   * keeps such records reachable in {@link Mlx5St.leakedRecords}, so the leak is real memory.
   */
  idxDataLeak?: boolean;
  /** Where WARN_ON_ONCE goes (dealloc of an index that is not allocated). */
  diag?: Diagnostics;
}

/** `struct mlx5_st_idx_data`: one per allocated index. */
export interface StIdxData {
  usecount: number;
  tag: number;
}

export interface Mlx5StStats {
  /** Indexes currently allocated. */
  inUse: number;
  /** Bookkeeping records still in memory (allocated + leaked). */
  liveRecords: number;
  /** Records whose index was freed but which were never released (pre-fix only). */
  leakedRecords: number;
}

const NO_WRITER: StTableWriter = {
  setStEntry: () => {},
  getCpuSt: () => {
    throw new KernelError("EINVAL", "pcie_tph_get_cpu_st: no platform steering tags");
  },
};

/**
 * `struct mlx5_st`. The kernel's `idx_xa` of `mlx5_st_idx_data` records is kept as two typed
 * arrays indexed by ST index (reference count, tag), so a cycle allocates no JS objects and the
 * heap only grows when the pre-fix leak is switched on.
 */
export class Mlx5St {
  readonly directMode: boolean;
  /** `index_limit`: the allocatable range. */
  readonly indexMin: number;
  readonly indexMax: number;
  readonly idxDataLeak: boolean;
  /** Per index: references (0 = free, i.e. no record in `idx_xa`) and the tag. */
  private readonly refs: Uint32Array;
  private readonly tags: Uint16Array;
  private used = 0;
  /**
   * Tag → index holding it, 0 when none (index 0 is never allocated). Equivalent to the kernel's
   * xa_for_each scan, since a tag is held by one index at most; a flat array so that a cycle
   * allocates nothing.
   */
  private readonly byTag: Uint16Array;
  private readonly leaked: StIdxData[] = [];
  private readonly diag: Diagnostics | undefined;

  constructor(
    private readonly writer: StTableWriter = NO_WRITER,
    opts: Mlx5StOptions = {},
  ) {
    this.directMode = opts.directMode ?? false;
    this.idxDataLeak = opts.idxDataLeak ?? false;
    this.diag = opts.diag;
    const n = this.directMode ? 0 : (opts.numEntries ?? 0);
    // mlx5_st_create never builds one for fewer than 2 entries; a caller doing so is a bug.
    if (!this.directMode && (!Number.isInteger(n) || n < 2 || n > 2048))
      throw new KernelBug("mlx5_st", `a table of ${n} entries cannot hold a tag (needs 2..2048)`);
    this.indexMin = MLX5_MKC_PCIE_TPH_NO_STEERING_TAG_INDEX + 1;
    this.indexMax = this.directMode ? 0xffff : n - 1;
    this.refs = new Uint32Array(n);
    this.tags = new Uint16Array(n);
    this.byTag = new Uint16Array(this.directMode ? 0 : 0x10000);
  }

  /** `mlx5_st_alloc_index_by_tag` (series v7 patch 5): an index holding `tag`. */
  allocIndexByTag(tag: number): number {
    tag &= 0xffff;
    if (this.directMode) return tag;
    return this.allocLocked(tag);
  }

  /** `mlx5_st_alloc_index`: the tag comes from the platform for that CPU first. */
  allocIndex(memType: TphMemType, cpuUid: number): number {
    const tag = this.writer.getCpuSt(memType, cpuUid) & 0xffff;
    if (this.directMode) return tag;
    return this.allocLocked(tag);
  }

  /** The part under `st->lock`: reuse the index holding `tag`, else the lowest free one. */
  private allocLocked(tag: number): number {
    const held = this.byTag[tag];
    if (held !== 0) {
      this.refs[held]++;
      return held;
    }
    let index = -1;
    for (let i = this.indexMin; i <= this.indexMax; i++)
      if (this.refs[i] === 0) {
        index = i;
        break;
      }
    if (index < 0)
      throw new KernelError("EBUSY", "mlx5_st_alloc_index: every ST table index is in use", "TPH-16");
    this.refs[index] = 1;
    this.tags[index] = tag;
    this.used++;
    this.byTag[tag] = index;
    try {
      this.writer.setStEntry(index, tag);
    } catch (e) {
      // Index and record are released (no leak on this path, before or after the fix).
      this.release(index);
      throw e;
    }
    return index;
  }

  private release(index: number): void {
    this.refs[index] = 0;
    this.used--;
    this.byTag[this.tags[index]] = 0;
  }

  /** `mlx5_st_dealloc_index`: one reference less; the index is free at zero. The table entry stays. */
  deallocIndex(index: number): void {
    if (this.directMode) return;
    index &= 0xffff; // u16 st_index
    if (index >= this.refs.length || this.refs[index] === 0) {
      if (this.diag) warnOnce(this.diag, "mlx5_st_dealloc_index", `index ${index}`);
      throw new KernelError(
        "EINVAL",
        "mlx5_st_dealloc_index: index not allocated",
        undefined,
        `index ${index}`,
      );
    }
    if (--this.refs[index] === 0) {
      this.release(index);
      // Pre-fix: the record leaves the xarray but is never freed.
      if (this.idxDataLeak) this.leaked.push({ usecount: 0, tag: this.tags[index] });
    }
  }

  /** References on `index` (0 when free). */
  refcount(index: number): number {
    return this.refs[index] ?? 0;
  }
  /** The tag `index` was allocated for, undefined when free. */
  tagOf(index: number): number | undefined {
    return this.refs[index] ? this.tags[index] : undefined;
  }
  /** Allocated indexes in ascending order. */
  inUse(): number[] {
    const out: number[] = [];
    for (let i = this.indexMin; i < this.refs.length; i++) if (this.refs[i]) out.push(i);
    return out;
  }
  get isEmpty(): boolean {
    return this.used === 0;
  }
  /** Records freed from the index space but never released (pre-fix only). */
  get leakedRecords(): readonly StIdxData[] {
    return this.leaked;
  }
  stats(): Mlx5StStats {
    return {
      inUse: this.used,
      liveRecords: this.used + this.leaked.length,
      leakedRecords: this.leaked.length,
    };
  }
}

/* ---- the driver-facing functions, with `dev->st` possibly NULL ---- */

export function mlx5StAllocIndexByTag(st: Mlx5St | null, tag: number): number {
  if (!st) throw new KernelError("EOPNOTSUPP", "mlx5_st_alloc_index_by_tag: no ST support", "TPH-19");
  return st.allocIndexByTag(tag);
}

export function mlx5StAllocIndex(st: Mlx5St | null, memType: TphMemType, cpuUid: number): number {
  if (!st) throw new KernelError("EOPNOTSUPP", "mlx5_st_alloc_index: no ST support", "TPH-19");
  return st.allocIndex(memType, cpuUid);
}

export function mlx5StDeallocIndex(st: Mlx5St | null, index: number): void {
  if (!st) throw new KernelError("EOPNOTSUPP", "mlx5_st_dealloc_index: no ST support", "TPH-19");
  st.deallocIndex(index);
}

export interface Mlx5StCreateOptions {
  /** Firmware capability `mkey_pcie_tph`. */
  mkeyPcieTph: boolean;
  /** A sub-function shares its parent's allocator (whatever it is, null included). */
  sfParent?: { st: Mlx5St | null };
  idxDataLeak?: boolean;
  diag?: Diagnostics;
}

/**
 * `mlx5_st_create`: an allocator only when every condition of §5.3 holds; null otherwise. TPH is
 * enabled in Device Specific mode on the way (a failure there means no allocator).
 */
export function mlx5StCreate(tph: TphCore, dev: PciDev, opts: Mlx5StCreateOptions): Mlx5St | null {
  if (!opts.mkeyPcieTph) return null;
  if (opts.sfParent) return opts.sfParent.st;
  if (!tph.tphCap(dev)) return null;
  const directMode = tph.pcieTphGetStTableLoc(dev) << 9 === PCI_TPH_LOC_NONE;
  let numEntries = 0;
  if (!directMode) {
    numEntries = tph.pcieTphGetStTableSize(dev);
    if (numEntries < 2) return null; // entry 0 is reserved, so one entry is useless (TPH-19)
  }
  try {
    tph.pcieEnableTph(dev, PCI_TPH_ST_DS_MODE);
  } catch (e) {
    if (e instanceof KernelError) return null;
    throw e;
  }
  const writer: StTableWriter = {
    setStEntry: (index, tag) => tph.pcieTphSetStEntry(dev, index, tag),
    getCpuSt: (memType, cpuUid) => tph.pcieTphGetCpuSt(dev, memType, cpuUid),
  };
  return new Mlx5St(writer, { directMode, numEntries, idxDataLeak: opts.idxDataLeak, diag: opts.diag });
}

/** `mlx5_st_destroy`: TPH off; WARN when indexes are still allocated. SFs leave it to the parent. */
export function mlx5StDestroy(
  tph: TphCore,
  dev: PciDev,
  st: Mlx5St | null,
  isSf = false,
  diag?: Diagnostics,
): void {
  if (isSf || !st) return;
  tph.pcieDisableTph(dev);
  if (!st.isEmpty && diag) warnOnce(diag, "mlx5_st_destroy", "ST indexes still allocated");
}
