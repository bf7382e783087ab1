/**
 * A pinnable dma-buf exporter of device memory, standing for a GPU driver's dma-buf
 * (rdma-data-direct.md §2 "any exporter object with `supportsPin: true`", §14): it owns physical
 * ranges inside one BAR of a given PCI function and maps them with the same phys_vec helper VFIO
 * uses, so map types (BUS_ADDR, THRU_HOST_BRIDGE, NOT_SUPPORTED) and addresses are the real ones.
 *
 * It has `pin`/`unpin` (counted per attachment) and may publish TPH. Like a GPU driver it never
 * takes memory away from a pinned importer: {@link PinnableExporter.revoke} refuses with -EBUSY
 * while anything is pinned. {@link PinnableExporter.moveNotify} is the buffer moving (every dynamic
 * importer must re-map; pinned attachments keep their valid mappings) — or, sent at a pinned
 * importer, the misbehaviour DD-44 shows.
 */
import { KernelError } from "../core/errors.js";
import { O_CLOEXEC, O_RDWR } from "../core/file.js";
import type { DmaDataDirection } from "../dma/direction.js";
import {
  assertAttachResvHeld,
  type DmaBuf,
  type DmaBufAttachment,
  type DmaBufOps,
} from "../dmabuf/dma-buf.js";
import { dmaBufFreeSgt, dmaBufPhysVecToSgt, type PhysVec, type SgTable } from "../dmabuf/phys-vec.js";
import type { Machine } from "../machine/machine.js";
import type { P2pdmaProvider } from "../p2pdma/p2pdma.js";
import { IORESOURCE_MEM, type PciDev } from "../pci/device.js";

export interface PinnableExporterOptions {
  /** The function whose memory is exported (a GPU). */
  dev: PciDev | string;
  bar: number;
  /** Bytes from the BAR start (default 0). */
  offset?: bigint;
  size: bigint;
  /** Split the buffer into these ranges (offsets within the buffer, lengths); default one range. */
  split?: bigint[];
  /** Exporter name (`exp_name`). */
  name?: string;
  tph?: { st?: number; stExt?: number; ph: number };
}

export class PinnableExporter {
  readonly supportsPin = true;
  readonly buf: DmaBuf;
  readonly fd: number;
  readonly provider: P2pdmaProvider;
  readonly physVec: PhysVec[];
  readonly owner: PciDev;
  /** Pins per attachment. */
  readonly pinned = new Map<DmaBufAttachment, number>();
  pinCalls = 0;
  unpinCalls = 0;
  mapCalls = 0;
  unmapCalls = 0;
  getTphCalls = 0;
  moveNotifies = 0;
  revoked = false;
  released = false;
  tph: { st?: number; stExt?: number; ph: number } | null;
  /** Tables handed out and not unmapped, with whether they still point at the buffer's memory. */
  private readonly live = new Map<SgTable, { attach: DmaBufAttachment; valid: boolean }>();

  constructor(
    readonly machine: Machine,
    opts: PinnableExporterOptions,
  ) {
    const m = machine;
    const dev = typeof opts.dev === "string" ? m.device(opts.dev) : opts.dev;
    this.owner = dev;
    const r = dev.resources[opts.bar];
    const offset = opts.offset ?? 0n;
    if (!r || !(r.flags & IORESOURCE_MEM) || offset + opts.size > r.len)
      throw new KernelError(
        "EINVAL",
        `${dev.bdf} BAR${opts.bar} cannot hold ${opts.size} bytes at +${offset}`,
      );
    m.p2pdma.init(dev);
    const provider = m.p2pdma.provider(dev, opts.bar);
    if (!provider) throw new KernelError("EINVAL", `${dev.bdf} BAR${opts.bar} has no P2PDMA provider`);
    this.provider = provider;
    const cuts = [0n, ...(opts.split ?? []).filter((c) => c > 0n && c < opts.size), opts.size];
    this.physVec = cuts.slice(1).map((end, i) => ({ paddr: r.start + offset + cuts[i], len: end - cuts[i] }));
    this.tph = opts.tph ?? null;
    this.buf = m.dmabuf.export({
      ops: this.ops(),
      size: opts.size,
      flags: O_RDWR,
      priv: this,
      expName: opts.name ?? "peerdma_gpu",
    });
    this.fd = m.dmabuf.fd(this.buf, O_CLOEXEC, m.fds);
  }

