/**
 * Per-machine P2PDMA state (kernel-semantics §2.1–2.3): per-device `pci_p2pdma` with per-BAR
 * providers, the map-type cache keyed by client, and the optional p2pmem pool.
 */
import type { GenericDevice } from "../core/device.js";
import { KernelError } from "../core/errors.js";
import { u64 } from "../core/hex.js";
import { IORESOURCE_MEM, PciDev } from "../pci/device.js";
import type { CpuInfo } from "../pci/fabric.js";
import {
  type CalcOptions,
  calcMapTypeAndDist,
  type MapType,
  type MapVerdict,
  PCI_P2PDMA_MAP,
} from "./map-type.js";
import { HOST_BRIDGE_WHITELIST_6_19, type WhitelistEntry } from "./whitelist.js";

/** `struct p2pdma_provider`: one per MEM BAR. */
export interface P2pdmaProvider {
  owner: PciDev;
  bar: number;
  /** Added to a CPU physical address to get the bus address (u64 two's complement). */
  busOffset: bigint;
}

export const PAGE_SIZE = 4096n;
const SECTION_ALIGN = 2n << 20n; // ZONE_DEVICE sub-section alignment on x86-64

interface PoolChunk {
  bar: number;
  /** CPU physical start and size of the chunk added to the pool. */
  start: bigint;
  size: bigint;
  /** Synthetic kernel virtual address of the chunk's first byte. */
  va: bigint;
  /** Allocated page ranges [offset, offset+len) within the chunk. */
  used: Map<bigint, bigint>;
}

export interface P2pdmaState {
  mem: (P2pdmaProvider | null)[];
  /** client cache key → map type code (PCI_P2PDMA_MAP values). */
  mapTypes: Map<number, number>;
  pool: PoolChunk[] | null;
  published: boolean;
}

export type DmaClient = PciDev | GenericDevice;

export interface P2pdmaOptions {
  cpu: CpuInfo;
  whitelist?: readonly WhitelistEntry[];
  /** `CONFIG_PCI_P2PDMA` (kernel-semantics §0.2). */
  enabled?: boolean;
  /** Kernel log sink: warnings and verbose lines. */
  log?: (line: string) => void;
  /** Injected RNG for `pci_p2pmem_find_many` (returns [0,1)). */
  random?: () => number;
}

const CODE: Record<MapType, number> = {
  NOT_SUPPORTED: PCI_P2PDMA_MAP.NOT_SUPPORTED,
  BUS_ADDR: PCI_P2PDMA_MAP.BUS_ADDR,
  THRU_HOST_BRIDGE: PCI_P2PDMA_MAP.THRU_HOST_BRIDGE,
};
const NAME: Record<number, MapType> = { 2: "NOT_SUPPORTED", 3: "BUS_ADDR", 4: "THRU_HOST_BRIDGE" };

export class P2pdma {
  private states = new Map<PciDev, P2pdmaState>();
  readonly cpu: CpuInfo;
  private readonly whitelist: readonly WhitelistEntry[];
  private readonly enabled: boolean;
  private readonly log: (line: string) => void;
  private readonly random: () => number;
  /** Next synthetic kernel VA handed to a p2pmem chunk (vmemmap-like, per machine). */
  private vaCursor = 0xffff_c900_0000_0000n;

  constructor(opts: P2pdmaOptions) {
    this.cpu = opts.cpu;
    this.whitelist = opts.whitelist ?? HOST_BRIDGE_WHITELIST_6_19;
    this.enabled = opts.enabled ?? true;
    this.log = opts.log ?? (() => {});
    this.random = opts.random ?? (() => 0);
  }

  state(dev: PciDev): P2pdmaState | undefined {
    return this.states.get(dev);
  }

  /** `pcim_p2pdma_init`: idempotent; one provider per MEM BAR. */
  init(dev: PciDev): void {
    if (!this.enabled) throw new KernelError("EOPNOTSUPP", "pcim_p2pdma_init: CONFIG_PCI_P2PDMA=n");
    if (dev.nonMappableBars)
      throw new KernelError("EOPNOTSUPP", "pcim_p2pdma_init: device has non-mappable BARs", "K-193");
    if (this.states.has(dev)) return;
    const mem = dev.resources.map((r, bar) =>
      r.flags & IORESOURCE_MEM ? { owner: dev, bar, busOffset: u64(dev.busAddress(bar) - r.start) } : null,
    );
    this.states.set(dev, { mem, mapTypes: new Map(), pool: null, published: false });
  }

  /** Driver unbind: the device-managed p2pdma state, its cache and pool go away. */
  release(dev: PciDev): void {
    this.states.delete(dev);
  }

  /** `pcim_p2pdma_provider(dev, bar)`: null for non-MEM BARs; WARN and null before init. */
  provider(dev: PciDev, bar: number): P2pdmaProvider | null {
    if (bar < 0 || bar > 5 || !(dev.resources[bar].flags & IORESOURCE_MEM) || dev.nonMappableBars)
      return null;
    const s = this.states.get(dev);
    if (!s) {
      this.log(`WARN: ${dev.bdf}: pcim_p2pdma_provider called before pcim_p2pdma_init`);
      return null;
    }
    return s.mem[bar];
  }

  /** `calc_map_type_and_dist` with the cache store of step 7. */
  calc(provider: PciDev, client: PciDev, verbose: boolean): MapVerdict {
    const opts: CalcOptions = { verbose, whitelist: this.whitelist };
    const v = calcMapTypeAndDist(provider, client, this.cpu, opts);
    for (const l of v.log) this.log(l);
    this.states.get(provider)?.mapTypes.set(client.cacheKey, CODE[v.type]);
    return v;
  }

