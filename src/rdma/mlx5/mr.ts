/**
 * mlx5 dma-buf MRs (drivers/infiniband/hw/mlx5/mr.c; rdma-data-direct.md §8.2, §8.3, §9.1–9.4,
 * §5.3; tph-and-tlp §5.4):
 * - the ordinary path: a dynamic attachment to the NIC PF, an MTT mkey, an invalidate callback that
 *   zaps the translation and unmaps, and an ODP-style fault that re-maps on the next access;
 * - the data-direct path: a *crossed* KSM MR whose umem is pinned and mapped for the DMA PF, whose
 *   entries point through the PA-mode data-direct mkey, and a *crossing* mkey the user gets;
 * - deregistration, revocation of every data-direct MR (DMA PF unbind), the projected exporter
 *   revoke, and the data-plane translation of all of them.
 */
import { KernelError } from "../../core/errors.js";
import { hex } from "../../core/hex.js";
import type { DmaBufAttachment } from "../../dmabuf/dma-buf.js";
import { PciDev } from "../../pci/device.js";
import type { DmaHandle, RegDmabufArgs } from "../core/device.js";
import { getFlags32 } from "../core/flags.js";
import {
  alignDown,
  type IbUmemDmabuf,
  ibUmemDmabufGet,
  ibUmemDmabufGetPinnedRevocableAndLock,
  ibUmemDmabufGetPinnedWithDmaDevice,
  ibUmemDmabufMapPages,
  ibUmemDmabufRelease,
  ibUmemDmabufRevoke,
  ibUmemDmabufRevokeLocked,
  ibUmemDmabufSetRevokeLocked,
  ibUmemDmabufUnmapPages,
  minBig,
  PAGE_SIZE,
} from "../core/umem-dmabuf.js";
import type { Task } from "../sync.js";
import {
  accessFail,
  type DmaSegment,
  type RdmaAccessKind,
  type TranslateRequest,
  type TranslateResult,
} from "../translate.js";
import { IB_ACCESS, MLX5_IB_UAPI_REG_DMABUF_ACCESS_DATA_DIRECT, MLX5_MKC_ACCESS_MODE } from "../uapi.js";
import type { DataDirectDev } from "./data-direct.js";
import { MLX5_IB_NO_PH, type Mlx5IbDev } from "./device.js";
import { type Mkey, type MkeyRights, type MkeyTph, Mlx5Mr, rightsOf } from "./mkey.js";
import { mlx5StAllocIndex, mlx5StAllocIndexByTag, mlx5StDeallocIndex } from "./st.js";

const MODE = MLX5_MKC_ACCESS_MODE;
/** `MLX5_MAX_UMR_PAGES`. */
export const MLX5_MAX_UMR_PAGES = 1n << 16n;

/** `mlx5r_umr_can_load_pas` (§8.2 step 3). */
export function umrCanLoadPas(dev: Mlx5IbDev, length: bigint): boolean {
  if (!dev.caps.umrExtendedTranslationOffset && length >= MLX5_MAX_UMR_PAGES * PAGE_SIZE) return false;
  if (dev.caps.umrModifyEntitySizeDisabled) return false;
  return true;
}

function roCaps(dev: Mlx5IbDev) {
  return { write: dev.caps.relaxedOrderingWrite, read: dev.caps.relaxedOrderingRead };
}

/* ---------------------------------------------------------------------------------------------- */
/* TPH (tph-and-tlp §5.4)                                                                          */

function releaseTph(dev: Mlx5IbDev, t: MkeyTph | null): void {
  if (!t?.ownsIndex) return;
  try {
    mlx5StDeallocIndex(dev.st, t.stIndex);
  } catch {
    // the allocator recorded its WARN
  }
}

/**
 * The exporter's steering tag for a dma-buf MR without a DMA handle. Never fails the registration:
 * every failure means "no TPH" (EOPNOTSUPP silently, anything else with a debug event).
 */
