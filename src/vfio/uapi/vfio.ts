/**
 * The VFIO uAPI as exact binary layouts (include/uapi/linux/vfio.h; kernel-semantics §6.1, §6.2,
 * §7.1, §12.5). Encoders produce the bytes a C program passes; decoders read them back. The model
 * reads the same bytes through {@link UserBuffer}, so a short buffer faults where the kernel's copy
 * would.
 */

const VFIO_TYPE = 0x3b; // ';'
const VFIO_BASE = 100;
const io = (n: number) => (VFIO_TYPE << 8) | (VFIO_BASE + n);

export const VFIO_IOCTL = {
  VFIO_GET_API_VERSION: io(0),
  VFIO_CHECK_EXTENSION: io(1),
  VFIO_SET_IOMMU: io(2),
  VFIO_GROUP_GET_STATUS: io(3),
  VFIO_GROUP_SET_CONTAINER: io(4),
  VFIO_GROUP_GET_DEVICE_FD: io(6),
  VFIO_DEVICE_GET_INFO: io(7),
  VFIO_DEVICE_GET_REGION_INFO: io(8),
  VFIO_DEVICE_GET_IRQ_INFO: io(9),
  VFIO_DEVICE_SET_IRQS: io(10),
  VFIO_DEVICE_RESET: io(11),
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: io(12),
  VFIO_DEVICE_PCI_HOT_RESET: io(13),
  VFIO_DEVICE_IOEVENTFD: io(16),
  VFIO_DEVICE_FEATURE: io(17),
  VFIO_DEVICE_BIND_IOMMUFD: io(18),
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: io(19),
  VFIO_DEVICE_DETACH_IOMMUFD_PT: io(20),
} as const;

export type VfioIoctlName = keyof typeof VFIO_IOCTL;

export const VFIO_DEVICE_FEATURE_MASK = 0xffff;
export const VFIO_DEVICE_FEATURE_GET = 1 << 16;
export const VFIO_DEVICE_FEATURE_SET = 1 << 17;
export const VFIO_DEVICE_FEATURE_PROBE = 1 << 18;

export const VFIO_FEATURE = {
  PCI_VF_TOKEN: 0,
  MIGRATION: 1,
  MIG_DEVICE_STATE: 2,
  LOW_POWER_ENTRY: 3,
  LOW_POWER_ENTRY_WITH_WAKEUP: 4,
  LOW_POWER_EXIT: 5,
  DMA_LOGGING_START: 6,
  DMA_LOGGING_STOP: 7,
  DMA_LOGGING_REPORT: 8,
  MIG_DATA_SIZE: 9,
  BUS_MASTER: 10,
  DMA_BUF: 11,
  /** Proposed (tphFeature variant, §12.5). */
  DMA_BUF_TPH: 13,
} as const;

/** Region indexes of vfio-pci (§6.6). */
export const VFIO_PCI_REGION = { BAR0: 0, BAR5: 5, ROM: 6, CONFIG: 7, VGA: 8, NUM_REGIONS: 9 } as const;
export const VFIO_PCI_OFFSET_SHIFT = 40n;
export const vfioRegionOffset = (index: number): bigint => BigInt(index) << VFIO_PCI_OFFSET_SHIFT;

/** `struct vfio_device_feature` header. */
export const FEATURE_HEADER_SIZE = 8;
/** `struct vfio_device_feature_dma_buf` fixed part and one `vfio_region_dma_range`. */
export const DMA_BUF_FIXED_SIZE = 16;
export const DMA_RANGE_SIZE = 16;

export interface DmaRange {
  offset: bigint;
  length: bigint;
}

export interface FeatureDmaBufArgs {
  /** Overrides the computed argsz (to build malformed requests). */
  argsz?: number;
  flags?: number;
  regionIndex: number;
  openFlags?: number;
  dmaBufFlags?: number;
  /** Overrides the range count written into the struct (ranges actually present stay as given). */
  nrRanges?: number;
  ranges: DmaRange[];
}

