/**
 * The dma-buf core of Linux 6.19 (kernel-semantics §4): export, fd and file lifetime, static and
 * dynamic attachments, pin/map/unmap under the reservation lock, move_notify, and the file
 * operations of a dma-buf fd. Exporters and importers plug in through {@link DmaBufOps} and
 * {@link ImporterOps}, as the kernel's ops tables.
 */
import type { Diagnostics } from "../core/diagnostics.js";
import { KernelError } from "../core/errors.js";
import {
  type FdTable,
  KFile,
  O_ACCMODE,
  O_NONBLOCK,
  SEEK_END,
  SEEK_SET,
  type UserBuffer,
} from "../core/file.js";
import { addFirst, removeItem } from "../core/list.js";
import { Lock, type LockChecker } from "../core/locks.js";
import type { DmaDevice } from "../dma/device.js";
import { deviceName } from "../dma/device.js";
import type { DmaDataDirection } from "../dma/direction.js";
import type { SgTable } from "./phys-vec.js";

/** `struct dma_buf_ops` (exporter). Failures throw {@link KernelError}. */
export interface DmaBufOps {
  attach?(dmabuf: DmaBuf, attach: DmaBufAttachment): void;
  detach?(dmabuf: DmaBuf, attach: DmaBufAttachment): void;
  pin?(attach: DmaBufAttachment): void;
  unpin?(attach: DmaBufAttachment): void;
  mapDmaBuf(attach: DmaBufAttachment, dir: DmaDataDirection): SgTable | null;
  unmapDmaBuf(attach: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void;
  release(dmabuf: DmaBuf): void;
  beginCpuAccess?(dmabuf: DmaBuf, dir: DmaDataDirection): void;
  endCpuAccess?(dmabuf: DmaBuf, dir: DmaDataDirection): void;
  mmap?(dmabuf: DmaBuf): void;
  /** TPH on dma-buf (tphFeature, tph-and-tlp §5.1): the steering tag and processing hint. */
  getTph?(dmabuf: DmaBuf, extended: boolean): { st: number; ph: number };
}

/** `struct dma_buf_attach_ops` (dynamic importer). */
export interface ImporterOps {
  allowPeer2peer: boolean;
  /** Mandatory in 6.19 when importer ops are given. */
  moveNotify?: (attach: DmaBufAttachment) => void;
}

export interface ExportInfo {
  ops: DmaBufOps;
  size: bigint;
  flags: number;
  priv: unknown;
  expName: string;
  /** Shared reservation object (rare); a private one otherwise. */
  resv?: Lock;
}

export class DmaBuf {
  readonly attachments: DmaBufAttachment[] = [];
  name = "";
  file!: KFile;
  /** `list_node` in the global `db_list` (see {@link DmaBufList}). */
  listPrev: DmaBuf | null = null;
  listNext: DmaBuf | null = null;
  /** The list it is on (a buffer belongs to one machine's core). */
  onList: DmaBufList | null = null;
  constructor(
    readonly id: number,
    readonly size: bigint,
    readonly ops: DmaBufOps,
    readonly priv: unknown,
    readonly expName: string,
    readonly resv: Lock,
  ) {}
  get label(): string {
    return `dmabuf#${this.id}`;
  }
}

export class DmaBufAttachment {
  /** Tables handed out by map and not yet unmapped (an array: a Set per attach cost more than the attach). */
  readonly mappings: SgTable[] = [];
  /** Exporter private (`attach->priv`). */
  priv: unknown = undefined;
  detached = false;
  constructor(
    readonly id: number,
    readonly dmabuf: DmaBuf,
    readonly dev: DmaDevice,
    readonly peer2peer: boolean,
    readonly importerOps: ImporterOps | null,
    readonly importerPriv: unknown,
    /** A name for logs ("A", "iommufd", "mlx5_ib mr 3"); empty: `attach#<id>`. */
    private readonly name: string,
  ) {}
  /** Built when asked: a string per attach cost more than the attach itself. */
  get label(): string {
    return this.name || `attach#${this.id}`;
  }
  get dynamic(): boolean {
    return this.importerOps !== null;
  }
}

/**
 * `dma_resv_assert_held(attach->dmabuf->resv)` for exporters that map with the phys_vec helper
 * (its `assertLockHeld` option).
 */
export function assertAttachResvHeld(a: DmaBufAttachment, site: string): void {
  a.dmabuf.resv.assertHeld(site);
}

/** What the core reports to the machine's event log. */
export type DmaBufEvent =
  | { kind: "dmabuf-export"; dmabuf: string; size: string; exporter: string }
  | { kind: "dmabuf-release"; dmabuf: string }
  | {
      kind: "attach";
      dmabuf: string;
      attachment: string;
      device: string;
      dynamic: boolean;
      peer2peer: boolean;
    }
  | { kind: "detach"; dmabuf: string; attachment: string }
  | { kind: "map"; dmabuf: string; attachment: string; entries: number }
  | { kind: "unmap"; dmabuf: string; attachment: string }
  | { kind: "move-notify"; dmabuf: string; attachment: string };

export interface DmaBufConfig {
  /** `CONFIG_DMABUF_MOVE_NOTIFY` (default n in Kconfig; kernel-semantics §0.2). */
  moveNotify: boolean;
  /**
   * §12.2 revoke series: the importer callback becomes optional (`invalidate_mappings`),
   * CONFIG_DMABUF_MOVE_NOTIFY is gone (always on).
   */
  revocableWait?: boolean;
}

export const DMA_BUF_IOCTL_SYNC = 0x40086200;
export const DMA_BUF_SET_NAME_A = 0x40046201;
export const DMA_BUF_SET_NAME_B = 0x40086201;
export const DMA_BUF_IOCTL_EXPORT_SYNC_FILE = 0xc0086202;
export const DMA_BUF_IOCTL_IMPORT_SYNC_FILE = 0x40086203;
export const DMA_BUF_SYNC_READ = 1;
export const DMA_BUF_SYNC_WRITE = 2;
export const DMA_BUF_SYNC_END = 4;
/** Name limit including the NUL. */
export const DMA_BUF_NAME_LEN = 32;

/**
 * The global `db_list`: every exported buffer not yet released, oldest first, linked through the
 * buffers themselves as the kernel's `list_head` (a Set's add and delete per export cost more
 * than the rest of the core's bookkeeping). Read like a Set: `size`, `has`, iteration.
 */
export class DmaBufList implements Iterable<DmaBuf> {
  private head: DmaBuf | null = null;
  private tail: DmaBuf | null = null;
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(buf: DmaBuf): boolean {
    return buf.onList === this;
  }