function lookupTph(dev: Mlx5IbDev, umem: IbUmemDmabuf, resvHeld: boolean): MkeyTph | null {
  const m = dev.env.machine;
  const req = dev.tph.pcieTphEnabledReqType(dev.pdev);
  if (req !== 1 && req !== 3) return null; // 1.
  const buf = umem.dmabuf;
  if (!buf.ops.getTph) return null; // 2.
  const extended = req === 3;
  let got: { st: number; ph: number };
  try {
    const q = () => m.dmabuf.getTph(buf, extended);
    got = resvHeld ? q() : buf.resv.with(q); // 3.
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    if (e.errnoName !== "EOPNOTSUPP") m.diag.record("debug:mlx5-dmabuf-tph", `${buf.label}: -${e.errnoName}`);
    return null;
  }
  let index: number;
  try {
    index = mlx5StAllocIndexByTag(dev.st, got.st); // 4.
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    m.diag.record("debug:mlx5-st-alloc", `${dev.pdev.bdf}: tag 0x${got.st.toString(16)} → -${e.errnoName}`);
    return null;
  }
  return { en: true, ph: got.ph & 3, stIndex: index, st: got.st, extended, ownsIndex: true, fromDmah: false };
}

/**
 * A DMA handle's TPH: its PH, and with a CPU id the platform's tag for that CPU (CPU flavour of the
 * allocator; a failure there fails the registration). Modelled per MR, not per DMAH object.
 */
function dmahTph(dev: Mlx5IbDev, dmah: DmaHandle): MkeyTph | null {
  if (dmah.ph === MLX5_IB_NO_PH) return null;
  const extended = dev.tph.pcieTphEnabledReqType(dev.pdev) === 3;
  if (dmah.cpuId === undefined)
    return { en: true, ph: dmah.ph & 3, stIndex: 0, st: 0, extended, ownsIndex: false, fromDmah: true };
  const index = mlx5StAllocIndex(dev.st, dmah.memType ?? 0, dmah.cpuId);
  const st = dev.st?.directMode ? index : (dev.st?.tagOf(index) ?? 0);
  return { en: true, ph: dmah.ph & 3, stIndex: index, st, extended, ownsIndex: true, fromDmah: true };
}

/* ---------------------------------------------------------------------------------------------- */
/* registration                                                                                    */

/** `mlx5_ib_reg_user_mr_dmabuf` (§8.2). */
export function* mlx5RegUserMrDmabuf(dev: Mlx5IbDev, args: RegDmabufArgs): Task<Mlx5Mr> {
  const p = dev.env.profile;
  // 1.
  if (!p.userMem || !p.odp)
    throw new KernelError("EOPNOTSUPP", "kernel built without user memory or ODP", "DD-33");
  // 2.
  const mlx5Access = getFlags32(
    args.mlx5Access,
    MLX5_IB_UAPI_REG_DMABUF_ACCESS_DATA_DIRECT,
    "MLX5_IB_ATTR_REG_DMABUF_MR_ACCESS_FLAGS",
  );
  // 3.
  if (!umrCanLoadPas(dev, args.length))
    throw new KernelError("EINVAL", "UMR cannot load the translation (umr_can_load_pas)", "DD-28");
  // 4.
  const mr =
    mlx5Access & MLX5_IB_UAPI_REG_DMABUF_ACCESS_DATA_DIRECT
      ? yield* regByDataDirect(dev, args)
      : regPlain(dev, args);
  dev.mrs.add(mr);
  args.pd.usecnt++;
  dev.env.emit(
    "mr-reg",
    dev.name,
    `key 0x${mr.lkey.toString(16)} iova ${hex(mr.iova)} len ${hex(mr.length)}${mr.dataDirect ? " data-direct" : ""}`,
    !!mr.projected,
  );
  return mr;
}

/** The ordinary dynamic path (§8.2 step 4). */
function regPlain(dev: Mlx5IbDev, args: RegDmabufArgs): Mlx5Mr {
  const env = dev.env;
  const access = args.access;
  const mr = new Mlx5Mr(dev, args.pd, "plain", args.iova, args.length, access);
  const umem = ibUmemDmabufGet(env, dev.name, dev.dmaDevice, args.offset, args.length, args.fd, access, {
    allowPeer2peer: true,
    moveNotify: (a) => invalidateCb(dev, a),
  });
  let tph: MkeyTph | null;
  let mk: Mkey;
  try {
    tph = args.dmah ? dmahTph(dev, args.dmah) : lookupTph(dev, umem, false);
    try {
      mk = dev.createMkey(
        "mr",
        MODE.MTT,
        args.pd.pdn,
        args.iova,
        args.length,
        false,
        rightsOf(access, roCaps(dev)),
        false,
      );
    } catch (e) {
      releaseTph(dev, tph);
      throw e;
    }
  } catch (e) {
    ibUmemDmabufRelease(umem);
    throw e;
  }
  mk.tph = tph;
  mk.mr = mr;
  mr.mmkey = mk;
  mr.umem = umem;
  mr.lkey = mr.rkey = mk.key;
  umem.private = mr;
  // mlx5_ib_init_dmabuf_mr: map and load the MTT under the reservation lock
  try {
    umem.dmabuf.resv.with(() => {
      ibUmemDmabufMapPages(umem);
      loadMtt(dev, mk);
    });
  } catch (e) {
    destroyPlain(dev, mr);
    throw e;
  }
  return mr;
}

