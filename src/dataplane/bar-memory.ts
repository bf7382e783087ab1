/**
 * What sits behind the addresses DMA reaches: the memory behind each function's BARs
 * ({@link BarMemory}, one sparse store per (function, BAR)) and system RAM ({@link HostMemory},
 * one sparse store keyed by physical address, limited to the machine's RAM ranges).
 *
 * A device model reacts to accesses through hooks on offset ranges of a BAR (registers, doorbells).
 * A write hook is called before the bytes are stored and says what happens to them; work that must
 * see the stored value (or that issues DMA itself) is handed to `defer`, which runs once the
 * transfer that carried the write has finished — as a device reacts after the TLP has landed.
 */
import { InputError } from "../core/errors.js";
import type { PciDev } from "../pci/device.js";
import { SparseBytes } from "./sparse.js";

/** A write reaching a hooked range (only the bytes inside the hook's range). */
export interface BarWriteAccess {
  dev: PciDev;
  bar: number;
  /** Offset of `data[0]` in the BAR. */
  offset: number;
  data: Uint8Array;
  /** BDF of the function whose request carried the write, or "cpu". */
  requester: string;
  /** Run `fn` after the current transfer (immediately after this write outside a transfer). */
  defer(fn: () => void): void;
}

export interface BarReadAccess {
  dev: PciDev;
  bar: number;
  offset: number;
  length: number;
  requester: string;
}

/**
 * What a write hook does with the bytes: `store` them (the default), `drop` them (read-only
 * register), `handled` (the hook stored what it wanted itself, e.g. with {@link BarMemory.poke}),
 * or answer `ca` (Completer Abort: nothing stored).
 */
export type BarWriteDecision = "store" | "drop" | "handled" | "ca";

export interface BarHook {
  /** Offsets [start, end) of the BAR the hook covers. */
  start: number;
  end: number;
  name?: string;
  write?(a: BarWriteAccess): BarWriteDecision | undefined;
  /** Bytes to return instead of the stored ones (exactly `length`), or undefined for the store; "ca" aborts. */
  read?(a: BarReadAccess): Uint8Array | "ca" | undefined;
}

export interface StoreRecord {
  kind: "bar" | "ram";
  dev: PciDev | null;
  bar: number | null;
  /** BAR offset, or physical address for RAM. */
  offset: bigint;
  length: number;
}

export type AccessStatus = "SC" | "CA";

interface Region {
  store: SparseBytes;
  hooks: BarHook[];
}

export interface AccessOptions {
  /** Run hooks (default true); device models use false for their own internal accesses. */
  hooks?: boolean;
  requester?: string;
  /** Where deferred work goes; default: run right after this access. */
  defer?: (fn: () => void) => void;
}

/** Memory behind BARs: one sparse store per (function, BAR), created on first use. */
export class BarMemory {
  private readonly regions = new Map<PciDev, Map<number, Region>>();
  private readonly listeners: ((r: StoreRecord) => void)[] = [];

  private region(dev: PciDev, bar: number): Region {
    let m = this.regions.get(dev);
    if (!m) {
      m = new Map();
      this.regions.set(dev, m);
    }
    let r = m.get(bar);
    if (!r) {
      const res = dev.resources[bar];
      if (!res?.flags || res.len === 0n) throw new InputError(`${dev.bdf} has no BAR${bar} (unimplemented)`);
      r = { store: new SparseBytes(res.len), hooks: [] };
      m.set(bar, r);
    }
    return r;
  }

  /** Length of the BAR (its resource length). */
  size(dev: PciDev, bar: number): bigint {
    return this.region(dev, bar).store.size ?? 0n;
  }

  /** Registers a hook; returns a function that removes it. Overlapping hooks are refused. */
  addHook(dev: PciDev, bar: number, hook: BarHook): () => void {
    const r = this.region(dev, bar);
    const len = r.store.size ?? 0n;
    if (!(hook.start >= 0 && hook.end > hook.start && BigInt(hook.end) <= len))
      throw new InputError(`hook [${hook.start}, ${hook.end}) does not fit ${dev.bdf} BAR${bar}`);
    if (r.hooks.some((h) => h.start < hook.end && hook.start < h.end))
      throw new InputError(`hook [${hook.start}, ${hook.end}) overlaps another on ${dev.bdf} BAR${bar}`);
    r.hooks.push(hook);
    r.hooks.sort((a, b) => a.start - b.start);
    return () => {
      const i = r.hooks.indexOf(hook);
      if (i >= 0) r.hooks.splice(i, 1);
    };
  }