  /** `pci_p2pdma_map_type(provider, dev)`: cached per (provider device, client). */
  mapType(provider: P2pdmaProvider, dev: DmaClient): MapType {
    const s = this.states.get(provider.owner);
    if (!s) return "NOT_SUPPORTED";
    if (!(dev instanceof PciDev)) return "NOT_SUPPORTED";
    const hit = s.mapTypes.get(dev.cacheKey);
    if (hit !== undefined) return NAME[hit];
    return this.calc(provider.owner, dev, true).type;
  }

  /** `pci_p2pdma_bus_addr_map`. */
  busAddrMap(provider: P2pdmaProvider, paddr: bigint): bigint {
    return u64(paddr + provider.busOffset);
  }

  /** `pci_p2pdma_distance_many`: -1 when any client is unreachable or has no PCI ancestor. */
  distanceMany(provider: PciDev, clients: DmaClient[], verbose: boolean): number {
    if (clients.length === 0) return -1;
    let total = 0;
    let notSupported = false;
    for (const c of clients) {
      const pci = findParentPciDev(c);
      if (!pci) return -1;
      const v = this.calc(provider, pci, verbose);
      if (v.type === "NOT_SUPPORTED") notSupported = true;
      if (notSupported && !verbose) break;
      total += v.dist;
    }
    return notSupported ? -1 : total;
  }

  distance(provider: PciDev, client: DmaClient, verbose: boolean): number {
    return this.distanceMany(provider, [client], verbose);
  }

  /* p2pmem (§2.3) */

  /** `pci_p2pdma_add_resource(dev, bar, size, offset)`. */
  addResource(dev: PciDev, bar: number, size: bigint, offset: bigint): void {
    const r = dev.resources[bar];
    if (!r || !(r.flags & IORESOURCE_MEM))
      throw new KernelError("EINVAL", "pci_p2pdma_add_resource: BAR is not MEM");
    if (offset >= r.len) throw new KernelError("EINVAL", "pci_p2pdma_add_resource: offset beyond the BAR");
    const sz = size === 0n ? r.len - offset : size;
    if (sz + offset > r.len)
      throw new KernelError("EINVAL", "pci_p2pdma_add_resource: size + offset beyond the BAR");
    this.init(dev);
    const s = this.states.get(dev)!;
    const start = r.start + offset;
    if (start % SECTION_ALIGN !== 0n || sz % SECTION_ALIGN !== 0n)
      throw new KernelError(
        "EINVAL",
        "devm_memremap_pages: range not aligned to 2 MiB (ZONE_DEVICE sub-section)",
      );
    s.pool ??= [];
    const va = this.vaCursor;
    this.vaCursor += sz;
    s.pool.push({ bar, start, size: sz, va, used: new Map() });
  }

  /** `pci_alloc_p2pmem`: a kernel VA or null (no pool, exhausted). Page-granular first fit. */
  allocP2pmem(dev: PciDev, size: bigint): bigint | null {
    const s = this.states.get(dev);
    if (!s?.pool || size <= 0n) return null;
    const len = ((size + PAGE_SIZE - 1n) / PAGE_SIZE) * PAGE_SIZE;
    for (const c of s.pool) {
      const taken = [...c.used.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
      let cursor = 0n;
      for (const [off, l] of taken) {
        if (off - cursor >= len) break;
        cursor = off + l;
      }
      if (c.size - cursor >= len) {
        c.used.set(cursor, len);
        return c.va + cursor;
      }
    }
    return null;
  }

  freeP2pmem(dev: PciDev, va: bigint): void {
    for (const c of this.states.get(dev)?.pool ?? []) if (c.used.delete(va - c.va)) return;
  }

  /** `pci_p2pmem_virt_to_bus`: 0 for a null VA or without p2pdma. */
  virtToBus(dev: PciDev, va: bigint): bigint {
    const s = this.states.get(dev);
    if (!s?.pool || va === 0n) return 0n;
    for (const c of s.pool)
      if (va >= c.va && va < c.va + c.size) return u64(c.start + (va - c.va) + s.mem[c.bar]!.busOffset);
    return 0n;
  }

  /** Bytes still free in the pool (sysfs `p2pmem/available`). */
  available(dev: PciDev): bigint {
    let n = 0n;
    for (const c of this.states.get(dev)?.pool ?? []) {
      n += c.size;
      for (const l of c.used.values()) n -= l;
    }
    return n;
  }

  publish(dev: PciDev, on: boolean): void {
    const s = this.states.get(dev);
    if (s) s.published = on;
  }

  hasP2pmem(dev: PciDev): boolean {
    return this.states.get(dev)?.published === true;
  }

  /**
   * `pci_p2pmem_find_many`: among published providers, the closest to all clients; ties broken by
   * the injected RNG (at most 512 candidates are kept).
   */
  findMany(devices: PciDev[], clients: DmaClient[]): PciDev | null {
    let best = Number.POSITIVE_INFINITY;
    let closest: PciDev[] = [];
    for (const d of devices) {
      if (!this.hasP2pmem(d)) continue;
      const dist = this.distanceMany(d, clients, false);
      if (dist < 0 || dist > best) continue;
      if (dist < best) {
        best = dist;
        closest = [];
      }
      if (closest.length < 512) closest.push(d);
    }
    if (!closest.length) return null;
    return closest[Math.min(closest.length - 1, Math.floor(this.random() * closest.length))];
  }
}

/** `find_parent_pci_dev`: walk the generic parent chain to the nearest PCI function. */
export function findParentPciDev(dev: DmaClient): PciDev | null {
  let d: DmaClient | null = dev;
  while (d) {
    if (d instanceof PciDev) return d;
    d = d.parent;
  }
  return null;
}
