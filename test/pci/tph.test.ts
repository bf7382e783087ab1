import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { InputError, KernelError } from "../../src/core/errors.js";
import {
  ConfigSpace,
  decodeTphControl,
  describeTph,
  describeTphCompleter,
  PCI_EXP_TYPE,
  PCI_MSIX_ENTRY_VECTOR_CTRL,
  PCI_TPH_CTRL,
  PCI_TPH_ST_DS_MODE,
  PCI_TPH_ST_IV_MODE,
  PCI_TPH_ST_NS_MODE,
  pcieFindRootPort,
  readTphCapability,
  TPH_MEM_TYPE_PM,
  TPH_MEM_TYPE_VM,
  TphCore,
  tphStEntryOffset,
} from "../../src/pci/index.js";
import { BAR0, tphMachine } from "../helpers/tph-machine.js";

const ctrlOf = (m: { dev: { config: ConfigSpace }; cap: number }) =>
  m.dev.config.read32(m.cap + PCI_TPH_CTRL);

/** Runs `f`, asserting it throws a KernelError with this errno; returns the error. */
function kfail(f: () => unknown, errno: string, check?: RegExp): KernelError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof KernelError, `expected KernelError ${errno}, got ${String(caught)}`);
  assert.equal(caught.errnoName, errno, caught.message);
  if (check) assert.match(caught.check, check);
  return caught;
}

/** The body lines of describeTph without lspci's indentation. */
const body = (lines: string[] | null) => (lines ?? []).slice(1).map((l) => l.replace(/^\t\t/, ""));

/* ---- 12.1: capability decode and lspci text ---- */

test("TPH-1 cap 0x003F0307: NS, IV, DS, extended, table in capability, 64 entries; lspci lines", () => {
  const m = tphMachine({ tph: { capReg: 0x003f0307 } });
  const c = readTphCapability(m.dev)!;
  assert.equal(c.capReg, 0x003f0307);
  assert.deepEqual(
    [c.noStMode, c.intVectorMode, c.deviceSpecificMode, c.extendedRequester],
    [true, true, true, true],
  );
  assert.equal(c.stTableLocation, "cap");
  assert.equal(c.stTableLoc, 1);
  assert.equal(c.stTableEntries, 64);
  assert.equal(c.linuxStTableSize, 64);
  assert.equal(m.core.pcieTphGetStTableSize(m.dev), 64);
  assert.equal(m.core.pcieTphGetStTableLoc(m.dev), 1);
  assert.deepEqual(body(describeTph(m.dev)), [
    "Interrupt vector mode supported",
    "Device specific mode supported",
    "Extended requester support",
    "Steering table in TPH capability structure",
  ]);
});

test("TPH-2 cap 0x07FF0405: NS and DS, table in MSI-X, field 0x7FF = 2048 entries, Linux size 0", () => {
  const m = tphMachine({ tph: { capReg: 0x07ff0405 } });
  const c = readTphCapability(m.dev)!;
  assert.deepEqual(
    [c.noStMode, c.intVectorMode, c.deviceSpecificMode, c.extendedRequester],
    [true, false, true, false],
  );
  assert.equal(c.stTableLocation, "msix");
  assert.equal(c.stTableSizeField, 0x7ff);
  assert.equal(c.stTableEntries, 2048);
  assert.equal(c.linuxStTableSize, 0);
  assert.equal(m.core.pcieTphGetStTableSize(m.dev), 0);
  assert.equal(m.core.pcieTphGetStTableLoc(m.dev), 2);
  assert.deepEqual(body(describeTph(m.dev)), [
    "Device specific mode supported",
    "Steering table in MSI-X table",
  ]);
});

test("TPH-3 cap 0x00000001: No ST only, no table; enable(DS) → -EINVAL", () => {
  const m = tphMachine({ tph: { capReg: 0x00000001 } });
  const c = readTphCapability(m.dev)!;
  assert.deepEqual(
    [c.noStMode, c.intVectorMode, c.deviceSpecificMode, c.extendedRequester],
    [true, false, false, false],
  );
  assert.equal(c.stTableLocation, "none");
  assert.deepEqual(body(describeTph(m.dev)), ["No steering table available"]);
  kfail(() => m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE), "EINVAL", /ST mode not supported/);
  assert.equal(m.core.state(m.dev).enabled, false);
  assert.equal(ctrlOf(m), 0);
});

