/**
 * lspci -x / -xxx / -xxxx dumps: the formats lspci writes, the fabric built from the bridges'
 * bus numbers (checked against `lspci -tv` of the same dumps), and errors that name file:line.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { InputError } from "../../src/core/errors.js";
import { configFromBytes, importLspciHex, parseLspciHex } from "../../src/import/lspci-hex.js";
import type { PciDev } from "../../src/pci/device.js";

const PCIUTILS = fileURLToPath(new URL("../../../shared/fixtures/real/pciutils/", import.meta.url));

interface TreeEntry {
  bdf: string;
  parent: string | null;
}

/**
 * Reads `lspci -tv`: a bridge token `dd.f-[ss(-uu)]` opens bus ss for the tokens that start in
 * the column of its first child; `[dddd:bb]` opens a root bus.
 */
function parseLspciTree(text: string): TreeEntry[] {
  const out: TreeEntry[] = [];
  const busAtCol = new Map<number, { domain: string; bus: string; parent: string | null }>();
  for (const raw of text.split("\n")) {
    const line = /^[ |\\+\-[\]0-9a-f:.]*/.exec(raw)![0];
    const tokens = [
      ...line.matchAll(
        /\[([0-9a-f]{4,8}):([0-9a-f]{2})\]|([0-9a-f]{2}\.[0-7])(?:-\[([0-9a-f]{2})(?:-[0-9a-f]{2})?\])?/g,
      ),
    ];
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      const next = tokens[i + 1];
      if (t[1]) {
        if (next) busAtCol.set(next.index!, { domain: t[1], bus: t[2], parent: null });
        continue;
      }
      const at = busAtCol.get(t.index!);
      assert.ok(at, `lspci -tv: no bus known for column ${t.index} in "${raw}"`);
      const bdf = `${at.domain}:${at.bus}:${t[3]}`;
      out.push({ bdf, parent: at.parent });
      if (t[4] && next) busAtCol.set(next.index!, { domain: at.domain, bus: t[4], parent: bdf });
    }
  }
  return out;
}

const dumps = [
  "asus-p6t6-ws-x58-nf200/tree-asus-p6t6.lspci-xxxx.txt",
  "ibm-ppc-pcix-multidomain/PCI-X-bridges-and-domains.lspci-xxxx.txt",
  "xeon-e5v3-rootport-acs-enabled/cap-aer-root.lspci-xxxx.txt",
];

for (const name of dumps) {
  test(`lspci hex import: ${name} builds the tree lspci -tv shows for it`, () => {
    const file = `${PCIUTILS}${name}`;
    const r = importLspciHex(readFileSync(file, "utf8"), file);
    const tree = parseLspciTree(readFileSync(`${PCIUTILS}${name.split("/")[0]}/lspci-tv.txt`, "utf8"));
    assert.ok(tree.length > 0);
    assert.deepEqual(
      r.fabric
        .devices()
        .map((d) => d.bdf)
        .sort(),
      tree.map((e) => e.bdf).sort(),
    );
    for (const e of tree)
      assert.equal(r.fabric.get(e.bdf).bus.self?.bdf ?? null, e.parent, `${e.bdf} parent`);
    // Every function keeps the bytes of the dump, bus registers included.
    for (const f of r.functions) {
      const d = r.fabric.get(f.bdf);
      assert.deepEqual(d.config.bytes.slice(0, f.bytes.length), f.bytes, `${f.bdf} bytes`);
      assert.equal(r.provenance.get(f.bdf, "config")?.source.line, f.line);
    }
    assert.deepEqual(r.notes, []);
  });
}

test("lspci hex import: the multi-domain IBM dump gives one host bridge per domain, empty bridges keep their bus", () => {
  const file = `${PCIUTILS}ibm-ppc-pcix-multidomain/PCI-X-bridges-and-domains.lspci-xxxx.txt`;
  const r = importLspciHex(readFileSync(file, "utf8"), file);
  assert.deepEqual(
    r.fabric.hostBridges.map((h) => h.label),
    ["pci0000:00", "pci0001:00", "pci0002:00", "pci0003:00", "pci0004:00"],
  );
  const empty = r.fabric.get("0001:00:02.3");
  assert.equal(empty.subordinate?.number, 0x31);
  assert.equal(empty.subordinate?.devices.length, 0);
  assert.equal(empty.config.read8(0x1a), 0x40, "subordinate register as dumped");
});

const HEADER64 = [
  "00: 86 80 04 2f 07 00 10 00 02 00 04 06 10 00 81 00",
  "10: 00 00 00 00 00 00 00 00 00 03 03 00 f0 00 00 20",
  "20: 00 be 10 c0 f1 ff 01 00 00 00 00 00 00 00 00 00",
  "30: 00 00 00 00 40 00 00 00 00 00 00 00 0b 01 10 00",
];
const EP64 = [
  "00: b3 15 07 10 06 04 10 00 00 00 00 02 10 00 00 00",
  "10: 04 00 00 c0 00 00 00 00 0c 00 00 00 38 00 00 00",
  "20: 00 00 00 00 00 00 00 00 00 00 00 00 b3 15 01 00",
  "30: 00 00 00 00 40 00 00 00 00 00 00 00 ff 01 00 00",
];

