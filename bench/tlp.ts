/**
 * TLP trace decode rate: a 64 MiB trace of mixed whole flit-mode TLPs (TPH writes, reads,
 * completions, messages; ~150 B average) scanned with the codec's bulk path, beside a Buffer.copy
 * of the same bytes timed in the same run (issue target: ≥ 1 GB/s and ≥ 10 % of the copy).
 */
import { performance } from "node:perf_hooks";
import {
  buildTlp,
  decodeTlp,
  encodeTlp,
  type TlpMode,
  type TlpParams,
  TlpScanner,
} from "../src/tlp/index.js";

const MiB = 1 << 20;

/** A whole TLP (header + payload + digest) built from parameters. */
function wholeTlp(p: TlpParams): Uint8Array {
  const header = buildTlp(p);
  const h = decodeTlp(encodeTlp(header), { mode: p.mode });
  const data = new Uint8Array(h.info.payloadBytes + h.info.digestBytes);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
  return encodeTlp({ ...header, data });
}

/** Weighted templates of a DMA-heavy mix, varied in address/tag/ST. */
function templates(mode: TlpMode): { tlp: Uint8Array; weight: number }[] {
  const out: { tlp: Uint8Array; weight: number }[] = [];
  for (let v = 0; v < 16; v++) {
    const a64 = 0x20e0_0600_0000n + BigInt(v) * 0x1000n;
    const rid = 0x0400 | v;
    out.push(
      {
        tlp: wholeTlp({ mode, type: "MWr", address: a64, length: 64, requesterId: rid, st: 0xf0 - v, ph: 2 }),
        weight: 28,
      },
      {
        tlp: wholeTlp({ mode, type: "MWr", address: a64, length: 32, requesterId: rid, tag: v }),
        weight: 10,
      },
      {
        tlp: wholeTlp({
          mode,
          type: "MRd",
          address: a64,
          length: 64,
          requesterId: rid,
          tag: 0x20 + v,
          st: 0x10 + v,
          ph: 1,
        }),
        weight: 20,
      },
      {
        tlp: wholeTlp({
          mode,
          type: "MRd",
          address: 0xfe00_0000n + BigInt(v * 64),
          length: 1,
          requesterId: rid,
          tag: v,
        }),
        weight: 10,
      },
      {
        tlp: wholeTlp({
          mode,
          type: "CplD",
          length: 64,
          completerId: 0x4100,
          requesterId: rid,
          tag: 0x20 + v,
          byteCount: 256,
        }),
        weight: 20,
      },
      {
        tlp: wholeTlp({
          mode,
          type: "Cpl",
          completerId: 0x4100,
          requesterId: rid,
          tag: v,
          status: 1,
          byteCount: 4,
        }),
        weight: 2,
      },
      {
        tlp: wholeTlp({
          mode,
          type: "MWr",
          address: 0xfee0_0000n,
          length: 1,
          requesterId: rid,
          firstBe: 0x3,
          lastBe: 0,
        }),
        weight: 5,
      },
      { tlp: wholeTlp({ mode, type: "Msg", requesterId: rid }), weight: 5 },
    );
  }
  return out;
}

/** Back-to-back TLPs up to `bytes`, picked by weight with a fixed-seed generator. */
export function buildTrace(mode: TlpMode, bytes: number): { trace: Uint8Array; tlps: number } {
  const t = templates(mode);
  const total = t.reduce((n, x) => n + x.weight, 0);
  const trace = new Uint8Array(bytes);
  let o = 0;
  let seed = 0x12345678;
  let tlps = 0;
  for (;;) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    let r = (seed >>> 8) % total;
    let k = 0;
    while (r >= t[k].weight) r -= t[k++].weight;
    const x = t[k].tlp;
    if (o + x.length > bytes) break;
    trace.set(x, o);
    o += x.length;
    tlps++;
  }
  return { trace: trace.subarray(0, o), tlps };
}

function best(runs: number, body: () => void): number {
  let ms = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    body();
    ms = Math.min(ms, performance.now() - t0);
  }
  return ms;
}

/** Decodes the trace with the bulk scanner, reading every field it exposes. Returns a checksum. */
function scan(s: TlpScanner, trace: Uint8Array): number {
  s.reset(trace);
  let acc = 0;
  while (s.next())
    acc =
      (acc + s.typeCode + s.lengthDw + s.requesterId + s.tag + s.st + s.ph + s.addressLo + s.addressHi) | 0;
  if (s.error) throw s.error;
  return acc;
}

export interface TlpBenchResult {
  /** Trace bytes decoded per second by the bulk scanner. */
  bytesPerSec: number;
  /** Buffer.copy of the same bytes, same run. */
  copyBytesPerSec: number;
  bytes: number;
  tlps: number;
  tlpsPerSec: number;
  /** The same mix in non-flit mode. */
  nfmBytesPerSec: number;
}

export function benchTlpDecode(): TlpBenchResult {
  const { trace, tlps } = buildTrace("fm", 64 * MiB);
  const s = new TlpScanner("fm");
  scan(s, trace); // warm-up
  let sink = 0;
  const ms = best(5, () => {
    sink ^= scan(s, trace);
  });
  const src = Buffer.from(trace.buffer, trace.byteOffset, trace.length);
  const dst = Buffer.allocUnsafe(trace.length);
  src.copy(dst);
  const copyMs = best(5, () => {
    src.copy(dst);
  });
  const nfm = buildTrace("nfm", 64 * MiB);
  const sn = new TlpScanner("nfm");
  scan(sn, nfm.trace);
  const nfmMs = best(5, () => {
    sink ^= scan(sn, nfm.trace);
  });
  if (sink === 0x7fffffff) process.stdout.write(""); // keep the checksum alive
  return {
    bytesPerSec: trace.length / (ms / 1000),
    copyBytesPerSec: trace.length / (copyMs / 1000),
    bytes: trace.length,
    tlps,
    tlpsPerSec: tlps / (ms / 1000),
    nfmBytesPerSec: nfm.trace.length / (nfmMs / 1000),
  };
}
