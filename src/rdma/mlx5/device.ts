/**
 * An mlx5 IB device (`struct mlx5_ib_dev`, rdma-data-direct.md §3.3, §5.1, §5.2, §9.5) on one NIC
 * PF: its firmware capabilities and VHCA id, its mkey table, the data-direct resources (internal PD,
 * the data-direct mkey and its relaxed-ordering twin), `data_direct_lock`, `data_direct_mr_list` and
 * the binding to a DMA PF; plus the steering-tag allocator used by the TPH consumer.
 */
import type { ErrnoName } from "../../core/errno.js";
import { KernelError } from "../../core/errors.js";
import type { PciDev } from "../../pci/device.js";
import type { TphCore } from "../../pci/tph.js";
import { IbDevice, type IbMr, type IbPd, type RdmaEnv, type RegDmabufArgs } from "../core/device.js";
import { Mutex, type Task } from "../sync.js";
import type { TranslateRequest, TranslateResult } from "../translate.js";
import { MLX5_CMD_OP_QUERY_VUID, MLX5_MKC_ACCESS_MODE, MLX5_VUID_LEN, RDMA_DRIVER } from "../uapi.js";
import type { DataDirectCore, DataDirectDev } from "./data-direct.js";
import { Mkey, type MkeyRights, type Mlx5Mr } from "./mkey.js";
import { mlx5DeregMr, mlx5RegUserMrDmabuf, mlx5Translate } from "./mr.js";
import { type Mlx5St, mlx5StCreate, mlx5StDeallocIndex, mlx5StDestroy } from "./st.js";

/** Firmware capabilities the model looks at (§3.3). */
export interface Mlx5Caps {
  /** `data_direct`. */
  dataDirect: boolean;
  /** cap2 `query_vuid`. */
  queryVuid: boolean;
  crossingVhcaMkey: boolean;
  relaxedOrderingWrite: boolean;
  relaxedOrderingRead: boolean;
  umrModifyEntitySizeDisabled: boolean;
  umrExtendedTranslationOffset: boolean;
  /** `mkey_pcie_tph` (tph-and-tlp §5.3). */
  mkeyPcieTph: boolean;
}

/** "caps all present" of §14. */
export const MLX5_ALL_CAPS: Mlx5Caps = {
  dataDirect: true,
  queryVuid: true,
  crossingVhcaMkey: true,
  relaxedOrderingWrite: true,
  relaxedOrderingRead: true,
  umrModifyEntitySizeDisabled: false,
  umrExtendedTranslationOffset: true,
  mkeyPcieTph: true,
};

/** What the firmware of one NIC PF reports (model input). */
export interface Mlx5NicConfig {
  vhcaId: number;
  caps?: Partial<Mlx5Caps>;
  /** The VUID QUERY_VUID returns (≤ 128 bytes; NUL padded). */
  firmwareVuid?: string | Uint8Array;
  /** QUERY_VUID fails with this errno (DD-6). */
  queryVuidErrno?: ErrnoName;
}

export type DataDirectState = "UNSUPPORTED" | "UNBOUND" | "BOUND";

/** One firmware command as issued (for tests: opcode and input fields). */
export interface FwCommand {
  opcode: number;
  input: Record<string, number>;
}

/** `MLX5_IB_NO_PH`. */
export const MLX5_IB_NO_PH = 0xff;
/** Key of the PA-mode data-direct mkeys, start of user mkey indexes. */
const FIRST_MKEY_INDEX = 1;

export function vuidBytes(v: string | Uint8Array | undefined): Uint8Array {
  const out = new Uint8Array(MLX5_VUID_LEN);
  if (v === undefined) return out;
  const b = typeof v === "string" ? Uint8Array.from(v, (c) => c.charCodeAt(0) & 0xff) : v;
  out.set(b.subarray(0, MLX5_VUID_LEN));
  return out;
}

export class Mlx5IbDev extends IbDevice {
  readonly driverId = RDMA_DRIVER.MLX5;
  readonly driverName = "mlx5";
  readonly caps: Mlx5Caps;
  readonly vhcaId: number;
  /** 128 bytes as the firmware reports them. */
  readonly firmwareVuid: Uint8Array;
  readonly ddLock: Mutex;
  readonly slowPathMutex: Mutex;
  /** `data_direct_dev` (protected by `data_direct_lock`). */
  dataDirectDev: DataDirectDev | null = null;
  /** A registration is in the global list (caps present and init succeeded). */
  ddRegistered = false;
  readonly ddr: { pdn: number; mkey: Mkey | null; mkeyRo: Mkey | null; mkeyRoValid: boolean } = {
    pdn: 0,
    mkey: null,
    mkeyRo: null,
    mkeyRoValid: false,
  };
  /** `data_direct_mr_list`: crossed MRs registered through data direct. */
  readonly dataDirectMrList: Mlx5Mr[] = [];
  /** The HCA's mkey table (key → mkey), internal ones included. */
  readonly mkeys = new Map<number, Mkey>();
  readonly cmdLog: FwCommand[] = [];
  st: Mlx5St | null = null;
  private nextMkeyIndex = FIRST_MKEY_INDEX;
  private nextPdn = 1;

