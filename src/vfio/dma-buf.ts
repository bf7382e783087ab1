/**
 * VFIO PCI dma-buf export (kernel-semantics §7) and its exporter side (§8.2–8.5): the
 * VFIO_DEVICE_FEATURE_DMA_BUF handler in its exact step order, `get_dmabuf_phys`, the exporter ops,
 * and the revocation primitives `move` and `cleanup`.
 */
import { KernelError } from "../core/errors.js";
import type { UserBuffer } from "../core/file.js";
import { O_CLOEXEC } from "../core/file.js";
import { removeItem } from "../core/list.js";
import type { DmaDevice } from "../dma/device.js";
import {
  assertAttachResvHeld,
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufOps,
} from "../dmabuf/dma-buf.js";
import { dmaBufFreeSgt, dmaBufPhysVecToSgt, type PhysVec } from "../dmabuf/phys-vec.js";
import type { P2pdmaProvider } from "../p2pdma/p2pdma.js";
import { vfioCheckFeature } from "./check-feature.js";
import {
  DMA_BUF_FIXED_SIZE,
  DMA_RANGE_SIZE,
  type DmaRange,
  FEATURE_HEADER_SIZE,
  VFIO_DEVICE_FEATURE_GET,
} from "./uapi/vfio.js";
import type { VfioPciDevice } from "./vfio.js";

export const PAGE_SIZE = 4096n;

const U64_MAX = (1n << 64n) - 1n;
export const DMA_IOVA_USE_SWIOTLB = 1n << 63n;

/** The steering tags and processing hint an exporter's owner published for a buffer. */
export interface DmaBufTph {
  stValid: boolean;
  stExtValid: boolean;
  st: number;
  stExt: number;
  ph: number;
}

const NO_TPH: Readonly<DmaBufTph> = Object.freeze({
  stValid: false,
  stExtValid: false,
  st: 0,
  stExt: 0,
  ph: 0,
});

/** `struct vfio_pci_dma_buf` (§7.2). */
export class VfioDmaBuf {
  dmabuf!: DmaBuf;
  revoked = false;
  /** Permanent revoke through DMA_BUF_REVOKE (revokeFeature, §12.4): never restored. */
  permRevoked = false;
  /** Mappings handed out and not yet unmapped (revocable_wait waits for zero, §12.2). */
  liveMappings = 0;
  /** DMA_BUF_MEMATTR (memattrFeature): NC 0, WC 1; affects later mmaps only. */
  memattr = 0;
  /** TPH published by the exporter's owner (tphFeature, tph-and-tlp §5.2); replaced, never edited. */
  tph: Readonly<DmaBufTph> = NO_TPH;
  constructor(
    public vdev: VfioPciDevice | null,
    readonly size: bigint,
    readonly physVec: PhysVec[],
    readonly provider: P2pdmaProvider,
    readonly regionIndex: number,
  ) {}

  get nrRanges(): number {
    return this.physVec.length;
  }

  /** §8.5 states. */
  get state(): "ACTIVE" | "SUSPENDED" | "DEAD" | "RELEASED" {
    if (this.dmabuf.file.released) return "RELEASED";
    if (!this.vdev || this.permRevoked) return "DEAD";
    return this.revoked ? "SUSPENDED" : "ACTIVE";
  }
}

/** What `get_dmabuf_phys` gives back: the provider and one physical range per user range. */
export interface DmabufPhys {
  provider: P2pdmaProvider;
  physVec: PhysVec[];
}

/**
 * `vfio_pci_core_fill_phys_vec` (§7.4): ranges relative to [start, start+len) become CPU physical
 * ranges; -EOVERFLOW when an address wraps, -EINVAL beyond the region.
 */
export function fillPhysVec(ranges: readonly DmaRange[], start: bigint, len: bigint): PhysVec[] {
  const maxAddr = start + len; // no overflow check in the kernel either
  const out: PhysVec[] = new Array(ranges.length);
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i];
    if (r.length === 0n) throw new KernelError("EINVAL", `range ${i}: length 0`);
    const paddr = start + r.offset;
    if (paddr > U64_MAX) throw new KernelError("EOVERFLOW", `range ${i}: start + offset wraps`, "K-43");
    const end = paddr + r.length;
    if (end > U64_MAX) throw new KernelError("EOVERFLOW", `range ${i}: end wraps`, "K-44");
    if (end > maxAddr) throw new KernelError("EINVAL", `range ${i}: ends beyond the region`, "K-41");
    out[i] = { paddr, len: r.length };
  }
  return out;
}

