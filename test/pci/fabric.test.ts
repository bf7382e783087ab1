import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError, type KernelError } from "../../src/core/errors.js";
import { parseMachineFile } from "../../src/import/machine-file.js";
import { formatBdf, mapTypeCacheKey, normalizeBdf, parseBdf } from "../../src/pci/bdf.js";
import { IORESOURCE_MEM, IORESOURCE_MEM_64, IORESOURCE_PREFETCH } from "../../src/pci/device.js";
import { Fabric } from "../../src/pci/fabric.js";
import { PCI_COMMAND, PCI_COMMAND_MEMORY } from "../../src/pci/regs.js";
import { resetBus, resetFunction, resetMethods } from "../../src/pci/reset.js";
import { BDF, specF } from "../helpers/spec-f.js";

test("BDF parse/format: dddd:bb:dd.f and bb:dd.f, errors name the text", () => {
  assert.deepEqual(parseBdf("0001:02:03.4"), { segment: 1, bus: 2, devfn: 0x1c });
  assert.equal(normalizeBdf("3:0.1"), "0000:03:00.1");
  assert.equal(formatBdf({ segment: 0x10, bus: 0xab, devfn: 0xff }), "0010:ab:1f.7");
  assert.throws(() => parseBdf("03:20.0"), InputError);
  assert.throws(() => parseBdf("zz"), /is not a PCI address/);
  assert.equal(mapTypeCacheKey(parseBdf("0000:04:00.0")), 0x400);
});

test("fabric F: scan order is bus by bus, subtrees after, VFs last; kinds from config space", () => {
  const { fabric, dev } = specF();
  assert.deepEqual(
    fabric.devices().map((d) => d.bdf),
    [
      BDF.H0,
      BDF.RP0,
      BDF.RP1,
      BDF.RP2,
      BDF.RC1,
      BDF.RC2,
      BDF.USP,
      BDF.DSPa,
      BDF.DSPb,
      BDF.EPa,
      BDF.EPb,
      BDF.EPc,
      BDF.MF0,
      BDF.MF1,
      "0001:00:00.0",
      "0001:00:01.0",
      BDF.EPd,
      BDF.EPbVF,
    ],
  );
  assert.equal(dev.RP0.kind, "root-port");
  assert.equal(dev.USP.kind, "upstream-port");
  assert.equal(dev.DSPa.kind, "downstream-port");
  assert.equal(dev.RC1.kind, "rciep");
  assert.equal(dev.H0.kind, "host-bridge");
  assert.equal(dev.EPa.kind, "endpoint");
  assert.equal(dev.USP.subordinate?.number, 2);
  assert.equal(dev.RP0.config.read8(0x1a), 4, "RP0's subordinate bus covers the switch");
});

test("kernel-semantics §1.1: identity device is the first root-bus function when it is 00.0 or a root port", () => {
  const { fabric } = specF();
  assert.equal(fabric.hostBridges[0].identityDevice?.bdf, BDF.H0);
  const noZero = parseMachineFile(
    `name: t
hostBridges:
  - functions:
      - { at: "01.0", kind: root-port, id: "1b36:000c" }
      - { at: "02.0", id: "8086:1234" }
`,
    "t.yaml",
  ).fabric;
  assert.equal(noZero.hostBridges[0].identityDevice?.bdf, "0000:00:01.0");
  const none = parseMachineFile(
    `name: t\nhostBridges:\n  - functions:\n      - { at: "02.0", id: "8086:1234" }\n`,
    "t.yaml",
  ).fabric;
  assert.equal(none.hostBridges[0].identityDevice, null);
});

test("kernel-semantics §1.1: EPa's BARs — 64-bit prefetchable BAR0 with an empty upper half, IO BAR3, BAR5 unimplemented", () => {
  const { dev } = specF();
  const r = dev.EPa.resources;
  assert.equal(r[0].flags, IORESOURCE_MEM | IORESOURCE_MEM_64 | IORESOURCE_PREFETCH);
  assert.equal(r[0].start, 0x80_0000_0000n);
  assert.equal(r[0].len, 0x100_0000n);
  assert.deepEqual([r[1].flags, r[1].len], [0, 0n]);
  assert.equal(r[2].len, 256n);
  assert.equal(r[3].flags & IORESOURCE_MEM, 0);
  assert.equal(r[4].start, 0xf100_0000n);
  assert.equal(r[5].flags, 0);
  // the BAR registers hold the bus address and the type bits
  assert.equal(dev.EPa.config.read32(0x10), 0x0000_000c);
  assert.equal(dev.EPa.config.read32(0x14), 0x80);
});