/** UMR update of an MTT mkey (site `mlx5r_umr_update_xlt`). */
function loadMtt(dev: Mlx5IbDev, mk: Mkey): void {
  const e = dev.env.machine.faults.check("mlx5r_umr_update_xlt");
  if (e) throw new KernelError(e, "UMR: update translation");
  mk.mttValid = true;
}

/** `mlx5_ib_dmabuf_invalidate_cb` (lock held): zap the MTT, unmap. */
function invalidateCb(dev: Mlx5IbDev, a: DmaBufAttachment): void {
  const umem = a.importerPriv as IbUmemDmabuf;
  const mr = umem.private as Mlx5Mr | null;
  if (!umem.sgt || !mr?.mmkey) return;
  mr.mmkey.mttValid = false;
  ibUmemDmabufUnmapPages(umem);
  dev.env.emit("mr-invalidate", dev.name, `key 0x${mr.lkey.toString(16)}`);
}

/** `reg_user_mr_dmabuf_by_data_direct` (§8.3). */
function* regByDataDirect(dev: Mlx5IbDev, args: RegDmabufArgs): Task<Mlx5Mr> {
  // 1.
  if (args.iova % PAGE_SIZE)
    throw new KernelError("EOPNOTSUPP", "data direct needs a page-aligned IOVA (KSM)", "DD-22");
  // 2.
  yield* dev.ddLock.acquire();
  try {
    yield { kind: "point", label: "dd-reg: data_direct_lock taken" };
    // 3.
    const pf = dev.dataDirectDev;
    if (!pf) throw new KernelError("EINVAL", `${dev.name}: no data-direct DMA PF bound`, "DD-26");
    // 4.
    let access = args.access;
    if (!dev.env.profile.ddRelaxedOrderingMkey || !dev.ddr.mkeyRoValid) access &= ~IB_ACCESS.RELAXED_ORDERING;
    // 5.
    const crossed = createCrossedMr(dev, args, access, pf);
    yield { kind: "point", label: "dd-reg: crossed MR created" };
    // 6.
    let crossing: Mlx5Mr;
    yield* dev.slowPathMutex.acquire();
    try {
      crossing = createCrossing(dev, args, access, crossed);
    } catch (e) {
      destroyCrossed(dev, crossed);
      throw e;
    } finally {
      dev.slowPathMutex.release();
    }
    // 7.
    dev.dataDirectMrList.push(crossed);
    crossed.inDdList = true;
    dev.env.emit("dd-list-add", dev.name, `crossed 0x${crossed.lkey.toString(16)}`, !!crossed.projected);
    return crossing;
  } finally {
    dev.ddLock.release();
  }
}

/** §8.3 step 5: the crossed KSM MR, pinned (or, projected, revocable pinned) for the DMA PF. */
function createCrossedMr(dev: Mlx5IbDev, args: RegDmabufArgs, access: number, pf: DataDirectDev): Mlx5Mr {
  const env = dev.env;
  const e = env.machine.faults.check("mlx5r_umr_resource_init"); // a.
  if (e) throw new KernelError(e, "UMR resources init");
  const projected = env.profile.ddRevocablePinned;
  const crossed = new Mlx5Mr(dev, args.pd, "crossed", args.iova, args.length, access);
  if (projected) crossed.projected = true;
  if (!projected) {
    const umem = ibUmemDmabufGetPinnedWithDmaDevice(
      env,
      dev.name,
      pf.pdev,
      args.offset,
      args.length,
      args.fd,
      access,
    ); // b.
    try {
      buildCrossed(dev, crossed, umem, args, access, false); // c. d.
    } catch (err) {
      if (crossed.mmkey) dev.destroyMkey(crossed.mmkey);
      ibUmemDmabufRelease(umem);
      throw err;
    }
    return crossed;
  }
  // projected: import and lock, create the mkey, install the revoke callback, unlock (§9.4)
  const umem = ibUmemDmabufGetPinnedRevocableAndLock(
    env,
    dev.name,
    pf.pdev,
    args.offset,
    args.length,
    args.fd,
    access,
  );
  try {
    buildCrossed(dev, crossed, umem, args, access, true);
    ibUmemDmabufSetRevokeLocked(umem, () => projectedRevoke(dev, crossed));
  } catch (err) {
    umem.dmabuf.resv.unlock();
    if (crossed.mmkey) dev.destroyMkey(crossed.mmkey);
    ibUmemDmabufRelease(umem);
    throw err;
  }
  umem.dmabuf.resv.unlock();
  return crossed;
}

