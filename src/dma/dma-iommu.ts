/**
 * dma-iommu (drivers/iommu/dma-iommu.c as of 6.19): the DMA API for a device whose default domain
 * is a DMA-API domain. Two families of calls (kernel-semantics §3):
 * - per mapping: `dma_map_phys` allocates an IOVA for each call and maps it;
 * - IOVA-state: `dma_iova_try_alloc` reserves one contiguous IOVA range, `dma_iova_link` maps
 *   pieces of it, `dma_iova_sync` flushes, `dma_iova_destroy` unmaps and frees.
 *
 * IOVA allocation follows `iommu_dma_alloc_iova`: the length is page-rounded, lengths below 32
 * pages are rounded up to a power of two, the range is aligned to the power of two at or above its
 * length, and a PCI device first tries below 4 GiB; the first failure there switches that device
 * to its full mask for good (recorded as `notice:dma-iommu-64bit`).
 *
 * Model-level finding: when an IOVA range is freed while pages inside it are still mapped, the
 * event `leak:iommu-mapping` is recorded (the kernel cannot notice this).
 */
import { type Diagnostics, warnOnce } from "../core/diagnostics.js";
import { ERRNO } from "../core/errno.js";
import { KernelBug } from "../core/errors.js";
import { type FaultInjector, NO_FAULTS } from "../core/fault-inject.js";
import { hex } from "../core/hex.js";
import type { IommuDomain, IommuProt } from "../iommu/domain.js";
import { PROT_NONE } from "../iommu/domain.js";
import type { Iommu } from "../iommu/iommu.js";
import { roundIovaLen } from "../iommu/iova.js";
import type { PciDev } from "../pci/device.js";
import { type DmaDevice, deviceName, dmaMaskOf, isPciDev } from "./device.js";
import { DMA_ATTR_MMIO, DMA_DATA_DIRECTION, DMA_MAPPING_ERROR, type DmaDataDirection } from "./direction.js";

/** `DMA_IOVA_USE_SWIOTLB`: bit 63 of `__size`, internal to dma-iommu. */
export const DMA_IOVA_USE_SWIOTLB = 1n << 63n;

/** `struct dma_iova_state`: base IOVA and `__size` (0 = "IOVA not used"). */
export interface DmaIovaState {
  addr: bigint;
  size: bigint;
}

export function newDmaIovaState(): DmaIovaState {
  return { addr: 0n, size: 0n };
}

/** `dma_use_iova(state)`. */
export function dmaUseIova(state: DmaIovaState): boolean {
  return state.size !== 0n;
}

/** `dma_iova_size(state)`. */
export function dmaIovaSize(state: DmaIovaState): bigint {
  return state.size & ~DMA_IOVA_USE_SWIOTLB;
}

/**
 * `dma_info_to_prot`: TO_DEVICE -> read, FROM_DEVICE -> write, BIDIRECTIONAL -> both, plus MMIO
 * for DMA_ATTR_MMIO; any other direction (NONE) -> an empty permission, not even MMIO (§3).
 */
export function dmaInfoToProt(dir: DmaDataDirection, attrs: number): IommuProt {
  const mmio = (attrs & DMA_ATTR_MMIO) !== 0;
  switch (dir) {
    case DMA_DATA_DIRECTION.BIDIRECTIONAL:
      return { read: true, write: true, mmio };
    case DMA_DATA_DIRECTION.TO_DEVICE:
      return { read: true, write: false, mmio };
    case DMA_DATA_DIRECTION.FROM_DEVICE:
      return { read: false, write: true, mmio };
    default:
      return { ...PROT_NONE };
  }
}

const GRANULE = 4096n;
const GRANULE_MASK = GRANULE - 1n;
const U32_MAX_ADDR = (1n << 32n) - 1n;

function iovaAlign(size: bigint): bigint {
  return (size + GRANULE_MASK) & ~GRANULE_MASK;
}

function bitsPer(n: bigint): number {
  return n.toString(2).length;
}

