/**
 * NFM ↔ FM translation as a switch between links of different modes does it (tph-and-tlp.md §8):
 * TPH between TH/byte 6 or 7/address bits and OHC-B, ST[15:8] between the ExtTPH prefix and
 * OHC-B, AT between byte 2 and the address bits, explicit byte enables between byte 7 and OHC-A1,
 * completion status / Lower Address[1:0] between the header and OHC-A5. A header the target mode
 * cannot express is a {@link TlpTranslateError} ("untranslatable: …").
 */
import { decodeTlp } from "./decode.js";
import { encodeTlp } from "./encode.js";
import { TlpTranslateError } from "./errors.js";
import { FM_TYPES, impliedBe, isNfmE2ePrefix, NFM_TYPES, nfmPrefixName, TRAILER_NAME } from "./tables.js";
import type {
  FmHeader,
  FmTlpInput,
  NfmHeader,
  NfmTlpInput,
  OhcA1,
  OhcB,
  Tlp,
  TlpInput,
  TlpMode,
  TlpPrefix,
} from "./types.js";

const hx = (n: number) => `0x${n.toString(16)}`;

export interface TranslateOptions {
  /**
   * FM posted writes with TPH: Tag[7:0] = ST[7:0] (`mirror-st`, default, the §8 copy rule that
   * fits the analyzer capture) or 0 (`zero`).
   */
  fmPostedTagPolicy?: "mirror-st" | "zero";
}

/** Translates to `to` and decodes the result; the translation's remarks are added to its notes. */
export function translateTlp(t: TlpInput, to: TlpMode, opts: TranslateOptions = {}): Tlp {
  const notes: string[] = [];
  let out: TlpInput;
  if (t.mode === to) out = { ...t, data: undefined, reserved: undefined };
  else out = t.mode === "nfm" ? nfmToFm(t, notes, opts) : fmToNfm(t, notes);
  if (t.data?.length && t.mode !== to)
    notes.push("bytes after the header (payload, digest) are not carried: only the header is translated");
  const tlp = decodeTlp(encodeTlp(out), { mode: to });
  tlp.notes.push(...notes);
  return tlp;
}

/** NFM → FM (§8). */
export function nfmToFm(t: NfmTlpInput, notes: string[] = [], opts: TranslateOptions = {}): FmTlpInput {
  const h = t.header;
  const ti = NFM_TYPES[h.fmtType];
  if (!ti) throw new TlpTranslateError(`Fmt/Type ${hx(h.fmtType)} is reserved`);
  let ext: TlpPrefix | null = null;
  for (const p of t.prefixes ?? []) {
    if (p.type === 0x90 && !ext) ext = p;
    else if (!isNfmE2ePrefix(p.type))
      notes.push(`local prefix ${nfmPrefixName(p.type)} dropped (link-local)`);
    else
      throw new TlpTranslateError(
        `end-to-end prefix ${nfmPrefixName(p.type)} has no flit-mode form in this model`,
      );
  }
  if (ext && !(h.kind === "mem" && h.tph))
    throw new TlpTranslateError("ExtTPH prefix on a TLP without TH (ST[15:8] without ST[7:0])");
  const common = { tc: h.tc, ts: h.td ? 1 : 0, attr: h.attr, length: h.length, ohcC: null, ohcE: null };
  let header: FmHeader;
  if (h.kind === "mem") {
    let tag: number;
    if (h.tag === null) {
      // §8: a posted write's FM Tag[7:0] is copied from NFM byte 6 (= ST[7:0]), Tag[13:8] = 0.
      tag = opts.fmPostedTagPolicy === "zero" ? 0 : (h.tph?.st ?? 0);
    } else tag = h.tag;
    let ohcA: OhcA1 | null = null;
    if (h.firstBe !== null && h.lastBe !== null) {
      const imp = impliedBe(h.length);
      if (h.firstBe !== imp.first || h.lastBe !== imp.last)
        ohcA = {
          format: "A1",
          nw: false,
          pv: false,
          pmr: false,
          er: false,
          pasid: 0,
          lastBe: h.lastBe,
          firstBe: h.firstBe,
        };
    }
    let ohcB: OhcB | null = null;
    if (h.tph)
      ohcB = ext
        ? { st: ((ext.body >> 16) << 8) | h.tph.st, ph: h.tph.ph, hv: 3, ama: 0, av: false }
        : { st: h.tph.st, ph: h.tph.ph, hv: 1, ama: 0, av: false };
    header = {
      kind: "mem",
      type: h.fmtType === 0x00 ? 0x03 : h.fmtType,
      ...common,
      ohcA,
      ohcB,
      requesterId: h.requesterId,
      ep: h.ep,
      tag,
      address: h.address,
      at: h.at,
    };
  } else if (h.kind === "cpl") {
    if (h.bcm) throw new TlpTranslateError("BCM (Byte Count Modified) does not exist in flit mode");
    const needA5 = h.status !== 0 || (h.lowerAddress & 3) !== 0;
    header = {
      kind: "cpl",
      type: h.fmtType,
      ...common,
      ohcA: needA5
        ? {
            format: "A5",
            destSegment: 0,
            completerSegment: 0,
            dsv: false,
            lowerAddress: h.lowerAddress & 3,
            status: h.status,
          }
        : null,
      ohcB: null,
      completerId: h.completerId,
      ep: h.ep,
      tag: h.tag,
      requesterId: h.requesterId,
      lowerAddress: h.lowerAddress & 0x7c,
      byteCount: h.byteCount,
    };
  } else
    throw new TlpTranslateError(
      `${ti.name}: only memory requests and completions are translated by this model`,
    );
  return { mode: "fm", header };
}