/** §8.3 steps 5c–5d: the KSM mkey (PD = ddr.pdn) and its entries. */
function buildCrossed(
  dev: Mlx5IbDev,
  crossed: Mlx5Mr,
  umem: IbUmemDmabuf,
  args: RegDmabufArgs,
  access: number,
  resvHeld: boolean,
): void {
  crossed.umem = umem;
  umem.private = crossed;
  const tph = dev.env.profile.dataDirectTph === "carry" ? lookupTph(dev, umem, resvHeld) : null;
  let mk: Mkey;
  try {
    mk = dev.createMkey(
      "crossed",
      MODE.KSM,
      dev.ddr.pdn,
      args.iova,
      args.length,
      false,
      rightsOf(access, roCaps(dev)),
      true,
      !!crossed.projected,
    );
  } catch (e) {
    releaseTph(dev, tph);
    throw e;
  }
  mk.tph = tph;
  mk.mr = crossed;
  crossed.mmkey = mk;
  crossed.dataDirect = true;
  crossed.lkey = crossed.rkey = mk.key;
  // d. one entry per PAGE_SIZE block; RO entries when the MR kept RELAXED_ORDERING
  const f = dev.env.machine.faults.check("mlx5r_umr_update_xlt");
  if (f) throw new KernelError(f, "UMR: load KSM entries");
  const useRo = (access & IB_ACCESS.RELAXED_ORDERING) !== 0 && dev.ddr.mkeyRoValid && dev.ddr.mkeyRo;
  const entryKey = (useRo ? dev.ddr.mkeyRo : dev.ddr.mkey)?.key ?? 0;
  const n = Number((args.length + PAGE_SIZE - 1n) / PAGE_SIZE);
  const keys = new Uint32Array(n).fill(entryKey);
  const vas = new BigUint64Array(n);
  const base = args.offset - alignDown(args.offset);
  let segIdx = 0;
  let segPos = 0n; // offset of segs[segIdx] from umem.start
  for (let i = 0; i < n; i++) {
    const off = base + BigInt(i) * PAGE_SIZE;
    while (segIdx < umem.segs.length && segPos + umem.segs[segIdx].len <= off) {
      segPos += umem.segs[segIdx].len;
      segIdx++;
    }
    const s = umem.segs[segIdx];
    vas[i] = s ? s.dmaAddress + (off - segPos) : 0n;
  }
  mk.ksm = { blockSize: PAGE_SIZE, keys, vas };
}

/** §8.3 step 6: the crossing mkey in the user's PD that points at the crossed MR. */
function createCrossing(dev: Mlx5IbDev, args: RegDmabufArgs, access: number, crossed: Mlx5Mr): Mlx5Mr {
  if (!dev.caps.crossingVhcaMkey)
    throw new KernelError("EOPNOTSUPP", `${dev.name}: no crossing_vhca_mkey capability`, "DD-27");
  const mk = dev.createMkey(
    "crossing",
    MODE.CROSSING,
    args.pd.pdn,
    0n,
    args.iova + args.length,
    false,
    rightsOf(access, roCaps(dev)),
    false,
    !!crossed.projected,
  );
  mk.crossing = { vhcaId: dev.vhcaId, key: crossed.lkey };
  mk.free = false;
  mk.umrEn = false;
  const mr = new Mlx5Mr(dev, args.pd, "crossing", args.iova, args.length, access);
  mk.mr = mr;
  mr.mmkey = mk;
  mr.lkey = mr.rkey = mk.key;
  mr.dataDirect = true;
  mr.ddCrossedMr = crossed;
  if (crossed.projected) mr.projected = true;
  return mr;
}

