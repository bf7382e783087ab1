/**
 * `lspci -x` / `-xxx` / `-xxxx` hex dumps (with or without `-D` domains, with or without the
 * description after the address, with or without the `-v…` detail lines between) → config
 * bytes per function → a {@link Fabric} whose buses follow the bridges' secondary bus numbers.
 *
 * The text is read strictly: a line that is not a function line, a config line, an indented
 * detail line or a blank line is an error naming the file and line, and so is a function whose
 * bytes stop short of what lspci prints (64, 128 for CardBus, 256 or 4096).
 */
import { InputError } from "../core/errors.js";
import { devfnOf, formatBdf } from "../pci/bdf.js";
import { ConfigSpace } from "../pci/config-space.js";
import { HostBridge, type PciBus, type PciDev } from "../pci/device.js";
import { Fabric, formatBus } from "../pci/fabric.js";
import { Provenance } from "./provenance.js";

export interface HexFunction {
  segment: number;
  bus: number;
  devfn: number;
  bdf: string;
  /** The bytes the dump holds for this function (64, 128, 256 or 4096). */
  bytes: Uint8Array;
  /** Text after the address on the function line ("" when there was none). */
  description: string;
  /** 1-based line of the function line. */
  line: number;
}

export interface LspciHexImport {
  fabric: Fabric;
  functions: HexFunction[];
  provenance: Provenance;
  /** What could not be imported as given, in words. */
  notes: string[];
}

const FUNC_RE = /^(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])(?:[ \t]+(.*))?$/;
const HEX_RE = /^([0-9a-fA-F]{2,3}):((?: [0-9a-fA-F]{2})+) *$/;
const VALID_LENGTHS = [64, 128, 256, 4096];

/** Hex digit values by UTF-16 code unit (-1: not a hex digit); every code unit has an entry. */
const HEX_VALUE = new Int8Array(0x10000).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_VALUE["0123456789abcdef".charCodeAt(i)] = i;
  HEX_VALUE["0123456789ABCDEF".charCodeAt(i)] = i;
}

/**
 * The common line, read without a regex: a 2–3 digit offset equal to `expect`, a colon and
 * exactly 16 bytes ("f0: 00 01 …", trailing spaces allowed) in text[start, end), the bytes
 * stored at `out[expect…]` (4096 bytes). False for any other line, which then goes through the
 * full rules and their messages.
 */
function quickHexLine(text: string, start: number, end: number, expect: number, out: Uint8Array): boolean {
  let i = start;
  let off = 0;
  for (; i < start + 4 && i < end; i++) {
    const v = HEX_VALUE[text.charCodeAt(i)];
    if (v < 0) break;
    off = off * 16 + v;
  }
  if (i - start < 2 || i - start > 3 || i >= end || text.charCodeAt(i) !== 0x3a) return false;
  if (off !== expect || off + 16 > out.length) return false;
  i++;
  if (i + 48 > end) return false;
  // bytes go straight to their place: a line that fails half-way leaves them past the length read
  for (let k = 0; k < 16; k++, i += 3) {
    if (text.charCodeAt(i) !== 0x20) return false;
    const hi = HEX_VALUE[text.charCodeAt(i + 1)];
    const lo = HEX_VALUE[text.charCodeAt(i + 2)];
    if (hi < 0 || lo < 0) return false;
    out[off + k] = hi * 16 + lo;
  }
  for (; i < end; i++) if (text.charCodeAt(i) !== 0x20) return false;
  return true;
}

/**
 * A config space for `raw`, padded with all-ones (what a read past the end returns) up to the
 * size class it belongs to: 64, 256 or 4096 bytes. The caller keeps `raw.length` as the real
 * length (decodeConfig takes it so padding is never decoded). With `adopt`, bytes that fill
 * their size class and own their whole buffer become the config space as they are (the caller
 * hands them over), instead of being copied.
 */
export function configFromBytes(raw: Uint8Array, adopt = false): ConfigSpace {
  const n = Math.min(raw.length, 4096);
  const size = n <= 64 ? 64 : n <= 256 ? 256 : 4096;
  if (adopt && raw.length === size && raw.byteOffset === 0 && raw.buffer.byteLength === size)
    return new ConfigSpace(raw);
  const b = new Uint8Array(size).fill(0xff);
  b.set(raw.subarray(0, n));
  return new ConfigSpace(b);
}