export class DmaIommu {
  /** `dev->iommu->pci_32bit_workaround`, true until a 32-bit attempt fails. */
  private readonly pci32bitWorkaround = new Map<PciDev, boolean>();

  constructor(
    readonly iommu: Iommu,
    private readonly diag: Diagnostics,
    private readonly faults: FaultInjector = NO_FAULTS,
  ) {}

  /** `use_dma_iommu(dev)`. */
  usesDmaIommu(dev: DmaDevice): dev is PciDev {
    return isPciDev(dev) && this.iommu.usesDmaIommu(dev);
  }

  /** `iommu_get_dma_domain(dev)`; a call on a dma-direct device is a caller bug. */
  dmaDomain(dev: DmaDevice, site: string): IommuDomain {
    const d = isPciDev(dev) ? this.iommu.defaultDomainOf(dev) : null;
    if (!d?.iovad) throw new KernelBug(site, `${deviceName(dev)} does not use dma-iommu`);
    return d;
  }

  /** `iommu_dma_alloc_iova`: an IOVA of `size` bytes (page multiple) at or below `dmaLimit`; 0 on failure. */
  allocIova(domain: IommuDomain, dev: PciDev, size: bigint, dmaLimit: bigint): bigint {
    const iovad = domain.iovad!;
    if (this.faults.check("iommu_dma_alloc_iova")) return 0n;
    const len = roundIovaLen(size >> iovad.shift);
    let limit = dmaLimit;
    if (limit > domain.geometry.end) limit = domain.geometry.end;
    if (limit > U32_MAX_ADDR && (this.pci32bitWorkaround.get(dev) ?? true)) {
      const pfn = iovad.alloc(len, U32_MAX_ADDR >> iovad.shift);
      if (pfn !== null) return pfn << iovad.shift;
      this.pci32bitWorkaround.set(dev, false);
      this.diag.record("notice:dma-iommu-64bit", `${dev.bdf}: Using ${bitsPer(limit)}-bit DMA addresses`);
    }
    const pfn = iovad.alloc(len, limit >> iovad.shift);
    return pfn === null ? 0n : pfn << iovad.shift;
  }

  /** `iommu_dma_free_iova`: releases the allocation containing `addr`. */
  freeIova(domain: IommuDomain, addr: bigint): void {
    const iovad = domain.iovad!;
    const r = iovad.free(iovad.pfnOf(addr));
    if (!r) return;
    const start = r.pfnLo << iovad.shift;
    const len = (r.pfnHi - r.pfnLo + 1n) << iovad.shift;
    const left = domain.mappedBytesIn(start, len);
    if (left > 0n)
      this.diag.record(
        "leak:iommu-mapping",
        `IOVA ${hex(start)}+${hex(len)} freed with ${hex(left)} bytes still mapped`,
      );
  }

  /** `dma_iova_try_alloc(dev, state, phys, size)`: false = "IOVA not used" (state.size 0). */
  tryAlloc(dev: DmaDevice, state: DmaIovaState, phys: bigint, size: bigint): boolean {
    state.addr = 0n;
    state.size = 0n;
    if (!this.usesDmaIommu(dev)) return false;
    const domain = this.dmaDomain(dev, "dma_iova_try_alloc");
    const iovaOff = phys & GRANULE_MASK;
    if (size === 0n) {
      warnOnce(this.diag, "dma-iova-try-alloc-size-zero");
      return false;
    }
    if (size & DMA_IOVA_USE_SWIOTLB) {
      warnOnce(this.diag, "dma-iova-try-alloc-swiotlb-bit", `size ${hex(size)}`);
      return false;
    }
    const addr = this.allocIova(domain, dev, iovaAlign(size + iovaOff), dmaMaskOf(dev));
    if (addr === 0n) return false;
    state.addr = addr + iovaOff;
    state.size = size;
    return true;
  }

