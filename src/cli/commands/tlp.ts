/** `peerdma tlp decode|encode`: the TLP codec on the command line (tph-and-tlp.md §0, §6–§11). */
import { readFileSync, statSync } from "node:fs";
import type { Command } from "commander";
import { InputError } from "../../core/errors.js";
import { parseBdf } from "../../pci/bdf.js";
import {
  buildTlp,
  type DwordOrder,
  decodeTlp,
  decodeTlpText,
  encodeTlp,
  renderTlp,
  summaryLine,
  type Tlp,
  type TlpMode,
  type TlpParams,
  tlpForms,
  tlpToJson,
  translateTlp,
} from "../../tlp/index.js";
import { EXIT_BAD_INPUT, guard, print, printJson } from "../io.js";

interface DecodeOpts {
  json?: boolean;
  dwordOrder?: string;
  mode?: string;
  whole?: boolean;
  to?: string;
}

function oneOf<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  const x = v.toLowerCase() as T;
  if (!allowed.includes(x)) throw new InputError(`${name} "${v}": expected ${allowed.join(" | ")}`);
  return x;
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

interface Line {
  text: string;
  where?: string;
  line?: number;
}

function readInputs(inputs: string[]): { lines: Line[]; fromFile: boolean } {
  if (inputs.length === 1 && (inputs[0] === "-" || isFile(inputs[0]))) {
    const name = inputs[0] === "-" ? "<stdin>" : inputs[0];
    let text: string;
    try {
      text = readFileSync(inputs[0] === "-" ? 0 : inputs[0], "utf8");
    } catch (e) {
      throw new InputError(`cannot read: ${(e as Error).message}`, name);
    }
    const lines = text
      .split(/\r?\n/)
      .map((t, i) => ({ text: t, where: `${name}:${i + 1}`, line: i + 1 }))
      .filter((l) => l.text.trim() !== "" && !l.text.trim().startsWith("#"));
    if (lines.length === 0) throw new InputError("no TLP in the file (one per line expected)", name);
    return { lines, fromFile: true };
  }
  return { lines: [{ text: inputs.join(" ") }], fromFile: false };
}

function decodeAction(inputs: string[], opts: DecodeOpts): number {
  const dwordOrder = oneOf<DwordOrder>("--dword-order", opts.dwordOrder, ["be", "le"]);
  const mode = oneOf("--mode", opts.mode, ["nfm", "fm", "auto"] as const) ?? "auto";
  const to = oneOf<TlpMode>("--to", opts.to, ["nfm", "fm"]);
  const { lines, fromFile } = readInputs(inputs);
  const json: unknown[] = [];
  const text: string[] = [];
  let failed = 0;
  for (const l of lines) {
    try {
      const r = decodeTlpText(l.text, { mode, dwordOrder, whole: opts.whole, where: l.where });
      const tr: Tlp | null = to ? translateTlp(r.tlp, to) : null;
      if (opts.json)
        json.push({
          ...(l.line ? { line: l.line } : {}),
          input: { form: r.form, aer: r.aer },
          ...tlpToJson(r.tlp, r.notes),
          ...(tr ? { translated: tlpToJson(tr) } : {}),
        });
      else {
        const head = l.line ? `line ${l.line}: ` : "";
        text.push(`${head}${renderTlp(r.tlp, r.notes)}`);
        if (tr) text.push(`translated to ${to === "fm" ? "flit mode" : "non-flit mode"}:\n${renderTlp(tr)}`);
      }
    } catch (e) {
      if (!fromFile || !(e instanceof InputError)) throw e;
      failed++;
      process.stderr.write(`peerdma: ${e.message}\n`);
      if (opts.json) json.push({ line: l.line, error: e.message });
    }
  }
  if (opts.json) printJson(fromFile ? json : json[0]);
  else if (text.length) print(text.join("\n\n"));
  return failed ? EXIT_BAD_INPUT : 0;
}

function num(name: string, v: string | undefined, max: number): number | undefined {
  if (v === undefined) return undefined;
  const t = v.trim().replace(/_/g, "");
  const n = /^0x[0-9a-f]+$/i.test(t)
    ? Number.parseInt(t, 16)
    : /^0b[01]+$/i.test(t)
      ? Number.parseInt(t.slice(2), 2)
      : /^\d+$/.test(t)
        ? Number(t)
        : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > max)
    throw new InputError(`${name} "${v}": expected a number 0..0x${max.toString(16)} (decimal, 0x… or 0b…)`);
  return n;
}

