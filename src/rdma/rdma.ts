/**
 * The RDMA subsystem of one machine: IB devices (mlx5 on NIC PFs, a soft device for "not mlx5"),
 * the data-direct DMA PF driver and its global lists, uverbs files in the machine's user process,
 * the scheduler that can interleave kernel threads, and the data-plane translation entry point.
 * One per machine ({@link rdmaOf}); its knobs are an {@link RdmaProfile} that must agree with the
 * machine's kernel (`kernelProfile 'v7.0'` ⇔ `revokeSemantics 'revocable_wait'`).
 */
import { KernelError } from "../core/errors.js";
import { KFile, type UserBuffer } from "../core/file.js";
import type { DmaDevice } from "../dma/device.js";
import type { Machine } from "../machine/machine.js";
import type { PciDev } from "../pci/device.js";
import { TphCore } from "../pci/tph.js";
import { IbDevice, type IbMr, type IbPd, type RdmaEnv } from "./core/device.js";
import { buildUapi, type MethodSpec, UverbsFile, uverbsIoctl } from "./core/uverbs.js";
import type { RdmaOp } from "./events.js";
import { DataDirectCore } from "./mlx5/data-direct.js";
import {
  createMlx5IbDev,
  type Mlx5IbDev,
  type Mlx5NicConfig,
  mlx5DataDirectCleanup,
  mlx5DeviceFinish,
} from "./mlx5/device.js";
import { checkMachineProfile, type RdmaProfile, resolveRdmaProfile } from "./profile.js";
import { Sched, type Spawned, type Task } from "./sync.js";
import { accessFail, type TranslateRequest, type TranslateResult } from "./translate.js";
import { RDMA_DRIVER } from "./uapi.js";
import { UserMemory } from "./user-memory.js";

/** A software IB device of another driver (rxe-like): no dma-buf MRs, no data direct. */
export class SoftIbDevice extends IbDevice {
  readonly driverId = RDMA_DRIVER.RXE;
  readonly driverName = "rxe";
  private nextPdn = 1;
  allocPd(): IbPd {
    const pd: IbPd = { dev: this, pdn: this.nextPdn++, usecnt: 0 };
    this.pds.add(pd);
    return pd;
  }
  deallocPd(pd: IbPd): void {
    this.pds.delete(pd);
  }
  // biome-ignore lint/correctness/useYield: nothing to wait for
  *deregMr(mr: IbMr): Task<void> {
    this.mrs.delete(mr);
  }
  translate(req: TranslateRequest): TranslateResult {
    return accessFail(req.access, "invalid-key", `${this.name} has no MR 0x${req.key.toString(16)}`);
  }
}

export interface RdmaOptions {
  profile?: Partial<RdmaProfile>;
  /** The machine's TPH core, when another layer already made one. */
  tph?: TphCore;
}

interface UverbsFilePriv {
  file: UverbsFile;
  uapi: Map<number, MethodSpec>;
}

export class Rdma implements RdmaEnv {
  readonly profile: RdmaProfile;
  readonly sched: Sched;
  readonly tph: TphCore;
  readonly dd: DataDirectCore;
  readonly userMem = new UserMemory();
  readonly devices: IbDevice[] = [];
  readonly files = new Set<UverbsFile>();
  private readonly ids = new Map<string, number>();
  private readonly nameIndex = new Map<string, number>();
  private fops: ReturnType<Rdma["makeFileOps"]> | null = null;

  constructor(
    readonly machine: Machine,
    opts: RdmaOptions = {},
  ) {
    this.profile = resolveRdmaProfile(opts.profile);
    checkMachineProfile(machine, this.profile);
    this.sched = new Sched(machine.locks);
    this.tph = opts.tph ?? new TphCore(machine.fabric);
    this.dd = new DataDirectCore(this);
  }

  emit(op: RdmaOp, dev: string, detail?: string, projected?: boolean): void {
    this.machine.log.emit(
      projected
        ? { kind: "rdma", op, dev, detail, projected: true }
        : detail === undefined
          ? { kind: "rdma", op, dev }
          : { kind: "rdma", op, dev, detail },
    );
  }

  nextId(kind: string): number {
    const n = (this.ids.get(kind) ?? 0) + 1;
    this.ids.set(kind, n);
    return n;
  }

  private pci(p: PciDev | string): PciDev {
    return typeof p === "string" ? this.machine.device(p) : p;
  }

  private assignName(dev: IbDevice, prefix: string): void {
    const n = this.nameIndex.get(prefix) ?? 0;
    this.nameIndex.set(prefix, n + 1);
    dev.name = `${prefix}_${n}`;
  }

  /* ---- IB devices ------------------------------------------------------------------------- */

  /** Creates the mlx5 IB device of a NIC PF (§5.1). -ENOMEM when a stage fails (DD-6). */
  *addMlx5DeviceTask(pdev: PciDev | string, cfg: Mlx5NicConfig): Task<Mlx5IbDev> {
    const dev = yield* createMlx5IbDev(this, this.pci(pdev), cfg, this.dd, this.tph);
    this.assignName(dev, "mlx5");
    this.devices.push(dev);
    this.emit("ib-device-add", dev.name, `${dev.pdev.bdf} vhca ${dev.vhcaId} data-direct ${dev.ddState}`);
    return dev;
  }

  addMlx5Device(pdev: PciDev | string, cfg: Mlx5NicConfig): Mlx5IbDev {
    return this.sched.run(this.addMlx5DeviceTask(pdev, cfg));
  }

  /** A soft (non-mlx5) IB device, e.g. to show what mlx5-only calls do elsewhere. */
  addSoftDevice(dmaDevice: DmaDevice): SoftIbDevice {
    const dev = new SoftIbDevice(this, "rxe", dmaDevice);
    this.assignName(dev, "rxe");
    this.devices.push(dev);
    this.emit("ib-device-add", dev.name);
    return dev;
  }