  /** `list_add_tail`. */
  add(buf: DmaBuf): void {
    if (buf.onList === this) return;
    if (buf.onList) throw new Error(`${buf.label} is already on another machine's dma-buf list`);
    buf.listPrev = this.tail;
    buf.listNext = null;
    if (this.tail) this.tail.listNext = buf;
    else this.head = buf;
    this.tail = buf;
    buf.onList = this;
    this.count++;
  }

  /** `list_del`. */
  delete(buf: DmaBuf): void {
    if (buf.onList !== this) return;
    if (buf.listPrev) buf.listPrev.listNext = buf.listNext;
    else this.head = buf.listNext;
    if (buf.listNext) buf.listNext.listPrev = buf.listPrev;
    else this.tail = buf.listPrev;
    buf.listPrev = buf.listNext = null;
    buf.onList = null;
    this.count--;
  }

  *[Symbol.iterator](): Iterator<DmaBuf> {
    // the next link is read before yielding, so deleting the current buffer is safe
    for (let b = this.head; b; ) {
      const next: DmaBuf | null = b.listNext;
      yield b;
      b = next;
    }
  }
}

/** The dma-buf core of one machine. */
export class DmaBufCore {
  /** The global `db_list`. */
  readonly buffers = new DmaBufList();
  private nextId = 1;
  private nextAttachId = 1;
  private fops: ReturnType<DmaBufCore["makeFileOps"]> | null = null;

  constructor(
    readonly config: DmaBufConfig,
    readonly diag: Diagnostics,
    readonly locks: LockChecker,
    private readonly emit: (e: DmaBufEvent) => void = () => {},
    /** Whether anyone records events (building them costs more than the rest of a map). */
    private readonly tracing: () => boolean = () => true,
  ) {}

  /** `pinOnMap` (§4.4). */
  pinOnMap(a: DmaBufAttachment): boolean {
    const moveNotify = this.config.moveNotify || !!this.config.revocableWait;
    return !!a.dmabuf.ops.pin && (!a.dynamic || !moveNotify);
  }

  /** `dma_buf_attach_revocable` (§12.2): the importer can be told to give its mappings up. */
  attachRevocable(a: DmaBufAttachment): boolean {
    return !!a.importerOps?.moveNotify;
  }

