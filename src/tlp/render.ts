/**
 * Human and machine renderings of a decoded TLP: one line per field with its byte, bits, value and
 * meaning (like an analyzer's detail pane and the table of tph-and-tlp.md §9), an analyzer-style
 * summary line, and a JSON object.
 */
import {
  AT_NAME,
  CPL_STATUS,
  CPL_STATUS_LONG,
  fmPrefixName,
  formatRid,
  HV_NAME,
  MESSAGE_CODES,
  messageRouting,
  nfmPrefixName,
  PH_NAME,
  TRAILER_NAME,
} from "./tables.js";
import { tlpForms } from "./text.js";
import type { Tlp } from "./types.js";

export interface FieldRow {
  /** `prefix 0` for prefixes, else the header byte(s), byte 0 = first header byte (§0). */
  bytes: string;
  bits: string;
  field: string;
  value: string;
  meaning: string;
}

const hx = (n: number | bigint, w = 0) => `0x${n.toString(16).padStart(w, "0")}`;
const bn = (n: number, w: number) => `0b${n.toString(2).padStart(w, "0")}`;
const yn = (b: boolean) => (b ? "1" : "0");

function attrMeaning(a: number): string {
  return `IDO ${(a >> 2) & 1}, RO ${(a >> 1) & 1}, NS ${a & 1}`;
}

const addrBytes = (addr64: boolean) => (addr64 ? "8–15" : "8–11");

