/**
 * Header → bytes (tph-and-tlp.md §6, §7, §11): the inverse of {@link decodeTlp}. Every field is
 * range-checked; a value the wire cannot hold is a {@link TlpEncodeError} naming the field.
 */
import { TlpEncodeError } from "./errors.js";
import { FM_TYPES, isFmPrefix, isNfmE2ePrefix, isNfmPrefix, NFM_TYPES, type TlpTypeInfo } from "./tables.js";
import type { FmHeader, NfmHeader, OhcA, OhcB, OhcC, TlpInput, TlpPrefix } from "./types.js";

function fmtVal(v: unknown): string {
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) return `0x${v.toString(16)}`;
  if (typeof v === "bigint") return `0x${v.toString(16)}`;
  return JSON.stringify(v) ?? String(v);
}

function int(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    throw new TlpEncodeError(field, `${fmtVal(v)} is not an integer in ${min}..${fmtVal(max)}`);
  return v;
}

function flag(field: string, v: unknown): boolean {
  if (typeof v !== "boolean") throw new TlpEncodeError(field, `${fmtVal(v)} is not a boolean`);
  return v;
}

function addr(field: string, v: unknown, bits: 32 | 64): bigint {
  if (typeof v !== "bigint") throw new TlpEncodeError(field, `${fmtVal(v)} is not a bigint`);
  if (v < 0n || v >= 1n << BigInt(bits))
    throw new TlpEncodeError(field, `${fmtVal(v)} does not fit a ${bits}-bit address`);
  if (v & 3n) throw new TlpEncodeError(field, `${fmtVal(v)} is not DW-aligned (bits 1:0 carry PH/AT)`);
  return v;
}

function typeOf(table: readonly (TlpTypeInfo | undefined)[], field: string, code: unknown, kind: string) {
  const c = int(field, code, 0, 255);
  const ti = table[c];
  if (!ti) throw new TlpEncodeError(field, `${fmtVal(c)} is a reserved type code`);
  if (ti.kind !== kind)
    throw new TlpEncodeError(field, `${fmtVal(c)} is ${ti.name} (kind ${ti.kind}), not kind ${kind}`);
  return ti;
}

class Out {
  constructor(
    readonly b: Uint8Array,
    public o: number,
  ) {}
  u8(v: number): void {
    this.b[this.o++] = v & 0xff;
  }
  u16(v: number): void {
    this.u8(v >> 8);
    this.u8(v);
  }
  u32(v: number): void {
    this.u8(v >>> 24);
    this.u8(v >>> 16);
    this.u8(v >>> 8);
    this.u8(v);
  }
}

/** Header bytes (NFM: 12/16; FM: base + OHC) of a validated header. */
function headerSize(t: TlpInput): number {
  if (t.mode === "nfm")
    return typeOf(NFM_TYPES, "header.fmtType", t.header.fmtType, t.header.kind).baseDw * 4;
  const h = t.header;
  const ti = typeOf(FM_TYPES, "header.type", h.type, h.kind);
  if (h.kind === "nop") return 4;
  let n = ti.baseDw * 4;
  if (h.ohcA) n += 4;
  if (h.ohcB) n += 4;
  if (h.ohcC) n += 4;
  if (Array.isArray(h.ohcE)) n += h.ohcE.length * 4;
  return n;
}

/** Encodes prefixes, header and `data` (as given); sets any `reserved` bits. */
export function encodeTlp(t: TlpInput): Uint8Array {
  if (t === null || typeof t !== "object") throw new TlpEncodeError("tlp", "not an object");
  if (t.mode !== "nfm" && t.mode !== "fm")
    throw new TlpEncodeError("mode", `${fmtVal((t as { mode: unknown }).mode)} is not "nfm" or "fm"`);
  if (!t.header || typeof t.header !== "object") throw new TlpEncodeError("header", "missing");
  const prefixes = t.prefixes ?? [];
  if (!Array.isArray(prefixes)) throw new TlpEncodeError("prefixes", "not an array");
  const data = t.data ?? new Uint8Array(0);
  if (!(data instanceof Uint8Array)) throw new TlpEncodeError("data", "not a Uint8Array");
  const hsize = headerSize(t);
  const total = prefixes.length * 4 + hsize + data.length;
  const out = new Out(new Uint8Array(total), 0);
  encodePrefixes(t.mode, prefixes, out);
  if (t.mode === "nfm") encodeNfm(t.header, out);
  else encodeFm(t.header, out);
  out.b.set(data, out.o);
  const reserved = t.reserved ?? [];
  if (!Array.isArray(reserved)) throw new TlpEncodeError("reserved", "not an array");
  for (const [i, r] of reserved.entries()) {
    int(`reserved[${i}].offset`, r?.offset, 0, total - 1);
    int(`reserved[${i}].bits`, r?.bits, 0, 255);
    out.b[r.offset] |= r.bits;
  }
  return out.b;
}