test("TPH-4 cap 0x00000601: reserved table location; Linux table size 0", () => {
  const m = tphMachine({ tph: { capReg: 0x00000601 } });
  assert.equal(readTphCapability(m.dev)!.stTableLocation, "reserved");
  assert.equal(m.core.pcieTphGetStTableLoc(m.dev), 3);
  assert.equal(m.core.pcieTphGetStTableSize(m.dev), 0);
  assert.deepEqual(body(describeTph(m.dev)), ["Reserved steering table location"]);
});

test("TPH-5 Control 0x00000302 decodes as mode DS (2), Requester Enable 3", () => {
  assert.deepEqual(decodeTphControl(0x00000302), { stModeSelect: 2, requesterEnable: 3 });
  const m = tphMachine({ tph: { deviceSpecificMode: true, control: 0x302 } });
  assert.deepEqual(readTphCapability(m.dev)!.control, { stModeSelect: 2, requesterEnable: 3 });
});

test("§2.4 lspci heading: three hex digits, ' v<ver>' only at -vv; nothing printed for No ST, size, control", () => {
  // Hand-made list: a DSN capability at 0x100 pointing at TPH at 0x1a0.
  const cfg = new ConfigSpace(4096);
  cfg.write32(0x100, 0x0003 | (1 << 16) | (0x1a0 << 20));
  cfg.write32(0x1a0, 0x0017 | (1 << 16));
  cfg.write32(0x1a4, 0x003f0307);
  cfg.write32(0x1a8, 0x00000302);
  const vv = describeTph(cfg)!;
  assert.equal(vv[0], "\tCapabilities: [1a0 v1] Transaction Processing Hints");
  assert.ok(vv.slice(1).every((l) => l.startsWith("\t\t") && !l.startsWith("\t\t\t")));
  assert.equal(vv.length, 5);
  assert.deepEqual(describeTph(cfg, 1), ["\tCapabilities: [1a0] Transaction Processing Hints"]);
  assert.deepEqual(describeTph(cfg, 0), []);
  assert.equal(describeTph(new ConfigSpace(4096)), null);
  // A dump that ends inside the capability: lspci prints <unreadable>.
  const short = new ConfigSpace(cfg.bytes.slice(0, 0x1a6));
  assert.deepEqual(describeTph(short), [
    "\tCapabilities: [1a0 v1] Transaction Processing Hints",
    "\t\t<unreadable>",
  ]);
  assert.throws(() => readTphCapability(short), InputError);
});

/* ---- 12.1: pcie_enable_tph ---- */

test("TPH-6 Extended-capable device, Root Port completer 01 → enable(DS) writes Control 0x102, req_type 1", () => {
  const m = tphMachine({ rpCompleter: 1, tph: { deviceSpecificMode: true, extendedRequester: true } });
  m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE);
  assert.equal(ctrlOf(m), 0x00000102);
  assert.deepEqual(m.core.state(m.dev), { enabled: true, mode: 2, reqType: 1 });
  assert.equal(m.core.pcieTphEnabledReqType(m.dev), 1);
});

test("TPH-7 Root Port completer 00, or no Root Port → -EINVAL, Control unchanged (mode stays stored)", () => {
  for (const rpCompleter of [0, null]) {
    const m = tphMachine({
      rpCompleter,
      tph: { deviceSpecificMode: true, extendedRequester: true, control: 0 },
    });
    if (rpCompleter === null) assert.equal(pcieFindRootPort(m.dev), null);
    kfail(() => m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE), "EINVAL", /not a TPH completer/);
    assert.equal(ctrlOf(m), 0);
    // §4 step 4: the mode was stored before the request-type check and stays.
    assert.deepEqual(m.core.state(m.dev), { enabled: false, mode: 2, reqType: 0 });
    assert.equal(m.core.pcieTphEnabledReqType(m.dev), 0);
  }
});

test("TPH-8 Root Port completer 10 (reserved), Extended device → Control 0x202, enabled_req_type 2 (quirk)", () => {
  const m = tphMachine({ rpCompleter: 2, tph: { deviceSpecificMode: true, extendedRequester: true } });
  m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE);
  assert.equal(ctrlOf(m), 0x00000202);
  assert.equal(m.core.pcieTphEnabledReqType(m.dev), 2);
  // The same Root Port with a non-Extended requester: min(1, 2) = 1.
  const n = tphMachine({ rpCompleter: 2, tph: { deviceSpecificMode: true } });
  n.core.pcieEnableTph(n.dev, PCI_TPH_ST_DS_MODE);
  assert.equal(ctrlOf(n), 0x00000102);
});

