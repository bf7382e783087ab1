/**
 * Bulk decoding of a trace: back-to-back whole TLPs (prefixes, header, payload, digest) in wire
 * bytes. A {@link TlpScanner} walks the buffer and exposes the current TLP's main fields as plain
 * numbers on itself (no object per TLP, no bigint); {@link TlpScanner.current} gives the full
 * decoded object for the TLP under the cursor when one is wanted.
 */
import { decodeTlp } from "./decode.js";
import { TlpDecodeError, truncated } from "./errors.js";
import { FM_TYPES, NFM_TYPES, OHC_E_DW, TRAILER_DW } from "./tables.js";
import type { Tlp, TlpKind, TlpMode } from "./types.js";

/** Kind codes used by the scanner (`TlpScanner.kind`). */
export const SCAN_KIND: Readonly<Record<TlpKind, number>> = { mem: 1, io: 2, cfg: 3, cpl: 4, msg: 5, nop: 6 };

const F_HAS_DATA = 1;
const F_POSTED = 2;
const F_ADDR64 = 4;
const F_DW4 = 8;
const KIND_SHIFT = 4;

function flags(
  table: readonly (
    | { code: number; kind: TlpKind; posted: boolean; hasData: boolean; addr64: boolean; baseDw: number }
    | undefined
  )[],
): Uint8Array {
  const f = new Uint8Array(256);
  for (const t of table)
    if (t)
      f[t.code] =
        (SCAN_KIND[t.kind] << KIND_SHIFT) |
        (t.hasData ? F_HAS_DATA : 0) |
        (t.posted ? F_POSTED : 0) |
        (t.addr64 ? F_ADDR64 : 0) |
        (t.baseDw === 4 ? F_DW4 : 0);
  return f;
}

const NFM_FLAGS = flags(NFM_TYPES);
const FM_FLAGS = flags(FM_TYPES);
/** FM OHC[4:0] → OHC bytes. */
const OHC_BYTES = Uint8Array.from(
  { length: 32 },
  (_, o) => 4 * ((o & 1) + ((o >> 1) & 1) + ((o >> 2) & 1) + OHC_E_DW[o >> 3]),
);
const TRAILER_BYTES = Uint8Array.from(TRAILER_DW, (d) => d * 4);

export class TlpScanner {
  /** Byte offset of the current TLP (its first prefix) in the buffer. */
  offset = 0;
  /** Whole TLP: prefixes + header + payload + digest. */
  size = 0;
  prefixCount = 0;
  /** Header incl. FM OHC. */
  headerBytes = 0;
  /** Byte 0 of the header: NFM Fmt/Type, FM Type. */
  typeCode = 0;
  /** {@link SCAN_KIND} */
  kind = 0;
  posted = false;
  lengthDw = 0;
  payloadBytes = 0;
  tc = 0;
  /** Requests: requester; completions: requester (the completer is in `completerId`). */
  requesterId = 0;
  completerId = -1;
  /** -1 when the TLP has no tag (NFM posted write with TH). */
  tag = -1;
  /** Memory/IO requests: address bits 63:32 and 31:0 (DW-aligned), as unsigned numbers. */
  addressHi = 0;
  addressLo = 0;
  /** -1 without TPH. */
  st = -1;
  stBits = 0;
  ph = 0;
  /** The error that stopped the scan, if any. */
  error: TlpDecodeError | null = null;
  private pos = 0;
  private bytes: Uint8Array;

  constructor(
    readonly mode: TlpMode,
    bytes: Uint8Array = new Uint8Array(0),
  ) {
    this.bytes = bytes;
  }

  reset(bytes: Uint8Array, offset = 0): this {
    this.bytes = bytes;
    this.pos = offset;
    this.error = null;
    return this;
  }

  /** Advances to the next TLP. False at the end of the buffer or on an error (see `error`). */
  next(): boolean {
    if (this.error !== null || this.pos >= this.bytes.length) return false;
    return this.mode === "nfm" ? this.nextNfm() : this.nextFm();
  }

  /** The current TLP fully decoded (slow path). */
  current(): Tlp {
    return decodeTlp(this.bytes.subarray(this.offset, this.offset + this.size), {
      mode: this.mode,
      whole: true,
    });
  }

