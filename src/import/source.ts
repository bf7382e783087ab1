/**
 * `<source>` on the command line: a built-in machine, a machine file, or (as the importers land)
 * any topology source, detected from its name and first bytes.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import { InputError } from "../core/errors.js";
import type { CpuInfo, Fabric } from "../pci/fabric.js";
import { builtinText } from "./builtin.js";
import { importLspciHex } from "./lspci-hex.js";
import { parseMachineFile } from "./machine-file.js";
import { importSysfsPath } from "./sysfs.js";
import { looksLikeArchive } from "./tar.js";

export interface LoadedSource {
  fabric: Fabric;
  /** IOMMU groups the kernel reported, when the source carries them. */
  reportedGroups: { id: number; devices: string[] }[] | null;
  /** One line per input: what it was read as. */
  inputs: { file: string; format: string }[];
  warnings: string[];
}

export type SourceFormat = "builtin" | "machine-file";

function looksLikeMachineFile(text: string): boolean {
  return (
    /^\s*(?:name|hostBridges|description|cpu)\s*:/m.test(text) || /^\s*\{\s*"(?:name|hostBridges)"/.test(text)
  );
}

export function loadSource(spec: string): LoadedSource {
  if (spec.startsWith("builtin:")) {
    const { text, file } = builtinText(spec);
    return {
      fabric: parseMachineFile(text, file).fabric,
      reportedGroups: null,
      inputs: [{ file, format: "builtin" }],
      warnings: [],
    };
  }
  if (!existsSync(spec))
    throw new InputError(`no such file or directory (expected a file, a directory or builtin:<name>)`, spec);
  if (statSync(spec).isDirectory() || /\.(tar|tgz|tar\.gz|tar\.bz2|tbz2?)$/i.test(spec))
    return fromSysfs(spec);
  const buf = readFileSync(spec);
  if (looksLikeArchive(buf)) return fromSysfs(spec);
  if (buf.includes(0))
    throw new InputError("binary file: expected a text topology source, an archive or a machine file", spec);
  const text = buf.toString("utf8");
  if (/\.(ya?ml|json)$/i.test(spec) || looksLikeMachineFile(text)) {
    return {
      fabric: parseMachineFile(text, spec).fabric,
      reportedGroups: null,
      inputs: [{ file: spec, format: "machine-file" }],
      warnings: [],
    };
  }
  if (
    /^(?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7] .*\n(?:[0-9a-f]{2,3}: (?:[0-9a-f]{2} ?)+\n)+/im.test(
      text,
    )
  ) {
    const r = importLspciHex(text, spec);
    return {
      fabric: r.fabric,
      reportedGroups: null,
      inputs: [{ file: spec, format: "lspci-hex" }],
      warnings: [],
    };
  }
  throw new InputError(
    `format not recognised (${basename(spec)}): expected a sysfs tree or archive, lspci -x hex dump, a peerdma machine file (YAML/JSON) or builtin:<name>`,
    spec,
  );
}

function fromSysfs(path: string): LoadedSource {
  const r = importSysfsPath(path);
  return {
    fabric: r.fabric,
    reportedGroups: r.reportedGroups,
    inputs: [{ file: path, format: "sysfs" }],
    warnings: r.notes,
  };
}

/** Several sources of one machine (merged); with one source, that source. */
export function loadSources(specs: string[]): LoadedSource {
  if (specs.length === 0) throw new InputError("no source given (a file, a directory, or builtin:<name>)");
  if (specs.length > 1)
    throw new InputError("merging several sources is not supported by this build yet; give one source");
  return loadSource(specs[0]);
}

/** `--cpu`: "amd-zen", "intel", or "<vendor>:<family>" such as "AuthenticAMD:0x19". */
export function parseCpuOption(text: string): CpuInfo {
  const t = text.trim();
  if (/^amd(-zen)?$/i.test(t)) return { vendor: "AuthenticAMD", family: 0x17, source: "--cpu" };
  if (/^intel$/i.test(t)) return { vendor: "GenuineIntel", family: 6, source: "--cpu" };
  const m = /^([A-Za-z]+):(0x[0-9a-fA-F]+|\d+)$/.exec(t);
  if (!m)
    throw new InputError(
      `--cpu "${text}": expected amd-zen, intel, or <vendor>:<family> (e.g. AuthenticAMD:0x19)`,
    );
  return { vendor: m[1], family: Number(m[2]), source: "--cpu" };
}
