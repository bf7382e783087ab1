/**
 * vfio-pci (kernel-semantics §6, §8): binding a PCI function, opening it, the device fd's ioctls,
 * the virtualised config space and every event that revokes or restores exported dma-bufs
 * (triggers R1–R14 of §8.4).
 */
import { KernelError } from "../core/errors.js";
import { type FdTable, KFile, UserBuffer } from "../core/file.js";
import { Lock } from "../core/locks.js";
import type { DmaBuf, DmaBufOps } from "../dmabuf/dma-buf.js";
import type { Machine } from "../machine/machine.js";
import { IORESOURCE_IO, IORESOURCE_MEM, type PciDev } from "../pci/device.js";
import { Fabric } from "../pci/fabric.js";
import {
  PCI_AF_CTRL,
  PCI_AF_CTRL_FLR,
  PCI_CAP_ID_AF,
  PCI_COMMAND,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_PM_CTRL,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_CTRL_VFE,
  PCI_SRIOV_NUM_VF,
} from "../pci/regs.js";
import { resetBus, resetFunction } from "../pci/reset.js";
import { vfioCheckFeature } from "./check-feature.js";
import {
  type DmabufPhys,
  dmaBufCleanup,
  dmaBufMove,
  featureDmaBuf,
  type VfioDmaBuf,
  vfioPciCoreGetDmabufPhys,
} from "./dma-buf.js";
import { registerVariantFeatures } from "./features.js";
import {
  type DmaRange,
  FEATURE_HEADER_SIZE,
  REGION_INFO_SIZE,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_FEATURE,
  VFIO_IOCTL,
  VFIO_PCI_REGION,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  vfioRegionOffset,
} from "./uapi/vfio.js";

/** A vfio-pci variant driver: what differs from the core (§6.7, §9). */
export interface VfioVariantDriver {
  name: string;
  /** `pci_ops->get_dmabuf_phys`; null → the export feature answers -EOPNOTSUPP (K-23). */
  getDmabufPhys:
    | ((vdev: VfioPciDevice, regionIndex: number, ranges: readonly DmaRange[]) => DmabufPhys)
    | null;
  /** Runs before the core reset of VFIO_DEVICE_RESET (nvgrace clears its fake BARs). */
  preReset?(vdev: VfioPciDevice): void;
  /** `open_device` after `vfio_pci_core_enable`, on the first open (nvgrace clears its fake BARs). */
  openDevice?(vdev: VfioPciDevice): void;
  /**
   * Config-region registers the variant emulates (nvgrace: the fake BARs): the value a `pread`
   * returns, or null to let the core answer.
   */
  configRead?(vdev: VfioPciDevice, offset: number, size: 1 | 2 | 4): number | null;
  /** A `pwrite` of an emulated register: true when the variant took it (the device never sees it). */
  configWrite?(vdev: VfioPciDevice, offset: number, size: 1 | 2 | 4, value: number): boolean;
  /**
   * Device-fd ioctls the variant answers itself, ahead of vfio-pci (nvgrace: GET_REGION_INFO of
   * its fake BARs, IOEVENTFD); `undefined` hands the call on to the core.
   */
  ioctl?(vdev: VfioPciDevice, cmd: number, arg: UserBuffer): number | undefined;
}

export const VFIO_PCI_CORE_DRIVER: VfioVariantDriver = {
  name: "vfio-pci",
  getDmabufPhys: vfioPciCoreGetDmabufPhys,
};

/** Variant drivers known by name (machine files and scenarios bind by driver name). */
export const VFIO_DRIVERS: Record<string, VfioVariantDriver> = {
  "vfio-pci": VFIO_PCI_CORE_DRIVER,
  // variant drivers without an export path (mlx5, hisi_acc, pds, qat, virtio, xe, ism …)
  "mlx5-vfio-pci": { name: "mlx5-vfio-pci", getDmabufPhys: null },
  "hisi-acc-vfio-pci": { name: "hisi-acc-vfio-pci", getDmabufPhys: null },
};

