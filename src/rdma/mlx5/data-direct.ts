/**
 * The mlx5 data-direct DMA PF driver (drivers/infiniband/hw/mlx5/data_direct.c;
 * rdma-data-direct.md §3.1, §3.2, §4, §7): a PCI driver for 15b3:2100 that reads the function's
 * VUID from VPD, and the two global lists (DMA PFs, IB-device registrations) that pair them by VUID
 * under `mlx5_data_direct_mutex`. Removing a PF unbinds every IB device with that VUID and revokes
 * all their data-direct MRs.
 */
import { KernelError } from "../../core/errors.js";
import {
  PCI_EXP_DEVCAP2_ATOMIC_COMP32,
  PCI_EXP_DEVCAP2_ATOMIC_COMP64,
  PCI_EXP_DEVCAP2_ATOMIC_COMP128,
  pciEnableAtomicOpsToRoot,
} from "../../pci/atomic.js";
import type { PciDev } from "../../pci/device.js";
import { IORESOURCE_IO, IORESOURCE_MEM } from "../../pci/device.js";
import { Fabric } from "../../pci/fabric.js";
import { PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from "../../pci/regs.js";
import { pciVpdAlloc, pciVpdFindRoInfoKeyword } from "../../pci/vpd.js";
import type { RdmaEnv } from "../core/device.js";
import { Mutex, type Task } from "../sync.js";
import type { Mlx5IbDev } from "./device.js";
import { mlx5RevokeDataDirectMrs } from "./mr.js";

export const MLX5_DATA_DIRECT_VENDOR = 0x15b3;
export const MLX5_DATA_DIRECT_DEVICE = 0x2100;
/** The driver name the PCI core shows for a bound DMA PF (mainline registers it from mlx5_ib). */
export const MLX5_DATA_DIRECT_DRIVER = "mlx5_ib";
/** Max DMA segment size the probe sets. */
export const DD_MAX_SEG_SIZE = 2n << 30n;

/** `struct mlx5_data_direct_dev` (§3.1). */
export class DataDirectDev {
  /** `pci_enable_device` count > 0. */
  enabled = false;
  maxSegSize = 0n;
  /** Which AtomicOp completer size the probe could enable, null when none. */
  atomicOps: 32 | 64 | 128 | null = null;
  constructor(
    readonly pdev: PciDev,
    /** The VPD `VU` data with a NUL appended. */
    public vuid: Uint8Array,
  ) {}

  /** The VUID as C would print it (up to the first NUL). */
  get vuidString(): string {
    return cString(this.vuid);
  }
}

/** `struct mlx5_data_direct_registration` (§3.2). */
export interface DataDirectRegistration {
  ibdev: Mlx5IbDev;
  /** 128 firmware bytes plus a NUL. */
  vuid: Uint8Array;
}

export function cString(b: Uint8Array): string {
  const nul = b.indexOf(0);
  return String.fromCharCode(...(nul < 0 ? b : b.subarray(0, nul)));
}

/** `strcmp(a, b) == 0` on NUL-terminated byte strings (§4.4: case matters, no trimming). */
export function vuidEqual(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; ; i++) {
    const x = i < a.length ? a[i] : 0;
    const y = i < b.length ? b[i] : 0;
    if (x !== y) return false;
    if (x === 0) return true;
  }
}

/**
 * `kobject_get_path` of a PCI function (§7 step 4): `/devices/pci<dddd>:<bb>`, one component per
 * bridge on the way down, then the function.
 */
export function pciSysfsDevicePath(pdev: PciDev): string {
  const bridges = Fabric.pathToRoot(pdev).reverse();
  return ["/devices", pdev.hostBridge.label, ...bridges.map((b) => b.bdf), pdev.bdf].join("/");
}

/** The global state of data_direct.c for one machine, plus the PCI driver's bindings. */
export class DataDirectCore {
  /** `mlx5_data_direct_dev_list`. */
  readonly devList: DataDirectDev[] = [];
  /** `mlx5_data_direct_reg_list`. */
  readonly regList: DataDirectRegistration[] = [];
  readonly mutex: Mutex;
  /** drvdata: the bound PFs. */
  readonly bound = new Map<PciDev, DataDirectDev>();
  driverRegistered = false;

  constructor(readonly env: RdmaEnv) {
    this.mutex = new Mutex(env.sched, "mlx5_data_direct_mutex", "mlx5_data_direct_mutex");
  }

  private get m() {
    return this.env.machine;
  }

  /* PCI side -------------------------------------------------------------------------------- */

  /** The PCI core's id-table match. */
  static matches(pdev: PciDev): boolean {
    return pdev.vendor === MLX5_DATA_DIRECT_VENDOR && pdev.device === MLX5_DATA_DIRECT_DEVICE;
  }