test("TPH-9 RC-integrated endpoint with Extended capability → no Root Port check, Control 0x302", () => {
  const m = tphMachine({
    rpCompleter: null,
    type: PCI_EXP_TYPE.RC_END,
    tph: { deviceSpecificMode: true, extendedRequester: true },
  });
  assert.equal(m.dev.kind, "rciep");
  m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE);
  assert.equal(ctrlOf(m), 0x00000302);
  assert.equal(m.core.pcieTphEnabledReqType(m.dev), 3);
});

test("TPH-10 enable twice → -EBUSY; notph → -EINVAL; mode 3 → -EINVAL; mode is masked with 7", () => {
  const m = tphMachine({ tph: { deviceSpecificMode: true, intVectorMode: true } });
  m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE);
  kfail(() => m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE), "EBUSY");
  assert.equal(ctrlOf(m), 0x102);

  const off = tphMachine({ tph: { deviceSpecificMode: true }, core: { notph: true } });
  kfail(() => off.core.pcieEnableTph(off.dev, PCI_TPH_ST_DS_MODE), "EINVAL", /notph/);
  assert.equal(ctrlOf(off), 0);

  const all = tphMachine({ tph: { capReg: 0x00000107 } });
  for (const mode of [3, 4, 5, 6, 7]) kfail(() => all.core.pcieEnableTph(all.dev, mode), "EINVAL");
  // 9 & 7 = 1 (Interrupt Vector), which this device supports.
  all.core.pcieEnableTph(all.dev, 9);
  assert.equal(all.core.state(all.dev).mode, PCI_TPH_ST_IV_MODE);

  const none = tphMachine({ tph: null });
  kfail(() => none.core.pcieEnableTph(none.dev, PCI_TPH_ST_NS_MODE), "EINVAL", /no TPH capability/);
});

test("§4 step 8: Control is read-modify-write (reserved bits kept); disable writes 0 and clears the state", () => {
  const m = tphMachine({ tph: { deviceSpecificMode: true, control: 0xf0_0000_f8 } });
  m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE);
  assert.equal(ctrlOf(m), 0xf0_0001_fa, "bits 2:0 and 9:8 replaced, the rest kept");
  m.core.pcieDisableTph(m.dev);
  assert.equal(ctrlOf(m), 0);
  assert.deepEqual(m.core.state(m.dev), { enabled: false, mode: 0, reqType: 0 });
  // Disable when not enabled writes nothing.
  m.dev.config.write32(m.cap + PCI_TPH_CTRL, 0x55);
  m.core.pcieDisableTph(m.dev);
  assert.equal(ctrlOf(m), 0x55);
});

test("§4 state is per machine: a second TphCore on the same fabric starts disabled", () => {
  const m = tphMachine();
  m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE);
  const other = new TphCore(m.fabric);
  assert.equal(other.state(m.dev).enabled, false);
  assert.equal(other.pcieTphEnabledReqType(m.dev), 0);
  assert.equal(m.core.pcieTphEnabledReqType(m.dev), 1);
});

/* ---- 12.1: pcie_tph_set_st_entry ---- */

test("TPH-11 table in capability (64): set_st_entry(5, 0x00F0) writes cap+0x0C+10, Control restored; index 64 → -ENXIO, TPH off", () => {
  const m = tphMachine({ tph: { deviceSpecificMode: true, stTable: "cap", stTableSize: 64 } });
  m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE);
  m.core.pcieTphSetStEntry(m.dev, 5, 0x00f0);
  assert.equal(m.dev.config.read16(m.cap + 0x0c + 10), 0x00f0);
  assert.equal(tphStEntryOffset(m.cap, 5), m.cap + 0x16);
  assert.equal(ctrlOf(m), 0x102);
  kfail(() => m.core.pcieTphSetStEntry(m.dev, 64, 0x11), "ENXIO");
  assert.equal(ctrlOf(m), 0);
  assert.equal(m.core.state(m.dev).enabled, false);
  // Not enabled any more: the next call fails before touching anything.
  kfail(() => m.core.pcieTphSetStEntry(m.dev, 5, 0x22), "EINVAL", /not enabled/);
  assert.equal(m.dev.config.read16(m.cap + 0x16), 0x00f0);
});

