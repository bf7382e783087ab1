/**
 * `ib_umem_dmabuf` (drivers/infiniband/core/umem_dmabuf.c; rdma-data-direct.md §3.5, §8.4, §8.5,
 * §9.3): a user MR's view of a dma-buf range. Three ways in:
 * - dynamic ({@link ibUmemDmabufGet}): attached to the IB device's own DMA device with the driver's
 *   invalidate callback; mapped on demand, zapped on invalidate, re-mapped at the next fault;
 * - pinned with a foreign DMA device ({@link ibUmemDmabufGetPinnedWithDmaDevice}): attached to, say,
 *   the data-direct DMA PF, pinned and mapped once; its callback only warns ('v6.19') or it has none
 *   ('v7.0', not revocable);
 * - pinned revocable ({@link ibUmemDmabufGetPinnedRevocableAndLock}, Moroni's helpers; used by the
 *   projected `ddRevocablePinned` knob): pinned, but the exporter may revoke it through a driver
 *   callback installed under the reservation lock.
 * Revocation ({@link ibUmemDmabufRevoke}) unmaps and unpins once and is final: later map attempts
 * fail with -EINVAL.
 */
import { KernelBug, KernelError } from "../../core/errors.js";
import { hex } from "../../core/hex.js";
import type { DmaDevice } from "../../dma/device.js";
import { deviceName } from "../../dma/device.js";
import { DMA_DATA_DIRECTION } from "../../dma/direction.js";
import type { DmaBuf, DmaBufAttachment, ImporterOps } from "../../dmabuf/dma-buf.js";
import { type DmaBufDmaMode, dmaBufDmaOf, type SgTable } from "../../dmabuf/phys-vec.js";
import type { RdmaEnv } from "./device.js";

export const PAGE_SIZE = 4096n;
const U64_MAX = (1n << 64n) - 1n;
const DIR = DMA_DATA_DIRECTION.BIDIRECTIONAL;

/** `min` for bigints (Math.min takes numbers only). */
export const minBig = (a: bigint, b: bigint): bigint => (a < b ? a : b);

export const alignDown = (v: bigint, a: bigint = PAGE_SIZE) => v - (v % a);
export const alignUp = (v: bigint, a: bigint = PAGE_SIZE) => alignDown(v + a - 1n, a);

/** A DMA-contiguous piece of the mapped (trimmed) range. */
export interface UmemSeg {
  dmaAddress: bigint;
  len: bigint;
}

export type UmemKind = "dynamic" | "pinned" | "pinned-revocable";

export class IbUmemDmabuf {
  readonly id: number;
  attach!: DmaBufAttachment;
  /** The exporter's table while mapped. */
  sgt: SgTable | null = null;
  /** Trim bookkeeping of §8.5 (entry indexes and byte adjustments). */
  firstSg = -1;
  firstSgOffset = 0n;
  lastSg = -1;
  lastSgTrim = 0n;
  /** The trimmed mapping, `[ALIGN_DOWN(offset), ALIGN_UP(offset+size))`, piece by piece. */
  segs: UmemSeg[] = [];
  pinned = false;
  revoked = false;
  released = false;
  /** `umem_dmabuf->private`: the MR. */
  private: unknown = null;
  /** Revocable pinned imports: the driver's revoke callback (installed under the lock). */
  revokeCb: ((umem: IbUmemDmabuf) => void) | null = null;
  /** Mappings made over the umem's life (tests count re-maps). */
  mapCount = 0;

  constructor(
    readonly env: RdmaEnv,
    readonly ibdevName: string,
    readonly dmaDevice: DmaDevice,
    /** `umem->address` = the dma-buf offset. */
    readonly address: bigint,
    /** `umem->length`. */
    readonly length: bigint,
    readonly writable: boolean,
    readonly dmabuf: DmaBuf,
    readonly kind: UmemKind,
  ) {
    this.id = env.nextId("umem");
  }