function encodePrefixes(mode: "nfm" | "fm", prefixes: TlpPrefix[], out: Out): void {
  let e2e = 0;
  for (const [i, p] of prefixes.entries()) {
    const f = `prefixes[${i}]`;
    if (!p || typeof p !== "object") throw new TlpEncodeError(f, "not an object");
    const type = int(`${f}.type`, p.type, 0, 255);
    if (mode === "nfm" && !isNfmPrefix(type))
      throw new TlpEncodeError(`${f}.type`, `${fmtVal(type)} is not a TLP prefix (0x80–0x9f)`);
    if (mode === "fm" && !isFmPrefix(type))
      throw new TlpEncodeError(`${f}.type`, `${fmtVal(type)} is not a flit-mode local prefix (0x8d–0x8f)`);
    if (mode === "nfm" && isNfmE2ePrefix(type) && ++e2e > 4)
      throw new TlpEncodeError(f, "more than 4 end-to-end prefixes");
    out.u8(type);
    const body = int(`${f}.body`, p.body, 0, 0xffffff);
    out.u8(body >> 16);
    out.u16(body & 0xffff);
  }
}

function encodeNfm(h: NfmHeader, out: Out): void {
  const ti = typeOf(NFM_TYPES, "header.fmtType", h.fmtType, h.kind);
  const tc = int("header.tc", h.tc, 0, 7);
  const attr = int("header.attr", h.attr, 0, 7);
  const length = int("header.length", h.length, 1, 1024);
  const td = flag("header.td", h.td);
  const ep = flag("header.ep", h.ep);
  let b1 = (tc << 4) | (((attr >> 2) & 1) << 2);
  let b2 = (td ? 0x80 : 0) | (ep ? 0x40 : 0) | ((attr & 3) << 4) | ((length >> 8) & 3);
  const tagBits = (tag: number) => {
    b1 |= (((tag >> 9) & 1) << 7) | (((tag >> 8) & 1) << 3);
  };
  const bes = (first: unknown, last: unknown) =>
    (int("header.lastBe", last, 0, 15) << 4) | int("header.firstBe", first, 0, 15);
  const o = out.o;
  out.o += 4; // DW0 written last (tag bits land in byte 1)
  switch (h.kind) {
    case "mem": {
      b2 |= int("header.at", h.at, 0, 3) << 2;
      out.u16(int("header.requesterId", h.requesterId, 0, 0xffff));
      const tph = h.tph;
      let ph = 0;
      if (tph !== null) {
        if (!tph || typeof tph !== "object") throw new TlpEncodeError("header.tph", "not an object or null");
        b1 |= 1; // TH
        ph = int("header.tph.ph", tph.ph, 0, 3);
        int("header.tph.st", tph.st, 0, 255);
      }
      if (tph && ti.posted) {
        if (h.tag !== null)
          throw new TlpEncodeError(
            "header.tag",
            "a posted request with TPH has no tag: byte 6 carries ST[7:0] (set tag to null)",
          );
        out.u8(tph.st);
      } else {
        const tag = int("header.tag", h.tag, 0, 0x3ff);
        tagBits(tag);
        out.u8(tag);
      }
      if (tph && !ti.posted) {
        if (h.firstBe !== null || h.lastBe !== null)
          throw new TlpEncodeError(
            "header.firstBe",
            "a non-posted request with TPH has implied byte enables: byte 7 carries ST[7:0] (set firstBe and lastBe to null)",
          );
        out.u8(tph.st);
      } else out.u8(bes(h.firstBe, h.lastBe));
      const a = addr("header.address", h.address, ti.addr64 ? 64 : 32);
      if (ti.addr64) out.u32(Number(a >> 32n));
      out.u32((Number(a & 0xffffffffn) | ph) >>> 0);
      break;
    }
    case "io": {
      out.u16(int("header.requesterId", h.requesterId, 0, 0xffff));
      const tag = int("header.tag", h.tag, 0, 0x3ff);
      tagBits(tag);
      out.u8(tag);
      out.u8(bes(h.firstBe, h.lastBe));
      out.u32(Number(addr("header.address", h.address, 32)));
      break;
    }
    case "cfg": {
      out.u16(int("header.requesterId", h.requesterId, 0, 0xffff));
      const tag = int("header.tag", h.tag, 0, 0x3ff);
      tagBits(tag);
      out.u8(tag);
      out.u8(bes(h.firstBe, h.lastBe));
      out.u16(int("header.targetId", h.targetId, 0, 0xffff));
      const reg = int("header.register", h.register, 0, 0xffc);
      if (reg & 3) throw new TlpEncodeError("header.register", `${fmtVal(reg)} is not DW-aligned`);
      out.u16(reg);
      break;
    }
    case "cpl": {
      out.u16(int("header.completerId", h.completerId, 0, 0xffff));
      const bc = int("header.byteCount", h.byteCount, 1, 4096) & 0xfff;
      out.u8(
        (int("header.status", h.status, 0, 7) << 5) | (flag("header.bcm", h.bcm) ? 0x10 : 0) | (bc >> 8),
      );
      out.u8(bc);
      out.u16(int("header.requesterId", h.requesterId, 0, 0xffff));
      const tag = int("header.tag", h.tag, 0, 0x3ff);
      tagBits(tag);
      out.u8(tag);
      out.u8(int("header.lowerAddress", h.lowerAddress, 0, 0x7f));
      break;
    }
    case "msg": {
      out.u16(int("header.requesterId", h.requesterId, 0, 0xffff));
      const tag = int("header.tag", h.tag, 0, 0x3ff);
      tagBits(tag);
      out.u8(tag);
      out.u8(int("header.messageCode", h.messageCode, 0, 255));
      out.u32(int("header.dw2", h.dw2, 0, 0xffffffff));
      out.u32(int("header.dw3", h.dw3, 0, 0xffffffff));
      break;
    }
    default:
      throw new TlpEncodeError(
        "header.kind",
        `${fmtVal((h as { kind: unknown }).kind)} is not a non-flit kind`,
      );
  }
  out.b[o] = ti.code;
  out.b[o + 1] = b1;
  out.b[o + 2] = b2;
  out.b[o + 3] = length & 0xff;
}