test("TPH-12 mode No ST: set_st_entry returns 0 and writes nothing", () => {
  const m = tphMachine({ tph: { noStMode: true, deviceSpecificMode: true, stTable: "cap", stTableSize: 8 } });
  m.core.pcieEnableTph(m.dev, PCI_TPH_ST_NS_MODE);
  assert.equal(ctrlOf(m), 0x100);
  const before = new Uint8Array(m.dev.config.bytes);
  m.core.pcieTphSetStEntry(m.dev, 3, 0xabcd);
  m.core.pcieTphSetStEntry(m.dev, 1000, 0xabcd);
  assert.deepEqual(m.dev.config.bytes, before);
});

test("§4 set_st_entry: no table (location none or reserved) → -EINVAL and TPH disabled", () => {
  for (const capReg of [0x00000005, 0x00000605]) {
    const m = tphMachine({ tph: { capReg } });
    m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE);
    kfail(() => m.core.pcieTphSetStEntry(m.dev, 0, 1), "EINVAL", /no ST table/);
    assert.equal(ctrlOf(m), 0);
    assert.equal(m.core.state(m.dev).enabled, false);
  }
});

function msixMachine() {
  return tphMachine({
    tph: { deviceSpecificMode: true, intVectorMode: true, stTable: "msix", stTableSize: 8 },
    msix: { tableSize: 8, tableBir: 0, tableOffset: 0x2000 },
  });
}

test("TPH-13 table in MSI-X, 8 vectors enabled: set_st_entry(3, 0xABCD) → vector 3 Vector Control 31:16 = 0xABCD, mask kept", () => {
  const m = msixMachine();
  m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE);
  m.core.pciEnableMsix(m.dev, 8);
  const t = m.core.msixTable(m.dev)!;
  assert.equal(t.entryBusAddress(3), BAR0 + 0x2000n + 0x30n);
  assert.equal(t.vectorCtrl(3) & 1, 1, "vectors come out of reset masked");
  m.core.pcieTphSetStEntry(m.dev, 3, 0xabcd);
  assert.equal(t.vectorCtrl(3) >>> 16, 0xabcd);
  assert.equal(t.vectorCtrl(3) & 0xffff, 1, "mask bit unchanged");
  // Device memory, little-endian: ST lower in byte 2, ST upper in byte 3 of the Vector Control DW.
  assert.deepEqual([...t.bytes.subarray(0x30 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0x40)], [0x01, 0x00, 0xcd, 0xab]);
  assert.equal(t.steeringTag(2), 0);
  assert.equal(ctrlOf(m), 0x102, "Requester Enable restored");
  // An unmasked vector keeps its unmasked state as well.
  t.writeEntry(4, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
  m.core.pcieTphSetStEntry(m.dev, 4, 0x00f0);
  assert.equal(t.vectorCtrl(4), 0x00f0_0000);
});

test("TPH-13 (§13 resolved) MSI-X not enabled, or no vector at the index → -ENXIO and TPH disabled", () => {
  const m = msixMachine();
  m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE);
  kfail(() => m.core.pcieTphSetStEntry(m.dev, 0, 1), "ENXIO", /MSI-X not enabled/);
  assert.equal(ctrlOf(m), 0);

  const n = msixMachine();
  n.core.pcieEnableTph(n.dev, PCI_TPH_ST_DS_MODE);
  n.core.pciEnableMsix(n.dev, 4);
  kfail(() => n.core.pcieTphSetStEntry(n.dev, 4, 1), "ENXIO", /no vector/);
  assert.equal(n.core.state(n.dev).enabled, false);
  assert.equal(n.core.msixTable(n.dev)!.steeringTag(4), 0);
});

test("MSI-X model: Enable bit in Message Control; the table must lie inside a memory BAR", () => {
  const m = msixMachine();
  const o = m.core.msixTable(m.dev)!.capOffset;
  kfail(() => m.core.pciEnableMsix(m.dev, 9), "ENOSPC");
  m.core.pciEnableMsix(m.dev, 8);
  assert.equal(m.dev.config.read16(o + 2) & 0x8000, 0x8000);
  kfail(() => m.core.pciEnableMsix(m.dev, 8), "EINVAL");
  m.core.pciDisableMsix(m.dev);
  assert.equal(m.dev.config.read16(o + 2) & 0x8000, 0);
  assert.equal(m.core.msixEnabled(m.dev), false);

  const noBar = tphMachine({ msix: { tableSize: 8, tableBir: 2, tableOffset: 0 } });
  kfail(() => noBar.core.pciEnableMsix(noBar.dev, 1), "ENOMEM");
  const noCap = tphMachine();
  kfail(() => noCap.core.pciEnableMsix(noCap.dev, 1), "EINVAL");
  assert.equal(noCap.core.msixTable(noCap.dev), null);
});