  /** Observes every store into any BAR (tests, invariants). */
  onStore(fn: (r: StoreRecord) => void): () => void {
    this.listeners.push(fn);
    return () => {
      const i = this.listeners.indexOf(fn);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Stores bytes without hooks (a device model updating its own registers). */
  poke(dev: PciDev, bar: number, offset: number | bigint, data: Uint8Array): void {
    const r = this.region(dev, bar);
    const off = BigInt(offset);
    r.store.write(off, data);
    for (const l of this.listeners) l({ kind: "bar", dev, bar, offset: off, length: data.length });
  }

  /** Reads stored bytes without hooks. */
  peek(dev: PciDev, bar: number, offset: number | bigint, length: number): Uint8Array {
    return this.region(dev, bar).store.read(BigInt(offset), length);
  }

  /** A write as a completer receives it: hooks decide per covered range; the rest is stored. */
  write(
    dev: PciDev,
    bar: number,
    offset: number | bigint,
    data: Uint8Array,
    opts: AccessOptions = {},
  ): AccessStatus {
    const r = this.region(dev, bar);
    const off = Number(offset);
    if (opts.hooks === false || r.hooks.length === 0) {
      this.poke(dev, bar, off, data);
      return "SC";
    }
    const pending: (() => void)[] = [];
    const defer = opts.defer ?? ((fn: () => void) => pending.push(fn));
    let status: AccessStatus = "SC";
    const end = off + data.length;
    let pos = off;
    for (const h of r.hooks) {
      if (h.end <= pos || h.start >= end) continue;
      if (h.start > pos) {
        this.poke(dev, bar, pos, data.subarray(pos - off, h.start - off));
        pos = h.start;
      }
      const stop = Math.min(h.end, end);
      const slice = data.subarray(pos - off, stop - off);
      const d =
        h.write?.({ dev, bar, offset: pos, data: slice, requester: opts.requester ?? "cpu", defer }) ??
        "store";
      if (d === "store") this.poke(dev, bar, pos, slice);
      else if (d === "ca") status = "CA";
      pos = stop;
    }
    if (pos < end) this.poke(dev, bar, pos, data.subarray(pos - off));
    for (const fn of pending) fn();
    return status;
  }

  /** A read as a completer serves it: hooks may supply bytes or abort. */
  read(
    dev: PciDev,
    bar: number,
    offset: number | bigint,
    length: number,
    opts: AccessOptions = {},
  ): { status: AccessStatus; data: Uint8Array } {
    const r = this.region(dev, bar);
    const off = Number(offset);
    const data = r.store.read(BigInt(off), length);
    if (opts.hooks === false) return { status: "SC", data };
    const end = off + length;
    for (const h of r.hooks) {
      if (!h.read || h.end <= off || h.start >= end) continue;
      const lo = Math.max(h.start, off);
      const hi = Math.min(h.end, end);
      const got = h.read({ dev, bar, offset: lo, length: hi - lo, requester: opts.requester ?? "cpu" });
      if (got === "ca") return { status: "CA", data: new Uint8Array(length).fill(0xff) };
      if (got) {
        if (got.length !== hi - lo)
          throw new InputError(`read hook ${h.name ?? ""} returned ${got.length} bytes`);
        data.set(got, lo - off);
      }
    }
    return { status: "SC", data };
  }

  /** Pages allocated behind one BAR (0 when nothing was ever stored). */
  pagesAllocated(dev: PciDev, bar: number): number {
    return this.regions.get(dev)?.get(bar)?.store.pagesAllocated ?? 0;
  }
}

/** A range of system RAM (CPU physical addresses). */
export interface RamRange {
  start: bigint;
  size: bigint;
}

/**
 * Default RAM map: 2 GiB below 4 GiB and 252 GiB above it — clear of the x86 MMIO hole, the
 * machine-file BAR allocator (0xC000_0000…, 0x4000_0000_0000…) and the BARs of the built-in machines.
 */
export const DEFAULT_RAM: readonly RamRange[] = [
  { start: 0n, size: 0x8000_0000n },
  { start: 0x1_0000_0000n, size: 0x3f_0000_0000n },
];

/** System RAM: one sparse store keyed by physical address, accessible only inside `ranges`. */
export class HostMemory {
  private readonly store = new SparseBytes();
  private readonly listeners: ((r: StoreRecord) => void)[] = [];
  readonly ranges: readonly RamRange[];

  constructor(ranges: readonly RamRange[] = DEFAULT_RAM) {
    this.ranges = [...ranges].sort((a, b) => (a.start < b.start ? -1 : 1));
  }

  /** The RAM range holding `phys`, or null. */
  rangeAt(phys: bigint): RamRange | null {
    for (const r of this.ranges) if (phys >= r.start && phys < r.start + r.size) return r;
    return null;
  }

  /** Start of the first RAM range above `phys`, or null. */
  nextStart(phys: bigint): bigint | null {
    for (const r of this.ranges) if (r.start > phys) return r.start;
    return null;
  }

  private check(phys: bigint, length: number): void {
    const r = this.rangeAt(phys);
    if (!r || phys + BigInt(length) > r.start + r.size)
      throw new InputError(`[0x${phys.toString(16)}, +${length}) is not inside one system RAM range`);
  }

  read(phys: bigint, length: number): Uint8Array {
    if (length === 0) return new Uint8Array(0);
    this.check(phys, length);
    return this.store.read(phys, length);
  }

  write(phys: bigint, data: Uint8Array): void {
    if (data.length === 0) return;
    this.check(phys, data.length);
    this.store.write(phys, data);
    for (const l of this.listeners)
      l({ kind: "ram", dev: null, bar: null, offset: phys, length: data.length });
  }

  onStore(fn: (r: StoreRecord) => void): () => void {
    this.listeners.push(fn);
    return () => {
      const i = this.listeners.indexOf(fn);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  get pagesAllocated(): number {
    return this.store.pagesAllocated;
  }
}