/** `vfio_pci_core_get_dmabuf_phys` (§7.4): BAR `bar` of the device itself. */
export function vfioPciCoreGetDmabufPhys(
  vdev: VfioPciDevice,
  bar: number,
  ranges: readonly DmaRange[],
): DmabufPhys {
  const provider = vdev.vfio.machine.p2pdma.provider(vdev.pdev, bar);
  if (!provider)
    throw new KernelError("EINVAL", `BAR${bar} has no P2PDMA provider (not a memory BAR)`, "K-45");
  const r = vdev.pdev.resources[bar];
  return { provider, physVec: fillPhysVec(ranges, r.start, r.len) };
}

/**
 * `vfio_pci_core_feature_dma_buf` (§7.3): the 16 steps in order. `arg` is the whole ioctl
 * argument (header included), as the ranges are read beyond `argsz`.
 */
export function featureDmaBuf(vdev: VfioPciDevice, flags: number, arg: UserBuffer, dataLen: number): number {
  const m = vdev.vfio.machine;
  // 1. the driver must be able to describe its memory
  if (!vdev.driver.getDmabufPhys)
    throw new KernelError(
      "EOPNOTSUPP",
      `${vdev.driver.name} cannot export dma-bufs (no get_dmabuf_phys)`,
      "K-23",
    );
  // 2.
  if (vfioCheckFeature(flags, dataLen, VFIO_DEVICE_FEATURE_GET, DMA_BUF_FIXED_SIZE) === 0) return 0;
  // 3. the fixed part
  const fixed = arg.copyFromUser(
    FEATURE_HEADER_SIZE,
    DMA_BUF_FIXED_SIZE,
    "struct vfio_device_feature_dma_buf",
  );
  const regionIndex = fixed.getUint32(0, true);
  const openFlags = fixed.getUint32(4, true);
  const dbFlags = fixed.getUint32(8, true);
  const nrRanges = fixed.getUint32(12, true);
  // 4.
  if (nrRanges === 0 || dbFlags !== 0)
    throw new KernelError(
      "EINVAL",
      nrRanges === 0 ? "nr_ranges is 0" : "flags must be 0",
      nrRanges === 0 ? "K-28" : "K-29",
    );
  // 5.
  if (regionIndex >= 6) throw new KernelError("ENODEV", `region ${regionIndex} is not a BAR`, "K-31");
  // 6. memdup_array_user
  const bytes = nrRanges * DMA_RANGE_SIZE;
  if (bytes > m.kernel.kmallocMaxSize)
    throw new KernelError("ENOMEM", `${nrRanges} ranges exceed KMALLOC_MAX_SIZE`, "K-33");
  const rv = arg.copyFromUser(
    FEATURE_HEADER_SIZE + DMA_BUF_FIXED_SIZE,
    bytes,
    "struct vfio_region_dma_range[]",
  );
  const ranges: DmaRange[] = new Array(nrRanges);
  for (let i = 0; i < nrRanges; i++)
    ranges[i] = { offset: rv.getBigUint64(16 * i, true), length: rv.getBigUint64(16 * i + 8, true) };
  // 7. validate every range in order
  let total = 0n;
  for (let i = 0; i < nrRanges; i++) {
    const r = ranges[i];
    if (r.length === 0n) throw new KernelError("EINVAL", `range ${i}: length 0`, "K-36");
    if (r.offset % PAGE_SIZE || r.length % PAGE_SIZE)
      throw new KernelError("EINVAL", `range ${i}: offset and length must be page aligned`, "K-37");
    total += r.length;
    if (total > U64_MAX) throw new KernelError("EINVAL", "total length overflows u64", "K-39");
  }
  // 8.
  if (total & DMA_IOVA_USE_SWIOTLB) throw new KernelError("EINVAL", "total length has bit 63 set", "K-40");
  // 9.–10. private object and the physical ranges
  const phys = vdev.driver.getDmabufPhys(vdev, regionIndex, ranges);
  const priv = new VfioDmaBuf(vdev, total, phys.physVec, phys.provider, regionIndex);
  // 11.
  if (!vdev.tryGetRegistration()) throw new KernelError("ENODEV", "device is being unregistered", "K-55");
  // 12.
  let dmabuf: DmaBuf;
  try {
    vdev.dmabufOps ??= vfioDmaBufOps(vdev);
    dmabuf = m.dmabuf.export({
      ops: vdev.dmabufOps,
      size: total,
      flags: openFlags,
      priv,
      expName: "vfio_pci_core",
    });
  } catch (e) {
    vdev.putRegistration();
    throw e;
  }
  priv.dmabuf = dmabuf;
  // 13. state and list membership, under memory_lock then the buffer's reservation lock
  // (lock/unlock in place rather than `with`: no closure per export)
  vdev.memoryLock.lock();
  try {
    dmabuf.resv.lock();
    priv.revoked = !vdev.memoryEnabled;
    vdev.dmabufs.push(priv);
    dmabuf.resv.unlock();
  } finally {
    vdev.memoryLock.unlock();
  }
  // 14.–16.
  let fd: number;
  try {
    fd = m.dmabuf.fd(dmabuf, openFlags & O_CLOEXEC, m.fds);
  } catch (e) {
    m.dmabuf.put(dmabuf); // release unlinks and puts the registration, once (K-54)
    throw e;
  }
  if (m.log.active)
    m.log.emit({
      kind: "vfio-export",
      device: vdev.pdev.bdf,
      dmabuf: dmabuf.label,
      fd,
      region: regionIndex,
      size: `0x${total.toString(16)}`,
      state: priv.state,
    });
  return fd;
}

