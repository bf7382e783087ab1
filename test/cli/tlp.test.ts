/** `peerdma tlp decode|encode` through commander, in-process (registerTlp on a fresh program). */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Command, CommanderError } from "commander";
import { registerTlp } from "../../src/cli/commands/tlp.js";

const CAPTURE = ["08000260", "F0000004", "E0200000", "00080006", "90F00000"];
const TLP1_WIRE = "60 02 00 08 04 00 00 F0 00 00 20 E0 06 00 08 00 00 00 F0 90";

async function peerdma(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const program = new Command()
    .name("peerdma")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => {
        out += s;
      },
      writeErr: (s) => {
        err += s;
      },
    });
  registerTlp(program);
  const ow = process.stdout.write;
  const ew = process.stderr.write;
  process.stdout.write = ((s: string | Uint8Array) => {
    out += String(s);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => {
    err += String(s);
    return true;
  }) as typeof process.stderr.write;
  process.exitCode = undefined;
  let code: number | undefined;
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    code = e.exitCode;
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
  code ??= typeof process.exitCode === "number" ? process.exitCode : 0;
  process.exitCode = undefined;
  return { code, out, err };
}

test("tlp decode: the analyzer capture with --dword-order le (TLP-1) prints every field and the three forms", async () => {
  const r = await peerdma("tlp", "decode", "--dword-order", "le", ...CAPTURE);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^MWr64 \(flit mode\)/);
  assert.match(r.out, /Requester ID\s+0x0400\s+04:00\.0/);
  assert.match(r.out, /OHC-B ST\[7:0\]\s+0xf0/);
  assert.match(r.out, /TPH: ST 0xf0 \(8-bit\), PH 2 \(target\)/);
  assert.ok(r.out.includes(`wire:   ${TLP1_WIRE}`));
  assert.ok(
    r.out.includes("AER:    TLP Header (Flit): 0x60020008 0x040000f0 0x000020e0 0x06000800 0x0000f090"),
  );
  assert.ok(r.out.includes(`LE DWs: ${CAPTURE.join(" ")}`));
});

test("tlp decode --json --to nfm: TLP-1 and its non-flit translation (TLP-3)", async () => {
  const r = await peerdma("tlp", "decode", "--json", "--mode", "fm", "--to", "nfm", ...TLP1_WIRE.split(" "));
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.name, "MWr64");
  assert.equal(j.mode, "fm");
  assert.deepEqual(j.info.tph, { st: 0xf0, stBits: 8, ph: 2 });
  assert.equal(j.header.address, "0x20e006000800");
  assert.deepEqual(j.input, { form: "bytes", aer: false });
  assert.equal(j.translated.forms.wire, "60 01 00 08 04 00 F0 FF 00 00 20 E0 06 00 08 02");
  assert.equal(j.translated.forms.aer, "TLP Header: 0x60010008 0x0400f0ff 0x000020e0 0x06000802");
});

test("tlp decode of a file: one TLP per line, AER prefixes, comments; a bad line exits 2 naming file:line", async () => {
  const dir = mkdtempSync(join(tmpdir(), "peerdma-tlp-"));
  const file = join(dir, "trace.txt");
  writeFileSync(
    file,
    [
      "# three TLPs and a broken one",
      "[ 101.5] pcieport 0000:00:01.0: AER:   TLP Header: 0x60010020 0x8100cdff 0x00000038 0x00000003 E-E Prefixes: 0x90ab0000",
      "",
      "4A 00 00 40 41 00 01 00 04 00 12 40",
      "60 02 00 08 04 00 00 F0 00 00 20 E0 06 00 08",
      `${CAPTURE.join(" ")}`,
    ].join("\n"),
  );
  const r = await peerdma("tlp", "decode", file, "--json");
  assert.equal(r.code, 2);
  const j = JSON.parse(r.out);
  assert.equal(j.length, 4);
  assert.equal(j[0].line, 2);
  assert.equal(j[0].name, "MWr64");
  assert.deepEqual(j[0].info.tph, { st: 0xabcd, stBits: 16, ph: 3 });
  assert.equal(j[1].name, "CplD");
  assert.equal(j[2].line, 5);
  assert.ok(j[2].error);
  assert.equal(j[3].mode, "fm");
  assert.match(r.err, /trace\.txt:5: /);
  assert.match(r.err, /trace\.txt:5: 15 bytes is not a multiple of 4/);
  // the same file as text: each TLP headed by its line
  const t = await peerdma("tlp", "decode", file);
  assert.equal(t.code, 2);
  assert.match(t.out, /^line 2: MWr64 \(non-flit mode\)/m);
  assert.match(t.out, /^line 6: MWr64 \(flit mode\)/m);
});