  constructor(
    env: RdmaEnv,
    readonly pdev: PciDev,
    readonly cfg: Mlx5NicConfig,
    readonly dd: DataDirectCore,
    readonly tph: TphCore,
  ) {
    super(env, `mlx5 (${pdev.bdf})`, pdev);
    this.caps = { ...MLX5_ALL_CAPS, ...cfg.caps };
    this.vhcaId = cfg.vhcaId;
    this.firmwareVuid = vuidBytes(cfg.firmwareVuid);
    // always initialised, even without the capability (§3.3)
    this.ddLock = new Mutex(env.sched, "data_direct_lock", `${pdev.bdf}.data_direct_lock`);
    this.slowPathMutex = new Mutex(env.sched, "slow_path_mutex", `${pdev.bdf}.slow_path_mutex`);
  }

  /** §10 state of the IB device's data-direct side. */
  get ddState(): DataDirectState {
    if (!this.ddRegistered) return "UNSUPPORTED";
    return this.dataDirectDev ? "BOUND" : "UNBOUND";
  }

  get hasRoCaps(): boolean {
    return this.caps.relaxedOrderingWrite || this.caps.relaxedOrderingRead;
  }

  /** A firmware command; `fail` makes it return an error status. */
  fwCmd(opcode: number, input: Record<string, number>, fail?: ErrnoName): void {
    this.cmdLog.push({ opcode, input });
    this.env.emit("fw-cmd", this.name, `opcode 0x${opcode.toString(16)}${fail ? ` → ${fail}` : ""}`);
    if (fail) throw new KernelError(fail, `firmware command 0x${opcode.toString(16)} failed`);
  }

  /** `mlx5_core_create_mkey` (fault site `mlx5_core_create_mkey:<what>`). */
  createMkey(
    what: string,
    accessMode: number,
    pdn: number,
    start: bigint,
    length: bigint,
    length64: boolean,
    rights: MkeyRights,
    dataDirect: boolean,
    projected = false,
  ): Mkey {
    const e = this.env.machine.faults.check(`mlx5_core_create_mkey:${what}`);
    if (e) throw new KernelError(e, `create mkey (${what})`);
    const index = this.nextMkeyIndex++;
    const key = ((index << 8) | (index & 0xff)) >>> 0;
    const mk = new Mkey(key, accessMode, pdn, start, length, length64, rights, dataDirect, what);
    if (projected) mk.projected = true;
    this.mkeys.set(key, mk);
    this.env.emit(
      "mkey-create",
      this.name,
      `${what} 0x${key.toString(16)} ${mk.modeName}${dataDirect ? " data_direct" : ""}`,
      projected,
    );
    return mk;
  }

  /** `mlx5_core_destroy_mkey`: the mkey is gone; its ST-index reference is released. */
  destroyMkey(mk: Mkey): void {
    if (mk.state === "destroyed") return;
    mk.state = "destroyed";
    this.mkeys.delete(mk.key);
    if (mk.tph?.ownsIndex) {
      try {
        mlx5StDeallocIndex(this.st, mk.tph.stIndex);
      } catch {
        // WARN already recorded by the allocator
      }
    }
    this.env.emit("mkey-destroy", this.name, `${mk.label} 0x${mk.key.toString(16)}`, !!mk.projected);
  }

  /** UMR revoke: the mkey stays allocated but no longer translates. */
  disableMkey(mk: Mkey, why: string): void {
    if (mk.state !== "enabled") return;
    mk.state = "disabled";
    this.env.emit("mkey-disable", this.name, `${mk.label} 0x${mk.key.toString(16)} (${why})`, !!mk.projected);
  }

  allocPd(): IbPd {
    const e = this.env.machine.faults.check("mlx5_cmd_alloc_pd");
    if (e) throw new KernelError(e, "ALLOC_PD");
    const pd: IbPd = { dev: this, pdn: this.nextPdn++, usecnt: 0 };
    this.pds.add(pd);
    return pd;
  }

  deallocPd(pd: IbPd): void {
    this.pds.delete(pd);
  }

  override *regUserMrDmabuf(args: RegDmabufArgs): Task<IbMr> {
    return yield* mlx5RegUserMrDmabuf(this, args);
  }

  *deregMr(mr: IbMr): Task<void> {
    yield* mlx5DeregMr(this, mr as Mlx5Mr);
  }

  override *dataDirectSysfsPath(outLen: number): Task<Uint8Array> {
    return yield* this.dd.sysfsPath(this, outLen);
  }

