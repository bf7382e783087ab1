/** Codec vectors TLP-1 … TLP-18, TLP-20, TLP-21 (tph-and-tlp.md §12.5). */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  buildTlp,
  decodeTlp,
  decodeTlpText,
  encodeTlp,
  type FmHeader,
  formatAer,
  formatBeDwords,
  formatLeDwords,
  formatRid,
  formatWire,
  type NfmHeader,
  type Tlp,
  TlpDecodeError,
  type TlpMode,
  TlpTranslateError,
  tlpForms,
  translateTlp,
} from "../../src/tlp/index.js";

const bytes = (s: string) => Uint8Array.from(s.trim().split(/\s+/), (x) => Number.parseInt(x, 16));
const dec = (s: string, mode: TlpMode, whole = false) => decodeTlp(bytes(s), { mode, whole });
const nfm = (t: Tlp): NfmHeader => {
  assert.equal(t.mode, "nfm");
  return t.header as NfmHeader;
};
const fm = (t: Tlp): FmHeader => {
  assert.equal(t.mode, "fm");
  return t.header as FmHeader;
};

const CAPTURE = "08000260 F0000004 E0200000 00080006 90F00000";
const TLP1_WIRE = "60 02 00 08 04 00 00 F0 00 00 20 E0 06 00 08 00 00 00 F0 90";
const TLP3_WIRE = "60 01 00 08 04 00 F0 FF 00 00 20 E0 06 00 08 02";
const TLP6_WIRE = "90 AB 00 00 60 01 00 20 81 00 CD FF 00 00 00 38 00 00 00 03";
const TLP9_WIRE = "60 03 00 04 04 00 00 00 00 00 00 01 00 00 00 00 00 00 00 C3 00 00 10 10";
const TLP11_WIRE = "20 80 00 01 04 00 A5 0F 00 00 00 01 00 00 00 00";

test("TLP-1 analyzer capture, --dword-order le → FM MWr64, TC 0, OHC 2, TS 0, Attr 0, L 8, RID 04:00.0, Tag 0xF0, address 0x000020E0_06000800, OHC-B ST 0xF0 PH 2", () => {
  const r = decodeTlpText(CAPTURE, { dwordOrder: "le" });
  const t = r.tlp;
  const h = fm(t);
  assert.equal(r.form, "le-dwords");
  assert.equal(formatWire(encodeTlp(t)), TLP1_WIRE);
  assert.equal(t.info.name, "MWr64");
  assert.equal(h.kind, "mem");
  if (h.kind !== "mem") return;
  assert.equal(h.type, 0x60);
  assert.equal(h.tc, 0);
  assert.equal(t.info.ohc, 0b00010);
  assert.equal(h.ohcA, null);
  assert.equal(h.ohcC, null);
  assert.equal(h.ohcE, null);
  assert.equal(h.ts, 0);
  assert.equal(h.attr, 0);
  assert.equal(h.length, 8);
  assert.equal(formatRid(h.requesterId), "04:00.0");
  assert.equal(h.ep, false);
  assert.equal(h.tag, 0xf0);
  assert.equal(h.address, 0x000020e0_06000800n);
  assert.equal(h.at, 0);
  assert.deepEqual(h.ohcB, { st: 0xf0, ph: 2, hv: 1, ama: 0, av: false });
  assert.deepEqual(t.info.tph, { st: 0xf0, stBits: 8, ph: 2 });
  assert.equal(t.info.posted, true);
  assert.equal(t.info.headerBytes, 20);
  assert.equal(t.info.payloadBytes, 32);
  assert.equal(t.info.totalBytes, 52);
  assert.deepEqual(t.reserved, []);
  // Without the option the order is detected: as big-endian, byte 0 = 0x08 is reserved in both modes.
  const auto = decodeTlpText(CAPTURE);
  assert.equal(auto.form, "le-dwords");
  assert.equal(auto.tlp.mode, "fm");
  assert.deepEqual(auto.tlp.header, t.header);
});

