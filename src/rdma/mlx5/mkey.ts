/**
 * mlx5 memory keys (the HCA's translation objects, `struct mlx5_mkey` + the mkey context fields the
 * model needs) and mlx5 MRs (`struct mlx5_ib_mr`, rdma-data-direct.md §3.4).
 */
import type { IbMr, IbPd } from "../core/device.js";
import type { IbUmemDmabuf } from "../core/umem-dmabuf.js";
import { IB_ACCESS, MLX5_MKC_ACCESS_MODE } from "../uapi.js";
import type { Mlx5IbDev } from "./device.js";

export type MkeyState = "enabled" | "disabled" | "destroyed";

export const ACCESS_MODE_NAME: Record<number, string> = Object.fromEntries(
  Object.entries(MLX5_MKC_ACCESS_MODE).map(([k, v]) => [v, k]),
);

/** The access bits of an mkey context. */
export interface MkeyRights {
  localWrite: boolean;
  localRead: boolean;
  remoteWrite: boolean;
  remoteRead: boolean;
  atomic: boolean;
  relaxedOrderingWrite: boolean;
  relaxedOrderingRead: boolean;
}

/** KSM translation: one entry per block of `blockSize` bytes, `{key, va}` each. */
export interface KsmTable {
  blockSize: bigint;
  keys: Uint32Array;
  vas: BigUint64Array;
}

/** TPH fields of an mkey (`pcie_tph_en`, `pcie_tph_ph`, `pcie_tph_steering_tag_index`). */
export interface MkeyTph {
  en: boolean;
  ph: number;
  stIndex: number;
  /** The tag the index stands for (what goes on the wire). */
  st: number;
  extended: boolean;
  /** The ST-index reference held by this mkey (released when the mkey goes away). */
  ownsIndex: boolean;
  fromDmah: boolean;
}

export class Mkey {
  state: MkeyState = "enabled";
  /** MTT mode: the translation is loaded (false after an invalidate zapped it). */
  mttValid = false;
  ksm: KsmTable | null = null;
  crossing: { vhcaId: number; key: number } | null = null;
  tph: MkeyTph | null = null;
  umrEn = true;
  free = false;
  qpn = 0xffffff;
  /** The MR that owns this mkey (null for the internal data-direct mkeys). */
  mr: Mlx5Mr | null = null;
  projected?: true;
  constructor(
    readonly key: number,
    readonly accessMode: number,
    readonly pdn: number,
    readonly start: bigint,
    readonly length: bigint,
    /** `length64`: the whole address space. */
    readonly length64: boolean,
    readonly rights: MkeyRights,
    /** `data_direct` bit: DMA through this mkey is issued by the data-direct DMA PF. */
    readonly dataDirect: boolean,
    readonly label: string,
  ) {}

  get modeName(): string {
    return ACCESS_MODE_NAME[this.accessMode] ?? String(this.accessMode);
  }

  covers(addr: bigint, len: bigint): boolean {
    if (this.length64) return true;
    return addr >= this.start && addr + len <= this.start + this.length && addr + len >= addr;
  }
}

/** mkey access bits from IB access flags (RO only where the device supports it). */
export function rightsOf(access: number, ro: { write: boolean; read: boolean }): MkeyRights {
  const wantRo = (access & IB_ACCESS.RELAXED_ORDERING) !== 0;
  return {
    localWrite: (access & IB_ACCESS.LOCAL_WRITE) !== 0,
    localRead: true,
    remoteWrite: (access & IB_ACCESS.REMOTE_WRITE) !== 0,
    remoteRead: (access & IB_ACCESS.REMOTE_READ) !== 0,
    atomic: (access & IB_ACCESS.REMOTE_ATOMIC) !== 0,
    relaxedOrderingWrite: wantRo && ro.write,
    relaxedOrderingRead: wantRo && ro.read,
  };
}

export type Mlx5MrKind = "plain" | "crossed" | "crossing";

/** `struct mlx5_ib_mr`. */
export class Mlx5Mr implements IbMr {
  readonly id: number;
  lkey = 0;
  rkey = 0;
  mmkey: Mkey | null = null;
  umem: IbUmemDmabuf | null = null;
  /** Crossing MRs of data-direct registrations and their crossed KSM MRs. */
  dataDirect = false;
  /** Crossed MRs only (§9.1). */
  revoked = false;
  /** Crossing → crossed (`dd_crossed_mr`). */
  ddCrossedMr: Mlx5Mr | null = null;
  /** Membership in `data_direct_mr_list` (`dd_node`). */
  inDdList = false;
  freed = false;
  projected?: true;
  constructor(
    readonly dev: Mlx5IbDev,
    readonly pd: IbPd,
    readonly kind: Mlx5MrKind,
    public iova: bigint,
    public length: bigint,
    public access: number,
  ) {
    this.id = dev.env.nextId("mr");
  }

  get accessMode(): number | null {
    return this.mmkey?.accessMode ?? null;
  }

  /** §10 crossed-MR state. */
  get state(): "ACTIVE" | "REVOKED" | "FREED" {
    return this.freed ? "FREED" : this.revoked ? "REVOKED" : "ACTIVE";
  }
}
