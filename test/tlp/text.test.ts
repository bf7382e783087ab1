/** Textual forms, detection, the builder's checks and the renderings (tph-and-tlp.md §0, §10, §11). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InputError } from "../../src/core/errors.js";
import {
  buildTlp,
  decodeTlp,
  decodeTlpText,
  describeTlp,
  encodeTlp,
  formatWire,
  parseTlpText,
  summaryLine,
  TlpEncodeError,
  tlpForms,
  tlpToJson,
} from "../../src/tlp/index.js";

const TLP1_WIRE = "60 02 00 08 04 00 00 F0 00 00 20 E0 06 00 08 00 00 00 F0 90";
const bytes = (s: string) => Uint8Array.from(s.trim().split(/\s+/), (x) => Number.parseInt(x, 16));

test("the three forms of TLP-1 decode to the same header; a run of hex without spaces is bytes", () => {
  const forms = [
    { text: TLP1_WIRE, form: "bytes" },
    { text: "0x60020008 0x040000f0 0x000020e0 0x06000800 0x0000f090", form: "be-dwords" },
    { text: "60020008 040000f0 000020e0 06000800 0000f090", form: "be-dwords" },
    { text: "08000260 F0000004 E0200000 00080006 90F00000", form: "le-dwords" },
    { text: TLP1_WIRE.replace(/ /g, ""), form: "bytes" },
    { text: "TLP Header (Flit): 0x60020008 0x040000f0 0x000020e0 0x06000800 0x0000f090", form: "be-dwords" },
  ];
  for (const f of forms) {
    const r = decodeTlpText(f.text, { mode: "fm" });
    assert.equal(r.form, f.form, f.text);
    assert.equal(formatWire(encodeTlp(r.tlp)), TLP1_WIRE, f.text);
  }
  const f = tlpForms(decodeTlp(bytes(TLP1_WIRE), { mode: "fm" }));
  assert.deepEqual(f, {
    wire: TLP1_WIRE,
    be: "0x60020008 0x040000f0 0x000020e0 0x06000800 0x0000f090",
    le: "08000260 F0000004 E0200000 00080006 90F00000",
    aer: "TLP Header (Flit): 0x60020008 0x040000f0 0x000020e0 0x06000800 0x0000f090",
  });
});

test("--dword-order forces the order; 0x values and AER lines are big-endian; a forced wrong order is an error", () => {
  assert.throws(
    () => decodeTlpText("08000260 F0000004 E0200000 00080006 90F00000", { dwordOrder: "be" }),
    /reserved/,
  );
  assert.equal(
    decodeTlpText("0x60020008 0x040000f0 0x000020e0 0x06000800 0x0000f090", { mode: "fm" }).form,
    "be-dwords",
  );
  const p = parseTlpText(
    "[  12.3] pcieport 0000:00:01.0: AER:   TLP Header: 60010008 0400f0ff 000020e0 06000802",
  );
  assert.equal(p.order, "be");
  assert.deepEqual(p.aer, { flit: false });
  assert.equal(decodeTlpText("TLP Header: 60010008 0400f0ff 000020e0 06000802").tlp.mode, "nfm");
});

test("auto mode: the mode that decodes, the one that explains the input better, NFM on a tie (with a note)", () => {
  const tie = decodeTlpText("40 00 00 01 01 00 00 0F FE E0 00 00");
  assert.equal(tie.tlp.mode, "nfm");
  assert.match(tie.notes.join(), /both modes decode/);
  assert.equal(decodeTlpText("03 00 00 01 01 00 01 55 FE DC BA 98").tlp.mode, "fm");
  assert.equal(decodeTlpText(TLP1_WIRE).tlp.mode, "fm");
  assert.equal(decodeTlpText("20 01 00 10 04 00 12 3C 00 00 00 01 00 00 10 01").tlp.mode, "nfm");
});

test("unreadable text is an InputError naming the token or the problem", () => {
  for (const [text, re] of [
    ["", /no hex/],
    ["60 02 zz", /"zz"/],
    ["60 0x040000f0", /mixes/],
    ["abc", /"abc"/],
  ] as const)
    assert.throws(
      () => decodeTlpText(text, { where: "t.txt:3" }),
      (e: unknown) => e instanceof InputError && re.test(e.message) && e.message.startsWith("t.txt:3"),
    );
  assert.throws(
    () => decodeTlpText("03 00 00 00", { mode: "nfm", where: "t.txt:4" }),
    /TlpDecodeError: t\.txt:4: byte 0: reserved Fmt\/Type/,
  );
});

test("reserved bits are reported and kept: LN set in NFM byte 1 encodes back to the same bytes", () => {
  const t = decodeTlp(bytes("40 02 00 01 01 00 00 0F FE E0 00 00"), { mode: "nfm" });
  assert.deepEqual(t.reserved, [{ offset: 1, bits: 0x02 }]);
  assert.match(t.notes.join(), /reserved bits set: byte 1 mask 0x02/);
  assert.equal(formatWire(encodeTlp(t)), "40 02 00 01 01 00 00 0F FE E0 00 00");
});

test("the builder places TPH per mode and refuses what the wire cannot carry", () => {
  // NFM posted write: ST in byte 6, no tag; a different tag is a conflict
  const w = { mode: "nfm", type: "MWr", address: 0x1000n, length: 2, st: 0x22, ph: 1 } as const;
  assert.equal(formatWire(encodeTlp(buildTlp(w))), "40 01 00 02 00 00 22 FF 00 00 10 01");
  assert.throws(
    () => buildTlp({ ...w, tag: 5 }),
    (e: unknown) => e instanceof TlpEncodeError && /tag byte/.test(e.message),
  );
  // NFM read with TPH: byte enables implied; explicit ones cannot be carried
  assert.throws(
    () => buildTlp({ mode: "nfm", type: "MRd", address: 0x1000n, st: 1, firstBe: 0x3 }),
    (e: unknown) => e instanceof TlpEncodeError && /implied/.test(e.message),
  );
  // 16-bit ST: ExtTPH prefix in NFM, HV 11 in FM
  const r16 = buildTlp({ mode: "nfm", type: "MRd", address: 0x1000n, st: 0xabcd, ph: 3 });
  assert.deepEqual(r16.prefixes, [{ type: 0x90, body: 0xab0000 }]);
  const f16 = decodeTlp(
    encodeTlp(buildTlp({ mode: "fm", type: "MRd", address: 0x1000n, st: 0xabcd, ph: 3 })),
    { mode: "fm" },
  );
  assert.deepEqual(f16.info.tph, { st: 0xabcd, stBits: 16, ph: 3 });
  assert.throws(() => buildTlp({ ...w, st: 0x1ff, stBits: 8 }), /does not fit 8 bits/);
  assert.throws(() => buildTlp({ mode: "nfm", type: "CplD", st: 1 }), /TPH applies to memory requests/);
  assert.throws(() => buildTlp({ mode: "nfm", type: "MWr32", address: 1n << 32n }), /32-bit address/);
  assert.throws(() => buildTlp({ mode: "nfm", type: "MWr", address: 0x1002n }), /DW-aligned/);
  assert.throws(() => buildTlp({ mode: "nfm", type: "Frob" }), /not a non-flit TLP type \(MRd32, /);
  assert.throws(() => buildTlp({ mode: "nfm", type: "MWr", address: 0n, ohc: "b" }), /only in flit mode/);
  // the 64-bit form is chosen from the address
  assert.equal(
    decodeTlp(encodeTlp(buildTlp({ mode: "fm", type: "mrd", address: 1n << 40n })), { mode: "fm" }).info.name,
    "MRd64",
  );
});

test("encoder range checks name the field", () => {
  const t = decodeTlp(bytes(TLP1_WIRE), { mode: "fm" });
  const bad = (patch: Record<string, unknown>, re: RegExp) =>
    assert.throws(
      () => encodeTlp({ ...t, header: { ...t.header, ...patch } as typeof t.header } as typeof t),
      (e: unknown) => e instanceof TlpEncodeError && re.test(e.message),
    );
  bad({ tc: 8 }, /^header\.tc: 0x8 is not an integer in 0\.\.0x7/);
  bad({ tag: 0x4000 }, /^header\.tag:/);
  bad({ length: 0 }, /^header\.length:/);
  bad({ address: 0x1002n }, /^header\.address: .*DW-aligned/);
  bad({ address: 1n << 64n }, /^header\.address: .*64-bit/);
  bad({ type: 0x10 }, /^header\.type: 0x10 is a reserved type code/);
  bad({ type: 0x4a }, /^header\.type: 0x4a is CplD \(kind cpl\), not kind mem/);
  bad({ ohcB: { st: 0x10000, ph: 0, hv: 1, ama: 0, av: false } }, /^header\.ohcB\.st:/);
  bad({ ohcE: [1, 2, 3] }, /^header\.ohcE: 3 DWs/);
});

test("renderings: field rows in wire order, the analyzer summary line, JSON without bigint", () => {
  const t = decodeTlp(bytes(TLP1_WIRE), { mode: "fm" });
  const rows = describeTlp(t);
  assert.deepEqual(rows[0], {
    bytes: "0",
    bits: "7:0",
    field: "Type",
    value: "0x60",
    meaning: "MWr64: Memory Write Request, 64-bit address",
  });
  assert.ok(
    rows.some((r) => r.field === "OHC-B HV" && r.value === "0b01" && r.meaning === "PH and ST[7:0] valid"),
  );
  assert.ok(rows.some((r) => r.field === "Address" && r.value === "0x000020e006000800"));
  assert.match(
    summaryLine(t),
    /^MWr64 TC=0 OHC=2 TS=0 Attr=0 L=8 \/ RID=04:00\.0 EP- Tag=F0h \/ AddrH=000020E0h \/ AddrL=06000800h \/ OHC-B ST=F0h PH=2 HV=1 AMA=0 AV-/,
  );
  const j = JSON.parse(JSON.stringify(tlpToJson(t)));
  assert.equal(j.header.address, "0x20e006000800");
  assert.equal(j.ids.requester, "04:00.0");
  assert.equal(j.info.tph.st, 0xf0);
  assert.equal(j.forms.le, "08000260 F0000004 E0200000 00080006 90F00000");
});
