import { InputError } from "../core/errors.js";
import { parseSlotFn } from "../pci/bdf.js";
import {
  acsCap,
  afCap,
  ariCap,
  atsCap,
  buildConfigSpace,
  type CapabilityHelper,
  dsnCap,
  msixCap,
  pasidCap,
  pcieCap,
  pmCap,
  priCap,
  sriovCap,
  tphRequesterCap,
} from "../pci/capabilities.js";
import type { ConfigSpace } from "../pci/config-space.js";
import {
  HostBridge,
  IORESOURCE_IO,
  IORESOURCE_MEM,
  IORESOURCE_MEM_64,
  IORESOURCE_PREFETCH,
  type PciBus,
  type PciDev,
} from "../pci/device.js";
import { Fabric } from "../pci/fabric.js";
import { PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_EXP_TYPE } from "../pci/regs.js";
import { buildVpd } from "../pci/vpd.js";
import {
  type MachineDescription,
  type MachineFunction,
  type MachineFunctionKind,
  MachineSchema,
} from "./machine-schema.js";
import { lineOf, parseYamlText, validate } from "./yaml-source.js";

interface KindTraits {
  pcieType: number | null;
  bridge: boolean;
  classCode: number;
}

const KIND_TRAITS: Record<MachineFunctionKind, KindTraits> = {
  endpoint: { pcieType: PCI_EXP_TYPE.ENDPOINT, bridge: false, classCode: 0xff0000 },
  "legacy-endpoint": { pcieType: PCI_EXP_TYPE.LEG_END, bridge: false, classCode: 0xff0000 },
  rciep: { pcieType: PCI_EXP_TYPE.RC_END, bridge: false, classCode: 0xff0000 },
  "root-port": { pcieType: PCI_EXP_TYPE.ROOT_PORT, bridge: true, classCode: 0x060400 },
  "upstream-port": { pcieType: PCI_EXP_TYPE.UPSTREAM, bridge: true, classCode: 0x060400 },
  "downstream-port": { pcieType: PCI_EXP_TYPE.DOWNSTREAM, bridge: true, classCode: 0x060400 },
  "pcie-to-pci-bridge": { pcieType: PCI_EXP_TYPE.PCI_BRIDGE, bridge: true, classCode: 0x060400 },
  "pci-bridge": { pcieType: null, bridge: true, classCode: 0x060400 },
  "pci-device": { pcieType: null, bridge: false, classCode: 0xff0000 },
  "host-bridge": { pcieType: null, bridge: false, classCode: 0x060000 },
};

/** Bump allocator for BARs without an explicit address, per host bridge. */
class BarAllocator {
  private next32: bigint;
  private next64: bigint;
  private nextIo = 0x1000n;
  constructor(index: number) {
    this.next32 = 0xc000_0000n + BigInt(index) * 0x0200_0000n;
    this.next64 = 0x4000_0000_0000n + BigInt(index) * 0x0100_0000_0000n;
  }
  alloc(kind: "mem32" | "mem64" | "io", size: bigint): bigint {
    const align = (v: bigint) => (v + size - 1n) & ~(size - 1n);
    if (kind === "io") {
      const a = align(this.nextIo);
      this.nextIo = a + size;
      return a;
    }
    if (kind === "mem32") {
      const a = align(this.next32);
      this.next32 = a + size;
      return a;
    }
    const a = align(this.next64);
    this.next64 = a + size;
    return a;
  }
}

