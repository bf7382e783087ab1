/**
 * A booted host: one fabric wired to the subsystems that run on it, with the kernel profile it
 * runs, one user process's descriptor table, one diagnostics sink and one event log. Subsystems
 * are created lazily and in layer order (IOMMU → DMA → P2PDMA → dma-buf → VFIO).
 */
import { DiagnosticLog } from "../core/diagnostics.js";
import { FaultPlan } from "../core/fault-inject.js";
import type { UserBuffer } from "../core/file.js";
import { FdTable } from "../core/file.js";
import { LockChecker } from "../core/locks.js";
import { DmaApi } from "../dma/mapping.js";
import { DmaBufCore } from "../dmabuf/dma-buf.js";
import { computeIommuGroupsDetailed, type IommuGroupResult } from "../iommu/groups.js";
import { Iommu } from "../iommu/iommu.js";
import { P2pdma } from "../p2pdma/p2pdma.js";
import type { PciDev } from "../pci/device.js";
import { type CpuInfo, DEFAULT_CPU, type Fabric } from "../pci/fabric.js";
import { Vfio, type VfioPciDevice, type VfioVariantDriver } from "../vfio/vfio.js";
import { EventLog } from "./events.js";
import { DEFAULT_KERNEL, type KernelProfile } from "./profile.js";

export { DEFAULT_KERNEL, type KernelProfile } from "./profile.js";

export interface MachineOptions {
  /** Overrides the CPU the source states (`--cpu`). */
  cpu?: CpuInfo;
  kernel?: Partial<KernelProfile>;
  /** Injected RNG (p2pmem find). */
  random?: () => number;
  /** Failure injection shared by every subsystem. */
  faults?: FaultPlan;
  /** RLIMIT_NOFILE of the user process. */
  maxFds?: number;
  /** Events the log keeps (the newest); default 100,000. */
  logCapacity?: number;
}

export class Machine {
  readonly log: EventLog;
  readonly diag: DiagnosticLog;
  readonly locks: LockChecker;
  readonly faults: FaultPlan;
  readonly cpu: CpuInfo;
  /** True when neither the source nor the caller said which CPU this is. */
  readonly cpuAssumed: boolean;
  readonly kernel: KernelProfile;
  readonly p2pdma: P2pdma;
  /** The user process (a VMM, SPDK …) that opens devices and holds dma-buf fds. */
  readonly fds: FdTable;
  /** Variant VFIO drivers registered by other layers (nvgrace-gpu …), by driver name. */
  readonly vfioDrivers: Record<string, VfioVariantDriver> = {};
  /** Extra VFIO_DEVICE_FEATURE handlers by feature index (post-6.19 variants such as TPH). */
  readonly vfioFeatures: Record<
    number,
    (vdev: VfioPciDevice, flags: number, arg: UserBuffer, dataLen: number) => number
  > = {};
  private groupsCache: IommuGroupResult | null = null;
  private iommuCache: Iommu | null = null;
  private dmaCache: DmaApi | null = null;
  private dmabufCache: DmaBufCore | null = null;
  private vfioCache: Vfio | null = null;

  constructor(
    readonly fabric: Fabric,
    opts: MachineOptions = {},
  ) {
    this.log = new EventLog(opts.logCapacity);
    this.cpu = opts.cpu ?? fabric.cpu ?? DEFAULT_CPU;
    this.cpuAssumed = !opts.cpu && !fabric.cpu;
    this.kernel = { ...DEFAULT_KERNEL, ...opts.kernel };
    this.faults = opts.faults ?? new FaultPlan();
    const log = this.log;
    this.diag = new (class extends DiagnosticLog {
      override record(event: string, detail?: string): void {
        super.record(event, detail);
        log.emit({ kind: "diagnostic", event, detail });
      }
    })();
    this.locks = new LockChecker(this.diag);
    this.fds = new FdTable(opts.maxFds ?? 1024);
    this.p2pdma = new P2pdma({
      cpu: this.cpu,
      whitelist: this.kernel.whitelist,
      enabled: this.kernel.pciP2pdma,
      log: (line) => this.log.emit({ kind: "kernel-log", line }),
      random: opts.random,
    });
  }

  get name(): string {
    return this.fabric.name;
  }

  /** IOMMU groups as the kernel would form them at boot (recomputed after `invalidateGroups`). */
  get iommuGroups(): IommuGroupResult {
    this.groupsCache ??= computeIommuGroupsDetailed(this.fabric);
    return this.groupsCache;
  }

  invalidateGroups(): void {
    this.groupsCache = null;
  }

  get iommu(): Iommu {
    this.iommuCache ??= new Iommu(this.fabric, (d) => this.iommuGroups.groupOf.get(d)?.id, {
      iommuNoPermMap: this.kernel.iommuNoPermMap,
      faults: this.faults,
    });
    return this.iommuCache;
  }

  get dma(): DmaApi {
    this.dmaCache ??= new DmaApi(this.iommu, this.diag, { faults: this.faults });
    return this.dmaCache;
  }

  get dmabuf(): DmaBufCore {
    this.dmabufCache ??= new DmaBufCore(
      { moveNotify: this.kernel.moveNotify, revocableWait: this.kernel.revokeSemantics === "revocable_wait" },
      this.diag,
      this.locks,
      (e) => this.log.emit(e),
      () => this.log.active,
    );
    return this.dmabufCache;
  }

  get vfio(): Vfio {
    this.vfioCache ??= new Vfio(this);
    return this.vfioCache;
  }

  device(bdf: string): PciDev {
    return this.fabric.get(bdf);
  }
}