  get label(): string {
    return `umem#${this.id}`;
  }
  /** First byte of the buffer the umem covers (page aligned). */
  get start(): bigint {
    return alignDown(this.address);
  }
  get end(): bigint {
    return alignUp(this.address + this.length);
  }
  get pageCount(): bigint {
    return (this.end - this.start) / PAGE_SIZE;
  }
  /** How the current mapping addresses the buffer (bus addresses or IOVAs), null when unmapped. */
  get mode(): DmaBufDmaMode | null {
    return this.sgt ? (dmaBufDmaOf(this.sgt)?.mode ?? "bus") : null;
  }
  get projected(): boolean {
    return this.kind === "pinned-revocable";
  }

  /**
   * DMA pieces for `len` bytes at `off` bytes from {@link start}; null when the mapping does not
   * cover them (not mapped, or a table shorter than the range).
   */
  dmaRange(off: bigint, len: bigint): UmemSeg[] | null {
    if (!this.sgt) return null;
    const out: UmemSeg[] = [];
    let pos = 0n;
    let want = off;
    let left = len;
    for (const s of this.segs) {
      if (left === 0n) break;
      const sEnd = pos + s.len;
      if (want < sEnd) {
        const inOff = want - pos;
        const n = minBig(s.len - inOff, left);
        const addr = s.dmaAddress + inOff;
        const prev = out[out.length - 1];
        if (prev && prev.dmaAddress + prev.len === addr) prev.len += n;
        else out.push({ dmaAddress: addr, len: n });
        want += n;
        left -= n;
      }
      pos = sEnd;
    }
    return left === 0n ? out : null;
  }
}

/**
 * `ib_umem_dmabuf_get_with_dma_device` (§8.4 steps 1–6): checks, `dma_buf_get`, and a dynamic
 * attachment of `dmaDevice` with `ops`. The umem holds the dma-buf reference from here on.
 */
export function ibUmemDmabufGetWithDmaDevice(
  env: RdmaEnv,
  ibdevName: string,
  dmaDevice: DmaDevice,
  offset: bigint,
  size: bigint,
  fd: number,
  access: number,
  ops: ImporterOps | null,
  kind: UmemKind,
): IbUmemDmabuf {
  const m = env.machine;
  // 1.
  if (offset + size > U64_MAX)
    throw new KernelError("EINVAL", "ib_umem_dmabuf_get: offset + size overflows", "DD-30");
  // 2. (6.19 only: the v7.0 series made the callback optional)
  if (env.profile.kernelProfile === "v6.19" && !ops?.moveNotify)
    throw new KernelError("EINVAL", "ib_umem_dmabuf_get: importer ops without move_notify");
  // 3.
  const buf = m.dmabuf.get(m.fds, fd);
  try {
    // 4.
    if (buf.size < offset + size)
      throw new KernelError(
        "EINVAL",
        "ib_umem_dmabuf_get: range beyond the dma-buf",
        "DD-30",
        `${hex(offset)}+${hex(size)} > ${hex(buf.size)}`,
      );
    const e = m.faults.check("kzalloc:ib_umem_dmabuf");
    if (e) throw new KernelError(e, "ib_umem_dmabuf_get: allocation");
    const umem = new IbUmemDmabuf(env, ibdevName, dmaDevice, offset, size, (access & 1) !== 0, buf, kind);
    // 5.
    if (umem.pageCount === 0n) throw new KernelError("EINVAL", "ib_umem_dmabuf_get: zero pages", "DD-31");
    // 6.
    umem.attach = m.dmabuf.dynamicAttach(
      buf,
      dmaDevice,
      ops,
      umem,
      `${ibdevName} ${umem.label} (${deviceName(dmaDevice)})`,
    );
    return umem;
  } catch (err) {
    m.dmabuf.put(buf);
    throw err;
  }
}

/** `ib_umem_dmabuf_get`: dynamic import for the IB device's own DMA device. */
export function ibUmemDmabufGet(
  env: RdmaEnv,
  ibdevName: string,
  dmaDevice: DmaDevice,
  offset: bigint,
  size: bigint,
  fd: number,
  access: number,
  ops: ImporterOps,
): IbUmemDmabuf {
  return ibUmemDmabufGetWithDmaDevice(env, ibdevName, dmaDevice, offset, size, fd, access, ops, "dynamic");
}

