/**
 * The host CPU from lscpu text and /proc/cpuinfo (src/import/lscpu.ts): vendor, family, model and
 * name with the line each came from; the QEMU guests' /proc/cpuinfo (the AMD rule of the P2PDMA
 * allow-list depends on it) and the stelline server's lscpu; ARM; missing fields.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../src/core/errors.js";
import { parseCpuinfo, parseLscpu } from "../../src/import/lscpu.js";
import { capturedCpu, QEMU_TOPOLOGIES, sysfsFile } from "../helpers/qemu-fixture.js";
import { readReal } from "./import-fixtures.js";

test("lscpu (stelline, EPYC 9374F): AuthenticAMD family 25 model 17, each field with its line", () => {
  const r = parseLscpu(
    readReal("stelline/asus-esc8000a-e12-epyc-genoa-4x-rtx6000ada/lscpu.txt"),
    "lscpu.txt",
  );
  assert.deepEqual(
    { ...r.cpu },
    {
      vendor: "AuthenticAMD",
      family: 25,
      model: 17,
      modelName: "AMD EPYC 9374F 32-Core Processor",
      source: "lscpu lscpu.txt",
    },
  );
  assert.deepEqual(
    [r.sources.vendor.line, r.sources.family.line, r.sources.model.line, r.sources.modelName.line],
    [7, 9, 10, 8],
  );
});

for (const topo of QEMU_TOPOLOGIES)
  test(`/proc/cpuinfo of qemu-${topo}: the guest CPU the capture records`, () => {
    const r = parseCpuinfo(sysfsFile(topo, "proc/cpuinfo")!.toString("utf8"), "proc/cpuinfo");
    const want = capturedCpu(topo);
    assert.deepEqual(
      [r.cpu.vendor, r.cpu.family, r.cpu.model, r.cpu.modelName],
      [want.vendor, want.family, want.model, want.modelName],
    );
  });

test("/proc/cpuinfo of an ARM host: the implementer names the vendor", () => {
  const r = parseCpuinfo(
    "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: 0xd0c\n",
    "ci",
  );
  assert.deepEqual([r.cpu.vendor, r.cpu.family], ["ARM", 8]);
  assert.equal(r.sources.vendor.line, 3);
});

test("lscpu / cpuinfo without a vendor, or with a non-numeric family: InputErrors naming file and line", () => {
  assert.throws(
    () => parseLscpu("Architecture: x86_64\nCPU(s): 4\n", "l"),
    (e: unknown) => e instanceof InputError && /^l: no "vendor id" line/.test(e.message),
  );
  assert.throws(
    () => parseLscpu("Vendor ID: GenuineIntel\nCPU family: six\n", "l"),
    /^InputError: l:2|l:2: cpu family "six" is not a number/,
  );
  const r = parseLscpu("Vendor ID: GenuineIntel\n", "l");
  assert.equal(r.cpu.family, 0);
  assert.match(r.warnings[0], /no "cpu family" line/);
});
