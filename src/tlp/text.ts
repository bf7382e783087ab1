/**
 * The three textual forms of a header (tph-and-tlp.md §0, §10): wire bytes (`60 02 00 08 …`),
 * big-endian DW values as the kernel's AER log prints them (`0x60020008 …`), little-endian DW
 * values as analyzers print them (`08000260 …`). Parsing, detection and formatting.
 */
import { InputError } from "../core/errors.js";
import { decodeAuto, decodeTlp } from "./decode.js";
import { encodeTlp } from "./encode.js";
import { TlpDecodeError } from "./errors.js";
import { isNfmE2ePrefix } from "./tables.js";
import type { Tlp, TlpInput, TlpMode } from "./types.js";

export type DwordOrder = "be" | "le";

export interface ParsedTlpText {
  /** Bytes as typed (`form: "bytes"`) or DW values in the order printed (`form: "dwords"`). */
  form: "bytes" | "dwords";
  bytes: Uint8Array;
  dwords: number[];
  /** The order the text itself implies: `be` for `0x…` values and AER lines; null when unknown. */
  order: DwordOrder | null;
  /** An AER / DPC header-log line: `TLP Header:` (NFM) or `TLP Header (Flit):`. */
  aer: { flit: boolean } | null;
  /** DWs after ` E-E Prefixes:` in an AER line (they precede the header on the wire). */
  prefixDwords: number[];
}

const AER_RE = /TLP Header( \(Flit\))?:/;

/** Reads one TLP's text. Throws {@link InputError} naming the token it cannot read. */
export function parseTlpText(text: string, where?: string): ParsedTlpText {
  let body = text.trim();
  let aer: ParsedTlpText["aer"] = null;
  let prefixText = "";
  const m = AER_RE.exec(body);
  if (m) {
    aer = { flit: m[1] !== undefined };
    body = body.slice(m.index + m[0].length);
    const pi = body.indexOf("E-E Prefixes:");
    if (pi >= 0) {
      prefixText = body.slice(pi + "E-E Prefixes:".length);
      body = body.slice(0, pi);
    }
  }
  const tokens = body.split(/[\s,;]+/).filter((t) => t.length > 0);
  if (tokens.length === 0) throw new InputError("no hex in the input (expected bytes or DWs)", where);
  const bytes: number[] = [];
  const dwords: number[] = [];
  let sawOx = false;
  for (const tok of tokens) {
    if (/^0x[0-9a-f]{1,8}$/i.test(tok)) {
      sawOx = true;
      dwords.push(Number.parseInt(tok.slice(2), 16) >>> 0);
    } else if (/^[0-9a-f]{8}$/i.test(tok)) dwords.push(Number.parseInt(tok, 16) >>> 0);
    else if (/^[0-9a-f]{2}$/i.test(tok)) bytes.push(Number.parseInt(tok, 16));
    else if (/^[0-9a-f]+$/i.test(tok) && tok.length % 2 === 0 && tok.length > 8)
      for (let i = 0; i < tok.length; i += 2) bytes.push(Number.parseInt(tok.slice(i, i + 2), 16));
    else
      throw new InputError(
        `"${tok}" is not a hex byte (2 digits), a DW (8 digits or 0x…) or a run of bytes`,
        where,
      );
  }
  if (bytes.length && dwords.length)
    throw new InputError("the input mixes byte tokens (2 digits) and DW tokens (8 digits / 0x…)", where);
  const prefixDwords: number[] = [];
  for (const tok of prefixText.split(/[\s,;]+/).filter((t) => t.length > 0)) {
    if (!/^(0x)?[0-9a-f]{1,8}$/i.test(tok)) throw new InputError(`E-E prefix "${tok}" is not a DW`, where);
    prefixDwords.push(Number.parseInt(tok.replace(/^0x/i, ""), 16) >>> 0);
  }
  return {
    form: bytes.length ? "bytes" : "dwords",
    bytes: Uint8Array.from(bytes),
    dwords,
    order: aer || sawOx ? "be" : null,
    aer,
    prefixDwords,
  };
}

/** DW values → wire bytes: `be` = value's most significant byte first (AER), `le` = least (analyzers). */
export function dwordsToBytes(dws: number[], order: DwordOrder): Uint8Array {
  const b = new Uint8Array(dws.length * 4);
  for (const [i, v] of dws.entries()) {
    const o = i * 4;
    if (order === "be") {
      b[o] = v >>> 24;
      b[o + 1] = v >>> 16;
      b[o + 2] = v >>> 8;
      b[o + 3] = v;
    } else {
      b[o] = v;
      b[o + 1] = v >>> 8;
      b[o + 2] = v >>> 16;
      b[o + 3] = v >>> 24;
    }
  }
  return b;
}

export function bytesToDwords(b: Uint8Array, order: DwordOrder): number[] {
  const out: number[] = [];
  for (let o = 0; o + 3 < b.length; o += 4)
    out.push(
      order === "be"
        ? ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0
        : ((b[o + 3] << 24) | (b[o + 2] << 16) | (b[o + 1] << 8) | b[o]) >>> 0,
    );
  return out;
}

const h2 = (n: number) => n.toString(16).toUpperCase().padStart(2, "0");
const h8 = (n: number) => n.toString(16).padStart(8, "0");

/** `60 02 00 08 …` */
export function formatWire(b: Uint8Array): string {
  return Array.from(b, h2).join(" ");
}