  /** `dma_buf_export` (§4.2). The caller owns the file's single reference. */
  export(info: ExportInfo): DmaBuf {
    const o = info.ops;
    if (!info.priv || !o?.mapDmaBuf || !o.unmapDmaBuf || !o.release) {
      this.diag.warn("dma_buf_export", "missing priv or a mandatory op");
      throw new KernelError(
        "EINVAL",
        "dma_buf_export: priv, map_dma_buf, unmap_dma_buf and release are mandatory",
        "K-72",
      );
    }
    if (!!o.pin !== !!o.unpin) {
      this.diag.warn("dma_buf_export", "pin without unpin (or the reverse)");
      throw new KernelError("EINVAL", "dma_buf_export: pin and unpin must come together", "K-72");
    }
    const id = this.nextId++;
    const resv = info.resv ?? new Lock(this.locks, "dma_resv", "dmabuf.resv", id);
    const buf = new DmaBuf(id, info.size, o, info.priv, info.expName, resv);
    this.fops ??= this.makeFileOps();
    buf.file = new KFile("dma-buf", this.fops, info.flags & (O_ACCMODE | O_NONBLOCK), buf);
    this.buffers.add(buf);
    if (this.tracing())
      this.emit({
        kind: "dmabuf-export",
        dmabuf: buf.label,
        size: `0x${info.size.toString(16)}`,
        exporter: info.expName,
      });
    return buf;
  }

  /** `dma_buf_fd`: installs the caller's reference in the table (only O_CLOEXEC matters). */
  fd(buf: DmaBuf | null, flags: number, fdt: FdTable): number {
    if (!buf?.file) throw new KernelError("EINVAL", "dma_buf_fd: no buffer");
    return fdt.install(buf.file, flags);
  }

  /** `dma_buf_get(fd)`: -EBADF for no such fd, -EINVAL for another kind of file. */
  get(fdt: FdTable, fd: number): DmaBuf {
    const f = fdt.fget(fd);
    if (f.kind !== "dma-buf") {
      f.put();
      throw new KernelError("EINVAL", `dma_buf_get: descriptor ${fd} is not a dma-buf`, "K-71");
    }
    return f.priv as DmaBuf;
  }

  /** `dma_buf_put`. */
  put(buf: DmaBuf): void {
    buf.file.put();
  }

  /** `dma_buf_dynamic_attach` (§4.3). */
  dynamicAttach(
    buf: DmaBuf | null,
    dev: DmaDevice | null,
    importerOps: ImporterOps | null,
    importerPriv: unknown = undefined,
    label = "",
  ): DmaBufAttachment {
    if (!buf || !dev) {
      this.diag.warn("dma_buf_dynamic_attach", "no buffer or device");
      throw new KernelError("EINVAL", "dma_buf_dynamic_attach: missing buffer or device");
    }
    buf.resv.assertNotHeld("dma_buf_dynamic_attach");
    if (importerOps && !importerOps.moveNotify && !this.config.revocableWait) {
      this.diag.warn("dma_buf_dynamic_attach", "importer ops without move_notify");
      throw new KernelError("EINVAL", "dma_buf_dynamic_attach: importer ops without move_notify", "K-61");
    }
    const id = this.nextAttachId++;
    const a = new DmaBufAttachment(
      id,
      buf,
      dev,
      importerOps ? importerOps.allowPeer2peer : false,
      importerOps,
      importerPriv,
      label,
    );
    buf.ops.attach?.(buf, a); // exporter errors propagate; nothing was linked
    buf.resv.lock();
    addFirst(buf.attachments, a); // head insertion: newest first
    buf.resv.unlock();
    if (this.tracing())
      this.emit({
        kind: "attach",
        dmabuf: buf.label,
        attachment: a.label,
        device: deviceName(dev),
        dynamic: a.dynamic,
        peer2peer: a.peer2peer,
      });
    return a;
  }

  /** `dma_buf_attach`: a static importer (no importer ops, so never peer2peer). */
  attach(buf: DmaBuf | null, dev: DmaDevice | null, label = ""): DmaBufAttachment {
    return this.dynamicAttach(buf, dev, null, undefined, label);
  }

  /** `dma_buf_detach`. The core does not check for live mappings (K-66). */
  detach(buf: DmaBuf | null, a: DmaBufAttachment | null): void {
    if (!buf || !a || a.dmabuf !== buf || a.detached) {
      this.diag.warn("dma_buf_detach", "attachment does not belong to the buffer");
      return;
    }
    buf.resv.assertNotHeld("dma_buf_detach");
    buf.resv.lock();
    removeItem(buf.attachments, a);
    buf.resv.unlock();
    if (a.mappings.length)
      this.diag.record("leak:mapping-on-detach", `${a.label} detached with ${a.mappings.length} mapping(s)`);
    buf.ops.detach?.(buf, a);
    a.detached = true;
    if (this.tracing()) this.emit({ kind: "detach", dmabuf: buf.label, attachment: a.label });
  }