test("TLP-2 encode the §9 field set (FM, MWr64, OHC-B HV 01, tag 0x0F0) → wire bytes, AER DWs, the capture text", () => {
  const fromFields = encodeTlp({
    mode: "fm",
    header: {
      kind: "mem",
      type: 0x60,
      tc: 0,
      ts: 0,
      attr: 0,
      length: 8,
      ohcA: null,
      ohcB: { st: 0xf0, ph: 2, hv: 1, ama: 0, av: false },
      ohcC: null,
      ohcE: null,
      requesterId: 0x0400,
      ep: false,
      tag: 0x0f0,
      address: 0x000020e0_06000800n,
      at: 0,
    },
  });
  const fromParams = encodeTlp(
    buildTlp({
      mode: "fm",
      type: "MWr",
      address: 0x000020e0_06000800n,
      length: 8,
      requesterId: 0x0400,
      tag: 0xf0,
      st: 0xf0,
      ph: 2,
      ohc: "b",
    }),
  );
  for (const b of [fromFields, fromParams]) {
    assert.equal(formatWire(b), TLP1_WIRE);
    assert.equal(formatBeDwords(b), "0x60020008 0x040000f0 0x000020e0 0x06000800 0x0000f090");
    assert.equal(formatLeDwords(b), CAPTURE);
  }
  // The default FM posted-tag policy mirrors ST (§8), so the tag need not be given.
  const mirrored = encodeTlp(
    buildTlp({
      mode: "fm",
      type: "MWr64",
      address: 0x000020e0_06000800n,
      length: 8,
      requesterId: 0x0400,
      st: 0xf0,
      ph: 2,
    }),
  );
  assert.equal(formatWire(mirrored), TLP1_WIRE);
});

test("TLP-3 TLP-1 translated to NFM → 60 01 00 08 04 00 F0 FF … 08 02 (TH 1, ST in byte 6, BEs FF, PH 2); back gives TLP-1 exactly", () => {
  const t1 = dec(TLP1_WIRE, "fm");
  const t3 = translateTlp(t1, "nfm");
  assert.equal(formatWire(encodeTlp(t3)), TLP3_WIRE);
  assert.equal(formatBeDwords(encodeTlp(t3)), "0x60010008 0x0400f0ff 0x000020e0 0x06000802");
  const h = nfm(t3);
  assert.equal(h.kind, "mem");
  if (h.kind !== "mem") return;
  assert.deepEqual(h.tph, { st: 0xf0, ph: 2 });
  assert.equal(h.tag, null);
  assert.equal(h.firstBe, 0b1111);
  assert.equal(h.lastBe, 0b1111);
  assert.equal(t3.info.byteEnables?.implied, false);
  const back = translateTlp(t3, "fm");
  assert.equal(formatWire(encodeTlp(back)), TLP1_WIRE);
  assert.deepEqual(back.header, t1.header);
});

test("TLP-4 NFM MRd64 with TPH → Length 16, RID 04:00.0, Tag 0x12, TH 1, ST 0x3C in the BE byte (BEs implied), PH 1, address 0x1_00001000", () => {
  const t = dec("20 01 00 10 04 00 12 3C 00 00 00 01 00 00 10 01", "nfm");
  const h = nfm(t);
  assert.equal(t.info.name, "MRd64");
  if (h.kind !== "mem") return assert.fail("kind");
  assert.equal(h.length, 16);
  assert.equal(formatRid(h.requesterId), "04:00.0");
  assert.equal(h.tag, 0x12);
  assert.deepEqual(h.tph, { st: 0x3c, ph: 1 });
  assert.deepEqual(t.info.tph, { st: 0x3c, stBits: 8, ph: 1 });
  assert.equal(h.firstBe, null);
  assert.deepEqual(t.info.byteEnables, { first: 0b1111, last: 0b1111, implied: true });
  assert.equal(h.address, 0x0000_0001_0000_1000n);
  assert.equal(t.info.payloadBytes, 0);
});

