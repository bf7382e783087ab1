/**
 * Which kind of topology source a text is, from its name and first bytes — cheap sniffing, no
 * parse ({@link detectFormat}); and the entry points that read texts of any of these formats and
 * merge several of them into one fabric ({@link factsFromText}, {@link importTexts}).
 */
import { InputError } from "../core/errors.js";
import type { CpuInfo } from "../pci/fabric.js";
import { parseHwlocXml } from "./hwloc.js";
import { type CpuImport, parseCpuinfo, parseLscpu } from "./lscpu.js";
import { importLspciHex } from "./lspci-hex.js";
import { type LspciTextOptions, parseLspciMm, parseLspciTree, parseLspciVerbose } from "./lspci-text.js";
import { parseMachineFile } from "./machine-file.js";
import {
  type BuildOptions,
  emptyFacts,
  factsFromFabric,
  type ImportResult,
  type MachineFacts,
  mergeAndBuild,
} from "./merge.js";
import { parseNcclXml } from "./nccl.js";

export type SourceFormatName =
  | "lspci-tree"
  | "lspci-verbose"
  | "lspci-mm"
  | "hwloc-xml"
  | "nccl-xml"
  | "lscpu"
  | "cpuinfo"
  | "machine-file"
  | "lspci-hex";

/** How much of the text is looked at; lspci `-vvvx` puts the first hex line after a long record. */
const SNIFF_CHARS = 4096;

const BDF = String.raw`(?:[0-9a-fA-F]{4,8}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]`;
const TREE_START = /^(?:-\+-|-)\[[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}\]-/;
const VERBOSE_HEAD = new RegExp(`^${BDF} [^"\\s][^\\n]*:`, "m");
const MM_LINE = new RegExp(`^${BDF} "`, "m");
const HEX_LINE = /^[0-9a-fA-F]{2,3}:(?: [0-9a-fA-F]{2}){16}\s*$/m;
const INDENTED_FIELD = /^(?:\t| {2,})[A-Z][A-Za-z ]+:/m;

/** Drops a BOM, XML comments, the XML declaration and DOCTYPE, to find the root element. */
function xmlRoot(head: string): string | null {
  const s = head
    .replace(/^\uFEFF/, "")
    .replace(/<!--[\s\S]*?(?:-->|$)/g, "")
    .replace(/<\?[\s\S]*?\?>/g, "")
    .replace(/<!DOCTYPE[^>]*>/gi, "")
    .trimStart();
  const m = /^<([A-Za-z_][\w.-]*)/.exec(s);
  return m ? m[1] : null;
}

