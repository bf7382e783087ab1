/**
 * nvgrace-gpu, the vfio-pci variant driver for Grace Hopper / Grace Blackwell GPUs
 * (kernel-semantics §9, drivers/vfio/pci/nvgrace-gpu/main.c). The GPU's coherent device memory is
 * not a PCI BAR: firmware describes it (`nvidia,gpu-mem-base-pa`, `nvidia,gpu-mem-size`) and the
 * driver shows it to the VM as fake 64-bit BARs — "usemem" as region 4 and, on chips with the MIG
 * hardware bug, "resmem" (the last GiB, uncached) as region 2. This file holds the probe (device-
 * ready wait, firmware properties, MIG-bug detection through an NVIDIA DVSEC, fake BAR split), the
 * driver's `get_dmabuf_phys` (§9.2), its VFIO_DEVICE_GET_REGION_INFO for the fake regions, and
 * the emulated fake-BAR registers: read and written through the VFIO config region, cleared at
 * the first open and on VFIO_DEVICE_RESET.
 */
import { InputError, KernelError } from "../core/errors.js";
import type { UserBuffer } from "../core/file.js";
import type { Machine } from "../machine/machine.js";
import type { CapabilityHelper } from "../pci/capabilities.js";
import type { ConfigSpace } from "../pci/config-space.js";
import { IORESOURCE_MEM, type PciDev } from "../pci/device.js";
import { PCI_BASE_ADDRESS_MEM_PREFETCH, PCI_BASE_ADDRESS_MEM_TYPE_64 } from "../pci/regs.js";
import { type DmabufPhys, fillPhysVec, vfioPciCoreGetDmabufPhys } from "./dma-buf.js";
import {
  type DmaRange,
  REGION_INFO_SIZE,
  VFIO_IOCTL,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  vfioRegionOffset,
} from "./uapi/vfio.js";
import type { VfioPciDevice, VfioVariantDriver } from "./vfio.js";

export const NVGRACE_DRIVER_NAME = "nvgrace-gpu-vfio-pci";
export const PCI_VENDOR_ID_NVIDIA = 0x10de;
/** GH200 (0x2342, 0x2345, 0x2348), GB200 (0x2941), GB300 (0x31C2) (§9.1). */
export const NVGRACE_GPU_DEVICE_IDS: readonly number[] = [0x2342, 0x2345, 0x2348, 0x2941, 0x31c2];

export const RESMEM_REGION_INDEX = 2;
export const USEMEM_REGION_INDEX = 4;
/** Block size the guest driver adds memory in; usemem is a multiple of it in the bug case. */
export const MEMBLK_SIZE = 512n << 20n;
/** Carved out of the end of device memory as resmem when the MIG bug is present. */
export const RESMEM_SIZE = 1n << 30n;

/** BAR0 registers polled by the device-ready wait; both read STATUS_READY once the GPU is usable. */
export const C2C_LINK_BAR0_OFFSET = 0x1498;
export const HBM_TRAINING_BAR0_OFFSET = 0x200bc;
export const STATUS_READY = 0xff;
export const POLL_QUANTUM_MS = 1000;
export const POLL_TIMEOUT_MS = 30_000;

export const PCI_EXT_CAP_ID_DVSEC = 0x0023;
/** DVSEC header 1 (+4: vendor, revision, length) and header 2 (+8: DVSEC id). */
export const PCI_DVSEC_HEADER1 = 0x4;
export const PCI_DVSEC_HEADER2 = 0x8;
/** NVIDIA's GPU capability DVSEC and the bitmap word in it. */
export const GPU_CAP_DVSEC_REGISTER = 3;
export const DVSEC_BITMAP_OFFSET = 0xa;
export const MIG_SUPPORTED_WITH_CACHED_RESMEM = 0x1;

/** `struct vfio_region_info_cap_sparse_mmap` with one area: header 8, nr_areas 4, reserved 4, area 16. */
export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
export const SPARSE_MMAP_CAP_SIZE_ONE_AREA = 32;

const U64_MAX = (1n << 64n) - 1n;

