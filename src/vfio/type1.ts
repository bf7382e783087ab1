/**
 * The smallest faithful model of the legacy VFIO container path that the MMIO mapping selftest
 * (kernel-semantics §13.11, K-174 … K-176) exercises: mmap of a BAR through the device fd (a
 * `VM_IO | VM_PFNMAP` VMA), a type1 / type1v2 container with one group attached, and
 * VFIO_IOMMU_MAP_DMA / VFIO_IOMMU_UNMAP_DMA of user virtual addresses. Type1 pins RAM with GUP and
 * falls back to walking PFN maps (`follow_fault_pfn`), so an mmapped BAR maps.
 *
 * Not modelled: groups as objects (the container is bound to one device's group at creation),
 * VFIO_IOMMU_GET_INFO, dirty tracking, VADDR updates, locked-memory accounting, DMA limits.
 * The binary layouts of the map/unmap structs live here because iommufd's VFIO-compat mode
 * decodes the same bytes.
 */
import { KernelError } from "../core/errors.js";
import { KFile, type StructView, type UserBuffer } from "../core/file.js";
import { userMm } from "../core/mm.js";
import type { IommuDomain } from "../iommu/domain.js";
import type { Machine } from "../machine/machine.js";
import { IORESOURCE_MEM } from "../pci/device.js";
import type { VfioPciDevice } from "./vfio.js";

const io = (n: number) => (0x3b << 8) | (100 + n);

/** Container ioctls (also accepted by /dev/iommu in VFIO-compat mode). */
export const VFIO_CONTAINER_IOCTL = {
  VFIO_GET_API_VERSION: io(0),
  VFIO_CHECK_EXTENSION: io(1),
  VFIO_SET_IOMMU: io(2),
  VFIO_IOMMU_GET_INFO: io(12),
  /** Same number as VFIO_DEVICE_PCI_HOT_RESET (another fd type). */
  VFIO_IOMMU_MAP_DMA: io(13),
  VFIO_IOMMU_UNMAP_DMA: io(14),
} as const;

export const VFIO_API_VERSION = 0;
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_TYPE1_NESTING_IOMMU = 2;
export const VFIO_TYPE1v2_IOMMU = 3;
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_UNMAP_ALL = 9;
export const VFIO_UPDATE_VADDR = 10;

export const VFIO_DMA_MAP_FLAG_READ = 1;
export const VFIO_DMA_MAP_FLAG_WRITE = 2;
export const VFIO_DMA_MAP_FLAG_VADDR = 4;
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1;
export const VFIO_DMA_UNMAP_FLAG_ALL = 2;
export const VFIO_DMA_UNMAP_FLAG_VADDR = 4;

/** `struct vfio_iommu_type1_dma_map`: argsz 0, flags 4, vaddr 8, iova 16, size 24. */
export const DMA_MAP_SIZE = 32;
/** `struct vfio_iommu_type1_dma_unmap`: argsz 0, flags 4, iova 8, size 16. */
export const DMA_UNMAP_SIZE = 24;

export interface DmaMapArgs {
  argsz?: number;
  flags: number;
  vaddr: bigint;
  iova: bigint;
  size: bigint;
}

export interface DmaUnmapArgs {
  argsz?: number;
  flags?: number;
  iova: bigint;
  size: bigint;
}

export function encodeDmaMap(a: DmaMapArgs): Uint8Array {
  const b = new Uint8Array(DMA_MAP_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, a.argsz ?? DMA_MAP_SIZE, true);
  v.setUint32(4, a.flags >>> 0, true);
  v.setBigUint64(8, BigInt.asUintN(64, a.vaddr), true);
  v.setBigUint64(16, BigInt.asUintN(64, a.iova), true);
  v.setBigUint64(24, BigInt.asUintN(64, a.size), true);
  return b;
}

export function decodeDmaMap(v: StructView): Required<DmaMapArgs> {
  return {
    argsz: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    vaddr: v.getBigUint64(8, true),
    iova: v.getBigUint64(16, true),
    size: v.getBigUint64(24, true),
  };
}

export function encodeDmaUnmap(a: DmaUnmapArgs): Uint8Array {
  const b = new Uint8Array(DMA_UNMAP_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, a.argsz ?? DMA_UNMAP_SIZE, true);
  v.setUint32(4, (a.flags ?? 0) >>> 0, true);
  v.setBigUint64(8, BigInt.asUintN(64, a.iova), true);
  v.setBigUint64(16, BigInt.asUintN(64, a.size), true);
  return b;
}

export function decodeDmaUnmap(v: StructView): Required<DmaUnmapArgs> {
  return {
    argsz: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    iova: v.getBigUint64(8, true),
    size: v.getBigUint64(16, true),
  };
}

