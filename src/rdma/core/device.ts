/**
 * IB core objects (include/rdma/ib_verbs.h, reduced to what dma-buf MRs need): an IB device with
 * its driver ops, protection domains and memory regions, and the environment every RDMA call runs
 * in (machine, knobs, event log, scheduler).
 */
import type { DmaDevice } from "../../dma/device.js";
import type { Machine } from "../../machine/machine.js";
import type { RdmaOp } from "../events.js";
import type { RdmaProfile } from "../profile.js";
import type { Sched, Task } from "../sync.js";
import type { TranslateRequest, TranslateResult } from "../translate.js";

/** What every RDMA kernel call needs from its machine. */
export interface RdmaEnv {
  readonly machine: Machine;
  readonly profile: RdmaProfile;
  readonly sched: Sched;
  emit(op: RdmaOp, dev: string, detail?: string, projected?: boolean): void;
  nextId(kind: string): number;
}

/** `struct ib_pd`. */
export interface IbPd {
  readonly dev: IbDevice;
  /** Firmware PD number. */
  readonly pdn: number;
  /** MRs that use it. */
  usecnt: number;
}

/** `struct ib_mr` as the core sees it. */
export interface IbMr {
  readonly dev: IbDevice;
  readonly pd: IbPd;
  lkey: number;
  rkey: number;
  iova: bigint;
  length: bigint;
  access: number;
  projected?: true;
}

/**
 * A DMA handle (`UVERBS_OBJECT_DMAH`, tph-and-tlp §5.3): processing hint and, with a CPU id, a
 * steering tag from the platform. `ph` 0xFF (`MLX5_IB_NO_PH`) means no TPH.
 */
export interface DmaHandle {
  ph: number;
  cpuId?: number;
  memType?: 0 | 1;
}

/** A flags attribute as the handler receives it: its length and raw value (absent = undefined). */
export interface FlagsAttr {
  len: number;
  value: bigint;
}

/** Arguments of `reg_user_mr_dmabuf` after the core's checks (§8.1 step 7). */
export interface RegDmabufArgs {
  pd: IbPd;
  offset: bigint;
  length: bigint;
  iova: bigint;
  fd: number;
  access: number;
  dmah: DmaHandle | null;
  /** The mlx5 driver attribute 0x1000 of the bundle, when present. */
  mlx5Access?: FlagsAttr;
}

/** A registered IB device and its driver's verbs. Errors are thrown {@link KernelError}s. */
export abstract class IbDevice {
  readonly pds = new Set<IbPd>();
  /** User-visible MRs (returned by registration, not internal ones). */
  readonly mrs = new Set<IbMr>();
  removed = false;
  abstract readonly driverId: number;
  /** "mlx5", "rxe". */
  abstract readonly driverName: string;

  constructor(
    readonly env: RdmaEnv,
    public name: string,
    /** `ibdev->dma_device`: the function whose DMA the device's own MRs use. */
    readonly dmaDevice: DmaDevice,
  ) {}

  abstract allocPd(): IbPd;
  abstract deallocPd(pd: IbPd): void;
  /** `reg_user_mr_dmabuf`; undefined when the driver has none (§8.1 step 1). */
  regUserMrDmabuf?(args: RegDmabufArgs): Task<IbMr>;
  abstract deregMr(mr: IbMr): Task<void>;
  /** mlx5: the bound DMA PF's sysfs path for a buffer of `outLen` bytes (NUL included). */
  dataDirectSysfsPath?(outLen: number): Task<Uint8Array>;
  /** Data plane: what a DMA through `key` would touch (or why it fails). */
  abstract translate(req: TranslateRequest): TranslateResult;
}