  private enableDevice(dev: DataDirectDev): void {
    const e = this.m.faults.check("pci_enable_device");
    if (e) throw new KernelError(e, `${dev.pdev.bdf}: pci_enable_device`);
    const p = dev.pdev;
    let cmd = p.command;
    if (p.resources.some((r) => r.flags & IORESOURCE_MEM)) cmd |= PCI_COMMAND_MEMORY;
    if (p.resources.some((r) => r.flags & IORESOURCE_IO)) cmd |= PCI_COMMAND_IO;
    p.command = cmd;
    dev.enabled = true;
  }

  /** `pci_disable_device`: bus mastering off (decode enables are left as they are). */
  private disableDevice(dev: DataDirectDev): void {
    if (!dev.enabled) return;
    dev.pdev.command = dev.pdev.command & ~PCI_COMMAND_MASTER;
    dev.enabled = false;
  }

  /** `mlx5_data_direct_probe` (§4.2). */
  *probe(pdev: PciDev): Task<void> {
    const m = this.m;
    if (!DataDirectCore.matches(pdev))
      throw new KernelError("ENODEV", `${pdev.bdf} is not a data-direct DMA PF (15b3:2100)`);
    if (this.bound.has(pdev)) throw new KernelError("EBUSY", `${pdev.bdf} is already bound`);
    // 1.
    const e1 = m.faults.check("kzalloc:data_direct_dev");
    if (e1) throw new KernelError(e1, "data_direct probe: allocation");
    const dev = new DataDirectDev(pdev, new Uint8Array(1));
    // 2.
    this.enableDevice(dev);
    try {
      // 3.
      pdev.command = pdev.command | PCI_COMMAND_MASTER;
      // 4.
      if (!m.faults.check("dma_set_mask:64")) pdev.dmaMask = (1n << 64n) - 1n;
      else {
        const e32 = m.faults.check("dma_set_mask:32");
        if (e32) throw new KernelError(e32, `${pdev.bdf}: neither a 64- nor a 32-bit DMA mask`, "DD-12");
        pdev.dmaMask = (1n << 32n) - 1n;
      }
      // 5.
      dev.maxSegSize = DD_MAX_SEG_SIZE;
      // 6. AtomicOps: 32, else 64, else 128; never fatal
      for (const [bits, mask] of [
        [32, PCI_EXP_DEVCAP2_ATOMIC_COMP32],
        [64, PCI_EXP_DEVCAP2_ATOMIC_COMP64],
        [128, PCI_EXP_DEVCAP2_ATOMIC_COMP128],
      ] as const) {
        try {
          pciEnableAtomicOpsToRoot(pdev, mask);
          dev.atomicOps = bits;
          break;
        } catch (err) {
          if (!(err instanceof KernelError)) throw err;
        }
      }
      if (!dev.atomicOps)
        m.diag.record("debug:data-direct-atomic", `${pdev.bdf}: AtomicOp requests not enabled`);
      // 7.
      const vpd = pciVpdAlloc(pdev, m.faults);
      const vu = pciVpdFindRoInfoKeyword(vpd, "VU");
      // 8.
      const e8 = m.faults.check("kmemdup:vuid");
      if (e8) throw new KernelError(e8, "data_direct probe: VUID copy");
      dev.vuid = new Uint8Array(vu.length + 1);
      dev.vuid.set(vu);
    } catch (err) {
      this.disableDevice(dev);
      this.env.emit(
        "dd-probe-failed",
        pdev.bdf,
        err instanceof KernelError ? `-${err.errnoName}` : String(err),
      );
      throw err;
    }
    this.bound.set(pdev, dev);
    pdev.driver = MLX5_DATA_DIRECT_DRIVER;
    this.env.emit("dd-probe", pdev.bdf, `VUID "${dev.vuidString}"`);
    // 9.
    yield* this.devReg(dev);
  }

  /** `mlx5_data_direct_remove` (§4.3). */
  *remove(pdev: PciDev): Task<void> {
    const dev = this.bound.get(pdev);
    if (!dev) return;
    this.env.emit("dd-remove", pdev.bdf);
    yield* this.devUnreg(dev);
    this.disableDevice(dev);
    this.bound.delete(pdev);
    pdev.driver = null;
  }

  /** `mlx5_data_direct_shutdown`: disable only (no unbind, no revoke). */
  shutdown(pdev: PciDev): void {
    const dev = this.bound.get(pdev);
    if (!dev) return;
    this.disableDevice(dev);
    this.env.emit("dd-shutdown", pdev.bdf);
  }

  /** `pci_register_driver`: probes every matching function not bound elsewhere, in scan order. */
  *registerDriver(): Task<{ bdf: string; error?: string }[]> {
    this.driverRegistered = true;
    const out: { bdf: string; error?: string }[] = [];
    for (const pdev of this.m.fabric.devices()) {
      if (!DataDirectCore.matches(pdev) || this.bound.has(pdev)) continue;
      if (pdev.driver && pdev.driver !== MLX5_DATA_DIRECT_DRIVER) continue;
      try {
        yield* this.probe(pdev);
        out.push({ bdf: pdev.bdf });
      } catch (e) {
        if (!(e instanceof KernelError)) throw e;
        pdev.driver = null;
        out.push({ bdf: pdev.bdf, error: e.errnoName });
      }
    }
    return out;
  }

