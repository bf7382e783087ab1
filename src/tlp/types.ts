/**
 * TLP header model (tph-and-tlp.md §6, §7). A header is kept as the fields the wire holds, each
 * with exactly its bits, so that encode(decode(bytes)) gives the bytes back; normalised values
 * (full address, tag, byte enables, TPH) are derived into {@link TlpInfo}.
 */

export type TlpMode = "nfm" | "fm";
export type TlpKind = "mem" | "io" | "cfg" | "cpl" | "msg" | "nop";

/** NFM prefix (Fmt 100, §6.2) or FM local prefix (Type 0x8D–0x8F, §7.6): one DW. */
export interface TlpPrefix {
  /** Byte 0: 0x80–0x8F local, 0x90–0x9F end-to-end (NFM); 0x8D–0x8F (FM). */
  type: number;
  /** Bytes 1–3 as one 24-bit big-endian value (ExtTPH: ST[15:8] in bits 23:16). */
  body: number;
}

/** TPH as a non-flit header carries it (TH = 1): ST[7:0] (byte 6 or 7) and PH (address bits 1:0). */
export interface NfmTph {
  st: number;
  ph: number;
}

interface NfmBase {
  /** Byte 0: Fmt[2:0] and Type[4:0]. */
  fmtType: number;
  tc: number;
  /** Attr[2:0]: bit 2 IDO, bit 1 RO, bit 0 NS. */
  attr: number;
  td: boolean;
  ep: boolean;
  /** Length in DW, 1..1024 (the field's 0 means 1024). */
  length: number;
}

/** MRd, MRdLk, MWr, AtomicOps, DMWr (§6.2). */
export interface NfmMemHeader extends NfmBase {
  kind: "mem";
  at: number;
  requesterId: number;
  /** 10-bit tag (T9, T8, byte 6); null for a posted request with TH, whose byte 6 is ST[7:0]. */
  tag: number | null;
  /** Byte 7; null for a non-posted request with TH, whose byte 7 is ST[7:0] (byte enables implied). */
  firstBe: number | null;
  lastBe: number | null;
  /** DW-aligned; 32-bit formats < 2^32. */
  address: bigint;
  /** TH = 1 when present. */
  tph: NfmTph | null;
}

export interface NfmIoHeader extends NfmBase {
  kind: "io";
  requesterId: number;
  tag: number;
  firstBe: number;
  lastBe: number;
  address: bigint;
}

export interface NfmCfgHeader extends NfmBase {
  kind: "cfg";
  requesterId: number;
  tag: number;
  firstBe: number;
  lastBe: number;
  /** Bus[15:8], device[7:3], function[2:0] of the target. */
  targetId: number;
  /** Byte offset of the DW: Extended Register Number (bits 11:8) and Register Number (bits 7:2). */
  register: number;
}

/** §6.3 */
export interface NfmCplHeader extends NfmBase {
  kind: "cpl";
  completerId: number;
  status: number;
  bcm: boolean;
  /** 1..4096 (the field's 0 means 4096). */
  byteCount: number;
  requesterId: number;
  tag: number;
  lowerAddress: number;
}

export interface NfmMsgHeader extends NfmBase {
  kind: "msg";
  requesterId: number;
  tag: number;
  messageCode: number;
  /** Bytes 8–11 and 12–15, routing-dependent; kept raw. */
  dw2: number;
  dw3: number;
}

export type NfmHeader = NfmMemHeader | NfmIoHeader | NfmCfgHeader | NfmCplHeader | NfmMsgHeader;

/** OHC-A1: memory requests (§7.4). */
export interface OhcA1 {
  format: "A1";
  nw: boolean;
  pv: boolean;
  pmr: boolean;
  er: boolean;
  pasid: number;
  lastBe: number;
  firstBe: number;
}

/** OHC-A5: completions (§7.4). */
export interface OhcA5 {
  format: "A5";
  destSegment: number;
  completerSegment: number;
  dsv: boolean;
  /** Lower Address[1:0]. */
  lowerAddress: number;
  status: number;
}

/** OHC-A2 (IO), OHC-A3 (configuration), OHC-A4 (messages): kept as the raw DW value. */
export interface OhcARaw {
  format: "A2" | "A3" | "A4";
  raw: number;
}

export type OhcA = OhcA1 | OhcA5 | OhcARaw;

/** OHC-B: byte 0 reserved, ST[15:8], ST[7:0], PH/HV/AMA/AV (§7.4). Raw: HV decides what is valid. */
export interface OhcB {
  st: number;
  ph: number;
  hv: number;
  ama: number;
  av: boolean;
}