  /** `dma_buf_pin` (lock held; WARN for static attachments). */
  pin(a: DmaBufAttachment): void {
    a.dmabuf.resv.assertHeld("dma_buf_pin");
    if (!a.dynamic) this.diag.warn("dma_buf_pin", "pinning a static attachment");
    a.dmabuf.ops.pin?.(a);
  }

  unpin(a: DmaBufAttachment): void {
    a.dmabuf.resv.assertHeld("dma_buf_unpin");
    if (!a.dynamic) this.diag.warn("dma_buf_unpin", "unpinning a static attachment");
    a.dmabuf.ops.unpin?.(a);
  }

  /** `dma_buf_map_attachment` (§4.4; reservation lock held by the caller, K-65). */
  mapAttachment(a: DmaBufAttachment | null, dir: DmaDataDirection): SgTable {
    if (!a?.dmabuf) {
      this.diag.warn("dma_buf_map_attachment", "no attachment");
      throw new KernelError("EINVAL", "dma_buf_map_attachment: no attachment");
    }
    const buf = a.dmabuf;
    buf.resv.assertHeld("dma_buf_map_attachment");
    const pinned = this.pinOnMap(a);
    if (pinned) {
      try {
        buf.ops.pin!(a);
      } catch (e) {
        if (e instanceof KernelError && e.errnoName === "EBUSY")
          this.diag.warn("dma_buf_map_attachment", "pin -EBUSY");
        throw e;
      }
    }
    let sgt: SgTable | null;
    try {
      sgt = buf.ops.mapDmaBuf(a, dir);
      if (!sgt) throw new KernelError("ENOMEM", "map_dma_buf returned NULL");
    } catch (e) {
      if (pinned) buf.ops.unpin!(a);
      throw e;
    }
    // Static importers would wait for the kernel fences here; exporters in this model carry none.
    a.mappings.push(sgt);
    if (this.tracing())
      this.emit({ kind: "map", dmabuf: buf.label, attachment: a.label, entries: sgt.nents });
    return sgt;
  }

  mapAttachmentUnlocked(a: DmaBufAttachment, dir: DmaDataDirection): SgTable {
    // lock and unlock in place rather than `resv.with`: no closure per map on this hot path
    const resv = a.dmabuf.resv;
    resv.lock();
    try {
      return this.mapAttachment(a, dir);
    } finally {
      resv.unlock();
    }
  }

  /** `dma_buf_unmap_attachment` (lock held). */
  unmapAttachment(a: DmaBufAttachment | null, sgt: SgTable | null, dir: DmaDataDirection): void {
    if (!a || !sgt) {
      this.diag.warn("dma_buf_unmap_attachment", "no attachment or table");
      return;
    }
    a.dmabuf.resv.assertHeld("dma_buf_unmap_attachment");
    a.dmabuf.ops.unmapDmaBuf(a, sgt, dir);
    removeItem(a.mappings, sgt);
    if (this.pinOnMap(a)) a.dmabuf.ops.unpin!(a);
    if (this.tracing()) this.emit({ kind: "unmap", dmabuf: a.dmabuf.label, attachment: a.label });
  }

  unmapAttachmentUnlocked(a: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection): void {
    const resv = a.dmabuf.resv;
    resv.lock();
    try {
      this.unmapAttachment(a, sgt, dir);
    } finally {
      resv.unlock();
    }
  }

  /**
   * `dma_buf_move_notify` (§4.5): exporter holds the reservation lock; every dynamic attachment is
   * told, newest first, synchronously.
   */
  moveNotify(buf: DmaBuf): void {
    buf.resv.assertHeld("dma_buf_move_notify");
    for (const a of [...buf.attachments]) {
      if (!a.importerOps?.moveNotify) {
        // §12.2: a dynamic importer without the (now optional) callback is skipped silently by the
        // kernel; the model notes it (rdma-data-direct §9.4, a model addition, not a kernel message)
        if (a.importerOps && this.config.revocableWait)
          this.diag.record("note:invalidate-skipped", `${a.label}: no invalidate_mappings callback`);
        continue;
      }
      if (this.tracing()) this.emit({ kind: "move-notify", dmabuf: buf.label, attachment: a.label });
      a.importerOps.moveNotify(a);
    }
  }