/* ---------------------------------------------------------------------------------------------- */
/* DVSEC capability helper                                                                        */
/* ---------------------------------------------------------------------------------------------- */

export interface DvsecParams {
  vendor: number;
  dvsecId: number;
  revision?: number;
  /** Bytes of the whole DVSEC structure (header included); at least 0xC. */
  length?: number;
  /** Vendor-specific 16-bit words from +0xA on (NVIDIA's bitmap first). */
  words?: number[];
}

/** A Designated Vendor-Specific Extended Capability (PCIe 0x0023). */
export function dvsecCap(p: DvsecParams): CapabilityHelper {
  const length = Math.max(p.length ?? 0x10, 0xa + 2 * (p.words?.length ?? 0), 0xc);
  const size = (length + 3) & ~3;
  return {
    space: "ext",
    id: PCI_EXT_CAP_ID_DVSEC,
    version: 1,
    size,
    init(cfg, o) {
      cfg.write32(
        o + PCI_DVSEC_HEADER1,
        ((p.vendor & 0xffff) | (((p.revision ?? 0) & 0xf) << 16) | ((length & 0xfff) << 20)) >>> 0,
      );
      cfg.write16(o + PCI_DVSEC_HEADER2, p.dvsecId & 0xffff);
      p.words?.forEach((w, i) => {
        cfg.write16(o + DVSEC_BITMAP_OFFSET + 2 * i, w);
      });
    },
  };
}

/**
 * Bytes an extended capability occupies, from its own registers where its size varies (ACS egress
 * vector, TPH ST table, DVSEC length); 0x40 for ids not known here, to stay clear of their fields.
 */
function extCapExtent(cfg: ConfigSpace, id: number, o: number): number {
  switch (id) {
    case 0x000d: {
      // ACS: 8 bytes, plus the egress control vector when EC is implemented
      const cap = cfg.read16(o + 4);
      const bits = (cap >> 8) & 0xff || 256;
      return 8 + (cap & 0x20 ? Math.ceil(bits / 32) * 4 : 0);
    }
    case 0x0017: {
      // TPH requester: 12 bytes, plus the ST table when it lives in the capability
      const cap = cfg.read32(o + 4);
      const inCap = ((cap >>> 9) & 3) === 1;
      return 0xc + (inCap ? Math.ceil(((((cap >>> 16) & 0x7ff) + 1) * 2) / 4) * 4 : 0);
    }
    case PCI_EXT_CAP_ID_DVSEC:
      return Math.max(0xc, (cfg.read32(o + PCI_DVSEC_HEADER1) >>> 20) & 0xfff);
    case 0x000e: // ARI
    case 0x000f: // ATS
    case 0x001b: // PASID
      return 8;
    case 0x0003: // DSN
      return 12;
    case 0x0013: // PRI
      return 0x10;
    default:
      return 0x40; // SR-IOV and anything else
  }
}

/**
 * Appends an extended capability to an already built config space, after the last one of the
 * chain (dword aligned), and links it from that one. Returns its offset.
 */
export function appendExtCapability(cfg: ConfigSpace, cap: CapabilityHelper): number {
  if (cap.space !== "ext") throw new InputError("appendExtCapability: not an extended capability");
  if (cfg.size <= 0x100) throw new InputError("extended capabilities need a PCIe (4 KiB) config space");
  const chain = cfg.extCapabilities();
  const last = chain.length ? chain[chain.length - 1] : null;
  let off = 0x100;
  for (const c of chain) off = Math.max(off, (c.offset + extCapExtent(cfg, c.id, c.offset) + 3) & ~3);
  if (off + cap.size > cfg.size)
    throw new InputError(
      `extended capability 0x${cap.id.toString(16)} does not fit in the config space (at 0x${off.toString(16)})`,
    );
  cfg.write32(off, (cap.id & 0xffff) | (((cap.version ?? 1) & 0xf) << 16));
  cap.init(cfg, off);
  if (last) {
    const hdr = cfg.read32(last.offset);
    cfg.write32(last.offset, ((hdr & 0x000fffff) | ((off & 0xffc) << 20)) >>> 0);
  }
  cfg.invalidateCapabilityCache();
  return off;
}