  private fail(e: TlpDecodeError): false {
    this.error = e;
    return false;
  }

  private nextNfm(): boolean {
    const b = this.bytes;
    const n = b.length;
    const start = this.pos;
    let p = start;
    let e2e = 0;
    let ext = -1;
    let pc = 0;
    let c = b[p];
    while ((c & 0xe0) === 0x80) {
      if (n - p < 4) return this.fail(truncated(n, "rest of the prefix"));
      if ((c & 0xf0) === 0x90) {
        if (++e2e > 4) return this.fail(new TlpDecodeError(p, "more than 4 end-to-end prefixes"));
        if (c === 0x90 && ext < 0) ext = b[p + 1];
      }
      p += 4;
      pc++;
      if (p >= n) return this.fail(truncated(p, "header after the prefixes"));
      c = b[p];
    }
    const f = NFM_FLAGS[c];
    if (f === 0)
      return this.fail(new TlpDecodeError(p, `reserved Fmt/Type 0x${c.toString(16).padStart(2, "0")}`));
    const hb = f & F_DW4 ? 16 : 12;
    if (n - p < hb) return this.fail(truncated(n, "rest of the header"));
    const b1 = b[p + 1];
    const b2 = b[p + 2];
    const len = ((b2 & 3) << 8) | b[p + 3] || 1024;
    const pay = f & F_HAS_DATA ? len << 2 : 0;
    const size = p - start + hb + pay + (b2 & 0x80 ? 4 : 0);
    if (start + size > n) return this.fail(truncated(n, "payload / ECRC of the TLP"));
    const kind = f >> KIND_SHIFT;
    const t98 = ((b1 & 0x80) << 2) | ((b1 & 0x08) << 5);
    this.offset = start;
    this.size = size;
    this.prefixCount = pc;
    this.headerBytes = hb;
    this.typeCode = c;
    this.kind = kind;
    this.posted = (f & F_POSTED) !== 0;
    this.lengthDw = len;
    this.payloadBytes = pay;
    this.tc = (b1 >> 4) & 7;
    this.st = -1;
    this.stBits = 0;
    this.ph = 0;
    this.completerId = -1;
    this.addressHi = 0;
    this.addressLo = 0;
    if (kind === 4) {
      this.completerId = (b[p + 4] << 8) | b[p + 5];
      this.requesterId = (b[p + 8] << 8) | b[p + 9];
      this.tag = t98 | b[p + 10];
    } else {
      this.requesterId = (b[p + 4] << 8) | b[p + 5];
      this.tag = t98 | b[p + 6];
      if (kind === 1 || kind === 2) {
        let lo: number;
        if (f & F_ADDR64) {
          this.addressHi = ((b[p + 8] << 24) | (b[p + 9] << 16) | (b[p + 10] << 8) | b[p + 11]) >>> 0;
          lo = (b[p + 12] << 24) | (b[p + 13] << 16) | (b[p + 14] << 8) | b[p + 15];
        } else lo = (b[p + 8] << 24) | (b[p + 9] << 16) | (b[p + 10] << 8) | b[p + 11];
        this.addressLo = (lo & ~3) >>> 0;
        if (kind === 1 && b1 & 1) {
          this.ph = lo & 3;
          if (f & F_POSTED) {
            this.st = b[p + 6];
            this.tag = -1;
          } else this.st = b[p + 7];
          if (ext >= 0) {
            this.st |= ext << 8;
            this.stBits = 16;
          } else this.stBits = 8;
        }
      }
    }
    this.pos = start + size;
    return true;
  }