/* ---------------------------------------------------------------------------------------------- */
/* revocation and teardown                                                                         */

/**
 * §9.1 (`data_direct_lock` held): every crossed MR of the device is unlinked, marked revoked, its
 * mkey UMR-revoked and its umem revoked. A UMR failure (site `mlx5r_umr_revoke_mr`) WARNs and leaves
 * that MR's umem as it is.
 */
export function mlx5RevokeDataDirectMrs(dev: Mlx5IbDev, why: string): void {
  dev.ddLock.assertHeld("mlx5_revoke_data_direct_mrs");
  const m = dev.env.machine;
  for (const crossed of [...dev.dataDirectMrList]) {
    unlink(dev, crossed);
    crossed.revoked = true;
    if (m.faults.check("mlx5r_umr_revoke_mr")) {
      m.diag.warn(
        "mlx5_revoke_data_direct_mr",
        `${dev.name}: UMR revoke of 0x${crossed.lkey.toString(16)} failed`,
      );
      continue;
    }
    if (crossed.mmkey) dev.disableMkey(crossed.mmkey, why);
    if (crossed.umem) ibUmemDmabufRevoke(crossed.umem);
    dev.env.emit(
      "mr-revoke",
      dev.name,
      `crossed 0x${crossed.lkey.toString(16)}: ${why}`,
      !!crossed.projected,
    );
  }
}

/**
 * Projected (`ddRevocablePinned`, §9.4): the exporter revoked a revocable pinned import. Steps 2–4
 * of §9.1 for that crossed MR, under the reservation lock; it stays in `data_direct_mr_list`.
 * Idempotent: a later notification (un-revoke) finds it revoked and does nothing more.
 */
function projectedRevoke(dev: Mlx5IbDev, crossed: Mlx5Mr): void {
  const umem = crossed.umem;
  if (!umem) return;
  umem.dmabuf.resv.assertHeld("mlx5 data-direct revoke callback");
  if (!crossed.revoked) {
    crossed.revoked = true;
    dev.env.emit("mr-revoke", dev.name, `crossed 0x${crossed.lkey.toString(16)}: exporter revoke`, true);
  }
  if (crossed.mmkey) dev.disableMkey(crossed.mmkey, "exporter revoke (projected)");
  ibUmemDmabufRevokeLocked(umem);
}

function unlink(dev: Mlx5IbDev, crossed: Mlx5Mr): void {
  const i = dev.dataDirectMrList.indexOf(crossed);
  if (i >= 0) dev.dataDirectMrList.splice(i, 1);
  if (crossed.inDdList)
    dev.env.emit("dd-list-del", dev.name, `crossed 0x${crossed.lkey.toString(16)}`, !!crossed.projected);
  crossed.inDdList = false;
}

function destroyCrossed(dev: Mlx5IbDev, crossed: Mlx5Mr): void {
  if (crossed.mmkey) dev.destroyMkey(crossed.mmkey);
  if (crossed.umem && !crossed.umem.released) ibUmemDmabufRelease(crossed.umem);
  crossed.freed = true;
}

function destroyPlain(dev: Mlx5IbDev, mr: Mlx5Mr): void {
  if (mr.mmkey) dev.destroyMkey(mr.mmkey);
  if (mr.umem && !mr.umem.released) ibUmemDmabufRelease(mr.umem);
  mr.freed = true;
}

/** `mlx5_ib_dereg_mr` (§9.2 for data-direct MRs). Returns normally whether or not it was revoked. */
export function* mlx5DeregMr(dev: Mlx5IbDev, mr: Mlx5Mr): Task<void> {
  if (mr.freed) throw new KernelError("EINVAL", `MR 0x${mr.lkey.toString(16)} already deregistered`);
  if (mr.kind === "crossing") {
    const crossed = mr.ddCrossedMr;
    if (mr.mmkey) dev.destroyMkey(mr.mmkey); // 1.
    yield* dev.ddLock.acquire(); // 2.
    try {
      if (crossed) {
        // upstream unlinks when not revoked; a projected revoke leaves it linked, so unlink whatever is
        if (crossed.inDdList) unlink(dev, crossed);
        destroyCrossed(dev, crossed); // 3.
      }
    } finally {
      dev.ddLock.release(); // 4.
    }
    mr.freed = true;
  } else {
    destroyPlain(dev, mr);
  }
  dev.mrs.delete(mr);
  mr.pd.usecnt--;
  dev.env.emit("mr-dereg", dev.name, `key 0x${mr.lkey.toString(16)}`, !!mr.projected);
}

