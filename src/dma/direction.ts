/**
 * DMA-API constants (kernel-semantics §3, K-6): `enum dma_data_direction`, the attribute bit for
 * MMIO targets and the mapping-error sentinel.
 */

/** `enum dma_data_direction` (K-6). */
export const DMA_DATA_DIRECTION = {
  BIDIRECTIONAL: 0,
  TO_DEVICE: 1,
  FROM_DEVICE: 2,
  NONE: 3,
} as const;

export type DmaDataDirectionName = keyof typeof DMA_DATA_DIRECTION;
/** A direction value as the kernel passes it; any number may arrive from a caller. */
export type DmaDataDirection = number;

/** `valid_dma_direction`: BIDIRECTIONAL, TO_DEVICE or FROM_DEVICE. */
export function validDmaDirection(dir: DmaDataDirection): boolean {
  return (
    dir === DMA_DATA_DIRECTION.BIDIRECTIONAL ||
    dir === DMA_DATA_DIRECTION.TO_DEVICE ||
    dir === DMA_DATA_DIRECTION.FROM_DEVICE
  );
}

export function dmaDirectionName(dir: DmaDataDirection): string {
  const e = Object.entries(DMA_DATA_DIRECTION).find(([, v]) => v === dir);
  return e ? e[0] : `invalid(${dir})`;
}

/** `DMA_ATTR_MMIO`: the physical address is device memory (no struct page, no bounce, no CPU sync). */
export const DMA_ATTR_MMIO = 1 << 10;

/** `DMA_MAPPING_ERROR`: all ones in a 64-bit dma_addr_t. */
export const DMA_MAPPING_ERROR = (1n << 64n) - 1n;

/** `DMA_BIT_MASK(n)`. */
export function dmaBitMask(n: number): bigint {
  return n >= 64 ? (1n << 64n) - 1n : (1n << BigInt(n)) - 1n;
}