function looksLikeMachineFile(text: string): boolean {
  return (
    /^\s*(?:name|hostBridges|description|cpu)\s*:/m.test(text) || /^\s*\{\s*"(?:name|hostBridges)"/.test(text)
  );
}

/**
 * The format of `text` (named `fileName`), or null when nothing matches. Only the first few KiB
 * are examined.
 */
export function detectFormat(text: string, fileName = ""): SourceFormatName | null {
  const head = text.slice(0, SNIFF_CHARS).replace(/\r\n/g, "\n");
  const base = fileName.split(/[\\/]/).pop()?.toLowerCase() ?? "";
  const trimmed = head.replace(/^\uFEFF/, "").trimStart();

  if (trimmed.startsWith("<")) {
    const root = xmlRoot(trimmed);
    if (root === "topology" || root === "root") return "hwloc-xml";
    if (root === "system" || root === "graphs") return "nccl-xml";
    return null;
  }
  if (/\.(ya?ml|json)$/.test(base) || looksLikeMachineFile(head)) return "machine-file";

  const firstLine = trimmed.split("\n", 1)[0] ?? "";
  if (TREE_START.test(firstLine)) return "lspci-tree";
  if (HEX_LINE.test(head) && new RegExp(`^${BDF}`, "m").test(head)) return "lspci-hex";
  if (MM_LINE.test(head)) return "lspci-mm";
  if (VERBOSE_HEAD.test(head) && (INDENTED_FIELD.test(head) || new RegExp(`^${BDF} `).test(trimmed)))
    return "lspci-verbose";

  if (/^processor\s*:\s*\d+/m.test(head) && /^(?:vendor_id|CPU implementer)\s*:/m.test(head))
    return "cpuinfo";
  if (
    /^\s*(?:Vendor ID|Architecture|CPU\(s\)|Model name)\s*:/m.test(head) &&
    /^\s*(?:Vendor ID|Model name):/m.test(head)
  )
    return "lscpu";
  if (/cpuinfo/.test(base) && /^vendor_id\s*:/m.test(head)) return "cpuinfo";
  return null;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading a text source                                                                       */
/* ------------------------------------------------------------------------------------------ */

export interface TextImportOptions extends BuildOptions, LspciTextOptions {
  /** `--cpu`: overrides what the sources say about the host CPU. */
  cpu?: CpuInfo;
}

/** Why a text that matched no format cannot be read, when it is a known near-miss. */
function notRecognised(text: string, file: string): InputError {
  const head = text.slice(0, SNIFF_CHARS);
  let why = "";
  if (/^\s*ACS(?:Cap|Ctl):/m.test(head) && !VERBOSE_HEAD.test(head))
    why =
      ": it has ACS lines but no function headers (output of `lspci -vvv | grep …`?); the lines cannot be tied to devices";
  else if (/^CPU\s+NODE\s+SOCKET/m.test(head))
    why = ": `lscpu -e` output names no CPU vendor; give plain `lscpu`";
  else if (/^available: \d+ nodes/m.test(head))
    why = ": `numactl --hardware` output has no PCI or CPU vendor information";
  return new InputError(
    `format not recognised${why || " (expected lspci -t/-v/-mm/-x text, hwloc XML, NCCL topology XML, lscpu or /proc/cpuinfo text, or a machine file)"}`,
    file,
  );
}

function cpuFacts(file: string, format: string, imp: CpuImport): MachineFacts {
  const facts = emptyFacts(file, format);
  facts.cpu = { value: imp.cpu, source: imp.sources.vendor ?? { file }, status: "stated" };
  facts.cpuSources = imp.sources;
  facts.warnings.push(...imp.warnings);
  return facts;
}

/**
 * Reads one text source into facts, in the format given or detected. Errors are InputErrors
 * naming the file (and line, where the format has lines).
 */
export function factsFromText(
  text: string,
  file: string,
  format: SourceFormatName | null = detectFormat(text, file),
  opts: LspciTextOptions = {},
): MachineFacts {
  switch (format) {
    case "lspci-tree":
      return parseLspciTree(text, file, opts);
    case "lspci-verbose":
      return parseLspciVerbose(text, file, opts);
    case "lspci-mm":
      return parseLspciMm(text, file, opts);
    case "hwloc-xml":
      return parseHwlocXml(text, file);
    case "nccl-xml":
      return parseNcclXml(text, file);
    case "lscpu":
      return cpuFacts(file, "lscpu", parseLscpu(text, file));
    case "cpuinfo":
      return cpuFacts(file, "cpuinfo", parseCpuinfo(text, file));
    case "lspci-hex": {
      const r = importLspciHex(text, file);
      const facts = factsFromFabric(r.fabric, file, "lspci-hex", r.provenance);
      facts.warnings.push(...r.notes);
      return facts;
    }
    case "machine-file":
      return factsFromFabric(parseMachineFile(text, file).fabric, file, "machine-file");
    default:
      throw notRecognised(text, file);
  }
}

/**
 * Several text sources of one machine (one is fine) → one fabric: each is detected and read, the
 * descriptions are merged attribute by attribute, and the fabric is built. `--cpu` wins over the
 * sources.
 */
export function importTexts(
  inputs: { text: string; file: string }[],
  opts: TextImportOptions = {},
): ImportResult {
  const parts = inputs.map((i) => factsFromText(i.text, i.file, detectFormat(i.text, i.file), opts));
  if (opts.cpu) {
    const cpuPart = emptyFacts("--cpu", "option");
    cpuPart.cpu = { value: opts.cpu, source: { file: "--cpu" }, status: "stated" };
    cpuPart.cpuSources = { vendor: { file: "--cpu" }, family: { file: "--cpu" } };
    // the option is preferred over any file: it goes first and outranks nothing else
    for (const p of parts) p.cpu = undefined;
    parts.unshift(cpuPart);
  }
  if (parts.every((p) => p.functions.size === 0 && p.hostBridges.size === 0))
    throw new InputError(
      `no PCI topology in ${inputs.map((i) => i.file).join(", ")} (only CPU information); add lspci, sysfs, hwloc or NCCL sources`,
    );
  return mergeAndBuild(parts, opts);
}