/** Every field of the header, in wire order. */
export function describeTlp(t: Tlp): FieldRow[] {
  const rows: FieldRow[] = [];
  const r = (bytes: string, bits: string, field: string, value: string, meaning = "") =>
    rows.push({ bytes, bits, field, value, meaning });
  const i = t.info;
  for (const [k, p] of t.prefixes.entries()) {
    const name = t.mode === "nfm" ? nfmPrefixName(p.type) : fmPrefixName(p.type);
    r(
      `prefix ${k}`,
      "31:0",
      `Prefix ${name}`,
      hx(((p.type << 24) | p.body) >>> 0, 8),
      p.type === 0x90 && t.mode === "nfm" ? `ST[15:8] = ${hx(p.body >> 16, 2)}` : "",
    );
  }
  if (t.mode === "nfm") {
    const h = t.header;
    r(
      "0",
      "7:5",
      "Fmt",
      bn(h.fmtType >> 5, 3),
      `${i.addressBits === 64 || h.kind === "msg" ? "4" : "3"} DW header, ${i.hasData ? "with" : "no"} data`,
    );
    r("0", "4:0", "Type", bn(h.fmtType & 31, 5), `${i.name}: ${i.description}`);
    const tagged = h.kind !== "mem" || h.tag !== null;
    const tag = tagged ? (h.tag ?? 0) : 0;
    r(
      "1",
      "7",
      "T9",
      tagged ? String((tag >> 9) & 1) : "0",
      tagged ? "Tag[9]" : "reserved (posted request with TH)",
    );
    r("1", "6:4", "TC", String(h.tc));
    r(
      "1",
      "3",
      "T8",
      tagged ? String((tag >> 8) & 1) : "0",
      tagged ? "Tag[8]" : "reserved (posted request with TH)",
    );
    r("1", "2", "Attr[2]", String(h.attr >> 2), "ID-Based Ordering");
    r(
      "1",
      "0",
      "TH",
      h.kind === "mem" && h.tph ? "1" : "0",
      h.kind === "mem" && h.tph ? "TPH present" : "no TPH",
    );
    r("2", "7", "TD", yn(h.td), h.td ? "ECRC present" : "no ECRC");
    r("2", "6", "EP", yn(h.ep), h.ep ? "poisoned" : "not poisoned");
    r("2", "5:4", "Attr[1:0]", bn(h.attr & 3, 2), `RO ${(h.attr >> 1) & 1}, NS ${h.attr & 1}`);
    if (h.kind === "mem") r("2", "3:2", "AT", bn(h.at, 2), AT_NAME[h.at]);
    r(
      "2–3",
      "9:0",
      "Length",
      hx(h.length & 0x3ff, 3),
      `${h.length} DW${i.hasData ? ` = ${i.payloadBytes} payload bytes` : ""}`,
    );
    switch (h.kind) {
      case "mem": {
        r("4–5", "15:0", "Requester ID", hx(h.requesterId, 4), formatRid(h.requesterId));
        if (h.tag === null)
          r("6", "7:0", "ST[7:0]", hx(h.tph!.st, 2), "steering tag (posted request with TH: no tag)");
        else r("6", "7:0", "Tag[7:0]", hx(h.tag & 0xff, 2), `Tag = ${hx(h.tag, 3)}`);
        if (h.firstBe === null)
          r("7", "7:0", "ST[7:0]", hx(h.tph!.st, 2), "steering tag (byte enables implied)");
        else {
          r("7", "7:4", "Last DW BE", bn(h.lastBe!, 4));
          r("7", "3:0", "First DW BE", bn(h.firstBe, 4));
        }
        r(
          addrBytes(i.addressBits === 64),
          i.addressBits === 64 ? "63:2" : "31:2",
          "Address",
          hx(h.address, i.addressBits === 64 ? 16 : 8),
        );
        if (h.tph) r(i.addressBits === 64 ? "15" : "11", "1:0", "PH", bn(h.tph.ph, 2), PH_NAME[h.tph.ph]);
        break;
      }
      case "io":
      case "cfg":
        r("4–5", "15:0", "Requester ID", hx(h.requesterId, 4), formatRid(h.requesterId));
        r("6", "7:0", "Tag[7:0]", hx(h.tag & 0xff, 2), `Tag = ${hx(h.tag, 3)}`);
        r("7", "7:4", "Last DW BE", bn(h.lastBe, 4));
        r("7", "3:0", "First DW BE", bn(h.firstBe, 4));
        if (h.kind === "io") r("8–11", "31:2", "Address", hx(h.address, 8));
        else {
          r("8–9", "15:0", "Target ID", hx(h.targetId, 4), formatRid(h.targetId));
          r(
            "10–11",
            "11:2",
            "Register",
            hx(h.register, 3),
            `ext. register ${h.register >> 8}, register ${(h.register & 0xff) >> 2}`,
          );
        }
        break;
      case "cpl":
        r("4–5", "15:0", "Completer ID", hx(h.completerId, 4), formatRid(h.completerId));
        r("6", "7:5", "Status", bn(h.status, 3), `${CPL_STATUS[h.status]}: ${CPL_STATUS_LONG[h.status]}`);
        r("6", "4", "BCM", yn(h.bcm));
        r("6–7", "11:0", "Byte Count", hx(h.byteCount & 0xfff, 3), `${h.byteCount} bytes`);
        r("8–9", "15:0", "Requester ID", hx(h.requesterId, 4), formatRid(h.requesterId));
        r("10", "7:0", "Tag[7:0]", hx(h.tag & 0xff, 2), `Tag = ${hx(h.tag, 3)}`);
        r("11", "6:0", "Lower Address", hx(h.lowerAddress, 2));
        break;
      case "msg":
        r("0", "2:0", "Routing", bn(h.fmtType & 7, 3), messageRouting(h.fmtType));
        r("4–5", "15:0", "Requester ID", hx(h.requesterId, 4), formatRid(h.requesterId));
        r("6", "7:0", "Tag[7:0]", hx(h.tag & 0xff, 2));
        r("7", "7:0", "Message Code", hx(h.messageCode, 2), MESSAGE_CODES[h.messageCode] ?? "");
        r("8–11", "31:0", "DW2", hx(h.dw2, 8), "routing-dependent");
        r("12–15", "31:0", "DW3", hx(h.dw3, 8), "routing-dependent");
        break;
    }
  } else {
    const h = t.header;
    r("0", "7:0", "Type", hx(h.type, 2), `${i.name}: ${i.description}`);
    if (h.kind === "nop") return rows;
    const ohcNames = [
      h.ohcA ? `OHC-${h.ohcA.format}` : "",
      h.ohcB ? "OHC-B" : "",
      h.ohcC ? "OHC-C" : "",
      h.ohcE ? `OHC-E (${h.ohcE.length} DW)` : "",
    ]
      .filter((x) => x)
      .join(", ");
    r("1", "7:5", "TC", String(h.tc));
    r("1", "4:0", "OHC", bn(i.ohc ?? 0, 5), ohcNames || "none");
    r("2", "7:5", "TS", bn(h.ts, 3), TRAILER_NAME[h.ts]);
    r("2", "4:2", "Attr", bn(h.attr, 3), attrMeaning(h.attr));
    r(
      "2–3",
      "9:0",
      "Length",
      hx(h.length & 0x3ff, 3),
      `${h.length} DW${i.hasData ? ` = ${i.payloadBytes} payload bytes` : ""}`,
    );
    const dw1 = (id: string, idv: number) => {
      r("4–5", "15:0", id, hx(idv, 4), formatRid(idv));
    };
    switch (h.kind) {
      case "mem":
      case "io":
      case "cfg":
        dw1("Requester ID", h.requesterId);
        r("6", "7", "EP", yn(h.ep), h.ep ? "poisoned" : "not poisoned");
        r("6–7", "13:0", "Tag", hx(h.tag, 3));
        if (h.kind === "mem") {
          r(
            addrBytes(i.addressBits === 64),
            i.addressBits === 64 ? "63:2" : "31:2",
            "Address",
            hx(h.address, i.addressBits === 64 ? 16 : 8),
          );
          r(i.addressBits === 64 ? "15" : "11", "1:0", "AT", bn(h.at, 2), AT_NAME[h.at]);
        } else if (h.kind === "io") r("8–11", "31:2", "Address", hx(h.address, 8));
        else {
          r("8–9", "15:0", "Target ID", hx(h.targetId, 4), formatRid(h.targetId));
          r("10–11", "11:2", "Register", hx(h.register, 3));
        }
        break;
      case "cpl":
        dw1("Completer ID", h.completerId);
        r("6", "7", "EP", yn(h.ep), h.ep ? "poisoned" : "not poisoned");
        r("6", "6", "Lower Address[6]", String((h.lowerAddress >> 6) & 1));
        r("6–7", "13:0", "Tag", hx(h.tag, 3));
        r("8–9", "15:0", "Requester ID", hx(h.requesterId, 4), formatRid(h.requesterId));
        r("10", "7:4", "Lower Address[5:2]", bn((h.lowerAddress >> 2) & 15, 4));
        r("10–11", "11:0", "Byte Count", hx(h.byteCount & 0xfff, 3), `${h.byteCount} bytes`);
        break;
      case "msg":
        for (const [k, d] of h.dws.entries())
          r(`${4 + 4 * k}–${7 + 4 * k}`, "31:0", `DW${k + 1}`, hx(d, 8), "message fields (raw)");
        break;
    }
    let o = i.addressBits === 64 || h.kind === "msg" ? 16 : 12;
    const at = () => `${o}–${o + 3}`;
    const a = h.ohcA;
    if (a) {
      if (a.format === "A1") {
        r(
          at(),
          "",
          "OHC-A1",
          `NW ${yn(a.nw)} PV ${yn(a.pv)} PMR ${yn(a.pmr)} ER ${yn(a.er)} PASID ${hx(a.pasid, 5)}`,
          a.pv ? "PASID valid" : "no PASID",
        );
        r(`${o + 3}`, "7:4", "Last DW BE", bn(a.lastBe, 4));
        r(`${o + 3}`, "3:0", "First DW BE", bn(a.firstBe, 4));
      } else if (a.format === "A5") {
        r(
          at(),
          "",
          "OHC-A5",
          `Dest Seg ${hx(a.destSegment, 2)} Cpl Seg ${hx(a.completerSegment, 2)} DSV ${yn(a.dsv)}`,
        );
        r(`${o + 3}`, "4:3", "Lower Address[1:0]", bn(a.lowerAddress, 2));
        r(
          `${o + 3}`,
          "2:0",
          "Status",
          bn(a.status, 3),
          `${CPL_STATUS[a.status]}: ${CPL_STATUS_LONG[a.status]}`,
        );
      } else r(at(), "31:0", `OHC-${a.format}`, hx(a.raw, 8), "raw");
      o += 4;
    }
    const b = h.ohcB;
    if (b) {
      r(`${o + 1}`, "7:0", "OHC-B ST[15:8]", hx(b.st >> 8, 2), b.hv === 3 ? "valid" : "not valid");
      r(
        `${o + 2}`,
        "7:0",
        "OHC-B ST[7:0]",
        hx(b.st & 0xff, 2),
        b.hv === 1 || b.hv === 3 ? "valid" : "not valid",
      );
      r(`${o + 3}`, "7:6", "OHC-B PH", bn(b.ph, 2), PH_NAME[b.ph]);
      r(`${o + 3}`, "5:4", "OHC-B HV", bn(b.hv, 2), HV_NAME[b.hv]);
      r(`${o + 3}`, "3:1", "OHC-B AMA", bn(b.ama, 3), b.av ? "" : "reserved (AV = 0)");
      r(`${o + 3}`, "0", "OHC-B AV", yn(b.av));
      o += 4;
    }
    const c = h.ohcC;
    if (c) {
      r(
        at(),
        "",
        "OHC-C",
        `Req Seg ${hx(c.requesterSegment, 2)} PR_Sent ${c.prSentCounter} Stream ${c.streamId} Sub-Stream ${bn(c.subStream, 3)} RSV ${yn(c.rsv)} K ${yn(c.k)} T ${yn(c.t)}`,
        c.subStream === 7 ? "non-IDE TLP" : "IDE TLP",
      );
      o += 4;
    }
    if (h.ohcE)
      for (const d of h.ohcE) {
        r(at(), "31:0", "OHC-E", hx(d, 8), "raw");
        o += 4;
      }
  }
  return rows;
}

