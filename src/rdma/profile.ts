/**
 * The kernel knobs of the RDMA layer (rdma-data-direct.md §2, §8.2, §11, tph-and-tlp §5.4) and how
 * they map onto the machine's kernel profile: `kernelProfile 'v7.0'` is the dma-buf revoke series,
 * i.e. the machine's `revokeSemantics: 'revocable_wait'`, so the VFIO exporter and the dma-buf core
 * behave accordingly.
 */
import { InputError } from "../core/errors.js";
import { Machine, type MachineOptions } from "../machine/machine.js";
import type { KernelProfile } from "../machine/profile.js";
import type { Fabric } from "../pci/fabric.js";

export interface RdmaProfile {
  /** 'v6.19' (default) or 'v7.0' (revoke series applied). */
  kernelProfile: "v6.19" | "v7.0";
  /**
   * Projected, not upstream: mlx5 data direct imports through a revocable pinned attachment.
   * Only valid with 'v7.0'. Everything it produces is marked `projected: true`.
   */
  ddRevocablePinned: boolean;
  /** Create the relaxed-ordering twin of the data-direct mkey when the device has RO caps. */
  ddRelaxedOrderingMkey: boolean;
  /** The kernel has `MLX5_IB_METHOD_GET_DATA_DIRECT_SYSFS_PATH` (false: pre-6.12). */
  hasDataDirectSysfsMethod: boolean;
  /** REG_DMABUF_MR has mlx5 attribute 0x1000 (false: pre-6.12, DD-51). */
  hasMlx5DmabufAccessAttr: boolean;
  /** CONFIG_INFINIBAND_ON_DEMAND_PAGING (§8.2 step 1). */
  odp: boolean;
  /** CONFIG_INFINIBAND_USER_MEM (§8.2 step 1). */
  userMem: boolean;
  /** tph-and-tlp §5.4 open point: does the crossed MR of a data-direct registration carry TPH? (assumption) */
  dataDirectTph: "carry" | "drop";
}

export const DEFAULT_RDMA_PROFILE: RdmaProfile = {
  kernelProfile: "v6.19",
  ddRevocablePinned: false,
  ddRelaxedOrderingMkey: true,
  hasDataDirectSysfsMethod: true,
  hasMlx5DmabufAccessAttr: true,
  odp: true,
  userMem: true,
  dataDirectTph: "carry",
};

/** Completes and checks a profile; a knob combination the spec forbids is bad input (exit 2). */
export function resolveRdmaProfile(p: Partial<RdmaProfile> = {}, where = "rdma profile"): RdmaProfile {
  const r = { ...DEFAULT_RDMA_PROFILE, ...p };
  if (r.kernelProfile !== "v6.19" && r.kernelProfile !== "v7.0")
    throw new InputError(
      `kernelProfile must be 'v6.19' or 'v7.0', got ${JSON.stringify(r.kernelProfile)}`,
      where,
    );
  if (r.dataDirectTph !== "carry" && r.dataDirectTph !== "drop")
    throw new InputError(
      `dataDirectTph must be 'carry' or 'drop', got ${JSON.stringify(r.dataDirectTph)}`,
      where,
    );
  if (r.ddRevocablePinned && r.kernelProfile !== "v7.0")
    throw new InputError(
      "ddRevocablePinned (projected) needs kernelProfile 'v7.0': the 6.19 VFIO pin op refuses every pin",
      where,
    );
  return r;
}

/** The machine kernel settings a profile implies. */
export function machineKernelFor(p: RdmaProfile): Pick<KernelProfile, "revokeSemantics"> {
  return { revokeSemantics: p.kernelProfile === "v7.0" ? "revocable_wait" : "move_notify" };
}

/** Fails with {@link InputError} when the machine's kernel does not run the profile's semantics. */
export function checkMachineProfile(m: Machine, p: RdmaProfile, where = "rdma profile"): void {
  const want = machineKernelFor(p).revokeSemantics;
  if (m.kernel.revokeSemantics !== want)
    throw new InputError(
      `kernelProfile '${p.kernelProfile}' needs the machine's revokeSemantics '${want}', it has '${m.kernel.revokeSemantics}'`,
      where,
    );
}

/** Boots a machine whose kernel matches the RDMA profile (revokeSemantics derived from it). */
export function machineForProfile(
  fabric: Fabric,
  p: Partial<RdmaProfile> = {},
  opts: MachineOptions = {},
): { machine: Machine; profile: RdmaProfile } {
  const profile = resolveRdmaProfile(p);
  const want = machineKernelFor(profile);
  const given = opts.kernel?.revokeSemantics;
  if (given !== undefined && given !== want.revokeSemantics)
    throw new InputError(
      `kernelProfile '${profile.kernelProfile}' means revokeSemantics '${want.revokeSemantics}', not '${given}'`,
      "rdma profile",
    );
  const machine = new Machine(fabric, { ...opts, kernel: { ...opts.kernel, ...want } });
  return { machine, profile };
}
