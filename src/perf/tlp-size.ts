/**
 * How many bytes a TLP takes on the wire (pcie-bandwidth.md §3, §4.2) and how a transfer is cut
 * into TLPs (§5.1, §5.2).
 */
import { InputError } from "../core/errors.js";

/** NFM per-TLP framing: STP + sequence + LCRC + END (Gen1/2) or STP token + LCRC (Gen3–5). */
export const FRAMING_BYTES = 8;
/** NFM DLLP on the wire (§3). */
export const DLLP_BYTES = 8;
export const FOUR_GIB = 1n << 32n;
/** A request never crosses this address boundary (§5.1). */
export const REQUEST_BOUNDARY = 4096;

/** Header and trailer options of one TLP. */
export interface TlpHeader {
  /**
   * Header base DWs: 3 (32-bit address requests, completions) or 4 (64-bit requests). When
   * absent, chosen from `address`; 4 when neither is given.
   */
  dw?: 3 | 4;
  /** Target address of a request: below 4 GiB → 3 DW, at or above → 4 DW (§3). */
  address?: bigint | number;
  /** TD = 1: ECRC (NFM 4 bytes; FM a 1-DW trailer). */
  ecrc?: boolean;
  /** NFM TLP prefixes (ExtTPH, PASID …), 4 bytes each. */
  prefixes?: number;
  /** FM orthogonal header content DWs (see {@link ohcDw}). */
  ohcDW?: number;
  /** FM IDE trailer: MAC (3 DW) or MAC + PCRC (4 DW); replaces the ECRC DW. */
  ide?: "mac" | "mac+pcrc";
  /** FM local TLP prefix DWs. */
  localPrefixDW?: number;
}

/** 3 DW below 4 GiB, 4 DW at or above (§3, BW-5). */
export function headerDwForAddress(address: bigint | number): 3 | 4 {
  return toAddress(address) < FOUR_GIB ? 3 : 4;
}

export function headerDw(h: TlpHeader = {}): 3 | 4 {
  if (h.dw !== undefined) return h.dw;
  if (h.address !== undefined) return headerDwForAddress(h.address);
  return 4;
}

/** NFM: `payload + header + framing + ecrc + 4 × prefixes` (§3). */
export function nfmWireBytes(payload: number, h: TlpHeader = {}): number {
  return payload + 4 * headerDw(h) + FRAMING_BYTES + (h.ecrc ? 4 : 0) + 4 * (h.prefixes ?? 0);
}

/** OHC size in DW: A/B/C one each, E 1, 2 or 4 (§4.2). TPH rides in OHC-B. */
export function ohcDw(o: { a?: boolean; b?: boolean; c?: boolean; e?: 0 | 1 | 2 | 4 }): number {
  return (o.a ? 1 : 0) + (o.b ? 1 : 0) + (o.c ? 1 : 0) + (o.e ?? 0);
}

function trailerDw(h: TlpHeader): number {
  if (h.ide === "mac+pcrc") return 4;
  if (h.ide === "mac") return 3;
  return h.ecrc ? 1 : 0;
}

/** FM: `4 × (headerBaseDW + ohcDW + trailerDW + localPrefixDW) + payload` (§4.2); no framing. */
export function fmWireBytes(payload: number, h: TlpHeader = {}): number {
  return payload + 4 * (headerDw(h) + (h.ohcDW ?? 0) + trailerDw(h) + (h.localPrefixDW ?? 0));
}

export function wireBytes(payload: number, h: TlpHeader = {}, flit = false): number {
  return flit ? fmWireBytes(payload, h) : nfmWireBytes(payload, h);
}

/** Per-TLP efficiency `η = payload / wireBytes`. */
export function tlpEfficiency(payload: number, h: TlpHeader = {}, flit = false): number {
  return payload / wireBytes(payload, h, flit);
}

/**
 * A completion's wire bytes: 3-DW header; in FM plus OHC-A5 (1 DW) when the status is not SC or
 * Lower Address[1:0] ≠ 0 (§5.3).
 */
export function completionWireBytes(
  payload: number,
  opts: { flit?: boolean; ecrc?: boolean; lowerAddress?: number; unsuccessful?: boolean } = {},
): number {
  const ohcA5 = opts.flit && (opts.unsuccessful || ((opts.lowerAddress ?? 0) & 3) !== 0) ? 1 : 0;
  return wireBytes(payload, { dw: 3, ecrc: opts.ecrc, ohcDW: ohcA5 }, opts.flit ?? false);
}

/* MPS / MRRS (§5.1) */

/** Byte sizes of the Device Control MPS/MRRS encodings 0…5. */
export const SIZE_FIELD_BYTES: readonly number[] = [128, 256, 512, 1024, 2048, 4096];

/**
 * Decodes a 3-bit MPS or MRRS field (Device Control bits 7:5 / 14:12). 6 and 7 are reserved:
 * bad input naming the field (BW-14).
 */
export function decodeSizeField(code: number, field: string, where?: string): number {
  if (!Number.isInteger(code) || code < 0 || code > 7)
    throw new InputError(`${field}: ${code} is not a 3-bit field value`, where);
  const bytes = SIZE_FIELD_BYTES[code];
  if (bytes === undefined)
    throw new InputError(`${field}: encoding ${code} is reserved (expected 0…5 = 128…4096 bytes)`, where);
  return bytes;
}