const OHC_A_FORMAT = { mem: "A1", io: "A2", cfg: "A3", msg: "A4", cpl: "A5" } as const;

function encodeFm(h: FmHeader, out: Out): void {
  const ti = typeOf(FM_TYPES, "header.type", h.type, h.kind);
  if (h.kind === "nop") {
    out.u32(0);
    return;
  }
  const tc = int("header.tc", h.tc, 0, 7);
  const ts = int("header.ts", h.ts, 0, 7);
  const attr = int("header.attr", h.attr, 0, 7);
  const length = int("header.length", h.length, 1, 1024);
  let eCode = 0;
  if (h.ohcE !== null && h.ohcE !== undefined) {
    if (!Array.isArray(h.ohcE)) throw new TlpEncodeError("header.ohcE", "not an array of DWs or null");
    eCode = [0, 1, 2, 0, 3][h.ohcE.length] ?? 0;
    if (!eCode) throw new TlpEncodeError("header.ohcE", `${h.ohcE.length} DWs (OHC-E is 1, 2 or 4 DW)`);
  }
  const ohc = (h.ohcA ? 1 : 0) | (h.ohcB ? 2 : 0) | (h.ohcC ? 4 : 0) | (eCode << 3);
  out.u8(ti.code);
  out.u8((tc << 5) | ohc);
  out.u8((ts << 5) | (attr << 2) | ((length >> 8) & 3));
  out.u8(length);
  const epTag = (ep: unknown, tag: unknown, bit6 = 0) => {
    const t = int("header.tag", tag, 0, 0x3fff);
    out.u8((flag("header.ep", ep) ? 0x80 : 0) | bit6 | (t >> 8));
    out.u8(t);
  };
  switch (h.kind) {
    case "mem": {
      out.u16(int("header.requesterId", h.requesterId, 0, 0xffff));
      epTag(h.ep, h.tag);
      const at = int("header.at", h.at, 0, 3);
      const a = addr("header.address", h.address, ti.addr64 ? 64 : 32);
      if (ti.addr64) out.u32(Number(a >> 32n));
      out.u32((Number(a & 0xffffffffn) | at) >>> 0);
      break;
    }
    case "io":
      out.u16(int("header.requesterId", h.requesterId, 0, 0xffff));
      epTag(h.ep, h.tag);
      out.u32(Number(addr("header.address", h.address, 32)));
      break;
    case "cfg": {
      out.u16(int("header.requesterId", h.requesterId, 0, 0xffff));
      epTag(h.ep, h.tag);
      out.u16(int("header.targetId", h.targetId, 0, 0xffff));
      const reg = int("header.register", h.register, 0, 0xffc);
      if (reg & 3) throw new TlpEncodeError("header.register", `${fmtVal(reg)} is not DW-aligned`);
      out.u16(reg);
      break;
    }
    case "cpl": {
      out.u16(int("header.completerId", h.completerId, 0, 0xffff));
      const la = int("header.lowerAddress", h.lowerAddress, 0, 0x7f);
      if (la & 3)
        throw new TlpEncodeError(
          "header.lowerAddress",
          `${fmtVal(la)}: Lower Address[1:0] travel in OHC-A5 (ohcA.lowerAddress), not in the header base`,
        );
      epTag(h.ep, h.tag, (la >> 6) << 6);
      out.u16(int("header.requesterId", h.requesterId, 0, 0xffff));
      const bc = int("header.byteCount", h.byteCount, 1, 4096) & 0xfff;
      out.u8((((la >> 2) & 0xf) << 4) | (bc >> 8));
      out.u8(bc);
      break;
    }
    case "msg": {
      if (!Array.isArray(h.dws) || h.dws.length !== 3)
        throw new TlpEncodeError("header.dws", "a message header base carries 3 DWs after DW0");
      for (const [i, d] of h.dws.entries()) out.u32(int(`header.dws[${i}]`, d, 0, 0xffffffff));
      break;
    }
    default:
      throw new TlpEncodeError(
        "header.kind",
        `${fmtVal((h as { kind: unknown }).kind)} is not a flit-mode kind`,
      );
  }
  if (h.ohcA) encodeOhcA(h.ohcA, OHC_A_FORMAT[h.kind], out);
  if (h.ohcB) encodeOhcB(h.ohcB, out);
  if (h.ohcC) encodeOhcC(h.ohcC, out);
  if (h.ohcE) for (const [i, d] of h.ohcE.entries()) out.u32(int(`header.ohcE[${i}]`, d, 0, 0xffffffff));
}