/* ---------------------------------------------------------------------------------------------- */
/* data plane (§5.3)                                                                               */

function rightsAllow(r: MkeyRights, a: RdmaAccessKind): boolean {
  switch (a) {
    case "local-read":
      return r.localRead;
    case "local-write":
      return r.localWrite;
    case "remote-read":
      return r.remoteRead;
    case "remote-write":
      return r.remoteWrite;
    case "remote-atomic":
      return r.atomic;
  }
}

const isWrite = (a: RdmaAccessKind) => a === "local-write" || a === "remote-write" || a === "remote-atomic";

function targetOf(umem: IbUmemDmabuf): PciDev | undefined {
  const owner = (umem.dmabuf.priv as { provider?: { owner?: unknown } } | null)?.provider?.owner;
  return owner instanceof PciDev ? owner : undefined;
}

function tphOut(mk: Mkey, dd: boolean) {
  const t = mk.tph;
  if (!t?.en) return undefined;
  const out: {
    st: number;
    ph: number;
    stIndex: number;
    extended: boolean;
    assumption?: "dataDirectTph=carry";
  } = { st: t.st, ph: t.ph, stIndex: t.stIndex, extended: t.extended };
  if (dd && !t.fromDmah) out.assumption = "dataDirectTph=carry";
  return out;
}

/** Translates one access through `req.key` (see translate.ts). */
export function mlx5Translate(dev: Mlx5IbDev, req: TranslateRequest): TranslateResult {
  const a = req.access;
  const mk = dev.mkeys.get(req.key >>> 0);
  if (!mk) return accessFail(a, "invalid-key", `no mkey 0x${(req.key >>> 0).toString(16)} on ${dev.name}`);
  if (mk.accessMode === MODE.CROSSING) return translateCrossing(dev, mk, req);
  if (mk.accessMode === MODE.MTT && mk.mr) return translateMtt(dev, mk, req);
  // the crossed KSM mkey and the PA mkeys live in the internal PD: no user QP can use them
  return accessFail(a, "invalid-key", `mkey 0x${mk.key.toString(16)} (${mk.label}) is not in a user PD`);
}

function translateMtt(dev: Mlx5IbDev, mk: Mkey, req: TranslateRequest): TranslateResult {
  const a = req.access;
  if (mk.state !== "enabled")
    return accessFail(a, "disabled", `mkey 0x${mk.key.toString(16)} is ${mk.state}`);
  if (!mk.covers(req.addr, req.length))
    return accessFail(a, "bounds", `${hex(req.addr)}+${hex(req.length)} outside the MR`);
  if (!rightsAllow(mk.rights, a)) return accessFail(a, "rights", `${a} not allowed by the MR`);
  const mr = mk.mr as Mlx5Mr;
  const umem = mr.umem as IbUmemDmabuf;
  let faulted = false;
  if (!mk.mttValid) {
    // ODP page fault: map again under the reservation lock and reload the MTT
    try {
      umem.dmabuf.resv.with(() => {
        ibUmemDmabufMapPages(umem);
        loadMtt(dev, mk);
      });
      dev.env.emit("mr-fault", dev.name, `key 0x${mk.key.toString(16)} mapped again`);
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      dev.env.emit("mr-fault", dev.name, `key 0x${mk.key.toString(16)} -${e.errnoName}`);
      return accessFail(a, "fault", `page fault: -${e.errnoName} (${e.check})`, { errno: e.errnoName });
    }
    faulted = true;
  }
  const off = umem.address - umem.start + (req.addr - mk.start);
  const segs = umem.dmaRange(off, req.length);
  if (!segs || !(umem.dmaDevice instanceof PciDev))
    return accessFail(a, "unmapped", `${umem.label} does not map ${hex(off)}+${hex(req.length)}`);
  return mappedResult(umem, umem.dmaDevice, segs, {
    relaxedOrdering: isWrite(a) ? mk.rights.relaxedOrderingWrite : mk.rights.relaxedOrderingRead,
    dataDirect: false,
    faulted,
    tph: tphOut(mk, false),
  });
}

