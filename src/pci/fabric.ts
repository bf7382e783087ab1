import { InputError } from "../core/errors.js";
import { normalizeBdf } from "./bdf.js";
import type { ConfigSpace } from "./config-space.js";
import { type HostBridge, PciBus, PciDev } from "./device.js";
import { PCI_PRIMARY_BUS, PCI_SECONDARY_BUS, PCI_SUBORDINATE_BUS } from "./regs.js";

/** The host CPU: decides the AMD rule of the P2PDMA allow-list (kernel-semantics §2.2). */
export interface CpuInfo {
  vendor: string; // "GenuineIntel", "AuthenticAMD", "HygonGenuine", …
  family: number;
  model?: number;
  modelName?: string;
  /** Where the value came from ("machine file", "/proc/cpuinfo", "--cpu", "assumed"). */
  source: string;
}

/**
 * The bus numbered `number` in the tree from `bus`, depth first with the last child first (the
 * order a stack of children gives), by recursion: nothing allocated per call (importers call it
 * once per bridge).
 */
function findBelow(bus: PciBus, number: number): PciBus | undefined {
  if (bus.number === number) return bus;
  for (let i = bus.children.length - 1; i >= 0; i--) {
    const found = findBelow(bus.children[i], number);
    if (found) return found;
  }
  return undefined;
}

/** What the kernel assumes when nothing says otherwise (kernel-semantics §0.2): not AMD Zen. */
export const DEFAULT_CPU: CpuInfo = { vendor: "GenuineIntel", family: 6, source: "assumed (spec default)" };

/**
 * A PCIe fabric: host bridges, their buses and functions. Built incrementally (machine files,
 * importers) and then read; the scan order matches Linux's `pci_bus_add_devices` (every function of
 * a bus in devfn order, then the subtree below each bridge of that bus, host bridges in order).
 */
export class Fabric {
  readonly hostBridges: HostBridge[] = [];
  cpu: CpuInfo | null = null;
  name = "";
  private byBdf = new Map<string, PciDev>();
  private orderCache: PciDev[] | null = null;

  addHostBridge(hb: HostBridge): HostBridge {
    if (this.hostBridges.some((h) => h.domain === hb.domain && h.busNumber === hb.busNumber))
      throw new InputError(`host bridge ${hb.label} defined twice`);
    this.hostBridges.push(hb);
    this.hostBridges.sort((a, b) => a.domain - b.domain || a.busNumber - b.busNumber);
    this.orderCache = null;
    return hb;
  }

  /** Adds a function on `bus`. Functions are kept in devfn order. */
  addFunction(bus: PciBus, devfn: number, config: ConfigSpace): PciDev {
    const dev = new PciDev(bus, devfn, config);
    const key = dev.bdf;
    if (this.byBdf.has(key)) throw new InputError(`function ${key} defined twice`);
    this.byBdf.set(key, dev);
    const i = bus.devices.findIndex((d) => d.devfn > devfn);
    if (i < 0) bus.devices.push(dev);
    else bus.devices.splice(i, 0, dev);
    this.orderCache = null;
    return dev;
  }

  /** Creates the secondary bus of a bridge and records the numbers in its type-1 header. */
  addSecondaryBus(bridge: PciDev, number: number): PciBus {
    if (bridge.subordinate) throw new InputError(`bridge ${bridge.bdf} already has a secondary bus`);
    const hb = bridge.hostBridge;
    if (this.findBus(hb.domain, number))
      throw new InputError(`bus ${formatBus(hb.domain, number)} is used twice (below ${bridge.bdf})`);
    const bus = new PciBus(number, bridge, hb, bridge.bus);
    bridge.subordinate = bus;
    bridge.bus.children.push(bus);
    bridge.config.write8(PCI_PRIMARY_BUS, bridge.bus.number);
    bridge.config.write8(PCI_SECONDARY_BUS, number);
    bridge.config.write8(PCI_SUBORDINATE_BUS, number);
    this.orderCache = null;
    return bus;
  }

  /** Fills in subordinate bus numbers (highest bus below each bridge) after building. */
  finalizeBusNumbers(): void {
    const visit = (bus: PciBus): number => {
      let max = bus.number;
      for (const d of bus.devices)
        if (d.subordinate) {
          const sub = visit(d.subordinate);
          d.config.write8(PCI_SUBORDINATE_BUS, sub);
          max = Math.max(max, sub);
        }
      return max;
    };
    for (const hb of this.hostBridges) visit(hb.rootBus);
  }

  findBus(domain: number, number: number): PciBus | undefined {
    for (const hb of this.hostBridges) {
      if (hb.domain !== domain) continue;
      const found = findBelow(hb.rootBus, number);
      if (found) return found;
    }
    return undefined;
  }

  /** Every function in Linux's scan/add order. */
  devices(): PciDev[] {
    if (this.orderCache) return this.orderCache;
    const out: PciDev[] = [];
    const visit = (bus: PciBus) => {
      for (const d of bus.devices) out.push(d);
      for (const d of bus.devices) if (d.subordinate) visit(d.subordinate);
    };
    for (const hb of this.hostBridges) visit(hb.rootBus);
    // SR-IOV VFs are added after the devices present at boot (kernel-semantics §11.3).
    const boot = out.filter((d) => !d.isVirtfn);
    const vfs = out.filter((d) => d.isVirtfn);
    this.orderCache = [...boot, ...vfs];
    return this.orderCache;
  }

  /** Functions that can be DMA peers: endpoints and RCiEPs (not bridges, not host-bridge functions). */
  endpoints(): PciDev[] {
    return this.devices().filter((d) => d.kind === "endpoint" || d.kind === "rciep");
  }

  find(bdf: string): PciDev | undefined {
    try {
      return this.byBdf.get(normalizeBdf(bdf));
    } catch {
      return undefined;
    }
  }

  /** Like {@link find} but an unknown or malformed BDF is bad input. */
  get(bdf: string): PciDev {
    const key = normalizeBdf(bdf);
    const d = this.byBdf.get(key);
    if (!d) throw new InputError(`no PCI function ${key} on machine ${this.name || "(unnamed)"}`);
    return d;
  }

  /**
   * `pci_upstream_bridge(dev)`: a VF is replaced by its PF; null on a root bus, else the bridge
   * that owns the bus (kernel-semantics §1.3).
   */
  static upstreamBridge(dev: PciDev): PciDev | null {
    const d = dev.isVirtfn && dev.physfn ? dev.physfn : dev;
    return d.bus.self;
  }

  /** The chain of bridges above `dev` up to the root bus (nearest first). */
  static pathToRoot(dev: PciDev): PciDev[] {
    const out: PciDev[] = [];
    for (let b = Fabric.upstreamBridge(dev); b; b = Fabric.upstreamBridge(b)) out.push(b);
    return out;
  }
}

export function formatBus(domain: number, bus: number): string {
  return `${domain.toString(16).padStart(4, "0")}:${bus.toString(16).padStart(2, "0")}`;
}