/**
 * The scalar argument of ioctls that take a value instead of a pointer (VFIO_SET_IOMMU,
 * VFIO_CHECK_EXTENSION): carried in the first bytes of the buffer, little endian (empty = 0).
 */
export function scalarArg(arg: UserBuffer): bigint {
  const b = arg.bytes ?? new Uint8Array(0);
  let v = 0n;
  for (let i = Math.min(b.length, 8) - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  return v;
}

export function encodeScalar(v: number | bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
  return b;
}

/**
 * `mmap` of a BAR region through the VFIO device fd: a PFN map of the BAR's physical range. Faults
 * (first touch, or a walker such as type1) fail while memory decode is disabled (SIGBUS).
 */
export function vfioPciMmap(
  m: Machine,
  deviceFd: number,
  bar: number,
  o: { offset?: bigint; length?: bigint; addr?: bigint } = {},
): bigint {
  const vdev = m.vfio.deviceOf(deviceFd);
  if (bar < 0 || bar > 5) throw new KernelError("EINVAL", `region ${bar} cannot be mmapped`);
  const r = vdev.pdev.resources[bar];
  if (!(r.flags & IORESOURCE_MEM) || r.len < 4096n)
    throw new KernelError("EINVAL", `BAR${bar} is not an mmappable memory BAR`);
  const offset = o.offset ?? 0n;
  const length = o.length ?? r.len - offset;
  if (offset % 4096n || length <= 0n || offset + length > r.len)
    throw new KernelError("EINVAL", `mmap of BAR${bar}: range outside the BAR or not page aligned`);
  const vma = userMm(m).mmap(length, {
    kind: "pfnmap",
    phys: r.start + offset,
    addr: o.addr,
    name: `${vdev.bdf} BAR${bar}`,
    fault: () => {
      if (!vdev.memoryEnabled) throw new KernelError("EFAULT", `${vdev.bdf}: BAR fault with memory disabled`);
    },
  });
  return vma.start;
}

interface Type1Dma {
  iova: bigint;
  size: bigint;
  vaddr: bigint;
}

/** `/dev/vfio/vfio` with the group of one VFIO device attached (VFIO_GROUP_SET_CONTAINER done). */
export class Type1Container {
  iommuType = 0;
  domain: IommuDomain | null = null;
  readonly dmas: Type1Dma[] = [];
  constructor(
    readonly m: Machine,
    readonly vdev: VfioPciDevice,
  ) {}

  ioctl(cmd: number, arg: UserBuffer): number {
    switch (cmd) {
      case VFIO_CONTAINER_IOCTL.VFIO_GET_API_VERSION:
        return VFIO_API_VERSION;
      case VFIO_CONTAINER_IOCTL.VFIO_CHECK_EXTENSION: {
        const ext = Number(scalarArg(arg));
        return ext === VFIO_TYPE1_IOMMU ||
          ext === VFIO_TYPE1v2_IOMMU ||
          ext === VFIO_UNMAP_ALL ||
          ext === VFIO_DMA_CC_IOMMU
          ? 1
          : 0;
      }
      case VFIO_CONTAINER_IOCTL.VFIO_SET_IOMMU:
        return this.setIommu(Number(scalarArg(arg)));
      case VFIO_CONTAINER_IOCTL.VFIO_IOMMU_MAP_DMA:
        return this.mapDma(arg);
      case VFIO_CONTAINER_IOCTL.VFIO_IOMMU_UNMAP_DMA:
        return this.unmapDma(arg);
      default:
        throw new KernelError("ENOTTY", `VFIO container: ioctl 0x${cmd.toString(16)} not modelled`);
    }
  }

  /** VFIO_SET_IOMMU: allocates the domain and attaches the group (`vfio_iommu_type1_attach_group`). */
  private setIommu(type: number): number {
    if (this.iommuType) throw new KernelError("EINVAL", "container already has an IOMMU driver");
    if (type !== VFIO_TYPE1_IOMMU && type !== VFIO_TYPE1v2_IOMMU)
      throw new KernelError("ENODEV", `no IOMMU driver for type ${type}`);
    if (this.m.iommu.groupIdOf(this.vdev.pdev) === null)
      throw new KernelError("EINVAL", `${this.vdev.bdf} has no IOMMU group`);
    this.domain = this.m.iommu.allocDomain("unmanaged");
    this.m.iommu.attachGroup(this.vdev.pdev, this.domain);
    this.iommuType = type;
    return 0;
  }

  /** `vfio_dma_do_map`. */
  private mapDma(arg: UserBuffer): number {
    const a = decodeDmaMap(arg.copyFromUser(0, DMA_MAP_SIZE, "struct vfio_iommu_type1_dma_map"));
    const known = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR;
    if (a.argsz < DMA_MAP_SIZE || a.flags & ~known) throw new KernelError("EINVAL", "argsz or flags");
    if (!this.domain) throw new KernelError("EINVAL", "no IOMMU driver set");
    const read = (a.flags & VFIO_DMA_MAP_FLAG_READ) !== 0;
    const write = (a.flags & VFIO_DMA_MAP_FLAG_WRITE) !== 0;
    if (a.flags & VFIO_DMA_MAP_FLAG_VADDR) throw new KernelError("EINVAL", "VADDR updates are not modelled");
    if (!read && !write) throw new KernelError("EINVAL", "neither READ nor WRITE");
    const pg = 4096n;
    if (a.size === 0n || (a.size | a.iova | a.vaddr) & (pg - 1n))
      throw new KernelError("EINVAL", "size, iova and vaddr must be page aligned and size non-zero");
    const max = (1n << 64n) - 1n;
    if (a.iova + a.size - 1n > max || a.vaddr + a.size - 1n > max)
      throw new KernelError("EINVAL", "range wraps");
    if (this.dmas.some((d) => d.iova < a.iova + a.size && a.iova < d.iova + d.size))
      throw new KernelError("EEXIST", "IOVA range already mapped");
    // vfio_pin_pages_remote: GUP first, PFN-map walk as the fallback (K-174)
    const mm = userMm(this.m);
    let runs: ReturnType<typeof mm.followPfns>;
    try {
      runs = mm.pinUserPages(a.vaddr, a.size);
    } catch (e) {
      if (!(e instanceof KernelError && e.errnoName === "EFAULT")) throw e;
      runs = mm.followPfns(a.vaddr, a.size);
    }
    let done = 0n;
    for (const r of runs) {
      const rc = this.domain.map(a.iova + (r.va - a.vaddr), r.phys, r.len, { read, write, mmio: false });
      if (rc < 0) {
        if (done) this.domain.unmap(a.iova, done);
        throw new KernelError("EFAULT", `iommu_map failed (${rc})`);
      }
      done += r.len;
    }
    this.dmas.push({ iova: a.iova, size: a.size, vaddr: a.vaddr });
    return 0;
  }

  /** `vfio_dma_do_unmap`: whole mappings inside the range; an empty range unmaps 0 bytes and succeeds. */
  private unmapDma(arg: UserBuffer): number {
    const a = decodeDmaUnmap(arg.copyFromUser(0, DMA_UNMAP_SIZE, "struct vfio_iommu_type1_dma_unmap"));
    const known = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR;
    if (a.argsz < DMA_UNMAP_SIZE || a.flags & ~known) throw new KernelError("EINVAL", "argsz or flags");
    if (a.flags & (VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR))
      throw new KernelError("EINVAL", "dirty bitmap and VADDR unmaps are not modelled");
    const all = (a.flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
    if (all && (a.iova || a.size)) throw new KernelError("EINVAL", "UNMAP_ALL with a range");
    if (!all && (a.size === 0n || (a.size | a.iova) & 4095n))
      throw new KernelError("EINVAL", "unaligned or empty range");
    const lo = all ? 0n : a.iova;
    const hi = all ? 1n << 64n : a.iova + a.size;
    if (this.iommuType === VFIO_TYPE1v2_IOMMU && !all) {
      // v2 refuses to cut a mapping at either end of the request
      if (
        this.dmas.some((d) => (d.iova < lo && d.iova + d.size > lo) || (d.iova < hi && d.iova + d.size > hi))
      )
        throw new KernelError("EINVAL", "range splits a mapping");
    }
    let unmapped = 0n;
    for (const d of [...this.dmas]) {
      if (d.iova >= lo && d.iova + d.size <= hi) {
        this.domain?.unmap(d.iova, d.size);
        this.dmas.splice(this.dmas.indexOf(d), 1);
        unmapped += d.size;
      }
    }
    const out = encodeDmaUnmap({ argsz: a.argsz, flags: a.flags, iova: a.iova, size: unmapped });
    arg.copyToUser(0, out, "struct vfio_iommu_type1_dma_unmap");
    return 0;
  }

  release(): void {
    if (this.domain) {
      for (const d of this.dmas) this.domain.unmap(d.iova, d.size);
      this.dmas.length = 0;
      this.m.iommu.detachGroup(this.vdev.pdev);
    }
  }
}

/**
 * Opens `/dev/vfio/vfio` and attaches the group of the VFIO device behind `deviceFd`
 * (VFIO_GROUP_SET_CONTAINER). Returns the container fd.
 */
export function openVfioContainer(m: Machine, deviceFd: number): number {
  const vdev = m.vfio.deviceOf(deviceFd);
  const c = new Type1Container(m, vdev);
  const file = new KFile(
    "vfio-container",
    {
      ioctl: (_f, cmd, arg) => c.ioctl(cmd, arg),
      release: () => c.release(),
    },
    2,
    c,
  );
  return m.fds.install(file);
}
