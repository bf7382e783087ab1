/**
 * A real-enough NVMe controller (NVM Express 1.3) on a PCI function, driven entirely through its
 * BARs: the register file and doorbells of BAR0, an optional Controller Memory Buffer (the BAR
 * the machine file names "CMB", else BAR2), an admin queue pair, I/O queue creation and deletion,
 * Identify, Set/Get Features (Number of Queues) and NVM Read/Write/Flush on one in-memory namespace.
 *
 * How it reacts: a write reaching BAR0 (a CPU store, or a peer's DMA routed by the engine) lands
 * in the register file; CC writes enable, reset or shut the controller down; an SQ tail doorbell
 * makes it fetch the 64-byte commands (from its own CMB without any TLP, or from host memory by
 * its own DMA), execute them (data through PRP1/PRP2 and PRP lists, CMB or DMA) and post 16-byte
 * completions (phase tag, SQ head, status) to the CQ — after the transfer that rang the doorbell
 * has finished. A full CQ stalls its SQs until the host moves the CQ head. A failure to fetch a
 * command or post a completion is fatal (CSTS.CFS). No interrupts are modelled.
 */
import { InputError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import type { BarWriteAccess } from "../dataplane/bar-memory.js";
import type { DmaEngine } from "../dataplane/engine.js";
import { SparseBytes } from "../dataplane/sparse.js";
import { IORESOURCE_MEM, type PciDev } from "../pci/device.js";
import { CQE_BYTES, decodeSqe, encodeCqe, SQE_BYTES, type Sqe } from "./commands.js";
import type { NvmeEvent } from "./events.js";
import {
  ADMIN_NAMES,
  IO_NAMES,
  NVME_ADMIN,
  NVME_CC_EN,
  NVME_CC_IOCQES_SHIFT,
  NVME_CC_IOSQES_SHIFT,
  NVME_CC_MPS_SHIFT,
  NVME_CC_SHN_SHIFT,
  NVME_CMBSZ_CQS,
  NVME_CMBSZ_LISTS,
  NVME_CMBSZ_RDS,
  NVME_CMBSZ_SQS,
  NVME_CMBSZ_SZ_SHIFT,
  NVME_CMBSZ_SZU_SHIFT,
  NVME_CMBSZ_WDS,
  NVME_CSTS_CFS,
  NVME_CSTS_NSSRO,
  NVME_CSTS_RDY,
  NVME_CSTS_SHST_COMPLETE,
  NVME_CSTS_SHST_SHIFT,
  NVME_DOORBELL_BASE,
  NVME_FEAT_NUM_QUEUES,
  NVME_IO,
  NVME_NSSR_MAGIC,
  NVME_REG,
  NVME_SC,
  type NvmeStatus,
  statusName,
} from "./regs.js";

export interface NvmeControllerOptions {
  /** Logical block size (default 512). */
  lbaSize?: 512 | 4096;
  /** Namespace capacity in blocks (default 2^21: 1 GiB of 512-byte blocks). */
  namespaceBlocks?: bigint;
  /** Maximum entries of a queue, CAP.MQES + 1 (default 1024). */
  maxQueueEntries?: number;
  /** CAP.DSTRD: doorbell stride 4 << DSTRD bytes (default 0). */
  dstrd?: number;
  /** I/O queue pairs supported (default 63; fewer if BAR0 cannot hold their doorbells). */
  maxIoQueues?: number;
  /** The CMB's BAR; default the BAR named "CMB", else BAR2 when implemented; null = no CMB. */
  cmbBar?: number | null;
  /** Identify MDTS: maximum transfer 2^MDTS pages (default 5). */
  mdts?: number;
  serial?: string;
  model?: string;
  firmware?: string;
  /** Process commands as soon as a doorbell is rung (default true); otherwise call {@link NvmeController.process}. */
  autoProcess?: boolean;
}

interface Sq {
  id: number;
  base: bigint;
  size: number;
  head: number;
  tail: number;
  cqid: number;
  stalled: boolean;
}

interface Cq {
  id: number;
  base: bigint;
  size: number;
  head: number;
  tail: number;
  phase: 0 | 1;
  ien: boolean;
  iv: number;
}

interface Result {
  status: NvmeStatus;
  dw0?: number;
  detail?: string;
}

const OK: Result = { status: NVME_SC.SUCCESS };
const err = (status: NvmeStatus, detail?: string): Result => ({ status, detail });

/** SZU 0…6 = 4 KiB · 16^n. */
function cmbSizeFields(len: bigint): { szu: number; sz: number } | null {
  for (let szu = 0; szu <= 6; szu++) {
    const unit = 4096n << BigInt(4 * szu);
    if (len % unit === 0n && len / unit <= 0xfffffn && len / unit > 0n)
      return { szu, sz: Number(len / unit) };
  }
  return null;
}

function ascii(s: string, n: number): Uint8Array {
  const out = new Uint8Array(n).fill(0x20);
  for (let i = 0; i < Math.min(n, s.length); i++) out[i] = s.charCodeAt(i) & 0x7f;
  return out;
}

export class NvmeController {
  readonly lbaSize: number;
  readonly namespaceBlocks: bigint;
  readonly maxQueueEntries: number;
  readonly dstrd: number;
  readonly maxIoQueues: number;
  readonly mdts: number;
  readonly cmbBar: number | null;
  readonly autoProcess: boolean;
  /** The namespace's bytes (NSID 1). */
  readonly namespace: SparseBytes;
  /** Commands executed and completions posted so far. */
  readonly stats = { commands: 0, completions: 0 };
  private readonly sqs = new Map<number, Sq>();
  private readonly cqs = new Map<number, Cq>();
  private ccShadow = 0;
  private intMask = 0;
  private running = false;
  private again = false;
  private readonly unhook: (() => void)[] = [];
  private readonly ident: { serial: string; model: string; firmware: string };

  constructor(
    readonly engine: DmaEngine,
    readonly dev: PciDev,
    opts: NvmeControllerOptions = {},
  ) {
    const bar0 = dev.resources[0];
    if (!bar0 || !(bar0.flags & IORESOURCE_MEM) || bar0.len < 0x2000n)
      throw new InputError(`${dev.bdf}: an NVMe controller needs a memory BAR0 of at least 8 KiB`);
    this.lbaSize = opts.lbaSize ?? 512;
    if (this.lbaSize !== 512 && this.lbaSize !== 4096)
      throw new InputError(`LBA size ${this.lbaSize} is not 512 or 4096`);
    this.namespaceBlocks = opts.namespaceBlocks ?? 1n << 21n;
    this.maxQueueEntries = opts.maxQueueEntries ?? 1024;
    if (!Number.isInteger(this.maxQueueEntries) || this.maxQueueEntries < 2 || this.maxQueueEntries > 65536)
      throw new InputError(`maxQueueEntries ${this.maxQueueEntries} is not 2…65536`);
    this.dstrd = opts.dstrd ?? 0;
    if (!Number.isInteger(this.dstrd) || this.dstrd < 0 || this.dstrd > 15)
      throw new InputError(`DSTRD ${this.dstrd}`);
    const fit = Math.floor(Number(bar0.len - BigInt(NVME_DOORBELL_BASE)) / (2 * this.stride)) - 1;
    this.maxIoQueues = Math.max(1, Math.min(opts.maxIoQueues ?? 63, fit, 0xfffe));
    this.mdts = opts.mdts ?? 5;
    this.autoProcess = opts.autoProcess ?? true;
    this.cmbBar = opts.cmbBar !== undefined ? opts.cmbBar : this.defaultCmbBar();
    if (this.cmbBar !== null) {
      const r = dev.resources[this.cmbBar];
      if (!r || !(r.flags & IORESOURCE_MEM) || r.len === 0n || this.cmbBar === 0)
        throw new InputError(`${dev.bdf}: BAR${this.cmbBar} cannot hold the CMB`);
    }
    this.namespace = new SparseBytes(this.namespaceBlocks * BigInt(this.lbaSize));
    this.ident = {
      serial: opts.serial ?? `PEERDMA${dev.bdf.replace(/[:.]/g, "")}`,
      model: opts.model ?? (dev.name || "peerdma NVMe controller"),
      firmware: opts.firmware ?? "1.0",
    };
    this.initRegisters();
    // FLR / conventional reset of the function: a controller reset with every register at its
    // default (NVMe base spec, "Controller Level Reset"); the CMB's contents are not cleared
    const onPciReset = () => this.functionReset();
    dev.resetHooks.push(onPciReset);
    this.unhook.push(() => {
      const i = dev.resetHooks.indexOf(onPciReset);
      if (i >= 0) dev.resetHooks.splice(i, 1);
    });
    const bars = engine.bars;
    this.unhook.push(
      bars.addHook(dev, 0, {
        start: 0,
        end: NVME_DOORBELL_BASE,
        name: "nvme registers",
        write: (a) => this.regWrite(a),
      }),
      bars.addHook(dev, 0, {
        start: NVME_DOORBELL_BASE,
        end: NVME_DOORBELL_BASE + 2 * (this.maxIoQueues + 1) * this.stride,
        name: "nvme doorbells",
        write: (a) => this.doorbellWrite(a),
      }),
    );
  }

  /** Removes the register and doorbell hooks (the BAR becomes plain memory). */
  detach(): void {
    for (const u of this.unhook.splice(0)) u();
  }

  private defaultCmbBar(): number | null {
    const named = this.dev.barNames.findIndex((n) => n?.toUpperCase() === "CMB");
    if (named > 0) return named;
    const r2 = this.dev.resources[2];
    return r2 && r2.flags & IORESOURCE_MEM && r2.len > 0n ? 2 : null;
  }

  get stride(): number {
    return 4 << this.dstrd;
  }

  /** BAR0 offset of a doorbell: SQ y tail (2y)·stride, CQ y head (2y + 1)·stride after 0x1000. */
  doorbellOffset(qid: number, which: "sq" | "cq"): number {
    return NVME_DOORBELL_BASE + (2 * qid + (which === "cq" ? 1 : 0)) * this.stride;
  }

  /** Bus address range of the CMB, or null. */
  get cmbBusRange(): { start: bigint; end: bigint } | null {
    if (this.cmbBar === null) return null;
    const start = this.dev.busAddress(this.cmbBar);
    return { start, end: start + this.dev.resources[this.cmbBar].len };
  }

  private emit(e: NvmeEvent): void {
    this.engine.machine.log.emit(e);
  }

  /* ------------------------------------------------------------ registers */

  private reg32(off: number): number {
    return new DataView(this.engine.bars.peek(this.dev, 0, off, 4).buffer).getUint32(0, true);
  }
  private reg64(off: number): bigint {
    return new DataView(this.engine.bars.peek(this.dev, 0, off, 8).buffer).getBigUint64(0, true);
  }
  private set32(off: number, v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    this.engine.bars.poke(this.dev, 0, off, b);
  }
  private set64(off: number, v: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    this.engine.bars.poke(this.dev, 0, off, b);
  }

  get cc(): number {
    return this.reg32(NVME_REG.CC);
  }
  get csts(): number {
    return this.reg32(NVME_REG.CSTS);
  }
  get ready(): boolean {
    return (this.csts & NVME_CSTS_RDY) !== 0 && (this.csts & NVME_CSTS_CFS) === 0;
  }

  /** CAP as the controller reports it. */
  get cap(): bigint {
    let cap = BigInt(this.maxQueueEntries - 1);
    cap |= 1n << 16n; // CQR: queues must be physically contiguous
    cap |= 0x20n << 24n; // TO: 16 s
    cap |= BigInt(this.dstrd) << 32n;
    cap |= 1n << 37n; // CSS: NVM command set
    // MPSMIN = MPSMAX = 0: 4 KiB memory pages only
    return cap;
  }

  private cmbRegs(): { loc: number; sz: number } {
    if (this.cmbBar === null) return { loc: 0, sz: 0 };
    const f = cmbSizeFields(this.dev.resources[this.cmbBar].len);
    if (!f) return { loc: 0, sz: 0 };
    const feats = NVME_CMBSZ_SQS | NVME_CMBSZ_CQS | NVME_CMBSZ_LISTS | NVME_CMBSZ_RDS | NVME_CMBSZ_WDS;
    // CMBLOC: BIR 2:0, OFST 31:12 = 0 (the CMB starts at the BAR's base)
    return {
      loc: this.cmbBar & 7,
      sz: (feats | (f.szu << NVME_CMBSZ_SZU_SHIFT) | (f.sz << NVME_CMBSZ_SZ_SHIFT)) >>> 0,
    };
  }

  private initRegisters(): void {
    this.set64(NVME_REG.CAP, this.cap);
    this.set32(NVME_REG.VS, 0x0001_0300);
    this.set32(NVME_REG.INTMS, 0);
    this.set32(NVME_REG.INTMC, 0);
    this.set32(NVME_REG.CC, 0);
    this.set32(NVME_REG.CSTS, 0);
    this.set32(NVME_REG.NSSR, 0);
    this.set32(NVME_REG.AQA, 0);
    this.set64(NVME_REG.ASQ, 0n);
    this.set64(NVME_REG.ACQ, 0n);
    const c = this.cmbRegs();
    this.set32(NVME_REG.CMBLOC, c.loc);
    this.set32(NVME_REG.CMBSZ, c.sz);
    this.ccShadow = 0;
    this.intMask = 0;
  }

  /** Which bytes of the register file the host may write. */
  private static writable(off: number): boolean {
    return (
      (off >= NVME_REG.INTMS && off < NVME_REG.CC + 4) || (off >= NVME_REG.NSSR && off < NVME_REG.ACQ + 8)
    );
  }

  private regWrite(a: BarWriteAccess): "handled" {
    let cc = false;
    let nssr = false;
    let intms = 0;
    let intmc = 0;
    for (let i = 0; i < a.data.length; i++) {
      const off = a.offset + i;
      if (!NvmeController.writable(off)) continue; // read-only or reserved: dropped
      if (off >= NVME_REG.INTMS && off < NVME_REG.INTMS + 4)
        intms |= a.data[i] << (8 * (off - NVME_REG.INTMS));
      else if (off >= NVME_REG.INTMC && off < NVME_REG.INTMC + 4)
        intmc |= a.data[i] << (8 * (off - NVME_REG.INTMC));
      else this.engine.bars.poke(this.dev, 0, off, a.data.subarray(i, i + 1));
      if (off >= NVME_REG.CC && off < NVME_REG.CC + 4) cc = true;
      if (off >= NVME_REG.NSSR && off < NVME_REG.NSSR + 4) nssr = true;
    }
    if (intms || intmc) {
      // INTMS sets mask bits, INTMC clears them; both read back the mask
      this.intMask = ((this.intMask | intms) & ~intmc) >>> 0;
      this.set32(NVME_REG.INTMS, this.intMask);
      this.set32(NVME_REG.INTMC, this.intMask);
    }
    if (cc) a.defer(() => this.ccChanged());
    if (nssr) a.defer(() => this.nssrWritten());
    return "handled";
  }

  private ccChanged(): void {
    const cc = this.cc;
    const prev = this.ccShadow;
    this.ccShadow = cc;
    if (cc & NVME_CC_EN && !(prev & NVME_CC_EN)) this.enable();
    else if (!(cc & NVME_CC_EN) && prev & NVME_CC_EN) this.reset("CC.EN cleared");
    const shn = (cc >> NVME_CC_SHN_SHIFT) & 3;
    if (shn && shn !== ((prev >> NVME_CC_SHN_SHIFT) & 3)) {
      const csts = this.csts & ~(3 << NVME_CSTS_SHST_SHIFT);
      this.set32(NVME_REG.CSTS, csts | (NVME_CSTS_SHST_COMPLETE << NVME_CSTS_SHST_SHIFT));
      this.emit({
        kind: "nvme-state",
        controller: this.dev.bdf,
        state: "shutdown",
        detail: "shutdown processing complete",
      });
    }
  }

  private nssrWritten(): void {
    if (this.reg32(NVME_REG.NSSR) !== NVME_NSSR_MAGIC) return;
    this.initRegisters();
    this.sqs.clear();
    this.cqs.clear();
    this.set32(NVME_REG.CSTS, NVME_CSTS_NSSRO);
    this.emit({
      kind: "nvme-state",
      controller: this.dev.bdf,
      state: "subsystem-reset",
      detail: "NSSR written",
    });
  }

  private fatal(detail: string): void {
    this.set32(NVME_REG.CSTS, this.csts | NVME_CSTS_CFS);
    this.emit({ kind: "nvme-state", controller: this.dev.bdf, state: "fatal", detail });
  }

  private enable(): void {
    const cc = this.cc;
    const mps = (cc >> NVME_CC_MPS_SHIFT) & 0xf;
    const aqa = this.reg32(NVME_REG.AQA);
    const asqs = (aqa & 0xfff) + 1;
    const acqs = ((aqa >> 16) & 0xfff) + 1;
    const asq = this.reg64(NVME_REG.ASQ) & ~0xfffn;
    const acq = this.reg64(NVME_REG.ACQ) & ~0xfffn;
    let problem: string | null = null;
    if (mps !== 0) problem = `CC.MPS ${mps} outside CAP.MPSMIN…MPSMAX (0…0)`;
    else if (asqs < 2 || acqs < 2) problem = `admin queue sizes ${asqs}/${acqs} (AQA ${hex(aqa)}) below 2`;
    else if (asqs > this.maxQueueEntries || acqs > this.maxQueueEntries)
      problem = `admin queue sizes ${asqs}/${acqs} above MQES + 1 (${this.maxQueueEntries})`;
    if (problem) {
      this.fatal(problem);
      return;
    }
    this.sqs.clear();
    this.cqs.clear();
    this.cqs.set(0, { id: 0, base: acq, size: acqs, head: 0, tail: 0, phase: 1, ien: true, iv: 0 });
    this.sqs.set(0, { id: 0, base: asq, size: asqs, head: 0, tail: 0, cqid: 0, stalled: false });
    this.set32(NVME_REG.CSTS, NVME_CSTS_RDY);
    this.emit({
      kind: "nvme-state",
      controller: this.dev.bdf,
      state: "enabled",
      detail: `admin SQ ${hex(asq)} (${asqs}), CQ ${hex(acq)} (${acqs})`,
    });
  }

  /** A PCI reset of the function: queues gone, registers back to their defaults. */
  private functionReset(): void {
    const wasEnabled = (this.reg32(NVME_REG.CC) & NVME_CC_EN) !== 0 || this.sqs.size > 0 || this.cqs.size > 0;
    this.sqs.clear();
    this.cqs.clear();
    this.initRegisters();
    if (wasEnabled)
      this.emit({
        kind: "nvme-state",
        controller: this.dev.bdf,
        state: "disabled",
        detail: "PCI function reset",
      });
  }

  /** Controller reset (CC.EN 1 → 0): every queue deleted, CSTS.RDY cleared. */
  private reset(why: string): void {
    this.sqs.clear();
    this.cqs.clear();
    this.set32(NVME_REG.CSTS, 0);
    this.emit({ kind: "nvme-state", controller: this.dev.bdf, state: "disabled", detail: why });
  }

  private doorbellWrite(a: BarWriteAccess): "store" {
    const first = Math.floor((a.offset - NVME_DOORBELL_BASE) / this.stride);
    const last = Math.floor((a.offset + a.data.length - 1 - NVME_DOORBELL_BASE) / this.stride);
    for (let idx = first; idx <= last; idx++) {
      // only the DW at the start of each stride is a doorbell
      const off = NVME_DOORBELL_BASE + idx * this.stride;
      if (off + 4 <= a.offset || off >= a.offset + a.data.length) continue;
      a.defer(() => this.doorbellRung(idx, a.requester));
    }
    return "store";
  }

  private doorbellRung(idx: number, requester: string): void {
    const qid = idx >> 1;
    const isCq = (idx & 1) === 1;
    const value = this.reg32(NVME_DOORBELL_BASE + idx * this.stride) & 0xffff;
    const name = `${isCq ? "CQ" : "SQ"}${qid} ${isCq ? "head" : "tail"}`;
    const report = (accepted: boolean, detail?: string) =>
      this.emit({
        kind: "nvme-doorbell",
        controller: this.dev.bdf,
        doorbell: name,
        value,
        requester,
        accepted,
        ...(detail === undefined ? {} : { detail }),
      });
    const reject = (detail: string) => report(false, detail);
    if (!this.ready) {
      reject("controller not ready");
      return;
    }
    const q = isCq ? this.cqs.get(qid) : this.sqs.get(qid);
    if (!q) {
      reject("Invalid Doorbell Register (no such queue)");
      return;
    }
    if (value >= q.size) {
      reject(`Invalid Doorbell Write Value (queue size ${q.size})`);
      return;
    }
    if (isCq) q.head = value;
    else (q as Sq).tail = value;
    report(true);
    if (this.autoProcess) this.process();
  }

  /* ------------------------------------------------------------ memory access */

  /** The CMB offset of `[addr, addr + len)` when wholly inside the CMB; "partial" when it straddles its edge. */
  private cmbOffset(addr: bigint, len: number): bigint | null | "partial" {
    const r = this.cmbBusRange;
    if (!r) return null;
    const end = addr + BigInt(len);
    if (addr >= r.start && end <= r.end) return addr - r.start;
    if (addr < r.end && end > r.start) return "partial";
    return null;
  }

  /** Reads memory the host named: the CMB internally, anything else by DMA. */
  private readMem(addr: bigint, len: number): Uint8Array | null {
    const c = this.cmbOffset(addr, len);
    if (c === "partial") return null;
    if (c !== null) return this.engine.bars.peek(this.dev, this.cmbBar!, c, len);
    const r = this.engine.dmaRead(this.dev, addr, len, { addressKind: "auto" });
    return r.status === "SC" ? r.data : null;
  }

  private writeMem(addr: bigint, data: Uint8Array): boolean {
    const c = this.cmbOffset(addr, data.length);
    if (c === "partial") return false;
    if (c !== null) {
      this.engine.bars.poke(this.dev, this.cmbBar!, c, data);
      return true;
    }
    return this.engine.dmaWrite(this.dev, addr, data, { addressKind: "auto" }).status === "SC";
  }

  get pageSize(): number {
    return 4096 << ((this.ccShadow >> NVME_CC_MPS_SHIFT) & 0xf);
  }

  /** The memory a PRP pair describes for `len` bytes (PRP lists followed through chained pages). */
  private prpSegments(prp1: bigint, prp2: bigint, len: number): { addr: bigint; len: number }[] | Result {
    const ps = BigInt(this.pageSize);
    if (prp1 & 3n) return err(NVME_SC.INVALID_PRP_OFFSET, `PRP1 ${hex(prp1)} not DW aligned`);
    const segs: { addr: bigint; len: number }[] = [];
    const first = Math.min(len, Number(ps - (prp1 % ps)));
    segs.push({ addr: prp1, len: first });
    let left = len - first;
    if (left === 0) return segs;
    if (left <= Number(ps)) {
      if (prp2 % ps) return err(NVME_SC.INVALID_PRP_OFFSET, `PRP2 ${hex(prp2)} has an offset`);
      segs.push({ addr: prp2, len: left });
      return segs;
    }
    // PRP2 points to a PRP list (it may start inside a page); its last entry chains to the next list
    if (prp2 & 7n) return err(NVME_SC.INVALID_PRP_OFFSET, `PRP list pointer ${hex(prp2)} not QW aligned`);
    let list = prp2;
    while (left > 0) {
      const slots = Number((ps - (list % ps)) / 8n);
      const pagesLeft = Math.ceil(left / Number(ps));
      const n = Math.min(pagesLeft, slots);
      const raw = this.readMem(list, n * 8);
      if (!raw) return err(NVME_SC.DATA_TRANSFER_ERROR, `PRP list at ${hex(list)} unreadable`);
      const v = new DataView(raw.buffer, raw.byteOffset, raw.length);
      const chain = pagesLeft > slots;
      const entries = chain ? n - 1 : n;
      for (let i = 0; i < entries; i++) {
        const e = v.getBigUint64(8 * i, true);
        if (e % ps) return err(NVME_SC.INVALID_PRP_OFFSET, `PRP entry ${hex(e)} has an offset`);
        const l = Math.min(left, Number(ps));
        segs.push({ addr: e, len: l });
        left -= l;
      }
      if (chain) list = v.getBigUint64(8 * (n - 1), true);
    }
    return segs;
  }

  private fromHost(prp1: bigint, prp2: bigint, len: number): Uint8Array | Result {
    const segs = this.prpSegments(prp1, prp2, len);
    if (!Array.isArray(segs)) return segs;
    const out = new Uint8Array(len);
    let pos = 0;
    for (const s of segs) {
      const d = this.readMem(s.addr, s.len);
      if (!d) return err(NVME_SC.DATA_TRANSFER_ERROR, `read of ${hex(s.addr)} +${s.len} failed`);
      out.set(d, pos);
      pos += s.len;
    }
    return out;
  }

  private toHost(prp1: bigint, prp2: bigint, data: Uint8Array): Result | null {
    const segs = this.prpSegments(prp1, prp2, data.length);
    if (!Array.isArray(segs)) return segs;
    let pos = 0;
    for (const s of segs) {
      if (!this.writeMem(s.addr, data.subarray(pos, pos + s.len)))
        return err(NVME_SC.DATA_TRANSFER_ERROR, `write of ${hex(s.addr)} +${s.len} failed`);
      pos += s.len;
    }
    return null;
  }

  /* ------------------------------------------------------------ queues */

  /** Runs the submission queues until each is empty or stalled (round robin, admin first). */
  process(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        let progressed = true;
        while (progressed && this.ready) {
          progressed = false;
          for (const id of [...this.sqs.keys()].sort((a, b) => a - b)) {
            const sq = this.sqs.get(id);
            if (!sq || sq.head === sq.tail || !this.ready) continue;
            const cq = this.cqs.get(sq.cqid);
            if (!cq) continue;
            if ((cq.tail + 1) % cq.size === cq.head) {
              sq.stalled = true; // the controller waits for the host to free CQ entries
              continue;
            }
            sq.stalled = false;
            if (this.step(sq, cq)) progressed = true;
          }
        }
      } while (this.again);
    } finally {
      this.running = false;
    }
  }

  private step(sq: Sq, cq: Cq): boolean {
    const addr = sq.base + BigInt(sq.head * SQE_BYTES);
    const where = this.cmbOffset(addr, SQE_BYTES) === null ? "host" : "cmb";
    const raw = this.readMem(addr, SQE_BYTES);
    if (!raw) {
      this.fatal(`command fetch from SQ${sq.id} at ${hex(addr)} failed`);
      return false;
    }
    const sqe = decodeSqe(raw);
    sq.head = (sq.head + 1) % sq.size;
    const name = (sq.id === 0 ? ADMIN_NAMES : IO_NAMES)[sqe.opcode] ?? `opcode ${hex(sqe.opcode, 2)}`;
    const res = sq.id === 0 ? this.admin(sqe) : this.io(sqe);
    this.stats.commands++;
    this.emit({
      kind: "nvme-command",
      controller: this.dev.bdf,
      sqid: sq.id,
      cid: sqe.cid,
      opcode: sqe.opcode,
      name,
      fetchedFrom: where,
      detail: res.detail ?? statusName(res.status),
    });
    return this.post(cq, sq, sqe.cid, res);
  }

  private post(cq: Cq, sq: Sq, cid: number, res: Result): boolean {
    const addr = cq.base + BigInt(cq.tail * CQE_BYTES);
    const cqe = encodeCqe({
      dw0: res.dw0 ?? 0,
      sqhd: sq.head,
      sqid: sq.id,
      cid,
      phase: cq.phase,
      status: { sct: res.status.sct, sc: res.status.sc, dnr: res.status.dnr ?? false },
    });
    if (!this.writeMem(addr, cqe)) {
      this.fatal(`completion post to CQ${cq.id} at ${hex(addr)} failed`);
      return false;
    }
    this.emit({
      kind: "nvme-completion",
      controller: this.dev.bdf,
      sqid: sq.id,
      cqid: cq.id,
      cid,
      status: statusName(res.status),
      sqhd: sq.head,
      phase: cq.phase,
      address: hex(addr),
    });
    this.stats.completions++;
    cq.tail = (cq.tail + 1) % cq.size;
    if (cq.tail === 0) cq.phase = cq.phase === 1 ? 0 : 1;
    return true;
  }

  /** Current state of a queue (tests and reports). */
  queue(kind: "sq" | "cq", id: number): Readonly<Sq | Cq> | undefined {
    const q = kind === "sq" ? this.sqs.get(id) : this.cqs.get(id);
    return q ? { ...q } : undefined;
  }

  /* ------------------------------------------------------------ admin commands */

  private admin(s: Required<Sqe>): Result {
    if (s.fuse || s.psdt) return err(NVME_SC.INVALID_FIELD, "fused operations and SGLs are not supported");
    switch (s.opcode) {
      case NVME_ADMIN.CREATE_CQ:
        return this.createCq(s);
      case NVME_ADMIN.CREATE_SQ:
        return this.createSq(s);
      case NVME_ADMIN.DELETE_SQ: {
        const qid = s.cdw10 & 0xffff;
        if (qid === 0 || !this.sqs.has(qid)) return err(NVME_SC.INVALID_QID, `no I/O SQ ${qid}`);
        this.sqs.delete(qid);
        return { ...OK, detail: `SQ${qid} deleted` };
      }
      case NVME_ADMIN.DELETE_CQ: {
        const qid = s.cdw10 & 0xffff;
        if (qid === 0 || !this.cqs.has(qid)) return err(NVME_SC.INVALID_QID, `no I/O CQ ${qid}`);
        if ([...this.sqs.values()].some((q) => q.cqid === qid))
          return err(NVME_SC.INVALID_QUEUE_DELETION, `CQ${qid} still has submission queues`);
        this.cqs.delete(qid);
        return { ...OK, detail: `CQ${qid} deleted` };
      }
      case NVME_ADMIN.IDENTIFY:
        return this.identify(s);
      case NVME_ADMIN.SET_FEATURES:
      case NVME_ADMIN.GET_FEATURES: {
        const fid = s.cdw10 & 0xff;
        if (fid !== NVME_FEAT_NUM_QUEUES)
          return err(NVME_SC.INVALID_FIELD, `feature ${hex(fid, 2)} not supported`);
        if (
          s.opcode === NVME_ADMIN.SET_FEATURES &&
          ((s.cdw11 & 0xffff) === 0xffff || s.cdw11 >>> 16 === 0xffff)
        )
          return err(NVME_SC.INVALID_FIELD, "65536 queues requested");
        const n = this.maxIoQueues - 1;
        return {
          status: NVME_SC.SUCCESS,
          dw0: (n | (n << 16)) >>> 0,
          detail: `${this.maxIoQueues} I/O queue pairs`,
        };
      }
      default:
        return err(NVME_SC.INVALID_OPCODE);
    }
  }

  private queueBaseCheck(
    kind: "SQ" | "CQ",
    base: bigint,
    entries: number,
    entryBytes: number,
  ): Result | null {
    if (base % BigInt(this.pageSize))
      return err(NVME_SC.INVALID_PRP_OFFSET, `${kind} base ${hex(base)} not page aligned`);
    if (this.cmbOffset(base, entries * entryBytes) === "partial")
      return err(NVME_SC.INVALID_FIELD, `${kind} at ${hex(base)} straddles the CMB's end`);
    return null;
  }

  private createCq(s: Required<Sqe>): Result {
    const qid = s.cdw10 & 0xffff;
    const size = (s.cdw10 >>> 16) + 1;
    if (qid === 0 || qid > this.maxIoQueues || this.cqs.has(qid))
      return err(NVME_SC.INVALID_QID, `CQ id ${qid}`);
    if (size < 2 || size > this.maxQueueEntries) return err(NVME_SC.INVALID_QSIZE, `CQ size ${size}`);
    if (!(s.cdw11 & 1)) return err(NVME_SC.INVALID_FIELD, "CAP.CQR: the queue must be physically contiguous");
    if (((this.ccShadow >> NVME_CC_IOCQES_SHIFT) & 0xf) !== 4)
      return err(NVME_SC.INVALID_FIELD, "CC.IOCQES is not 4");
    const bad = this.queueBaseCheck("CQ", s.prp1, size, CQE_BYTES);
    if (bad) return bad;
    this.cqs.set(qid, {
      id: qid,
      base: s.prp1,
      size,
      head: 0,
      tail: 0,
      phase: 1,
      ien: (s.cdw11 & 2) !== 0,
      iv: s.cdw11 >>> 16,
    });
    const where = this.cmbOffset(s.prp1, size * CQE_BYTES) === null ? "host memory" : "CMB";
    return { ...OK, detail: `CQ${qid} (${size} entries) at ${hex(s.prp1)} in ${where}` };
  }

  private createSq(s: Required<Sqe>): Result {
    const qid = s.cdw10 & 0xffff;
    const size = (s.cdw10 >>> 16) + 1;
    const cqid = s.cdw11 >>> 16;
    if (qid === 0 || qid > this.maxIoQueues || this.sqs.has(qid))
      return err(NVME_SC.INVALID_QID, `SQ id ${qid}`);
    if (cqid === 0 || !this.cqs.has(cqid)) return err(NVME_SC.CQ_INVALID, `CQ ${cqid} does not exist`);
    if (size < 2 || size > this.maxQueueEntries) return err(NVME_SC.INVALID_QSIZE, `SQ size ${size}`);
    if (!(s.cdw11 & 1)) return err(NVME_SC.INVALID_FIELD, "CAP.CQR: the queue must be physically contiguous");
    if (((this.ccShadow >> NVME_CC_IOSQES_SHIFT) & 0xf) !== 6)
      return err(NVME_SC.INVALID_FIELD, "CC.IOSQES is not 6");
    const bad = this.queueBaseCheck("SQ", s.prp1, size, SQE_BYTES);
    if (bad) return bad;
    this.sqs.set(qid, { id: qid, base: s.prp1, size, head: 0, tail: 0, cqid, stalled: false });
    const where = this.cmbOffset(s.prp1, size * SQE_BYTES) === null ? "host memory" : "CMB";
    return { ...OK, detail: `SQ${qid} (${size} entries, CQ${cqid}) at ${hex(s.prp1)} in ${where}` };
  }

  private identify(s: Required<Sqe>): Result {
    const cns = s.cdw10 & 0xff;
    const page = new Uint8Array(4096);
    const v = new DataView(page.buffer);
    if (cns === 0x01) {
      v.setUint16(0, this.dev.vendor, true);
      v.setUint16(2, this.dev.config.read16(0x2c), true);
      page.set(ascii(this.ident.serial, 20), 4);
      page.set(ascii(this.ident.model, 40), 24);
      page.set(ascii(this.ident.firmware, 8), 64);
      page[77] = this.mdts;
      v.setUint16(78, 0, true); // CNTLID
      v.setUint32(80, 0x0001_0300, true); // VER
      page[258] = 3; // ACL
      page[259] = 3; // AERL
      page[512] = 0x66; // SQES: 64-byte entries
      page[513] = 0x44; // CQES: 16-byte entries
      v.setUint16(514, this.maxQueueEntries & 0xffff, true);
      v.setUint32(516, 1, true); // NN
    } else if (cns === 0x00) {
      if (s.nsid !== 1 && s.nsid !== 0xffff_ffff) return err(NVME_SC.INVALID_NS, `namespace ${s.nsid}`);
      v.setBigUint64(0, this.namespaceBlocks, true); // NSZE
      v.setBigUint64(8, this.namespaceBlocks, true); // NCAP
      v.setBigUint64(16, this.namespaceBlocks, true); // NUSE
      page[25] = 0; // NLBAF: one format
      page[26] = 0; // FLBAS: format 0
      v.setUint32(128, Math.log2(this.lbaSize) << 16, true); // LBAF0: LBADS
    } else if (cns === 0x02) {
      if (s.nsid < 1) v.setUint32(0, 1, true);
    } else return err(NVME_SC.INVALID_FIELD, `CNS ${hex(cns, 2)} not supported`);
    const bad = this.toHost(s.prp1, s.prp2, page);
    return bad ?? { ...OK, detail: `CNS ${hex(cns, 2)}` };
  }

  /* ------------------------------------------------------------ NVM commands */

  private io(s: Required<Sqe>): Result {
    if (s.fuse || s.psdt) return err(NVME_SC.INVALID_FIELD, "fused operations and SGLs are not supported");
    if (s.opcode === NVME_IO.FLUSH) {
      if (s.nsid !== 1 && s.nsid !== 0xffff_ffff) return err(NVME_SC.INVALID_NS, `namespace ${s.nsid}`);
      return OK;
    }
    if (s.opcode !== NVME_IO.WRITE && s.opcode !== NVME_IO.READ) return err(NVME_SC.INVALID_OPCODE);
    if (s.nsid !== 1) return err(NVME_SC.INVALID_NS, `namespace ${s.nsid}`);
    const slba = BigInt(s.cdw10) | (BigInt(s.cdw11) << 32n);
    const nlb = (s.cdw12 & 0xffff) + 1;
    if (slba + BigInt(nlb) > this.namespaceBlocks)
      return err(NVME_SC.LBA_RANGE, `LBA ${slba} + ${nlb} beyond ${this.namespaceBlocks} blocks`);
    const len = nlb * this.lbaSize;
    if (len > this.pageSize * 2 ** this.mdts)
      return err(NVME_SC.INVALID_FIELD, `${len} bytes exceed MDTS (${this.pageSize * 2 ** this.mdts})`);
    const off = slba * BigInt(this.lbaSize);
    const what = `LBA ${slba} +${nlb} (${len} bytes) PRP1 ${hex(s.prp1)}`;
    if (s.opcode === NVME_IO.WRITE) {
      const data = this.fromHost(s.prp1, s.prp2, len);
      if (!(data instanceof Uint8Array)) return data;
      this.namespace.write(off, data);
      return { ...OK, detail: `write ${what}` };
    }
    const bad = this.toHost(s.prp1, s.prp2, this.namespace.read(off, len));
    return bad ?? { ...OK, detail: `read ${what}` };
  }
}