/** FM → NFM (§8). */
export function fmToNfm(t: FmTlpInput, notes: string[] = []): NfmTlpInput {
  const h = t.header;
  const ti = FM_TYPES[h.type];
  if (!ti) throw new TlpTranslateError(`type ${hx(h.type)} is reserved`);
  if ((t.prefixes ?? []).length) notes.push("flit-mode local prefixes dropped (link-local)");
  if (ti.flitOnly || h.kind === "nop") throw new TlpTranslateError(`${ti.name} exists only in flit mode`);
  if (h.ohcC) throw new TlpTranslateError("OHC-C (segment / IDE stream) has no non-flit form in this model");
  if (h.ohcE) throw new TlpTranslateError("OHC-E has no non-flit form in this model");
  if (h.ts > 1)
    throw new TlpTranslateError(`trailer TS ${h.ts} (${TRAILER_NAME[h.ts]}): only none or ECRC translate`);
  const common = { tc: h.tc, attr: h.attr, td: h.ts === 1, length: h.length };
  const tag10 = (tag: number) => {
    if (tag > 0x3ff) throw new TlpTranslateError(`Tag ${hx(tag)} needs 14 bits; non-flit tags have 10`);
    return tag;
  };
  if (h.kind === "mem") {
    const a1 = h.ohcA?.format === "A1" ? h.ohcA : null;
    if (a1 && (a1.nw || a1.pv || a1.pmr || a1.er || a1.pasid))
      throw new TlpTranslateError("OHC-A1 NW/PASID fields: a PASID prefix is not produced by this model");
    const b = h.ohcB;
    const valid = b !== null && (b.hv === 1 || b.hv === 3);
    if (b && valid && (b.ama || b.av)) throw new TlpTranslateError("OHC-B AMA/AV have no non-flit form");
    if (b && !valid)
      notes.push(`OHC-B with HV ${b.hv.toString(2).padStart(2, "0")} (not valid) dropped: no TH`);
    let tph: { st: number; ph: number } | null = null;
    const prefixes: TlpPrefix[] = [];
    if (b && valid) {
      const st = b.hv === 3 ? b.st : b.st & 0xff;
      tph = { st: st & 0xff, ph: b.ph };
      if (st >> 8) {
        prefixes.push({ type: 0x90, body: (st >> 8) << 16 });
        notes.push("ExtTPH prefix added: every link on the way must support End-End TLP Prefixes");
      }
    }
    let tag: number | null;
    let firstBe: number | null;
    let lastBe: number | null;
    if (tph && ti.posted) {
      tag = null;
      if (h.tag !== tph.st)
        notes.push(
          `Tag ${hx(h.tag)} dropped: a non-flit posted write with TPH carries ST[7:0] in the tag byte`,
        );
    } else tag = tag10(h.tag);
    if (tph && !ti.posted) {
      // §8: byte 7 becomes ST[7:0], so only implied byte enables can be expressed.
      if (a1) throw new TlpTranslateError("TPH with explicit byte enables (OHC-A1) on a non-posted request");
      firstBe = null;
      lastBe = null;
    } else if (a1) {
      firstBe = a1.firstBe;
      lastBe = a1.lastBe;
    } else ({ first: firstBe, last: lastBe } = impliedBe(h.length));
    const header: NfmHeader = {
      kind: "mem",
      fmtType: h.type === 0x03 ? 0x00 : h.type,
      ...common,
      ep: h.ep,
      at: h.at,
      requesterId: h.requesterId,
      tag,
      firstBe,
      lastBe,
      address: h.address,
      tph,
    };
    return { mode: "nfm", prefixes, header };
  }
  if (h.kind === "cpl") {
    const a5 = h.ohcA?.format === "A5" ? h.ohcA : null;
    if (a5 && (a5.destSegment || a5.completerSegment || a5.dsv))
      throw new TlpTranslateError("OHC-A5 segment fields have no non-flit form");
    if (h.ohcB) notes.push("OHC-B on a completion (reserved) dropped");
    const header: NfmHeader = {
      kind: "cpl",
      fmtType: h.type,
      ...common,
      ep: h.ep,
      completerId: h.completerId,
      status: a5 ? a5.status : 0,
      bcm: false,
      byteCount: h.byteCount,
      requesterId: h.requesterId,
      tag: tag10(h.tag),
      lowerAddress: h.lowerAddress | (a5 ? a5.lowerAddress : 0),
    };
    return { mode: "nfm", header };
  }
  throw new TlpTranslateError(
    `${ti.name}: only memory requests and completions are translated by this model`,
  );
}