/** The analyzer's one-line summary (cf. the capture in §9). */
export function summaryLine(t: Tlp): string {
  const i = t.info;
  const H = (n: number | bigint, w: number) => `${n.toString(16).toUpperCase().padStart(w, "0")}h`;
  const parts: string[] = [];
  if (t.mode === "fm") {
    const h = t.header;
    if (h.kind === "nop") return "NOP";
    parts.push(`${i.name} TC=${h.tc} OHC=${i.ohc} TS=${h.ts} Attr=${h.attr} L=${h.length}`);
    if (h.kind === "cpl") {
      parts.push(`CID=${formatRid(h.completerId)} EP${h.ep ? "+" : "-"} Tag=${H(h.tag, 2)}`);
      parts.push(
        `RID=${formatRid(h.requesterId)} BC=${h.byteCount} LA=${H(i.lowerAddress ?? 0, 2)} ${CPL_STATUS[i.status ?? 0]}`,
      );
    } else if (h.kind !== "msg") {
      parts.push(`RID=${formatRid(h.requesterId)} EP${h.ep ? "+" : "-"} Tag=${H(h.tag, 2)}`);
      if (h.kind === "mem" && i.addressBits === 64) {
        parts.push(`AddrH=${H(h.address >> 32n, 8)}`, `AddrL=${H(h.address & 0xffffffffn, 8)}`);
      } else if (h.kind === "mem" || h.kind === "io") parts.push(`Addr=${H(h.address, 8)}`);
    }
    if (h.ohcA?.format === "A1")
      parts.push(
        `OHC-A1 PV${h.ohcA.pv ? "+" : "-"} LastBE=${h.ohcA.lastBe.toString(2).padStart(4, "0")} FirstBE=${h.ohcA.firstBe.toString(2).padStart(4, "0")}`,
      );
    if (h.ohcB)
      parts.push(
        `OHC-B ST=${H(h.ohcB.hv === 3 ? h.ohcB.st : h.ohcB.st & 0xff, 2)} PH=${h.ohcB.ph} HV=${h.ohcB.hv} AMA=${h.ohcB.ama} AV${h.ohcB.av ? "+" : "-"}`,
      );
  } else {
    const h = t.header;
    const pre = t.prefixes.map((p) => nfmPrefixName(p.type)).join(" ");
    parts.push(
      `${pre ? `[${pre}] ` : ""}${i.name} TC=${h.tc} Attr=${h.attr} TH=${h.kind === "mem" && h.tph ? 1 : 0} TD=${yn(h.td)} EP=${yn(h.ep)} L=${h.length}`,
    );
    if (h.kind === "cpl") {
      parts.push(`CID=${formatRid(h.completerId)} ${CPL_STATUS[h.status]} BC=${h.byteCount}`);
      parts.push(`RID=${formatRid(h.requesterId)} Tag=${H(h.tag, 2)} LA=${H(h.lowerAddress, 2)}`);
    } else {
      const tag = i.tag === null ? "-" : H(i.tag, 2);
      parts.push(`RID=${formatRid(h.requesterId)} Tag=${tag}`);
      if (i.byteEnables && !i.byteEnables.implied)
        parts.push(
          `LastBE=${i.byteEnables.last.toString(2).padStart(4, "0")} FirstBE=${i.byteEnables.first.toString(2).padStart(4, "0")}`,
        );
      if (i.address !== null) parts.push(`Addr=${H(i.address, i.addressBits === 64 ? 16 : 8)}`);
      if (h.kind === "msg") parts.push(`Code=${H(h.messageCode, 2)}`);
    }
  }
  if (i.tph) parts.push(`TPH ST=${H(i.tph.st, i.tph.stBits / 4)} PH=${i.tph.ph}`);
  return parts.join(" / ");
}

