/**
 * `struct iopt_pages` (drivers/iommu/iommufd/pages.c): the source of the PFNs behind one or more
 * areas. Three sources are modelled: user memory (IOAS_MAP), a file (the memfd path of
 * IOAS_MAP_FILE) and a dma-buf (kernel-semantics §10.1, §10.3 steps 7–10, §10.4).
 *
 * A dma-buf pages object holds a dynamic attachment made with iommufd's own non-PCI device and the
 * importer ops `{ allowPeer2peer: true, moveNotify: revokeNotify }`, the single physical range the
 * exporter handed over through the private interconnect (`phys.len === 0` means revoked, for good),
 * and a tracker of the (area, domain) pairs it is mapped into so a revoke can unmap them all.
 */
import type { GenericDevice } from "../core/device.js";
import { KernelError } from "../core/errors.js";
import type { KFile } from "../core/file.js";
import { Lock } from "../core/locks.js";
import type { DmaBuf, DmaBufAttachment } from "../dmabuf/dma-buf.js";
import type { PhysVec } from "../dmabuf/phys-vec.js";
import type { Machine } from "../machine/machine.js";
import { vfioPciDmaBufIommufdMap } from "../vfio/dma-buf.js";
import type { Area, IoDomain } from "./io-pagetable.js";
import { iommufdTestDmaBufIommufdMap } from "./selftest.js";

export const PAGE_SIZE = 4096n;
/** `type_max(u32)`: the pfn batch counts pages in 32 bits (§10.3 step 7). */
export const MAX_NPFNS = 0xffff_ffffn;

/** What every iommufd object needs from the machine it runs on. */
export interface IommufdEnv {
  m: Machine;
  /** iommufd's misc device: the importing device of its dma-buf attachments (non-PCI). */
  device: GenericDevice;
  /** Transparent huge pages: caps the automatic IOVA alignment at 2 MiB (else PAGE_SIZE). */
  thp: boolean;
}

export type PagesType = "user" | "file" | "dmabuf";

export interface DmabufTrack {
  area: Area;
  domain: IoDomain;
}

let nextPagesId = 1;

export class IoptPages {
  readonly id = nextPagesId++;
  /** kref: one per area using the pages, plus temporary list references. */
  refs = 1;
  released = false;
  /** `pages->mutex` (its own lock class for dma-buf pages, taken inside the reservation lock). */
  readonly mutex: Lock;
  /** Page-aligned start: the user VA (user), the file offset (file) or the buffer offset (dmabuf). */
  start = 0n;
  /* dma-buf */
  dmabuf: DmaBuf | null = null;
  attach: DmaBufAttachment | null = null;
  phys: PhysVec = { paddr: 0n, len: 0n };
  readonly tracker: DmabufTrack[] = [];
  /** `revokeSemantics='revocable_wait'`: dma_buf_pin succeeded after attach (§12.2). */
  pinned = false;
  /** Revoke notifications received while live (the first one revokes). */
  notifications = 0;
  /* file */
  file: KFile | null = null;

  constructor(
    readonly env: IommufdEnv,
    readonly type: PagesType,
    /** Bytes from the page-aligned start (`start_byte + length`). */
    readonly length: bigint,
    readonly writable: boolean,
  ) {
    this.mutex = new Lock(env.m.locks, "pages.mutex", `iopt_pages#${this.id}.mutex`);
  }

  get npages(): bigint {
    return (this.length + PAGE_SIZE - 1n) / PAGE_SIZE;
  }

  /** `iopt_dmabuf_revoked`. */
  get revoked(): boolean {
    return this.type === "dmabuf" && this.phys.len === 0n;
  }

  get(): void {
    if (this.released) throw new KernelError("EINVAL", `iopt_pages#${this.id} used after release`);
    this.refs++;
  }

  /** `iopt_put_pages`: the last reference releases. */
  put(): void {
    if (--this.refs === 0) this.release();
  }

  /** `iopt_release_pages`. */
  private release(): void {
    this.released = true;
    const m = this.env.m;
    if (this.type === "dmabuf" && this.dmabuf) {
      if (this.tracker.length) m.diag.warn("iopt_release_pages", "dma-buf tracker not empty at release");
      const buf = this.dmabuf;
      const a = this.attach;
      if (a) {
        if (this.pinned) buf.resv.with(() => m.dmabuf.unpin(a)); // revocable_wait (§12.2)
        this.pinned = false;
        m.dmabuf.detach(buf, a);
        this.attach = null;
      }
      this.dmabuf = null;
      m.dmabuf.put(buf);
    } else if (this.file) {
      this.file.put();
      this.file = null;
    }
  }

  /** CPU physical address of byte `b` of the pages (dma-buf: `phys.paddr + start + b`). */
  dmabufPhysAt(b: bigint): bigint {
    return this.phys.paddr + this.start + b;
  }
}