/** `pci_find_dvsec_capability(dev, vendor, dvsec)`: offset of the matching DVSEC, or 0. */
export function pciFindDvsecCapability(cfg: ConfigSpace, vendor: number, dvsecId: number): number {
  for (const c of cfg.extCapabilities()) {
    if (c.id !== PCI_EXT_CAP_ID_DVSEC) continue;
    if ((cfg.read32(c.offset + PCI_DVSEC_HEADER1) & 0xffff) !== vendor) continue;
    if (cfg.read16(c.offset + PCI_DVSEC_HEADER2) !== dvsecId) continue;
    return c.offset;
  }
  return 0;
}

/** Adds NVIDIA's GPU capability DVSEC (id 3) to a GPU, with or without MIG_SUPPORTED_WITH_CACHED_RESMEM. */
export function addNvgraceDvsec(pdev: PciDev, migSupportedWithCachedResmem: boolean): number {
  return appendExtCapability(
    pdev.config,
    dvsecCap({
      vendor: PCI_VENDOR_ID_NVIDIA,
      dvsecId: GPU_CAP_DVSEC_REGISTER,
      words: [migSupportedWithCachedResmem ? MIG_SUPPORTED_WITH_CACHED_RESMEM : 0],
    }),
  );
}

/** `has_mig_hw_bug`: true unless NVIDIA's DVSEC 3 says MIG works with cached resmem (§9.1). */
export function nvgraceHasMigHwBug(pdev: PciDev): boolean {
  const o = pciFindDvsecCapability(pdev.config, PCI_VENDOR_ID_NVIDIA, GPU_CAP_DVSEC_REGISTER);
  if (!o) return true;
  return (pdev.config.read16(o + DVSEC_BITMAP_OFFSET) & MIG_SUPPORTED_WITH_CACHED_RESMEM) === 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Device state the driver reads: BAR0 status registers on a model clock, firmware properties     */
/* ---------------------------------------------------------------------------------------------- */

/**
 * The GPU's BAR0 status registers with a model clock (no real time): the device-ready wait reads
 * them, sleeps POLL_QUANTUM_MS by advancing `nowMs`, and reads again. A test sets a register now or
 * schedules a change at a later model time. Registers not set read 0; reads beyond BAR0 all-ones.
 */
export class NvgraceGpuHw {
  /** Model time in ms; only the driver's sleeps advance it. */
  nowMs = 0;
  private readonly regs = new Map<number, number>([
    [C2C_LINK_BAR0_OFFSET, STATUS_READY],
    [HBM_TRAINING_BAR0_OFFSET, STATUS_READY],
  ]);
  private readonly schedule: { atMs: number; offset: number; value: number }[] = [];
  /** Every read the driver made, as [model time, offset]. */
  readonly reads: [number, number][] = [];

  /** A GPU whose C2C link and HBM training are both done (the default). */
  static ready(): NvgraceGpuHw {
    return new NvgraceGpuHw();
  }

  /** A GPU whose two registers read `c2c` and `hbm` (0xFF = ready). */
  static with(c2c: number, hbm: number): NvgraceGpuHw {
    const hw = new NvgraceGpuHw();
    hw.set(C2C_LINK_BAR0_OFFSET, c2c);
    hw.set(HBM_TRAINING_BAR0_OFFSET, hbm);
    return hw;
  }

  /** Sets a BAR0 register now, or when the model clock reaches `atMs`. */
  set(offset: number, value: number, atMs?: number): this {
    if (atMs === undefined || atMs <= this.nowMs) this.regs.set(offset, value >>> 0);
    else this.schedule.push({ atMs, offset, value: value >>> 0 });
    return this;
  }

  private applySchedule(): void {
    this.schedule.sort((a, b) => a.atMs - b.atMs);
    while (this.schedule.length && this.schedule[0].atMs <= this.nowMs) {
      const s = this.schedule.shift()!;
      this.regs.set(s.offset, s.value);
    }
  }

  /** `ioread32(bar0 + offset)`. */
  read32(offset: number): number {
    this.applySchedule();
    this.reads.push([this.nowMs, offset]);
    return this.regs.get(offset) ?? 0;
  }

  /** `msleep(ms)` on the model clock. */
  sleep(ms: number): void {
    this.nowMs += ms;
  }
}

/**
 * Firmware (ACPI _DSD) properties of the GPU. `undefined` = the property is missing. Values are
 * u64 as firmware gives them; anything wider than 64 bits stands for a value the types cannot hold.
 */
export interface NvgraceFirmwareProps {
  /** `nvidia,gpu-mem-base-pa`. */
  memphys?: bigint;
  /** `nvidia,gpu-mem-size`. */
  memlength?: bigint;
}

/** What `registerNvgraceGpu` needs to probe one GPU. */
export interface NvgraceProps {
  /** The GPU function (a BDF of the machine, or the device itself). */
  device: string | PciDev;
  /** Firmware properties; omitted or null = none at all (plain core ops). */
  firmware?: NvgraceFirmwareProps | null;
  /** BAR0 status registers and the model clock; default: a ready GPU. */
  hw?: NvgraceGpuHw;
}

/* ---------------------------------------------------------------------------------------------- */
/* Fake BARs                                                                                      */
/* ---------------------------------------------------------------------------------------------- */

/** `struct mem_region`: one fake BAR. */
export interface MemRegion {
  memphys: bigint;
  memlength: bigint;
  /** Reported region size (a power of two, see §9.1 for the bug-case exception). */
  barSize: bigint;
  /** The emulated 64-bit BAR register (what the VM last wrote). */
  barVal: bigint;
}

const emptyRegion = (): MemRegion => ({ memphys: 0n, memlength: 0n, barSize: 0n, barVal: 0n });

/**
 * `roundup_pow_of_two` on a 64-bit size_t. 0 and values above 2^63 are undefined in the kernel
 * (the shift reaches 64); the model returns 0 for both (the first never reaches a reported size,
 * see `nvgraceSplitMemory`).
 */
export function roundupPowOfTwo(n: bigint): bigint {
  if (n <= 0n || n > 1n << 63n) return 0n;
  let p = 1n;
  while (p < n) p <<= 1n;
  return p;
}

/**
 * `nvgrace_gpu_init_nvdev_struct`: splits device memory into usemem (region 4) and, with the MIG
 * bug, resmem (region 2). Errors fail the probe (K-155).
 */
export function nvgraceSplitMemory(
  memphys: bigint,
  memlength: bigint,
  hasMigHwBug: boolean,
): { usemem: MemRegion; resmem: MemRegion } {
  const usemem = emptyRegion();
  const resmem = emptyRegion();
  const carve = hasMigHwBug ? RESMEM_SIZE : 0n;
  usemem.memphys = memphys;
  if (memlength < carve)
    throw new KernelError(
      "EOVERFLOW",
      `device memory 0x${memlength.toString(16)} is smaller than the 1 GiB resmem carve-out`,
      "K-155",
    );
  usemem.memlength = memlength - carve;
  // usemem's reported size is taken here, before the 512 MiB round-down (§9.1)
  usemem.barSize = roundupPowOfTwo(usemem.memlength);
  if (!hasMigHwBug) return { usemem, resmem };
  usemem.memlength -= usemem.memlength % MEMBLK_SIZE;
  if (usemem.memlength === 0n)
    throw new KernelError("EINVAL", "usemem rounds down to 0 (less than 512 MiB usable)", "K-155");
  resmem.memphys = usemem.memphys + usemem.memlength;
  if (resmem.memphys > U64_MAX) throw new KernelError("EOVERFLOW", "resmem base wraps", "K-155");
  resmem.memlength = memlength - usemem.memlength;
  resmem.barSize = roundupPowOfTwo(resmem.memlength);
  return { usemem, resmem };
}

/* ---------------------------------------------------------------------------------------------- */
/* Per-device state                                                                               */
/* ---------------------------------------------------------------------------------------------- */

/** `struct nvgrace_gpu_pci_core_device` (the parts the model needs). */
export class NvgraceGpuDevice {
  constructor(
    readonly pdev: PciDev,
    readonly hw: NvgraceGpuHw,
    /** `nvgrace`: fake BARs and nvgrace's ops; `core`: firmware step failed, plain core ops (K-198). */
    readonly ops: "nvgrace" | "core",
    /** Why the firmware step fell back to the core ops (errno name), null when it did not. */
    readonly fallback: "EINVAL" | "EOVERFLOW" | "ENOMEM" | null,
    readonly hasMigHwBug: boolean,
    readonly usemem: MemRegion,
    readonly resmem: MemRegion,
  ) {}

  /** `nvgrace_gpu_memregion(index)`: usemem for 4, resmem for 2 only when it exists (§9.2 step 1). */
  memregion(index: number): MemRegion | null {
    if (this.ops !== "nvgrace") return null;
    if (index === USEMEM_REGION_INDEX) return this.usemem;
    if (index === RESMEM_REGION_INDEX && this.resmem.memlength !== 0n) return this.resmem;
    return null;
  }

  /** `nvgrace_gpu_init_fake_bar_emu_regs`. */
  clearFakeBars(): void {
    this.usemem.barVal = 0n;
    this.resmem.barVal = 0n;
  }

  /** The fake BAR a config-space access at `offset` hits (BAR2/3 → resmem, BAR4/5 → usemem). */
  private fakeBarAt(offset: number, size: number): { region: MemRegion; base: number } | null {
    for (const [base, index] of [
      [0x18, RESMEM_REGION_INDEX],
      [0x20, USEMEM_REGION_INDEX],
    ] as const) {
      if (offset < base + 8 && offset + size > base) {
        const region = this.memregion(index);
        return region ? { region, base } : null;
      }
    }
    return null;
  }

  /**
   * Config read of a fake BAR register: the stored value with the size bits cleared and the
   * 64-bit prefetchable type bits set. null = not a fake BAR (the core answers).
   */
  configRead(offset: number, size: 1 | 2 | 4): number | null {
    const hit = this.fakeBarAt(offset, size);
    if (!hit) return null;
    const { region, base } = hit;
    const mask = region.barSize ? ~(region.barSize - 1n) & U64_MAX : U64_MAX;
    const v = (region.barVal & mask) | BigInt(PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
    const shift = BigInt((offset - base) * 8);
    const bytes = BigInt(size * 8);
    return Number((v >> shift) & ((1n << bytes) - 1n));
  }

  /** Config write of a fake BAR register: stored as written (sizing handled on read). */
  configWrite(offset: number, size: 1 | 2 | 4, value: number): boolean {
    const hit = this.fakeBarAt(offset, size);
    if (!hit) return false;
    const { region, base } = hit;
    const shift = BigInt((offset - base) * 8);
    const mask = ((1n << BigInt(size * 8)) - 1n) << shift;
    region.barVal = (region.barVal & ~mask & U64_MAX) | ((BigInt(value >>> 0) << shift) & mask);
    return true;
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* Probe                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

/**
 * `nvgrace_gpu_wait_device_ready`: poll both BAR0 registers every POLL_QUANTUM_MS until both read
 * STATUS_READY; give up with -ETIME once the clock has passed POLL_TIMEOUT_MS (the last read is at
 * 30 000 ms, so 31 reads and 31 000 ms of sleep on a GPU that never comes up).
 */
export function nvgraceWaitDeviceReady(pdev: PciDev, hw: NvgraceGpuHw): void {
  const bar0 = pdev.resources[0];
  // pci_iomap of BAR0 fails when it is not a memory BAR
  if (!(bar0.flags & IORESOURCE_MEM) || bar0.len === 0n)
    throw new KernelError("ENOMEM", `${pdev.bdf}: BAR0 cannot be mapped`);
  const read = (off: number) => (BigInt(off) + 4n <= bar0.len ? hw.read32(off) : 0xffffffff);
  const deadline = hw.nowMs + POLL_TIMEOUT_MS;
  do {
    if (read(C2C_LINK_BAR0_OFFSET) === STATUS_READY && read(HBM_TRAINING_BAR0_OFFSET) === STATUS_READY)
      return;
    hw.sleep(POLL_QUANTUM_MS);
  } while (hw.nowMs <= deadline);
  throw new KernelError(
    "ETIME",
    `${pdev.bdf}: C2C link or HBM training not ready after ${POLL_TIMEOUT_MS} ms`,
  );
}

/**
 * `nvgrace_gpu_fetch_memory_property`: the two firmware properties, or the errno that makes the
 * probe fall back to the core ops (missing → -EINVAL, too wide → -EOVERFLOW, size 0 → -ENOMEM).
 */
export function nvgraceFetchMemoryProperty(
  fw: NvgraceFirmwareProps | null | undefined,
): { memphys: bigint; memlength: bigint } | { error: "EINVAL" | "EOVERFLOW" | "ENOMEM" } {
  for (const [k, v] of Object.entries(fw ?? {}))
    if (v !== undefined && (typeof v !== "bigint" || v < 0n))
      throw new InputError(
        `nvgrace firmware property ${k}: expected a non-negative bigint, got ${String(v)}`,
      );
  if (fw?.memphys === undefined) return { error: "EINVAL" };
  if (fw.memphys > U64_MAX) return { error: "EOVERFLOW" };
  if (fw.memlength === undefined) return { error: "EINVAL" };
  if (fw.memlength > U64_MAX) return { error: "EOVERFLOW" };
  if (fw.memlength === 0n) return { error: "ENOMEM" }; // C2C link down: size reported as 0
  return { memphys: fw.memphys, memlength: fw.memlength };
}

/**
 * `nvgrace_gpu_probe` up to (not including) the VFIO registration: id match, device-ready wait,
 * firmware properties (any failure there selects the core ops and the probe goes on, K-198), then
 * with device memory: MIG-bug detection and the fake BAR split (failures fail the probe, K-155).
 */
export function nvgraceGpuProbe(
  pdev: PciDev,
  firmware: NvgraceFirmwareProps | null | undefined,
  hw: NvgraceGpuHw,
): NvgraceGpuDevice {
  if (pdev.vendor !== PCI_VENDOR_ID_NVIDIA || !NVGRACE_GPU_DEVICE_IDS.includes(pdev.device))
    throw new KernelError(
      "ENODEV",
      `${pdev.bdf}: ${pdev.vendor.toString(16).padStart(4, "0")}:${pdev.device.toString(16).padStart(4, "0")} is not a Grace GPU nvgrace-gpu drives`,
    );
  nvgraceWaitDeviceReady(pdev, hw);
  const mem = nvgraceFetchMemoryProperty(firmware);
  if ("error" in mem)
    return new NvgraceGpuDevice(pdev, hw, "core", mem.error, false, emptyRegion(), emptyRegion());
  const bug = nvgraceHasMigHwBug(pdev);
  const { usemem, resmem } = nvgraceSplitMemory(mem.memphys, mem.memlength, bug);
  return new NvgraceGpuDevice(pdev, hw, "nvgrace", null, bug, usemem, resmem);
}

/* ---------------------------------------------------------------------------------------------- */
/* The variant driver                                                                             */
/* ---------------------------------------------------------------------------------------------- */

/** Encodes the sparse-mmap capability with one area [0, size) (`next` 0: the only capability). */
export function encodeSparseMmapCap(size: bigint): Uint8Array {
  const b = new Uint8Array(SPARSE_MMAP_CAP_SIZE_ONE_AREA);
  const v = new DataView(b.buffer);
  v.setUint16(0, VFIO_REGION_INFO_CAP_SPARSE_MMAP, true);
  v.setUint16(2, 1, true); // version
  v.setUint32(4, 0, true); // next
  v.setUint32(8, 1, true); // nr_areas
  v.setBigUint64(16, 0n, true);
  v.setBigUint64(24, size & U64_MAX, true);
  return b;
}

export interface SparseMmapCap {
  id: number;
  version: number;
  next: number;
  areas: { offset: bigint; size: bigint }[];
}

/** Reads a sparse-mmap capability at `offset` of a region-info reply. */
export function decodeSparseMmapCap(bytes: Uint8Array, offset: number): SparseMmapCap {
  const v = new DataView(bytes.buffer, bytes.byteOffset + offset, bytes.byteLength - offset);
  const nr = v.getUint32(8, true);
  const areas = [];
  for (let i = 0; i < nr; i++)
    areas.push({ offset: v.getBigUint64(16 + 16 * i, true), size: v.getBigUint64(24 + 16 * i, true) });
  return { id: v.getUint16(0, true), version: v.getUint16(2, true), next: v.getUint32(4, true), areas };
}

/** The nvgrace-gpu VFIO driver: one per machine, holding the probed state of each GPU it drives. */
export class NvgraceGpuDriver implements VfioVariantDriver {
  readonly name = NVGRACE_DRIVER_NAME;
  private readonly gpus = new Map<PciDev, NvgraceGpuDevice>();

  nvdev(vdev: VfioPciDevice | PciDev): NvgraceGpuDevice {
    const pdev = "pdev" in vdev ? vdev.pdev : vdev;
    const nv = this.gpus.get(pdev);
    if (!nv) throw new KernelError("ENODEV", `${pdev.bdf} was not probed by ${NVGRACE_DRIVER_NAME}`);
    return nv;
  }

  adopt(nv: NvgraceGpuDevice): void {
    this.gpus.set(nv.pdev, nv);
  }

  /** `nvgrace_get_dmabuf_phys` (§9.2) — or the core one for a GPU probed without device memory. */
  getDmabufPhys = (vdev: VfioPciDevice, regionIndex: number, ranges: readonly DmaRange[]): DmabufPhys => {
    const nv = this.nvdev(vdev);
    const region = nv.memregion(regionIndex);
    if (!region) return vfioPciCoreGetDmabufPhys(vdev, regionIndex, ranges); // K-149, K-151, K-153
    // Both fake regions borrow BAR0's provider: P2P decisions use the GPU's PCI position (K-152).
    const provider = vdev.vfio.machine.p2pdma.provider(vdev.pdev, 0);
    if (!provider) throw new KernelError("EINVAL", `${vdev.bdf}: BAR0 has no P2PDMA provider`, "K-147");
    // Limits come from the real memory length, not the power-of-two bar_size (K-148).
    return { provider, physVec: fillPhysVec(ranges, region.memphys, region.memlength) };
  };

  /** VFIO_DEVICE_RESET clears the emulated fake-BAR registers before the core reset (K-154). */
  preReset(vdev: VfioPciDevice): void {
    const nv = this.nvdev(vdev);
    if (nv.ops === "nvgrace") nv.clearFakeBars();
  }

  /** `nvgrace_gpu_open_device`: a GPU with device memory starts with cleared fake BARs. */
  openDevice(vdev: VfioPciDevice): void {
    const nv = this.nvdev(vdev);
    if (nv.ops === "nvgrace") nv.clearFakeBars();
  }

  /** `nvgrace_gpu_read_config_emu`: the fake BAR registers come from the emulation. */
  configRead(vdev: VfioPciDevice, offset: number, size: 1 | 2 | 4): number | null {
    return this.nvdev(vdev).configRead(offset, size);
  }

  /** `nvgrace_gpu_write_config_emu`: writes to the fake BAR registers stay in the emulation. */
  configWrite(vdev: VfioPciDevice, offset: number, size: 1 | 2 | 4, value: number): boolean {
    return this.nvdev(vdev).configWrite(offset, size, value);
  }

  /** nvgrace's own device ioctls; everything else (and all of a core-ops GPU) goes to vfio-pci. */
  ioctl(vdev: VfioPciDevice, cmd: number, arg: UserBuffer): number | undefined {
    const nv = this.nvdev(vdev);
    if (nv.ops !== "nvgrace") return undefined;
    if (cmd === VFIO_IOCTL.VFIO_DEVICE_IOEVENTFD)
      throw new KernelError("ENOTTY", "nvgrace-gpu does not support ioeventfds");
    if (cmd === VFIO_IOCTL.VFIO_DEVICE_GET_REGION_INFO) return this.regionInfo(nv, arg);
    return undefined;
  }

  /**
   * VFIO_DEVICE_GET_REGION_INFO for a fake region: size = bar_size, READ|WRITE|MMAP|CAPS and a
   * sparse-mmap capability with one area [0, memlength). An argsz too small for the capability
   * gets the needed argsz back and cap_offset 0. Other regions: undefined (the core answers).
   */
  private regionInfo(nv: NvgraceGpuDevice, arg: UserBuffer): number | undefined {
    const v = arg.copyFromUser(0, REGION_INFO_SIZE, "struct vfio_region_info");
    let argsz = v.getUint32(0, true);
    const index = v.getUint32(8, true);
    if (argsz < REGION_INFO_SIZE) throw new KernelError("EINVAL", "argsz smaller than vfio_region_info");
    const region = nv.memregion(index);
    if (!region) return undefined;
    const cap = encodeSparseMmapCap(region.memlength);
    let capOffset = 0;
    if (argsz < REGION_INFO_SIZE + cap.length) {
      argsz = REGION_INFO_SIZE + cap.length; // tell the caller how much room the capability needs
    } else {
      arg.copyToUser(REGION_INFO_SIZE, cap, "region info capability chain");
      capOffset = REGION_INFO_SIZE;
    }
    const out = new Uint8Array(REGION_INFO_SIZE);
    const o = new DataView(out.buffer);
    o.setUint32(0, argsz, true);
    o.setUint32(
      4,
      VFIO_REGION_INFO_FLAG_READ |
        VFIO_REGION_INFO_FLAG_WRITE |
        VFIO_REGION_INFO_FLAG_MMAP |
        VFIO_REGION_INFO_FLAG_CAPS,
      true,
    );
    o.setUint32(8, index, true);
    o.setUint32(12, capOffset, true);
    o.setBigUint64(16, region.barSize & U64_MAX, true);
    o.setBigUint64(24, vfioRegionOffset(index), true);
    arg.copyToUser(0, out, "struct vfio_region_info");
    return 0;
  }
}

/** The machine's nvgrace-gpu driver, registered under its name on first use. */
export function nvgraceDriverOf(machine: Machine): NvgraceGpuDriver {
  const d = machine.vfioDrivers[NVGRACE_DRIVER_NAME];
  if (d instanceof NvgraceGpuDriver) return d;
  const drv = new NvgraceGpuDriver();
  machine.vfioDrivers[NVGRACE_DRIVER_NAME] = drv;
  return drv;
}

/**
 * Registers nvgrace-gpu with the machine and binds one GPU to it: the probe runs first; a probe
 * failure (wrong id, -ETIME, -EOVERFLOW/-EINVAL of the fake-BAR split) throws its KernelError and
 * leaves the device unbound. A device already bound to another driver is refused (-EBUSY).
 */
export function registerNvgraceGpu(
  machine: Machine,
  props: NvgraceProps,
): { vdev: VfioPciDevice; nvdev: NvgraceGpuDevice; driver: NvgraceGpuDriver } {
  const driver = nvgraceDriverOf(machine);
  const pdev = typeof props.device === "string" ? machine.device(props.device) : props.device;
  const bound = machine.vfio.devices.get(pdev);
  if (bound || (pdev.driver && pdev.driver !== NVGRACE_DRIVER_NAME))
    throw new KernelError("EBUSY", `${pdev.bdf} is already bound to ${bound?.driver.name ?? pdev.driver}`);
  const nvdev = nvgraceGpuProbe(pdev, props.firmware, props.hw ?? NvgraceGpuHw.ready());
  driver.adopt(nvdev);
  const vdev = machine.vfio.bind(pdev, NVGRACE_DRIVER_NAME);
  return { vdev, nvdev, driver };
}