/** The importer ops of a pinned attachment: a warn-only callback ('v6.19') or none ('v7.0'). */
function pinnedOps(env: RdmaEnv): ImporterOps {
  if (env.profile.kernelProfile === "v7.0") return { allowPeer2peer: true };
  return {
    allowPeer2peer: true,
    // §9.4: the exporter must not move pinned memory; the kernel only complains.
    moveNotify: (a) => {
      const umem = a.importerPriv as IbUmemDmabuf;
      env.machine.diag.warn("pinned-invalidate", `${umem.label}: invalidate called while pinned (DD-44)`);
    },
  };
}

/**
 * Pins and maps a freshly attached umem under the reservation lock (§8.4 steps 7–8); returns with
 * the lock held. On failure the lock is dropped and the umem released (the attachment detached,
 * the dma-buf put) before the error.
 */
function lockPinAndMap(env: RdmaEnv, umem: IbUmemDmabuf): void {
  const resv = umem.dmabuf.resv;
  resv.lock();
  try {
    env.machine.dmabuf.pin(umem.attach);
    umem.pinned = true;
    ibUmemDmabufMapPages(umem);
  } catch (e) {
    resv.unlock();
    ibUmemDmabufRelease(umem);
    throw e;
  }
}

/**
 * `ib_umem_dmabuf_get_pinned_with_dma_device` (§8.4): import, then pin and map under the
 * reservation lock. On a failure after the attach the release undoes everything, unpinning once
 * (the fixed unwind of "Fix double dma_buf_unpin in failure path", for both profiles).
 */
export function ibUmemDmabufGetPinnedWithDmaDevice(
  env: RdmaEnv,
  ibdevName: string,
  dmaDevice: DmaDevice,
  offset: bigint,
  size: bigint,
  fd: number,
  access: number,
): IbUmemDmabuf {
  const umem = ibUmemDmabufGetWithDmaDevice(
    env,
    ibdevName,
    dmaDevice,
    offset,
    size,
    fd,
    access,
    pinnedOps(env),
    "pinned",
  );
  lockPinAndMap(env, umem);
  umem.dmabuf.resv.unlock();
  return umem;
}

/**
 * `ib_umem_dmabuf_get_pinned_revocable_and_lock` (Moroni; projected use): like the pinned import,
 * but the attachment is revocable — the exporter's invalidate runs the driver callback installed
 * with {@link ibUmemDmabufSetRevokeLocked}. Returns with the reservation lock HELD; the caller
 * installs its callback and unlocks.
 */
export function ibUmemDmabufGetPinnedRevocableAndLock(
  env: RdmaEnv,
  ibdevName: string,
  dmaDevice: DmaDevice,
  offset: bigint,
  size: bigint,
  fd: number,
  access: number,
): IbUmemDmabuf {
  const ops: ImporterOps = {
    allowPeer2peer: true,
    moveNotify: (a) => {
      const umem = a.importerPriv as IbUmemDmabuf;
      env.emit("umem-revoke", umem.label, "exporter invalidate", true);
      if (umem.revokeCb) umem.revokeCb(umem);
      else ibUmemDmabufRevokeLocked(umem);
    },
  };
  const umem = ibUmemDmabufGetWithDmaDevice(
    env,
    ibdevName,
    dmaDevice,
    offset,
    size,
    fd,
    access,
    ops,
    "pinned-revocable",
  );
  lockPinAndMap(env, umem);
  return umem;
}

/** `ib_umem_dmabuf_set_revoke_locked`: installs the driver's revoke callback (lock held). */
export function ibUmemDmabufSetRevokeLocked(umem: IbUmemDmabuf, cb: (umem: IbUmemDmabuf) => void): void {
  umem.dmabuf.resv.assertHeld("ib_umem_dmabuf_set_revoke_locked");
  umem.revokeCb = cb;
}