/** The ioctl argument of VFIO_DEVICE_FEATURE(GET | DMA_BUF) — K-3: 2 ranges → 56 bytes, argsz 56, flags 0x1000B. */
export function encodeFeatureDmaBuf(a: FeatureDmaBufArgs): Uint8Array {
  const size = FEATURE_HEADER_SIZE + DMA_BUF_FIXED_SIZE + DMA_RANGE_SIZE * a.ranges.length;
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  v.setUint32(0, a.argsz ?? size, true);
  v.setUint32(4, a.flags ?? VFIO_DEVICE_FEATURE_GET | VFIO_FEATURE.DMA_BUF, true);
  v.setUint32(8, a.regionIndex >>> 0, true);
  v.setUint32(12, (a.openFlags ?? 0) >>> 0, true);
  v.setUint32(16, (a.dmaBufFlags ?? 0) >>> 0, true);
  v.setUint32(20, (a.nrRanges ?? a.ranges.length) >>> 0, true);
  for (const [i, r] of a.ranges.entries()) {
    v.setBigUint64(24 + 16 * i, BigInt.asUintN(64, r.offset), true);
    v.setBigUint64(32 + 16 * i, BigInt.asUintN(64, r.length), true);
  }
  return b;
}

/** A bare feature header (argsz, flags) optionally followed by `data`. */
export function encodeFeature(
  flags: number,
  data: Uint8Array = new Uint8Array(0),
  argsz?: number,
): Uint8Array {
  const b = new Uint8Array(FEATURE_HEADER_SIZE + data.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, argsz ?? b.length, true);
  v.setUint32(4, flags >>> 0, true);
  b.set(data, FEATURE_HEADER_SIZE);
  return b;
}

export interface DecodedFeatureDmaBuf {
  argsz: number;
  flags: number;
  regionIndex: number;
  openFlags: number;
  dmaBufFlags: number;
  nrRanges: number;
  ranges: DmaRange[];
}

export function decodeFeatureDmaBuf(bytes: Uint8Array): DecodedFeatureDmaBuf {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nr = v.getUint32(20, true);
  const ranges: DmaRange[] = [];
  for (let i = 0; i < nr && 24 + 16 * (i + 1) <= bytes.length; i++)
    ranges.push({ offset: v.getBigUint64(24 + 16 * i, true), length: v.getBigUint64(32 + 16 * i, true) });
  return {
    argsz: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    regionIndex: v.getUint32(8, true),
    openFlags: v.getUint32(12, true),
    dmaBufFlags: v.getUint32(16, true),
    nrRanges: nr,
    ranges,
  };
}

/** `struct vfio_region_info` (32 bytes): argsz, flags, index, cap_offset, size, offset. */
export const REGION_INFO_SIZE = 32;
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;

export function encodeRegionInfoQuery(index: number): Uint8Array {
  const b = new Uint8Array(REGION_INFO_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, REGION_INFO_SIZE, true);
  v.setUint32(8, index, true);
  return b;
}

export interface RegionInfo {
  argsz: number;
  flags: number;
  index: number;
  capOffset: number;
  size: bigint;
  offset: bigint;
}

export function decodeRegionInfo(bytes: Uint8Array): RegionInfo {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    argsz: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    index: v.getUint32(8, true),
    capOffset: v.getUint32(12, true),
    size: v.getBigUint64(16, true),
    offset: v.getBigUint64(24, true),
  };
}

/** `struct vfio_device_low_power_entry_with_wakeup`: s32 wakeup_eventfd, u32 reserved. */
export function encodeLowPowerWakeup(eventfd: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setInt32(0, eventfd, true);
  return b;
}

/** `struct vfio_pci_hot_reset`: argsz, flags, count, then s32 group/device fds. */
export function encodeHotReset(fds: number[], argsz?: number): Uint8Array {
  const b = new Uint8Array(12 + 4 * fds.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, argsz ?? b.length, true);
  v.setUint32(8, fds.length, true);
  for (const [i, fd] of fds.entries()) v.setInt32(12 + 4 * i, fd, true);
  return b;
}
