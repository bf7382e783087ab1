/**
 * Bytes → header (tph-and-tlp.md §6, §7, §11). Anything that is not a TLP is a
 * {@link TlpDecodeError} naming the byte; reserved bits that are set are kept (so the header
 * encodes back to the same bytes) and reported in the notes.
 */
import { TlpDecodeError, truncated } from "./errors.js";
import {
  FM_TYPES,
  impliedBe,
  isFmPrefix,
  isNfmE2ePrefix,
  isNfmPrefix,
  NFM_TYPES,
  nfmPrefixName,
  OHC_E_DW,
  type TlpTypeInfo,
  TRAILER_DW,
} from "./tables.js";
import type {
  FmHeader,
  NfmHeader,
  OhcA,
  OhcB,
  OhcC,
  ReservedBits,
  Tlp,
  TlpInfo,
  TlpMode,
  TlpPrefix,
  Tph,
} from "./types.js";

export interface DecodeOptions {
  mode: TlpMode;
  /**
   * The input is one whole TLP: the bytes after the header must be exactly the payload (Length)
   * and the digest (NFM TD / FM TS). Otherwise bytes after the header are kept as given.
   */
  whole?: boolean;
}

const u16 = (b: Uint8Array, i: number) => (b[i] << 8) | b[i + 1];
const u24 = (b: Uint8Array, i: number) => (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
const u32 = (b: Uint8Array, i: number) =>
  ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
const hex2 = (n: number) => `0x${n.toString(16).padStart(2, "0")}`;
const bin = (n: number, w: number) => n.toString(2).padStart(w, "0");
const FOUR_GIB = 1n << 32n;

/** Decodes one TLP (prefixes, header, then whatever follows) in the given mode. */
export function decodeTlp(bytes: Uint8Array, opts: DecodeOptions): Tlp {
  if (bytes.length === 0) throw truncated(0, "TLP header");
  if (bytes.length % 4 !== 0)
    throw new TlpDecodeError(
      bytes.length - (bytes.length % 4),
      `${bytes.length} bytes is not a multiple of 4 (truncated DW)`,
      `${bytes.length} bytes is not a multiple of 4: truncated DW at byte ${bytes.length - (bytes.length % 4)}`,
    );
  return opts.mode === "nfm" ? decodeNfm(bytes, opts.whole ?? false) : decodeFm(bytes, opts.whole ?? false);
}

class Reserved {
  readonly list: ReservedBits[] = [];
  constructor(private readonly b: Uint8Array) {}
  check(offset: number, mask: number): void {
    const v = this.b[offset] & mask;
    if (v) this.list.push({ offset, bits: v });
  }
}

function finishData(
  b: Uint8Array,
  end: number,
  payloadBytes: number,
  digestBytes: number,
  whole: boolean,
  notes: string[],
): Uint8Array {
  const rest = b.slice(end);
  const want = payloadBytes + digestBytes;
  if (whole && rest.length !== want)
    throw new TlpDecodeError(
      end,
      `payload length disagrees with Length: ${want} bytes expected after the header (${payloadBytes} payload + ${digestBytes} digest), ${rest.length} given`,
    );
  if (rest.length > 0 && rest.length !== want)
    notes.push(
      `${rest.length} bytes follow the header; Length and the digest say ${want} (${payloadBytes} payload + ${digestBytes} digest)`,
    );
  return rest;
}

function reservedNotes(res: Reserved, notes: string[]): void {
  for (const r of res.list) notes.push(`reserved bits set: byte ${r.offset} mask ${hex2(r.bits)}`);
}

// ---------------------------------------------------------------------------------------------
// Non-flit mode

function decodeNfm(b: Uint8Array, whole: boolean): Tlp {
  const notes: string[] = [];
  const res = new Reserved(b);
  const prefixes: TlpPrefix[] = [];
  let p = 0;
  let e2e = 0;
  while (p < b.length && isNfmPrefix(b[p])) {
    if (isNfmE2ePrefix(b[p]) && ++e2e > 4) throw new TlpDecodeError(p, "more than 4 end-to-end prefixes");
    prefixes.push({ type: b[p], body: u24(b, p + 1) });
    p += 4;
  }
  if (p >= b.length) throw truncated(p, "header after the prefixes");
  const h0 = p;
  const code = b[h0];
  const ti = NFM_TYPES[code];
  if (!ti)
    throw new TlpDecodeError(
      h0,
      `reserved Fmt/Type ${hex2(code)} (Fmt ${bin(code >> 5, 3)}, Type ${bin(code & 31, 5)})`,
    );
  const hb = ti.baseDw * 4;
  if (b.length - h0 < hb) throw truncated(b.length, `rest of the ${ti.baseDw}-DW ${ti.name} header`);
  const b1 = b[h0 + 1];
  const b2 = b[h0 + 2];
  const t98 = (((b1 >> 7) & 1) << 9) | (((b1 >> 3) & 1) << 8);
  const lf = ((b2 & 3) << 8) | b[h0 + 3];
  const base = {
    fmtType: code,
    tc: (b1 >> 4) & 7,
    attr: (((b1 >> 2) & 1) << 2) | ((b2 >> 4) & 3),
    td: (b2 & 0x80) !== 0,
    ep: (b2 & 0x40) !== 0,
    length: lf === 0 ? 1024 : lf,
  };
  res.check(h0 + 1, 0x02); // LN
  if (ti.kind !== "mem") {
    res.check(h0 + 1, 0x01); // TH: memory requests only
    res.check(h0 + 2, 0x0c); // AT: memory requests only
  }
  const rid = u16(b, h0 + 4);
  let header: NfmHeader;
  switch (ti.kind) {
    case "mem": {
      const th = (b1 & 1) === 1;
      const loOff = h0 + (ti.addr64 ? 12 : 8);
      const lo = u32(b, loOff);
      const address = ti.addr64
        ? (BigInt(u32(b, h0 + 8)) << 32n) | BigInt((lo & ~3) >>> 0)
        : BigInt((lo & ~3) >>> 0);
      let tag: number | null = t98 | b[h0 + 6];
      let firstBe: number | null = b[h0 + 7] & 0xf;
      let lastBe: number | null = b[h0 + 7] >> 4;
      let tph: { st: number; ph: number } | null = null;
      if (th) {
        if (ti.posted) {
          // §6.2: a posted request has no tag; byte 6 is ST[7:0], T9/T8 are reserved.
          tph = { st: b[h0 + 6], ph: lo & 3 };
          tag = null;
          res.check(h0 + 1, 0x88);
        } else {
          // §6.2: byte 7 is ST[7:0]; the byte enables are implied.
          tph = { st: b[h0 + 7], ph: lo & 3 };
          firstBe = null;
          lastBe = null;
        }
      } else res.check(loOff + 3, 0x03);
      if (ti.addr64 && address < FOUR_GIB)
        notes.push("64-bit format for an address below 4 GiB (requesters must use the 32-bit format)");
      header = {
        kind: "mem",
        ...base,
        at: (b2 >> 2) & 3,
        requesterId: rid,
        tag,
        firstBe,
        lastBe,
        address,
        tph,
      };
      break;
    }
    case "io":
      res.check(h0 + 11, 0x03);
      header = {
        kind: "io",
        ...base,
        requesterId: rid,
        tag: t98 | b[h0 + 6],
        firstBe: b[h0 + 7] & 0xf,
        lastBe: b[h0 + 7] >> 4,
        address: BigInt((u32(b, h0 + 8) & ~3) >>> 0),
      };
      break;
    case "cfg":
      res.check(h0 + 10, 0xf0);
      res.check(h0 + 11, 0x03);
      header = {
        kind: "cfg",
        ...base,
        requesterId: rid,
        tag: t98 | b[h0 + 6],
        firstBe: b[h0 + 7] & 0xf,
        lastBe: b[h0 + 7] >> 4,
        targetId: u16(b, h0 + 8),
        register: ((b[h0 + 10] & 0xf) << 8) | (b[h0 + 11] & 0xfc),
      };
      break;
    case "cpl": {
      const b6 = b[h0 + 6];
      const bc = ((b6 & 0xf) << 8) | b[h0 + 7];
      res.check(h0 + 11, 0x80);
      header = {
        kind: "cpl",
        ...base,
        completerId: rid,
        status: b6 >> 5,
        bcm: (b6 & 0x10) !== 0,
        byteCount: bc === 0 ? 4096 : bc,
        requesterId: u16(b, h0 + 8),
        tag: t98 | b[h0 + 10],
        lowerAddress: b[h0 + 11] & 0x7f,
      };
      break;
    }
    default:
      header = {
        kind: "msg",
        ...base,
        requesterId: rid,
        tag: t98 | b[h0 + 6],
        messageCode: b[h0 + 7],
        dw2: u32(b, h0 + 8),
        dw3: u32(b, h0 + 12),
      };
  }
  const ext = prefixes.find((x) => x.type === 0x90);
  for (const x of prefixes) {
    if (nfmPrefixName(x.type).startsWith("reserved"))
      notes.push(`prefix ${hex2(x.type)}: reserved prefix type`);
    if (x.type === 0x90 && (x.body & 0xffff) !== 0)
      notes.push("ExtTPH prefix: reserved bytes 2–3 are not zero");
  }
  if (prefixes.filter((x) => x.type === 0x90).length > 1)
    notes.push("more than one ExtTPH prefix; the first is used");
  if (ext && !(header.kind === "mem" && header.tph))
    notes.push("ExtTPH prefix on a TLP without TH: ST[15:8] has no ST[7:0] to extend");
  const payloadBytes = ti.hasData ? base.length * 4 : 0;
  const digestBytes = base.td ? 4 : 0;
  const data = finishData(b, h0 + hb, payloadBytes, digestBytes, whole, notes);
  reservedNotes(res, notes);
  const info = nfmInfo(ti, header, prefixes, payloadBytes, digestBytes, notes);
  return { mode: "nfm", prefixes, header, data, reserved: res.list, info, notes };
}

function nfmInfo(
  ti: TlpTypeInfo,
  h: NfmHeader,
  prefixes: TlpPrefix[],
  payloadBytes: number,
  digestBytes: number,
  notes: string[],
): TlpInfo {
  let tph: Tph | null = null;
  let byteEnables: TlpInfo["byteEnables"] = null;
  let address: bigint | null = null;
  let tag: number | null = null;
  let status: number | null = null;
  let lowerAddress: number | null = null;
  if (h.kind === "mem") {
    address = h.address;
    tag = h.tag;
    if (h.tph) {
      const ext = prefixes.find((x) => x.type === 0x90);
      tph = ext
        ? { st: ((ext.body >> 16) << 8) | h.tph.st, stBits: 16, ph: h.tph.ph }
        : { ...h.tph, stBits: 8 };
    }
    byteEnables =
      h.firstBe === null || h.lastBe === null
        ? { ...impliedBe(h.length), implied: true }
        : { first: h.firstBe, last: h.lastBe, implied: false };
  } else if (h.kind === "io" || h.kind === "cfg") {
    tag = h.tag;
    if (h.kind === "io") address = h.address;
    byteEnables = { first: h.firstBe, last: h.lastBe, implied: false };
  } else if (h.kind === "cpl") {
    tag = h.tag;
    status = h.status;
    lowerAddress = h.lowerAddress;
    if (h.status !== 0 && h.status !== 1 && h.status !== 2 && h.status !== 4)
      notes.push(`completion status ${bin(h.status, 3)} is reserved`);
  } else tag = h.tag;
  const prefixBytes = prefixes.length * 4;
  const headerBytes = ti.baseDw * 4;
  return {
    name: ti.name,
    description: ti.description,
    kind: ti.kind,
    typeCode: ti.code,
    fmt: ti.code >> 5,
    type5: ti.code & 31,
    posted: ti.posted,
    hasData: ti.hasData,
    addressBits: ti.kind === "mem" || ti.kind === "io" ? (ti.addr64 ? 64 : 32) : null,
    address,
    tag,
    byteEnables,
    tph,
    hvReserved: false,
    status,
    lowerAddress,
    ohc: null,
    lengthDw: h.length,
    prefixBytes,
    headerBytes,
    payloadBytes,
    digestBytes,
    totalBytes: prefixBytes + headerBytes + payloadBytes + digestBytes,
  };
}

// ---------------------------------------------------------------------------------------------
// Flit mode

function decodeFm(b: Uint8Array, whole: boolean): Tlp {
  const notes: string[] = [];
  const res = new Reserved(b);
  const prefixes: TlpPrefix[] = [];
  let p = 0;
  while (p < b.length && isFmPrefix(b[p])) {
    prefixes.push({ type: b[p], body: u24(b, p + 1) });
    p += 4;
  }
  if (p >= b.length) throw truncated(p, "header base after the local prefixes");
  const h0 = p;
  const code = b[h0];
  const ti = FM_TYPES[code];
  if (!ti) throw new TlpDecodeError(h0, `reserved type ${hex2(code)}`);
  if (ti.kind === "nop") {
    res.check(h0 + 1, 0xff);
    res.check(h0 + 2, 0xff);
    res.check(h0 + 3, 0xff);
    const data = finishData(b, h0 + 4, 0, 0, whole, notes);
    reservedNotes(res, notes);
    const info = fmInfo(ti, { kind: "nop", type: 0 }, prefixes, 0, 0, 4, 0);
    return { mode: "fm", prefixes, header: { kind: "nop", type: 0 }, data, reserved: res.list, info, notes };
  }
  const baseBytes = ti.baseDw * 4;
  if (b.length - h0 < baseBytes)
    throw truncated(b.length, `rest of the ${ti.baseDw}-DW ${ti.name} header base`);
  const b1 = b[h0 + 1];
  const b2 = b[h0 + 2];
  const ohc = b1 & 0x1f;
  const lf = ((b2 & 3) << 8) | b[h0 + 3];
  let o = h0 + baseBytes;
  let ohcA: OhcA | null = null;
  let ohcB: OhcB | null = null;
  let ohcC: OhcC | null = null;
  let ohcE: number[] | null = null;
  if (ohc & 1) {
    if (b.length - o < 4) throw truncated(o, "OHC-A");
    ohcA = parseOhcA(b, o, ti, res);
    o += 4;
  }
  if (ohc & 2) {
    if (b.length - o < 4) throw truncated(o, "OHC-B");
    res.check(o, 0xff);
    const b3 = b[o + 3];
    ohcB = { st: u16(b, o + 1), ph: b3 >> 6, hv: (b3 >> 4) & 3, ama: (b3 >> 1) & 7, av: (b3 & 1) === 1 };
    o += 4;
  }
  if (ohc & 4) {
    if (b.length - o < 4) throw truncated(o, "OHC-C");
    const b3 = b[o + 3];
    res.check(o + 3, 0x84);
    ohcC = {
      requesterSegment: b[o],
      prSentCounter: b[o + 1],
      streamId: b[o + 2],
      subStream: (b3 >> 4) & 7,
      rsv: (b3 & 8) !== 0,
      k: (b3 & 2) !== 0,
      t: (b3 & 1) !== 0,
    };
    o += 4;
  }
  const eDw = OHC_E_DW[ohc >> 3];
  if (eDw) {
    if (b.length - o < eDw * 4) throw truncated(o, `OHC-E (${eDw} DW)`);
    ohcE = [];
    for (let i = 0; i < eDw; i++) ohcE.push(u32(b, o + 4 * i));
    o += eDw * 4;
  }
  const base = {
    type: code,
    tc: b1 >> 5,
    ts: b2 >> 5,
    attr: (b2 >> 2) & 7,
    length: lf === 0 ? 1024 : lf,
    ohcA,
    ohcB,
    ohcC,
    ohcE,
  };
  const b6 = b[h0 + 6];
  let header: FmHeader;
  switch (ti.kind) {
    case "mem": {
      res.check(h0 + 6, 0x40);
      const lo = u32(b, h0 + (ti.addr64 ? 12 : 8));
      const address = ti.addr64
        ? (BigInt(u32(b, h0 + 8)) << 32n) | BigInt((lo & ~3) >>> 0)
        : BigInt((lo & ~3) >>> 0);
      if (ti.addr64 && address < FOUR_GIB)
        notes.push("64-bit format for an address below 4 GiB (requesters must use the 32-bit format)");
      header = {
        kind: "mem",
        ...base,
        requesterId: u16(b, h0 + 4),
        ep: (b6 & 0x80) !== 0,
        tag: ((b6 & 0x3f) << 8) | b[h0 + 7],
        address,
        at: lo & 3,
      };
      break;
    }
    case "io":
      res.check(h0 + 6, 0x40);
      res.check(h0 + 11, 0x03);
      header = {
        kind: "io",
        ...base,
        requesterId: u16(b, h0 + 4),
        ep: (b6 & 0x80) !== 0,
        tag: ((b6 & 0x3f) << 8) | b[h0 + 7],
        address: BigInt((u32(b, h0 + 8) & ~3) >>> 0),
      };
      if (!ohcA)
        notes.push("OHC-A2 (byte enables) missing: a receiver handles this request as Unsupported Request");
      break;
    case "cfg":
      res.check(h0 + 6, 0x40);
      res.check(h0 + 10, 0xf0);
      res.check(h0 + 11, 0x03);
      header = {
        kind: "cfg",
        ...base,
        requesterId: u16(b, h0 + 4),
        ep: (b6 & 0x80) !== 0,
        tag: ((b6 & 0x3f) << 8) | b[h0 + 7],
        targetId: u16(b, h0 + 8),
        register: ((b[h0 + 10] & 0xf) << 8) | (b[h0 + 11] & 0xfc),
      };
      if (!ohcA) notes.push("OHC-A3 missing: a receiver handles this request as Unsupported Request");
      break;
    case "cpl": {
      const b10 = b[h0 + 10];
      const bc = ((b10 & 0xf) << 8) | b[h0 + 11];
      header = {
        kind: "cpl",
        ...base,
        completerId: u16(b, h0 + 4),
        ep: (b6 & 0x80) !== 0,
        tag: ((b6 & 0x3f) << 8) | b[h0 + 7],
        requesterId: u16(b, h0 + 8),
        lowerAddress: (((b6 >> 6) & 1) << 6) | ((b10 >> 4) << 2),
        byteCount: bc === 0 ? 4096 : bc,
      };
      break;
    }
    default:
      header = { kind: "msg", ...base, dws: [u32(b, h0 + 4), u32(b, h0 + 8), u32(b, h0 + 12)] };
  }
  if (ohcB) {
    if (ti.kind !== "mem") notes.push(`OHC-B on a ${ti.name}: all its bits are reserved for this type`);
    else {
      if (ohcB.hv === 2) notes.push("OHC-B HV 10: reserved, treated as not valid (no TPH)");
      if (ohcB.hv === 1 && ohcB.st >> 8) notes.push("OHC-B HV 01: ST[15:8] is reserved but not zero");
      if (!ohcB.av && ohcB.ama) notes.push("OHC-B AMA is reserved when AV = 0");
    }
  }
  if (base.ts >= 2 && base.ts !== 5 && base.ts !== 6)
    notes.push(`TS ${bin(base.ts, 3)}: reserved trailer size`);
  if ((base.ts === 5 || base.ts === 6) && !ohcC)
    notes.push(`TS ${bin(base.ts, 3)} without OHC-C (not an IDE TLP)`);
  const payloadBytes = ti.hasData ? base.length * 4 : 0;
  const digestBytes = TRAILER_DW[base.ts] * 4;
  const data = finishData(b, o, payloadBytes, digestBytes, whole, notes);
  reservedNotes(res, notes);
  const info = fmInfo(ti, header, prefixes, payloadBytes, digestBytes, o - h0, ohc);
  return { mode: "fm", prefixes, header, data, reserved: res.list, info, notes };
}

function parseOhcA(b: Uint8Array, o: number, ti: TlpTypeInfo, res: Reserved): OhcA {
  switch (ti.kind) {
    case "mem": {
      const b0 = b[o];
      return {
        format: "A1",
        nw: (b0 & 0x80) !== 0,
        pv: (b0 & 0x40) !== 0,
        pmr: (b0 & 0x20) !== 0,
        er: (b0 & 0x10) !== 0,
        pasid: ((b0 & 0xf) << 16) | u16(b, o + 1),
        lastBe: b[o + 3] >> 4,
        firstBe: b[o + 3] & 0xf,
      };
    }
    case "cpl":
      res.check(o + 2, 0x7f);
      res.check(o + 3, 0xe0);
      return {
        format: "A5",
        destSegment: b[o],
        completerSegment: b[o + 1],
        dsv: (b[o + 2] & 0x80) !== 0,
        lowerAddress: (b[o + 3] >> 3) & 3,
        status: b[o + 3] & 7,
      };
    case "io":
      return { format: "A2", raw: u32(b, o) };
    case "cfg":
      return { format: "A3", raw: u32(b, o) };
    default:
      return { format: "A4", raw: u32(b, o) };
  }
}

function fmInfo(
  ti: TlpTypeInfo,
  h: FmHeader,
  prefixes: TlpPrefix[],
  payloadBytes: number,
  digestBytes: number,
  headerBytes: number,
  ohc: number,
): TlpInfo {
  let tph: Tph | null = null;
  let byteEnables: TlpInfo["byteEnables"] = null;
  let address: bigint | null = null;
  let tag: number | null = null;
  let status: number | null = null;
  let lowerAddress: number | null = null;
  let hvReserved = false;
  if (h.kind === "mem") {
    address = h.address;
    tag = h.tag;
    const a = h.ohcA;
    byteEnables =
      a && a.format === "A1"
        ? { first: a.firstBe, last: a.lastBe, implied: false }
        : { ...impliedBe(h.length), implied: true };
    const bb = h.ohcB;
    if (bb) {
      if (bb.hv === 1) tph = { st: bb.st & 0xff, stBits: 8, ph: bb.ph };
      else if (bb.hv === 3) tph = { st: bb.st, stBits: 16, ph: bb.ph };
      hvReserved = bb.hv === 2;
    }
  } else if (h.kind === "io" || h.kind === "cfg") {
    tag = h.tag;
    if (h.kind === "io") address = h.address;
  } else if (h.kind === "cpl") {
    tag = h.tag;
    const a = h.ohcA && h.ohcA.format === "A5" ? h.ohcA : null;
    status = a ? a.status : 0;
    lowerAddress = h.lowerAddress | (a ? a.lowerAddress : 0);
  }
  const prefixBytes = prefixes.length * 4;
  return {
    name: ti.name,
    description: ti.description,
    kind: ti.kind,
    typeCode: ti.code,
    fmt: null,
    type5: null,
    posted: ti.posted,
    hasData: ti.hasData,
    addressBits: ti.kind === "mem" || ti.kind === "io" ? (ti.addr64 ? 64 : 32) : null,
    address,
    tag,
    byteEnables,
    tph,
    hvReserved,
    status,
    lowerAddress,
    ohc: h.kind === "nop" ? null : ohc,
    lengthDw: h.kind === "nop" ? 0 : h.length,
    prefixBytes,
    headerBytes,
    payloadBytes,
    digestBytes,
    totalBytes: prefixBytes + headerBytes + payloadBytes + digestBytes,
  };
}

// ---------------------------------------------------------------------------------------------
// Mode detection

export interface AutoDecodeResult {
  tlp: Tlp;
  /** Why this mode was chosen when the input did not say. */
  note: string | null;
}

/**
 * Decodes without knowing the link mode: when only one mode decodes, that one; when both do,
 * the one whose header explains the input (no reserved bits set, size matching the header or the
 * whole TLP), NFM on a tie. When neither decodes, the NFM error is thrown (the FM one is in its
 * `cause`).
 */
export function decodeAuto(bytes: Uint8Array, opts: { whole?: boolean } = {}): AutoDecodeResult {
  let nfm: Tlp | null = null;
  let fm: Tlp | null = null;
  let nfmErr: unknown = null;
  let fmErr: unknown = null;
  try {
    nfm = decodeTlp(bytes, { mode: "nfm", whole: opts.whole });
  } catch (e) {
    if (!(e instanceof TlpDecodeError)) throw e;
    nfmErr = e;
  }
  try {
    fm = decodeTlp(bytes, { mode: "fm", whole: opts.whole });
  } catch (e) {
    if (!(e instanceof TlpDecodeError)) throw e;
    fmErr = e;
  }
  if (nfm && !fm)
    return { tlp: nfm, note: `decoded as non-flit mode (as flit mode: ${(fmErr as Error).message})` };
  if (fm && !nfm)
    return { tlp: fm, note: `decoded as flit mode (as non-flit mode: ${(nfmErr as Error).message})` };
  if (nfm && fm) {
    const sn = score(nfm, bytes.length);
    const sf = score(fm, bytes.length);
    if (sf > sn)
      return { tlp: fm, note: "decoded as flit mode: it explains the input better (use --mode to force)" };
    return {
      tlp: nfm,
      note:
        sn > sf
          ? "decoded as non-flit mode: it explains the input better (use --mode to force)"
          : "both modes decode these bytes; decoded as non-flit mode (use --mode fm for flit mode)",
    };
  }
  const e = nfmErr as TlpDecodeError;
  const f = fmErr as TlpDecodeError;
  if (e.message === f.message) throw e;
  throw new TlpDecodeError(e.offset, e.reason, `${e.message} (as non-flit mode; as flit mode: ${f.message})`);
}

function score(t: Tlp, n: number): number {
  const i = t.info;
  const exact = n === i.prefixBytes + i.headerBytes || n === i.totalBytes ? 2 : 0;
  return exact - Math.min(t.reserved.length, 2);
}