function capabilitiesOf(f: MachineFunction, traits: KindTraits, isVf: boolean): CapabilityHelper[] {
  const caps: CapabilityHelper[] = [];
  if (f.pm !== false && (f.pm || traits.pcieType !== null))
    caps.push(pmCap({ noSoftReset: f.pm?.noSoftReset ?? false }));
  if (f.af) caps.push(afCap({ flr: f.af.flr, tp: f.af.tp }));
  if (f.msix) caps.push(msixCap({ tableSize: f.msix }));
  if (traits.pcieType !== null) {
    caps.push(
      pcieCap({
        type: traits.pcieType,
        link: isVf ? undefined : f.link,
        mpsSupported: f.mpsSupported,
        mps: f.mps,
        mrrs: f.mrrs,
        flr: f.flr ?? (!traits.bridge && traits.pcieType !== null),
        rcb128: f.rcb === 128,
        tenBitTag: f.tenBitTag,
        extTag: f.extTag,
        tphCompleter: f.tphCompleter,
        eeTlpPrefix: f.eeTlpPrefix,
        slot: traits.pcieType === PCI_EXP_TYPE.ROOT_PORT || traits.pcieType === PCI_EXP_TYPE.DOWNSTREAM,
      }),
    );
  }
  const ext = traits.pcieType !== null;
  const needExt = (what: string) => {
    if (!ext)
      throw new InputError(`${what} is a PCIe extended capability; kind "${f.kind}" is conventional PCI`);
  };
  if (f.acs) {
    needExt("acs");
    caps.push(acsCap({ cap: f.acs.cap, ctrl: f.acs.ctrl, egressBits: f.acs.egressBits }));
  }
  if (f.ari) {
    needExt("ari");
    caps.push(ariCap());
  }
  if (f.ats) {
    needExt("ats");
    caps.push(atsCap());
  }
  if (f.pri) {
    needExt("pri");
    caps.push(priCap());
  }
  if (f.pasid) {
    needExt("pasid");
    caps.push(pasidCap());
  }
  if (f.serial !== undefined) {
    needExt("serial");
    caps.push(dsnCap(f.serial));
  }
  if (f.tph) {
    needExt("tph");
    caps.push(
      tphRequesterCap({
        noStMode: f.tph.modes.includes("no-st"),
        intVectorMode: f.tph.modes.includes("interrupt-vector"),
        deviceSpecificMode: f.tph.modes.includes("device-specific"),
        extendedRequester: f.tph.extendedRequester,
        stTable: f.tph.stTable,
        stTableSize: f.tph.stTableSize,
      }),
    );
  }
  if (f.sriov && !isVf) {
    needExt("sriov");
    caps.push(sriovCap(f.sriov));
  }
  return caps;
}