/** Faults a test can inject into one device (sites not covered by the machine's FaultPlan). */
export interface VfioDeviceFaults {
  /** The runtime-PM resume of the ioctl wrapper fails (§6.3 step 0 → -EIO). */
  runtimeResume?: boolean;
  /** The physical config write fails with this errno (R3). */
  configWrite?: "EIO" | "ENODEV" | "EINVAL";
  /** The physical config read of COMMAND fails (R1 first step). */
  configRead?: "EIO" | "ENODEV";
  /** pci_try_reset_function finds the device lock contended (-EAGAIN, K-129). */
  resetContended?: boolean;
  /** The hot-reset ownership check fails for this device (K-132). */
  foreignOwner?: boolean;
}

export class VfioPciDevice {
  readonly dmabufs: VfioDmaBuf[] = [];
  /** Registration refcount (§6.5): 1 while registered, +1 per live linked buffer. */
  registration = 1;
  /** Unregistration waits for the count to reach zero. */
  unregisterPending = false;
  openCount = 0;
  resetWorks = false;
  /** Virtual COMMAND register (§8.1). */
  vcmd = 0;
  lowPower: { engaged: boolean; wakeup: KFile | null } = { engaged: false, wakeup: null };
  readonly memoryLock: Lock;
  readonly faults: VfioDeviceFaults = {};
  /** The exporter ops of this device's buffers (one table, like the kernel's static ops). */
  dmabufOps: DmaBufOps | null = null;
  /** File references dropped once memory_lock is released (see dmaBufMove). */
  readonly deferredPuts: DmaBuf[] = [];

  constructor(
    readonly vfio: Vfio,
    readonly pdev: PciDev,
    readonly driver: VfioVariantDriver,
  ) {
    this.memoryLock = new Lock(vfio.machine.locks, "memory_lock", `${pdev.bdf}.memory_lock`);
  }

  get bdf(): string {
    return this.pdev.bdf;
  }

  /** `__vfio_pci_memory_enabled` (§8.1). */
  get memoryEnabled(): boolean {
    return this.pdev.powerState < 3 && (this.pdev.isVirtfn || (this.vcmd & PCI_COMMAND_MEMORY) !== 0);
  }

  tryGetRegistration(): boolean {
    if (this.registration <= 0) return false;
    this.registration++;
    return true;
  }

  putRegistration(): void {
    this.registration--;
    if (this.registration === 0 && this.unregisterPending) this.vfio.completeUnregister(this);
  }

  /** Runs `body` under memory_lock (write), then drops the file references taken meanwhile. */
  withMemoryLock<T>(body: () => T): T {
    try {
      return this.memoryLock.with(body);
    } finally {
      this.flushDeferredPuts();
    }
  }

  flushDeferredPuts(): void {
    while (this.deferredPuts.length) this.deferredPuts.shift()!.file.put();
  }

  move(revoked: boolean, cause: string): void {
    dmaBufMove(this, revoked, cause);
  }

  /** Invalidate CPU mmaps of the BARs (modelled as an event: the model has no user mappings). */
  zap(cause: string): void {
    this.vfio.machine.log.emit({ kind: "zap", device: this.bdf, cause });
  }

  /** SR-IOV enabled with VFs: the VFIO power wrapper refuses any state above D0 (§8.4 R4, K-194). */
  get hasVfsEnabled(): boolean {
    const o = this.pdev.config.findExtCapability(PCI_EXT_CAP_ID_SRIOV);
    if (!o) return false;
    return (
      (this.pdev.config.read16(o + PCI_SRIOV_CTRL) & PCI_SRIOV_CTRL_VFE) !== 0 &&
      this.pdev.config.read16(o + PCI_SRIOV_NUM_VF) > 0
    );
  }

  /** `vfio_pci_set_power_state`: false when refused. */
  setPowerState(state: number): boolean {
    if (state > 0 && this.hasVfsEnabled) return false;
    this.pdev.powerState = state;
    this.vfio.machine.log.emit({
      kind: "power",
      device: this.bdf,
      state: `D${state === 3 ? "3hot" : state}`,
    });
    return true;
  }
}

