/**
 * A generic dynamic importer that keeps the move_notify contract (kernel-semantics §8.6): on a
 * notification it marks its mappings invalid and stops using them; it can re-map later. Any DMA
 * issued through an invalidated mapping is recorded as a protocol violation. Scenarios, the demo
 * and tests use it as the importer `I(p2p)` of §13.0.
 */
import { KernelError } from "../core/errors.js";
import type { DmaDevice } from "../dma/device.js";
import type { DmaDataDirection } from "../dma/direction.js";
import type { DmaBuf, DmaBufAttachment, DmaBufCore } from "./dma-buf.js";
import type { SgTable } from "./phys-vec.js";

export interface ImporterOptions {
  peer2peer?: boolean;
  /** false: attach with importer ops lacking move_notify (K-61). */
  withMoveNotify?: boolean;
  /** Also unmap every mapping from inside the callback (allowed: the lock is held). */
  unmapInNotify?: boolean;
  /** Try to take the buffer's reservation lock inside the callback (a bug the lock checker reports). */
  relockInNotify?: boolean;
}

export interface ImporterMapping {
  sgt: SgTable;
  dir: DmaDataDirection;
  valid: boolean;
}

export class DynamicImporter {
  notifications = 0;
  readonly mappings: ImporterMapping[] = [];
  readonly violations: string[] = [];
  attachment: DmaBufAttachment | null = null;

  constructor(
    readonly core: DmaBufCore,
    readonly dev: DmaDevice,
    readonly label: string,
    readonly opts: ImporterOptions = {},
  ) {}

  attach(buf: DmaBuf): DmaBufAttachment {
    const ops =
      this.opts.withMoveNotify === false
        ? { allowPeer2peer: this.opts.peer2peer ?? true }
        : {
            allowPeer2peer: this.opts.peer2peer ?? true,
            moveNotify: (a: DmaBufAttachment) => this.onMoveNotify(a),
          };
    this.attachment = this.core.dynamicAttach(buf, this.dev, ops, this, this.label);
    return this.attachment;
  }

  private onMoveNotify(a: DmaBufAttachment): void {
    this.notifications++;
    if (this.opts.relockInNotify) a.dmabuf.resv.lock();
    for (const m of this.mappings) m.valid = false;
    if (this.opts.unmapInNotify) {
      for (const m of [...this.mappings]) this.core.unmapAttachment(a, m.sgt, m.dir);
      this.mappings.length = 0;
    }
  }

  private need(): DmaBufAttachment {
    if (!this.attachment) throw new KernelError("EINVAL", `${this.label} is not attached`);
    return this.attachment;
  }

  /** Map under the reservation lock (the importer's normal path). */
  map(dir: DmaDataDirection = 0): ImporterMapping {
    const a = this.need();
    const sgt = this.core.mapAttachmentUnlocked(a, dir);
    const m = { sgt, dir, valid: true };
    this.mappings.push(m);
    return m;
  }

  unmap(m: ImporterMapping | undefined = this.mappings[this.mappings.length - 1]): void {
    const a = this.need();
    if (!m) throw new KernelError("EINVAL", `${this.label} has no mapping to unmap`);
    this.core.unmapAttachmentUnlocked(a, m.sgt, m.dir);
    this.mappings.splice(this.mappings.indexOf(m), 1);
  }

  unmapAll(): void {
    while (this.mappings.length) this.unmap();
  }

  detach(): void {
    const a = this.need();
    this.core.detach(a.dmabuf, a);
    this.attachment = null;
  }

  /** A DMA through mapping `m`: refused (and recorded) once the exporter invalidated it. */
  dma(m: ImporterMapping): boolean {
    if (!m.valid) {
      this.violations.push(`${this.label}: DMA through a mapping invalidated by move_notify`);
      return false;
    }
    return true;
  }
}