test("TLP-5 NFM MWr32 without TPH → Length 1, RID 01:00.0, Tag 0, Last BE 0000, First BE 1111, address 0xFEE00000, 4 payload bytes", () => {
  const t = dec("40 00 00 01 01 00 00 0F FE E0 00 00", "nfm");
  const h = nfm(t);
  assert.equal(t.info.name, "MWr32");
  if (h.kind !== "mem") return assert.fail("kind");
  assert.equal(h.length, 1);
  assert.equal(formatRid(h.requesterId), "01:00.0");
  assert.equal(h.tag, 0);
  assert.equal(h.lastBe, 0b0000);
  assert.equal(h.firstBe, 0b1111);
  assert.equal(h.address, 0xfee00000n);
  assert.equal(h.tph, null);
  assert.equal(t.info.payloadBytes, 4);
});

test("TLP-6 NFM with ExtTPH prefix → one E-E prefix (ST[15:8] 0xAB), MWr64, Length 32, RID 81:00.0, ST 0xABCD (16-bit), PH 3, address 0x38_00000000", () => {
  const t = dec(TLP6_WIRE, "nfm");
  assert.deepEqual(t.prefixes, [{ type: 0x90, body: 0xab0000 }]);
  const h = nfm(t);
  assert.equal(t.info.name, "MWr64");
  if (h.kind !== "mem") return assert.fail("kind");
  assert.equal(h.length, 32);
  assert.equal(formatRid(h.requesterId), "81:00.0");
  assert.deepEqual(t.info.tph, { st: 0xabcd, stBits: 16, ph: 3 });
  assert.equal(h.address, 0x0000_0038_0000_0000n);
  assert.equal(t.info.prefixBytes, 4);
});

test("TLP-7 TLP-6 translated to FM → 60 02 00 20 81 00 00 CD … 00 AB CD F0 (OHC-B ST 0xABCD PH 3 HV 11, Tag 0x0CD)", () => {
  const t7 = translateTlp(dec(TLP6_WIRE, "nfm"), "fm");
  assert.equal(formatWire(encodeTlp(t7)), "60 02 00 20 81 00 00 CD 00 00 00 38 00 00 00 00 00 AB CD F0");
  const h = fm(t7);
  if (h.kind !== "mem") return assert.fail("kind");
  assert.deepEqual(h.ohcB, { st: 0xabcd, ph: 3, hv: 3, ama: 0, av: false });
  assert.equal(h.tag, 0x0cd);
  assert.deepEqual(t7.info.tph, { st: 0xabcd, stBits: 16, ph: 3 });
  // and back: the ExtTPH prefix reappears
  assert.equal(formatWire(encodeTlp(translateTlp(t7, "nfm"))), TLP6_WIRE);
});

test("TLP-8 FM MRd32 with a 14-bit tag → Type 0x03, Length 1, RID 01:00.0, EP 0, Tag 0x155, address 0xFEDCBA98, AT 00, no OHC, BEs implied", () => {
  const t = dec("03 00 00 01 01 00 01 55 FE DC BA 98", "fm");
  const h = fm(t);
  assert.equal(t.info.name, "MRd32");
  if (h.kind !== "mem") return assert.fail("kind");
  assert.equal(h.type, 0x03);
  assert.equal(h.length, 1);
  assert.equal(formatRid(h.requesterId), "01:00.0");
  assert.equal(h.ep, false);
  assert.equal(h.tag, 0x155);
  assert.equal(h.address, 0xfedcba98n);
  assert.equal(h.at, 0);
  assert.equal(t.info.ohc, 0);
  assert.deepEqual(t.info.byteEnables, { first: 0b1111, last: 0b0000, implied: true });
  // In NFM the same byte 0 is reserved (TLP-17).
  assert.throws(() => dec("03 00 00 01 01 00 01 55 FE DC BA 98", "nfm"), TlpDecodeError);
});