  translate(req: TranslateRequest): TranslateResult {
    return mlx5Translate(this, req);
  }
}

/**
 * `mlx5_ib_data_direct_init` (§5.1), the INIT-stage part of IB device creation: QUERY_VUID, the
 * data-direct PD and mkey(s), the registration. Errors propagate (the stage loop turns them into
 * -ENOMEM).
 */
function* dataDirectInit(dev: Mlx5IbDev): Task<void> {
  const env = dev.env;
  // 1.
  if (!(dev.caps.dataDirect && dev.caps.queryVuid)) return;
  // 2. the first 128-byte entry of the answer
  dev.fwCmd(MLX5_CMD_OP_QUERY_VUID, { vhca_id: dev.vhcaId, data_direct: 1 }, dev.cfg.queryVuidErrno);
  const vuid = new Uint8Array(MLX5_VUID_LEN + 1);
  vuid.set(dev.firmwareVuid);
  // 3. resources
  const pd = dev.allocPd();
  dev.pds.delete(pd); // internal, not a user PD
  dev.ddr.pdn = pd.pdn;
  const all: MkeyRights = {
    localWrite: true,
    localRead: true,
    remoteWrite: true,
    remoteRead: true,
    atomic: true,
    relaxedOrderingWrite: false,
    relaxedOrderingRead: false,
  };
  const pa = MLX5_MKC_ACCESS_MODE.PA;
  dev.ddr.mkey = dev.createMkey("data_direct", pa, pd.pdn, 0n, 0n, true, all, true);
  if (env.profile.ddRelaxedOrderingMkey && dev.hasRoCaps) {
    try {
      dev.ddr.mkeyRo = dev.createMkey(
        "data_direct_ro",
        pa,
        pd.pdn,
        0n,
        0n,
        true,
        {
          ...all,
          relaxedOrderingWrite: dev.caps.relaxedOrderingWrite,
          relaxedOrderingRead: dev.caps.relaxedOrderingRead,
        },
        true,
      );
      dev.ddr.mkeyRoValid = true;
    } catch (e) {
      if (!(e instanceof KernelError)) throw e; // the twin is optional
    }
  }
  // 4.
  try {
    yield* dev.dd.ibReg(dev, vuid);
  } catch (e) {
    destroyDdResources(dev);
    throw e;
  }
  dev.ddRegistered = true;
}

function destroyDdResources(dev: Mlx5IbDev): void {
  if (dev.ddr.mkeyRo) dev.destroyMkey(dev.ddr.mkeyRo);
  if (dev.ddr.mkey) dev.destroyMkey(dev.ddr.mkey);
  dev.ddr.mkeyRo = null;
  dev.ddr.mkey = null;
  dev.ddr.mkeyRoValid = false;
  dev.ddr.pdn = 0;
}

/**
 * `__mlx5_ib_add` as far as modelled: the steering-tag allocator (mlx5 core init), then the INIT
 * stage with data-direct init. A failing stage fails the whole creation with -ENOMEM in both
 * modelled profiles; the stage's own errno is recorded as a diagnostic (§5.1 step 2).
 */
export function* createMlx5IbDev(
  env: RdmaEnv,
  pdev: PciDev,
  cfg: Mlx5NicConfig,
  dd: DataDirectCore,
  tph: TphCore,
): Task<Mlx5IbDev> {
  const dev = new Mlx5IbDev(env, pdev, cfg, dd, tph);
  dev.st = mlx5StCreate(tph, pdev, { mkeyPcieTph: dev.caps.mkeyPcieTph, diag: env.machine.diag });
  try {
    yield* dataDirectInit(dev);
  } catch (e) {
    mlx5StDestroy(tph, pdev, dev.st, false, env.machine.diag);
    if (!(e instanceof KernelError)) throw e;
    env.machine.diag.record("note:mlx5-ib-stage-failed", `${pdev.bdf}: INIT stage returned -${e.errnoName}`);
    throw new KernelError("ENOMEM", "__mlx5_ib_add: a stage failed (the stage loop reports -ENOMEM)", "DD-6");
  }
  return dev;
}

/**
 * `mlx5_ib_data_direct_cleanup` (§5.2): unregister, then destroy the RO twin, the mkey and the PD.
 * User MRs are gone by now.
 */
export function* mlx5DataDirectCleanup(dev: Mlx5IbDev): Task<void> {
  if (!dev.ddRegistered) return;
  yield* dev.dd.ibUnreg(dev);
  dev.ddRegistered = false;
  destroyDdResources(dev);
}

/** The rest of device teardown after the data-direct cleanup: TPH off (`mlx5_st_destroy`). */
export function mlx5DeviceFinish(dev: Mlx5IbDev): void {
  mlx5StDestroy(dev.tph, dev.pdev, dev.st, false, dev.env.machine.diag);
  dev.st = null;
}
