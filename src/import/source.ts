/**
 * `<source>` on the command line: a built-in machine, a machine file, a sysfs tree or archive, or
 * any text topology source (lspci -t/-v/-mm/-x, hwloc XML, NCCL XML, lscpu, /proc/cpuinfo),
 * detected from its name and first bytes. Several sources of one machine are merged attribute by
 * attribute, and every attribute keeps where it came from.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { InputError } from "../core/errors.js";
import type { CpuInfo, Fabric } from "../pci/fabric.js";
import { builtinText } from "./builtin.js";
import { detectFormat, factsFromText } from "./detect.js";
import { parseMachineFile } from "./machine-file.js";
import {
  type Conflict,
  factsFromFabric,
  type MachineFacts,
  mergeAndBuild,
  type UnknownAttr,
} from "./merge.js";
import { importSysfsPath } from "./sysfs.js";
import { looksLikeArchive } from "./tar.js";

export interface LoadedSource {
  fabric: Fabric;
  /** IOMMU groups the kernel reported, when the source carries them. */
  reportedGroups: { id: number; devices: string[] }[] | null;
  /** One line per input: what it was read as. */
  inputs: { file: string; format: string }[];
  warnings: string[];
  /** Attributes no source stated, and what the model assumed for them. */
  unknowns: UnknownAttr[];
  /** Attributes the sources disagree on (the first source wins). */
  conflicts: Conflict[];
}

export interface LoadOptions {
  cpu?: CpuInfo;
  /** What ports without stated ACS get: "absent" (default) or "isolating". */
  assumeAcs?: "absent" | "isolating";
}

type Loaded =
  | {
      kind: "fabric";
      fabric: Fabric;
      format: string;
      file: string;
      reported: LoadedSource["reportedGroups"];
      warnings: string[];
    }
  | { kind: "text"; text: string; file: string };

const ARCHIVE_NAME = /\.(tar|tgz|tar\.gz|tar\.bz2|tbz2?)$/i;

function read(spec: string): Loaded {
  if (spec.startsWith("builtin:")) {
    const { text, file } = builtinText(spec);
    return {
      kind: "fabric",
      fabric: parseMachineFile(text, file).fabric,
      format: "builtin",
      file,
      reported: null,
      warnings: [],
    };
  }
  if (!existsSync(spec))
    throw new InputError("no such file or directory (expected a file, a directory or builtin:<name>)", spec);
  if (statSync(spec).isDirectory() || ARCHIVE_NAME.test(spec)) return sysfs(spec);
  const buf = readFileSync(spec);
  if (looksLikeArchive(buf)) return sysfs(spec);
  if (buf.includes(0))
    throw new InputError(
      "binary file: expected a text topology source, a sysfs archive or a machine file",
      spec,
    );
  const text = buf.toString("utf8");
  if (/\.(ya?ml|json)$/i.test(spec) || detectFormat(text, spec) === "machine-file")
    return {
      kind: "fabric",
      fabric: parseMachineFile(text, spec).fabric,
      format: "machine-file",
      file: spec,
      reported: null,
      warnings: [],
    };
  return { kind: "text", text, file: spec };
}

function sysfs(path: string): Loaded {
  const r = importSysfsPath(path);
  return {
    kind: "fabric",
    fabric: r.fabric,
    format: "sysfs",
    file: path,
    reported: r.reportedGroups,
    warnings: r.notes,
  };
}

export function loadSources(specs: string[], opts: LoadOptions = {}): LoadedSource {
  if (specs.length === 0) throw new InputError("no source given (a file, a directory, or builtin:<name>)");
  const loaded = specs.map(read);
  // One source that builds a fabric by itself keeps every detail (machine files, sysfs).
  if (loaded.length === 1 && loaded[0].kind === "fabric") {
    const l = loaded[0];
    if (opts.cpu) l.fabric.cpu = opts.cpu;
    return {
      fabric: l.fabric,
      reportedGroups: l.reported,
      inputs: [{ file: l.file, format: l.format }],
      warnings: l.warnings,
      unknowns: [],
      conflicts: [],
    };
  }
  const parts: MachineFacts[] = loaded.map((l) =>
    l.kind === "fabric" ? factsFromFabric(l.fabric, l.file, l.format) : factsFromText(l.text, l.file),
  );
  if (opts.cpu) {
    for (const p of parts) p.cpu = undefined;
    parts[0].cpu = { value: opts.cpu, source: { file: "--cpu" }, status: "stated" };
  }
  if (parts.every((p) => p.functions.size === 0 && p.hostBridges.size === 0))
    throw new InputError(
      `no PCI topology in ${specs.join(", ")} (only CPU information); add lspci, sysfs, hwloc or NCCL sources`,
    );
  const r = mergeAndBuild(parts, { assumeAcs: opts.assumeAcs });
  if (r.cpu) r.fabric.cpu = r.cpu;
  let reported = r.reportedGroups;
  for (const l of loaded) if (!reported && l.kind === "fabric" && l.reported) reported = l.reported;
  return {
    fabric: r.fabric,
    reportedGroups: reported,
    inputs: loaded.map((l, i) => ({
      file: l.file,
      format: l.kind === "fabric" ? l.format : (parts[i].inputs[0]?.format ?? "text"),
    })),
    warnings: [...loaded.flatMap((l) => (l.kind === "fabric" ? l.warnings : [])), ...r.warnings],
    unknowns: r.unknowns,
    conflicts: r.conflicts,
  };
}

/** One source (kept for callers that have exactly one). */
export function loadSource(spec: string, opts: LoadOptions = {}): LoadedSource {
  return loadSources([spec], opts);
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