test("lspci hex import: -x output with and without -D, with and without the description, CRLF lines", () => {
  const variants = [
    [
      "00:02.0 PCI bridge: Intel Corporation Device 2f04",
      ...HEADER64,
      "",
      "03:00.0 Network controller: Mellanox",
      ...EP64,
      "",
    ],
    ["0000:00:02.0 0604: 8086:2f04 (rev 02)", ...HEADER64, "", "0000:03:00.0 0280: 15b3:1007", ...EP64],
    ["00:02.0", ...HEADER64, "03:00.0", ...EP64],
    [
      "00:02.0 PCI bridge",
      "\tControl: I/O+ Mem+",
      ...HEADER64,
      "",
      "03:00.0 x",
      "\tSubsystem: y",
      ...EP64,
      "",
    ],
  ];
  for (const lines of variants) {
    for (const eol of ["\n", "\r\n"]) {
      const r = importLspciHex(lines.join(eol), "x.txt");
      assert.deepEqual(
        r.fabric.devices().map((d: PciDev) => [d.bdf, d.vendor, d.bus.self?.bdf ?? null]),
        [
          ["0000:00:02.0", 0x8086, null],
          ["0000:03:00.0", 0x15b3, "0000:00:02.0"],
        ],
      );
      assert.deepEqual(
        r.functions.map((f) => f.bytes.length),
        [64, 64],
      );
    }
  }
  assert.equal(parseLspciHex(["10000:00:04.0 scsi", ...EP64].join("\n"), "d.txt")[0].bdf, "10000:00:04.0");
});

test("lspci hex import: pads to the size class with all-ones", () => {
  const c = configFromBytes(new Uint8Array(64).fill(1));
  assert.equal(c.size, 64);
  const c2 = configFromBytes(new Uint8Array(128).fill(1));
  assert.equal(c2.size, 256);
  assert.equal(c2.read8(200), 0xff);
  assert.equal(configFromBytes(new Uint8Array(300)).size, 4096);
  // Handed over (adopt): bytes that fill their size class and own their buffer are used as they
  // are; anything else is still copied and padded.
  const whole = new Uint8Array(256).fill(2);
  assert.equal(configFromBytes(whole, true).bytes, whole);
  assert.notEqual(configFromBytes(whole).bytes, whole);
  const part = new Uint8Array(512).fill(3).subarray(0, 256);
  assert.notEqual(configFromBytes(part, true).bytes, part);
  const short = configFromBytes(new Uint8Array(100).fill(4), true);
  assert.deepEqual([short.size, short.read8(99), short.read8(100)], [256, 4, 0xff]);
});

function expectError(text: string, re: RegExp): void {
  assert.throws(
    () => importLspciHex(text, "dump.txt"),
    (e: unknown) => e instanceof InputError && re.test(e.message),
    `expected ${re}`,
  );
}

test("lspci hex import: malformed and truncated dumps name the file, the line and what was expected", () => {
  const good = ["00:02.0 bridge", ...HEADER64];
  expectError(
    [...good.slice(0, 3), "20: 00 be 10 c0 f1 zz 01 00 00 00 00 00 00 00 00 00", ...good.slice(4)].join("\n"),
    /^dump\.txt:4: malformed config-space line; expected an offset and 16 hex bytes/,
  );
  expectError(
    good.slice(0, 3).join("\n"),
    /^dump\.txt:3: function 0000:00:02\.0 \(line 1\) has 32 bytes of config space; expected 64 .* truncated/,
  );
  expectError(
    [...good.slice(0, 4), "", ...EP64].join("\n"),
    /^dump\.txt:4: function 0000:00:02\.0 \(line 1\) has 48 bytes/,
  );
  expectError([...good, "", ...EP64].join("\n"), /^dump\.txt:7: config-space line outside a function/);
  expectError(
    [...good, "00:02.0 again", ...HEADER64].join("\n"),
    /^dump\.txt:6: function 0000:00:02\.0 appears twice \(first at line 1\)/,
  );
  expectError(
    ["00:02.0 x", HEADER64[0], HEADER64[2]].join("\n"),
    /^dump\.txt:3: config-space line at offset 0x20; expected offset 0x10/,
  );
  expectError(
    ["00:02.0 x", "00: 86 80 04"].join("\n"),
    /^dump\.txt:2: config-space line has 3 bytes; expected 16/,
  );
  expectError(
    [...good, "lspci: Unable to load libkmod"].join("\n"),
    /^dump\.txt:6: expected a function line .* got "lspci: Unable to load libkmod"/,
  );
  expectError("", /^dump\.txt: no functions found; expected lspci -x, -xxx or -xxxx output/);
  expectError(["00:20.0 x", ...HEADER64].join("\n"), /^dump\.txt:1: device number 0x20 is above 0x1f/);
});

test("lspci hex import: conflicting or backwards secondary bus numbers are noted, never followed", () => {
  const br = (sec: number) => [
    "00: 86 80 04 2f 07 00 10 00 02 00 04 06 10 00 01 00",
    `10: 00 00 00 00 00 00 00 00 00 ${sec.toString(16).padStart(2, "0")} ${sec.toString(16).padStart(2, "0")} 00 f0 00 00 20`,
    HEADER64[2],
    HEADER64[3],
  ];
  // 00:01.0 and 00:02.0 both claim bus 02; 03:00.0 claims bus 01, which is not below it.
  const text = [
    "00:01.0 a",
    ...br(2),
    "00:02.0 b",
    ...br(2),
    "02:00.0 ep",
    ...EP64,
    "03:00.0 c",
    ...br(1),
  ].join("\n");
  const r = importLspciHex(text, "claims.txt");
  assert.equal(r.fabric.devices().length, 4);
  assert.equal(r.fabric.get("0000:02:00.0").bus.self?.bdf, "0000:00:01.0");
  assert.equal(r.fabric.get("0000:00:02.0").subordinate, null);
  assert.equal(r.fabric.get("0000:03:00.0").bus.self, null, "bus 03 is reached by no bridge: a root bus");
  assert.deepEqual(r.notes, ["0000:00:02.0: secondary bus 02 is also claimed by 0000:00:01.0; ignored"]);
});
