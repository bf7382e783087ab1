/**
 * The DMA mapping API of one machine (kernel/dma/mapping.c): dispatches each call to dma-direct or
 * dma-iommu by the device (kernel-semantics §3). Names follow the kernel: `dmaMapPhys`,
 * `dmaIovaTryAlloc`, … Return conventions are the kernel's (0 / -errno, DMA_MAPPING_ERROR,
 * booleans) because the callers' logic depends on them; a caller bug the kernel catches with
 * BUG_ON is a thrown {@link KernelBug}.
 */
import type { Diagnostics } from "../core/diagnostics.js";
import { ERRNO } from "../core/errno.js";
import { KernelBug } from "../core/errors.js";
import { type FaultInjector, NO_FAULTS } from "../core/fault-inject.js";
import type { Iommu } from "../iommu/iommu.js";
import type { DmaDevice } from "./device.js";
import { dmaDirectMapPhys } from "./direct.js";
import {
  DMA_MAPPING_ERROR,
  type DmaDataDirection,
  dmaDirectionName,
  validDmaDirection,
} from "./direction.js";
import { DmaIommu, type DmaIovaState } from "./dma-iommu.js";

export interface DmaApiOptions {
  /** Failure injection (site `iommu_dma_alloc_iova`); IOMMU sites are configured on the {@link Iommu}. */
  faults?: FaultInjector;
}

export class DmaApi {
  readonly iommuDma: DmaIommu | null;

  /**
   * @param iommu the machine's IOMMU, or null when it has none (every device uses dma-direct)
   */
  constructor(
    readonly iommu: Iommu | null,
    readonly diag: Diagnostics,
    opts: DmaApiOptions = {},
  ) {
    this.iommuDma = iommu ? new DmaIommu(iommu, diag, opts.faults ?? NO_FAULTS) : null;
  }

  /** `use_dma_iommu(dev)`: the device's default domain is a DMA-API domain. */
  usesDmaIommu(dev: DmaDevice): boolean {
    return this.iommuDma?.usesDmaIommu(dev) ?? false;
  }

  /** `dma_map_phys(dev, phys, size, dir, attrs)`: BUG on an invalid direction (NONE included, K-84). */
  dmaMapPhys(dev: DmaDevice, phys: bigint, size: bigint, dir: DmaDataDirection, attrs: number): bigint {
    if (!validDmaDirection(dir))
      throw new KernelBug("dma_map_phys", `invalid DMA direction ${dmaDirectionName(dir)}`);
    if (this.iommuDma?.usesDmaIommu(dev)) return this.iommuDma.mapPhys(dev, phys, size, dir, attrs);
    return dmaDirectMapPhys(dev, phys, size, this.diag);
  }

  /** `dma_unmap_phys`: same direction assertion; dma-direct MMIO mappings need no undo. */
  dmaUnmapPhys(dev: DmaDevice, addr: bigint, size: bigint, dir: DmaDataDirection, _attrs: number): void {
    if (!validDmaDirection(dir))
      throw new KernelBug("dma_unmap_phys", `invalid DMA direction ${dmaDirectionName(dir)}`);
    if (this.iommuDma?.usesDmaIommu(dev)) this.iommuDma.unmapPhys(dev, addr, size);
  }

  /** `dma_mapping_error`: -ENOMEM for DMA_MAPPING_ERROR, else 0. */
  dmaMappingError(_dev: DmaDevice, addr: bigint): number {
    return addr === DMA_MAPPING_ERROR ? -ERRNO.ENOMEM : 0;
  }

  /** `dma_iova_try_alloc`: false ("not used") for dma-direct devices, size 0 / bit 63 (WARN) or exhaustion. */
  dmaIovaTryAlloc(dev: DmaDevice, state: DmaIovaState, phys: bigint, size: bigint): boolean {
    if (!this.iommuDma) {
      state.addr = 0n;
      state.size = 0n;
      return false;
    }
    return this.iommuDma.tryAlloc(dev, state, phys, size);
  }

  dmaIovaLink(
    dev: DmaDevice,
    state: DmaIovaState,
    phys: bigint,
    offset: bigint,
    size: bigint,
    dir: DmaDataDirection,
    attrs: number,
  ): number {
    return this.needIommu("dma_iova_link").link(dev, state, phys, offset, size, dir, attrs);
  }

  dmaIovaSync(dev: DmaDevice, state: DmaIovaState, offset: bigint, size: bigint): number {
    return this.needIommu("dma_iova_sync").sync(dev, state, offset, size);
  }

  dmaIovaUnlink(
    dev: DmaDevice,
    state: DmaIovaState,
    offset: bigint,
    size: bigint,
    _dir: DmaDataDirection,
    _attrs: number,
  ): void {
    this.needIommu("dma_iova_unlink").unlink(dev, state, offset, size, false);
  }

  dmaIovaFree(dev: DmaDevice, state: DmaIovaState): void {
    this.needIommu("dma_iova_free").free(dev, state);
  }

  /** `dma_iova_destroy(dev, state, mappedLen, dir, attrs)`. */
  dmaIovaDestroy(
    dev: DmaDevice,
    state: DmaIovaState,
    mappedLen: bigint,
    _dir: DmaDataDirection,
    _attrs: number,
  ): void {
    this.needIommu("dma_iova_destroy").destroy(dev, state, mappedLen);
  }

  private needIommu(site: string): DmaIommu {
    if (!this.iommuDma) throw new KernelBug(site, "IOVA-state call on a machine without an IOMMU");
    return this.iommuDma;
  }
}