/* ---- 12.1: completer side ---- */

test("TPH-14 DevCap2 TPH completer: lspci text from the field value, completer_type folds 2 to 0, only RP/Endpoint print", () => {
  const cases: [number, string, number][] = [
    [3, "TPHComp+ ExtTPHComp+", 3],
    [2, "", 0],
    [1, "TPHComp+ ExtTPHComp-", 1],
    [0, "TPHComp- ExtTPHComp-", 0],
  ];
  for (const [field, text, type] of cases) {
    const m = tphMachine({ completer: field });
    assert.equal(describeTphCompleter(m.dev), text, `field ${field}`);
    assert.equal(m.core.pcieTphCompleterType(m.dev), type);
  }
  const rp = tphMachine({ rpCompleter: 3 }).rp!;
  assert.equal(describeTphCompleter(rp), "TPHComp+ ExtTPHComp+");
  for (const type of [PCI_EXP_TYPE.UPSTREAM, PCI_EXP_TYPE.LEG_END, PCI_EXP_TYPE.RC_END]) {
    const m = tphMachine({ type, completer: 3, rpCompleter: type === PCI_EXP_TYPE.RC_END ? null : 1 });
    assert.equal(describeTphCompleter(m.dev), null, `type ${type}`);
    assert.equal(m.core.pcieTphCompleterType(m.dev), 3, "the kernel helper does not care about the type");
  }
});

test("§4 CONFIG_PCIE_TPH=n: no tph_cap, stubs answer -EINVAL, the series' helpers return 0", () => {
  const m = tphMachine({ completer: 3, core: { configPcieTph: false } });
  assert.equal(m.cap, 0);
  kfail(() => m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE), "EINVAL");
  kfail(() => m.core.pcieTphSetStEntry(m.dev, 1, 1), "EINVAL");
  kfail(() => m.core.pcieTphGetCpuSt(m.dev, TPH_MEM_TYPE_VM, 0), "EINVAL");
  assert.equal(m.core.pcieTphCompleterType(m.dev), 0);
  assert.equal(m.core.pcieTphEnabledReqType(m.dev), 0);
  assert.equal(m.core.pcieTphGetStTableSize(m.dev), 0);
});

test("§4 pcie_tph_get_cpu_st: 8- or 16-bit by tph_req_type, invalid entry → 0, missing CPU → -EINVAL, no Root Port → -ENODEV", () => {
  const cpuSteeringTags = {
    0: { volatile: { st8: 0x21, st16: 0x4321 }, persistent: { st8: 0x31 } },
  };
  const m = tphMachine({ rpCompleter: 3, tph: { deviceSpecificMode: true }, core: { cpuSteeringTags } });
  assert.equal(m.core.pcieTphGetCpuSt(m.dev, TPH_MEM_TYPE_VM, 0), 0, "req_type 0 before enable");
  m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE);
  assert.equal(m.core.pcieTphGetCpuSt(m.dev, TPH_MEM_TYPE_VM, 0), 0x21);
  assert.equal(m.core.pcieTphGetCpuSt(m.dev, TPH_MEM_TYPE_PM, 0), 0x31);
  kfail(() => m.core.pcieTphGetCpuSt(m.dev, TPH_MEM_TYPE_VM, 7), "EINVAL");

  const x = tphMachine({ rpCompleter: 3, tph: { deviceSpecificMode: true, extendedRequester: true } });
  x.core.setCpuSteeringTags(0, cpuSteeringTags[0]);
  x.core.pcieEnableTph(x.dev, PCI_TPH_ST_DS_MODE);
  assert.equal(x.core.pcieTphGetCpuSt(x.dev, TPH_MEM_TYPE_VM, 0), 0x4321);
  assert.equal(x.core.pcieTphGetCpuSt(x.dev, TPH_MEM_TYPE_PM, 0), 0, "no valid 16-bit persistent tag");

  const rc = tphMachine({ rpCompleter: null, type: PCI_EXP_TYPE.RC_END, core: { cpuSteeringTags } });
  kfail(() => rc.core.pcieTphGetCpuSt(rc.dev, TPH_MEM_TYPE_VM, 0), "ENODEV");
});