test("BAR sizing protocol: writing all ones reads back the size mask with the type bits", () => {
  const { dev } = specF();
  const d = dev.EPa;
  d.configWrite(0x18, 4, 0xffffffff); // BAR2, 256 bytes, 32-bit non-prefetchable
  assert.equal(d.configRead(0x18, 4), 0xffffff00);
  d.configWrite(0x10, 4, 0xffffffff); // BAR0 low: 16 MiB, 64-bit prefetchable
  d.configWrite(0x14, 4, 0xffffffff);
  assert.equal(d.configRead(0x10, 4), 0xff00000c);
  assert.equal(d.configRead(0x14, 4), 0xffffffff);
  d.configWrite(0x24, 4, 0xffffffff); // BAR5 unimplemented
  assert.equal(d.configRead(0x24, 4), 0);
  d.programBar(2);
  assert.equal(d.configRead(0x18, 4), 0xf000_0000);
});

test("pci_bus_address: CPU address minus the host-bridge window offset", () => {
  const { fabric } = parseMachineFile(
    `name: off
hostBridges:
  - windows: [ { cpuBase: 0x4000_0000_0000, size: 1TiB, busOffset: 0x4000_0000_0000 } ]
    functions:
      - { at: "00.0", kind: host-bridge, id: "8086:1234" }
      - { at: "01.0", id: "1b36:0010", bars: [ { index: 0, type: mem64, size: 1MiB, address: 0x4000_0010_0000 } ] }
`,
    "off.yaml",
  );
  const d = fabric.get("00:01.0");
  assert.equal(d.busAddress(0), 0x10_0000n);
  assert.equal(d.config.read32(0x10) & ~0xf, 0x10_0000);
});

test("§1.3 pci_upstream_bridge: a VF's upstream is its PF's; root-bus devices have none", () => {
  const { dev } = specF();
  assert.equal(Fabric.upstreamBridge(dev.EPbVF), dev.DSPb);
  assert.equal(Fabric.upstreamBridge(dev.RC1), null);
  assert.deepEqual(
    Fabric.pathToRoot(dev.EPa).map((d) => d.bdf),
    [BDF.DSPa, BDF.USP, BDF.RP0],
  );
  assert.equal(dev.EPbVF.multifunction, false, "a VF is not multi-function because of its function number");
});

test("§1.4 function reset: registers back to saved values, D0; -ENOTTY without a method; -EAGAIN when contended", () => {
  const { dev } = specF();
  const d = dev.EPa;
  assert.deepEqual(resetMethods(d), ["flr", "pm", "bus"]);
  d.powerState = 3;
  const before = d.command;
  const rec = resetFunction(d);
  assert.equal(rec.method, "flr");
  assert.equal(d.command, before);
  assert.equal(d.powerState, 0);
  assert.equal(d.config.read32(0x10), 0x0000_000c, "BAR restored");
  assert.throws(
    () => resetFunction(d, { lockContended: true }),
    (e: KernelError) => e.errnoName === "EAGAIN",
  );
  // a switch port has no FLR, no PM reset without PM, and shares its bus: no method
  const { fabric } = parseMachineFile(
    `name: t\nhostBridges:\n  - functions:\n      - { at: "00.0", kind: host-bridge, id: "8086:1234", pm: false }\n`,
    "t.yaml",
  );
  assert.throws(
    () => resetFunction(fabric.get("00:00.0")),
    (e: KernelError) => e.errnoName === "ENOTTY",
  );
});

test("§1.4 bus reset resets every function below the bridge and restores their config", () => {
  const { dev } = specF();
  dev.MF0.command = 0x6;
  const rec = resetBus(dev.RP2);
  assert.deepEqual(rec.affected, [BDF.MF0, BDF.MF1]);
  assert.equal(dev.MF0.command, 0x6);
  assert.equal(dev.MF1.config.read16(PCI_COMMAND) & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY);
});

test("ACS control can be changed and is read back from config space", () => {
  const { dev } = specF();
  assert.equal(dev.DSPa.acsCapReg, 0x3d);
  dev.DSPa.setAcsCtrl(0x1d);
  assert.equal(dev.DSPa.acsCtrlReg, 0x1d);
  assert.equal(dev.DSPa.config.read16(dev.DSPa.acsCapOffset + 6), 0x1d);
});
