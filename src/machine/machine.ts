/**
 * A booted host: one fabric wired to the subsystems that run on it (IOMMU groups, P2PDMA), with
 * the kernel profile it runs and one event log. Later layers (dma-buf, VFIO, RDMA) attach here.
 */
import { computeIommuGroupsDetailed, type IommuGroupResult } from "../iommu/groups.js";
import { P2pdma } from "../p2pdma/p2pdma.js";
import { HOST_BRIDGE_WHITELIST_6_19, type WhitelistEntry } from "../p2pdma/whitelist.js";
import type { PciDev } from "../pci/device.js";
import { type CpuInfo, DEFAULT_CPU, type Fabric } from "../pci/fabric.js";
import { EventLog } from "./events.js";

export interface KernelProfile {
  /** Kernel the semantics follow. */
  profile: "v6.19";
  pciP2pdma: boolean;
  whitelist: readonly WhitelistEntry[];
}

export const DEFAULT_KERNEL: KernelProfile = {
  profile: "v6.19",
  pciP2pdma: true,
  whitelist: HOST_BRIDGE_WHITELIST_6_19,
};

export interface MachineOptions {
  /** Overrides the CPU the source states (`--cpu`). */
  cpu?: CpuInfo;
  kernel?: Partial<KernelProfile>;
  /** Injected RNG (p2pmem find). */
  random?: () => number;
}

export class Machine {
  readonly log = new EventLog();
  readonly cpu: CpuInfo;
  /** True when neither the source nor the caller said which CPU this is. */
  readonly cpuAssumed: boolean;
  readonly kernel: KernelProfile;
  readonly p2pdma: P2pdma;
  private groupsCache: IommuGroupResult | null = null;

  constructor(
    readonly fabric: Fabric,
    opts: MachineOptions = {},
  ) {
    this.cpu = opts.cpu ?? fabric.cpu ?? DEFAULT_CPU;
    this.cpuAssumed = !opts.cpu && !fabric.cpu;
    this.kernel = { ...DEFAULT_KERNEL, ...opts.kernel };
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

  device(bdf: string): PciDev {
    return this.fabric.get(bdf);
  }
}