function encodeOhcA(a: OhcA, want: OhcA["format"], out: Out): void {
  if (!a || typeof a !== "object" || a.format !== want)
    throw new TlpEncodeError("header.ohcA.format", `this type takes OHC-${want}, not ${fmtVal(a?.format)}`);
  switch (a.format) {
    case "A1": {
      const pasid = int("header.ohcA.pasid", a.pasid, 0, 0xfffff);
      out.u8(
        (flag("header.ohcA.nw", a.nw) ? 0x80 : 0) |
          (flag("header.ohcA.pv", a.pv) ? 0x40 : 0) |
          (flag("header.ohcA.pmr", a.pmr) ? 0x20 : 0) |
          (flag("header.ohcA.er", a.er) ? 0x10 : 0) |
          (pasid >> 16),
      );
      out.u16(pasid & 0xffff);
      out.u8(
        (int("header.ohcA.lastBe", a.lastBe, 0, 15) << 4) | int("header.ohcA.firstBe", a.firstBe, 0, 15),
      );
      break;
    }
    case "A5":
      out.u8(int("header.ohcA.destSegment", a.destSegment, 0, 255));
      out.u8(int("header.ohcA.completerSegment", a.completerSegment, 0, 255));
      out.u8(flag("header.ohcA.dsv", a.dsv) ? 0x80 : 0);
      out.u8(
        (int("header.ohcA.lowerAddress", a.lowerAddress, 0, 3) << 3) |
          int("header.ohcA.status", a.status, 0, 7),
      );
      break;
    default:
      out.u32(int("header.ohcA.raw", a.raw, 0, 0xffffffff));
  }
}

function encodeOhcB(b: OhcB, out: Out): void {
  if (typeof b !== "object") throw new TlpEncodeError("header.ohcB", "not an object or null");
  out.u8(0);
  out.u16(int("header.ohcB.st", b.st, 0, 0xffff));
  out.u8(
    (int("header.ohcB.ph", b.ph, 0, 3) << 6) |
      (int("header.ohcB.hv", b.hv, 0, 3) << 4) |
      (int("header.ohcB.ama", b.ama, 0, 7) << 1) |
      (flag("header.ohcB.av", b.av) ? 1 : 0),
  );
}

function encodeOhcC(c: OhcC, out: Out): void {
  if (typeof c !== "object") throw new TlpEncodeError("header.ohcC", "not an object or null");
  out.u8(int("header.ohcC.requesterSegment", c.requesterSegment, 0, 255));
  out.u8(int("header.ohcC.prSentCounter", c.prSentCounter, 0, 255));
  out.u8(int("header.ohcC.streamId", c.streamId, 0, 255));
  out.u8(
    (int("header.ohcC.subStream", c.subStream, 0, 7) << 4) |
      (flag("header.ohcC.rsv", c.rsv) ? 8 : 0) |
      (flag("header.ohcC.k", c.k) ? 2 : 0) |
      (flag("header.ohcC.t", c.t) ? 1 : 0),
  );
}