test("TLP-9 FM MWr64 with OHC-A1 and OHC-B → address 0x1_00000000, Length 4, A1 PV 0 Last 1100 First 0011, B ST 0x10 PH 0 HV 01; 24 header + 16 payload bytes", () => {
  const t = dec(TLP9_WIRE, "fm");
  const h = fm(t);
  if (h.kind !== "mem") return assert.fail("kind");
  assert.equal(t.info.ohc, 0b00011);
  assert.equal(h.address, 0x0000_0001_0000_0000n);
  assert.equal(h.length, 4);
  assert.deepEqual(h.ohcA, {
    format: "A1",
    nw: false,
    pv: false,
    pmr: false,
    er: false,
    pasid: 0,
    lastBe: 0b1100,
    firstBe: 0b0011,
  });
  assert.deepEqual(h.ohcB, { st: 0x10, ph: 0, hv: 1, ama: 0, av: false });
  assert.deepEqual(t.info.byteEnables, { first: 0b0011, last: 0b1100, implied: false });
  assert.equal(t.info.headerBytes, 24);
  assert.equal(t.info.payloadBytes, 16);
  assert.equal(t.info.totalBytes, 40);
});

test("TLP-10 NFM extremes + 4 ECRC bytes → MRd32, TC 7, IDO/RO/NS 1, TD 1, EP 1, AT 10, Length 1, Tag 7, address 0x80000000", () => {
  const t = dec("00 74 F8 01 01 00 07 0F 80 00 00 00 DE AD BE EF", "nfm", true);
  const h = nfm(t);
  assert.equal(t.info.name, "MRd32");
  if (h.kind !== "mem") return assert.fail("kind");
  assert.equal(h.tc, 7);
  assert.equal(h.attr, 0b111);
  assert.equal(h.td, true);
  assert.equal(h.ep, true);
  assert.equal(h.at, 0b10);
  assert.equal(h.length, 1);
  assert.equal(h.tag, 7);
  assert.equal(h.address, 0x80000000n);
  assert.equal(t.info.digestBytes, 4);
  assert.deepEqual([...t.data], [0xde, 0xad, 0xbe, 0xef]);
  assert.deepEqual(t.reserved, []);
  assert.equal(formatWire(encodeTlp(t)), "00 74 F8 01 01 00 07 0F 80 00 00 00 DE AD BE EF");
});

test("TLP-11 NFM 10-bit tag → MRd64, T9 1, T8 0, Tag 0x2A5", () => {
  const t = dec(TLP11_WIRE, "nfm");
  assert.equal(t.info.name, "MRd64");
  const h = nfm(t);
  assert.equal(h.tag, 0x2a5);
  assert.equal(t.info.tag, 0x2a5);
});

test("TLP-12 NFM CplD → Length 64, Completer 41:00.0, SC, BCM 0, Byte Count 256, RID 04:00.0, Tag 0x12, Lower Address 0x40", () => {
  const t = dec("4A 00 00 40 41 00 01 00 04 00 12 40", "nfm");
  assert.equal(t.info.name, "CplD");
  const h = nfm(t);
  if (h.kind !== "cpl") return assert.fail("kind");
  assert.equal(h.length, 64);
  assert.equal(formatRid(h.completerId), "41:00.0");
  assert.equal(h.status, 0);
  assert.equal(h.bcm, false);
  assert.equal(h.byteCount, 256);
  assert.equal(formatRid(h.requesterId), "04:00.0");
  assert.equal(h.tag, 0x12);
  assert.equal(h.lowerAddress, 0x40);
  assert.equal(t.info.payloadBytes, 256);
});

test("TLP-13 the same completion in FM → EP 0, LA[6] 1, Tag 0x012, LA[5:2] 0, Byte Count 256, no OHC-A5 (SC, Lower Address 0x40)", () => {
  const wire = "4A 00 00 40 41 00 40 12 04 00 01 00";
  const t = dec(wire, "fm");
  const h = fm(t);
  if (h.kind !== "cpl") return assert.fail("kind");
  assert.equal(h.ep, false);
  assert.equal(h.tag, 0x012);
  assert.equal(h.lowerAddress, 0x40);
  assert.equal(h.byteCount, 256);
  assert.equal(h.ohcA, null);
  assert.equal(t.info.status, 0);
  assert.equal(t.info.lowerAddress, 0x40);
  // and it is what translating TLP-12 gives
  assert.equal(
    formatWire(encodeTlp(translateTlp(dec("4A 00 00 40 41 00 01 00 04 00 12 40", "nfm"), "fm"))),
    wire,
  );
});