/** The device fd's private data. */
interface DeviceFile {
  vdev: VfioPciDevice;
  /** Opened through /dev/vfio/devices (cdev) and not yet bound to iommufd (§6.3 step 0). */
  cdevUnbound: boolean;
}

export class Vfio {
  readonly devices = new Map<PciDev, VfioPciDevice>();

  constructor(readonly machine: Machine) {
    registerVariantFeatures(machine);
  }

  /** Binds a function to vfio-pci (or a variant): `vfio_pci_core_init_dev` + registration. */
  bind(pdev: PciDev, driverName = "vfio-pci"): VfioPciDevice {
    const existing = this.devices.get(pdev);
    if (existing) return existing;
    const driver = VFIO_DRIVERS[driverName] ?? this.machine.vfioDrivers?.[driverName];
    if (!driver) throw new KernelError("ENODEV", `no VFIO driver named ${driverName}`);
    try {
      this.machine.p2pdma.init(pdev);
    } catch (e) {
      if (!(e instanceof KernelError && e.errnoName === "EOPNOTSUPP")) throw e; // tolerated (§6.8)
    }
    const vdev = new VfioPciDevice(this, pdev, driver);
    this.devices.set(pdev, vdev);
    pdev.driver = driver.name;
    this.machine.log.emit({ kind: "vfio-bind", device: pdev.bdf, driver: driver.name });
    return vdev;
  }

  /** Driver unbind: unregistration waits for every registration reference (§6.5). */
  unbind(vdev: VfioPciDevice): { completed: boolean } {
    vdev.unregisterPending = true;
    vdev.putRegistration();
    return { completed: !this.devices.has(vdev.pdev) };
  }

  completeUnregister(vdev: VfioPciDevice): void {
    this.devices.delete(vdev.pdev);
    this.machine.p2pdma.release(vdev.pdev);
    vdev.pdev.driver = null;
  }

  /** The device set of §6.8: root-bus functions and VFs alone, else every VFIO function on the bus. */
  devSet(vdev: VfioPciDevice): VfioPciDevice[] {
    const p = vdev.pdev;
    if (p.bus.isRoot || p.isVirtfn) return [vdev];
    return p.bus.devices.map((d) => this.devices.get(d)).filter((v): v is VfioPciDevice => !!v);
  }

  /** Opens the device (binding it to vfio-pci when it is not bound yet). Returns the fd. */
  open(bdf: string, opts: { cdev?: boolean; fds?: FdTable } = {}): number {
    const pdev = this.machine.device(bdf);
    const vdev =
      this.devices.get(pdev) ??
      this.bind(pdev, pdev.driver && VFIO_DRIVERS[pdev.driver] ? pdev.driver : "vfio-pci");
    if (vdev.unregisterPending) throw new KernelError("ENODEV", `${bdf} is being unregistered`);
    if (vdev.openCount === 0) {
      this.enable(vdev);
      vdev.driver.openDevice?.(vdev);
    }
    vdev.openCount++;
    const file = new KFile("vfio-device", this.fileOps(), 2, {
      vdev,
      cdevUnbound: !!opts.cdev,
    } satisfies DeviceFile);
    const fd = (opts.fds ?? this.machine.fds).install(file);
    this.machine.log.emit({ kind: "vfio-open", device: bdf, fd });
    return fd;
  }

  /** `vfio_pci_core_enable` (§6.8). */
  private enable(vdev: VfioPciDevice): void {
    const p = vdev.pdev;
    let cmd = p.command;
    if (p.resources.some((r) => r.flags & IORESOURCE_MEM)) cmd |= PCI_COMMAND_MEMORY;
    if (p.resources.some((r) => r.flags & IORESOURCE_IO)) cmd |= PCI_COMMAND_IO;
    p.command = cmd;
    try {
      this.physicalReset(vdev);
      vdev.resetWorks = true;
    } catch (e) {
      if (e instanceof KernelError && e.errnoName === "EAGAIN") throw e; // aborts the open
      vdev.resetWorks = false;
    }
    vdev.vcmd = p.command | (p.isVirtfn ? PCI_COMMAND_MEMORY : 0);
  }