/** `0x60020008 0x040000f0 …` — the kernel's `%#010x`, which keeps `0x` even for zero (§10). */
export function formatBeDwords(b: Uint8Array): string {
  return bytesToDwords(b, "be")
    .map((v) => `0x${h8(v)}`)
    .join(" ");
}

/** `08000260 F0000004 …` as analyzers print. */
export function formatLeDwords(b: Uint8Array): string {
  return bytesToDwords(b, "le")
    .map((v) => h8(v).toUpperCase())
    .join(" ");
}

/**
 * The AER / DPC header-log line (`drivers/pci/pcie/tlp.c`, §10): NFM `TLP Header:` with the 4
 * header-log DWs (a 3-DW header logs a zero 4th DW) and ` E-E Prefixes:` with the end-to-end
 * prefixes; FM `TLP Header (Flit):` with every header DW including OHC (at least 4).
 */
export function formatAer(t: TlpInput): string {
  const bytes = encodeTlp({ ...t, data: undefined });
  const prefixes = t.prefixes ?? [];
  const hdr = bytesToDwords(bytes.subarray(prefixes.length * 4), "be");
  while (hdr.length < 4) hdr.push(0);
  const dw = (v: number) => `0x${h8(v)}`;
  if (t.mode === "fm") return `TLP Header (Flit): ${hdr.map(dw).join(" ")}`;
  const e2e = prefixes.filter((p) => isNfmE2ePrefix(p.type)).map((p) => ((p.type << 24) | p.body) >>> 0);
  return `TLP Header: ${hdr.map(dw).join(" ")}${e2e.length ? ` E-E Prefixes: ${e2e.map(dw).join(" ")}` : ""}`;
}

export interface TlpForms {
  /** Prefixes and header, byte 0 first. */
  wire: string;
  /** Big-endian DWs (`0x…`). */
  be: string;
  /** Little-endian DWs (analyzer). */
  le: string;
  /** The kernel's AER log line. */
  aer: string;
}

/** The textual forms of a header (prefixes + header; payload not included). */
export function tlpForms(t: TlpInput): TlpForms {
  const bytes = encodeTlp({ ...t, data: undefined });
  return { wire: formatWire(bytes), be: formatBeDwords(bytes), le: formatLeDwords(bytes), aer: formatAer(t) };
}

export interface TextDecodeOptions {
  /** Default `auto`: an AER line says its mode; otherwise the mode that decodes (NFM on a tie). */
  mode?: TlpMode | "auto";
  /** Force the DW order; default: what the text implies, else `be`, else `le` if only that decodes. */
  dwordOrder?: DwordOrder;
  whole?: boolean;
  /** File and line for messages. */
  where?: string;
}

export interface TextDecodeResult {
  tlp: Tlp;
  /** How the text was read. */
  form: "bytes" | "be-dwords" | "le-dwords";
  aer: boolean;
  /** How mode and DW order were chosen. */
  notes: string[];
}

/** Text → decoded TLP, with DW-order and mode detection where unambiguous. */
export function decodeTlpText(text: string, opts: TextDecodeOptions = {}): TextDecodeResult {
  const parsed = parseTlpText(text, opts.where);
  const notes: string[] = [];
  let mode: TlpMode | "auto" = opts.mode ?? "auto";
  if (mode === "auto" && parsed.aer) mode = parsed.aer.flit ? "fm" : "nfm";
  const run = (bytes: Uint8Array): Tlp => {
    if (mode !== "auto") return decodeTlp(bytes, { mode, whole: opts.whole });
    const r = decodeAuto(bytes, { whole: opts.whole });
    if (r.note) notes.push(r.note);
    return r.tlp;
  };
  const withWhere = (e: unknown): never => {
    if (e instanceof TlpDecodeError && opts.where)
      throw new TlpDecodeError(e.offset, e.reason, `${opts.where}: ${e.message}`);
    throw e;
  };
  if (parsed.form === "bytes") {
    try {
      return { tlp: run(parsed.bytes), form: "bytes", aer: false, notes };
    } catch (e) {
      return withWhere(e);
    }
  }
  const order = opts.dwordOrder ?? parsed.order;
  const prefixBytes = dwordsToBytes(parsed.prefixDwords, "be");
  const join = (o: DwordOrder) => {
    const hb = dwordsToBytes(parsed.dwords, o);
    const all = new Uint8Array(prefixBytes.length + hb.length);
    all.set(prefixBytes);
    all.set(hb, prefixBytes.length);
    return all;
  };
  let tlp: Tlp;
  let used: DwordOrder = order ?? "be";
  try {
    tlp = run(join(used));
  } catch (e) {
    if (order !== null || !(e instanceof TlpDecodeError)) return withWhere(e);
    try {
      notes.length = 0;
      tlp = run(join("le"));
      used = "le";
      notes.push(
        `DW order detected as little-endian (analyzer form): as big-endian it does not decode (${e.message}); use --dword-order to force`,
      );
    } catch {
      return withWhere(e);
    }
  }
  if (parsed.aer && tlp.data.length) {
    // The header log holds 4 DWs even for a 3-DW header; what follows the header is not payload.
    const end = tlp.info.prefixBytes + tlp.info.headerBytes;
    tlp = decodeTlp(join(used).subarray(0, end), { mode: tlp.mode });
    notes.push("AER header log: DWs after the header ignored");
  }
  return { tlp, form: used === "be" ? "be-dwords" : "le-dwords", aer: parsed.aer !== null, notes };
}