  /** `dma_iova_link`: maps [state.addr + offset, +size) to `phys`; 0 or -errno. No direction check (§3). */
  link(
    dev: DmaDevice,
    state: DmaIovaState,
    phys: bigint,
    offset: bigint,
    size: bigint,
    dir: DmaDataDirection,
    attrs: number,
  ): number {
    const domain = this.dmaDomain(dev, "dma_iova_link");
    const pad = phys & GRANULE_MASK;
    if (pad !== 0n && offset > 0n) {
      warnOnce(this.diag, "dma-iova-link-unaligned", `phys ${hex(phys)} offset ${hex(offset)}`);
      return -ERRNO.EIO;
    }
    if (state.size & DMA_IOVA_USE_SWIOTLB && attrs & DMA_ATTR_MMIO) {
      warnOnce(this.diag, "dma-iova-link-swiotlb-mmio");
      return -ERRNO.EPERM;
    }
    return domain.map(
      state.addr + offset - pad,
      phys - pad,
      iovaAlign(size + pad),
      dmaInfoToProt(dir, attrs),
    );
  }

  /** `dma_iova_sync`: 0 or -errno. */
  sync(dev: DmaDevice, state: DmaIovaState, offset: bigint, size: bigint): number {
    const domain = this.dmaDomain(dev, "dma_iova_sync");
    const addr = state.addr + offset;
    const pad = addr & GRANULE_MASK;
    return domain.syncMap(addr - pad, iovaAlign(size + pad));
  }

  /** `dma_iova_unlink` (freeIova false) and the unmapping half of `dma_iova_destroy`. */
  unlink(dev: DmaDevice, state: DmaIovaState, offset: bigint, size: bigint, freeIova: boolean): void {
    const domain = this.dmaDomain(dev, "dma_iova_unlink");
    let addr = state.addr + offset;
    const pad = addr & GRANULE_MASK;
    const len = iovaAlign(size + pad);
    addr -= pad;
    const unmapped = domain.unmap(addr, len);
    if (unmapped !== len)
      this.diag.warn("iommu-dma-iova-unlink-size", `unmapped ${hex(unmapped)} of ${hex(len)}`);
    if (freeIova) this.freeIova(domain, addr);
  }

  /** `dma_iova_free`: releases the IOVA range without unmapping. */
  free(dev: DmaDevice, state: DmaIovaState): void {
    const domain = this.dmaDomain(dev, "dma_iova_free");
    const pad = state.addr & GRANULE_MASK;
    this.freeIova(domain, state.addr - pad);
  }

  /** `dma_iova_destroy`: unlink `mappedLen` bytes and free, or only free when nothing was mapped. */
  destroy(dev: DmaDevice, state: DmaIovaState, mappedLen: bigint): void {
    if (mappedLen !== 0n) this.unlink(dev, state, 0n, mappedLen, true);
    else this.free(dev, state);
  }

  /** `iommu_dma_map_phys` for MMIO: a fresh IOVA mapped to `phys`, or DMA_MAPPING_ERROR. */
  mapPhys(dev: PciDev, phys: bigint, size: bigint, dir: DmaDataDirection, attrs: number): bigint {
    const domain = this.dmaDomain(dev, "iommu_dma_map_phys");
    const off = phys & GRANULE_MASK;
    const len = iovaAlign(size + off);
    const iova = this.allocIova(domain, dev, len, dmaMaskOf(dev));
    if (iova === 0n) return DMA_MAPPING_ERROR;
    if (domain.map(iova, phys - off, len, dmaInfoToProt(dir, attrs)) !== 0) {
      this.freeIova(domain, iova);
      return DMA_MAPPING_ERROR;
    }
    return iova + off;
  }

  /** `__iommu_dma_unmap`: unmaps the page-rounded range (WARN when less was mapped) and frees its IOVA. */
  unmapPhys(dev: PciDev, addr: bigint, size: bigint): void {
    const domain = this.dmaDomain(dev, "iommu_dma_unmap_phys");
    const off = addr & GRANULE_MASK;
    const base = addr - off;
    const len = iovaAlign(size + off);
    const unmapped = domain.unmap(base, len);
    if (unmapped !== len)
      this.diag.warn("iommu-dma-unmap-size", `unmapped ${hex(unmapped)} of ${hex(len)} at ${hex(base)}`);
    this.freeIova(domain, base);
  }
}