/** Computes the trimmed view of `sgt` for `[start, end)` (§8.5). */
function trim(umem: IbUmemDmabuf, sgt: SgTable): void {
  const start = umem.start;
  const end = umem.end;
  umem.segs = [];
  umem.firstSg = -1;
  umem.lastSg = -1;
  let cur = 0n;
  for (let i = 0; i < sgt.nents && cur < end; i++) {
    const e = sgt.sgl[i];
    const eEnd = cur + e.dmaLen;
    if (eEnd > start) {
      const from = cur < start ? start - cur : 0n;
      const to = eEnd > end ? e.dmaLen - (eEnd - end) : e.dmaLen;
      if (umem.firstSg < 0) {
        umem.firstSg = i;
        umem.firstSgOffset = from;
      }
      umem.lastSg = i;
      umem.lastSgTrim = e.dmaLen - to;
      if (to > from) umem.segs.push({ dmaAddress: e.dmaAddress + from, len: to - from });
    }
    cur = eEnd;
  }
}

/**
 * `ib_umem_dmabuf_map_pages` (§8.5, reservation lock held): revoked → -EINVAL; maps the attachment
 * when not mapped (exporter errors propagate: VFIO revoked → -ENODEV, map type NOT_SUPPORTED →
 * -EINVAL), trims, then waits for the KERNEL fences (site `dma_resv_wait_timeout` → -ETIMEDOUT).
 */
export function ibUmemDmabufMapPages(umem: IbUmemDmabuf): void {
  const m = umem.env.machine;
  umem.dmabuf.resv.assertHeld("ib_umem_dmabuf_map_pages");
  if (umem.revoked) throw new KernelError("EINVAL", `${umem.label} is revoked`, "DD-41");
  if (!umem.sgt) {
    const sgt = m.dmabuf.mapAttachment(umem.attach, DIR);
    umem.sgt = sgt;
    umem.mapCount++;
    trim(umem, sgt);
    umem.env.emit(
      "umem-map",
      umem.label,
      `${deviceName(umem.dmaDevice)} ${umem.mode} ${umem.segs.length} piece(s)`,
      umem.projected,
    );
  }
  if (m.faults.check("dma_resv_wait_timeout"))
    throw new KernelError("ETIMEDOUT", `${umem.label}: fences did not signal in time`);
}

/** `ib_umem_dmabuf_unmap_pages` (lock held): nothing when not mapped. */
export function ibUmemDmabufUnmapPages(umem: IbUmemDmabuf): void {
  umem.dmabuf.resv.assertHeld("ib_umem_dmabuf_unmap_pages");
  const sgt = umem.sgt;
  if (!sgt) return;
  umem.env.machine.dmabuf.unmapAttachment(umem.attach, sgt, DIR);
  umem.sgt = null;
  umem.segs = [];
  umem.firstSg = umem.lastSg = -1;
  umem.env.emit("umem-unmap", umem.label, undefined, umem.projected);
}

/** `ib_umem_dmabuf_revoke_locked` (§9.3, lock held): once; unmap, unpin if pinned, revoked. */
export function ibUmemDmabufRevokeLocked(umem: IbUmemDmabuf): void {
  umem.dmabuf.resv.assertHeld("ib_umem_dmabuf_revoke_locked");
  if (umem.revoked) return;
  ibUmemDmabufUnmapPages(umem);
  if (umem.pinned) {
    umem.env.machine.dmabuf.unpin(umem.attach);
    umem.pinned = false;
  }
  umem.revoked = true;
  umem.env.emit("umem-revoke", umem.label, undefined, umem.projected);
}

/** `ib_umem_dmabuf_revoke` (§9.3): takes the reservation lock. */
export function ibUmemDmabufRevoke(umem: IbUmemDmabuf): void {
  umem.dmabuf.resv.with(() => ibUmemDmabufRevokeLocked(umem));
}

/** `ib_umem_dmabuf_release`: revoke (idempotent), detach, drop the dma-buf reference. */
export function ibUmemDmabufRelease(umem: IbUmemDmabuf): void {
  if (umem.released) throw new KernelBug("ib_umem_dmabuf_release", `${umem.label} released twice`);
  ibUmemDmabufRevoke(umem);
  const m = umem.env.machine;
  m.dmabuf.detach(umem.dmabuf, umem.attach);
  m.dmabuf.put(umem.dmabuf);
  umem.released = true;
  umem.env.emit("umem-release", umem.label, undefined, umem.projected);
}