/** The text `peerdma tlp decode` prints for one TLP. */
export function renderTlp(t: Tlp, extraNotes: string[] = []): string {
  const i = t.info;
  const out: string[] = [];
  out.push(`${i.name} (${t.mode === "fm" ? "flit mode" : "non-flit mode"}) — ${i.description}`);
  out.push(`  ${summaryLine(t)}`);
  const rows = describeTlp(t);
  const w = [5, 5, 5, 5].map((_, k) =>
    Math.max(
      ...rows.map((x) => [x.bytes, x.bits, x.field, x.value][k].length),
      ["byte", "bits", "field", "value"][k].length,
    ),
  );
  out.push(
    `  ${"byte".padEnd(w[0])}  ${"bits".padEnd(w[1])}  ${"field".padEnd(w[2])}  ${"value".padEnd(w[3])}  meaning`,
  );
  for (const x of rows)
    out.push(
      `  ${x.bytes.padEnd(w[0])}  ${x.bits.padEnd(w[1])}  ${x.field.padEnd(w[2])}  ${x.value.padEnd(w[3])}  ${x.meaning}`.trimEnd(),
    );
  if (i.tph)
    out.push(
      `  TPH: ST ${hx(i.tph.st, i.tph.stBits / 4)} (${i.tph.stBits}-bit), PH ${i.tph.ph} (${PH_NAME[i.tph.ph]})`,
    );
  else if (i.hvReserved) out.push("  TPH: none (OHC-B HV 10: reserved, treated as not valid)");
  if (i.byteEnables?.implied)
    out.push(
      `  Byte enables implied: First ${bn(i.byteEnables.first, 4).slice(2)}, Last ${bn(i.byteEnables.last, 4).slice(2)}`,
    );
  if (i.status !== null && t.mode === "fm")
    out.push(`  Completion: status ${CPL_STATUS[i.status]}, Lower Address ${hx(i.lowerAddress ?? 0, 2)}`);
  out.push(
    `  Sizes: ${i.prefixBytes ? `prefixes ${i.prefixBytes} B, ` : ""}header ${i.headerBytes} B, payload ${i.payloadBytes} B, ${t.mode === "fm" ? "trailer" : "ECRC"} ${i.digestBytes} B, total ${i.totalBytes} B`,
  );
  const f = tlpForms(t);
  out.push(`  wire:   ${f.wire}`, `  AER:    ${f.aer}`, `  LE DWs: ${f.le}`);
  for (const n of [...extraNotes, ...t.notes]) out.push(`  note: ${n}`);
  return out.join("\n");
}