function bigNum(name: string, v: string | undefined): bigint | undefined {
  if (v === undefined) return undefined;
  const t = v.trim().replace(/_/g, "");
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(t))
    throw new InputError(`${name} "${v}": expected an address (0x… or decimal)`);
  const n = BigInt(t);
  if (n >= 1n << 64n) throw new InputError(`${name} "${v}": does not fit 64 bits`);
  return n;
}

function rid(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (/^(0x)?[0-9a-f]{1,4}$/i.test(v.trim()) && !v.includes(":"))
    return num(name, v.startsWith("0x") ? v : `0x${v}`, 0xffff);
  const a = parseBdf(v, name);
  if (a.bus > 0xff) throw new InputError(`${name} "${v}": bus above 0xff`);
  return (a.bus << 8) | a.devfn;
}

function attrOpt(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (/^(0x)?[0-9]+$/i.test(v.trim())) return num("--attr", v, 7);
  let a = 0;
  for (const f of v
    .toLowerCase()
    .split(/[,+\s]+/)
    .filter((x) => x)) {
    const bit = { ido: 4, ro: 2, ns: 1 }[f];
    if (bit === undefined) throw new InputError(`--attr "${v}": expected a number 0..7 or flags ido,ro,ns`);
    a |= bit;
  }
  return a;
}

const STATUS: Record<string, number> = { sc: 0, ur: 1, crs: 2, rrs: 2, ca: 4 };

function statusOpt(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const s = STATUS[v.toLowerCase()];
  return s ?? num("--status", v, 7);
}

interface EncodeOpts {
  mode?: string;
  type?: string;
  addr?: string;
  len?: string;
  requester?: string;
  completer?: string;
  target?: string;
  tag?: string;
  tc?: string;
  attr?: string;
  at?: string;
  ep?: boolean;
  ecrc?: boolean;
  ts?: string;
  st?: string;
  ph?: string;
  stBits?: string;
  hv?: string;
  firstBe?: string;
  lastBe?: string;
  ohc?: string;
  pasid?: string;
  status?: string;
  byteCount?: string;
  lowerAddress?: string;
  bcm?: boolean;
  msgCode?: string;
  register?: string;
  tagPolicy?: string;
  json?: boolean;
  fields?: boolean;
}

function encodeAction(opts: EncodeOpts): number {
  const mode = oneOf<TlpMode>("--mode", opts.mode, ["nfm", "fm"]) ?? "nfm";
  if (!opts.type) throw new InputError("--type is required (e.g. MWr, MRd, CplD, Msg)");
  const typeCode = /^0x[0-9a-f]{1,2}$/i.test(opts.type) ? Number.parseInt(opts.type, 16) : undefined;
  const stBits = num("--st-bits", opts.stBits, 16);
  if (stBits !== undefined && stBits !== 8 && stBits !== 16)
    throw new InputError(`--st-bits "${opts.stBits}": expected 8 or 16`);
  const p: TlpParams = {
    mode,
    type: typeCode ?? opts.type,
    address: bigNum("--addr", opts.addr),
    length: num("--len", opts.len, 1024),
    requesterId: rid("--requester", opts.requester),
    completerId: rid("--completer", opts.completer),
    targetId: rid("--target", opts.target),
    tag: num("--tag", opts.tag, 0x3fff),
    tc: num("--tc", opts.tc, 7),
    attr: attrOpt(opts.attr),
    at: num("--at", opts.at, 3),
    ep: opts.ep,
    ecrc: opts.ecrc,
    ts: num("--ts", opts.ts, 7),
    st: num("--st", opts.st, 0xffff),
    ph: num("--ph", opts.ph, 3),
    stBits: stBits as 8 | 16 | undefined,
    hv: num("--hv", opts.hv, 3),
    firstBe: num("--first-be", opts.firstBe, 15),
    lastBe: num("--last-be", opts.lastBe, 15),
    ohc: opts.ohc,
    pasid: num("--pasid", opts.pasid, 0xfffff),
    status: statusOpt(opts.status),
    byteCount: num("--byte-count", opts.byteCount, 4096),
    lowerAddress: num("--lower-address", opts.lowerAddress, 0x7f),
    bcm: opts.bcm,
    messageCode: num("--msg-code", opts.msgCode, 0xff),
    register: num("--register", opts.register, 0xffc),
    fmPostedTagPolicy: oneOf("--tag-policy", opts.tagPolicy, ["mirror-st", "zero"] as const),
  };
  if (p.length === 0) throw new InputError('--len "0": a TLP is 1..1024 DW long');
  const input = buildTlp(p);
  const tlp = decodeTlp(encodeTlp(input), { mode });
  if (opts.json) {
    printJson(tlpToJson(tlp));
    return 0;
  }
  const f = tlpForms(tlp);
  const out = [
    `${tlp.info.name} (${mode === "fm" ? "flit mode" : "non-flit mode"}): ${summaryLine(tlp)}`,
    `wire:   ${f.wire}`,
    `AER:    ${f.aer}`,
    `LE DWs: ${f.le}`,
  ];
  if (opts.fields) out.push("", renderTlp(tlp));
  else for (const n of tlp.notes) out.push(`note: ${n}`);
  print(out.join("\n"));
  return 0;
}