  private nextFm(): boolean {
    const b = this.bytes;
    const n = b.length;
    const start = this.pos;
    let p = start;
    let pc = 0;
    let c = b[p];
    while (c >= 0x8d && c <= 0x8f) {
      p += 4;
      pc++;
      if (p >= n) return this.fail(truncated(Math.min(p, n), "header base after the local prefixes"));
      c = b[p];
    }
    const f = FM_FLAGS[c];
    if (f === 0)
      return this.fail(new TlpDecodeError(p, `reserved type 0x${c.toString(16).padStart(2, "0")}`));
    const kind = f >> KIND_SHIFT;
    this.offset = start;
    this.prefixCount = pc;
    this.typeCode = c;
    this.kind = kind;
    this.posted = (f & F_POSTED) !== 0;
    this.st = -1;
    this.stBits = 0;
    this.ph = 0;
    this.completerId = -1;
    this.addressHi = 0;
    this.addressLo = 0;
    this.tag = -1;
    this.requesterId = 0;
    if (kind === 6) {
      if (n - p < 4) return this.fail(truncated(n, "rest of the NOP"));
      this.size = p - start + 4;
      this.headerBytes = 4;
      this.lengthDw = 0;
      this.payloadBytes = 0;
      this.tc = 0;
      this.pos = start + this.size;
      return true;
    }
    const base = f & F_DW4 ? 16 : 12;
    if (n - p < 4) return this.fail(truncated(n, "rest of the header base"));
    const b1 = b[p + 1];
    const b2 = b[p + 2];
    const ohc = b1 & 0x1f;
    const hb = base + OHC_BYTES[ohc];
    if (n - p < hb) return this.fail(truncated(n, n - p < base ? "rest of the header base" : "OHC"));
    const len = ((b2 & 3) << 8) | b[p + 3] || 1024;
    const pay = f & F_HAS_DATA ? len << 2 : 0;
    const size = p - start + hb + pay + TRAILER_BYTES[b2 >> 5];
    if (start + size > n) return this.fail(truncated(n, "payload / trailer of the TLP"));
    this.size = size;
    this.headerBytes = hb;
    this.lengthDw = len;
    this.payloadBytes = pay;
    this.tc = b1 >> 5;
    const b6 = b[p + 6];
    this.tag = ((b6 & 0x3f) << 8) | b[p + 7];
    if (kind === 4) {
      this.completerId = (b[p + 4] << 8) | b[p + 5];
      this.requesterId = (b[p + 8] << 8) | b[p + 9];
    } else if (kind === 5) this.tag = -1;
    else {
      this.requesterId = (b[p + 4] << 8) | b[p + 5];
      if (kind === 1 || kind === 2) {
        if (f & F_ADDR64) {
          this.addressHi = ((b[p + 8] << 24) | (b[p + 9] << 16) | (b[p + 10] << 8) | b[p + 11]) >>> 0;
          this.addressLo =
            (((b[p + 12] << 24) | (b[p + 13] << 16) | (b[p + 14] << 8) | b[p + 15]) & ~3) >>> 0;
        } else
          this.addressLo = (((b[p + 8] << 24) | (b[p + 9] << 16) | (b[p + 10] << 8) | b[p + 11]) & ~3) >>> 0;
        if (kind === 1 && ohc & 2) {
          const o = p + base + (ohc & 1 ? 4 : 0);
          const b3 = b[o + 3];
          const hv = (b3 >> 4) & 3;
          if (hv === 1) {
            this.st = b[o + 2];
            this.stBits = 8;
            this.ph = b3 >> 6;
          } else if (hv === 3) {
            this.st = (b[o + 1] << 8) | b[o + 2];
            this.stBits = 16;
            this.ph = b3 >> 6;
          }
        }
      }
    }
    this.pos = start + size;
    return true;
  }
}

export interface TraceStats {
  tlps: number;
  bytes: number;
  payloadBytes: number;
  /** TLPs carrying valid TPH. */
  tph: number;
  /** Count per type name. */
  byType: Record<string, number>;
  /** The error that ended the scan early, if any. */
  error: TlpDecodeError | null;
}

/** Scans a trace of back-to-back TLPs and counts them by type (the fast path). */
export function scanTrace(bytes: Uint8Array, mode: TlpMode): TraceStats {
  const s = new TlpScanner(mode, bytes);
  const counts = new Float64Array(256);
  let tlps = 0;
  let pay = 0;
  let tph = 0;
  let end = 0;
  while (s.next()) {
    tlps++;
    counts[s.typeCode]++;
    pay += s.payloadBytes;
    if (s.st >= 0) tph++;
    end = s.offset + s.size;
  }
  const table = mode === "nfm" ? NFM_TYPES : FM_TYPES;
  const byType: Record<string, number> = {};
  for (let c = 0; c < 256; c++)
    if (counts[c]) byType[table[c]!.name] = (byType[table[c]!.name] ?? 0) + counts[c];
  return { tlps, bytes: end, payloadBytes: pay, tph, byType, error: s.error };
}