export interface OhcC {
  requesterSegment: number;
  prSentCounter: number;
  streamId: number;
  subStream: number;
  rsv: boolean;
  k: boolean;
  t: boolean;
}

interface FmBase {
  /** Type[7:0]. */
  type: number;
  tc: number;
  /** Trailer size code TS[2:0]. */
  ts: number;
  /** Attr[2:0]: bit 2 IDO, bit 1 RO, bit 0 NS. */
  attr: number;
  /** Length in DW, 1..1024. */
  length: number;
  ohcA: OhcA | null;
  ohcB: OhcB | null;
  ohcC: OhcC | null;
  /** OHC-E: 1, 2 or 4 raw DWs. */
  ohcE: number[] | null;
}

/** §7.3, and the UIO memory requests. */
export interface FmMemHeader extends FmBase {
  kind: "mem";
  requesterId: number;
  ep: boolean;
  /** 14-bit tag. */
  tag: number;
  /** DW-aligned (bits 1:0 of the last address DW are AT). */
  address: bigint;
  at: number;
}

export interface FmIoHeader extends FmBase {
  kind: "io";
  requesterId: number;
  ep: boolean;
  tag: number;
  address: bigint;
}

/** DW2 laid out as in NFM (target ID, register); not verified against the 6.x text (§13). */
export interface FmCfgHeader extends FmBase {
  kind: "cfg";
  requesterId: number;
  ep: boolean;
  tag: number;
  targetId: number;
  register: number;
}

/** §7.5, and the UIO completions. */
export interface FmCplHeader extends FmBase {
  kind: "cpl";
  completerId: number;
  ep: boolean;
  tag: number;
  requesterId: number;
  /** Lower Address[6:2] as an address (bits 1:0 are zero here; they travel in OHC-A5). */
  lowerAddress: number;
  byteCount: number;
}

/** Messages: DWs 1..3 of the base kept raw. */
export interface FmMsgHeader extends FmBase {
  kind: "msg";
  dws: number[];
}

export interface FmNopHeader {
  kind: "nop";
  type: 0;
}

export type FmHeader = FmMemHeader | FmIoHeader | FmCfgHeader | FmCplHeader | FmMsgHeader | FmNopHeader;

/** Reserved bits found set (decode) or to set (encode), by byte offset from the first prefix byte. */
export interface ReservedBits {
  offset: number;
  bits: number;
}

interface TlpInputBase {
  prefixes?: TlpPrefix[];
  /** Bytes after the header as given (payload, then ECRC / trailer), kept raw. */
  data?: Uint8Array;
  reserved?: ReservedBits[];
}

export interface NfmTlpInput extends TlpInputBase {
  mode: "nfm";
  header: NfmHeader;
}

export interface FmTlpInput extends TlpInputBase {
  mode: "fm";
  header: FmHeader;
}

/** What {@link encodeTlp} takes. */
export type TlpInput = NfmTlpInput | FmTlpInput;

/** TPH normalised across modes (§11). */
export interface Tph {
  st: number;
  stBits: 8 | 16;
  ph: number;
}

/** Values derived from the header fields. */
export interface TlpInfo {
  name: string;
  description: string;
  kind: TlpKind;
  /** Byte 0 (NFM Fmt/Type, FM Type). */
  typeCode: number;
  /** NFM only. */
  fmt: number | null;
  type5: number | null;
  posted: boolean;
  hasData: boolean;
  addressBits: 32 | 64 | null;
  address: bigint | null;
  tag: number | null;
  byteEnables: { first: number; last: number; implied: boolean } | null;
  tph: Tph | null;
  /** FM: OHC-B present with HV = 10 ("reserved, treated as not valid"). */
  hvReserved: boolean;
  /** Completions: status and full Lower Address (FM: from the base and OHC-A5). */
  status: number | null;
  lowerAddress: number | null;
  /** FM OHC[4:0]. */
  ohc: number | null;
  lengthDw: number;
  prefixBytes: number;
  /** Header including FM OHC, excluding prefixes. */
  headerBytes: number;
  payloadBytes: number;
  /** NFM ECRC (TD) or FM trailer (TS). */
  digestBytes: number;
  totalBytes: number;
}

/** A decoded TLP: the input fields (with defaults filled in) plus derived info and notes. */
export type Tlp = TlpInput & {
  prefixes: TlpPrefix[];
  data: Uint8Array;
  reserved: ReservedBits[];
  info: TlpInfo;
  notes: string[];
};
