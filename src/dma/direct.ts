/**
 * dma-direct for MMIO (kernel-semantics §3): a device without a translating IOMMU sees CPU
 * physical addresses. With DMA_ATTR_MMIO the address is returned unchanged — no host-bridge bus
 * offset is applied (K-77). An address range beyond the device's DMA mask fails the mapping with
 * a one-time WARN (`warn:dma-direct-overflow`); `dma_mapping_error` then gives -ENOMEM (K-80).
 *
 * Not modelled: swiotlb bouncing (a non-MMIO mapping beyond the mask is treated like an MMIO one)
 * and the bus DMA limit (only the device mask counts).
 */
import { type Diagnostics, warnOnce } from "../core/diagnostics.js";
import { hex, u64 } from "../core/hex.js";
import { type DmaDevice, deviceName, dmaMaskOf } from "./device.js";
import { DMA_MAPPING_ERROR } from "./direction.js";

/** `dma_capable(dev, addr, size)`: the last byte is within the mask (u64 arithmetic). */
export function dmaCapable(mask: bigint, addr: bigint, size: bigint): boolean {
  if (addr === DMA_MAPPING_ERROR) return false;
  return u64(addr + size - 1n) <= mask;
}

/** `dma_direct_map_phys` for MMIO: the physical address, or DMA_MAPPING_ERROR (with a one-time WARN). */
export function dmaDirectMapPhys(dev: DmaDevice, phys: bigint, size: bigint, diag: Diagnostics): bigint {
  const mask = dmaMaskOf(dev);
  if (!dmaCapable(mask, phys, size)) {
    warnOnce(
      diag,
      "dma-direct-overflow",
      `${deviceName(dev)}: DMA addr ${hex(phys)}+${size} overflow (mask ${hex(mask)})`,
    );
    return DMA_MAPPING_ERROR;
  }
  return phys;
}