test("§4 save/restore: Control and the in-capability ST entries, only while enabled", () => {
  const m = tphMachine({ tph: { deviceSpecificMode: true, stTable: "cap", stTableSize: 4 } });
  assert.equal(m.core.pciSaveTphState(m.dev), null);
  m.core.pcieEnableTph(m.dev, PCI_TPH_ST_DS_MODE);
  m.core.pcieTphSetStEntry(m.dev, 1, 0x10);
  m.core.pcieTphSetStEntry(m.dev, 3, 0x30);
  assert.deepEqual(m.core.pciSaveTphState(m.dev), { ctrl: 0x102, entries: [0, 0x10, 0, 0x30] });
  // A reset clears the capability registers.
  for (let o = m.cap + 8; o < m.cap + 0x14; o += 2) m.dev.config.write16(o, 0);
  m.core.pciRestoreTphState(m.dev);
  assert.equal(ctrlOf(m), 0x102);
  assert.equal(m.dev.config.read16(tphStEntryOffset(m.cap, 3)), 0x30);
});

test("tphRequesterCap: capReg, control and stEntries are laid out where §2.1 puts them", () => {
  const m = tphMachine({ tph: { capReg: 0x00030205, control: 0x102, stEntries: [1, 2, 3, 4, 5] } });
  assert.equal(m.dev.config.read32(m.cap + 4), 0x00030205);
  assert.equal(ctrlOf(m), 0x102);
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((i) => m.dev.config.read16(tphStEntryOffset(m.cap, i))),
    [1, 2, 3, 4, 0],
    "only the 4 declared entries are written",
  );
});

/* ---- robustness ---- */

test("property: random config bytes never crash the TPH reader, lspci text or core (InputError / KernelError only)", () => {
  const arb = fc.record({
    bytes: fc.uint8Array({ minLength: 4096, maxLength: 4096 }),
    length: fc.oneof(fc.constantFrom(64, 256, 4096), fc.integer({ min: 0x100, max: 4096 })),
    tphAt: fc.option(fc.integer({ min: 0x40, max: 0x3ff }).map((d) => d * 4)),
    stdCaps: fc.boolean(),
    mode: fc.integer({ min: -2, max: 12 }),
    index: fc.integer({ min: -1, max: 5000 }),
    tag: fc.integer({ min: 0, max: 0x1ffff }),
    nvec: fc.integer({ min: 0, max: 40 }),
  });
  fc.assert(
    fc.property(arb, (g) => {
      const b = g.bytes;
      const dv = new DataView(b.buffer);
      if (g.tphAt !== null) {
        // Link the TPH capability from 0x100 (random next pointer after it).
        if (g.tphAt !== 0x100) dv.setUint32(0x100, (0x0003 | (1 << 16) | (g.tphAt << 20)) >>> 0, true);
        dv.setUint16(g.tphAt, 0x0017, true);
      }
      if (g.stdCaps) b[6] |= 0x10;
      const cfg = new ConfigSpace(b.slice(0, g.length));
      // Below a Root Port that completes Extended TPH, so enable gets past the completer check.
      const m = tphMachine({ rpCompleter: 3, tph: null });
      const dev = m.fabric.addFunction(m.rp!.subordinate!, 0x08, cfg);
      const core = new TphCore(m.fabric, { cpuSteeringTags: { 0: { volatile: { st8: 1 } } } });
      const allowed = (f: () => unknown, ...kinds: (typeof InputError | typeof KernelError)[]) => {
        try {
          f();
        } catch (e) {
          assert.ok(
            kinds.some((k) => e instanceof k),
            `unexpected ${(e as Error)?.name}: ${(e as Error)?.message}`,
          );
        }
      };
      allowed(() => {
        const c = readTphCapability(cfg);
        if (c) {
          assert.ok(c.stTableLoc >= 0 && c.stTableLoc <= 3);
          assert.ok(c.linuxStTableSize >= 0 && c.linuxStTableSize <= 2048);
        }
      }, InputError);
      const lines = describeTph(dev);
      if (lines) assert.ok(lines.every((l) => typeof l === "string"));
      describeTphCompleter(dev);
      allowed(() => core.pcieEnableTph(dev, g.mode), KernelError);
      allowed(() => core.pciEnableMsix(dev, g.nvec), KernelError);
      allowed(() => core.pcieTphSetStEntry(dev, g.index, g.tag), KernelError);
      allowed(() => core.pcieTphGetCpuSt(dev, TPH_MEM_TYPE_VM, 0), KernelError);
      allowed(() => core.pciSaveTphState(dev), KernelError);
      core.pcieTphGetStTableSize(dev);
      core.pcieTphCompleterType(dev);
      core.pcieDisableTph(dev);
      assert.equal(core.pcieTphEnabledReqType(dev), 0);
    }),
    { numRuns: 300 },
  );
});
