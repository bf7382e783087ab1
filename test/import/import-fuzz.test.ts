/**
 * Fuzzed and truncated inputs (fast-check mutations of the real fixtures) end in an InputError
 * or a valid fabric — never another exception, never a hang: archives (compressed and not),
 * single sysfs files and links, lspci hex dumps, and raw config bytes for the decoder.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import fc from "fast-check";
import { InputError } from "../../src/core/errors.js";
import { importLspciHex } from "../../src/import/lspci-hex.js";
import { importSysfs } from "../../src/import/sysfs.js";
import { MemFs } from "../../src/import/sysfs-vfs.js";
import { readArchive, readTar } from "../../src/import/tar.js";
import { decodeConfig } from "../../src/pci/decode.js";
import { Fabric } from "../../src/pci/fabric.js";
import { fixtureFile } from "../helpers/qemu-fixture.js";

const REAL = fileURLToPath(new URL("../../../shared/fixtures/real/", import.meta.url));
/** No single import may take longer than this (the largest real snapshot takes ~0.4 s). */
const TIME_LIMIT_MS = 5000;

/** A fabric is usable: every function enumerates, walks to its root, decodes, has a kind and a link answer. */
function checkFabric(f: Fabric): void {
  const devs = f.devices();
  for (const d of devs) {
    assert.ok(Fabric.pathToRoot(d).length < 256);
    decodeConfig(d.config);
    void d.kind;
    void d.link;
    assert.equal(f.find(d.bdf), d);
  }
}

/** Runs an import; "error" for an InputError with a message, "fabric" for a usable fabric; anything else fails. */
function outcome(run: () => { fabric: Fabric }): "error" | "fabric" {
  const t0 = Date.now();
  try {
    checkFabric(run().fabric);
    return "fabric";
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    assert.ok(e.message.length > 10, "an InputError says what was wrong");
    return "error";
  } finally {
    assert.ok(Date.now() - t0 < TIME_LIMIT_MS, `took ${Date.now() - t0} ms`);
  }
}

const flipsArb = (max: number) =>
  fc.array(fc.record({ at: fc.nat({ max: max - 1 }), value: fc.integer({ min: 0, max: 255 }) }), {
    minLength: 1,
    maxLength: 8,
  });

function mutate(bytes: Uint8Array, flips: { at: number; value: number }[], cut: number | null): Uint8Array {
  const b = bytes.slice();
  for (const f of flips) b[f.at % b.length] = f.value;
  return cut === null ? b : b.subarray(0, cut % (b.length + 1));
}

const topos = ["switch", "mixed", "mf-rootports"] as const;
const tars = new Map(
  topos.map((t) => [t, new Uint8Array(gunzipSync(readFileSync(fixtureFile(t, "sysfs.tar.gz"))))]),
);
const gzips = new Map(topos.map((t) => [t, new Uint8Array(readFileSync(fixtureFile(t, "sysfs.tar.gz")))]));

test("fuzz: mutated and truncated tar data of the QEMU snapshots → InputError or a valid fabric", () => {
  const seen = { error: 0, fabric: 0 };
  fc.assert(
    fc.property(
      fc.constantFrom(...topos),
      flipsArb(400_000),
      fc.option(fc.nat(), { freq: 3 }),
      (topo, flips, cut) => {
        const bytes = mutate(tars.get(topo)!, flips, cut);
        seen[outcome(() => importSysfs(MemFs.fromTar(readTar(bytes, topo), topo)))]++;
      },
    ),
    { seed: 0x5eed1, numRuns: 200 },
  );
  assert.ok(seen.error > 0 && seen.fabric > 0, JSON.stringify(seen));
});

test("fuzz: mutated and truncated .tar.gz and .tar.bz2 files → InputError or a valid fabric", () => {
  const bz = new Uint8Array(readFileSync(`${REAL}hwloc/kvm-vm-pcidomain32bits/2pa-pcidomain32bits.tar.bz2`));
  fc.assert(
    fc.property(
      fc.constantFrom(...topos),
      flipsArb(20_000),
      fc.option(fc.nat(), { freq: 2 }),
      (topo, flips, cut) => {
        const bytes = mutate(gzips.get(topo)!, flips, cut);
        outcome(() => importSysfs(MemFs.fromTar(readArchive(bytes, "x.tar.gz"), "x.tar.gz")));
      },
    ),
    { seed: 0x5eed2, numRuns: 60 },
  );
  fc.assert(
    fc.property(flipsArb(bz.length), fc.option(fc.nat(), { freq: 2 }), (flips, cut) => {
      const bytes = mutate(bz, flips, cut);
      outcome(() => importSysfs(MemFs.fromTar(readArchive(bytes, "x.tar.bz2"), "x.tar.bz2")));
    }),
    { seed: 0x5eed3, numRuns: 25 },
  );
});

