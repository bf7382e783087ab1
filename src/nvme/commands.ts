/** Submission (64-byte) and completion (16-byte) queue entries: little-endian layouts of NVMe 1.3. */
import { InputError } from "../core/errors.js";
import type { NvmeStatus } from "./regs.js";

export const SQE_BYTES = 64;
export const CQE_BYTES = 16;

export interface Sqe {
  opcode: number;
  /** FUSE bits 9:8 of CDW0. */
  fuse?: number;
  /** PSDT bits 15:14 of CDW0 (0 = PRPs). */
  psdt?: number;
  cid: number;
  nsid?: number;
  mptr?: bigint;
  prp1?: bigint;
  prp2?: bigint;
  /** CDW10…CDW15. */
  cdw10?: number;
  cdw11?: number;
  cdw12?: number;
  cdw13?: number;
  cdw14?: number;
  cdw15?: number;
}

export function encodeSqe(s: Sqe): Uint8Array {
  const b = new Uint8Array(SQE_BYTES);
  const v = new DataView(b.buffer);
  const u32 = (name: string, x: number | undefined) => {
    const n = x ?? 0;
    if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff)
      throw new InputError(`SQE ${name} ${n} is not a u32`);
    return n;
  };
  if (!Number.isInteger(s.opcode) || s.opcode < 0 || s.opcode > 0xff)
    throw new InputError(`SQE opcode ${s.opcode}`);
  if (!Number.isInteger(s.cid) || s.cid < 0 || s.cid > 0xffff) throw new InputError(`SQE cid ${s.cid}`);
  v.setUint32(
    0,
    (s.opcode | (((s.fuse ?? 0) & 3) << 8) | (((s.psdt ?? 0) & 3) << 14) | (s.cid << 16)) >>> 0,
    true,
  );
  v.setUint32(4, u32("nsid", s.nsid), true);
  v.setBigUint64(16, s.mptr ?? 0n, true);
  v.setBigUint64(24, s.prp1 ?? 0n, true);
  v.setBigUint64(32, s.prp2 ?? 0n, true);
  const dws = [s.cdw10, s.cdw11, s.cdw12, s.cdw13, s.cdw14, s.cdw15];
  dws.forEach((d, i) => {
    v.setUint32(40 + 4 * i, u32(`cdw${10 + i}`, d), true);
  });
  return b;
}

export function decodeSqe(b: Uint8Array): Required<Sqe> {
  if (b.length < SQE_BYTES) throw new InputError(`an SQE is ${SQE_BYTES} bytes, got ${b.length}`);
  const v = new DataView(b.buffer, b.byteOffset, SQE_BYTES);
  const dw0 = v.getUint32(0, true);
  return {
    opcode: dw0 & 0xff,
    fuse: (dw0 >>> 8) & 3,
    psdt: (dw0 >>> 14) & 3,
    cid: dw0 >>> 16,
    nsid: v.getUint32(4, true),
    mptr: v.getBigUint64(16, true),
    prp1: v.getBigUint64(24, true),
    prp2: v.getBigUint64(32, true),
    cdw10: v.getUint32(40, true),
    cdw11: v.getUint32(44, true),
    cdw12: v.getUint32(48, true),
    cdw13: v.getUint32(52, true),
    cdw14: v.getUint32(56, true),
    cdw15: v.getUint32(60, true),
  };
}

export interface Cqe {
  /** Command specific DW0. */
  dw0: number;
  sqhd: number;
  sqid: number;
  cid: number;
  phase: 0 | 1;
  status: Required<NvmeStatus>;
}

export function encodeCqe(c: Cqe): Uint8Array {
  const b = new Uint8Array(CQE_BYTES);
  const v = new DataView(b.buffer);
  v.setUint32(0, c.dw0 >>> 0, true);
  v.setUint32(8, ((c.sqhd & 0xffff) | ((c.sqid & 0xffff) << 16)) >>> 0, true);
  // DW3: CID 15:0, P 16, SC 24:17, SCT 27:25, CRD 29:28, M 30, DNR 31
  const sf = (c.status.sc & 0xff) | ((c.status.sct & 7) << 8) | (c.status.dnr ? 1 << 14 : 0);
  v.setUint32(12, ((c.cid & 0xffff) | ((c.phase & 1) << 16) | (sf << 17)) >>> 0, true);
  return b;
}

export function decodeCqe(b: Uint8Array): Cqe {
  if (b.length < CQE_BYTES) throw new InputError(`a CQE is ${CQE_BYTES} bytes, got ${b.length}`);
  const v = new DataView(b.buffer, b.byteOffset, CQE_BYTES);
  const dw2 = v.getUint32(8, true);
  const dw3 = v.getUint32(12, true);
  const sf = dw3 >>> 17;
  return {
    dw0: v.getUint32(0, true),
    sqhd: dw2 & 0xffff,
    sqid: dw2 >>> 16,
    cid: dw3 & 0xffff,
    phase: ((dw3 >>> 16) & 1) as 0 | 1,
    status: { sc: sf & 0xff, sct: (sf >>> 8) & 7, dnr: ((sf >>> 14) & 1) === 1 },
  };
}