  /** Device removal (§9.5): user objects destroyed first, then the driver's cleanup. */
  *removeIbDeviceTask(dev: IbDevice): Task<void> {
    if (dev.removed) return;
    for (const f of [...this.files]) if (f.dev === dev) yield* f.destroyAll(true);
    for (const mr of [...dev.mrs]) yield* dev.deregMr(mr);
    if (dev.driverId === RDMA_DRIVER.MLX5) {
      const m = dev as Mlx5IbDev;
      yield* mlx5DataDirectCleanup(m);
      mlx5DeviceFinish(m);
    }
    dev.removed = true;
    this.devices.splice(this.devices.indexOf(dev), 1);
    this.emit("ib-device-remove", dev.name);
  }

  removeIbDevice(dev: IbDevice): void {
    this.sched.run(this.removeIbDeviceTask(dev));
  }

  device(name: string): IbDevice {
    const d = this.devices.find((x) => x.name === name);
    if (!d) throw new KernelError("ENODEV", `no IB device ${name}`);
    return d;
  }

  /* ---- the data-direct PCI driver --------------------------------------------------------- */

  probeDmaPf(pdev: PciDev | string): void {
    this.sched.run(this.dd.probe(this.pci(pdev)));
  }
  removeDmaPf(pdev: PciDev | string): void {
    this.sched.run(this.dd.remove(this.pci(pdev)));
  }
  shutdownDmaPf(pdev: PciDev | string): void {
    this.dd.shutdown(this.pci(pdev));
  }
  registerDataDirectDriver(): { bdf: string; error?: string }[] {
    return this.sched.run(this.dd.registerDriver());
  }
  unregisterDataDirectDriver(): void {
    this.sched.run(this.dd.unregisterDriver());
  }

  /**
   * mlx5_ib module init (§4.1): the data-direct PCI driver first (probing every DMA PF), then the
   * IB devices of the NIC PFs given.
   */
  moduleInit(nics: { pdev: PciDev | string; cfg: Mlx5NicConfig }[]): Mlx5IbDev[] {
    this.registerDataDirectDriver();
    return nics.map((n) => this.addMlx5Device(n.pdev, n.cfg));
  }

  /** mlx5_ib module exit (DD-46): the data-direct driver first, then the IB devices. */
  *moduleExitTask(): Task<void> {
    yield* this.dd.unregisterDriver();
    for (const dev of [...this.devices].reverse())
      if (dev.driverId === RDMA_DRIVER.MLX5) yield* this.removeIbDeviceTask(dev);
  }

  moduleExit(): void {
    this.sched.run(this.moduleExitTask());
  }

  /* ---- uverbs ----------------------------------------------------------------------------- */

  /** Opens `/dev/infiniband/uverbsN` of `dev` in the user process; returns the fd. */
  openDevice(dev: IbDevice | string): number {
    const d = typeof dev === "string" ? this.device(dev) : dev;
    if (d.removed) throw new KernelError("ENODEV", `${d.name} is gone`);
    const file = new UverbsFile(this, d, this.userMem);
    this.files.add(file);
    this.fops ??= this.makeFileOps();
    const priv: UverbsFilePriv = { file, uapi: buildUapi(d, this) };
    return this.machine.fds.install(new KFile("uverbs", this.fops, 2, priv));
  }

  private makeFileOps() {
    return {
      ioctl: (f: KFile, cmd: number, arg: UserBuffer) => {
        const p = f.priv as UverbsFilePriv;
        return this.sched.run(uverbsIoctl(p.file, p.uapi, cmd, arg));
      },
      release: (f: KFile) => {
        const p = f.priv as UverbsFilePriv;
        this.sched.run(p.file.destroyAll(false));
        p.file.closed = true;
        this.files.delete(p.file);
      },
    };
  }

  private priv(fd: number): UverbsFilePriv {
    const f = this.machine.fds.peek(fd);
    if (!f) throw new KernelError("EBADF", `descriptor ${fd} is not open`);
    if (f.kind !== "uverbs") throw new KernelError("EINVAL", `descriptor ${fd} is not a uverbs file`);
    return f.priv as UverbsFilePriv;
  }

  fileOf(fd: number): UverbsFile {
    return this.priv(fd).file;
  }

  /** `ioctl(fd, cmd, arg)` on a uverbs fd. */
  ioctl(fd: number, cmd: number, arg: UserBuffer): number {
    return this.machine.fds.ioctl(fd, cmd, arg);
  }

  /** The same ioctl as a kernel thread the caller steps with {@link Sched.step}. */
  spawnIoctl(name: string, fd: number, cmd: number, arg: UserBuffer): Spawned<number> {
    const p = this.priv(fd);
    return this.sched.spawn(name, uverbsIoctl(p.file, p.uapi, cmd, arg));
  }

  /** Closes a uverbs fd (destroys its objects). */
  close(fd: number): void {
    this.machine.fds.close(fd);
  }

  /* ---- data plane ------------------------------------------------------------------------- */

  translate(dev: IbDevice | string, req: TranslateRequest): TranslateResult {
    const d = typeof dev === "string" ? this.device(dev) : dev;
    return d.translate(req);
  }
}

const instances = new WeakMap<Machine, Rdma>();

/** The machine's RDMA subsystem, created on first use (options only count then). */
export function rdmaOf(m: Machine, opts: RdmaOptions = {}): Rdma {
  let r = instances.get(m);
  if (!r) {
    r = new Rdma(m, opts);
    instances.set(m, r);
  }
  return r;
}
