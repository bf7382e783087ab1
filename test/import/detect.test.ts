/**
 * Format detection (src/import/detect.ts): every input file among the fixtures is recognised as
 * what it is from its first bytes; texts that are not topology sources give null, and reading them
 * gives an InputError that says what they look like and what was expected.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { test } from "node:test";
import { InputError } from "../../src/core/errors.js";
import { detectFormat, factsFromText, importTexts, type SourceFormatName } from "../../src/import/detect.js";
import { QEMU_TOPOLOGIES, readFixture } from "../helpers/qemu-fixture.js";
import { QEMU, readReal, realFiles } from "./import-fixtures.js";

const EXPECTED: [RegExp, SourceFormatName | null][] = [
  [/lspci-t(v|vv|vnn)?\.txt$/, "lspci-tree"],
  [/lspci-(nn)?vvv(-nn|-selected)?\.txt$/, "lspci-verbose"],
  [/lspci-nnmmD\.txt$/, "lspci-mm"],
  [/\.lspci-xxxx\.txt$/, "lspci-hex"],
  [/hwloc.*\.xml$/, "hwloc-xml"],
  [/\.xml$/, "nccl-xml"], // NCCL/RCCL topology files (and NCCL's graph file, refused when read)
  [/\/lscpu\.txt$/, "lscpu"],
  [/./, null], // ground truth, transcripts, lscpu -e, numactl, the ACSCtl grep, .console, stderr
];

test("detectFormat: every fixture file under fixtures/real is recognised as what it is", () => {
  const files = realFiles(/\.(txt|xml|console)$/);
  assert.ok(files.length > 40);
  for (const f of files) {
    const want = EXPECTED.find(([re]) => re.test(`/${f}`))![1];
    assert.equal(detectFormat(readReal(f), f), want, f);
  }
});

test("detectFormat: every lspci output of the QEMU captures", () => {
  for (const topo of QEMU_TOPOLOGIES)
    for (const f of readdirSync(`${QEMU}${topo}`).filter((x) => x.startsWith("lspci-"))) {
      const want = f === "lspci-stderr.txt" ? null : EXPECTED.find(([re]) => re.test(`/${f}`))![1];
      assert.equal(detectFormat(readFixture(topo, f), f), want, `${topo}/${f}`);
    }
});

test("detectFormat: /proc/cpuinfo, machine files by name or content, hex with verbose records first", () => {
  assert.equal(
    detectFormat("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n", "cpuinfo"),
    "cpuinfo",
  );
  assert.equal(detectFormat("name: x\nhostBridges: []\n", "m.txt"), "machine-file");
  assert.equal(detectFormat("{}", "m.json"), "machine-file");
  const vx = `00:00.0 Host bridge: Intel Corporation Device 29c0\n\tSubsystem: Red Hat, Inc. Device 1100\n${"\tFlags: fast devsel\n".repeat(20)}00: 86 80 c0 29 07 01 00 00 00 00 00 06 00 00 00 00\n`;
  assert.equal(detectFormat(vx, "x"), "lspci-hex");
  assert.equal(
    detectFormat("\uFEFF<?xml version='1.0'?>\n<!-- c -->\n<topology version=\"2.0\"/>", "t"),
    "hwloc-xml",
  );
  assert.equal(detectFormat("<html></html>", "t"), null);
  assert.equal(detectFormat("hello", "t"), null);
});

test("reading what is not a topology: InputErrors that say what the file looks like", () => {
  const dir = "stelline/asus-esc8000a-e12-epyc-genoa-4x-rtx6000ada/";
  const cases: [string, RegExp][] = [
    [
      `${dir}lspci-vvv-grep-ACSCtl.txt`,
      /ACS lines but no function headers \(output of `lspci -vvv \| grep …`\?\)/,
    ],
    [`${dir}lscpu-e.txt`, /`lscpu -e` output names no CPU vendor/],
    [`${dir}numactl-hardware.txt`, /`numactl --hardware` output/],
    [`${dir}GROUND_TRUTH.txt`, /format not recognised \(expected lspci/],
  ];
  for (const [f, re] of cases)
    assert.throws(
      () => factsFromText(readReal(f), f),
      (e: unknown) =>
        e instanceof InputError && e.message.startsWith(`${f}: format not recognised`) && re.test(e.message),
      f,
    );
  assert.throws(
    () => importTexts([{ text: "x", file: "a" }]),
    /^InputError: a: format not recognised|a: format not recognised/,
  );
});