/** JSON-ready object: numbers stay numbers, addresses become hex strings, IDs also as `bb:dd.f`. */
export function tlpToJson(t: Tlp, extraNotes: string[] = []): Record<string, unknown> {
  const big = (v: unknown): unknown =>
    typeof v === "bigint"
      ? hx(v)
      : Array.isArray(v)
        ? v.map(big)
        : v && typeof v === "object"
          ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, big(x)]))
          : v;
  const h = t.header as unknown as Record<string, unknown>;
  const ids: Record<string, string> = {};
  for (const k of ["requesterId", "completerId", "targetId"])
    if (typeof h[k] === "number") ids[k.replace(/Id$/, "")] = formatRid(h[k] as number);
  return {
    mode: t.mode,
    name: t.info.name,
    description: t.info.description,
    prefixes: t.prefixes.map((p) => ({
      type: hx(p.type, 2),
      name: t.mode === "nfm" ? nfmPrefixName(p.type) : fmPrefixName(p.type),
      body: hx(p.body, 6),
    })),
    header: big(t.header),
    ids,
    info: big(t.info),
    fields: describeTlp(t),
    forms: tlpForms(t),
    data: Array.from(t.data, (x) => x.toString(16).padStart(2, "0")).join(""),
    reserved: t.reserved,
    notes: [...extraNotes, ...t.notes],
  };
}