/** MPS and MRRS from a Device Control register value. */
export function decodeDevCtl(devctl: number, where?: string): { mps: number; mrrs: number } {
  return {
    mps: decodeSizeField((devctl >> 5) & 7, "Max_Payload_Size (Device Control 7:5)", where),
    mrrs: decodeSizeField((devctl >> 12) & 7, "Max_Read_Request_Size (Device Control 14:12)", where),
  };
}

/* Splitting (§5.2) */

export interface Chunk {
  address: bigint;
  length: number;
}

function checkSplitSize(size: number, what: string): void {
  if (!Number.isInteger(size) || size < 1 || size > REQUEST_BOUNDARY || (size & (size - 1)) !== 0)
    throw new InputError(`${what} ${size} must be a power of two between 1 and 4096 bytes`);
}

/** An address as a bigint; a negative or fractional address is bad input. */
export function toAddress(address: bigint | number): bigint {
  if (typeof address === "number" && !Number.isSafeInteger(address))
    throw new InputError(`address ${address} is not an integer`);
  const a = BigInt(address);
  if (a < 0n || a >= 1n << 64n) throw new InputError(`address ${address} is outside 0 … 2^64 − 1`);
  return a;
}

function checkLength(length: number): void {
  if (!Number.isSafeInteger(length) || length < 0)
    throw new InputError(`transfer length ${length} is not a byte count`);
}

/**
 * Cuts `[address, address + length)` at multiples of `size` (MPS for writes, MRRS for read
 * requests). `size` divides 4096, so no piece crosses 4 KiB.
 */
export function splitAtBoundary(address: bigint | number, length: number, size: number): Chunk[] {
  checkSplitSize(size, "split size");
  checkLength(length);
  const out: Chunk[] = [];
  let a = toAddress(address);
  const end = a + BigInt(length);
  const s = BigInt(size);
  while (a < end) {
    const next = (a / s + 1n) * s;
    const stop = next < end ? next : end;
    out.push({ address: a, length: Number(stop - a) });
    a = stop;
  }
  return out;
}

/** Sizes of the pieces of {@link splitAtBoundary} without listing them: `[{length, count}]`. */
export interface SplitSummary {
  count: number;
  groups: { length: number; count: number }[];
  first: number;
  last: number;
}

export function splitSummary(address: bigint | number, length: number, size: number): SplitSummary {
  checkSplitSize(size, "split size");
  checkLength(length);
  if (length === 0) return { count: 0, groups: [], first: 0, last: 0 };
  const off = Number(toAddress(address) % BigInt(size));
  const count = Math.ceil((off + length) / size);
  if (count === 1) return { count, groups: [{ length, count: 1 }], first: length, last: length };
  const first = size - off;
  const last = length - first - (count - 2) * size;
  const groups = new Map<number, number>();
  const add = (len: number, n: number) => n > 0 && groups.set(len, (groups.get(len) ?? 0) + n);
  add(first, 1);
  add(size, count - 2);
  add(last, 1);
  return { count, groups: [...groups].map(([l, n]) => ({ length: l, count: n })), first, last };
}

export type CplPolicy = "max" | "rcb";

export interface Completion {
  address: bigint;
  length: number;
  /** Bytes remaining in the request including this completion. */
  byteCount: number;
  /** Address bits 6:0 of the completion's first byte. */
  lowerAddress: number;
}

export interface CompletionOptions {
  /** Read Completion Boundary: 64 or 128. Default 64. */
  rcb?: number;
  /** Largest completion payload (the completer's MPS). Default 256. */
  maxCpl?: number;
  /** 'max' (endpoint completers, default) or 'rcb' (root complexes returning host memory). */
  policy?: CplPolicy;
}

/** The completions answering one read request (§5.2, BW-11, BW-12). */
export function splitCompletions(
  address: bigint | number,
  length: number,
  opts: CompletionOptions = {},
): Completion[] {
  const rcb = opts.rcb ?? 64;
  const maxCpl = opts.maxCpl ?? 256;
  const policy = opts.policy ?? "max";
  if (rcb !== 64 && rcb !== 128) throw new InputError(`read completion boundary ${rcb} must be 64 or 128`);
  checkSplitSize(maxCpl, "maximum completion size");
  if (maxCpl < rcb) throw new InputError(`maximum completion size ${maxCpl} is below the RCB ${rcb}`);
  checkLength(length);
  const out: Completion[] = [];
  const start = toAddress(address);
  const end = start + BigInt(length);
  const r = BigInt(rcb);
  let a = start;
  while (a < end) {
    let stop: bigint;
    if (policy === "rcb") stop = (a / r + 1n) * r;
    else {
      // MPS bounds the Length field, which counts whole DWs from the DW holding the first byte:
      // an unaligned start leaves fewer than maxCpl bytes
      stop = (a & ~3n) + BigInt(maxCpl);
      // every completion but the last ends on an RCB boundary
      if (stop < end) stop = (stop / r) * r;
    }
    if (stop > end) stop = end;
    out.push({
      address: a,
      length: Number(stop - a),
      byteCount: Number(end - a),
      lowerAddress: Number(a & 0x7fn),
    });
    a = stop;
  }
  return out;
}