  /**
   * `dma_buf_get_tph` (tph-and-tlp §5.1): the caller holds the reservation lock; an exporter
   * without the op answers -EOPNOTSUPP.
   */
  getTph(buf: DmaBuf, extended: boolean): { st: number; ph: number } {
    buf.resv.assertHeld("dma_buf_get_tph");
    if (!buf.ops.getTph) throw new KernelError("EOPNOTSUPP", "exporter has no get_tph", "TPH-25");
    return buf.ops.getTph(buf, extended);
  }

  /* file operations of a dma-buf fd (§4.6) */

  private makeFileOps() {
    return {
      release: (f: KFile) => this.release(f.priv as DmaBuf),
      llseek: (f: KFile, offset: bigint, whence: number) => {
        const buf = f.priv as DmaBuf;
        if (offset !== 0n) throw new KernelError("EINVAL", "dma_buf_llseek: only offset 0", "K-69");
        if (whence === SEEK_END) return buf.size;
        if (whence === SEEK_SET) return 0n;
        throw new KernelError("EINVAL", "dma_buf_llseek: only SEEK_SET or SEEK_END", "K-69");
      },
      mmap: (f: KFile, req: { pgoff: bigint; pages: bigint; shared: boolean }) => {
        const buf = f.priv as DmaBuf;
        if (!buf.ops.mmap) throw new KernelError("EINVAL", "dma_buf_mmap: exporter has no mmap", "K-68");
        if (req.pgoff + req.pages > buf.size / 4096n)
          throw new KernelError("EINVAL", "dma_buf_mmap: beyond the buffer");
        buf.ops.mmap(buf);
      },
      ioctl: (f: KFile, cmd: number, arg: UserBuffer) => this.ioctl(f.priv as DmaBuf, cmd, arg),
      fdinfo: (f: KFile) => {
        const buf = f.priv as DmaBuf;
        return { size: Number(buf.size), count: f.refs - 1, exp_name: buf.expName, name: buf.name };
      },
    };
  }

  private release(buf: DmaBuf): void {
    if (buf.attachments.length)
      this.diag.record("leak:attachment-on-release", `${buf.label}: ${buf.attachments.length}`);
    this.buffers.delete(buf);
    buf.ops.release(buf);
    if (this.tracing()) this.emit({ kind: "dmabuf-release", dmabuf: buf.label });
  }

  private ioctl(buf: DmaBuf, cmd: number, arg: UserBuffer): number {
    switch (cmd) {
      case DMA_BUF_IOCTL_SYNC: {
        const flags = arg.copyFromUser(0, 8, "struct dma_buf_sync").getBigUint64(0, true);
        const valid = BigInt(DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE | DMA_BUF_SYNC_END);
        if (flags & ~valid) throw new KernelError("EINVAL", "DMA_BUF_IOCTL_SYNC: unknown flag bits", "K-70");
        if (!(flags & 3n))
          throw new KernelError("EINVAL", "DMA_BUF_IOCTL_SYNC: neither READ nor WRITE", "K-70");
        const dir = Number(flags & 3n) === 3 ? 0 : flags & 1n ? 2 : 1;
        if (flags & BigInt(DMA_BUF_SYNC_END)) buf.ops.endCpuAccess?.(buf, dir);
        else buf.ops.beginCpuAccess?.(buf, dir);
        return 0;
      }
      case DMA_BUF_SET_NAME_A:
      case DMA_BUF_SET_NAME_B: {
        // strndup_user(arg, 32): the string and its NUL must fit in 32 bytes
        if (!arg.bytes)
          throw new KernelError("EFAULT", "DMA_BUF_SET_NAME: name pointer not readable", "K-67");
        const n = Math.min(arg.bytes.length, DMA_BUF_NAME_LEN);
        const nul = arg.bytes.subarray(0, n).indexOf(0);
        if (nul < 0) {
          if (arg.bytes.length < DMA_BUF_NAME_LEN)
            throw new KernelError("EFAULT", "DMA_BUF_SET_NAME: name runs past readable memory", "K-67");
          throw new KernelError("EINVAL", "DMA_BUF_SET_NAME: name longer than 31 characters", "K-67");
        }
        buf.name = new TextDecoder().decode(arg.bytes.subarray(0, nul));
        return 0;
      }
      case DMA_BUF_IOCTL_EXPORT_SYNC_FILE:
      case DMA_BUF_IOCTL_IMPORT_SYNC_FILE:
        throw new KernelError("EOPNOTSUPP", "sync_file plumbing is not modelled");
      default:
        throw new KernelError("ENOTTY", `dma-buf: unknown ioctl 0x${cmd.toString(16)}`, "K-70");
    }
  }
}