test("TLP-14 FM completion with UR → Cpl, OHC-A5 present, status UR (001), Lower Address[1:0] 00, Byte Count 4", () => {
  const t = dec("0A 01 00 00 41 00 00 12 04 00 00 04 00 00 00 01", "fm");
  assert.equal(t.info.name, "Cpl");
  const h = fm(t);
  if (h.kind !== "cpl") return assert.fail("kind");
  assert.deepEqual(h.ohcA, {
    format: "A5",
    destSegment: 0,
    completerSegment: 0,
    dsv: false,
    lowerAddress: 0,
    status: 0b001,
  });
  assert.equal(t.info.status, 1);
  assert.equal(t.info.lowerAddress, 0);
  assert.equal(h.byteCount, 4);
});

test("TLP-15 Length field 0 → 1024 DW (4096 payload bytes)", () => {
  const t = dec("40 00 00 00 01 00 00 FF 00 10 00 00", "nfm");
  assert.equal(nfm(t).length, 1024);
  assert.equal(t.info.payloadBytes, 4096);
  assert.equal(formatWire(encodeTlp(t)), "40 00 00 00 01 00 00 FF 00 10 00 00");
});

test("TLP-16 OHC-B HV 10 → 'reserved, treated as not valid', no TPH; HV 11 with ST 0x1234 → 16-bit ST 0x1234", () => {
  const hv10 = dec("60 02 00 08 04 00 00 F0 00 00 20 E0 06 00 08 00 00 00 F0 E0", "fm");
  const h = fm(hv10);
  if (h.kind !== "mem") return assert.fail("kind");
  assert.deepEqual(h.ohcB, { st: 0xf0, ph: 3, hv: 2, ama: 0, av: false });
  assert.equal(hv10.info.tph, null);
  assert.equal(hv10.info.hvReserved, true);
  assert.ok(hv10.notes.some((n) => n.includes("reserved, treated as not valid")));
  const hv11 = dec("60 02 00 08 04 00 00 F0 00 00 20 E0 06 00 08 00 00 12 34 B0", "fm");
  assert.deepEqual(hv11.info.tph, { st: 0x1234, stBits: 16, ph: 2 });
});

test("TLP-17 decode errors name the byte: OHC-B announced but missing, not a multiple of 4, reserved NFM Fmt/Type, 5 E-E prefixes, reserved FM type", () => {
  const err = (s: string, mode: TlpMode, re: RegExp) =>
    assert.throws(
      () => dec(s, mode),
      (e: unknown) => e instanceof TlpDecodeError && re.test(e.message),
    );
  err("60 02 00 08 04 00 00 F0 00 00 20 E0 06 00 08 00", "fm", /^truncated at byte 16: OHC-B expected$/);
  err("60 02 00 08 04 00 00", "fm", /not a multiple of 4.*truncated/);
  err("60 02 00 08 04 00 00", "nfm", /not a multiple of 4.*truncated/);
  err("03 00 00 01 01 00 00 0F FE E0 00 00", "nfm", /^byte 0: reserved Fmt\/Type 0x03/);
  err(
    `${"90 00 00 00 ".repeat(5)}40 00 00 01 01 00 00 0F FE E0 00 00`,
    "nfm",
    /^byte 16: more than 4 end-to-end prefixes/,
  );
  err("10 00 00 01 01 00 00 0F FE E0 00 00", "fm", /^byte 0: reserved type 0x10/);
  // four E-E prefixes are fine
  assert.equal(
    dec(`${"9E 00 00 00 ".repeat(4)}40 00 00 01 01 00 00 0F FE E0 00 00`, "nfm").prefixes.length,
    4,
  );
  // --whole: payload length disagreeing with Length
  assert.throws(
    () => dec("40 00 00 01 01 00 00 0F FE E0 00 00", "nfm", true),
    /payload length disagrees with Length/,
  );
  // HV 10 is not an error (TLP-16)
  assert.doesNotThrow(() => dec("60 02 00 08 04 00 00 F0 00 00 20 E0 06 00 08 00 00 00 F0 E0", "fm"));
});

