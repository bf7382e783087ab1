/**
 * A minimal host-side NVMe driver (what SPDK or nvme-pci do, reduced to the register protocol):
 * queues in host RAM (mapped for the controller with the DMA API) or in the CMB, commands written
 * by CPU stores, doorbells rung by CPU MMIO stores, completions reaped by phase tag. Peers that
 * submit on their own (an RDMA NIC writing into the CMB) use {@link NvmeHost.sqSlotBus} and
 * {@link NvmeHost.doorbellBus} to learn where to write.
 */
import { InputError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import type { DmaEngine } from "../dataplane/engine.js";
import { DMA_DATA_DIRECTION, DMA_MAPPING_ERROR } from "../dma/direction.js";
import { CQE_BYTES, type Cqe, decodeCqe, encodeSqe, SQE_BYTES, type Sqe } from "./commands.js";
import type { NvmeController } from "./controller.js";
import {
  NVME_ADMIN,
  NVME_CC_EN,
  NVME_CC_IOCQES_SHIFT,
  NVME_CC_IOSQES_SHIFT,
  NVME_CSTS_RDY,
  NVME_REG,
  statusName,
} from "./regs.js";

/** Host memory for DMA: CPU physical address and the address the controller uses. */
export interface DmaBuffer {
  phys: bigint;
  dma: bigint;
  size: number;
}

/** Where a queue lives: host RAM, or the CMB at an offset. */
export type QueuePlace = "host" | { cmbOffset: bigint };

interface HostQueue {
  id: number;
  size: number;
  /** Address given to the controller. */
  busBase: bigint;
  /** Where the CPU reaches it: RAM physical, or CMB CPU address. */
  cpuBase: bigint;
  inCmb: boolean;
  tail: number;
  head: number;
  phase: 0 | 1;
}

/** A new, empty queue of `size` entries at `at` (phase tag 1, as after creation). */
function hostQueue(id: number, size: number, at: { bus: bigint; cpu: bigint; inCmb: boolean }): HostQueue {
  return { id, size, busBase: at.bus, cpuBase: at.cpu, inCmb: at.inCmb, tail: 0, head: 0, phase: 1 };
}

export class NvmeHost {
  private nextPhys: bigint;
  private nextCid = 1;
  private readonly sqs = new Map<number, HostQueue>();
  private readonly cqs = new Map<number, HostQueue>();

  constructor(
    readonly engine: DmaEngine,
    readonly ctrl: NvmeController,
    opts: { ramBase?: bigint } = {},
  ) {
    this.nextPhys = opts.ramBase ?? 0x1000_0000n;
  }

  get dev() {
    return this.ctrl.dev;
  }

  /** CPU address of BAR0 + `off`. */
  bar0(off: number): bigint {
    return this.dev.resources[0].start + BigInt(off);
  }

  /** CMB offset → bus address (what the controller and peers use) and CPU address. */
  cmb(offset: bigint): { bus: bigint; cpu: bigint } {
    const bar = this.ctrl.cmbBar;
    if (bar === null) throw new InputError(`${this.dev.bdf} has no CMB`);
    return { bus: this.dev.busAddress(bar) + offset, cpu: this.dev.resources[bar].start + offset };
  }

  /** Page-aligned host RAM, mapped for the controller (`dma_map_phys`, bidirectional). */
  alloc(size: number): DmaBuffer {
    const len = BigInt(Math.ceil(size / 4096) * 4096);
    const phys = this.nextPhys;
    this.nextPhys += len;
    const dma = this.engine.machine.dma.dmaMapPhys(this.dev, phys, len, DMA_DATA_DIRECTION.BIDIRECTIONAL, 0);
    if (dma === DMA_MAPPING_ERROR) throw new InputError(`DMA mapping of ${hex(phys)} +${len} failed`);
    return { phys, dma, size };
  }

  reg32(off: number): number {
    return this.engine.cpuRead32(this.bar0(off));
  }
  setReg32(off: number, v: number): void {
    this.engine.cpuWrite32(this.bar0(off), v);
  }
  setReg64(off: number, v: bigint): void {
    this.engine.cpuWrite64(this.bar0(off), v);
  }

  /** Admin queues in host RAM, AQA/ASQ/ACQ, then CC.EN = 1 with IOSQES 6 / IOCQES 4; true when CSTS.RDY. */
  enable(depth = 16): boolean {
    const sq = this.alloc(depth * SQE_BYTES);
    const cq = this.alloc(depth * CQE_BYTES);
    this.setReg32(NVME_REG.AQA, ((depth - 1) | ((depth - 1) << 16)) >>> 0);
    this.setReg64(NVME_REG.ASQ, sq.dma);
    this.setReg64(NVME_REG.ACQ, cq.dma);
    this.setReg32(NVME_REG.CC, NVME_CC_EN | (6 << NVME_CC_IOSQES_SHIFT) | (4 << NVME_CC_IOCQES_SHIFT));
    this.sqs.set(0, hostQueue(0, depth, { bus: sq.dma, cpu: sq.phys, inCmb: false }));
    this.cqs.set(0, hostQueue(0, depth, { bus: cq.dma, cpu: cq.phys, inCmb: false }));
    return (this.reg32(NVME_REG.CSTS) & NVME_CSTS_RDY) !== 0;
  }

  cid(): number {
    const c = this.nextCid;
    this.nextCid = (this.nextCid + 1) & 0xffff || 1;
    return c;
  }

  private place(p: QueuePlace, bytes: number): { bus: bigint; cpu: bigint; inCmb: boolean } {
    if (p === "host") {
      const b = this.alloc(bytes);
      return { bus: b.dma, cpu: b.phys, inCmb: false };
    }
    const c = this.cmb(p.cmbOffset);
    return { bus: c.bus, cpu: c.cpu, inCmb: true };
  }

  /** Create I/O Completion Queue (0x05), physically contiguous. */
  createIoCq(qid: number, depth: number, where: QueuePlace = "host"): Cqe {
    const at = this.place(where, depth * CQE_BYTES);
    const c = this.admin({
      opcode: NVME_ADMIN.CREATE_CQ,
      cid: this.cid(),
      prp1: at.bus,
      cdw10: (qid | ((depth - 1) << 16)) >>> 0,
      cdw11: 1,
    });
    if (c.status.sc === 0 && c.status.sct === 0) this.cqs.set(qid, hostQueue(qid, depth, at));
    return c;
  }

  /** Create I/O Submission Queue (0x01) bound to `cqid`. */
  createIoSq(qid: number, depth: number, cqid: number, where: QueuePlace = "host"): Cqe {
    const at = this.place(where, depth * SQE_BYTES);
    const c = this.admin({
      opcode: NVME_ADMIN.CREATE_SQ,
      cid: this.cid(),
      prp1: at.bus,
      cdw10: (qid | ((depth - 1) << 16)) >>> 0,
      cdw11: (1 | (cqid << 16)) >>> 0,
    });
    if (c.status.sc === 0 && c.status.sct === 0) this.sqs.set(qid, hostQueue(qid, depth, at));
    return c;
  }

  private sq(qid: number): HostQueue {
    const q = this.sqs.get(qid);
    if (!q) throw new InputError(`no host SQ ${qid}`);
    return q;
  }

  /** Bus address of the SQ's next free slot (where a peer writes its command). */
  sqSlotBus(qid: number): bigint {
    const q = this.sq(qid);
    return q.busBase + BigInt(q.tail * SQE_BYTES);
  }

  /** Records that someone else filled the next slot; returns the new tail to ring. */
  advanceTail(qid: number): number {
    const q = this.sq(qid);
    q.tail = (q.tail + 1) % q.size;
    return q.tail;
  }

  /** Bus address of a doorbell (for peers) — BAR0's bus address + the doorbell offset. */
  doorbellBus(qid: number, which: "sq" | "cq"): bigint {
    return this.dev.busAddress(0) + BigInt(this.ctrl.doorbellOffset(qid, which));
  }

  /** Writes the command into the SQ with CPU stores and rings the tail doorbell. */
  submit(qid: number, sqe: Sqe): void {
    const q = this.sq(qid);
    const bytes = encodeSqe(sqe);
    const addr = q.cpuBase + BigInt(q.tail * SQE_BYTES);
    if (q.inCmb) this.engine.cpuWrite(addr, bytes, { chunk: 64 });
    else this.engine.ram.write(addr, bytes);
    this.setReg32(this.ctrl.doorbellOffset(qid, "sq"), this.advanceTail(qid));
  }

  /** New completions of a CQ (by phase tag); moves and rings its head doorbell when any. */
  reap(cqid: number): Cqe[] {
    const q = this.cqs.get(cqid);
    if (!q) throw new InputError(`no host CQ ${cqid}`);
    const out: Cqe[] = [];
    for (;;) {
      const addr = q.cpuBase + BigInt(q.head * CQE_BYTES);
      const raw = q.inCmb ? this.engine.cpuRead(addr, CQE_BYTES).data : this.engine.ram.read(addr, CQE_BYTES);
      const c = decodeCqe(raw);
      if (c.phase !== q.phase) break;
      out.push(c);
      const sq = this.sqs.get(c.sqid);
      if (sq) sq.head = c.sqhd;
      q.head = (q.head + 1) % q.size;
      if (q.head === 0) q.phase = q.phase === 1 ? 0 : 1;
    }
    if (out.length) this.setReg32(this.ctrl.doorbellOffset(cqid, "cq"), q.head);
    return out;
  }

  /** Submits an admin command and returns its completion (the controller runs synchronously). */
  admin(sqe: Sqe): Cqe {
    this.submit(0, sqe);
    const c = this.reap(0).find((x) => x.cid === sqe.cid);
    if (!c) throw new InputError(`admin command ${hex(sqe.opcode, 2)} (cid ${sqe.cid}) got no completion`);
    return c;
  }

  static ok(c: Cqe): boolean {
    return c.status.sc === 0 && c.status.sct === 0;
  }

  static describe(c: Cqe): string {
    return `cid ${c.cid} sq${c.sqid} head ${c.sqhd} phase ${c.phase}: ${statusName(c.status)}`;
  }
}
