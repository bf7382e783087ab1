/**
 * Builds a header from what a user means ("an MWr of 8 DW to this address with ST 0xF0 PH 2,
 * flit mode") rather than from wire fields: picks the 32/64-bit type, places TPH per mode (§6.2,
 * §7.4, §8), fills implied byte enables, adds the OHCs a type needs. Conflicts are
 * {@link TlpEncodeError}s that say what to change.
 */
import { TlpEncodeError } from "./errors.js";
import { FM_TYPES, impliedBe, NFM_TYPES, type TlpTypeInfo } from "./tables.js";
import type { FmHeader, NfmHeader, OhcA, OhcB, OhcC, TlpInput, TlpMode, TlpPrefix } from "./types.js";

export interface TlpParams {
  mode: TlpMode;
  /**
   * A type name (`MWr`, `MRd64`, `CplD`, `FetchAdd`, `Msg`, `NOP`, …; without 32/64 the address
   * decides) or a type code (NFM Fmt/Type byte, FM Type).
   */
  type: string | number;
  address?: bigint;
  /** DW, default 1. */
  length?: number;
  requesterId?: number;
  completerId?: number;
  /** Configuration requests: the target's routing ID. */
  targetId?: number;
  tag?: number;
  tc?: number;
  /** bit 2 IDO, bit 1 RO, bit 0 NS */
  attr?: number;
  at?: number;
  ep?: boolean;
  /** NFM TD = 1; FM TS = 001. */
  ecrc?: boolean;
  /** FM trailer size code (overrides `ecrc`). */
  ts?: number;
  st?: number;
  ph?: number;
  /** 8 (default when ST fits) or 16 (NFM: ExtTPH prefix; FM: HV 11). */
  stBits?: 8 | 16;
  /** FM: OHC-B HV override (e.g. 2 to build the reserved value). */
  hv?: number;
  firstBe?: number;
  lastBe?: number;
  /** FM: OHCs to include even when not needed, letters of "abc". */
  ohc?: string;
  /** FM OHC-A1 PASID (sets PV). */
  pasid?: number;
  /** Completions. */
  status?: number;
  byteCount?: number;
  lowerAddress?: number;
  bcm?: boolean;
  /** NFM messages. */
  messageCode?: number;
  /** Configuration register byte offset. */
  register?: number;
  /** FM posted writes with TPH and no tag given: Tag = ST[7:0] (default) or 0 (§8). */
  fmPostedTagPolicy?: "mirror-st" | "zero";
}

const hx = (n: number | bigint) => `0x${n.toString(16)}`;

const SIZED = ["MRd", "MRdLk", "MWr", "FetchAdd", "Swap", "CAS", "DMWr"];

/** Resolves a type name or code for a mode. */
export function resolveType(mode: TlpMode, type: string | number, address?: bigint): TlpTypeInfo {
  const table = mode === "nfm" ? NFM_TYPES : FM_TYPES;
  if (typeof type === "number") {
    const ti = Number.isInteger(type) && type >= 0 && type <= 255 ? table[type] : undefined;
    if (!ti)
      throw new TlpEncodeError(
        "type",
        `${hx(type)} is not a ${mode === "nfm" ? "non-flit Fmt/Type" : "flit-mode Type"} code`,
      );
    return ti;
  }
  const want = type.trim().toLowerCase();
  let name = want;
  const base = SIZED.find((s) => s.toLowerCase() === want);
  if (base) name = `${base}${address !== undefined && address >= 1n << 32n ? 64 : 32}`.toLowerCase();
  for (const ti of table) if (ti && ti.name.toLowerCase() === name) return ti;
  const names = [...new Set(table.filter((x) => x).map((x) => x!.name))].join(", ");
  throw new TlpEncodeError(
    "type",
    `"${type}" is not a ${mode === "nfm" ? "non-flit" : "flit-mode"} TLP type (${names})`,
  );
}