/** Parses the dump text into functions. Throws {@link InputError} (`file:line`) on malformed input. */
export function parseLspciHex(text: string, file = "<lspci -x>"): HexFunction[] {
  const out: HexFunction[] = [];
  const seen = new Map<string, number>();
  let cur: { f: HexFunction; chunks: Uint8Array; len: number } | null = null;
  const finish = (endLine: number) => {
    if (!cur) return;
    const { f, len } = cur;
    if (!VALID_LENGTHS.includes(len))
      throw new InputError(
        `function ${f.bdf} (line ${f.line}) has ${len} bytes of config space; expected 64 (lspci -x), 128 (CardBus), 256 (-xxx) or 4096 (-xxxx) — the dump looks truncated`,
        `${file}:${endLine}`,
      );
    f.bytes = cur.chunks.slice(0, len);
    out.push(f);
    cur = null;
  };
  let lineCount = 0;
  // lines found in place (no split: a -xxxx dump has 257 lines per function)
  for (let pos = 0, nl = 0; nl >= 0; pos = nl + 1) {
    nl = text.indexOf("\n", pos);
    let end = nl < 0 ? text.length : nl;
    if (end > pos && text.charCodeAt(end - 1) === 0x0d) end--;
    const n = ++lineCount;
    if (cur) {
      // fast path for the next line of the function being read; anything else takes the rules below
      if (quickHexLine(text, pos, end, cur.len, cur.chunks)) {
        cur.len += 16;
        continue;
      }
    }
    const line = text.slice(pos, end);
    if (line.trim() === "") {
      finish(n - 1);
      continue;
    }
    if (line[0] === "\t" || line[0] === " ") continue; // lspci -v… detail lines
    const hx = HEX_RE.exec(line);
    if (hx) {
      if (!cur)
        throw new InputError(
          `config-space line outside a function; expected a function line ("bb:dd.f …" or "dddd:bb:dd.f …") before it`,
          `${file}:${n}`,
        );
      const off = Number.parseInt(hx[1], 16);
      const bytes = hx[2].trim().split(" ");
      if (off !== cur.len)
        throw new InputError(
          `config-space line at offset 0x${off.toString(16)}; expected offset 0x${cur.len.toString(16)} (lines go up by 0x10 from 00)`,
          `${file}:${n}`,
        );
      if (bytes.length !== 16)
        throw new InputError(`config-space line has ${bytes.length} bytes; expected 16`, `${file}:${n}`);
      if (off + 16 > 4096) throw new InputError("config space goes past 4096 bytes", `${file}:${n}`);
      bytes.forEach((b, k) => {
        cur!.chunks[off + k] = Number.parseInt(b, 16);
      });
      cur.len = off + 16;
      continue;
    }
    const fm = FUNC_RE.exec(line);
    if (fm) {
      finish(n - 1);
      const slot = Number.parseInt(fm[3], 16);
      if (slot > 0x1f) throw new InputError(`device number 0x${fm[3]} is above 0x1f`, `${file}:${n}`);
      const segment = fm[1] ? Number.parseInt(fm[1], 16) : 0;
      const bus = Number.parseInt(fm[2], 16);
      const devfn = devfnOf(slot, Number(fm[4]));
      const bdf = formatBdf({ segment, bus, devfn });
      const prev = seen.get(bdf);
      if (prev !== undefined)
        throw new InputError(`function ${bdf} appears twice (first at line ${prev})`, `${file}:${n}`);
      seen.set(bdf, n);
      cur = {
        f: { segment, bus, devfn, bdf, bytes: new Uint8Array(0), description: (fm[5] ?? "").trim(), line: n },
        chunks: new Uint8Array(4096),
        len: 0,
      };
      continue;
    }
    if (/^[0-9a-fA-F]{2,3}:/.test(line))
      throw new InputError(
        `malformed config-space line; expected an offset and 16 hex bytes ("00: 86 80 …"), got "${clip(line)}"`,
        `${file}:${n}`,
      );
    throw new InputError(
      `expected a function line ("bb:dd.f …" or "dddd:bb:dd.f …"), a config-space line ("00: 86 80 …"), an indented detail line or a blank line; got "${clip(line)}"`,
      `${file}:${n}`,
    );
  }
  finish(lineCount);
  if (!out.length) throw new InputError("no functions found; expected lspci -x, -xxx or -xxxx output", file);
  return out;
}

const clip = (s: string) => (s.length > 60 ? `${s.slice(0, 57)}...` : s);

interface Node {
  f: HexFunction;
  cfg: ConfigSpace;
}

