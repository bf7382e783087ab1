/**
 * The host CPU from `lscpu` text or `/proc/cpuinfo`: vendor, family, model and name — what the
 * AMD rule of the P2PDMA allow-list needs (kernel-semantics §2.2).
 */
import { InputError } from "../core/errors.js";
import type { CpuInfo } from "../pci/fabric.js";
import type { ProvenanceSource } from "./provenance.js";

export interface CpuImport {
  cpu: CpuInfo;
  /** Where each field was read: vendor, family, model, modelName. */
  sources: Record<string, ProvenanceSource>;
  warnings: string[];
}

interface Field {
  value: string;
  line: number;
}

function fields(text: string, sep: RegExp): Map<string, Field> {
  const out = new Map<string, Field>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = sep.exec(lines[i]);
    if (!m) continue;
    const key = m[1].trim().toLowerCase();
    // /proc/cpuinfo repeats every key per processor: the first one is the boot CPU's
    if (!out.has(key)) out.set(key, { value: m[2].trim(), line: i + 1 });
  }
  return out;
}

function number(f: Field, file: string, what: string): number {
  const v = f.value;
  const n = /^0x[0-9a-f]+$/i.test(v) ? Number.parseInt(v, 16) : /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isFinite(n)) throw new InputError(`${what} "${v}" is not a number`, `${file}:${f.line}`);
  return n;
}

/** ARM "CPU implementer" codes for the vendors that ship PCIe hosts. */
const ARM_IMPLEMENTERS: Record<number, string> = {
  65: "ARM",
  66: "Broadcom",
  67: "Cavium",
  70: "Fujitsu",
  72: "HiSilicon",
  78: "NVIDIA",
  80: "APM",
  81: "Qualcomm",
  97: "Apple",
  192: "Ampere",
};

function build(
  f: Map<string, Field>,
  keys: { vendor: string; family: string; model: string; name: string },
  file: string,
  what: string,
): CpuImport {
  const warnings: string[] = [];
  const sources: Record<string, ProvenanceSource> = {};
  const vendor = f.get(keys.vendor);
  if (!vendor) {
    // ARM hosts print an implementer code instead of a vendor string
    const impl = f.get("cpu implementer");
    if (impl) {
      const code = number(impl, file, "CPU implementer");
      sources.vendor = { file, line: impl.line, field: "CPU implementer" };
      const arch = f.get("cpu architecture");
      if (arch) sources.family = { file, line: arch.line, field: "CPU architecture" };
      return {
        cpu: {
          vendor: ARM_IMPLEMENTERS[code] ?? `arm-implementer-0x${code.toString(16)}`,
          family: arch ? number(arch, file, "CPU architecture") : 0,
          source: `${what} ${file}`,
        },
        sources,
        warnings: ["ARM CPU: the P2PDMA allow-list's CPU rule (AMD Zen) does not apply"],
      };
    }
    throw new InputError(`no "${keys.vendor}" line: expected ${what} text naming the CPU vendor`, file);
  }
  sources.vendor = { file, line: vendor.line, field: keys.vendor };
  const fam = f.get(keys.family);
  let family = 0;
  if (fam) {
    family = number(fam, file, keys.family);
    sources.family = { file, line: fam.line, field: keys.family };
  } else warnings.push(`${file}: no "${keys.family}" line; CPU family unknown (taken as 0)`);
  const cpu: CpuInfo = { vendor: vendor.value, family, source: `${what} ${file}` };
  const model = f.get(keys.model);
  if (model && /^(0x)?[0-9a-f]+$/i.test(model.value)) {
    cpu.model = number(model, file, keys.model);
    sources.model = { file, line: model.line, field: keys.model };
  }
  const name = f.get(keys.name);
  if (name) {
    cpu.modelName = name.value;
    sources.modelName = { file, line: name.line, field: keys.name };
  }
  return { cpu, sources, warnings };
}

/** `lscpu` output ("Vendor ID:", "CPU family:", "Model:", "Model name:"; any indentation). */
export function parseLscpu(text: string, file = "<lscpu>"): CpuImport {
  const f = fields(text, /^\s*([A-Za-z][A-Za-z0-9 ()/_-]*?):\s*(.*)$/);
  return build(
    f,
    { vendor: "vendor id", family: "cpu family", model: "model", name: "model name" },
    file,
    "lscpu",
  );
}

/** `/proc/cpuinfo` ("vendor_id\t: …", "cpu family\t: …"); the first processor counts. */
export function parseCpuinfo(text: string, file = "/proc/cpuinfo"): CpuImport {
  const f = fields(text, /^([A-Za-z][A-Za-z0-9 _]*?)\s*:\s?(.*)$/);
  return build(
    f,
    { vendor: "vendor_id", family: "cpu family", model: "model", name: "model name" },
    file,
    "/proc/cpuinfo",
  );
}