/** The exporter ops of a VFIO dma-buf (§8.2, 6.19 final). */
export function vfioDmaBufOps(owner: VfioPciDevice): DmaBufOps {
  const m = owner.vfio.machine;
  const k = m.kernel;
  const revocableWait = k.revokeSemantics === "revocable_wait";
  const privOf = (b: DmaBuf) => b.priv as VfioDmaBuf;
  // one options object for every map of this device's buffers: the lock is found from the attachment
  const mapOpts = {
    dma: m.dma,
    mapType: (prov: P2pdmaProvider, dev: DmaDevice) => m.p2pdma.mapType(prov, dev),
    sgChunk: k.sgChunk,
    iovaLinkOffset: k.iovaLinkOffset,
    diag: m.diag,
    faults: m.faults,
    assertLockHeld: assertAttachResvHeld,
  };
  const freeOpts = { dma: m.dma, assertLockHeld: assertAttachResvHeld };
  const ops: DmaBufOps = {
    attach(buf: DmaBuf, a: DmaBufAttachment) {
      if (!a.peer2peer) throw new KernelError("EOPNOTSUPP", "importer does not allow peer-to-peer", "K-59");
      if (privOf(buf).revoked) throw new KernelError("ENODEV", "buffer is revoked", "K-57");
      if (revocableWait && !m.dmabuf.attachRevocable(a))
        throw new KernelError("EOPNOTSUPP", "importer cannot be revoked (no invalidate_mappings)", "K-187");
    },
    mapDmaBuf(a: DmaBufAttachment, dir: number) {
      const buf = a.dmabuf;
      buf.resv.assertHeld("vfio_pci_dma_buf_map");
      const p = privOf(buf);
      if (p.revoked) throw new KernelError("ENODEV", "buffer is revoked", "K-115");
      const sgt = dmaBufPhysVecToSgt(a, p.provider, p.physVec, p.size, dir, mapOpts);
      p.liveMappings++;
      return sgt;
    },
    unmapDmaBuf(a: DmaBufAttachment, sgt, dir: number) {
      dmaBufFreeSgt(a, sgt, dir, freeOpts);
      privOf(a.dmabuf).liveMappings--;
    },
    release(buf: DmaBuf) {
      const p = privOf(buf);
      const vdev = p.vdev;
      if (vdev) {
        vdev.memoryLock.lock();
        removeItem(vdev.dmabufs, p);
        vdev.memoryLock.unlock();
        vdev.putRegistration();
        if (m.log.active) m.log.emit({ kind: "vfio-release", device: vdev.pdev.bdf, dmabuf: buf.label });
      }
    },
  };
  if (!revocableWait) {
    // 6.19-rc7: a pinned importer could never be revoked, so pinning is refused (K-64, K-83)
    ops.pin = () => {
      throw new KernelError("EOPNOTSUPP", "a VFIO dma-buf cannot be pinned: it must stay revocable", "K-64");
    };
    ops.unpin = () => {};
  }
  if (k.tphFeature)
    ops.getTph = (buf: DmaBuf, extended: boolean) => {
      const t = privOf(buf).tph;
      if (extended ? !t.stExtValid : !t.stValid)
        throw new KernelError(
          "EOPNOTSUPP",
          `no ${extended ? "extended " : ""}steering tag published`,
          "TPH-20",
        );
      return { st: extended ? t.stExt : t.st, ph: t.ph };
    };
  return ops;
}