  get pinCount(): number {
    let n = 0;
    for (const c of this.pinned.values()) n += c;
    return n;
  }
  get attachments(): number {
    return this.buf.attachments.length;
  }
  get liveMappings(): number {
    return this.live.size;
  }
  /** Whether `sgt` is a mapping of this buffer that still addresses its memory. */
  isMappingValid(sgt: SgTable): boolean {
    return this.live.get(sgt)?.valid === true && !this.revoked;
  }

  private ops(): DmaBufOps {
    const m = this.machine;
    const k = m.kernel;
    return {
      pin: (a) => {
        this.pinCalls++;
        this.pinned.set(a, (this.pinned.get(a) ?? 0) + 1);
      },
      unpin: (a) => {
        this.unpinCalls++;
        const n = (this.pinned.get(a) ?? 0) - 1;
        if (n < 0) throw new KernelError("EINVAL", "unpin of an attachment that is not pinned");
        if (n === 0) this.pinned.delete(a);
        else this.pinned.set(a, n);
      },
      mapDmaBuf: (a: DmaBufAttachment, dir: DmaDataDirection) => {
        a.dmabuf.resv.assertHeld("peerdma_gpu map_dma_buf");
        if (this.revoked) throw new KernelError("ENODEV", "exporter revoked the buffer");
        const sgt = dmaBufPhysVecToSgt(a, this.provider, this.physVec, this.buf.size, dir, {
          dma: m.dma,
          mapType: (prov, dev) => m.p2pdma.mapType(prov, dev),
          sgChunk: k.sgChunk,
          iovaLinkOffset: k.iovaLinkOffset,
          diag: m.diag,
          faults: m.faults,
          assertLockHeld: assertAttachResvHeld,
        });
        this.mapCalls++;
        this.live.set(sgt, { attach: a, valid: true });
        return sgt;
      },
      unmapDmaBuf: (a: DmaBufAttachment, sgt: SgTable, dir: DmaDataDirection) => {
        dmaBufFreeSgt(a, sgt, dir, { dma: m.dma, assertLockHeld: assertAttachResvHeld });
        this.unmapCalls++;
        this.live.delete(sgt);
      },
      release: () => {
        this.released = true;
      },
      getTph: (_b: DmaBuf, extended: boolean) => {
        this.getTphCalls++;
        const t = this.tph;
        const st = extended ? t?.stExt : t?.st;
        if (!t || st === undefined) throw new KernelError("EOPNOTSUPP", "no steering tag published");
        return { st, ph: t.ph };
      },
    };
  }

  /** The buffer moves: unpinned mappings go stale and every dynamic importer is told. */
  moveNotify(): void {
    this.buf.resv.with(() => {
      for (const [, l] of this.live) if (!this.pinned.has(l.attach)) l.valid = false;
      this.moveNotifies++;
      this.machine.dmabuf.moveNotify(this.buf);
    });
  }

  /** Takes the memory away (device going away). Refused while an importer holds a pin. */
  revoke(): void {
    if (this.pinCount > 0) throw new KernelError("EBUSY", "buffer is pinned by an importer");
    this.buf.resv.with(() => {
      this.revoked = true;
      for (const l of this.live.values()) l.valid = false;
      this.moveNotifies++;
      this.machine.dmabuf.moveNotify(this.buf);
    });
  }

  /** Gives the memory back; importers are told and map again. */
  restore(): void {
    this.buf.resv.with(() => {
      this.revoked = false;
      this.moveNotifies++;
      this.machine.dmabuf.moveNotify(this.buf);
    });
  }

  setTph(t: { st?: number; stExt?: number; ph: number } | null): void {
    this.tph = t;
  }
}