function vpdBytes(v: NonNullable<MachineFunction["vpd"]>): Uint8Array {
  if ("hex" in v) return Uint8Array.from(v.hex.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
  return buildVpd({
    idString: v.idString,
    readOnly: v.readOnly ? Object.entries(v.readOnly) : undefined,
    readWrite: v.readWrite ? Object.entries(v.readWrite) : undefined,
  });
}

interface BuildCtx {
  fabric: Fabric;
  alloc: BarAllocator;
  nextBus: { n: number };
  iommuDefault: boolean;
  pendingAliases: { dev: PciDev; aliases: string[]; where: string }[];
}

function applyBars(dev: PciDev, bars: MachineFunction["bars"], ctx: BuildCtx, where: string): void {
  const used = new Set<number>();
  for (const b of bars) {
    const slots = b.type === "mem64" ? [b.index, b.index + 1] : [b.index];
    for (const s of slots)
      if (used.has(s)) throw new InputError(`BAR${b.index} overlaps BAR register ${s} already in use`, where);
    for (const s of slots) used.add(s);
    const start = b.address ?? ctx.alloc.alloc(b.type, b.size);
    let flags = b.type === "io" ? IORESOURCE_IO : IORESOURCE_MEM;
    if (b.type === "mem64") flags |= IORESOURCE_MEM_64;
    if (b.prefetch) flags |= IORESOURCE_PREFETCH;
    dev.resources[b.index] = { index: b.index, flags, start, len: b.size };
    if (b.name) dev.barNames[b.index] = b.name;
    dev.programBar(b.index);
  }
}

function buildFunction(
  f: MachineFunction,
  bus: PciBus,
  siblings: MachineFunction[],
  ctx: BuildCtx,
  where: string,
) {
  const traits = KIND_TRAITS[f.kind];
  const devfn = parseSlotFn(f.at, `${where}.at`);
  const slot = devfn >> 3;
  const hasSiblings = siblings.some((s) => s !== f && parseSlotFn(s.at) >> 3 === slot);
  // Function 0 of a multi-function device sets header bit 7; later functions are left as
  // QEMU and ICH leave them (clear) unless the file says otherwise.
  const mfd = hasSiblings && (devfn & 7) === 0 ? 0x80 : 0;
  const headerType = f.headerType ?? (traits.bridge ? 1 : 0) | mfd;
  if (f.below && !traits.bridge)
    throw new InputError(`kind "${f.kind}" is not a bridge; it cannot have "below"`, where);
  let caps: CapabilityHelper[];
  try {
    caps = capabilitiesOf(f, traits, false);
  } catch (e) {
    if (e instanceof InputError) throw new InputError(e.message, where);
    throw e;
  }
  const memoryEnabled = f.memoryEnabled ?? true;
  let cfg: ConfigSpace;
  try {
    cfg = buildConfigSpace(
      {
        vendor: f.id.vendor,
        device: f.id.device,
        classCode: f.class ?? traits.classCode,
        revision: f.revision,
        headerType,
        subsystemVendor: f.subsystem?.vendor,
        subsystemDevice: f.subsystem?.device,
        command: (memoryEnabled ? PCI_COMMAND_MEMORY : 0) | PCI_COMMAND_MASTER,
      },
      caps,
    );
  } catch (e) {
    if (e instanceof InputError) throw new InputError(e.message, where);
    throw e;
  }
  const dev = ctx.fabric.addFunction(bus, devfn, cfg);
  dev.name = f.name ?? "";
  dev.driver = f.driver ?? null;
  dev.behindIommu = f.iommu ?? ctx.iommuDefault;
  if (f.dmaMaskBits) dev.dmaMask = (1n << BigInt(f.dmaMaskBits)) - 1n;
  dev.acsQuirk = f.acsQuirk;
  dev.nonMappableBars = f.nonMappableBars ?? false;
  dev.numaNode = f.numaNode ?? bus.hostBridge.numaNode;
  if (f.vpd) dev.vpd = vpdBytes(f.vpd);
  if (f.dmaEngineGBps) dev.perf.dmaEngineGBps = f.dmaEngineGBps;
  if (f.maxOutstandingReads) dev.perf.maxOutstandingReads = f.maxOutstandingReads;
  if (f.dmaAliases) ctx.pendingAliases.push({ dev, aliases: f.dmaAliases, where: `${where}.dmaAliases` });
  applyBars(dev, f.bars, ctx, `${where}.bars`);
  if (f.sriov) buildVfs(dev, f, ctx, `${where}.sriov`);
  if (traits.bridge) {
    const number = f.secondaryBus ?? ctx.nextBus.n;
    if (number > 0xff) throw new InputError(`bus number ${number} exceeds 0xff`, where);
    ctx.nextBus.n = Math.max(ctx.nextBus.n, number + 1);
    const child = ctx.fabric.addSecondaryBus(dev, number);
    buildBus(f.below ?? [], child, ctx, `${where}.below`);
  }
}

/** Builds a bus's functions in devfn order, so auto bus numbers follow firmware's depth-first walk. */
function buildBus(fns: MachineFunction[], bus: PciBus, ctx: BuildCtx, where: string): void {
  const order = fns.map((f, i) => ({ f, i, devfn: parseSlotFn(f.at, `${where}[${i}].at`) }));
  order.sort((a, b) => a.devfn - b.devfn);
  for (const { f, i } of order) buildFunction(f, bus, fns, ctx, `${where}[${i}]`);
}

function buildVfs(pf: PciDev, f: MachineFunction, ctx: BuildCtx, where: string): void {
  const s = f.sriov!;
  const pfRid = (pf.busNumber << 8) | pf.devfn;
  for (let n = 0; n < s.numVfs; n++) {
    const rid = pfRid + s.vfOffset + n * s.vfStride;
    if (rid >> 8 !== pf.busNumber)
      throw new InputError(
        `VF ${n} would sit on bus ${(rid >> 8).toString(16)}; VFs on a bus other than the PF's are not modelled`,
        where,
      );
    const cfg = buildConfigSpace(
      {
        vendor: pf.vendor,
        device: s.vfDevice,
        classCode: pf.classCode,
        headerType: 0,
        command: PCI_COMMAND_MASTER,
      },
      [pcieCap({ type: PCI_EXP_TYPE.ENDPOINT, flr: true })],
    );
    const vf = ctx.fabric.addFunction(pf.bus, rid & 0xff, cfg);
    vf.isVirtfn = true;
    vf.physfn = pf;
    vf.driver = s.vfDriver ?? null;
    vf.behindIommu = pf.behindIommu;
    vf.numaNode = pf.numaNode;
    vf.name = `${pf.name || pf.bdf} VF${n}`;
    pf.virtfns.push(vf);
    for (const b of s.vfBars) {
      const start = ctx.alloc.alloc(b.type, b.size);
      let flags = b.type === "io" ? IORESOURCE_IO : IORESOURCE_MEM;
      if (b.type === "mem64") flags |= IORESOURCE_MEM_64;
      if (b.prefetch) flags |= IORESOURCE_PREFETCH;
      vf.resources[b.index] = { index: b.index, flags, start, len: b.size };
    }
  }
}

/** Builds a fabric from an already validated machine description. */
export function fabricFromDescription(m: MachineDescription): Fabric {
  const fabric = new Fabric();
  fabric.name = m.name;
  if (m.cpu)
    fabric.cpu = {
      vendor: m.cpu.vendor,
      family: m.cpu.family,
      model: m.cpu.model,
      modelName: m.cpu.modelName,
      source: "machine file",
    };
  const pending: BuildCtx["pendingAliases"] = [];
  m.hostBridges.forEach((h, i) => {
    const hb = fabric.addHostBridge(
      new HostBridge(
        h.domain,
        h.bus,
        h.windows.map((w) => ({ cpuBase: w.cpuBase, size: w.size, busOffset: w.busOffset })),
        h.numaNode,
        h.name ?? "",
        { p2pSplitBytes: h.p2pSplitBytes, p2pForwardGBps: h.p2pForwardGBps },
      ),
    );
    const ctx: BuildCtx = {
      fabric,
      alloc: new BarAllocator(i),
      nextBus: { n: h.bus + 1 },
      iommuDefault: m.iommu?.enabled ?? true,
      pendingAliases: pending,
    };
    buildBus(h.functions, hb.rootBus, ctx, `hostBridges[${i}].functions`);
  });
  for (const p of pending)
    for (const a of p.aliases) {
      const devfn = parseSlotFn(a, p.where);
      p.dev.dmaAliases.push(devfn);
    }
  fabric.finalizeBusNumbers();
  return fabric;
}

/**
 * Parses and validates machine-file text (YAML; JSON is YAML too) and builds the fabric.
 * Errors are {@link InputError}s naming `file`, the line and the path inside the file.
 */
export function parseMachineFile(
  text: string,
  file = "<machine>",
): { description: MachineDescription; fabric: Fabric } {
  const raw = parseYamlText(text, file);
  const data = validate(MachineSchema, raw, text, file);
  try {
    return { description: data, fabric: fabricFromDescription(data) };
  } catch (e) {
    if (e instanceof InputError) {
      const m = /^(hostBridges\[[^\s:]*)/.exec(e.where ?? "");
      const path = m ? pathFromString(m[1]) : [];
      const line = path.length ? lineOf(text, path) : undefined;
      const inner = e.where ? `${e.where}: ` : "";
      throw new InputError(
        e.message.startsWith(inner) ? e.message.slice(inner.length) : e.message,
        `${file}${line ? `:${line}` : ""}${e.where ? ` ${e.where}` : ""}`,
      );
    }
    throw e;
  }
}

function pathFromString(s: string): PropertyKey[] {
  const out: PropertyKey[] = [];
  for (const m of s.matchAll(/([A-Za-z]+)|\[(\d+)\]/g)) out.push(m[1] ?? Number(m[2]));
  return out;
}