/**
 * `vfio_pci_dma_buf_iommufd_map` (§8.2): iommufd's private interconnect to the physical range.
 */
export function vfioPciDmaBufIommufdMap(a: DmaBufAttachment): PhysVec {
  a.dmabuf.resv.assertHeld("vfio_pci_dma_buf_iommufd_map");
  const p = a.dmabuf.priv;
  if (!(p instanceof VfioDmaBuf)) throw new KernelError("EOPNOTSUPP", "not a VFIO dma-buf", "K-168");
  if (p.revoked) throw new KernelError("ENODEV", "buffer is revoked", "K-162");
  if (p.nrRanges !== 1)
    throw new KernelError("EOPNOTSUPP", "iommufd maps single-range buffers only", "K-161");
  return p.physVec[0];
}

/**
 * `vfio_pci_dma_buf_move(vdev, revoked)` (§8.3): caller holds memory_lock for write. Buffers whose
 * file is dying are skipped; importers are notified only when the state changes.
 */
export function dmaBufMove(vdev: VfioPciDevice, revoked: boolean, cause: string): void {
  vdev.memoryLock.assertHeld("vfio_pci_dma_buf_move");
  const m = vdev.vfio.machine;
  const dropLater: DmaBuf[] = [];
  for (const p of [...vdev.dmabufs]) {
    const buf = p.dmabuf;
    if (!buf.file.getActive()) continue;
    if (p.revoked !== revoked && !(p.permRevoked && !revoked)) {
      buf.resv.with(() => {
        p.revoked = revoked;
        if (m.log.active)
          m.log.emit({
            kind: revoked ? "revoke" : "restore",
            device: vdev.pdev.bdf,
            dmabuf: buf.label,
            cause,
          });
        m.dmabuf.moveNotify(buf);
      });
      if (revoked) revocableWaitForUnmap(vdev, p);
    }
    dropLater.push(buf);
  }
  // The temporary references go after the walk: a release they trigger must not edit the list
  // being walked (it takes memory_lock itself, so it runs once the caller unlocks).
  vdev.deferredPuts.push(...dropLater);
}

/**
 * §12.2 (`revokeSemantics='revocable_wait'`): after notifying, revoke blocks until every mapping
 * is unmapped. An importer that never unmaps hangs the revoking thread; the model reports it as a
 * deadlock diagnostic after its timeout instead of hanging (K-188).
 */
export function revocableWaitForUnmap(vdev: VfioPciDevice, p: VfioDmaBuf): void {
  const m = vdev.vfio.machine;
  if (m.kernel.revokeSemantics !== "revocable_wait" || p.liveMappings === 0) return;
  m.diag.record(
    "deadlock:revoke-wait",
    `${p.dmabuf.label}: ${p.liveMappings} mapping(s) still held after the model's timeout; the revoking thread would block`,
  );
}

/** `vfio_pci_dma_buf_cleanup(vdev)` (§8.3, device close): permanent revoke, always notifying. */
export function dmaBufCleanup(vdev: VfioPciDevice): void {
  const m = vdev.vfio.machine;
  vdev.memoryLock.with(() => {
    for (const p of [...vdev.dmabufs]) {
      const buf = p.dmabuf;
      if (!buf.file.getActive()) continue; // dying: its own release unlinks it (K-144)
      buf.resv.with(() => {
        removeItem(vdev.dmabufs, p);
        p.vdev = null;
        p.revoked = true;
        if (m.log.active) m.log.emit({ kind: "cleanup", device: vdev.pdev.bdf, dmabuf: buf.label });
        m.dmabuf.moveNotify(buf);
      });
      revocableWaitForUnmap(vdev, p);
      vdev.putRegistration();
      vdev.deferredPuts.push(buf);
    }
  });
  vdev.flushDeferredPuts();
}