/** Builds the fabric: root buses are the buses no bridge in the dump leads to. */
export function fabricFromHexFunctions(
  functions: HexFunction[],
  file: string,
): { fabric: Fabric; provenance: Provenance; notes: string[] } {
  const fabric = new Fabric();
  const provenance = new Provenance();
  const notes: string[] = [];
  const domains = [...new Set(functions.map((f) => f.segment))].sort((a, b) => a - b);
  const savedBusRegs: { dev: PciDev; regs: Uint8Array }[] = [];
  for (const domain of domains) {
    const fns = functions.filter((f) => f.segment === domain);
    const byBus = new Map<number, Node[]>();
    for (const f of fns) {
      const node = { f, cfg: configFromBytes(f.bytes) };
      const list = byBus.get(f.bus);
      if (list) list.push(node);
      else byBus.set(f.bus, [node]);
    }
    for (const list of byBus.values()) list.sort((a, b) => a.f.devfn - b.f.devfn);
    // Which bridge leads to which bus: the first one (in address order) that claims it.
    const claimedBy = new Map<number, HexFunction>();
    const ordered = [...fns].sort((a, b) => a.bus - b.bus || a.devfn - b.devfn);
    for (const f of ordered) {
      const sec = secondaryOf(f);
      if (sec === null) continue;
      const other = claimedBy.get(sec);
      if (other) notes.push(`${f.bdf}: secondary bus ${hex2(sec)} is also claimed by ${other.bdf}; ignored`);
      else claimedBy.set(sec, f);
    }
    const created = new Set<number>();
    const buildBus = (bus: PciBus) => {
      created.add(bus.number);
      for (const node of byBus.get(bus.number) ?? []) {
        const dev = fabric.addFunction(bus, node.f.devfn, node.cfg);
        provenance.record(
          dev.bdf,
          "config",
          { length: node.f.bytes.length },
          {
            file,
            line: node.f.line,
            field: `lspci hex dump, ${node.f.bytes.length} bytes`,
          },
        );
        provenance.record(dev.bdf, "parent", bus.self?.bdf ?? null, {
          file,
          line: bus.self ? functions.find((x) => x.bdf === bus.self!.bdf)?.line : node.f.line,
          note: bus.self
            ? `secondary bus number of ${bus.self.bdf} (config 0x19)`
            : "root bus: no bridge in the dump leads to it",
        });
        const sec = secondaryOf(node.f);
        if (sec !== null && claimedBy.get(sec) === node.f && !created.has(sec)) {
          savedBusRegs.push({ dev, regs: node.cfg.bytes.slice(0x18, 0x1b) });
          buildBus(fabric.addSecondaryBus(dev, sec));
        }
      }
    };
    const roots = [...byBus.keys()].filter((b) => !claimedBy.has(b)).sort((a, b) => a - b);
    for (const b of roots) {
      const hb = fabric.addHostBridge(new HostBridge(domain, b, [], -1, ""));
      provenance.record(
        hb.label,
        "hostBridge",
        { domain, bus: b },
        { file, note: "a bus no bridge in the dump leads to" },
      );
      buildBus(hb.rootBus);
    }
    // Buses reached only through a loop of bridges: start them as root buses, and say so.
    for (;;) {
      const left = [...byBus.keys()].filter((b) => !created.has(b)).sort((a, b) => a - b);
      if (!left.length) break;
      notes.push(`bus ${formatBus(domain, left[0])}: its bridges form a loop; treated as a root bus`);
      const hb = fabric.addHostBridge(new HostBridge(domain, left[0], [], -1, ""));
      buildBus(hb.rootBus);
    }
  }
  fabric.finalizeBusNumbers();
  // Keep the dump's own bus registers: they are what the hardware said.
  for (const { dev, regs } of savedBusRegs) dev.config.bytes.set(regs, 0x18);
  return { fabric, provenance, notes };
}

const hex2 = (n: number) => n.toString(16).padStart(2, "0");

/** A bridge's secondary bus when it names a bus below its own; null otherwise. */
function secondaryOf(f: HexFunction): number | null {
  const type = f.bytes[0x0e] & 0x7f;
  if (type !== 1 && type !== 2) return null;
  const sec = f.bytes[0x19];
  return sec > f.bus ? sec : null;
}

/** Parses a dump and builds its fabric. */
export function importLspciHex(text: string, file = "<lspci -x>"): LspciHexImport {
  const functions = parseLspciHex(text, file);
  const { fabric, provenance, notes } = fabricFromHexFunctions(functions, file);
  fabric.name = file;
  return { fabric, functions, provenance, notes };
}
