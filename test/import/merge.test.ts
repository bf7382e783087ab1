/**
 * Merging partial descriptions of one machine (src/import/merge.ts): attribute-level precedence and
 * conflicts with both sources named, provenance of every value, unknowns and the assumption made
 * for them (and the switch to the other assumption), placeholders for bridges the bus numbers
 * prove, root buses nothing leads to, the CPU from lscpu / --cpu, fabrics from config bytes, and
 * inconsistent trees as InputErrors.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../src/core/errors.js";
import { loadBuiltin } from "../../src/import/builtin.js";
import { importTexts } from "../../src/import/detect.js";
import { parseLspciTree, parseLspciVerbose } from "../../src/import/lspci-text.js";
import {
  buildFabric,
  emptyFacts,
  factsFromFabric,
  functionAt,
  mergeAndBuild,
  mergeFacts,
  setFact,
} from "../../src/import/merge.js";
import { computeIommuGroups } from "../../src/iommu/index.js";
import { PCI_EXP_TYPE } from "../../src/pci/regs.js";
import { parseIommuGroups, readFixture } from "../helpers/qemu-fixture.js";
import { assertWholeFabric, readReal } from "./import-fixtures.js";

const groupsOf = (f: Parameters<typeof computeIommuGroups>[0]) =>
  computeIommuGroups(f).map((g) =>
    g.devices
      .map((d) => d.bdf)
      .sort()
      .join(" "),
  );

test("merge: two sources stating different values are a conflict naming both places; the stated one wins over a guess", () => {
  const good = readFixture("switch", "lspci-nnvvv.txt");
  const bad = good.replace("[1b36:0010] (rev 02)", "[1b36:0011] (rev 02)"); // first NVMe's device id
  const r = mergeAndBuild([parseLspciVerbose(good, "a.txt"), parseLspciVerbose(bad, "b.txt")]);
  assert.equal(r.conflicts.length, 1);
  const c = r.conflicts[0];
  assert.equal(c.attribute, "device");
  assert.deepEqual(
    c.values.map((v) => `${v.source.file}:${v.source.line} ${v.value}`),
    [`a.txt:${c.values[0].source.line} 16`, `b.txt:${c.values[0].source.line} 17`],
  );
  assert.equal(r.fabric.get(c.subject).device, 0x0010); // the first source wins
  assert.ok(
    r.warnings.some((w) => /conflict: .* device: 0x10 \(a\.txt:\d+\) vs 0x11 \(b\.txt:\d+\)/.test(w)),
  );
  // both values stay in the provenance, the one used first
  assert.deepEqual(
    r.provenance.all(c.subject, "device").map((x) => x.value),
    [0x10, 0x11],
  );
});

test("merge: lspci -tv's guesses (port types from the tree) give way to -vvv's statements without a conflict", () => {
  const r = mergeAndBuild([
    parseLspciTree(readFixture("mixed", "lspci-tv.txt"), "tv"),
    parseLspciVerbose(readFixture("mixed", "lspci-nnvvv.txt"), "vvv"),
  ]);
  // 00:03.0 is a conventional PCI-PCI bridge: -tv alone would call it a root port
  const tvOnly = buildFabric(parseLspciTree(readFixture("mixed", "lspci-tv.txt"), "tv")).fabric;
  assert.equal(tvOnly.get("0000:00:03.0").pcieType, PCI_EXP_TYPE.ROOT_PORT);
  assert.equal(r.fabric.get("0000:00:03.0").pcieType, null);
  assert.ok(!r.conflicts.some((c) => c.attribute === "pcieType"));
  assert.match(
    r.provenance.describe("0000:00:03.0", "pcieType") ?? "",
    /^vvv:\d+ \(Capabilities\) — derived: no Express capability listed/,
  );
});

test("unknowns: what no source states is listed with the value assumed; assumeAcs flips the ACS assumption", () => {
  const tv = () => parseLspciTree(readFixture("rootports", "lspci-tv.txt"), "tv");
  const absent = buildFabric(tv());
  const acsUnknown = absent.unknowns.filter((u) => u.attribute === "acs").map((u) => u.subject);
  // the root ports (the ICH9 functions are not known to be PCIe at all: that is what is listed for them)
  assert.deepEqual(acsUnknown, ["0000:00:02.0", "0000:00:03.0", "0000:00:04.0"]);
  assert.ok(absent.unknowns.some((u) => u.subject === "0000:00:1f.2" && u.attribute === "pcieType"));
  assert.ok(absent.unknowns.some((u) => u.subject === "0000:00:02.0" && u.attribute === "link"));
  assert.ok(absent.unknowns.some((u) => u.subject === "cpu" && u.attribute === "vendor"));
  const isolating = buildFabric(tv(), { assumeAcs: "isolating" });
  // -tv cannot tell the capture with ACS from the one without: each assumption gives one of them
  const kernel = (topo: string) =>
    parseIommuGroups(readFixture(topo, "iommu_groups.txt")).map((g) => g.devices.join(" "));
  assert.deepEqual(groupsOf(absent.fabric), kernel("rootports-noacs"));
  assert.deepEqual(groupsOf(isolating.fabric), kernel("rootports"));
  assert.ok(isolating.unknowns.some((u) => u.attribute === "acs" && /isolating/.test(u.note)));
  // provenance carries the unknowns too, as "(none)" records
  assert.match(
    absent.provenance.describe("0000:00:02.0", "acs") ?? "",
    /^\(none\) — unknown: ACS not stated/,
  );
});

test("placeholders: a bus inside a bridge's range but not its secondary gets an invented bridge; orphan buses become root buses", () => {
  const facts = emptyFacts("t", "test");
  const src = { file: "t", line: 1 };
  const br = functionAt(facts, 0, 0, 0x08, src);
  setFact(facts, br, "bridge", true, src);
  setFact(facts, br, "secondary", 1, src);
  setFact(facts, br, "subordinate", 4, src);
  const ep = functionAt(facts, 0, 3, 0, { file: "t", line: 2 });
  setFact(facts, ep, "vendor", 0x1234, src);
  const orphan = functionAt(facts, 0, 0x40, 0, { file: "t", line: 3 });
  setFact(facts, orphan, "vendor", 0x1234, src);
  const r = buildFabric(facts);
  assertWholeFabric(r.fabric);
  const inv = r.fabric.get("0000:03:00.0").bus.self!;
  assert.equal(inv.bus.number, 1);
  assert.equal(inv.bus.self?.bdf, "0000:00:01.0");
  assert.ok(r.warnings.some((w) => /invented a bridge \(secondary bus 03\)/.test(w)));
  assert.ok(r.fabric.get("0000:40:00.0").bus.isRoot);
  assert.ok(r.warnings.some((w) => /no bridge in the sources leads to bus 0000:40/.test(w)));
});

test("inconsistent trees are InputErrors naming the places: one bus, two bridges; a bridge loop", () => {
  const text = [
    "00:01.0 PCI bridge [0604]: X [8086:0001]",
    "\tBus: primary=00, secondary=01, subordinate=01, sec-latency=0",
    "",
    "00:02.0 PCI bridge [0604]: X [8086:0001]",
    "\tBus: primary=00, secondary=01, subordinate=01, sec-latency=0",
  ].join("\n");
  assert.throws(
    () => buildFabric(parseLspciVerbose(text, "v")),
    (e: unknown) =>
      e instanceof InputError &&
      /^v:5: bus 0000:01 is the secondary bus of both 0000:00:01\.0 \(v:2\) and 0000:00:02\.0/.test(
        e.message,
      ),
  );
  const loop = [
    "01:00.0 PCI bridge [0604]: X [8086:0001]",
    "\tBus: primary=01, secondary=02, subordinate=02, sec-latency=0",
    "",
    "02:00.0 PCI bridge [0604]: X [8086:0001]",
    "\tBus: primary=02, secondary=03, subordinate=03, sec-latency=0",
    "",
    "03:00.0 PCI bridge [0604]: X [8086:0001]",
    "\tBus: primary=03, secondary=04, subordinate=04, sec-latency=0",
  ].join("\n");
  // 01→02→03→04 hangs from nothing: bus 01 becomes a root bus, all placed
  assertWholeFabric(buildFabric(parseLspciVerbose(loop, "v")).fabric);
  const facts = parseLspciVerbose(loop, "v");
  // a cycle: 02:00.0's secondary is 03, 03:00.0's is 02 — nothing reaches them
  facts.functions.get("0000:03:00.0")!.attrs.secondary!.value = 2;
  facts.functions.get("0000:01:00.0")!.attrs.secondary!.value = 0x10;
  assert.throws(() => buildFabric(facts), /not reachable from any root bus/);
});

test("CPU: from lscpu when given with lspci; --cpu wins over every source; none → listed as unknown", () => {
  const dir = "stelline/asus-esc8000a-e12-epyc-genoa-4x-rtx6000ada/";
  const tv = { file: "lspci-tv.txt", text: readReal(`${dir}lspci-tv.txt`) };
  const lscpu = { file: "lscpu.txt", text: readReal(`${dir}lscpu.txt`) };
  const a = importTexts([tv, lscpu]);
  assert.equal(a.cpu?.vendor, "AuthenticAMD");
  assert.match(a.provenance.describe("cpu", "family") ?? "", /^lscpu\.txt:9 \(cpu family\)/);
  const b = importTexts([tv, lscpu], { cpu: { vendor: "GenuineIntel", family: 6, source: "--cpu" } });
  assert.equal(b.cpu?.vendor, "GenuineIntel");
  assert.equal(b.fabric.cpu?.source, "--cpu");
  const c = importTexts([tv]);
  assert.equal(c.cpu, undefined);
  assert.equal(c.fabric.cpu, null);
  assert.ok(c.unknowns.some((u) => u.subject === "cpu"));
  assert.throws(() => importTexts([lscpu]), /no PCI topology in lscpu\.txt \(only CPU information\)/);
});

test("factsFromFabric: a fabric built from config bytes merges with text sources and rebuilds unchanged", () => {
  for (const name of ["qemu-switch", "qemu-mixed", "spec-f"]) {
    const { fabric } = loadBuiltin(name);
    const r = buildFabric(factsFromFabric(fabric, `builtin:${name}`, "machine-file"));
    assertWholeFabric(r.fabric, name);
    const sig = (f: typeof fabric) =>
      f
        .devices()
        .map((d) => [d.bdf, d.vendor, d.device, d.kind, d.bus.self?.bdf ?? null, d.link, d.acsCtrlReg]);
    assert.deepEqual(sig(r.fabric), sig(fabric), name);
    assert.deepEqual(groupsOf(r.fabric), groupsOf(fabric), name);
  }
  // …and with an lspci -tv of the same machine: no conflicts on the tree
  const { fabric } = loadBuiltin("qemu-switch");
  const { facts, conflicts } = mergeFacts([
    factsFromFabric(fabric, "builtin", "machine-file"),
    parseLspciTree(readFixture("switch", "lspci-tvnn.txt"), "tvnn"),
  ]);
  assert.deepEqual(
    conflicts.filter((c) => c.attribute === "parent" || c.attribute === "secondary"),
    [],
  );
  assertWholeFabric(buildFabric(facts, {}, conflicts).fabric);
});

test("lspci -xxxx bytes (read by the lspci-hex importer) merge with lspci -tv of the same machine: same tree, bytes kept", () => {
  const dir = "pciutils/asus-p6t6-ws-x58-nf200/";
  const r = importTexts([
    { file: "xxxx.txt", text: readReal(`${dir}tree-asus-p6t6.lspci-xxxx.txt`) },
    { file: "tv.txt", text: readReal(`${dir}lspci-tv.txt`) },
  ]);
  assertWholeFabric(r.fabric);
  assert.equal(r.fabric.devices().length, 53);
  assert.deepEqual(
    r.conflicts.filter((c) => ["parent", "secondary", "bridge"].includes(c.attribute)),
    [],
  );
  // the bytes win: ACS of the X58 root port is the one in config space, not an assumption
  const rp = r.fabric.get("0000:00:03.0");
  assert.ok(rp.acsCapOffset);
  assert.ok(!r.unknowns.some((u) => u.subject === rp.bdf && u.attribute === "acs"));
});