/** Semantic parameters → a header {@link encodeTlp} takes. */
export function buildTlp(p: TlpParams): TlpInput {
  if (p.mode !== "nfm" && p.mode !== "fm") throw new TlpEncodeError("mode", `"${p.mode}" is not nfm or fm`);
  const ti = resolveType(p.mode, p.type, p.address);
  const length = p.length ?? 1;
  const hasTph = p.st !== undefined || p.ph !== undefined;
  const st = p.st ?? 0;
  const ph = p.ph ?? 0;
  if (hasTph && !ti.tph)
    throw new TlpEncodeError(
      "st",
      `TPH applies to memory requests (MRd, MWr, AtomicOps, DMWr), not ${ti.name}`,
    );
  if (!Number.isInteger(st) || st < 0 || st > 0xffff)
    throw new TlpEncodeError("st", `${st} is not in 0..0xffff`);
  const stBits = p.stBits ?? (st > 0xff ? 16 : 8);
  if (stBits === 8 && st > 0xff)
    throw new TlpEncodeError("st", `${hx(st)} does not fit 8 bits (use a 16-bit ST)`);
  const ohc = (p.ohc ?? "").toLowerCase();
  if (!/^[abc]*$/.test(ohc)) throw new TlpEncodeError("ohc", `"${p.ohc}" is not letters of "abc"`);
  if (p.mode === "nfm" && ohc) throw new TlpEncodeError("ohc", "OHCs exist only in flit mode");
  if (ti.kind === "mem" || ti.kind === "io") {
    if (p.address === undefined) throw new TlpEncodeError("address", `${ti.name} needs an address`);
    if (p.address & 3n) throw new TlpEncodeError("address", `${hx(p.address)} is not DW-aligned`);
    if (!ti.addr64 && p.address >= 1n << 32n)
      throw new TlpEncodeError(
        "address",
        `${hx(p.address)} does not fit ${ti.name}'s 32-bit address (use the 64-bit type)`,
      );
  }
  const imp = impliedBe(length);
  const beGiven = p.firstBe !== undefined || p.lastBe !== undefined;
  const firstBe = p.firstBe ?? imp.first;
  const lastBe = p.lastBe ?? imp.last;
  const beExplicit = firstBe !== imp.first || lastBe !== imp.last;
  const common = { tc: p.tc ?? 0, attr: p.attr ?? 0, length };
  const requesterId = p.requesterId ?? 0;
  return p.mode === "nfm"
    ? buildNfm(p, ti, { common, requesterId, hasTph, st, ph, stBits, firstBe, lastBe, beGiven, beExplicit })
    : buildFm(p, ti, { common, requesterId, hasTph, st, ph, stBits, firstBe, lastBe, beExplicit, ohc });
}

interface Shared {
  common: { tc: number; attr: number; length: number };
  requesterId: number;
  hasTph: boolean;
  st: number;
  ph: number;
  stBits: 8 | 16;
  firstBe: number;
  lastBe: number;
  beExplicit: boolean;
}

function buildNfm(p: TlpParams, ti: TlpTypeInfo, s: Shared & { beGiven: boolean }): TlpInput {
  if (p.ts !== undefined) throw new TlpEncodeError("ts", "TS exists only in flit mode (use ecrc for TD)");
  if (p.pasid !== undefined) throw new TlpEncodeError("pasid", "a PASID prefix is not built by this model");
  const base = { fmtType: ti.code, ...s.common, td: p.ecrc ?? false, ep: p.ep ?? false };
  const prefixes: TlpPrefix[] = [];
  let header: NfmHeader;
  switch (ti.kind) {
    case "mem": {
      let tag: number | null = p.tag ?? 0;
      let firstBe: number | null = s.firstBe;
      let lastBe: number | null = s.lastBe;
      if (s.hasTph && ti.posted) {
        if (p.tag !== undefined && p.tag !== (s.st & 0xff))
          throw new TlpEncodeError(
            "tag",
            `${hx(p.tag)}: a non-flit posted write with TPH carries ST[7:0] (${hx(s.st & 0xff)}) in the tag byte; omit the tag or make it equal`,
          );
        tag = null;
      }
      if (s.hasTph && !ti.posted) {
        if (s.beGiven && s.beExplicit)
          throw new TlpEncodeError(
            "firstBe",
            "a non-flit non-posted request with TPH carries ST[7:0] in the byte-enable byte, so its byte enables are implied (all bytes); use flit mode with OHC-A1 or drop TPH",
          );
        firstBe = null;
        lastBe = null;
      }
      if (s.hasTph && s.stBits === 16) prefixes.push({ type: 0x90, body: ((s.st >> 8) & 0xff) << 16 });
      header = {
        kind: "mem",
        ...base,
        at: p.at ?? 0,
        requesterId: s.requesterId,
        tag,
        firstBe,
        lastBe,
        address: p.address!,
        tph: s.hasTph ? { st: s.st & 0xff, ph: s.ph } : null,
      };
      break;
    }
    case "io":
      header = {
        kind: "io",
        ...base,
        requesterId: s.requesterId,
        tag: p.tag ?? 0,
        firstBe: s.firstBe,
        lastBe: s.lastBe,
        address: p.address!,
      };
      break;
    case "cfg":
      header = {
        kind: "cfg",
        ...base,
        requesterId: s.requesterId,
        tag: p.tag ?? 0,
        firstBe: s.firstBe,
        lastBe: s.lastBe,
        targetId: p.targetId ?? 0,
        register: p.register ?? 0,
      };
      break;
    case "cpl":
      header = {
        kind: "cpl",
        ...base,
        completerId: p.completerId ?? 0,
        status: p.status ?? 0,
        bcm: p.bcm ?? false,
        byteCount: p.byteCount ?? (ti.hasData ? s.common.length * 4 : 4),
        requesterId: s.requesterId,
        tag: p.tag ?? 0,
        lowerAddress: p.lowerAddress ?? 0,
      };
      break;
    case "msg":
      header = {
        kind: "msg",
        ...base,
        requesterId: s.requesterId,
        tag: p.tag ?? 0,
        messageCode: p.messageCode ?? 0,
        dw2: 0,
        dw3: 0,
      };
      break;
    default:
      throw new TlpEncodeError("type", `${ti.name} exists only in flit mode`);
  }
  return { mode: "nfm", prefixes, header };
}

