/**
 * Mutated and truncated real fixtures (fast-check) through detection, the importers, merging and
 * the fabric build: each run ends in an InputError that names the file, or in a whole fabric the
 * model can read — never another exception, never a hang.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { InputError } from "../../src/core/errors.js";
import { importTexts } from "../../src/import/detect.js";
import { readFixture } from "../helpers/qemu-fixture.js";
import { assertWholeFabric, readReal } from "./import-fixtures.js";

type Mutation =
  | { kind: "truncate"; at: number }
  | { kind: "deleteLine"; at: number }
  | { kind: "duplicateLine"; at: number }
  | { kind: "swapLines"; at: number; to: number }
  | { kind: "replaceChar"; at: number; ch: string }
  | { kind: "insert"; at: number; s: string }
  | { kind: "hexDigit"; at: number; d: string };

const pos = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });
const CHARS = [..."0123456789abcdefxX:.-_[]()<>\"'=/ \t\n+|\\#&;"];
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("truncate" as const), at: pos }),
  fc.record({ kind: fc.constant("deleteLine" as const), at: pos }),
  fc.record({ kind: fc.constant("duplicateLine" as const), at: pos }),
  fc.record({ kind: fc.constant("swapLines" as const), at: pos, to: pos }),
  fc.record({ kind: fc.constant("replaceChar" as const), at: pos, ch: fc.constantFrom(...CHARS) }),
  fc.record({ kind: fc.constant("insert" as const), at: pos, s: fc.string({ maxLength: 24 }) }),
  fc.record({ kind: fc.constant("hexDigit" as const), at: pos, d: fc.constantFrom(..."0123456789abcdef") }),
);

function apply(text: string, m: Mutation): string {
  const i = Math.floor(m.at * text.length);
  const lines = () => text.split("\n");
  switch (m.kind) {
    case "truncate":
      return text.slice(0, i);
    case "deleteLine": {
      const l = lines();
      l.splice(Math.floor(m.at * l.length), 1);
      return l.join("\n");
    }
    case "duplicateLine": {
      const l = lines();
      const k = Math.floor(m.at * l.length);
      l.splice(k, 0, l[k] ?? "");
      return l.join("\n");
    }
    case "swapLines": {
      const l = lines();
      const a = Math.floor(m.at * l.length);
      const b = Math.floor(m.to * l.length);
      [l[a], l[b]] = [l[b], l[a]];
      return l.join("\n");
    }
    case "replaceChar":
      return text.slice(0, i) + m.ch + text.slice(i + 1);
    case "insert":
      return text.slice(0, i) + m.s + text.slice(i);
    case "hexDigit": {
      // change the n-th hex digit found from the position on: ids, bus numbers, speeds
      const rest = text.slice(i).search(/[0-9a-f]/);
      if (rest < 0) return text;
      const j = i + rest;
      return text.slice(0, j) + m.d + text.slice(j + 1);
    }
  }
}

/** Runs the whole import; returns what happened, failing on anything but InputError or a whole fabric. */
function importOrInputError(inputs: { file: string; text: string }[]): "fabric" | "input-error" {
  const t0 = performance.now();
  try {
    const r = importTexts(inputs);
    assertWholeFabric(r.fabric, inputs.map((i) => i.file).join("+"));
    return "fabric";
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    // the message names the file it is about (or every file, for a merge-level error)
    assert.ok(
      inputs.some((i) => e.message.includes(i.file)),
      `InputError without a file name: ${e.message}`,
    );
    return "input-error";
  } finally {
    const ms = performance.now() - t0;
    assert.ok(ms < 5000, `took ${ms.toFixed(0)} ms (a hang?)`);
  }
}