  /** `pci_unregister_driver`: every bound PF is removed (in binding order). */
  *unregisterDriver(): Task<void> {
    for (const pdev of [...this.bound.keys()]) yield* this.remove(pdev);
    this.driverRegistered = false;
  }

  /* matching and binding (§4.4) ------------------------------------------------------------- */

  /** `mlx5_data_direct_dev_reg`: bind every matching IB device, then append. */
  *devReg(dev: DataDirectDev): Task<void> {
    yield* this.mutex.acquire();
    try {
      for (const reg of [...this.regList])
        if (vuidEqual(reg.vuid, dev.vuid)) yield* this.bind(reg.ibdev, dev);
      this.devList.push(dev);
    } finally {
      this.mutex.release();
    }
  }

  /** `mlx5_data_direct_dev_unreg`: unlink first, then unbind every IB device with that VUID. */
  *devUnreg(dev: DataDirectDev): Task<void> {
    yield* this.mutex.acquire();
    try {
      const i = this.devList.indexOf(dev);
      if (i >= 0) this.devList.splice(i, 1);
      for (const reg of [...this.regList]) if (vuidEqual(reg.vuid, dev.vuid)) yield* this.unbind(reg.ibdev);
    } finally {
      this.mutex.release();
    }
  }

  /** `mlx5_data_direct_ib_reg`: register, binding to the first matching PF. */
  *ibReg(ibdev: Mlx5IbDev, vuid: Uint8Array): Task<void> {
    yield* this.mutex.acquire();
    try {
      const e = this.m.faults.check("kzalloc:data_direct_reg");
      if (e) throw new KernelError(e, "data_direct ib_reg: allocation");
      const reg: DataDirectRegistration = { ibdev, vuid: Uint8Array.from(vuid) };
      for (const dev of this.devList)
        if (vuidEqual(dev.vuid, reg.vuid)) {
          yield* this.bind(ibdev, dev);
          break;
        }
      this.regList.push(reg);
      this.env.emit("dd-reg", ibdev.name, `VUID "${cString(reg.vuid)}"`);
    } finally {
      this.mutex.release();
    }
  }

  /** `mlx5_data_direct_ib_unreg`: unlink by identity; WARN when absent. No unbind. */
  *ibUnreg(ibdev: Mlx5IbDev): Task<void> {
    yield* this.mutex.acquire();
    try {
      const i = this.regList.findIndex((r) => r.ibdev === ibdev);
      if (i < 0) this.m.diag.warn("mlx5_data_direct_ib_unreg", `${ibdev.name}: no registration`);
      else {
        this.regList.splice(i, 1);
        this.env.emit("dd-unreg", ibdev.name);
      }
    } finally {
      this.mutex.release();
    }
  }

  /** `mlx5_data_direct_ib_bind`: overwrites silently. */
  *bind(ibdev: Mlx5IbDev, dev: DataDirectDev): Task<void> {
    yield* ibdev.ddLock.acquire();
    try {
      ibdev.dataDirectDev = dev;
      this.env.emit("dd-bind", ibdev.name, dev.pdev.bdf);
    } finally {
      ibdev.ddLock.release();
    }
  }

  /** `mlx5_data_direct_ib_unbind`: revoke every data-direct MR, then forget the PF. */
  *unbind(ibdev: Mlx5IbDev): Task<void> {
    yield* ibdev.ddLock.acquire();
    try {
      mlx5RevokeDataDirectMrs(ibdev, "DMA PF unbind");
      ibdev.dataDirectDev = null;
      this.env.emit("dd-unbind", ibdev.name);
    } finally {
      ibdev.ddLock.release();
    }
  }

  /** The handler of `MLX5_IB_METHOD_GET_DATA_DIRECT_SYSFS_PATH` (§7 steps 2–7); returns the bytes to copy. */
  *sysfsPath(ibdev: Mlx5IbDev, outLen: number): Task<Uint8Array> {
    yield* ibdev.ddLock.acquire();
    try {
      const dev = ibdev.dataDirectDev;
      if (!dev) throw new KernelError("ENODEV", `${ibdev.name}: no data-direct DMA PF bound`, "DD-2");
      const e = this.m.faults.check("kobject_get_path");
      if (e) throw new KernelError(e, "kobject_get_path");
      const path = pciSysfsDevicePath(dev.pdev);
      const needed = path.length + 1;
      if (needed > outLen)
        throw new KernelError("ENOSPC", `path needs ${needed} bytes, the buffer has ${outLen}`, "DD-13");
      const out = new Uint8Array(needed);
      for (let i = 0; i < path.length; i++) out[i] = path.charCodeAt(i);
      return out;
    } finally {
      ibdev.ddLock.release();
    }
  }
}