function buildFm(p: TlpParams, ti: TlpTypeInfo, s: Shared & { ohc: string }): TlpInput {
  if (p.bcm) throw new TlpEncodeError("bcm", "BCM does not exist in flit mode");
  if (ti.kind === "nop") return { mode: "fm", header: { kind: "nop", type: 0 } };
  const ts = p.ts ?? (p.ecrc ? 1 : 0);
  let ohcA: OhcA | null = null;
  let ohcB: OhcB | null = null;
  const ohcC: OhcC | null = s.ohc.includes("c")
    ? { requesterSegment: 0, prSentCounter: 0, streamId: 0, subStream: 7, rsv: false, k: false, t: false }
    : null;
  if (s.ohc.includes("b") || s.hasTph) {
    const hv = p.hv ?? (s.hasTph ? (s.stBits === 16 ? 3 : 1) : 0);
    ohcB = { st: s.st, ph: s.ph, hv, ama: 0, av: false };
  }
  const base = { type: ti.code, ...s.common, ts, ohcC, ohcE: null };
  const ep = p.ep ?? false;
  let header: FmHeader;
  switch (ti.kind) {
    case "mem": {
      if (s.ohc.includes("a") || s.beExplicit || p.pasid !== undefined)
        ohcA = {
          format: "A1",
          nw: false,
          pv: p.pasid !== undefined,
          pmr: false,
          er: false,
          pasid: p.pasid ?? 0,
          lastBe: s.lastBe,
          firstBe: s.firstBe,
        };
      const mirror = ti.posted && s.hasTph && (p.fmPostedTagPolicy ?? "mirror-st") === "mirror-st";
      header = {
        kind: "mem",
        ...base,
        ohcA,
        ohcB,
        requesterId: s.requesterId,
        ep,
        tag: p.tag ?? (mirror ? s.st & 0xff : 0),
        address: p.address!,
        at: p.at ?? 0,
      };
      break;
    }
    case "io":
      // OHC-A2 is mandatory for IO requests; its byte-enable placement (byte 3) is assumed like OHC-A1's.
      ohcA = { format: "A2", raw: (s.lastBe << 4) | s.firstBe };
      header = {
        kind: "io",
        ...base,
        ohcA,
        ohcB,
        requesterId: s.requesterId,
        ep,
        tag: p.tag ?? 0,
        address: p.address!,
      };
      break;
    case "cfg":
      // OHC-A3 is mandatory; byte enables assumed in byte 3 as in OHC-A1.
      ohcA = { format: "A3", raw: (s.lastBe << 4) | s.firstBe };
      header = {
        kind: "cfg",
        ...base,
        ohcA,
        ohcB,
        requesterId: s.requesterId,
        ep,
        tag: p.tag ?? 0,
        targetId: p.targetId ?? 0,
        register: p.register ?? 0,
      };
      break;
    case "cpl": {
      const la = p.lowerAddress ?? 0;
      const status = p.status ?? 0;
      if (s.ohc.includes("a") || status !== 0 || la & 3)
        ohcA = {
          format: "A5",
          destSegment: 0,
          completerSegment: 0,
          dsv: false,
          lowerAddress: la & 3,
          status,
        };
      header = {
        kind: "cpl",
        ...base,
        ohcA,
        ohcB,
        completerId: p.completerId ?? 0,
        ep,
        tag: p.tag ?? 0,
        requesterId: s.requesterId,
        lowerAddress: la & 0x7c,
        byteCount: p.byteCount ?? (ti.hasData ? s.common.length * 4 : 4),
      };
      break;
    }
    default:
      if (p.messageCode !== undefined)
        throw new TlpEncodeError(
          "messageCode",
          "flit-mode message fields beyond the header base are not modelled",
        );
      header = {
        kind: "msg",
        ...base,
        ohcA: s.ohc.includes("a") ? { format: "A4", raw: 0 } : null,
        ohcB,
        dws: [(s.requesterId << 16) >>> 0, 0, 0],
      };
  }
  return { mode: "fm", header };
}