/** A translation that lands in `umem`'s mapping: the issuer, its DMA segments, mode, target, TPH. */
function mappedResult(
  umem: IbUmemDmabuf,
  issuer: PciDev,
  segs: DmaSegment[],
  o: { relaxedOrdering: boolean; dataDirect: boolean; faulted: boolean; tph: ReturnType<typeof tphOut> },
): TranslateResult {
  const mode = umem.mode ?? "bus";
  const out: TranslateResult = {
    ok: true,
    issuer,
    segments: segs,
    dmaAddress: segs[0]?.dmaAddress ?? 0n,
    mapType: mode === "bus" ? "BUS_ADDR" : "THRU_HOST_BRIDGE",
    mode,
    addressKind: mode === "bus" ? "bus" : "iova",
    relaxedOrdering: o.relaxedOrdering,
    dataDirect: o.dataDirect,
    faulted: o.faulted,
  };
  const target = targetOf(umem);
  if (target) out.target = target;
  if (o.tph) out.tph = o.tph;
  return out;
}

function translateCrossing(dev: Mlx5IbDev, mk: Mkey, req: TranslateRequest): TranslateResult {
  const a = req.access;
  const projected = { projected: !!mk.projected };
  if (mk.state !== "enabled")
    return accessFail(a, "disabled", `crossing mkey 0x${mk.key.toString(16)} is ${mk.state}`, projected);
  if (!mk.covers(req.addr, req.length))
    return accessFail(
      a,
      "bounds",
      `${hex(req.addr)}+${hex(req.length)} outside the crossing mkey`,
      projected,
    );
  if (!rightsAllow(mk.rights, a)) return accessFail(a, "rights", `${a} not allowed by the MR`, projected);
  const t = mk.crossing;
  if (!t || t.vhcaId !== dev.vhcaId)
    return accessFail(a, "invalid-key", "crossing target on another VHCA (not modelled)", projected);
  const inner = dev.mkeys.get(t.key);
  if (!inner || inner.accessMode !== MODE.KSM || !inner.ksm || !inner.mr)
    return accessFail(a, "invalid-key", `crossed mkey 0x${t.key.toString(16)} is gone`, projected);
  if (inner.state !== "enabled")
    return accessFail(a, "revoked", `crossed MR 0x${inner.key.toString(16)} is revoked`, projected);
  if (!inner.covers(req.addr, req.length))
    return accessFail(
      a,
      "bounds",
      `${hex(req.addr)}+${hex(req.length)} outside [iova, iova+length)`,
      projected,
    );
  const crossed = inner.mr;
  const umem = crossed.umem;
  if (!umem?.sgt || !(umem.dmaDevice instanceof PciDev))
    return accessFail(a, "unmapped", "crossed MR has no mapping", projected);
  // walk the KSM entries: each block goes through the PA-mode data-direct mkey named in the entry
  const ksm = inner.ksm;
  const segs: DmaSegment[] = [];
  let ro = true;
  let pos = req.addr;
  const end = req.addr + req.length;
  while (pos < end) {
    const idx = Number((pos - inner.start) / ksm.blockSize);
    const blockStart = inner.start + BigInt(idx) * ksm.blockSize;
    const blockEnd = blockStart + ksm.blockSize;
    const pa = dev.mkeys.get(ksm.keys[idx]);
    if (pa?.state !== "enabled" || pa.accessMode !== MODE.PA || !pa.dataDirect)
      return accessFail(a, "invalid-key", `KSM entry ${idx}: data-direct mkey missing`, projected);
    if (!(isWrite(a) ? pa.rights.relaxedOrderingWrite : pa.rights.relaxedOrderingRead)) ro = false;
    const n = minBig(blockEnd, end) - pos;
    const addr = ksm.vas[idx] + (pos - blockStart);
    const prev = segs[segs.length - 1];
    if (prev && prev.dmaAddress + prev.len === addr) prev.len += n;
    else segs.push({ dmaAddress: addr, len: n });
    pos += n;
  }
  const out = mappedResult(umem, umem.dmaDevice, segs, {
    relaxedOrdering: req.length > 0n && ro,
    dataDirect: true,
    faulted: false,
    tph: tphOut(inner, true),
  });
  if (mk.projected) out.projected = true;
  return out;
}
