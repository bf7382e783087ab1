/**
 * The machine's IOMMU: one default domain per IOMMU group for the devices behind it.
 *
 * Group membership comes from a function given by the caller (normally the one built on
 * `computeIommuGroups(fabric)`), read once per device when it is first seen — like the kernel,
 * which forms groups at probe time and does not regroup on later ACS changes.
 *
 * Devices with `behindIommu === false` (or without a group) have no domain: they use dma-direct.
 * A DMA-API domain reserves, as `iommu_dma_init_domain` does, the x86 interrupt window
 * 0xFEE0_0000–0xFEEF_FFFF (the VT-d/AMD-Vi IOMMU_RESV_MSI region) and the bus-address ranges of
 * the host bridge's memory windows (`iova_reserve_pci_windows`), so an IOVA never aliases a peer's BAR.
 */
import type { FaultInjector } from "../core/fault-inject.js";
import type { PciDev } from "../pci/device.js";
import type { Fabric } from "../pci/fabric.js";
import {
  type DomainType,
  type IommuAccess,
  IommuDomain,
  type NoPermMapPolicy,
  type TranslateResult,
} from "./domain.js";

export interface ReservedRegion {
  start: bigint;
  /** Inclusive. */
  end: bigint;
  kind: string;
}

/** The x86 interrupt-address window every Intel/AMD IOMMU reports as reserved (IOMMU_RESV_MSI). */
export const X86_MSI_REGION: ReservedRegion = { start: 0xfee0_0000n, end: 0xfeef_ffffn, kind: "msi" };

export interface IommuOptions {
  /** Default domain type for every group: 'DMA' (translated, the default) or 'identity' (iommu=pt). */
  defaultDomainType?: "DMA" | "identity";
  /** Aperture of every domain (inclusive end). Default [0, 2^48 - 1]. */
  geometry?: { start: bigint; end: bigint };
  /** Lowest IOVA the DMA-API allocator uses. Default 0x1000. */
  iovaStart?: bigint;
  /** Reserved IOVA regions of every DMA domain. Default: {@link X86_MSI_REGION}. */
  reservedRegions?: ReservedRegion[];
  /** Reserve the host bridge's memory windows (as bus addresses) in DMA domains. Default true. */
  reservePciWindows?: boolean;
  /** Knob `iommuNoPermMap` (kernel-semantics §3). Default 'einval'. */
  iommuNoPermMap?: NoPermMapPolicy;
  faults?: FaultInjector;
}

export type GroupIdOf = (dev: PciDev) => number | null | undefined;

export class Iommu {
  private readonly groupIds = new Map<PciDev, number | null>();
  private readonly defaults = new Map<number, IommuDomain>();
  private readonly attached = new Map<number, IommuDomain>();
  private readonly all: IommuDomain[] = [];
  private nextId = 1;

  constructor(
    readonly fabric: Fabric,
    private readonly groupIdFn: GroupIdOf,
    readonly opts: IommuOptions = {},
  ) {
    for (const d of fabric.devices()) this.groupIdOf(d);
  }

  /** The device's IOMMU group id, or null when it is not behind the IOMMU. */
  groupIdOf(dev: PciDev): number | null {
    let id = this.groupIds.get(dev);
    if (id === undefined) {
      id = dev.behindIommu ? (this.groupIdFn(dev) ?? null) : null;
      this.groupIds.set(dev, id);
    }
    return id;
  }

  /** Devices sharing the group of `dev` (those seen so far), in scan order. */
  groupMembers(dev: PciDev): PciDev[] {
    const id = this.groupIdOf(dev);
    if (id === null) return [];
    return this.fabric.devices().filter((d) => this.groupIdOf(d) === id);
  }

  /**
   * The group's default domain — the one the DMA API maps into (`iommu_get_dma_domain`), even
   * while another domain is attached. Null for dma-direct devices.
   */
  defaultDomainOf(dev: PciDev): IommuDomain | null {
    const id = this.groupIdOf(dev);
    if (id === null) return null;
    let d = this.defaults.get(id);
    if (!d) {
      d = this.newDomain(this.opts.defaultDomainType ?? "DMA");
      if (d.iovad && (this.opts.reservePciWindows ?? true))
        for (const w of dev.hostBridge.windows) {
          const bus = w.cpuBase - w.busOffset;
          if (w.size > 0n) d.iovad.reserveBytes(bus, bus + w.size - 1n);
        }
      this.defaults.set(id, d);
    }
    return d;
  }

  /** The domain currently attached to the device's group (the default one unless replaced). */
  domainOf(dev: PciDev): IommuDomain | null {
    const id = this.groupIdOf(dev);
    if (id === null) return null;
    return this.attached.get(id) ?? this.defaultDomainOf(dev);
  }

  /** True when DMA mappings of `dev` go through dma-iommu (`use_dma_iommu`). */
  usesDmaIommu(dev: PciDev): boolean {
    return this.defaultDomainOf(dev)?.type === "DMA";
  }

  /** A new domain owned by a user of the IOMMU API (VFIO, iommufd): usually 'unmanaged' or 'blocked'. */
  allocDomain(type: DomainType): IommuDomain {
    return this.newDomain(type);
  }

  /** Attaches `domain` to the whole group of `dev`; returns the domain it replaced. Null for dma-direct devices. */
  attachGroup(dev: PciDev, domain: IommuDomain): IommuDomain | null {
    const id = this.groupIdOf(dev);
    if (id === null) return null;
    const prev = this.domainOf(dev);
    this.attached.set(id, domain);
    return prev;
  }

  /** Re-attaches the group's default domain. */
  detachGroup(dev: PciDev): void {
    const id = this.groupIdOf(dev);
    if (id !== null) this.attached.delete(id);
  }

  /** What an access by `dev` to bus/IOVA address `iova` reaches. Without an IOMMU: the address itself. */
  translate(dev: PciDev, iova: bigint, access: IommuAccess): TranslateResult {
    const d = this.domainOf(dev);
    if (!d) return { ok: true, phys: iova, prot: { read: true, write: true, mmio: false } };
    return d.translate(iova, access);
  }

  /** Every domain created so far (default and allocated). */
  domains(): IommuDomain[] {
    return [...this.all];
  }

  /** Live IOVA allocations and mapped extents over all domains — zero when nothing leaked. */
  liveCounts(): { iovaAllocations: number; mappings: number } {
    let iovaAllocations = 0;
    let mappings = 0;
    for (const d of this.all) {
      iovaAllocations += d.iovad?.liveCount ?? 0;
      mappings += d.liveMappings;
    }
    return { iovaAllocations, mappings };
  }

  private newDomain(type: DomainType): IommuDomain {
    const d = new IommuDomain(type, {
      id: this.nextId++,
      geometry: this.opts.geometry,
      iovaStart: this.opts.iovaStart,
      iommuNoPermMap: this.opts.iommuNoPermMap,
      faults: this.opts.faults,
    });
    if (d.iovad)
      for (const r of this.opts.reservedRegions ?? [X86_MSI_REGION]) d.iovad.reserveBytes(r.start, r.end);
    this.all.push(d);
    return d;
  }
}
