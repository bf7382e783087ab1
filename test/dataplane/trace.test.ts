/** A transfer's TLP trace, written to a file, decodes with `peerdma tlp decode <file>`. */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Command } from "commander";
import { registerTlp } from "../../src/cli/commands/tlp.js";
import { bytes, fromText, switchMachine } from "./helpers.js";

async function decodeFile(file: string): Promise<unknown[]> {
  let out = "";
  const program = new Command().name("peerdma").exitOverride();
  registerTlp(program);
  const ow = process.stdout.write;
  process.stdout.write = ((s: string | Uint8Array) => {
    out += String(s);
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(["tlp", "decode", "--json", file], { from: "user" });
  } finally {
    process.stdout.write = ow;
  }
  assert.ok(!process.exitCode, `exit code ${process.exitCode}`);
  return JSON.parse(out) as unknown[];
}

test("TLP trace export: mixed flit / non-flit links, TPH prefix, completions — every line decodes, modes as recorded", async () => {
  const { e, dev } = fromText(switchMachine({ flit: true }));
  // the SSD's link without flit mode: the trace holds FM and NFM TLPs
  for (const d of [dev("SSD"), dev("DSP1")]) d.config.write16(d.pcieCapOffset + 0x32, 0);
  const w = e.dmaWrite(dev("NIC"), dev("SSD").busAddress(2), bytes(300), {
    addressKind: "bus",
    tph: { st: 0xabcd, ph: 3, extended: true },
  });
  const r = e.dmaRead(dev("NIC"), dev("SSD").busAddress(2) + 4n, 200, { addressKind: "bus" });
  const dir = mkdtempSync(join(tmpdir(), "peerdma-trace-"));
  const file = join(dir, "trace.txt");
  writeFileSync(file, w.tlps.toText() + r.tlps.toText());
  const decoded = (await decodeFile(file)) as { name: string; mode: string }[];
  const entries = [...w.tlps.entries, ...r.tlps.entries];
  assert.equal(decoded.length, entries.length);
  for (const [i, d] of decoded.entries()) {
    assert.equal(d.name, entries[i].header.info.name);
    assert.equal(d.mode, entries[i].mode);
  }
  assert.ok(decoded.some((d) => d.mode === "fm") && decoded.some((d) => d.mode === "nfm"));
});