test("tlp decode errors exit 2 with the byte and reason, no stack", async () => {
  const r = await peerdma("tlp", "decode", "--mode", "fm", ...TLP1_WIRE.split(" ").slice(0, 16));
  assert.equal(r.code, 2);
  assert.equal(r.err, "peerdma: truncated at byte 16: OHC-B expected\n");
  const bad = await peerdma("tlp", "decode", "--dword-order", "middle", "00");
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--dword-order "middle": expected be \| le/);
  const tr = await peerdma(
    "tlp",
    "decode",
    "--to",
    "nfm",
    "--mode",
    "fm",
    "03 00 00 01 01 00 05 55 FE DC BA 98",
  );
  assert.equal(tr.code, 2);
  assert.match(tr.err, /untranslatable: Tag 0x555 needs 14 bits/);
});

test("tlp encode prints the three forms (TLP-2) and JSON; bad fields exit 2 naming the option", async () => {
  const r = await peerdma(
    "tlp",
    "encode",
    "--mode",
    "fm",
    "--type",
    "MWr",
    "--addr",
    "0x000020E0_06000800",
    "--len",
    "8",
    "--requester",
    "04:00.0",
    "--tag",
    "0xF0",
    "--st",
    "0xF0",
    "--ph",
    "2",
    "--ohc",
    "b",
  );
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trimEnd().split("\n");
  assert.match(lines[0], /^MWr64 \(flit mode\): MWr64 TC=0 OHC=2/);
  assert.equal(lines[1], `wire:   ${TLP1_WIRE}`);
  assert.equal(lines[2], "AER:    TLP Header (Flit): 0x60020008 0x040000f0 0x000020e0 0x06000800 0x0000f090");
  assert.equal(lines[3], `LE DWs: ${CAPTURE.join(" ")}`);
  const n = await peerdma(
    "tlp",
    "encode",
    "--type",
    "MWr",
    "--addr",
    "0x20E006000800",
    "--len",
    "8",
    "--requester",
    "04:00.0",
    "--st",
    "0xF0",
    "--ph",
    "2",
    "--json",
  );
  assert.equal(n.code, 0, n.err);
  assert.equal(JSON.parse(n.out).forms.wire, "60 01 00 08 04 00 F0 FF 00 00 20 E0 06 00 08 02");
  const cpl = await peerdma(
    "tlp",
    "encode",
    "--mode",
    "fm",
    "--type",
    "Cpl",
    "--completer",
    "41:00.0",
    "--requester",
    "04:00.0",
    "--tag",
    "0x12",
    "--status",
    "UR",
    "--byte-count",
    "4",
    "--len",
    "1024",
  );
  assert.equal(cpl.code, 0, cpl.err);
  assert.match(cpl.out, /wire: {3}0A 01 00 00 41 00 00 12 04 00 00 04 00 00 00 01/);
  for (const [args, re] of [
    [["--type", "MWr", "--addr", "0x1000", "--tag", "5", "--st", "0x22"], /tag.*carries ST\[7:0\]/],
    [["--type", "MWr", "--addr", "0x1000", "--tc", "9"], /--tc "9": expected a number 0\.\.0x7/],
    [["--type", "Bogus"], /"Bogus" is not a non-flit TLP type/],
    [["--type", "MWr"], /address: MWr32 needs an address/],
    [["--addr", "0x10"], /--type is required/],
    [["--type", "MWr", "--addr", "0x1000", "--requester", "zz:00.0"], /not a PCI address/],
  ] as [string[], RegExp][]) {
    const e = await peerdma("tlp", "encode", ...args);
    assert.equal(e.code, 2, args.join(" "));
    assert.match(e.err, re);
  }
});

test("tlp --help, decode --help and encode --help teach with examples", async () => {
  for (const args of [
    ["tlp", "--help"],
    ["tlp", "decode", "--help"],
    ["tlp", "encode", "--help"],
  ]) {
    const r = await peerdma(...args);
    assert.equal(r.code, 0);
    assert.match(r.out, /Examples:\n\s+(# .*\n\s+)?peerdma tlp /);
  }
  const d = await peerdma("tlp", "decode", "--help");
  assert.match(d.out, /--dword-order <order>/);
  assert.match(d.out, /AER/);
});