/** `iopt_alloc_user_pages`. */
export function allocUserPages(env: IommufdEnv, uptr: bigint, length: bigint, writable: boolean): IoptPages {
  const ULONG_MAX = (1n << 64n) - 1n;
  if (length === 0n || length > ULONG_MAX - PAGE_SIZE)
    throw new KernelError("EINVAL", "iopt_alloc_user_pages: bad length");
  if (uptr + length > ULONG_MAX) throw new KernelError("EOVERFLOW", "user range wraps");
  const startByte = uptr % PAGE_SIZE;
  const p = new IoptPages(env, "user", startByte + length, writable);
  p.start = uptr - startByte;
  return p;
}

/** `iopt_alloc_file_pages` (the memfd path; takes a reference on the file). */
export function allocFilePages(
  env: IommufdEnv,
  file: KFile,
  startByte: bigint,
  start: bigint,
  length: bigint,
  writable: boolean,
): IoptPages {
  const p = new IoptPages(env, "file", startByte + length, writable);
  p.file = file.get();
  p.start = start - startByte;
  return p;
}

/**
 * The private interconnect (§10.3 step 10): the selftest exporter first, then VFIO's
 * `vfio_pci_dma_buf_iommufd_map`. Reservation lock held.
 */
export function dmaBufIommufdMap(m: Machine, a: DmaBufAttachment): PhysVec {
  try {
    return iommufdTestDmaBufIommufdMap(a);
  } catch (e) {
    if (!(e instanceof KernelError && e.errnoName === "EOPNOTSUPP")) throw e;
  }
  if (!m.kernel.vfioPciDmabuf) throw new KernelError("EOPNOTSUPP", "CONFIG_VFIO_PCI_DMABUF=n", "K-168");
  return vfioPciDmaBufIommufdMap(a);
}

/**
 * `iopt_alloc_dmabuf_pages` + `iopt_map_dmabuf` (§10.3 steps 7–10). Takes over the buffer
 * reference the caller got from `dma_buf_get`: on failure it is dropped here (after the
 * attachment, if any, is detached).
 */
export function allocDmabufPages(
  env: IommufdEnv,
  buf: DmaBuf,
  startByte: bigint,
  start: bigint,
  length: bigint,
  writable: boolean,
): IoptPages {
  const m = env.m;
  // 7. bounds
  if (buf.size <= start + length - 1n || length / PAGE_SIZE >= MAX_NPFNS) {
    m.dmabuf.put(buf);
    throw new KernelError("EINVAL", "range outside the dma-buf", "K-156");
  }
  // 8. no pinned-page accounting
  const pages = new IoptPages(env, "dmabuf", startByte + length, writable);
  pages.start = start - startByte;
  pages.dmabuf = buf;
  // 9. the attachment (exporter errors propagate: VFIO revoked → -ENODEV, K-162)
  let a: DmaBufAttachment;
  try {
    a = m.dmabuf.dynamicAttach(
      buf,
      env.device,
      { allowPeer2peer: true, moveNotify: (att) => revokeNotify(att) },
      pages,
      `iommufd pages#${pages.id}`,
    );
  } catch (e) {
    pages.dmabuf = null;
    m.dmabuf.put(buf);
    throw e;
  }
  // 10. the physical range, under the reservation lock
  try {
    buf.resv.with(() => {
      // lockdep is taught that pages.mutex nests inside the reservation lock (§10.5)
      pages.mutex.with(() => {});
      if (m.kernel.revokeSemantics === "revocable_wait") {
        m.dmabuf.pin(a); // §12.2: pinned but revocable; failure → detach and fail
        pages.pinned = true;
      }
      try {
        pages.phys = { ...dmaBufIommufdMap(m, a) };
      } catch (e) {
        if (pages.pinned) m.dmabuf.unpin(a);
        pages.pinned = false;
        throw e;
      }
    });
  } catch (e) {
    m.dmabuf.detach(buf, a);
    pages.dmabuf = null;
    m.dmabuf.put(buf);
    throw e;
  }
  pages.attach = a;
  return pages;
}

/**
 * `iopt_revoke_notify` (§10.4): called by the exporter under the reservation lock. Every
 * notification on live pages is a revoke, and a revoke is permanent.
 */
export function revokeNotify(a: DmaBufAttachment): void {
  const pages = a.importerPriv as IoptPages;
  a.dmabuf.resv.assertHeld("iopt_revoke_notify");
  pages.mutex.with(() => {
    pages.notifications++;
    if (pages.revoked) return; // K-166: an un-revoke notification is ignored
    for (const t of pages.tracker) t.domain.hw.unmap(t.area.iova, t.area.length);
    pages.phys = { paddr: pages.phys.paddr, len: 0n };
  });
}