/** The snapshot's entries, to rebuild a fresh MemFs per run. */
const entries = new Map(topos.map((t) => [t, readTar(tars.get(t)!, t)]));
const mutableFiles = new Map(
  topos.map((t) => [
    t,
    entries
      .get(t)!
      .filter(
        (e) =>
          /\/(config|resource|numa_node|\w+_link_\w+|class|vendor|device|secondary_bus_number)$|proc\/cpuinfo$/.test(
            e.path,
          ) || e.type === "symlink",
      )
      .map((e) => e.path),
  ]),
);

const fileMutation = fc.record({
  pick: fc.nat(),
  how: fc.constantFrom("bytes", "truncate", "empty", "text", "link", "to-file"),
  bytes: fc.uint8Array({ maxLength: 4200 }),
  text: fc.constantFrom(
    "0x",
    "-1\n",
    "0xffffffff\n",
    "99999999999\n",
    "8.0 GT/s",
    "Unknown\n",
    "../../..",
    "/",
    "0000:00:00.0",
    "\n\n\n",
  ),
  cut: fc.nat({ max: 4096 }),
});

test("fuzz: single sysfs files and links of a snapshot replaced by garbage → InputError or a valid fabric", () => {
  const seen = { error: 0, fabric: 0 };
  fc.assert(
    fc.property(
      fc.constantFrom(...topos),
      fc.array(fileMutation, { minLength: 1, maxLength: 4 }),
      (topo, muts) => {
        const fs = MemFs.fromTar(entries.get(topo)!, topo);
        const files = mutableFiles.get(topo)!;
        for (const m of muts) {
          const p = files[m.pick % files.length];
          const old = fs.readFile(p) ?? new Uint8Array(0);
          if (m.how === "bytes") fs.add(p, "file", m.bytes);
          else if (m.how === "truncate") fs.add(p, "file", old.subarray(0, m.cut % (old.length + 1)));
          else if (m.how === "empty") fs.add(p, "file", new Uint8Array(0));
          else if (m.how === "text") fs.add(p, "file", new TextEncoder().encode(m.text));
          else if (m.how === "link") fs.add(p, "symlink", undefined, m.text);
          else fs.add(p.slice(0, p.lastIndexOf("/")), "file", m.bytes); // a whole folder replaced by a file
        }
        seen[outcome(() => importSysfs(fs))]++;
      },
    ),
    { seed: 0x5eed4, numRuns: 400 },
  );
  assert.ok(seen.error > 0 && seen.fabric > 0, JSON.stringify(seen));
});

const dumpText = readFileSync(`${REAL}pciutils/asus-p6t6-ws-x58-nf200/tree-asus-p6t6.lspci-xxxx.txt`, "utf8");
const dumpLines = dumpText.split("\n");

test("fuzz: mutated lspci -xxxx dumps (characters, lines, truncation) → InputError naming file:line or a valid fabric", () => {
  const seen = { error: 0, fabric: 0 };
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          line: fc.nat(),
          how: fc.constantFrom("char", "delete", "duplicate", "swap", "blank"),
          col: fc.nat({ max: 80 }),
          ch: fc.constantFrom("0", "f", "g", " ", ":", ".", "\t", "x", "-", "Z"),
        }),
        { maxLength: 5 },
      ),
      fc.option(fc.nat(), { freq: 3 }),
      (muts, cut) => {
        const lines = [...dumpLines];
        for (const m of muts) {
          const i = m.line % lines.length;
          if (m.how === "char") lines[i] = lines[i].slice(0, m.col) + m.ch + lines[i].slice(m.col + 1);
          else if (m.how === "delete") lines.splice(i, 1);
          else if (m.how === "duplicate") lines.splice(i, 0, lines[i]);
          else if (m.how === "swap")
            [lines[i], lines[(i + 1) % lines.length]] = [lines[(i + 1) % lines.length], lines[i]];
          else lines[i] = "";
        }
        let text = lines.join("\n");
        if (cut !== null) text = text.slice(0, cut % (text.length + 1));
        seen[outcome(() => importLspciHex(text, "dump.txt"))]++;
      },
    ),
    { seed: 0x5eed5, numRuns: 400 },
  );
  assert.ok(seen.error > 0 && seen.fabric > 0, JSON.stringify(seen));
  // The errors name the file and a line.
  assert.throws(
    () => importLspciHex(dumpText.slice(0, 5000), "dump.txt"),
    (e: unknown) => e instanceof InputError && /^dump\.txt:\d+: /.test(e.message),
  );
});

test("fuzz: decodeConfig never throws, for any bytes and any length", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 4096 }),
      fc.option(fc.nat({ max: 5000 })),
      (bytes, len) => {
        // Capability lists are most interesting when the status bit and pointers are set.
        if (bytes.length > 0x40) {
          bytes[6] |= 0x10;
          bytes[0x34] |= 0x40;
        }
        const d = decodeConfig(bytes, len ?? undefined);
        assert.ok(d.capabilities.length <= 64 && d.extCapabilities.length <= 1024);
      },
    ),
    { seed: 0x5eed6, numRuns: 2000 },
  );
});