const SOURCES: { name: string; file: string; text: () => string; runs: number }[] = [
  {
    name: "qemu mixed lspci -tv",
    file: "lspci-tv.txt",
    text: () => readFixture("mixed", "lspci-tv.txt"),
    runs: 300,
  },
  {
    name: "qemu mixed lspci -tvnn",
    file: "lspci-tvnn.txt",
    text: () => readFixture("mixed", "lspci-tvnn.txt"),
    runs: 150,
  },
  {
    name: "qemu mixed lspci -nnvvv",
    file: "lspci-nnvvv.txt",
    text: () => readFixture("mixed", "lspci-nnvvv.txt"),
    runs: 200,
  },
  {
    name: "qemu switch lspci -nnmmD",
    file: "lspci-nnmmD.txt",
    text: () => readFixture("switch", "lspci-nnmmD.txt"),
    runs: 150,
  },
  {
    name: "pciutils asus lspci -tv",
    file: "asus-lspci-tv.txt",
    text: () => readReal("pciutils/asus-p6t6-ws-x58-nf200/lspci-tv.txt"),
    runs: 150,
  },
  {
    name: "pciutils ibm-ppc lspci -vvv",
    file: "ppc-lspci-vvv.txt",
    text: () => readReal("pciutils/ibm-ppc-pcix-multidomain/lspci-vvv.txt"),
    runs: 80,
  },
  {
    name: "stelline lspci -vvv (spaces)",
    file: "stelline-vvv.txt",
    text: () => readReal("stelline/asus-esc8000a-e12-epyc-genoa-4x-rtx6000ada/lspci-vvv-selected.txt"),
    runs: 80,
  },
  {
    name: "github lspci -tvv",
    file: "lspci-tvv.txt",
    text: () => readReal("github-issues/nccl-tests-256-h200-kvm-vm/lspci-tvv.txt"),
    runs: 150,
  },
  {
    name: "hwloc DGX-2 v2",
    file: "dgx2.xml",
    text: () => readReal("hwloc/nvidia-dgx2h/nvidiaDGX2.hwloc-v2.xml"),
    runs: 60,
  },
  {
    name: "hwloc NEC lstopo 2.9",
    file: "nec.xml",
    text: () => readReal("hwloc/nec-sx-aurora-a300-8/32intel64-2p8co2t+8ve.lstopo-2.9-whole-io.xml"),
    runs: 60,
  },
  {
    name: "NCCL alibaba CX-8",
    file: "alibaba.xml",
    text: () => readReal("alibaba-rtp-llm/8x-l20-granite-rapids-cx8/topo.xml"),
    runs: 150,
  },
  {
    name: "NCCL AWS p4d",
    file: "p4d.xml",
    text: () => readReal("aws-ofi-nccl/p4d-24xlarge/p4d-24xl-topo.xml"),
    runs: 150,
  },
  {
    name: "NCCL Azure ndv4",
    file: "ndv4.xml",
    text: () => readReal("azure-azhpc-images/ndv4/ndv4-topo.xml"),
    runs: 150,
  },
  {
    name: "RCCL MI250X switchtec",
    file: "mi250.xml",
    text: () => readReal("rccl/mi250x-8gcd-epyc-zen3-switchtec/topo_8p1h_2.xml"),
    runs: 150,
  },
];

for (const s of SOURCES) {
  test(`fuzz ${s.name}: mutated or truncated, the import ends in an InputError naming the file or a whole fabric`, () => {
    const text = s.text();
    const seen = { fabric: 0, "input-error": 0 };
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (ms) => {
        const mutated = ms.reduce(apply, text);
        seen[importOrInputError([{ file: s.file, text: mutated }])]++;
      }),
      { numRuns: s.runs },
    );
    // both outcomes occur: the mutations reach the parsers, not only the sniffing
    assert.ok(seen.fabric > 0, JSON.stringify(seen));
  });
}

test("fuzz merged sources: mutated lspci -tv + lspci -nnvvv + lscpu of one machine", () => {
  const tv = readFixture("p2p-mixed", "lspci-tv.txt");
  const vvv = readFixture("p2p-mixed", "lspci-nnvvv.txt");
  const lscpu = readReal("stelline/asus-esc8000a-e12-epyc-genoa-4x-rtx6000ada/lscpu.txt");
  fc.assert(
    fc.property(
      fc.array(mutation, { maxLength: 3 }),
      fc.array(mutation, { maxLength: 3 }),
      fc.array(mutation, { maxLength: 2 }),
      (a, b, c) => {
        importOrInputError([
          { file: "tv.txt", text: a.reduce(apply, tv) },
          { file: "vvv.txt", text: b.reduce(apply, vvv) },
          { file: "lscpu.txt", text: c.reduce(apply, lscpu) },
        ]);
      },
    ),
    { numRuns: 150 },
  );
});

test("fuzz arbitrary text and XML-ish noise: InputError or fabric, never anything else", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 300 }),
        fc
          .array(
            fc.constantFrom(
              "<topology>",
              "<system>",
              '<cpu numaid="0">',
              '<pci busid="0000:01:00.0">',
              "</pci>",
              "</cpu>",
              '<object type="PCIDev" pci_busid="0000:00:01.0"/>',
              "-[0000:00]-+-00.0",
              "  +-01.0-[01]--",
              "00:01.0 PCI bridge: x",
              "\tBus: primary=00, secondary=01, subordinate=01",
              "\n",
            ),
            { maxLength: 40 },
          )
          .map((x) => x.join("")),
      ),
      (text) => {
        importOrInputError([{ file: "noise.txt", text }]);
      },
    ),
    { numRuns: 400 },
  );
});