export function registerTlp(program: Command): void {
  const tlp = program
    .command("tlp")
    .description("decode and encode PCIe TLP headers: non-flit and flit mode, TPH (ST/PH), AER log lines")
    .addHelpText(
      "after",
      `
A TLP header can be written three ways (all accepted by decode, all printed by encode):
  wire bytes, byte 0 first ........ 60 02 00 08 04 00 00 F0 ...
  big-endian DWs (kernel AER log) . 0x60020008 0x040000f0 ...   (also "TLP Header: ..." lines)
  little-endian DWs (analyzers) ... 08000260 F0000004 ...

Examples:
  peerdma tlp decode --dword-order le 08000260 F0000004 E0200000 00080006 90F00000
  peerdma tlp decode 'TLP Header: 0x60010008 0x0400f0ff 0x000020e0 0x06000802' --to fm
  peerdma tlp encode --mode fm --type MWr --addr 0x20E006000800 --len 8 --requester 04:00.0 --st 0xF0 --ph 2`,
    );

  tlp
    .command("decode")
    .description("decode TLP headers given as hex on the command line or in a file (one TLP per line)")
    .argument(
      "<input...>",
      "hex bytes or DWs, an AER log line, or a file ('-' = stdin) with one TLP per line",
    )
    .option("--json", "machine-readable output (one object; an array for a file)")
    .option(
      "--dword-order <order>",
      "be | le: how 8-digit DW tokens are read (default: be, or le if only le decodes)",
    )
    .option(
      "--mode <mode>",
      "nfm | fm | auto: link mode (auto: an AER line says; else the mode that decodes)",
      "auto",
    )
    .option("--whole", "each input is a whole TLP: check the payload length against Length")
    .option(
      "--to <mode>",
      "also translate to nfm | fm, as a switch between links of both modes does (TPH ↔ OHC-B)",
    )
    .addHelpText(
      "after",
      `
Input forms:
  - tokens of exactly 2 hex digits are wire bytes, byte 0 first;
  - 0x-prefixed values are big-endian DWs, as the kernel prints them;
  - 8-digit tokens are DWs, big-endian unless --dword-order le (or only le decodes);
  - an AER/DPC log line (anything up to "TLP Header:" or "TLP Header (Flit):" is ignored; the
    mode comes from the label and " E-E Prefixes:" DWs are put back in front of the header).
Bytes after the header are kept as payload/digest. Decode errors exit 2 and name the byte.

Examples:
  # the analyzer capture of the TPH-on-dma-buf cover letter: flit-mode MWr64 with OHC-B ST 0xF0 PH 2
  peerdma tlp decode --dword-order le 08000260 F0000004 E0200000 00080006 90F00000
  # the same TLP as a non-flit switch would forward it (TH 1, ST in byte 6, PH in the address)
  peerdma tlp decode --mode fm --to nfm 60 02 00 08 04 00 00 F0 00 00 20 E0 06 00 08 00 00 00 F0 90
  # a kernel AER log line, with an ExtTPH end-to-end prefix
  peerdma tlp decode 'pcieport 0000:00:01.0: AER:   TLP Header: 0x60010020 0x8100cdff 0x00000038 0x00000003 E-E Prefixes: 0x90ab0000'
  # a file, one TLP per line (blank lines and # comments skipped), as JSON
  peerdma tlp decode trace.txt --mode fm --json`,
    )
    .action((inputs: string[], opts: DecodeOpts) => guard(() => decodeAction(inputs, opts)));

  tlp
    .command("encode")
    .description("build a TLP header from its fields and print its wire bytes, AER DWs and analyzer DWs")
    .option("--mode <mode>", "nfm | fm", "nfm")
    .option(
      "--type <type>",
      "MRd | MWr | MRdLk | FetchAdd | Swap | CAS | DMWr (32/64 by address, or e.g. MWr64), IORd, IOWr, CfgRd0/1, CfgWr0/1, Cpl, CplD, CplLk, CplDLk, Msg, MsgD, NOP, UIOMRd, UIOMWr, … or a code 0x..",
    )
    .option("--addr <address>", "memory / IO address (DW-aligned)")
    .option("--len <dw>", "Length in DW, 1..1024 (default 1)")
    .option("--requester <bdf>", "Requester ID, bb:dd.f (default 00:00.0)")
    .option("--completer <bdf>", "Completer ID (completions)")
    .option("--target <bdf>", "target of a configuration request")
    .option("--tag <n>", "tag (NFM 10-bit, FM 14-bit)")
    .option("--tc <n>", "traffic class 0..7")
    .option("--attr <attr>", "0..7 or flags ido,ro,ns")
    .option("--at <n>", "address type 0..3 (2 = translated)")
    .option("--ep", "poisoned")
    .option("--ecrc", "ECRC present (NFM TD 1, FM TS 001)")
    .option("--ts <n>", "FM trailer size code 0..7")
    .option("--st <n>", "TPH steering tag (8-bit, or 16-bit: NFM ExtTPH prefix, FM OHC-B HV 11)")
    .option(
      "--ph <n>",
      "TPH processing hint 0..3 (0 bidirectional, 1 requester, 2 target, 3 target with priority)",
    )
    .option("--st-bits <n>", "8 | 16 (default: 16 only when --st does not fit 8 bits)")
    .option("--hv <n>", "FM OHC-B HV override 0..3")
    .option("--first-be <n>", "First DW byte enables 0..15")
    .option("--last-be <n>", "Last DW byte enables 0..15")
    .option("--ohc <letters>", "FM: OHCs to include even when not needed, e.g. b or ab")
    .option("--pasid <n>", "FM OHC-A1 PASID (sets PV)")
    .option("--status <s>", "completion status SC | UR | CRS | CA | 0..7")
    .option("--byte-count <n>", "completion Byte Count 1..4096")
    .option("--lower-address <n>", "completion Lower Address 0..0x7f")
    .option("--bcm", "NFM completion BCM")
    .option("--msg-code <n>", "NFM message code")
    .option("--register <n>", "configuration register byte offset")
    .option(
      "--tag-policy <p>",
      "FM posted write with TPH and no --tag: mirror-st (Tag = ST[7:0], default) | zero",
    )
    .option("--json", "machine-readable output")
    .option("--fields", "also print every field")
    .addHelpText(
      "after",
      `
TPH placement: non-flit puts TH = 1, ST[7:0] in byte 6 (posted writes, which then have no tag) or
byte 7 (reads/atomics, whose byte enables become implied), PH in address bits 1:0, ST[15:8] in an
ExtTPH prefix; flit mode puts ST/PH in OHC-B.

Examples:
  # the analyzer capture (flit-mode MWr64, OHC-B ST 0xF0 PH 2, Tag 0xF0)
  peerdma tlp encode --mode fm --type MWr --addr 0x000020E006000800 --len 8 --requester 04:00.0 --tag 0xF0 --st 0xF0 --ph 2 --ohc b
  # the same write on a non-flit link
  peerdma tlp encode --type MWr --addr 0x000020E006000800 --len 8 --requester 04:00.0 --st 0xF0 --ph 2
  # a read with a 16-bit steering tag (ExtTPH prefix)
  peerdma tlp encode --type MRd --addr 0x100001000 --len 16 --requester 04:00.0 --tag 0x12 --st 0xABCD --ph 1
  # a completion with Unsupported Request status in flit mode (OHC-A5)
  peerdma tlp encode --mode fm --type Cpl --completer 41:00.0 --requester 04:00.0 --tag 0x12 --status UR --byte-count 4 --json`,
    )
    .action((opts: EncodeOpts) => guard(() => encodeAction(opts)));
}