  private physicalReset(vdev: VfioPciDevice): void {
    const rec = resetFunction(vdev.pdev, { lockContended: vdev.faults.resetContended });
    this.machine.log.emit({ kind: "reset", device: rec.device, method: rec.method, affected: rec.affected });
  }

  /** Last close of the device (R13): disable and cleanup in the profile's order. */
  private closeDevice(vdev: VfioPciDevice): void {
    vdev.openCount--;
    if (vdev.openCount > 0) return;
    if (this.machine.kernel.closeOrder === "cleanup_then_disable") {
      dmaBufCleanup(vdev);
      this.disable(vdev);
    } else {
      this.disable(vdev);
      dmaBufCleanup(vdev);
    }
    this.machine.log.emit({ kind: "vfio-close", device: vdev.bdf });
  }

  /** `vfio_pci_core_disable`: low-power exit at the current power state, then the device is quiesced. */
  private disable(vdev: VfioPciDevice): void {
    vdev.lowPower.engaged = false;
    vdev.lowPower.wakeup = null;
    vdev.withMemoryLock(() => {
      if (vdev.memoryEnabled) vdev.move(false, "close: low-power exit");
    });
    const p = vdev.pdev;
    p.powerState = 0;
    p.command = p.command & ~(PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
    try {
      this.physicalReset(vdev); // no dma-buf revocation here
    } catch {
      // a failed reset at close is only logged
    }
  }

  private fileOps() {
    return {
      release: (f: KFile) => this.closeDevice((f.priv as DeviceFile).vdev),
      ioctl: (f: KFile, cmd: number, arg: UserBuffer) => this.deviceIoctl(f.priv as DeviceFile, cmd, arg),
    };
  }

  /** `ioctl(fd, cmd, arg)` on any fd of the user process (device fds and dma-buf fds). */
  ioctl(fd: number, cmd: number, arg: UserBuffer): number {
    return this.machine.fds.ioctl(fd, cmd, arg);
  }

  /** The device fd ioctl wrapper and dispatch (§6.3 step 0). */
  private deviceIoctl(df: DeviceFile, cmd: number, arg: UserBuffer): number {
    const vdev = df.vdev;
    if (df.cdevUnbound && cmd !== VFIO_IOCTL.VFIO_DEVICE_BIND_IOMMUFD)
      throw new KernelError("EINVAL", "device fd not bound to iommufd yet", "K-22");
    if (cmd === VFIO_IOCTL.VFIO_DEVICE_BIND_IOMMUFD) {
      df.cdevUnbound = false;
      return 0;
    }
    if (vdev.faults.runtimeResume) throw new KernelError("EIO", "runtime resume failed");
    const suspended = vdev.pdev.powerState === 3 && vdev.lowPower.engaged;
    if (suspended) this.runtimeResume(vdev);
    try {
      const own = vdev.driver.ioctl?.(vdev, cmd, arg);
      if (own !== undefined) return own;
      switch (cmd) {
        case VFIO_IOCTL.VFIO_DEVICE_FEATURE:
          return this.feature(vdev, arg);
        case VFIO_IOCTL.VFIO_DEVICE_RESET:
          return this.deviceReset(vdev);
        case VFIO_IOCTL.VFIO_DEVICE_PCI_HOT_RESET:
          return this.hotReset(vdev, arg);
        case VFIO_IOCTL.VFIO_DEVICE_GET_REGION_INFO:
          return this.regionInfo(vdev, arg);
        default:
          throw new KernelError("ENOTTY", `VFIO device: unknown ioctl 0x${cmd.toString(16)}`);
      }
    } finally {
      // Runtime PM put: a device whose low power is still engaged suspends again.
      if (vdev.lowPower.engaged && vdev.pdev.powerState === 0) vdev.pdev.powerState = 3;
    }
  }

  /** Runtime resume (the ioctl wrapper, or a device access/PME — R12). */
  runtimeResume(vdev: VfioPciDevice): void {
    vdev.pdev.powerState = 0;
    if (vdev.lowPower.wakeup) {
      this.machine.log.emit({ kind: "eventfd-signal", device: vdev.bdf });
      vdev.lowPower.wakeup = null;
      vdev.lowPower.engaged = false; // no move(0): buffers stay revoked (R12)
    }
  }

  /** VFIO_DEVICE_FEATURE: generic checks (§6.3), then vfio-pci's features. */
  private feature(vdev: VfioPciDevice, arg: UserBuffer): number {
    const hdr = arg.copyFromUser(0, FEATURE_HEADER_SIZE, "struct vfio_device_feature");
    const argsz = hdr.getUint32(0, true);
    const flags = hdr.getUint32(4, true);
    if (argsz < FEATURE_HEADER_SIZE) throw new KernelError("EINVAL", "argsz smaller than the header", "K-11");
    const known =
      VFIO_DEVICE_FEATURE_MASK |
      VFIO_DEVICE_FEATURE_GET |
      VFIO_DEVICE_FEATURE_SET |
      VFIO_DEVICE_FEATURE_PROBE;
    if (flags & ~known) throw new KernelError("EINVAL", "unknown flag bits", "K-12");
    if (
      flags & VFIO_DEVICE_FEATURE_GET &&
      flags & VFIO_DEVICE_FEATURE_SET &&
      !(flags & VFIO_DEVICE_FEATURE_PROBE)
    )
      throw new KernelError("EINVAL", "GET and SET without PROBE", "K-13");
    const index = flags & VFIO_DEVICE_FEATURE_MASK;
    const dataLen = argsz - FEATURE_HEADER_SIZE;
    switch (index) {
      case VFIO_FEATURE.MIGRATION:
      case VFIO_FEATURE.MIG_DEVICE_STATE:
      case VFIO_FEATURE.DMA_LOGGING_START:
      case VFIO_FEATURE.DMA_LOGGING_STOP:
      case VFIO_FEATURE.DMA_LOGGING_REPORT:
      case VFIO_FEATURE.MIG_DATA_SIZE:
        throw new KernelError("ENOTTY", "device has no migration or dirty-logging support");
      case VFIO_FEATURE.LOW_POWER_ENTRY:
        return this.lowPowerEntry(vdev, flags, arg, dataLen, false);
      case VFIO_FEATURE.LOW_POWER_ENTRY_WITH_WAKEUP:
        return this.lowPowerEntry(vdev, flags, arg, dataLen, true);
      case VFIO_FEATURE.LOW_POWER_EXIT:
        return this.lowPowerExit(vdev, flags, dataLen);
      case VFIO_FEATURE.DMA_BUF:
        if (!this.machine.kernel.vfioPciDmabuf)
          throw new KernelError("ENOTTY", "CONFIG_VFIO_PCI_DMABUF=n", "K-24");
        return featureDmaBuf(vdev, flags, arg, dataLen);
      default: {
        const extra = this.machine.vfioFeatures?.[index];
        if (extra) return extra(vdev, flags, arg, dataLen);
        throw new KernelError("ENOTTY", `feature ${index} is not implemented by vfio-pci`, "K-20");
      }
    }
  }

  /** R10: LOW_POWER_ENTRY (3) and ENTRY_WITH_WAKEUP (4). */
  private lowPowerEntry(
    vdev: VfioPciDevice,
    flags: number,
    arg: UserBuffer,
    dataLen: number,
    wakeup: boolean,
  ): number {
    if (vfioCheckFeature(flags, dataLen, VFIO_DEVICE_FEATURE_SET, wakeup ? 8 : 0) === 0) return 0;
    let efd: KFile | null = null;
    if (wakeup) {
      const v = arg.copyFromUser(FEATURE_HEADER_SIZE, 8, "struct vfio_device_low_power_entry_with_wakeup");
      const fd = v.getInt32(0, true);
      if (fd < 0) throw new KernelError("EINVAL", "wakeup_eventfd < 0", "K-195");
      efd = this.machine.fds.fget(fd); // -EBADF
      efd.put();
      if (efd.kind !== "eventfd")
        throw new KernelError("EINVAL", `descriptor ${fd} is not an eventfd`, "K-195");
    }
    vdev.zap("low-power entry");
    vdev.withMemoryLock(() => {
      vdev.move(true, "low-power entry");
      if (vdev.lowPower.engaged) throw new KernelError("EINVAL", "low power already engaged", "K-134");
      vdev.lowPower.engaged = true;
      vdev.lowPower.wakeup = efd;
    });
    return 0; // the ioctl wrapper's put then runtime-suspends the device (D3hot)
  }

  /** R11: LOW_POWER_EXIT (5). */
  private lowPowerExit(vdev: VfioPciDevice, flags: number, dataLen: number): number {
    if (vfioCheckFeature(flags, dataLen, VFIO_DEVICE_FEATURE_SET, 0) === 0) return 0;
    vdev.withMemoryLock(() => {
      vdev.lowPower.engaged = false;
      vdev.lowPower.wakeup = null;
      if (vdev.memoryEnabled) vdev.move(false, "low-power exit");
    });
    return 0;
  }

  /** R8: VFIO_DEVICE_RESET. */
  private deviceReset(vdev: VfioPciDevice): number {
    vdev.driver.preReset?.(vdev); // the variant's own ioctl runs before the core's checks (§9.1)
    if (!vdev.resetWorks) throw new KernelError("EINVAL", "device has no working reset", "K-128");
    vdev.zap("VFIO_DEVICE_RESET");
    let err: unknown = null;
    vdev.withMemoryLock(() => {
      vdev.pdev.powerState = 0;
      vdev.move(true, "VFIO_DEVICE_RESET");
      try {
        this.physicalReset(vdev);
      } catch (e) {
        err = e; // revocation happened anyway (K-129)
      }
      if (vdev.memoryEnabled) vdev.move(false, "VFIO_DEVICE_RESET done");
    });
    if (err) throw err;
    return 0;
  }

  /** R9: VFIO_DEVICE_PCI_HOT_RESET over the device set. */
  private hotReset(vdev: VfioPciDevice, arg: UserBuffer): number {
    arg.copyFromUser(0, 12, "struct vfio_pci_hot_reset");
    const set = this.devSet(vdev);
    const locked: VfioPciDevice[] = [];
    const finish = () => {
      for (const d of [...locked].reverse()) {
        if (d.openCount > 0 && d.memoryEnabled) d.move(false, "hot reset done");
        d.memoryLock.unlock();
        d.flushDeferredPuts();
      }
    };
    try {
      for (const d of set) {
        if (d.faults.foreignOwner)
          throw new KernelError("EINVAL", `${d.bdf}: not owned by the caller`, "K-132");
        if (!d.memoryLock.trylock())
          throw new KernelError("EBUSY", `${d.bdf}: memory_lock contended`, "K-131");
        locked.push(d);
        d.move(true, "hot reset");
        d.zap("hot reset");
      }
      for (const d of set) d.pdev.powerState = 0;
      const bridge = Fabric.upstreamBridge(vdev.pdev);
      if (!bridge) throw new KernelError("ENOTTY", "no bridge to reset the bus behind");
      const rec = resetBus(bridge);
      this.machine.log.emit({
        kind: "reset",
        device: rec.device,
        method: rec.method,
        affected: rec.affected,
      });
    } finally {
      finish();
    }
    return 0;
  }

  /** VFIO_DEVICE_GET_REGION_INFO for the BARs, ROM, config and VGA regions. */
  private regionInfo(vdev: VfioPciDevice, arg: UserBuffer): number {
    const v = arg.copyFromUser(0, 16, "struct vfio_region_info");
    const argsz = v.getUint32(0, true);
    const index = v.getUint32(8, true);
    if (argsz < REGION_INFO_SIZE) throw new KernelError("EINVAL", "argsz too small");
    if (index >= VFIO_PCI_REGION.NUM_REGIONS)
      throw new KernelError("EINVAL", `region ${index} does not exist`);
    let size = 0n;
    let flags = 0;
    if (index <= VFIO_PCI_REGION.BAR5) {
      const r = vdev.pdev.resources[index];
      size = r.flags ? r.len : 0n;
      if (size) flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
      if (size && r.flags & IORESOURCE_MEM && size >= 4096n) flags |= VFIO_REGION_INFO_FLAG_MMAP;
    } else if (index === VFIO_PCI_REGION.CONFIG) {
      size = BigInt(vdev.pdev.config.size);
      flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    }
    const out = new Uint8Array(REGION_INFO_SIZE);
    const o = new DataView(out.buffer);
    o.setUint32(0, argsz, true);
    o.setUint32(4, flags, true);
    o.setUint32(8, index, true);
    o.setBigUint64(16, size, true);
    o.setBigUint64(24, vfioRegionOffset(index), true);
    arg.copyToUser(0, out, "struct vfio_region_info");
    return 0;
  }

  /* config space through the VFIO config region (§8.4 R1–R7) */

  /** `pread` of the config region. COMMAND's MEMORY and IO bits are the virtual ones. */
  configRead(fd: number, offset: number, size: 1 | 2 | 4): number {
    const vdev = this.deviceOf(fd);
    const emulated = vdev.driver.configRead?.(vdev, offset, size);
    if (emulated !== undefined && emulated !== null) return emulated >>> 0;
    let v = vdev.pdev.configRead(offset, size);
    if (offset <= PCI_COMMAND + 1 && offset + size > PCI_COMMAND) {
      const virt =
        (vdev.pdev.command & ~(PCI_COMMAND_MEMORY | PCI_COMMAND_IO)) |
        (vdev.vcmd & (PCI_COMMAND_MEMORY | PCI_COMMAND_IO));
      const shift = (PCI_COMMAND - offset) * 8;
      if (offset === PCI_COMMAND) v = (v & ~0xffff) | (virt & (size === 1 ? 0xff : 0xffff));
      else if (offset === PCI_COMMAND + 1) v = (v & ~0xff) | ((virt >> 8) & 0xff);
      void shift;
    }
    return v >>> 0;
  }

  /** `pwrite` of the config region: the revoke rules of R1–R7 apply. */
  configWrite(fd: number, offset: number, size: 1 | 2 | 4, value: number): void {
    const vdev = this.deviceOf(fd);
    this.configWriteDev(vdev, offset, size, value);
  }

  configWriteDev(vdev: VfioPciDevice, offset: number, size: 1 | 2 | 4, value: number): void {
    if (![1, 2, 4].includes(size) || offset < 0 || offset + size > vdev.pdev.config.size || offset % size)
      throw new KernelError(
        "EINVAL",
        `config write of ${size} bytes at 0x${offset.toString(16)} is not naturally aligned`,
      );
    this.machine.log.emit({ kind: "config-write", device: vdev.bdf, offset, size, value });
    if (vdev.driver.configWrite?.(vdev, offset, size, value)) return;
    const p = vdev.pdev;
    const pm = p.pmCapOffset;
    const exp = p.pcieCapOffset;
    const af = p.config.findCapability(PCI_CAP_ID_AF);
    if (offset === PCI_COMMAND) {
      this.commandWrite(vdev, size, value);
      return;
    }
    if (pm && offset === pm + PCI_PM_CTRL) {
      this.pmCtrlWrite(vdev, size, value);
      return;
    }
    if (exp && offset === exp + PCI_EXP_DEVCTL && value & PCI_EXP_DEVCTL_BCR_FLR) {
      this.physicalWrite(vdev, offset, size, value & ~PCI_EXP_DEVCTL_BCR_FLR);
      if (p.flrCapable) this.flrWrite(vdev, "flr", "DEVCTL.BCR_FLR");
      return;
    }
    if (af && offset === af + PCI_AF_CTRL && value & PCI_AF_CTRL_FLR) {
      if (p.afFlrCapable) this.flrWrite(vdev, "af_flr", "AF_CTRL.FLR");
      return;
    }
    this.physicalWrite(vdev, offset, size, value);
  }

  private physicalWrite(vdev: VfioPciDevice, offset: number, size: 1 | 2 | 4, value: number): void {
    if (vdev.faults.configWrite)
      throw new KernelError(vdev.faults.configWrite, "physical config write failed", "K-138");
    vdev.pdev.configWrite(offset, size, value);
  }

  /** R1 / R2 / R3: a write whose chunk starts at COMMAND. */
  private commandWrite(vdev: VfioPciDevice, size: 1 | 2 | 4, value: number): void {
    const newCmd = size === 1 ? (vdev.vcmd & 0xff00) | (value & 0xff) : value & 0xffff;
    const newMem = (newCmd & PCI_COMMAND_MEMORY) !== 0;
    if (!newMem) {
      if (vdev.faults.configRead) throw new KernelError(vdev.faults.configRead, "reading COMMAND failed");
      vdev.zap("COMMAND.MEMORY=0");
    }
    vdev.withMemoryLock(() => {
      if (!newMem) vdev.move(true, "COMMAND.MEMORY=0");
      this.physicalWrite(vdev, PCI_COMMAND, size, value); // R3: a failure leaves the buffers revoked
      vdev.vcmd = (vdev.vcmd & ~0xffff) | newCmd;
      if (vdev.memoryEnabled) vdev.move(false, "COMMAND.MEMORY=1");
    });
  }

  /** R4 / R5: PM control. */
  private pmCtrlWrite(vdev: VfioPciDevice, size: 1 | 2 | 4, value: number): void {
    const state = value & 3;
    if (state === 3) vdev.zap("PM_CTRL D3hot");
    vdev.withMemoryLock(() => {
      if (state === 3) vdev.move(true, "PM_CTRL D3hot");
      const other = value & ~3;
      const pm = vdev.pdev.pmCapOffset;
      this.physicalWrite(
        vdev,
        pm + PCI_PM_CTRL,
        size,
        (vdev.pdev.configRead(pm + PCI_PM_CTRL, 2) & 3) | other,
      );
      vdev.setPowerState(state); // refused (stays D0) for a PF with VFs enabled (K-194)
      if (vdev.memoryEnabled) vdev.move(false, `PM_CTRL D${state === 3 ? "3hot" : state}`);
    });
  }

  /** R6 / R7: a function-level reset requested through config space. */
  private flrWrite(vdev: VfioPciDevice, method: "flr" | "af_flr", cause: string): void {
    vdev.zap(cause);
    vdev.withMemoryLock(() => {
      vdev.move(true, cause);
      try {
        const rec = resetFunction(vdev.pdev, { method, lockContended: vdev.faults.resetContended });
        this.machine.log.emit({
          kind: "reset",
          device: rec.device,
          method: rec.method,
          affected: rec.affected,
        });
      } catch {
        // the config write itself still succeeds
      }
      if (vdev.memoryEnabled) vdev.move(false, `${cause} done`);
    });
  }

  /** R12: the device is touched (or signals PME) while low power with a wake-up eventfd is armed. */
  wake(vdev: VfioPciDevice): void {
    this.runtimeResume(vdev);
  }

  deviceOf(fd: number): VfioPciDevice {
    const f = this.machine.fds.peek(fd);
    if (!f) throw new KernelError("EBADF", `descriptor ${fd} is not open`);
    if (f.kind !== "vfio-device") throw new KernelError("EINVAL", `descriptor ${fd} is not a VFIO device`);
    return (f.priv as DeviceFile).vdev;
  }

  /** `close(fd)` on the user process. */
  close(fd: number): void {
    this.machine.fds.close(fd);
  }

  /** Convenience: UserBuffer from bytes. */
  static arg(bytes: Uint8Array | null): UserBuffer {
    return new UserBuffer(bytes);
  }
}