test("TLP-18 FM → NFM of an MRd64 with OHC-A1 (explicit BEs) and OHC-B → untranslatable: TPH with explicit byte enables", () => {
  const t = decodeTlp(
    encodeTlp(
      buildTlp({
        mode: "fm",
        type: "MRd",
        address: 0x1_0000_0000n,
        length: 4,
        firstBe: 0b0011,
        lastBe: 0b1100,
        st: 0x10,
        ph: 1,
      }),
    ),
    { mode: "fm" },
  );
  const h = fm(t);
  if (h.kind !== "mem") return assert.fail("kind");
  assert.equal(h.ohcA?.format, "A1");
  assert.ok(h.ohcB);
  assert.throws(
    () => translateTlp(t, "nfm"),
    (e: unknown) =>
      e instanceof TlpTranslateError && /^untranslatable: TPH with explicit byte enables/.test(e.message),
  );
  // Without OHC-A1 the same read translates (BEs implied, ST in byte 7).
  const ok = translateTlp(
    decodeTlp(
      encodeTlp(buildTlp({ mode: "fm", type: "MRd", address: 0x1_0000_0000n, length: 4, st: 0x10, ph: 1 })),
      { mode: "fm" },
    ),
    "nfm",
  );
  assert.equal(formatWire(encodeTlp(ok)), "20 01 00 04 00 00 00 10 00 00 00 01 00 00 00 01");
});

test("TLP-20 AER formatting: TLP-3 → 'TLP Header: 0x60010008 …'; TLP-1 (flit, 5 DWs) → 'TLP Header (Flit): 0x60020008 … 0x0000f090'", () => {
  assert.equal(formatAer(dec(TLP3_WIRE, "nfm")), "TLP Header: 0x60010008 0x0400f0ff 0x000020e0 0x06000802");
  assert.equal(
    formatAer(dec(TLP1_WIRE, "fm")),
    "TLP Header (Flit): 0x60020008 0x040000f0 0x000020e0 0x06000800 0x0000f090",
  );
  // and the line decodes back, the label giving the mode
  const back = decodeTlpText(`pcieport 0000:00:01.0: AER:   ${formatAer(dec(TLP1_WIRE, "fm"))}`);
  assert.equal(back.tlp.mode, "fm");
  assert.equal(formatWire(encodeTlp(back.tlp)), TLP1_WIRE);
});

test("TLP-21 AER formatting with zero DWs and prefixes: TLP-11, TLP-6 (E-E Prefixes), TLP-9 (flit, 6 DWs)", () => {
  assert.equal(formatAer(dec(TLP11_WIRE, "nfm")), "TLP Header: 0x20800001 0x0400a50f 0x00000001 0x00000000");
  assert.equal(
    formatAer(dec(TLP6_WIRE, "nfm")),
    "TLP Header: 0x60010020 0x8100cdff 0x00000038 0x00000003 E-E Prefixes: 0x90ab0000",
  );
  assert.equal(
    formatAer(dec(TLP9_WIRE, "fm")),
    "TLP Header (Flit): 0x60030004 0x04000000 0x00000001 0x00000000 0x000000c3 0x00001010",
  );
  // The prefix logged after the header goes back in front of it on the wire.
  const t6 = decodeTlpText(
    "TLP Header: 0x60010020 0x8100cdff 0x00000038 0x00000003 E-E Prefixes: 0x90ab0000",
  );
  assert.equal(formatWire(encodeTlp(t6.tlp)), TLP6_WIRE);
  // A 3-DW header logs a zero 4th DW; decoding the line ignores it.
  const t5 = dec("40 00 00 01 01 00 00 0F FE E0 00 00", "nfm");
  assert.equal(formatAer(t5), "TLP Header: 0x40000001 0x0100000f 0xfee00000 0x00000000");
  const back = decodeTlpText(formatAer(t5));
  assert.equal(back.tlp.data.length, 0);
  assert.equal(tlpForms(back.tlp).wire, "40 00 00 01 01 00 00 0F FE E0 00 00");
});
